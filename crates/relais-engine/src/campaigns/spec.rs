//! The body of `POST /v1/campaigns`, checked once where it enters: what to send (content
//! or a template, or variants of it), to whom (a saved segment or a filter), on which
//! channels, and how (send window, end, throughput, A/B test, send-time optimisation).

use super::CampaignError;
use jiff::{SignedDuration, Timestamp};
use relais_core::campaign::CampaignLabel;
use relais_core::campaign::split::{Split, WinMetric};
use relais_core::campaign::timing::DailyWindow;
use relais_core::consent::Purpose;
use relais_core::content::Content;
use relais_core::fallback::FallbackChain;
use relais_core::retry::parse_duration;
use serde::Deserialize;

/// Most variants a campaign may have.
pub const MAX_VARIANTS: usize = 10;
/// Fastest throughput a campaign may ask for, in messages per second.
pub const MAX_RATE: f64 = 100_000.0;
/// Longest test period of an A/B test.
pub const MAX_TEST_PERIOD: SignedDuration = SignedDuration::from_hours(30 * 24);
/// Longest conversion window: a purchase three months after a text owes it nothing.
pub const MAX_CONVERSION_WINDOW: SignedDuration = SignedDuration::from_hours(90 * 24);
/// The conversion window when the campaign names none.
pub const DEFAULT_CONVERSION_WINDOW: &str = "7d";

/// A campaign as created.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignSpec {
    /// Also the campaign label of its messages (`GET /v1/messages?campaign=`).
    pub name: String,
    /// A saved segment, by id or name…
    #[serde(default)]
    pub segment: Option<String>,
    /// …or a filter of its own.
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default)]
    pub content: Option<Content>,
    /// A text template, as `POST /v1/messages` takes it.
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub variables: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub variants: Vec<VariantSpec>,
    #[serde(default)]
    pub ab_test: Option<AbTestSpec>,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub channels: Option<FallbackChain>,
    #[serde(default)]
    pub purpose: Option<Purpose>,
    #[serde(default)]
    pub from: Option<String>,
    /// The hours of the day, in each recipient's time zone, when they may be reached.
    #[serde(default)]
    pub window: Option<DailyWindow>,
    /// After this, recipients not yet sent to are skipped (`after_end`).
    #[serde(default)]
    pub ends_at: Option<Timestamp>,
    /// Messages per second at most; as fast as the store takes them without it.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Send each recipient's message at the hour they usually engage.
    #[serde(default)]
    pub right_time: bool,
    /// `false` leaves the links of the content as they are (by default they become
    /// tracked short links when the server has a public URL).
    #[serde(default)]
    pub track_links: Option<bool>,
    /// The customer event that counts as a conversion (`POST /v1/events`), and the
    /// window after a message within which it is credited to it.
    #[serde(default)]
    pub conversion: Option<ConversionSpec>,
}

/// A campaign's conversion event.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversionSpec {
    pub event: String,
    #[serde(default)]
    pub window: Option<String>,
}

/// A checked conversion: an event of this name counts for the last message sent to the
/// contact before it, when it came within `window` after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    pub event: String,
    pub window: SignedDuration,
}

/// One variant of the content.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantSpec {
    pub name: String,
    #[serde(default = "one")]
    pub weight: u32,
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub template: Option<String>,
}

fn one() -> u32 {
    1
}

/// An A/B test: the variants go to `share` of the recipients first; after `after`, the
/// best by `metric` goes to the rest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbTestSpec {
    pub share: f64,
    pub metric: WinMetric,
    pub after: String,
}

/// What a recipient gets.
#[derive(Debug, Clone)]
pub struct Variant {
    /// `None` for a campaign without variants.
    pub name: Option<String>,
    pub content: Option<Content>,
    pub template: Option<String>,
}

/// A checked campaign.
#[derive(Debug, Clone)]
pub struct Campaign {
    pub spec: CampaignSpec,
    pub label: CampaignLabel,
    pub variants: Vec<Variant>,
    pub split: Split,
    /// The A/B test's metric and period.
    pub test: Option<(WinMetric, SignedDuration)>,
    pub purpose: Purpose,
    pub conversion: Option<Conversion>,
}

fn invalid(pointer: &str, detail: impl Into<String>) -> CampaignError {
    CampaignError::Invalid {
        pointer: pointer.to_owned(),
        detail: detail.into(),
    }
}

impl Campaign {
    /// Reads and checks a campaign's JSON.
    pub fn from_json(body: &serde_json::Value) -> Result<Campaign, CampaignError> {
        let spec: CampaignSpec = serde_path_to_error::deserialize(body).map_err(|e| {
            let path = e.path().to_string();
            let pointer = if path == "." {
                String::new()
            } else {
                format!("/{}", path.replace('.', "/"))
            };
            invalid(&pointer, e.into_inner().to_string())
        })?;
        Campaign::check(spec)
    }

    fn check(spec: CampaignSpec) -> Result<Campaign, CampaignError> {
        let label =
            CampaignLabel::parse(&spec.name).map_err(|e| invalid("/name", e.to_string()))?;
        match (&spec.segment, &spec.filter) {
            (Some(_), Some(_)) => {
                return Err(invalid("/filter", "give `segment` or `filter`, not both"));
            }
            (None, None) => {
                return Err(invalid(
                    "/segment",
                    "a campaign needs its recipients: `segment` (a saved segment's id or name) or `filter`",
                ));
            }
            (None, Some(filter)) => {
                relais_core::segment::Filter::parse(filter)
                    .map_err(|e| invalid("/filter", e.to_string()))?;
            }
            _ => {}
        }
        if spec.channel.is_some() && spec.channels.is_some() {
            return Err(invalid(
                "/channels",
                "give `channel` or `channels`, not both",
            ));
        }
        let has_body = |content: &Option<Content>, template: &Option<String>, at: &str| match (
            content, template,
        ) {
            (Some(_), Some(_)) => Err(invalid(at, "give `content` or `template`, not both")),
            (None, None) => Err(invalid(at, "say what to send: `content` or `template`")),
            _ => Ok(()),
        };
        let variants = if spec.variants.is_empty() {
            has_body(&spec.content, &spec.template, "/content")?;
            vec![Variant {
                name: None,
                content: spec.content.clone(),
                template: spec.template.clone(),
            }]
        } else {
            if spec.content.is_some() || spec.template.is_some() {
                return Err(invalid(
                    "/content",
                    "with `variants`, each variant has its own `content` or `template`",
                ));
            }
            if spec.variants.len() > MAX_VARIANTS {
                return Err(invalid(
                    "/variants",
                    format!("a campaign has at most {MAX_VARIANTS} variants"),
                ));
            }
            let mut names = std::collections::HashSet::new();
            for (i, v) in spec.variants.iter().enumerate() {
                let at = format!("/variants/{i}");
                if v.name.trim().is_empty() || v.name.len() > 64 {
                    return Err(invalid(
                        &format!("{at}/name"),
                        "a variant's name has 1 to 64 characters",
                    ));
                }
                if !names.insert(v.name.as_str()) {
                    return Err(invalid(
                        &format!("{at}/name"),
                        format!("two variants are named `{}`", v.name),
                    ));
                }
                has_body(&v.content, &v.template, &format!("{at}/content"))?;
            }
            spec.variants
                .iter()
                .map(|v| Variant {
                    name: Some(v.name.clone()),
                    content: v.content.clone(),
                    template: v.template.clone(),
                })
                .collect()
        };
        let test = match &spec.ab_test {
            None => None,
            Some(ab) => {
                let period = parse_duration("after", &ab.after)
                    .map_err(|e| invalid("/ab_test/after", e.to_string()))?;
                if period <= SignedDuration::ZERO || period > MAX_TEST_PERIOD {
                    return Err(invalid(
                        "/ab_test/after",
                        "the test period lasts more than zero and at most 30 days",
                    ));
                }
                Some((ab.metric, period))
            }
        };
        let conversion = match &spec.conversion {
            None => None,
            Some(c) => {
                relais_core::journey::check_name(&c.event)
                    .map_err(|e| invalid("/conversion/event", e))?;
                let raw = c.window.as_deref().unwrap_or(DEFAULT_CONVERSION_WINDOW);
                let window = parse_duration("window", raw)
                    .map_err(|e| invalid("/conversion/window", e.to_string()))?;
                if window <= SignedDuration::ZERO || window > MAX_CONVERSION_WINDOW {
                    return Err(invalid(
                        "/conversion/window",
                        "the conversion window lasts more than zero and at most 90 days",
                    ));
                }
                Some(Conversion {
                    event: c.event.clone(),
                    window,
                })
            }
        };
        if matches!(test, Some((WinMetric::Converted, _))) && conversion.is_none() {
            return Err(invalid(
                "/ab_test/metric",
                "the `converted` metric needs the campaign's `conversion` event: \
                 `\"conversion\": {\"event\": \"purchase\"}`",
            ));
        }
        let weights = spec.variants.iter().map(|v| v.weight).collect();
        let split = Split::new(weights, spec.ab_test.as_ref().map(|ab| ab.share)).map_err(|e| {
            let at = if spec.ab_test.is_some()
                && !matches!(e, relais_core::campaign::split::SplitError::ZeroWeight)
            {
                "/ab_test"
            } else {
                "/variants"
            };
            invalid(at, e.to_string())
        })?;
        if let Some(rate) = spec.rate
            && !(rate > 0.0 && rate <= MAX_RATE)
        {
            return Err(invalid(
                "/rate",
                format!("the rate is more than 0 and at most {MAX_RATE} messages per second"),
            ));
        }
        if let Some(window) = &spec.window {
            DailyWindow::new(window.start, window.end)
                .map_err(|e| invalid("/window", e.to_string()))?;
        }
        let purpose = spec.purpose.clone().unwrap_or(Purpose::Marketing);
        Ok(Campaign {
            label,
            variants,
            split,
            test,
            conversion,
            purpose,
            spec,
        })
    }

    /// The variant of this name, if the campaign has it.
    pub fn variant_index(&self, name: &str) -> Option<usize> {
        self.variants
            .iter()
            .position(|v| v.name.as_deref() == Some(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(body: serde_json::Value) -> (String, String) {
        match Campaign::from_json(&body) {
            Err(CampaignError::Invalid { pointer, detail }) => (pointer, detail),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_campaign_with_an_ab_test_reads_its_variants_split_and_period() {
        let campaign = Campaign::from_json(&json!({
            "name": "soldes-hiver",
            "segment": "lyon",
            "variants": [
                {"name": "A", "content": {"text": "-20 %"}},
                {"name": "B", "weight": 1, "content": {"text": "Soldes !"}}
            ],
            "ab_test": {"share": 0.2, "metric": "read", "after": "4h"},
            "channels": ["whatsapp", "sms"],
            "window": {"start": "09:00", "end": "20:00"},
            "rate": 50
        }))
        .unwrap();
        assert_eq!(campaign.variants.len(), 2);
        assert!(campaign.split.is_ab_test());
        assert_eq!(
            campaign.test,
            Some((WinMetric::Read, SignedDuration::from_hours(4)))
        );
        assert_eq!(campaign.purpose, Purpose::Marketing);
        assert_eq!(campaign.variant_index("B"), Some(1));
    }

    #[test]
    fn mistakes_are_refused_with_the_field_that_holds_them() {
        let base = json!({"name": "x", "segment": "s", "content": {"text": "hi"}});
        let with = |key: &str, value: serde_json::Value| {
            let mut b = base.clone();
            b[key] = value;
            b
        };
        assert_eq!(refused(with("name", json!("a b"))).0, "/name");
        assert_eq!(refused(with("filter", json!("locale = 'fr'"))).0, "/filter");
        assert_eq!(
            refused(json!({"name": "x", "content": {"text": "hi"}})).0,
            "/segment"
        );
        assert_eq!(
            refused(json!({"name": "x", "filter": "locale =", "content": {"text": "hi"}})).0,
            "/filter"
        );
        assert_eq!(refused(with("rate", json!(0))).0, "/rate");
        assert_eq!(refused(with("template", json!("x"))).0, "/content");
        assert_eq!(
            refused(with("window", json!({"start": "09:00", "end": "09:00"}))).0,
            "/window"
        );
        assert_eq!(refused(with("colour", json!("red"))).0, "/colour");
        let ab = json!({"name": "x", "segment": "s",
            "variants": [{"name": "A", "content": {"text": "a"}}],
            "ab_test": {"share": 0.2, "metric": "read", "after": "4h"}});
        assert_eq!(refused(ab).0, "/ab_test");
        let twice = json!({"name": "x", "segment": "s",
            "variants": [{"name": "A", "content": {"text": "a"}}, {"name": "A", "content": {"text": "b"}}]});
        assert_eq!(refused(twice).0, "/variants/1/name");
    }
}
