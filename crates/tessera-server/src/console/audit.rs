//! `/console/audit`: the audit log, newest first, filterable by entity id.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use tessera_core::wire::AuditRecord;

use super::session::Session;
use super::view::{
    self, Layout, PAGE_SIZE, Pager, app_error_page, json_brief, page_number, render, with_query,
};
use crate::state::AppState;
use crate::store::Page;

/// An audit event as the console shows it.
pub struct AuditRow {
    pub when: String,
    pub created_at: String,
    pub entity_type: String,
    pub entity_id: String,
    /// A console page about the entity, when there is one.
    pub entity_href: Option<String>,
    pub action: String,
    pub actor: String,
    pub details: String,
}

pub fn audit_row(a: AuditRecord) -> AuditRow {
    let entity_href = match a.entity_type.as_str() {
        "key" => Some(format!("/console/keys/{}", view::url_encode(&a.entity_id))),
        "flag" => Some("/console/flags".to_string()),
        "api_key" => Some("/console/api-keys".to_string()),
        _ => None,
    };
    AuditRow {
        when: view::when(&a.created_at),
        created_at: a.created_at,
        entity_type: a.entity_type,
        entity_id: a.entity_id,
        entity_href,
        action: a.action,
        actor: view::or_dash(a.actor.as_deref()),
        details: json_brief(a.details.as_ref(), 160),
    }
}

pub fn audit_rows(records: Vec<AuditRecord>) -> Vec<AuditRow> {
    records.into_iter().map(audit_row).collect()
}

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    entity_id: Option<String>,
    page: Option<String>,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    layout: Layout,
    entity_id: String,
    rows: Vec<AuditRow>,
    pager: Pager,
}

pub async fn list(
    session: Session,
    State(state): State<AppState>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let entity_id = view::field(&q.entity_id).unwrap_or_default();
    let page = page_number(q.page.as_deref());
    let records = state
        .store
        .list_audit(
            Some(entity_id.as_str()).filter(|e| !e.is_empty()),
            Page {
                limit: PAGE_SIZE + 1,
                offset: (page - 1) * PAGE_SIZE,
            },
        )
        .await;
    let mut records = match records {
        Ok(r) => r,
        Err(e) => return app_error_page(Some(&session.csrf), &e),
    };
    let has_more = records.len() as i64 > PAGE_SIZE;
    records.truncate(PAGE_SIZE as usize);
    let base = with_query("/console/audit", &[("entity_id", &entity_id)]);
    let page = AuditPage {
        layout: Layout::signed_in("Audit log", "audit", &session).await,
        entity_id,
        rows: audit_rows(records),
        pager: Pager::new(&base, page, has_more),
    };
    render(StatusCode::OK, &page)
}
