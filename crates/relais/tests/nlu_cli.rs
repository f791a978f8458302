//! `relais nlu eval` and `relais nlu train` as a user runs them, on a SNIPS sample kept in
//! `tests/data` (see its README).

use std::path::PathBuf;
use std::process::{Command, Output};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn relais(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_relais"));
    for var in [
        "RELAIS_DATABASE_URL",
        "RELAIS_CONFIG",
        "RELAIS_DATA_DIR",
        "RELAIS_DEFAULT_COUNTRY",
        "RELAIS_ADMIN_KEY",
    ] {
        cmd.env_remove(var);
    }
    cmd.args(args).output().expect("run the relais binary")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The value of the `name: value` line.
fn field(report: &str, name: &str) -> Option<String> {
    let prefix = format!("{name}: ");
    report
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(str::to_owned)
}

#[test]
fn eval_prints_accuracy_f1_oos_recall_and_confusions() {
    let train = data("snips_sample_train.csv");
    let test = data("snips_sample_test.csv");
    let output = relais(&[
        "nlu",
        "eval",
        "--train",
        train.to_str().unwrap(),
        "--test",
        test.to_str().unwrap(),
    ]);
    let report = stdout(&output);
    assert!(
        output.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let accuracy_line = report
        .lines()
        .find(|l| l.starts_with("accuracy: "))
        .expect("an accuracy line");
    // The contract: exactly `accuracy: 0.xxxx`, four decimals.
    let value = accuracy_line.trim_start_matches("accuracy: ");
    assert_eq!(value.len(), 6, "{accuracy_line}");
    let accuracy: f64 = value.parse().expect("accuracy is a number");
    // 60 examples per intent give about 0.9 on SNIPS; far below means the model is broken.
    assert!(accuracy > 0.75, "{report}");
    let macro_f1: f64 = field(&report, "macro_f1")
        .expect("a macro_f1 line")
        .parse()
        .expect("macro_f1 is a number");
    assert!(macro_f1 > 0.7 && macro_f1 <= 1.0, "{report}");
    let oos_recall: f64 = field(&report, "oos_recall")
        .expect("an oos_recall line: the test set has oos rows")
        .parse()
        .expect("oos_recall is a number");
    assert!((0.0..=1.0).contains(&oos_recall));
    assert!(report.contains("top confusions"), "{report}");
    assert!(report.contains("examples/s"), "{report}");
    assert_eq!(
        field(&report, "examples").as_deref(),
        Some("train 435 test 110 intents 8")
    );
}

#[test]
fn eval_of_a_missing_file_is_one_line_on_stderr() {
    let output = relais(&[
        "nlu",
        "eval",
        "--train",
        "/nonexistent/train.csv",
        "--test",
        "/nonexistent/test.csv",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("/nonexistent/train.csv"), "{stderr}");
    assert!(stdout(&output).is_empty());
}

#[tokio::test]
async fn train_stores_a_new_live_version_for_the_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let file = data("snips_sample_train.csv");
    let file = file.to_str().unwrap();

    // An unknown tenant is refused. The first command on a fresh data directory still
    // creates tenant `default`, and shows its key once, as `relais serve` would.
    let output = relais(&[
        "--data-dir",
        &data_dir,
        "nlu",
        "train",
        file,
        "--tenant",
        "acme",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no tenant named `acme`"), "{stderr}");
    let key = std::fs::read_to_string(dir.path().join("admin-api-key")).unwrap();
    assert!(
        stderr.contains(key.trim()),
        "the key is shown once: {stderr}"
    );

    let url = format!("sqlite://{}", dir.path().join("relais.db").display());
    let store = relais_store::open(&url).await.unwrap();
    let acme = store
        .create_tenant("acme", jiff::Timestamp::now())
        .await
        .unwrap();
    for expected_version in ["1", "2"] {
        let output = relais(&[
            "--data-dir",
            &data_dir,
            "nlu",
            "train",
            file,
            "--tenant",
            "acme",
        ]);
        let out = stdout(&output);
        assert!(
            output.status.success(),
            "{out}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(field(&out, "version").as_deref(), Some(expected_version));
        assert_eq!(field(&out, "examples").as_deref(), Some("435"));
        assert_eq!(field(&out, "intents").as_deref(), Some("8"));
        assert!(field(&out, "training_time").is_some(), "{out}");
    }
    // The server would now classify with version 2.
    assert_eq!(store.nlu_model_version(&acme.id).await.unwrap(), Some(2));
    let model = store.nlu_model(&acme.id).await.unwrap().unwrap();
    let model = relais_nlu::IntentModel::from_bytes(&model.model).unwrap();
    let prediction = model.predict("play some jazz music on spotify");
    assert_eq!(prediction.best_guess, "PlayMusic");
}

/// `relais nlu eval` on the SNIPS sample with extra `flags`.
fn eval_sample(flags: &[&str]) -> Output {
    let train = data("snips_sample_train.csv");
    let test = data("snips_sample_test.csv");
    let mut args = vec![
        "nlu",
        "eval",
        "--train",
        train.to_str().unwrap(),
        "--test",
        test.to_str().unwrap(),
    ];
    args.extend_from_slice(flags);
    relais(&args)
}

#[test]
fn eval_with_a_threshold_of_one_rejects_everything_and_prints_the_curve() {
    let run = |flags: &[&str]| {
        let output = eval_sample(flags);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout(&output)
    };
    let strict = run(&["--threshold", "1"]);
    assert_eq!(
        field(&strict, "in_scope_accuracy").as_deref(),
        Some("0.0000")
    );
    assert_eq!(field(&strict, "oos_recall").as_deref(), Some("1.0000"));
    let lenient = run(&["--oos-target", "0.2"]);
    let in_scope: f64 = field(&lenient, "in_scope_accuracy")
        .expect("an in_scope_accuracy line")
        .parse()
        .expect("a number");
    assert!(in_scope > 0.75, "{lenient}");
    // One line per threshold: measured on the test set | estimated on the training set.
    assert!(lenient.contains("curve (threshold"), "{lenient}");
    assert!(
        lenient
            .lines()
            .any(|line| line.starts_with("  0.50 -> ") && line.contains(" | "))
    );
    // Two ways of choosing at once is a usage error.
    let output = eval_sample(&["--threshold", "0.5", "--oos-target", "0.5"]);
    assert!(!output.status.success());
}

#[test]
fn eval_folds_prints_every_fold_the_mean_and_the_curve() {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../relais-nlu/tests/data/hwu64_folds_1_3.csv");
    let output = relais(&[
        "nlu",
        "eval-folds",
        "--data",
        file.to_str().unwrap(),
        "--holdout-intents",
        "0.25",
    ]);
    let report = stdout(&output);
    assert!(
        output.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for fold in ["fold 1: ", "fold 2: ", "fold 3: "] {
        assert!(
            report.lines().any(|line| line.starts_with(fold)),
            "{report}"
        );
    }
    for name in ["accuracy", "macro_f1", "in_scope_accuracy", "oos_recall"] {
        let value: f64 = field(&report, name)
            .unwrap_or_else(|| panic!("a {name} line: {report}"))
            .parse()
            .expect("a number");
        assert!((0.0..=1.0).contains(&value));
    }
    assert!(report.contains("curve (threshold"), "{report}");
}
