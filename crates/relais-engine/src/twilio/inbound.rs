//! Inbound messages to the tenant's URL, as Twilio posts them (form-encoded `MessageSid`,
//! `From`, `To`, `Body`, `AccountSid`…, signed with `X-Twilio-Signature`), and the TwiML
//! answer's `<Message>`s sent back to the customer through the accept path.
//!
//! The inbound messages themselves go through Relais's pipeline as any other (keywords,
//! conversations, flows); this only mirrors them to the URL. The store is the queue: each
//! tenant has a cursor (the id of the last message done with), so messages are posted in
//! arrival order, once done never again, and a crash loses nothing; a reply carries an
//! Idempotency-Key made of the inbound message's id, so a message posted again after a
//! crash is not answered twice. A post that fails is retried with the callbacks' backoff,
//! [`super::callbacks::MAX_ATTEMPTS`] times, then skipped. An answer that is not TwiML
//! (not well-formed XML, another root than `<Response>`) sends nothing: the message is
//! skipped with the error kept on the account (error 12100), for `GET /v1/twilio/account`.

use super::accounts::open;
use super::callbacks::{MAX_ATTEMPTS, backoff};
use super::signature::{form_body, sign};
use crate::send::{Acceptor, Idempotency, SendRequest};
use crate::webhooks::{Destinations, HttpPoster, WebhookError, check_url};
use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use relais_core::channel::ChannelKind;
use relais_core::clock::Clock;
use relais_core::twilio::message_sid;
use relais_core::twiml::{TwimlMessage, parse};
use relais_store::{
    DueTwilioInbound, InboundFilter, InboundMessage, PageRequest, Store, StoreError,
    TwilioInboundOutcome,
};
use std::sync::Arc;

/// The longest TwiML answer read.
pub const TWIML_LIMIT: usize = 64 * 1024;

/// Inbound messages posted per tenant and round.
const PER_ROUND: u32 = 20;

/// Tenants claimed per round.
const TENANTS: u32 = 20;

/// How long a claimed tenant is held: 20 posts of 10 seconds at most.
const LEASE_FOR: SignedDuration = SignedDuration::from_secs(240);

/// Posts a form and reads the answer.
#[async_trait]
pub trait TwimlPoster: Send + Sync {
    /// The status code and the body of the answer, or why there was none.
    async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: &str,
    ) -> Result<(u16, String), String>;
}

#[async_trait]
impl TwimlPoster for HttpPoster {
    async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: &str,
    ) -> Result<(u16, String), String> {
        self.post_reading(url, headers, body, TWIML_LIMIT).await
    }
}

/// Why an inbound URL was not set.
#[derive(Debug, thiserror::Error)]
pub enum InboundUrlError {
    #[error(transparent)]
    BadUrl(#[from] WebhookError),
    #[error("the tenant has no Twilio account: issue one first")]
    NoAccount,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Posts the tenant's inbound messages from now on to `url` (checked as a webhook's), or
/// to nowhere.
pub async fn set_url(
    store: &dyn Store,
    tenant: &str,
    url: Option<&str>,
    destinations: Destinations,
    now: Timestamp,
) -> Result<(), InboundUrlError> {
    let url = match url {
        Some(url) => Some(check_url(url.trim(), destinations).await?),
        None => None,
    };
    // Ids are UUIDv7: a new one sorts after every message received so far.
    let cursor = relais_core::ids::new_id();
    if store
        .set_twilio_inbound(tenant, url.as_ref().map(|u| u.as_str()), &cursor, now)
        .await?
    {
        Ok(())
    } else {
        Err(InboundUrlError::NoAccount)
    }
}

/// An address as Twilio writes it: phone numbers as they are, others `kind:address`
/// (`whatsapp:+33612345678`).
fn address(kind: ChannelKind, address: &str) -> String {
    if kind == ChannelKind::PHONE_NUMBER || kind.is_sandbox() {
        address.to_owned()
    } else {
        format!("{}:{address}", kind.as_str())
    }
}

/// The form Twilio posts for an inbound message.
pub fn inbound_params(m: &InboundMessage, account_sid: &str) -> Vec<(String, String)> {
    let sid = message_sid(&m.id).unwrap_or_else(|| m.id.clone());
    let segments = relais_core::sms::segment_info(&m.text).segments;
    [
        ("AccountSid", account_sid.to_owned()),
        ("ApiVersion", super::API_VERSION.to_owned()),
        ("Body", m.text.clone()),
        ("From", address(m.channel, &m.from_address)),
        ("MessageSid", sid.clone()),
        ("NumMedia", u8::from(m.media.is_some()).to_string()),
        ("NumSegments", segments.to_string()),
        ("SmsMessageSid", sid.clone()),
        ("SmsSid", sid),
        ("SmsStatus", "received".to_owned()),
        ("To", address(m.channel, &m.to_address)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The reply a `<Message>` asks for, to the customer on the channel they wrote on.
fn reply(m: &InboundMessage, message: &TwimlMessage) -> serde_json::Value {
    let content = match message.media.first() {
        Some(url) => {
            let mut media =
                serde_json::json!({"url": url, "mime_type": super::create::mime_of(url)});
            if !message.body.is_empty() {
                media["caption"] = serde_json::Value::String(message.body.clone());
            }
            serde_json::json!({"media": media})
        }
        None => serde_json::json!({"text": message.body}),
    };
    let mut request = serde_json::json!({
        "to": {"channel": m.channel.as_str(), "address": m.from_address},
        "channel": m.channel_id.clone().unwrap_or_else(|| m.channel.as_str().to_owned()),
        "content": content,
    });
    if m.channel == ChannelKind::PHONE_NUMBER {
        request["from"] = serde_json::Value::String(m.to_address.clone());
    }
    request
}

/// What one [`InboundWorker::run_once`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboundRound {
    /// Inbound messages the URL took (2xx).
    pub posted: usize,
    /// Replies accepted for sending.
    pub replies: usize,
    /// Posts that failed, and answers that were not TwiML.
    pub failed: usize,
}

impl InboundRound {
    pub fn did_work(&self) -> bool {
        self.posted + self.failed > 0
    }
}

/// Posts due inbound messages and sends their TwiML replies.
pub struct InboundWorker {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    poster: Arc<dyn TwimlPoster>,
    acceptor: Acceptor,
    lease_owner: String,
}

impl InboundWorker {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        poster: Arc<dyn TwimlPoster>,
        acceptor: Acceptor,
        lease_owner: String,
    ) -> Self {
        InboundWorker {
            store,
            clock,
            poster,
            acceptor,
            lease_owner,
        }
    }

    /// Claims the tenants with messages to post and posts them, the tenants side by side.
    pub async fn run_once(&self) -> Result<InboundRound, StoreError> {
        let now = self.clock.now();
        let due = self
            .store
            .claim_twilio_inbound(now, TENANTS, &self.lease_owner, LEASE_FOR)
            .await?;
        let rounds = futures::future::join_all(due.iter().map(|d| self.tenant(d, now))).await;
        let mut total = InboundRound::default();
        for round in rounds {
            let round = round?;
            total.posted += round.posted;
            total.replies += round.replies;
            total.failed += round.failed;
        }
        Ok(total)
    }

    /// One tenant's messages after its cursor, in order, until one fails.
    async fn tenant(
        &self,
        due: &DueTwilioInbound,
        now: Timestamp,
    ) -> Result<InboundRound, StoreError> {
        let tenant = due.account.tenant_id.as_str();
        let account = open(&due.account)?;
        let page = self
            .store
            .list_inbound(
                tenant,
                &InboundFilter::default(),
                &PageRequest {
                    after: Some(due.cursor.clone()),
                    limit: PER_ROUND,
                },
            )
            .await?;
        let mut round = InboundRound::default();
        let mut cursor = due.cursor.clone();
        let mut error = None;
        let mut attempts = due.attempts;
        for m in &page.data {
            let params = inbound_params(m, account.account_sid.as_str());
            let headers = [
                (
                    "content-type",
                    "application/x-www-form-urlencoded".to_owned(),
                ),
                (
                    "x-twilio-signature",
                    sign(&account.auth_token, &due.url, &params),
                ),
                ("i-twilio-idempotency-token", m.id.clone()),
            ];
            let answer = match self
                .poster
                .post(&due.url, &headers, &form_body(&params))
                .await
            {
                Ok((code, body)) if (200..300).contains(&code) => Ok(body),
                Ok((code, _)) => Err(format!("the inbound URL answered {code}")),
                Err(e) => Err(e),
            };
            match answer {
                Ok(body) => {
                    round.posted += 1;
                    match parse(&body) {
                        Ok(messages) => {
                            for (n, message) in messages.iter().enumerate() {
                                match self.send(tenant, m, n, message).await {
                                    Ok(()) => round.replies += 1,
                                    Err(e) => error = Some(format!("reply to {}: {e}", m.id)),
                                }
                            }
                        }
                        Err(e) => {
                            round.failed += 1;
                            error =
                                Some(format!("12100 (answer to {}): {e}; nothing was sent", m.id));
                        }
                    }
                }
                Err(e) => {
                    round.failed += 1;
                    attempts += 1;
                    if attempts < MAX_ATTEMPTS {
                        let outcome = TwilioInboundOutcome::Retry {
                            cursor,
                            due_at: now.checked_add(backoff(attempts)).unwrap_or(now),
                            attempts,
                            error: e,
                        };
                        self.store
                            .finish_twilio_inbound(tenant, &self.lease_owner, &outcome)
                            .await?;
                        return Ok(round);
                    }
                    error = Some(format!("inbound {} given up: {e}", m.id));
                }
            }
            cursor = m.id.clone();
            attempts = 0;
        }
        let outcome = TwilioInboundOutcome::Advanced { cursor, error };
        self.store
            .finish_twilio_inbound(tenant, &self.lease_owner, &outcome)
            .await?;
        Ok(round)
    }

    /// Sends the `n`-th `<Message>` of the answer to `m`, once whatever happens.
    async fn send(
        &self,
        tenant: &str,
        m: &InboundMessage,
        n: usize,
        message: &TwimlMessage,
    ) -> Result<(), String> {
        let body = reply(m, message);
        let idempotency =
            Idempotency::new(&format!("twiml:{}:{n}", m.id), &body).map_err(|e| e.to_string())?;
        let request: SendRequest = serde_json::from_value(body).map_err(|e| e.to_string())?;
        self.acceptor
            .accept(tenant, request, Some(idempotency))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Runs rounds until the task is dropped: at once again after a round that did
    /// something, after `idle` otherwise.
    pub async fn run_forever(self, idle: std::time::Duration) {
        loop {
            match self.run_once().await {
                Ok(round) if round.did_work() => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "twilio inbound: the store failed"),
            }
            tokio::time::sleep(idle).await;
        }
    }
}
