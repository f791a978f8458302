//! `relais bench whatsapp`: Meta's status webhooks pushed at a running Relais, as Meta
//! calls a busy number's webhook: messages sent on a `whatsapp` channel (to a local fake
//! of the Graph API), then a signed `delivered` and a signed `read` status for each, over
//! keep-alive connections. Each call is verified (`X-Hub-Signature-256`), read, matched
//! to its message by wamid and written so that no status moves a message backwards; one
//! call in a hundred is a redelivery of a `delivered` status already applied.

use crate::bench::{Batches, BenchServer, Bodies, Counter, bar, cpu_secs, ms, peak_rss_kib};
use crate::bench_smpp::percentile;
use anyhow::Context;
use relais_core::clock::{Clock, SystemClock};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct WhatsAppBenchArgs {
    /// Messages sent; each then gets a `delivered` and a `read` status.
    #[arg(long, default_value_t = 20_000)]
    pub messages: usize,
    /// Webhook calls in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Statuses in one webhook call (Meta sends one or several).
    #[arg(long, default_value_t = 1)]
    pub per_call: usize,
}

const PHONE_NUMBER_ID: &str = "106540352242922";
const APP_SECRET: &str = "bench-app-secret";
const ACCESS_TOKEN: &str = "bench-access-token";

/// One call in this many is a redelivery of a `delivered` status already sent.
const REDELIVERY_EVERY: usize = 100;

/// A fake Graph API that takes every message and answers its wamid (`wamid.BENCH{n}`,
/// in the order of the requests).
async fn fake_graph() -> anyhow::Result<(String, Arc<AtomicUsize>)> {
    let taken = Arc::new(AtomicUsize::new(0));
    let counter = taken.clone();
    let app = axum::Router::new().route(
        &format!("/v23.0/{PHONE_NUMBER_ID}/messages"),
        axum::routing::post(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                axum::Json(serde_json::json!({"messaging_product": "whatsapp",
                    "messages": [{"id": format!("wamid.BENCH{n}")}]}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, taken))
}

/// A signed webhook call carrying `state` for the messages `wamids`.
fn status_call(wamids: &[usize], state: &str) -> (bytes::Bytes, String) {
    let statuses: Vec<serde_json::Value> = wamids
        .iter()
        .map(|n| {
            serde_json::json!({"id": format!("wamid.BENCH{n}"), "status": state,
                "timestamp": (1_764_840_000 + n).to_string(), "recipient_id": "33612345678"})
        })
        .collect();
    let body = serde_json::json!({"object": "whatsapp_business_account", "entry": [{
        "id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
            "statuses": statuses}}]}]})
    .to_string();
    let signature = relais_channels::whatsapp::signature::sign(APP_SECRET, body.as_bytes());
    (bytes::Bytes::from(body), signature)
}

pub async fn run(
    args: WhatsAppBenchArgs,
    database_url: Option<String>,
    durability: relais_store::Durability,
) -> anyhow::Result<()> {
    anyhow::ensure!(args.messages >= 1, "--messages must be at least 1");
    anyhow::ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    anyhow::ensure!(
        (1..=1000).contains(&args.per_call),
        "--per-call must be between 1 and 1000"
    );
    let dir = tempfile::tempdir()?;
    let url = database_url
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let store = relais_store::open_with(&url, relais_store::StoreOptions { durability })
        .await
        .with_context(|| format!("cannot open {}", relais_store::redact_url(&url)))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let name = format!("bench-whatsapp-{}", jiff::Timestamp::now().as_millisecond());
    let (tenant, key) = relais_engine::tenants::create_tenant(&*store, &name, clock.now()).await?;
    let relais = BenchServer::start(store.clone(), clock, Default::default()).await?;
    let base = relais.base.clone();
    let (graph_url, taken) = fake_graph().await?;
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency + 1)
        .build()?;
    let auth = format!("Bearer {}", key.secret);

    let created: serde_json::Value = client
        .post(format!("{base}/v1/channels"))
        .header("authorization", &auth)
        .json(
            &serde_json::json!({"kind": "whatsapp", "name": "wa", "config": {
            "phone_number_id": PHONE_NUMBER_ID, "access_token": ACCESS_TOKEN,
            "app_secret": APP_SECRET, "verify_token": "bench", "base_url": graph_url,
            // The bench measures statuses: its templates to new customers must not wait
            // for Meta's messaging limit.
            "api_version": "v23.0", "max_rate": 10_000, "messaging_limit": "unlimited"}}),
        )
        .send()
        .await?
        .json()
        .await?;
    let hook = match created["webhook_url"].as_str() {
        Some(path) => format!("{base}{path}"),
        None => anyhow::bail!("the channel was not created: {created}"),
    };

    // The messages, sent before the clock starts.
    let n = args.messages;
    let sent_bar = bar(n as u64, "sent");
    let bodies = Bodies::build(
        Batches {
            messages: n,
            size: 1000,
            clients: 4,
        },
        |i| {
            // An approved template: these recipients never wrote, so the 24-hour window
            // for free-form messages is closed.
            serde_json::json!({"to": format!("+336{:08}", 10_000_000 + i), "channel": "wa",
                "content": {"template": "order_shipped", "language": "fr",
                    "variables": {"1": "Camille"}}})
        },
    );
    crate::bench::post_batches(
        &client,
        &base,
        &auth,
        bodies,
        &indicatif::ProgressBar::hidden(),
    )
    .await?;
    let counter = Counter::open(&url).await?;
    loop {
        let sent = counter.in_status(&tenant.id, "sent").await?;
        sent_bar.set_position(sent);
        if sent >= n as u64 {
            break;
        }
        anyhow::ensure!(
            taken.load(Ordering::SeqCst) <= n,
            "the fake Graph API took more messages than were sent"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    sent_bar.finish();

    // The calls: every message's `delivered`, then every message's `read`, with
    // redeliveries of `delivered` among the latter.
    let mut calls = Vec::new();
    let wamids: Vec<usize> = (1..=n).collect();
    for chunk in wamids.chunks(args.per_call) {
        calls.push((chunk.len(), status_call(chunk, "delivered")));
    }
    let mut redelivered = 0usize;
    for (i, chunk) in wamids.chunks(args.per_call).enumerate() {
        calls.push((chunk.len(), status_call(chunk, "read")));
        if i % REDELIVERY_EVERY == REDELIVERY_EVERY - 1 {
            calls.push((chunk.len(), status_call(chunk, "delivered")));
            redelivered += chunk.len();
        }
    }
    let statuses: usize = calls.iter().map(|(count, _)| count).sum();
    let latencies: Arc<Vec<AtomicU64>> =
        Arc::new((0..calls.len()).map(|_| AtomicU64::new(0)).collect());
    let calls = Arc::new(calls);
    let next = Arc::new(AtomicUsize::new(0));
    let progress = bar(statuses as u64, "statuses");
    let cpu_before = cpu_secs("self");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (client, hook, calls, next, latencies, progress) = (
            client.clone(),
            hook.clone(),
            calls.clone(),
            next.clone(),
            latencies.clone(),
            progress.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((count, (body, signature))) = calls.get(i) else {
                    return anyhow::Ok(());
                };
                let t = Instant::now();
                let response = client
                    .post(&hook)
                    .header("content-type", "application/json")
                    .header("x-hub-signature-256", signature)
                    .body(body.clone())
                    .send()
                    .await?;
                let code = response.status();
                let text = response.bytes().await?;
                anyhow::ensure!(
                    code.as_u16() == 200,
                    "a status call was refused: {code} {}",
                    String::from_utf8_lossy(&text)
                );
                latencies[i].store(t.elapsed().as_micros() as u64, Ordering::Relaxed);
                progress.inc(*count as u64);
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = match (cpu_before, cpu_secs("self")) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    progress.finish();
    let read = counter.in_status(&tenant.id, "read").await?;
    relais.stop().await;

    let mut sorted: Vec<u64> = latencies
        .iter()
        .map(|l| l.load(Ordering::Relaxed))
        .collect();
    sorted.sort_unstable();
    let rate = statuses as f64 / secs;
    println!(
        "bench: whatsapp status webhooks ({}; {n} messages, {statuses} statuses in {} calls of {}, {} in flight; {redelivered} redelivered)",
        crate::bench::store_kind(&url),
        calls.len(),
        args.per_call,
        args.concurrency
    );
    println!(
        "statuses/s: {rate:.0} (goal >= 20000: {})",
        if rate >= 20_000.0 { "met" } else { "NOT met" }
    );
    println!(
        "call latency p50 {}  p99 {}  max {}",
        ms(percentile(&sorted, 0.50)),
        ms(percentile(&sorted, 0.99)),
        ms(percentile(&sorted, 1.0))
    );
    if let Some(cpu) = cpu {
        println!(
            "CPU per status (whole process, fake Graph API and load included): {:.0} µs",
            cpu / statuses as f64 * 1e6
        );
    }
    if let Some(kib) = peak_rss_kib("self") {
        println!("peak RSS: {:.1} MiB", kib as f64 / 1024.0);
    }
    println!("messages read at the end: {read} of {n}");
    anyhow::ensure!(
        read == n as u64,
        "{} messages are not `read` after every status was answered 200",
        n as u64 - read
    );
    Ok(())
}
