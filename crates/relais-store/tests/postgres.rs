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

#[tokio::test]
async fn an_event_log_from_before_0014_is_kept() {
    let database = relais_store::scratch::EmptyDatabase::create("relais_upgrade")
        .await
        .expect("PostgreSQL is required for this suite");
    let old = sqlx::PgPool::connect(&database.url).await.expect("connect");
    sqlx::migrate!("./migrations/postgres")
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
    let store = relais_store::PostgresStore::connect(&database.url)
        .await
        .expect("upgrade");
    relais_store::conformance::an_event_log_from_before_0014_is_kept(&store).await;
    store.close().await;
    database.drop_database().await;
}
