//! Goodput of one client against a throttling simulator.
//!
//! `cargo run --release -p relais-smpp --example throttle_bench -- [--throttle-rate 0.2]
//!  [--max-tps 200] [--max-rate 300] [--seconds 10] [--window 50] [--binds 1]`
//!
//! Submits as fast as the client takes them for `--seconds`, then prints the accepted
//! messages per second (goodput), the failures and the simulator's counters. The goodput to
//! expect: `max_rate × (1 − throttle_rate)`, or about `max_tps` when that is lower.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use relais_smpp::simulator::{SimConfig, start};
use relais_smpp::{ClientConfig, SmppClient, SmppEvent, SubmitRequest};

struct Args {
    throttle_rate: f64,
    max_tps: Option<f64>,
    max_rate: f64,
    seconds: u64,
    window: usize,
    binds: usize,
}

fn args() -> Args {
    let mut a = Args {
        throttle_rate: 0.0,
        max_tps: None,
        max_rate: 300.0,
        seconds: 10,
        window: 50,
        binds: 1,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let next = v.get(i + 1).cloned().unwrap_or_default();
        let ok = match v[i].as_str() {
            "--throttle-rate" => next.parse().map(|x| a.throttle_rate = x).is_ok(),
            "--max-tps" => next.parse().map(|x| a.max_tps = Some(x)).is_ok(),
            "--max-rate" => next.parse().map(|x| a.max_rate = x).is_ok(),
            "--seconds" => next.parse().map(|x| a.seconds = x).is_ok(),
            "--window" => next.parse().map(|x| a.window = x).is_ok(),
            "--binds" => next.parse().map(|x| a.binds = x).is_ok(),
            _ => false,
        };
        if !ok {
            eprintln!("bad argument {} {next}", v[i]);
            std::process::exit(2);
        }
        i += 2;
    }
    a
}

fn main() {
    let a = args();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(async move {
        let (_stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let sim = match start(
            SimConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                throttle_rate: a.throttle_rate,
                max_tps: a.max_tps,
                receipt_delay_ms: 10,
                ..SimConfig::default()
            },
            async move {
                let _ = stop_rx.await;
            },
        )
        .await
        {
            Ok(s) => s,
            Err(e) => {
                eprintln!("simulator: {e}");
                std::process::exit(1);
            }
        };
        let (client, mut events) = match SmppClient::connect(ClientConfig {
            host: "127.0.0.1".into(),
            port: sim.smpp_addr.port(),
            system_id: "bench".into(),
            password: "bench".into(),
            source_addr: "Relais".into(),
            window: a.window,
            binds: a.binds,
            max_rate: Some(a.max_rate),
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
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                match e {
                    SmppEvent::Receipt(_, ack) | SmppEvent::Inbound(_, ack) => ack.confirm(),
                    SmppEvent::Bind { .. } => {}
                }
            }
        });
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..a.window * a.binds * 2 {
            let (client, ok, failed, done) =
                (client.clone(), ok.clone(), failed.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = 0u64;
                while !done.load(Ordering::Relaxed) {
                    i += 1;
                    let r = client
                        .submit(SubmitRequest {
                            destination: "33612345678".into(),
                            text: format!("bench {w}-{i}"),
                            ..Default::default()
                        })
                        .await;
                    match r {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(a.seconds)).await;
        let elapsed = t0.elapsed().as_secs_f64();
        let accepted = ok.load(Ordering::Relaxed);
        let failures = failed.load(Ordering::Relaxed);
        done.store(true, Ordering::Relaxed);
        let s = &sim.stats;
        println!(
            "throttle_rate={} max_tps={} max_rate={} window={} binds={}: {:.0} msg/s accepted ({} in {:.1}s), {} failed, simulator: {} submit_sm, {} throttled",
            a.throttle_rate,
            a.max_tps.map_or("none".to_string(), |t| t.to_string()),
            a.max_rate,
            a.window,
            a.binds,
            accepted as f64 / elapsed,
            accepted,
            elapsed,
            failures,
            s.submits.load(Ordering::Relaxed),
            s.throttled.load(Ordering::Relaxed),
        );
        client.close();
    });
}
