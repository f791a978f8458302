//! The embedded backend: one SQLite file in WAL mode.
//!
//! SQLite allows one writer at a time; a dedicated single-connection write pool queues
//! writers inside the process instead of letting them fail with SQLITE_BUSY, while reads
//! run in parallel on their own pool.

use crate::{Backend, StoreResult, sql::impl_sql_store};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
use std::time::Duration;

pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and runs migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                crate::StoreError::Invalid(format!(
                    "cannot create data directory {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL with NORMAL is durable against process crashes (the case the outbox
            // guarantees); only an OS crash may lose the last transactions.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("cache_size", "-65536")
            .pragma("temp_store", "memory")
            // Pages the send pipeline rewrites many times (a message's row moves through
            // four statuses in a second) are copied to the database file once per
            // checkpoint: fewer, larger checkpoints copy each of them fewer times.
            .pragma("wal_autocheckpoint", "10000")
            // Reads from the mapped file instead of a read() per page.
            .pragma("mmap_size", "268435456")
            // sqlx's SQLite thread hands result rows to the caller through a channel of
            // this many; at the default (50) a 1,000-row claim stalled the one writer until
            // a busy caller had decoded most of them, and every other write waited.
            .row_buffer_size(4096);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteStore { write, read })
    }

    pub(crate) fn writer(&self) -> &SqlitePool {
        &self.write
    }

    pub(crate) fn reader(&self) -> &SqlitePool {
        &self.read
    }

    /// Tables whose rows follow a contact through a merge.
    pub(crate) fn contact_history_tables(&self) -> &'static [&'static str] {
        &["identities", "consents", "messages", "inbound_messages"]
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

impl_sql_store!(SqliteStore, sqlx::Sqlite, Backend::Sqlite);
