//! Helpers shared by the interop tests and the benchmark: finding peers, running Kannel,
//! tiny HTTP pieces (no HTTP client crate needed for a GET).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Whether a peer is present; when it is not, fail under `RELAIS_REQUIRE_PEERS=1`, otherwise
/// say why the test skips.
pub fn peer_available(name: &str, present: bool) -> bool {
    if present {
        return true;
    }
    if std::env::var("RELAIS_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!(
            "{name} is not installed and RELAIS_REQUIRE_PEERS=1 (run scripts/install-smpp-peers.sh)"
        );
    }
    eprintln!("SKIP: {name} is not installed (run scripts/install-smpp-peers.sh)");
    false
}

pub fn has_python_module(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

pub const BEARERBOX: &str = "/usr/sbin/bearerbox";
pub const SMSBOX: &str = "/usr/sbin/smsbox";

pub fn has_kannel() -> bool {
    Path::new(BEARERBOX).exists() && Path::new(SMSBOX).exists()
}

/// Where `npm install smpp` put node-smpp (scripts/install-smpp-peers.sh).
pub fn node_smpp_dir() -> Option<PathBuf> {
    let base =
        std::env::var("RELAIS_NODE_PEERS").unwrap_or_else(|_| "/opt/relais-smpp-peers".into());
    let p = PathBuf::from(base);
    (p.join("node_modules/smpp/package.json").exists()
        && Command::new("node").arg("--version").output().is_ok())
    .then_some(p)
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// bearerbox + smsbox with an SMPP transceiver to `smsc_port`, killed on drop.
pub struct Kannel {
    pub dir: tempfile::TempDir,
    pub sendsms_port: u16,
    children: Vec<Child>,
}

impl Kannel {
    pub fn start(smsc_port: u16, window: usize) -> std::io::Result<Kannel> {
        Self::start_with(smsc_port, window, false)
    }

    /// [`Kannel::start`]; with `file_store`, bearerbox keeps every message in its store
    /// file until it is delivered to the SMSC (`store-type = file`), as a Kannel that must
    /// not lose accepted messages runs.
    pub fn start_with(smsc_port: u16, window: usize, file_store: bool) -> std::io::Result<Kannel> {
        let dir = tempfile::tempdir()?;
        let (admin, boxp, sendsms) = (free_port(), free_port(), free_port());
        let d = dir.path().display();
        let store = if file_store {
            format!("store-type = file\nstore-location = \"{d}/kannel.store\"\n")
        } else {
            String::new()
        };
        let conf = format!(
            r#"group = core
{store}admin-port = {admin}
admin-password = bar
smsbox-port = {boxp}
log-file = "{d}/bearerbox.log"
log-level = 2
access-log = "{d}/access.log"
box-allow-ip = "127.0.0.1"
dlr-storage = internal

group = smsc
smsc = smpp
smsc-id = sim
host = 127.0.0.1
port = {smsc_port}
transceiver-mode = true
smsc-username = "kannel"
smsc-password = "kannel"
system-type = ""
max-pending-submits = {window}
enquire-link-interval = 30

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {boxp}
sendsms-port = {sendsms}
log-file = "{d}/smsbox.log"
log-level = 2

group = sendsms-user
username = tester
password = foobar
concatenation = true
max-messages = 10

group = sms-service
keyword = default
text = "No service specified"
"#
        );
        let path = dir.path().join("kannel.conf");
        std::fs::write(&path, conf)?;
        let spawn = |bin: &str| {
            Command::new(bin)
                .args(["-v", "3"])
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        };
        let bb = spawn(BEARERBOX)?;
        std::thread::sleep(Duration::from_millis(500));
        let sb = spawn(SMSBOX)?;
        Ok(Kannel {
            dir,
            sendsms_port: sendsms,
            children: vec![sb, bb],
        })
    }

    /// Waits until smsbox answers HTTP (up to 30 s: with the rest of the suite running on
    /// two cores, bearerbox and smsbox took over 10 s to start once).
    pub async fn ready(&self) -> bool {
        for _ in 0..300 {
            if TcpStream::connect(("127.0.0.1", self.sendsms_port))
                .await
                .is_ok()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// The sendsms path for one message (dlr-mask 3 = delivered + failed).
    pub fn sendsms_path(&self, to: &str, text: &str, dlr_url: Option<&str>) -> String {
        let mut p = format!(
            "/cgi-bin/sendsms?username=tester&password=foobar&from=Relais&to={}&text={}",
            urlencode(to),
            urlencode(text)
        );
        if let Some(u) = dlr_url {
            p.push_str("&dlr-mask=3&dlr-url=");
            p.push_str(&urlencode(u));
        }
        p
    }
}

impl Drop for Kannel {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A keep-alive HTTP/1.1 connection issuing GETs and reading status + body.
pub struct HttpConn {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
    host: String,
}

impl HttpConn {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let (r, w) = s.into_split();
        Ok(Self {
            r: BufReader::new(r),
            w,
            host: addr.to_string(),
        })
    }

    /// Returns (status, body).
    pub async fn get(&mut self, path: &str) -> std::io::Result<(u16, String)> {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: keep-alive\r\n\r\n",
            self.host
        );
        self.w.write_all(req.as_bytes()).await?;
        self.read_response().await
    }

    /// A POST of a JSON body with an `Authorization` header; returns (status, body).
    pub async fn post_json(
        &mut self,
        path: &str,
        authorization: &str,
        body: &str,
    ) -> std::io::Result<(u16, String)> {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: keep-alive\r\nAuthorization: {authorization}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.w.write_all(req.as_bytes()).await?;
        self.read_response().await
    }

    async fn read_response(&mut self) -> std::io::Result<(u16, String)> {
        let mut line = String::new();
        self.r.read_line(&mut line).await?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut len = 0usize;
        loop {
            line.clear();
            if self.r.read_line(&mut line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; len];
        self.r.read_exact(&mut body).await?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// A minimal HTTP server counting requests whose query has `type=1` (Kannel DLR "delivered")
/// and recording every request line.
pub struct DlrSink {
    pub addr: SocketAddr,
    pub delivered: Arc<AtomicU64>,
    pub lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl DlrSink {
    pub async fn start() -> std::io::Result<DlrSink> {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        let delivered = Arc::new(AtomicU64::new(0));
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (d, ls) = (delivered.clone(), lines.clone());
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let (d, ls) = (d.clone(), ls.clone());
                tokio::spawn(async move {
                    let (r, mut w) = s.into_split();
                    let mut r = BufReader::new(r);
                    loop {
                        let mut first = String::new();
                        match r.read_line(&mut first).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        loop {
                            let mut h = String::new();
                            match r.read_line(&mut h).await {
                                Ok(0) | Err(_) => return,
                                Ok(_) if h.trim_end().is_empty() => break,
                                Ok(_) => {}
                            }
                        }
                        if first.contains("type=1") {
                            d.fetch_add(1, Ordering::Relaxed);
                        }
                        if let Ok(mut v) = ls.lock() {
                            v.push(first.trim_end().to_string());
                        }
                        let resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        if w.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Ok(DlrSink {
            addr,
            delivered,
            lines,
        })
    }
}

/// The SMSC simulator on a free port, stopped when the returned sender is dropped.
pub async fn simulator(
    cfg: relais_smpp::SimConfig,
) -> (relais_smpp::SimHandle, tokio::sync::oneshot::Sender<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let h = relais_smpp::simulator::start(
        relais_smpp::SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..cfg
        },
        async move {
            let _ = rx.await;
        },
    )
    .await
    .unwrap_or_else(|e| panic!("simulator: {e}"));
    (h, tx)
}

/// A client config for `sim` that reconnects quickly.
pub fn client_config(sim: &relais_smpp::SimHandle) -> relais_smpp::ClientConfig {
    relais_smpp::ClientConfig {
        host: "127.0.0.1".into(),
        port: sim.smpp_addr.port(),
        system_id: "relais".into(),
        password: "secret".into(),
        source_addr: "Relais".into(),
        reconnect_min_ms: 50,
        reconnect_max_ms: 200,
        ..relais_smpp::ClientConfig::default()
    }
}

/// Waits (at most 20 s, then panics naming `what`) until `done` holds.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !done() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
