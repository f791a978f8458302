//! `relais bench soak`: a `relais serve` process (this binary, a fresh SQLite data
//! directory, the `sim` channel) taking one message per request from many clients for
//! minutes, optionally with a webhook whose endpoint refuses every connection, while the
//! write-ahead log's size and the server's resident memory are sampled. It checks the
//! documented bound of the log (docs/configuration.md) and that memory stays flat.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The bound docs/configuration.md gives for the `-wal` file.
pub const WAL_BOUND_BYTES: u64 = 128 * 1024 * 1024;

/// The figure the soak holds SQLite's memory to: its page caches hold 130 MiB of pages
/// (docs/configuration.md), and SQLite also counts their headers and its prepared
/// statements.
pub const SQLITE_MEMORY_BOUND_BYTES: u64 = 143 * 1024 * 1024;

#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// How long the clients send.
    #[arg(long, default_value_t = 600)]
    pub secs: u64,
    /// Concurrent keep-alive clients, each sending one message per `POST /v1/messages`.
    #[arg(long, default_value_t = 32)]
    pub http_conns: usize,
    /// Register a webhook whose endpoint refuses every connection, so that every status
    /// change becomes a delivery that keeps failing.
    #[arg(long)]
    pub dead_webhook: bool,
    /// Seconds between two samples of the log's size and the server's memory.
    #[arg(long, default_value_t = 10)]
    pub sample_secs: u64,
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

pub async fn run(args: SoakArgs, durability: relais_store::Durability) -> anyhow::Result<()> {
    anyhow::ensure!(args.http_conns >= 1, "--http-conns must be at least 1");
    anyhow::ensure!(args.sample_secs >= 1, "--sample-secs must be at least 1");
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let key = format!("rls_soak_{}", relais_core::ids::new_id());
    let log = dir.path().join("serve.log");
    let durability = match durability {
        relais_store::Durability::Normal => "normal",
        relais_store::Durability::Fsync => "fsync",
    };
    // The dead endpoint is a local port.
    let server = crate::bench::ServeProcess::start(
        &["--durability", durability],
        &data,
        &key,
        &[("RELAIS_WEBHOOK_ALLOW_PRIVATE", "1")],
        &log,
    )
    .await?;
    let (base, pid) = (server.base.clone(), server.pid.clone());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.http_conns + 2)
        .build()?;
    let auth = format!("Bearer {key}");
    if args.dead_webhook {
        // A port that was free a moment ago: nothing listens, every connection is refused.
        let dead = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let r = client
            .post(format!("{base}/v1/webhooks"))
            .header("authorization", &auth)
            .json(&serde_json::json!({"url": format!("http://{dead}/relais-events")}))
            .send()
            .await?;
        anyhow::ensure!(
            r.status().is_success(),
            "cannot register the webhook: {}",
            r.text().await?
        );
    }

    let running = Arc::new(AtomicBool::new(true));
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..args.http_conns {
        let (client, url, auth) = (client.clone(), format!("{base}/v1/messages"), auth.clone());
        let (running, accepted, refused, next) = (
            running.clone(),
            accepted.clone(),
            refused.clone(),
            next.clone(),
        );
        clients.push(tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let body = serde_json::json!({
                    "to": format!("+336{:08}", 10_000_000 + n % 80_000_000),
                    "channel": "sim",
                    "purpose": "transactional",
                    "content": {"text": format!("Votre code Relais est {n}. Il expire dans 10 minutes.")},
                });
                match client.post(&url).header("authorization", &auth).json(&body).send().await {
                    Ok(r) if r.status().as_u16() == 202 => {
                        let _ = r.bytes().await;
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    let db = data.join("relais.db");
    let wal = data.join("relais.db-wal");
    println!(
        "bench: soak ({} s, {} clients of single sends{}; a fresh SQLite data directory; durability {durability}; samples every {} s)",
        args.secs,
        args.http_conns,
        if args.dead_webhook {
            ", a webhook whose endpoint refuses every connection"
        } else {
            ""
        },
        args.sample_secs
    );
    println!(
        "{:>6} {:>10} {:>8} {:>10} {:>10} {:>10} {:>11}",
        "t (s)", "accepted", "msg/s", "wal MiB", "db MiB", "rss MiB", "sqlite MiB"
    );
    let started = Instant::now();
    // (seconds, resident KiB, SQLite's bytes)
    let mut samples: Vec<(f64, u64, Option<u64>)> = Vec::new();
    let mut wal_max = 0u64;
    let mut last = (0u64, started);
    let finish = started + Duration::from_secs(args.secs);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut next_sample = started + Duration::from_secs(args.sample_secs);
    while Instant::now() < finish {
        tick.tick().await;
        // The log is watched more often than it is printed: its peak counts.
        wal_max = wal_max.max(file_len(&wal));
        if Instant::now() < next_sample {
            continue;
        }
        next_sample += Duration::from_secs(args.sample_secs);
        let now = Instant::now();
        let count = accepted.load(Ordering::Relaxed);
        let rate = (count - last.0) as f64 / now.duration_since(last.1).as_secs_f64();
        last = (count, now);
        let rss = crate::bench::proc_status_kib(&pid, "VmRSS:").unwrap_or(0);
        let sqlite = sqlite_memory(&client, &base).await;
        let t = now.duration_since(started).as_secs_f64();
        samples.push((t, rss, sqlite));
        println!(
            "{t:>6.0} {count:>10} {rate:>8.0} {:>10.1} {:>10.1} {:>10.1} {:>11}",
            mib(file_len(&wal)),
            mib(file_len(&db)),
            rss as f64 / 1024.0,
            sqlite.map_or("?".to_owned(), |b| format!("{:.1}", mib(b)))
        );
    }
    running.store(false, Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }
    let total = accepted.load(Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    // Flat memory: SQLite's share (its page caches fill as the database grows) stays
    // under SQLITE_MEMORY_BOUND_BYTES; everything else grows by no more than a fifth over
    // the last two thirds of the run.
    let warm_at = (args.secs as f64 / 3.0).max(60.0);
    let warm = samples
        .iter()
        .find(|(t, ..)| *t >= warm_at)
        .or(samples.first())
        .copied()
        .unwrap_or_default();
    let end = samples.last().copied().unwrap_or_default();
    let growth = |from: u64, to: u64| {
        if from > 0 {
            to as f64 / from as f64 - 1.0
        } else {
            0.0
        }
    };
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "accepted {total} in {secs:.0} s ({:.0} msg/s), {} refused or failed requests",
        total as f64 / secs,
        refused.load(Ordering::Relaxed)
    );
    println!(
        "write-ahead log peak {:.1} MiB (bound {:.0} MiB): {}",
        mib(wal_max),
        mib(WAL_BOUND_BYTES),
        verdict(wal_max <= WAL_BOUND_BYTES)
    );
    println!(
        "resident memory {:.1} MiB at {warm_at:.0} s, {:.1} MiB at the end ({:+.1} %)",
        warm.1 as f64 / 1024.0,
        end.1 as f64 / 1024.0,
        growth(warm.1, end.1) * 100.0,
    );
    match (warm.2, end.2) {
        (Some(sqlite_warm), Some(sqlite_end)) => {
            let rest = |(_, rss, sqlite): (f64, u64, Option<u64>)| {
                (rss * 1024).saturating_sub(sqlite.unwrap_or(0))
            };
            let (rest_warm, rest_end) = (rest(warm), rest(end));
            println!(
                "  of which SQLite {:.1} MiB at {warm_at:.0} s, {:.1} MiB at the end (bound {:.0} MiB): {}",
                mib(sqlite_warm),
                mib(sqlite_end),
                mib(SQLITE_MEMORY_BOUND_BYTES),
                verdict(sqlite_end <= SQLITE_MEMORY_BOUND_BYTES)
            );
            let rest_growth = growth(rest_warm, rest_end);
            println!(
                "  everything else {:.1} MiB at {warm_at:.0} s, {:.1} MiB at the end ({:+.1} %, at most +20 %): {}",
                mib(rest_warm),
                mib(rest_end),
                rest_growth * 100.0,
                verdict(rest_growth <= 0.20)
            );
        }
        _ => {
            // Without SQLite's count, the whole resident set is held to the fifth.
            let rss_growth = growth(warm.1, end.1);
            println!(
                "  SQLite's share unknown (no relais_sqlite_memory_bytes on /metrics); at most +20 %: {}",
                verdict(rss_growth <= 0.20)
            );
        }
    }
    drop(server);
    Ok(())
}

/// What the server reports SQLite holds (`relais_sqlite_memory_bytes` on `/metrics`):
/// the part of its memory that its page caches bound.
async fn sqlite_memory(client: &reqwest::Client, base: &str) -> Option<u64> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("relais_sqlite_memory_bytes "))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map(|bytes| bytes as u64)
}
