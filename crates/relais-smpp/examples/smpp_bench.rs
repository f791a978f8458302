//! Throughput benchmark: N messages submit → all receipts, through the Relais client against
//! the simulator, then the same N through Kannel (sendsms HTTP → smsbox → bearerbox → the
//! same kind of simulator), and the ratio.
//!
//! `cargo run --release -p relais-smpp --example smpp_bench -- --messages 100000
//!  [--binds 2] [--window 256] [--kannel-messages N] [--no-kannel] [--http-conns 32]`

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use relais_smpp::simulator::{SimConfig, SimHandle, start};
use relais_smpp::{ClientConfig, SmppClient, SmppEvent, SubmitRequest};

struct Args {
    messages: usize,
    binds: usize,
    window: usize,
    kannel: bool,
    kannel_messages: Option<usize>,
    http_conns: usize,
}

fn args() -> Args {
    let mut a = Args {
        messages: 100_000,
        binds: 2,
        window: 256,
        kannel: true,
        kannel_messages: None,
        http_conns: 32,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let next = v.get(i + 1).and_then(|s| s.parse::<usize>().ok());
        match (v[i].as_str(), next) {
            ("--messages", Some(n)) => a.messages = n,
            ("--binds", Some(n)) => a.binds = n,
            ("--window", Some(n)) => a.window = n,
            ("--kannel-messages", Some(n)) => a.kannel_messages = Some(n),
            ("--http-conns", Some(n)) => a.http_conns = n.max(1),
            ("--no-kannel", _) => {
                a.kannel = false;
                i += 1;
                continue;
            }
            (other, _) => {
                eprintln!("unknown or incomplete argument {other}");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    a
}

async fn simulator() -> (SimHandle, tokio::sync::oneshot::Sender<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let cfg = SimConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        receipt_delay_ms: 0,
        ..SimConfig::default()
    };
    match start(cfg, async move {
        let _ = rx.await;
    })
    .await
    {
        Ok(h) => (h, tx),
        Err(e) => {
            eprintln!("simulator: {e}");
            std::process::exit(1);
        }
    }
}

fn p99(mut v: Vec<u64>) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    let i = ((v.len() as f64) * 0.99).ceil() as usize;
    Duration::from_micros(v[i.saturating_sub(1).min(v.len() - 1)])
}

async fn bench_relais(a: &Args) -> f64 {
    let (sim, _stop) = simulator().await;
    let (client, mut events) = match SmppClient::connect(ClientConfig {
        host: "127.0.0.1".into(),
        port: sim.smpp_addr.port(),
        system_id: "bench".into(),
        password: "bench".into(),
        source_addr: "Relais".into(),
        binds: a.binds,
        window: a.window,
        events_capacity: 100_000,
        ..ClientConfig::default()
    })
    .await
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("connect: {e}");
            std::process::exit(1);
        }
    };
    let n = a.messages;
    let t0 = Instant::now();
    // Submit time of message i, in µs since t0, for the latency of its receipt.
    let started: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let failures = Arc::new(AtomicU64::new(0));
    let collector = {
        let started = started.clone();
        let failures = failures.clone();
        tokio::spawn(async move {
            let mut lat = Vec::with_capacity(n);
            let mut uncorrelated = 0usize;
            // A failed submit has no receipt: stop once receipts + failures cover every message.
            while lat.len() + uncorrelated + (failures.load(Ordering::Relaxed) as usize) < n {
                let ev = match tokio::time::timeout(Duration::from_millis(200), events.recv()).await
                {
                    Ok(ev) => ev,
                    Err(_) => continue,
                };
                match ev {
                    Some(SmppEvent::Receipt(r, ack)) => {
                        ack.confirm();
                        let idx = r
                            .part
                            .as_ref()
                            .and_then(|p| p.reference.parse::<usize>().ok());
                        match idx.and_then(|i| started.get(i)) {
                            Some(s) => {
                                let now = t0.elapsed().as_micros() as u64;
                                lat.push(now.saturating_sub(s.load(Ordering::Relaxed)));
                            }
                            None => uncorrelated += 1,
                        }
                    }
                    Some(_) => {}
                    None => break,
                }
            }
            (lat, uncorrelated, t0.elapsed())
        })
    };
    if std::env::var("BENCH_DEBUG").is_ok() {
        let stats = sim.stats.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                eprintln!(
                    "sim: submits {} receipts_sent {}",
                    stats.submits.load(Ordering::Relaxed),
                    stats.receipts_sent.load(Ordering::Relaxed)
                );
            }
        });
    }
    let concurrency = a.binds * a.window * 2;
    futures::stream::iter(0..n)
        .for_each_concurrent(concurrency, |i| {
            let client = client.clone();
            let started = started.clone();
            let failures = failures.clone();
            async move {
                started[i].store(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
                let r = client
                    .submit(SubmitRequest {
                        destination: "33612345678".into(),
                        text: "Your verification code is 123456".into(),
                        reference: Some(i.to_string()),
                        ..Default::default()
                    })
                    .await;
                if let Err(e) = r
                    && failures.fetch_add(1, Ordering::Relaxed) < 3
                {
                    eprintln!("submit failed: {e}");
                }
            }
        })
        .await;
    let submitted_in = t0.elapsed();
    let (lat, uncorrelated, all_in) =
        match tokio::time::timeout(Duration::from_secs(600), collector).await {
            Ok(Ok(v)) => v,
            _ => {
                eprintln!("receipts did not all arrive");
                std::process::exit(1);
            }
        };
    let received = lat.len() + uncorrelated;
    let rate = received as f64 / all_in.as_secs_f64();
    println!(
        "relais: {n} messages, binds={} window={}",
        a.binds, a.window
    );
    println!(
        "relais: all submit_sm_resp in {:.3}s ({:.0} submit/s), all receipts in {:.3}s",
        submitted_in.as_secs_f64(),
        n as f64 / submitted_in.as_secs_f64(),
        all_in.as_secs_f64()
    );
    println!(
        "relais: {rate:.0} msg/s submit->receipt, p99 submit->receipt latency {:?}, failures {}, uncorrelated receipts {uncorrelated}",
        p99(lat),
        failures.load(Ordering::Relaxed)
    );
    client.close();
    rate
}

async fn bench_kannel(a: &Args) -> Option<f64> {
    if !support::has_kannel() {
        println!("kannel: not installed (scripts/install-smpp-peers.sh), skipped");
        return None;
    }
    let n = a.kannel_messages.unwrap_or(a.messages);
    let (sim, _stop) = simulator().await;
    let kannel = match support::Kannel::start(sim.smpp_addr.port(), a.window) {
        Ok(k) => k,
        Err(e) => {
            println!("kannel: cannot start: {e}");
            return None;
        }
    };
    if !kannel.ready().await {
        println!("kannel: smsbox not ready");
        return None;
    }
    let sendsms: SocketAddr = ([127, 0, 0, 1], kannel.sendsms_port).into();
    // Wait for the SMPP bind: the first message must be accepted and reach the simulator.
    let mut warm = match support::HttpConn::connect(sendsms).await {
        Ok(c) => c,
        Err(e) => {
            println!("kannel: {e}");
            return None;
        }
    };
    let t0 = Instant::now();
    while sim.stats.receipts_sent.load(Ordering::Relaxed) == 0 {
        let _ = warm
            .get(&kannel.sendsms_path("33612345678", "warm-up", Some("http://127.0.0.1:9/x")))
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        if t0.elapsed() > Duration::from_secs(30) {
            println!("kannel: never bound to the simulator");
            return None;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = sim.stats.receipts_sent.load(Ordering::Relaxed);
    let path = kannel.sendsms_path(
        "33612345678",
        "Your verification code is 123456",
        // dlr-mask makes Kannel request and track receipts, as in production.
        Some("http://127.0.0.1:9/dlr?type=%d"),
    );
    let t0 = Instant::now();
    let per = n.div_ceil(a.http_conns);
    let mut tasks = Vec::new();
    for c in 0..a.http_conns {
        let count = per.min(n.saturating_sub(c * per));
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0usize;
            let Ok(mut conn) = support::HttpConn::connect(sendsms).await else {
                return 0;
            };
            for _ in 0..count {
                match conn.get(&path).await {
                    Ok((s, _)) if s == 202 || s == 200 => ok += 1,
                    Ok(_) => {}
                    Err(_) => match support::HttpConn::connect(sendsms).await {
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
    let http_in = t0.elapsed();
    // Receipts sent by the simulator = messages that made it through Kannel to the SMSC and
    // were answered (Kannel then processes each receipt too).
    let deadline = Instant::now() + Duration::from_secs(900);
    while (sim.stats.receipts_sent.load(Ordering::Relaxed) - base) < accepted as u64
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = (sim.stats.receipts_sent.load(Ordering::Relaxed) - base) as usize;
    let all_in = t0.elapsed();
    let rate = done as f64 / all_in.as_secs_f64();
    println!(
        "kannel: {n} messages, {accepted} accepted over HTTP in {:.3}s ({} connections), {done} receipts in {:.3}s",
        http_in.as_secs_f64(),
        a.http_conns,
        all_in.as_secs_f64()
    );
    println!("kannel: {rate:.0} msg/s sendsms->receipt");
    drop(kannel);
    Some(rate)
}

fn main() {
    let a = args();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(async {
        let relais = bench_relais(&a).await;
        if a.kannel
            && let Some(k) = bench_kannel(&a).await
        {
            println!("ratio relais/kannel: {:.1}x", relais / k.max(0.001));
        }
    });
}
