//! `/console/flags`: flags raised by client applications, by status; open ones are reviewed
//! here (reviewed, dismissed or actioned, with the action taken).

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use tessera_core::wire::{FLAG_ACTIONS, FLAG_STATUSES, FlagRecord, FlagUpdateRequest};

use super::session::{Flash, Posted, Session};
use super::view::{
    self, Layout, PAGE_SIZE, Pager, app_error_page, field, json_brief, page_number, redirect,
    render, when, when_opt, with_query,
};
use super::{PathId, path_id};
use crate::state::AppState;
use crate::store::Page;

pub struct Tab {
    pub status: &'static str,
    pub href: String,
    pub current: bool,
}

pub struct FlagRow {
    pub action: String,
    pub created: String,
    pub product: String,
    pub flag_type: String,
    pub key_href: String,
    pub machine_id: String,
    pub details: String,
    pub status: String,
    pub open: bool,
    pub reviewed: String,
    pub action_taken: String,
}

fn flag_row(f: FlagRecord) -> FlagRow {
    FlagRow {
        action: format!("/console/flags/{}", view::url_encode(&f.id)),
        created: when(&f.created_at),
        key_href: format!("/console/keys/{}", view::url_encode(&f.key_id)),
        machine_id: view::or_dash(f.machine_id.as_deref()),
        details: json_brief(f.details.as_ref(), 200),
        open: f.status == "open",
        reviewed: when_opt(f.reviewed_at.as_deref()),
        action_taken: view::or_dash(f.action_taken.as_deref()),
        product: f.product,
        flag_type: f.flag_type,
        status: f.status,
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct FlagsQuery {
    status: Option<String>,
    page: Option<String>,
}

#[derive(Template)]
#[template(path = "console/flags.html")]
struct FlagsPage {
    layout: Layout,
    status: String,
    tabs: Vec<Tab>,
    rows: Vec<FlagRow>,
    pager: Pager,
    review_statuses: &'static [&'static str],
    actions: &'static [&'static str],
}

pub async fn list(
    session: Session,
    State(state): State<AppState>,
    query: Result<Query<FlagsQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let status = field(&q.status).unwrap_or_else(|| "open".into());
    let Some(status) = FLAG_STATUSES.iter().find(|s| **s == status).copied() else {
        return view::error_page(
            Some(&session.csrf),
            StatusCode::BAD_REQUEST,
            "Unknown status",
            "Flags are open, reviewed, dismissed or actioned.",
        );
    };
    let page = page_number(q.page.as_deref());
    let flags = state
        .store
        .list_flags(
            status,
            Page {
                limit: PAGE_SIZE + 1,
                offset: (page - 1) * PAGE_SIZE,
            },
        )
        .await;
    let mut flags = match flags {
        Ok(f) => f,
        Err(e) => return app_error_page(Some(&session.csrf), &e),
    };
    let has_more = flags.len() as i64 > PAGE_SIZE;
    flags.truncate(PAGE_SIZE as usize);
    let base = with_query("/console/flags", &[("status", status)]);
    let page = FlagsPage {
        layout: Layout::signed_in("Flags", "flags", &session).await,
        status: status.to_string(),
        tabs: FLAG_STATUSES
            .iter()
            .map(|s| Tab {
                status: s,
                href: with_query("/console/flags", &[("status", s)]),
                current: *s == status,
            })
            .collect(),
        rows: flags.into_iter().map(flag_row).collect(),
        pager: Pager::new(&base, page, has_more),
        review_statuses: &FLAG_STATUSES[1..],
        actions: FLAG_ACTIONS,
    };
    render(StatusCode::OK, &page)
}

#[derive(Debug, Deserialize)]
pub struct ReviewForm {
    #[serde(default)]
    status: String,
    action_taken: Option<String>,
}

pub async fn review(
    State(state): State<AppState>,
    id: PathId,
    posted: Posted<ReviewForm>,
) -> Response {
    let Posted { session, form } = posted;
    let Some(id) = path_id(id) else {
        return view::not_found_page(Some(&session.csrf), "This flag");
    };
    let req = FlagUpdateRequest {
        status: form.status.trim().to_string(),
        action_taken: field(&form.action_taken),
    };
    // The same steps as `PATCH /admin/flags/{id}`.
    let flash = match req.validate() {
        Err(e) => Flash::error(format!("Flag not updated: {e}.")),
        Ok(()) => match state.store.update_flag(&id, &req, state.clock.now()).await {
            Ok(()) => Flash::ok(match &req.action_taken {
                Some(a) => format!("Flag marked {} (action taken: {a}).", req.status),
                None => format!("Flag marked {}.", req.status),
            }),
            Err(e) => return app_error_page(Some(&session.csrf), &e),
        },
    };
    session.flash(flash).await;
    redirect("/console/flags")
}
