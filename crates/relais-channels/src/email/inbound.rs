//! One raw RFC 5322 message posted by the relay, read into what Relais keeps: a person's
//! mail ([`Reply`]), a delivery status notification about a mail Relais sent ([`Bounce`],
//! RFC 3464), or nothing (an automatic answer such as an out-of-office, RFC 3834).
//!
//! - A person's mail: the `From` address is the sender; the text is the `text/plain`
//!   part (the HTML part as text when there is none), without the quoted message it
//!   answers (lines starting with `>`, and everything from an `On … wrote:` line or an
//!   `-----Original Message-----` line on) and without the signature after `-- `. Its
//!   `Message-ID` is the provider id, so a redelivery is stored once; a mail without one
//!   gets `sha256:` and the digest of its bytes.
//! - A bounce (`multipart/report; report-type=delivery-status`): the first recipient
//!   whose `Action` is `failed`, with its `Status` and `Diagnostic-Code`; the message it
//!   is about is named by an `Original-Message-ID` field or by the `Message-ID` of the
//!   returned message or headers. A `delayed` or `delivered` report changes nothing.

use mail_parser::{MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

/// A mail a person wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The `From` address, in lower case.
    pub from: String,
    pub text: String,
    /// The `Message-ID` without brackets (or `sha256:…` of the bytes).
    pub message_id: String,
    /// The `Message-ID`s of `In-Reply-To` then `References`, without brackets: which
    /// messages this one answers.
    pub answers: Vec<String>,
}

/// A delivery that failed for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounce {
    /// The `Message-ID` of the mail Relais sent, without brackets: its provider id.
    pub message_id: String,
    /// The recipient the report is about (`Final-Recipient`).
    pub recipient: Option<String>,
    /// The RFC 3463 status code, such as `5.1.1`.
    pub status: String,
    /// The remote server's answer (`Diagnostic-Code`), when the report gives it.
    pub diagnostic: Option<String>,
}

impl Bounce {
    /// A `5.x.x` status: the address will not work later either.
    pub fn is_hard(&self) -> bool {
        self.status.starts_with('5')
    }

    /// The mailbox itself is refused for good (RFC 3463 `5.1.x`, a bad destination
    /// address: unknown user, unknown domain; `5.2.1`, a disabled mailbox), not the mail
    /// (`5.7.1`, refused by policy) nor a full mailbox: the address will never work.
    pub fn address_gone(&self) -> bool {
        self.status.starts_with("5.1.") || self.status == "5.2.1"
    }

    /// What the message's event log says.
    pub fn detail(&self) -> String {
        let kind = if self.is_hard() {
            "hard bounce"
        } else {
            "bounce"
        };
        match &self.diagnostic {
            Some(diagnostic) => format!("{kind} {}: {diagnostic}", self.status),
            None => format!("{kind} {}", self.status),
        }
    }
}

/// What a posted message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mail {
    Reply(Reply),
    Bounce(Bounce),
    /// Nothing to store; the reason says why (for the log).
    Ignored(String),
}

/// Why a posted message cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    #[error("the body is not an RFC 5322 message")]
    NotAMessage,
    #[error("the message has no `From` address")]
    NoSender,
    #[error(
        "the delivery report names no message (no Original-Message-ID, no returned Message-ID)"
    )]
    BounceWithoutMessage,
}

/// Reads one raw message.
pub fn parse_mail(raw: &[u8]) -> Result<Mail, MailError> {
    let message = MessageParser::default()
        .parse(raw)
        .filter(|m| !m.headers().is_empty())
        .ok_or(MailError::NotAMessage)?;
    let is_report = message.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
            && ct
                .attribute("report-type")
                .is_some_and(|t| t.eq_ignore_ascii_case("delivery-status"))
    });
    if is_report {
        return bounce(&message);
    }
    if let Some(auto) = message.header_raw("Auto-Submitted").map(str::trim)
        && !auto.eq_ignore_ascii_case("no")
    {
        return Ok(Mail::Ignored(format!(
            "an automatic answer (Auto-Submitted: {auto})"
        )));
    }
    let from = message
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(|a| a.trim().to_ascii_lowercase())
        .filter(|a| a.contains('@'))
        .ok_or(MailError::NoSender)?;
    let text = message
        .body_text(0)
        .map(|t| without_quote(&t))
        .unwrap_or_default();
    let message_id = message
        .message_id()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(raw))));
    let mut answers: Vec<String> = Vec::new();
    for value in [message.in_reply_to(), message.references()] {
        for id in value.as_text_list().unwrap_or_default() {
            if !answers.iter().any(|known| known == id) {
                answers.push(id.to_string());
            }
        }
    }
    Ok(Mail::Reply(Reply {
        from,
        text,
        message_id,
        answers,
    }))
}

/// The text a person wrote above what they answer.
pub fn without_quote(text: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        let starts_quote = (trimmed.starts_with("On ") && trimmed.ends_with("wrote:"))
            || (trimmed.starts_with("Le ")
                && (trimmed.ends_with("a écrit :") || trimmed.ends_with("a écrit:")))
            || trimmed.starts_with("-----Original Message-----")
            || trimmed.starts_with("-----Message d'origine-----")
            || line == "-- ";
        if starts_quote {
            break;
        }
        if !trimmed.starts_with('>') {
            kept.push(line.trim_end());
        }
    }
    kept.join("\n").trim().to_owned()
}

fn bounce(message: &mail_parser::Message<'_>) -> Result<Mail, MailError> {
    let mut fields: Vec<Vec<(String, String)>> = Vec::new();
    let mut returned_id: Option<String> = None;
    for part in &message.parts {
        let Some(ct) = part.content_type() else {
            continue;
        };
        let subtype = ct.subtype().unwrap_or_default().to_ascii_lowercase();
        match (&part.body, subtype.as_str()) {
            (PartType::Message(returned), _) => {
                returned_id = returned_id.or_else(|| returned.message_id().map(str::to_owned));
            }
            (_, "delivery-status" | "global-delivery-status") => {
                fields = field_groups(&String::from_utf8_lossy(part.contents()));
            }
            (_, "rfc822-headers" | "global-headers") => {
                let headers = String::from_utf8_lossy(part.contents()).into_owned();
                returned_id = returned_id.or_else(|| {
                    field_groups(&headers)
                        .into_iter()
                        .flatten()
                        .find(|(name, _)| name == "message-id")
                        .map(|(_, value)| bare_id(&value))
                });
            }
            _ => {}
        }
    }
    let field = |group: &[(String, String)], name: &str| {
        group
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let original = fields
        .iter()
        .find_map(|group| field(group, "original-message-id"))
        .map(|id| bare_id(&id))
        .or(returned_id);
    let failed = fields
        .iter()
        .find(|group| field(group, "action").is_some_and(|a| a.eq_ignore_ascii_case("failed")));
    let Some(failed) = failed else {
        return Ok(Mail::Ignored(
            "a delivery report without a failed recipient (delayed, delivered or relayed)".into(),
        ));
    };
    let message_id = original.ok_or(MailError::BounceWithoutMessage)?;
    let status = field(failed, "status")
        .map(|s| s.split_whitespace().next().unwrap_or_default().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "5.0.0".into());
    let recipient = field(failed, "final-recipient").map(|r| {
        r.split_once(';')
            .map_or(r.clone(), |(_, a)| a.trim().to_owned())
    });
    Ok(Mail::Bounce(Bounce {
        message_id,
        recipient,
        status,
        diagnostic: field(failed, "diagnostic-code"),
    }))
}

/// `Name: value` fields in groups separated by blank lines (RFC 3464's per-message and
/// per-recipient blocks), names in lower case, folded lines joined.
fn field_groups(text: &str) -> Vec<Vec<(String, String)>> {
    let mut groups: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for line in text.lines() {
        let Some(group) = groups.last_mut() else {
            break;
        };
        if line.trim().is_empty() {
            if !group.is_empty() {
                groups.push(Vec::new());
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = group.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            group.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    groups.retain(|g| !g.is_empty());
    groups
}

fn bare_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refused_mailbox_makes_the_address_gone() {
        let bounce = |status: &str| Bounce {
            message_id: "m@relais".into(),
            recipient: None,
            status: status.into(),
            diagnostic: None,
        };
        for gone in ["5.1.1", "5.1.2", "5.1.10", "5.2.1"] {
            assert!(bounce(gone).address_gone(), "{gone}");
        }
        // Refused by policy, a full mailbox, or a delay: the address may work later.
        for kept in ["5.7.1", "5.2.2", "4.2.2", "5.4.4"] {
            assert!(!bounce(kept).address_gone(), "{kept}");
        }
        assert!(bounce("5.7.1").is_hard());
    }

    #[test]
    fn the_quoted_message_and_the_signature_are_dropped() {
        let text = "Yes, Tuesday works.\n\nOn Mon, 1 Dec 2026 at 10:00, Shop <news@shop.example> wrote:\n> Can we deliver on Tuesday?\n";
        assert_eq!(without_quote(text), "Yes, Tuesday works.");
        assert_eq!(without_quote("Merci !\n-- \nClaire\n"), "Merci !");
        assert_eq!(without_quote("> old\nnew"), "new");
    }

    #[test]
    fn garbage_is_not_a_message() {
        assert_eq!(parse_mail(b""), Err(MailError::NotAMessage));
    }
}
