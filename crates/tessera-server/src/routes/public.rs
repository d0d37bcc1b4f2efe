//! `/v1/activate|refresh|deactivate|usage|flag`: what client applications call.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use tessera_core::expiry::{Freshness, freshness};
use tessera_core::wire::{
    ActivateRequest, ActivateResponse, DeactivateRequest, FlagRequest, RefreshRequest,
    StatusResponse, UsageRequest,
};
use tessera_core::{ErrorCode, LicenseClaims};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiResult, AppError};
use crate::extract::{ApiJson, bearer};
use crate::rules;
use crate::state::AppState;
use crate::store::KeyRow;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(activate))
        .routes(routes!(refresh))
        .routes(routes!(deactivate))
        .routes(routes!(usage))
        .routes(routes!(flag))
}

fn issue(state: &AppState, key: &KeyRow, machine_id: &str) -> ApiResult<ActivateResponse> {
    let now = state.clock.now();
    let claims = LicenseClaims {
        sub: key.key_display.clone(),
        product: key.product.clone(),
        tier: key.tier.clone(),
        seats: key.seats,
        machine: machine_id.to_string(),
        iat: now.unix_timestamp(),
        exp: rules::token_exp(key, now, state.policy.jwt_expiry_days),
        notice: state.policy.server_notice.clone(),
    };
    let jwt = state.signer.sign(&claims).map_err(AppError::internal)?;
    Ok(ActivateResponse {
        jwt,
        tier: key.tier.clone(),
        valid_until: key.valid_until.clone(),
        notice: state.policy.server_notice.clone(),
    })
}

/// Verifies signature (always) and expiry: a token is accepted until `exp + GRACE_PERIOD_DAYS`.
/// The seed decoded expired tokens with signature checks off; here there is no such path.
fn verify_within_grace(state: &AppState, token: &str) -> ApiResult<LicenseClaims> {
    let claims: LicenseClaims = state.verifier.decode(token)?;
    check_grace(state, claims.exp)?;
    Ok(claims)
}

/// Expiry, decided on every request whether or not the signature check was remembered.
fn check_grace(state: &AppState, exp: i64) -> ApiResult<()> {
    match freshness(exp, state.policy.grace_secs(), state.clock.unix()) {
        Freshness::Valid | Freshness::InGrace => Ok(()),
        Freshness::Expired => Err(AppError::new(
            ErrorCode::TokenExpired,
            "Token expired beyond the grace period; activate again",
        )),
    }
}

fn require_same_machine(claims: &LicenseClaims, machine_id: &str) -> ApiResult<()> {
    if claims.machine == machine_id {
        Ok(())
    } else {
        Err(AppError::new(
            ErrorCode::MachineMismatch,
            "Token was issued to another machine",
        ))
    }
}

#[utoipa::path(
    post,
    path = "/activate",
    tag = "license",
    summary = "Activate a license key on a machine",
    request_body = ActivateRequest,
    responses((status = 200, body = ActivateResponse), (status = 400, body = tessera_core::ErrorBody), (status = 413, body = tessera_core::ErrorBody), (status = 415, body = tessera_core::ErrorBody), (status = 422, body = tessera_core::ErrorBody), (status = 429, body = tessera_core::ErrorBody), (status = 403, body = tessera_core::ErrorBody), (status = 409, body = tessera_core::ErrorBody)),
)]
async fn activate(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ActivateRequest>,
) -> ApiResult<Json<ActivateResponse>> {
    req.validate()?;
    let granted = state.store.activate(&req, state.clock.now()).await;
    crate::metrics::result("tessera_activations_total", &granted);
    let granted = granted?;
    Ok(Json(issue(&state, &granted.key, &req.machine_id)?))
}

#[utoipa::path(
    post,
    path = "/refresh",
    tag = "license",
    summary = "Exchange a license token (valid or within grace) for a new one",
    request_body = RefreshRequest,
    responses((status = 200, body = ActivateResponse), (status = 400, body = tessera_core::ErrorBody), (status = 413, body = tessera_core::ErrorBody), (status = 415, body = tessera_core::ErrorBody), (status = 422, body = tessera_core::ErrorBody), (status = 429, body = tessera_core::ErrorBody), (status = 403, body = tessera_core::ErrorBody)),
)]
async fn refresh(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> ApiResult<Json<ActivateResponse>> {
    let result = refresh_checked(&state, &req).await;
    crate::metrics::result("tessera_refreshes_total", &result);
    result.map(Json)
}

async fn refresh_checked(state: &AppState, req: &RefreshRequest) -> ApiResult<ActivateResponse> {
    req.validate()?;
    let claims = verify_within_grace(state, &req.jwt)?;
    require_same_machine(&claims, &req.machine_id)?;
    let granted = state
        .store
        .refresh(
            &claims.sub,
            &claims.product,
            &req.machine_id,
            req.app_version.as_deref(),
            req.platform.as_deref(),
            state.clock.now(),
        )
        .await?;
    issue(state, &granted.key, &req.machine_id)
}

#[utoipa::path(
    post,
    path = "/deactivate",
    tag = "license",
    summary = "Release this machine's seat",
    request_body = DeactivateRequest,
    responses((status = 200, body = StatusResponse), (status = 400, body = tessera_core::ErrorBody), (status = 413, body = tessera_core::ErrorBody), (status = 415, body = tessera_core::ErrorBody), (status = 422, body = tessera_core::ErrorBody), (status = 429, body = tessera_core::ErrorBody), (status = 403, body = tessera_core::ErrorBody), (status = 404, body = tessera_core::ErrorBody)),
)]
async fn deactivate(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<DeactivateRequest>,
) -> ApiResult<Json<StatusResponse>> {
    req.validate()?;
    let claims = verify_within_grace(&state, &req.jwt)?;
    require_same_machine(&claims, &req.machine_id)?;
    state
        .store
        .deactivate(&claims.sub, &req.machine_id, state.clock.now())
        .await?;
    Ok(Json(StatusResponse::new("deactivated")))
}

/// The license JWT from `Authorization: Bearer`, verified (grace allowed: apps in grace still report).
pub struct LicenseBearer(pub Arc<LicenseClaims>);

impl FromRequestParts<AppState> for LicenseBearer {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token = bearer(parts).ok_or_else(|| {
            AppError::new(
                ErrorCode::InvalidToken,
                "Missing `Authorization: Bearer <license JWT>`",
            )
        })?;
        let claims = state.bearer_tokens.decode(token)?;
        check_grace(state, claims.exp)?;
        Ok(LicenseBearer(claims))
    }
}

fn require_product(claims: &LicenseClaims, product: &str) -> ApiResult<()> {
    if claims.product == product {
        Ok(())
    } else {
        Err(AppError::new(
            ErrorCode::ProductMismatch,
            "Token is for another product",
        ))
    }
}

#[utoipa::path(
    post,
    path = "/usage",
    tag = "license",
    summary = "Record a usage event",
    request_body = UsageRequest,
    responses((status = 200, body = StatusResponse), (status = 400, body = tessera_core::ErrorBody), (status = 413, body = tessera_core::ErrorBody), (status = 415, body = tessera_core::ErrorBody), (status = 422, body = tessera_core::ErrorBody), (status = 429, body = tessera_core::ErrorBody), (status = 403, body = tessera_core::ErrorBody)),
    security(("license_jwt" = [])),
)]
async fn usage(
    State(state): State<AppState>,
    LicenseBearer(claims): LicenseBearer,
    ApiJson(req): ApiJson<UsageRequest>,
) -> ApiResult<Json<StatusResponse>> {
    req.validate()?;
    require_product(&claims, &req.product)?;
    state
        .store
        .record_usage(&claims.sub, &claims.machine, &req, state.clock.now())
        .await?;
    Ok(Json(StatusResponse::new("recorded")))
}

#[utoipa::path(
    post,
    path = "/flag",
    tag = "license",
    summary = "Report a violation flag",
    request_body = FlagRequest,
    responses((status = 200, body = StatusResponse), (status = 400, body = tessera_core::ErrorBody), (status = 413, body = tessera_core::ErrorBody), (status = 415, body = tessera_core::ErrorBody), (status = 422, body = tessera_core::ErrorBody), (status = 429, body = tessera_core::ErrorBody), (status = 403, body = tessera_core::ErrorBody)),
    security(("license_jwt" = [])),
)]
async fn flag(
    State(state): State<AppState>,
    LicenseBearer(claims): LicenseBearer,
    ApiJson(req): ApiJson<FlagRequest>,
) -> ApiResult<Json<StatusResponse>> {
    req.validate()?;
    require_product(&claims, &req.product)?;
    state
        .store
        .record_flag(&claims.sub, &claims.machine, &req, state.clock.now())
        .await?;
    Ok(Json(StatusResponse::new("flagged")))
}
