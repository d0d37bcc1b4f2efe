//! API keys (create with the secret shown once, change tier, revoke with a confirmation step)
//! and the instances that fetched tokens with them.

use std::collections::HashMap;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use tessera_core::ErrorCode;
use tessera_core::apikey::{ApiKeyRecord, CreateApiKeyRequest, UpdateApiKeyRequest};
use tessera_core::validate::FieldError;
use time::OffsetDateTime;

use super::session::{Flash, Posted, Session};
use super::view::{
    self, Layout, PAGE_SIZE, Pager, app_error_page, field, not_found_page, page_number, redirect,
    render, when, with_query,
};
use super::{PathId, path_id};
use crate::extract::{Admin, ApiJson};
use crate::state::AppState;
use crate::store::Page;

pub struct ApiKeyRow {
    pub name: String,
    pub org: String,
    pub prefix: String,
    pub product: String,
    pub tier: String,
    /// The catalog's tiers for the product (a list to pick from); empty: type a tier.
    pub tiers: Vec<String>,
    pub trial: bool,
    pub expires: String,
    pub status: &'static str,
    pub revoked: bool,
    pub created: String,
    pub tier_action: String,
    pub revoke_href: String,
    pub instances_href: String,
}

fn api_key_status(k: &ApiKeyRecord, now: OffsetDateTime) -> &'static str {
    if k.revoked {
        "Revoked"
    } else if k
        .expires_at
        .as_deref()
        .and_then(tessera_core::timefmt::parse_until)
        .is_some_and(|t| t < now)
    {
        "Expired"
    } else {
        "Active"
    }
}

fn api_key_row(state: &AppState, k: &ApiKeyRecord, now: OffsetDateTime) -> ApiKeyRow {
    let id = view::url_encode(&k.id);
    ApiKeyRow {
        name: k.name.clone(),
        org: view::or_dash(k.org_name.as_deref()),
        prefix: k.key_prefix.clone(),
        product: k.product.clone(),
        tier: k.tier.clone(),
        tiers: state
            .keyring
            .product(&k.product)
            .map(|p| p.config.tiers.iter().map(|t| t.name.clone()).collect())
            .unwrap_or_default(),
        trial: k.trial,
        expires: k
            .expires_at
            .as_deref()
            .map(when)
            .unwrap_or_else(|| "Never".into()),
        status: api_key_status(k, now),
        revoked: k.revoked,
        created: when(&k.created_at),
        tier_action: format!("/console/api-keys/{id}/tier"),
        revoke_href: format!("/console/api-keys/{id}/revoke"),
        instances_href: format!("/console/instances?api_key_id={id}"),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    page: Option<String>,
}

#[derive(Template)]
#[template(path = "console/api_keys.html")]
struct ApiKeysPage {
    layout: Layout,
    rows: Vec<ApiKeyRow>,
    pager: Pager,
}

pub async fn list(
    session: Session,
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let page = page_number(q.page.as_deref());
    let keys = state
        .store
        .list_api_keys(Page {
            limit: PAGE_SIZE + 1,
            offset: (page - 1) * PAGE_SIZE,
        })
        .await;
    let mut keys = match keys {
        Ok(k) => k,
        Err(e) => return app_error_page(Some(&session.csrf), &e),
    };
    let has_more = keys.len() as i64 > PAGE_SIZE;
    keys.truncate(PAGE_SIZE as usize);
    let now = state.clock.now();
    let page = ApiKeysPage {
        layout: Layout::signed_in("API keys", "api-keys", &session).await,
        rows: keys.iter().map(|k| api_key_row(&state, k, now)).collect(),
        pager: Pager::new("/console/api-keys", page, has_more),
    };
    render(StatusCode::OK, &page)
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct ApiKeyForm {
    product: Option<String>,
    tier: Option<String>,
    name: Option<String>,
    org_name: Option<String>,
    expires_at: Option<String>,
    trial: Option<String>,
}

pub struct ApiKeyFormView {
    product: String,
    tier: String,
    name: String,
    org_name: String,
    expires_at: String,
    trial: bool,
}

impl From<&ApiKeyForm> for ApiKeyFormView {
    fn from(f: &ApiKeyForm) -> Self {
        let v = |o: &Option<String>| o.clone().unwrap_or_default();
        Self {
            product: v(&f.product),
            tier: v(&f.tier),
            name: v(&f.name),
            org_name: v(&f.org_name),
            expires_at: v(&f.expires_at),
            trial: f.trial.is_some(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/api_key_new.html")]
struct NewApiKeyPage {
    layout: Layout,
    form: ApiKeyFormView,
    error: Option<String>,
    error_field: &'static str,
}

async fn new_page(
    session: &Session,
    status: StatusCode,
    form: &ApiKeyForm,
    error: Option<FieldError>,
) -> Response {
    let page = NewApiKeyPage {
        layout: Layout::signed_in("New API key", "api-keys", session).await,
        form: ApiKeyFormView::from(form),
        error_field: error.as_ref().map_or("", |e| e.field),
        error: error.map(|e| format!("{}: {}", label_of(e.field), e.message)),
    };
    render(status, &page)
}

pub async fn new_form(session: Session) -> Response {
    new_page(&session, StatusCode::OK, &ApiKeyForm::default(), None).await
}

fn label_of(field: &str) -> &'static str {
    match field {
        "product" => "Product",
        "tier" => "Tier",
        "name" => "Name",
        "org_name" => "Organisation",
        "expires_at" => "Expires",
        _ => "Form",
    }
}

fn parse_api_key_form(f: &ApiKeyForm) -> Result<CreateApiKeyRequest, FieldError> {
    let req = CreateApiKeyRequest {
        product: field(&f.product).unwrap_or_default(),
        tier: field(&f.tier).unwrap_or_default(),
        name: field(&f.name).unwrap_or_default(),
        org_name: field(&f.org_name),
        trial: f.trial.is_some(),
        expires_at: field(&f.expires_at),
    };
    req.validate()?;
    Ok(req)
}

pub async fn create(State(state): State<AppState>, posted: Posted<ApiKeyForm>) -> Response {
    let Posted { session, form } = posted;
    let req = match parse_api_key_form(&form) {
        Ok(r) => r,
        Err(e) => {
            return new_page(&session, StatusCode::UNPROCESSABLE_ENTITY, &form, Some(e)).await;
        }
    };
    // The same steps as `POST /admin/api-keys` (tier check, secret, hash, prefix).
    match crate::routes::apikeys::create_api_key(Admin, State(state), ApiJson(req)).await {
        Ok(axum::Json(created)) => {
            session
                .flash(
                    Flash::ok(format!(
                        "API key \u{201c}{}\u{201d} created. Copy the secret now: it is not shown again.",
                        created.record.name
                    ))
                    .with_secret("New API key secret", created.api_key),
                )
                .await;
            redirect("/console/api-keys")
        }
        // The catalog refused the tier: say so next to the field.
        Err(e) if e.code == ErrorCode::ValidationError && e.message.starts_with("tier:") => {
            let message = e.message.trim_start_matches("tier:").trim().to_string();
            new_page(
                &session,
                StatusCode::UNPROCESSABLE_ENTITY,
                &form,
                Some(FieldError::new("tier", message)),
            )
            .await
        }
        Err(e) => app_error_page(Some(&session.csrf), &e),
    }
}

#[derive(Debug, Deserialize)]
pub struct TierForm {
    #[serde(default)]
    tier: String,
}

pub async fn change_tier(
    State(state): State<AppState>,
    id: PathId,
    posted: Posted<TierForm>,
) -> Response {
    let Posted { session, form } = posted;
    let Some(id) = path_id(id) else {
        return not_found_page(Some(&session.csrf), "This API key");
    };
    let tier = form.tier.trim().to_string();
    let req = UpdateApiKeyRequest {
        tier: Some(tier.clone()),
        ..UpdateApiKeyRequest::default()
    };
    // The same steps as `PATCH /admin/api-keys/{id}` (validation, catalog tier check).
    let flash =
        match crate::routes::apikeys::update_api_key(Admin, State(state), Path(id), ApiJson(req))
            .await
        {
            Ok(axum::Json(k)) => {
                Flash::ok(format!("Tier of \u{201c}{}\u{201d} is now {tier}.", k.name))
            }
            Err(e) if e.code == ErrorCode::ValidationError => {
                Flash::error(format!("Tier not changed. {}", e.message))
            }
            Err(e) => return app_error_page(Some(&session.csrf), &e),
        };
    session.flash(flash).await;
    redirect("/console/api-keys")
}

#[derive(Template)]
#[template(path = "console/api_key_revoke.html")]
struct RevokePage {
    layout: Layout,
    key: ApiKeyRow,
}

pub async fn revoke_confirm(
    session: Session,
    State(state): State<AppState>,
    id: PathId,
) -> Response {
    let Some(id) = path_id(id) else {
        return not_found_page(Some(&session.csrf), "This API key");
    };
    let key = match state.store.get_api_key(&id).await {
        Ok(Some(k)) => k,
        Ok(None) => return not_found_page(Some(&session.csrf), "This API key"),
        Err(e) => return app_error_page(Some(&session.csrf), &e),
    };
    let page = RevokePage {
        layout: Layout::signed_in(format!("Revoke {}", key.name), "api-keys", &session).await,
        key: api_key_row(&state, &key, state.clock.now()),
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
        return not_found_page(Some(&session.csrf), "This API key");
    };
    match state.store.revoke_api_key(&id, state.clock.now()).await {
        Ok(()) => {
            session
                .flash(Flash::ok(
                    "API key revoked. Its instances can no longer fetch tokens.",
                ))
                .await;
            redirect("/console/api-keys")
        }
        Err(e) => app_error_page(Some(&session.csrf), &e),
    }
}

pub struct InstanceRow {
    pub instance_id: String,
    pub api_key: String,
    pub api_key_filter: String,
    pub version: String,
    pub first_seen: String,
    pub last_seen: String,
    pub fetch_count: i64,
}

#[derive(Debug, Default, Deserialize)]
pub struct InstancesQuery {
    api_key_id: Option<String>,
    page: Option<String>,
}

#[derive(Template)]
#[template(path = "console/instances.html")]
struct InstancesPage {
    layout: Layout,
    /// Name of the API key the list is filtered on, if any.
    filter: Option<String>,
    rows: Vec<InstanceRow>,
    pager: Pager,
}

pub async fn instances(
    session: Session,
    State(state): State<AppState>,
    query: Result<Query<InstancesQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let api_key_id = field(&q.api_key_id).unwrap_or_default();
    let page = page_number(q.page.as_deref());
    let store = state.store.as_ref();
    let loaded = async {
        let mut rows = store
            .list_instances(
                Some(api_key_id.as_str()).filter(|k| !k.is_empty()),
                Page {
                    limit: PAGE_SIZE + 1,
                    offset: (page - 1) * PAGE_SIZE,
                },
            )
            .await?;
        let has_more = rows.len() as i64 > PAGE_SIZE;
        rows.truncate(PAGE_SIZE as usize);
        // Names of the API keys on this page (at most one lookup per key).
        let mut names: HashMap<String, String> = HashMap::new();
        for r in &rows {
            if !names.contains_key(&r.api_key_id) {
                let name = store
                    .get_api_key(&r.api_key_id)
                    .await?
                    .map(|k| format!("{} ({})", k.name, k.key_prefix))
                    .unwrap_or_else(|| r.api_key_id.clone());
                names.insert(r.api_key_id.clone(), name);
            }
        }
        let filter = if api_key_id.is_empty() {
            None
        } else {
            Some(match names.get(&api_key_id) {
                Some(n) => n.clone(),
                None => store
                    .get_api_key(&api_key_id)
                    .await?
                    .map(|k| format!("{} ({})", k.name, k.key_prefix))
                    .unwrap_or_else(|| api_key_id.clone()),
            })
        };
        Ok::<_, crate::error::AppError>((rows, has_more, names, filter))
    }
    .await;
    let (rows, has_more, names, filter) = match loaded {
        Ok(r) => r,
        Err(e) => return app_error_page(Some(&session.csrf), &e),
    };
    let base = with_query("/console/instances", &[("api_key_id", &api_key_id)]);
    let page = InstancesPage {
        layout: Layout::signed_in("Instances", "instances", &session).await,
        filter,
        rows: rows
            .into_iter()
            .map(|r| InstanceRow {
                api_key: names
                    .get(&r.api_key_id)
                    .cloned()
                    .unwrap_or_else(|| r.api_key_id.clone()),
                api_key_filter: with_query("/console/instances", &[("api_key_id", &r.api_key_id)]),
                instance_id: r.instance_id,
                version: view::or_dash(r.version.as_deref()),
                first_seen: when(&r.first_seen),
                last_seen: when(&r.last_seen),
                fetch_count: r.fetch_count,
            })
            .collect(),
        pager: Pager::new(&base, page, has_more),
    };
    render(StatusCode::OK, &page)
}
