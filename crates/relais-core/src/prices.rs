//! A tenant's price table: what one message (or one SMS segment) costs on a channel kind,
//! optionally for the numbers of one country calling code, in a currency.
//!
//! The most specific row wins: the longest `country_prefix` that starts the recipient's
//! number, else the channel's row without a prefix. Amounts are kept as whole millionths
//! of the currency unit, so that sums over a million messages are exact.

use crate::channel::ChannelKind;
use serde::{Deserialize, Serialize};

/// Millionths of a currency unit in one unit: amounts have at most six decimals.
const MICROS_PER_UNIT: f64 = 1_000_000.0;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PriceError {
    #[error("`{0}` is not a country prefix; write the calling code's digits, e.g. `+33` or `1`")]
    Prefix(String),
    #[error("`{0}` is not a currency; write its ISO 4217 code, e.g. `EUR`")]
    Currency(String),
    #[error("a price must be a number from 0 to 1000, not {0}")]
    Amount(f64),
    #[error("row {first} and row {second} both price {channel} messages to `{prefix}`")]
    Duplicate {
        first: usize,
        second: usize,
        channel: ChannelKind,
        prefix: String,
    },
}

/// What a price counts: each message, or each SMS segment of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PricedUnit {
    Message,
    Segment,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PriceRowWire", into = "PriceRowWire")]
pub struct PriceRow {
    pub channel: ChannelKind,
    /// Calling-code digits (`33`), or `None` for every recipient of the channel.
    country_prefix: Option<String>,
    /// Millionths of `currency` per `per`.
    price_micros: i64,
    pub per: PricedUnit,
    currency: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceRowWire {
    channel: ChannelKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    country_prefix: Option<String>,
    price: f64,
    #[serde(default = "per_message")]
    per: PricedUnit,
    currency: String,
}

fn per_message() -> PricedUnit {
    PricedUnit::Message
}

impl TryFrom<PriceRowWire> for PriceRow {
    type Error = PriceError;
    fn try_from(wire: PriceRowWire) -> Result<Self, Self::Error> {
        let country_prefix = wire
            .country_prefix
            .map(|raw| {
                let digits = raw.trim().trim_start_matches('+');
                if (1..=6).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
                    Ok(digits.to_owned())
                } else {
                    Err(PriceError::Prefix(raw.clone()))
                }
            })
            .transpose()?;
        let currency = wire.currency.trim();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(PriceError::Currency(wire.currency));
        }
        if !wire.price.is_finite() || !(0.0..=1000.0).contains(&wire.price) {
            return Err(PriceError::Amount(wire.price));
        }
        // In range by the check above: at most 1e9 millionths.
        #[allow(clippy::cast_possible_truncation)]
        let price_micros = (wire.price * MICROS_PER_UNIT).round() as i64;
        Ok(PriceRow {
            channel: wire.channel,
            country_prefix,
            price_micros,
            per: wire.per,
            currency: currency.to_owned(),
        })
    }
}

impl From<PriceRow> for PriceRowWire {
    fn from(row: PriceRow) -> Self {
        // Exact for amounts of at most six decimals, which is all a row holds.
        #[allow(clippy::cast_precision_loss)]
        let price = row.price_micros as f64 / MICROS_PER_UNIT;
        PriceRowWire {
            channel: row.channel,
            country_prefix: row.country_prefix.map(|digits| format!("+{digits}")),
            price,
            per: row.per,
            currency: row.currency,
        }
    }
}

impl PriceRow {
    pub fn country_prefix(&self) -> Option<&str> {
        self.country_prefix.as_deref()
    }

    pub fn currency(&self) -> &str {
        &self.currency
    }

    pub fn price_micros(&self) -> i64 {
        self.price_micros
    }

    /// What a message of `segments` SMS segments costs by this row (one segment counts
    /// once on channels without segments).
    pub fn cost(&self, segments: u32) -> Cost {
        let units = match self.per {
            PricedUnit::Message => 1,
            PricedUnit::Segment => i64::from(segments.max(1)),
        };
        Cost {
            micros: self.price_micros.saturating_mul(units),
            currency: self.currency.clone(),
        }
    }

    fn matches(&self, digits: Option<&str>) -> bool {
        match (&self.country_prefix, digits) {
            (None, _) => true,
            (Some(prefix), Some(digits)) => digits.starts_with(prefix.as_str()),
            (Some(_), None) => false,
        }
    }
}

/// An amount in millionths of a currency unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cost {
    pub micros: i64,
    pub currency: String,
}

/// The table: rows in the order the tenant wrote them; at most one per (channel, prefix).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<PriceRow>", into = "Vec<PriceRow>")]
pub struct PriceTable {
    rows: Vec<PriceRow>,
}

impl TryFrom<Vec<PriceRow>> for PriceTable {
    type Error = PriceError;
    fn try_from(rows: Vec<PriceRow>) -> Result<Self, Self::Error> {
        for (second, row) in rows.iter().enumerate() {
            if let Some(first) = rows[..second].iter().position(|earlier| {
                earlier.channel == row.channel && earlier.country_prefix == row.country_prefix
            }) {
                return Err(PriceError::Duplicate {
                    first,
                    second,
                    channel: row.channel,
                    prefix: row
                        .country_prefix
                        .as_ref()
                        .map_or_else(|| "every recipient".to_owned(), |p| format!("+{p}")),
                });
            }
        }
        Ok(PriceTable { rows })
    }
}

impl From<PriceTable> for Vec<PriceRow> {
    fn from(table: PriceTable) -> Self {
        table.rows
    }
}

impl PriceTable {
    pub fn rows(&self) -> &[PriceRow] {
        &self.rows
    }

    /// The row that prices a message on `channel` to `address` (an E.164 number gets the
    /// row of its longest matching prefix; any address the channel's row without one).
    pub fn price_of(&self, channel: ChannelKind, address: &str) -> Option<&PriceRow> {
        let digits = address
            .strip_prefix('+')
            .filter(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()));
        self.rows
            .iter()
            .filter(|row| row.channel == channel && row.matches(digits))
            .max_by_key(|row| row.country_prefix.as_ref().map_or(0, String::len))
    }

    /// Digits of the longest country prefix of the table (0 when no row has one).
    pub fn longest_prefix(&self) -> usize {
        self.rows
            .iter()
            .filter_map(|row| row.country_prefix.as_ref().map(String::len))
            .max()
            .unwrap_or(0)
    }

    /// What a message costs, when the table prices it.
    pub fn cost_of(&self, channel: ChannelKind, address: &str, segments: u32) -> Option<Cost> {
        self.price_of(channel, address)
            .map(|row| row.cost(segments))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> PriceTable {
        serde_json::from_str(
            r#"[
                {"channel": "sms", "price": 0.07, "per": "segment", "currency": "EUR"},
                {"channel": "sms", "country_prefix": "+33", "price": 0.045, "per": "segment", "currency": "EUR"},
                {"channel": "sms", "country_prefix": "+336", "price": 0.04, "per": "segment", "currency": "EUR"},
                {"channel": "whatsapp", "price": 0.0712, "currency": "EUR"}
            ]"#,
        )
        .unwrap()
    }

    #[test]
    fn the_longest_prefix_wins_then_the_channel_default() {
        let prices = table();
        assert_eq!(
            prices.cost_of(ChannelKind::Sms, "+33612345678", 2),
            Some(Cost {
                micros: 80_000,
                currency: "EUR".into()
            }),
            "two segments to a French mobile at 0.04"
        );
        assert_eq!(
            prices
                .cost_of(ChannelKind::Sms, "+33142000000", 1)
                .map(|c| c.micros),
            Some(45_000)
        );
        assert_eq!(
            prices
                .cost_of(ChannelKind::Sms, "+4915112345678", 1)
                .map(|c| c.micros),
            Some(70_000)
        );
    }

    #[test]
    fn a_price_per_message_ignores_segments_and_unpriced_channels_cost_nothing_known() {
        let prices = table();
        assert_eq!(
            prices
                .cost_of(ChannelKind::Whatsapp, "+33612345678", 3)
                .map(|c| c.micros),
            Some(71_200)
        );
        assert_eq!(prices.cost_of(ChannelKind::Email, "a@example.com", 1), None);
    }

    #[test]
    fn bad_rows_are_refused_with_the_reason() {
        let err = |json: &str| {
            serde_json::from_str::<PriceTable>(json)
                .unwrap_err()
                .to_string()
        };
        assert!(
            err(r#"[{"channel": "sms", "price": -1, "currency": "EUR"}]"#)
                .contains("from 0 to 1000")
        );
        assert!(
            err(r#"[{"channel": "sms", "price": 1, "currency": "euro"}]"#)
                .contains("`euro` is not a currency")
        );
        assert!(
            err(r#"[{"channel": "sms", "country_prefix": "FR", "price": 1, "currency": "EUR"}]"#)
                .contains("`FR` is not a country prefix")
        );
        assert!(
            err(r#"[{"channel": "sms", "price": 1, "currency": "EUR"}, {"channel": "sms", "price": 2, "currency": "EUR"}]"#)
                .contains("row 0 and row 1")
        );
        assert!(
            err(r#"[{"channel": "pigeon", "price": 1, "currency": "EUR"}]"#)
                .contains("unknown variant")
        );
    }

    #[test]
    fn a_table_round_trips_with_plus_signed_prefixes() {
        let prices = table();
        let json = serde_json::to_value(&prices).unwrap();
        assert_eq!(json[1]["country_prefix"], "+33");
        assert_eq!(json[1]["price"], 0.045);
        assert_eq!(serde_json::from_value::<PriceTable>(json).unwrap(), prices);
    }
}
