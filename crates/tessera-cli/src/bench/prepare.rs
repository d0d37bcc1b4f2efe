//! Prepares a scenario through the HTTP API only (admin routes plus the public ones), so the
//! same preparation works against any server with Tessera's API — including the seed's.

use std::sync::Arc;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tessera_core::ErrorBody;
use tessera_core::apikey::{CreateApiKeyRequest, TokenRequest};
use tessera_core::wire::{ActivateRequest, CreateKeyRequest, RefreshRequest, UsageRequest};
use tokio::sync::RwLock;

use super::args::Scenario;

/// The admin API of the target server.
#[derive(Clone)]
pub struct AdminApi {
    http: reqwest::Client,
    base: Arc<str>,
    token: Arc<str>,
}

impl std::fmt::Debug for AdminApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminApi")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// Only the fields the benchmark needs, so other servers' extra fields do not matter.
#[derive(Deserialize)]
struct CreatedKey {
    key_display: String,
}

#[derive(Deserialize)]
struct CreatedApiKey {
    api_key: String,
}

#[derive(Deserialize)]
pub struct IssuedToken {
    pub jwt: String,
}

impl AdminApi {
    pub fn new(http: reqwest::Client, base: &str, token: &str) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').into(),
            token: token.into(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> anyhow::Result<T> {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&*self.token)
            .json(body);
        send(req, path).await
    }

    pub async fn create_key(
        &self,
        product: &str,
        tier: &str,
        seats: u64,
    ) -> anyhow::Result<String> {
        let body = CreateKeyRequest {
            product: product.to_string(),
            tier: tier.to_string(),
            seats: i64::try_from(seats).unwrap_or(i64::MAX),
            valid_until: None,
            customer_email: None,
            source: "bench".to_string(),
            trial: false,
            notes: Some("created by tessera bench".to_string()),
            lease_ttl_secs: None,
        };
        let key: CreatedKey = self.post("/admin/keys", &body).await?;
        Ok(key.key_display)
    }

    pub async fn create_api_key(&self, product: &str, tier: &str) -> anyhow::Result<String> {
        let body = CreateApiKeyRequest {
            product: product.to_string(),
            tier: tier.to_string(),
            name: "bench".to_string(),
            org_name: None,
            trial: false,
            expires_at: None,
        };
        let key: CreatedApiKey = self.post("/admin/api-keys", &body).await?;
        Ok(key.api_key)
    }

    /// `POST /v1/activate` (public), returning the license token.
    pub async fn activate(
        &self,
        key: &str,
        machine_id: &str,
        product: &str,
    ) -> anyhow::Result<String> {
        let req = self
            .http
            .post(format!("{}/v1/activate", self.base))
            .json(&activate_body(key, machine_id, product));
        let token: IssuedToken = send(req, "/v1/activate").await?;
        Ok(token.jwt)
    }
}

async fn send<T: DeserializeOwned>(req: reqwest::RequestBuilder, path: &str) -> anyhow::Result<T> {
    let resp = req
        .send()
        .await
        .with_context(|| format!("contacting the server for {path}"))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .with_context(|| format!("reading the answer to {path}"))?;
    if !status.is_success() {
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => bail!(
                "{path}: server refused ({status}): {} [{}]",
                body.message,
                body.error
            ),
            Err(_) => bail!("{path}: server answered {status}"),
        }
    }
    serde_json::from_slice(&bytes).with_context(|| format!("decoding the answer to {path}"))
}

fn activate_body(key: &str, machine_id: &str, product: &str) -> ActivateRequest {
    ActivateRequest {
        key: key.to_string(),
        machine_id: machine_id.to_string(),
        product: product.to_string(),
        app_version: Some("bench".to_string()),
        platform: Some("linux-x86_64".to_string()),
    }
}

/// License keys handed out `seats` machines at a time; a new key is created when one is full,
/// so runs longer than one key's seats keep activating.
pub struct KeyPool {
    api: AdminApi,
    product: String,
    tier: String,
    seats: u64,
    keys: RwLock<Vec<Arc<str>>>,
}

impl KeyPool {
    fn new(api: AdminApi, product: &str, tier: &str, seats: u64) -> Self {
        Self {
            api,
            product: product.to_string(),
            tier: tier.to_string(),
            seats: seats.max(1),
            keys: RwLock::new(Vec::new()),
        }
    }

    /// The key for the `n`th machine.
    pub async fn key_for(&self, n: u64) -> anyhow::Result<Arc<str>> {
        let idx = usize::try_from(n / self.seats).context("too many machines")?;
        if let Some(key) = self.keys.read().await.get(idx) {
            return Ok(key.clone());
        }
        let mut keys = self.keys.write().await;
        while keys.len() <= idx {
            let key = self
                .api
                .create_key(&self.product, &self.tier, self.seats)
                .await
                .context("creating a license key for the benchmark")?;
            keys.push(key.into());
        }
        keys.get(idx).cloned().context("key pool out of step")
    }
}

/// One machine of the `refresh` scenario and its latest token.
pub struct Machine {
    pub machine_id: String,
    pub jwt: std::sync::Mutex<String>,
}

/// Everything a worker needs to build the `n`th request of a scenario.
pub enum Workload {
    Activate {
        keys: KeyPool,
        product: String,
        run: String,
        url: String,
    },
    Refresh {
        machines: Vec<Machine>,
        url: String,
    },
    Token {
        api_key: String,
        url: String,
    },
    Usage {
        jwt: String,
        product: String,
        url: String,
    },
    AdminList {
        admin_token: String,
        base: String,
        page_size: u64,
        pages: u64,
    },
}

/// What the preparation needs to know.
pub struct Plan<'a> {
    pub scenario: Scenario,
    pub product: &'a str,
    pub tier: &'a str,
    pub seats: u64,
    pub machines: u64,
    pub connections: u32,
    pub admin_token: &'a str,
    pub page_size: u64,
    pub max_offset: u64,
}

const ADMIN_LABELS: &[&str] = &[
    "GET /admin/keys",
    "GET /admin/activations",
    "GET /admin/audit",
];

impl Workload {
    pub async fn prepare(api: &AdminApi, plan: &Plan<'_>) -> anyhow::Result<Self> {
        let base = api.base().to_string();
        // A per-run tag keeps machine ids distinct across runs against the same server.
        let run = uuid::Uuid::new_v4().simple().to_string();
        let run = run.get(..8).unwrap_or("run").to_string();
        Ok(match plan.scenario {
            Scenario::Activate => {
                let keys = KeyPool::new(api.clone(), plan.product, plan.tier, plan.seats);
                keys.key_for(0).await?;
                Workload::Activate {
                    keys,
                    product: plan.product.to_string(),
                    run,
                    url: format!("{base}/v1/activate"),
                }
            }
            Scenario::Refresh => {
                let keys = Arc::new(KeyPool::new(
                    api.clone(),
                    plan.product,
                    plan.tier,
                    plan.seats,
                ));
                let machines = activate_machines(api, &keys, plan, &run).await?;
                Workload::Refresh {
                    machines,
                    url: format!("{base}/v1/refresh"),
                }
            }
            Scenario::Token => Workload::Token {
                api_key: api.create_api_key(plan.product, plan.tier).await?,
                url: format!("{base}/api/v1/licenses/token"),
            },
            Scenario::Usage => {
                let key = api.create_key(plan.product, plan.tier, 1).await?;
                let jwt = api
                    .activate(&key, &format!("bench-{run}-usage"), plan.product)
                    .await?;
                Workload::Usage {
                    jwt,
                    product: plan.product.to_string(),
                    url: format!("{base}/v1/usage"),
                }
            }
            Scenario::AdminList => Workload::AdminList {
                admin_token: plan.admin_token.to_string(),
                base,
                page_size: plan.page_size,
                pages: plan.max_offset / plan.page_size + 1,
            },
        })
    }

    /// Names of the request kinds, each reported with its own latency histogram.
    pub fn labels(&self) -> &'static [&'static str] {
        match self {
            Workload::Activate { .. } => &["POST /v1/activate"],
            Workload::Refresh { .. } => &["POST /v1/refresh"],
            Workload::Token { .. } => &["POST /api/v1/licenses/token"],
            Workload::Usage { .. } => &["POST /v1/usage"],
            Workload::AdminList { .. } => ADMIN_LABELS,
        }
    }

    /// Builds the `n`th request; returns its label index. Work done here (e.g. creating the next
    /// license key) is not timed.
    pub async fn request(
        &self,
        http: &reqwest::Client,
        n: u64,
    ) -> anyhow::Result<(usize, reqwest::RequestBuilder)> {
        Ok(match self {
            Workload::Activate {
                keys,
                product,
                run,
                url,
            } => {
                let key = keys.key_for(n).await?;
                let body = activate_body(&key, &format!("bench-{run}-{n}"), product);
                (0, json_post(http, url, &body)?)
            }
            Workload::Refresh { machines, url } => {
                let machine = pick(machines, n)?;
                let jwt = machine
                    .jwt
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                let body = RefreshRequest {
                    jwt,
                    machine_id: machine.machine_id.clone(),
                    app_version: Some("bench".to_string()),
                    platform: Some("linux-x86_64".to_string()),
                };
                (0, json_post(http, url, &body)?)
            }
            Workload::Token { api_key, url } => {
                let body = TokenRequest {
                    instance_id: uuid::Uuid::new_v4().to_string(),
                    version: Some("bench".to_string()),
                };
                (0, json_post(http, url, &body)?.bearer_auth(api_key))
            }
            Workload::Usage { jwt, product, url } => {
                let body = UsageRequest {
                    event_type: "bench".to_string(),
                    product: product.clone(),
                    metadata: None,
                };
                (0, json_post(http, url, &body)?.bearer_auth(jwt))
            }
            Workload::AdminList {
                admin_token,
                base,
                page_size,
                pages,
            } => {
                let kinds = ADMIN_LABELS.len() as u64;
                let label = usize::try_from(n % kinds).unwrap_or(0);
                let offset = ((n / kinds) % pages.max(&1)) * page_size;
                let path = match label {
                    0 => "keys",
                    1 => "activations",
                    _ => "audit",
                };
                let url = format!("{base}/admin/{path}?limit={page_size}&offset={offset}");
                (label, http.get(url).bearer_auth(admin_token))
            }
        })
    }

    /// Called with the body of a successful answer to the `n`th request (not timed).
    pub fn on_success(&self, n: u64, body: &[u8]) -> anyhow::Result<()> {
        if let Workload::Refresh { machines, .. } = self {
            let issued: IssuedToken =
                serde_json::from_slice(body).context("decoding a refresh answer")?;
            let machine = pick(machines, n)?;
            *machine
                .jwt
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = issued.jwt;
        }
        Ok(())
    }
}

fn pick(machines: &[Machine], n: u64) -> anyhow::Result<&Machine> {
    let len = machines.len().max(1) as u64;
    usize::try_from(n % len)
        .ok()
        .and_then(|i| machines.get(i))
        .context("no machines were prepared")
}

fn json_post(
    http: &reqwest::Client,
    url: &str,
    body: &impl serde::Serialize,
) -> anyhow::Result<reqwest::RequestBuilder> {
    let bytes = serde_json::to_vec(body).context("encoding a request body")?;
    Ok(http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(bytes))
}

/// Activates `plan.machines` machines, `plan.connections` at a time.
async fn activate_machines(
    api: &AdminApi,
    keys: &Arc<KeyPool>,
    plan: &Plan<'_>,
    run: &str,
) -> anyhow::Result<Vec<Machine>> {
    tracing::info!(machines = plan.machines, "activating machines to refresh");
    // Create the keys up front, one after another, so workers below never race to create them.
    keys.key_for(plan.machines.saturating_sub(1)).await?;
    let workers = u64::from(plan.connections).min(plan.machines).max(1);
    let mut set = tokio::task::JoinSet::new();
    for w in 0..workers {
        let (api, keys) = (api.clone(), keys.clone());
        let (product, run, total) = (plan.product.to_string(), run.to_string(), plan.machines);
        set.spawn(async move {
            let mut done = Vec::new();
            let mut i = w;
            while i < total {
                let key = keys.key_for(i).await?;
                let machine_id = format!("bench-{run}-m{i}");
                let jwt = api.activate(&key, &machine_id, &product).await?;
                done.push((
                    i,
                    Machine {
                        machine_id,
                        jwt: std::sync::Mutex::new(jwt),
                    },
                ));
                i += workers;
            }
            anyhow::Ok(done)
        });
    }
    let mut all = Vec::new();
    while let Some(joined) = set.join_next().await {
        all.extend(joined.context("an activation task failed")??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, m)| m).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machines_are_picked_round_robin() {
        let machines: Vec<Machine> = (0..3)
            .map(|i| Machine {
                machine_id: format!("m{i}"),
                jwt: std::sync::Mutex::new(String::new()),
            })
            .collect();
        let ids: Vec<&str> = (0..5)
            .map(|n| pick(&machines, n).unwrap().machine_id.as_str())
            .collect();
        assert_eq!(ids, ["m0", "m1", "m2", "m0", "m1"]);
        assert!(pick(&[], 0).is_err());
    }
}
