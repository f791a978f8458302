//! SMS text rules: GSM 03.38 7-bit alphabet detection, segment counting and splitting,
//! "smart encoding" of look-alike characters, and the byte encodings an SMSC expects
//! (`data_coding` 0 = GSM-7 unpacked, 3 = Latin-1, 8 = UCS-2 big endian).
//!
//! Pure functions only: the SMPP client and the `POST /v1/tools/sms-segments` endpoint both
//! call them, so what the API announces is exactly what the SMSC is sent.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// The alphabet a text needs on the air interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// GSM 03.38 default alphabet (+ extension table, 2 septets per extension character).
    Gsm7,
    /// UCS-2 (sent as UTF-16 BE so that emoji survive as surrogate pairs).
    Ucs2,
}

/// What `POST /v1/tools/sms-segments` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentInfo {
    pub encoding: Encoding,
    /// Unicode scalar values in the text (what a user counts as "characters").
    pub characters: usize,
    /// Number of SMS the text is sent as.
    pub segments: usize,
}

/// SMPP `data_coding` values Relais sends and understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataCoding {
    /// 0: SMSC default alphabet, which for every SMSC we target is GSM 03.38, one septet per byte.
    Gsm7,
    /// 3: ISO-8859-1.
    Latin1,
    /// 8: UCS-2 (UTF-16 BE).
    Ucs2,
}

impl DataCoding {
    /// The `data_coding` byte.
    pub fn code(self) -> u8 {
        match self {
            DataCoding::Gsm7 => 0,
            DataCoding::Latin1 => 3,
            DataCoding::Ucs2 => 8,
        }
    }

    /// Interprets a `data_coding` byte. Unknown codings (binary, Cyrillic, ...) are `None`;
    /// callers decide how to show them.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 | 1 => Some(DataCoding::Gsm7), // 1 = IA5/ASCII, a subset handled by the same decoder
            3 => Some(DataCoding::Latin1),
            8 => Some(DataCoding::Ucs2),
            // GSM "general data coding" group 00xx with no compression: the alphabet is in bits 2-3.
            // Group 1111: bit 2 clear = default alphabet (bit 2 set = 8-bit binary data).
            c if c & 0xF0 == 0xF0 => (c & 0x04 == 0).then_some(DataCoding::Gsm7),
            c if c & 0xC0 == 0 && c & 0x20 == 0 && c & 0x10 != 0 => match (c >> 2) & 0x03 {
                0 => Some(DataCoding::Gsm7),
                2 => Some(DataCoding::Ucs2),
                _ => None,
            },
            _ => None,
        }
    }

    /// The cost of one character in the unit this coding's length limits are expressed in
    /// (septets, bytes or UTF-16 code units). `None` if the coding cannot carry the character.
    pub fn cost(self, c: char) -> Option<usize> {
        match self {
            DataCoding::Gsm7 => gsm7_septets(c),
            DataCoding::Latin1 => (u32::from(c) <= 0xFF).then_some(1),
            DataCoding::Ucs2 => Some(c.len_utf16()),
        }
    }

    /// Limits for one standalone SMS and for one part of a concatenated SMS carrying a
    /// `udh_len`-byte user data header (6 for 8-bit references, 7 for 16-bit).
    pub fn limits(self, udh_len: usize) -> (usize, usize) {
        match self {
            // 140 octets * 8 / 7 = 160 septets; the UDH takes ceil(udh_len * 8 / 7) septets.
            DataCoding::Gsm7 => (160, 160 - (udh_len * 8).div_ceil(7)),
            DataCoding::Latin1 => (140, 140 - udh_len),
            DataCoding::Ucs2 => (70, (140 - udh_len) / 2),
        }
    }
}

/// Errors of the byte encoders.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmsError {
    #[error("character {0:?} cannot be encoded in {1:?}")]
    Unencodable(char, DataCoding),
}

/// GSM 03.38 basic table, indexed by septet value. 0x1B is the escape to the extension table.
const GSM_BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// GSM 03.38 extension table: (septet after ESC, character).
const GSM_EXT: [(u8, char); 10] = [
    (0x0A, '\u{0C}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

const ESC: u8 = 0x1B;

fn gsm_basic_code(c: char) -> Option<u8> {
    if c == '\u{1B}' {
        return None; // the escape itself is not a character a text may contain
    }
    // ASCII letters and digits sit at their ASCII positions: answer them without scanning.
    if c.is_ascii_alphanumeric() {
        return Some(c as u8);
    }
    GSM_BASIC.iter().position(|&g| g == c).map(|p| p as u8)
}

fn gsm_ext_code(c: char) -> Option<u8> {
    GSM_EXT.iter().find(|(_, g)| *g == c).map(|(code, _)| *code)
}

/// Septets `c` takes in GSM-7: 1 for the basic table, 2 for the extension table.
pub fn gsm7_septets(c: char) -> Option<usize> {
    if gsm_basic_code(c).is_some() {
        Some(1)
    } else if gsm_ext_code(c).is_some() {
        Some(2)
    } else {
        None
    }
}

/// GSM-7 if every character is in the basic or extension table, UCS-2 otherwise.
pub fn detect_encoding(text: &str) -> Encoding {
    if text.chars().all(|c| gsm7_septets(c).is_some()) {
        Encoding::Gsm7
    } else {
        Encoding::Ucs2
    }
}

impl Encoding {
    /// The `data_coding` the encoding is sent with.
    pub fn data_coding(self) -> DataCoding {
        match self {
            Encoding::Gsm7 => DataCoding::Gsm7,
            Encoding::Ucs2 => DataCoding::Ucs2,
        }
    }
}

/// Encoding, character count and segment count, as standard concatenated SMS
/// (160/153 GSM-7 septets, 70/67 UCS-2 code units).
pub fn segment_info(text: &str) -> SegmentInfo {
    let encoding = detect_encoding(text);
    SegmentInfo {
        encoding,
        characters: text.chars().count(),
        segments: split(text).len(),
    }
}

/// Splits `text` into standard SMS segments (6-byte UDH). An empty text is one empty segment.
pub fn split(text: &str) -> Vec<&str> {
    let coding = detect_encoding(text).data_coding();
    let (single, multi) = coding.limits(6);
    split_with(text, coding, single, multi).unwrap_or_else(|_| vec![text])
}

/// Splits `text` into parts for `coding`: one part if the whole text fits in `single` units,
/// otherwise parts of at most `multi` units each. A character is never cut: an extension
/// character's escape stays with it and a surrogate pair stays whole, so a part may be one
/// unit short of `multi`. The parts concatenate back to `text`.
pub fn split_with(
    text: &str,
    coding: DataCoding,
    single: usize,
    multi: usize,
) -> Result<Vec<&str>, SmsError> {
    let mut total = 0usize;
    for c in text.chars() {
        total += coding.cost(c).ok_or(SmsError::Unencodable(c, coding))?;
    }
    if total <= single {
        return Ok(vec![text]);
    }
    // `multi` < 2 could never hold a two-unit character; clamp so the loop always advances.
    let multi = multi.max(2);
    let mut parts = Vec::with_capacity(total / multi + 1);
    let mut start = 0usize;
    let mut used = 0usize;
    for (i, c) in text.char_indices() {
        let cost = coding.cost(c).unwrap_or(1);
        if used + cost > multi {
            parts.push(&text[start..i]);
            start = i;
            used = 0;
        }
        used += cost;
    }
    parts.push(&text[start..]);
    Ok(parts)
}

/// Replaces characters outside GSM-7 by look-alikes inside it (curly quotes, long dashes,
/// ellipsis, exotic spaces, accented letters GSM lacks), so that a text written in a word
/// processor costs 160-character segments instead of 70. Characters with no look-alike are
/// kept (the text then goes out as UCS-2).
pub fn smart_encode(text: &str) -> Cow<'_, str> {
    if text.chars().all(|c| gsm7_septets(c).is_some()) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if gsm7_septets(c).is_some() {
            out.push(c);
            continue;
        }
        match look_alike(c) {
            Some(s) => out.push_str(s),
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn look_alike(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' | '\u{00B4}' | '`' => "'",
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' | '«' | '»' => "\"",
        '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2015}'
        | '\u{2212}' => "-",
        '\u{2026}' => "...",
        '\u{00A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' => " ",
        '\u{200B}' | '\u{FEFF}' | '\u{00AD}' => "",
        '\u{2022}' | '\u{00B7}' => "*",
        '\t' => " ",
        'á' | 'â' | 'ã' => "a",
        'ç' => "Ç",
        'ê' | 'ë' => "e",
        'í' | 'î' | 'ï' => "i",
        'ó' | 'ô' | 'õ' => "o",
        'ú' | 'û' => "u",
        'ÿ' => "y",
        'À' | 'Á' | 'Â' | 'Ã' => "A",
        'È' | 'Ê' | 'Ë' => "E",
        'Ì' | 'Í' | 'Î' | 'Ï' => "I",
        'Ò' | 'Ó' | 'Ô' | 'Õ' => "O",
        'Ù' | 'Ú' | 'Û' => "U",
        'œ' => "oe",
        'Œ' => "OE",
        _ => return None,
    })
}

/// Encodes `text` for `coding`: GSM-7 as unpacked septets (one per byte, extension characters
/// as ESC + code), Latin-1 as bytes, UCS-2 as UTF-16 big endian.
pub fn encode(text: &str, coding: DataCoding) -> Result<Vec<u8>, SmsError> {
    match coding {
        DataCoding::Gsm7 => {
            let mut out = Vec::with_capacity(text.len());
            for c in text.chars() {
                if let Some(b) = gsm_basic_code(c) {
                    out.push(b);
                } else if let Some(b) = gsm_ext_code(c) {
                    out.extend_from_slice(&[ESC, b]);
                } else {
                    return Err(SmsError::Unencodable(c, coding));
                }
            }
            Ok(out)
        }
        DataCoding::Latin1 => text
            .chars()
            .map(|c| u8::try_from(u32::from(c)).map_err(|_| SmsError::Unencodable(c, coding)))
            .collect(),
        DataCoding::Ucs2 => Ok(text.encode_utf16().flat_map(u16::to_be_bytes).collect()),
    }
}

/// Decodes bytes received with `coding`. Never fails: bytes that mean nothing become U+FFFD
/// (or, for an unknown GSM extension, the basic-table character, as 3GPP 23.038 prescribes).
pub fn decode(bytes: &[u8], coding: DataCoding) -> String {
    match coding {
        DataCoding::Gsm7 => {
            let mut out = String::with_capacity(bytes.len());
            let mut it = bytes.iter().map(|b| b & 0x7F);
            while let Some(b) = it.next() {
                if b == ESC {
                    // A lone ESC at the end carries no character.
                    if let Some(e) = it.next() {
                        match GSM_EXT.iter().find(|(code, _)| *code == e) {
                            Some((_, c)) => out.push(*c),
                            None => out.push(GSM_BASIC[usize::from(e)]),
                        }
                    }
                } else {
                    out.push(GSM_BASIC[usize::from(b)]);
                }
            }
            out
        }
        DataCoding::Latin1 => bytes.iter().map(|&b| char::from(b)).collect(),
        DataCoding::Ucs2 => {
            let units = bytes
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]));
            char::decode_utf16(units)
                .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_text_is_gsm7_single_segment() {
        let info = segment_info("Your code is 123456");
        assert_eq!(info.encoding, Encoding::Gsm7);
        assert_eq!(info.characters, 19);
        assert_eq!(info.segments, 1);
    }

    #[test]
    fn gsm7_boundaries_160_and_153() {
        assert_eq!(segment_info(&"a".repeat(160)).segments, 1);
        assert_eq!(segment_info(&"a".repeat(161)).segments, 2);
        assert_eq!(segment_info(&"a".repeat(306)).segments, 2);
        assert_eq!(segment_info(&"a".repeat(307)).segments, 3);
    }

    #[test]
    fn extension_chars_count_two_septets() {
        // 80 euro signs = 160 septets: one SMS; 81 = 162 septets: two.
        assert_eq!(segment_info(&"€".repeat(80)).segments, 1);
        let info = segment_info(&"€".repeat(81));
        assert_eq!(info.encoding, Encoding::Gsm7);
        assert_eq!(info.characters, 81);
        assert_eq!(info.segments, 2);
    }

    #[test]
    fn escape_never_split_from_its_char() {
        // 152 'a' then '€': 154 septets would not fit in a 153 part, so '€' moves whole.
        let text = format!("{}€{}", "a".repeat(152), "b".repeat(10));
        let parts = split(&text);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], "a".repeat(152));
        assert!(parts[1].starts_with('€'));
    }

    #[test]
    fn ucs2_boundaries_70_and_67() {
        assert_eq!(segment_info(&"é".repeat(70)).encoding, Encoding::Gsm7);
        let info = segment_info(&"ж".repeat(70));
        assert_eq!(info.encoding, Encoding::Ucs2);
        assert_eq!(info.segments, 1);
        assert_eq!(segment_info(&"ж".repeat(71)).segments, 2);
        assert_eq!(segment_info(&"ж".repeat(134)).segments, 2);
        assert_eq!(segment_info(&"ж".repeat(135)).segments, 3);
    }

    #[test]
    fn emoji_count_two_units_and_never_split() {
        // 35 emoji = 70 UTF-16 units: one SMS.
        assert_eq!(segment_info(&"😀".repeat(35)).segments, 1);
        // 66 units of 'ж' then an emoji: 68 > 67, so the emoji starts part 2.
        let text = format!("{}😀{}", "ж".repeat(66), "ж".repeat(5));
        let parts = split(&text);
        assert_eq!(parts.len(), 2);
        assert!(parts[1].starts_with('😀'));
    }

    #[test]
    fn serialises_as_the_api_contract() {
        let json = serde_json::to_value(segment_info("héllo 😀")).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({"encoding": "ucs2", "characters": 7, "segments": 1})
        );
    }

    #[test]
    fn smart_encoding_keeps_word_processor_text_in_gsm7() {
        let text = "“Hello” – it’s ready… ";
        assert_eq!(detect_encoding(text), Encoding::Ucs2);
        let smart = smart_encode(text);
        assert_eq!(smart, "\"Hello\" - it's ready... ");
        assert_eq!(detect_encoding(&smart), Encoding::Gsm7);
        // Characters with no look-alike stay, and the text remains UCS-2.
        assert_eq!(smart_encode("日本"), "日本");
    }

    #[test]
    fn gsm7_encoding_uses_escape_for_extension() {
        assert_eq!(
            encode("a€@", DataCoding::Gsm7),
            Ok(vec![0x61, 0x1B, 0x65, 0x00])
        );
        assert_eq!(
            encode("ж", DataCoding::Gsm7),
            Err(SmsError::Unencodable('ж', DataCoding::Gsm7))
        );
        assert_eq!(decode(&[0x61, 0x1B, 0x65, 0x00], DataCoding::Gsm7), "a€@");
    }

    #[test]
    fn ucs2_and_latin1_round_trip() {
        let t = "Grüße 😀";
        let b = encode(t, DataCoding::Ucs2).unwrap_or_default();
        assert_eq!(b.len(), 2 * t.encode_utf16().count());
        assert_eq!(decode(&b, DataCoding::Ucs2), t);
        let l = encode("Grüße", DataCoding::Latin1).unwrap_or_default();
        assert_eq!(l, b"Gr\xfc\xdfe");
        assert_eq!(decode(&l, DataCoding::Latin1), "Grüße");
        assert!(encode("€", DataCoding::Latin1).is_err());
    }

    #[test]
    fn decode_never_panics_on_garbage() {
        assert_eq!(decode(&[0x1B], DataCoding::Gsm7), "");
        assert_eq!(decode(&[0xFF, 0x1B, 0x00], DataCoding::Gsm7), "à@");
        assert_eq!(decode(&[0xD8, 0x00], DataCoding::Ucs2), "\u{FFFD}");
        assert_eq!(decode(&[0x00, 0x41, 0x42], DataCoding::Ucs2), "A\u{4200}");
    }

    #[test]
    fn data_coding_codes() {
        for dc in [DataCoding::Gsm7, DataCoding::Latin1, DataCoding::Ucs2] {
            assert_eq!(DataCoding::from_code(dc.code()), Some(dc));
        }
        assert_eq!(DataCoding::from_code(0x04), None);
        assert_eq!(DataCoding::from_code(0x18), Some(DataCoding::Ucs2));
    }

    fn sms_text() -> impl Strategy<Value = String> {
        // Mix GSM basic, GSM extension, Latin, Cyrillic and astral characters.
        let ch = prop_oneof![
            4 => proptest::char::range('a', 'z'),
            1 => proptest::sample::select(vec!['€', '[', ']', '{', '}', '^', '~', '|', '\\']),
            1 => proptest::sample::select(vec!['é', 'à', 'Δ', '\n', ' ', '@']),
            1 => proptest::char::range('а', 'я'),
            1 => proptest::sample::select(vec!['😀', '🎉', '𝄞']),
        ];
        proptest::collection::vec(ch, 0..500).prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #[test]
        fn segments_concatenate_to_text(text in sms_text()) {
            prop_assert_eq!(split(&text).concat(), text);
        }

        #[test]
        fn each_segment_within_its_limit(text in sms_text()) {
            let coding = detect_encoding(&text).data_coding();
            let parts = split(&text);
            let (single, multi) = coding.limits(6);
            let limit = if parts.len() == 1 { single } else { multi };
            for p in &parts {
                let units: usize = p.chars().map(|c| coding.cost(c).unwrap_or(usize::MAX)).sum();
                prop_assert!(units <= limit, "{} units > {}", units, limit);
                if parts.len() > 1 {
                    prop_assert!(!p.is_empty());
                }
            }
        }

        #[test]
        fn count_matches_split(text in sms_text()) {
            let info = segment_info(&text);
            prop_assert_eq!(info.segments, split(&text).len());
            prop_assert_eq!(info.characters, text.chars().count());
        }

        #[test]
        fn encode_decode_round_trip(text in sms_text()) {
            let coding = detect_encoding(&text).data_coding();
            let bytes = encode(&text, coding);
            prop_assert!(bytes.is_ok());
            prop_assert_eq!(decode(&bytes.unwrap_or_default(), coding), text);
        }

        #[test]
        fn smart_encode_leaves_gsm7_text_alone(text in sms_text()) {
            if detect_encoding(&text) == Encoding::Gsm7 {
                prop_assert_eq!(smart_encode(&text), text.as_str());
            }
        }

        #[test]
        fn decode_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            for dc in [DataCoding::Gsm7, DataCoding::Latin1, DataCoding::Ucs2] {
                let _ = decode(&bytes, dc);
            }
        }
    }
}
