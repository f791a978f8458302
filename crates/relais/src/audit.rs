//! `relais audit export`: a tenant's audit log (docs/audit.md) as CSV or JSON lines,
//! straight from the store, to a file or stdout. The export is itself recorded.

use crate::config::Config;
use anyhow::{Context, anyhow, bail};
use clap::Subcommand;
use relais_core::audit::AuditAction;
use relais_store::{AuditQuery, PageRequest};
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Write the tenant's audit entries, oldest first.
    Export {
        /// The tenant whose log to export.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// `csv` or `jsonl` (one JSON object per line).
        #[arg(long, default_value = "csv")]
        format: String,
        /// Only entries at or after this instant (RFC 3339, e.g. 2026-12-01T00:00:00Z).
        #[arg(long)]
        since: Option<jiff::Timestamp>,
        /// Only entries before this instant.
        #[arg(long)]
        until: Option<jiff::Timestamp>,
        /// Only this action, e.g. `contact.export`.
        #[arg(long)]
        action: Option<String>,
        /// Only this actor (an API key's id, an agent's id, an OS user).
        #[arg(long)]
        actor: Option<String>,
        /// Only entries about this resource id (e.g. a contact's id).
        #[arg(long)]
        resource_id: Option<String>,
        /// Write here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

pub async fn run(cmd: AuditCommand, config: Config) -> anyhow::Result<()> {
    let AuditCommand::Export {
        tenant,
        format,
        since,
        until,
        action,
        actor,
        resource_id,
        output,
    } = cmd;
    let csv = match format.as_str() {
        "csv" => true,
        "jsonl" => false,
        other => bail!("--format {other}: use `csv` or `jsonl`"),
    };
    let action = action
        .map(|code| {
            AuditAction::parse(&code).ok_or_else(|| {
                let known: Vec<_> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
                anyhow!(
                    "--action {code}: not an action; one of: {}",
                    known.join(", ")
                )
            })
        })
        .transpose()?;
    let store = config.open_store().await?;
    let tenant_id = store
        .tenant_by_name(&tenant)
        .await?
        .ok_or_else(|| anyhow!("no tenant named `{tenant}`"))?
        .id;
    let query = AuditQuery {
        actor_id: actor,
        action,
        resource_kind: None,
        resource_id,
        since,
        until,
    };
    let mut out: Box<dyn Write> = match &output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    relais_engine::audit::record_cli(
        &*store,
        &tenant_id,
        AuditAction::AuditRead,
        None,
        jiff::Timestamp::now(),
    )
    .await
    .context("the audit log could not record this export")?;
    if csv {
        out.write_all(relais_engine::audit::CSV_HEADER.as_bytes())?;
    }
    let mut after = None;
    let mut written = 0u64;
    loop {
        let page = store
            .audit_entries(&tenant_id, &query, &PageRequest { after, limit: 1000 })
            .await?;
        for entry in &page.data {
            if csv {
                out.write_all(relais_engine::audit::csv_line(entry).as_bytes())?;
            } else {
                serde_json::to_writer(&mut out, entry)?;
                out.write_all(b"\n")?;
            }
        }
        written += page.data.len() as u64;
        match page.next_cursor {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    out.flush()?;
    if let Some(path) = output {
        eprintln!("{written} audit entries written to {}", path.display());
    }
    Ok(())
}
