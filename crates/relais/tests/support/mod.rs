//! Runs the real `relais` binary for tests that need a server process of their own.

#![allow(dead_code)]

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
    ] {
        cmd.env_remove(var);
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
