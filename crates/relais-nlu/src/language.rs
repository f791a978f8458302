//! Language identification for short chat messages.
//!
//! Chat messages are often three or four words, too short for character n-gram profiles
//! alone. The detector therefore scores function words (articles, pronouns, auxiliaries,
//! chat words such as "svp" or "thx"), which almost every message contains, and adds
//! orthographic cues (letters with diacritics, typical word endings). A word shared by
//! several languages ("de", "a", "in") counts for each of them, divided by how many share
//! it. When the evidence is thin or two languages are too close, the answer is `unknown`:
//! a wrong language is worse than none for routing to an agent.

use serde::{Deserialize, Serialize};

use crate::text::{lower, tokens};

/// A language the detector can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Fr,
    En,
    Es,
    De,
    It,
    Pt,
    Nl,
    Unknown,
}

impl Language {
    /// ISO 639-1 code, or "unknown".
    pub fn code(self) -> &'static str {
        match self {
            Language::Fr => "fr",
            Language::En => "en",
            Language::Es => "es",
            Language::De => "de",
            Language::It => "it",
            Language::Pt => "pt",
            Language::Nl => "nl",
            Language::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.code())
    }
}

/// The detected language with a confidence in [0, 1] (share of the evidence that went to
/// the winning language).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LanguageGuess {
    pub language: Language,
    pub confidence: f32,
}

const CANDIDATES: [Language; 7] = [
    Language::Fr,
    Language::En,
    Language::Es,
    Language::De,
    Language::It,
    Language::Pt,
    Language::Nl,
];

/// Frequent function words and chat words per language (lower-case, with accents).
fn function_words(language: Language) -> &'static [&'static str] {
    match language {
        Language::Fr => &[
            "le",
            "la",
            "les",
            "un",
            "une",
            "des",
            "du",
            "de",
            "et",
            "est",
            "je",
            "j",
            "tu",
            "il",
            "elle",
            "nous",
            "vous",
            "ils",
            "on",
            "ne",
            "pas",
            "plus",
            "jamais",
            "rien",
            "que",
            "qui",
            "quoi",
            "pour",
            "dans",
            "avec",
            "sur",
            "mon",
            "ma",
            "mes",
            "ton",
            "votre",
            "vos",
            "notre",
            "ce",
            "cette",
            "ces",
            "c",
            "l",
            "d",
            "qu",
            "n",
            "m",
            "s",
            "t",
            "au",
            "aux",
            "ai",
            "suis",
            "être",
            "avoir",
            "fait",
            "faire",
            "mais",
            "ou",
            "où",
            "très",
            "bien",
            "merci",
            "bonjour",
            "bonsoir",
            "salut",
            "svp",
            "stp",
            "oui",
            "non",
            "comment",
            "pourquoi",
            "quand",
            "encore",
            "toujours",
            "déjà",
            "aujourd",
            "hui",
            "demain",
            "hier",
            "moi",
            "toi",
            "peux",
            "pouvez",
            "veux",
            "voudrais",
            "mon",
            "son",
            "sa",
            "ses",
            "leur",
            "été",
            "avez",
            "sont",
            "était",
            "ça",
            "cela",
            "alors",
            "donc",
            "car",
            "parce",
            "si",
            "y",
            "en",
            "par",
            "chez",
            "bjr",
            "slt",
            "mdr",
            "vol",
            "commande",
            "colis",
            "aide",
            "besoin",
            "problème",
            "toujours",
        ],
        Language::En => &[
            "the",
            "a",
            "an",
            "and",
            "is",
            "are",
            "was",
            "were",
            "i",
            "you",
            "he",
            "she",
            "it",
            "we",
            "they",
            "my",
            "your",
            "our",
            "their",
            "me",
            "this",
            "that",
            "of",
            "to",
            "in",
            "on",
            "for",
            "with",
            "not",
            "no",
            "yes",
            "do",
            "does",
            "did",
            "don",
            "can",
            "could",
            "would",
            "will",
            "have",
            "has",
            "had",
            "be",
            "been",
            "what",
            "why",
            "how",
            "when",
            "where",
            "who",
            "please",
            "thanks",
            "thank",
            "hi",
            "hello",
            "hey",
            "pls",
            "plz",
            "thx",
            "still",
            "again",
            "today",
            "tomorrow",
            "yesterday",
            "just",
            "about",
            "from",
            "at",
            "by",
            "but",
            "or",
            "if",
            "so",
            "there",
            "here",
            "get",
            "got",
            "need",
            "want",
            "order",
            "help",
            "s",
            "m",
            "t",
            "ll",
            "ve",
            "re",
            "im",
            "dont",
            "cant",
            "its",
            "any",
            "some",
            "all",
            "up",
            "out",
            "now",
            "asap",
            "flight",
            "refund",
        ],
        Language::Es => &[
            "el", "la", "los", "las", "un", "una", "y", "es", "son", "yo", "tú", "usted", "mi",
            "mis", "su", "que", "qué", "de", "del", "en", "con", "por", "para", "no", "sí", "pero",
            "como", "cómo", "muy", "gracias", "hola", "buenos", "días", "está", "estoy", "tengo",
            "quiero", "necesito", "puedo", "hoy", "mañana", "ayer", "todavía", "aún", "pedido",
            "ayuda", "lo", "le", "al", "se", "porque", "cuando", "dónde",
        ],
        Language::De => &[
            "der",
            "die",
            "das",
            "ein",
            "eine",
            "und",
            "ist",
            "sind",
            "ich",
            "du",
            "er",
            "sie",
            "es",
            "wir",
            "ihr",
            "mein",
            "meine",
            "nicht",
            "kein",
            "keine",
            "mit",
            "für",
            "auf",
            "zu",
            "von",
            "den",
            "dem",
            "bitte",
            "danke",
            "hallo",
            "guten",
            "tag",
            "noch",
            "immer",
            "heute",
            "morgen",
            "habe",
            "hat",
            "haben",
            "kann",
            "können",
            "wie",
            "was",
            "warum",
            "wo",
            "wann",
            "aber",
            "oder",
            "auch",
            "schon",
            "bestellung",
            "hilfe",
        ],
        Language::It => &[
            "il",
            "lo",
            "la",
            "gli",
            "le",
            "un",
            "una",
            "e",
            "è",
            "sono",
            "io",
            "tu",
            "lui",
            "lei",
            "noi",
            "voi",
            "mio",
            "mia",
            "non",
            "che",
            "di",
            "del",
            "della",
            "per",
            "con",
            "su",
            "ma",
            "come",
            "perché",
            "grazie",
            "ciao",
            "buongiorno",
            "ancora",
            "sempre",
            "oggi",
            "domani",
            "ieri",
            "ho",
            "ha",
            "hanno",
            "posso",
            "voglio",
            "ordine",
            "aiuto",
            "questo",
            "questa",
            "anche",
            "già",
            "molto",
        ],
        Language::Pt => &[
            "o", "a", "os", "as", "um", "uma", "e", "é", "são", "eu", "você", "meu", "minha",
            "não", "que", "de", "do", "da", "dos", "das", "em", "no", "na", "com", "por", "para",
            "mas", "como", "obrigado", "obrigada", "olá", "oi", "bom", "dia", "ainda", "sempre",
            "hoje", "amanhã", "ontem", "tenho", "quero", "preciso", "posso", "pedido", "ajuda",
            "isso", "este", "esta", "também", "já", "muito", "estou",
        ],
        Language::Nl => &[
            "de",
            "het",
            "een",
            "en",
            "is",
            "zijn",
            "ik",
            "jij",
            "je",
            "u",
            "hij",
            "zij",
            "wij",
            "mijn",
            "niet",
            "geen",
            "met",
            "voor",
            "op",
            "te",
            "van",
            "aan",
            "dat",
            "dit",
            "wat",
            "waarom",
            "hoe",
            "wanneer",
            "waar",
            "maar",
            "of",
            "ook",
            "al",
            "nog",
            "altijd",
            "vandaag",
            "morgen",
            "gisteren",
            "heb",
            "heeft",
            "hebben",
            "kan",
            "kunnen",
            "wil",
            "graag",
            "bedankt",
            "dank",
            "hallo",
            "hoi",
            "alstublieft",
            "bestelling",
            "hulp",
        ],
        Language::Unknown => &[],
    }
}

/// Letters that almost only one candidate language uses, with the evidence they carry.
fn letter_cues(letter: char) -> &'static [(Language, f32)] {
    match letter {
        'è' | 'ê' | 'ù' | 'û' | 'œ' | 'ë' | 'î' | 'ï' | 'â' => &[(Language::Fr, 0.6)],
        'é' => &[
            (Language::Fr, 0.4),
            (Language::Es, 0.1),
            (Language::Pt, 0.1),
        ],
        'à' => &[(Language::Fr, 0.4), (Language::It, 0.2)],
        'ç' => &[(Language::Fr, 0.5), (Language::Pt, 0.3)],
        'ñ' | '¿' | '¡' => &[(Language::Es, 0.8)],
        'á' | 'í' | 'ó' | 'ú' => &[(Language::Es, 0.3), (Language::Pt, 0.3)],
        'ã' | 'õ' => &[(Language::Pt, 0.8)],
        'ß' | 'ä' | 'ö' | 'ü' => &[(Language::De, 0.8)],
        'ì' | 'ò' => &[(Language::It, 0.6)],
        _ => &[],
    }
}

/// Word endings typical of one language, checked on words that are not function words.
fn ending_cues(word: &str) -> Option<(Language, f32)> {
    const ENDINGS: &[(&str, Language, f32)] = &[
        ("ing", Language::En, 0.5),
        ("ght", Language::En, 0.4),
        ("ly", Language::En, 0.3),
        ("ed", Language::En, 0.2),
        ("eau", Language::Fr, 0.5),
        ("eaux", Language::Fr, 0.5),
        ("aient", Language::Fr, 0.5),
        ("ais", Language::Fr, 0.3),
        ("ait", Language::Fr, 0.3),
        ("ez", Language::Fr, 0.3),
        ("eux", Language::Fr, 0.4),
        ("ée", Language::Fr, 0.5),
        ("ción", Language::Es, 0.6),
        ("ado", Language::Es, 0.2),
        ("ção", Language::Pt, 0.8),
        ("ung", Language::De, 0.5),
        ("lich", Language::De, 0.5),
        ("zione", Language::It, 0.6),
        ("ij", Language::Nl, 0.4),
    ];
    ENDINGS
        .iter()
        .find(|(ending, _, _)| word.len() > ending.len() + 1 && word.ends_with(ending))
        .map(|(_, language, weight)| (*language, *weight))
}

/// Detects the language of a short message; `Language::Unknown` when the text is too short
/// or ambiguous.
pub fn detect_language(text: &str) -> Language {
    detect_language_scored(text).language
}

/// Same as [`detect_language`], with the share of evidence that went to the winner.
pub fn detect_language_scored(text: &str) -> LanguageGuess {
    let lowered = lower(text);
    let mut scores = [0.0f32; CANDIDATES.len()];
    for word in tokens(&lowered) {
        let sharing: Vec<usize> = CANDIDATES
            .iter()
            .enumerate()
            .filter(|(_, language)| function_words(**language).contains(&word))
            .map(|(index, _)| index)
            .collect();
        if sharing.is_empty() {
            if let Some((language, weight)) = ending_cues(word) {
                scores[index_of(language)] += weight;
            }
        } else {
            let share = 1.0 / sharing.len() as f32;
            for index in sharing {
                scores[index] += share;
            }
        }
    }
    for letter in lowered.chars() {
        for (language, weight) in letter_cues(letter) {
            scores[index_of(*language)] += weight;
        }
    }
    if lowered.contains("aujourd'hui") {
        scores[index_of(Language::Fr)] += 1.0;
    }

    let total: f32 = scores.iter().sum();
    let mut ranked: Vec<(usize, f32)> = scores.iter().copied().enumerate().collect();
    ranked.sort_by(|left, right| right.1.total_cmp(&left.1));
    let (best_index, best) = ranked[0];
    let second = ranked[1].1;
    // One full function word of evidence is the least we accept, and the winner must lead
    // clearly: "ok" or "no" alone stay unknown.
    if best < 1.0 || best < second * 1.5 + 0.25 {
        return LanguageGuess {
            language: Language::Unknown,
            confidence: 0.0,
        };
    }
    LanguageGuess {
        language: CANDIDATES[best_index],
        confidence: if total > 0.0 { best / total } else { 0.0 },
    }
}

fn index_of(language: Language) -> usize {
    CANDIDATES
        .iter()
        .position(|candidate| *candidate == language)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn french_chat_messages_are_french() {
        for text in [
            "Bonjour, je n'ai toujours pas reçu mon colis",
            "mon vol part dans 2 heures et je n'ai pas ma carte d'embarquement",
            "c'est inadmissible, ça fait trois fois que j'appelle",
            "Est-ce que vous livrez le samedi ?",
            "merci beaucoup pour votre aide",
            "je veux annuler ma commande",
            "Pouvez-vous m'aider svp",
            "où est mon remboursement",
        ] {
            assert_eq!(detect_language(text), Language::Fr, "{text}");
        }
    }

    #[test]
    fn english_chat_messages_are_english() {
        for text in [
            "Hi, I still haven't received my parcel",
            "my flight leaves in 2 hours and I have no boarding pass",
            "this is ridiculous, I've called three times",
            "Do you deliver on Saturdays?",
            "thanks a lot for your help",
            "I want to cancel my order",
            "can you help me please",
            "where is my refund",
        ] {
            assert_eq!(detect_language(text), Language::En, "{text}");
        }
    }

    #[test]
    fn other_supported_languages_are_recognised() {
        assert_eq!(
            detect_language("Hola, ¿dónde está mi pedido? Gracias"),
            Language::Es
        );
        assert_eq!(
            detect_language("Hallo, wo ist meine Bestellung? Danke"),
            Language::De
        );
        assert_eq!(
            detect_language("Ciao, dov'è il mio ordine? Grazie mille"),
            Language::It
        );
        assert_eq!(
            detect_language("Olá, ainda não recebi o meu pedido, obrigado"),
            Language::Pt
        );
        assert_eq!(
            detect_language("Hallo, waar is mijn bestelling? Bedankt"),
            Language::Nl
        );
    }

    #[test]
    fn too_short_or_meaningless_text_is_unknown() {
        for text in ["ok", "", "12345", "👍", "?!", "xyz qwv"] {
            assert_eq!(detect_language(text), Language::Unknown, "{text:?}");
        }
    }

    #[test]
    fn serialises_as_iso_code() -> Result<(), serde_json::Error> {
        assert_eq!(serde_json::to_string(&Language::Fr)?, "\"fr\"");
        assert_eq!(serde_json::to_string(&Language::Unknown)?, "\"unknown\"");
        Ok(())
    }
}
