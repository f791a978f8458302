//! SQLite on a full disk: a write either fails with `StoreError::Unavailable` or is durable,
//! never a success that was not stored; once space returns, writes work again without a
//! restart and nothing written before is lost.
//!
//! The disk is a small tmpfs mounted for the test, so the test needs root (CI runs as
//! root). Without root it says so and passes, unless `RELAIS_REQUIRE_FAULT_TESTS=1` (set
//! by `scripts/test.sh`) makes the missing privilege a failure.

use jiff::Timestamp;
use relais_store::scratch::SmallDisk;
use relais_store::{MessageStore, NewMessage, SqliteStore, Store, StoreError};
use std::path::Path;

fn message(tenant: &str, n: usize) -> NewMessage {
    let to = format!("+336{n:08}");
    NewMessage {
        // Some bulk, so that the disk fills after a few hundred messages.
        content: serde_json::json!({"text": format!("message {n} {}", "x".repeat(600))}),
        ..relais_store::conformance::queued_message(tenant, "sim", &to, Timestamp::now())
    }
}

async fn stored_ids(path: &Path) -> std::collections::HashSet<String> {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("read the database");
    let ids: Vec<(String,)> = sqlx::query_as("SELECT id FROM messages")
        .fetch_all(&pool)
        .await
        .expect("ids");
    pool.close().await;
    ids.into_iter().map(|(id,)| id).collect()
}

#[tokio::test]
async fn a_write_on_a_full_disk_fails_clearly_and_writes_work_again_once_space_returns() {
    let mount = tempfile::tempdir().expect("temp dir");
    let Some(disk) = SmallDisk::mount_for_test(mount.path(), "8m") else {
        return;
    };
    let db = disk.path().join("relais.db");
    let store = SqliteStore::open(&db).await.expect("open");
    let tenant = store
        .create_tenant("acme", Timestamp::now())
        .await
        .expect("tenant")
        .id;
    let ballast = disk.fill_leaving(600 * 1024);

    let mut acknowledged = Vec::new();
    let mut refused = 0;
    let mut other_errors = Vec::new();
    for n in 0..3000 {
        let m = message(&tenant, n);
        match store.insert_messages(std::slice::from_ref(&m)).await {
            Ok(()) => acknowledged.push(m.id),
            Err(StoreError::Unavailable(_)) => refused += 1,
            Err(e) => other_errors.push(e.to_string()),
        }
        if refused >= 200 {
            break;
        }
    }
    assert!(
        other_errors.is_empty(),
        "a full disk is reported as Unavailable: {:?}",
        &other_errors[..other_errors.len().min(3)]
    );
    assert!(refused > 0, "the disk never filled up");
    assert!(
        store.check_writable().await.is_err(),
        "the store says it cannot write"
    );

    std::fs::remove_file(&ballast).expect("free the space");
    for n in 3000..3100 {
        let m = message(&tenant, n);
        store
            .insert_messages(std::slice::from_ref(&m))
            .await
            .expect("writes work again once space returns, without a restart");
        acknowledged.push(m.id);
    }
    // It remembers the refusals of the last moments (`REFUSAL_MEMORY`), then says so.
    let deadline = std::time::Instant::now()
        + relais_store::REFUSAL_MEMORY
        + std::time::Duration::from_secs(2);
    while let Err(e) = store.check_writable().await {
        assert!(
            std::time::Instant::now() < deadline,
            "the store says it can write again: {e}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    store.close().await;

    let stored = stored_ids(&db).await;
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes are not in the database",
        lost.len(),
        acknowledged.len()
    );
}
