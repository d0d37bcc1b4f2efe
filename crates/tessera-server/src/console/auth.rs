//! Sign-in with the admin token, and sign-out.
//!
//! The sign-in form is protected against login CSRF by a double-submit token: a short-lived
//! cookie and the same value in a hidden field.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::session::{
    LOGIN_COOKIE, Posted, SESSION_COOKIE, SESSION_TTL, Sessions, cookie, cross_site, is_https,
    peek, safe_next, same_secret, set_cookie,
};
use super::view::{self, Layout, render};
use crate::secret::random_token;
use crate::state::AppState;

/// How long the sign-in form stays valid.
const LOGIN_FORM_SECS: i64 = 30 * 60;

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    layout: Layout,
    form_token: String,
    next: String,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

/// Renders the sign-in form with a fresh form token (and its cookie).
fn login_page(
    headers: &HeaderMap,
    status: StatusCode,
    next: &str,
    error: Option<String>,
    notice: Option<String>,
) -> Response {
    let form_token = random_token(16);
    let page = LoginPage {
        layout: Layout::new("Sign in", "", None),
        form_token: form_token.clone(),
        next: if safe_next(next) {
            next.to_string()
        } else {
            String::new()
        },
        error,
        notice,
    };
    let mut response = render(status, &page);
    let c = set_cookie(
        LOGIN_COOKIE,
        &form_token,
        "/console/login",
        LOGIN_FORM_SECS,
        is_https(headers),
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

pub async fn login_form(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    query: Result<Query<LoginQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let next = q.next.unwrap_or_default();
    if peek(&headers, &sessions, state.clock.now()).await.is_some() {
        return view::redirect(if safe_next(&next) { &next } else { "/console" });
    }
    let notice = q.signed_out.map(|_| "You are signed out.".to_string());
    login_page(&headers, StatusCode::OK, &next, None, notice)
}

#[derive(Debug, Default, Deserialize)]
struct LoginForm {
    #[serde(default)]
    form_token: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

pub async fn login(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let form: LoginForm = match body
        .ok()
        .and_then(|b| serde_urlencoded::from_bytes(&b).ok())
    {
        Some(f) => f,
        None => {
            return login_page(
                &headers,
                StatusCode::BAD_REQUEST,
                "",
                Some("The sign-in form could not be read. Try again.".into()),
                None,
            );
        }
    };
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if cross_site(&headers) || !same_secret(&form.form_token, expected) {
        return login_page(
            &headers,
            StatusCode::FORBIDDEN,
            &form.next,
            Some("The sign-in form expired or did not come from this console. Try again.".into()),
            None,
        );
    }
    let presented = crate::secret::sha256(form.token.trim().as_bytes());
    if form.token.trim().is_empty() || !bool::from(presented.ct_eq(&state.admin_token_digest)) {
        tracing::warn!("console sign-in refused: wrong admin token");
        // Slows guessing down a little; the token itself is the real defence.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        return login_page(
            &headers,
            StatusCode::UNAUTHORIZED,
            &form.next,
            Some("That admin token is not right.".into()),
            None,
        );
    }
    let id = sessions.create(state.clock.now()).await;
    tracing::info!("console sign-in");
    let secure = is_https(&headers);
    let target = if safe_next(&form.next) {
        form.next.as_str()
    } else {
        "/console"
    };
    let mut response = view::redirect(target);
    for c in [
        set_cookie(
            SESSION_COOKIE,
            &id,
            "/console",
            SESSION_TTL.whole_seconds(),
            secure,
        ),
        set_cookie(LOGIN_COOKIE, "", "/console/login", 0, secure),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

#[derive(Debug, Deserialize)]
pub struct Empty {}

pub async fn logout(headers: HeaderMap, posted: Posted<Empty>) -> Response {
    posted.session.end().await;
    tracing::info!("console sign-out");
    let c = set_cookie(SESSION_COOKIE, "", "/console", 0, is_https(&headers));
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/console/login?signed_out=1".to_string()),
            (header::SET_COOKIE, c),
        ],
    )
        .into_response()
}
