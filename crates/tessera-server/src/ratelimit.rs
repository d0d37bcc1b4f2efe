//! Per-client-IP rate limits on the endpoints that take a secret (license keys, API keys,
//! tokens), so guessing is slow. `X-Forwarded-For` is believed only from configured proxies.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use tessera_core::ErrorCode;

use crate::error::AppError;

/// Routes that are limited.
pub const LIMITED_ROUTES: &[&str] = &[
    "/v1/activate",
    "/v1/refresh",
    "/v1/deactivate",
    "/api/v1/licenses/token",
];

#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// Requests a client may make at once before being slowed down.
    pub burst: NonZeroU32,
    /// Sustained requests per minute per client.
    pub per_minute: NonZeroU32,
    /// Peers whose `X-Forwarded-For` is trusted (reverse proxies).
    pub trusted_proxies: Vec<IpNet>,
}

pub struct Limiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    trusted_proxies: Vec<IpNet>,
}

impl Limiter {
    pub fn new(config: &RateLimitConfig) -> Arc<Self> {
        let quota = Quota::per_minute(config.per_minute).allow_burst(config.burst);
        Arc::new(Self {
            limiter: RateLimiter::keyed(quota),
            trusted_proxies: config.trusted_proxies.clone(),
        })
    }

    /// The client's address: the peer, or — when the peer is a trusted proxy — the right-most
    /// address in `X-Forwarded-For` that is not itself a trusted proxy.
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        let Some(header) = forwarded_for else {
            return peer;
        };
        header
            .rsplit(',')
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .find(|ip| !self.is_trusted(*ip))
            .unwrap_or(peer)
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// Forgets clients idle long enough to be back at full burst (bounds memory).
    pub fn shrink(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

pub async fn enforce(State(limiter): State<Arc<Limiter>>, req: Request, next: Next) -> Response {
    let limited = req
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|p| LIMITED_ROUTES.contains(&p.as_str()));
    if !limited {
        return next.run(req).await;
    }
    let Some(peer) = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    else {
        return next.run(req).await;
    };
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    let ip = limiter.client_ip(peer, forwarded);
    match limiter.limiter.check_key(&ip) {
        Ok(()) => next.run(req).await,
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            crate::metrics::outcome("tessera_rate_limited_total", "rejected");
            let mut err = AppError::new(ErrorCode::RateLimited, "Too many requests; slow down");
            err.retry_after = Some(wait.as_secs().max(1));
            err.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(trusted: &[&str]) -> Arc<Limiter> {
        Limiter::new(&RateLimitConfig {
            burst: NonZeroU32::MIN,
            per_minute: NonZeroU32::MIN,
            trusted_proxies: trusted.iter().map(|s| s.parse().unwrap()).collect(),
        })
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let l = limiter(&[]);
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(l.client_ip(peer, Some("1.2.3.4")), peer);
    }

    #[test]
    fn forwarded_for_from_a_trusted_proxy_gives_the_rightmost_untrusted_hop() {
        let l = limiter(&["10.0.0.0/8"]);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let ip = l.client_ip(peer, Some("198.51.100.7, 192.0.2.4, 10.0.0.2"));
        assert_eq!(ip, "192.0.2.4".parse::<IpAddr>().unwrap());
        assert_eq!(l.client_ip(peer, Some("garbage")), peer);
    }
}
