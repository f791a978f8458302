//! A `relais serve` killed with SIGKILL in the middle of sending loses no accepted message,
//! and after a restart on the same data directory every message reaches the provider once.
//!
//! The provider is an HTTP sink outside the process (`RELAIS_SIM_SINK_URL`): it sees every
//! send of the `sim` channel with the Relais message id as its idempotency key, counts raw
//! deliveries and dedupes on the key, as a provider that takes a client reference does.
//! The dispatcher settles a round of sends in one transaction, so the sends of the round
//! in flight at the kill may reach the sink twice; the key makes them count once.

mod support;

use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{ADMIN_KEY, Server, free_port};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const MESSAGES: usize = 10_000;
const BATCH: usize = 1000;
/// Messages the dispatcher has in flight at most (`RELAIS_DISPATCH_BATCH`): a round is
/// settled in one transaction, so a kill can catch at most one round acknowledged by the
/// provider and not yet recorded.
const IN_FLIGHT: usize = 100;

/// Raw deliveries per idempotency key.
#[derive(Default)]
struct Sink {
    seen: Mutex<HashMap<String, u32>>,
}

impl Sink {
    fn unique(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
    fn snapshot(&self) -> HashMap<String, u32> {
        self.seen.lock().unwrap().clone()
    }
}

/// A minimal HTTP/1.1 server with keep-alive: records the `idempotency-key` of each POST
/// and answers 200.
async fn run_sink(listener: tokio::net::TcpListener, sink: Arc<Sink>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let sink = sink.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut reader = BufReader::new(read);
            loop {
                let mut key = None;
                let mut length = 0usize;
                let mut line = String::new();
                // Request line, then headers up to the blank line.
                let mut first = true;
                loop {
                    line.clear();
                    match reader.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let l = line.trim_end();
                    if l.is_empty() {
                        if first {
                            continue;
                        }
                        break;
                    }
                    first = false;
                    if let Some((name, value)) = l.split_once(':') {
                        let name = name.trim().to_ascii_lowercase();
                        if name == "content-length" {
                            length = value.trim().parse().unwrap_or(0);
                        } else if name == "idempotency-key" {
                            key = Some(value.trim().to_owned());
                        }
                    }
                }
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).await.is_err() {
                    return;
                }
                let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                if let Some(key) = key {
                    assert_eq!(
                        body["message_id"].as_str(),
                        Some(key.as_str()),
                        "the idempotency key is the message id"
                    );
                    *sink.seen.lock().unwrap().entry(key).or_default() += 1;
                }
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                if write.write_all(answer).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Messages by status, read from the data directory's database.
async fn statuses(db: &std::path::Path) -> HashMap<String, i64> {
    let mut counts = HashMap::new();
    for status in support::sqlite_statuses(db).await.into_values() {
        *counts.entry(status).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_send_loses_nothing_and_sends_each_message_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sink = Arc::new(Sink::default());
    let sink_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_url = format!("http://{}/sms", sink_listener.local_addr().unwrap());
    tokio::spawn(run_sink(sink_listener, sink.clone()));
    let port = free_port();
    let env = |rate: &'static str| {
        [
            ("RELAIS_SIM_SINK_URL", sink_url.clone()),
            ("RELAIS_DISPATCH_RATE", rate.to_owned()),
            ("RELAIS_DISPATCH_BATCH", IN_FLIGHT.to_string()),
            // The restarted node is a new lease owner: the crashed node's claims must run
            // out before it takes them over.
            ("RELAIS_DISPATCH_LEASE", "2".to_owned()),
        ]
    };
    // Slow sending before the crash, so that however slow the submission of the batches
    // is, the kill lands mid-flight; full speed after the restart.
    let mut server = Server::start(&data, port, &env("200")).await;

    let client = support::client();
    let mut ids = Vec::with_capacity(MESSAGES);
    for b in 0..MESSAGES / BATCH {
        let items: Vec<_> = (0..BATCH)
            .map(|i| {
                json!({
                    "to": format!("+336{:08}", 20_000_000 + b * BATCH + i),
                    "channel": "sim",
                    "purpose": "transactional",
                    "content": {"text": "Votre colis arrive demain"},
                })
            })
            .collect();
        let r = client
            .post(format!("{}/v1/messages/batch", server.base))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({ "messages": items }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["accepted"], BATCH, "{body}");
        for result in body["results"].as_array().unwrap() {
            ids.push(result["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), MESSAGES);

    // Kill it once the sink has seen a fair share, well before the end.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sink.unique() < 2000 {
        assert!(
            Instant::now() < deadline,
            "sending did not start: {} sent; log:\n{}",
            sink.unique(),
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    let at_kill = sink.unique();
    assert!(
        at_kill < MESSAGES,
        "everything was sent before the kill; the test proves nothing"
    );

    let _server = Server::start(&data, port, &env("100000")).await;
    let db = data.join("relais.db");
    let deadline = Instant::now() + Duration::from_secs(50);
    let unsettled = |s: &HashMap<String, i64>| {
        ["accepted", "queued", "sending", "scheduled"]
            .iter()
            .map(|k| s.get(*k).copied().unwrap_or(0))
            .sum::<i64>()
    };
    loop {
        let s = statuses(&db).await;
        if sink.unique() >= MESSAGES && unsettled(&s) == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not finished after the restart: sink saw {} of {MESSAGES} (at kill: {at_kill}); statuses {s:?}",
            sink.unique()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let seen = sink.snapshot();
    let expected: HashSet<&String> = ids.iter().collect();
    let missing = ids.iter().filter(|id| !seen.contains_key(*id)).count();
    assert_eq!(missing, 0, "accepted messages never reached the provider");
    assert!(
        seen.keys().all(|k| expected.contains(k)),
        "the provider got a message nobody sent"
    );
    // Only the round in flight when the process died (acknowledged, not yet settled) may
    // go out a second time, with the same idempotency key, which the sink (the provider)
    // dedupes; nothing is sent three times.
    let resent: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        resent.len() <= IN_FLIGHT && resent.iter().all(|(_, n)| **n == 2),
        "{} messages sent more than once (at most one round of {IN_FLIGHT} may be): {resent:?}",
        resent.len()
    );
    let s = statuses(&db).await;
    let total: i64 = s.values().sum();
    assert_eq!(total, MESSAGES as i64, "{s:?}");
    let failed: i64 = ["failed", "expired", "rejected", "undelivered", "canceled"]
        .iter()
        .map(|k| s.get(*k).copied().unwrap_or(0))
        .sum();
    assert_eq!(failed, 0, "{s:?}");
    eprintln!(
        "crash test: {at_kill} sent before the kill, {} raw duplicate(s), statuses {s:?}",
        resent.len()
    );
}
