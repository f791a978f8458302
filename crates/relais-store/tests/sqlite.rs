//! The storage conformance suite on SQLite.

use relais_store::{SqliteStore, Store};
use std::sync::Arc;

struct Fixture {
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn finish(self) {}
}

async fn fresh() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("relais.db"))
        .await
        .expect("open sqlite");
    Fixture {
        store: Arc::new(store),
        _dir: dir,
    }
}

relais_store::conformance_suite!(fresh);

/// A store that held `rows` at schema `version`, opened (and so upgraded) by this build.
async fn upgraded_from<S: AsRef<str>>(
    version: i64,
    rows: &[S],
) -> (tempfile::TempDir, SqliteStore) {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("relais.db");
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let old = SqlitePool::connect_with(options).await.expect("open");
    sqlx::migrate!("./migrations/sqlite")
        .run_to(version, &old)
        .await
        .expect("old schema");
    for statement in rows {
        sqlx::query(sqlx::AssertSqlSafe(statement.as_ref().to_owned()))
            .execute(&old)
            .await
            .expect("old rows");
    }
    old.close().await;
    let store = SqliteStore::open(&path).await.expect("upgrade");
    (dir, store)
}

#[tokio::test]
async fn an_event_log_from_before_0014_is_kept() {
    let (_dir, store) = upgraded_from(13, relais_store::conformance::PRE_0014_LOG).await;
    relais_store::conformance::an_event_log_from_before_0014_is_kept(&store).await;
}

/// Migration 0016 rebuilds the outbox without a rowid: the work it held, leased or not,
/// is still there to claim.
#[tokio::test]
async fn the_outbox_from_before_0016_is_kept() {
    use relais_store::MessageStore;
    let mut statements = vec![
        "INSERT INTO tenants (id, name, created_at) VALUES ('t-old', 'old', 1790000000000000)"
            .to_owned(),
    ];
    for (id, lease) in [
        ("m-free", "NULL, NULL"),
        ("m-leased", "'n1', 1790000009000000"),
    ] {
        statements.push(format!(
            "INSERT INTO messages (id, tenant_id, to_address, channel, step, chain, content, purpose, status, created_at, updated_at) \
             VALUES ('{id}', 't-old', '+33612345678', 'sim', 0, '[\"sim\"]', '{{\"text\":\"Bonjour\"}}', 'transactional', 'queued', 1790000000000000, 1790000000000000)"
        ));
        statements.push(format!(
            "INSERT INTO outbox (message_id, tenant_id, due_at, phase, lease_owner, lease_until, attempts) \
             VALUES ('{id}', 't-old', 1790000001000000, 'send', {lease}, 0)"
        ));
    }
    let (_dir, store) = upgraded_from(15, &statements).await;
    let at = |micros: i64| jiff::Timestamp::from_microsecond(micros).expect("time");
    let lease = jiff::SignedDuration::from_secs(30);
    let free = store
        .claim_due(at(1790000002000000), 10, "n2", lease)
        .await
        .expect("claim");
    let ids: Vec<&str> = free.iter().map(|i| i.message.id.as_str()).collect();
    assert_eq!(ids, ["m-free"], "the leased row waits for its lease");
    let later = store
        .claim_due(at(1790000010000000), 10, "n2", lease)
        .await
        .expect("claim");
    let ids: Vec<&str> = later.iter().map(|i| i.message.id.as_str()).collect();
    assert_eq!(ids, ["m-leased"], "the lease ran out");
}

#[tokio::test]
async fn the_outbox_from_before_0018_has_its_lanes() {
    let (_dir, store) = upgraded_from(17, relais_store::conformance::PRE_0018_OUTBOX).await;
    relais_store::conformance::the_outbox_from_before_0018_has_its_lanes(&store).await;
}

#[tokio::test]
async fn a_webhook_from_before_0019_has_a_closed_circuit() {
    let (_dir, store) = upgraded_from(18, relais_store::conformance::PRE_0019_WEBHOOK).await;
    relais_store::conformance::a_webhook_from_before_0019_has_a_closed_circuit(&store).await;
}

#[tokio::test]
async fn a_message_from_before_0025_has_no_campaign() {
    let (_dir, store) = upgraded_from(24, relais_store::conformance::PRE_0025_MESSAGE).await;
    relais_store::conformance::a_message_from_before_0025_has_no_campaign(&store).await;
}
