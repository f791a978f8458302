//! A throwaway PostgreSQL database for one test: created on a server named by
//! `RELAIS_TEST_POSTGRES_URL` (its maintenance database, default
//! `postgres://postgres@127.0.0.1:5432/postgres`), and dropped by `drop_database`. A test
//! that fails before that leaves it for inspection.

use crate::{PostgresStore, StoreResult};
use sqlx::Connection;
use std::sync::Arc;

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The maintenance database the scratch databases are created from.
pub fn admin_url() -> String {
    std::env::var("RELAIS_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.into())
}

/// A new database with nothing in it, not even the store's migrations (for upgrade tests).
pub struct EmptyDatabase {
    /// Where to connect to it.
    pub url: String,
    name: String,
    admin_url: String,
}

impl EmptyDatabase {
    /// A new database named `<prefix>_<random>`.
    pub async fn create(prefix: &str) -> StoreResult<EmptyDatabase> {
        let admin_url = admin_url();
        let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await?;
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(base, _)| base);
        Ok(EmptyDatabase {
            url: format!("{base}/{name}"),
            name,
            admin_url,
        })
    }

    /// Drops the database; errors are ignored (it is a clean-up).
    pub async fn drop_database(self) {
        if let Ok(mut admin) = sqlx::PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&mut admin)
            .await;
        }
    }
}

/// A new database with the store's migrations run, and the store on it.
pub struct ScratchDatabase {
    pub store: Arc<PostgresStore>,
    database: EmptyDatabase,
}

impl ScratchDatabase {
    /// A new database named `<prefix>_<random>`, with the store's migrations run.
    pub async fn create(prefix: &str) -> StoreResult<ScratchDatabase> {
        let database = EmptyDatabase::create(prefix).await?;
        let store = Arc::new(PostgresStore::connect(&database.url).await?);
        Ok(ScratchDatabase { store, database })
    }

    /// Closes the store and drops the database; errors are ignored (it is a clean-up).
    pub async fn drop_database(self) {
        self.store.close().await;
        self.database.drop_database().await;
    }
}
