//! The shared backend: PostgreSQL, for several `relais serve` nodes on one database.

use crate::{Backend, StoreResult, sql::impl_sql_store};
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::time::Duration;

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects and runs migrations (sqlx holds an advisory lock, so nodes starting
    /// together migrate once).
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PostgresStore { pool })
    }

    pub(crate) fn writer(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) fn reader(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) fn contact_history_tables(&self) -> &'static [&'static str] {
        &["identities", "consents", "messages", "inbound_messages"]
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl_sql_store!(PostgresStore, sqlx::Postgres, Backend::Postgres);
