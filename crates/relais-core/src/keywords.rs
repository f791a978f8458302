//! Keywords: the few words a customer writes to stop, restart or ask for help, on any
//! channel (STOP, ARRÊT, START, AIDE…). A keyword is the whole message, the way people
//! really write it: any case, with or without accents and punctuation, with a polite word
//! or two around it ("Stop svp", "STOP SMS", "arrêtez merci"). A sentence that merely
//! contains the word ("je ne veux pas que ça s'arrête") is not one.

use crate::text::fold_char;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a keyword does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum KeywordAction {
    /// Opts the contact out of marketing on the channel it wrote on.
    Stop,
    /// Opts the contact out of marketing on every channel.
    StopAll,
    /// Reverses an opt-out on the channel it wrote on.
    Start,
    /// Answers with the tenant's help text.
    Help,
}

impl KeywordAction {
    pub const ALL: [KeywordAction; 4] = [
        KeywordAction::Stop,
        KeywordAction::StopAll,
        KeywordAction::Start,
        KeywordAction::Help,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeywordAction::Stop => "stop",
            KeywordAction::StopAll => "stop_all",
            KeywordAction::Start => "start",
            KeywordAction::Help => "help",
        }
    }
}

/// A tenant's keywords and the replies they get (`GET` / `PUT /v1/keywords`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Keywords {
    pub stop: Vec<String>,
    pub stop_all: Vec<String>,
    pub start: Vec<String>,
    pub help: Vec<String>,
    /// The reply of each action (`stop`, `stop_all`, `start`, `help`) by language (`fr`,
    /// `en`, …).
    pub replies: BTreeMap<KeywordAction, BTreeMap<String, String>>,
    /// The language of a reply when neither the keyword nor the contact's locale tells.
    pub language: String,
}

/// Longest keyword, in characters.
pub const MAX_KEYWORD_CHARS: usize = 40;
/// Longest reply, in characters (ten SMS segments of GSM-7).
pub const MAX_REPLY_CHARS: usize = 1530;
/// Most keywords per action.
pub const MAX_KEYWORDS: usize = 100;

/// Words that may stand around a keyword without making it a sentence, with the language
/// they tell.
const FILLERS: &[(&str, Option<&str>)] = &[
    ("svp", Some("fr")),
    ("stp", Some("fr")),
    ("s", None),
    ("il", Some("fr")),
    ("vous", Some("fr")),
    ("plait", Some("fr")),
    ("merci", Some("fr")),
    ("moi", Some("fr")),
    ("maintenant", Some("fr")),
    ("please", Some("en")),
    ("pls", Some("en")),
    ("plz", Some("en")),
    ("thanks", Some("en")),
    ("thank", Some("en")),
    ("you", Some("en")),
    ("thx", Some("en")),
    ("me", Some("en")),
    ("now", Some("en")),
    ("sms", None),
    ("msg", None),
    ("message", None),
    ("messages", None),
    ("ok", None),
];

/// At most this many filler words around a keyword.
const MAX_FILLERS: usize = 3;

/// The language of the default keywords that belong to one.
const KEYWORD_LANGUAGES: &[(&str, &str)] = &[
    ("arret", "fr"),
    ("arrete", "fr"),
    ("arretez", "fr"),
    ("arreter", "fr"),
    ("desabonner", "fr"),
    ("desabonnement", "fr"),
    ("desinscrire", "fr"),
    ("desinscription", "fr"),
    ("stop tout", "fr"),
    ("oui", "fr"),
    ("aide", "fr"),
    ("unsubscribe", "en"),
    ("end", "en"),
    ("quit", "en"),
    ("cancel", "en"),
    ("stop all", "en"),
    ("unstop", "en"),
    ("yes", "en"),
    ("help", "en"),
];

impl Default for Keywords {
    fn default() -> Self {
        let words = |list: &[&str]| list.iter().map(|w| (*w).to_owned()).collect();
        let reply = |fr: &str, en: &str| {
            BTreeMap::from([
                ("fr".to_owned(), fr.to_owned()),
                ("en".to_owned(), en.to_owned()),
            ])
        };
        Keywords {
            stop: words(&[
                "STOP",
                "ARRET",
                "ARRÊT",
                "ARRÊTE",
                "ARRÊTEZ",
                "ARRÊTER",
                "UNSUBSCRIBE",
                "DESABONNER",
                "DÉSABONNEMENT",
                "DÉSINSCRIRE",
                "DÉSINSCRIPTION",
                "END",
                "QUIT",
                "CANCEL",
            ]),
            stop_all: words(&["STOPALL", "STOP ALL", "STOP TOUT"]),
            start: words(&["START", "UNSTOP", "YES", "OUI"]),
            help: words(&["HELP", "AIDE", "INFO"]),
            replies: BTreeMap::from([
                (
                    KeywordAction::Stop,
                    reply(
                        "Vous ne recevrez plus nos messages promotionnels sur ce canal. Répondez START pour les recevoir à nouveau.",
                        "You will no longer receive our promotional messages on this channel. Reply START to receive them again.",
                    ),
                ),
                (
                    KeywordAction::StopAll,
                    reply(
                        "Vous ne recevrez plus nos messages promotionnels, sur aucun canal. Répondez START pour les recevoir à nouveau ici.",
                        "You will no longer receive our promotional messages on any channel. Reply START to receive them here again.",
                    ),
                ),
                (
                    KeywordAction::Start,
                    reply(
                        "C'est noté : vous recevrez à nouveau nos messages. Répondez STOP pour ne plus les recevoir.",
                        "You will receive our messages again. Reply STOP to stop them.",
                    ),
                ),
                (
                    KeywordAction::Help,
                    reply(
                        "Pour ne plus recevoir nos messages promotionnels, répondez STOP. Pour toute autre question, écrivez-nous ici.",
                        "To stop our promotional messages, reply STOP. For anything else, write to us here.",
                    ),
                ),
            ]),
            language: "en".to_owned(),
        }
    }
}

/// A message that is a keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeywordMatch {
    pub action: KeywordAction,
    /// The keyword as configured.
    pub keyword: String,
    /// The language the message was written in, when the keyword or the words around it
    /// tell.
    pub language: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pointer}: {detail}")]
pub struct InvalidKeywords {
    /// A JSON pointer into the keywords document.
    pub pointer: String,
    pub detail: String,
}

impl Keywords {
    /// The keywords of `action`.
    pub fn words(&self, action: KeywordAction) -> &[String] {
        match action {
            KeywordAction::Stop => &self.stop,
            KeywordAction::StopAll => &self.stop_all,
            KeywordAction::Start => &self.start,
            KeywordAction::Help => &self.help,
        }
    }

    /// Refuses a document that could not work: an empty or overlong keyword, one that two
    /// actions share, a missing reply.
    pub fn validate(&self) -> Result<(), InvalidKeywords> {
        let invalid = |pointer: String, detail: String| Err(InvalidKeywords { pointer, detail });
        let mut seen: BTreeMap<Vec<String>, (KeywordAction, usize)> = BTreeMap::new();
        for action in KeywordAction::ALL {
            let words = self.words(action);
            if words.len() > MAX_KEYWORDS {
                return invalid(
                    format!("/{}", action.as_str()),
                    format!("at most {MAX_KEYWORDS} keywords"),
                );
            }
            for (index, word) in words.iter().enumerate() {
                let pointer = format!("/{}/{index}", action.as_str());
                let tokens = normalize(word);
                if tokens.is_empty() {
                    return invalid(pointer, "a keyword needs a letter or a digit".into());
                }
                if word.chars().count() > MAX_KEYWORD_CHARS {
                    return invalid(
                        pointer,
                        format!("a keyword has at most {MAX_KEYWORD_CHARS} characters"),
                    );
                }
                if tokens.iter().all(|t| filler(t).is_some()) {
                    return invalid(
                        pointer,
                        format!("`{word}` is only words that may surround a keyword"),
                    );
                }
                if let Some((other, other_index)) = seen.get(&tokens)
                    && *other != action
                {
                    return invalid(
                        pointer,
                        format!(
                            "`{word}` is also a keyword of /{}/{other_index}",
                            other.as_str()
                        ),
                    );
                }
                seen.insert(tokens, (action, index));
            }
            let replies = self.replies.get(&action);
            match replies.and_then(|r| r.get(&self.language)) {
                Some(_) => {}
                None => {
                    return invalid(
                        format!("/replies/{}", action.as_str()),
                        format!("needs a reply in the default language `{}`", self.language),
                    );
                }
            }
            for (language, text) in replies.into_iter().flatten() {
                let pointer = format!("/replies/{}/{language}", action.as_str());
                if text.trim().is_empty() {
                    return invalid(pointer, "a reply must not be empty".into());
                }
                if text.chars().count() > MAX_REPLY_CHARS {
                    return invalid(
                        pointer,
                        format!("a reply has at most {MAX_REPLY_CHARS} characters"),
                    );
                }
            }
        }
        if self.language.is_empty()
            || self.language.len() > 8
            || !self.language.bytes().all(|b| b.is_ascii_lowercase())
        {
            return invalid(
                "/language".into(),
                "a language code such as `fr` or `en`".into(),
            );
        }
        Ok(())
    }

    /// The keyword `text` is, if it is one.
    pub fn find(&self, text: &str) -> Option<KeywordMatch> {
        let tokens = normalize(text);
        if tokens.is_empty() || tokens.len() > 8 {
            return None;
        }
        for action in KeywordAction::ALL {
            for word in self.words(action) {
                let keyword = normalize(word);
                if let Some(language) = surrounded_by_fillers(&tokens, &keyword) {
                    let joined = keyword.join(" ");
                    let own = KEYWORD_LANGUAGES
                        .iter()
                        .find(|(k, _)| *k == joined)
                        .map(|(_, l)| *l);
                    return Some(KeywordMatch {
                        action,
                        keyword: word.clone(),
                        language: own.or(language),
                    });
                }
            }
        }
        None
    }

    /// The reply of `action` in `language`, or in the default language.
    pub fn reply(&self, action: KeywordAction, language: Option<&str>) -> Option<&str> {
        let replies = self.replies.get(&action)?;
        language
            .and_then(|l| replies.get(l))
            .or_else(|| replies.get(&self.language))
            .map(String::as_str)
    }
}

/// `Some(language the fillers tell)` when `tokens` are `keyword` with only filler words
/// (at most [`MAX_FILLERS`]) before and after it.
fn surrounded_by_fillers(tokens: &[String], keyword: &[String]) -> Option<Option<&'static str>> {
    if keyword.is_empty() || tokens.len() < keyword.len() {
        return None;
    }
    for start in 0..=(tokens.len() - keyword.len()) {
        if tokens[start..start + keyword.len()] != *keyword {
            continue;
        }
        let around: Vec<&String> = tokens[..start]
            .iter()
            .chain(&tokens[start + keyword.len()..])
            .collect();
        if around.len() > MAX_FILLERS {
            return None;
        }
        let mut language = None;
        let mut all_fillers = true;
        for word in around {
            match filler(word) {
                Some(told) => language = language.or(told),
                None => all_fillers = false,
            }
        }
        if all_fillers {
            return Some(language);
        }
    }
    None
}

fn filler(word: &str) -> Option<Option<&'static str>> {
    FILLERS.iter().find(|(w, _)| *w == word).map(|(_, l)| *l)
}

/// Lower-case words without accents, split on anything that is not a letter or a digit:
/// `"Arrêtez, merci !"` → `["arretez", "merci"]`.
pub fn normalize(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    for c in text.chars().flat_map(char::to_lowercase).map(fold_char) {
        if c.is_alphanumeric() {
            word.push(c);
        } else if !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(text: &str) -> Option<KeywordAction> {
        Keywords::default().find(text).map(|m| m.action)
    }

    #[test]
    fn keywords_are_found_however_people_write_them() {
        for text in [
            "STOP",
            "stop",
            "Stop.",
            "stop svp",
            "STOP SMS",
            "stop merci",
            "  Stop !!! ",
            "arrêt",
            "ARRET",
            "Arrêtez",
            "arrêtez merci",
            "désinscrire",
            "DESABONNER",
            "unsubscribe please",
            "Cancel",
        ] {
            assert_eq!(action(text), Some(KeywordAction::Stop), "{text:?}");
        }
        assert_eq!(action("STOPALL"), Some(KeywordAction::StopAll));
        assert_eq!(action("stop all"), Some(KeywordAction::StopAll));
        assert_eq!(action("Start"), Some(KeywordAction::Start));
        assert_eq!(action("oui"), Some(KeywordAction::Start));
        assert_eq!(action("aide"), Some(KeywordAction::Help));
        assert_eq!(action("HELP!"), Some(KeywordAction::Help));
    }

    #[test]
    fn sentences_that_contain_a_keyword_are_not_keywords() {
        for text in [
            "je ne veux pas que ça s'arrête",
            "please stop sending me these offers about shoes",
            "où est mon colis ?",
            "stop the car at the corner please now",
            "",
            "!!!",
            "I need help with my order",
        ] {
            assert_eq!(action(text), None, "{text:?}");
        }
    }

    #[test]
    fn the_language_comes_from_the_keyword_or_the_words_around_it() {
        let keywords = Keywords::default();
        assert_eq!(keywords.find("ARRÊT").and_then(|m| m.language), Some("fr"));
        assert_eq!(
            keywords.find("stop svp").and_then(|m| m.language),
            Some("fr")
        );
        assert_eq!(
            keywords.find("stop please").and_then(|m| m.language),
            Some("en")
        );
        assert_eq!(keywords.find("STOP").and_then(|m| m.language), None);
        assert!(
            keywords
                .reply(KeywordAction::Stop, Some("fr"))
                .is_some_and(|r| r.starts_with("Vous"))
        );
        // An unknown language falls back to the tenant's.
        assert!(
            keywords
                .reply(KeywordAction::Stop, Some("de"))
                .is_some_and(|r| r.starts_with("You"))
        );
    }

    #[test]
    fn the_defaults_are_valid_and_broken_documents_say_where() {
        assert_eq!(Keywords::default().validate(), Ok(()));
        let mut shared = Keywords::default();
        shared.start.push("Stop!".into());
        let err = shared.validate().unwrap_err();
        assert_eq!(err.pointer, "/start/4");
        let mut empty = Keywords::default();
        empty.help.push(" ?! ".into());
        assert_eq!(empty.validate().unwrap_err().pointer, "/help/3");
        let no_reply = Keywords {
            language: "de".into(),
            ..Default::default()
        };
        assert_eq!(no_reply.validate().unwrap_err().pointer, "/replies/stop");
    }
}
