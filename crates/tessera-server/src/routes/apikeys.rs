//! API-key mode: `POST /api/v1/licenses/token` (an instance exchanges its `sk-…` key for a
//! token), the admin routes that manage keys and list instances, and the public JWKS.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use tessera_core::apikey::{
    API_KEY_PREFIX, ApiKeyClaims, ApiKeyCreated, ApiKeyRecord, CreateApiKeyRequest, InstanceRecord,
    TokenRequest, TokenResponse, UpdateApiKeyRequest, looks_like_api_key,
};
use tessera_core::timefmt;
use tessera_core::validate::FieldError;
use tessera_core::wire::StatusResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiResult, AppError};
use crate::extract::{Admin, ApiJson, ApiQuery, bearer_in};
use crate::keyring::{DEFAULT_ISSUER, DEFAULT_TOKEN_LIFETIME_SECS};
use crate::routes::ListQuery;
use crate::rules;
use crate::secret::{random_token, sha256_hex};
use crate::state::AppState;

pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(token))
        .routes(routes!(jwks))
}

pub fn admin_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(update_api_key, revoke_api_key))
        .routes(routes!(list_instances))
}

#[utoipa::path(
    post,
    path = "/api/v1/licenses/token",
    tag = "api-keys",
    summary = "Exchange an API key for a license token",
    request_body = TokenRequest,
    responses((status = 200, body = TokenResponse), (status = 400, body = tessera_core::ErrorBody), (status = 401, body = tessera_core::ErrorBody), (status = 413, body = tessera_core::ErrorBody), (status = 415, body = tessera_core::ErrorBody), (status = 422, body = tessera_core::ErrorBody), (status = 429, body = tessera_core::ErrorBody)),
    security(("api_key" = [])),
)]
async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<TokenRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let result = issue_token(&state, &headers, &req).await;
    crate::metrics::result("tessera_token_fetches_total", &result);
    result.map(Json)
}

async fn issue_token(
    state: &AppState,
    headers: &HeaderMap,
    req: &TokenRequest,
) -> ApiResult<TokenResponse> {
    let api_key = bearer_in(headers)
        .filter(|k| looks_like_api_key(k))
        .ok_or_else(rules::unknown_api_key)?;
    req.validate()?;
    let now = state.clock.now();
    let key = state
        .store
        .fetch_for_token(
            &sha256_hex(api_key.as_bytes()),
            &req.instance_id,
            req.version.as_deref(),
            now,
        )
        .await?;

    let product = state.keyring.product(&key.product);
    let (signer, issuer, lifetime) = match product {
        Some(p) => (
            &p.signer,
            p.config.issuer.as_str(),
            p.config.token_lifetime_secs,
        ),
        None => (
            state.keyring.license().as_ref(),
            DEFAULT_ISSUER,
            DEFAULT_TOKEN_LIFETIME_SECS,
        ),
    };
    let tier = product.and_then(|p| p.config.tier(&key.tier));
    let iat = now.unix_timestamp();
    let key_end = key
        .expires_at
        .as_deref()
        .and_then(timefmt::parse_until)
        .map(|t| t.unix_timestamp());
    let exp = key_end.map_or(iat + lifetime, |end| end.min(iat + lifetime));
    let claims = ApiKeyClaims {
        iss: issuer.to_string(),
        sub: key.id.clone(),
        tier: key.tier.clone(),
        features: tier.map(|t| t.features.clone()).unwrap_or_default(),
        quotas: tier.map(|t| t.quotas.clone()).unwrap_or_default(),
        iat,
        exp,
        jti: uuid::Uuid::new_v4().to_string(),
        org_name: key.org_name.clone(),
        trial: key.trial,
    };
    let jwt = signer.sign(&claims).map_err(AppError::internal)?;
    Ok(TokenResponse {
        jwt,
        expires_in: exp - iat,
        message: state.policy.server_notice.clone(),
    })
}

#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "api-keys",
    summary = "Public signing keys (JWKS)",
    responses((status = 200, body = serde_json::Value)),
)]
async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.keyring.jwks().clone())
}

/// With a catalog entry for the product, the tier must be one of its tiers.
fn check_tier(state: &AppState, product: &str, tier: &str) -> ApiResult<()> {
    match state.keyring.product(product) {
        Some(p) if p.config.tier(tier).is_none() => {
            let known: Vec<&str> = p.config.tiers.iter().map(|t| t.name.as_str()).collect();
            Err(FieldError::new("tier", format!("must be one of {}", known.join(", "))).into())
        }
        _ => Ok(()),
    }
}

#[utoipa::path(
    post,
    path = "/api-keys",
    tag = "api-keys",
    summary = "Create an API key (secret shown once)",
    request_body = CreateApiKeyRequest,
    responses((status = 200, body = ApiKeyCreated), (status = 400, body = tessera_core::ErrorBody), (status = 401, body = tessera_core::ErrorBody), (status = 422, body = tessera_core::ErrorBody)),
    security(("admin_token" = [])),
)]
pub(crate) async fn create_api_key(
    _: Admin,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateApiKeyRequest>,
) -> ApiResult<Json<ApiKeyCreated>> {
    req.validate()?;
    check_tier(&state, &req.product, &req.tier)?;
    let secret = format!("{API_KEY_PREFIX}{}", random_token(32));
    let prefix = format!("{}…", &secret[..API_KEY_PREFIX.len() + 6]);
    let record = state
        .store
        .create_api_key(
            &req,
            &sha256_hex(secret.as_bytes()),
            &prefix,
            state.clock.now(),
        )
        .await?;
    Ok(Json(ApiKeyCreated {
        record,
        api_key: secret,
    }))
}

#[utoipa::path(
    get,
    path = "/api-keys",
    tag = "api-keys",
    summary = "List API keys (never the secret)",
    params(crate::routes::ListQuery),
    responses((status = 200, body = Vec<ApiKeyRecord>), (status = 400, body = tessera_core::ErrorBody), (status = 401, body = tessera_core::ErrorBody)),
    security(("admin_token" = [])),
)]
async fn list_api_keys(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<ApiKeyRecord>>> {
    Ok(Json(state.store.list_api_keys(q.page()).await?))
}

#[utoipa::path(
    patch,
    path = "/api-keys/{id}",
    tag = "api-keys",
    summary = "Change an API key (e.g. its tier)",
    request_body = UpdateApiKeyRequest,
    params(("id" = String, Path)),
    responses((status = 200, body = ApiKeyRecord), (status = 400, body = tessera_core::ErrorBody), (status = 401, body = tessera_core::ErrorBody), (status = 404, body = tessera_core::ErrorBody), (status = 422, body = tessera_core::ErrorBody)),
    security(("admin_token" = [])),
)]
pub(crate) async fn update_api_key(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateApiKeyRequest>,
) -> ApiResult<Json<ApiKeyRecord>> {
    req.validate()?;
    if let Some(tier) = &req.tier {
        let current = state
            .store
            .get_api_key(&id)
            .await?
            .ok_or_else(|| AppError::not_found("API key"))?;
        check_tier(&state, &current.product, tier)?;
    }
    Ok(Json(
        state
            .store
            .update_api_key(&id, &req, state.clock.now())
            .await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/api-keys/{id}",
    tag = "api-keys",
    summary = "Revoke an API key",
    params(("id" = String, Path)),
    responses((status = 200, body = StatusResponse), (status = 401, body = tessera_core::ErrorBody), (status = 404, body = tessera_core::ErrorBody)),
    security(("admin_token" = [])),
)]
async fn revoke_api_key(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<StatusResponse>> {
    state.store.revoke_api_key(&id, state.clock.now()).await?;
    Ok(Json(StatusResponse::new("revoked")))
}

#[utoipa::path(
    get,
    path = "/instances",
    tag = "api-keys",
    summary = "List instances that fetched tokens",
    params(crate::routes::ListQuery),
    responses((status = 200, body = Vec<InstanceRecord>), (status = 400, body = tessera_core::ErrorBody), (status = 401, body = tessera_core::ErrorBody)),
    security(("admin_token" = [])),
)]
async fn list_instances(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<InstanceRecord>>> {
    Ok(Json(
        state
            .store
            .list_instances(q.api_key_id.as_deref(), q.page())
            .await?,
    ))
}
