//! `relais bench widget`: web chat visitors held open on one `relais serve` process, and
//! their messages' round trip to an agent's event stream.
//!
//! The server runs as a child process so that its memory is its own: the visitors'
//! WebSockets (their client side) live in this process. Each visitor says hello and gets
//! its welcome; once all are connected the server's resident memory gives the cost of a
//! session. Then visitors chosen in turn write at a steady rate, and each message is timed
//! from the moment it is written to the moment an agent's event stream
//! (`message.received`) shows it: the whole inbound pipeline (stored once, contact,
//! conversation, NLU) in between.

use crate::bench::{bar, ms, proc_status_kib};
use crate::bench_smpp::percentile;
use anyhow::Context;
use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::{
    Message, client::IntoClientRequest, protocol::WebSocketConfig,
};

#[derive(Debug, clap::Args)]
pub struct WidgetBenchArgs {
    /// Visitors connected at once (capped by the open-files limit of this machine).
    #[arg(long, default_value_t = 50_000)]
    pub sessions: usize,
    /// Visitors' messages per second once all are connected.
    #[arg(long, default_value_t = 5_000)]
    pub rate: usize,
    /// Seconds of messages.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
}

const ORIGIN: &str = "http://bench.local";
/// Connections opened at once while the visitors arrive.
const CONNECTING_AT_ONCE: usize = 256;
/// Client connections per loopback source address (a source address has about 28,000
/// ephemeral ports towards one server port).
const PER_SOURCE_ADDRESS: usize = 20_000;

fn open_files_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given; raising the soft limit up to the
        // hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return raised.rlim_cur;
        }
    }
    limit.rlim_cur
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn visitor(
    addr: std::net::SocketAddr,
    url: &str,
    source: std::net::IpAddr,
) -> anyhow::Result<Socket> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::new(source, 0))?;
    let stream = socket.connect(addr).await?;
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("origin", ORIGIN.parse().context("origin")?);
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(
        request,
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
        Some(config),
    )
    .await?;
    ws.send(Message::Text(
        r#"{"type":"hello","visitor":null,"after":null}"#.into(),
    ))
    .await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) if text.contains("\"welcome\"") => return Ok(ws),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("the server closed a visitor's connection"),
        }
    }
}

pub async fn run(args: WidgetBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.sessions >= 1, "--sessions must be at least 1");
    anyhow::ensure!(args.rate >= 1, "--rate must be at least 1");
    let limit = open_files_limit();
    // Each visitor is one descriptor here and one in the server; keep some for the rest.
    let sessions = args.sessions.min(limit.saturating_sub(500) as usize);
    if sessions < args.sessions {
        println!(
            "note: {} sessions asked, {sessions} held: the open-files limit of this machine is {limit} per process (ulimit -Hn)",
            args.sessions
        );
    }
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let key = format!("rls_widget_{}", relais_core::ids::new_id());
    let server =
        crate::bench::ServeProcess::start(&[], &data, &key, &[], &dir.path().join("serve.log"))
            .await?;
    let (base, pid) = (server.base.clone(), server.pid.clone());
    let client = reqwest::Client::new();
    let created: serde_json::Value = client
        .post(format!("{base}/v1/channels"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"kind": "webchat", "name": "bench",
            "config": {"allowed_origins": [ORIGIN]}}))
        .send()
        .await?
        .json()
        .await?;
    let channel = created["id"]
        .as_str()
        .with_context(|| format!("the channel was not created: {created}"))?
        .to_owned();
    let host = base.trim_start_matches("http://").to_owned();
    let addr: std::net::SocketAddr = host.parse()?;
    let url = format!("ws://{host}/webchat/{channel}/socket");
    // Settle the server's memory before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = proc_status_kib(&pid, "VmRSS:").unwrap_or(0);

    let progress = bar(sessions as u64, "visitors");
    let started = Instant::now();
    let mut sockets: Vec<Socket> = Vec::with_capacity(sessions);
    let mut pending = futures::stream::FuturesUnordered::new();
    let mut next = 0usize;
    while sockets.len() < sessions {
        while next < sessions && pending.len() < CONNECTING_AT_ONCE {
            let source = std::net::IpAddr::V4(std::net::Ipv4Addr::new(
                127,
                0,
                0,
                2 + (next / PER_SOURCE_ADDRESS) as u8,
            ));
            let url = url.clone();
            pending.push(async move { visitor(addr, &url, source).await });
            next += 1;
        }
        match pending.next().await {
            Some(Ok(socket)) => {
                sockets.push(socket);
                progress.inc(1);
            }
            Some(Err(e)) => anyhow::bail!(
                "a visitor could not connect after {} others: {e:#}",
                sockets.len()
            ),
            None => break,
        }
    }
    progress.finish();
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_held = proc_status_kib(&pid, "VmRSS:").unwrap_or(0);

    // The agent's stream, then the visitors' messages at the rate asked.
    let stream_url =
        format!("ws://{host}/v1/events/stream?access_token={key}&types=message.received");
    let (mut agent, _) = tokio_tungstenite::connect_async(stream_url).await?;
    let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<u64>>> = Arc::default();
    let total = args.rate * args.seconds as usize;
    let (sent_at_r, latencies_r) = (sent_at.clone(), latencies.clone());
    let reader = tokio::spawn(async move {
        let mut seen = 0usize;
        while seen < total {
            let Ok(Some(Ok(frame))) =
                tokio::time::timeout(Duration::from_secs(30), agent.next()).await
            else {
                break;
            };
            let Message::Text(text) = frame else { continue };
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            let Some(body) = event["data"]["text"].as_str() else {
                continue;
            };
            if let Some(at) = sent_at_r
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(body)
            {
                latencies_r
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(at.elapsed().as_micros() as u64);
                seen += 1;
            }
        }
    });
    let messages = bar(total as u64, "messages");
    let tick = Duration::from_millis(10);
    let per_tick = (args.rate as f64 * tick.as_secs_f64()).max(1.0);
    let mut ticker = tokio::time::interval(tick);
    let mut owed = 0.0;
    let mut sent = 0usize;
    let sending = Instant::now();
    while sent < total {
        ticker.tick().await;
        owed += per_tick;
        while owed >= 1.0 && sent < total {
            owed -= 1.0;
            let i = (sent * 7919) % sockets.len();
            let text = format!("bench message {sent}");
            sent_at
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(text.clone(), Instant::now());
            let frame = serde_json::json!({"type": "message", "client_id": format!("b{sent}"), "text": text});
            sockets[i]
                .send(Message::Text(frame.to_string().into()))
                .await?;
            sent += 1;
            messages.inc(1);
        }
    }
    let send_secs = sending.elapsed().as_secs_f64();
    messages.finish();
    let _ = reader.await;
    let mut sorted = latencies.lock().unwrap_or_else(|p| p.into_inner()).clone();
    sorted.sort_unstable();
    let lost = total - sorted.len();
    let peak = proc_status_kib(&pid, "VmHWM:").unwrap_or(0);

    let per_session_kib = rss_held.saturating_sub(rss_before) as f64 / sessions as f64;
    let held_mib = rss_held as f64 / 1024.0;
    println!("bench: web chat widget sessions on one relais serve (SQLite)");
    println!(
        "sessions held: {sessions} (connected in {connect_secs:.1} s); server RSS {:.1} MiB before, {held_mib:.1} MiB with them: {per_session_kib:.1} KiB per session",
        rss_before as f64 / 1024.0
    );
    let at_50k = rss_before as f64 / 1024.0 + per_session_kib * 50_000.0 / 1024.0;
    println!(
        "memory for 50,000 sessions at that cost: {at_50k:.0} MiB (goal < 2048 MiB: {})",
        if at_50k < 2048.0 { "met" } else { "NOT met" }
    );
    println!(
        "messages: {total} at {:.0}/s asked ({:.0}/s written), {lost} not seen on the agent's stream within 30 s",
        args.rate as f64,
        total as f64 / send_secs
    );
    let p99 = percentile(&sorted, 0.99);
    println!(
        "visitor → agent's stream: p50 {}  p99 {}  max {} (goal p99 < 50 ms: {})",
        ms(percentile(&sorted, 0.50)),
        ms(p99),
        ms(percentile(&sorted, 1.0)),
        if p99.is_some_and(|p| p < 50.0) && lost == 0 {
            "met"
        } else {
            "NOT met"
        }
    );
    println!("server peak RSS: {:.1} MiB", peak as f64 / 1024.0);
    drop(sockets);
    drop(server);
    Ok(())
}
