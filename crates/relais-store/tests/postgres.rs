//! The storage conformance suite on PostgreSQL. Each test gets its own database, dropped
//! afterwards (`relais_store::scratch`). `RELAIS_TEST_POSTGRES_URL` names the server's
//! maintenance database (default `postgres://postgres@127.0.0.1:5432/postgres`); these tests
//! fail, not skip, when it cannot be reached, so CI cannot pass without PostgreSQL.

use relais_store::Store;
use relais_store::scratch::{ScratchDatabase, admin_url};
use std::sync::Arc;

struct Fixture {
    store: Arc<dyn Store>,
    database: ScratchDatabase,
}

impl Fixture {
    async fn finish(self) {
        drop(self.store);
        self.database.drop_database().await;
    }
}

async fn fresh() -> Fixture {
    let database = ScratchDatabase::create("relais_test")
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {} is required for this suite: {e}",
                admin_url()
            )
        });
    Fixture {
        store: database.store.clone(),
        database,
    }
}

relais_store::conformance_suite!(fresh);

/// A database at schema `version` holding `rows`, opened (and so upgraded) by this build;
/// `check` then runs on it.
async fn upgraded_from(
    version: i64,
    rows: &[&str],
) -> (
    relais_store::scratch::EmptyDatabase,
    relais_store::PostgresStore,
) {
    let database = relais_store::scratch::EmptyDatabase::create("relais_upgrade")
        .await
        .expect("PostgreSQL is required for this suite");
    let old = sqlx::PgPool::connect(&database.url).await.expect("connect");
    sqlx::migrate!("./migrations/postgres")
        .run_to(version, &old)
        .await
        .expect("old schema");
    for statement in rows {
        sqlx::query(sqlx::AssertSqlSafe(statement.to_string()))
            .execute(&old)
            .await
            .expect("old rows");
    }
    old.close().await;
    let store = relais_store::PostgresStore::connect(&database.url)
        .await
        .expect("upgrade");
    (database, store)
}

#[tokio::test]
async fn an_event_log_from_before_0014_is_kept() {
    let (database, store) = upgraded_from(13, relais_store::conformance::PRE_0014_LOG).await;
    relais_store::conformance::an_event_log_from_before_0014_is_kept(&store).await;
    store.close().await;
    database.drop_database().await;
}

#[tokio::test]
async fn the_outbox_from_before_0018_has_its_lanes() {
    let (database, store) = upgraded_from(17, relais_store::conformance::PRE_0018_OUTBOX).await;
    relais_store::conformance::the_outbox_from_before_0018_has_its_lanes(&store).await;
    store.close().await;
    database.drop_database().await;
}

#[tokio::test]
async fn a_webhook_from_before_0019_has_a_closed_circuit() {
    let (database, store) = upgraded_from(18, relais_store::conformance::PRE_0019_WEBHOOK).await;
    relais_store::conformance::a_webhook_from_before_0019_has_a_closed_circuit(&store).await;
    store.close().await;
    database.drop_database().await;
}

#[tokio::test]
async fn a_message_from_before_0025_has_no_campaign() {
    let (database, store) = upgraded_from(24, relais_store::conformance::PRE_0025_MESSAGE).await;
    relais_store::conformance::a_message_from_before_0025_has_no_campaign(&store).await;
    store.close().await;
    database.drop_database().await;
}

#[tokio::test]
async fn a_message_from_before_0032_is_no_human_agents_reply() {
    let (database, store) = upgraded_from(30, relais_store::conformance::PRE_0025_MESSAGE).await;
    relais_store::conformance::a_message_from_before_0032_is_no_human_agents_reply(&store).await;
    store.close().await;
    database.drop_database().await;
}

#[tokio::test]
async fn an_inbound_message_from_before_0035_has_no_media() {
    let (database, store) = upgraded_from(34, relais_store::conformance::PRE_0029_INBOUND).await;
    relais_store::conformance::an_inbound_message_from_before_0035_has_no_media(&store).await;
    store.close().await;
    database.drop_database().await;
}

#[tokio::test]
async fn a_store_from_before_0029_keeps_its_inbound_and_takes_templates() {
    let (database, store) = upgraded_from(28, relais_store::conformance::PRE_0029_INBOUND).await;
    relais_store::conformance::a_store_from_before_0029_keeps_its_inbound_and_takes_templates(
        &store,
    )
    .await;
    store.close().await;
    database.drop_database().await;
}

#[tokio::test]
async fn a_merge_from_before_0036_was_asked_through_the_api() {
    let (database, store) = upgraded_from(35, relais_store::conformance::PRE_0036_MERGE).await;
    relais_store::conformance::a_merge_from_before_0036_was_asked_through_the_api(&store).await;
    store.close().await;
    database.drop_database().await;
}

/// Nothing that reaches the database, Relais's own code included, can rewrite the audit
/// log: the table refuses updates, deletes and truncation.
#[tokio::test]
async fn the_audit_log_refuses_updates_and_deletes() {
    use relais_store::AuditStore;
    let (database, store) = upgraded_from(42, &[]).await;
    let tenant = store
        .create_tenant("acme", jiff::Timestamp::now())
        .await
        .unwrap();
    let entry = relais_store::conformance::an_erasure_entry(&tenant.id);
    store.append_audit(&entry).await.unwrap();
    store.close().await;
    let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
    let rewrites = relais_store::conformance::AUDIT_REWRITES;
    for statement in rewrites.into_iter().chain(["TRUNCATE audit_log"]) {
        let refused = sqlx::query(statement).execute(&pool).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("append-only")),
            "{statement}: {refused:?}"
        );
    }
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_log WHERE actor_id = 'key-1'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
    pool.close().await;
    database.drop_database().await;
}
