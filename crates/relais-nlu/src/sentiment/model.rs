//! The trained three-label sentiment model: a linear SVM per label (one-vs-rest, the
//! intent classifier's solver) over accent-folded word and bigram TF-IDF features plus the
//! rules' reading of the message ([`super::lexicon::Reading`]) as dense features, and its
//! compact binary format.
//!
//! Why the reading as features: the review data it is trained on is English only, so the
//! French of the model comes from the French lexicons through the reading, and the
//! TF-IDF words correct what the lexicon gets wrong in context ("plot", "cheap", "but").
//!
//! Format (little-endian): `RSNT`, version `u32`, five `u8` of the feature configuration
//! (bigrams, char n-gram min and max, sublinear tf, idf), `f32` char n-gram weight, `f32`
//! lexicon weight, `f32` unseen IDF, `u32` vocabulary size `n`, `u32` dense feature count,
//! `n` × `u32` keys, `n` × `f32` IDF, `(n + dense) × 3` × `f32` weights (`[feature][label]`,
//! labels negative, neutral, positive) and `3` × `f32` biases.

use super::lexicon::{EmotionKind, NEGATORS, Reading};
use super::{Sentiment, SentimentLabel};
use crate::error::NluError;
use crate::intent::FeatureConfig;
use crate::intent::features::{RawFeature, Vocabulary, raw_features};
use crate::intent::svm::{EncodedExample, LinearWeights, scores_into};
use crate::text::fold;

/// The labels in the order of the model's classes.
pub(crate) const LABELS: [SentimentLabel; 3] = [
    SentimentLabel::Negative,
    SentimentLabel::Neutral,
    SentimentLabel::Positive,
];

pub(crate) fn class_of(label: SentimentLabel) -> usize {
    match label {
        SentimentLabel::Negative => 0,
        SentimentLabel::Neutral => 1,
        SentimentLabel::Positive => 2,
    }
}

/// How many dense features [`dense_features`] gives.
pub(crate) const DENSE_FEATURES: usize = 22;

const MAGIC: &[u8; 4] = b"RSNT";
const FORMAT_VERSION: u32 = 1;

/// Scale of the SVM scores before the softmax that gives the label probabilities: with
/// margins near ±1 for clear messages, 2 puts a clear complaint near p = 0.96.
const SOFTMAX_SCALE: f32 = 2.0;

/// The rules' reading as features in [-1, 1] (or {0, 1}), before the lexicon weight.
pub(crate) fn dense_features(text: &str, reading: &Reading) -> [f32; DENSE_FEATURES] {
    let score = reading.score;
    let flag = |condition: bool| if condition { 1.0 } else { 0.0 };
    let cue = |kind: EmotionKind| reading.cue(kind).min(3.0) / 3.0;
    [
        score,
        // The compound score cut in five, so that a linear model can weigh "a little
        // negative" apart from "very negative".
        flag(score <= -0.5),
        flag(score > -0.5 && score <= -0.05),
        flag(score > -0.05 && score < 0.05),
        flag((0.05..0.5).contains(&score)),
        flag(score >= 0.5),
        (reading.positive / 4.0).tanh(),
        (reading.negative / 4.0).tanh(),
        flag(reading.negated > 0),
        flag(reading.contrast),
        f32::from(reading.shouted_words.min(3)) / 3.0,
        flag(reading.whole_message_shouted),
        reading.exclamations / 4.0,
        flag(text.contains('?')),
        reading.repeated_questions / 4.0,
        (reading.emoji_positive / 3.0).tanh(),
        (reading.emoji_negative / 3.0).tanh(),
        cue(EmotionKind::Anger),
        cue(EmotionKind::Frustration),
        cue(EmotionKind::Joy),
        cue(EmotionKind::Sadness),
        cue(EmotionKind::Worry),
    ]
}

/// `text` with every word in the scope of a negation (after "not", "never", "pas",
/// "jamais", "n't"… up to the next punctuation) prefixed with `neg`, so that "not happy"
/// gives the bag-of-words feature `neghappy`, not `happy` (negation marking, Das & Chen
/// 2001; Pang et al. 2002). Without it, "I am not happy with the delivery" came out
/// positive: the review snippets teach `happy`, and the rules' flip weighs less.
pub(crate) fn mark_negation(text: &str) -> String {
    fn flush(word: &mut String, marked: &mut String, in_scope: &mut bool) {
        if word.is_empty() {
            return;
        }
        if *in_scope {
            marked.push_str("neg");
        }
        marked.push_str(word);
        if NEGATORS.contains(&fold(word).as_str()) {
            *in_scope = true;
        }
        word.clear();
    }
    let mut marked = String::with_capacity(text.len() + 16);
    let mut in_scope = false;
    let mut word = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() {
            word.push(c);
            continue;
        }
        // The apostrophe ends a word ("don't" gives "don" and "t", both negators, as the
        // rules split it).
        flush(&mut word, &mut marked, &mut in_scope);
        if matches!(c, '.' | ',' | '!' | '?' | ';' | ':' | '\n') {
            in_scope = false;
        }
        marked.push(c);
    }
    flush(&mut word, &mut marked, &mut in_scope);
    marked
}

/// The sparse TF-IDF vector of `text` followed by its dense features.
pub(crate) fn encode(
    vocabulary: &Vocabulary,
    config: &FeatureConfig,
    raw: &[RawFeature],
    dense: &[f32; DENSE_FEATURES],
    lexicon_weight: f32,
) -> Vec<(u32, f32)> {
    let mut features = vocabulary.vectorise(raw, config);
    let offset = vocabulary.len();
    features.extend(
        dense
            .iter()
            .enumerate()
            .filter(|(_, value)| **value != 0.0)
            .map(|(index, value)| ((offset + index) as u32, lexicon_weight * value)),
    );
    features
}

/// A trained sentiment model.
pub struct SentimentModel {
    pub(crate) features: FeatureConfig,
    pub(crate) vocabulary: Vocabulary,
    pub(crate) lexicon_weight: f32,
    pub(crate) weights: LinearWeights,
}

/// The model's decision on one message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SentimentScores {
    pub label: SentimentLabel,
    /// Probabilities of negative, neutral and positive (a softmax of the SVM scores).
    pub probabilities: [f32; 3],
}

impl SentimentScores {
    /// Polarity in [-1, 1] consistent with the label: `p(positive) − p(negative)`, at least
    /// 0.05 in size for a positive or negative label and under it for a neutral one, the
    /// thresholds of the lexicon's compound score.
    pub fn polarity(&self) -> f32 {
        let raw = self.probabilities[2] - self.probabilities[0];
        match self.label {
            SentimentLabel::Positive => raw.max(0.05),
            SentimentLabel::Negative => raw.min(-0.05),
            SentimentLabel::Neutral => raw.clamp(-0.049, 0.049),
        }
    }
}

impl SentimentModel {
    /// Scores `text` whose rules' reading is `reading`.
    pub(crate) fn scores_with(&self, text: &str, reading: &Reading) -> SentimentScores {
        let raw = raw_features(&mark_negation(text), &self.features);
        let dense = dense_features(text, reading);
        let encoded = encode(
            &self.vocabulary,
            &self.features,
            &raw,
            &dense,
            self.lexicon_weight,
        );
        let mut scores = [0.0f32; 3];
        scores_into(
            &EncodedExample::sparse(encoded, 0),
            &self.weights,
            3,
            &mut scores,
        );
        let mut best = 0;
        for class in 1..3 {
            if scores[class] > scores[best] {
                best = class;
            }
        }
        let top = scores[best];
        let exponentials = scores.map(|score| ((score - top) * SOFTMAX_SCALE).exp());
        let total: f32 = exponentials.iter().sum();
        SentimentScores {
            label: LABELS[best],
            probabilities: exponentials.map(|value| value / total),
        }
    }

    /// The model's label and probabilities for `text`.
    pub fn scores(&self, text: &str) -> SentimentScores {
        self.scores_with(text, &super::lexicon::read(text))
    }

    /// Label, polarity and emotions of `text` by this model.
    pub fn predict(&self, text: &str) -> Sentiment {
        let reading = super::lexicon::read(text);
        let scores = self.scores_with(text, &reading);
        let score = scores.polarity();
        Sentiment {
            label: scores.label,
            score,
            emotions: reading.emotions(score),
        }
    }

    /// Number of word and bigram features kept from training.
    pub fn vocabulary_size(&self) -> usize {
        self.vocabulary.len()
    }

    /// The model in the format described in the module's documentation.
    pub fn to_bytes(&self) -> Vec<u8> {
        let n = self.vocabulary.len();
        let mut bytes = Vec::with_capacity(40 + n * 20 + DENSE_FEATURES * 12);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.push(u8::from(self.features.word_bigrams));
        bytes.push(self.features.char_ngram_min);
        bytes.push(self.features.char_ngram_max);
        bytes.push(u8::from(self.features.sublinear_tf));
        bytes.push(u8::from(self.features.idf));
        for value in [
            self.features.char_ngram_weight,
            self.lexicon_weight,
            self.vocabulary.unseen_idf,
        ] {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        bytes.extend_from_slice(&(n as u32).to_le_bytes());
        bytes.extend_from_slice(&(DENSE_FEATURES as u32).to_le_bytes());
        for key in &self.vocabulary.keys {
            bytes.extend_from_slice(&key.to_le_bytes());
        }
        for value in self
            .vocabulary
            .idf
            .iter()
            .chain(&self.weights.weights)
            .chain(&self.weights.bias)
        {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        bytes
    }

    /// Reads a model written by [`SentimentModel::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<SentimentModel, NluError> {
        let mut reader = ByteReader { bytes, at: 0 };
        if reader.take(4)? != MAGIC {
            return Err(NluError::ModelFormat(
                "not a sentiment model (no RSNT header)".to_owned(),
            ));
        }
        let version = reader.u32()?;
        if version != FORMAT_VERSION {
            return Err(NluError::ModelVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let flags = reader.take(5)?;
        let features = FeatureConfig {
            word_bigrams: flags[0] != 0,
            char_ngram_min: flags[1],
            char_ngram_max: flags[2],
            sublinear_tf: flags[3] != 0,
            idf: flags[4] != 0,
            char_ngram_weight: reader.f32()?,
        };
        let lexicon_weight = reader.f32()?;
        let unseen_idf = reader.f32()?;
        let n = reader.u32()? as usize;
        let dense = reader.u32()? as usize;
        if dense != DENSE_FEATURES {
            return Err(NluError::ModelFormat(format!(
                "{dense} dense features, this build computes {DENSE_FEATURES}"
            )));
        }
        // Checked before allocating: a corrupt count must not ask for gigabytes.
        let expected = n
            .checked_mul(8 + 12)
            .and_then(|size| size.checked_add(dense * 12 + 12))
            .ok_or_else(|| NluError::ModelFormat("vocabulary size overflows".to_owned()))?;
        if reader.remaining() != expected {
            return Err(NluError::ModelFormat(format!(
                "{} bytes of tables, expected {expected} for {n} features",
                reader.remaining()
            )));
        }
        let keys = (0..n)
            .map(|_| reader.u32())
            .collect::<Result<Vec<_>, _>>()?;
        let idf = (0..n)
            .map(|_| reader.f32())
            .collect::<Result<Vec<_>, _>>()?;
        let weights = (0..(n + dense) * 3)
            .map(|_| reader.f32())
            .collect::<Result<Vec<_>, _>>()?;
        let bias = (0..3)
            .map(|_| reader.f32())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SentimentModel {
            features,
            vocabulary: Vocabulary::from_parts(keys, idf, unseen_idf),
            lexicon_weight,
            weights: LinearWeights { weights, bias },
        })
    }
}

struct ByteReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> ByteReader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], NluError> {
        let end = self
            .at
            .checked_add(count)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| NluError::ModelFormat("truncated sentiment model".to_owned()))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array(&mut self) -> Result<[u8; 4], NluError> {
        let slice = self.take(4)?;
        let mut array = [0u8; 4];
        array.copy_from_slice(slice);
        Ok(array)
    }

    fn u32(&mut self) -> Result<u32, NluError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn f32(&mut self) -> Result<f32, NluError> {
        Ok(f32::from_le_bytes(self.array()?))
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }
}
