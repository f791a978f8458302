//! Benchmark of the intent classifier on SNIPS and (when the file is available) CLINC150.
//!
//! cargo run --release -p relais-nlu --example nlu_bench -- \
//!     --snips /work/shared/data/snips [--clinc data/clinc150/data_full.json]
//!     [--stress-150 yes] [--labelled data/eval] [--c X] [--char-weight X] [--oos-target X]
//!     [--precision-target X] [--threshold X] [--idf yes|no] [--sublinear yes|no]
//!     [--latency yes] (p50/p99 of one prediction, after each training; pin with taskset)
//!     [--folds /work/shared/data/hwu64/hwu64.csv [--holdout-intents 0.25] [--tune yes]]
//!     [--encoder DIR [--encoder-mode two-stage|fast|full|all] [--escalate-share X]]
//!       (with --folds: the models with the sentence encoder installed in DIR, e.g.
//!       relais-data/nlu/encoder; with --latency: its first load, the encoder alone, the
//!       fast stage and the two-stage model, p50/p99; with --stress-150: training on
//!       20,000 examples with the encoder, embedding included)

use std::path::PathBuf;
use std::process::ExitCode;

use relais_nlu::{
    EmbeddingCache, Escalation, EvalReport, Example, NluError, Rejection, Semantic, SemanticConfig,
    SemanticIntentModel, SemanticMode, Stage, TrainConfig, evaluate_with, load_clinc_json,
    load_examples_file,
};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("nlu_bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn print_report(name: &str, report: &EvalReport) {
    println!("== {name}");
    print!("{report}");
}

fn run() -> Result<(), NluError> {
    let mut snips: Option<PathBuf> = None;
    let mut clinc: Option<PathBuf> = None;
    let mut labelled: Option<PathBuf> = None;
    let mut stress = false;
    let mut folds: Option<PathBuf> = None;
    let mut holdout_intents = 0.0f32;
    let mut tune = false;
    let mut latency = false;
    let mut unseen_intent = false;
    let mut config = TrainConfig::default();
    let mut encoder: Option<PathBuf> = None;
    let mut encoder_mode = "two-stage".to_owned();
    let mut escalation = Escalation::default();
    let mut latency_only = false;
    let mut arguments = std::env::args().skip(1);
    while let Some(flag) = arguments.next() {
        let value = arguments
            .next()
            .ok_or_else(|| NluError::Config(format!("{flag} needs a value")))?;
        let number = || {
            value
                .parse::<f32>()
                .map_err(|_| NluError::Config(format!("{flag}: not a number: {value}")))
        };
        match flag.as_str() {
            "--snips" => snips = Some(PathBuf::from(&value)),
            "--folds" => folds = Some(PathBuf::from(&value)),
            "--holdout-intents" => holdout_intents = number()?,
            "--tune" => tune = value == "yes",
            "--latency" => latency = value == "yes",
            "--clinc" => clinc = Some(PathBuf::from(&value)),
            "--labelled" => labelled = Some(PathBuf::from(&value)),
            "--stress-150" => stress = value == "yes",
            "--snips-unseen-intent" => unseen_intent = value == "yes",
            "--c" => config.regularisation = number()?,
            "--cv-folds" => config.cv_folds = number()? as usize,
            "--char-weight" => config.features.char_ngram_weight = number()?,
            "--idf" => config.features.idf = value == "yes",
            "--sublinear" => config.features.sublinear_tf = value == "yes",
            "--oos-target" => config.rejection = Some(Rejection::OosRecall(number()?)),
            "--precision-target" => config.rejection = Some(Rejection::InScopePrecision(number()?)),
            "--threshold" => config.rejection = Some(Rejection::Threshold(number()?)),
            "--seed" => config.seed = number()? as u64,
            "--encoder" => encoder = Some(PathBuf::from(&value)),
            "--encoder-mode" => encoder_mode = value.clone(),
            "--latency-only" => {
                latency_only = value == "yes";
                latency = latency || latency_only;
            }
            "--escalate-share" => escalation = Escalation::Share(number()?),
            "--escalate-below" => escalation = Escalation::Below(number()?),
            other => return Err(NluError::Config(format!("unknown flag {other}"))),
        }
    }
    if snips.is_none() && clinc.is_none() && labelled.is_none() && folds.is_none() {
        return Err(NluError::Config(
            "give --snips DIR, --clinc FILE, --folds FILE and/or --labelled DIR".to_owned(),
        ));
    }
    let semantic = match &encoder {
        Some(directory) => {
            let started = std::time::Instant::now();
            let semantic = Semantic::load(directory)?;
            println!(
                "== encoder first load (model and static vectors): {:.3} s",
                started.elapsed().as_secs_f64()
            );
            Some(semantic)
        }
        None => None,
    };
    let semantic_config = SemanticConfig {
        train: config.clone(),
        escalation,
        ..SemanticConfig::default()
    };
    if let (Some(path), Some(semantic)) = (&folds, &semantic) {
        let rows = relais_nlu::load_fold_examples_file(path)?;
        let folds_config = relais_nlu::FoldsConfig {
            holdout_intents,
            train: config.clone(),
            ..relais_nlu::FoldsConfig::default()
        };
        let mut cache = EmbeddingCache::new();
        let started = std::time::Instant::now();
        let texts: Vec<&str> = if latency_only {
            Vec::new()
        } else {
            rows.iter().map(|row| row.example.text.as_str()).collect()
        };
        cache.embed_all(&semantic.encoder, &texts)?;
        println!(
            "== encoded {} distinct utterances in {:.1} s",
            cache.len(),
            started.elapsed().as_secs_f64()
        );
        let modes: &[(&str, SemanticMode)] = match encoder_mode.as_str() {
            "fast" => &[("fast (TF-IDF + static vectors)", SemanticMode::Fast)],
            "full" => &[(
                "encoder on every message (TF-IDF + sentence vectors)",
                SemanticMode::Encoder,
            )],
            "all" => &[
                ("fast (TF-IDF + static vectors)", SemanticMode::Fast),
                (
                    "encoder on every message (TF-IDF + sentence vectors)",
                    SemanticMode::Encoder,
                ),
                ("two-stage", SemanticMode::TwoStage),
            ],
            _ => &[("two-stage", SemanticMode::TwoStage)],
        };
        let only_modes: Vec<SemanticMode> = if latency_only {
            Vec::new()
        } else {
            modes.iter().map(|(_, mode)| *mode).collect()
        };
        let reports = if only_modes.is_empty() {
            Vec::new()
        } else {
            relais_nlu::evaluate_folds_semantic(
                &rows,
                &folds_config,
                &semantic_config,
                semantic,
                &mut cache,
                &only_modes,
            )?
        };
        for ((name, _), report) in modes.iter().zip(reports) {
            println!(
                "== {} ({} rows), k-fold, {name}",
                path.display(),
                rows.len()
            );
            print!("{report}");
        }
        if latency {
            let (test, train): (Vec<_>, Vec<_>) = rows.into_iter().partition(|row| row.fold == 1);
            let train: Vec<Example> = train.into_iter().map(|row| row.example).collect();
            let test: Vec<Example> = test.into_iter().map(|row| row.example).collect();
            measure_semantic_latency(
                "folds 2-10 -> fold 1",
                &train,
                &test,
                &semantic_config,
                semantic,
            )?;
        }
    } else if let Some(path) = folds {
        let rows = relais_nlu::load_fold_examples_file(&path)?;
        let folds_config = relais_nlu::FoldsConfig {
            holdout_intents,
            train: config.clone(),
            tune: tune.then(relais_nlu::TuningGrid::default),
            ..relais_nlu::FoldsConfig::default()
        };
        println!("== {} ({} rows), k-fold", path.display(), rows.len());
        print!("{}", relais_nlu::evaluate_folds(&rows, &folds_config)?);
        if latency {
            let (test, train): (Vec<_>, Vec<_>) = rows.into_iter().partition(|row| row.fold == 1);
            let train: Vec<Example> = train.into_iter().map(|row| row.example).collect();
            let test: Vec<Example> = test.into_iter().map(|row| row.example).collect();
            measure_latency("folds 2-10 -> fold 1", &train, &test, &config)?;
        }
    }
    if let Some(directory) = snips {
        let train = load_examples_file(&directory.join("train.csv"))?;
        let test = load_examples_file(&directory.join("test.csv"))?;
        let report = evaluate_with(&train, None, &test, &config)?;
        print_report("SNIPS (train.csv -> test.csv)", &report);
        if unseen_intent {
            leave_one_intent_out(&train, &test, &config)?;
        }
        if latency {
            measure_latency("SNIPS", &train, &test, &config)?;
        }
        if stress {
            let (stress_train, stress_test) = stress_150(&train, &test);
            let report = evaluate_with(&stress_train, None, &stress_test, &config)?;
            print_report(
                "synthetic 150 intents x 20,000 examples (timing only, built from SNIPS)",
                &report,
            );
            if latency {
                measure_latency(
                    "synthetic 150 intents",
                    &stress_train,
                    &stress_test,
                    &config,
                )?;
            }
            if let Some(semantic) = &semantic {
                let started = std::time::Instant::now();
                let mut cache = EmbeddingCache::new();
                let texts: Vec<&str> = stress_train
                    .iter()
                    .map(|example| example.text.as_str())
                    .collect();
                cache.embed_all(&semantic.encoder, &texts)?;
                let embedding = started.elapsed().as_secs_f64();
                let model = SemanticIntentModel::train(
                    &stress_train,
                    &semantic_config,
                    semantic,
                    &mut cache,
                )?;
                let total = started.elapsed().as_secs_f64();
                println!(
                    "== training with the encoder, synthetic 150 intents: {total:.1} s on {} \
                     examples ({embedding:.1} s encoding {} distinct texts, {:.1} s fitting both \
                     stages); training again on the same texts (cached vectors): see fitting",
                    stress_train.len(),
                    cache.len(),
                    total - embedding
                );
                std::hint::black_box(model);
            }
        }
    }
    if let Some(directory) = labelled {
        for (name, file, is_urgency) in [
            (
                "sentiment, first set (rules tuned on it)",
                "sentiment_fr_en.csv",
                false,
            ),
            (
                "sentiment, second set (untuned)",
                "sentiment_fr_en_second.csv",
                false,
            ),
            (
                "urgency, first set (rules tuned on it)",
                "urgency_fr_en.csv",
                true,
            ),
            (
                "urgency, second set (untuned)",
                "urgency_fr_en_second.csv",
                true,
            ),
        ] {
            let path = directory.join(file);
            let reader = std::fs::File::open(&path).map_err(|source| NluError::Io {
                path: path.display().to_string(),
                source,
            })?;
            let report = if is_urgency {
                relais_nlu::evaluate_urgency_csv(reader)?
            } else {
                relais_nlu::evaluate_sentiment_csv(reader)?
            };
            println!("== {name}");
            print!("{report}");
        }
    }
    if let Some(path) = clinc {
        let file = std::fs::File::open(&path).map_err(|source| NluError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let splits = load_clinc_json(std::io::BufReader::new(file))?;
        let report = evaluate_with(
            &splits.train,
            Some(&splits.validation),
            &splits.test,
            &config,
        )?;
        print_report(
            "CLINC150 (train+oos_train, calibrated on val+oos_val, test+oos_test)",
            &report,
        );
    }
    Ok(())
}

/// 20,000 training examples over 150 intents, derived from SNIPS by prefixing one of 22
/// marker words to each utterance (intent = SNIPS intent x marker, ~154 intents). Its
/// accuracy means little; it measures training and inference time at CLINC150's scale.
fn stress_150(train: &[Example], test: &[Example]) -> (Vec<Example>, Vec<Example>) {
    const MARKERS: [&str; 22] = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
        "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra",
        "tango", "uniform", "victor",
    ];
    let derive = |rows: &[Example], count: usize| -> Vec<Example> {
        rows.iter()
            .cycle()
            .take(count)
            .enumerate()
            .map(|(index, example)| {
                let marker = MARKERS[(index * 7 + index / rows.len()) % MARKERS.len()];
                Example::new(
                    format!("{marker} {}", example.text),
                    format!("{}_{marker}", example.intent),
                )
            })
            .collect()
    };
    (derive(train, 20_000), derive(test, 5_500))
}

/// Out-of-scope detection without out-of-scope training data: each SNIPS intent in turn is
/// removed from training and its test rows become `oos`.
fn leave_one_intent_out(
    train: &[Example],
    test: &[Example],
    config: &TrainConfig,
) -> Result<(), NluError> {
    let mut intents: Vec<&str> = train
        .iter()
        .map(|example| example.intent.as_str())
        .collect();
    intents.sort_unstable();
    intents.dedup();
    println!("== SNIPS, one intent unseen in training (its test rows labelled oos)");
    let (mut in_scope_sum, mut recall_sum) = (0.0, 0.0);
    for removed in &intents {
        let kept: Vec<Example> = train
            .iter()
            .filter(|example| example.intent != *removed)
            .cloned()
            .collect();
        let relabelled: Vec<Example> = test
            .iter()
            .map(|example| {
                if example.intent == *removed {
                    Example::new(example.text.clone(), config.oos_label.clone())
                } else {
                    example.clone()
                }
            })
            .collect();
        let report = evaluate_with(&kept, None, &relabelled, config)?;
        let recall = report.oos_recall.unwrap_or(0.0);
        println!(
            "  unseen {removed}: in_scope_accuracy {:.4} oos_recall {:.4} threshold {:.4}",
            report.in_scope_accuracy, recall, report.oos_threshold
        );
        in_scope_sum += report.in_scope_accuracy;
        recall_sum += recall;
    }
    let count = intents.len() as f64;
    println!("mean_in_scope_accuracy: {:.4}", in_scope_sum / count);
    println!("mean_oos_recall: {:.4}", recall_sum / count);
    Ok(())
}

/// Training time, then the latency of one `predict` call (feature extraction included) over
/// repeated passes on `test` until 200,000 calls: p50, p99 and the mean.
fn measure_latency(
    name: &str,
    train: &[Example],
    test: &[Example],
    config: &TrainConfig,
) -> Result<(), NluError> {
    let started = std::time::Instant::now();
    let model = relais_nlu::IntentModel::train(train, config)?;
    let training = started.elapsed().as_secs_f64();
    let mut samples: Vec<u32> = Vec::with_capacity(200_000);
    while samples.len() < 200_000 && !test.is_empty() {
        for example in test {
            let started = std::time::Instant::now();
            std::hint::black_box(model.predict(std::hint::black_box(&example.text)));
            samples.push(started.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32);
        }
    }
    samples.sort_unstable();
    let at = |quantile: f64| {
        let index =
            ((samples.len() as f64 * quantile) as usize).min(samples.len().saturating_sub(1));
        f64::from(samples.get(index).copied().unwrap_or(0)) / 1000.0
    };
    let mean = samples.iter().map(|nanos| f64::from(*nanos)).sum::<f64>()
        / samples.len().max(1) as f64
        / 1000.0;
    println!(
        "== latency {name}: training {training:.2} s on {} examples, {} intents; predict p50 {:.1} us p99 {:.1} us mean {mean:.1} us ({} calls)",
        train.len(),
        model.intents().len(),
        at(0.50),
        at(0.99),
        samples.len()
    );
    Ok(())
}

/// p50 and p99 in microseconds of sorted samples in nanoseconds.
fn quantiles(samples: &mut [u32]) -> (f64, f64, f64) {
    samples.sort_unstable();
    let at = |quantile: f64| {
        let index =
            ((samples.len() as f64 * quantile) as usize).min(samples.len().saturating_sub(1));
        f64::from(samples.get(index).copied().unwrap_or(0)) / 1000.0
    };
    let mean = samples.iter().map(|nanos| f64::from(*nanos)).sum::<f64>()
        / samples.len().max(1) as f64
        / 1000.0;
    (at(0.50), at(0.99), mean)
}

fn nanos_since(started: std::time::Instant) -> u32 {
    started.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32
}

/// Training with the encoder (vectors encoded first, then both stages fitted), then the
/// latency of one message: the encoder alone, the fast stage (static vectors and TF-IDF,
/// tokenizer included) and the two-stage model, over passes on `test`.
fn measure_semantic_latency(
    name: &str,
    train: &[Example],
    test: &[Example],
    config: &SemanticConfig,
    semantic: &Semantic,
) -> Result<(), NluError> {
    let started = std::time::Instant::now();
    let mut cache = EmbeddingCache::new();
    let model = SemanticIntentModel::train(train, config, semantic, &mut cache)?;
    println!(
        "== latency {name}: training with the encoder {:.1} s on {} examples (encoding \
         included); escalation below {:.4}",
        started.elapsed().as_secs_f64(),
        train.len(),
        model.escalate_below()
    );
    let mut encoder_samples = Vec::new();
    for example in test.iter().take(1000) {
        let started = std::time::Instant::now();
        std::hint::black_box(semantic.encoder.encode(&example.text)?);
        encoder_samples.push(nanos_since(started));
    }
    let (p50, p99, mean) = quantiles(&mut encoder_samples);
    println!(
        "encoder alone: p50 {p50:.0} us p99 {p99:.0} us mean {mean:.0} us ({} calls)",
        encoder_samples.len()
    );
    let mut fast_samples = Vec::with_capacity(100_000);
    while fast_samples.len() < 100_000 && !test.is_empty() {
        for example in test {
            let started = std::time::Instant::now();
            std::hint::black_box(model.predict_fast(
                std::hint::black_box(&example.text),
                &semantic.static_vectors,
            ));
            fast_samples.push(nanos_since(started));
        }
    }
    let (p50, p99, mean) = quantiles(&mut fast_samples);
    println!(
        "fast stage (TF-IDF + static vectors): p50 {p50:.1} us p99 {p99:.1} us mean {mean:.1} us ({} calls)",
        fast_samples.len()
    );
    let mut two_stage_samples = Vec::with_capacity(test.len() * 2);
    let mut escalated = 0usize;
    for _ in 0..2 {
        for example in test {
            let started = std::time::Instant::now();
            let answer = model.predict(std::hint::black_box(&example.text), semantic);
            two_stage_samples.push(nanos_since(started));
            if answer.stage == Stage::Encoder {
                escalated += 1;
            }
        }
    }
    let calls = two_stage_samples.len();
    let (p50, p99, mean) = quantiles(&mut two_stage_samples);
    println!(
        "two-stage: p50 {p50:.1} us p99 {p99:.1} us mean {mean:.1} us ({calls} calls, {:.1} % to the encoder)",
        100.0 * escalated as f64 / calls.max(1) as f64
    );
    Ok(())
}
