//! The HTTP plumbing the token exchange, the capability check and the send share: reading
//! an answer with a bound, naming a request that got none, and URL-encoding values.

use super::errors::ErrorCode;
use crate::adapter::SendError;
use crate::whatsapp::adapter::SEND_TIMEOUT;

/// Answers larger than this are not read further: Google's are a few hundred bytes, and a
/// broken proxy must not make us buffer without bound.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// The answer's body, at most [`MAX_ANSWER_BYTES`] of it.
pub(crate) async fn read_answer(
    mut response: reqwest::Response,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_ANSWER_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ANSWER_BYTES {
            break;
        }
    }
    Ok(body)
}

/// A request to `what` that got no answer: the network, DNS, TLS or the 10 s timeout.
pub(crate) fn unanswered(what: &str, error: reqwest::Error) -> SendError {
    // The URL carries nothing secret, but the event log needs no query strings.
    let error = error.without_url();
    let how = if error.is_timeout() {
        format!("no answer within {} s", SEND_TIMEOUT.as_secs())
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    ErrorCode::ProviderUnavailable.error(format!("{what}: {how}: {error}"))
}

/// `value` percent-encoded for a query or a form body: everything but RFC 3986's
/// unreserved characters is escaped, so ids with `@` or `+` arrive as they were.
pub(super) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `key=value&…`, each part encoded.
pub(super) fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{}={}", encode(key), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_but_unreserved_characters() {
        assert_eq!(encode("acme_ab12-cd.34~"), "acme_ab12-cd.34~");
        assert_eq!(encode("a@rbm.goog"), "a%40rbm.goog");
        assert_eq!(encode("+33 6"), "%2B33%206");
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn a_form_joins_encoded_pairs() {
        assert_eq!(
            form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", "a.b.c")
            ]),
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b.c"
        );
    }
}
