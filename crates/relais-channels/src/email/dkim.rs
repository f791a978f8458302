//! DKIM signatures (RFC 6376): `rsa-sha256`, `relaxed/relaxed` canonicalisation, with the
//! channel's PKCS#8 RSA key, so that the receiving servers can check that mail claiming
//! to come from `d=` was sent by someone holding the key published under
//! `{s}._domainkey.{d}`.
//!
//! The signature covers the body (`bh=`) and the headers named in [`SIGNED_HEADERS`]
//! that the message has; it is added as the first header, over the bytes that are sent.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;

/// The headers signed when the message has them (in this order; `h=` lists those present).
pub const SIGNED_HEADERS: [&str; 9] = [
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "list-unsubscribe",
    "list-unsubscribe-post",
];

/// Why a DKIM key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DkimError {
    #[error(
        "`dkim_private_key` must be a PKCS#8 RSA private key in PEM (-----BEGIN PRIVATE KEY-----), such as `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048` writes: {0}"
    )]
    Key(String),
    #[error("the message to sign has no header/body separator")]
    NoBody,
    #[error("signing failed")]
    Sign,
}

/// The key a channel signs with, and the domain and selector it is published under.
#[derive(Clone)]
pub struct DkimKey {
    domain: String,
    selector: String,
    key: Arc<RsaKeyPair>,
}

impl fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DkimKey")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("key", &"***")
            .finish()
    }
}

impl DkimKey {
    /// Reads a PEM (or bare base64) PKCS#8 RSA key.
    pub fn new(domain: &str, selector: &str, pem: &str) -> Result<DkimKey, DkimError> {
        let base64: String = pem
            .lines()
            .map(str::trim)
            .filter(|line| !line.starts_with("-----"))
            .collect();
        let der = STANDARD
            .decode(base64.as_bytes())
            .map_err(|_| DkimError::Key("it is not base64 between the PEM lines".into()))?;
        let key = RsaKeyPair::from_pkcs8(&der).map_err(|e| DkimError::Key(e.to_string()))?;
        Ok(DkimKey {
            domain: domain.to_ascii_lowercase(),
            selector: selector.to_owned(),
            key: Arc::new(key),
        })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }
    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// The message with a `DKIM-Signature` header in front; `timestamp` is `t=` (seconds).
    pub fn sign(&self, message: &[u8], timestamp: i64) -> Result<Vec<u8>, DkimError> {
        let split = find(message, b"\r\n\r\n").ok_or(DkimError::NoBody)?;
        let (head, body) = (&message[..split + 2], &message[split + 4..]);
        let headers = header_fields(head);
        let body_hash = STANDARD.encode(Sha256::digest(relaxed_body(body)));
        let mut signed = Vec::new();
        let mut names = Vec::new();
        for name in SIGNED_HEADERS {
            if let Some(field) = headers
                .iter()
                .rev()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                signed.extend_from_slice(relaxed_header(&field.0, &field.1).as_bytes());
                names.push(name);
            }
        }
        let value = format!(
            "v=1; a=rsa-sha256; c=relaxed/relaxed; d={}; s={};\r\n\tt={timestamp}; h={};\r\n\tbh={body_hash};\r\n\tb=",
            self.domain,
            self.selector,
            names.join(":")
        );
        let own = relaxed_header("DKIM-Signature", &value);
        signed.extend_from_slice(own.trim_end_matches("\r\n").as_bytes());
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                &signed,
                &mut signature,
            )
            .map_err(|_| DkimError::Sign)?;
        let b = STANDARD.encode(&signature);
        let mut out = Vec::with_capacity(message.len() + 600);
        out.extend_from_slice(b"DKIM-Signature: ");
        out.extend_from_slice(value.as_bytes());
        // Folded at 72 columns: relaxed canonicalisation removes the folding again.
        let folded: Vec<&str> = b
            .as_bytes()
            .chunks(72)
            .map(|chunk| std::str::from_utf8(chunk).unwrap_or_default())
            .collect();
        out.extend_from_slice(folded.join("\r\n\t").as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(message);
        Ok(out)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The header fields of a header block: (name, value with its folding), in order.
fn header_fields(head: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(head);
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.1.push_str("\r\n");
                last.1.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.to_owned(), value.to_owned()));
        }
    }
    fields
}

/// RFC 6376 §3.4.2: lower-case name, unfolded value, runs of blanks as one space, no
/// blanks around the value, `name:value\r\n`.
fn relaxed_header(name: &str, value: &str) -> String {
    let unfolded = value.replace("\r\n", "");
    let collapsed = collapse_blanks(&unfolded);
    format!(
        "{}:{}\r\n",
        name.trim().to_ascii_lowercase(),
        collapsed.trim_matches(' ')
    )
}

fn collapse_blanks(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = false;
    for c in s.chars() {
        if c == ' ' || c == '\t' {
            blank = true;
        } else {
            if blank {
                out.push(' ');
                blank = false;
            }
            out.push(c);
        }
    }
    if blank {
        out.push(' ');
    }
    out
}

/// RFC 6376 §3.4.4: runs of blanks as one space, none at line ends, no empty lines at
/// the end, and a final CRLF unless the body is empty.
fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let body = body.strip_suffix(b"\r\n").unwrap_or(body);
    for line in body.split_inclusive_crlf() {
        let mut out = Vec::with_capacity(line.len());
        let mut blank = false;
        for &b in line {
            if b == b' ' || b == b'\t' {
                blank = true;
            } else {
                if blank {
                    out.push(b' ');
                    blank = false;
                }
                out.push(b);
            }
        }
        lines.push(out);
    }
    while lines.last().is_some_and(Vec::is_empty) {
        lines.pop();
    }
    let mut out = Vec::new();
    for line in lines {
        out.extend_from_slice(&line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

trait SplitCrlf {
    fn split_inclusive_crlf(&self) -> Vec<&[u8]>;
}

impl SplitCrlf for [u8] {
    /// The lines between CRLFs (without them); an empty input is one empty line.
    fn split_inclusive_crlf(&self) -> Vec<&[u8]> {
        let mut lines = Vec::new();
        let mut rest = self;
        while let Some(at) = find(rest, b"\r\n") {
            lines.push(&rest[..at]);
            rest = &rest[at + 2..];
        }
        lines.push(rest);
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaxed_canonicalisation_follows_rfc_6376_examples() {
        // RFC 6376 §3.4.5.
        assert_eq!(relaxed_header("A", " X"), "a:X\r\n");
        assert_eq!(relaxed_header("B ", " Y\t\r\n\tZ  "), "b:Y Z\r\n");
        assert_eq!(relaxed_body(b" C \r\nD \t E\r\n\r\n\r\n"), b" C\r\nD E\r\n");
        assert_eq!(relaxed_body(b""), b"");
        assert_eq!(relaxed_body(b"\r\n\r\n"), b"");
    }

    #[test]
    fn a_key_that_is_not_pkcs8_is_refused() {
        let err = DkimKey::new(
            "example.com",
            "s1",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        )
        .unwrap_err();
        assert!(matches!(err, DkimError::Key(_)), "{err}");
    }
}
