//! Look-alikes of a brand: a host whose name reads as the brand's to a hurried reader.
//!
//! Names are compared by their *skeleton* (after Unicode's UTS #39): each character
//! replaced by the Latin letter it looks like, from a subset of `confusables.txt` that
//! covers what phishing uses — Cyrillic and Greek look-alikes of Latin letters, fullwidth
//! forms, accented Latin letters, digits (`0`→`o`, `1`→`l`, `3`→`e`, `4`→`a`, `5`→`s`) —
//! and the pairs `rn`→`m` and `vv`→`w`. Hyphens are dropped.

/// The Latin letter (or digit) `c` looks like, lowercased.
fn confusable(c: char) -> char {
    match c {
        // Cyrillic.
        'а' => 'a',
        'в' => 'b',
        'с' | 'ϲ' => 'c',
        'ԁ' => 'd',
        'е' | 'ё' => 'e',
        'һ' | 'н' => 'h',
        'і' | 'ї' | 'ı' | 'ι' | 'í' | 'ì' | 'î' | 'ï' | 'ӏ' => 'i',
        'ј' => 'j',
        'к' | 'κ' => 'k',
        'м' => 'm',
        'о' | 'ο' | 'σ' | 'ö' | 'ó' | 'ò' | 'ô' | 'õ' | 'ø' | '0' => 'o',
        'р' | 'ρ' => 'p',
        'ԛ' => 'q',
        'ѕ' | '5' | '$' => 's',
        'т' | 'τ' | '7' => 't',
        'у' | 'ү' | 'ý' | 'ÿ' => 'y',
        'х' | 'χ' => 'x',
        'ԝ' | 'ω' => 'w',
        // Greek.
        'α' | 'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ɑ' | '4' | '@' => 'a',
        'β' | '8' => 'b',
        'ε' | 'è' | 'é' | 'ê' | 'ë' | '3' => 'e',
        'η' | 'ñ' => 'n',
        'ν' => 'v',
        'υ' | 'ù' | 'ú' | 'û' | 'ü' | 'μ' => 'u',
        'ç' => 'c',
        'ɡ' => 'g',
        '1' | '|' | 'ł' => 'l',
        // Fullwidth Latin letters.
        'ａ'..='ｚ' => char::from_u32(c as u32 - 'ａ' as u32 + 'a' as u32).unwrap_or(c),
        other => other,
    }
}

/// The skeleton of a name: lowercased, look-alikes mapped, hyphens and dots dropped.
pub fn skeleton(name: &str) -> String {
    let mapped: String = name
        .chars()
        .flat_map(char::to_lowercase)
        .filter(|c| *c != '-' && *c != '.' && *c != '_' && !c.is_whitespace())
        .map(confusable)
        .collect();
    mapped.replace("rn", "m").replace("vv", "w")
}

/// The name lowercased, hyphens dropped, nothing else mapped.
pub fn plain(name: &str) -> String {
    name.chars()
        .flat_map(char::to_lowercase)
        .filter(|c| *c != '-' && *c != '.' && *c != '_' && !c.is_whitespace())
        .collect()
}

/// Levenshtein distance, counted in characters, giving up past `max` (`max + 1`).
pub fn distance_within(a: &str, b: &str, max: usize) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > max {
        return max + 1;
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()].min(max + 1)
}

/// Second-level labels under which a country's registrable names sit (`co.uk`,
/// `com.fr`, `gouv.fr`): a short list in place of the Public Suffix List.
const SECOND_LEVELS: &[&str] = &[
    "co", "com", "net", "org", "gov", "gouv", "ac", "edu", "asso", "nom", "ltd", "plc",
];

/// The registrable part of a host name (`mabanque.verify-account.net` →
/// `verify-account.net`; `shop.example.co.uk` → `example.co.uk`), as labels.
pub fn registrable(labels: &[&str]) -> usize {
    let n = labels.len();
    if n >= 3 && labels[n - 1].chars().count() == 2 && SECOND_LEVELS.contains(&labels[n - 2]) {
        n - 3
    } else {
        n.saturating_sub(2)
    }
}
