//! Clients that give up midway: a request dropped at any point after the server read it is
//! either not stored at all or stored and sent as promptly as any other, never left
//! leased to a dispatcher that was not told about it (a 60 s wait before, with the
//! hand-off depending on the request's future).

use axum::body::Body;
use axum::http::{Request, header};
use relais_core::clock::{Clock, SystemClock};
use relais_engine::dispatch::{DispatcherConfig, spawn_dispatcher_with};
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_server::{AppState, HttpSettings, router};
use relais_store::{SqliteStore, Store};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

async fn counts(db: &std::path::Path) -> (i64, i64) {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(db)
                .read_only(true),
        )
        .await
        .unwrap();
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&pool)
        .await
        .unwrap();
    let waiting: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM messages WHERE status IN ('accepted', 'queued', 'sending')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    (all, waiting)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_client_goes_away_is_stored_and_sent_at_once_or_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    // Every commit waits for the disk: the moment between a commit and its answer, when
    // a client that leaves used to strand its message, lasts milliseconds.
    let options = relais_store::StoreOptions {
        durability: relais_store::Durability::Fsync,
    };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_with(&db, options).await.unwrap());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let Bootstrap::Created(key) = bootstrap(&*store, None, clock.now()).await.unwrap() else {
        panic!("first start")
    };
    let state = AppState::new(store.clone(), clock.clone(), HttpSettings::default(), None);
    // A lease of ten minutes: a message leased to a dispatcher that never got it would
    // wait that long, far beyond what this test waits for.
    let dispatcher = spawn_dispatcher_with(
        store.clone(),
        clock.clone(),
        DispatcherConfig {
            lease_for: jiff::SignedDuration::from_mins(10),
            default_rate: 1e9,
            idle: Duration::from_millis(20),
            ..Default::default()
        },
        state.channels.registry(),
    );
    let app = router(state);
    let mut tasks = Vec::new();
    for n in 0..600u64 {
        let app = app.clone();
        let key = key.secret.clone();
        let task = tokio::spawn(async move {
            let body = serde_json::json!({"to": format!("+336{n:08}"), "channel": "sim",
                "content": {"text": "Bonjour"}});
            let request = Request::builder()
                .method("POST")
                .uri("/v1/messages")
                .header(header::AUTHORIZATION, format!("Bearer {key}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap();
            let _ = app.oneshot(request).await;
        });
        // The clients go away one after the other over 120 ms, while the 600 requests
        // are read, prepared and stored in groups: some before, some during, some after
        // their group's transaction.
        let after = Duration::from_micros(n * 2000);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(after).await;
            task.abort();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let (all, waiting) = counts(&db).await;
            if waiting == 0 {
                return all;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let (all, waiting) = counts(&db).await;
    assert!(
        waited.is_ok(),
        "{waiting} of {all} stored messages are stuck unsent (leased to nobody)"
    );
    assert!(
        all > 0,
        "some requests were stored before their client left"
    );
    dispatcher.shutdown().await;
}
