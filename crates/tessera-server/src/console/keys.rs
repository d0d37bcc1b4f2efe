//! License keys: search and list, create (the new key shown once with a copy button), one key
//! (seats, usage, audit trail), release a seat, revoke with a confirmation step.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use tessera_core::wire::{ActivationRecord, CreateKeyRequest, KeyResponse, UsageEventRecord};
use time::OffsetDateTime;

use super::audit::{AuditRow, audit_row};
use super::session::{Flash, Posted, Session};
use super::stats::{MAX_ROWS, scan};
use super::view::{
    self, Layout, PAGE_SIZE, Pager, app_error_page, field, json_brief, not_found_page, page_number,
    redirect, render, when, when_opt, with_query,
};
use super::{PathId, path_id};
use crate::error::AppError;
use crate::extract::{Admin, ApiJson};
use crate::state::AppState;
use crate::store::Page;

/// Search text longer than this is refused (nothing real is that long).
const MAX_SEARCH: usize = 200;

pub struct KeyRow {
    pub href: String,
    pub key_display: String,
    pub product: String,
    pub tier: String,
    pub seats: String,
    pub status: &'static str,
    pub email: String,
    pub created: String,
}

/// `Active`, `Revoked` or `Expired` at `now`.
fn status(k: &KeyResponse, now: OffsetDateTime) -> &'static str {
    if k.revoked {
        "Revoked"
    } else if k
        .valid_until
        .as_deref()
        .and_then(tessera_core::timefmt::parse_until)
        .is_some_and(|t| t < now)
    {
        "Expired"
    } else {
        "Active"
    }
}

fn key_row(k: &KeyResponse, now: OffsetDateTime) -> KeyRow {
    KeyRow {
        href: key_href(&k.id),
        key_display: k.key_display.clone(),
        product: k.product.clone(),
        tier: k.tier.clone(),
        seats: format!("{} of {}", k.active_seat_count, k.seats),
        status: status(k, now),
        email: view::or_dash(k.customer_email.as_deref()),
        created: when(&k.created_at),
    }
}

fn key_href(id: &str) -> String {
    format!("/console/keys/{}", view::url_encode(id))
}

fn matches(k: &KeyResponse, needle: &str) -> bool {
    k.key_display.to_lowercase().contains(needle)
        || k.product.to_lowercase().contains(needle)
        || k.customer_email
            .as_deref()
            .is_some_and(|e| e.to_lowercase().contains(needle))
}

#[derive(Debug, Default, Deserialize)]
pub struct KeysQuery {
    q: Option<String>,
    page: Option<String>,
}

#[derive(Template)]
#[template(path = "console/keys.html")]
struct KeysPage {
    layout: Layout,
    q: String,
    rows: Vec<KeyRow>,
    pager: Pager,
    /// The search stopped at [`MAX_ROWS`] keys.
    search_truncated: bool,
    max_rows: i64,
}

pub async fn list(
    session: Session,
    State(state): State<AppState>,
    query: Result<Query<KeysQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let search = field(&q.q).unwrap_or_default();
    if search.len() > MAX_SEARCH {
        return view::error_page(
            Some(&session.csrf),
            StatusCode::BAD_REQUEST,
            "Search too long",
            &format!("Search for at most {MAX_SEARCH} characters."),
        );
    }
    let page = page_number(q.page.as_deref());
    let offset = (page - 1) * PAGE_SIZE;
    let now = state.clock.now();
    let store = state.store.as_ref();
    let mut search_truncated = false;
    let found = if search.is_empty() {
        store
            .list_keys(Page {
                limit: PAGE_SIZE + 1,
                offset,
            })
            .await
    } else {
        // The store has no search yet: scan the newest keys (bounded) and filter here.
        let needle = search.to_lowercase();
        let mut skipped = 0;
        let mut found = Vec::new();
        match scan(
            |p| store.list_keys(p),
            |k| {
                if matches(k, &needle) {
                    if skipped < offset {
                        skipped += 1;
                    } else {
                        found.push(k.clone());
                    }
                }
                found.len() as i64 <= PAGE_SIZE
            },
        )
        .await
        {
            Ok(truncated) => {
                search_truncated = truncated;
                Ok(found)
            }
            Err(e) => Err(e),
        }
    };
    let mut keys = match found {
        Ok(k) => k,
        Err(e) => return app_error_page(Some(&session.csrf), &e),
    };
    let has_more = keys.len() as i64 > PAGE_SIZE;
    keys.truncate(PAGE_SIZE as usize);
    let base = with_query("/console/keys", &[("q", &search)]);
    let page = KeysPage {
        layout: Layout::signed_in("License keys", "keys", &session).await,
        q: search,
        rows: keys.iter().map(|k| key_row(k, now)).collect(),
        pager: Pager::new(&base, page, has_more),
        search_truncated,
        max_rows: MAX_ROWS,
    };
    render(StatusCode::OK, &page)
}

/// The create form as posted (every field text, so nothing fails to parse before we can say
/// what is wrong with it).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct KeyForm {
    product: Option<String>,
    tier: Option<String>,
    seats: Option<String>,
    valid_until: Option<String>,
    customer_email: Option<String>,
    notes: Option<String>,
    lease_ttl_secs: Option<String>,
    trial: Option<String>,
}

/// The form's values as shown again.
pub struct KeyFormView {
    product: String,
    tier: String,
    seats: String,
    valid_until: String,
    customer_email: String,
    notes: String,
    lease_ttl_secs: String,
    trial: bool,
}

impl From<&KeyForm> for KeyFormView {
    fn from(f: &KeyForm) -> Self {
        let v = |o: &Option<String>| o.clone().unwrap_or_default();
        Self {
            product: v(&f.product),
            tier: v(&f.tier),
            seats: v(&f.seats),
            valid_until: v(&f.valid_until),
            customer_email: v(&f.customer_email),
            notes: v(&f.notes),
            lease_ttl_secs: v(&f.lease_ttl_secs),
            trial: f.trial.is_some(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/key_new.html")]
struct NewKeyPage {
    layout: Layout,
    form: KeyFormView,
    error: Option<String>,
    /// Name of the field the error is about (for `aria-invalid`).
    error_field: &'static str,
}

pub async fn new_form(session: Session) -> Response {
    let form = KeyForm {
        seats: Some("1".into()),
        ..KeyForm::default()
    };
    let page = NewKeyPage {
        layout: Layout::signed_in("New license key", "keys", &session).await,
        form: KeyFormView::from(&form),
        error: None,
        error_field: "",
    };
    render(StatusCode::OK, &page)
}

fn parse_key_form(f: &KeyForm) -> Result<CreateKeyRequest, tessera_core::validate::FieldError> {
    use tessera_core::validate::FieldError;
    let seats = match field(&f.seats) {
        None => 1,
        Some(s) => s
            .parse::<i64>()
            .map_err(|_| FieldError::new("seats", "must be a whole number"))?,
    };
    let lease_ttl_secs = field(&f.lease_ttl_secs)
        .map(|s| s.parse::<i64>())
        .transpose()
        .map_err(|_| FieldError::new("lease_ttl_secs", "must be a whole number of seconds"))?;
    let req = CreateKeyRequest {
        product: field(&f.product).unwrap_or_default(),
        tier: field(&f.tier).unwrap_or_default(),
        seats,
        valid_until: field(&f.valid_until),
        customer_email: field(&f.customer_email),
        source: "console".to_string(),
        trial: f.trial.is_some(),
        notes: field(&f.notes),
        lease_ttl_secs,
    };
    req.validate()?;
    Ok(req)
}

pub async fn create(State(state): State<AppState>, posted: Posted<KeyForm>) -> Response {
    let Posted { session, form } = posted;
    let req = match parse_key_form(&form) {
        Ok(r) => r,
        Err(e) => {
            let page = NewKeyPage {
                layout: Layout::signed_in("New license key", "keys", &session).await,
                form: KeyFormView::from(&form),
                error: Some(format!("{}: {}", label_of(e.field), e.message)),
                error_field: e.field,
            };
            return render(StatusCode::UNPROCESSABLE_ENTITY, &page);
        }
    };
    // The same steps as `POST /admin/keys` (validation, key generation, retries).
    match crate::routes::admin::create_key(Admin, State(state), ApiJson(req)).await {
        Ok(axum::Json(key)) => {
            session
                .flash(
                    Flash::ok(format!(
                        "Key created for {} ({}). Copy it now to send it to the customer.",
                        key.product, key.tier
                    ))
                    .with_secret("New license key", key.key_display.clone()),
                )
                .await;
            redirect(&key_href(&key.id))
        }
        Err(e) => app_error_page(Some(&session.csrf), &e),
    }
}

/// A form field's label, for error messages.
fn label_of(field: &str) -> &'static str {
    match field {
        "product" => "Product",
        "tier" => "Tier",
        "seats" => "Seats",
        "valid_until" => "Valid until",
        "customer_email" => "Customer email",
        "notes" => "Notes",
        "lease_ttl_secs" => "Floating seat lease",
        _ => "Form",
    }
}

pub struct KeyDetail {
    pub id: String,
    pub href: String,
    pub key_display: String,
    pub product: String,
    pub tier: String,
    pub seats: i64,
    pub active_seats: i64,
    pub valid_until: String,
    pub status: &'static str,
    pub revoked: bool,
    pub email: String,
    pub source: String,
    pub trial: bool,
    pub notes: String,
    pub created: String,
    pub lease: String,
}

fn key_detail(k: &KeyResponse, now: OffsetDateTime) -> KeyDetail {
    KeyDetail {
        id: k.id.clone(),
        href: key_href(&k.id),
        key_display: k.key_display.clone(),
        product: k.product.clone(),
        tier: k.tier.clone(),
        seats: k.seats,
        active_seats: k.active_seat_count,
        valid_until: k
            .valid_until
            .as_deref()
            .map(when)
            .unwrap_or_else(|| "No end date".into()),
        status: status(k, now),
        revoked: k.revoked,
        email: view::or_dash(k.customer_email.as_deref()),
        source: k.source.clone(),
        trial: k.trial,
        notes: view::or_dash(k.notes.as_deref()),
        created: when(&k.created_at),
        lease: k
            .lease_ttl_secs
            .map(|s| format!("Floating: released after {s} s without refresh"))
            .unwrap_or_else(|| "Held until deactivated".into()),
    }
}

pub struct SeatRow {
    pub machine_id: String,
    pub app_version: String,
    pub platform: String,
    pub activated: String,
    pub last_refresh: String,
    pub released: String,
    pub active: bool,
}

fn seat_row(a: &ActivationRecord) -> SeatRow {
    SeatRow {
        machine_id: a.machine_id.clone(),
        app_version: view::or_dash(a.app_version.as_deref()),
        platform: view::or_dash(a.platform.as_deref()),
        activated: when(&a.activated_at),
        last_refresh: when(&a.last_refresh),
        released: when_opt(a.deactivated_at.as_deref()),
        active: a.deactivated_at.is_none(),
    }
}

pub struct UsageRow {
    pub when: String,
    pub machine_id: String,
    pub event_type: String,
    pub metadata: String,
}

fn usage_row(u: &UsageEventRecord) -> UsageRow {
    UsageRow {
        when: when(&u.created_at),
        machine_id: u.machine_id.clone(),
        event_type: u.event_type.clone(),
        metadata: json_brief(u.metadata.as_ref(), 120),
    }
}

#[derive(Template)]
#[template(path = "console/key.html")]
struct KeyPage {
    layout: Layout,
    key: KeyDetail,
    seats: Vec<SeatRow>,
    usage: Vec<UsageRow>,
    audit: Vec<AuditRow>,
}

/// Seats and usage events shown on a key's page.
const KEY_PAGE_ROWS: i64 = 100;
/// Audit events shown on a key's page (its own and its seats').
const KEY_AUDIT_ROWS: usize = 50;

async fn load_key(state: &AppState, id: &str) -> Result<Option<KeyResponse>, AppError> {
    state.store.get_key(id).await
}

pub async fn show(session: Session, State(state): State<AppState>, id: PathId) -> Response {
    let Some(id) = path_id(id) else {
        return not_found_page(Some(&session.csrf), "This key");
    };
    let store = state.store.as_ref();
    let first = Page {
        limit: KEY_PAGE_ROWS,
        offset: 0,
    };
    let loaded = async {
        let Some(key) = load_key(&state, &id).await? else {
            return Ok(None);
        };
        let seats = store.list_activations(Some(&id), first).await?;
        let usage = store.list_usage(Some(&id), first).await?;
        // The key's own events, and its seats' (activations are audited under their own id).
        // A `Store::list_audit_for_key` would do this in one query.
        let audit_page = Page {
            limit: KEY_AUDIT_ROWS as i64,
            offset: 0,
        };
        let mut audit = store.list_audit(Some(&id), audit_page).await?;
        for seat in seats.iter().take(KEY_AUDIT_ROWS) {
            audit.extend(store.list_audit(Some(&seat.id), audit_page).await?);
        }
        audit.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        audit.truncate(KEY_AUDIT_ROWS);
        Ok::<_, AppError>(Some((key, seats, usage, audit)))
    }
    .await;
    let (key, seats, usage, audit) = match loaded {
        Ok(Some(r)) => r,
        Ok(None) => return not_found_page(Some(&session.csrf), "This key"),
        Err(e) => return app_error_page(Some(&session.csrf), &e),
    };
    let now = state.clock.now();
    let page = KeyPage {
        layout: Layout::signed_in(key.key_display.clone(), "keys", &session).await,
        key: key_detail(&key, now),
        seats: seats.iter().map(seat_row).collect(),
        usage: usage.iter().map(usage_row).collect(),
        audit: audit.into_iter().map(audit_row).collect(),
    };
    render(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "console/key_revoke.html")]
struct RevokePage {
    layout: Layout,
    key: KeyDetail,
}

pub async fn revoke_confirm(
    session: Session,
    State(state): State<AppState>,
    id: PathId,
) -> Response {
    let Some(id) = path_id(id) else {
        return not_found_page(Some(&session.csrf), "This key");
    };
    let key = match load_key(&state, &id).await {
        Ok(Some(k)) => k,
        Ok(None) => return not_found_page(Some(&session.csrf), "This key"),
        Err(e) => return app_error_page(Some(&session.csrf), &e),
    };
    let page = RevokePage {
        layout: Layout::signed_in(format!("Revoke {}", key.key_display), "keys", &session).await,
        key: key_detail(&key, state.clock.now()),
    };
    render(StatusCode::OK, &page)
}

#[derive(Debug, Deserialize)]
pub struct Confirm {}

pub async fn revoke(
    State(state): State<AppState>,
    id: PathId,
    posted: Posted<Confirm>,
) -> Response {
    let session = posted.session;
    let Some(id) = path_id(id) else {
        return not_found_page(Some(&session.csrf), "This key");
    };
    match state.store.revoke_key(&id, state.clock.now()).await {
        Ok(()) => {
            session
                .flash(Flash::ok(
                    "Key revoked. Its machines can no longer activate or refresh.",
                ))
                .await;
            redirect(&key_href(&id))
        }
        Err(e) => app_error_page(Some(&session.csrf), &e),
    }
}

#[derive(Debug, Deserialize)]
pub struct ReleaseForm {
    #[serde(default)]
    machine_id: String,
}

/// Frees the seat `machine_id` holds on this key (as `/v1/deactivate` would).
pub async fn release(
    State(state): State<AppState>,
    id: PathId,
    posted: Posted<ReleaseForm>,
) -> Response {
    let Posted { session, form } = posted;
    let Some(id) = path_id(id) else {
        return not_found_page(Some(&session.csrf), "This key");
    };
    let key = match load_key(&state, &id).await {
        Ok(Some(k)) => k,
        Ok(None) => return not_found_page(Some(&session.csrf), "This key"),
        Err(e) => return app_error_page(Some(&session.csrf), &e),
    };
    let machine = form.machine_id.trim();
    let flash = match state
        .store
        .deactivate(&key.key_display, machine, state.clock.now())
        .await
    {
        Ok(()) => Flash::ok(format!("Seat of machine {machine} released.")),
        Err(e) if e.code == tessera_core::ErrorCode::NotFound => {
            Flash::error(format!("Machine {machine} holds no seat on this key."))
        }
        Err(e) => return app_error_page(Some(&session.csrf), &e),
    };
    session.flash(flash).await;
    redirect(&key_href(&id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_text_is_parsed_with_field_errors() {
        let mut f = KeyForm {
            product: Some(" peregrine ".into()),
            tier: Some("paid".into()),
            seats: Some("3".into()),
            valid_until: Some("".into()),
            trial: Some("on".into()),
            ..KeyForm::default()
        };
        let req = parse_key_form(&f).unwrap();
        assert_eq!(
            (req.product.as_str(), req.seats, req.trial),
            ("peregrine", 3, true)
        );
        assert!(req.valid_until.is_none());
        f.seats = Some("three".into());
        assert_eq!(parse_key_form(&f).unwrap_err().field, "seats");
        f.seats = Some("0".into());
        assert_eq!(parse_key_form(&f).unwrap_err().field, "seats");
        f.seats = None;
        f.product = Some("Bad Product".into());
        assert_eq!(parse_key_form(&f).unwrap_err().field, "product");
    }
}
