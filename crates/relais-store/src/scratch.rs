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

/// A small tmpfs mounted on a directory for a fault test (a full disk), unmounted on drop.
/// Mounting needs root, which CI has.
pub struct SmallDisk {
    dir: std::path::PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it: `8m`) on `dir`, which must
    /// exist. Without the privilege to mount, `None`, after saying so, unless
    /// `RELAIS_REQUIRE_FAULT_TESTS=1` (set by `scripts/test.sh` when it runs as root), which
    /// makes it a panic: there a skipped fault test would hide a failure.
    pub fn mount_for_test(dir: &std::path::Path, size: &str) -> Option<SmallDisk> {
        let status = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .status();
        if status.is_ok_and(|s| s.success()) {
            return Some(SmallDisk {
                dir: dir.to_path_buf(),
            });
        }
        let required = std::env::var("RELAIS_REQUIRE_FAULT_TESTS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "cannot mount a tmpfs (the disk-full tests need root)"
        );
        eprintln!("skipped: cannot mount a tmpfs (the disk-full tests need root)");
        None
    }

    pub fn path(&self) -> &std::path::Path {
        &self.dir
    }

    /// Bytes free on the disk.
    pub fn free_bytes(&self) -> u64 {
        let out = std::process::Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.dir)
            .output();
        out.ok()
            .and_then(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .nth(1)
                    .and_then(|l| l.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// Fills the disk with a ballast file, leaving about `free` bytes; returns its path
    /// (remove it to give the space back).
    pub fn fill_leaving(&self, free: u64) -> std::path::PathBuf {
        use std::io::Write;
        let ballast = self.dir.join("ballast");
        let Ok(mut file) = std::fs::File::create(&ballast) else {
            return ballast;
        };
        let chunk = vec![7u8; 64 * 1024];
        loop {
            let available = self.free_bytes();
            let n = usize::try_from(available.saturating_sub(free).min(chunk.len() as u64))
                .unwrap_or(0);
            if n == 0 || file.write_all(&chunk[..n]).is_err() {
                break;
            }
            let _ = file.flush();
        }
        ballast
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}
