//! `relais smsc-sim`: the SMSC simulator of `relais-smpp` as a command, and
//! `relais smsc-sim mo` to make a simulated handset write in.

use anyhow::Context;
use clap::{Args, Subcommand};
use relais_smpp::SimConfig;
use std::net::SocketAddr;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SmscSimArgs {
    #[command(subcommand)]
    command: Option<SmscSimCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// SMPP address to listen on.
    #[arg(long, default_value = "127.0.0.1:2775")]
    listen: SocketAddr,
    /// HTTP address for MO injection (`POST /mo`) and counters (`GET /stats`).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// Delay between a submit_sm_resp and its delivery receipt.
    #[arg(long, default_value_t = 100)]
    receipt_delay_ms: u64,
    /// Fraction (0 to 1) of messages whose receipt says UNDELIV.
    #[arg(long, default_value_t = 0.0)]
    failure_rate: f64,
    /// Fraction (0 to 1) of submit_sm answered ESME_RTHROTTLED at random.
    #[arg(long, default_value_t = 0.0)]
    throttle_rate: f64,
    /// Submits accepted per second and system_id; the others get ESME_RTHROTTLED (a TPS
    /// limit). No limit when absent.
    #[arg(long)]
    max_tps: Option<f64>,
    /// Wait before delivering again a receipt or MO whose deliver_sm failed or was not
    /// answered.
    #[arg(long, default_value_t = 1000)]
    redelivery_delay_ms: u64,
    /// How long a deliver_sm waits for its deliver_sm_resp.
    #[arg(long, default_value_t = 30_000)]
    deliver_timeout_ms: u64,
    /// Print the counters every this many seconds while they change (0: only on exit).
    #[arg(long, default_value_t = 10)]
    stats_every_secs: u64,
    /// Only this system_id may bind (any when absent).
    #[arg(long)]
    system_id: Option<String>,
    /// Password required with --system-id.
    #[arg(long, requires = "system_id")]
    password: Option<String>,
    /// Send receipts even when registered_delivery does not ask for them.
    #[arg(long)]
    always_receipt: bool,
}

#[derive(Debug, Subcommand)]
enum SmscSimCommand {
    /// Injects a mobile-originated message into a running simulator (through its HTTP side).
    Mo {
        /// The simulator's HTTP address, e.g. http://127.0.0.1:2780.
        #[arg(long)]
        http: String,
        /// The handset's number.
        #[arg(long)]
        from: String,
        /// The number or short code written to.
        #[arg(long)]
        to: String,
        /// Only to the ESME bound with this system_id (any bound receiver when absent).
        #[arg(long)]
        system_id: Option<String>,
        text: String,
    },
}

fn tps(value: f64) -> anyhow::Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        anyhow::bail!("--max-tps must be a positive number of submits per second, not {value}")
    }
}

fn rate(name: &str, value: f64) -> anyhow::Result<f64> {
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        anyhow::bail!("--{name} must be between 0 and 1, not {value}")
    }
}

pub async fn run(args: SmscSimArgs) -> anyhow::Result<()> {
    match args.command {
        Some(SmscSimCommand::Mo {
            http,
            from,
            to,
            system_id,
            text,
        }) => inject_mo(&http, &from, &to, system_id.as_deref(), &text).await,
        None => serve(args.run).await,
    }
}

async fn serve(args: RunArgs) -> anyhow::Result<()> {
    let config = SimConfig {
        listen: args.listen,
        http_listen: args.http_listen,
        system_id: args.system_id,
        password: args.password,
        receipt_delay_ms: args.receipt_delay_ms,
        failure_rate: rate("failure-rate", args.failure_rate)?,
        throttle_rate: rate("throttle-rate", args.throttle_rate)?,
        max_tps: args.max_tps.map(tps).transpose()?,
        redelivery_delay_ms: args.redelivery_delay_ms,
        deliver_timeout_ms: args.deliver_timeout_ms,
        always_receipt: args.always_receipt,
        ..SimConfig::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = relais_smpp::simulator::start(config, async move {
        let _ = stop_rx.await;
    })
    .await?;
    println!("SMSC simulator listening for SMPP on {}", handle.smpp_addr);
    match handle.http_addr {
        Some(addr) => println!(
            "MO injection: POST http://{addr}/mo {{\"from\",\"to\",\"text\"}}; counters: GET http://{addr}/stats"
        ),
        None => println!("no HTTP side (add --http-listen 127.0.0.1:2780 for MO injection)"),
    }
    println!("Ctrl-C stops it.");
    let every = std::time::Duration::from_secs(args.stats_every_secs);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut last = handle.counters();
    loop {
        tokio::select! {
            r = &mut ctrl_c => {
                r.context("cannot wait for Ctrl-C")?;
                break;
            }
            _ = tokio::time::sleep(every), if !every.is_zero() => {
                let now = handle.counters();
                if now != last {
                    println!("{now}");
                    last = now;
                }
            }
        }
    }
    let _ = stop_tx.send(());
    // Lets sessions send their unbind before the runtime goes away.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    println!("stopped: {}", handle.counters());
    Ok(())
}

async fn inject_mo(
    http: &str,
    from: &str,
    to: &str,
    system_id: Option<&str>,
    text: &str,
) -> anyhow::Result<()> {
    let base = http.trim_end_matches('/');
    let base = if base.contains("://") {
        base.to_owned()
    } else {
        format!("http://{base}")
    };
    let mut body = serde_json::json!({ "from": from, "to": to, "text": text });
    if let Some(sid) = system_id {
        body["system_id"] = sid.into();
    }
    // reqwest is built without a default TLS provider; the first caller installs one.
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    let response = reqwest::Client::new()
        .post(format!("{base}/mo"))
        .json(&body)
        .send()
        .await
        .with_context(|| format!("cannot reach the simulator at {base}"))?;
    let status = response.status();
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    if status.is_success() {
        println!("MO sent in {} part(s)", answer["parts"]);
        Ok(())
    } else {
        anyhow::bail!(
            "the simulator refused the MO ({status}): {}",
            answer["error"].as_str().unwrap_or("no detail")
        )
    }
}
