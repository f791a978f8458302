//! Urgency of an inbound message, from 0 (can wait) to 1 (act now), with the cues that
//! raised it, so that an agent sees why a conversation jumped the queue.
//!
//! Each cue has a weight and the cues combine as independent evidence
//! (`1 - Π(1 - weight)`): two weak cues make a medium urgency, and no number of cues goes
//! past 1.

use serde::{Deserialize, Serialize};

use crate::sentiment::Sentiment;
use crate::text::fold;

/// What the caller knows beyond the text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UrgencyContext {
    /// Messages the same customer sent in the last few minutes, this one included.
    pub recent_messages: u32,
    /// Intents the tenant declares urgent (for example `lost_card`), on top of the
    /// built-in ones (fraud, theft, emergencies, blocked access).
    #[serde(default)]
    pub urgent_intents: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Urgency {
    pub score: f32,
    /// `score >= 0.5`.
    pub urgent: bool,
    /// Machine-readable reasons, e.g. `keyword:urgent`, `deadline:today`,
    /// `travel:imminent`, `risk:fraud`, `emotion:anger`, `repeated_messages:4`.
    pub cues: Vec<String>,
}

/// Phrases (accent-folded, space-separated tokens) and the cue they raise.
const PHRASE_CUES: &[(&str, &str, f32)] = &[
    ("urgent", "keyword:urgent", 0.55),
    ("urgently", "keyword:urgent", 0.55),
    ("urgence", "keyword:urgent", 0.55),
    ("urgente", "keyword:urgent", 0.55),
    ("emergency", "keyword:emergency", 0.6),
    ("asap", "keyword:asap", 0.5),
    ("as soon as possible", "keyword:asap", 0.5),
    ("au plus vite", "keyword:asap", 0.5),
    ("des que possible", "keyword:asap", 0.45),
    ("au plus tot", "keyword:asap", 0.45),
    ("immediatement", "keyword:immediately", 0.5),
    ("immediately", "keyword:immediately", 0.5),
    ("right now", "keyword:immediately", 0.45),
    ("right away", "keyword:immediately", 0.45),
    ("tout de suite", "keyword:immediately", 0.45),
    ("sans attendre", "keyword:immediately", 0.4),
    ("vite", "keyword:quickly", 0.25),
    ("quickly", "keyword:quickly", 0.25),
    ("today", "deadline:today", 0.3),
    ("tonight", "deadline:today", 0.3),
    ("this morning", "deadline:today", 0.3),
    ("this afternoon", "deadline:today", 0.3),
    ("this evening", "deadline:today", 0.3),
    ("aujourd hui", "deadline:today", 0.3),
    ("ce soir", "deadline:today", 0.3),
    ("ce matin", "deadline:today", 0.3),
    ("cet apres midi", "deadline:today", 0.3),
    ("deadline", "deadline:explicit", 0.35),
    ("date limite", "deadline:explicit", 0.35),
    ("before noon", "deadline:explicit", 0.3),
    ("avant midi", "deadline:explicit", 0.3),
    ("by tomorrow", "deadline:tomorrow", 0.25),
    ("tomorrow morning", "deadline:tomorrow", 0.3),
    ("demain matin", "deadline:tomorrow", 0.3),
    ("d ici demain", "deadline:tomorrow", 0.25),
    ("avant demain", "deadline:tomorrow", 0.25),
    ("fraud", "risk:fraud", 0.5),
    ("fraudulent", "risk:fraud", 0.5),
    ("fraude", "risk:fraud", 0.5),
    ("frauduleux", "risk:fraud", 0.5),
    ("unauthorized", "risk:fraud", 0.45),
    ("unauthorised", "risk:fraud", 0.45),
    ("non autorise", "risk:fraud", 0.45),
    ("je n ai pas fait", "risk:fraud", 0.3),
    ("stolen", "risk:theft", 0.5),
    ("vole", "risk:theft", 0.4),
    ("volee", "risk:theft", 0.4),
    ("hacked", "risk:account_takeover", 0.5),
    ("pirate", "risk:account_takeover", 0.5),
    ("locked out", "risk:blocked_access", 0.4),
    ("can t access", "risk:blocked_access", 0.35),
    ("cannot access", "risk:blocked_access", 0.35),
    ("can t log in", "risk:blocked_access", 0.35),
    ("bloque", "risk:blocked_access", 0.35),
    ("bloquee", "risk:blocked_access", 0.35),
    ("blocked", "risk:blocked_access", 0.35),
    ("plus acces", "risk:blocked_access", 0.35),
    ("lost my card", "risk:lost_card", 0.45),
    ("carte perdue", "risk:lost_card", 0.45),
    ("perdu ma carte", "risk:lost_card", 0.45),
    ("charged twice", "risk:double_charge", 0.35),
    ("debite deux fois", "risk:double_charge", 0.35),
    ("preleve deux fois", "risk:double_charge", 0.35),
    ("outage", "risk:outage", 0.4),
    ("panne", "risk:outage", 0.3),
    ("ne fonctionne plus", "risk:outage", 0.25),
    ("stopped working", "risk:outage", 0.25),
    ("hospital", "safety:health", 0.5),
    ("hopital", "safety:health", 0.5),
    ("medical", "safety:health", 0.4),
    ("medicament", "safety:health", 0.35),
    ("medication", "safety:health", 0.35),
    ("medicaments", "safety:health", 0.35),
    ("medications", "safety:health", 0.35),
    ("medicine", "safety:health", 0.35),
    ("danger", "safety:danger", 0.5),
    ("dangerous", "safety:danger", 0.5),
    ("dangereux", "safety:danger", 0.5),
    ("fire", "safety:danger", 0.35),
    ("gas leak", "safety:danger", 0.6),
    ("fuite de gaz", "safety:danger", 0.6),
];

/// Travel words that, with a same-day or within-hours time, mean a departure is imminent.
const TRAVEL_WORDS: &[&str] = &[
    "flight",
    "plane",
    "boarding",
    "train",
    "departure",
    "gate",
    "vol",
    "avion",
    "embarquement",
    "depart",
    "decolle",
    "leaves",
    "part",
];
const SOON_MARKERS: &[&str] = &[
    "today",
    "tonight",
    "aujourd",
    "ce soir",
    "ce matin",
    "in an hour",
    "dans une heure",
];

/// Intent name fragments that are urgent whatever the wording.
const URGENT_INTENT_FRAGMENTS: &[&str] = &[
    "fraud",
    "stolen",
    "theft",
    "lost_card",
    "report_lost",
    "emergency",
    "urgent",
    "blocked",
    "freeze",
    "hack",
    "outage",
    "damaged_card",
];

/// Scores the urgency of `text` given its sentiment, its intent (if classified) and the
/// number of recent messages of the same customer.
pub fn urgency(
    text: &str,
    sentiment: &Sentiment,
    intent: Option<&str>,
    context: &UrgencyContext,
) -> Urgency {
    // Every number becomes "0" and punctuation a space, so that phrases match on words.
    let mut folded = String::with_capacity(text.len());
    for c in fold(text).chars() {
        if c.is_ascii_digit() {
            if !folded.ends_with('0') {
                folded.push('0');
            }
        } else if c.is_alphanumeric() {
            folded.push(c);
        } else {
            folded.push(' ');
        }
    }
    let normalised = format!(
        " {} ",
        folded.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    let contains = |phrase: &str| normalised.contains(&format!(" {phrase} "));
    let mut cues: Vec<(String, f32)> = Vec::new();
    let mut add = |cue: &str, weight: f32| {
        if let Some(existing) = cues.iter_mut().find(|(name, _)| name == cue) {
            existing.1 = existing.1.max(weight);
        } else {
            cues.push((cue.to_owned(), weight));
        }
    };

    for (phrase, cue, weight) in PHRASE_CUES {
        if contains(phrase) {
            add(cue, *weight);
        }
    }
    // "in 2 hours", "dans 30 minutes", "à 14h": a time within hours.
    let within_hours = [
        "in 0 hour",
        "in 0 hours",
        "in 0 minutes",
        "in 0 min",
        "dans 0 heure",
        "dans 0 heures",
        "dans 0 minutes",
        "dans 0 min",
        "dans 0h",
        "dans 0 h",
        "in 0h",
    ]
    .iter()
    .any(|phrase| contains(phrase))
        || normalised.contains(" a 0h");
    if within_hours {
        add("deadline:within_hours", 0.35);
    }
    let mentions_travel = TRAVEL_WORDS.iter().any(|word| contains(word));
    let soon = within_hours || SOON_MARKERS.iter().any(|marker| contains(marker));
    if mentions_travel && soon {
        add("travel:imminent", 0.45);
    }
    let shouting = text.chars().filter(|c| c.is_uppercase()).count() >= 8
        && text.chars().filter(|c| c.is_lowercase()).count() * 4
            < text.chars().filter(|c| c.is_uppercase()).count();
    if shouting || text.contains("!!!") {
        add("tone:emphatic", 0.15);
    }
    if sentiment.emotions.anger >= 0.5 {
        add("emotion:anger", 0.3);
    }
    if sentiment.emotions.frustration >= 0.5 {
        add("emotion:frustration", 0.15);
    }
    if sentiment.emotions.worry >= 0.4 {
        add("emotion:worry", 0.2);
    }
    if sentiment.score <= -0.6 {
        add("sentiment:very_negative", 0.1);
    }
    // Three messages in a few minutes is impatience; four or more is a customer who
    // feels ignored, which is urgent on its own.
    if context.recent_messages >= 3 {
        let weight = match context.recent_messages {
            3 => 0.3,
            4 => 0.5,
            _ => 0.6,
        };
        add(
            &format!("repeated_messages:{}", context.recent_messages),
            weight,
        );
    }
    if let Some(intent) = intent {
        let lowered = intent.to_lowercase();
        let urgent_intent = context
            .urgent_intents
            .iter()
            .any(|urgent| urgent.eq_ignore_ascii_case(intent))
            || URGENT_INTENT_FRAGMENTS
                .iter()
                .any(|fragment| lowered.contains(fragment));
        if urgent_intent {
            add(&format!("intent:{intent}"), 0.5);
        }
    }

    let remaining = cues
        .iter()
        .fold(1.0f32, |remaining, (_, weight)| remaining * (1.0 - weight));
    let score = ((1.0 - remaining) * 1000.0).round() / 1000.0;
    cues.sort_by(|left, right| right.1.total_cmp(&left.1));
    Urgency {
        score,
        urgent: score >= 0.5,
        cues: cues.into_iter().map(|(name, _)| name).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sentiment::sentiment;

    fn score(text: &str, recent_messages: u32) -> Urgency {
        urgency(
            text,
            &sentiment(text),
            None,
            &UrgencyContext {
                recent_messages,
                urgent_intents: Vec::new(),
            },
        )
    }

    #[test]
    fn routine_questions_are_not_urgent() {
        for text in [
            "What are your opening hours?",
            "Quels sont vos horaires d'ouverture ?",
            "Can I change my delivery address for next week?",
            "Merci pour votre aide, bonne journée",
        ] {
            let result = score(text, 1);
            assert!(!result.urgent && result.score < 0.3, "{text}: {result:?}");
        }
    }

    #[test]
    fn explicit_urgency_in_french_and_english() {
        let english = score("URGENT: I need my boarding pass asap", 1);
        assert!(english.urgent, "{english:?}");
        assert!(english.cues.contains(&"keyword:urgent".to_owned()));
        let french = score("Il me faut ma facture immédiatement, c'est urgent", 1);
        assert!(french.urgent, "{french:?}");
        assert!(french.cues.contains(&"keyword:immediately".to_owned()));
    }

    #[test]
    fn a_flight_leaving_today_is_urgent() {
        let english = score("my flight leaves in 2 hours and I still have no ticket", 1);
        assert!(english.urgent, "{english:?}");
        assert!(english.cues.contains(&"travel:imminent".to_owned()));
        let french = score("mon vol part aujourd'hui et je n'ai pas reçu mon billet", 1);
        assert!(french.urgent, "{french:?}");
        assert!(french.cues.contains(&"travel:imminent".to_owned()));
    }

    #[test]
    fn fraud_and_repeated_messages_raise_urgency() {
        let fraud = score("There is a fraudulent payment on my account", 1);
        assert!(fraud.urgent, "{fraud:?}");
        let once = score("hello? is anyone there", 1);
        let many = score("hello? is anyone there", 6);
        assert!(many.score > once.score + 0.2, "{once:?} vs {many:?}");
        assert!(
            many.cues
                .iter()
                .any(|cue| cue.starts_with("repeated_messages:"))
        );
    }

    #[test]
    fn urgent_intents_count_built_in_and_from_the_tenant() {
        let text = "I would like some help with my card";
        let neutral = sentiment(text);
        let context = UrgencyContext {
            recent_messages: 1,
            urgent_intents: vec!["card_swallowed".to_owned()],
        };
        assert!(urgency(text, &neutral, Some("report_fraud"), &context).urgent);
        assert!(urgency(text, &neutral, Some("card_swallowed"), &context).urgent);
        assert!(!urgency(text, &neutral, Some("card_info"), &context).urgent);
    }
}
