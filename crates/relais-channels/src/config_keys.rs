//! Reading the keys of a channel's `config` object, with errors that point at the key
//! (RFC 6901 JSON pointers, such as `/access_token`): the pieces every HTTP channel's
//! config shares, and the routing keys every kind of channel may carry ([`routing`]).

use crate::configured::ConfigError;
use relais_core::route::{DEFAULT_WEIGHT, MAX_WEIGHT, RouteRuleError, RouteRules};
use serde_json::{Map, Value};

pub(crate) fn error(pointer: &str, detail: impl Into<String>) -> ConfigError {
    ConfigError::new(pointer, detail)
}

pub(crate) fn required(key: &str) -> ConfigError {
    error(&pointer(key), format!("`{key}` is required"))
}

/// The JSON pointer of a top-level key (RFC 6901 escapes `~` and `/`).
pub(crate) fn pointer(key: &str) -> String {
    format!("/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// A string key; `None` when it is absent or null.
pub(crate) fn string<'v>(
    object: &'v Map<String, Value>,
    key: &str,
) -> Result<Option<&'v str>, ConfigError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(error(&pointer(key), format!("`{key}` must be a string"))),
    }
}

/// The bounds of `max_rate`: one message a day (below is a typo, and its pause would not
/// fit a timer), and far above any provider's quota.
const MIN_MAX_RATE: f64 = 1.0 / 86_400.0;
const MAX_MAX_RATE: f64 = 10_000.0;

/// `max_rate`, in messages per second; `default` when it is absent or null.
pub(crate) fn max_rate(object: &Map<String, Value>, default: f64) -> Result<f64, ConfigError> {
    match object.get("max_rate") {
        None | Some(Value::Null) => Ok(default),
        Some(rate) => rate
            .as_f64()
            .filter(|rate| (MIN_MAX_RATE..=MAX_MAX_RATE).contains(rate))
            .ok_or_else(|| {
                error(
                    "/max_rate",
                    format!(
                        "`max_rate` must be from {MIN_MAX_RATE} to {MAX_MAX_RATE} messages per second"
                    ),
                )
            }),
    }
}

/// A `true` / `false` key; `default` when it is absent or null.
pub(crate) fn flag(
    object: &Map<String, Value>,
    key: &str,
    default: bool,
) -> Result<bool, ConfigError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(on)) => Ok(*on),
        Some(_) => Err(error(
            &pointer(key),
            format!("`{key}` must be true or false"),
        )),
    }
}

/// A required, non-empty string key (a token, a secret).
pub(crate) fn secret(object: &Map<String, Value>, key: &str) -> Result<String, ConfigError> {
    match string(object, key)? {
        Some(value) if !value.trim().is_empty() => Ok(value.to_owned()),
        Some(_) => Err(error(&pointer(key), format!("`{key}` must not be empty"))),
        None => Err(required(key)),
    }
}

/// An http:// or https:// address with a host and no query or fragment, without its
/// trailing slash; `at` is the key's pointer, `example` a good value for the error.
pub(crate) fn checked_url(at: &str, url: &str, example: &str) -> Result<String, ConfigError> {
    let trimmed = url.trim().trim_end_matches('/');
    let lower = trimmed.to_ascii_lowercase();
    let host = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .unwrap_or_default();
    let ok = !host.is_empty()
        && !host.starts_with('/')
        && !trimmed
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#');
    if ok {
        Ok(trimmed.to_owned())
    } else {
        let key = at.rsplit('/').next().unwrap_or(at);
        Err(error(
            at,
            format!(
                "`{key}` must be an http:// or https:// address without query, such as {example}"
            ),
        ))
    }
}

/// The keys every kind of channel may carry besides its own: where it routes ([`routing`]).
pub(crate) const ROUTING_KEYS: [&str; 3] = ["prefixes", "countries", "weight"];

/// Refuses a key that is neither one of the kind's `keys` nor a routing key, so that a
/// typo (`acces_token`) never goes unnoticed.
pub(crate) fn refuse_unknown_keys(
    object: &Map<String, Value>,
    keys: &[&str],
) -> Result<(), ConfigError> {
    let known = |key: &str| keys.contains(&key) || ROUTING_KEYS.contains(&key);
    match object.keys().find(|key| !known(key)) {
        Some(unknown) => Err(error(
            &pointer(unknown),
            format!(
                "unknown key `{unknown}`; expected one of {}, {}",
                keys.join(", "),
                ROUTING_KEYS.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

/// The routing keys of a channel of any kind: `prefixes` (E.164 prefixes, `["+336"]`),
/// `countries` (ISO codes, `["FR"]`), both empty by default (the channel takes any
/// destination), and `weight` (1 by default, at most [`MAX_WEIGHT`]).
pub(crate) fn routing(config: &Value) -> Result<RouteRules, ConfigError> {
    let Some(object) = config.as_object() else {
        return Err(error("", "the config must be a JSON object"));
    };
    let prefixes = string_list(object, "prefixes", "+336")?;
    let countries = string_list(object, "countries", "FR")?;
    let weight = match object.get("weight") {
        None | Some(Value::Null) => DEFAULT_WEIGHT,
        Some(value) => value
            .as_u64()
            .and_then(|w| u32::try_from(w).ok())
            .ok_or_else(weight_error)?,
    };
    RouteRules::new(prefixes, countries, weight).map_err(|e| {
        let at = match &e {
            RouteRuleError::Prefix { index, .. } => format!("{}/{index}", pointer("prefixes")),
            RouteRuleError::Country { index, .. } => format!("{}/{index}", pointer("countries")),
            RouteRuleError::Weight => return weight_error(),
        };
        error(&at, e.to_string())
    })
}

fn weight_error() -> ConfigError {
    error(
        &pointer("weight"),
        format!(
            "`weight` must be a whole number from 1 to {MAX_WEIGHT} (default {DEFAULT_WEIGHT})"
        ),
    )
}

/// A list of strings; empty when absent or null.
fn string_list(
    object: &Map<String, Value>,
    key: &str,
    example: &str,
) -> Result<Vec<String>, ConfigError> {
    let items = match object.get(key) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(error(
                &pointer(key),
                format!("`{key}` must be a list of strings, such as [\"{example}\"]"),
            ));
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::String(s) => Ok(s.clone()),
            _ => Err(error(
                &format!("{}/{index}", pointer(key)),
                format!("`{key}` must be a list of strings, such as [\"{example}\"]"),
            )),
        })
        .collect()
}

/// `v` then `major.minor`, as Meta names Graph API versions (`v23.0`).
pub(crate) fn is_graph_api_version(version: &str) -> bool {
    let Some((major, minor)) = version
        .strip_prefix('v')
        .and_then(|rest| rest.split_once('.'))
    else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(major) && digits(minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_a_host_and_lose_a_trailing_slash() {
        assert_eq!(
            checked_url("/base_url", " http://127.0.0.1:9000/ ", "x").unwrap(),
            "http://127.0.0.1:9000"
        );
        for bad in [
            "ftp://x",
            "https://",
            "https:///path",
            "https://h?q=1",
            "h t",
        ] {
            let e = checked_url("/base_url", bad, "https://example.com").unwrap_err();
            assert_eq!(e.pointer, "/base_url", "{bad}");
            assert!(e.detail.contains("https://example.com"), "{e}");
        }
    }

    #[test]
    fn graph_versions_are_v_major_dot_minor() {
        assert!(is_graph_api_version("v23.0"));
        for bad in ["23.0", "v23", "v.0", "v23.x", ""] {
            assert!(!is_graph_api_version(bad), "{bad}");
        }
    }

    #[test]
    fn routing_keys_have_defaults_and_point_at_the_bad_item() {
        use serde_json::json;
        let none = routing(&json!({"host": "h"})).unwrap();
        assert!(none.takes_all());
        assert_eq!(none.weight(), 1);
        let some =
            routing(&json!({"prefixes": ["+336", "+337"], "countries": ["fr"], "weight": 3}))
                .unwrap();
        assert_eq!(some.prefixes(), ["+336", "+337"]);
        assert_eq!(some.countries(), ["FR"]);
        assert_eq!(some.weight(), 3);
        let at = |v: serde_json::Value| routing(&v).unwrap_err().pointer;
        assert_eq!(at(json!({"prefixes": "+336"})), "/prefixes");
        assert_eq!(at(json!({"prefixes": ["+336", "337"]})), "/prefixes/1");
        assert_eq!(at(json!({"prefixes": [336]})), "/prefixes/0");
        assert_eq!(at(json!({"countries": ["France"]})), "/countries/0");
        for bad in [json!(0), json!(-1), json!(1.5), json!("2"), json!(1001)] {
            assert_eq!(at(json!({"weight": bad})), "/weight");
        }
    }

    #[test]
    fn pointers_escape_their_key() {
        assert_eq!(pointer("a/b~c"), "/a~1b~0c");
    }
}
