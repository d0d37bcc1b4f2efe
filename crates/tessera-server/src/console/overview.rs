//! `/console`: counts, a chart of the last two weeks and the latest audit events.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::audit::{AuditRow, audit_rows};
use super::session::Session;
use super::stats::{self, Chart, Counts};
use super::view::{Layout, app_error_page, render};
use crate::state::AppState;
use crate::store::Page;

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    layout: Layout,
    counts: Counts,
    chart: Chart,
    chart_truncated: bool,
    recent: Vec<AuditRow>,
    max_rows: i64,
}

pub async fn page(session: Session, State(state): State<AppState>) -> Response {
    let store = state.store.as_ref();
    let now = state.clock.now();
    let result = async {
        let counts = stats::counts(store).await?;
        let activity = stats::activity(store, now).await?;
        let recent = store
            .list_audit(
                None,
                Page {
                    limit: 8,
                    offset: 0,
                },
            )
            .await?;
        Ok::<_, crate::error::AppError>((counts, activity, recent))
    }
    .await;
    let (counts, activity, recent) = match result {
        Ok(r) => r,
        Err(e) => return app_error_page(Some(&session.csrf), &e),
    };
    let page = OverviewPage {
        layout: Layout::signed_in("Overview", "overview", &session).await,
        counts,
        chart: stats::chart(&activity),
        chart_truncated: activity.truncated,
        recent: audit_rows(recent),
        max_rows: stats::MAX_ROWS,
    };
    render(StatusCode::OK, &page)
}
