//! Static word-piece vectors distilled from the sentence encoder (as Model2Vec does): one
//! vector per word piece of the encoder's vocabulary, the encoder's own vector of that
//! piece alone, less the vocabulary's mean (the component every piece shares), stored as
//! 8-bit integers with one scale per piece. A message's vector is the mean of its pieces'
//! vectors, L2-normalised: a table look-up, in microseconds, where the encoder takes
//! milliseconds.
//!
//! Invariant: [`StaticVectors::embed`] returns [`DIMENSIONS`] components, of norm 1, or all
//! zeros for a message with no word piece.
//!
//! Why: the lexical model does not know that "reimbursement" and "refund" are close; these
//! vectors do, for every message, at the price of 30,522 × 384 bytes (11.7 MB) loaded once.

use std::path::Path;

use tokenizers::Tokenizer;

use crate::encoder::{DIMENSIONS, SentenceEncoder, load_tokenizer, normalise};
use crate::error::NluError;
use crate::intent::features::{FNV_OFFSET, FNV_PRIME};

/// File of the table in the encoder's directory.
pub const STATIC_VECTORS_FILE: &str = "static_vectors.bin";
const MAGIC: &[u8; 16] = b"RELAIS-NLU-STVEC";
const FORMAT_VERSION: u32 = 1;
/// Pieces encoded at once while distilling: 512 × 3 tokens keeps the batch's activations
/// near 10 MB and the matrix products large enough to be efficient.
const DISTIL_BATCH: usize = 512;

/// The table and the tokenizer that maps a message to its pieces.
pub struct StaticVectors {
    tokenizer: Tokenizer,
    /// `[piece][dimension]`, quantised.
    rows: Vec<i8>,
    scales: Vec<f32>,
}

impl std::fmt::Debug for StaticVectors {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("StaticVectors")
            .field("pieces", &self.scales.len())
            .finish_non_exhaustive()
    }
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(FNV_PRIME)
    })
}

impl StaticVectors {
    /// Encodes every piece of the encoder's vocabulary alone (`[CLS] piece [SEP]`).
    /// `progress` is called with the share done, from 0 to 1.
    pub fn distil(
        encoder: &SentenceEncoder,
        progress: &mut dyn FnMut(f32),
    ) -> Result<StaticVectors, NluError> {
        let tokenizer = encoder.tokenizer().clone();
        let pieces = tokenizer.get_vocab_size(false);
        let special = |token: &str| {
            tokenizer
                .token_to_id(token)
                .ok_or_else(|| NluError::Encoder(format!("tokenizer has no {token} token")))
        };
        let (cls, sep) = (special("[CLS]")?, special("[SEP]")?);
        let mut vectors: Vec<f32> = Vec::with_capacity(pieces * DIMENSIONS);
        let mut start = 0usize;
        while start < pieces {
            let end = (start + DISTIL_BATCH).min(pieces);
            let ids: Vec<Vec<u32>> = (start..end).map(|id| vec![cls, id as u32, sep]).collect();
            let masks = vec![vec![1u32; 3]; ids.len()];
            for vector in encoder.encode_ids(&ids, &masks)? {
                vectors.extend_from_slice(&vector);
            }
            start = end;
            progress(start as f32 / pieces as f32);
        }
        let mut mean = vec![0.0f32; DIMENSIONS];
        for row in vectors.chunks(DIMENSIONS) {
            for (sum, value) in mean.iter_mut().zip(row) {
                *sum += value / pieces as f32;
            }
        }
        let mut rows = Vec::with_capacity(vectors.len());
        let mut scales = Vec::with_capacity(pieces);
        for row in vectors.chunks_mut(DIMENSIONS) {
            for (value, common) in row.iter_mut().zip(&mean) {
                *value -= common;
            }
            normalise(row);
            let largest = row.iter().fold(0.0f32, |largest, v| largest.max(v.abs()));
            let scale = if largest > 0.0 { largest / 127.0 } else { 1.0 };
            scales.push(scale);
            rows.extend(
                row.iter()
                    .map(|value| (value / scale).round().clamp(-127.0, 127.0) as i8),
            );
        }
        Ok(StaticVectors {
            tokenizer,
            rows,
            scales,
        })
    }

    /// The table's bytes: magic, version, pieces, dimensions, scales, rows, checksum.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(32 + self.scales.len() * 4 + self.rows.len() + 8);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&(self.scales.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&(DIMENSIONS as u32).to_le_bytes());
        for scale in &self.scales {
            bytes.extend_from_slice(&scale.to_le_bytes());
        }
        bytes.extend(self.rows.iter().map(|level| *level as u8));
        let sum = checksum(&bytes);
        bytes.extend_from_slice(&sum.to_le_bytes());
        bytes
    }

    /// Reads the table written by [`StaticVectors::to_bytes`] and the tokenizer of the
    /// encoder in `directory`. Refuses a table of another vocabulary size, version or
    /// checksum.
    pub fn load(directory: &Path) -> Result<StaticVectors, NluError> {
        let tokenizer = load_tokenizer(directory)?;
        let path = directory.join(STATIC_VECTORS_FILE);
        let bytes = std::fs::read(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                NluError::EncoderNotInstalled {
                    directory: directory.display().to_string(),
                    missing: STATIC_VECTORS_FILE.to_owned(),
                }
            } else {
                NluError::Io {
                    path: path.display().to_string(),
                    source,
                }
            }
        })?;
        Self::from_bytes(&bytes, tokenizer)
    }

    fn from_bytes(bytes: &[u8], tokenizer: Tokenizer) -> Result<StaticVectors, NluError> {
        let bad = |reason: &str| NluError::Encoder(format!("{STATIC_VECTORS_FILE}: {reason}"));
        let header = MAGIC.len() + 12;
        if bytes.len() < header + 8 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(bad("not a static vector table"));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 8);
        let mut stored = [0u8; 8];
        stored.copy_from_slice(tail);
        if checksum(body) != u64::from_le_bytes(stored) {
            return Err(bad("checksum mismatch (corrupt file)"));
        }
        let word = |at: usize| {
            let mut buffer = [0u8; 4];
            buffer.copy_from_slice(&body[at..at + 4]);
            buffer
        };
        let version = u32::from_le_bytes(word(MAGIC.len()));
        let pieces = u32::from_le_bytes(word(MAGIC.len() + 4)) as usize;
        let dimensions = u32::from_le_bytes(word(MAGIC.len() + 8)) as usize;
        if version != FORMAT_VERSION {
            return Err(bad(&format!(
                "format version {version}, expected {FORMAT_VERSION}"
            )));
        }
        if dimensions != DIMENSIONS || pieces != tokenizer.get_vocab_size(false) {
            return Err(bad("table does not match the tokenizer's vocabulary"));
        }
        if body.len() != header + pieces * 4 + pieces * DIMENSIONS {
            return Err(bad("truncated"));
        }
        let scales = (0..pieces)
            .map(|piece| f32::from_le_bytes(word(header + piece * 4)))
            .collect();
        let rows = body[header + pieces * 4..]
            .iter()
            .map(|byte| *byte as i8)
            .collect();
        Ok(StaticVectors {
            tokenizer,
            rows,
            scales,
        })
    }

    /// The vector of a message: the normalised mean of its pieces' vectors (zeros when it
    /// has none, or when the tokenizer fails on it: this runs on every inbound message
    /// and must answer).
    pub fn embed(&self, text: &str) -> Vec<f32> {
        let mut vector = vec![0.0f32; DIMENSIONS];
        let Ok(encoding) = self.tokenizer.encode_fast(text, false) else {
            return vector;
        };
        for id in encoding.get_ids() {
            let piece = *id as usize;
            let Some(scale) = self.scales.get(piece) else {
                continue;
            };
            let row = &self.rows[piece * DIMENSIONS..(piece + 1) * DIMENSIONS];
            for (sum, level) in vector.iter_mut().zip(row) {
                *sum += scale * f32::from(*level);
            }
        }
        normalise(&mut vector);
        vector
    }

    /// Size of the table in memory, in bytes.
    pub fn size_bytes(&self) -> usize {
        self.rows.len() + self.scales.len() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::{cosine, test_encoder_dir};

    #[test]
    fn a_corrupt_table_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        if crate::encoder::test_encoder().is_none() {
            return Ok(());
        }
        let Ok(tokenizer) = load_tokenizer(&test_encoder_dir()) else {
            eprintln!("skipped: encoder tokenizer not installed");
            return Ok(());
        };
        assert!(StaticVectors::from_bytes(b"short", tokenizer.clone()).is_err());
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[0u8; 40]);
        assert!(StaticVectors::from_bytes(&bytes, tokenizer).is_err());
        Ok(())
    }

    #[test]
    fn static_vectors_put_paraphrases_closer_than_unrelated_messages() -> Result<(), NluError> {
        if crate::encoder::test_encoder().is_none() {
            return Ok(());
        }
        let vectors = StaticVectors::load(&test_encoder_dir())?;
        let parcel = vectors.embed("where is my parcel");
        let package = vectors.embed("my package has not arrived");
        let alarm = vectors.embed("wake me up at seven");
        let norm = parcel.iter().map(|value| value * value).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
        assert!(cosine(&parcel, &package) > cosine(&parcel, &alarm));
        assert!(vectors.embed("").iter().all(|value| *value == 0.0));
        Ok(())
    }
}
