//! Campaigns: a segment, content (with variants and an A/B test), channels and timing,
//! started, paused, resumed or canceled over the API, and sent by a worker that any node
//! may run.
//!
//! Starting a campaign fixes its recipients (the contacts its segment holds then) in one
//! transaction. The worker ([`CampaignRunner`]) takes a running campaign's lease and goes
//! through its recipients a page at a time: consent, the frequency cap, the send window
//! and the hour of each recipient are checked here, and each message goes through the
//! accept path like any other (quiet hours, fallback, receipts). Every message is stored
//! under an idempotency key of the campaign and the contact, and what became of each
//! recipient is written after their message: a worker killed at any point is followed by
//! one that stores no message twice and skips nobody.
//!
//! - [`spec`]: the campaign's JSON, checked.
//! - [`runner`]: the worker.
//! - [`report`]: progress and the funnel per variant and channel.

pub mod report;
pub mod runner;
pub mod spec;

pub use report::{CampaignReport, Progress};
pub use runner::{CampaignRunner, RunReport};
pub use spec::Campaign;

use jiff::Timestamp;
use relais_core::campaign::{CampaignPhase, CampaignState};
use relais_core::clock::Clock;
use relais_core::segment::Filter;
use relais_store::{CampaignRecord, Store, StoreError};
use serde::Serialize;
use std::sync::Arc;

/// Why a campaign request was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// The campaign's JSON is wrong at `pointer`.
    #[error("{pointer}: {detail}")]
    Invalid { pointer: String, detail: String },
    #[error("no campaign `{0}`")]
    NotFound(String),
    /// The request does not fit the campaign's state (starting one that runs already).
    #[error("{0}")]
    State(String),
    /// The campaign cannot start, and why (an empty segment, no reachable recipient, its
    /// end passed).
    #[error("{0}")]
    CannotStart(String),
    #[error("a campaign named `{0}` exists")]
    NameTaken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A campaign as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignView {
    #[serde(flatten)]
    pub record: CampaignRecord,
    pub progress: Progress,
}

/// Campaigns of the API: create, read, start, pause, resume, cancel.
#[derive(Clone)]
pub struct Campaigns {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    wake: Arc<tokio::sync::Notify>,
}

impl Campaigns {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Campaigns {
        Campaigns {
            store,
            clock,
            wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Wakes the worker when a campaign starts or resumes.
    pub fn wake(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }

    pub async fn create(
        &self,
        tenant: &str,
        body: &serde_json::Value,
    ) -> Result<CampaignView, CampaignError> {
        let campaign = Campaign::from_json(body)?;
        if let Some(segment) = &campaign.spec.segment
            && self.store.segment(tenant, segment).await?.is_none()
        {
            return Err(CampaignError::Invalid {
                pointer: "/segment".into(),
                detail: format!("no segment `{segment}`: create it with POST /v1/segments"),
            });
        }
        let record = self
            .store
            .insert_campaign(tenant, campaign.label.as_str(), body, self.clock.now())
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => CampaignError::NameTaken(campaign.spec.name.clone()),
                other => other.into(),
            })?;
        self.view(record).await
    }

    pub async fn get(&self, tenant: &str, id: &str) -> Result<CampaignView, CampaignError> {
        let record = self.record(tenant, id).await?;
        self.view(record).await
    }

    pub async fn list(&self, tenant: &str) -> Result<Vec<CampaignRecord>, CampaignError> {
        Ok(self.store.list_campaigns(tenant).await?)
    }

    async fn record(&self, tenant: &str, id: &str) -> Result<CampaignRecord, CampaignError> {
        self.store
            .campaign(tenant, id)
            .await?
            .ok_or_else(|| CampaignError::NotFound(id.to_owned()))
    }

    async fn view(&self, record: CampaignRecord) -> Result<CampaignView, CampaignError> {
        let counts = if record.state == CampaignState::Draft {
            Vec::new()
        } else {
            self.store.recipient_counts(&record.id).await?
        };
        Ok(CampaignView {
            progress: Progress::from_counts(&counts),
            record,
        })
    }

    /// Starts a draft: checks it can reach someone, fixes its recipients and wakes the
    /// worker. Refused, with the reason, when its segment is empty, when none of its
    /// recipients can be reached on its channels, or when its end has passed.
    pub async fn start(&self, tenant: &str, id: &str) -> Result<CampaignView, CampaignError> {
        let record = self.record(tenant, id).await?;
        if record.state != CampaignState::Draft {
            return Err(CampaignError::State(format!(
                "the campaign is {}: only a draft starts (resume a paused one)",
                record.state
            )));
        }
        let campaign = Campaign::from_json(&record.definition)?;
        let now = self.clock.now();
        if let Some(end) = campaign.spec.ends_at
            && end <= now
        {
            return Err(CampaignError::CannotStart(format!(
                "the campaign ended at {end} (`ends_at`): nothing would be sent"
            )));
        }
        let (filter_text, filter) = self.filter_of(tenant, &campaign).await?;
        let matching = self.store.count_matching(tenant, &filter, now).await?;
        if matching == 0 {
            return Err(CampaignError::CannotStart(format!(
                "the segment holds no contact (filter `{filter_text}`)"
            )));
        }
        let kinds = runner::chain_kinds(&*self.store, tenant, &campaign).await?;
        if !self.anyone_reachable(tenant, &filter, &kinds, now).await? {
            return Err(CampaignError::CannotStart(format!(
                "none of the segment's {matching} contacts has an address on the campaign's channels ({})",
                kinds
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let plan = runner::plan(&*self.store, tenant, &filter_text, &campaign, now).await?;
        let phase = if campaign.split.is_ab_test() {
            CampaignPhase::Test
        } else {
            CampaignPhase::Send
        };
        let started = self
            .store
            .start_campaign(tenant, &record.id, &filter, phase, &plan, now)
            .await?;
        if started.is_none() {
            return Err(CampaignError::State(
                "the campaign was started by another request".into(),
            ));
        }
        self.wake.notify_one();
        self.get(tenant, &record.id).await
    }

    /// The campaign's filter, its own or its saved segment's, parsed.
    async fn filter_of(
        &self,
        tenant: &str,
        campaign: &Campaign,
    ) -> Result<(String, Filter), CampaignError> {
        let text = match (&campaign.spec.filter, &campaign.spec.segment) {
            (Some(filter), _) => filter.clone(),
            (None, Some(segment)) => {
                self.store
                    .segment(tenant, segment)
                    .await?
                    .ok_or_else(|| {
                        CampaignError::CannotStart(format!("its segment `{segment}` was deleted"))
                    })?
                    .filter
            }
            (None, None) => {
                return Err(CampaignError::CannotStart(
                    "the campaign has no recipients".into(),
                ));
            }
        };
        let filter = Filter::parse(&text).map_err(|e| CampaignError::Invalid {
            pointer: "/filter".into(),
            detail: e.to_string(),
        })?;
        Ok((text, filter))
    }

    /// Whether at least one contact of the segment has an address on one of `kinds`
    /// (any address when the campaign names no channel).
    async fn anyone_reachable(
        &self,
        tenant: &str,
        filter: &Filter,
        kinds: &[relais_core::channel::ChannelKind],
        now: Timestamp,
    ) -> Result<bool, CampaignError> {
        let mut after: Option<String> = None;
        loop {
            let ids = self
                .store
                .matching_contacts(tenant, filter, now, after.as_deref(), 1000)
                .await?;
            let Some(last) = ids.last().cloned() else {
                return Ok(false);
            };
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let contacts = self.store.contacts_by_ids(tenant, &refs).await?;
            if contacts
                .iter()
                .any(|c| runner::reachable_on(c, kinds).next().is_some())
            {
                return Ok(true);
            }
            after = Some(last);
        }
    }

    pub async fn pause(&self, tenant: &str, id: &str) -> Result<CampaignView, CampaignError> {
        self.move_to(tenant, id, &[CampaignState::Running], CampaignState::Paused)
            .await
    }

    pub async fn resume(&self, tenant: &str, id: &str) -> Result<CampaignView, CampaignError> {
        let view = self
            .move_to(tenant, id, &[CampaignState::Paused], CampaignState::Running)
            .await?;
        self.wake.notify_one();
        Ok(view)
    }

    /// Cancels a draft, running or paused campaign: recipients not yet done are canceled;
    /// messages already stored stay as they are (cancel a scheduled one with
    /// `DELETE /v1/messages/{id}`).
    pub async fn cancel(&self, tenant: &str, id: &str) -> Result<CampaignView, CampaignError> {
        self.move_to(
            tenant,
            id,
            &[
                CampaignState::Draft,
                CampaignState::Running,
                CampaignState::Paused,
            ],
            CampaignState::Canceled,
        )
        .await
    }

    async fn move_to(
        &self,
        tenant: &str,
        id: &str,
        from: &[CampaignState],
        to: CampaignState,
    ) -> Result<CampaignView, CampaignError> {
        let record = self.record(tenant, id).await?;
        match self
            .store
            .move_campaign(tenant, &record.id, from, to, self.clock.now())
            .await?
        {
            Some(moved) => self.view(moved).await,
            None => Err(CampaignError::State(format!(
                "the campaign is {}: it cannot become {to}",
                record.state
            ))),
        }
    }

    /// Progress, skips by reason and the funnel per variant and channel.
    pub async fn report(&self, tenant: &str, id: &str) -> Result<CampaignReport, CampaignError> {
        let record = self.record(tenant, id).await?;
        let counts = self.store.recipient_counts(&record.id).await?;
        let campaign = Campaign::from_json(&record.definition)?;
        let prices = crate::settings::prices_of(&*self.store, tenant).await?;
        let funnel = self
            .store
            .campaign_funnel(
                tenant,
                &record.id,
                &report::funnel_query(&campaign, Some(&prices)),
            )
            .await?;
        Ok(CampaignReport::new(&record, &counts, &funnel, &prices))
    }
}
