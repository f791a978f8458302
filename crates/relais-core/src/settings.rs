//! A tenant's operating settings, changed at run time without a restart: quiet hours,
//! sender rates, the frequency cap, the price table, the retention policy, the content
//! checks and the sender rules. Each section is stored and
//! replaced as a whole; a document is checked entirely before any of it is kept.

use crate::consent::Purpose;
use crate::content_check::ContentChecks;
use crate::frequency_cap::FrequencyCap;
use crate::prices::PriceTable;
use crate::privacy::{RETENTION_KEY, RetentionPolicy};
use crate::quiet_hours::{COUNTRY_RULES, QuietHours, next_allowed};
use crate::sender_rates::SenderRates;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Deserializer, Serialize};

/// The store keys of the sections (`quiet_hours` is the key tenants used before).
pub const QUIET_HOURS_KEY: &str = "quiet_hours";
pub const SENDER_RATES_KEY: &str = "sender_rates";
pub const FREQUENCY_CAP_KEY: &str = "frequency_cap";
pub const PRICES_KEY: &str = "prices";
pub const CONTENT_CHECKS_KEY: &str = "content_checks";
pub const SENDERS_KEY: &str = "senders";

/// The `senders` section: whether a message's `from` must be one of the tenant's
/// verified senders (`docs/trust.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SenderRules {
    /// Off by default, so that a new server sends from the sandbox at once; a tenant that
    /// sends to real people turns it on once its senders are verified.
    pub require_verified: bool,
}

/// Every section; a section the tenant never set has its default (no windows and every
/// country rule on, the server's sender rates, no cap, no prices, content checks on at
/// their default threshold, unverified senders allowed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantSettings {
    pub quiet_hours: QuietHours,
    pub sender_rates: SenderRates,
    pub frequency_cap: Option<FrequencyCap>,
    pub prices: PriceTable,
    pub retention: RetentionPolicy,
    pub content_checks: ContentChecks,
    pub senders: SenderRules,
}

/// The sections a `PATCH` names; the others stay as they are. `"frequency_cap": null`
/// removes the cap.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
    #[serde(default)]
    pub sender_rates: Option<SenderRates>,
    #[serde(default, deserialize_with = "present")]
    pub frequency_cap: Option<Option<FrequencyCap>>,
    #[serde(default)]
    pub prices: Option<PriceTable>,
    #[serde(default)]
    pub retention: Option<RetentionPolicy>,
    #[serde(default)]
    pub content_checks: Option<ContentChecks>,
    #[serde(default)]
    pub senders: Option<SenderRules>,
}

/// A field that is present, even as `null`, is `Some`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Settings that each parse but cannot work together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pointer}: {detail}")]
pub struct SettingsError {
    /// JSON pointer to the section at fault, e.g. `/quiet_hours`.
    pub pointer: String,
    pub detail: String,
}

impl TenantSettings {
    /// Refuses quiet hours that, with a country's built-in rule, would never let a
    /// transactional or marketing message go (e.g. a tenant window 08:00–22:00 every day
    /// beside France's 22:00–08:00 night): such a message would be refused at every send,
    /// and the operator should hear it now.
    pub fn check(&self, now: Timestamp) -> Result<(), SettingsError> {
        self.retention.check().map_err(|detail| SettingsError {
            pointer: "/retention".to_owned(),
            detail,
        })?;
        self.content_checks.check().map_err(|e| SettingsError {
            pointer: format!("/content_checks{}", e.pointer),
            detail: e.detail,
        })?;
        let countries = std::iter::once(None).chain(
            COUNTRY_RULES
                .iter()
                .filter(|rule| self.quiet_hours.country_rule_on(rule.key))
                .map(|rule| Some(rule.key)),
        );
        for country in countries {
            for purpose in [Purpose::Transactional, Purpose::Marketing] {
                // The rules are all on the recipient's wall clock: one zone shows a
                // contradiction as well as any.
                if next_allowed(now, &TimeZone::UTC, country, &purpose, &self.quiet_hours).is_err()
                {
                    let whom = country.map_or_else(String::new, |c| format!(" to {c}"));
                    return Err(SettingsError {
                        pointer: "/quiet_hours".to_owned(),
                        detail: format!(
                            "these quiet hours leave no time in a year to send {purpose} messages{whom}; shorten a window or turn that country's rule off"
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// These settings with the sections `patch` names replaced.
    pub fn patched(mut self, patch: SettingsPatch) -> TenantSettings {
        if let Some(quiet_hours) = patch.quiet_hours {
            self.quiet_hours = quiet_hours;
        }
        if let Some(sender_rates) = patch.sender_rates {
            self.sender_rates = sender_rates;
        }
        if let Some(frequency_cap) = patch.frequency_cap {
            self.frequency_cap = frequency_cap;
        }
        if let Some(prices) = patch.prices {
            self.prices = prices;
        }
        if let Some(retention) = patch.retention {
            self.retention = retention;
        }
        if let Some(content_checks) = patch.content_checks {
            self.content_checks = content_checks;
        }
        if let Some(senders) = patch.senders {
            self.senders = senders;
        }
        self
    }

    /// Every section as (store key, JSON value), to be written together.
    pub fn sections(&self) -> Result<Vec<(&'static str, serde_json::Value)>, serde_json::Error> {
        Ok(vec![
            (QUIET_HOURS_KEY, serde_json::to_value(&self.quiet_hours)?),
            (SENDER_RATES_KEY, serde_json::to_value(&self.sender_rates)?),
            (
                FREQUENCY_CAP_KEY,
                serde_json::to_value(&self.frequency_cap)?,
            ),
            (PRICES_KEY, serde_json::to_value(&self.prices)?),
            (RETENTION_KEY, serde_json::to_value(self.retention)?),
            (
                CONTENT_CHECKS_KEY,
                serde_json::to_value(&self.content_checks)?,
            ),
            (SENDERS_KEY, serde_json::to_value(&self.senders)?),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_replaces_only_the_sections_it_names() {
        let before: TenantSettings = serde_json::from_str(
            r#"{"frequency_cap": {"max": 2, "per": "7d"}, "sender_rates": {"default": 3}}"#,
        )
        .unwrap();
        let patch: SettingsPatch =
            serde_json::from_str(r#"{"sender_rates": {"senders": {"Promo": 1}}}"#).unwrap();
        let after = before.clone().patched(patch);
        assert_eq!(after.frequency_cap, before.frequency_cap);
        assert_eq!(
            after.sender_rates.default_rate(),
            None,
            "the section is replaced whole"
        );
        assert_eq!(after.sender_rates.rate_of("Promo"), Some(1.0));
        let cleared = after.patched(serde_json::from_str(r#"{"frequency_cap": null}"#).unwrap());
        assert_eq!(cleared.frequency_cap, None);
    }

    #[test]
    fn quiet_hours_that_leave_no_time_with_a_country_rule_are_refused() {
        let now: Timestamp = "2026-12-05T10:00:00Z".parse().unwrap();
        let daytime: TenantSettings = serde_json::from_str(
            r#"{"quiet_hours": {"windows": [{"start": "08:00", "end": "22:00", "purposes": ["marketing"]}]}}"#,
        )
        .unwrap();
        let err = daytime.check(now).unwrap_err();
        assert_eq!(err.pointer, "/quiet_hours");
        assert!(
            err.detail.contains("marketing messages to FR"),
            "{}",
            err.detail
        );
        let france_off: TenantSettings = serde_json::from_str(
            r#"{"quiet_hours": {"windows": [{"start": "08:00", "end": "21:00", "purposes": ["marketing"]}], "countries": {"FR": false}}}"#,
        )
        .unwrap();
        assert!(
            france_off.check(now).is_err(),
            "other countries' nights still meet the window"
        );
        assert!(TenantSettings::default().check(now).is_ok());
    }

    #[test]
    fn unknown_sections_are_refused() {
        let err = serde_json::from_str::<SettingsPatch>(r#"{"quiet_hour": []}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `quiet_hour`"), "{err}");
    }

    #[test]
    fn every_section_is_written() {
        let keys: Vec<&str> = TenantSettings::default()
            .sections()
            .unwrap()
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        assert_eq!(
            keys,
            [
                QUIET_HOURS_KEY,
                SENDER_RATES_KEY,
                FREQUENCY_CAP_KEY,
                PRICES_KEY,
                RETENTION_KEY,
                CONTENT_CHECKS_KEY,
                SENDERS_KEY
            ]
        );
    }
}
