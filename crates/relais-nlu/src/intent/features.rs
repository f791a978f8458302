//! From a message to a sparse, L2-normalised TF-IDF vector: accent-folded word unigrams and
//! bigrams and character n-grams inside each word, hashed to 32-bit keys, then mapped to
//! the dense indices of the features seen in training (the [`Vocabulary`]).
//!
//! Invariant: a message's norm counts every feature it has, known or not (an unknown one
//! weighs as a feature never seen in training), so a message made mostly of unknown words
//! gets small values on the few it shares with training, hence low scores: that is a large
//! part of how out-of-scope messages are recognised.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use crate::text::{fold, tokens};

/// Which sparse features the model extracts from a message, and how it weighs them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureConfig {
    pub word_bigrams: bool,
    /// Shortest and longest character n-gram taken inside each word (0 disables them).
    pub char_ngram_min: u8,
    pub char_ngram_max: u8,
    /// Weight of one character n-gram relative to one word feature.
    pub char_ngram_weight: f32,
    /// A feature seen `n` times in a message counts `1 + ln n`, not `n`.
    pub sublinear_tf: bool,
    /// Each feature is weighted by its inverse document frequency in the training set
    /// (`ln((1 + N) / (1 + df)) + 1`), so that "the" or "please" weigh less than "alarm".
    pub idf: bool,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        FeatureConfig {
            word_bigrams: true,
            char_ngram_min: 3,
            char_ngram_max: 5,
            // Cross-validation inside HWU64's ten training sets chose 0.4 in five folds
            // and 0.7 in the other five (docs/nlu.md); 0.4 was already the default.
            char_ngram_weight: 0.4,
            sublinear_tf: true,
            idf: true,
        }
    }
}

impl FeatureConfig {
    /// The features of format version 1 models: raw counts, no IDF.
    pub(crate) fn version_1(word_bigrams: bool, minimum: u8, maximum: u8, weight: f32) -> Self {
        FeatureConfig {
            word_bigrams,
            char_ngram_min: minimum,
            char_ngram_max: maximum,
            char_ngram_weight: weight,
            sublinear_tf: false,
            idf: false,
        }
    }
}

/// Hash-map hasher for keys that are already hashes: one multiply spreads them over the
/// 64 bits the map uses, much faster than SipHash on the prediction path.
#[derive(Default)]
pub(crate) struct PrehashedKeyHasher(u64);

impl Hasher for PrehashedKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u32(&mut self, value: u32) {
        self.0 = u64::from(value).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(crate) type FeatureIndex = HashMap<u32, u32, BuildHasherDefault<PrehashedKeyHasher>>;

pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
pub(crate) const FNV_PRIME: u64 = 0x100_0000_01b3;

fn fnv_add(hash: u64, value: u32) -> u64 {
    let mut hash = hash;
    for byte in value.to_le_bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
    }
    hash
}

fn finish_key(hash: u64) -> u32 {
    (hash ^ (hash >> 32)) as u32
}

/// One distinct feature of a message: its key, how many times it occurs, and the weight of
/// its kind (1 for words, `char_ngram_weight` for character n-grams).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RawFeature {
    pub key: u32,
    pub count: f32,
    pub kind_weight: f32,
}

/// The distinct features of a message, sorted by key.
pub(crate) fn raw_features(text: &str, config: &FeatureConfig) -> Vec<RawFeature> {
    let folded: String = fold(text)
        .chars()
        // Digits vary ("2 hours", "3 hours") while the intent does not.
        .map(|c| if c.is_ascii_digit() { '0' } else { c })
        .collect();
    let words = tokens(&folded);
    let mut features: Vec<(u32, f32)> = Vec::with_capacity(words.len() * 16);
    let word_hashes: Vec<u64> = words
        .iter()
        .map(|word| {
            word.chars()
                .fold(fnv_add(FNV_OFFSET, 1), |hash, c| fnv_add(hash, c as u32))
        })
        .collect();
    for hash in &word_hashes {
        features.push((finish_key(*hash), 1.0));
    }
    if config.word_bigrams {
        const START: u64 = 0x5157_4152_5400;
        const END: u64 = 0x454e_4400;
        let mut previous = START;
        for hash in word_hashes.iter().chain(std::iter::once(&END)) {
            let bigram = fnv_add(
                fnv_add(fnv_add(FNV_OFFSET, 2), previous as u32),
                *hash as u32,
            );
            features.push((finish_key(fnv_add(bigram, (*hash >> 32) as u32)), 1.0));
            previous = *hash;
        }
    }
    if config.char_ngram_min > 0 && config.char_ngram_max >= config.char_ngram_min {
        let minimum = usize::from(config.char_ngram_min);
        let maximum = usize::from(config.char_ngram_max);
        let mut padded: Vec<u32> = Vec::with_capacity(32);
        for word in &words {
            padded.clear();
            padded.push('<' as u32);
            padded.extend(word.chars().map(|c| c as u32));
            padded.push('>' as u32);
            for start in 0..padded.len() {
                let mut hash = fnv_add(FNV_OFFSET, 3);
                for (length, code) in padded[start..].iter().take(maximum).enumerate() {
                    hash = fnv_add(hash, *code);
                    if length + 1 >= minimum {
                        features.push((finish_key(hash), config.char_ngram_weight));
                    }
                }
            }
        }
    }
    features.sort_unstable_by_key(|(key, _)| *key);
    let mut merged: Vec<RawFeature> = Vec::with_capacity(features.len());
    for (key, kind_weight) in features {
        match merged.last_mut() {
            Some(last) if last.key == key => last.count += 1.0,
            _ => merged.push(RawFeature {
                key,
                count: 1.0,
                kind_weight,
            }),
        }
    }
    merged
}

/// The features seen in training: their keys, dense indices and IDF weights.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Vocabulary {
    pub keys: Vec<u32>,
    pub index: FeatureIndex,
    pub idf: Vec<f32>,
    /// Weight of a feature absent from the vocabulary (document frequency 0).
    pub unseen_idf: f32,
}

impl Vocabulary {
    /// Builds the vocabulary of `documents`: features in fewer than `min_count` documents
    /// are left out.
    pub fn build(documents: &[Vec<RawFeature>], min_count: u32, config: &FeatureConfig) -> Self {
        let mut document_frequency = FeatureIndex::default();
        for features in documents {
            for feature in features {
                *document_frequency.entry(feature.key).or_default() += 1;
            }
        }
        let total = documents.len() as f32;
        let idf_of = |frequency: u32| {
            if config.idf {
                ((1.0 + total) / (1.0 + frequency as f32)).ln() + 1.0
            } else {
                1.0
            }
        };
        // Indices in order of first appearance, so that training is deterministic.
        let mut vocabulary = Vocabulary {
            keys: Vec::new(),
            index: FeatureIndex::default(),
            idf: Vec::new(),
            unseen_idf: idf_of(0),
        };
        for features in documents {
            for feature in features {
                let frequency = document_frequency.get(&feature.key).copied().unwrap_or(0);
                if frequency >= min_count && !vocabulary.index.contains_key(&feature.key) {
                    vocabulary
                        .index
                        .insert(feature.key, vocabulary.keys.len() as u32);
                    vocabulary.keys.push(feature.key);
                    vocabulary.idf.push(idf_of(frequency));
                }
            }
        }
        vocabulary
    }

    /// Rebuilds the index of stored keys.
    pub fn from_parts(keys: Vec<u32>, idf: Vec<f32>, unseen_idf: f32) -> Self {
        let index = keys
            .iter()
            .enumerate()
            .map(|(position, key)| (*key, position as u32))
            .collect();
        Vocabulary {
            keys,
            index,
            idf,
            unseen_idf,
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The L2-normalised vector of known features, as `(dense index, value)` pairs.
    pub fn vectorise(&self, features: &[RawFeature], config: &FeatureConfig) -> Vec<(u32, f32)> {
        let mut norm = 0.0f32;
        let mut known = Vec::with_capacity(features.len());
        for feature in features {
            let frequency = if config.sublinear_tf {
                1.0 + feature.count.ln()
            } else {
                feature.count
            };
            let index = self.index.get(&feature.key).copied();
            let idf = index.map_or(self.unseen_idf, |index| self.idf[index as usize]);
            let value = frequency * feature.kind_weight * idf;
            norm += value * value;
            if let Some(index) = index {
                known.push((index, value));
            }
        }
        let norm = norm.sqrt();
        if norm > 0.0 {
            for (_, value) in &mut known {
                *value /= norm;
            }
        }
        known
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rare_words_weigh_more_than_common_ones() {
        let config = FeatureConfig {
            char_ngram_min: 0,
            word_bigrams: false,
            ..FeatureConfig::default()
        };
        let documents: Vec<Vec<RawFeature>> = ["the alarm", "the music", "the weather"]
            .iter()
            .map(|text| raw_features(text, &config))
            .collect();
        let vocabulary = Vocabulary::build(&documents, 1, &config);
        let vector = vocabulary.vectorise(&raw_features("the alarm", &config), &config);
        let value_of = |word: &str| {
            let key = raw_features(word, &config)
                .first()
                .map(|feature| feature.key);
            let index = key.and_then(|key| vocabulary.index.get(&key).copied());
            vector
                .iter()
                .find(|(feature, _)| Some(*feature) == index)
                .map(|pair| pair.1)
        };
        assert!(value_of("the").is_some());
        assert!(value_of("the") < value_of("alarm"), "{vector:?}");
    }

    #[test]
    fn unknown_words_shrink_the_known_ones() {
        let config = FeatureConfig::default();
        let documents = vec![raw_features("set an alarm", &config)];
        let vocabulary = Vocabulary::build(&documents, 1, &config);
        let alone = vocabulary.vectorise(&raw_features("alarm", &config), &config);
        let drowned = vocabulary.vectorise(
            &raw_features("alarm zebra quantum xylophone", &config),
            &config,
        );
        let total = |vector: &[(u32, f32)]| vector.iter().map(|(_, value)| value).sum::<f32>();
        assert!(total(&drowned) < total(&alone) * 0.8);
    }
}
