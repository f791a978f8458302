//! Runs the SMSC simulator until Ctrl-C (the same code `relais smsc-sim` runs).
//!
//! `cargo run -p relais-smpp --example smsc_sim -- [--listen 127.0.0.1:2775] [--http 127.0.0.1:2776]
//!  [--receipt-delay-ms 100] [--failure-rate 0.0] [--throttle-rate 0.0] [--max-tps 200]
//!  [--redelivery-delay-ms 1000]`

use relais_smpp::simulator::{SimConfig, run};

fn main() {
    let mut cfg = SimConfig::default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        let ok = match args[i].as_str() {
            "--listen" => v.parse().map(|a| cfg.listen = a).is_ok(),
            "--http" => v.parse().map(|a| cfg.http_listen = Some(a)).is_ok(),
            "--receipt-delay-ms" => v.parse().map(|d| cfg.receipt_delay_ms = d).is_ok(),
            "--failure-rate" => v.parse().map(|r| cfg.failure_rate = r).is_ok(),
            "--throttle-rate" => v.parse().map(|r| cfg.throttle_rate = r).is_ok(),
            "--max-tps" => v.parse().map(|r| cfg.max_tps = Some(r)).is_ok(),
            "--redelivery-delay-ms" => v.parse().map(|d| cfg.redelivery_delay_ms = d).is_ok(),
            "--system-id" => {
                cfg.system_id = Some(v.clone());
                true
            }
            "--password" => {
                cfg.password = Some(v.clone());
                true
            }
            _ => false,
        };
        if !ok {
            eprintln!("bad argument {} {v}", args[i]);
            std::process::exit(2);
        }
        i += 2;
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = rt.block_on(async move {
        eprintln!(
            "SMSC simulator on {} (http: {:?})",
            cfg.listen, cfg.http_listen
        );
        run(cfg, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
    });
    if let Err(e) = result {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
