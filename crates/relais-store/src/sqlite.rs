//! The embedded backend: one SQLite file in WAL mode.
//!
//! SQLite allows one writer at a time; a dedicated single-connection write pool queues
//! writers inside the process instead of letting them fail with SQLITE_BUSY, while reads
//! run in parallel on their own pool.

use crate::{Backend, Durability, StoreOptions, StoreResult, sql::impl_sql_store};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    /// The connection that copies the write-ahead log into the database file.
    checkpoint: SqlitePool,
    checkpointer: tokio::task::JoinHandle<()>,
    wal_watcher: tokio::task::JoinHandle<()>,
    wal: std::sync::Arc<WalState>,
    config: crate::config_cache::ConfigCache,
}

/// How often the write-ahead log is copied into the database file (a PASSIVE checkpoint,
/// which never waits for anyone). Pages the send pipeline rewrites several times within a
/// second (a message's row through its statuses) are copied once per checkpoint.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// How often the checkpointer looks at the log's size (as the watcher last saw it).
const WAL_SIZE_CHECK_EVERY: Duration = Duration::from_millis(100);

/// Above this size the log is checkpointed and started over even if that makes writers
/// and readers wait. A PASSIVE checkpoint copies the log but SQLite only starts the log
/// over when no reader still reads from it; with requests reading all the time that
/// moment never came, and the log grew to 2.4 GB in a minute of single sends. RESTART
/// waits for the readers of the moment (milliseconds) and blocks writers while it copies
/// what the PASSIVE before it left; the next write then starts at the file's beginning.
/// It does not cut the file: TRUNCATE did, and writers waited 26-41 ms for it about once
/// a second under `relais bench inbound` (p99 52-60 ms; 29-34 ms with RESTART).
pub const WAL_RESTART_AT: u64 = 32 * 1024 * 1024;

/// When the log starts over, SQLite cuts the file back to this size: the size it is
/// restarted at, so that a steady load reuses the same blocks instead of cutting and
/// growing the file every time.
const JOURNAL_SIZE_LIMIT: u64 = WAL_RESTART_AT;

/// Past this size writes wait until the log is started over. The checkpointer copies the
/// log once a second without holding anyone (PASSIVE), and that copy takes longer as the
/// database grows: 8,000 single sends a second write 50 MB of log a second, and the log
/// reached 136-145 MiB while a copy ran. Holding writes is what bounds it.
pub const WAL_HOLD_WRITES_AT: u64 = 96 * 1024 * 1024;

/// How often the watcher looks at the log's size (one `stat`): at 50 MB/s, 1 MB of log
/// between looks.
const WAL_WATCH_EVERY: Duration = Duration::from_millis(20);

/// The longest a write waits for the log to start over. The checkpoint waits for readers
/// up to the busy timeout (10 s); a write then goes on rather than fail.
const WRITES_HELD_AT_MOST: Duration = Duration::from_secs(12);

/// After a checkpoint could not start the log over (something read the database for
/// longer than the busy timeout), writes are not held again for this long: holding them
/// would stop the service for as long as that reader runs, and the log grows instead.
const HOLD_PAUSED_AFTER_BUSY: Duration = Duration::from_secs(30);

/// What the watcher, the checkpointer and the writers share about the log.
struct WalState {
    path: PathBuf,
    /// The log's size at the watcher's last look.
    seen_size: std::sync::atomic::AtomicU64,
    /// True while writes wait for the log to start over.
    hold: tokio::sync::watch::Sender<bool>,
    /// The file keeps its size after a RESTART until the next commit starts the log over
    /// and cuts it back: until then its size says nothing new.
    size_at_restart: std::sync::atomic::AtomicU64,
    hold_paused_until: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl WalState {
    fn size(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    fn is_news(&self, size: u64) -> bool {
        size != self
            .size_at_restart
            .load(std::sync::atomic::Ordering::Acquire)
    }

    fn hold_paused(&self) -> bool {
        self.hold_paused_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|until| tokio::time::Instant::now() < until)
    }
}

/// Holds writes whenever the log passes [`WAL_HOLD_WRITES_AT`], until the checkpointer
/// has started it over.
async fn watch_wal(pool: SqlitePool, wal: std::sync::Arc<WalState>) {
    let mut tick = tokio::time::interval(WAL_WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        let size = wal.size();
        wal.seen_size
            .store(size, std::sync::atomic::Ordering::Release);
        if *wal.hold.borrow() {
            continue;
        }
        if size > WAL_HOLD_WRITES_AT && wal.is_news(size) && !wal.hold_paused() {
            tracing::debug!(wal_bytes = size, "writes wait for the log to start over");
            wal.hold.send_replace(true);
        }
    }
}

/// Waits, before a write, while writes are held for the log.
async fn room_in_the_log(mut hold: tokio::sync::watch::Receiver<bool>) {
    if !*hold.borrow() {
        return;
    }
    let _ = tokio::time::timeout(WRITES_HELD_AT_MOST, hold.wait_for(|held| !held)).await;
}

/// Checkpoints the write-ahead log until the store closes: PASSIVE every second, RESTART
/// whenever the log passed [`WAL_RESTART_AT`] or writes are held.
async fn checkpoint_wal(pool: SqlitePool, wal: std::sync::Arc<WalState>) {
    let mut tick = tokio::time::interval(WAL_SIZE_CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut held = wal.hold.subscribe();
    let mut last_passive = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Ok(_) = held.wait_for(|held| *held) => {}
        }
        if pool.is_closed() {
            return;
        }
        let holding = *wal.hold.borrow();
        let size = wal.seen_size.load(std::sync::atomic::Ordering::Acquire);
        let mode = if holding || (size > WAL_RESTART_AT && wal.is_news(size)) {
            "RESTART"
        } else if last_passive.elapsed() >= CHECKPOINT_EVERY {
            "PASSIVE"
        } else {
            continue;
        };
        last_passive = tokio::time::Instant::now();
        if mode == "RESTART" && !holding && size <= 2 * WAL_RESTART_AT {
            // Most of the log is copied first without holding anyone up; the RESTART,
            // which blocks writers while it runs, then copies only what came meanwhile.
            // Past twice the bound (writers faster than the copies), writers wait for
            // the whole copy instead, so that the log stops growing at once.
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&pool)
                .await
            {
                tracing::debug!(error = %e, "the checkpoint before a restart failed");
            }
        }
        let statement = if mode == "RESTART" {
            "PRAGMA wal_checkpoint(RESTART)"
        } else {
            "PRAGMA wal_checkpoint(PASSIVE)"
        };
        let outcome = sqlx::query(statement).fetch_one(&pool).await;
        if mode == "RESTART" {
            use sqlx::Row;
            // (busy, frames in the log, frames copied): busy = 1 when a RESTART could not
            // finish (a reader or writer outlasted the busy timeout).
            let busy = outcome
                .as_ref()
                .map(|row| row.try_get::<i64, _>(0).unwrap_or(0) != 0)
                .unwrap_or(true);
            let after = wal.size();
            if busy {
                wal.size_at_restart
                    .store(u64::MAX, std::sync::atomic::Ordering::Release);
                *wal.hold_paused_until
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) =
                    Some(tokio::time::Instant::now() + HOLD_PAUSED_AFTER_BUSY);
                tracing::warn!(
                    wal_bytes = size,
                    "the write-ahead log is large and could not be started over (busy); trying again"
                );
            } else {
                wal.size_at_restart
                    .store(after, std::sync::atomic::Ordering::Release);
                tracing::debug!(before = size, after, "write-ahead log started over");
            }
            if holding {
                wal.hold.send_replace(false);
            }
        }
        if let Err(e) = outcome {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(error = %e, mode, "cannot checkpoint the write-ahead log");
        }
    }
}

/// Whether a connection the pool is about to hand out is clean: no transaction left open
/// inside SQLite or in sqlx's bookkeeping. A commit that failed with SQLITE_FULL left the
/// connection inside a transaction that sqlx believed closed; every later "transaction"
/// became a savepoint inside it, answered success and was never committed (3,200 of 3,900
/// acknowledged messages lost in one run). Such a connection is closed (SQLite rolls back
/// what it held) and the pool opens a fresh one.
async fn connection_is_clean(conn: &mut sqlx::SqliteConnection) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    // Only an error can leave a transaction open; looking costs a round trip to the
    // connection's thread per write, so it is done only after one was seen.
    if !crate::ERROR_SEEN.swap(false, std::sync::atomic::Ordering::AcqRel) {
        return Ok(true);
    }
    // Locking the handle waits for the commands queued before it (the rollback of a
    // dropped transaction), so the checks below see their outcome.
    let mut handle = conn.lock_handle().await?;
    // SAFETY: the handle is a live sqlite3 connection, locked for this thread's use;
    // sqlite3_get_autocommit only reads its state.
    let autocommit =
        unsafe { libsqlite3_sys::sqlite3_get_autocommit(handle.as_raw_handle().as_ptr()) } != 0;
    drop(handle);
    let clean = autocommit && !conn.is_in_transaction();
    if !clean {
        tracing::error!(
            autocommit,
            "a store connection was left inside a failed transaction; closing it"
        );
    }
    Ok(clean)
}

/// Page cache of each connection, in KiB (SQLite's negative `cache_size`): at most
/// 64 + 4 × 16 + 2 = 130 MiB in all.
const WRITER_CACHE: &str = "-65536";
const READER_CACHE: &str = "-16384";
const CHECKPOINTER_CACHE: &str = "-2048";
const READERS: u32 = 4;

impl SqliteStore {
    /// Opens (creating if needed) the database file and runs migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        Self::open_with(path, StoreOptions::default()).await
    }

    /// [`SqliteStore::open`] with options.
    pub async fn open_with(path: &Path, store_options: StoreOptions) -> StoreResult<Self> {
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
            // guarantees); only an OS crash or a power cut may lose the last transactions.
            // FULL syncs the log at every commit.
            .synchronous(match store_options.durability {
                Durability::Normal => SqliteSynchronous::Normal,
                Durability::Fsync => SqliteSynchronous::Full,
            })
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("cache_size", WRITER_CACHE)
            .pragma("temp_store", "memory")
            // No connection checkpoints on commit: the writer would stall for the copy
            // (80-90 ms per 10,000 pages) with every other write queued behind it. The
            // checkpointer below does it on its own connection, beside the writer.
            .pragma("wal_autocheckpoint", "0")
            .pragma("journal_size_limit", JOURNAL_SIZE_LIMIT.to_string())
            // No memory map: mapped pages count in the process's memory and grow with the
            // database; the page caches below are what bounds it.
            .pragma("mmap_size", "0")
            // sqlx's SQLite thread hands result rows to the caller through a channel of
            // this many; at the default (50) a 1,000-row claim stalled the one writer until
            // a busy caller had decoded most of them, and every other write waited.
            .row_buffer_size(4096);
        // sqlx pings a pooled connection before lending it, by default: for SQLite, a
        // round trip to the connection's thread per statement that can only find the
        // thread gone, which the statement itself reports as well.
        let mut wal_path = path.as_os_str().to_owned();
        wal_path.push("-wal");
        let wal = std::sync::Arc::new(WalState {
            path: PathBuf::from(wal_path),
            seen_size: std::sync::atomic::AtomicU64::new(0),
            hold: tokio::sync::watch::Sender::new(false),
            size_at_restart: std::sync::atomic::AtomicU64::new(u64::MAX),
            hold_paused_until: Default::default(),
        });
        let hold = wal.hold.subscribe();
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .before_acquire(move |conn, _meta| {
                let hold = hold.clone();
                Box::pin(async move {
                    room_in_the_log(hold).await;
                    connection_is_clean(conn).await
                })
            })
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&write).await?;
        // The page caches bound the memory (they fill as the database grows): the writer's
        // is large, for the index pages every insert touches; the readers' serve lookups of
        // recent rows; the checkpointer copies pages and needs next to none.
        let checkpoint = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone().pragma("cache_size", CHECKPOINTER_CACHE))
            .await?;
        let checkpointer = tokio::spawn(checkpoint_wal(checkpoint.clone(), wal.clone()));
        let wal_watcher = tokio::spawn(watch_wal(checkpoint.clone(), wal.clone()));
        let read = SqlitePoolOptions::new()
            .max_connections(READERS)
            .test_before_acquire(false)
            .connect_with(options.read_only(true).pragma("cache_size", READER_CACHE))
            .await?;
        Ok(SqliteStore {
            write,
            read,
            checkpoint,
            checkpointer,
            wal_watcher,
            wal,
            config: Default::default(),
        })
    }

    pub(crate) fn config(&self) -> &crate::config_cache::ConfigCache {
        &self.config
    }

    pub(crate) fn writer(&self) -> &SqlitePool {
        &self.write
    }

    /// A transaction on the writer that takes SQLite's write lock at its start, waiting
    /// for it up to the busy timeout. sqlx's `begin()` says `BEGIN` (DEFERRED): the lock
    /// is then taken by the first write, and if the transaction read before it, SQLite
    /// answers SQLITE_BUSY at once, without calling the busy handler, whenever another
    /// connection holds the lock. The checkpointer's RESTART holds it while it waits for
    /// the readers of an older snapshot: the consent of a STOP (it reads its contact
    /// first) failed with "database is locked" about once per 20,000 messages of
    /// `relais bench inbound`.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.write.begin_with("BEGIN IMMEDIATE").await
    }

    pub(crate) fn reader(&self) -> &SqlitePool {
        &self.read
    }

    /// Tables whose rows follow a contact through a merge.
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
        self.checkpointer.abort();
        self.wal_watcher.abort();
        // Nobody will start the log over now: writes that wait for it go on.
        self.wal.hold.send_replace(false);
        self.checkpoint.close().await;
        self.write.close().await;
        self.read.close().await;
    }
}

/// The memory SQLite holds in this process, page caches included, in bytes.
pub fn sqlite_memory_bytes() -> u64 {
    // SAFETY: reads a counter that SQLite keeps under its own mutex; callable at any time.
    let used = unsafe { libsqlite3_sys::sqlite3_memory_used() };
    u64::try_from(used).unwrap_or(0)
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.checkpointer.abort();
        self.wal_watcher.abort();
    }
}

impl_sql_store!(SqliteStore, sqlx::Sqlite, Backend::Sqlite);
