//! The rule-based reading of a message: VADER-style lexicon scoring in French and English,
//! and the emotion cues. Its compound score was the sentiment label until the trained model
//! ([`super::model`]); its parts are now that model's dense features and its cues still
//! give the emotions.
//!
//! Lexicons: the VADER lexicon (English, MIT) and the French adjective lexicon of
//! textblob-fr / Pattern (PDDL), both shipped under `data/lexicons/`, plus a short
//! hand-written list of customer-service words that neither lexicon covers ("arnaque",
//! "remboursez", "still waiting"). The rules follow VADER's: intensifiers, negation
//! ("not", "never", "ne … pas", "jamais"), "but"/"mais" shifting weight to the second half,
//! CAPITALS, repeated "!" and emoji.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::{Emotions, SentimentLabel};
use crate::text::fold;

const VADER_LEXICON: &str = include_str!("../../../../data/lexicons/vader_en.tsv");
const FRENCH_LEXICON: &str = include_str!("../../../../data/lexicons/fr_adjectives.tsv");

/// Customer-service words (accent-folded) with a VADER-scale valence; they override both
/// lexicons because those were built from reviews and tweets, not support chats.
const CHAT_LEXICON: &[(&str, f32)] = &[
    // French
    ("merci", 1.5),
    ("super", 2.0),
    ("genial", 2.5),
    ("parfait", 2.5),
    ("top", 2.0),
    ("bravo", 2.5),
    ("excellent", 3.0),
    ("content", 1.8),
    ("contente", 1.8),
    ("ravi", 2.5),
    ("ravie", 2.5),
    ("satisfait", 1.8),
    ("satisfaite", 1.8),
    ("rapide", 1.2),
    ("efficace", 1.8),
    ("adore", 2.5),
    ("aime", 1.5),
    ("cool", 1.3),
    ("nickel", 2.0),
    ("nul", -2.2),
    ("nulle", -2.2),
    ("arnaque", -3.0),
    ("escroc", -3.0),
    ("escrocs", -3.0),
    ("escroquerie", -3.0),
    ("voleurs", -2.8),
    ("honte", -2.5),
    ("honteux", -2.8),
    ("scandale", -2.8),
    ("scandaleux", -3.0),
    ("inadmissible", -3.0),
    ("inacceptable", -3.0),
    ("lamentable", -2.8),
    ("catastrophe", -2.5),
    ("catastrophique", -2.8),
    ("decu", -2.2),
    ("decue", -2.2),
    ("deception", -2.2),
    ("furieux", -3.0),
    ("furieuse", -3.0),
    ("enerve", -2.5),
    ("enervee", -2.5),
    ("colere", -2.5),
    ("marre", -2.3),
    ("probleme", -1.3),
    ("panne", -1.5),
    ("retard", -1.3),
    ("casse", -1.5),
    ("cassee", -1.5),
    ("bloque", -1.3),
    ("bloquee", -1.3),
    ("impossible", -1.5),
    ("pire", -2.5),
    ("horrible", -2.8),
    ("ridicule", -2.0),
    ("incompetent", -2.5),
    ("incompetents", -2.5),
    ("inutile", -2.0),
    ("dommage", -1.0),
    ("triste", -2.0),
    ("inquiet", -1.5),
    ("inquiete", -1.5),
    ("peur", -1.5),
    ("merde", -2.5),
    ("putain", -2.5),
    ("chiant", -2.0),
    ("galere", -2.0),
    ("abuse", -2.0),
    ("abusez", -2.2),
    ("fache", -2.3),
    ("bug", -1.3),
    ("erreur", -1.2),
    ("perdu", -1.0),
    ("perdue", -1.0),
    ("endommage", -1.8),
    ("mecontent", -2.3),
    ("mecontente", -2.3),
    ("plainte", -1.5),
    ("remboursez", -1.0),
    ("attente", -0.8),
    ("lent", -1.3),
    ("lente", -1.3),
    ("mal", -1.5),
    ("mauvais", -2.0),
    ("mauvaise", -2.0),
    ("bien", 1.3),
    ("bon", 1.3),
    ("bonne", 1.3),
    ("aide", 0.5),
    ("stresse", -1.8),
    ("stressee", -1.8),
    ("angoisse", -2.0),
    ("grave", -1.5),
    // English
    ("scam", -3.0),
    ("scammed", -3.0),
    ("broken", -1.5),
    ("late", -1.0),
    ("delayed", -1.2),
    ("unacceptable", -2.8),
    ("disgrace", -2.8),
    ("disgraceful", -3.0),
    ("incompetent", -2.5),
    ("useless", -2.2),
    ("ridiculous", -2.2),
    ("outrageous", -2.8),
    ("furious", -3.0),
    ("rude", -2.0),
    ("waste", -1.8),
    ("refund", -0.5),
    ("damaged", -1.8),
    ("worst", -3.0),
    ("thanks", 1.5),
    ("thank", 1.5),
    ("ok", 0.3),
    ("okay", 0.3),
    ("issue", -1.0),
    ("problem", -1.3),
    ("cancelled", -1.0),
    ("canceled", -1.0),
    ("lost", -1.2),
    ("stuck", -1.5),
    ("nobody", -0.8),
    ("charged", -0.5),
    ("error", -1.2),
    ("fix", 0.0),
    ("worried", -1.5),
    ("anxious", -1.8),
    ("please", 0.0),
    ("help", 0.0),
    ("pretty", 0.0),
    ("polite", 1.5),
    ("tasteless", -1.5),
    ("urgent", 0.0),
    ("stolen", -2.0),
    ("vole", -1.5),
    ("volee", -1.5),
    ("annule", -1.2),
    ("annulee", -1.2),
    ("pirate", -1.5),
];

/// Words that strengthen the next sentiment word.
const INTENSIFIERS: &[&str] = &[
    "very",
    "really",
    "so",
    "extremely",
    "totally",
    "absolutely",
    "completely",
    "super",
    "incredibly",
    "too",
    "most",
    "truly",
    "utterly",
    "tres",
    "vraiment",
    "trop",
    "tellement",
    "si",
    "completement",
    "totalement",
    "absolument",
    "hyper",
    "grave",
    "franchement",
    "particulierement",
    "extremement",
];

/// Words that soften the next sentiment word.
const DAMPENERS: &[&str] = &[
    "slightly",
    "somewhat",
    "kinda",
    "bit",
    "little",
    "barely",
    "hardly",
    "peu",
    "legerement",
    "plutot",
    "assez",
];

pub(crate) const NEGATORS: &[&str] = &[
    // "t" is what remains of "n't" once "can't" is split at the apostrophe.
    "not", "no", "never", "none", "nothing", "without", "t", "dont", "don", "doesn", "didn", "isn",
    "wasn", "aren", "weren", "cant", "cannot", "couldn", "wouldn", "shouldn", "haven", "hasn",
    "nor", "pas", "jamais", "rien", "aucun", "aucune", "sans", "ni", "guere",
];

/// Emoji and emoticons with a valence, and the emotion they show.
const EMOJI: &[(&str, f32, Option<EmotionKind>)] = &[
    ("😡", -3.0, Some(EmotionKind::Anger)),
    ("🤬", -3.5, Some(EmotionKind::Anger)),
    ("😠", -2.8, Some(EmotionKind::Anger)),
    ("😤", -2.2, Some(EmotionKind::Frustration)),
    ("🙄", -1.5, Some(EmotionKind::Frustration)),
    ("😒", -1.5, Some(EmotionKind::Frustration)),
    ("😢", -2.2, Some(EmotionKind::Sadness)),
    ("😭", -2.5, Some(EmotionKind::Sadness)),
    ("😞", -2.0, Some(EmotionKind::Sadness)),
    ("😔", -1.8, Some(EmotionKind::Sadness)),
    ("☹", -2.0, Some(EmotionKind::Sadness)),
    ("🙁", -1.8, Some(EmotionKind::Sadness)),
    ("😟", -1.8, Some(EmotionKind::Worry)),
    ("😰", -2.2, Some(EmotionKind::Worry)),
    ("😱", -2.2, Some(EmotionKind::Worry)),
    ("👎", -2.0, None),
    ("😀", 2.0, Some(EmotionKind::Joy)),
    ("😃", 2.0, Some(EmotionKind::Joy)),
    ("😄", 2.2, Some(EmotionKind::Joy)),
    ("😁", 2.0, Some(EmotionKind::Joy)),
    ("😊", 2.2, Some(EmotionKind::Joy)),
    ("🙂", 1.5, Some(EmotionKind::Joy)),
    ("😍", 2.8, Some(EmotionKind::Joy)),
    ("🥰", 2.8, Some(EmotionKind::Joy)),
    ("❤", 2.5, Some(EmotionKind::Joy)),
    ("👍", 1.8, None),
    ("🙏", 1.5, None),
    ("🎉", 2.5, Some(EmotionKind::Joy)),
    (":)", 1.8, Some(EmotionKind::Joy)),
    (":-)", 1.8, Some(EmotionKind::Joy)),
    (":D", 2.2, Some(EmotionKind::Joy)),
    (":(", -1.8, Some(EmotionKind::Sadness)),
    (":-(", -1.8, Some(EmotionKind::Sadness)),
    (":'(", -2.2, Some(EmotionKind::Sadness)),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EmotionKind {
    Anger,
    Frustration,
    Joy,
    Sadness,
    Worry,
}

/// Word cues (accent-folded) of each emotion. Multi-word cues are matched on the folded,
/// space-joined token sequence.
const EMOTION_CUES: &[(&str, EmotionKind)] = &[
    ("angry", EmotionKind::Anger),
    ("furious", EmotionKind::Anger),
    ("mad", EmotionKind::Anger),
    ("outraged", EmotionKind::Anger),
    ("pissed", EmotionKind::Anger),
    ("outrageous", EmotionKind::Anger),
    ("disgrace", EmotionKind::Anger),
    ("unacceptable", EmotionKind::Anger),
    ("scam", EmotionKind::Anger),
    ("wtf", EmotionKind::Anger),
    ("ridiculous", EmotionKind::Anger),
    ("incompetent", EmotionKind::Anger),
    ("furieux", EmotionKind::Anger),
    ("furieuse", EmotionKind::Anger),
    ("colere", EmotionKind::Anger),
    ("enerve", EmotionKind::Anger),
    ("enervee", EmotionKind::Anger),
    ("scandaleux", EmotionKind::Anger),
    ("scandale", EmotionKind::Anger),
    ("inadmissible", EmotionKind::Anger),
    ("inacceptable", EmotionKind::Anger),
    ("honteux", EmotionKind::Anger),
    ("honte", EmotionKind::Anger),
    ("arnaque", EmotionKind::Anger),
    ("escroc", EmotionKind::Anger),
    ("escrocs", EmotionKind::Anger),
    ("voleurs", EmotionKind::Anger),
    ("merde", EmotionKind::Anger),
    ("putain", EmotionKind::Anger),
    ("incompetents", EmotionKind::Anger),
    ("fache", EmotionKind::Anger),
    ("still", EmotionKind::Frustration),
    ("again", EmotionKind::Frustration),
    ("still waiting", EmotionKind::Frustration),
    ("no answer", EmotionKind::Frustration),
    ("no response", EmotionKind::Frustration),
    ("no reply", EmotionKind::Frustration),
    ("nobody", EmotionKind::Frustration),
    ("third time", EmotionKind::Frustration),
    ("several times", EmotionKind::Frustration),
    ("how many times", EmotionKind::Frustration),
    ("fed up", EmotionKind::Frustration),
    ("tired of", EmotionKind::Frustration),
    ("waiting for", EmotionKind::Frustration),
    ("for weeks", EmotionKind::Frustration),
    ("for days", EmotionKind::Frustration),
    ("toujours pas", EmotionKind::Frustration),
    ("encore", EmotionKind::Frustration),
    ("j attends", EmotionKind::Frustration),
    ("aucune reponse", EmotionKind::Frustration),
    ("personne ne", EmotionKind::Frustration),
    ("plusieurs fois", EmotionKind::Frustration),
    ("troisieme fois", EmotionKind::Frustration),
    ("combien de fois", EmotionKind::Frustration),
    ("marre", EmotionKind::Frustration),
    ("depuis des semaines", EmotionKind::Frustration),
    ("depuis des jours", EmotionKind::Frustration),
    ("ca fait", EmotionKind::Frustration),
    ("galere", EmotionKind::Frustration),
    ("ras le bol", EmotionKind::Frustration),
    ("happy", EmotionKind::Joy),
    ("great", EmotionKind::Joy),
    ("love", EmotionKind::Joy),
    ("awesome", EmotionKind::Joy),
    ("perfect", EmotionKind::Joy),
    ("thank", EmotionKind::Joy),
    ("thanks", EmotionKind::Joy),
    ("merci", EmotionKind::Joy),
    ("super", EmotionKind::Joy),
    ("genial", EmotionKind::Joy),
    ("parfait", EmotionKind::Joy),
    ("ravi", EmotionKind::Joy),
    ("ravie", EmotionKind::Joy),
    ("content", EmotionKind::Joy),
    ("sad", EmotionKind::Sadness),
    ("disappointed", EmotionKind::Sadness),
    ("disappointing", EmotionKind::Sadness),
    ("upset", EmotionKind::Sadness),
    ("triste", EmotionKind::Sadness),
    ("decu", EmotionKind::Sadness),
    ("decue", EmotionKind::Sadness),
    ("deception", EmotionKind::Sadness),
    ("worried", EmotionKind::Worry),
    ("scared", EmotionKind::Worry),
    ("afraid", EmotionKind::Worry),
    ("anxious", EmotionKind::Worry),
    ("panic", EmotionKind::Worry),
    ("stressed", EmotionKind::Worry),
    ("inquiet", EmotionKind::Worry),
    ("inquiete", EmotionKind::Worry),
    ("peur", EmotionKind::Worry),
    ("stresse", EmotionKind::Worry),
    ("stressee", EmotionKind::Worry),
    ("angoisse", EmotionKind::Worry),
    ("panique", EmotionKind::Worry),
];

fn lexicon() -> &'static HashMap<String, f32> {
    static LEXICON: OnceLock<HashMap<String, f32>> = OnceLock::new();
    LEXICON.get_or_init(|| {
        let mut entries = HashMap::with_capacity(12_000);
        // French adjectives range over [-1, 1]; VADER's scale is [-4, 4].
        for (file, scale) in [(FRENCH_LEXICON, 3.0f32), (VADER_LEXICON, 1.0f32)] {
            for line in file.lines().filter(|line| !line.starts_with('#')) {
                let mut columns = line.split('\t');
                if let (Some(word), Some(value)) = (columns.next(), columns.next())
                    && let Ok(value) = value.trim().parse::<f32>()
                    // Weak entries ("number" 0.3, "ouvert" 0.31) and one- or two-letter
                    // tokens ("l") flip neutral requests to a polarity; short chat messages
                    // have too few words to average that noise out.
                    && (value * scale).abs() >= 0.5
                    && word.chars().count() >= 3
                {
                    // English wins over French on shared spellings ("terrible", "excellent").
                    entries.insert(fold(word), value * scale);
                }
            }
        }
        for (word, value) in CHAT_LEXICON {
            entries.insert((*word).to_owned(), *value);
        }
        entries
    })
}

/// A word of the message: its folded form and whether it was written in capitals.
struct Word {
    folded: String,
    shouted: bool,
}

fn words_of(text: &str) -> Vec<Word> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .flat_map(|chunk| chunk.split('\''))
        .filter(|word| !word.is_empty())
        .map(|word| Word {
            folded: fold(word),
            shouted: word.chars().count() >= 2
                && word.chars().any(char::is_alphabetic)
                && word.chars().all(|c| !c.is_lowercase()),
        })
        .collect()
}

fn sign(value: f32) -> f32 {
    if value >= 0.0 { 1.0 } else { -1.0 }
}

/// What the rules read in a message: the compound score and the parts it came from.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Reading {
    /// VADER's compound score in [-1, 1].
    pub score: f32,
    /// Sum of the positive and of the negative word valences after the rules (≥ 0 both).
    pub positive: f32,
    pub negative: f32,
    /// Sentiment words read under a negation.
    pub negated: u8,
    /// A "but" / "mais" shifted the weight to the second half.
    pub contrast: bool,
    /// Words in capitals (when the whole message is not), and a whole message in capitals.
    pub shouted_words: u8,
    pub whole_message_shouted: bool,
    /// Number of `!` (at most 4) and of `?` when repeated (at most 4).
    pub exclamations: f32,
    pub repeated_questions: f32,
    /// Sum of the valences of emoji and emoticons, by sign (positive ≥ 0, negative ≥ 0).
    pub emoji_positive: f32,
    pub emoji_negative: f32,
    /// Emotion cues found, indexed by `EmotionKind as usize`.
    pub cues: [u8; 5],
}

impl Reading {
    /// The label the rules alone give (neutral between -0.05 and 0.05).
    pub fn label(&self) -> SentimentLabel {
        if self.score >= 0.05 {
            SentimentLabel::Positive
        } else if self.score <= -0.05 {
            SentimentLabel::Negative
        } else {
            SentimentLabel::Neutral
        }
    }

    pub fn cue(&self, kind: EmotionKind) -> f32 {
        f32::from(self.cues[kind as usize])
    }

    /// Emotion intensities of the message given its polarity `score` in [-1, 1] (the
    /// rules' own or the trained model's).
    pub fn emotions(&self, score: f32) -> Emotions {
        let negativity = (-score).max(0.0);
        let anger_cues = self.cue(EmotionKind::Anger);
        let anger = (0.45 * anger_cues
            + if self.whole_message_shouted {
                0.35
            } else {
                0.0
            }
            + if self.exclamations >= 2.0 && score < 0.0 {
                0.15
            } else {
                0.0
            }
            + if anger_cues > 0.0 {
                0.3 * negativity
            } else {
                0.0
            })
        .min(1.0);
        let frustration = (0.35 * self.cue(EmotionKind::Frustration)
            + if self.repeated_questions > 0.0 && score < 0.0 {
                0.15
            } else {
                0.0
            }
            + 0.3 * negativity
            + 0.3 * anger)
            .min(1.0);
        let joy = (0.4 * self.cue(EmotionKind::Joy) * if score > 0.0 { 1.0 } else { 0.3 }
            + 0.4 * score.max(0.0))
        .min(1.0);
        Emotions {
            anger,
            frustration,
            joy,
            sadness: (0.45 * self.cue(EmotionKind::Sadness) + 0.1 * negativity).min(1.0),
            worry: (0.45 * self.cue(EmotionKind::Worry)).min(1.0),
        }
    }
}

/// Reads one message with the lexicons and the rules.
pub(crate) fn read(text: &str) -> Reading {
    let lexicon = lexicon();
    let words = words_of(text);
    let shouted_count = words.iter().filter(|word| word.shouted).count();
    let alphabetic_count = words
        .iter()
        .filter(|word| word.folded.chars().any(char::is_alphabetic))
        .count();
    // A message written entirely in capitals is shouting; capitals then stop marking
    // emphasis on single words.
    let whole_message_shouted = alphabetic_count >= 2 && shouted_count * 10 >= alphabetic_count * 8;

    let mut reading = Reading {
        whole_message_shouted,
        ..Reading::default()
    };
    let mut valences: Vec<f32> = Vec::with_capacity(words.len());
    let contrast_at = words
        .iter()
        .rposition(|word| word.folded == "but" || word.folded == "mais");
    for (index, word) in words.iter().enumerate() {
        let Some(base) = lexicon.get(&word.folded).copied() else {
            valences.push(0.0);
            continue;
        };
        if base == 0.0 {
            valences.push(0.0);
            continue;
        }
        let mut valence = base;
        for (distance, previous) in words[..index].iter().rev().take(2).enumerate() {
            let scale = if distance == 0 { 1.0 } else { 0.95 };
            if INTENSIFIERS.contains(&previous.folded.as_str()) {
                valence += sign(valence) * 0.293 * scale;
            } else if DAMPENERS.contains(&previous.folded.as_str()) {
                valence -= sign(valence) * 0.293 * scale;
            }
        }
        if word.shouted && !whole_message_shouted {
            valence += sign(valence) * 0.733;
            reading.shouted_words = reading.shouted_words.saturating_add(1);
        }
        if is_negated(&words, index) {
            valence *= -0.74;
            reading.negated = reading.negated.saturating_add(1);
        }
        valences.push(valence);
    }
    apply_idioms(&words, &mut valences);
    if let Some(contrast) = contrast_at {
        reading.contrast = true;
        for (index, valence) in valences.iter_mut().enumerate() {
            *valence *= if index < contrast { 0.5 } else { 1.5 };
        }
    }
    reading.positive = valences.iter().filter(|value| **value > 0.0).sum();
    reading.negative = -valences.iter().filter(|value| **value < 0.0).sum::<f32>();
    let mut sum: f32 = valences.iter().sum();

    let mut emoji_emotions: Vec<EmotionKind> = Vec::new();
    for (symbol, valence, emotion) in EMOJI {
        let occurrences = text.matches(symbol).count().min(3);
        if occurrences > 0 {
            let total = valence * occurrences as f32;
            sum += total;
            if total > 0.0 {
                reading.emoji_positive += total;
            } else {
                reading.emoji_negative -= total;
            }
            if let Some(emotion) = emotion {
                emoji_emotions.push(*emotion);
            }
        }
    }

    let folded_joined = words
        .iter()
        .map(|word| word.folded.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let padded = format!(" {folded_joined} ");
    for (cue, emotion) in EMOTION_CUES {
        if padded.contains(&format!(" {cue} ")) {
            reading.cues[*emotion as usize] = reading.cues[*emotion as usize].saturating_add(1);
        }
    }
    for emotion in &emoji_emotions {
        reading.cues[*emotion as usize] = reading.cues[*emotion as usize].saturating_add(1);
    }
    // Frustration cues ("still", "toujours pas", "encore") are negative in support chats
    // even without a sentiment word.
    sum -= 0.8 * f32::from(reading.cues[EmotionKind::Frustration as usize].min(3));

    reading.exclamations = text.matches('!').count().min(4) as f32;
    reading.repeated_questions = if text.contains("??") {
        text.matches('?').count().min(4) as f32
    } else {
        0.0
    };
    if sum != 0.0 {
        sum += sign(sum) * (reading.exclamations * 0.292 + reading.repeated_questions * 0.18);
    }
    // A message entirely in capitals reads as shouting in a support chat, even when it
    // holds no opinion word ("WHERE IS MY PACKAGE").
    if whole_message_shouted && sum <= 0.0 {
        sum -= 1.5;
    }
    reading.score = sum / (sum * sum + 15.0).sqrt();
    reading
}

fn is_negated(words: &[Word], index: usize) -> bool {
    let window_start = index.saturating_sub(3);
    let previous = &words[window_start..index];
    previous.iter().enumerate().any(|(offset, word)| {
        let folded = word.folded.as_str();
        if folded == "plus" {
            // "ne … plus" negates; "plus rapide" alone means "faster".
            let position = window_start + offset;
            return words[position.saturating_sub(2)..position]
                .iter()
                .any(|earlier| earlier.folded == "ne" || earlier.folded == "n");
        }
        NEGATORS.contains(&folded)
    }) || words
        .get(index + 1)
        .is_some_and(|next| next.folded == "pas" || next.folded == "jamais")
        && words[index.saturating_sub(2)..index]
            .iter()
            .any(|earlier| earlier.folded == "ne" || earlier.folded == "n")
}

/// Fixed expressions whose meaning is not the sum of their words.
fn apply_idioms(words: &[Word], valences: &mut [f32]) {
    for index in 0..words.len().saturating_sub(1) {
        let pair = (
            words[index].folded.as_str(),
            words[index + 1].folded.as_str(),
        );
        let replacement = match pair {
            ("pas", "mal") | ("not", "bad") => Some(1.2),
            ("pas", "terrible") => Some(-1.5),
            ("en", "marre") => Some(-2.5),
            ("no", "problem") | ("pas", "probleme") | ("no", "worries") => Some(1.0),
            ("on", "time") | ("a", "l'heure") => Some(1.0),
            // "I would like…" / "I'd like…" is a request, not an opinion.
            ("would", "like") | ("d", "like") => Some(0.0),
            _ => None,
        };
        if let Some(value) = replacement {
            valences[index] = 0.0;
            valences[index + 1] = value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(text: &str) -> SentimentLabel {
        read(text).label()
    }

    fn sentiment(text: &str) -> super::super::Sentiment {
        let reading = read(text);
        super::super::Sentiment {
            label: reading.label(),
            score: reading.score,
            emotions: reading.emotions(reading.score),
        }
    }

    #[test]
    fn clear_cases_in_both_languages() {
        assert_eq!(
            label("Thank you so much, great service!"),
            SentimentLabel::Positive
        );
        assert_eq!(
            label("Merci beaucoup, service parfait"),
            SentimentLabel::Positive
        );
        assert_eq!(
            label("This is the worst service ever"),
            SentimentLabel::Negative
        );
        assert_eq!(
            label("C'est une arnaque, service lamentable"),
            SentimentLabel::Negative
        );
        assert_eq!(
            label("What time do you open on Sunday?"),
            SentimentLabel::Neutral
        );
        assert_eq!(label("Quelle est votre adresse ?"), SentimentLabel::Neutral);
    }

    #[test]
    fn negation_flips_polarity() {
        assert_eq!(
            label("I am happy with the delivery"),
            SentimentLabel::Positive
        );
        assert_eq!(
            label("I am not happy with the delivery"),
            SentimentLabel::Negative
        );
        assert_eq!(
            label("je suis content du service"),
            SentimentLabel::Positive
        );
        assert_eq!(
            label("je ne suis pas content du service"),
            SentimentLabel::Negative
        );
        assert_eq!(label("ce n'est jamais bien"), SentimentLabel::Negative);
    }

    #[test]
    fn intensifiers_capitals_and_exclamations_strengthen() {
        let plain = sentiment("this is bad").score;
        let intensified = sentiment("this is very bad").score;
        let shouted = sentiment("this is BAD!!!").score;
        assert!(intensified < plain, "{intensified} < {plain}");
        assert!(shouted < intensified, "{shouted} < {intensified}");
        assert!(sentiment("c'est vraiment nul").score < sentiment("c'est nul").score);
    }

    #[test]
    fn anger_and_frustration_are_detected() {
        let angry = sentiment("THIS IS A SCAM, I WANT MY MONEY BACK NOW!!!");
        assert!(angry.emotions.anger >= 0.5, "{angry:?}");
        let frustrated = sentiment("Toujours pas de réponse, ça fait trois fois que j'écris");
        assert!(frustrated.emotions.frustration >= 0.5, "{frustrated:?}");
        assert_eq!(frustrated.label, SentimentLabel::Negative);
        let calm = sentiment("Could you tell me my order status?");
        assert!(
            calm.emotions.anger < 0.2 && calm.emotions.frustration < 0.2,
            "{calm:?}"
        );
    }

    #[test]
    fn emoji_carry_sentiment() {
        assert_eq!(label("ma commande 😡"), SentimentLabel::Negative);
        assert_eq!(label("reçu 👍😊"), SentimentLabel::Positive);
        assert!(sentiment("😡😡").emotions.anger > 0.3);
    }

    #[test]
    fn but_gives_weight_to_the_second_half() {
        assert_eq!(
            label("The staff was nice but the food was horrible"),
            SentimentLabel::Negative
        );
        assert_eq!(
            label("Le début était nul mais au final c'est parfait"),
            SentimentLabel::Positive
        );
    }
}
