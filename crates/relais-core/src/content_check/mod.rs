//! Anti-phishing checks of an outbound message's content: its links and its wording are
//! scored against the tenant's rules, and a message whose score reaches the tenant's
//! threshold is held for review or refused (`docs/trust.md`).
//!
//! Invariants:
//! - The score is the sum of the weights of the reasons found; each reason has a stable
//!   [`ReasonCode`] and says what it saw.
//! - A link to one of the tenant's allowed domains, brand domains or own domains (the
//!   server's short links) is never a reason.
//! - Pure: the same text and rules always give the same assessment.
//!
//! - [`links`]: the links of a text, reduced to their hosts.
//! - [`lookalike`]: skeletons and distances of names.
//! - [`phrasing`]: credential-harvesting phrases in French and English.

pub mod links;
pub mod lookalike;
pub mod phrasing;
#[cfg(test)]
mod tests;

use crate::content::{Body, Content};
use links::{Host, link_hosts};
use lookalike::{distance_within, plain, registrable, skeleton};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Why a message scored: a stable code, as the API and the event log name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// A link to a domain outside the tenant's allowed and brand domains (only when the
    /// tenant lists some).
    DomainNotAllowed,
    /// A host whose name reads as a brand's with other characters (`mаbanque.fr` with a
    /// Cyrillic `а`, `rnabanque.fr`, `m4banque.fr`).
    LookalikeHomoglyph,
    /// A host one or two letters off a brand (`mabanqe.fr`).
    LookalikeTypo,
    /// A host with a brand and added words (`ma-banque-securite.com`,
    /// `secure-mabanque.fr`, `mabanque.verify-account.net`).
    LookalikeAddedWords,
    /// A brand's exact name on a domain that is not one of the brand's.
    BrandName,
    /// A host written in punycode (`xn--`), which shows as other letters on the phone.
    PunycodeDomain,
    /// A link to an address rather than a name (`http://192.0.2.7/`, `http://[2001:db8::1]/`).
    IpLiteral,
    /// A link through a third-party shortener, which hides where it goes.
    Shortener,
    /// Phrasing that asks for credentials or threatens the account.
    CredentialPhrasing,
}

impl ReasonCode {
    pub const ALL: [ReasonCode; 9] = [
        ReasonCode::DomainNotAllowed,
        ReasonCode::LookalikeHomoglyph,
        ReasonCode::LookalikeTypo,
        ReasonCode::LookalikeAddedWords,
        ReasonCode::BrandName,
        ReasonCode::PunycodeDomain,
        ReasonCode::IpLiteral,
        ReasonCode::Shortener,
        ReasonCode::CredentialPhrasing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::DomainNotAllowed => "domain_not_allowed",
            ReasonCode::LookalikeHomoglyph => "lookalike_homoglyph",
            ReasonCode::LookalikeTypo => "lookalike_typo",
            ReasonCode::LookalikeAddedWords => "lookalike_added_words",
            ReasonCode::BrandName => "brand_name",
            ReasonCode::PunycodeDomain => "punycode_domain",
            ReasonCode::IpLiteral => "ip_literal",
            ReasonCode::Shortener => "shortener",
            ReasonCode::CredentialPhrasing => "credential_phrasing",
        }
    }

    /// The weight when the tenant sets none. With the default threshold of 50, one
    /// look-alike or one IP-literal link is enough to hold a message; a shortener, a
    /// foreign domain or the phrasing alone are not, any two of them are.
    pub fn default_weight(self) -> u32 {
        match self {
            ReasonCode::DomainNotAllowed => 30,
            ReasonCode::LookalikeHomoglyph => 80,
            ReasonCode::LookalikeTypo => 60,
            ReasonCode::LookalikeAddedWords => 60,
            ReasonCode::BrandName => 60,
            ReasonCode::PunycodeDomain => 20,
            ReasonCode::IpLiteral => 50,
            ReasonCode::Shortener => 30,
            ReasonCode::CredentialPhrasing => 40,
        }
    }
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to a message whose score reaches the threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckAction {
    /// Stored as `held`, not sent, until a reviewer releases or rejects it.
    #[default]
    Hold,
    /// Refused (422); nothing is stored.
    Refuse,
}

/// Third-party link shorteners: a link through one of them hides where it goes. The
/// tenant's own short links (`{public_url}/l/…`) are not among them.
pub const SHORTENERS: &[&str] = &[
    "bit.ly",
    "bitly.com",
    "tinyurl.com",
    "t.co",
    "goo.gl",
    "ow.ly",
    "is.gd",
    "v.gd",
    "cutt.ly",
    "rebrand.ly",
    "buff.ly",
    "tiny.cc",
    "shorturl.at",
    "rb.gy",
    "t.ly",
    "s.id",
    "bl.ink",
    "short.io",
    "lnkd.in",
    "soo.gd",
    "shorte.st",
    "adf.ly",
    "qr.ae",
    "x.co",
    "tiny.one",
];

/// The tenant's `content_checks` settings section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContentChecks {
    /// `false` turns every check off.
    pub enabled: bool,
    /// The score at which a message is held or refused.
    pub threshold: u32,
    pub action: CheckAction,
    /// Domains the tenant links to (their subdomains too). When empty, a link is never
    /// scored for its domain alone.
    pub allowed_domains: Vec<String>,
    /// The tenant's brands: a domain (`mabanque.fr`, allowed and guarded against
    /// look-alikes) or a name (`Ma Banque`, guarded only).
    pub brands: Vec<String>,
    /// Weights replacing the defaults, by reason code.
    pub weights: BTreeMap<ReasonCode, u32>,
}

impl Default for ContentChecks {
    fn default() -> Self {
        ContentChecks {
            enabled: true,
            threshold: ContentChecks::DEFAULT_THRESHOLD,
            action: CheckAction::Hold,
            allowed_domains: Vec::new(),
            brands: Vec::new(),
            weights: BTreeMap::new(),
        }
    }
}

/// A `content_checks` section that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pointer}: {detail}")]
pub struct ContentChecksError {
    /// JSON pointer inside the section, e.g. `/brands/0`.
    pub pointer: String,
    pub detail: String,
}

impl ContentChecks {
    pub const DEFAULT_THRESHOLD: u32 = 50;

    /// Refuses a threshold of 0 (every message would be held), domains that are not
    /// host names and brands too short to compare.
    pub fn check(&self) -> Result<(), ContentChecksError> {
        let error = |pointer: String, detail: &str| ContentChecksError {
            pointer,
            detail: detail.to_owned(),
        };
        if self.threshold == 0 {
            return Err(error(
                "/threshold".into(),
                "a threshold of 0 would hold every message; set `enabled: false` to turn the checks off",
            ));
        }
        for (i, domain) in self.allowed_domains.iter().enumerate() {
            if normal_domain(domain).is_none() {
                return Err(error(
                    format!("/allowed_domains/{i}"),
                    "not a domain name (write `example.fr`, without scheme or path)",
                ));
            }
        }
        for (i, brand) in self.brands.iter().enumerate() {
            if Brand::parse(brand).is_none() {
                return Err(error(
                    format!("/brands/{i}"),
                    "a brand is a domain name (`mabanque.fr`) or a name of at least 3 letters or digits",
                ));
            }
        }
        if let Some((code, _)) = self.weights.iter().find(|(_, w)| **w > 1000) {
            return Err(error(
                format!("/weights/{code}"),
                "a weight is at most 1000",
            ));
        }
        Ok(())
    }

    /// The rules ready to assess texts with; `own_urls` are the server's own public URLs
    /// (`https://relais.example.com`, the base of its short links), never scored.
    pub fn rules(&self, own_urls: &[&str]) -> ContentRules {
        let brands: Vec<Brand> = self.brands.iter().filter_map(|b| Brand::parse(b)).collect();
        let mut trusted: Vec<String> = own_urls
            .iter()
            .flat_map(|url| link_hosts(url))
            .map(|host| host.name)
            .collect();
        trusted.extend(brands.iter().filter_map(|b| b.domain.clone()));
        let allowed: Vec<String> = self
            .allowed_domains
            .iter()
            .filter_map(|d| normal_domain(d))
            .collect();
        ContentRules {
            enabled: self.enabled,
            threshold: self.threshold,
            action: self.action,
            domains_listed: !allowed.is_empty() || brands.iter().any(|b| b.domain.is_some()),
            allowed,
            trusted,
            brands,
            weights: ReasonCode::ALL.map(|code| {
                self.weights
                    .get(&code)
                    .copied()
                    .unwrap_or_else(|| code.default_weight())
            }),
        }
    }
}

/// A domain as written in the settings, lowercased without a leading `*.` or trailing dot;
/// `None` when it is not a host name.
fn normal_domain(raw: &str) -> Option<String> {
    let domain = raw
        .trim()
        .trim_start_matches("*.")
        .trim_end_matches('.')
        .to_lowercase();
    let host = links::link_hosts(&format!("https://{domain}/"))
        .into_iter()
        .next()?;
    (host.ip.is_none() && host.name.contains('.') && !domain.contains(['/', '@', ':']))
        .then_some(host.name)
}

/// A brand as compared: its skeleton, and its domain when given as one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Brand {
    /// The brand's name as written, for the reasons' text.
    shown: String,
    /// The skeleton of its distinctive name (`mabanque` for `mabanque.fr` or `Ma Banque`).
    key: String,
    /// The name lowercased without hyphens or spaces, to tell an exact use from a look-alike.
    plain: String,
    domain: Option<String>,
}

impl Brand {
    fn parse(raw: &str) -> Option<Brand> {
        let raw = raw.trim();
        let (name, domain) = if raw.contains('.') {
            let domain = normal_domain(raw)?;
            let labels: Vec<&str> = domain.split('.').collect();
            let name = labels[registrable(&labels)].to_owned();
            (name, Some(domain))
        } else {
            (raw.to_owned(), None)
        };
        let key = skeleton(&name);
        (key.chars().count() >= 3 && key.chars().all(char::is_alphanumeric)).then(|| Brand {
            shown: raw.to_owned(),
            plain: plain(&name),
            key,
            domain,
        })
    }
}

/// A tenant's checks, compiled once for many messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentRules {
    pub enabled: bool,
    pub threshold: u32,
    pub action: CheckAction,
    /// The tenant listed allowed or brand domains: other domains are scored.
    domains_listed: bool,
    allowed: Vec<String>,
    /// Brand domains and the server's own: never scored, even when not listed as allowed.
    trusted: Vec<String>,
    brands: Vec<Brand>,
    /// By [`ReasonCode::ALL`]'s order.
    weights: [u32; 9],
}

impl Default for ContentRules {
    fn default() -> Self {
        ContentChecks::default().rules(&[])
    }
}

/// One reason a message scored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: ReasonCode,
    pub weight: u32,
    /// What was seen, e.g. "`ma-banque-securite.com` adds words to the brand `mabanque.fr`".
    pub detail: String,
}

/// What the checks found in one message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    pub score: u32,
    pub reasons: Vec<Reason>,
}

/// What becomes of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send,
    Hold,
    Refuse,
}

impl Assessment {
    /// The reasons in one line, for an event's detail or a refusal.
    pub fn summary(&self) -> String {
        let reasons: Vec<String> = self
            .reasons
            .iter()
            .map(|r| format!("{} (+{}): {}", r.code, r.weight, r.detail))
            .collect();
        format!("score {}: {}", self.score, reasons.join("; "))
    }

    fn add(&mut self, code: ReasonCode, weight: u32, detail: String) {
        if weight == 0 {
            return;
        }
        self.score = self.score.saturating_add(weight);
        self.reasons.push(Reason {
            code,
            weight,
            detail,
        });
    }
}

impl ContentRules {
    fn weight(&self, code: ReasonCode) -> u32 {
        ReasonCode::ALL
            .iter()
            .position(|c| *c == code)
            .map_or(0, |i| self.weights[i])
    }

    /// Scores the texts of one message (its text, captions, buttons' links…).
    pub fn assess<'a>(&self, texts: impl IntoIterator<Item = &'a str>) -> Assessment {
        let mut assessment = Assessment::default();
        if !self.enabled {
            return assessment;
        }
        let mut hosts: Vec<Host> = Vec::new();
        let mut phrases: Vec<&'static str> = Vec::new();
        for text in texts {
            for host in link_hosts(text) {
                if !hosts.contains(&host) {
                    hosts.push(host);
                }
            }
            for phrase in phrasing::phrases_in(text) {
                if !phrases.contains(&phrase) {
                    phrases.push(phrase);
                }
            }
        }
        for host in &hosts {
            self.assess_host(host, &mut assessment);
        }
        if !phrases.is_empty() {
            let quoted: Vec<String> = phrases.iter().map(|p| format!("\"{p}\"")).collect();
            assessment.add(
                ReasonCode::CredentialPhrasing,
                self.weight(ReasonCode::CredentialPhrasing),
                format!(
                    "asks for credentials or threatens the account: {}",
                    quoted.join(", ")
                ),
            );
        }
        assessment
    }

    /// What becomes of a message with this assessment.
    pub fn verdict(&self, assessment: &Assessment) -> Verdict {
        if !self.enabled || assessment.score < self.threshold {
            return Verdict::Send;
        }
        match self.action {
            CheckAction::Hold => Verdict::Hold,
            CheckAction::Refuse => Verdict::Refuse,
        }
    }

    fn assess_host(&self, host: &Host, out: &mut Assessment) {
        let name = &host.name;
        let within = |domains: &[String]| domains.iter().any(|d| host.is_within(d));
        if within(&self.trusted) || within(&self.allowed) {
            return;
        }
        if host.ip.is_some() {
            out.add(
                ReasonCode::IpLiteral,
                self.weight(ReasonCode::IpLiteral),
                format!("`{name}` is an address, not a domain name"),
            );
            return;
        }
        if SHORTENERS.iter().any(|s| host.is_within(s)) {
            out.add(
                ReasonCode::Shortener,
                self.weight(ReasonCode::Shortener),
                format!(
                    "`{name}` is a third-party link shortener, which hides where the link goes"
                ),
            );
            return;
        }
        if host.punycode {
            out.add(
                ReasonCode::PunycodeDomain,
                self.weight(ReasonCode::PunycodeDomain),
                format!("`{name}` is written in punycode (`xn--`)"),
            );
        }
        if let Some((code, detail)) = self.lookalike(host) {
            out.add(code, self.weight(code), detail);
        }
        if self.domains_listed {
            out.add(
                ReasonCode::DomainNotAllowed,
                self.weight(ReasonCode::DomainNotAllowed),
                format!("`{name}` is not among the tenant's allowed domains"),
            );
        }
    }

    /// The strongest look-alike of a brand that the host is, if any.
    fn lookalike(&self, host: &Host) -> Option<(ReasonCode, String)> {
        let labels: Vec<&str> = host.labels().collect();
        let first = registrable(&labels);
        let label = labels.get(first)?;
        let key = skeleton(label);
        let name = &host.name;
        for brand in &self.brands {
            let shown = &brand.shown;
            if key == brand.key {
                return Some(if plain(label) == brand.plain {
                    (
                        ReasonCode::BrandName,
                        format!(
                            "`{name}` uses the brand `{shown}` on a domain that is not the brand's"
                        ),
                    )
                } else {
                    (
                        ReasonCode::LookalikeHomoglyph,
                        format!("`{name}` reads as the brand `{shown}` with look-alike characters"),
                    )
                });
            }
        }
        for brand in &self.brands {
            let shown = &brand.shown;
            let in_subdomain = labels[..first]
                .iter()
                .any(|l| skeleton(l).contains(&brand.key));
            if key.contains(&brand.key) || in_subdomain {
                return Some((
                    ReasonCode::LookalikeAddedWords,
                    format!("`{name}` adds words to the brand `{shown}`"),
                ));
            }
        }
        for brand in &self.brands {
            let shown = &brand.shown;
            let length = brand.key.chars().count();
            // One edit in names of 5 to 7 letters, two from 8: closer names are other words.
            let max = match length {
                0..=4 => continue,
                5..=7 => 1,
                _ => 2,
            };
            if distance_within(&key, &brand.key, max) <= max {
                return Some((
                    ReasonCode::LookalikeTypo,
                    format!("`{name}` is a letter or two away from the brand `{shown}`"),
                ));
            }
        }
        None
    }
}

/// What a person reads of a content, for [`ContentRules::assess`]: its text, captions,
/// titles, buttons' links, quick replies. A media file's `url` is left out: the provider
/// fetches it, the person never sees or follows it. A provider template's variables are
/// its values, read from the content's JSON.
pub fn texts_of(content: &Content) -> Vec<String> {
    fn walk(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            serde_json::Value::Object(fields) => fields.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    let mut content = content.clone();
    if let Body::Template(_) = &content.body
        && let Ok(json) = serde_json::to_value(&content)
    {
        walk(&json, &mut out);
    }
    let _ = content.try_for_each_text_mut(|field, value| -> Result<(), ()> {
        let media_file = field.ends_with(".url") && !field.contains("buttons[");
        if !media_file && !field.ends_with(".payload") {
            out.push(value.clone());
        }
        Ok(())
    });
    out
}
