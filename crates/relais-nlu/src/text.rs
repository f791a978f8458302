//! Text normalisation shared by every analyser: lower-casing, accent folding and a
//! tokeniser that behaves the same way for French and English chat messages.

pub use relais_core::text::fold_char;

/// Lower-cases and folds accents of a whole string.
pub fn fold(text: &str) -> String {
    let mut folded = String::with_capacity(text.len());
    for c in text.chars() {
        for lower in c.to_lowercase() {
            folded.push(fold_char(lower));
        }
    }
    folded
}

/// Lower-cases without folding accents; the language detector needs the accents.
pub fn lower(text: &str) -> String {
    let mut lowered = String::with_capacity(text.len());
    for c in text.chars() {
        for lower in c.to_lowercase() {
            lowered.push(match lower {
                '\u{2019}' | '\u{2018}' | '`' | '´' => '\'',
                other => other,
            });
        }
    }
    lowered
}

/// Splits already-normalised text into word tokens: runs of alphanumeric characters.
/// Elided French articles ("l'avion", "j'ai") give two tokens ("l", "avion"), which is
/// what both the stopword lists and the classifier expect.
pub fn tokens(normalised: &str) -> Vec<&str> {
    normalised
        .split(|c: char| !c.is_alphanumeric())
        .filter(|token| !token.is_empty())
        .collect()
}

/// Folds and tokenises in one call, returning owned tokens.
pub fn folded_tokens(text: &str) -> Vec<String> {
    let folded = fold(text);
    tokens(&folded).into_iter().map(str::to_owned).collect()
}

/// Stopwords (accent-folded) of French and English that carry no topic; the knowledge base
/// ignores them so that "comment" or "the" never make an FAQ entry look relevant.
pub fn is_stopword(folded_token: &str) -> bool {
    const STOPWORDS: &[&str] = &[
        // English
        "a", "an", "the", "and", "or", "but", "of", "to", "in", "on", "at", "for", "with", "by",
        "from", "is", "are", "was", "were", "be", "been", "am", "do", "does", "did", "i", "you",
        "he", "she", "it", "we", "they", "me", "my", "your", "our", "their", "this", "that",
        "these", "those", "what", "which", "who", "how", "can", "could", "would", "should", "will",
        "there", "here", "please", "hi", "hello", "s", "t", "m", "d", "ll", "re", "ve", "about",
        "so", "if", "as", "have", "has", "had", "any", "some", "get", "want", "need", "hey",
        "thanks", "thank", // French
        "le", "la", "les", "l", "un", "une", "des", "de", "du", "d", "et", "ou", "mais", "en",
        "au", "aux", "a", "pour", "par", "sur", "dans", "avec", "est", "sont", "suis", "es", "je",
        "j", "tu", "il", "elle", "on", "nous", "vous", "ils", "elles", "me", "te", "se", "moi",
        "toi", "mon", "ma", "mes", "ton", "ta", "tes", "son", "sa", "ses", "notre", "votre", "vos",
        "nos", "leur", "ce", "cet", "cette", "ces", "c", "qu", "que", "qui", "quoi", "comment",
        "est-ce", "y", "ne", "n", "bonjour", "merci", "svp", "stp", "plait", "s", "veux",
        "voudrais", "peux", "puis", "faire", "fait", "ai", "as", "avez", "avoir",
    ];
    STOPWORDS.contains(&folded_token)
}

/// A cheap French/English stemmer for retrieval: strips plural and a few frequent
/// inflections so that "refunds"/"refund" and "remboursements"/"remboursement" match.
/// It is deliberately conservative: a wrong merge hurts ranking more than a missed one.
pub fn light_stem(folded_token: &str) -> &str {
    let length = folded_token.len();
    if length <= 3 || !folded_token.is_ascii() {
        return folded_token;
    }
    for suffix in ["ies", "es", "s", "x"] {
        if let Some(stem) = folded_token.strip_suffix(suffix)
            && stem.len() >= 3
            && !stem.ends_with('s')
        {
            return stem;
        }
    }
    folded_token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_merges_accented_and_capitalised_forms() {
        assert_eq!(fold("RÉSERVÉ À Noël"), "reserve a noel");
        assert_eq!(fold("l’avion"), "l'avion");
    }

    #[test]
    fn french_elisions_split_into_two_tokens() {
        assert_eq!(
            tokens(&fold("J'ai perdu l'accès")),
            vec!["j", "ai", "perdu", "l", "acces"]
        );
    }

    #[test]
    fn stemming_merges_plurals_only() {
        assert_eq!(light_stem("refunds"), "refund");
        assert_eq!(light_stem("remboursements"), "remboursement");
        assert_eq!(light_stem("bus"), "bus");
        assert_eq!(light_stem("class"), "class");
    }
}
