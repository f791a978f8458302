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
    /// The connection that copies the write-ahead log into the database file.
    checkpoint: SqlitePool,
    checkpointer: tokio::task::JoinHandle<()>,
}

/// How often the write-ahead log is copied into the database file. Pages the send pipeline
/// rewrites several times within a second (a message's row through its statuses) are
/// copied once per checkpoint; the log holds about a second of writes (30 MB at the pace
/// of `relais bench smpp`).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Checkpoints the write-ahead log until the store closes. PASSIVE never waits for the
/// writer or the readers: what it cannot copy now it copies next time, and SQLite starts
/// the log over once a checkpoint has copied all of it.
async fn checkpoint_wal(pool: SqlitePool) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(error = %e, "cannot checkpoint the write-ahead log");
        }
    }
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
            // No connection checkpoints on commit: the writer would stall for the copy
            // (80-90 ms per 10,000 pages) with every other write queued behind it. The
            // checkpointer below does it on its own connection, beside the writer.
            .pragma("wal_autocheckpoint", "0")
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
        let checkpoint = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        let checkpointer = tokio::spawn(checkpoint_wal(checkpoint.clone()));
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteStore {
            write,
            read,
            checkpoint,
            checkpointer,
        })
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
        self.checkpointer.abort();
        self.checkpoint.close().await;
        self.write.close().await;
        self.read.close().await;
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.checkpointer.abort();
    }
}

impl_sql_store!(SqliteStore, sqlx::Sqlite, Backend::Sqlite);
