//! A tenant's senders (`docs/trust.md`): registered, verified — a phone number by a code
//! sent to it through the accept path like any message, an email domain by its DNS TXT
//! record (and its DKIM key when a selector is given), an alphanumeric ID or a WhatsApp
//! display name by an admin's approval — and, when the tenant's `senders.require_verified`
//! is on, the only `from` a message may give ([`VerifiedSenders`], read by the accept path).

use crate::dns::{DnsError, Resolver};
use crate::send::{AcceptError, Acceptor, SendRequest};
use jiff::Timestamp;
use relais_core::verified_sender::{
    CODE_ATTEMPTS, CODE_VALIDITY, CodeError, Method, SenderKind, check_code, check_selector,
    new_code, new_token, normalize_value, txt_record, txt_verifies,
};
use relais_store::{SenderRecord, Store, StoreError};

/// Why a sender request changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    /// The request is wrong at `pointer`.
    #[error("{pointer}: {detail}")]
    Invalid { pointer: String, detail: String },
    #[error("sender {0} not found")]
    NotFound(String),
    /// A code was refused (wrong, expired, too many tries, none sent).
    #[error("{0}")]
    Code(CodeError),
    /// The request does not fit how this kind of sender is verified.
    #[error("a {kind} is verified by {method}, not this way", kind = .0.as_str(), method = .1.as_str())]
    WrongMethod(SenderKind, Method),
    /// The domain does not publish the record (yet).
    #[error("{0}")]
    NotPublished(String),
    #[error("the DNS look-up failed: {0}")]
    Dns(#[from] DnsError),
    #[error("the code could not be sent: {0}")]
    Send(AcceptError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(pointer: &str, detail: impl ToString) -> SenderError {
    SenderError::Invalid {
        pointer: pointer.to_owned(),
        detail: detail.to_string(),
    }
}

/// Registers a sender, `pending` until verified; an email domain gets the token of its TXT
/// record.
pub async fn register(
    store: &dyn Store,
    tenant: &str,
    kind: &str,
    value: &str,
    dkim_selector: Option<&str>,
    now: Timestamp,
) -> Result<SenderRecord, SenderError> {
    let kind = SenderKind::parse(kind).ok_or_else(|| {
        invalid(
            "/kind",
            "expected phone_number, alphanumeric_id, whatsapp_name or email_domain",
        )
    })?;
    let value = normalize_value(kind, value).map_err(|e| invalid("/value", e))?;
    let dkim_selector = match (dkim_selector, kind) {
        (None, _) => None,
        (Some(s), SenderKind::EmailDomain) => {
            Some(check_selector(s).map_err(|e| invalid("/dkim_selector", e))?)
        }
        (Some(_), _) => {
            return Err(invalid(
                "/dkim_selector",
                "only an `email_domain` has a DKIM selector",
            ));
        }
    };
    let token = (kind == SenderKind::EmailDomain).then(|| new_token(&mut rand::thread_rng()));
    let sender = SenderRecord {
        id: relais_core::ids::new_id(),
        tenant_id: tenant.to_owned(),
        kind,
        value,
        verified: false,
        dkim_selector,
        token,
        code: None,
        verified_at: None,
        created_at: now,
        updated_at: now,
    };
    store.create_sender(&sender).await?;
    Ok(sender)
}

async fn found(store: &dyn Store, tenant: &str, id: &str) -> Result<SenderRecord, SenderError> {
    store
        .sender(tenant, id)
        .await?
        .ok_or_else(|| SenderError::NotFound(id.to_owned()))
}

/// Sends a new code to a phone number sender, through the accept path (the tenant's
/// routing picks the channel: the sandbox's `sim` when nothing else is configured); the
/// message's id.
pub async fn send_code(
    store: &dyn Store,
    acceptor: &Acceptor,
    tenant: &str,
    id: &str,
    now: Timestamp,
) -> Result<String, SenderError> {
    let sender = found(store, tenant, id).await?;
    if sender.kind.method() != Method::Code {
        return Err(SenderError::WrongMethod(sender.kind, sender.kind.method()));
    }
    let (code, digest) = new_code(&mut rand::thread_rng());
    let minutes = CODE_VALIDITY.as_secs() / 60;
    let request: SendRequest = serde_json::from_value(serde_json::json!({
        "to": sender.value,
        "content": {"text": format!("Relais: your sender verification code is {code}. It expires in {minutes} minutes.")},
        "purpose": "transactional",
        "track_links": false,
    }))
    .map_err(|e| StoreError::Corrupt(format!("a verification code request: {e}")))?;
    // The code is kept before it is sent: a code that arrives can always be checked.
    store
        .set_sender_code(tenant, id, &digest, now + CODE_VALIDITY, now)
        .await?;
    let accepted = acceptor
        .accept(tenant, request, None)
        .await
        .map_err(SenderError::Send)?;
    Ok(accepted.id)
}

/// What a verification request brings.
#[derive(Debug, Clone, Default)]
pub struct Proof {
    /// The code a phone number received.
    pub code: Option<String>,
}

/// Verifies a sender the way its kind is: the code for a phone number, the TXT record
/// (and DKIM key) for an email domain, the caller's approval (an admin) for an
/// alphanumeric ID or a WhatsApp display name.
pub async fn verify(
    store: &dyn Store,
    resolver: &Resolver,
    tenant: &str,
    id: &str,
    proof: Proof,
    now: Timestamp,
) -> Result<SenderRecord, SenderError> {
    let sender = found(store, tenant, id).await?;
    if sender.verified {
        return Ok(sender);
    }
    match sender.kind.method() {
        Method::Code => {
            let code = proof
                .code
                .ok_or_else(|| invalid("/code", "the code the number received is required"))?;
            // Expired or never sent: said before a try is taken.
            if let Err(e @ (CodeError::NoCode | CodeError::Expired | CodeError::TooManyAttempts)) =
                check_code(sender.code.as_ref(), &code, now)
            {
                return Err(SenderError::Code(e));
            }
            // A try is taken before the comparison, so concurrent guesses share the limit.
            if !store
                .take_code_attempt(tenant, id, CODE_ATTEMPTS, now)
                .await?
            {
                return Err(SenderError::Code(CodeError::TooManyAttempts));
            }
            let pending = sender
                .code
                .as_ref()
                .map(|c| relais_core::verified_sender::PendingCode {
                    attempts: 0,
                    ..c.clone()
                });
            check_code(pending.as_ref(), &code, now).map_err(SenderError::Code)?;
        }
        Method::DnsTxt => {
            if proof.code.is_some() {
                return Err(SenderError::WrongMethod(sender.kind, Method::DnsTxt));
            }
            let token = sender
                .token
                .as_deref()
                .ok_or_else(|| StoreError::Corrupt(format!("sender {id} has no token")))?;
            let records = resolver.txt(&sender.value).await?;
            if !txt_verifies(&records, token) {
                return Err(SenderError::NotPublished(format!(
                    "no TXT record `{}` on {} yet (DNS changes can take a while to show)",
                    txt_record(token),
                    sender.value
                )));
            }
            if let Some(selector) = &sender.dkim_selector {
                let name = format!("{selector}._domainkey.{}", sender.value);
                let keys = resolver.txt(&name).await?;
                if !keys.iter().any(|k| k.contains("p=")) {
                    return Err(SenderError::NotPublished(format!(
                        "no DKIM key (a TXT record with `p=`) at {name}"
                    )));
                }
            }
        }
        Method::Approval => {
            if proof.code.is_some() {
                return Err(SenderError::WrongMethod(sender.kind, Method::Approval));
            }
        }
    }
    store.mark_sender_verified(tenant, id, now).await?;
    found(store, tenant, id).await
}

/// Removes a sender; `false` when there was none.
pub async fn delete(store: &dyn Store, tenant: &str, id: &str) -> Result<bool, SenderError> {
    Ok(store.delete_sender(tenant, id).await?)
}

/// The `from` values a tenant's messages may give when it requires verified senders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifiedSenders {
    /// `None`: the tenant does not require verified senders.
    values: Option<Vec<String>>,
}

impl VerifiedSenders {
    /// The tenant's rule and verified phone numbers and alphanumeric IDs (the senders a
    /// `from` can name), read only when the rule is on.
    pub async fn of(store: &dyn Store, tenant: &str) -> Result<VerifiedSenders, StoreError> {
        if !crate::settings::sender_rules_of(store, tenant)
            .await?
            .require_verified
        {
            return Ok(VerifiedSenders::default());
        }
        let values = store
            .senders(tenant)
            .await?
            .into_iter()
            .filter(|s| {
                s.verified && matches!(s.kind, SenderKind::PhoneNumber | SenderKind::AlphanumericId)
            })
            .map(|s| s.value)
            .collect();
        Ok(VerifiedSenders {
            values: Some(values),
        })
    }

    /// Whether a message may say it comes from `from` (`None`: the channel's own sender).
    pub fn allows(&self, from: Option<&str>) -> bool {
        match (&self.values, from) {
            (None, _) | (_, None) => true,
            (Some(values), Some(from)) => {
                let phone = relais_core::phone::normalize_phone(from, None)
                    .ok()
                    .map(|p| p.into_string());
                values
                    .iter()
                    .any(|v| v == from || phone.as_deref() == Some(v.as_str()))
            }
        }
    }
}
