//! `relais contacts import FILE`: streams a CSV file into the store with a progress bar.
//! `relais contacts export ID` and `relais contacts erase ID`: a GDPR export (JSON, or a
//! zip of CSVs) and erasure, straight on the store like the import.

use crate::config::Config;
use anyhow::{Context, anyhow};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use relais_core::audit::AuditAction;
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
    /// Export everything Relais holds about a contact (see docs/privacy.md).
    Export {
        id: String,
        #[arg(long, default_value = "default")]
        tenant: String,
        /// A zip of one CSV per kind (and export.json) instead of JSON.
        #[arg(long)]
        zip: bool,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Erase a contact: every trace removed or anonymised, their addresses blocked.
    Erase {
        id: String,
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
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
    match cmd {
        ContactsCommand::Import { file, tenant, json } => import(file, tenant, json, config).await,
        ContactsCommand::Export {
            id,
            tenant,
            zip,
            output,
        } => export(&id, &tenant, zip, output, config).await,
        ContactsCommand::Erase { id, tenant, yes } => erase(&id, &tenant, yes, config).await,
    }
}

async fn tenant_id(store: &dyn relais_store::Store, tenant: &str) -> anyhow::Result<String> {
    Ok(store
        .tenant_by_name(tenant)
        .await?
        .ok_or_else(|| anyhow!("no tenant named `{tenant}`"))?
        .id)
}

/// Records an act of this command in the tenant's audit log (docs/audit.md).
async fn record(
    store: &dyn relais_store::Store,
    tenant_id: &str,
    action: AuditAction,
    contact: Option<&str>,
) -> anyhow::Result<()> {
    let resource = contact.map(|id| ("contact", id));
    relais_engine::audit::record_cli(store, tenant_id, action, resource, jiff::Timestamp::now())
        .await
        .with_context(|| format!("the audit log could not record `{action}`"))
}

async fn export(
    id: &str,
    tenant: &str,
    zip: bool,
    output: Option<PathBuf>,
    config: Config,
) -> anyhow::Result<()> {
    let store = config.open_store().await?;
    let tenant_id = tenant_id(&*store, tenant).await?;
    let export = relais_engine::privacy::export_contact(&*store, &tenant_id, id).await?;
    // A read of personal data is not handed out unrecorded (docs/audit.md).
    record(&*store, &tenant_id, AuditAction::ContactExport, Some(id)).await?;
    let bytes = if zip {
        relais_engine::privacy::export_zip(&export)?
    } else {
        let mut json = serde_json::to_vec_pretty(&export)?;
        json.push(b'\n');
        json
    };
    match output {
        Some(path) => {
            std::fs::write(&path, &bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("contact {id} exported to {}", path.display());
        }
        None if zip && std::io::IsTerminal::is_terminal(&std::io::stdout()) => {
            anyhow::bail!("a zip is not for a terminal; give --output FILE or redirect it")
        }
        None => std::io::Write::write_all(&mut std::io::stdout(), &bytes)?,
    }
    Ok(())
}

async fn erase(id: &str, tenant: &str, yes: bool, config: Config) -> anyhow::Result<()> {
    let store = config.open_store().await?;
    let tenant_id = tenant_id(&*store, tenant).await?;
    if store.contact(&tenant_id, id).await?.is_none() {
        anyhow::bail!("contact {id} not found");
    }
    if !yes {
        eprint!("Erase contact {id} and every trace of them for good? Type `erase` to go on: ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != "erase" {
            anyhow::bail!("nothing erased");
        }
    }
    let report =
        relais_engine::privacy::erase_contact(&*store, &tenant_id, id, jiff::Timestamp::now())
            .await?;
    record(&*store, &tenant_id, AuditAction::ContactErase, Some(id)).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

async fn import(file: PathBuf, tenant: String, json: bool, config: Config) -> anyhow::Result<()> {
    let store = config.open_store().await?;
    crate::bootstrap::announce(
        &*store,
        &config,
        jiff::Timestamp::now(),
        crate::bootstrap::Announce::Stderr,
    )
    .await?;
    let tenant_id = tenant_id(&*store, &tenant).await?;
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
        store.clone(),
        &tenant_id,
        rules,
        jiff::Timestamp::now(),
        progress,
    )
    .await?;
    bar.finish_and_clear();
    record(&*store, &tenant_id, AuditAction::ContactImport, None).await?;
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
