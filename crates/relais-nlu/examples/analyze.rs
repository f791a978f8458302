//! Prints the analysis of each argument as JSON, optionally with an intent model trained
//! from a CSV/JSON examples file.
//!
//! cargo run -p relais-nlu --example analyze -- [--examples FILE] "text" ["text"…]

use std::process::ExitCode;

use relais_nlu::{
    AnalysisContext, IntentModel, NluError, TrainConfig, analyze, load_examples_file,
};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("analyze: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), NluError> {
    let mut arguments: Vec<String> = std::env::args().skip(1).collect();
    let mut model = None;
    if arguments.first().map(String::as_str) == Some("--examples") {
        let path = arguments
            .get(1)
            .ok_or_else(|| NluError::Config("--examples needs a file".to_owned()))?;
        let examples = load_examples_file(std::path::Path::new(path))?;
        model = Some(IntentModel::train(&examples, &TrainConfig::default())?);
        arguments.drain(..2);
    }
    for text in &arguments {
        let analysis = analyze(text, model.as_ref(), &AnalysisContext::default());
        println!("{}", serde_json::to_string_pretty(&analysis)?);
    }
    Ok(())
}
