//! The Tessera license server as a library: `tessera serve` is a thin wrapper around [`serve`],
//! and tests start the same [`Application`] on a random port.

use std::future::Future;
use std::path::Path;

use anyhow::Context;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use crate::verified::VerifiedTokens;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::serve::ListenerExt;
use tessera_core::ErrorCode;
use tessera_core::catalog::Catalog;
use tessera_core::clock::{Clock, SystemClock};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub mod bootstrap;
pub mod config;
pub mod connlimit;
pub mod console;
pub mod error;
pub mod extract;
pub mod keyring;
pub mod metrics;
pub mod openapi;
pub mod ratelimit;
pub mod routes;
pub mod rules;
pub mod secret;
pub mod state;
pub mod store;
#[cfg(feature = "test-support")]
pub mod test_support;
pub mod verified;

pub use config::ServeArgs;
use error::AppError;
use keyring::KeyRing;
use secret::Secret;
use state::{AppState, Policy};
use store::Store;

/// Everything a running server needs, resolved.
pub struct Config {
    pub listen_addr: SocketAddr,
    pub store: Arc<dyn Store>,
    pub keyring: KeyRing,
    pub admin_token: Secret,
    pub policy: Policy,
    pub clock: Arc<dyn Clock>,
    pub limits: Limits,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub max_concurrent_requests: usize,
    /// Open connections at most (idle keep-alive ones included); more wait in the backlog.
    pub max_connections: usize,
    pub lease_sweep: Option<Duration>,
    /// Per-IP limits on secret-taking routes; `None` switches them off (load tests).
    pub rate_limit: Option<ratelimit::RateLimitConfig>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            max_concurrent_requests: 1024,
            max_connections: 4096,
            lease_sweep: Some(Duration::from_secs(60)),
            rate_limit: Some(ratelimit::RateLimitConfig {
                burst: NonZeroU32::new(60).unwrap_or(NonZeroU32::MIN),
                per_minute: NonZeroU32::new(60).unwrap_or(NonZeroU32::MIN),
                trusted_proxies: Vec::new(),
            }),
        }
    }
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    lease_sweep: Option<Duration>,
    limiter: Option<Arc<ratelimit::Limiter>>,
    max_connections: usize,
}

impl Application {
    /// Binds the listener (port 0 picks a free one) and builds the router.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen_addr).await?;
        let signer = config.keyring.license().clone();
        let verifier = Arc::new(signer.verifier());
        let state = AppState {
            store: config.store,
            signer,
            keyring: Arc::new(config.keyring),
            bearer_tokens: Arc::new(VerifiedTokens::new(
                Arc::clone(&verifier),
                verified::DEFAULT_CAPACITY,
            )),
            verifier,
            admin_token_digest: secret::sha256(config.admin_token.expose().as_bytes()),
            policy: Arc::new(config.policy),
            clock: config.clock,
        };
        let limiter = config
            .limits
            .rate_limit
            .as_ref()
            .map(ratelimit::Limiter::new);
        let router = build_router(state.clone(), &config.limits, limiter.clone());
        Ok(Self {
            listener,
            router,
            state,
            lease_sweep: config.limits.lease_sweep,
            limiter,
            max_connections: config.limits.max_connections,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish
    /// and closes the database.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let sweeper = self.lease_sweep.map(|every| {
            let state = self.state.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    match state.store.release_expired_leases(state.clock.now()).await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(released = n, "released expired floating-seat leases")
                        }
                        Err(e) => tracing::warn!(error = %e, "lease sweep failed"),
                    }
                }
            })
        });
        let shrinker = self.limiter.clone().map(|limiter| {
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tick.tick().await;
                    limiter.shrink();
                }
            })
        });
        // `tap_io` keeps axum's `ConnectInfo<SocketAddr>` (used by rate limiting) available.
        let listener =
            connlimit::LimitedListener::new(self.listener, self.max_connections).tap_io(|_| {});
        let result = axum::serve(
            listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        for task in [sweeper, shrinker].into_iter().flatten() {
            task.abort();
        }
        self.state.store.close().await;
        result
    }
}

pub fn build_router(
    state: AppState,
    limits: &Limits,
    limiter: Option<Arc<ratelimit::Limiter>>,
) -> Router {
    let mut router = routes::router(state);
    if let Some(limiter) = limiter {
        router = router.layer(axum::middleware::from_fn_with_state(
            limiter,
            ratelimit::enforce,
        ));
    }
    router
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            limits.request_timeout,
            request_timeout,
        ))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            limits.max_concurrent_requests,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            AppError::new(ErrorCode::InternalError, "Internal server error").into_response()
        }))
        .layer(
            TraceLayer::new_for_http()
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO))
                .make_span_with(request_span),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// The span every request's log lines carry: method, path and the `x-request-id` set (or
/// passed through) by the layers outside it.
fn request_span<B>(req: &axum::http::Request<B>) -> tracing::Span {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id)
}

/// Abandons a request that runs past the configured timeout with a JSON 408.
async fn request_timeout(
    axum::extract::State(limit): axum::extract::State<Duration>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => AppError::new(ErrorCode::RequestTimeout, "Request took too long").into_response(),
    }
}

/// `tessera serve`: bootstrap, connect, migrate, serve until SIGTERM or Ctrl-C.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let boot = bootstrap::prepare(&args)?;
    let database_url = args.database_url();
    let catalog = match &args.catalog {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading catalog {}", path.display()))?;
            let catalog =
                Catalog::parse(&text).with_context(|| format!("catalog {}", path.display()))?;
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            Some((catalog, dir))
        }
        None => None,
    };
    let keyring = KeyRing::load(boot.signer, catalog.as_ref().map(|(c, d)| (c, d.as_path())))?;
    let store = store::connect(&database_url).await?;
    let config = Config {
        listen_addr: args.listen_addr,
        store,
        keyring,
        admin_token: boot.admin_token,
        policy: Policy {
            jwt_expiry_days: args.jwt_expiry_days,
            grace_period_days: args.grace_period_days,
            server_notice: args.server_notice.clone().filter(|n| !n.is_empty()),
        },
        clock: Arc::new(SystemClock),
        limits: Limits {
            max_body_bytes: args.max_body_bytes,
            request_timeout: Duration::from_secs(args.request_timeout_secs.max(1)),
            max_concurrent_requests: args.max_concurrent_requests.max(1),
            max_connections: args.max_connections.max(1),
            lease_sweep: (args.lease_sweep_secs > 0)
                .then(|| Duration::from_secs(args.lease_sweep_secs)),
            rate_limit: args.rate_limit()?,
        },
    };
    let app = Application::build(config).await?;
    tracing::info!(
        addr = %app.local_addr()?,
        database = %store::redact_url(&database_url),
        "tessera server listening"
    );
    app.run_until(shutdown_signal()).await?;
    tracing::info!("server stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
