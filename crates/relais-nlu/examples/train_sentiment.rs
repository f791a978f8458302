//! Trains the sentiment model shipped in `data/sentiment/model.bin`, evaluates it next to
//! the lexicon rules on held-out sets of other kinds, and measures its latency.
//!
//! Data: the human-rated sets of Hutto & Gilbert (ICWSM 2014), in the PyPI sdist of
//! `vaderSentiment` 3.3.2 (MIT): `pip download --no-deps --no-binary :all: vaderSentiment==3.3.2`,
//! then `tar xzf vaderSentiment-3.3.2.tar.gz` and, inside `additional_resources/`,
//! `tar xzf hutto_ICWSM_2014.tar.gz`.
//!
//! Train on movie + Amazon review snippets and the hand-written chat messages
//! (`data/sentiment/chat_train_fr_en.csv`, each counted 5 times); choose C, the lexicon
//! weight, character n-grams and class balancing by cross-validation on that training data
//! only, one fold per corpus (train on two, predict the third: the only French is in the
//! chat corpus, and the model must carry over to a kind of text it has not seen); then test
//! on the tweets and the NYT editorial snippets (never trained or tuned on) and on the
//! hand-written chat sets of `data/eval/`. This command wrote the shipped model:
//!
//! cargo run --release -p relais-nlu --example train_sentiment -- \
//!     --hutto /tmp/vs/vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014 \
//!     --chat data/sentiment/chat_train_fr_en.csv --tune yes --cv source --wide-grid yes \
//!     --out data/sentiment/model.bin
//!
//! `--cv 5` validates by 5 random folds instead (in-domain: it favours review words) and
//! without `--wide-grid yes` the grid is narrower; `--c`, `--lexicon-weight`, `--min-count`,
//! `--balanced`, `--chat-weight` set one configuration without tuning.
//!
//! Evaluate what the library ships (no training; `--hutto` optional, the tweets are also in
//! `data/sentiment/`), with latency on one core:
//!
//! taskset -c 0 cargo run --release -p relais-nlu --example train_sentiment -- \
//!     --shipped yes --latency yes

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use relais_nlu::NluError;
use relais_nlu::sentiment::{
    Folds, RecallReport, SentimentExample, SentimentGrid, SentimentLabel, SentimentModel,
    SentimentTrainConfig, lexicon_sentiment, sentiment, shipped_model, train, tune,
};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("train_sentiment: {error}");
            ExitCode::FAILURE
        }
    }
}

fn read_text(path: &Path) -> Result<String, NluError> {
    let bytes = std::fs::read(path).map_err(|source| NluError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Rows `id \t mean \t text` of a `*_GroundTruth.txt` file (or the shipped tweets TSV).
fn load_ground_truth(path: &Path, source: u32) -> Result<Vec<SentimentExample>, NluError> {
    let text = read_text(path)?;
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let mut columns = line.splitn(3, '\t');
        let (Some(_id), Some(mean), Some(message)) =
            (columns.next(), columns.next(), columns.next())
        else {
            return Err(NluError::BadExample {
                row: index + 1,
                reason: format!("{}: expected id, mean and text", path.display()),
            });
        };
        let mean = mean
            .trim()
            .parse::<f32>()
            .map_err(|_| NluError::BadExample {
                row: index + 1,
                reason: format!("{}: mean is not a number: {mean:?}", path.display()),
            })?;
        rows.push(SentimentExample {
            text: message.to_owned(),
            label: SentimentLabel::of_mean_rating(mean),
            weight: 1,
            source,
        });
    }
    Ok(rows)
}

/// Rows of a CSV with `text` and `label` columns.
fn load_labelled_csv(
    path: &Path,
    weight: u32,
    source: u32,
) -> Result<Vec<SentimentExample>, NluError> {
    let file = std::fs::File::open(path).map_err(|source| NluError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut reader = csv::Reader::from_reader(file);
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|header| header == name)
            .ok_or_else(|| NluError::Config(format!("{}: no {name} column", path.display())))
    };
    let (text_column, label_column) = (column("text")?, column("label")?);
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = record?;
        let label = record
            .get(label_column)
            .and_then(SentimentLabel::parse)
            .ok_or_else(|| NluError::BadExample {
                row: index + 2,
                reason: format!("{}: label is not negative|neutral|positive", path.display()),
            })?;
        rows.push(SentimentExample {
            text: record.get(text_column).unwrap_or_default().to_owned(),
            label,
            weight,
            source,
        });
    }
    Ok(rows)
}

fn compare(name: &str, rows: &[SentimentExample], model: &dyn Fn(&str) -> SentimentLabel) {
    let trained = RecallReport::of(rows, model);
    let lexicon = RecallReport::of(rows, |text| lexicon_sentiment(text).label);
    println!("== {name}: trained model");
    print!("{trained}");
    println!("== {name}: lexicon rules (before)");
    print!("{lexicon}");
}

fn percentile(sorted: &[f64], share: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let position = ((sorted.len() - 1) as f64 * share).round() as usize;
    sorted[position.min(sorted.len() - 1)]
}

fn run() -> Result<(), NluError> {
    let mut hutto: Option<PathBuf> = None;
    let mut chat: Option<PathBuf> = None;
    let mut chat_weight = 5u32;
    let mut out: Option<PathBuf> = None;
    let mut tune_grid = false;
    let mut shipped = false;
    let mut latency = false;
    let mut folds = Folds::Random(5);
    let mut wide_grid = false;
    let mut config = SentimentTrainConfig::default();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut labelled = root.join("data/eval");
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
            "--hutto" => hutto = Some(PathBuf::from(&value)),
            "--chat" => chat = Some(PathBuf::from(&value)),
            "--chat-weight" => chat_weight = number()? as u32,
            "--out" => out = Some(PathBuf::from(&value)),
            "--tune" => tune_grid = value == "yes",
            "--wide-grid" => wide_grid = value == "yes",
            "--shipped" => shipped = value == "yes",
            "--latency" => latency = value == "yes",
            "--cv" => {
                folds = match value.as_str() {
                    "source" => Folds::BySource,
                    count => Folds::Random(count.parse::<usize>().map_err(|_| {
                        NluError::Config(format!("--cv: 'source' or a fold count, not {count}"))
                    })?),
                }
            }
            "--labelled" => labelled = PathBuf::from(&value),
            "--c" => config.c = number()?,
            "--lexicon-weight" => config.lexicon_weight = number()?,
            "--min-count" => config.min_count = number()? as u32,
            "--balanced" => config.balanced = value == "yes",
            other => return Err(NluError::Config(format!("unknown flag {other}"))),
        }
    }

    let model: Option<SentimentModel> = if shipped {
        None
    } else {
        let hutto = hutto.as_ref().ok_or_else(|| {
            NluError::Config(
                "give --hutto DIR (or --shipped yes to evaluate the shipped model)".to_owned(),
            )
        })?;
        let mut training =
            load_ground_truth(&hutto.join("movieReviewSnippets_GroundTruth.txt"), 0)?;
        training.extend(load_ground_truth(
            &hutto.join("amazonReviewSnippets_GroundTruth.txt"),
            1,
        )?);
        let reviews = training.len();
        if let Some(chat) = &chat {
            training.extend(load_labelled_csv(chat, chat_weight, 2)?);
        }
        let mut counts = RecallReport::default();
        for row in &training {
            counts.add(row.label, row.label);
        }
        println!(
            "training: {} rows ({reviews} review snippets, {} chat messages × {chat_weight}); \
             negative {} neutral {} positive {}",
            training.len(),
            training.len() - reviews,
            counts.confusion[0][0],
            counts.confusion[1][1],
            counts.confusion[2][2]
        );
        if tune_grid {
            // The grid of the shipped model; `--wide-grid yes` is the wider one tried with
            // `--cv source` (docs/nlu.md).
            let grid = if wide_grid {
                SentimentGrid {
                    c: vec![0.05, 0.2, 1.0],
                    lexicon_weight: vec![1.0, 4.0, 16.0],
                    char_ngrams: vec![(0, 0, 0.0), (3, 5, 0.4)],
                    balanced: vec![true, false],
                }
            } else {
                SentimentGrid {
                    c: vec![0.05, 0.2, 1.0],
                    lexicon_weight: vec![0.5, 1.0, 2.0],
                    char_ngrams: vec![(0, 0, 0.0), (3, 5, 0.4)],
                    balanced: vec![true],
                }
            };
            let started = Instant::now();
            let results = tune(&training, &config, &grid, folds)?;
            println!(
                "tuning: cross-validation {folds:?} on the training rows only, {} configurations, {:.1} s",
                results.len(),
                started.elapsed().as_secs_f64()
            );
            for result in &results {
                let per_fold: Vec<String> = result
                    .figures
                    .per_fold
                    .iter()
                    .map(|report| format!("{:.4}", report.macro_recall()))
                    .collect();
                let pooled = &result.figures.pooled;
                println!(
                    "  c {:<5} lexicon_weight {:<4} char_ngrams {}-{} x{:<4} balanced {:<5} cv_score {:.4} per_fold [{}] pooled neg {:.4} neu {:.4} pos {:.4}",
                    result.config.c,
                    result.config.lexicon_weight,
                    result.config.features.char_ngram_min,
                    result.config.features.char_ngram_max,
                    result.config.features.char_ngram_weight,
                    result.config.balanced,
                    result.figures.score,
                    per_fold.join(" "),
                    pooled.recall(SentimentLabel::Negative).unwrap_or(0.0),
                    pooled.recall(SentimentLabel::Neutral).unwrap_or(0.0),
                    pooled.recall(SentimentLabel::Positive).unwrap_or(0.0),
                );
            }
            if let Some(best) = results.first() {
                config = best.config.clone();
            }
        }
        println!(
            "config: c {} lexicon_weight {} char_ngrams {}-{} x{} min_count {} balanced {}",
            config.c,
            config.lexicon_weight,
            config.features.char_ngram_min,
            config.features.char_ngram_max,
            config.features.char_ngram_weight,
            config.min_count,
            config.balanced
        );
        let started = Instant::now();
        let model = train(&training, &config)?;
        println!(
            "trained in {:.1} s: {} word/bigram features",
            started.elapsed().as_secs_f64(),
            model.vocabulary_size()
        );
        let bytes = model.to_bytes();
        // Round-trip: what is written is what is evaluated.
        let model = SentimentModel::from_bytes(&bytes)?;
        if let Some(out) = &out {
            std::fs::write(out, &bytes).map_err(|source| NluError::Io {
                path: out.display().to_string(),
                source,
            })?;
            println!("wrote {} ({} bytes)", out.display(), bytes.len());
        }
        Some(model)
    };

    let predict: Box<dyn Fn(&str) -> SentimentLabel> = match &model {
        Some(model) => Box::new(move |text: &str| model.scores(text).label),
        None => {
            if shipped_model().is_none() {
                return Err(NluError::ModelFormat(
                    "the shipped model does not load".to_owned(),
                ));
            }
            Box::new(|text: &str| sentiment(text).label)
        }
    };

    let tweets_path = match &hutto {
        Some(hutto) => hutto.join("tweets_GroundTruth.txt"),
        None => root.join("data/sentiment/tweets_ground_truth.tsv"),
    };
    let tweets = load_ground_truth(&tweets_path, 0)?;
    compare(
        "held out: tweets (Hutto & Gilbert 2014, 4,200, labels at mean ±0.5)",
        &tweets,
        &predict,
    );
    if let Some(hutto) = &hutto {
        let nyt = load_ground_truth(&hutto.join("nytEditorialSnippets_GroundTruth.txt"), 0)?;
        compare(
            "held out: NYT editorial snippets (Hutto & Gilbert 2014, 5,190)",
            &nyt,
            &predict,
        );
    }
    for (name, file) in [
        (
            "hand-written chat, first set (the rules were tuned on it)",
            "sentiment_fr_en.csv",
        ),
        (
            "hand-written chat, second set (untuned)",
            "sentiment_fr_en_second.csv",
        ),
    ] {
        let rows = load_labelled_csv(&labelled.join(file), 1, 0)?;
        compare(name, &rows, &predict);
    }

    if latency {
        let texts: Vec<&str> = tweets.iter().map(|row| row.text.as_str()).collect();
        let bytes: &[u8] = include_bytes!("../../../data/sentiment/model.bin");
        let started = Instant::now();
        let parsed = SentimentModel::from_bytes(bytes)?;
        println!(
            "load of the shipped model ({} bytes, {} word/bigram features): {:.2} ms",
            bytes.len(),
            parsed.vocabulary_size(),
            started.elapsed().as_secs_f64() * 1000.0
        );
        for text in texts.iter().take(500) {
            std::hint::black_box(sentiment(text));
        }
        let mut micros: Vec<f64> = Vec::with_capacity(texts.len() * 3);
        for _ in 0..3 {
            for text in &texts {
                let started = Instant::now();
                std::hint::black_box(sentiment(text));
                micros.push(started.elapsed().as_secs_f64() * 1e6);
            }
        }
        micros.sort_by(f64::total_cmp);
        println!(
            "latency of sentiment() over {} calls on the tweets: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
            micros.len(),
            percentile(&micros, 0.5),
            percentile(&micros, 0.99),
            micros.last().copied().unwrap_or(0.0)
        );
        let mut lexicon_micros: Vec<f64> = Vec::with_capacity(texts.len());
        for text in &texts {
            let started = Instant::now();
            std::hint::black_box(lexicon_sentiment(text));
            lexicon_micros.push(started.elapsed().as_secs_f64() * 1e6);
        }
        lexicon_micros.sort_by(f64::total_cmp);
        println!(
            "latency of the lexicon rules alone: p50 {:.1} µs, p99 {:.1} µs",
            percentile(&lexicon_micros, 0.5),
            percentile(&lexicon_micros, 0.99)
        );
    }
    Ok(())
}
