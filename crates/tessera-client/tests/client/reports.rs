//! Fire-and-forget reports: never block, bounded, counted.

use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

#[tokio::test]
async fn full_report_queue_drops_and_counts_without_blocking() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/usage"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let d = dir();
    write_seed_file(&d.path, &token_at(T0), None);
    let cfg = config(&server.uri(), &d.path)
        .with_report_queue_capacity(4)
        .with_timeout(Duration::from_secs(10));
    let (client, _) = client_with(cfg, T0);

    let started = Instant::now();
    let accepted = (0..200)
        .filter(|i| client.report_usage("tick", Some(json!({"i": i}))))
        .count() as u64;
    let elapsed = started.elapsed();

    assert!(
        elapsed < Duration::from_millis(500),
        "reporting blocked for {elapsed:?}"
    );
    let stats = client.report_stats();
    // The worker may hold one report in flight; the queue holds four more.
    assert!(accepted <= 5, "accepted {accepted}");
    assert_eq!(stats.queued, accepted);
    assert_eq!(client.dropped_reports(), 200 - accepted);
    assert_eq!(stats.dropped, 200 - accepted);
}

#[test]
fn reports_outside_a_runtime_stay_bounded_and_never_panic() {
    let d = dir();
    let cfg = config("http://127.0.0.1:9", &d.path).with_report_queue_capacity(3);
    let (client, _) = client_with(cfg, T0);
    let accepted = (0..10).filter(|_| client.report_flag("x", None)).count();
    assert_eq!(accepted, 3);
    assert_eq!(client.dropped_reports(), 7);
}

#[tokio::test]
async fn reports_carry_the_license_token_and_product() {
    let server = MockServer::start().await;
    let jwt = token_at(T0);
    Mock::given(method("POST"))
        .and(path("/v1/usage"))
        .and(header("authorization", format!("Bearer {jwt}").as_str()))
        .and(body_partial_json(
            json!({"event_type": "export", "product": PRODUCT, "metadata": {"n": 1}}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "recorded"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/flag"))
        .and(header("authorization", format!("Bearer {jwt}").as_str()))
        .and(body_partial_json(
            json!({"flag_type": "shared_key", "product": PRODUCT}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "flagged"})))
        .expect(1)
        .mount(&server)
        .await;
    let d = dir();
    write_seed_file(&d.path, &jwt, None);
    let (client, _) = client_with(config(&server.uri(), &d.path), T0);

    assert!(client.report_usage("export", Some(json!({"n": 1}))));
    assert!(client.report_flag("shared_key", None));
    assert!(
        eventually(|| client.report_stats().sent == 2).await,
        "{:?}",
        client.report_stats()
    );
    server.verify().await;
}

#[tokio::test]
async fn reports_without_a_license_are_not_sent_and_failures_are_counted() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let d = dir();
    let (client, _) = client_with(config(&server.uri(), &d.path), T0);
    assert!(client.report_usage("tick", None));
    assert!(eventually(|| client.report_stats().failed == 1).await);
    assert_eq!(client.report_stats().sent, 0);
    server.verify().await;
}
