//! What every console page shares: the layout (navigation, flash message, sign-out form),
//! rendering a template into a response, error pages, redirects and small formatting helpers.

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use tessera_core::ErrorCode;

use super::session::{Flash, Session};
use crate::error::AppError;

/// Rows per page on every console list.
pub const PAGE_SIZE: i64 = 25;

pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// The frame around every page.
pub struct Layout {
    pub title: String,
    /// Empty when nobody is signed in (sign-in page, some error pages): no navigation then.
    pub csrf: String,
    pub nav: Vec<NavItem>,
    pub flash: Option<Flash>,
}

const NAV: &[(&str, &str, &str)] = &[
    ("overview", "/console", "Overview"),
    ("keys", "/console/keys", "License keys"),
    ("api-keys", "/console/api-keys", "API keys"),
    ("instances", "/console/instances", "Instances"),
    ("flags", "/console/flags", "Flags"),
    ("audit", "/console/audit", "Audit log"),
];

impl Layout {
    pub fn new(title: impl Into<String>, active: &str, csrf: Option<&str>) -> Self {
        let csrf = csrf.unwrap_or("").to_string();
        let nav = if csrf.is_empty() {
            Vec::new()
        } else {
            NAV.iter()
                .map(|(id, href, label)| NavItem {
                    href,
                    label,
                    current: *id == active,
                })
                .collect()
        };
        Self {
            title: title.into(),
            csrf,
            nav,
            flash: None,
        }
    }

    /// The layout of a signed-in page, with the pending flash message (taken once).
    pub async fn signed_in(title: impl Into<String>, active: &str, session: &Session) -> Self {
        let mut layout = Self::new(title, active, Some(&session.csrf));
        layout.flash = session.take_flash().await;
        layout
    }

    pub fn signed_in_now(&self) -> bool {
        !self.csrf.is_empty()
    }
}

/// Renders `page` with `status`. A template error (a bug) is logged and answered with a plain
/// page, never with the half-rendered output.
pub fn render<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => internal_error(e),
    }
}

pub fn internal_error(cause: impl std::fmt::Display) -> Response {
    tracing::error!(error = %cause, "console page failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Html(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error · \
             Tessera console</title></head><body><main><h1>Something went wrong</h1><p>The \
             server could not show this page. Details are in the server log.</p><p><a \
             href=\"/console\">Back to the console</a></p></main></body></html>",
        ),
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "console/error.html")]
pub struct ErrorPage {
    pub layout: Layout,
    pub heading: String,
    pub message: String,
}

/// A page that says what went wrong, with navigation when the user is signed in.
pub fn error_page(
    csrf: Option<&str>,
    status: StatusCode,
    heading: &str,
    message: &str,
) -> Response {
    let page = ErrorPage {
        layout: Layout::new(heading, "", csrf),
        heading: heading.to_string(),
        message: message.to_string(),
    };
    render(status, &page)
}

/// A store or validation error as a page: the same status the API would answer, and its
/// message (internal errors keep their generic message; the cause is in the log).
pub fn app_error_page(csrf: Option<&str>, e: &AppError) -> Response {
    let status =
        StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let heading = match e.code {
        ErrorCode::NotFound => "Not found",
        ErrorCode::ValidationError | ErrorCode::BadRequest => "Not accepted",
        ErrorCode::ServiceUnavailable => "Busy",
        ErrorCode::InternalError => "Something went wrong",
        _ => "Not possible",
    };
    error_page(csrf, status, heading, &e.message)
}

pub fn not_found_page(csrf: Option<&str>, what: &str) -> Response {
    error_page(
        csrf,
        StatusCode::NOT_FOUND,
        "Not found",
        &format!("{what} does not exist."),
    )
}

/// `303 See Other` to `to` (after a form post, and for sign-in).
pub fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

/// Percent-encodes a query-string value (everything but RFC 3986 unreserved characters).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A stored RFC 3339 timestamp as `2026-01-02 03:04 UTC`; other text as it is.
pub fn when(ts: &str) -> String {
    match tessera_core::timefmt::parse(ts) {
        Some(t) => {
            let t = t.to_offset(time::UtcOffset::UTC);
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        }
        None => ts.to_string(),
    }
}

pub fn when_opt(ts: Option<&str>) -> String {
    ts.map(when).unwrap_or_else(|| "—".to_string())
}

pub fn or_dash(s: Option<&str>) -> String {
    match s {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => "—".to_string(),
    }
}

/// JSON details as compact text, at most `max` characters.
pub fn json_brief(v: Option<&serde_json::Value>, max: usize) -> String {
    match v {
        None | Some(serde_json::Value::Null) => "—".to_string(),
        Some(v) => {
            let s = v.to_string();
            if s.chars().count() > max {
                let cut: String = s.chars().take(max).collect();
                format!("{cut}…")
            } else {
                s
            }
        }
    }
}

/// The `?page=` number: 1-based, anything unparsable or out of range is page 1.
pub fn page_number(raw: Option<&str>) -> i64 {
    raw.and_then(|p| p.trim().parse::<i64>().ok())
        .filter(|p| (1..=1_000_000).contains(p))
        .unwrap_or(1)
}

/// Previous/next links of a list. `base` is the path and query without `page`.
pub struct Pager {
    pub page: i64,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    /// `has_more`: the store returned a row past this page.
    pub fn new(base: &str, page: i64, has_more: bool) -> Self {
        let sep = if base.contains('?') { '&' } else { '?' };
        let link = |p: i64| {
            if p == 1 {
                base.to_string()
            } else {
                format!("{base}{sep}page={p}")
            }
        };
        Self {
            page,
            prev: (page > 1).then(|| link(page - 1)),
            next: has_more.then(|| link(page + 1)),
        }
    }

    pub fn is_needed(&self) -> bool {
        self.prev.is_some() || self.next.is_some()
    }
}

/// `base?k1=v1&k2=v2` with empty values left out.
pub fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    let q: Vec<String> = params
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", url_encode(v)))
        .collect();
    if q.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", q.join("&"))
    }
}

/// Trims a form field; empty means absent.
pub fn field(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(url_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(
            with_query("/console/keys", &[("q", "x y"), ("status", "")]),
            "/console/keys?q=x%20y"
        );
    }

    #[test]
    fn pager_links_keep_the_filter() {
        let p = Pager::new("/console/keys?q=a", 2, true);
        assert_eq!(p.prev.as_deref(), Some("/console/keys?q=a"));
        assert_eq!(p.next.as_deref(), Some("/console/keys?q=a&page=3"));
        let p = Pager::new("/console/audit", 1, false);
        assert!(!p.is_needed());
    }

    #[test]
    fn bad_page_numbers_mean_page_one() {
        assert_eq!(page_number(Some("abc")), 1);
        assert_eq!(page_number(Some("-3")), 1);
        assert_eq!(page_number(Some("99999999999999999999")), 1);
        assert_eq!(page_number(Some("4")), 4);
        assert_eq!(page_number(None), 1);
    }

    #[test]
    fn timestamps_are_shown_short() {
        assert_eq!(when("2026-01-02T03:04:05.000000Z"), "2026-01-02 03:04 UTC");
        assert_eq!(when("2027-01-01"), "2027-01-01");
    }
}
