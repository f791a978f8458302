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

#[tokio::test]
async fn an_event_log_from_before_0014_is_kept() {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("relais.db");
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let old = SqlitePool::connect_with(options).await.expect("open");
    sqlx::migrate!("./migrations/sqlite")
        .run_to(13, &old)
        .await
        .expect("schema 13");
    for statement in relais_store::conformance::PRE_0014_LOG {
        sqlx::query(*statement)
            .execute(&old)
            .await
            .expect("old rows");
    }
    old.close().await;
    let store = SqliteStore::open(&path).await.expect("upgrade");
    relais_store::conformance::an_event_log_from_before_0014_is_kept(&store).await;
}
