//! How fast each sender (`from`: an alphanumeric ID, a number, a short code) may send, in
//! messages per second: one rate per named sender, and one for the senders not named.
//!
//! A tenant's rates sit over the server's (`RELAIS_SENDER_RATE(S)`): the tenant's named
//! sender, then the tenant's default, then the server's named sender, then the server's
//! default; with none of them a sender is not paced. Written `{"default": 10, "senders":
//! {"MyShop": 5}}`.

use crate::sender::Sender;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The fastest rate a sender may be given: above it a token bucket no longer paces
/// anything an SMSC would notice, and a typo (`50000` for `5`) would go unnoticed.
pub const FASTEST_SENDER_RATE: f64 = 10_000.0;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SenderRateError {
    #[error("{0} is not a rate; give messages per second, above 0 and at most 10000")]
    Rate(f64),
    #[error(transparent)]
    Sender(#[from] crate::sender::SenderError),
}

/// Messages per second by sender, and for the others.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SenderRatesWire", into = "SenderRatesWire")]
pub struct SenderRates {
    default: Option<f64>,
    senders: BTreeMap<String, f64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SenderRatesWire {
    #[serde(default)]
    default: Option<f64>,
    #[serde(default)]
    senders: BTreeMap<String, f64>,
}

impl TryFrom<SenderRatesWire> for SenderRates {
    type Error = SenderRateError;
    fn try_from(wire: SenderRatesWire) -> Result<Self, Self::Error> {
        let mut rates = SenderRates::default();
        if let Some(rate) = wire.default {
            rates.default = Some(checked_rate(rate)?);
        }
        for (sender, rate) in wire.senders {
            rates.set(&sender, rate)?;
        }
        Ok(rates)
    }
}

impl From<SenderRates> for SenderRatesWire {
    fn from(rates: SenderRates) -> Self {
        SenderRatesWire {
            default: rates.default,
            senders: rates.senders,
        }
    }
}

fn checked_rate(rate: f64) -> Result<f64, SenderRateError> {
    if rate.is_finite() && rate > 0.0 && rate <= FASTEST_SENDER_RATE {
        Ok(rate)
    } else {
        Err(SenderRateError::Rate(rate))
    }
}

impl SenderRates {
    /// Rates with `default` for the senders not named (`None`: not paced by these).
    pub fn with_default(default: Option<f64>) -> Result<Self, SenderRateError> {
        Ok(SenderRates {
            default: default.map(checked_rate).transpose()?,
            senders: BTreeMap::new(),
        })
    }

    /// Sets the rate of one sender (named as it is written in messages' `from`).
    pub fn set(&mut self, sender: &str, rate: f64) -> Result<(), SenderRateError> {
        let sender = Sender::parse(sender)?;
        self.senders
            .insert(sender.into_string(), checked_rate(rate)?);
        Ok(())
    }

    pub fn default_rate(&self) -> Option<f64> {
        self.default
    }

    pub fn senders(&self) -> &BTreeMap<String, f64> {
        &self.senders
    }

    /// The rate these rates give `sender`, if any.
    pub fn rate_of(&self, sender: &str) -> Option<f64> {
        self.senders.get(sender).copied().or(self.default)
    }

    /// The rate of `sender` with these rates over `defaults` (the server's).
    pub fn rate_over(&self, defaults: &SenderRates, sender: &str) -> Option<f64> {
        self.rate_of(sender).or_else(|| defaults.rate_of(sender))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(json: &str) -> SenderRates {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_tenant_named_sender_then_its_default_then_the_server_s() {
        let server = rates(r#"{"default": 1, "senders": {"Promo": 2, "Alerts": 50}}"#);
        let tenant = rates(r#"{"senders": {"Promo": 5}}"#);
        assert_eq!(tenant.rate_over(&server, "Promo"), Some(5.0));
        assert_eq!(tenant.rate_over(&server, "Alerts"), Some(50.0));
        assert_eq!(tenant.rate_over(&server, "Other"), Some(1.0));
        let with_default = rates(r#"{"default": 20}"#);
        assert_eq!(
            with_default.rate_over(&server, "Alerts"),
            Some(20.0),
            "the tenant's own default is more specific than the server's named sender"
        );
        assert_eq!(
            SenderRates::default().rate_over(&SenderRates::default(), "Promo"),
            None,
            "unpaced"
        );
    }

    #[test]
    fn bad_rates_and_senders_are_refused() {
        let err = |json: &str| {
            serde_json::from_str::<SenderRates>(json)
                .unwrap_err()
                .to_string()
        };
        assert!(err(r#"{"default": 0}"#).contains("0 is not a rate"));
        assert!(err(r#"{"senders": {"Promo": -2}}"#).contains("-2 is not a rate"));
        assert!(err(r#"{"senders": {"Promo": 20000}}"#).contains("at most 10000"));
        assert!(err(r#"{"senders": {"MyVeryLongShop": 1}}"#).contains("at most 11 characters"));
        assert!(err(r#"{"sender": {}}"#).contains("unknown field"));
    }
}
