//! `relais bench agents`: the help desk of a busy tenant. Many conversations (most
//! resolved, a backlog waiting in its teams' queues, every agent at capacity); the agents
//! logged in, each connected to the event stream and reading its queue over HTTP as a
//! console does, while customers keep writing in through the inbound pipeline.

use crate::bench::{BenchServer, bar, cpu_secs, ms, peak_rss_kib, store_kind};
use crate::bench_smpp::percentile;
use anyhow::Context;
use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use relais_core::agent::{AssignmentRule, Priority, Role};
use relais_core::channel::ChannelKind;
use relais_core::clock::{Clock, SystemClock};
use relais_core::contact::Identity;
use relais_core::conversation::ConversationState;
use relais_engine::agents::AgentRequest;
use relais_engine::inbound::NewInbound;
use relais_store::{InboundPlacement, Store, TeamSpec};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, clap::Args)]
pub struct AgentsBenchArgs {
    /// Conversations of the tenant before the measure (one contact each).
    #[arg(long, default_value_t = 100_000)]
    pub conversations: usize,
    /// Agents logged in, each on the event stream and reading its queue.
    #[arg(long, default_value_t = 50)]
    pub agents: usize,
    /// Teams the agents and the waiting conversations are spread over.
    #[arg(long, default_value_t = 5)]
    pub teams: usize,
    /// Conversations an agent holds at once.
    #[arg(long, default_value_t = 10)]
    pub capacity: u32,
    /// Seconds of measure.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Pause of each agent between two reads of its list, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub think_ms: u64,
    /// Customers' messages per second through the inbound pipeline during the measure.
    #[arg(long, default_value_t = 50)]
    pub inbound_rate: u32,
}

/// One conversation in this many waits for an agent; the others are resolved.
const WAITING_EVERY: usize = 10;
/// …and of the rest, this many in ten (so 3 in 10 wait, 7 are resolved).
const WAITING_OF_TEN: usize = 3;
/// Conversations written at once while seeding.
const SEED_CONCURRENCY: usize = 16;
/// The agents' password (bench data only).
const PASSWORD: &str = "bench-agent-password";

fn waits(i: usize) -> bool {
    i % WAITING_EVERY < WAITING_OF_TEN
}

fn address(i: usize) -> String {
    format!("+336{:08}", 10_000_000 + i)
}

fn team_name(t: usize) -> String {
    format!("support-{t}")
}

/// A spread of senders over the whole base, the same for every run.
fn sender_of(k: u64, conversations: usize) -> usize {
    (k.wrapping_mul(2_654_435_761) % conversations as u64) as usize
}

const TEXTS: &[&str] = &[
    "Bonjour, toujours pas de nouvelles de mon colis ?",
    "I am still waiting for an answer, this is unacceptable",
    "URGENT my flight leaves in two hours and I have no boarding pass",
    "Merci, j'attends votre retour.",
    "Can someone call me back please?",
];

pub async fn run(
    args: AgentsBenchArgs,
    database_url: Option<String>,
    durability: relais_store::Durability,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=10_000_000).contains(&args.conversations),
        "--conversations must be between 1 and 10000000"
    );
    anyhow::ensure!(
        (1..=1000).contains(&args.agents),
        "--agents must be between 1 and 1000"
    );
    anyhow::ensure!(
        (1..=args.agents).contains(&args.teams),
        "--teams must be between 1 and --agents"
    );
    anyhow::ensure!(args.seconds >= 1, "--seconds must be at least 1");
    let dir = tempfile::tempdir()?;
    let url = database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let store = relais_store::open_with(&url, relais_store::StoreOptions { durability })
        .await
        .with_context(|| format!("cannot open {}", relais_store::redact_url(&url)))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let tenant_name = format!("bench-agents-{}", relais_core::ids::new_id());
    let tenant = store.create_tenant(&tenant_name, clock.now()).await?.id;
    let server = BenchServer::start(store.clone(), clock.clone(), Default::default()).await?;
    let desk = server.state.desk.clone();

    let seeding = Instant::now();
    for t in 0..args.teams {
        store
            .put_team(
                &tenant,
                &team_name(t),
                &TeamSpec {
                    description: None,
                    assignment: AssignmentRule::LeastBusy,
                    // Long enough that no SLA breaches during the run: the bench reads
                    // lists, it does not measure the SLA watcher.
                    first_response_minutes: Some(7 * 24 * 60),
                    next_response_minutes: Some(7 * 24 * 60),
                    is_default: t == 0,
                    csat: false,
                },
                clock.now(),
            )
            .await?;
    }
    let mut creating = Vec::new();
    for a in 0..args.agents {
        let (desk, tenant) = (desk.clone(), tenant.clone());
        let teams = vec![team_name(a % args.teams)];
        let capacity = args.capacity;
        creating.push(tokio::spawn(async move {
            desk.create_agent(
                &tenant,
                AgentRequest {
                    email: format!("agent{a}@bench.example"),
                    name: format!("Agent {a}"),
                    password: PASSWORD.into(),
                    role: Role::Agent,
                    teams,
                    capacity: Some(capacity),
                },
            )
            .await
        }));
    }
    for agent in creating {
        agent
            .await?
            .map_err(|e| anyhow::anyhow!("creating an agent: {e}"))?;
    }
    seed_conversations(&store, &tenant, &args, &*clock).await?;
    for t in 0..args.teams {
        if let Some(team) = store.team(&tenant, &team_name(t)).await? {
            desk.assign_waiting(&team).await?;
        }
    }
    if url.starts_with("postgres") {
        // A live database has its planner statistics kept by autovacuum; one just filled
        // in bulk does not have them yet, and PostgreSQL would plan the queue's read as if
        // the table were empty.
        let pool = sqlx::PgPool::connect(&url).await?;
        sqlx::query("ANALYZE conversations, agents, agent_teams, contacts, identities")
            .execute(&pool)
            .await?;
        pool.close().await;
    }
    let seeded_secs = seeding.elapsed().as_secs_f64();

    // The agents log in and connect to the stream, as a console does.
    let http = reqwest::Client::builder().build()?;
    let mut tokens = Vec::with_capacity(args.agents);
    for a in 0..args.agents {
        let answer: serde_json::Value = http
            .post(format!("{}/v1/auth/login", server.base))
            .json(&serde_json::json!({
                "email": format!("agent{a}@bench.example"),
                "password": PASSWORD,
                // Earlier runs on the same PostgreSQL database have agents of that e-mail.
                "tenant": tenant_name,
            }))
            .send()
            .await?
            .error_for_status()
            .context("an agent's login")?
            .json()
            .await?;
        let token = answer["token"]
            .as_str()
            .context("the login answer has no token")?
            .to_owned();
        tokens.push(token);
    }
    let ws_base = server.base.replacen("http://", "ws://", 1);
    let stop = Arc::new(AtomicBool::new(false));
    let events_seen: Arc<Vec<AtomicU64>> =
        Arc::new((0..args.agents).map(|_| AtomicU64::new(0)).collect());
    let resets = Arc::new(AtomicUsize::new(0));
    let mut streams = Vec::new();
    for (a, token) in tokens.iter().enumerate() {
        let (socket, _) = tokio_tungstenite::connect_async(format!(
            "{ws_base}/v1/events/stream?access_token={token}"
        ))
        .await
        .context("an agent's event stream")?;
        let (stop, events_seen, resets) = (stop.clone(), events_seen.clone(), resets.clone());
        streams.push(tokio::spawn(async move {
            let mut socket = socket;
            while !stop.load(Ordering::Relaxed) {
                let frame =
                    match tokio::time::timeout(Duration::from_millis(200), socket.next()).await {
                        Err(_) => continue,
                        Ok(Some(Ok(frame))) => frame,
                        Ok(_) => return false,
                    };
                if let Message::Text(text) = frame {
                    if text.contains("\"stream.reset\"") {
                        resets.fetch_add(1, Ordering::Relaxed);
                    }
                    events_seen[a].fetch_add(1, Ordering::Relaxed);
                }
            }
            true
        }));
    }

    println!(
        "seeded {} conversations ({} waiting or assigned), {} teams, {} agents in {seeded_secs:.1} s; measuring for {} s",
        args.conversations,
        (0..args.conversations).filter(|i| waits(*i)).count(),
        args.teams,
        args.agents,
        args.seconds
    );
    let cpu_before = cpu_secs("self");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);

    // Customers keep writing: to waiting conversations (their priority and SLA move) and
    // to resolved ones (reopened, back in the queue).
    let inbound = {
        let (pipeline, tenant, stop) = (server.state.inbound.clone(), tenant.clone(), stop.clone());
        let (rate, conversations) = (args.inbound_rate, args.conversations);
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failed = 0usize;
            if rate == 0 {
                return (latencies, failed);
            }
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                k += 1;
                let sender = sender_of(k, conversations);
                let t = Instant::now();
                let received = pipeline
                    .receive(NewInbound {
                        answers: Vec::new(),
                        tenant_id: tenant.clone(),
                        channel: ChannelKind::Sms,
                        channel_id: None,
                        from: address(sender).trim_start_matches('+').to_owned(),
                        to: "36180".into(),
                        text: TEXTS[k as usize % TEXTS.len()].to_owned(),
                        payload: None,
                        media: None,
                        provider_id: Some(format!("bench-agents-{k}")),
                    })
                    .await;
                latencies.push(t.elapsed().as_micros() as u64);
                if let Err(e) = received {
                    if failed == 0 {
                        eprintln!("first inbound failure: {e}");
                    }
                    failed += 1;
                }
            }
            (latencies, failed)
        })
    };

    // Each agent reads its queue (waiting and assigned, most urgent first), and one read in
    // four its own conversations, then pauses.
    let list_failures = Arc::new(AtomicUsize::new(0));
    let empty_queues = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for token in tokens {
        let (http, base) = (http.clone(), server.base.clone());
        let (list_failures, empty_queues) = (list_failures.clone(), empty_queues.clone());
        let think = Duration::from_millis(args.think_ms);
        readers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let query = if n.is_multiple_of(4) {
                    "state=open&assignee=me&order=priority&limit=50"
                } else {
                    "state=pending,open&order=priority&limit=50"
                };
                let t = Instant::now();
                let answer = http
                    .get(format!("{base}/v1/conversations?{query}"))
                    .bearer_auth(&token)
                    .send()
                    .await;
                let page = match answer {
                    Ok(answer) if answer.status().is_success() => {
                        answer.json::<serde_json::Value>().await.ok()
                    }
                    Ok(answer) => {
                        if list_failures.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!(
                                "first failed list: {} {}",
                                answer.status(),
                                answer.text().await.unwrap_or_default()
                            );
                        }
                        None
                    }
                    Err(e) => {
                        if list_failures.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("first failed list: {e}");
                        }
                        None
                    }
                };
                latencies.push(t.elapsed().as_micros() as u64);
                let rows = page
                    .as_ref()
                    .and_then(|p| p["data"].as_array())
                    .map_or(0, Vec::len);
                if rows == 0 && page.is_some() && empty_queues.fetch_add(1, Ordering::Relaxed) == 0
                {
                    eprintln!("first empty list: {query}");
                }
                tokio::time::sleep(think).await;
            }
            latencies
        }));
    }
    let progress = bar(args.seconds, "agents");
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        progress.inc(1);
    }
    let mut list_us = Vec::new();
    for reader in readers {
        list_us.extend(reader.await?);
    }
    stop.store(true, Ordering::Relaxed);
    let (mut inbound_us, inbound_failed) = inbound.await?;
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_secs("self").zip(cpu_before).map(|(a, b)| a - b);
    progress.finish();
    let mut streams_closed = 0;
    for stream in streams {
        if !stream.await? {
            streams_closed += 1;
        }
    }
    server.stop().await;
    list_us.sort_unstable();
    inbound_us.sort_unstable();
    let seen: Vec<u64> = events_seen
        .iter()
        .map(|e| e.load(Ordering::Relaxed))
        .collect();

    println!(
        "bench: agents ({} on {}; durability {}; {} conversations, {} agents in {} teams, capacity {}; {} cores)",
        store_kind(&url),
        relais_store::redact_url(&url),
        durability.as_str(),
        args.conversations,
        args.agents,
        args.teams,
        args.capacity,
        std::thread::available_parallelism().map_or(0, |p| p.get()),
    );
    println!(
        "agent's list over HTTP ({} reads, {:.0}/s): p50 {}  p95 {}  p99 {}  max {}",
        list_us.len(),
        list_us.len() as f64 / secs,
        ms(percentile(&list_us, 0.50)),
        ms(percentile(&list_us, 0.95)),
        ms(percentile(&list_us, 0.99)),
        ms(percentile(&list_us, 1.0)),
    );
    println!(
        "inbound meanwhile: {} messages ({:.0}/s), p50 {}  p99 {}, {inbound_failed} failed",
        inbound_us.len(),
        inbound_us.len() as f64 / secs,
        ms(percentile(&inbound_us, 0.50)),
        ms(percentile(&inbound_us, 0.99)),
    );
    println!(
        "event stream: {} events to {} agents (per agent: min {}, max {}), {} resets, {streams_closed} closed early",
        seen.iter().sum::<u64>(),
        seen.len(),
        seen.iter().min().copied().unwrap_or(0),
        seen.iter().max().copied().unwrap_or(0),
        resets.load(Ordering::Relaxed),
    );
    if let Some(cpu) = cpu {
        println!("CPU: {cpu:.2} s over {secs:.1} s");
    }
    if let Some(peak) = peak_rss_kib("self") {
        println!("peak RSS: {:.1} MiB", peak as f64 / 1024.0);
    }
    anyhow::ensure!(
        list_failures.load(Ordering::Relaxed) == 0,
        "some list reads failed"
    );
    anyhow::ensure!(
        empty_queues.load(Ordering::Relaxed) == 0,
        "an agent's list came back empty: the seeded queue should never be"
    );
    anyhow::ensure!(inbound_failed == 0, "some inbound messages failed");
    anyhow::ensure!(streams_closed == 0, "an event stream closed during the run");
    anyhow::ensure!(
        args.inbound_rate == 0 || seen.iter().all(|n| *n > 0),
        "an agent's event stream carried nothing while customers wrote"
    );
    Ok(())
}

/// The tenant's conversations: one contact each; a resolved history, and a backlog
/// waiting in its team's queue with its priority and SLA, spread over the last hours.
async fn seed_conversations(
    store: &Arc<dyn Store>,
    tenant: &str,
    args: &AgentsBenchArgs,
    clock: &dyn Clock,
) -> anyhow::Result<()> {
    let n = args.conversations;
    let progress = bar(n as u64, "seeding");
    let mut contacts = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let identities: Vec<Identity> = chunk
            .iter()
            .map(|i| Identity {
                channel: ChannelKind::Sms,
                address: address(*i),
            })
            .collect();
        let found = store
            .resolve_or_create_contacts(tenant, &identities, clock.now())
            .await?;
        contacts.extend(found.into_iter().map(|(contact, _)| contact.id));
    }
    anyhow::ensure!(contacts.len() == n, "seeding: a contact is missing");
    let contacts = Arc::new(contacts);
    let next = Arc::new(AtomicUsize::new(0));
    let now = clock.now();
    let mut tasks = Vec::new();
    for _ in 0..SEED_CONCURRENCY {
        let (store, tenant, contacts, next, progress) = (
            store.clone(),
            tenant.to_owned(),
            contacts.clone(),
            next.clone(),
            progress.clone(),
        );
        let teams = args.teams;
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(());
                }
                // The oldest first, half a second apart.
                let at = now - SignedDuration::from_millis(500 * (n - i) as i64);
                seed_one(&*store, &tenant, &contacts[i], i, at, teams).await?;
                progress.inc(1);
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    progress.finish();
    Ok(())
}

async fn seed_one(
    store: &dyn Store,
    tenant: &str,
    contact: &str,
    i: usize,
    at: Timestamp,
    teams: usize,
) -> anyhow::Result<()> {
    let waiting = waits(i);
    let text = TEXTS[i % TEXTS.len()];
    let message_id = relais_core::ids::new_id();
    let conversation = store
        .place_inbound(&InboundPlacement {
            tenant_id: tenant,
            contact_id: contact,
            message_id: &message_id,
            channel: ChannelKind::Sms,
            channel_id: None,
            address: &address(i),
            last_message: &serde_json::json!({
                "direction": "in", "text": text, "channel": "sms", "at": at, "message_id": message_id,
            }),
            at,
            state: if waiting {
                ConversationState::Pending
            } else {
                ConversationState::Resolved
            },
            reopens: false,
        })
        .await?;
    if waiting {
        // The waiting ones, counted in order, go round the teams.
        let waiting_ordinal = i / WAITING_EVERY * WAITING_OF_TEN + i % WAITING_EVERY;
        let team = team_name(waiting_ordinal % teams);
        store
            .assign_conversation(tenant, &conversation.id, None, Some(&team), at)
            .await?;
        let priority = Priority::of(
            i.is_multiple_of(7),
            i.is_multiple_of(4),
            i.is_multiple_of(50),
        )
        .0;
        let due = at + SignedDuration::from_hours(7 * 24);
        store
            .note_customer_waiting(tenant, &conversation.id, priority, at, Some(due), Some(due))
            .await?;
    }
    Ok(())
}
