//! The admin console over real HTTP: sign-in and its cookie, CSRF on every form, security
//! headers, escaping, and error pages for bad input.

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tessera_server::test_support::ADMIN_TOKEN;

use crate::helpers::{TestApp, spawn_app};

/// A browser, roughly: keeps the session cookie, does not follow redirects.
struct Browser<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
    cookie: Option<String>,
}

fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_string()
}

fn location(resp: &Response) -> String {
    resp.headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// The value of the first `name="NAME" value="…"` hidden field in a page.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_string()
}

fn form(fields: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(fields).unwrap()
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            app,
            http,
            cookie: None,
        }
    }

    async fn get(&self, path: &str) -> Response {
        let mut req = self.http.get(self.app.url(path));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        req.send().await.unwrap()
    }

    async fn post_with(&self, path: &str, body: String, extra: &[(&str, &str)]) -> Response {
        let mut req = self
            .http
            .post(self.app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        self.post_with(path, form(fields), &[]).await
    }

    /// Signs in; returns the session's `Set-Cookie` header.
    async fn sign_in_with(&mut self, extra: &[(&str, &str)]) -> String {
        let page = self
            .http
            .get(self.app.url("/console/login"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let login_cookie = cookie_pair(&set_cookies(page.headers())[0]);
        let html = page.text().await.unwrap();
        let token = hidden(&html, "form_token");
        let resp = self
            .http
            .post(self.app.url("/console/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", &login_cookie)
            .headers(
                extra
                    .iter()
                    .map(|(k, v)| {
                        (
                            reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                            v.parse().unwrap(),
                        )
                    })
                    .collect(),
            )
            .body(form(&[
                ("form_token", &token),
                ("token", ADMIN_TOKEN),
                ("next", ""),
            ]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&resp), "/console");
        let session = set_cookies(resp.headers())
            .into_iter()
            .find(|c| c.starts_with("tessera_console="))
            .expect("session cookie");
        self.cookie = Some(cookie_pair(&session));
        session
    }

    async fn sign_in(&mut self) -> String {
        self.sign_in_with(&[]).await
    }

    /// The session's CSRF token, read from a page's sign-out form.
    async fn csrf(&self) -> String {
        let html = self.get("/console").await.text().await.unwrap();
        hidden(&html, "csrf")
    }
}

fn assert_security_headers(resp: &Response) {
    let h = resp.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn console_pages_require_signing_in() {
    let app = spawn_app().await;
    let b = Browser::new(&app);
    let resp = b.get("/console").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/console/login");
    assert_security_headers(&resp);
    let resp = b.get("/console/keys?q=acme").await;
    assert_eq!(
        location(&resp),
        "/console/login?next=%2Fconsole%2Fkeys%3Fq%3Dacme"
    );
    // Forms are refused too (and never reach the store).
    let resp = b.post("/console/keys", &[("product", "peregrine")]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let keys: Vec<Value> = app.admin_get("/admin/keys").await.json().await.unwrap();
    assert!(keys.is_empty());
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie_that_is_not_the_token() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    let cookie = b.sign_in().await;
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/console"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert!(!cookie.contains(ADMIN_TOKEN));
    let value = cookie_pair(&cookie);
    assert_eq!(value.len(), "tessera_console=".len() + 64, "256-bit id");
    let resp = b.get("/console").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_security_headers(&resp);
    let html = resp.text().await.unwrap();
    assert!(html.contains("<h1>Overview</h1>"));
    assert!(!html.contains(ADMIN_TOKEN));
}

#[tokio::test]
async fn cookie_is_secure_behind_a_tls_proxy() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    let cookie = b.sign_in_with(&[("x-forwarded-proto", "https")]).await;
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn wrong_token_or_missing_form_token_is_refused() {
    let app = spawn_app().await;
    let b = Browser::new(&app);
    let page = b.get("/console/login").await;
    let login_cookie = cookie_pair(&set_cookies(page.headers())[0]);
    let token = hidden(&page.text().await.unwrap(), "form_token");
    let post = |fields: String, cookie: Option<String>| {
        let mut req = b
            .http
            .post(app.url("/console/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(fields);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send()
    };
    let wrong = post(
        form(&[("form_token", &token), ("token", "not-the-token")]),
        Some(login_cookie.clone()),
    )
    .await
    .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(
        set_cookies(wrong.headers())
            .iter()
            .all(|c| !c.starts_with("tessera_console="))
    );
    assert!(wrong.text().await.unwrap().contains("not right"));
    // The right token without the form's cookie (a cross-site login attempt).
    let forged = post(
        form(&[("form_token", &token), ("token", ADMIN_TOKEN)]),
        None,
    )
    .await
    .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    // Garbage body: a page, not a 500.
    let garbage = post("%%%&&==".into(), Some(login_cookie)).await.unwrap();
    assert_eq!(garbage.status(), StatusCode::FORBIDDEN);
    assert!(
        garbage
            .text()
            .await
            .unwrap()
            .contains("<h1 id=\"signin-heading\">")
    );
}

#[tokio::test]
async fn every_form_needs_the_session_csrf_token() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    b.sign_in().await;
    let fields = [("product", "peregrine"), ("tier", "paid"), ("seats", "1")];
    let missing = b.post("/console/keys", &fields).await;
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    assert_security_headers(&missing);
    let mut wrong = fields.to_vec();
    wrong.push(("csrf", "0000"));
    assert_eq!(
        b.post("/console/keys", &wrong).await.status(),
        StatusCode::FORBIDDEN
    );
    // The right token, but posted from another site.
    let csrf = b.csrf().await;
    let mut right = fields.to_vec();
    right.push(("csrf", &csrf));
    let cross = b
        .post_with(
            "/console/keys",
            form(&right),
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    let keys: Vec<Value> = app.admin_get("/admin/keys").await.json().await.unwrap();
    assert!(keys.is_empty(), "no refused form reached the store");

    let ok = b.post("/console/keys", &right).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let keys: Vec<Value> = app.admin_get("/admin/keys").await.json().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["source"], "console");
    // The new key is shown once, on the page the form led to.
    let key_page = location(&ok);
    assert_eq!(
        key_page,
        format!("/console/keys/{}", keys[0]["id"].as_str().unwrap())
    );
    let display = keys[0]["key_display"].as_str().unwrap();
    let first = b.get(&key_page).await.text().await.unwrap();
    assert!(first.contains(&format!("value=\"{display}\"")));
    assert!(first.contains("data-copy=\"secret-value\""));
    let second = b.get(&key_page).await.text().await.unwrap();
    assert!(!second.contains("data-copy=\"secret-value\""));
}

#[tokio::test]
async fn sign_out_ends_the_session_on_the_server() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    b.sign_in().await;
    let csrf = b.csrf().await;
    let resp = b.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(
        set_cookies(resp.headers())
            .iter()
            .any(|c| c.starts_with("tessera_console=;") && c.contains("Max-Age=0"))
    );
    // The old cookie, replayed, is worthless.
    let resp = b.get("/console").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/console/login");
}

#[tokio::test]
async fn sessions_expire_after_twelve_hours() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    b.sign_in().await;
    app.server.clock.advance(11 * 3600);
    assert_eq!(b.get("/console").await.status(), StatusCode::OK);
    app.server.clock.advance(3600 + 1);
    assert_eq!(b.get("/console").await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn bad_input_renders_pages_not_server_errors() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    b.sign_in().await;
    let csrf = b.csrf().await;
    for (path, status) in [
        ("/console/keys/no-such-key", StatusCode::NOT_FOUND),
        ("/console/keys/no-such-key/revoke", StatusCode::NOT_FOUND),
        ("/console/api-keys/nope/revoke", StatusCode::NOT_FOUND),
        ("/console/flags?status=bogus", StatusCode::BAD_REQUEST),
        ("/console/keys?page=abc", StatusCode::OK),
        ("/console/keys?page=-1&q=%FF", StatusCode::OK),
        (
            "/console/audit?page=99999999999999999999999",
            StatusCode::OK,
        ),
        ("/console/no-such-page", StatusCode::NOT_FOUND),
        ("/console/assets/nope.js", StatusCode::NOT_FOUND),
    ] {
        let resp = b.get(path).await;
        assert_eq!(resp.status(), status, "{path}");
        assert_security_headers(&resp);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/html"), "{path}: {ct}");
    }
    let long = format!("/console/keys?q={}", "a".repeat(300));
    assert_eq!(b.get(&long).await.status(), StatusCode::BAD_REQUEST);

    // A create form with a wrong value comes back with the message and what was typed.
    let resp = b
        .post(
            "/console/keys",
            &[
                ("csrf", &csrf),
                ("product", "peregrine"),
                ("tier", "paid"),
                ("seats", "many"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = resp.text().await.unwrap();
    assert!(html.contains("Seats: must be a whole number"));
    assert!(html.contains("value=\"many\""));
    assert!(html.contains("aria-invalid=\"true\""));
    let resp = b
        .post(
            "/console/api-keys",
            &[
                ("csrf", &csrf),
                ("product", "Not Valid"),
                ("tier", "pro"),
                ("name", "x"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Wrong method: a page too.
    let resp = b.post("/console/audit", &[("csrf", &csrf)]).await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    // Releasing a seat nobody holds: a message, not an error.
    let key = app.active_key().await;
    let keys: Vec<Value> = app.admin_get("/admin/keys").await.json().await.unwrap();
    let id = keys[0]["id"].as_str().unwrap();
    let resp = b
        .post(
            &format!("/console/keys/{id}/release"),
            &[("csrf", &csrf), ("machine_id", "ghost")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let html = b.get(&location(&resp)).await.text().await.unwrap();
    assert!(html.contains("holds no seat"), "{key}");
}

#[tokio::test]
async fn output_is_escaped() {
    let app = spawn_app().await;
    app.create_key(json!({"product": "peregrine", "tier": "paid",
        "customer_email": "<script>alert(1)</script>@example.com", "notes": "\"><img src=x>"}))
        .await;
    let mut b = Browser::new(&app);
    b.sign_in().await;
    let html = b.get("/console/keys?q=script").await.text().await.unwrap();
    assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
    assert!(!html.contains("<script>alert"));
    let keys: Vec<Value> = app.admin_get("/admin/keys").await.json().await.unwrap();
    let id = keys[0]["id"].as_str().unwrap();
    let html = b
        .get(&format!("/console/keys/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains("<img src=x>") && !html.contains("<script>alert"));
}

#[tokio::test]
async fn a_seat_shows_up_is_released_and_the_key_is_revoked() {
    let app = spawn_app().await;
    let key = app.active_key().await;
    let jwt = app.activate_jwt(&key, "machine-one").await;
    let keys: Vec<Value> = app.admin_get("/admin/keys").await.json().await.unwrap();
    let id = keys[0]["id"].as_str().unwrap().to_string();
    let mut b = Browser::new(&app);
    b.sign_in().await;
    let csrf = b.csrf().await;

    let search = b.get(&format!("/console/keys?q={}", &key[..9])).await;
    assert!(search.text().await.unwrap().contains(&key));
    let page = b
        .get(&format!("/console/keys/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("machine-one"));
    assert!(page.contains("1 of 2 in use"));

    // A flag raised by the machine, reviewed in the console.
    let resp = app
        .post_bearer(
            "/v1/flag",
            &jwt,
            json!({"flag_type": "clock_skew", "product": "peregrine", "details": {"skew": 9000}}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let flags = b.get("/console/flags").await.text().await.unwrap();
    assert!(flags.contains("clock_skew"));
    let flag: Vec<Value> = app.admin_get("/admin/flags").await.json().await.unwrap();
    let flag_id = flag[0]["id"].as_str().unwrap();
    let resp = b
        .post(
            &format!("/console/flags/{flag_id}"),
            &[
                ("csrf", &csrf),
                ("status", "actioned"),
                ("action_taken", "warned"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let actioned: Vec<Value> = app
        .admin_get("/admin/flags?status=actioned")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(actioned[0]["action_taken"], "warned");

    let resp = b
        .post(
            &format!("/console/keys/{id}/release"),
            &[("csrf", &csrf), ("machine_id", "machine-one")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let page = b
        .get(&format!("/console/keys/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Seat of machine machine-one released."));
    assert!(page.contains("0 of 2 in use"));

    let confirm = b.get(&format!("/console/keys/{id}/revoke")).await;
    assert_eq!(confirm.status(), StatusCode::OK);
    assert!(
        confirm
            .text()
            .await
            .unwrap()
            .contains("This cannot be undone")
    );
    let resp = b
        .post(&format!("/console/keys/{id}/revoke"), &[("csrf", &csrf)])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let key_json: Value = app
        .admin_get(&format!("/admin/keys/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(key_json["revoked"], true);
    let activate = app.activate(&key, "machine-two").await;
    assert_eq!(activate.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn api_key_secret_is_shown_once_and_tier_changes() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    b.sign_in().await;
    let csrf = b.csrf().await;
    let resp = b
        .post(
            "/console/api-keys",
            &[
                ("csrf", &csrf),
                ("product", "falcon"),
                ("tier", "pro"),
                ("name", "Acme production"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let first = b.get("/console/api-keys").await.text().await.unwrap();
    let secret = hidden(
        &first.replace("readonly value=", "name=\"secret\" value="),
        "secret",
    );
    assert!(secret.starts_with("sk-") && secret.len() == 67, "{secret}");
    let second = b.get("/console/api-keys").await.text().await.unwrap();
    assert!(!second.contains(&secret));
    assert!(second.contains("Acme production"));

    // The secret works.
    let resp = app
        .post_bearer(
            "/api/v1/licenses/token",
            &secret,
            json!({"instance_id": "node-1"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let instances = b.get("/console/instances").await.text().await.unwrap();
    assert!(instances.contains("node-1"));

    let listed: Vec<Value> = app.admin_get("/admin/api-keys").await.json().await.unwrap();
    let id = listed[0]["id"].as_str().unwrap();
    let resp = b
        .post(
            &format!("/console/api-keys/{id}/tier"),
            &[("csrf", &csrf), ("tier", "enterprise")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let listed: Vec<Value> = app.admin_get("/admin/api-keys").await.json().await.unwrap();
    assert_eq!(listed[0]["tier"], "enterprise");
    let resp = b
        .post(
            &format!("/console/api-keys/{id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let listed: Vec<Value> = app.admin_get("/admin/api-keys").await.json().await.unwrap();
    assert_eq!(listed[0]["revoked"], true);
}

#[tokio::test]
async fn assets_are_embedded_and_overview_draws_the_chart() {
    let app = spawn_app().await;
    let key = app.active_key().await;
    let jwt = app.activate_jwt(&key, "m1").await;
    let resp = app
        .post("/v1/refresh", json!({"jwt": jwt, "machine_id": "m1"}))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut b = Browser::new(&app);
    for (name, ct) in [
        ("console.css", "text/css"),
        ("console.js", "text/javascript"),
        ("logo.svg", "image/svg+xml"),
    ] {
        // Assets need no session (the sign-in page uses them).
        let resp = b.get(&format!("/console/assets/{name}")).await;
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(ct)
        );
        assert_security_headers(&resp);
    }
    b.sign_in().await;
    let html = b.get("/console").await.text().await.unwrap();
    assert!(html.contains("<svg class=\"chart\""));
    assert!(html.contains("1 activation and 1 token fetch in the last 14 days"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external URL"
    );
}
