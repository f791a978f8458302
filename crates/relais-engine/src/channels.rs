//! The configured channels of a server, whatever their kind: started from their stored
//! records ([`relais_channels::start`]), registered with the dispatcher, and their events
//! stored ([`apply_events`]).
//!
//! What a channel hands over is confirmed to its provider only once it is stored: a
//! status the dispatcher's writer records with its group commit is confirmed after that
//! commit, a customer's message once the inbound pipeline has stored it. A crash in
//! between makes the provider deliver it again; nothing is lost.

use crate::dispatch::{ChannelRegistry, ReceiptAck, apply_receipt_to, receipt_event};
use crate::inbound::InboundPipeline;
use relais_channels::configured::TemplateFetchError;
use relais_channels::{
    ChannelAdapter, ChannelEvent, ChannelEvents, ChannelIdentity, ConfigError, Confirm,
    ConsentReport, Mailbox, MessageRef, StatusReport, WebhookAnswer, WebhookError, WebhookReader,
    WebhookRequest,
};
use relais_core::clock::Clock;
use relais_core::consent::{ConsentRecord, ConsentSource};
use relais_core::status::{MessageStatus, advance};
use relais_store::{ChannelRecord, MessageEvent, ProviderTemplate, Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What storing a channel's events needs.
#[derive(Clone)]
pub struct EventSink {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    registry: ChannelRegistry,
    /// Customers' messages go to the inbound pipeline when set (refused otherwise, so
    /// that the provider keeps them).
    inbound: Option<Arc<InboundPipeline>>,
}

/// The running configured channels of a server, shared by the API (which starts a channel
/// when it is created) and the dispatcher (through the registry).
#[derive(Clone)]
pub struct ConfiguredChannels {
    sink: EventSink,
    running: Arc<Mutex<HashMap<String, Running>>>,
}

/// A started channel, with what its webhooks are read with.
#[derive(Clone)]
struct Running {
    adapter: Arc<dyn ChannelAdapter>,
    webhook: Option<WebhookReader>,
    mailbox: Option<Mailbox>,
}

/// The contact's latest messages a watermark is applied to.
const WATERMARK_MESSAGES: u32 = 100;

/// The pauses before looking again for the message of a status whose provider id is not
/// stored yet, each followed by the writer's next commit: together well past the moment
/// between a provider's answer to a send and its commit.
const EARLY_STATUS_PAUSES: [std::time::Duration; 4] = [
    std::time::Duration::ZERO,
    std::time::Duration::from_millis(250),
    std::time::Duration::from_millis(500),
    std::time::Duration::from_secs(1),
];

/// The longest wait for the writer's next commit.
const COMMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a provider's call waits for what it delivered to be stored.
const WEBHOOK_STORE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a channel's provider templates were not synchronised; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum TemplateSyncFailure {
    #[error("channel {0} not found")]
    NotFound(String),
    #[error(transparent)]
    Fetch(TemplateFetchError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a call to `/hooks/{channel}` was not taken.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("no channel `{0}` takes webhooks here")]
    UnknownChannel(String),
    #[error(transparent)]
    Refused(#[from] WebhookError),
    /// Read, but not all of it stored (the store is down or full): the provider should
    /// deliver it again.
    #[error("what the call delivered could not be stored; deliver it again")]
    NotStored,
}

impl ConfiguredChannels {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        ConfiguredChannels {
            sink: EventSink {
                store,
                clock,
                registry: ChannelRegistry::default(),
                inbound: None,
            },
            running: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Customers' messages on the channels started from now on go to the inbound
    /// pipeline.
    pub fn with_inbound(mut self, pipeline: Arc<InboundPipeline>) -> Self {
        self.sink.inbound = Some(pipeline);
        self
    }

    /// What the dispatcher routes configured channels' messages through.
    pub fn registry(&self) -> ChannelRegistry {
        self.sink.registry.clone()
    }

    /// The hand-off queue of the dispatcher that runs with [`ConfiguredChannels::registry`].
    pub fn handoff(&self) -> &crate::handoff::Handoff {
        self.sink.registry.handoff()
    }

    /// Where a channel's events are stored.
    pub fn events(&self) -> &EventSink {
        &self.sink
    }

    /// Starts every tenant's stored channel; the number started.
    pub async fn load(&self) -> Result<usize, StoreError> {
        let mut started = 0;
        for kind in relais_channels::configured::KINDS {
            for record in self.sink.store.channels_of_kind(kind).await? {
                match self.start(&record) {
                    Ok(()) => started += 1,
                    Err(e) => {
                        tracing::error!(channel = %record.id, name = %record.name, kind, error = %e, "stored channel has a bad config; not started")
                    }
                }
            }
        }
        Ok(started)
    }

    /// Starts (or restarts) a channel: registers its adapter and reads its events from
    /// now on. Its stored config has its secrets sealed ([`crate::secrets`]); a secret
    /// that does not open is a config error.
    pub fn start(&self, record: &ChannelRecord) -> Result<(), ConfigError> {
        // Before the first e-mail channel writes an unsubscribe link with it.
        crate::secrets::unsubscribe_key();
        let opened = crate::secrets::current()
            .open_config(&record.config)
            .map_err(|e| ConfigError::new(&format!("/{}", e.key), e.error.to_string()))?;
        let identity = ChannelIdentity {
            id: record.id.clone(),
            tenant_id: record.tenant_id.clone(),
            name: record.name.clone(),
        };
        let started = relais_channels::start(&record.kind, identity, &opened)?;
        if let Some(events) = started.events {
            tokio::spawn(read_events(record.id.clone(), self.sink.clone(), events));
        }
        let running = Running {
            adapter: started.adapter.clone(),
            webhook: started.webhook,
            mailbox: started.mailbox,
        };
        let previous = {
            let mut map = self.running.lock().unwrap_or_else(|p| p.into_inner());
            map.insert(record.id.clone(), running)
        };
        if let Some(previous) = previous {
            previous.adapter.close();
        }
        self.sink.registry.insert(&record.id, started.adapter);
        Ok(())
    }

    /// Reads the templates of channel `channel_id`'s provider account (WhatsApp's message
    /// templates) and keeps them in the store in place of the last synchronisation's: the
    /// accept path then refuses a template the provider has not approved. Answers them.
    pub async fn sync_templates(
        &self,
        tenant: &str,
        channel_id: &str,
    ) -> Result<Vec<ProviderTemplate>, TemplateSyncFailure> {
        let store = &self.sink.store;
        let record = store
            .channel(tenant, channel_id)
            .await?
            .ok_or_else(|| TemplateSyncFailure::NotFound(channel_id.to_owned()))?;
        let opened = crate::secrets::current()
            .open_config(&record.config)
            .map_err(|e| {
                TemplateSyncFailure::Fetch(TemplateFetchError::Config(ConfigError::new(
                    &format!("/{}", e.key),
                    e.error.to_string(),
                )))
            })?;
        let fetched = relais_channels::configured::fetch_provider_templates(&record.kind, &opened)
            .await
            .map_err(TemplateSyncFailure::Fetch)?;
        let now = self.sink.clock.now();
        let templates: Vec<ProviderTemplate> = fetched
            .into_iter()
            .map(|t| ProviderTemplate {
                channel_id: record.id.clone(),
                name: t.name,
                language: t.language,
                category: t.category,
                status: t.status,
                components: t.components,
                synced_at: now,
            })
            .collect();
        store
            .replace_provider_templates(tenant, &record.id, &templates)
            .await?;
        Ok(store.provider_templates(tenant, &record.id).await?)
    }

    /// Stops a channel (closes its connections); messages still routed to it fail as
    /// unconfigured.
    pub fn stop(&self, channel_id: &str) {
        self.sink.registry.remove(channel_id);
        let removed = {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            running.remove(channel_id)
        };
        if let Some(channel) = removed {
            channel.adapter.close();
        }
    }

    /// A provider's call to a channel's `/hooks/{channel}` address: the text to answer a
    /// handshake with, or `None` once what it delivered is stored (and only then: the
    /// provider delivers again whatever was not).
    pub async fn webhook(
        &self,
        channel_id: &str,
        request: &WebhookRequest<'_>,
    ) -> Result<Option<String>, HookError> {
        let read = self.running_part(channel_id, |running| running.webhook.clone())?;
        match read(request)? {
            WebhookAnswer::Echo(text) => Ok(Some(text)),
            WebhookAnswer::Deliver(events) => self.store_delivered(events).await.map(|()| None),
        }
    }

    /// The running channels that take mail for `address` (in any case), by id.
    pub fn mailboxes_for(&self, address: &str) -> Vec<String> {
        let map = self.running.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter(|(_, running)| {
                running.mailbox.as_ref().is_some_and(|mailbox| {
                    mailbox
                        .addresses
                        .iter()
                        .any(|a| a.eq_ignore_ascii_case(address))
                })
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// One raw mail that arrived for channel `channel_id` over SMTP, read as a relay's
    /// post to its `/hooks/` address is, and stored; `Ok` only once it is.
    pub async fn mail_arrived(&self, channel_id: &str, raw: &[u8]) -> Result<(), HookError> {
        let mailbox = self.running_part(channel_id, |running| running.mailbox.clone())?;
        let events = (mailbox.read)(raw).map_err(|e| WebhookError::Malformed(e.to_string()))?;
        self.store_delivered(events).await
    }

    /// What `part` takes of the running channel `channel_id` (how it reads its webhooks,
    /// its mailbox), when it runs and has it.
    fn running_part<T>(
        &self,
        channel_id: &str,
        part: impl FnOnce(&Running) -> Option<T>,
    ) -> Result<T, HookError> {
        let map = self.running.lock().unwrap_or_else(|p| p.into_inner());
        map.get(channel_id)
            .and_then(part)
            .ok_or_else(|| HookError::UnknownChannel(channel_id.to_owned()))
    }

    /// Stores what a provider's call delivered; `Ok` once all of it is.
    async fn store_delivered(&self, events: Vec<ChannelEvent>) -> Result<(), HookError> {
        if self.sink.apply_and_wait(events).await {
            Ok(())
        } else {
            Err(HookError::NotStored)
        }
    }
}

async fn read_events(channel_id: String, sink: EventSink, mut events: Box<dyn ChannelEvents>) {
    while let Some(burst) = events.next_burst().await {
        sink.apply(burst).await;
    }
    tracing::debug!(channel = %channel_id, "the channel's events ended");
}

impl EventSink {
    /// Stores what a channel handed over, confirming each event once it is stored (an
    /// event that cannot be stored is left unconfirmed: the provider delivers it again).
    /// Successful statuses of the channel's own messages are written by the dispatcher's
    /// writer in its next group commit, and confirmed after it; customers' messages go
    /// to the inbound pipeline together, in their order.
    pub async fn apply(&self, burst: Vec<ChannelEvent>) {
        let mut statuses = Vec::new();
        let mut written_with_them: Vec<Confirm> = Vec::new();
        let mut inbound = Vec::new();
        let mut not_yet = Vec::new();
        for event in burst {
            match event {
                ChannelEvent::Status(report, confirm)
                    if matches!(report.message, MessageRef::SentBefore { .. }) =>
                {
                    match self.sent_before(report).await {
                        Ok(reached) if reached.is_empty() => confirm.confirm(),
                        Ok(reached) => {
                            statuses.extend(reached);
                            written_with_them.push(confirm);
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "cannot apply a provider's watermark; it will be delivered again");
                        }
                    }
                }
                ChannelEvent::Status(report, confirm) => match self.status(report).await {
                    Ok(Stored::Now) => confirm.confirm(),
                    Ok(Stored::WithTheWriter(status)) => {
                        statuses.push(status);
                        written_with_them.push(confirm);
                    }
                    Ok(Stored::NotYet(report)) => not_yet.push((report, confirm)),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot apply a provider's status; it will be delivered again");
                    }
                },
                ChannelEvent::Inbound(message, confirm) => inbound.push((message, confirm)),
                ChannelEvent::Consent(report, confirm) => match self.consent(report).await {
                    Ok(()) => confirm.confirm(),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot record a consent the channel reported; it will be delivered again");
                    }
                },
            }
        }
        let handed = inbound.into_iter().map(|(message, confirm)| async move {
            let Some(pipeline) = &self.inbound else {
                tracing::warn!(channel = ?message.channel_id, "inbound message refused: no inbound pipeline; the provider keeps it");
                return;
            };
            match pipeline.receive(message).await {
                Ok(_) => confirm.confirm(),
                Err(e) => {
                    tracing::error!(error = %e, "inbound message not stored; the provider will deliver it again");
                }
            }
        });
        futures::future::join_all(handed).await;
        let confirm: ReceiptAck =
            Box::new(move || written_with_them.into_iter().for_each(Confirm::confirm));
        self.registry.receipts().push(statuses, Some(confirm));
        if !not_yet.is_empty() {
            // Off the channel's path: what comes after them is not held up.
            let sink = self.clone();
            tokio::spawn(async move { sink.apply_not_yet(not_yet).await });
        }
    }

    /// Statuses whose provider id is not stored yet: a provider may report on a message
    /// before the dispatcher has stored the id its send was acknowledged with (Meta's
    /// `sent` can beat that commit). They are looked up again after the writer's next
    /// commits, a few times; what is still unknown then is another tool's message on the
    /// same account, taken and dropped.
    async fn apply_not_yet(&self, mut waiting: Vec<(StatusReport, Confirm)>) {
        for pause in EARLY_STATUS_PAUSES {
            if waiting.is_empty() {
                return;
            }
            tokio::time::sleep(pause).await;
            self.registry.receipts().committed(COMMIT_WAIT).await;
            let mut statuses = Vec::new();
            let mut written_with_them = Vec::new();
            let mut still = Vec::new();
            for (report, confirm) in waiting {
                match self.status(report).await {
                    Ok(Stored::Now) => confirm.confirm(),
                    Ok(Stored::WithTheWriter(status)) => {
                        statuses.push(status);
                        written_with_them.push(confirm);
                    }
                    Ok(Stored::NotYet(report)) => still.push((report, confirm)),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot apply a provider's status; it will be delivered again");
                    }
                }
            }
            let confirm: ReceiptAck =
                Box::new(move || written_with_them.into_iter().for_each(Confirm::confirm));
            self.registry.receipts().push(statuses, Some(confirm));
            waiting = still;
        }
        for (report, confirm) in waiting {
            tracing::debug!(channel = %report.channel_id, message = ?report.message, "a status for a message this channel did not send; dropped");
            confirm.confirm();
        }
    }

    /// [`EventSink::apply`], and whether every event was stored (within
    /// [`WEBHOOK_STORE_WAIT`]): for a provider that waits for the answer of its call.
    pub async fn apply_and_wait(&self, burst: Vec<ChannelEvent>) -> bool {
        let mut stored = Vec::with_capacity(burst.len());
        let burst = burst
            .into_iter()
            .map(|event| {
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                stored.push(rx);
                let told = |confirm: Confirm| {
                    Confirm::new(move || {
                        confirm.confirm();
                        let _ = tx.send(());
                    })
                };
                match event {
                    ChannelEvent::Inbound(message, confirm) => {
                        ChannelEvent::Inbound(message, told(confirm))
                    }
                    ChannelEvent::Status(report, confirm) => {
                        ChannelEvent::Status(report, told(confirm))
                    }
                    ChannelEvent::Consent(report, confirm) => {
                        ChannelEvent::Consent(report, told(confirm))
                    }
                }
            })
            .collect();
        self.apply(burst).await;
        let all = futures::future::join_all(stored);
        match tokio::time::timeout(WEBHOOK_STORE_WAIT, all).await {
            Ok(answers) => answers.iter().all(Result::is_ok),
            Err(_) => false,
        }
    }

    /// Records a consent a person changed on the channel in the contact's ledger, with the
    /// provider's words as proof, and tells the tenant's CRM. A person Relais does not know
    /// on that channel has no ledger: nothing is recorded. A redelivered report (the same
    /// proof, from the channel) is recorded once.
    async fn consent(&self, report: ConsentReport) -> Result<(), StoreError> {
        let tenant = report.tenant_id.as_str();
        // A phone number is one person's whichever phone channel it was kept under.
        let kind = (!report.channel.is_phone_addressed()).then_some(report.channel);
        let Some(contact) = self
            .store
            .contact_by_identity(tenant, kind, &report.address)
            .await?
        else {
            tracing::info!(channel = %report.channel.as_str(), "a consent change for an address no contact has; nothing recorded");
            return Ok(());
        };
        record_channel_consent(
            &*self.store,
            tenant,
            ConsentRecord {
                id: relais_core::ids::new_id(),
                contact_id: contact.id,
                channel: Some(report.channel),
                purpose: report.purpose,
                status: report.status,
                source: ConsentSource::Channel,
                proof: Some(report.proof),
                recorded_at: self.clock.now(),
            },
            None,
        )
        .await
        .map(|_| ())
    }

    /// A watermark's status for each message the channel sent its recipient before it
    /// that has not gone that far: among the contact's latest messages, as a watermark
    /// follows what was just sent. Written by the dispatcher's writer, which never moves
    /// a message backwards.
    async fn sent_before(
        &self,
        report: StatusReport,
    ) -> Result<Vec<(String, MessageEvent)>, crate::dispatch::DispatchError> {
        let MessageRef::SentBefore {
            kind,
            recipient,
            before,
        } = &report.message
        else {
            return Ok(Vec::new());
        };
        let Some(contact) = self
            .store
            .contact_by_identity(&report.tenant_id, Some(*kind), recipient)
            .await?
        else {
            return Ok(Vec::new());
        };
        let latest = self
            .store
            .messages_of_contact(&report.tenant_id, &contact.id, WATERMARK_MESSAGES)
            .await?;
        let at = report.at.unwrap_or_else(|| self.clock.now());
        Ok(latest
            .into_iter()
            .filter(|message| {
                message.channel == report.channel_id
                    && message.to_address == *recipient
                    && message.created_at <= *before
                    // A message that failed was not read because a later one was.
                    && matches!(
                        message.status,
                        MessageStatus::Sending | MessageStatus::Sent | MessageStatus::Delivered
                    )
                    && advance(message.status, report.status).is_some()
            })
            .map(|message| {
                let event =
                    receipt_event(report.status, at, &report.channel_id, report.detail.clone());
                (message.id, event)
            })
            .collect())
    }

    async fn status(&self, report: StatusReport) -> Result<Stored, crate::dispatch::DispatchError> {
        let at = report.at.unwrap_or_else(|| self.clock.now());
        let (message_id, found) = match &report.message {
            MessageRef::SentBefore { .. } => return Ok(Stored::Now),
            MessageRef::Ours(message_id) => (message_id.clone(), None),
            MessageRef::Provider(provider_id) => {
                let found = self
                    .store
                    .message_by_provider_id(&report.channel_id, provider_id)
                    .await?;
                let Some(message) = found else {
                    return Ok(Stored::NotYet(report));
                };
                (message.id.clone(), Some(message))
            }
        };
        if report.status.is_failure() {
            // A failure may move the message to the next step of its chain: applied now.
            let message = match found {
                Some(message) => Some(message),
                None => self
                    .store
                    .message(&report.tenant_id, &message_id)
                    .await?
                    .map(|found| found.message),
            };
            if let Some(message) = message {
                let gone = match report.address_gone {
                    true => self.gone_identity(&report.channel_id, &message).await?,
                    false => None,
                };
                let detail = match (&gone, report.detail) {
                    (Some((identity, contact)), detail) => Some(format!(
                        "{}this {} address was removed from contact {contact}",
                        detail.map(|d| format!("{d}; ")).unwrap_or_default(),
                        identity.channel
                    )),
                    (None, detail) => detail,
                };
                apply_receipt_to(&*self.store, &message, report.status, at, detail).await?;
                // After the failure is stored: a crash between the two leaves the
                // provider's call unanswered, and its redelivery removes the address.
                if let Some((identity, contact)) = gone {
                    self.store
                        .remove_identity(&message.tenant_id, &contact, &identity)
                        .await?;
                }
            }
            return Ok(Stored::Now);
        }
        let event = receipt_event(report.status, at, &report.channel_id, report.detail);
        Ok(Stored::WithTheWriter((message_id, event)))
    }
}

impl EventSink {
    /// The identity a provider said is dead (a hard bounce for an unknown mailbox): the
    /// address `message` went to, on the kind of the channel that reported it, with the
    /// contact that holds it; `None` when the message has no contact.
    async fn gone_identity(
        &self,
        channel_id: &str,
        message: &relais_store::Message,
    ) -> Result<Option<(relais_core::contact::Identity, String)>, StoreError> {
        let Some(contact) = message.contact_id.clone() else {
            return Ok(None);
        };
        let kind = self
            .store
            .channel(&message.tenant_id, channel_id)
            .await?
            .and_then(|record| crate::send::configured_kind(&record.kind));
        Ok(kind.map(|channel| {
            (
                relais_core::contact::Identity {
                    channel,
                    address: message.to_address.clone(),
                },
                contact,
            )
        }))
    }
}

/// Appends a consent a person changed on a channel (`source` `channel`) to their ledger
/// and tells the tenant's CRM, unless the ledger holds that proof from the channel
/// already: a redelivered report, or a link followed twice, is recorded once. Whether it
/// was recorded now.
pub(crate) async fn record_channel_consent(
    store: &dyn Store,
    tenant: &str,
    record: ConsentRecord,
    message_id: Option<&str>,
) -> Result<bool, StoreError> {
    let ledger = store.consents(tenant, &record.contact_id).await?;
    let already = ledger.iter().any(|r| {
        r.source == ConsentSource::Channel && r.proof.is_some() && r.proof == record.proof
    });
    if already {
        return Ok(false);
    }
    store.append_consent(tenant, &record).await?;
    crate::crm::consent_changed(store, tenant, &record, message_id, record.recorded_at).await?;
    Ok(true)
}

/// Where a status went.
enum Stored {
    Now,
    WithTheWriter((String, MessageEvent)),
    /// Its provider id is not stored (yet): see [`EventSink::apply_not_yet`].
    NotYet(StatusReport),
}
