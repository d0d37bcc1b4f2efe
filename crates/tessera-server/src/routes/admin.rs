//! `/admin/*`: key management and review, behind `Authorization: Bearer $ADMIN_TOKEN`.

use axum::Json;
use axum::extract::{Path, State};
use tessera_core::keyfmt;
use tessera_core::validate::FieldError;
use tessera_core::wire::{
    ActivationRecord, AuditRecord, CreateKeyRequest, FLAG_STATUSES, FlagRecord, FlagUpdateRequest,
    KeyResponse, StatusResponse, UsageEventRecord,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiResult, AppError};
use crate::extract::{Admin, ApiJson, ApiQuery};
use crate::routes::ListQuery;
use crate::secret::fill_random;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(get_key, revoke_key))
        .routes(routes!(list_activations))
        .routes(routes!(list_usage))
        .routes(routes!(list_flags))
        .routes(routes!(update_flag))
        .routes(routes!(list_audit))
}

#[utoipa::path(
    post,
    path = "/keys",
    tag = "admin",
    summary = "Issue a license key",
    request_body = CreateKeyRequest,
    responses((status = 200, body = KeyResponse), (status = 400, body = tessera_core::ErrorBody), (status = 401, body = tessera_core::ErrorBody), (status = 413, body = tessera_core::ErrorBody), (status = 415, body = tessera_core::ErrorBody), (status = 422, body = tessera_core::ErrorBody)),
    security(("admin_token" = [])),
)]
pub(crate) async fn create_key(
    _: Admin,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateKeyRequest>,
) -> ApiResult<Json<KeyResponse>> {
    req.validate()?;
    // A collision among 36^12 keys is astronomically unlikely; retry once or twice anyway.
    let mut last_err = None;
    for _ in 0..3 {
        let display = keyfmt::generate_key_display(&req.product, fill_random);
        match state
            .store
            .create_key(&req, &display, state.clock.now())
            .await
        {
            Ok(key) => return Ok(Json(key)),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| AppError::internal("key generation failed")))
}

#[utoipa::path(
    get,
    path = "/keys",
    tag = "admin",
    summary = "List license keys, newest first",
    params(crate::routes::ListQuery),
    responses((status = 200, body = Vec<KeyResponse>), (status = 400, body = tessera_core::ErrorBody), (status = 401, body = tessera_core::ErrorBody)),
    security(("admin_token" = [])),
)]
async fn list_keys(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<KeyResponse>>> {
    Ok(Json(state.store.list_keys(q.page()).await?))
}

#[utoipa::path(
    get,
    path = "/keys/{id}",
    tag = "admin",
    summary = "One license key",
    params(("id" = String, Path)),
    responses((status = 200, body = KeyResponse), (status = 401, body = tessera_core::ErrorBody), (status = 404, body = tessera_core::ErrorBody)),
    security(("admin_token" = [])),
)]
async fn get_key(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<KeyResponse>> {
    state
        .store
        .get_key(&id)
        .await?
        .map(Json)
        .ok_or_else(|| AppError::not_found("Key"))
}

#[utoipa::path(
    delete,
    path = "/keys/{id}",
    tag = "admin",
    summary = "Revoke a license key",
    params(("id" = String, Path)),
    responses((status = 200, body = StatusResponse), (status = 401, body = tessera_core::ErrorBody), (status = 404, body = tessera_core::ErrorBody)),
    security(("admin_token" = [])),
)]
async fn revoke_key(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<StatusResponse>> {
    state.store.revoke_key(&id, state.clock.now()).await?;
    Ok(Json(StatusResponse::new("revoked")))
}

#[utoipa::path(
    get,
    path = "/activations",
    tag = "admin",
    summary = "List seats (activations)",
    params(crate::routes::ListQuery),
    responses((status = 200, body = Vec<ActivationRecord>), (status = 400, body = tessera_core::ErrorBody), (status = 401, body = tessera_core::ErrorBody)),
    security(("admin_token" = [])),
)]
async fn list_activations(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<ActivationRecord>>> {
    Ok(Json(
        state
            .store
            .list_activations(q.key_id.as_deref(), q.page())
            .await?,
    ))
}

#[utoipa::path(
    get,
    path = "/usage",
    tag = "admin",
    summary = "List usage events",
    params(crate::routes::ListQuery),
    responses((status = 200, body = Vec<UsageEventRecord>), (status = 400, body = tessera_core::ErrorBody), (status = 401, body = tessera_core::ErrorBody)),
    security(("admin_token" = [])),
)]
async fn list_usage(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<UsageEventRecord>>> {
    Ok(Json(
        state
            .store
            .list_usage(q.key_id.as_deref(), q.page())
            .await?,
    ))
}

#[utoipa::path(
    get,
    path = "/flags",
    tag = "admin",
    summary = "List flags by status (default open)",
    params(crate::routes::ListQuery),
    responses((status = 200, body = Vec<FlagRecord>), (status = 400, body = tessera_core::ErrorBody), (status = 401, body = tessera_core::ErrorBody), (status = 422, body = tessera_core::ErrorBody)),
    security(("admin_token" = [])),
)]
async fn list_flags(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<FlagRecord>>> {
    let status = q.status.as_deref().unwrap_or("open");
    if !FLAG_STATUSES.contains(&status) {
        return Err(
            FieldError::new("status", "must be open, reviewed, dismissed or actioned").into(),
        );
    }
    Ok(Json(state.store.list_flags(status, q.page()).await?))
}

#[utoipa::path(
    patch,
    path = "/flags/{id}",
    tag = "admin",
    summary = "Review a flag",
    request_body = FlagUpdateRequest,
    params(("id" = String, Path)),
    responses((status = 200, body = StatusResponse), (status = 400, body = tessera_core::ErrorBody), (status = 401, body = tessera_core::ErrorBody), (status = 404, body = tessera_core::ErrorBody), (status = 422, body = tessera_core::ErrorBody)),
    security(("admin_token" = [])),
)]
async fn update_flag(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<FlagUpdateRequest>,
) -> ApiResult<Json<StatusResponse>> {
    req.validate()?;
    state
        .store
        .update_flag(&id, &req, state.clock.now())
        .await?;
    Ok(Json(StatusResponse::new("updated")))
}

#[utoipa::path(
    get,
    path = "/audit",
    tag = "admin",
    summary = "Audit log, newest first",
    params(crate::routes::ListQuery),
    responses((status = 200, body = Vec<AuditRecord>), (status = 400, body = tessera_core::ErrorBody), (status = 401, body = tessera_core::ErrorBody)),
    security(("admin_token" = [])),
)]
async fn list_audit(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<AuditRecord>>> {
    Ok(Json(
        state
            .store
            .list_audit(q.entity_id.as_deref(), q.page())
            .await?,
    ))
}
