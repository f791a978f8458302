//! The storage conformance suite on PostgreSQL. Each test gets its own database, dropped
//! afterwards. `RELAIS_TEST_POSTGRES_URL` names the server's maintenance database
//! (default `postgres://postgres@127.0.0.1:5432/postgres`); these tests fail, not skip,
//! when it cannot be reached, so CI cannot pass without PostgreSQL.

use relais_store::{PostgresStore, Store};
use sqlx::Connection;
use std::sync::Arc;

fn admin_url() -> String {
    std::env::var("RELAIS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

struct Fixture {
    store: Arc<dyn Store>,
    pg: Arc<PostgresStore>,
    name: String,
}

impl Fixture {
    async fn finish(self) {
        self.pg.close().await;
        drop(self.store);
        if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url()).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&mut admin)
            .await;
        }
    }
}

async fn fresh() -> Fixture {
    let admin = admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is required for this suite: {e}"));
    let name = format!("relais_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b.to_owned())
        .unwrap_or(admin.clone());
    let pg = Arc::new(
        PostgresStore::connect(&format!("{base}/{name}"))
            .await
            .expect("connect test database"),
    );
    Fixture {
        store: pg.clone(),
        pg,
        name,
    }
}

relais_store::conformance_suite!(fresh);
