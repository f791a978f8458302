//! `relais nlu train FILE` (a new model version for a tenant, in the configured store) and
//! `relais nlu eval --train FILE --test FILE` (accuracy, macro F1, out-of-scope recall,
//! confusions, speed), both on CSV `text,intent` or JSON `[{"text", "intent"}]` files;
//! `relais nlu eval-folds --data FILE` (k-fold on a CSV `fold,text,intent`, as HWU64).

use crate::config::Config;
use anyhow::{Context, anyhow};
use clap::Subcommand;
use relais_engine::nlu::NluService;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum NluCommand {
    /// Train the tenant's intent model and store it as its next (live) version.
    Train {
        /// Examples: CSV `text,intent` with a header, or a JSON array when the name ends
        /// in `.json`.
        file: PathBuf,
        /// Tenant whose model it becomes.
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Train on one file, test on another, and print the report.
    Eval {
        /// Training examples (CSV `text,intent`, or JSON).
        #[arg(long)]
        train: PathBuf,
        /// Test examples; rows labelled `oos` are expected to be rejected.
        #[arg(long)]
        test: PathBuf,
    },
    /// Train on every fold but one, test on that one, for each fold; print each fold, the
    /// mean and the rejection trade-off curve.
    EvalFolds {
        /// Examples with their fold: CSV `fold,text,intent` (HWU64's `hwu64.csv`).
        #[arg(long)]
        data: PathBuf,
        /// Share of the intents left out of training in each fold; their test rows are
        /// expected to be rejected as out of scope.
        #[arg(long, default_value_t = 0.0)]
        holdout_intents: f32,
        /// Seed of the choice of left-out intents.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

pub async fn run(
    cmd: NluCommand,
    config: impl FnOnce() -> anyhow::Result<Config>,
) -> anyhow::Result<()> {
    match cmd {
        NluCommand::Train { file, tenant } => train(&file, &tenant, &config()?).await,
        NluCommand::Eval { train, test } => eval(&train, &test).await,
        NluCommand::EvalFolds {
            data,
            holdout_intents,
            seed,
        } => {
            let config = relais_nlu::FoldsConfig {
                holdout_intents,
                seed,
                ..relais_nlu::FoldsConfig::default()
            };
            eval_folds(&data, config).await
        }
    }
}

async fn train(file: &Path, tenant: &str, config: &Config) -> anyhow::Result<()> {
    let examples = relais_nlu::load_examples_file(file)
        .with_context(|| format!("cannot read examples from {}", file.display()))?;
    let store = config.open_store().await?;
    crate::bootstrap::announce(
        &*store,
        config,
        jiff::Timestamp::now(),
        crate::bootstrap::Announce::Stderr,
    )
    .await?;
    let tenant_id = store
        .tenant_by_name(tenant)
        .await?
        .ok_or_else(|| {
            anyhow!(
                "no tenant named `{tenant}` in {}; create it with `relais tenants create`",
                relais_store::redact_url(&config.database_url)
            )
        })?
        .id;
    let nlu = NluService::new(Arc::clone(&store));
    let started = std::time::Instant::now();
    let trained = nlu
        .train(&tenant_id, examples, jiff::Timestamp::now())
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    println!("tenant: {tenant}");
    println!("version: {}", trained.version);
    // The summary is `name: value` lines: examples, intents, features, held-out rows,
    // temperature and out-of-scope threshold.
    print!("{}", trained.summary);
    if !trained.summary.ends_with('\n') {
        println!();
    }
    println!("training_time: {seconds:.3} s");
    Ok(())
}

async fn eval(train: &Path, test: &Path) -> anyhow::Result<()> {
    let (train, test) = (train.to_owned(), test.to_owned());
    // Training is CPU work of seconds to minutes; keep it off the async workers.
    let report = tokio::task::spawn_blocking(move || relais_nlu::evaluate_files(&train, &test))
        .await
        .context("evaluation was interrupted")??;
    print!("{report}");
    Ok(())
}

async fn eval_folds(data: &Path, config: relais_nlu::FoldsConfig) -> anyhow::Result<()> {
    let data = data.to_owned();
    let report = tokio::task::spawn_blocking(move || {
        let rows = relais_nlu::load_fold_examples_file(&data)?;
        relais_nlu::evaluate_folds(&rows, &config)
    })
    .await
    .context("evaluation was interrupted")??;
    print!("{report}");
    Ok(())
}
