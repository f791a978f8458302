//! Reading training and test examples: CSV `text,intent`, JSON arrays, and the CLINC150
//! benchmark file.

use std::collections::HashMap;
use std::io::Read;

use crate::error::NluError;
use crate::intent::Example;

/// Reads CSV examples with a header naming `text` and `intent` columns (any order, extra
/// columns ignored).
pub fn load_examples_csv<R: Read>(reader: R) -> Result<Vec<Example>, NluError> {
    let mut csv_reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(reader);
    let headers = csv_reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|header| header.trim().eq_ignore_ascii_case(name))
            .ok_or_else(|| NluError::BadExample {
                row: 1,
                reason: format!("header has no `{name}` column (expected `text,intent`)"),
            })
    };
    let text_column = column("text")?;
    let intent_column = column("intent")?;
    let mut examples = Vec::new();
    for (index, record) in csv_reader.records().enumerate() {
        let record = record?;
        // Row numbers count the header as row 1, like a spreadsheet.
        let row = index + 2;
        let text = record.get(text_column).unwrap_or("").trim();
        let intent = record.get(intent_column).unwrap_or("").trim();
        if intent.is_empty() {
            return Err(NluError::BadExample {
                row,
                reason: "empty intent".to_owned(),
            });
        }
        examples.push(Example::new(text, intent));
    }
    Ok(examples)
}

/// Reads a JSON array of `{"text": …, "intent": …}` objects.
pub fn load_examples_json<R: Read>(reader: R) -> Result<Vec<Example>, NluError> {
    let examples: Vec<Example> = serde_json::from_reader(reader)?;
    for (index, example) in examples.iter().enumerate() {
        if example.intent.trim().is_empty() {
            return Err(NluError::BadExample {
                row: index + 1,
                reason: "empty intent".to_owned(),
            });
        }
    }
    Ok(examples)
}

/// Opens `path` for buffered reading; the error names the file.
pub(crate) fn open_file(
    path: &std::path::Path,
) -> Result<std::io::BufReader<std::fs::File>, NluError> {
    let file = std::fs::File::open(path).map_err(|source| NluError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(std::io::BufReader::new(file))
}

/// Reads examples from a file, as JSON when its name ends in `.json`, else as CSV.
pub fn load_examples_file(path: &std::path::Path) -> Result<Vec<Example>, NluError> {
    let reader = open_file(path)?;
    if path
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("json"))
    {
        load_examples_json(reader)
    } else {
        load_examples_csv(reader)
    }
}

/// The splits of the CLINC150 benchmark file (`data_full.json` or `data_small.json` of
/// `clinc/oos-eval`), with every out-of-scope row labelled `oos`.
#[derive(Debug, Clone, Default)]
pub struct ClincSplits {
    pub train: Vec<Example>,
    pub validation: Vec<Example>,
    pub test: Vec<Example>,
}

/// Reads a CLINC150 JSON file: `train`+`oos_train`, `val`+`oos_val`, `test`+`oos_test`.
pub fn load_clinc_json<R: Read>(reader: R) -> Result<ClincSplits, NluError> {
    let file: HashMap<String, Vec<(String, String)>> = serde_json::from_reader(reader)?;
    let take = |names: [&str; 2]| -> Vec<Example> {
        names
            .iter()
            .filter_map(|name| file.get(*name))
            .flatten()
            .map(|(text, intent)| Example::new(text.clone(), intent.clone()))
            .collect()
    };
    let splits = ClincSplits {
        train: take(["train", "oos_train"]),
        validation: take(["val", "oos_val"]),
        test: take(["test", "oos_test"]),
    };
    if splits.train.is_empty() || splits.test.is_empty() {
        return Err(NluError::Config(
            "CLINC file has no `train` or no `test` split".to_owned(),
        ));
    }
    Ok(splits)
}
