//! The shared backend: PostgreSQL, for several `relais serve` nodes on one database.

use crate::{Backend, Durability, StoreOptions, StoreResult, sql::impl_sql_store};
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::time::Duration;

pub struct PostgresStore {
    pool: PgPool,
    config: crate::config_cache::ConfigCache,
}

impl PostgresStore {
    /// Connects and runs migrations (sqlx holds an advisory lock, so nodes starting
    /// together migrate once).
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(url, StoreOptions::default()).await
    }

    /// [`PostgresStore::connect`] with options.
    pub async fn connect_with(url: &str, options: StoreOptions) -> StoreResult<Self> {
        let synchronous_commit = match options.durability {
            // The server's WAL is flushed at most 3 × wal_writer_delay (600 ms by default)
            // after the commit: a crash of Relais loses nothing, a crash of the database
            // server or its machine may lose the last commits, never consistency.
            Durability::Normal => "off",
            Durability::Fsync => "on",
        };
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SET synchronous_commit = {synchronous_commit}"
                    )))
                    .execute(conn)
                    .await?;
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PostgresStore {
            pool,
            config: Default::default(),
        })
    }

    pub(crate) fn config(&self) -> &crate::config_cache::ConfigCache {
        &self.config
    }

    pub(crate) fn writer(&self) -> &PgPool {
        &self.pool
    }

    /// A transaction for writes: a plain `BEGIN`, since PostgreSQL locks rows as they are
    /// written (SQLite's store takes its one write lock up front, see sqlite.rs).
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        #[allow(clippy::disallowed_methods)]
        self.pool.begin().await
    }

    pub(crate) fn reader(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) fn contact_history_tables(&self) -> &'static [&'static str] {
        &[
            "identities",
            "consents",
            "messages",
            "inbound_messages",
            "flow_answers",
        ]
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl_sql_store!(PostgresStore, sqlx::Postgres, Backend::Postgres);
