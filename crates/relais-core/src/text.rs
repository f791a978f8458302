//! Text rules shared by the crates that read what people write (keywords here, NLU in
//! `relais-nlu`).

/// Folds one lower-case character to its unaccented ASCII form when it is a Latin letter
/// with a diacritic, so that "réservé", "reserve" and "RÉSERVÉ" meet in one token.
/// Characters outside the table are returned unchanged.
pub fn fold_char(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
        'ç' => 'c',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'ñ' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' => 'o',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        'ý' | 'ÿ' => 'y',
        // Typographic apostrophes are common on phones; one form keeps "l’avion" == "l'avion".
        '\u{2019}' | '\u{2018}' | '`' | '´' => '\'',
        other => other,
    }
}
