//! Delivery receipts: the de-facto standard text (SMPP 3.4 appendix B, as Kannel, Jasmin and
//! most SMSCs write it), its parsing, its building, and the rule that turns per-part receipts
//! into one message outcome.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Final or intermediate state of one SMS part, from `stat:` or the `message_state` TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptState {
    /// DELIVRD / message_state 2.
    Delivered,
    /// UNDELIV / 5.
    Undeliverable,
    /// EXPIRED / 3.
    Expired,
    /// REJECTD / 8.
    Rejected,
    /// DELETED / 4.
    Deleted,
    /// UNKNOWN / 7 (also any stat we do not recognise).
    Unknown,
    /// ACCEPTD / 6: accepted by the SMSC on behalf of the handset (intermediate).
    Accepted,
    /// ENROUTE / 1: still travelling (intermediate).
    Enroute,
}

impl ReceiptState {
    /// Parses a `stat:` value. Case-insensitive; unknown words are `Unknown`.
    pub fn from_stat(stat: &str) -> Self {
        match stat.trim().to_ascii_uppercase().as_str() {
            "DELIVRD" | "DELIVERED" => Self::Delivered,
            "UNDELIV" | "UNDELIVERABLE" | "FAILED" => Self::Undeliverable,
            "EXPIRED" => Self::Expired,
            "REJECTD" | "REJECTED" => Self::Rejected,
            "DELETED" => Self::Deleted,
            "ACCEPTD" | "ACCEPTED" => Self::Accepted,
            "ENROUTE" => Self::Enroute,
            _ => Self::Unknown,
        }
    }

    /// The 7-letter `stat:` word.
    pub fn stat(self) -> &'static str {
        match self {
            Self::Delivered => "DELIVRD",
            Self::Undeliverable => "UNDELIV",
            Self::Expired => "EXPIRED",
            Self::Rejected => "REJECTD",
            Self::Deleted => "DELETED",
            Self::Unknown => "UNKNOWN",
            Self::Accepted => "ACCEPTD",
            Self::Enroute => "ENROUTE",
        }
    }

    /// From the `message_state` TLV value (SMPP 3.4 section 5.2.28).
    pub fn from_message_state(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Enroute,
            2 => Self::Delivered,
            3 => Self::Expired,
            4 => Self::Deleted,
            5 => Self::Undeliverable,
            6 => Self::Accepted,
            7 => Self::Unknown,
            8 => Self::Rejected,
            _ => return None,
        })
    }

    /// The `message_state` TLV value.
    pub fn message_state(self) -> u8 {
        match self {
            Self::Enroute => 1,
            Self::Delivered => 2,
            Self::Expired => 3,
            Self::Deleted => 4,
            Self::Undeliverable => 5,
            Self::Accepted => 6,
            Self::Unknown => 7,
            Self::Rejected => 8,
        }
    }

    /// Whether no further receipt is expected for this part.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Enroute | Self::Accepted)
    }

    /// Whether this is a final failure.
    pub fn is_failure(self) -> bool {
        self.is_final() && self != Self::Delivered
    }
}

/// Fields of a receipt text. Missing fields are `None`; parsing never fails on a text that
/// has at least an `id:` or a `stat:`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiptText {
    pub id: Option<String>,
    pub sub: Option<String>,
    pub dlvrd: Option<String>,
    pub submit_date: Option<String>,
    pub done_date: Option<String>,
    pub stat: Option<String>,
    pub err: Option<String>,
    pub text: Option<String>,
}

/// Parses `id:X sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DELIVRD
/// err:000 text:...`. Keys are case-insensitive and may come in any order; `text:` runs to
/// the end (it may contain spaces and colons). Returns `None` when neither `id` nor `stat` is
/// present (then it is not a receipt).
pub fn parse_receipt_text(s: &str) -> Option<ReceiptText> {
    let mut r = ReceiptText::default();
    let lower = s.to_ascii_lowercase();
    // Keys with the byte offset of their value, found by scanning for "key:" at a word start.
    const KEYS: [&str; 8] = [
        "id:",
        "sub:",
        "dlvrd:",
        "submit date:",
        "done date:",
        "stat:",
        "err:",
        "text:",
    ];
    let mut found: Vec<(usize, usize, usize)> = Vec::new(); // (key start, value start, key index)
    for (k, key) in KEYS.iter().enumerate() {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(key) {
            let at = from + pos;
            let word_start = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
            if word_start && !found.iter().any(|f| f.2 == k) {
                found.push((at, at + key.len(), k));
                break;
            }
            from = at + key.len();
        }
    }
    // `text:` swallows everything after it, so ignore keys found inside it.
    if let Some(text_at) = found.iter().find(|f| f.2 == 7).map(|f| f.0) {
        found.retain(|f| f.2 == 7 || f.0 < text_at);
    }
    found.sort_unstable();
    for (i, &(_, vstart, k)) in found.iter().enumerate() {
        let vend = found.get(i + 1).map(|f| f.0).unwrap_or(s.len());
        let raw = s.get(vstart..vend).unwrap_or("");
        let v = if k == 7 {
            raw.to_string()
        } else {
            raw.split_whitespace().next().unwrap_or("").to_string()
        };
        match k {
            0 => r.id = Some(v),
            1 => r.sub = Some(v),
            2 => r.dlvrd = Some(v),
            3 => r.submit_date = Some(v),
            4 => r.done_date = Some(v),
            5 => r.stat = Some(v),
            6 => r.err = Some(v),
            _ => r.text = Some(v),
        }
    }
    (r.id.is_some() || r.stat.is_some()).then_some(r)
}

/// Builds the standard receipt text. `text` is cut to its first 20 characters, as SMSCs do.
pub fn format_receipt_text(
    id: &str,
    state: ReceiptState,
    err: u16,
    submit_date: &str,
    done_date: &str,
    text: &str,
) -> String {
    let dlvrd = if state == ReceiptState::Delivered {
        "001"
    } else {
        "000"
    };
    let short: String = text.chars().take(20).collect();
    format!(
        "id:{id} sub:001 dlvrd:{dlvrd} submit date:{submit_date} done date:{done_date} stat:{} err:{err:03} text:{short}",
        state.stat()
    )
}

/// `YYMMDDhhmm` (UTC) for `t`, the date format of receipt texts.
pub fn receipt_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{:02}{:02}{:02}{:02}{:02}",
        y.rem_euclid(100),
        m,
        d,
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian), to avoid a date crate for
/// one format.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Outcome of a (possibly multi-part) message from its parts' latest states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageOutcome {
    /// Some part has no final receipt yet.
    Pending,
    /// Every part delivered.
    Delivered,
    /// At least one part failed; carries the first failing part's state.
    Failed(ReceiptState),
}

/// The message-level rule: delivered only when every one of `total_parts` parts is delivered,
/// failed as soon as any part failed, pending otherwise. `parts` holds the latest known state
/// of each part that has a receipt (missing parts count as pending).
pub fn message_outcome(total_parts: usize, parts: &[ReceiptState]) -> MessageOutcome {
    if let Some(f) = parts.iter().find(|s| s.is_failure()) {
        return MessageOutcome::Failed(*f);
    }
    let delivered = parts
        .iter()
        .filter(|s| **s == ReceiptState::Delivered)
        .count();
    if total_parts > 0 && delivered >= total_parts {
        MessageOutcome::Delivered
    } else {
        MessageOutcome::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kannel_style_receipt() {
        let r = parse_receipt_text(
            "id:1a2B3c sub:001 dlvrd:001 submit date:2511211230 done date:2511211231 stat:DELIVRD err:000 text:Hello: world id:no",
        );
        let r = r.unwrap_or_default();
        assert_eq!(r.id.as_deref(), Some("1a2B3c"));
        assert_eq!(r.submit_date.as_deref(), Some("2511211230"));
        assert_eq!(r.done_date.as_deref(), Some("2511211231"));
        assert_eq!(r.stat.as_deref(), Some("DELIVRD"));
        assert_eq!(r.err.as_deref(), Some("000"));
        assert_eq!(r.text.as_deref(), Some("Hello: world id:no"));
    }

    #[test]
    fn parses_uppercase_keys_and_missing_fields() {
        let r = parse_receipt_text("ID:77 STAT:UNDELIV ERR:012").unwrap_or_default();
        assert_eq!(r.id.as_deref(), Some("77"));
        assert_eq!(
            ReceiptState::from_stat(r.stat.as_deref().unwrap_or("")),
            ReceiptState::Undeliverable
        );
        assert!(parse_receipt_text("hello there").is_none());
    }

    #[test]
    fn format_then_parse_round_trips() {
        let t = format_receipt_text(
            "abc",
            ReceiptState::Expired,
            7,
            "2511211230",
            "2511211231",
            "a long text longer than twenty chars",
        );
        assert!(t.starts_with("id:abc sub:001 dlvrd:000 submit date:2511211230"));
        let r = parse_receipt_text(&t).unwrap_or_default();
        assert_eq!(r.stat.as_deref(), Some("EXPIRED"));
        assert_eq!(r.err.as_deref(), Some("007"));
        assert_eq!(r.text.as_deref(), Some("a long text longer t"));
    }

    #[test]
    fn all_stat_words_map() {
        for s in [
            ReceiptState::Delivered,
            ReceiptState::Undeliverable,
            ReceiptState::Expired,
            ReceiptState::Rejected,
            ReceiptState::Deleted,
            ReceiptState::Unknown,
            ReceiptState::Accepted,
            ReceiptState::Enroute,
        ] {
            assert_eq!(ReceiptState::from_stat(s.stat()), s);
            assert_eq!(ReceiptState::from_message_state(s.message_state()), Some(s));
        }
    }

    #[test]
    fn multipart_delivered_only_when_all_parts_are() {
        use ReceiptState::*;
        assert_eq!(
            message_outcome(3, &[Delivered, Delivered]),
            MessageOutcome::Pending
        );
        assert_eq!(
            message_outcome(3, &[Delivered, Delivered, Delivered]),
            MessageOutcome::Delivered
        );
        assert_eq!(
            message_outcome(3, &[Delivered, Undeliverable]),
            MessageOutcome::Failed(Undeliverable)
        );
        assert_eq!(
            message_outcome(2, &[Enroute, Delivered]),
            MessageOutcome::Pending
        );
    }

    #[test]
    fn receipt_date_format() {
        // 2026-11-21 16:45 UTC
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_795_279_500);
        assert_eq!(receipt_date(t), "2611211645");
    }
}
