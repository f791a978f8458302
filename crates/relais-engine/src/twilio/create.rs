//! `POST Messages.json`: Twilio's form parameters turned into the body of
//! `POST /v1/messages`, accepted by the same [`Acceptor`] (consent, quiet hours, routing,
//! fallback and receipts as for any message), and the `StatusCallback` recorded.
//!
//! A `MessagingServiceSid` gives the sender when `From` does not ([`super::services`]).
//! `To` is an E.164 number, or `kind:address` (`whatsapp:+33612345678`, as Twilio writes
//! its channels) for a channel kind Relais knows. `MediaUrl` (one at most) becomes a media
//! body with `Body` as its caption; `ValidityPeriod` (seconds) the validity; `SendAt`
//! with `ScheduleType=fixed` the send time.

use super::TwilioError;
use crate::send::{AcceptError, Acceptor, SendRequest};
use crate::webhooks::{Destinations, check_url};
use jiff::Timestamp;
use relais_core::status::MessageStatus;
use relais_store::{NewTwilioCallback, Store};

/// The parameters of a create request, as read from its form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateParams {
    pub to: Option<String>,
    pub from: Option<String>,
    pub body: Option<String>,
    pub media_urls: Vec<String>,
    pub status_callback: Option<String>,
    pub validity_period: Option<String>,
    pub send_at: Option<String>,
    pub schedule_type: Option<String>,
    pub messaging_service_sid: Option<String>,
}

impl CreateParams {
    /// Reads the parameters Relais knows; others (`ProvideFeedback`, `Attempt`,
    /// `SmartEncoded`…) are ignored, as a Twilio feature Relais does not have.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut p = CreateParams::default();
        for (name, value) in pairs {
            let value = value.to_owned();
            match name {
                "To" => p.to = Some(value),
                "From" => p.from = Some(value),
                "Body" => p.body = Some(value),
                "MediaUrl" => p.media_urls.push(value),
                "StatusCallback" => p.status_callback = Some(value),
                "ValidityPeriod" => p.validity_period = Some(value),
                "SendAt" => p.send_at = Some(value),
                "ScheduleType" => p.schedule_type = Some(value),
                "MessagingServiceSid" => p.messaging_service_sid = Some(value),
                _ => {}
            }
        }
        p
    }
}

/// What was accepted, to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub message_id: String,
    /// The Messaging Service it was sent through, if it was.
    pub messaging_service_sid: Option<String>,
    pub status: MessageStatus,
    pub to: String,
    pub from: Option<String>,
    pub body: String,
    pub num_media: u32,
    pub created_at: Timestamp,
}

/// The `To` of a request: a phone number, or `kind:address`.
fn recipient(to: &str) -> Result<serde_json::Value, TwilioError> {
    let to = to.trim();
    if to.is_empty() {
        return Err(TwilioError::ToRequired);
    }
    if let Some((kind, address)) = to.split_once(':')
        && kind.parse::<relais_core::channel::ChannelKind>().is_ok()
    {
        return Ok(serde_json::json!({"channel": kind, "address": address}));
    }
    let digits = to.strip_prefix('+').unwrap_or(to);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(TwilioError::InvalidTo(to.to_owned()));
    }
    Ok(serde_json::Value::String(to.to_owned()))
}

/// A MIME type for a media URL, from its extension; Twilio fetches the URL to learn it,
/// Relais does not fetch at accept time.
pub(crate) fn mime_of(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    let ext = path.rsplit('.').next().unwrap_or("");
    match ext {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        "3gp" => "video/3gpp",
        "mp3" => "audio/mpeg",
        "ogg" | "oga" => "audio/ogg",
        "amr" => "audio/amr",
        "vcf" => "text/vcard",
        _ => "application/pdf",
    }
}

/// The Relais request a create asks for.
pub fn send_request(p: &CreateParams) -> Result<SendRequest, TwilioError> {
    let to = recipient(p.to.as_deref().unwrap_or(""))?;
    if let Some(sid) = &p.messaging_service_sid {
        return Err(TwilioError::UnknownService(sid.chars().take(64).collect()));
    }
    let from = p
        .from
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .ok_or(TwilioError::FromRequired)?;
    // A `From` written `kind:address` names the sender on that channel.
    let from = from.split_once(':').map_or(from, |(_, address)| address);
    let body = p.body.clone().unwrap_or_default();
    let content = match p.media_urls.as_slice() {
        [] if body.is_empty() => return Err(TwilioError::BodyRequired),
        [] => serde_json::json!({"text": body}),
        [url] => {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(TwilioError::InvalidMedia(url.chars().take(200).collect()));
            }
            let mut media = serde_json::json!({"url": url, "mime_type": mime_of(url)});
            if !body.is_empty() {
                media["caption"] = serde_json::Value::String(body);
            }
            serde_json::json!({"media": media})
        }
        more => {
            return Err(TwilioError::InvalidMedia(format!(
                "Relais sends one MediaUrl per message, not {}",
                more.len()
            )));
        }
    };
    let mut request = serde_json::json!({"to": to, "from": from, "content": content});
    if let Some(seconds) = &p.validity_period {
        let seconds: u64 = seconds
            .trim()
            .parse()
            .map_err(|_| invalid("ValidityPeriod", "must be a number of seconds"))?;
        request["validity"] = serde_json::Value::from(seconds);
    }
    match (&p.send_at, p.schedule_type.as_deref()) {
        (None, None) => {}
        (Some(at), Some("fixed")) => {
            let at: Timestamp = at
                .trim()
                .parse()
                .map_err(|_| TwilioError::InvalidSendAt(at.chars().take(64).collect()))?;
            request["send_at"] = serde_json::Value::String(at.to_string());
        }
        (Some(_), _) => {
            return Err(invalid(
                "ScheduleType",
                "must be `fixed` when SendAt is given",
            ));
        }
        (None, Some(_)) => {
            return Err(TwilioError::InvalidSendAt("SendAt is missing".into()));
        }
    }
    serde_json::from_value(request).map_err(|e| invalid("Body", e.to_string()))
}

fn invalid(name: &str, detail: impl Into<String>) -> TwilioError {
    TwilioError::InvalidParameter {
        name: name.to_owned(),
        detail: detail.into(),
    }
}

/// The Twilio error for a refusal of the accept path, by the field it names.
fn accept_error(e: AcceptError, to: &str) -> TwilioError {
    match e {
        AcceptError::Invalid { pointer, detail } => match pointer.as_str() {
            "/to" => TwilioError::InvalidTo(format!("{to} ({detail})")),
            "/from" => TwilioError::InvalidFrom(detail),
            "/validity" => invalid("ValidityPeriod", detail),
            "/send_at" => TwilioError::InvalidSendAt(detail),
            p if p.starts_with("/content/media") => TwilioError::InvalidMedia(detail),
            p if p.starts_with("/content") => invalid("Body", detail),
            _ => invalid(pointer.trim_start_matches('/'), detail),
        },
        e @ AcceptError::ContentRefused { .. } => invalid("Body", e.to_string()),
        other => TwilioError::Internal(other.to_string()),
    }
}

/// `params` with the sender of its Messaging Service, if it names one: the pool's sender
/// for the recipient, unless `From` names one already.
async fn with_service(
    store: &dyn Store,
    tenant: &str,
    params: &CreateParams,
) -> Result<(CreateParams, Option<String>), TwilioError> {
    let Some(sid) = params.messaging_service_sid.as_deref().map(str::trim) else {
        return Ok((params.clone(), None));
    };
    let unknown = || TwilioError::UnknownService(sid.chars().take(64).collect());
    let service = store
        .twilio_service(tenant, sid)
        .await?
        .ok_or_else(unknown)?;
    let mut resolved = params.clone();
    resolved.messaging_service_sid = None;
    if resolved.from.as_deref().is_none_or(|f| f.trim().is_empty()) {
        let to = params.to.as_deref().unwrap_or("").trim();
        resolved.from = relais_core::twilio::sticky_sender(&service.senders, to).map(str::to_owned);
    }
    Ok((resolved, Some(service.sid)))
}

/// Accepts a message as `POST /v1/messages` would, and records its `StatusCallback`
/// (checked as a webhook URL is, against `destinations`). A recipient who did not consent
/// is refused with 21610; the rejected message stays in the tenant's log, as for the
/// native API.
pub async fn create(
    acceptor: &Acceptor,
    store: &dyn Store,
    destinations: Destinations,
    tenant: &str,
    params: &CreateParams,
    now: Timestamp,
) -> Result<Created, TwilioError> {
    let (params, service) = with_service(store, tenant, params).await?;
    let request = send_request(&params)?;
    let callback = match &params.status_callback {
        Some(url) if !url.trim().is_empty() => Some(
            check_url(url.trim(), destinations)
                .await
                .map_err(|e| TwilioError::InvalidCallback(e.to_string()))?,
        ),
        _ => None,
    };
    let to = params.to.clone().unwrap_or_default();
    let from = request.from.clone();
    let accepted = acceptor
        .accept(tenant, request, None)
        .await
        .map_err(|e| accept_error(e, &to))?;
    if accepted.status == MessageStatus::Rejected {
        return Err(TwilioError::Unsubscribed {
            message_id: accepted.id,
        });
    }
    if let Some(url) = callback {
        store
            .insert_twilio_callback(&NewTwilioCallback {
                message_id: accepted.id.clone(),
                tenant_id: tenant.to_owned(),
                url: url.as_str().to_owned(),
                created_at: now,
            })
            .await?;
    }
    Ok(Created {
        message_id: accepted.id,
        messaging_service_sid: service,
        status: accepted.status,
        to,
        from,
        body: params.body.clone().unwrap_or_default(),
        num_media: params.media_urls.len() as u32,
        created_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> CreateParams {
        CreateParams::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn a_to_that_is_not_a_number_is_21211() {
        let p = params(&[("To", "bonjour"), ("From", "+15005550006"), ("Body", "x")]);
        assert_eq!(
            send_request(&p).map(|_| ()).map_err(|e| e.code()),
            Err(21211)
        );
        let p = params(&[("From", "+15005550006"), ("Body", "x")]);
        assert_eq!(
            send_request(&p).map(|_| ()).map_err(|e| e.code()),
            Err(21604)
        );
    }

    #[test]
    fn a_message_needs_a_sender_and_a_body_or_media() {
        let p = params(&[("To", "+33612345678"), ("Body", "x")]);
        assert_eq!(
            send_request(&p).map(|_| ()).map_err(|e| e.code()),
            Err(21603)
        );
        let p = params(&[("To", "+33612345678"), ("From", "Shop")]);
        assert_eq!(
            send_request(&p).map(|_| ()).map_err(|e| e.code()),
            Err(21602)
        );
        let p = params(&[
            ("To", "+33612345678"),
            ("From", "Shop"),
            ("MessagingServiceSid", "MG0123"),
        ]);
        assert_eq!(
            send_request(&p).map(|_| ()).map_err(|e| e.code()),
            Err(21701)
        );
    }

    #[test]
    fn twilio_fields_map_onto_the_native_request() {
        let p = params(&[
            ("To", "whatsapp:+33612345678"),
            ("From", "whatsapp:+15005550006"),
            ("Body", "Votre colis"),
            ("MediaUrl", "https://example.com/a.png"),
            ("ValidityPeriod", "600"),
            ("SendAt", "2030-01-01T10:00:00Z"),
            ("ScheduleType", "fixed"),
        ]);
        let request = send_request(&p);
        assert!(request.is_ok(), "{request:?}");
        let Ok(request) = request else { return };
        assert_eq!(request.from.as_deref(), Some("+15005550006"));
        assert!(matches!(request.to, crate::send::Recipient::Address { .. }));
        assert_eq!(
            request.send_at,
            "2030-01-01T10:00:00Z".parse::<Timestamp>().ok()
        );
        assert!(request.validity.is_some());
    }

    #[test]
    fn a_send_at_without_fixed_schedule_type_is_refused() {
        let p = params(&[
            ("To", "+33612345678"),
            ("From", "Shop"),
            ("Body", "x"),
            ("SendAt", "2030-01-01T10:00:00Z"),
        ]);
        assert_eq!(
            send_request(&p).map(|_| ()).map_err(|e| e.code()),
            Err(20001)
        );
        let p = params(&[
            ("To", "+33612345678"),
            ("From", "Shop"),
            ("Body", "x"),
            ("SendAt", "tomorrow"),
            ("ScheduleType", "fixed"),
        ]);
        assert_eq!(
            send_request(&p).map(|_| ()).map_err(|e| e.code()),
            Err(35111)
        );
    }
}
