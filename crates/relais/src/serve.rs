//! `relais serve`.

use crate::config::Config;
use anyhow::Context;
use relais_core::clock::{Clock, SystemClock};
use relais_server::{AppState, HttpSettings};
use std::sync::Arc;

pub async fn run(config: Config) -> anyhow::Result<()> {
    crate::data_dir::secure(&config.data_dir)?;
    let master_key = crate::secrets::load(&config)?;
    let store = config.open_store().await.with_context(|| {
        format!(
            "cannot open the store at {}",
            relais_store::redact_url(&config.database_url)
        )
    })?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    crate::bootstrap::announce(
        &*store,
        &config,
        clock.now(),
        crate::bootstrap::Announce::Stdout,
    )
    .await?;
    crate::secrets::seal(&*store, &master_key).await?;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok();
    if let Some(handle) = metrics.clone() {
        tokio::spawn(keep_metrics(handle));
    }
    let settings = HttpSettings {
        json_body_limit: config.json_body_limit,
        import_body_limit: config.import_body_limit,
        default_country: config.country(),
        webhook_destinations: webhook_destinations(&config),
        public_url: config.public_base(),
        dns_resolver: config.dns_resolver(),
        encoder_dir: Some(relais_nlu::encoder_dir(&config.data_dir)),
    };
    let state = AppState::new(store.clone(), clock, settings, metrics);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, database = %relais_store::redact_url(&config.database_url), durability = config.durability.as_str(), "relais is listening");
    println!("Relais listening on http://{addr} (API docs at http://{addr}/docs)");
    let started = state
        .channels
        .load()
        .await
        .context("cannot load the configured channels")?;
    if started > 0 {
        tracing::info!(channels = started, "SMPP channels started");
    }
    let dispatcher = relais_engine::dispatch::spawn_dispatcher_with(
        store.clone(),
        state.clock.clone(),
        dispatcher_config(&config)?,
        state.channels.registry(),
    );
    // Inbound messages a crash left midway through the pipeline are taken up again.
    let resume = tokio::spawn(
        state
            .inbound
            .clone()
            .resume_forever(std::time::Duration::from_secs(10)),
    );
    // The live event stream's log keeps a week for clients to resume from.
    let prune_events = tokio::spawn(state.events.clone().prune_forever(
        relais_engine::events::DEFAULT_RETENTION,
        relais_engine::events::PRUNE_EVERY,
    ));
    // Tenants' retention policies: expired message content and media are purged hourly.
    let retention = tokio::spawn(relais_engine::privacy::retention::run_forever(
        store.clone(),
        state.clock.clone(),
        relais_engine::privacy::retention::SWEEP_EVERY,
    ));
    // Conversations whose SLA came due unanswered are reported (`sla.breached`).
    let sla = tokio::spawn(
        state
            .desk
            .clone()
            .watch_sla_forever(relais_engine::agents::SLA_CHECK_EVERY),
    );
    // Running campaigns are sent (and taken up again after a crash or a node's death).
    let campaigns = tokio::spawn(
        state
            .campaign_runner
            .clone()
            .with_owner(node_name(addr))
            .run_forever(state.campaigns.wake(), std::time::Duration::from_secs(2)),
    );
    // Journeys: due runs are claimed with leases, so every node runs a worker; under the
    // node's name, a restarted node takes its runs back at once.
    let journeys = tokio::spawn(
        relais_engine::journeys::JourneyWorker::new(
            store.clone(),
            state.clock.clone(),
            state.acceptor.clone(),
            node_name(addr),
        )
        .run_forever(relais_engine::journeys::worker::IDLE_POLL),
    );
    // Twilio status callbacks and inbound posts: claimed with leases, so every node runs
    // the workers.
    let poster = Arc::new(
        relais_engine::webhooks::HttpPoster::new()
            .map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {e}"))?,
    );
    let twilio_callbacks = tokio::spawn(
        relais_engine::twilio::callbacks::CallbackWorker::new(
            store.clone(),
            state.clock.clone(),
            poster.clone(),
            format!("twilio-{}", node_name(addr)),
        )
        .run_forever(std::time::Duration::from_secs(1)),
    );
    let twilio_inbound = tokio::spawn(
        relais_engine::twilio::inbound::InboundWorker::new(
            store.clone(),
            state.clock.clone(),
            poster,
            state.acceptor.clone(),
            format!("twilio-{}", node_name(addr)),
        )
        .run_forever(std::time::Duration::from_secs(1)),
    );
    let smpp = match config.smpp_listen {
        Some(addr) => Some(start_smpp_server(addr, &state).await?),
        None => None,
    };
    let smtp = match config.smtp_listen {
        Some(addr) => Some(start_smtp_listener(addr, &state).await?),
        None => None,
    };
    relais_server::serve(listener, state, shutdown_signal()).await?;
    for (server, stopped) in [("SMPP server", smpp), ("SMTP listener", smtp)] {
        if let Some((stop, task)) = stopped {
            let _ = stop.send(());
            if let Ok(Err(e)) = task.await {
                tracing::error!(error = %e, "the {server} ended badly");
            }
        }
    }
    resume.abort();
    campaigns.abort();
    prune_events.abort();
    retention.abort();
    sla.abort();
    journeys.abort();
    twilio_callbacks.abort();
    twilio_inbound.abort();
    dispatcher.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// This node's name in the leases it takes: its host and address, the same after a
/// restart.
fn node_name(addr: std::net::SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}@{addr}")
}

/// Where tenants' webhooks may connect, for registration and for the dispatcher's poster.
fn webhook_destinations(config: &Config) -> relais_engine::webhooks::Destinations {
    use relais_engine::webhooks::{Destinations, set_process_destinations};
    let destinations = Destinations::from_allow_private(config.webhook_allow_private);
    if destinations == Destinations::Any {
        tracing::warn!(
            "webhook_allow_private: tenants' webhooks may reach loopback and private addresses"
        );
    }
    set_process_destinations(destinations);
    destinations
}

/// The dispatcher's settings. The variables are development and test aids (documented in
/// docs/configuration.md), not yet part of the configuration file.
fn dispatcher_config(relais: &Config) -> anyhow::Result<relais_engine::dispatch::DispatcherConfig> {
    let mut config = relais_engine::dispatch::DispatcherConfig {
        webhook_log_retention: relais.webhook_log_retention(),
        ..Default::default()
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    if let Some(rate) = env("RELAIS_DISPATCH_RATE") {
        config.default_rate = positive_rate("RELAIS_DISPATCH_RATE", &rate)?;
    }
    if let Some(rate) = env("RELAIS_SENDER_RATE") {
        config.sender_rate = Some(positive_rate("RELAIS_SENDER_RATE", &rate)?);
    }
    if let Some(list) = env("RELAIS_SENDER_RATES") {
        config.sender_rates = sender_rates(&list)?;
    }
    if let Some(batch) = env("RELAIS_DISPATCH_BATCH") {
        config.batch = batch
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|b| (1..=10_000).contains(b))
            .with_context(|| {
                format!("RELAIS_DISPATCH_BATCH must be a number of messages from 1 to 10000, not `{batch}`")
            })?;
    }
    if let Some(secs) = env("RELAIS_DISPATCH_LEASE") {
        let secs = secs
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|s| *s > 0)
            .with_context(|| {
                format!("RELAIS_DISPATCH_LEASE must be a positive number of seconds, not `{secs}`")
            })?;
        config.lease_for = jiff::SignedDuration::from_secs(i64::from(secs));
    }
    if let Some(url) = env("RELAIS_SIM_SINK_URL") {
        relais_engine::webhooks::validate_url(&url)
            .with_context(|| "RELAIS_SIM_SINK_URL is not a usable URL")?;
        tracing::warn!(%url, "development aid: every sim send is also POSTed to RELAIS_SIM_SINK_URL");
        config.sim_sink_url = Some(url);
    }
    Ok(config)
}

fn positive_rate(name: &str, value: &str) -> anyhow::Result<f64> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && *r > 0.0)
        .with_context(|| {
            format!("{name} must be a positive number of messages per second, not `{value}`")
        })
}

/// `RELAIS_SENDER_RATES`: `MyShop=5,+33612345678=1`, messages per second by sender.
fn sender_rates(list: &str) -> anyhow::Result<std::collections::HashMap<String, f64>> {
    let mut rates = std::collections::HashMap::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (sender, rate) = entry.rsplit_once('=').with_context(|| {
            format!("RELAIS_SENDER_RATES: `{entry}` is not SENDER=RATE (e.g. MyShop=5)")
        })?;
        let sender = relais_core::sender::Sender::parse(sender)
            .with_context(|| format!("RELAIS_SENDER_RATES: bad sender in `{entry}`"))?;
        rates.insert(
            sender.into_string(),
            positive_rate("RELAIS_SENDER_RATES", rate)?,
        );
    }
    Ok(rates)
}

/// A server started beside the HTTP API: how to stop it, and its task.
type SideServer = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
);

/// Listens on `addr` and runs `serve` there until told to stop.
async fn start_side_server<F, Served>(
    addr: std::net::SocketAddr,
    name: &str,
    serve: F,
) -> anyhow::Result<SideServer>
where
    F: FnOnce(
        tokio::net::TcpListener,
        std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    ) -> Served,
    Served: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for {name} on {addr}"))?;
    println!("{name} server listening on {}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(
        listener,
        Box::pin(async move {
            let _ = stopped.await;
        }),
    ));
    Ok((stop, task))
}

/// Starts `--smpp-listen`: ESMEs bind with credentials from `POST /v1/smpp/credentials`.
async fn start_smpp_server(
    addr: std::net::SocketAddr,
    state: &AppState,
) -> anyhow::Result<SideServer> {
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let (rules, handoff) = (state.address_rules(), state.channels.handoff().clone());
    start_side_server(addr, "SMPP", move |listener, stopped| {
        relais_engine::smpp_server::serve(listener, store, clock, rules, Some(handoff), stopped)
    })
    .await
}

/// Starts `--smtp-listen`: mail for the `from` address of a running e-mail channel.
async fn start_smtp_listener(
    addr: std::net::SocketAddr,
    state: &AppState,
) -> anyhow::Result<SideServer> {
    let channels = state.channels.clone();
    start_side_server(addr, "SMTP", move |listener, stopped| {
        relais_engine::smtp_server::serve(listener, channels, Default::default(), stopped)
    })
    .await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// How often recorded histogram samples are folded into their summaries.
const METRICS_UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds the histograms' samples into their summaries, and records the memory SQLite
/// holds (`relais_sqlite_memory_bytes`). The recorder keeps every sample until it is
/// folded, and without a scrape of `/metrics` nothing folded them: the server's memory
/// grew with every request (247 MiB instead of 198 after ten minutes of `relais bench soak`).
async fn keep_metrics(handle: metrics_exporter_prometheus::PrometheusHandle) {
    let mut tick = tokio::time::interval(METRICS_UPKEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        handle.run_upkeep();
        metrics::gauge!("relais_sqlite_memory_bytes")
            .set(relais_store::sqlite_memory_bytes() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::sender_rates;

    #[test]
    fn sender_rates_are_read_from_a_list() {
        let rates = sender_rates(" MyShop=5, +33612345678=0.5 ,").unwrap();
        assert_eq!(rates.get("MyShop"), Some(&5.0));
        assert_eq!(rates.get("+33612345678"), Some(&0.5));
        assert_eq!(rates.len(), 2);
        let e = sender_rates("MyShop").unwrap_err().to_string();
        assert!(e.contains("SENDER=RATE"), "{e}");
        let e = format!("{:#}", sender_rates("MyShop=fast").unwrap_err());
        assert!(e.contains("positive number"), "{e}");
        let e = format!("{:#}", sender_rates("MyVeryLongShop=1").unwrap_err());
        assert!(e.contains("11 characters"), "{e}");
    }
}
