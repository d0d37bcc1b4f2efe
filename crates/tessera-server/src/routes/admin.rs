//! `/admin/*`: key management and review, behind `Authorization: Bearer $ADMIN_TOKEN`.

use axum::extract::{Path, State};
use axum::routing::{get, patch};
use axum::{Json, Router};
use tessera_core::keyfmt;
use tessera_core::validate::FieldError;
use tessera_core::wire::{
    ActivationRecord, AuditRecord, CreateKeyRequest, FLAG_STATUSES, FlagRecord, FlagUpdateRequest,
    KeyResponse, StatusResponse, UsageEventRecord,
};

use crate::error::{ApiResult, AppError};
use crate::extract::{Admin, ApiJson, ApiQuery};
use crate::routes::ListQuery;
use crate::secret::fill_random;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/keys", get(list_keys).post(create_key))
        .route("/keys/{id}", get(get_key).delete(revoke_key))
        .route("/activations", get(list_activations))
        .route("/usage", get(list_usage))
        .route("/flags", get(list_flags))
        .route("/flags/{id}", patch(update_flag))
        .route("/audit", get(list_audit))
}

async fn create_key(
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

async fn list_keys(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<KeyResponse>>> {
    Ok(Json(state.store.list_keys(q.page()).await?))
}

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

async fn revoke_key(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<StatusResponse>> {
    state.store.revoke_key(&id, state.clock.now()).await?;
    Ok(Json(StatusResponse::new("revoked")))
}

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
