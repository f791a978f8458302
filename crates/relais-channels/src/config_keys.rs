//! Reading the keys of a channel's `config` object, with errors that point at the key
//! (RFC 6901 JSON pointers, such as `/access_token`): the pieces every HTTP channel's
//! config shares.

use crate::configured::ConfigError;
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
    fn pointers_escape_their_key() {
        assert_eq!(pointer("a/b~c"), "/a~1b~0c");
    }
}
