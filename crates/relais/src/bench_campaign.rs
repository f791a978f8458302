//! `relais bench campaign`: a marketing campaign to a large segment on SQLite. Contacts are
//! imported first (not timed); then the campaign is started and sent by the real worker,
//! with personalised content, consent, quiet hours and the frequency cap checked for every
//! recipient, while the dispatcher sends through the `sim` channel: how long until every
//! recipient's message is stored, the peak memory meanwhile, and how long until every
//! message is delivered.

use crate::bench::{BenchServer, Counter, bar, peak_rss_kib};
use anyhow::Context;
use jiff::{SignedDuration, Timestamp};
use relais_core::clock::Clock;
use relais_core::contact::AddressRules;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct CampaignBenchArgs {
    /// Contacts in the tenant; nine in ten opted in to marketing by SMS.
    #[arg(long, default_value_t = 1_000_000)]
    pub contacts: u64,
    /// Stop once every message is stored, without waiting for their delivery.
    #[arg(long)]
    pub no_delivery: bool,
}

/// The wall clock moved to a Tuesday at 10:00 in Paris, so that French marketing rules
/// (nights, Sundays, holidays) hold back nothing whatever the hour the bench runs at.
struct WeekdayMorning {
    shift: SignedDuration,
}

impl WeekdayMorning {
    fn new() -> WeekdayMorning {
        let target: Timestamp = "2026-12-08T09:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        WeekdayMorning {
            shift: target.duration_since(Timestamp::now()),
        }
    }
}

impl Clock for WeekdayMorning {
    fn now(&self) -> Timestamp {
        Timestamp::now()
            .checked_add(self.shift)
            .unwrap_or_else(|_| Timestamp::now())
    }
}

/// Forgets the process's peak resident memory so far (Linux: `5` in `clear_refs`), so
/// that the peak read later is the campaign's, not the import's.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

pub async fn run(args: CampaignBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.contacts >= 1, "--contacts must be at least 1");
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = relais_store::open(&url)
        .await
        .with_context(|| format!("cannot open {url}"))?;
    let clock: Arc<dyn Clock> = Arc::new(WeekdayMorning::new());
    let tenant = store.create_tenant("bench-campaign", clock.now()).await?;

    // The audience, imported (not timed).
    let csv_path = dir.path().join("contacts.csv");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&csv_path)?);
        writeln!(out, "phone,first_name,city,timezone,consent:marketing")?;
        for i in 0..args.contacts {
            writeln!(
                out,
                "+336{:08},First{i},City{},Europe/Paris,{}",
                10_000_000 + i,
                i % 300,
                if i % 10 == 9 { "no" } else { "yes" }
            )?;
        }
    }
    let import_bar = bar(args.contacts, "imported");
    let imported = relais_engine::import::import_csv(
        std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&csv_path)?),
        store.clone(),
        &tenant.id,
        AddressRules {
            default_country: None,
        },
        clock.now(),
        Arc::new(()),
    )
    .await?;
    import_bar.finish_and_clear();
    anyhow::ensure!(
        imported.created == args.contacts,
        "the import created {} contacts of {}",
        imported.created,
        args.contacts
    );
    store
        .put_setting(
            &tenant.id,
            relais_core::settings::FREQUENCY_CAP_KEY,
            &serde_json::json!({"max": 2, "per": "7d"}),
            clock.now(),
        )
        .await?;

    let relais = BenchServer::start(
        store.clone(),
        clock.clone(),
        relais_engine::sim::SimConfig {
            delivered_after: Some(SignedDuration::ZERO),
            read_after: None,
        },
    )
    .await?;
    let campaigns = relais.state.campaigns.clone();
    let runner = relais.state.campaign_runner.clone();
    let campaign = campaigns
        .create(
            &tenant.id,
            &serde_json::json!({
                "name": "bench-soldes",
                "filter": "identity.sms exists and consent.sms.marketing = 'opted_in'",
                "channel": "sim",
                "content": {"text": "Bonjour {{ first_name }}, les soldes de {{ city }} commencent : -20 % jusqu'à dimanche"}
            }),
        )
        .await
        .map_err(|e| anyhow::anyhow!("the campaign was refused: {e}"))?;
    let id = campaign.record.id.clone();

    reset_peak_rss();
    let started = Instant::now();
    let view = campaigns
        .start(&tenant.id, &id)
        .await
        .map_err(|e| anyhow::anyhow!("the campaign did not start: {e}"))?;
    let fixed_secs = started.elapsed().as_secs_f64();
    let recipients = view.progress.recipients as u64;
    let enqueue_bar = bar(recipients, "enqueued");
    let mut done = 0u64;
    loop {
        match runner.run_once().await {
            Ok(Some(report)) => {
                done += (report.enqueued + report.skipped) as u64;
                enqueue_bar.set_position(done);
                if report.completed {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => anyhow::bail!("the campaign failed: {e}"),
        }
    }
    let enqueue_secs = started.elapsed().as_secs_f64();
    enqueue_bar.finish();
    let rss_mib = peak_rss_kib("self").unwrap_or(0) as f64 / 1024.0;
    let report = campaigns
        .report(&tenant.id, &id)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let enqueued = report.progress.enqueued as u64;

    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "bench: campaign (SQLite, fresh file; {} contacts, {} recipients: personalised text, consent, quiet hours and frequency cap per recipient; sim channel)",
        args.contacts, recipients
    );
    let row = |metric: &str, value: String, goal: &str, verdict: &str| {
        println!("{metric:<40} {value:>14}  {goal:<12} {verdict}");
    };
    row("metric", "result".into(), "goal", "");
    row(
        "recipients fixed (start)",
        format!("{fixed_secs:.2} s"),
        "",
        "",
    );
    // The goal is for a segment of a million: a smaller run says nothing about it.
    let full_size = args.contacts >= 1_000_000;
    row(
        "start → every message stored",
        format!("{enqueue_secs:.1} s"),
        "<= 10 s (1M)",
        if full_size {
            verdict(enqueue_secs <= 10.0)
        } else {
            "n/a below 1M contacts"
        },
    );
    row(
        "stored per second",
        format!("{:.0} /s", recipients as f64 / enqueue_secs),
        "",
        "",
    );
    row(
        "peak RSS during the campaign",
        format!("{rss_mib:.0} MiB"),
        "< 500 MiB",
        verdict(rss_mib < 500.0),
    );
    if !args.no_delivery {
        let counter = Counter::open(&url).await?;
        let delivery_bar = bar(enqueued, "delivered");
        let at = counter
            .wait_for_delivery(&tenant.id, enqueued, &delivery_bar)
            .await?;
        delivery_bar.finish();
        let secs = at.duration_since(started).as_secs_f64();
        row(
            "start → every message delivered (sim)",
            format!("{secs:.1} s"),
            "",
            "",
        );
        row(
            "delivered per second, end to end",
            format!("{:.0} /s", enqueued as f64 / secs),
            "",
            "",
        );
    }
    relais.stop().await;
    println!("enqueued: {enqueued}");
    for (reason, count) in &report.progress.skipped_by_reason {
        println!("skipped {reason}: {count}");
    }
    Ok(())
}
