//! Runs the real `relais` binary for tests that need a server process of their own.

#![allow(dead_code)]

pub mod inbound;

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN_KEY: &str = "rls_test_admin_key_for_process_tests_0123456789";

/// A `relais serve` process; killed when dropped so that a failed test leaves none behind.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
}

/// An HTTP client; reqwest is built without a default TLS crypto provider.
pub fn client() -> reqwest::Client {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

pub fn relais() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_relais"));
    // The tests' own settings only: nothing from the environment of whoever runs them.
    for var in [
        "RELAIS_DATABASE_URL",
        "RELAIS_CONFIG",
        "RELAIS_LISTEN",
        "RELAIS_DATA_DIR",
        "RELAIS_API_KEY",
        "RELAIS_SERVER",
        "RELAIS_DEFAULT_COUNTRY",
        "RELAIS_SIM_SINK_URL",
        "RELAIS_DISPATCH_RATE",
        "RELAIS_DISPATCH_LEASE",
        "RELAIS_MASTER_KEY",
        "RELAIS_WEBHOOK_ALLOW_PRIVATE",
        "RELAIS_WEBHOOK_LOG_DAYS",
        "RELAIS_DURABILITY",
    ] {
        cmd.env_remove(var);
    }
    // A test binary killed outright (a CI timeout, a second ^C) runs no destructor: without
    // this its servers would live on, each holding a port and some CPU. The kernel kills
    // the child when the thread that started it ends (a test's own thread).
    // SAFETY: the closure runs between fork and exec and makes one syscall.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

impl Server {
    /// Starts `relais serve` on `data_dir` and waits until `/healthz` answers.
    pub async fn start<V: AsRef<std::ffi::OsStr>>(
        data_dir: &Path,
        port: u16,
        env: &[(&str, V)],
    ) -> Server {
        let log = data_dir.with_extension(format!("{port}.log"));
        Server::start_logging_to(data_dir, port, env, log).await
    }

    /// As `start`, with the server's log in `log`.
    pub async fn start_logging_to<V: AsRef<std::ffi::OsStr>>(
        data_dir: &Path,
        port: u16,
        env: &[(&str, V)],
        log: PathBuf,
    ) -> Server {
        let log_file = std::fs::File::create(&log).expect("create the server log");
        let mut cmd = relais();
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("RELAIS_DATA_DIR", data_dir)
            .env("RELAIS_ADMIN_KEY", ADMIN_KEY)
            .env("RELAIS_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log_file);
        for (k, v) in env {
            cmd.env(k, v.as_ref());
        }
        let child = cmd.spawn().expect("start relais serve");
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        server.wait_healthy().await;
        server
    }

    async fn wait_healthy(&self) {
        let client = client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{}/healthz", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "relais serve did not become healthy; its log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL on Unix: no shutdown code runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

const STATUSES: &str = "SELECT id, status FROM messages";

/// One read-only connection to the SQLite database `db` (a server may be writing it);
/// `None` while it cannot be opened.
async fn read_only_sqlite(db: &Path) -> Option<sqlx::SqlitePool> {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .read_only(true);
    sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .ok()
}

/// Every message's status, by id, read (read-only) from the SQLite database `db`; empty
/// while it cannot be read.
pub async fn sqlite_statuses(db: &Path) -> HashMap<String, String> {
    let Some(pool) = read_only_sqlite(db).await else {
        return HashMap::new();
    };
    let rows: Vec<(String, String)> = sqlx::query_as(STATUSES)
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
    pool.close().await;
    rows.into_iter().collect()
}

/// [`sqlite_statuses`] from the PostgreSQL database at `url`.
pub async fn postgres_statuses(url: &str) -> HashMap<String, String> {
    let Ok(pool) = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
    else {
        return HashMap::new();
    };
    let rows: Vec<(String, String)> = sqlx::query_as(STATUSES)
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
    pool.close().await;
    rows.into_iter().collect()
}

/// A message's event log, and its outbox row's due time, attempts and lease (owner, until).
type Whereabouts = (
    String,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
);

/// The event log and outbox row of each message in `ids` (SQLite), to say why a message
/// is stuck when a test finds one.
pub async fn sqlite_whereabouts(db: &Path, ids: &[&String]) -> Vec<String> {
    let Some(pool) = read_only_sqlite(db).await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for id in ids {
        let row: Option<Whereabouts> = sqlx::query_as(
            "SELECT m.events, o.due_at, o.attempts, o.lease_owner, o.lease_until \
                 FROM messages m LEFT JOIN outbox o ON o.message_id = m.id WHERE m.id = ?",
        )
        .bind(id.as_str())
        .fetch_optional(&pool)
        .await
        .unwrap_or_default();
        out.push(format!("{id}: {row:?}"));
    }
    pool.close().await;
    out
}

/// Where a server keeps its messages: a test reads the outcome from there.
pub enum Database {
    Sqlite(PathBuf),
    Postgres(relais_store::scratch::EmptyDatabase),
}

impl Database {
    /// The server's environment for this database.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Database::Sqlite(_) => Vec::new(),
            Database::Postgres(db) => vec![("RELAIS_DATABASE_URL", db.url.clone())],
        }
    }

    /// Every message's status, by id.
    pub async fn statuses(&self) -> HashMap<String, String> {
        match self {
            Database::Sqlite(path) => sqlite_statuses(path).await,
            Database::Postgres(db) => postgres_statuses(&db.url).await,
        }
    }

    /// What became of the customers' messages and the bot's answers.
    pub async fn answered(&self) -> inbound::Answered {
        match self {
            Database::Sqlite(path) => inbound::Answered::read_sqlite(path).await,
            Database::Postgres(db) => inbound::Answered::read_postgres(&db.url).await,
        }
    }

    /// Drops a PostgreSQL database made for the test.
    pub async fn finish(self) {
        if let Database::Postgres(db) = self {
            db.drop_database().await;
        }
    }
}
