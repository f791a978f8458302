//! Relais as an SMSC (`relais serve --smpp-listen`): ESMEs bind with a system_id/password
//! issued per tenant, each `submit_sm` becomes an A2P message through [`crate::send::accept`]
//! (consent, quiet hours and routing apply), `submit_sm_resp` carries the Relais message id,
//! and the message's final status goes back to the ESME as a `deliver_sm` receipt.
//!
//! Credentials are stored as channels of kind `smpp_server` (config: `system_id` and the
//! SHA-256 of the password, like API keys), so they live in the tenant's store and need no
//! table of their own.

use crate::send::{AcceptContext, AcceptError, Recipient, SANDBOX_KINDS, SendRequest, accept};
use jiff::Timestamp;
use rand::Rng;
use rand::distributions::Alphanumeric;
use relais_core::clock::Clock;
use relais_core::contact::AddressRules;
use relais_core::content::Content;
use relais_core::status::MessageStatus;
use relais_core::tenant::hash_api_key;
use relais_smpp::pdu::receipt_message;
use relais_smpp::receipt::receipt_date;
use relais_smpp::{
    Authenticator, BindRequest, CommandStatus, ReceiptState, ServerConfig, ServerHandle,
    ShortMessage, SmppServer, SubmitContext, SubmitHandler,
};
use relais_store::{NewChannel, Store, StoreError};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The `kind` of the channel records holding ESME credentials.
pub const KIND: &str = "smpp_server";

/// How often the status of submitted messages is looked at for receipts.
const RECEIPT_POLL: Duration = Duration::from_millis(200);

/// A receipt whose ESME stays unbound this long is given up.
const RECEIPT_GIVE_UP: Duration = Duration::from_secs(24 * 3600);

/// Credentials as issued: the password is shown once and only its hash is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCredentials {
    pub id: String,
    pub system_id: String,
    pub password: String,
}

fn random_string(len: usize) -> String {
    rand::rngs::OsRng
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Issues a new system_id/password for `tenant`. SMPP 3.4 caps passwords at 8 characters:
/// 8 random alphanumerics (47 bits) is what the protocol allows.
pub async fn issue_credentials(
    store: &dyn Store,
    tenant: &str,
    now: Timestamp,
) -> Result<IssuedCredentials, StoreError> {
    let system_id = format!("r{}", random_string(12).to_lowercase());
    let password = random_string(8);
    let record = store
        .create_channel(
            &NewChannel {
                tenant_id: tenant.to_owned(),
                kind: KIND.to_owned(),
                name: format!("smpp-esme-{system_id}"),
                config: serde_json::json!({
                    "system_id": system_id,
                    "password_hash": hash_api_key(&password),
                }),
            },
            now,
        )
        .await?;
    Ok(IssuedCredentials {
        id: record.id,
        system_id,
        password,
    })
}

/// Who a session acts for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Esme {
    pub tenant_id: String,
    pub system_id: String,
}

struct Auth {
    store: Arc<dyn Store>,
}

impl Authenticator for Auth {
    type Principal = Esme;

    async fn authenticate(
        &self,
        request: &BindRequest,
        _peer: SocketAddr,
    ) -> Result<Esme, CommandStatus> {
        let records = self.store.channels_of_kind(KIND).await.map_err(|e| {
            tracing::error!(error = %e, "cannot read SMPP credentials");
            CommandStatus::EsmeRsyserr
        })?;
        let record = records
            .into_iter()
            .find(|r| r.config["system_id"].as_str() == Some(request.system_id.as_str()))
            .ok_or(CommandStatus::EsmeRinvsysid)?;
        if record.config["password_hash"].as_str() != Some(hash_api_key(&request.password).as_str())
        {
            return Err(CommandStatus::EsmeRinvpaswd);
        }
        Ok(Esme {
            tenant_id: record.tenant_id,
            system_id: request.system_id.clone(),
        })
    }
}

/// A submitted message whose final status the ESME asked to hear about.
struct Watched {
    esme: Esme,
    source: String,
    destination: String,
    submitted: String,
    text: String,
    since: std::time::Instant,
}

#[derive(Default)]
struct Watchlist {
    messages: Mutex<HashMap<String, Watched>>,
}

struct Handler {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    rules: AddressRules,
    watch: Arc<Watchlist>,
}

impl SubmitHandler<Esme> for Handler {
    async fn submit(
        &self,
        ctx: SubmitContext<'_, Esme>,
        message: ShortMessage,
    ) -> Result<String, CommandStatus> {
        let text = message.text();
        let request = SendRequest {
            to: Recipient::Phone(crate::smpp_channel::e164_or_raw(&message.destination)),
            channel: None,
            channels: None,
            content: Some(Content::text(text.clone())),
            template: None,
            variables: Default::default(),
            purpose: None,
            // The ESME's source_addr is the sender, paced like any other.
            from: Some(message.source.clone()).filter(|s| !s.trim().is_empty()),
            send_at: None,
            validity: None,
        };
        let now = self.clock.now();
        let context = AcceptContext {
            store: &*self.store,
            rules: self.rules,
            now,
            configured: SANDBOX_KINDS,
        };
        let accepted = match accept(context, &ctx.principal.tenant_id, request, None).await {
            Ok(accepted) => accepted,
            Err(AcceptError::Invalid { pointer, detail }) => {
                tracing::info!(esme = %ctx.system_id, %pointer, %detail, "submit_sm refused");
                return Err(if pointer.starts_with("/to") {
                    CommandStatus::EsmeRinvdstadr
                } else if pointer.starts_with("/from") {
                    CommandStatus::EsmeRinvsrcadr
                } else {
                    CommandStatus::EsmeRinvmsglen
                });
            }
            Err(e) => {
                tracing::error!(esme = %ctx.system_id, error = %e, "submit_sm failed");
                return Err(CommandStatus::EsmeRsyserr);
            }
        };
        if message.registered_delivery & 0x03 != 0 {
            let mut watched = self
                .watch
                .messages
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            watched.insert(
                accepted.id.clone(),
                Watched {
                    esme: ctx.principal.clone(),
                    source: message.source.clone(),
                    destination: message.destination.clone(),
                    submitted: receipt_date(SystemTime::now()),
                    text: text.chars().take(20).collect(),
                    since: std::time::Instant::now(),
                },
            );
        }
        Ok(accepted.id)
    }
}

/// The receipt state of a message's status, once the status will not change any more
/// (for an SMS, `delivered` is the end: `read` never comes).
fn receipt_state(status: MessageStatus) -> Option<ReceiptState> {
    match status {
        MessageStatus::Delivered | MessageStatus::Read => Some(ReceiptState::Delivered),
        MessageStatus::Undelivered | MessageStatus::Failed => Some(ReceiptState::Undeliverable),
        MessageStatus::Expired => Some(ReceiptState::Expired),
        MessageStatus::Rejected => Some(ReceiptState::Rejected),
        MessageStatus::Canceled => Some(ReceiptState::Deleted),
        _ => None,
    }
}

/// Sends the receipts of watched messages that reached a final status. The watchlist is in
/// memory: receipts of messages submitted before a restart are not sent.
async fn send_receipts(store: Arc<dyn Store>, handle: ServerHandle<Esme>, watch: Arc<Watchlist>) {
    loop {
        tokio::time::sleep(RECEIPT_POLL).await;
        let ids: Vec<(String, String)> = {
            let watched = watch.messages.lock().unwrap_or_else(|p| p.into_inner());
            watched
                .iter()
                .map(|(id, w)| (id.clone(), w.esme.tenant_id.clone()))
                .collect()
        };
        for (id, tenant) in ids {
            let status = match store.message(&tenant, &id).await {
                Ok(Some(m)) => m.message.status,
                Ok(None) => MessageStatus::Canceled,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read a message for its SMPP receipt");
                    continue;
                }
            };
            let Some(state) = receipt_state(status) else {
                continue;
            };
            let Some(w) = watch
                .messages
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id)
            else {
                continue;
            };
            let err = if state == ReceiptState::Delivered {
                0
            } else {
                1
            };
            let done = receipt_date(SystemTime::now());
            let receipt = receipt_message(
                &w.source,
                &w.destination,
                &id,
                state,
                err,
                &w.submitted,
                &done,
                &w.text,
            );
            if let Err(e) = handle.deliver(&w.esme, receipt).await {
                if w.since.elapsed() < RECEIPT_GIVE_UP {
                    // The ESME is not bound right now: try again on the next round.
                    watch
                        .messages
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id, w);
                } else {
                    tracing::warn!(message = %id, error = %e, "SMPP receipt given up");
                }
            }
        }
    }
}

/// Serves ESMEs on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    rules: AddressRules,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let watch = Arc::new(Watchlist::default());
    let server = SmppServer::new(
        ServerConfig {
            system_id: "relais".into(),
            ..ServerConfig::default()
        },
        Auth {
            store: store.clone(),
        },
        Handler {
            store: store.clone(),
            clock,
            rules,
            watch: watch.clone(),
        },
    );
    let receipts = tokio::spawn(send_receipts(store, server.handle(), watch));
    let result = server.serve(listener, shutdown).await;
    receipts.abort();
    result
}
