//! The file-based entry points used by `relais nlu train FILE` and
//! `relais nlu eval --train FILE --test FILE`.

use std::io::Write;

use relais_nlu::{NluError, evaluate_files, load_examples_file};

fn write_file(
    directory: &tempfile::TempDir,
    name: &str,
    content: &str,
) -> Result<std::path::PathBuf, std::io::Error> {
    let path = directory.path().join(name);
    std::fs::File::create(&path)?.write_all(content.as_bytes())?;
    Ok(path)
}

#[test]
fn eval_reads_a_csv_train_file_and_a_json_test_file() -> Result<(), Box<dyn std::error::Error>> {
    let directory = tempfile::tempdir()?;
    let mut train = String::from("text,intent\n");
    for (text, intent) in [
        ("where is my parcel", "track"),
        ("track my package", "track"),
        ("où est mon colis", "track"),
        ("suivre ma commande", "track"),
        ("has my order shipped", "track"),
        ("refund me please", "refund"),
        ("i want my money back", "refund"),
        ("remboursez-moi", "refund"),
        ("je veux un remboursement", "refund"),
        ("give me a refund now", "refund"),
    ] {
        train.push_str(&format!("{text},{intent}\n"));
    }
    let train_path = write_file(&directory, "train.csv", &train)?;
    let test_path = write_file(
        &directory,
        "test.json",
        r#"[{"text":"where is my package","intent":"track"},
            {"text":"je veux être remboursé","intent":"refund"}]"#,
    )?;
    let report = evaluate_files(&train_path, &test_path)?;
    assert_eq!(report.test_examples, 2);
    let printed = report.to_string();
    assert!(printed.starts_with("accuracy: "), "{printed}");
    assert!(
        printed
            .lines()
            .nth(1)
            .is_some_and(|line| line.starts_with("macro_f1: "))
    );
    Ok(())
}

#[test]
fn missing_or_malformed_files_are_clear_errors() -> Result<(), Box<dyn std::error::Error>> {
    let directory = tempfile::tempdir()?;
    let missing = directory.path().join("absent.csv");
    let Err(error) = load_examples_file(&missing) else {
        return Err("a missing file must be an error".into());
    };
    assert!(matches!(error, NluError::Io { .. }));
    assert!(error.to_string().contains("absent.csv"));
    let bad_json = write_file(&directory, "bad.json", "[{\"text\": 1}]")?;
    assert!(matches!(
        load_examples_file(&bad_json),
        Err(NluError::Json(_))
    ));
    Ok(())
}
