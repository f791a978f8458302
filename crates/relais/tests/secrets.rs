//! Secrets at rest, as an operator and an intruder with a copy of the data directory would
//! see them: the directory and everything Relais creates in it are its owner's alone, the
//! database holds no SMPP password or webhook secret in plain text, the channel still binds
//! and webhooks are still signed after a restart, and the wrong master key stops the start
//! with a message that names what it cannot open.

mod support;

use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{ADMIN_KEY, Server, free_port};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// The SMSC's password for Relais: 8 characters (SMPP 3.4), unlike anything else on disk.
const SMSC_PASSWORD: &str = "Zq7Wp2Kx";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Everything in the data directory and its mode.
fn modes(dir: &Path) -> Vec<(String, u32)> {
    let mut all: Vec<(String, u32)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                mode(&e.path()),
            )
        })
        .collect();
    all.sort();
    all
}

async fn api(server: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = support::client();
    let url = format!("{}{path}", server.base);
    let mut request = match method {
        "POST" => client.post(url),
        _ => client.get(url),
    }
    .bearer_auth(ADMIN_KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn everything_relais_creates_in_its_data_directory_is_for_its_owner_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data, free_port(), &[] as &[(&str, &str)]).await;
    // Written through the log, so that the -wal and -shm files exist.
    let (status, _) = api(
        &server,
        "POST",
        "/v1/messages",
        Some(json!({"to": "+33612345678", "channel": "sim", "content": {"text": "Hi"}})),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(mode(&data), 0o700, "the data directory");
    let found = modes(&data);
    let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "admin-api-key",
        "master-key",
        "relais.db",
        "relais.db-shm",
        "relais.db-wal",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    for (name, mode) in &found {
        assert_eq!(*mode, 0o600, "{name} is {mode:o}");
    }
}

#[tokio::test]
async fn a_data_directory_left_open_to_others_is_closed_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let port = free_port();
    let mut server = Server::start(&data, port, &[] as &[(&str, &str)]).await;
    server.kill();
    // As an older version, or a careless copy, left it.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (name, _) in modes(&data) {
        std::fs::set_permissions(data.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let server = Server::start(&data, port, &[] as &[(&str, &str)]).await;
    assert_eq!(mode(&data), 0o700);
    for (name, mode) in modes(&data) {
        assert_eq!(mode, 0o600, "{name} is {mode:o}");
    }
    let log = server.log_text();
    assert!(log.contains("readable by other users"), "{log}");
}

/// One POST a webhook receiver got.
#[derive(Debug, Clone)]
struct Post {
    headers: Vec<(String, String)>,
    body: String,
}

impl Post {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }

    /// Whether the post is signed with `secret`, the Standard Webhooks way.
    fn signed_with(&self, secret: &str) -> bool {
        let timestamp: i64 = self.header("webhook-timestamp").parse().unwrap();
        let expected =
            relais_engine::webhooks::sign(secret, self.header("webhook-id"), timestamp, &self.body)
                .unwrap();
        self.header("webhook-signature") == expected
    }
}

/// A minimal HTTP/1.1 receiver with keep-alive that records every POST and answers 200.
async fn receive_webhooks(listener: tokio::net::TcpListener, posts: Arc<Mutex<Vec<Post>>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let posts = posts.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut reader = BufReader::new(read);
            loop {
                let mut headers = Vec::new();
                let mut line = String::new();
                loop {
                    line.clear();
                    match reader.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let l = line.trim_end();
                    if l.is_empty() {
                        if headers.is_empty() {
                            continue;
                        }
                        break;
                    }
                    let (name, value) = l.split_once(':').unwrap_or((l, ""));
                    headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
                }
                let length: usize = headers
                    .iter()
                    .find(|(n, _)| n == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).await.is_err() {
                    return;
                }
                posts.lock().unwrap().push(Post {
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                if write.write_all(answer).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Waits until `done` holds, or fails with the server's log.
async fn wait_for(server: &Server, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen; the server's log:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every file of the data directory but the master key, as bytes.
fn data_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "master-key")
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_and_webhook_secrets_are_sealed_on_disk_and_still_work_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let smsc = relais_smpp::simulator::start(
        relais_smpp::SimConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            receipt_delay_ms: 5,
            system_id: Some("relais".into()),
            password: Some(SMSC_PASSWORD.into()),
            ..relais_smpp::SimConfig::default()
        },
        std::future::pending(),
    )
    .await
    .unwrap();
    let posts = Arc::new(Mutex::new(Vec::<Post>::new()));
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/relais", receiver.local_addr().unwrap());
    tokio::spawn(receive_webhooks(receiver, posts.clone()));
    let port = free_port();
    // The receiver is on this machine: the operator allows private webhook addresses.
    let local_hooks = [("RELAIS_WEBHOOK_ALLOW_PRIVATE", "1")];

    let mut server = Server::start(&data, port, &local_hooks).await;
    let (status, channel) = api(
        &server,
        "POST",
        "/v1/channels",
        Some(json!({"kind": "smpp", "name": "orange", "config": {
            "host": "127.0.0.1", "port": smsc.smpp_addr.port(), "system_id": "relais",
            "password": SMSC_PASSWORD, "binds": 1}})),
    )
    .await;
    assert_eq!(status, 201, "{channel}");
    assert!(!channel.to_string().contains(SMSC_PASSWORD));
    let (status, hook) = api(
        &server,
        "POST",
        "/v1/webhooks",
        Some(json!({"url": hook_url})),
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();
    let key = secret.trim_start_matches("whsec_").to_owned();

    let send = |text: &'static str| json!({"to": "+33612345678", "channel": "orange", "content": {"text": text}});
    let (status, _) = api(&server, "POST", "/v1/messages", Some(send("Avant"))).await;
    assert_eq!(status, 202);
    wait_for(&server, "the first submit", || {
        smsc.stats.submits.load(Ordering::Relaxed) >= 1
    })
    .await;
    wait_for(&server, "a webhook post", || {
        !posts.lock().unwrap().is_empty()
    })
    .await;
    assert!(posts.lock().unwrap()[0].signed_with(&secret));

    for (name, bytes) in data_files(&data) {
        assert!(
            !contains(&bytes, SMSC_PASSWORD),
            "the SMSC password in {name}"
        );
        assert!(!contains(&bytes, &key), "the webhook secret in {name}");
    }

    // A restart on the same data directory and its master key file.
    server.kill();
    posts.lock().unwrap().clear();
    let mut server = Server::start(&data, port, &local_hooks).await;
    let (status, _) = api(&server, "POST", "/v1/messages", Some(send("Après"))).await;
    assert_eq!(status, 202);
    wait_for(&server, "a submit after the restart", || {
        smsc.stats.submits.load(Ordering::Relaxed) >= 2
    })
    .await;
    wait_for(&server, "a webhook post after the restart", || {
        !posts.lock().unwrap().is_empty()
    })
    .await;
    let after = posts.lock().unwrap().clone();
    assert!(after.iter().all(|p| p.signed_with(&secret)), "{after:?}");
    server.kill();

    // Another master key: the start stops and says what it cannot open.
    let (_, other_key) = relais_engine::secrets::SecretBox::generate();
    let out = support::relais()
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("RELAIS_DATA_DIR", &data)
        .env("RELAIS_ADMIN_KEY", ADMIN_KEY)
        .env("RELAIS_MASTER_KEY", other_key)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("channel `orange`"), "{stderr}");
    assert!(stderr.contains("RELAIS_MASTER_KEY"), "{stderr}");
    assert!(!stderr.contains(SMSC_PASSWORD), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_stored_in_plain_text_before_are_sealed_at_the_next_start() {
    use relais_store::{ChannelStore, MessageStore, Store};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let port = free_port();
    let mut server = Server::start(&data, port, &[] as &[(&str, &str)]).await;
    server.kill();
    // Rows as a version without encryption at rest wrote them.
    let store = relais_store::SqliteStore::open(&data.join("relais.db"))
        .await
        .unwrap();
    let tenant = store.tenant_by_name("default").await.unwrap().unwrap().id;
    let now = jiff::Timestamp::now();
    let channel = store
        .create_channel(
            &relais_store::NewChannel {
                tenant_id: tenant.clone(),
                kind: "smpp".into(),
                name: "legacy".into(),
                config: json!({"host": "127.0.0.1", "port": 1, "system_id": "old",
                    "password": SMSC_PASSWORD}),
            },
            now,
        )
        .await
        .unwrap();
    store
        .create_webhook(&tenant, "https://example.com/h", "whsec_c2VjcmV0", now)
        .await
        .unwrap();
    drop(store);

    let mut server = Server::start(&data, port, &[] as &[(&str, &str)]).await;
    server.kill();
    let store = relais_store::SqliteStore::open(&data.join("relais.db"))
        .await
        .unwrap();
    let stored = store.channel(&tenant, &channel.id).await.unwrap().unwrap();
    let password = stored.config["password"].as_str().unwrap();
    assert!(password.starts_with("enc:v1:"), "{password}");
    let hooks = store.webhooks(&tenant).await.unwrap();
    assert!(
        hooks[0].secret.starts_with("enc:v1:"),
        "{}",
        hooks[0].secret
    );
}
