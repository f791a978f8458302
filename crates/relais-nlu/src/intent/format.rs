//! The model's bytes: a small little-endian format with a magic, a format version and a
//! checksum, so that a store can keep models per tenant and refuse a corrupt or foreign
//! blob. Version 2 adds IDF weights, the feature weighting flags and the cross-validated
//! curve; version 1 models (raw counts, no IDF) are still read and predict as before.

use crate::error::NluError;
use crate::intent::calibrate::{Calibration, CurvePoint, NO_BACKGROUND};
use crate::intent::features::{FNV_OFFSET, FNV_PRIME, FeatureConfig, Vocabulary};
use crate::intent::{IntentModel, TrainingSummary};

const MAGIC: &[u8; 16] = b"RELAIS-NLU-INTNT";
/// Version of the byte format written by [`IntentModel::to_bytes`].
/// Version 3 adds dense features (sentence or static vectors) after the vocabulary's; a
/// model without them is still written as version 2, which older builds read.
pub const MODEL_FORMAT_VERSION: u32 = 3;

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(FNV_PRIME)
    })
}

struct ByteWriter(Vec<u8>);

impl ByteWriter {
    fn u32(&mut self, value: u32) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    fn f32(&mut self, value: f32) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    fn string(&mut self, value: &str) {
        self.u32(value.len() as u32);
        self.0.extend_from_slice(value.as_bytes());
    }
}

struct ByteReader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> ByteReader<'a> {
    fn take(&mut self, length: usize) -> Result<&'a [u8], NluError> {
        let end = self
            .position
            .checked_add(length)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| NluError::ModelFormat("truncated".to_owned()))?;
        let slice = &self.bytes[self.position..end];
        self.position = end;
        Ok(slice)
    }
    fn u32(&mut self) -> Result<u32, NluError> {
        let mut buffer = [0u8; 4];
        buffer.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(buffer))
    }
    fn f32(&mut self) -> Result<f32, NluError> {
        let value = f32::from_bits(self.u32()?);
        if value.is_finite() {
            Ok(value)
        } else {
            Err(NluError::ModelFormat("non-finite number".to_owned()))
        }
    }
    fn count(&mut self, element_size: usize) -> Result<usize, NluError> {
        let count = self.u32()? as usize;
        // Refuse counts that the remaining bytes cannot hold before allocating anything.
        if count.saturating_mul(element_size) > self.bytes.len() - self.position {
            return Err(NluError::ModelFormat("length exceeds data".to_owned()));
        }
        Ok(count)
    }
    fn string(&mut self) -> Result<String, NluError> {
        let length = self.count(1)?;
        String::from_utf8(self.take(length)?.to_vec())
            .map_err(|_| NluError::ModelFormat("string is not UTF-8".to_owned()))
    }
    fn f32s(&mut self, count: usize) -> Result<Vec<f32>, NluError> {
        let bytes = self.take(
            count
                .checked_mul(4)
                .ok_or_else(|| NluError::ModelFormat("length overflow".to_owned()))?,
        )?;
        let values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
            .collect();
        if values.iter().all(|value| value.is_finite()) {
            Ok(values)
        } else {
            Err(NluError::ModelFormat("non-finite weight".to_owned()))
        }
    }
}

/// `None` is written as -1, outside every figure's range.
fn optional_figure(value: Option<f32>) -> f32 {
    value.unwrap_or(-1.0)
}

fn read_figure(value: f32) -> Option<f32> {
    (value >= 0.0).then_some(value)
}

impl ByteWriter {
    fn point(&mut self, point: &CurvePoint) {
        self.f32(point.threshold);
        self.f32(point.in_scope_accuracy);
        self.f32(point.in_scope_precision);
        self.f32(optional_figure(point.oos_recall));
    }
}

impl ByteReader<'_> {
    fn point(&mut self) -> Result<CurvePoint, NluError> {
        Ok(CurvePoint {
            threshold: self.f32()?,
            in_scope_accuracy: self.f32()?,
            in_scope_precision: self.f32()?,
            oos_recall: read_figure(self.f32()?),
        })
    }
}

impl IntentModel {
    /// Serialises the model (magic, format version, body, checksum).
    pub fn to_bytes(&self) -> Vec<u8> {
        let features = self.vocabulary.len();
        let mut writer = ByteWriter(Vec::with_capacity(64 + self.weights.len() + features * 12));
        writer.0.extend_from_slice(MAGIC);
        let version = if self.dense_dims > 0 { 3 } else { 2 };
        writer.u32(version);
        let classes = self.labels.len();
        writer.u32(self.labels.len() as u32);
        for label in &self.labels {
            writer.string(label);
        }
        writer.string(&self.oos_label);
        writer.f32(self.calibration.temperature);
        writer.f32(self.oos_threshold);
        writer.0.push(u8::from(self.features.word_bigrams));
        writer.0.push(self.features.char_ngram_min);
        writer.0.push(self.features.char_ngram_max);
        writer.f32(self.features.char_ngram_weight);
        writer.u32(self.summary.examples as u32);
        writer.u32(self.summary.heldout_examples as u32);
        writer.u32(features as u32);
        for key in &self.vocabulary.keys {
            writer.u32(*key);
        }
        for value in self.row_scales[..features].iter().chain(&self.bias) {
            writer.f32(*value);
        }
        writer.0.extend(
            self.weights[..features * classes]
                .iter()
                .map(|level| *level as u8),
        );
        // Version 2.
        writer.0.push(u8::from(self.features.sublinear_tf));
        writer.0.push(u8::from(self.features.idf));
        writer.f32(self.calibration.background);
        writer.f32(self.vocabulary.unseen_idf);
        for value in &self.vocabulary.idf {
            writer.f32(*value);
        }
        match &self.summary.estimate {
            Some(point) => {
                writer.0.push(1);
                writer.point(point);
            }
            None => writer.0.push(0),
        }
        writer.u32(self.summary.curve.len() as u32);
        for point in &self.summary.curve {
            writer.point(point);
        }
        if version == 3 {
            writer.u32(self.dense_dims as u32);
            writer.f32(self.dense_weight);
            for value in &self.row_scales[features..] {
                writer.f32(*value);
            }
            writer.0.extend(
                self.weights[features * classes..]
                    .iter()
                    .map(|level| *level as u8),
            );
        }
        let sum = checksum(&writer.0);
        writer.0.extend_from_slice(&sum.to_le_bytes());
        writer.0
    }

    /// Reads a model written by [`IntentModel::to_bytes`] (format version 1 or 2); refuses
    /// other versions and corrupt bytes with an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<IntentModel, NluError> {
        if bytes.len() < MAGIC.len() + 4 + 8 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(NluError::ModelFormat(
                "not a relais intent model".to_owned(),
            ));
        }
        let (body, sum_bytes) = bytes.split_at(bytes.len() - 8);
        let mut sum = [0u8; 8];
        sum.copy_from_slice(sum_bytes);
        let mut reader = ByteReader {
            bytes: body,
            position: MAGIC.len(),
        };
        let version = reader.u32()?;
        if !(1..=MODEL_FORMAT_VERSION).contains(&version) {
            return Err(NluError::ModelVersion {
                found: version,
                supported: MODEL_FORMAT_VERSION,
            });
        }
        if checksum(body) != u64::from_le_bytes(sum) {
            return Err(NluError::ModelFormat("checksum mismatch".to_owned()));
        }
        let label_count = reader.count(4)?;
        let mut labels = Vec::with_capacity(label_count);
        for _ in 0..label_count {
            labels.push(reader.string()?);
        }
        if labels.len() < 2 {
            return Err(NluError::ModelFormat("fewer than two intents".to_owned()));
        }
        let oos_label = reader.string()?;
        let temperature = reader.f32()?;
        let oos_threshold = reader.f32()?;
        if temperature <= 0.0 {
            return Err(NluError::ModelFormat(
                "temperature must be positive".to_owned(),
            ));
        }
        let flags = reader.take(3)?;
        let mut features =
            FeatureConfig::version_1(flags[0] != 0, flags[1], flags[2], reader.f32()?);
        let examples = reader.u32()? as usize;
        let heldout_examples = reader.u32()? as usize;
        let feature_count = reader.count(4)?;
        let mut keys = Vec::with_capacity(feature_count);
        for _ in 0..feature_count {
            keys.push(reader.u32()?);
        }
        let classes = labels.len();
        let weight_count = feature_count
            .checked_mul(classes)
            .ok_or_else(|| NluError::ModelFormat("length overflow".to_owned()))?;
        let mut row_scales = reader.f32s(feature_count)?;
        let bias = reader.f32s(classes)?;
        let mut weights: Vec<i8> = reader
            .take(weight_count)?
            .iter()
            .map(|byte| *byte as i8)
            .collect();
        let mut background = NO_BACKGROUND;
        let (vocabulary, estimate, curve) = if version == 1 {
            let idf = vec![1.0; feature_count];
            (Vocabulary::from_parts(keys, idf, 1.0), None, Vec::new())
        } else {
            let flags = reader.take(2)?;
            features.sublinear_tf = flags[0] != 0;
            features.idf = flags[1] != 0;
            background = reader.f32()?;
            let unseen_idf = reader.f32()?;
            let idf = reader.f32s(feature_count)?;
            let estimate = match reader.take(1)?[0] {
                0 => None,
                _ => Some(reader.point()?),
            };
            let points = reader.count(16)?;
            let mut curve = Vec::with_capacity(points);
            for _ in 0..points {
                curve.push(reader.point()?);
            }
            (
                Vocabulary::from_parts(keys, idf, unseen_idf),
                estimate,
                curve,
            )
        };
        let (mut dense_dims, mut dense_weight) = (0, 0.0);
        if version >= 3 {
            dense_dims = reader.count(4)?;
            dense_weight = reader.f32()?;
            row_scales.extend(reader.f32s(dense_dims)?);
            let dense_weights = dense_dims
                .checked_mul(classes)
                .ok_or_else(|| NluError::ModelFormat("length overflow".to_owned()))?;
            weights.extend(reader.take(dense_weights)?.iter().map(|byte| *byte as i8));
        }
        if reader.position != body.len() {
            return Err(NluError::ModelFormat("trailing bytes".to_owned()));
        }
        let oos_class = labels.iter().position(|label| *label == oos_label);
        Ok(IntentModel {
            summary: TrainingSummary {
                examples,
                intents: classes,
                features: feature_count,
                heldout_examples,
                temperature,
                background,
                oos_threshold,
                estimate,
                curve,
            },
            labels,
            oos_label,
            oos_class,
            features,
            vocabulary,
            weights,
            row_scales,
            bias,
            calibration: Calibration {
                temperature,
                background,
            },
            oos_threshold,
            dense_dims,
            dense_weight,
            out_of_fold_confidences: Vec::new(),
        })
    }
}
