//! `relais bench smpp`: N messages HTTP → Relais → SMPP → the SMSC simulator, every receipt
//! awaited, then the same N through Kannel (sendsms HTTP → smsbox → bearerbox → the same
//! simulator), in one run. docs/BENCHMARKS.md (section SMPP) reports it.

// Kannel's config, start/stop and the tiny HTTP client are shared with the interop tests and
// the `smpp_bench` example of relais-smpp.
#[path = "../../relais-smpp/tests/support/mod.rs"]
mod kannel_support;

use crate::bench::{Batches, Bodies, Counter, bar, cpu_secs, peak_rss_kib, post_batches};
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KannelMode {
    /// Run Kannel when bearerbox and smsbox are installed, skip it otherwise.
    Auto,
    /// Run Kannel; fail when it is not installed.
    Yes,
    /// Relais only.
    No,
}

#[derive(Debug, clap::Args)]
pub struct SmppBenchArgs {
    /// Messages sent through each side.
    #[arg(long, default_value_t = 50_000)]
    pub messages: usize,
    /// One message per `POST /v1/messages`, over --http-conns keep-alive connections, as
    /// most client code sends (Kannel is always sent one message per request).
    #[arg(long)]
    pub single: bool,
    /// Messages per `POST /v1/messages/batch` request (at most 10,000), without --single.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Concurrent keep-alive HTTP clients sending batches to Relais, without --single.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// SMPP binds of the Relais channel (Kannel has one).
    #[arg(long, default_value_t = 1)]
    pub binds: usize,
    /// SMPP window of each bind (Kannel: `max-pending-submits`).
    #[arg(long, default_value_t = 100)]
    pub window: usize,
    /// How long the simulator waits before each receipt, for both sides.
    #[arg(long, default_value_t = 10)]
    pub receipt_delay_ms: u64,
    /// Whether to run Kannel too.
    #[arg(long, value_enum, default_value_t = KannelMode::Auto)]
    pub kannel: KannelMode,
    /// Messages through Kannel (default: --messages).
    #[arg(long)]
    pub kannel_messages: Option<usize>,
    /// Concurrent keep-alive HTTP connections: to Kannel's smsbox, and to Relais with
    /// --single.
    #[arg(long, default_value_t = 32)]
    pub http_conns: usize,
    /// Kannel without its store file (messages only in memory).
    #[arg(long)]
    pub kannel_no_store: bool,
}

/// One side's figures.
struct Figures {
    messages: usize,
    secs: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    peak_rss_kib: Option<u64>,
    /// CPU time the measured processes used during the run.
    cpu_secs: Option<f64>,
    note: String,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.secs.max(1e-9)
    }
}

pub async fn run(args: SmppBenchArgs, durability: relais_store::Durability) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=10_000).contains(&args.batch),
        "--batch must be between 1 and 10000"
    );
    anyhow::ensure!(args.clients >= 1, "--clients must be at least 1");
    anyhow::ensure!(args.messages >= 1, "--messages must be at least 1");
    let kannel_present = kannel_support::has_kannel();
    if args.kannel == KannelMode::Yes && !kannel_present {
        anyhow::bail!(
            "--kannel yes: {} or {} is not installed (scripts/install-smpp-peers.sh)",
            kannel_support::BEARERBOX,
            kannel_support::SMSBOX
        );
    }
    let _already_installed = rustls::crypto::ring::default_provider().install_default();

    let relais = bench_relais(&args, durability).await?;
    let kannel = match args.kannel {
        KannelMode::No => {
            eprintln!("kannel: skipped (--kannel no)");
            None
        }
        KannelMode::Auto if !kannel_present => {
            eprintln!(
                "kannel: skipped, {} is not installed (scripts/install-smpp-peers.sh)",
                kannel_support::BEARERBOX
            );
            None
        }
        _ => Some(bench_kannel(&args).await?),
    };

    println!(
        "bench: smpp (HTTP -> SMPP -> relais smsc-sim; {}; receipts after {} ms; binds={} window={}; relais durability {}; kannel store {}; {} cores)",
        if args.single {
            format!(
                "one message per request over {} connections",
                args.http_conns
            )
        } else {
            format!("batches of {} from {} clients", args.batch, args.clients)
        },
        args.receipt_delay_ms,
        args.binds,
        args.window,
        durability.as_str(),
        if args.kannel_no_store {
            "none (memory)"
        } else {
            "file"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let cell =
        |v: Option<f64>, unit: &str| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} {unit}"));
    let rss = |v: Option<u64>| {
        v.map_or_else(
            || "-".to_owned(),
            |k| format!("{:.1} MiB", k as f64 / 1024.0),
        )
    };
    println!(
        "{:<8} {:>9} {:>9} {:>12} {:>11} {:>11} {:>12} {:>9} {:>10}",
        "side", "messages", "secs", "msg/s", "p50", "p99", "peak RSS", "CPU s", "CPU µs/msg"
    );
    let row = |name: &str, f: &Figures| {
        println!(
            "{:<8} {:>9} {:>9.3} {:>12} {:>11} {:>11} {:>12} {:>9} {:>10}",
            name,
            f.messages,
            f.secs,
            format!("{:.0}", f.rate()),
            cell(f.p50_ms, "ms"),
            cell(f.p99_ms, "ms"),
            rss(f.peak_rss_kib),
            f.cpu_secs
                .map_or_else(|| "-".to_owned(), |c| format!("{c:.2}")),
            f.cpu_secs.map_or_else(
                || "-".to_owned(),
                |c| format!("{:.0}", c * 1e6 / f.messages.max(1) as f64)
            ),
        );
    };
    row("relais", &relais);
    if let Some(k) = &kannel {
        row("kannel", k);
    }
    println!("relais: {}", relais.note);
    if let Some(k) = &kannel {
        println!("kannel: {}", k.note);
    }
    if args.single {
        println!("relais msg/s: {:.0}", relais.rate());
    } else {
        println!(
            "relais msg/s: {:.0} (goal >= 20000: {})",
            relais.rate(),
            met(relais.rate() >= 20_000.0)
        );
    }
    if let Some(k) = &kannel {
        let ratio = relais.rate() / k.rate().max(1e-9);
        println!("kannel msg/s: {:.0}", k.rate());
        println!(
            "ratio relais/kannel: {ratio:.2}x (goal >= 3x: {})",
            met(ratio >= 3.0)
        );
    }
    Ok(())
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

async fn simulator(
    receipt_delay_ms: u64,
) -> anyhow::Result<(
    relais_smpp::simulator::SimHandle,
    tokio::sync::oneshot::Sender<()>,
)> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let cfg = relais_smpp::simulator::SimConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        receipt_delay_ms,
        ..Default::default()
    };
    let sim = relais_smpp::simulator::start(cfg, async move {
        let _ = rx.await;
    })
    .await
    .context("cannot start the SMSC simulator")?;
    Ok((sim, tx))
}

/// The `p` quantile of sorted µs values, in ms.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i] as f64 / 1000.0)
}

async fn bench_relais(
    args: &SmppBenchArgs,
    durability: relais_store::Durability,
) -> anyhow::Result<Figures> {
    use relais_core::clock::{Clock, SystemClock};

    let (sim, stop_sim) = simulator(args.receipt_delay_ms).await?;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("bench.db");
    let url = format!("sqlite://{}", db.display());
    let store = relais_store::open_with(&url, relais_store::StoreOptions { durability })
        .await
        .with_context(|| format!("cannot open {url}"))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (tenant, key) =
        relais_engine::tenants::create_tenant(&*store, "bench-smpp", clock.now()).await?;
    // The sim channel is unused here: messages go to the SMPP channel created below.
    let relais =
        crate::bench::BenchServer::start(store.clone(), clock.clone(), Default::default()).await?;
    let base = relais.base.clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients + 1)
        .build()?;
    let auth = format!("Bearer {}", key.secret);

    // The channel, through the API as an operator would create it (no max_rate: unlimited).
    let response = client
        .post(format!("{base}/v1/channels"))
        .header("authorization", &auth)
        .json(&serde_json::json!({
            "kind": "smpp",
            "name": "bench-smsc",
            "config": {
                "host": "127.0.0.1",
                "port": sim.smpp_addr.port(),
                "system_id": "relais",
                "password": "bench",
                "source_addr": "RELAIS",
                "window": args.window,
                "binds": args.binds,
            }
        }))
        .send()
        .await?;
    let code = response.status();
    let body = response.text().await?;
    anyhow::ensure!(code.is_success(), "channel refused: {code} {body}");
    // Let the binds complete before the clock starts.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let counts = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&db)
                .read_only(true),
        )
        .await?;

    let n = args.messages;
    let accept_bar = bar(n as u64, "relais accepted");
    let message = |i: usize| {
        serde_json::json!({
            "to": format!("+336{:08}", 10_000_000 + i),
            "channel": "bench-smsc",
            "purpose": "transactional",
            "content": {"text": "Your verification code is 123456"},
        })
    };
    let (cpu_before, started, accepted, accept_secs);
    if args.single {
        let bodies: Arc<Vec<String>> = Arc::new((0..n).map(|i| message(i).to_string()).collect());
        let addr: SocketAddr = base
            .trim_start_matches("http://")
            .parse()
            .context("the bench server's address")?;
        cpu_before = cpu_secs("self");
        started = Instant::now();
        accepted = post_singles(addr, &auth, bodies, args.http_conns, &accept_bar).await;
        accept_secs = started.elapsed().as_secs_f64();
    } else {
        let bodies = Bodies::build(
            Batches {
                messages: n,
                size: args.batch,
                clients: args.clients,
            },
            message,
        );
        cpu_before = cpu_secs("self");
        started = Instant::now();
        accepted = post_batches(&client, &base, &auth, bodies, &accept_bar).await?;
        accept_secs = started.elapsed().as_secs_f64();
    }
    accept_bar.finish();

    let done_bar = bar(accepted as u64, "relais delivered");
    let all_delivered = Counter::Sqlite(counts.clone())
        .wait_for_delivery(&tenant.id, accepted as u64, &done_bar)
        .await?;
    let secs = all_delivered.duration_since(started).as_secs_f64();
    let cpu = cpu_secs("self")
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    done_bar.finish();

    // Latency accepted → delivered from the event log (µs timestamps), every message.
    let pairs: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT COALESCE((SELECT MIN(e.value ->> 'at') FROM json_each(m.events) e WHERE e.value ->> 'status' = 'accepted'), m.created_at), \
                COALESCE((SELECT MIN(e.value ->> 'at') FROM json_each(m.events) e WHERE e.value ->> 'status' = 'delivered'), 0) \
         FROM messages m WHERE m.tenant_id = ?",
    )
    .bind(&tenant.id)
    .fetch_all(&counts)
    .await?;
    let mut lat: Vec<u64> = pairs
        .iter()
        .filter(|(_, d)| *d > 0)
        .map(|(a, d)| (d - a).max(0) as u64)
        .collect();
    lat.sort_unstable();
    let sim_submits = sim.stats.submits.load(Ordering::Relaxed);
    let sim_receipts = sim.stats.receipts_sent.load(Ordering::Relaxed);

    relais.stop().await;
    let _ = stop_sim.send(());
    let peak = peak_rss_kib("self");
    Ok(Figures {
        messages: accepted,
        secs,
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
        peak_rss_kib: peak,
        cpu_secs: cpu,
        note: format!(
            "first POST -> last `delivered` stored; all {accepted} accepted over HTTP in {accept_secs:.3}s \
             ({:.0}/s, {}); simulator saw {sim_submits} submits, sent {sim_receipts} receipts; \
             latency = accepted event -> delivered event ({} messages); peak RSS and CPU are the whole process \
             (HTTP server, dispatcher, SQLite AND the simulator and the HTTP client)",
            accepted as f64 / accept_secs,
            if args.single {
                format!(
                    "one message per POST /v1/messages over {} connections",
                    args.http_conns
                )
            } else {
                format!("batches of {} from {} clients", args.batch, args.clients)
            },
            lat.len()
        ),
    })
}

/// Pids of the processes whose command line names `needle` (Kannel's config file).
fn pids_with(needle: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

/// An HTTP server for Kannel's DLR callbacks (`dlr-url`): records when the `type=1`
/// (delivered) callback of message `i=N` arrives, in µs since `t0`.
async fn dlr_sink(
    t0: Instant,
    arrived: Arc<Vec<AtomicU64>>,
    count: Arc<AtomicU64>,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (arrived, count) = (arrived.clone(), count.clone());
            tokio::spawn(async move {
                let (r, mut w) = socket.into_split();
                let mut r = BufReader::new(r);
                let mut line = String::new();
                loop {
                    line.clear();
                    match r.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let first = std::mem::take(&mut line);
                    loop {
                        line.clear();
                        match r.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line.trim_end().is_empty() => break,
                            Ok(_) => {}
                        }
                    }
                    if first.contains("type=1") {
                        let index = first
                            .split(['?', '&', ' '])
                            .find_map(|kv| kv.strip_prefix("i="))
                            .and_then(|v| v.parse::<usize>().ok());
                        if let Some(slot) = index.and_then(|i| arrived.get(i)) {
                            let now = t0.elapsed().as_micros() as u64;
                            if slot
                                .compare_exchange(
                                    0,
                                    now.max(1),
                                    Ordering::Relaxed,
                                    Ordering::Relaxed,
                                )
                                .is_ok()
                            {
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    let resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    if w.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}

async fn bench_kannel(args: &SmppBenchArgs) -> anyhow::Result<Figures> {
    let n = args.kannel_messages.unwrap_or(args.messages);
    let (sim, stop_sim) = simulator(args.receipt_delay_ms).await?;
    let kannel = kannel_support::Kannel::start_with(
        sim.smpp_addr.port(),
        args.window,
        !args.kannel_no_store,
    )
    .context("cannot start Kannel")?;
    anyhow::ensure!(kannel.ready().await, "kannel: smsbox never answered HTTP");
    let sendsms: SocketAddr = ([127, 0, 0, 1], kannel.sendsms_port).into();
    // Wait for the SMPP bind: a warm-up message must reach the simulator and be answered.
    let mut warm = kannel_support::HttpConn::connect(sendsms).await?;
    let t_bind = Instant::now();
    while sim.stats.receipts_sent.load(Ordering::Relaxed) == 0 {
        let _ = warm
            .get(&kannel.sendsms_path("33612345678", "warm-up", Some("http://127.0.0.1:9/x")))
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        anyhow::ensure!(
            t_bind.elapsed() < Duration::from_secs(30),
            "kannel never bound to the simulator"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base_receipts = sim.stats.receipts_sent.load(Ordering::Relaxed);

    let conf = kannel.dir.path().join("kannel.conf");
    let pids = pids_with(&conf.display().to_string());
    let kannel_cpu =
        |pids: &[String]| -> Option<f64> { pids.iter().map(|p| cpu_secs(p)).sum::<Option<f64>>() };
    let cpu_before = kannel_cpu(&pids);
    let t0 = Instant::now();
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let arrived: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let callbacks = Arc::new(AtomicU64::new(0));
    let sink = dlr_sink(t0, arrived.clone(), callbacks.clone()).await?;
    // Every message asks for its receipts (dlr-mask 3) with its index in the callback URL.
    let path_of = {
        let template = kannel.sendsms_path(
            "33612345678",
            "Your verification code is 123456",
            Some(&format!("http://{sink}/dlr?i=IDX&type=%d")),
        );
        move |i: usize| template.replace("IDX", &i.to_string())
    };
    let path_of = Arc::new(path_of);
    let accept_bar = bar(n as u64, "kannel accepted");
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.http_conns.max(1) {
        let (next, sent, path_of, accept_bar) = (
            next.clone(),
            sent.clone(),
            path_of.clone(),
            accept_bar.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut ok = 0usize;
            let Ok(mut conn) = kannel_support::HttpConn::connect(sendsms).await else {
                return 0;
            };
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                sent[i].store(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
                match conn.get(&path_of(i)).await {
                    Ok((s, _)) if s == 202 || s == 200 => {
                        ok += 1;
                        accept_bar.inc(1);
                    }
                    Ok(_) => {}
                    Err(_) => match kannel_support::HttpConn::connect(sendsms).await {
                        Ok(c) => conn = c,
                        Err(_) => break,
                    },
                }
            }
            ok
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await.unwrap_or(0);
    }
    let http_secs = t0.elapsed().as_secs_f64();
    accept_bar.finish();

    // Until every accepted message's `delivered` DLR callback has reached the sink.
    let done_bar = bar(accepted as u64, "kannel DLRs");
    let mut sim_all_at = None;
    let mut last = (0u64, Instant::now());
    loop {
        let got = callbacks.load(Ordering::Relaxed);
        done_bar.set_position(got);
        let receipts = sim.stats.receipts_sent.load(Ordering::Relaxed) - base_receipts;
        if sim_all_at.is_none() && receipts >= accepted as u64 {
            sim_all_at = Some(t0.elapsed().as_secs_f64());
        }
        if got >= accepted as u64 {
            break;
        }
        if got > last.0 {
            last = (got, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu = kannel_cpu(&pids)
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    done_bar.finish();
    let got = callbacks.load(Ordering::Relaxed) as usize;
    let last_us = arrived
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    let secs = last_us as f64 / 1e6;
    let mut lat: Vec<u64> = sent
        .iter()
        .zip(arrived.iter())
        .map(|(s, a)| (s.load(Ordering::Relaxed), a.load(Ordering::Relaxed)))
        .filter(|(_, a)| *a > 0)
        .map(|(s, a)| a.saturating_sub(s))
        .collect();
    lat.sort_unstable();
    let peak: u64 = pids.iter().filter_map(|p| peak_rss_kib(p)).sum();
    drop(kannel);
    let _ = stop_sim.send(());
    anyhow::ensure!(
        got >= accepted,
        "kannel: only {got} of {accepted} DLR callbacks arrived (60 s without progress)"
    );
    Ok(Figures {
        messages: got,
        secs,
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
        peak_rss_kib: (!pids.is_empty()).then_some(peak),
        cpu_secs: cpu.filter(|_| !pids.is_empty()),
        note: format!(
            "first sendsms -> last `delivered` DLR callback (dlr-mask 3, internal DLR storage, {}); \
             {accepted} accepted over HTTP in {http_secs:.3}s ({} keep-alive connections, one message per GET); \
             simulator had sent every receipt after {}; latency = sendsms request -> DLR callback; \
             peak RSS and CPU = bearerbox + smsbox ({} processes), simulator and HTTP client not included",
            if args.kannel_no_store {
                "no store file"
            } else {
                "store-type file"
            },
            args.http_conns,
            sim_all_at.map_or_else(|| "-".to_owned(), |s| format!("{s:.3}s")),
            pids.len()
        ),
    })
}

/// Posts each body as one `POST /v1/messages` over `conns` keep-alive connections (the
/// small HTTP/1.1 client the Kannel side uses too); the number answered 202.
async fn post_singles(
    addr: SocketAddr,
    auth: &str,
    bodies: Arc<Vec<String>>,
    conns: usize,
    progress: &indicatif::ProgressBar,
) -> usize {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conns.max(1) {
        let (next, bodies, progress, auth) = (
            next.clone(),
            bodies.clone(),
            progress.clone(),
            auth.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            let mut ok = 0usize;
            let Ok(mut conn) = kannel_support::HttpConn::connect(addr).await else {
                return 0;
            };
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else {
                    break;
                };
                match conn.post_json("/v1/messages", &auth, body).await {
                    Ok((202, _)) => {
                        ok += 1;
                        progress.inc(1);
                    }
                    Ok(_) => {}
                    Err(_) => match kannel_support::HttpConn::connect(addr).await {
                        Ok(c) => conn = c,
                        Err(_) => break,
                    },
                }
            }
            ok
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await.unwrap_or(0);
    }
    accepted
}
