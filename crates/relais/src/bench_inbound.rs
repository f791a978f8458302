//! `relais bench inbound`: customers' messages pushed through the whole inbound pipeline
//! (store once, contact, keywords, conversation, NLU, one bot flow step with its reply
//! accepted for sending, the `message.received` event on the event stream), as a channel
//! adapter hands them over, then an agent's conversation list read back.

use crate::bench::{bar, cpu_secs, ms, peak_rss_kib, store_kind};
use crate::bench_smpp::percentile;
use anyhow::Context;
use relais_core::clock::{Clock, SystemClock};
use relais_core::contact::AddressRules;
use relais_core::conversation::ConversationState;
use relais_engine::inbound::{InboundPipeline, NewInbound};
use relais_engine::nlu::NluService;
use relais_store::{ConversationFilter, MessageFilter, PageRequest};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct InboundBenchArgs {
    /// Inbound messages pushed through the pipeline.
    #[arg(long, default_value_t = 20_000)]
    pub messages: usize,
    /// Distinct senders: each becomes a contact with one conversation.
    #[arg(long, default_value_t = 5_000)]
    pub senders: usize,
    /// Messages in the pipeline at once, as channels deliver them concurrently.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Timed reads of an agent's conversation list after the run (the 50 pending
    /// conversations with the latest activity).
    #[arg(long, default_value_t = 1000)]
    pub list_reads: usize,
    /// Run without the bot flow (by default every conversation has one, and each message
    /// takes one step of it with one reply).
    #[arg(long)]
    pub no_flow: bool,
}

/// The bench's flow: every message is an answer to a question asked again, so each one
/// takes one flow step and gets one reply.
fn bench_flow() -> serde_json::Value {
    serde_json::json!({
        "entry": {"new_conversation": true},
        "start": "again",
        "nodes": {"again": {"type": "ask", "text": "Merci, c'est noté. Autre chose ?", "var": "last", "next": "again"}}
    })
}

/// One message in this many is a redelivery of the one before (same provider id).
const REDELIVERY_EVERY: usize = 100;
/// One message in this many is a keyword.
const KEYWORD_EVERY: usize = 25;

const TEXTS: &[&str] = &[
    "Bonjour, où est mon colis ? Il devait arriver hier.",
    "my bag did not arrive on the flight from Lyon",
    "I want a refund for my cancelled trip",
    "Merci beaucoup, c'est parfait !",
    "URGENT my flight leaves today and I still have no ticket!!",
    "Pouvez-vous changer l'adresse de livraison ?",
    "what time does the store open on sunday",
];
const KEYWORDS: &[&str] = &["STOP", "Stop svp", "AIDE", "START"];

fn text_of(i: usize) -> &'static str {
    if i % KEYWORD_EVERY == KEYWORD_EVERY - 1 {
        KEYWORDS[(i / KEYWORD_EVERY) % KEYWORDS.len()]
    } else {
        TEXTS[i % TEXTS.len()]
    }
}

/// The message a provider delivers `i`-th: every [`REDELIVERY_EVERY`]-th delivery is the
/// message before it again (same sender, text and provider id), the others are new.
fn original_of(i: usize) -> usize {
    let redelivered_before = |i: usize| i / REDELIVERY_EVERY;
    if i % REDELIVERY_EVERY == REDELIVERY_EVERY - 1 {
        i - 1 - redelivered_before(i - 1)
    } else {
        i - redelivered_before(i)
    }
}

pub async fn run(
    args: InboundBenchArgs,
    database_url: Option<String>,
    durability: relais_store::Durability,
) -> anyhow::Result<()> {
    anyhow::ensure!(args.messages >= 1, "--messages must be at least 1");
    anyhow::ensure!(
        (1..=1_000_000).contains(&args.senders),
        "--senders must be between 1 and 1000000"
    );
    anyhow::ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    let dir = tempfile::tempdir()?;
    let url = database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let store = relais_store::open_with(&url, relais_store::StoreOptions { durability })
        .await
        .with_context(|| format!("cannot open {}", relais_store::redact_url(&url)))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let tenant = store
        .create_tenant(
            &format!("bench-inbound-{}", relais_core::ids::new_id()),
            clock.now(),
        )
        .await?
        .id;
    let pipeline = Arc::new(
        InboundPipeline::new(
            store.clone(),
            Arc::new(NluService::new(store.clone())),
            clock.clone(),
            AddressRules {
                default_country: None,
            },
            relais_engine::send::SANDBOX_KINDS.to_vec(),
            None,
        )
        .with_events(relais_engine::events::Events::new(
            store.clone(),
            clock.clone(),
        )),
    );
    if !args.no_flow {
        pipeline
            .flows()
            .put(&tenant, "bench", &bench_flow())
            .await
            .map_err(|e| anyhow::anyhow!("the bench flow: {e}"))?;
    }

    let n = args.messages;
    let latencies: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let duplicates = Arc::new(AtomicUsize::new(0));
    let progress = bar(n as u64, "inbound");
    let cpu_before = cpu_secs("self");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (pipeline, tenant, latencies, next, failed, duplicates, progress) = (
            pipeline.clone(),
            tenant.clone(),
            latencies.clone(),
            next.clone(),
            failed.clone(),
            duplicates.clone(),
            progress.clone(),
        );
        let senders = args.senders;
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let original = original_of(i);
                let message = NewInbound {
                    answers: Vec::new(),
                    tenant_id: tenant.clone(),
                    channel: relais_core::channel::ChannelKind::Sms,
                    channel_id: None,
                    from: format!("336{:08}", 10_000_000 + (original % senders)),
                    to: "36180".into(),
                    text: text_of(original).to_owned(),
                    payload: None,
                    media: None,
                    provider_id: Some(format!("bench-{original}")),
                };
                let t = Instant::now();
                match pipeline.receive(message).await {
                    Ok(received) => {
                        if received.duplicate {
                            duplicates.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) => {
                        if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("first failure: {e}");
                        }
                    }
                }
                latencies[i].store(t.elapsed().as_micros() as u64, Ordering::Relaxed);
                progress.inc(1);
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_secs("self").zip(cpu_before).map(|(a, b)| a - b);
    progress.finish();

    let mut sorted: Vec<u64> = latencies
        .iter()
        .map(|l| l.load(Ordering::Relaxed))
        .collect();
    sorted.sort_unstable();
    // What the pipeline left: conversations, replies, and nothing unfinished.
    let all = |after| PageRequest { after, limit: 1000 };
    let mut conversations = 0;
    let mut after = None;
    loop {
        let page = store
            .list_conversations(&tenant, &ConversationFilter::default(), &all(after))
            .await?;
        conversations += page.data.len();
        match page.next_cursor {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut replies = 0;
    let mut after = None;
    loop {
        let page = store
            .list_messages(&tenant, &MessageFilter::default(), &all(after))
            .await?;
        replies += page.data.len();
        match page.next_cursor {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let unfinished = store
        .unfinished_inbound(clock.now() + jiff::SignedDuration::from_secs(1), 1000)
        .await?
        .into_iter()
        .filter(|m| m.tenant_id == tenant)
        .count();

    // An agent's list: the 50 pending conversations with the latest activity.
    let mut list_us = Vec::with_capacity(args.list_reads);
    for _ in 0..args.list_reads {
        let t = Instant::now();
        let page = store
            .list_conversations(
                &tenant,
                &ConversationFilter {
                    states: vec![if args.no_flow {
                        ConversationState::Pending
                    } else {
                        ConversationState::Bot
                    }],
                    ..Default::default()
                },
                &PageRequest {
                    after: None,
                    limit: 50,
                },
            )
            .await?;
        list_us.push(t.elapsed().as_micros() as u64);
        std::hint::black_box(page);
    }
    list_us.sort_unstable();

    println!(
        "bench: inbound ({} on {}; durability {}; {} messages from {} senders, {} at once; 1 in {KEYWORD_EVERY} a keyword, 1 in {REDELIVERY_EVERY} a redelivery; {} cores)",
        store_kind(&url),
        relais_store::redact_url(&url),
        durability.as_str(),
        n,
        args.senders,
        args.concurrency,
        std::thread::available_parallelism().map_or(0, |p| p.get()),
    );
    println!("inbound msg/s: {:.0}", n as f64 / secs);
    println!(
        "latency per message: p50 {}  p99 {}  max {}",
        ms(percentile(&sorted, 0.50)),
        ms(percentile(&sorted, 0.99)),
        ms(percentile(&sorted, 1.0)),
    );
    if let Some(cpu) = cpu {
        println!(
            "CPU: {cpu:.2} s ({:.0} µs per message)",
            cpu * 1e6 / n as f64
        );
    }
    if let Some(peak) = peak_rss_kib("self") {
        println!("peak RSS: {:.1} MiB", peak as f64 / 1024.0);
    }
    println!(
        "outcome: {} redeliveries answered as duplicates, {} failed, {} unfinished, {conversations} conversations, {replies} replies accepted (keywords and bot)",
        duplicates.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        unfinished
    );
    println!(
        "agent's list (50 {}, latest first, of {conversations}): p50 {}  p99 {}",
        if args.no_flow { "pending" } else { "bot" },
        ms(percentile(&list_us, 0.50)),
        ms(percentile(&list_us, 0.99)),
    );
    anyhow::ensure!(
        failed.load(Ordering::Relaxed) == 0 && unfinished == 0,
        "some messages failed or were left unfinished"
    );
    Ok(())
}
