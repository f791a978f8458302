//! Routing between several accounts of one channel kind (two SMPP accounts, two HTTP SMS
//! providers), as Kannel's `allowed-prefix` / `preferred-prefix` and Jasmin's routers do.
//!
//! Each account may carry [`RouteRules`]: destination `prefixes` (E.164, `+336`),
//! `countries` (ISO 3166-1 alpha-2, `FR`) and a `weight`. [`order`] is the whole rule: of
//! the accounts that accept a destination, the one with the longest matching prefix comes
//! first, then those matching its country, then those without rules; among equals, a
//! weighted draw seeded by the message (the same message always gets the same order, and
//! over many messages each account gets its share of first places). An account with
//! rules that match nothing of the destination does not take it; the accounts after the
//! first are where the message fails over to.

use crate::phone::{normalize_phone, parse_country};
use sha2::{Digest, Sha256};

/// The weight of an account that names none.
pub const DEFAULT_WEIGHT: u32 = 1;
/// The largest weight: shares are relative, 1000 to 1 is as uneven as anyone needs.
pub const MAX_WEIGHT: u32 = 1000;
/// E.164 numbers have at most 15 digits.
const MAX_PREFIX_DIGITS: usize = 15;

/// Which destinations an account takes, and its share among equals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRules {
    prefixes: Vec<String>,
    countries: Vec<String>,
    weight: u32,
}

impl Default for RouteRules {
    fn default() -> Self {
        RouteRules {
            prefixes: Vec::new(),
            countries: Vec::new(),
            weight: DEFAULT_WEIGHT,
        }
    }
}

/// A rule that cannot be used; `index` is the item's place in its list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteRuleError {
    #[error("`{value}` is not an E.164 prefix: write `+` then 1 to 15 digits, such as +336")]
    Prefix { index: usize, value: String },
    #[error("`{value}` is not an ISO 3166-1 alpha-2 country code, such as FR")]
    Country { index: usize, value: String },
    #[error("the weight must be a whole number from 1 to {MAX_WEIGHT}")]
    Weight,
}

impl RouteRules {
    /// Rules from their parts, checked; countries are kept in upper case.
    pub fn new(
        prefixes: Vec<String>,
        countries: Vec<String>,
        weight: u32,
    ) -> Result<Self, RouteRuleError> {
        for (index, prefix) in prefixes.iter().enumerate() {
            let digits = prefix.strip_prefix('+').unwrap_or_default();
            let ok = !digits.is_empty()
                && digits.len() <= MAX_PREFIX_DIGITS
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !digits.starts_with('0');
            if !ok {
                return Err(RouteRuleError::Prefix {
                    index,
                    value: prefix.clone(),
                });
            }
        }
        let countries = countries
            .into_iter()
            .enumerate()
            .map(|(index, code)| {
                let known = code.len() == 2 && parse_country(&code).is_ok();
                if known {
                    Ok(code.to_ascii_uppercase())
                } else {
                    Err(RouteRuleError::Country { index, value: code })
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !(1..=MAX_WEIGHT).contains(&weight) {
            return Err(RouteRuleError::Weight);
        }
        Ok(RouteRules {
            prefixes,
            countries,
            weight,
        })
    }

    pub fn prefixes(&self) -> &[String] {
        &self.prefixes
    }

    pub fn countries(&self) -> &[String] {
        &self.countries
    }

    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// Whether the account takes any destination (it names no prefix nor country).
    pub fn takes_all(&self) -> bool {
        self.prefixes.is_empty() && self.countries.is_empty()
    }

    /// How well the account fits `destination`; `None` when it does not take it.
    pub fn rank(&self, destination: &Destination) -> Option<Rank> {
        if self.takes_all() {
            return Some(Rank::Open);
        }
        let longest = self
            .prefixes
            .iter()
            .filter(|p| destination.address.starts_with(p.as_str()))
            .map(String::len)
            .max();
        if let Some(len) = longest {
            return Some(Rank::Prefix(len));
        }
        let country = destination.country.as_deref()?;
        self.countries
            .iter()
            .any(|c| c == country)
            .then_some(Rank::Country)
    }
}

/// How well an account fits a destination: a longer prefix beats a shorter one, any
/// prefix beats a country, a country beats an account without rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rank {
    Open,
    Country,
    Prefix(usize),
}

/// Where a message goes: its address, and the country of its number when it is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    address: String,
    country: Option<String>,
}

impl Destination {
    /// The destination of a message to `address` (E.164 for a phone number; other
    /// addresses match accounts without rules only).
    pub fn of(address: &str) -> Self {
        let country = normalize_phone(address, None)
            .ok()
            .and_then(|phone| phone.region());
        Destination {
            address: address.to_owned(),
            country,
        }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn country(&self) -> Option<&str> {
        self.country.as_deref()
    }
}

/// One account a message may go out on.
#[derive(Debug, Clone, Copy)]
pub struct Account<'a> {
    pub id: &'a str,
    pub rules: &'a RouteRules,
}

/// The ids of the accounts that take `destination`, best first: by [`Rank`], then, among
/// equals, in a weighted random order drawn from `seed` (the message's id), so that an
/// account of weight 3 comes first three times as often as one of weight 1.
pub fn order<'a>(accounts: &[Account<'a>], destination: &Destination, seed: &str) -> Vec<&'a str> {
    let mut ranked: Vec<(Rank, f64, &'a str)> = accounts
        .iter()
        .filter_map(|account| {
            let rank = account.rules.rank(destination)?;
            Some((
                rank,
                race(seed, account.id, account.rules.weight),
                account.id,
            ))
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| b.1.total_cmp(&a.1))
            .then_with(|| a.2.cmp(b.2))
    });
    ranked.into_iter().map(|(_, _, id)| id).collect()
}

/// The account's key in a weighted draw without replacement (Efraimidis and Spirakis:
/// `u^(1/w)`, largest first), with `u` uniform in (0, 1] drawn from the seed and the
/// account's id.
fn race(seed: &str, id: &str, weight: u32) -> f64 {
    let mut hash = Sha256::new();
    hash.update(seed.as_bytes());
    hash.update([0]);
    hash.update(id.as_bytes());
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // 53 bits: every value is exact in an f64.
    let bits = u64::from_be_bytes(first) >> 11;
    let u = (bits as f64 + 1.0) / (1u64 << 53) as f64;
    u.powf(1.0 / f64::from(weight.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(prefixes: &[&str], countries: &[&str], weight: u32) -> RouteRules {
        RouteRules::new(
            prefixes.iter().map(|s| s.to_string()).collect(),
            countries.iter().map(|s| s.to_string()).collect(),
            weight,
        )
        .unwrap()
    }

    #[test]
    fn the_longest_matching_prefix_comes_first_then_country_then_open() {
        let mobile = rules(&["+336"], &[], 1);
        let france = rules(&["+33"], &[], 1);
        let by_country = rules(&[], &["FR"], 1);
        let open = RouteRules::default();
        let other = rules(&["+44"], &["GB"], 1);
        let accounts = [
            Account {
                id: "open",
                rules: &open,
            },
            Account {
                id: "country",
                rules: &by_country,
            },
            Account {
                id: "33",
                rules: &france,
            },
            Account {
                id: "336",
                rules: &mobile,
            },
            Account {
                id: "uk",
                rules: &other,
            },
        ];
        let got = order(&accounts, &Destination::of("+33612345678"), "m1");
        assert_eq!(got, ["336", "33", "country", "open"]);
        let got = order(&accounts, &Destination::of("+33756123456"), "m1");
        assert_eq!(got, ["33", "country", "open"]);
        let got = order(&accounts, &Destination::of("+4915112345678"), "m1");
        assert_eq!(
            got,
            ["open"],
            "a German number only goes where anything goes"
        );
    }

    #[test]
    fn a_destination_no_rule_accepts_has_no_account() {
        let a = rules(&["+336"], &[], 1);
        let b = rules(&["+337"], &[], 1);
        let accounts = [
            Account { id: "a", rules: &a },
            Account { id: "b", rules: &b },
        ];
        assert!(order(&accounts, &Destination::of("+14155550100"), "m").is_empty());
        assert!(order(&accounts, &Destination::of("ana@example.com"), "m").is_empty());
    }

    #[test]
    fn weights_share_the_first_place_and_one_message_always_gets_the_same_order() {
        let heavy = rules(&[], &[], 3);
        let light = rules(&[], &[], 1);
        let accounts = [
            Account {
                id: "heavy",
                rules: &heavy,
            },
            Account {
                id: "light",
                rules: &light,
            },
        ];
        let to = Destination::of("+33612345678");
        let n = 4000;
        let heavy_first = (0..n)
            .filter(|i| order(&accounts, &to, &format!("msg-{i}"))[0] == "heavy")
            .count();
        // Expected 3000 of 4000; five standard deviations (27) either side.
        assert!((2860..=3140).contains(&heavy_first), "{heavy_first}");
        assert_eq!(order(&accounts, &to, "x"), order(&accounts, &to, "x"));
        assert_eq!(
            order(&accounts, &to, "x").len(),
            2,
            "the other is the failover"
        );
    }

    #[test]
    fn bad_rules_say_which_item() {
        let prefix = |p: &str| RouteRules::new(vec![p.into()], vec![], 1).unwrap_err();
        for bad in ["336", "+", "+33 6", "+0", "+1234567890123456", "+33a"] {
            assert!(
                matches!(prefix(bad), RouteRuleError::Prefix { index: 0, .. }),
                "{bad}"
            );
        }
        let err = RouteRules::new(vec![], vec!["FR".into(), "France".into()], 1).unwrap_err();
        assert_eq!(
            err,
            RouteRuleError::Country {
                index: 1,
                value: "France".into()
            }
        );
        assert!(RouteRules::new(vec![], vec!["XX".into()], 1).is_err());
        assert_eq!(
            RouteRules::new(vec![], vec![], 0),
            Err(RouteRuleError::Weight)
        );
        assert_eq!(
            RouteRules::new(vec![], vec!["fr".into()], 1)
                .unwrap()
                .countries(),
            ["FR"]
        );
    }
}
