//! Latency of the sentence encoder alone on short messages (one at a time), to profile it:
//!
//! cargo build --release -p relais-nlu --example encoder_speed
//! taskset -c 0 target/release/examples/encoder_speed relais-data/nlu/encoder [calls]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

const MESSAGES: [&str; 6] = [
    "where is my parcel",
    "wake me up at seven tomorrow morning please",
    "what's the weather like in paris this weekend",
    "play some jazz",
    "I want a refund for the order I placed last week, it never arrived",
    "turn the lights off in the kitchen",
];

fn main() -> ExitCode {
    let mut arguments = std::env::args().skip(1);
    let directory = PathBuf::from(
        arguments
            .next()
            .unwrap_or_else(|| "relais-data/nlu/encoder".to_owned()),
    );
    let calls: usize = arguments
        .next()
        .and_then(|value| value.parse().ok())
        .unwrap_or(600);
    let encoder = match relais_nlu::SentenceEncoder::load(&directory) {
        Ok(encoder) => encoder,
        Err(error) => {
            eprintln!("encoder_speed: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut samples = Vec::with_capacity(calls);
    for index in 0..calls {
        let started = Instant::now();
        if let Err(error) = encoder.encode(MESSAGES[index % MESSAGES.len()]) {
            eprintln!("encoder_speed: {error}");
            return ExitCode::FAILURE;
        }
        samples.push(started.elapsed().as_micros());
    }
    samples.sort_unstable();
    let at = |quantile: f64| {
        samples[((samples.len() as f64 * quantile) as usize).min(samples.len() - 1)]
    };
    println!(
        "encode one message: p50 {} us p99 {} us ({calls} calls)",
        at(0.5),
        at(0.99)
    );
    ExitCode::SUCCESS
}
