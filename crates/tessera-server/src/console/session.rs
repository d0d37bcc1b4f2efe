//! Console sessions: kept in memory on the server, named by a random 256-bit id in an
//! `HttpOnly`, `SameSite=Strict` cookie (plus `Secure` behind TLS). The admin token is checked
//! once at sign-in and never stored in the cookie. Each session has its own CSRF token, which
//! every form posts back in a hidden field.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};
use tokio::sync::Mutex;

use super::view;
use crate::secret::{Secret, random_token, sha256_hex};
use crate::state::AppState;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "tessera_console";
/// Name of the short-lived cookie that protects the sign-in form (double submit).
pub const LOGIN_COOKIE: &str = "tessera_console_login";
/// Sessions end this long after sign-in, whatever the activity.
pub const SESSION_TTL: Duration = Duration::hours(12);
/// Upper bound on live sessions; the oldest is dropped past it.
const MAX_SESSIONS: usize = 1_000;

/// A one-time message shown on the next page (after a redirect). It may carry a secret that
/// is shown this once (a new API key), which is then gone from the server's memory.
#[derive(Debug, Clone)]
pub struct Flash {
    /// `ok` or `error`: picks the style.
    pub kind: &'static str,
    pub text: String,
    /// Label of the secret's field, and the secret.
    pub secret: Option<(String, Secret)>,
}

impl Flash {
    pub fn ok(text: impl Into<String>) -> Self {
        Self {
            kind: "ok",
            text: text.into(),
            secret: None,
        }
    }
    pub fn error(text: impl Into<String>) -> Self {
        Self {
            kind: "error",
            text: text.into(),
            secret: None,
        }
    }
    pub fn with_secret(mut self, label: impl Into<String>, secret: String) -> Self {
        self.secret = Some((label.into(), Secret::new(secret)));
        self
    }
}

struct Entry {
    csrf: String,
    expires: OffsetDateTime,
    flash: Option<Flash>,
}

/// The server-side session table. Keys are SHA-256 digests of the cookie value, so the table
/// itself holds nothing a browser could present.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Entry>>,
}

impl Sessions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a session; returns the cookie value. Sweeps expired sessions first.
    pub async fn create(&self, now: OffsetDateTime) -> String {
        let id = random_token(32);
        let mut map = self.map.lock().await;
        map.retain(|_, e| e.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, e)| e.expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            sha256_hex(id.as_bytes()),
            Entry {
                csrf: random_token(32),
                expires: now + SESSION_TTL,
                flash: None,
            },
        );
        id
    }

    /// The CSRF token of a live session; an expired one is removed.
    async fn lookup(&self, key: &str, now: OffsetDateTime) -> Option<String> {
        let mut map = self.map.lock().await;
        match map.get(key) {
            Some(e) if e.expires > now => Some(e.csrf.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    async fn remove(&self, key: &str) {
        self.map.lock().await.remove(key);
    }

    async fn set_flash(&self, key: &str, flash: Flash) {
        if let Some(e) = self.map.lock().await.get_mut(key) {
            e.flash = Some(flash);
        }
    }

    async fn take_flash(&self, key: &str) -> Option<Flash> {
        self.map
            .lock()
            .await
            .get_mut(key)
            .and_then(|e| e.flash.take())
    }

    pub async fn len(&self) -> usize {
        self.map.lock().await.len()
    }

    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }
}

/// A signed-in console user. Extracting it from a request without a live session redirects to
/// the sign-in page.
pub struct Session {
    key: String,
    pub csrf: String,
    sessions: Arc<Sessions>,
}

impl Session {
    pub async fn flash(&self, flash: Flash) {
        self.sessions.set_flash(&self.key, flash).await;
    }
    pub async fn take_flash(&self) -> Option<Flash> {
        self.sessions.take_flash(&self.key).await
    }
    pub async fn end(self) {
        self.sessions.remove(&self.key).await;
    }
}

/// The CSRF token of the request's session, if it has a live one (for pages that show the
/// navigation when signed in but do not require it, such as "not found").
pub async fn peek(headers: &HeaderMap, sessions: &Sessions, now: OffsetDateTime) -> Option<String> {
    let id = cookie(headers, SESSION_COOKIE)?;
    sessions.lookup(&sha256_hex(id.as_bytes()), now).await
}

pub fn sessions_of(parts: &Parts) -> Option<Arc<Sessions>> {
    parts.extensions.get::<Arc<Sessions>>().cloned()
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(sessions) = sessions_of(parts) else {
            return Err(view::internal_error("console session table missing"));
        };
        let now = state.clock.now();
        if let Some(id) = cookie(&parts.headers, SESSION_COOKIE) {
            let key = sha256_hex(id.as_bytes());
            if let Some(csrf) = sessions.lookup(&key, now).await {
                return Ok(Session {
                    key,
                    csrf,
                    sessions,
                });
            }
        }
        // Come back to the page asked for after signing in (GET only: a form post is not
        // something to replay).
        // (The router is nested: the original URI still has the `/console` prefix.)
        let next = (parts.method == Method::GET)
            .then(|| {
                parts
                    .extensions
                    .get::<OriginalUri>()
                    .and_then(|u| u.0.path_and_query())
                    .map(|p| p.as_str().to_string())
            })
            .flatten()
            .filter(|p| safe_next(p));
        let target = match next {
            Some(n) if n != "/console" => format!("/console/login?next={}", view::url_encode(&n)),
            _ => "/console/login".to_string(),
        };
        Err(view::redirect(&target))
    }
}

/// A posted form from a signed-in user whose CSRF token matched. `T` is parsed from the
/// `application/x-www-form-urlencoded` body; any failure renders an error page.
pub struct Posted<T> {
    pub session: Session,
    pub form: T,
}

impl<T> FromRequest<AppState> for Posted<T>
where
    T: DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        if cross_site(&parts.headers) {
            return Err(csrf_failed(&session));
        }
        let req = Request::from_parts(parts, body);
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            view::error_page(
                Some(&session.csrf),
                e.status(),
                "Form not accepted",
                "The form could not be read. Go back and try again.",
            )
        })?;
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).map_err(|_| {
            view::error_page(
                Some(&session.csrf),
                StatusCode::BAD_REQUEST,
                "Form not accepted",
                "The form could not be read. Go back and try again.",
            )
        })?;
        let presented = fields
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        if !same_secret(presented, &session.csrf) {
            return Err(csrf_failed(&session));
        }
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|e| {
            view::error_page(
                Some(&session.csrf),
                StatusCode::BAD_REQUEST,
                "Form not accepted",
                &format!("The form is missing a field or has a wrong one ({e})."),
            )
        })?;
        Ok(Posted { session, form })
    }
}

fn csrf_failed(session: &Session) -> Response {
    view::error_page(
        Some(&session.csrf),
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form did not come from this console session (its security token does not match). \
         Go back, reload the page and try again.",
    )
}

/// Constant-time comparison of two secrets of any length (compared as digests).
pub fn same_secret(a: &str, b: &str) -> bool {
    let (da, db) = (
        crate::secret::sha256(a.as_bytes()),
        crate::secret::sha256(b.as_bytes()),
    );
    bool::from(da.ct_eq(&db)) && !b.is_empty()
}

/// Browsers say where a request came from; refuse forms posted from another site outright
/// (defence in depth next to `SameSite=Strict` and the CSRF token).
pub fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// Was the request made over TLS, as the reverse proxy in front reports it?
pub fn is_https(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|first| {
            first.split(';').any(|kv| {
                kv.trim().split_once('=').is_some_and(|(k, v)| {
                    k.eq_ignore_ascii_case("proto") && v.trim_matches('"') == "https"
                })
            })
        });
    forwarded_proto || forwarded
}

/// `Set-Cookie` value. `max_age` of zero deletes the cookie.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: i64, secure: bool) -> String {
    let mut c =
        format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    c
}

/// Only paths inside the console are followed after sign-in (no open redirect).
pub fn safe_next(next: &str) -> bool {
    (next == "/console" || next.starts_with("/console/") || next.starts_with("/console?"))
        && !next.contains("//")
        && !next.contains('\\')
        && !next.starts_with("/console/login")
        && !next.starts_with("/console/logout")
        && next.len() <= 512
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; tessera_console=abc; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "tessera"), None);
    }

    #[test]
    fn tls_is_detected_from_proxy_headers() {
        let mut h = HeaderMap::new();
        assert!(!is_https(&h));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(is_https(&h));
        let mut h = HeaderMap::new();
        h.insert(
            header::FORWARDED,
            HeaderValue::from_static("for=1.2.3.4;proto=https"),
        );
        assert!(is_https(&h));
    }

    #[test]
    fn only_console_paths_are_followed_after_sign_in() {
        assert!(safe_next("/console/keys?q=a"));
        assert!(safe_next("/console"));
        assert!(!safe_next("//evil.example/console"));
        assert!(!safe_next("https://evil.example"));
        assert!(!safe_next("/console//evil"));
        assert!(!safe_next("/consolex"));
        assert!(!safe_next("/console/logout"));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("ab", "abc"));
        assert!(!same_secret("", ""));
    }

    #[tokio::test]
    async fn sessions_expire_and_are_swept() {
        let sessions = Sessions::new();
        let t0 = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let id = sessions.create(t0).await;
        let key = sha256_hex(id.as_bytes());
        assert!(
            sessions
                .lookup(&key, t0 + Duration::hours(11))
                .await
                .is_some()
        );
        assert!(sessions.lookup(&key, t0 + SESSION_TTL).await.is_none());
        assert!(sessions.is_empty().await);
        sessions.create(t0).await;
        sessions.create(t0 + Duration::hours(13)).await;
        assert_eq!(sessions.len().await, 1);
    }
}
