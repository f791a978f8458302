//! `relais bench …`: the benchmarks docs/BENCHMARKS.md reports.

use anyhow::Context;
use clap::Subcommand;
use relais_core::contact::AddressRules;
use relais_engine::import::import_csv;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Contact import into a fresh SQLite database: rows per second.
    Import {
        /// Rows in the generated CSV file.
        #[arg(long, default_value_t = 200_000)]
        rows: u64,
    },
    /// The A2P pipeline in one process: HTTP accept, dispatch to the `sim` channel, receipts.
    A2p(A2pArgs),
    /// HTTP → Relais → SMPP → the SMSC simulator, every receipt awaited, against Kannel.
    Smpp(crate::bench_smpp::SmppBenchArgs),
    /// Customers' messages through the whole inbound pipeline (store once, contact,
    /// keywords, conversation, NLU), then an agent's conversation list.
    Inbound(crate::bench_inbound::InboundBenchArgs),
    /// The help desk of a busy tenant: agents on the event stream reading their queues
    /// over HTTP while customers write in.
    Agents(crate::bench_agents::AgentsBenchArgs),
    /// Minutes of single sends (and optionally a dead webhook) against a `relais serve`
    /// process: the write-ahead log's peak and the server's memory over time.
    Soak(crate::bench_soak::SoakArgs),
    /// Meta's signed WhatsApp status webhooks (delivered, read, redeliveries) pushed at
    /// a running Relais: verified, matched by wamid, never moving a message backwards.
    Whatsapp(crate::bench_whatsapp::WhatsAppBenchArgs),
    /// Web chat visitors held open on a `relais serve` process (memory per session), and
    /// their messages' round trip to an agent's event stream.
    Widget(crate::bench_widget::WidgetBenchArgs),
    /// A campaign to a large segment on SQLite: start → every message stored (consent,
    /// quiet hours and frequency cap per recipient), peak memory, and delivery by `sim`.
    Campaign(crate::bench_campaign::CampaignBenchArgs),
    /// One message per request through the Twilio-compatible API beside the native
    /// `POST /v1/messages`: msg/s and latency of each.
    Twilio(crate::bench_twilio::TwilioBenchArgs),
}

/// `database_url` is the global `--database-url`: `bench a2p` runs on it when given;
/// `durability` the global `--durability`.
pub async fn run(
    cmd: BenchCommand,
    database_url: Option<String>,
    durability: relais_store::Durability,
) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Import { rows } => bench_import(rows).await,
        BenchCommand::A2p(args) => bench_a2p(args, database_url, durability).await,
        BenchCommand::Smpp(args) => crate::bench_smpp::run(args, durability).await,
        BenchCommand::Inbound(args) => {
            crate::bench_inbound::run(args, database_url, durability).await
        }
        BenchCommand::Agents(args) => {
            crate::bench_agents::run(args, database_url, durability).await
        }
        BenchCommand::Whatsapp(args) => {
            crate::bench_whatsapp::run(args, database_url, durability).await
        }
        BenchCommand::Widget(args) => {
            anyhow::ensure!(
                database_url.is_none(),
                "bench widget runs its own relais serve on a fresh SQLite data directory"
            );
            crate::bench_widget::run(args).await
        }
        BenchCommand::Campaign(args) => {
            anyhow::ensure!(
                database_url.is_none(),
                "bench campaign runs on a fresh SQLite file; it does not run on --database-url"
            );
            crate::bench_campaign::run(args).await
        }
        BenchCommand::Twilio(args) => {
            anyhow::ensure!(
                database_url.is_none(),
                "bench twilio runs on a fresh SQLite file; it does not run on --database-url"
            );
            crate::bench_twilio::run(args).await
        }
        BenchCommand::Soak(args) => {
            anyhow::ensure!(
                database_url.is_none(),
                "bench soak measures SQLite's write-ahead log in a fresh data directory; it does not run on --database-url"
            );
            crate::bench_soak::run(args, durability).await
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct A2pArgs {
    /// Messages sent through `POST /v1/messages/batch`.
    #[arg(long, default_value_t = 100_000)]
    pub messages: usize,
    /// Messages per batch request (at most 10,000).
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Concurrent HTTP clients sending batches.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Single transactional sends timed one after the other.
    #[arg(long, default_value_t = 2000)]
    pub single: usize,
}

async fn bench_import(rows: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let csv_path = dir.path().join("contacts.csv");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&csv_path)?);
        writeln!(
            out,
            "phone,email,first_name,last_name,city,timezone,consent:marketing"
        )?;
        for i in 0..rows {
            // Valid French mobile numbers, in the 06 and 078 ranges.
            let phone = if i % 2 == 0 {
                format!("+336{:08}", 10_000_000 + i / 2)
            } else {
                format!("+3378{:07}", 1_000_000 + i / 2)
            };
            writeln!(
                out,
                "{phone},user{i}@example.com,First{i},Last{i},City{},Europe/Paris,{}",
                i % 500,
                if i % 3 == 0 { "yes" } else { "no" }
            )?;
        }
    }
    let size = std::fs::metadata(&csv_path)?.len();
    let store = relais_store::open(&format!(
        "sqlite://{}",
        dir.path().join("bench.db").display()
    ))
    .await?;
    let tenant = store.create_tenant("bench", jiff::Timestamp::now()).await?;
    let input = std::fs::File::open(&csv_path).context("open generated csv")?;
    let started = Instant::now();
    let summary = import_csv(
        std::io::BufReader::with_capacity(1 << 20, input),
        store,
        &tenant.id,
        AddressRules {
            default_country: None,
        },
        jiff::Timestamp::now(),
        Arc::new(()),
    )
    .await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "bench: import (SQLite, fresh database, batch {})",
        relais_engine::import::BATCH_ROWS
    );
    println!(
        "rows: {}  file: {:.1} MiB",
        summary.rows,
        size as f64 / 1_048_576.0
    );
    println!(
        "created: {}  updated: {}  rejected: {}",
        summary.created, summary.updated, summary.rejected
    );
    println!("elapsed_s: {secs:.3}");
    println!("rows_per_s: {:.0}", summary.rows as f64 / secs);
    Ok(())
}

/// Counts messages by status straight from the database, so that waiting for the end of
/// the run costs one query per poll instead of one HTTP request per message.
pub(crate) enum Counter {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Counter {
    pub(crate) async fn open(url: &str) -> anyhow::Result<Counter> {
        if url.starts_with("postgres") {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await?;
            Ok(Counter::Postgres(pool))
        } else {
            let path = url.trim_start_matches("sqlite://");
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .read_only(true);
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await?;
            Ok(Counter::Sqlite(pool))
        }
    }

    /// Messages of the tenant that reached `delivered` (or `read`), and those that ended
    /// in a failure.
    async fn outcomes(&self, tenant: &str) -> anyhow::Result<(u64, u64)> {
        const COUNTS: &str = "count(*) FILTER (WHERE status IN ('delivered', 'read')), \
             count(*) FILTER (WHERE status IN ('failed', 'undelivered', 'rejected', 'expired', 'canceled'))";
        let (delivered, failed): (i64, i64) = match self {
            Counter::Sqlite(pool) => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {COUNTS} FROM messages WHERE tenant_id = ?"
                )))
                .bind(tenant)
                .fetch_one(pool)
                .await?
            }
            Counter::Postgres(pool) => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {COUNTS} FROM messages WHERE tenant_id = $1"
                )))
                .bind(tenant)
                .fetch_one(pool)
                .await?
            }
        };
        Ok((
            u64::try_from(delivered).unwrap_or(0),
            u64::try_from(failed).unwrap_or(0),
        ))
    }

    /// Messages of the tenant whose status is `status`.
    pub(crate) async fn in_status(&self, tenant: &str, status: &str) -> anyhow::Result<u64> {
        let n: i64 = match self {
            Counter::Sqlite(pool) => {
                sqlx::query_scalar(
                    "SELECT count(*) FROM messages WHERE tenant_id = ? AND status = ?",
                )
                .bind(tenant)
                .bind(status)
                .fetch_one(pool)
                .await?
            }
            Counter::Postgres(pool) => {
                sqlx::query_scalar(
                    "SELECT count(*) FROM messages WHERE tenant_id = $1 AND status = $2",
                )
                .bind(tenant)
                .bind(status)
                .fetch_one(pool)
                .await?
            }
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Of the tenant's `last` newest messages, how many are not `delivered` (or `read`)
    /// yet: read through the tenant's id index, so polling it often costs the measured
    /// server little, unlike a count over every message (a scan of the whole run).
    pub(crate) async fn undelivered_among_newest(
        &self,
        tenant: &str,
        last: i64,
    ) -> anyhow::Result<u64> {
        let n: i64 = match self {
            Counter::Sqlite(pool) => {
                sqlx::query_scalar(
                    "SELECT count(*) FROM (SELECT status FROM messages WHERE tenant_id = ? ORDER BY id DESC LIMIT ?) \
                     WHERE status NOT IN ('delivered', 'read')",
                )
                .bind(tenant)
                .bind(last)
                .fetch_one(pool)
                .await?
            }
            Counter::Postgres(pool) => {
                sqlx::query_scalar(
                    "SELECT count(*) FROM (SELECT status FROM messages WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2) AS newest \
                     WHERE status NOT IN ('delivered', 'read')",
                )
                .bind(tenant)
                .bind(last)
                .fetch_one(pool)
                .await?
            }
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Waits until `expected` messages of the tenant are `delivered` and returns when that
    /// was seen. Messages are sent in the order they were accepted, so the newest are the
    /// last to finish: they are polled often (through an index); the full count, a scan,
    /// runs once they are done and every `FULL_COUNT_EVERY` for the progress bar. The
    /// instant returned is taken after the full count that saw them all, so it is late by
    /// at most one poll, never early.
    pub(crate) async fn wait_for_delivery(
        &self,
        tenant: &str,
        expected: u64,
        progress: &indicatif::ProgressBar,
    ) -> anyhow::Result<Instant> {
        const NEWEST: i64 = 1000;
        const POLL: std::time::Duration = std::time::Duration::from_millis(20);
        const FULL_COUNT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
        let mut last_full = Instant::now();
        let mut last_progress = (0u64, Instant::now());
        loop {
            let tail_done = self.undelivered_among_newest(tenant, NEWEST).await? == 0;
            if tail_done || last_full.elapsed() >= FULL_COUNT_EVERY {
                let (delivered, failed) = self.outcomes(tenant).await?;
                let seen = Instant::now();
                last_full = seen;
                progress.set_position(delivered);
                if delivered >= expected {
                    return Ok(seen);
                }
                if delivered + failed >= expected {
                    anyhow::bail!("{failed} of {expected} messages failed");
                }
                if delivered > last_progress.0 {
                    last_progress = (delivered, seen);
                } else if last_progress.1.elapsed() > std::time::Duration::from_secs(60) {
                    anyhow::bail!("no message delivered for 60 s ({delivered} of {expected})");
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// A `relais serve` process of its own for a benchmark (a fresh data directory, the
/// operator key given), killed when dropped; [`ServeProcess::start`] waits until it
/// answers `/healthz`.
pub(crate) struct ServeProcess {
    child: std::process::Child,
    pub(crate) base: String,
    pub(crate) pid: String,
}

impl ServeProcess {
    /// Starts `relais {global_args} serve` on a free local port, with `data` as its data
    /// directory, `key` as the operator key, `env` added, and its log in `log`.
    pub(crate) async fn start(
        global_args: &[&str],
        data: &std::path::Path,
        key: &str,
        env: &[(&str, &str)],
        log: &std::path::Path,
    ) -> anyhow::Result<ServeProcess> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut command = std::process::Command::new(std::env::current_exe()?);
        command
            .args(global_args)
            .args(["serve", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .env("RELAIS_DATA_DIR", data)
            .env("RELAIS_ADMIN_KEY", key)
            .env("RELAIS_LOG", "warn")
            .env_remove("RELAIS_DATABASE_URL")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log)?);
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().context("cannot start relais serve")?;
        let server = ServeProcess {
            pid: child.id().to_string(),
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();
        let ready_by = Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{}/healthz", server.base)).send().await
                && r.status().is_success()
            {
                return Ok(server);
            }
            anyhow::ensure!(
                Instant::now() < ready_by,
                "relais serve did not start: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Peak resident set size (`VmHWM`) of a process (`self` or a pid), in KiB, when the OS
/// tells it.
pub(crate) fn peak_rss_kib(pid: &str) -> Option<u64> {
    proc_status_kib(pid, "VmHWM:")
}

/// A size in KiB from `/proc/{pid}/status` (`VmHWM:`, `VmRSS:` …).
pub(crate) fn proc_status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time (user + system) a process has used so far, from `/proc/{pid}/stat`; Linux
/// reports it in ticks of 1/100 s (USER_HZ).
pub(crate) fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: the fields start after it.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Some((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

fn a2p_item(to: &str) -> serde_json::Value {
    serde_json::json!({
        "to": to,
        "channel": "sim",
        "purpose": "transactional",
        "content": {"text": "Votre code Relais est {{ code }}. Il expire dans 10 minutes."},
        "variables": {"code": "482913"},
    })
}

/// How `post_batches` splits the work.
pub(crate) struct Batches {
    pub messages: usize,
    pub size: usize,
    pub clients: usize,
}

/// The request bodies of a run, built before its clock starts (as a load generator does),
/// so that the bench's own JSON encoding does not take CPU from the server it measures:
/// `size` items per body, item `i` is `item(i)`, with the number of items in each.
pub(crate) struct Bodies {
    bodies: Vec<(usize, bytes::Bytes)>,
    clients: usize,
}

impl Bodies {
    pub(crate) fn build(batches: Batches, item: impl Fn(usize) -> serde_json::Value) -> Bodies {
        let Batches {
            messages,
            size,
            clients,
        } = batches;
        let bodies = (0..messages)
            .step_by(size.max(1))
            .map(|from| {
                let to = (from + size.max(1)).min(messages);
                let items: Vec<serde_json::Value> = (from..to).map(&item).collect();
                let body = serde_json::json!({ "messages": items }).to_string();
                (to - from, bytes::Bytes::from(body))
            })
            .collect();
        Bodies { bodies, clients }
    }
}

/// What the bench reads of a batch answer.
#[derive(serde::Deserialize)]
struct BatchAnswer {
    accepted: usize,
}

/// Sends the bodies through `POST /v1/messages/batch` from `clients` concurrent
/// keep-alive clients. The number accepted; a refused or partly refused batch is an error.
pub(crate) async fn post_batches(
    client: &reqwest::Client,
    base: &str,
    auth: &str,
    bodies: Bodies,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<usize> {
    let Bodies { bodies, clients } = bodies;
    let queue = Arc::new(std::sync::Mutex::new(bodies.into_iter()));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url, auth, queue, progress) = (
            client.clone(),
            format!("{base}/v1/messages/batch"),
            auth.to_owned(),
            queue.clone(),
            progress.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut accepted = 0usize;
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.next());
                let Some((count, body)) = next else {
                    break;
                };
                let response = client
                    .post(&url)
                    .header("authorization", &auth)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                let code = response.status();
                let text = response.bytes().await?;
                anyhow::ensure!(
                    code.as_u16() == 202,
                    "batch refused: {code} {}",
                    String::from_utf8_lossy(&text)
                );
                let answer: BatchAnswer = serde_json::from_slice(&text)?;
                anyhow::ensure!(
                    answer.accepted == count,
                    "batch partly refused: {}",
                    String::from_utf8_lossy(&text)
                );
                accepted += answer.accepted;
                progress.inc(answer.accepted as u64);
            }
            anyhow::Ok(accepted)
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        accepted += task.await??;
    }
    Ok(accepted)
}

/// The server of `relais serve` in the bench's process: the real router on a free local
/// port, and the dispatcher with no rate limit (the benches measure Relais, not a
/// provider's contract), sending through the configured channels of its registry.
pub(crate) struct BenchServer {
    pub base: String,
    pub state: relais_server::AppState,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    dispatcher: relais_engine::dispatch::DispatcherHandle,
}

impl BenchServer {
    pub(crate) async fn start(
        store: Arc<dyn relais_store::Store>,
        clock: Arc<dyn relais_core::clock::Clock>,
        sim: relais_engine::sim::SimConfig,
    ) -> anyhow::Result<BenchServer> {
        use relais_engine::dispatch::{DispatcherConfig, spawn_dispatcher_with};
        let settings = relais_server::HttpSettings {
            json_body_limit: 64 * 1024 * 1024,
            ..Default::default()
        };
        let state = relais_server::AppState::new(store.clone(), clock.clone(), settings, None);
        let channels = state.channels.registry();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(relais_server::serve(listener, state.clone(), async {
            let _ = stopped.await;
        }));
        let dispatcher = spawn_dispatcher_with(
            store,
            clock,
            DispatcherConfig {
                default_rate: 1e9,
                batch: 1000,
                idle: std::time::Duration::from_millis(5),
                sim,
                ..Default::default()
            },
            channels,
        );
        Ok(BenchServer {
            base,
            state,
            stop,
            server,
            dispatcher,
        })
    }

    pub(crate) async fn stop(self) {
        self.dispatcher.shutdown().await;
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}

/// The store a bench's database URL names, for its report.
pub(crate) fn store_kind(url: &str) -> &'static str {
    if url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    }
}

/// A latency quantile (ms) for a report; `-` when there were no samples.
pub(crate) fn ms(quantile: Option<f64>) -> String {
    quantile.map_or_else(|| "-".to_owned(), |v| format!("{v:.2} ms"))
}

pub(crate) fn bar(len: u64, label: &'static str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template(
        "{prefix:>16} [{bar:40}] {pos}/{len} {per_sec} ({elapsed})",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(label);
    bar
}

async fn bench_a2p(
    args: A2pArgs,
    database_url: Option<String>,
    durability: relais_store::Durability,
) -> anyhow::Result<()> {
    use relais_core::clock::{Clock, SystemClock};
    use relais_engine::sim::SimConfig;

    anyhow::ensure!(
        (1..=10_000).contains(&args.batch),
        "--batch must be between 1 and 10000"
    );
    anyhow::ensure!(args.clients >= 1, "--clients must be at least 1");
    let dir = tempfile::tempdir()?;
    let url = database_url
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let backend = if url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite (fresh file)"
    };
    let store = relais_store::open_with(&url, relais_store::StoreOptions { durability })
        .await
        .with_context(|| format!("cannot open {}", relais_store::redact_url(&url)))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // A tenant of its own, so that a shared PostgreSQL database can host several runs.
    let name = format!("bench-a2p-{}", jiff::Timestamp::now().as_millisecond());
    let (tenant, key) = relais_engine::tenants::create_tenant(&*store, &name, clock.now()).await?;
    let relais = BenchServer::start(
        store.clone(),
        clock.clone(),
        SimConfig {
            delivered_after: Some(jiff::SignedDuration::ZERO),
            read_after: None,
        },
    )
    .await?;
    let base = relais.base.clone();
    let counter = Counter::open(&url).await?;
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients + 1)
        .build()?;
    let auth = format!("Bearer {}", key.secret);

    // (a) acceptance through the batch API, several clients, keep-alive connections.
    let n = args.messages;
    let accept_bar = bar(n as u64, "accepted");
    let bodies = Bodies::build(
        Batches {
            messages: n,
            size: args.batch,
            clients: args.clients,
        },
        |i| a2p_item(&format!("+336{:08}", 10_000_000 + i)),
    );
    let started = Instant::now();
    let accepted = post_batches(&client, &base, &auth, bodies, &accept_bar).await?;
    let accept_secs = started.elapsed().as_secs_f64();
    accept_bar.finish();

    // (b) end to end: until every message of the run has its `delivered` receipt stored.
    let e2e_bar = bar(accepted as u64, "delivered");
    let all_delivered = counter
        .wait_for_delivery(&tenant.id, accepted as u64, &e2e_bar)
        .await?;
    let e2e_secs = all_delivered.duration_since(started).as_secs_f64();
    e2e_bar.finish();

    // (c) latency of single transactional sends, one after the other.
    let single_bar = bar(args.single as u64, "single");
    let mut latencies = Vec::with_capacity(args.single);
    for i in 0..args.single {
        let body = a2p_item(&format!("+3378{:07}", 1_000_000 + i));
        let t = Instant::now();
        let response = client
            .post(format!("{base}/v1/messages"))
            .header("authorization", &auth)
            .json(&body)
            .send()
            .await?;
        let code = response.status();
        let _ = response.bytes().await?;
        latencies.push(t.elapsed());
        anyhow::ensure!(code.as_u16() == 202, "single send refused: {code}");
        single_bar.inc(1);
    }
    single_bar.finish();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let (p50, p99, max) = (pct(0.50), pct(0.99), pct(1.0));

    relais.stop().await;
    let rss = peak_rss_kib("self");

    let accept_rate = accepted as f64 / accept_secs;
    let e2e_rate = accepted as f64 / e2e_secs;
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "bench: a2p ({backend}; {accepted} messages in batches of {}, {} clients; {} single sends)",
        args.batch, args.clients, args.single
    );
    let row = |metric: &str, value: String, goal: &str, verdict: &str| {
        println!("{metric:<36} {value:>14}  {goal:<12} {verdict}");
    };
    row("metric", "result".into(), "goal", "");
    row(
        "accepted (POST /v1/messages/batch)",
        format!("{accept_rate:.0} /s"),
        ">= 20000 /s",
        verdict(accept_rate >= 20_000.0),
    );
    row(
        "end to end (accepted -> delivered)",
        format!("{e2e_rate:.0} /s"),
        ">= 10000 /s",
        verdict(e2e_rate >= 10_000.0),
    );
    row("single send p50", format!("{p50:.2} ms"), "", "");
    row(
        "single send p99",
        format!("{p99:.2} ms"),
        "< 10 ms",
        verdict(p99 < 10.0),
    );
    row("single send max", format!("{max:.2} ms"), "", "");
    row(
        "peak RSS (VmHWM)",
        rss.map_or_else(
            || "unknown".into(),
            |kib| format!("{:.1} MiB", kib as f64 / 1024.0),
        ),
        "",
        "",
    );
    println!("accept_elapsed_s: {accept_secs:.3}  e2e_elapsed_s: {e2e_secs:.3}");
    Ok(())
}
