use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tessera_core::wire::KeyResponse;
use tessera_core::{ErrorBody, ErrorCode, LicenseClaims, Signer, Verifier};
use tessera_server::test_support::{TestOptions, TestServer};

pub struct TestApp {
    pub server: TestServer,
    pub http: reqwest::Client,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(TestOptions::default()).await
}

pub async fn spawn_app_with(options: TestOptions) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt().with_env_filter("info").try_init();
    }
    let server = TestServer::spawn_with(options)
        .await
        .expect("server starts");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    TestApp { server, http }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_bearer(&self, path: &str, token: &str, body: Value) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn admin_get(&self, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(&self.server.admin_token)
            .send()
            .await
            .expect("request")
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> Response {
        self.post_bearer(path, &self.server.admin_token.clone(), body)
            .await
    }

    pub async fn create_key(&self, body: Value) -> KeyResponse {
        let resp = self.admin_post("/admin/keys", body).await;
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.expect("key json")
    }

    /// The seed's `active_key` fixture: a paid peregrine key with 2 seats.
    pub async fn active_key(&self) -> String {
        self.create_key(json!({"product": "peregrine", "tier": "paid", "seats": 2,
            "customer_email": "test@example.com"}))
            .await
            .key_display
    }

    pub async fn activate(&self, key: &str, machine: &str) -> Response {
        self.post(
            "/v1/activate",
            json!({"key": key, "machine_id": machine, "product": "peregrine"}),
        )
        .await
    }

    pub async fn activate_jwt(&self, key: &str, machine: &str) -> String {
        let resp = self.activate(key, machine).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.expect("json");
        body["jwt"].as_str().expect("jwt").to_string()
    }

    pub fn verifier(&self) -> Verifier {
        Verifier::from_pem(self.server.public_pem.as_bytes()).expect("public key")
    }

    pub fn claims(&self, jwt: &str) -> LicenseClaims {
        self.verifier().decode(jwt).expect("valid token")
    }

    /// Signs arbitrary claims with the server's own key (to craft expired tokens).
    pub fn server_signer(&self) -> Signer {
        Signer::from_pem(self.server.private_pem.as_bytes(), None).expect("private key")
    }
}

/// Asserts status and that the body is the shared JSON error with the given code.
pub async fn assert_error(resp: Response, status: u16, code: ErrorCode) -> ErrorBody {
    assert_eq!(resp.status().as_u16(), status, "status");
    let body: ErrorBody = resp.json().await.expect("JSON error body");
    assert_eq!(body.error, code, "error code ({})", body.message);
    assert!(!body.message.is_empty());
    assert_eq!(body.detail.as_deref(), Some(body.message.as_str()));
    body
}
