//! Credential-harvesting phrasing, in French and English: what a message says when it
//! wants a password, a card or bank details, or frightens with a suspended account.
//!
//! Texts and phrases are compared folded: lowercased, accents dropped, typographic
//! apostrophes straightened, every run of other punctuation and spaces one space, so that
//! `Vérifiez   votre compte !` matches `verifiez votre compte`.

/// The phrases, folded. A phrase matches whole words only.
pub const PHRASES: &[&str] = &[
    // English.
    "verify your account",
    "verify your identity",
    "confirm your account",
    "confirm your identity",
    "confirm your password",
    "enter your password",
    "update your password",
    "confirm your card",
    "update your payment",
    "update your billing",
    "update your bank details",
    "your account will be suspended",
    "your account has been suspended",
    "your account will be closed",
    "your account has been locked",
    "your account is locked",
    "unusual activity",
    "suspicious activity",
    "unusual sign in",
    "to avoid suspension",
    // French.
    "verifiez votre compte",
    "verifier votre compte",
    "confirmez votre compte",
    "verifiez votre identite",
    "confirmez votre identite",
    "confirmez votre mot de passe",
    "confirmer votre mot de passe",
    "saisissez votre mot de passe",
    "entrez votre mot de passe",
    "saisissez votre code",
    "votre compte sera suspendu",
    "votre compte a ete suspendu",
    "votre compte sera bloque",
    "votre compte a ete bloque",
    "votre compte sera ferme",
    "votre carte sera bloquee",
    "votre carte a ete bloquee",
    "mettez a jour vos coordonnees bancaires",
    "mettre a jour vos coordonnees bancaires",
    "mettez a jour vos informations bancaires",
    "confirmez vos coordonnees bancaires",
    "activite inhabituelle",
    "activite suspecte",
    "connexion inhabituelle",
];

/// `text` folded as the phrases are.
pub fn fold(text: &str) -> String {
    let mut folded = String::with_capacity(text.len() + 2);
    folded.push(' ');
    let mut space = true;
    for c in text.chars().flat_map(char::to_lowercase) {
        let c = match c {
            'à' | 'á' | 'â' | 'ä' | 'ã' => 'a',
            'ç' => 'c',
            'è' | 'é' | 'ê' | 'ë' => 'e',
            'ì' | 'í' | 'î' | 'ï' => 'i',
            'ò' | 'ó' | 'ô' | 'ö' => 'o',
            'ù' | 'ú' | 'û' | 'ü' => 'u',
            'ÿ' => 'y',
            '’' | '‘' | '\'' => '\'',
            other => other,
        };
        if c.is_alphanumeric() || c == '\'' {
            folded.push(c);
            space = false;
        } else if !space {
            folded.push(' ');
            space = true;
        }
    }
    if !space {
        folded.push(' ');
    }
    folded
}

/// The phrases `text` holds, in the order of [`PHRASES`].
pub fn phrases_in(text: &str) -> Vec<&'static str> {
    let folded = fold(text);
    PHRASES
        .iter()
        .filter(|phrase| {
            folded.match_indices(*phrase).any(|(at, _)| {
                folded[..at].ends_with(' ') && folded[at + phrase.len()..].starts_with(' ')
            })
        })
        .copied()
        .collect()
}
