//! `relais bench twilio`: one message per request through the Twilio-compatible endpoint
//! (form body, HTTP Basic auth, Twilio's JSON answer), as the official SDKs send, beside
//! the same messages through the native `POST /v1/messages`; msg/s and latency of each.
//!
//! Both run on one server (in this process, on a fresh SQLite file, `sim` delivering at
//! once), in alternating rounds, so that a warming cache or a growing database favours
//! neither.

use crate::bench::{BenchServer, bar, peak_rss_kib};
use anyhow::Context;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct TwilioBenchArgs {
    /// Messages sent through each API.
    #[arg(long, default_value_t = 20_000)]
    pub messages: usize,
    /// Concurrent keep-alive clients, each sending one message per request.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Rounds each API is given in turn (each sends messages / rounds).
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
}

/// One API's requests.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    Native,
    Twilio,
}

/// What a request needs besides its number.
struct Target {
    client: reqwest::Client,
    base: String,
    bearer: String,
    basic_user: String,
    basic_password: String,
}

impl Target {
    fn request(&self, api: Api, n: usize) -> reqwest::RequestBuilder {
        let to = format!("+3377{:07}", n);
        let text = "Votre code Relais est 482913. Il expire dans 10 minutes.";
        match api {
            Api::Native => self
                .client
                .post(format!("{}/v1/messages", self.base))
                .header("authorization", &self.bearer)
                .json(&serde_json::json!({"to": to, "from": "Relais", "content": {"text": text}})),
            Api::Twilio => self
                .client
                .post(format!(
                    "{}/2010-04-01/Accounts/{}/Messages.json",
                    self.base, self.basic_user
                ))
                .basic_auth(&self.basic_user, Some(&self.basic_password))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(relais_engine::twilio::signature::form_body(&[
                    ("To".to_owned(), to),
                    ("From".to_owned(), "Relais".to_owned()),
                    ("Body".to_owned(), text.to_owned()),
                ])),
        }
    }
}

/// Sends messages `from..from + count` through `api` with `clients` clients: elapsed time
/// and every request's latency.
async fn send(
    target: &Arc<Target>,
    api: Api,
    from: usize,
    count: usize,
    clients: usize,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<(Duration, Vec<Duration>)> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (target, next, progress) = (target.clone(), next.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let t = Instant::now();
                let response = target.request(api, from + i).send().await?;
                let status = response.status();
                let _ = response.bytes().await?;
                latencies.push(t.elapsed());
                anyhow::ensure!(
                    status.as_u16() == 201 || status.as_u16() == 202,
                    "a send was refused: {status}"
                );
                progress.inc(1);
            }
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok((started.elapsed(), latencies))
}

fn quantile(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1))
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

pub async fn run(args: TwilioBenchArgs) -> anyhow::Result<()> {
    use relais_core::clock::{Clock, SystemClock};
    anyhow::ensure!(args.clients >= 1, "--clients must be at least 1");
    anyhow::ensure!(args.rounds >= 1, "--rounds must be at least 1");
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = relais_store::open(&url)
        .await
        .with_context(|| format!("cannot open {url}"))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (tenant, key) =
        relais_engine::tenants::create_tenant(&*store, "bench-twilio", clock.now()).await?;
    let account = relais_engine::twilio::accounts::issue(&*store, &tenant.id, clock.now()).await?;
    let relais = BenchServer::start(
        store.clone(),
        clock.clone(),
        relais_engine::sim::SimConfig {
            delivered_after: Some(jiff::SignedDuration::ZERO),
            read_after: None,
        },
    )
    .await?;
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    let target = Arc::new(Target {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(args.clients + 1)
            .build()?,
        base: relais.base.clone(),
        bearer: format!("Bearer {}", key.secret),
        basic_user: account.account_sid.to_string(),
        basic_password: account.auth_token,
    });

    let per_round = args.messages.div_ceil(args.rounds);
    let mut totals = [(Duration::ZERO, Vec::new()), (Duration::ZERO, Vec::new())];
    for round in 0..args.rounds {
        for (slot, api, label) in [(0, Api::Native, "native"), (1, Api::Twilio, "twilio")] {
            let progress = bar(per_round as u64, label);
            // Distinct numbers per API and round, so that each message makes a new contact.
            let from = (slot * args.rounds + round) * per_round;
            let (elapsed, latencies) =
                send(&target, api, from, per_round, args.clients, &progress).await?;
            progress.finish();
            totals[slot].0 += elapsed;
            totals[slot].1.extend(latencies);
        }
    }
    relais.stop().await;

    println!(
        "bench: twilio (SQLite fresh file; {} messages per API, one per request, {} clients, {} alternating rounds)",
        per_round * args.rounds,
        args.clients,
        args.rounds
    );
    println!(
        "{:<34} {:>10} {:>10} {:>10} {:>10}",
        "API", "msg/s", "p50", "p99", "max"
    );
    let mut rates = [0.0; 2];
    for (slot, name) in [
        (0, "native POST /v1/messages"),
        (1, "Twilio POST Messages.json"),
    ] {
        let (elapsed, latencies) = &mut totals[slot];
        latencies.sort();
        rates[slot] = latencies.len() as f64 / elapsed.as_secs_f64();
        println!(
            "{name:<34} {:>10.0} {:>7.2} ms {:>7.2} ms {:>7.2} ms",
            rates[slot],
            quantile(latencies, 0.50),
            quantile(latencies, 0.99),
            quantile(latencies, 1.0)
        );
    }
    let ratio = rates[1] / rates[0];
    println!(
        "twilio / native throughput: {:.2} (goal: within 20 %, >= 0.80: {})",
        ratio,
        if ratio >= 0.8 { "met" } else { "NOT met" }
    );
    if let Some(kib) = peak_rss_kib("self") {
        println!("peak RSS (VmHWM): {:.1} MiB", kib as f64 / 1024.0);
    }
    Ok(())
}
