//! `relais contacts import FILE`: streams a CSV file into the store with a progress bar.

use crate::config::Config;
use anyhow::{Context, anyhow};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use relais_core::contact::AddressRules;
use relais_engine::import::{ImportProgress, ImportSummary, import_csv};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// Import contacts from a CSV file (see docs/contacts.md for the columns).
    Import {
        file: PathBuf,
        /// Tenant to import into.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

struct Bar(ProgressBar);

impl ImportProgress for Bar {
    fn advance(&self, rows: u64, bytes: u64) {
        self.0.inc(bytes);
        self.0.set_message(format!("{rows} rows"));
    }
}

pub async fn run(cmd: ContactsCommand, config: Config) -> anyhow::Result<()> {
    let ContactsCommand::Import { file, tenant, json } = cmd;
    let store = config.open_store().await?;
    crate::bootstrap::announce(
        &*store,
        &config,
        jiff::Timestamp::now(),
        crate::bootstrap::Announce::Stderr,
    )
    .await?;
    let tenant_id = store
        .tenant_by_name(&tenant)
        .await?
        .ok_or_else(|| anyhow!("no tenant named `{tenant}`"))?
        .id;
    let size = std::fs::metadata(&file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len();
    let input =
        std::fs::File::open(&file).with_context(|| format!("cannot open {}", file.display()))?;
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg} ({eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = Arc::new(Bar(bar.clone()));
    let started = std::time::Instant::now();
    let rules = AddressRules {
        default_country: config.country(),
    };
    let summary = import_csv(
        std::io::BufReader::with_capacity(1 << 20, input),
        store,
        &tenant_id,
        rules,
        jiff::Timestamp::now(),
        progress,
    )
    .await?;
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary, started.elapsed());
    }
    Ok(())
}

fn print_summary(s: &ImportSummary, elapsed: std::time::Duration) {
    let rate = s.rows as f64 / elapsed.as_secs_f64().max(1e-9);
    println!(
        "{} rows in {:.2}s ({rate:.0} rows/s): {} created, {} updated, {} rejected",
        s.rows,
        elapsed.as_secs_f64(),
        s.created,
        s.updated,
        s.rejected
    );
    for e in &s.errors {
        println!("  line {}: {}", e.line, e.reason);
    }
    if s.rejected as usize > s.errors.len() {
        println!(
            "  … and {} more rejected rows",
            s.rejected as usize - s.errors.len()
        );
    }
}
