//! Two servers on one PostgreSQL database, as replicas behind a load balancer: concurrent
//! writes spread over both must give exactly the answers one server would (no seat oversold,
//! no fetch or review lost). Runs when `TESSERA_TEST_DATABASE=postgres`; on SQLite each server
//! has its own file, so these tests print a notice and pass.

use std::collections::HashMap;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_core::ErrorCode;
use tessera_core::wire::{ActivationRecord, AuditRecord, FlagRecord, KeyResponse};
use tessera_server::test_support::{Backend, TestOptions};

use crate::helpers::{TestApp, assert_error, spawn_app_with};

/// Two servers sharing one PostgreSQL database and signing key, or `None` (with a notice) on
/// SQLite.
async fn replicas(test: &str) -> Option<(TestApp, TestApp)> {
    if Backend::from_env() != Backend::Postgres {
        eprintln!("{test}: skipped: needs TESSERA_TEST_DATABASE=postgres (running on SQLite)");
        return None;
    }
    // Per-IP rate limits are per replica and beside the point here: off.
    let unlimited = || {
        let mut options = TestOptions::default();
        options.limits.rate_limit = None;
        options
    };
    let a = spawn_app_with(unlimited()).await;
    let b = spawn_app_with(TestOptions {
        shared: Some(a.server.shared()),
        ..unlimited()
    })
    .await;
    assert_ne!(a.server.base_url, b.server.base_url);
    assert_eq!(a.server.database_url, b.server.database_url);
    // Open every pooled connection first: with cold pools the first requests queue for
    // connections and race less than in production.
    let warm = spread(&a, &b, 64, |app, _| app.admin_get("/admin/audit")).await;
    assert!(warm.iter().all(|r| r.status() == StatusCode::OK));
    Some((a, b))
}

/// Runs `n` requests at once, request `i` on `a` when `i` is even and on `b` when odd.
async fn spread<'a, F, Fut>(
    a: &'a TestApp,
    b: &'a TestApp,
    n: usize,
    request: F,
) -> Vec<reqwest::Response>
where
    F: Fn(&'a TestApp, usize) -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    join_all((0..n).map(|i| request(if i % 2 == 0 { a } else { b }, i))).await
}

async fn direct_count(database_url: &str, sql: &str, bind: &str) -> i64 {
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    let n: i64 = sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_concurrent_activations_over_two_replicas_take_exactly_two_seats() {
    let Some((a, b)) = replicas("forty_concurrent_activations").await else {
        return;
    };
    let key = a.active_key().await; // 2 seats
    let responses = spread(&a, &b, 40, |app, i| {
        let key = key.clone();
        async move { app.activate(&key, &format!("machine-{i:02}")).await }
    })
    .await;

    let mut by_status: HashMap<u16, usize> = HashMap::new();
    let mut winners = Vec::new();
    for (i, resp) in responses.into_iter().enumerate() {
        let status = resp.status().as_u16();
        *by_status.entry(status).or_default() += 1;
        if status == 200 {
            winners.push(format!("machine-{i:02}"));
        } else {
            assert_error(resp, 409, ErrorCode::SeatLimitReached).await;
        }
    }
    assert_eq!(by_status.get(&200), Some(&2), "{by_status:?}");
    assert_eq!(by_status.get(&409), Some(&38), "{by_status:?}");

    // Both replicas read the same two seats, and so does the database itself.
    for app in [&a, &b] {
        let keys: Vec<KeyResponse> = app.admin_get("/admin/keys").await.json().await.unwrap();
        let k = keys.iter().find(|k| k.key_display == key).unwrap();
        assert_eq!(k.active_seat_count, 2);
        let acts: Vec<ActivationRecord> = app
            .admin_get(&format!("/admin/activations?key_id={}", k.id))
            .await
            .json()
            .await
            .unwrap();
        let mut machines: Vec<String> = acts
            .iter()
            .filter(|r| r.deactivated_at.is_none())
            .map(|r| r.machine_id.clone())
            .collect();
        machines.sort();
        winners.sort();
        assert_eq!(machines, winners);
    }
    let active = direct_count(
        &a.server.database_url,
        "SELECT COUNT(*) FROM activations a JOIN license_keys k ON k.id = a.key_id \
         WHERE k.key_display = $1 AND a.deactivated_at IS NULL",
        &key,
    )
    .await;
    assert_eq!(active, 2);
    let activated_audits = direct_count(
        &a.server.database_url,
        "SELECT COUNT(*) FROM audit_log WHERE action = $1",
        "activated",
    )
    .await;
    assert_eq!(activated_audits, 2, "one audit row per granted seat");

    // A freed seat goes to exactly one of the next contenders, wherever they arrive.
    let jwt = {
        let resp = a.activate(&key, &winners[0]).await; // same machine again: keeps its seat
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json::<Value>().await.unwrap()["jwt"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let resp = b
        .post(
            "/v1/deactivate",
            json!({"jwt": jwt, "machine_id": winners[0]}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let responses = spread(&a, &b, 10, |app, i| {
        let key = key.clone();
        async move { app.activate(&key, &format!("late-{i}")).await }
    })
    .await;
    let ok = responses
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .count();
    assert_eq!(ok, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_token_fetches_over_two_replicas_count_every_fetch() {
    let Some((a, b)) = replicas("concurrent_token_fetches").await else {
        return;
    };
    let resp = a
        .admin_post(
            "/admin/api-keys",
            json!({"product": "softclient4es", "tier": "pro", "name": "Acme"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let created: Value = resp.json().await.unwrap();
    let api_key_id = created["id"].as_str().unwrap().to_string();
    let api_key = created["api_key"].as_str().unwrap().to_string();

    // 40 fetches of one instance (all racing to insert its row first) and 10 of another.
    let responses = spread(&a, &b, 50, |app, i| {
        let api_key = api_key.clone();
        async move {
            let instance = if i < 40 { "node-1" } else { "node-2" };
            app.http
                .post(app.url("/api/v1/licenses/token"))
                .bearer_auth(&api_key)
                .json(&json!({"instance_id": instance, "version": format!("1.0.{i}")}))
                .send()
                .await
                .unwrap()
        }
    })
    .await;
    for resp in responses {
        assert_eq!(resp.status(), StatusCode::OK);
    }

    for app in [&a, &b] {
        let instances: Vec<Value> = app
            .admin_get(&format!("/admin/instances?api_key_id={api_key_id}"))
            .await
            .json()
            .await
            .unwrap();
        let counts: HashMap<&str, i64> = instances
            .iter()
            .map(|i| {
                (
                    i["instance_id"].as_str().unwrap(),
                    i["fetch_count"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(counts.len(), 2, "{instances:?}");
        for i in &instances {
            // Times only widen, whatever order the fetches committed in.
            assert!(i["first_seen"].as_str() <= i["last_seen"].as_str(), "{i}");
        }
        assert_eq!(counts["node-1"], 40);
        assert_eq!(counts["node-2"], 10);
    }
    let rows = direct_count(
        &a.server.database_url,
        "SELECT COUNT(*) FROM instances WHERE api_key_id = $1",
        &api_key_id,
    )
    .await;
    assert_eq!(rows, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_flag_reviews_over_two_replicas_lose_no_audit_row() {
    let Some((a, b)) = replicas("concurrent_flag_reviews").await else {
        return;
    };
    let key = a.active_key().await;
    let jwt = a.activate_jwt(&key, "m1").await;
    // The flag is raised through one replica and reviewed through both.
    let resp = b
        .post_bearer(
            "/v1/flag",
            &jwt,
            json!({"flag_type": "clock_skew", "product": "peregrine"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let open: Vec<FlagRecord> = a.admin_get("/admin/flags").await.json().await.unwrap();
    assert_eq!(open.len(), 1);
    let flag_id = open[0].id.clone();

    const REVIEWS: usize = 30;
    let statuses = ["reviewed", "dismissed", "actioned"];
    let actions = ["none", "warned", "revoked"];
    let review = |i: usize| (statuses[i % 3], actions[(i / 3) % 3]);
    let responses = spread(&a, &b, REVIEWS, |app, i| {
        let path = format!("/admin/flags/{flag_id}");
        let (status, action) = review(i);
        let body = json!({"status": status, "action_taken": action});
        async move {
            app.http
                .patch(app.url(&path))
                .bearer_auth(&app.server.admin_token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    })
    .await;
    for resp in responses {
        assert_eq!(resp.status(), StatusCode::OK);
    }

    // Every review has its own audit row, carrying what that review asked for.
    let audit: Vec<AuditRecord> = b
        .admin_get(&format!("/admin/audit?entity_id={flag_id}&limit=1000"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        audit.len(),
        REVIEWS + 1,
        "every review audited, plus the opening"
    );
    let mut audited: Vec<(String, String)> = audit
        .iter()
        .filter(|r| r.action != "flag_opened")
        .map(|r| {
            let d = r.details.as_ref().unwrap();
            assert_eq!(r.action, format!("flag_{}", d["status"].as_str().unwrap()));
            (
                d["status"].as_str().unwrap().to_string(),
                d["action_taken"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    audited.sort();
    let mut asked: Vec<(String, String)> = (0..REVIEWS)
        .map(|i| (review(i).0.to_string(), review(i).1.to_string()))
        .collect();
    asked.sort();
    assert_eq!(audited, asked);

    // The flag ends with exactly one status, and with one review's status and action together.
    let mut found = Vec::new();
    for status in statuses {
        let flags: Vec<FlagRecord> = a
            .admin_get(&format!("/admin/flags?status={status}"))
            .await
            .json()
            .await
            .unwrap();
        found.extend(flags.into_iter().filter(|f| f.id == flag_id));
    }
    assert_eq!(found.len(), 1);
    let pair = (
        found[0].status.clone(),
        found[0].action_taken.clone().unwrap(),
    );
    assert!(asked.contains(&pair), "{pair:?}");
}
