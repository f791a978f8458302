//! FAQ knowledge base with BM25 lexical retrieval (French and English, accent-folded,
//! stopwords removed, plurals merged).

use std::collections::HashMap;
use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::error::NluError;
use crate::text::{folded_tokens, is_stopword, light_stem};

/// One FAQ entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaqEntry {
    pub id: String,
    pub question: String,
    pub answer: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// An entry found for a query, with its BM25 score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retrieved {
    pub entry: FaqEntry,
    pub score: f32,
}

/// BM25 parameters and the relevance floor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievalConfig {
    pub k1: f32,
    pub b: f32,
    /// Entries scoring below this are not relevant. BM25 scores are sums of IDF-weighted
    /// term matches; one match on a rare word scores about 1 to 2.
    pub min_score: f32,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        RetrievalConfig {
            k1: 1.2,
            b: 0.75,
            min_score: 1.0,
        }
    }
}

/// The indexed FAQ of one tenant. Build once, search many times (`&self`).
#[derive(Debug, Clone)]
pub struct KnowledgeBase {
    entries: Vec<FaqEntry>,
    /// Term frequencies per entry.
    documents: Vec<HashMap<String, f32>>,
    lengths: Vec<f32>,
    average_length: f32,
    document_frequency: HashMap<String, usize>,
    config: RetrievalConfig,
}

/// Retrieval terms of a text: folded, stopwords dropped, lightly stemmed.
pub fn retrieval_terms(text: &str) -> Vec<String> {
    folded_tokens(text)
        .iter()
        .filter(|token| !is_stopword(token))
        .map(|token| light_stem(token).to_owned())
        .collect()
}

impl KnowledgeBase {
    pub fn new(entries: Vec<FaqEntry>) -> Result<KnowledgeBase, NluError> {
        Self::with_config(entries, RetrievalConfig::default())
    }

    /// Indexes the entries; ids must be unique and non-empty, since answers cite them.
    pub fn with_config(
        entries: Vec<FaqEntry>,
        config: RetrievalConfig,
    ) -> Result<KnowledgeBase, NluError> {
        let mut seen = std::collections::HashSet::new();
        for (index, entry) in entries.iter().enumerate() {
            if entry.id.trim().is_empty() || !seen.insert(entry.id.as_str()) {
                return Err(NluError::BadExample {
                    row: index + 1,
                    reason: format!("FAQ id {:?} is empty or repeated", entry.id),
                });
            }
        }
        let mut documents = Vec::with_capacity(entries.len());
        let mut lengths = Vec::with_capacity(entries.len());
        let mut document_frequency: HashMap<String, usize> = HashMap::new();
        for entry in &entries {
            let mut frequencies: HashMap<String, f32> = HashMap::new();
            // The question says what the entry is about better than the answer: count it
            // twice. Tags count twice too: the tenant chose them as keywords.
            let weighted = [
                (entry.question.as_str(), 2.0f32),
                (entry.answer.as_str(), 1.0),
            ];
            let mut length = 0.0;
            for (text, weight) in weighted {
                for term in retrieval_terms(text) {
                    *frequencies.entry(term).or_default() += weight;
                    length += weight;
                }
            }
            for tag in &entry.tags {
                for term in retrieval_terms(tag) {
                    *frequencies.entry(term).or_default() += 2.0;
                    length += 2.0;
                }
            }
            for term in frequencies.keys() {
                *document_frequency.entry(term.clone()).or_default() += 1;
            }
            documents.push(frequencies);
            lengths.push(length);
        }
        let average_length = if lengths.is_empty() {
            1.0
        } else {
            (lengths.iter().sum::<f32>() / lengths.len() as f32).max(1.0)
        };
        Ok(KnowledgeBase {
            entries,
            documents,
            lengths,
            average_length,
            document_frequency,
            config,
        })
    }

    /// Reads a JSON array of entries.
    pub fn from_json<R: Read>(reader: R) -> Result<KnowledgeBase, NluError> {
        let entries: Vec<FaqEntry> = serde_json::from_reader(reader)?;
        Self::new(entries)
    }

    pub fn entries(&self) -> &[FaqEntry] {
        &self.entries
    }

    pub fn get(&self, id: &str) -> Option<&FaqEntry> {
        self.entries.iter().find(|entry| entry.id == id)
    }

    /// The `limit` best entries scoring at least `min_score`, best first.
    pub fn search(&self, query: &str, limit: usize) -> Vec<Retrieved> {
        let mut query_terms = retrieval_terms(query);
        query_terms.sort();
        query_terms.dedup();
        let count = self.entries.len() as f32;
        let mut scored: Vec<(usize, f32)> = self
            .documents
            .iter()
            .enumerate()
            .map(|(index, frequencies)| {
                let length_ratio = self.lengths[index] / self.average_length;
                let score = query_terms
                    .iter()
                    .filter_map(|term| {
                        let frequency = *frequencies.get(term)?;
                        let containing = *self.document_frequency.get(term)? as f32;
                        let idf = ((count - containing + 0.5) / (containing + 0.5) + 1.0).ln();
                        let saturation = frequency * (self.config.k1 + 1.0)
                            / (frequency
                                + self.config.k1
                                    * (1.0 - self.config.b + self.config.b * length_ratio));
                        Some(idf * saturation)
                    })
                    .sum::<f32>();
                (index, score)
            })
            .filter(|(_, score)| *score >= self.config.min_score)
            .collect();
        scored.sort_by(|left, right| right.1.total_cmp(&left.1).then(left.0.cmp(&right.0)));
        scored.truncate(limit);
        scored
            .into_iter()
            .map(|(index, score)| Retrieved {
                entry: self.entries[index].clone(),
                score,
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_entries() -> Vec<FaqEntry> {
        let entry = |id: &str, question: &str, answer: &str, tags: &[&str]| FaqEntry {
            id: id.to_owned(),
            question: question.to_owned(),
            answer: answer.to_owned(),
            tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
        };
        vec![
            entry(
                "refund-delay",
                "How long does a refund take?",
                "Refunds reach your card within 5 business days after we receive the item.",
                &["refund", "remboursement"],
            ),
            entry(
                "baggage",
                "Combien de bagages puis-je emporter en cabine ?",
                "Un bagage cabine de 10 kg et un accessoire sont inclus dans tous les billets.",
                &["bagage", "baggage"],
            ),
            entry(
                "opening-hours",
                "What are your opening hours?",
                "Our stores are open Monday to Saturday, 9:00 to 19:00.",
                &["hours", "horaires"],
            ),
        ]
    }

    #[test]
    fn finds_entries_across_accents_plurals_and_languages() -> Result<(), NluError> {
        let base = KnowledgeBase::new(sample_entries())?;
        let found = base.search("when will I get my refunds?", 3);
        assert_eq!(
            found.first().map(|hit| hit.entry.id.as_str()),
            Some("refund-delay")
        );
        let found = base.search("BAGAGES cabine autorisés", 3);
        assert_eq!(
            found.first().map(|hit| hit.entry.id.as_str()),
            Some("baggage")
        );
        let found = base.search("délai de remboursement", 3);
        assert_eq!(
            found.first().map(|hit| hit.entry.id.as_str()),
            Some("refund-delay")
        );
        Ok(())
    }

    #[test]
    fn unrelated_or_stopword_only_queries_find_nothing() -> Result<(), NluError> {
        let base = KnowledgeBase::new(sample_entries())?;
        assert!(base.search("what is the capital of Peru", 3).is_empty());
        assert!(base.search("comment est-ce que je", 3).is_empty());
        assert!(base.search("", 3).is_empty());
        Ok(())
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let mut entries = sample_entries();
        entries.push(entries[0].clone());
        assert!(KnowledgeBase::new(entries).is_err());
    }
}
