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
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Import { rows } => bench_import(rows).await,
    }
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
