//! The campaign worker: one step ([`CampaignRunner::run_once`]) takes the lease of a
//! running campaign and sends to its recipients a page at a time until it is done, paused,
//! waiting for an A/B test's results, or out of its turn; a loop
//! ([`CampaignRunner::run_forever`]) calls it when woken or every few seconds.
//!
//! For each recipient of a page, in order: their variant (by bucket, see
//! `relais_core::campaign::split`), an address on one of the campaign's channels, consent
//! for the campaign's purpose on one of them, the tenant's frequency cap, and their send
//! time (the campaign's throughput, their best hour, its window, its end). Those that pass
//! are handed to the accept path together, each under the key `campaign:{id}:{contact}`:
//! a page taken again after a crash finds the messages it stored and stores no other.

use super::CampaignError;
use super::spec::Campaign;
use crate::send::{AcceptError, Acceptor, Idempotency, Recipient, SendRequest};
use crate::settings::frequency_cap_of;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use relais_core::campaign::split::{Assignment, VariantScore, bucket, choose_winner};
use relais_core::campaign::timing::{best_hour, send_time, slot};
use relais_core::campaign::{CampaignPhase, CampaignState, RecipientState};
use relais_core::channel::ChannelKind;
use relais_core::clock::Clock;
use relais_core::consent::may_send;
use relais_core::contact::Contact;
use relais_core::status::MessageStatus;
use relais_store::{CampaignRecord, RecipientOutcome, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Recipients read, checked and stored together.
pub const PAGE: i64 = 1000;
/// Pages one turn sends before it gives the lease back (and lets another campaign in).
const PAGES_PER_TURN: usize = 50;
/// Pages being stored while the next is read and decided.
const PAGES_IN_FLIGHT: usize = 2;

/// How long a lease lasts without renewal: a node that dies mid-campaign holds it up this
/// long at most. Each page renews it.
const LEASE: SignedDuration = SignedDuration::from_secs(30);
/// How far back a recipient's engagements are read for their best hour.
const ENGAGEMENT_HISTORY: SignedDuration = SignedDuration::from_hours(180 * 24);
/// Engagements read for the segment's and the tenant's best hour.
const ENGAGEMENT_SAMPLE: i64 = 50_000;

/// What starting a campaign fixed besides its recipients.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Plan {
    pub filter: String,
    /// The hour most of the segment's engagements fell at (in each contact's zone).
    pub segment_hour: Option<u8>,
    /// The same over all the tenant's contacts.
    pub tenant_hour: Option<u8>,
    /// The next free slot of a campaign with a throughput, as a UTC instant.
    #[serde(default)]
    pub next_slot: Option<Timestamp>,
}

/// Reads what a campaign's plan needs: its filter, and the best hours when it optimises
/// send times.
pub(super) async fn plan(
    store: &dyn Store,
    tenant: &str,
    filter: &str,
    campaign: &Campaign,
    now: Timestamp,
) -> Result<serde_json::Value, StoreError> {
    let mut plan = Plan {
        filter: filter.to_owned(),
        ..Default::default()
    };
    if campaign.spec.right_time {
        let since = now.checked_sub(ENGAGEMENT_HISTORY).unwrap_or(now);
        let tenant_times = store
            .recent_engagements(tenant, None, since, ENGAGEMENT_SAMPLE)
            .await?;
        // The segment's best hour is read at the campaign's first turn, once its
        // recipients are fixed.
        plan.tenant_hour = hour_of(&tenant_times);
    }
    Ok(serde_json::to_value(plan).unwrap_or(serde_json::Value::Null))
}

fn hour_of(times: &[(Option<String>, Timestamp)]) -> Option<u8> {
    let zones: Vec<TimeZone> = times.iter().map(|(tz, _)| zone(tz.as_deref())).collect();
    best_hour(zones.iter().zip(times.iter().map(|(_, at)| *at)))
}

fn zone(name: Option<&str>) -> TimeZone {
    name.and_then(|n| TimeZone::get(n).ok())
        .unwrap_or(TimeZone::UTC)
}

/// The channel kinds a campaign's messages may take, in its order; empty when it names
/// none (the accept path routes by the contact's identities).
pub(super) async fn chain_kinds(
    store: &dyn Store,
    tenant: &str,
    campaign: &Campaign,
) -> Result<Vec<ChannelKind>, StoreError> {
    let names: Vec<String> = match (&campaign.spec.channel, &campaign.spec.channels) {
        (Some(channel), _) => vec![channel.clone()],
        (None, Some(chain)) => chain.steps().iter().map(|s| s.channel.clone()).collect(),
        (None, None) => Vec::new(),
    };
    let mut kinds = Vec::with_capacity(names.len());
    for name in names {
        let kind = match name.parse::<ChannelKind>() {
            Ok(kind) => Some(kind),
            Err(_) => store
                .channel_by_name_or_id(tenant, &name)
                .await?
                .and_then(|c| crate::send::configured_kind(&c.kind)),
        };
        if let Some(kind) = kind
            && !kinds.contains(&kind)
        {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

/// The kinds of `kinds` on which the contact has an address (all of theirs when `kinds`
/// is empty).
pub(super) fn reachable_on<'a>(
    contact: &'a Contact,
    kinds: &'a [ChannelKind],
) -> Box<dyn Iterator<Item = ChannelKind> + 'a> {
    if kinds.is_empty() {
        Box::new(contact.identities.iter().map(|i| i.channel))
    } else {
        Box::new(
            kinds
                .iter()
                .copied()
                .filter(|k| contact.address_on(*k).is_some()),
        )
    }
}

/// What one turn did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    pub campaign_id: String,
    pub enqueued: usize,
    pub skipped: usize,
    pub waiting: usize,
    /// The A/B test's winner, when this turn chose it.
    pub winner: Option<String>,
    pub completed: bool,
}

impl RunReport {
    /// The turn moved the campaign on (recipients done, or a winner chosen).
    pub fn did_work(&self) -> bool {
        self.enqueued + self.skipped + self.waiting > 0 || self.winner.is_some()
    }
}

/// Sends campaigns' messages; any number of nodes may run one.
#[derive(Clone)]
pub struct CampaignRunner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    acceptor: Acceptor,
    owner: String,
    pages_per_turn: usize,
}

impl CampaignRunner {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        acceptor: Acceptor,
        owner: impl Into<String>,
    ) -> CampaignRunner {
        CampaignRunner {
            store,
            clock,
            acceptor,
            owner: owner.into(),
            pages_per_turn: PAGES_PER_TURN,
        }
    }

    /// The same worker giving its lease back after `pages` pages (at least one).
    pub fn with_pages_per_turn(mut self, pages: usize) -> CampaignRunner {
        self.pages_per_turn = pages.max(1);
        self
    }

    /// The same worker under another name. A node gives its worker a name that survives
    /// its restarts (its host and address), so that after a crash it takes its leases
    /// back at once instead of waiting for them to lapse.
    pub fn with_owner(mut self, owner: impl Into<String>) -> CampaignRunner {
        self.owner = owner.into();
        self
    }

    /// Calls [`Self::run_once`] whenever `wake` is notified, and every `every` anyway
    /// (A/B tests come due, leases of dead nodes lapse).
    pub async fn run_forever(self, wake: Arc<tokio::sync::Notify>, every: Duration) {
        loop {
            loop {
                match self.run_once().await {
                    // Work was done: there may be more (another page, another campaign).
                    Ok(Some(report)) if report.did_work() => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "a campaign turn failed; it is taken up again");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// One turn: takes a running campaign and sends what it can of it. `None` when no
    /// campaign needs a turn.
    pub async fn run_once(&self) -> Result<Option<RunReport>, CampaignError> {
        let now = self.clock.now();
        let lease_until = now.checked_add(LEASE).unwrap_or(now);
        let Some(record) = self
            .store
            .claim_campaign(&self.owner, now, lease_until)
            .await?
        else {
            return Ok(None);
        };
        let outcome = self.turn(&record).await;
        if let Err(e) = self
            .store
            .release_campaign(&record.id, &self.owner, self.clock.now())
            .await
        {
            tracing::warn!(error = %e, campaign = %record.id, "the campaign's lease could not be given back; it lapses");
        }
        outcome.map(Some)
    }

    async fn turn(&self, record: &CampaignRecord) -> Result<RunReport, CampaignError> {
        let campaign = Campaign::from_json(&record.definition)?;
        let tenant = record.tenant_id.as_str();
        let mut plan: Plan = record
            .plan
            .clone()
            .and_then(|p| serde_json::from_value(p).ok())
            .unwrap_or_default();
        let kinds = chain_kinds(&*self.store, tenant, &campaign).await?;
        let mut report = RunReport {
            campaign_id: record.id.clone(),
            ..Default::default()
        };
        let mut phase = record.phase;
        let mut winner = record
            .winner
            .as_deref()
            .and_then(|w| campaign.variant_index(w));
        let test_ends_at = record.test_ends_at;
        if campaign.spec.right_time && plan.segment_hour.is_none() {
            let now = self.clock.now();
            let since = now.checked_sub(ENGAGEMENT_HISTORY).unwrap_or(now);
            let times = self
                .store
                .recent_engagements(tenant, Some(&record.id), since, ENGAGEMENT_SAMPLE)
                .await?;
            plan.segment_hour = hour_of(&times);
        }
        // A page is stored (accepted, then its recipients' outcomes written) while the next
        // one is read and decided: at most PAGES_IN_FLIGHT pages wait for the store.
        let mut in_flight: InFlight = VecDeque::new();
        let mut after: Option<String> = None;
        // A failure stops the reading; the pages in flight are still waited for.
        let mut turn_result: Result<(), CampaignError> = Ok(());
        for _ in 0..self.pages_per_turn {
            // Paused or canceled between two pages: stop here.
            let current = match self.store.campaign(tenant, &record.id).await {
                Ok(current) => current,
                Err(e) => {
                    turn_result = Err(e.into());
                    break;
                }
            };
            if current.as_ref().map(|c| c.state) != Some(CampaignState::Running) {
                break;
            }
            let now = self.clock.now();
            let wanted = if phase == CampaignPhase::Rest {
                RecipientState::Waiting
            } else {
                RecipientState::Pending
            };
            let page = match self
                .store
                .campaign_recipients(&record.id, wanted, after.as_deref(), PAGE)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    turn_result = Err(e.into());
                    break;
                }
            };
            if page.is_empty() {
                // The phase moves on only once every page is stored and none is left
                // from the start (a page that failed is read again).
                if !in_flight.is_empty() || after.is_some() {
                    match self.drain(&mut in_flight, &mut report).await {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => {
                            turn_result = Err(e);
                            break;
                        }
                    }
                    after = None;
                    continue;
                }
                match phase {
                    CampaignPhase::Test => {
                        let Some((metric, period)) = campaign.test else {
                            phase = CampaignPhase::Rest;
                            continue;
                        };
                        let Some(ends) = test_ends_at else {
                            let ends = now.checked_add(period).unwrap_or(now);
                            self.store
                                .set_campaign_phase(&record.id, phase, None, Some(ends), now)
                                .await?;
                            return Ok(report);
                        };
                        if now < ends {
                            return Ok(report);
                        }
                        let chosen = self.choose(&campaign, record, metric).await?;
                        let name = campaign.variants[chosen].name.clone();
                        self.store
                            .set_campaign_phase(
                                &record.id,
                                CampaignPhase::Rest,
                                name.as_deref(),
                                None,
                                now,
                            )
                            .await?;
                        tracing::info!(campaign = %record.name, winner = ?name, "A/B test decided");
                        report.winner = name;
                        winner = Some(chosen);
                        phase = CampaignPhase::Rest;
                        continue;
                    }
                    CampaignPhase::Send | CampaignPhase::Rest => {
                        self.store
                            .move_campaign(
                                tenant,
                                &record.id,
                                &[CampaignState::Running],
                                CampaignState::Completed,
                                now,
                            )
                            .await?;
                        report.completed = true;
                        return Ok(report);
                    }
                }
            }
            after = page.last().cloned();
            let decided = match self
                .decide(record, &campaign, &kinds, &mut plan, phase, winner, &page)
                .await
            {
                Ok(decided) => decided,
                Err(e) => {
                    turn_result = Err(e);
                    break;
                }
            };
            // The plan as it stands after this page, saved with it.
            let plan_now = plan.next_slot.is_some().then(|| plan.clone());
            // A task of its own: a page's writes must go on while this one waits for its
            // reads (a future left unpolled here would hold the one writer meanwhile).
            let runner = self.clone();
            let stored_record = record.clone();
            in_flight.push_back(tokio::spawn(async move {
                runner.store_page(&stored_record, decided, plan_now).await
            }));
            if in_flight.len() >= PAGES_IN_FLIGHT {
                match self.settle_one(&mut in_flight, &mut report).await {
                    Ok(true) => {}
                    // Another node took it (this one was too slow to renew): what is in
                    // flight is stored (the keys make it harmless), nothing more is read.
                    Ok(false) => break,
                    Err(e) => {
                        turn_result = Err(e);
                        break;
                    }
                }
            }
        }
        let drained = self.drain(&mut in_flight, &mut report).await;
        turn_result.and(drained.map(|_| ()))?;
        Ok(report)
    }

    /// Waits for the oldest page in flight, counts it and renews the lease; false when
    /// another node holds the lease now.
    async fn settle_one(
        &self,
        in_flight: &mut InFlight,
        report: &mut RunReport,
    ) -> Result<bool, CampaignError> {
        let Some(task) = in_flight.pop_front() else {
            return Ok(true);
        };
        let stored = task.await.map_err(|e| {
            CampaignError::Store(StoreError::Corrupt(format!(
                "a campaign page's task ended: {e}"
            )))
        })?;
        for outcome in &stored? {
            match outcome.state {
                RecipientState::Enqueued => report.enqueued += 1,
                RecipientState::Skipped => report.skipped += 1,
                RecipientState::Waiting => report.waiting += 1,
                _ => {}
            }
        }
        let now = self.clock.now();
        let lease_until = now.checked_add(LEASE).unwrap_or(now);
        Ok(self
            .store
            .renew_campaign(&report.campaign_id, &self.owner, lease_until)
            .await?)
    }

    /// Waits for every page in flight; the first failure is returned once all are done,
    /// else whether the lease was kept throughout.
    async fn drain(
        &self,
        in_flight: &mut InFlight,
        report: &mut RunReport,
    ) -> Result<bool, CampaignError> {
        let mut first = Ok(true);
        while !in_flight.is_empty() {
            match (&first, self.settle_one(in_flight, report).await) {
                (Ok(_), Err(e)) => first = Err(e),
                (Ok(_), Ok(false)) => first = Ok(false),
                _ => {}
            }
        }
        first
    }

    /// The variant with the best rate on the test's metric.
    async fn choose(
        &self,
        campaign: &Campaign,
        record: &CampaignRecord,
        metric: relais_core::campaign::split::WinMetric,
    ) -> Result<usize, CampaignError> {
        use relais_core::campaign::split::WinMetric;
        let funnel = self
            .store
            .campaign_funnel(
                &record.tenant_id,
                &record.id,
                &super::report::funnel_query(campaign, None),
            )
            .await?;
        let mut scores = vec![VariantScore { sent: 0, hits: 0 }; campaign.variants.len()];
        for row in funnel {
            let Some(index) = row
                .variant
                .as_deref()
                .and_then(|v| campaign.variant_index(v))
            else {
                continue;
            };
            let status = row.status.parse::<MessageStatus>().ok();
            if matches!(
                status,
                Some(MessageStatus::Rejected) | Some(MessageStatus::Canceled) | None
            ) {
                continue;
            }
            scores[index].sent += row.count;
            let hit = match metric {
                WinMetric::Delivered => {
                    matches!(status, Some(MessageStatus::Delivered | MessageStatus::Read))
                }
                WinMetric::Read => matches!(status, Some(MessageStatus::Read)),
                WinMetric::Replied | WinMetric::Clicked | WinMetric::Converted => false,
            };
            scores[index].hits += match metric {
                _ if hit => row.count,
                WinMetric::Replied => row.replied,
                WinMetric::Clicked => row.clicked,
                WinMetric::Converted => row.converted,
                _ => 0,
            };
        }
        Ok(choose_winner(&scores))
    }

    /// Decides what becomes of one page of recipients: the outcomes known now, and the
    /// messages to accept for the others.
    #[allow(clippy::too_many_arguments)]
    async fn decide(
        &self,
        record: &CampaignRecord,
        campaign: &Campaign,
        kinds: &[ChannelKind],
        plan: &mut Plan,
        phase: CampaignPhase,
        winner: Option<usize>,
        page: &[String],
    ) -> Result<Decided, CampaignError> {
        let tenant = record.tenant_id.as_str();
        let now = self.clock.now();
        let refs: Vec<&str> = page.iter().map(String::as_str).collect();
        let contacts: HashMap<String, Contact> = self
            .store
            .contacts_by_ids(tenant, &refs)
            .await?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        let ledgers = self.store.consents_of(tenant, page).await?;
        let cap = frequency_cap_of(&*self.store, tenant)
            .await?
            .filter(|cap| cap.covers(&campaign.purpose));
        let counts = match &cap {
            Some(cap) => {
                self.store
                    .purpose_counts(
                        tenant,
                        page,
                        cap.purpose(),
                        now.checked_sub(cap.per().duration()).unwrap_or(now),
                        Some(campaign.label.as_str()),
                    )
                    .await?
            }
            None => HashMap::new(),
        };
        let hours = if campaign.spec.right_time {
            let since = now.checked_sub(ENGAGEMENT_HISTORY).unwrap_or(now);
            let mut by_contact: HashMap<String, Vec<Timestamp>> = HashMap::new();
            for (contact, at) in self.store.engagement_times(tenant, page, since).await? {
                by_contact.entry(contact).or_default().push(at);
            }
            by_contact
        } else {
            HashMap::new()
        };
        let started = record.started_at.unwrap_or(now);

        let mut outcomes = Vec::with_capacity(page.len());
        let mut requests: Vec<(usize, SendRequest, Idempotency)> = Vec::new();
        for contact_id in page {
            let skip = |reason: &str, variant: Option<String>| RecipientOutcome {
                contact_id: contact_id.clone(),
                state: RecipientState::Skipped,
                variant,
                message_id: None,
                reason: Some(reason.to_owned()),
            };
            let Some(contact) = contacts.get(contact_id) else {
                outcomes.push(skip("contact_deleted", None));
                continue;
            };
            let index = match (phase, winner) {
                (CampaignPhase::Rest, Some(winner)) => winner,
                _ => match campaign.split.assign(bucket(&record.id, contact_id)) {
                    Assignment::Variant(index) => index,
                    Assignment::Rest => {
                        outcomes.push(RecipientOutcome {
                            contact_id: contact_id.clone(),
                            state: RecipientState::Waiting,
                            variant: None,
                            message_id: None,
                            reason: None,
                        });
                        continue;
                    }
                },
            };
            let variant = &campaign.variants[index];
            let reachable: Vec<ChannelKind> = reachable_on(contact, kinds).collect();
            if reachable.is_empty() {
                outcomes.push(skip("no_address", variant.name.clone()));
                continue;
            }
            let ledger = ledgers
                .get(contact_id)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let decisions: Vec<_> = reachable
                .iter()
                .map(|k| may_send(ledger, *k, &campaign.purpose))
                .collect();
            if !decisions.iter().any(|d| d.allowed) {
                let code = decisions.first().map_or("no_opt_in", |d| d.code);
                outcomes.push(skip(code, variant.name.clone()));
                continue;
            }
            if let Some(cap) = &cap
                && counts.get(contact_id).copied().unwrap_or(0) >= i64::from(cap.max())
            {
                outcomes.push(skip("frequency_cap", variant.name.clone()));
                continue;
            }
            let tz = contact
                .timezone
                .as_deref()
                .and_then(|t| TimeZone::get(t).ok())
                .or_else(|| {
                    reachable
                        .iter()
                        .find_map(|k| contact.address_on(*k))
                        .and_then(crate::send::phone_time_zone)
                })
                .unwrap_or(TimeZone::UTC);
            let hour = if campaign.spec.right_time {
                preferred_hour(contact)
                    .or_else(|| {
                        hours
                            .get(contact_id)
                            .and_then(|times| best_hour(times.iter().map(|at| (&tz, *at))))
                    })
                    .or(plan.segment_hour)
                    .or(plan.tenant_hour)
            } else {
                None
            };
            let base = match (campaign.spec.rate, plan.next_slot) {
                (Some(_), Some(next)) => next.max(now),
                _ => started.max(now),
            };
            let at = send_time(base, &tz, hour, campaign.spec.window.as_ref());
            if let Some(rate) = campaign.spec.rate {
                plan.next_slot = Some(slot(base, 1, Some(rate)));
            }
            if let Some(end) = campaign.spec.ends_at
                && at >= end
            {
                outcomes.push(skip("after_end", variant.name.clone()));
                continue;
            }
            let request = SendRequest {
                to: Recipient::Contact {
                    contact_id: contact_id.clone(),
                },
                channel: campaign.spec.channel.clone(),
                channels: campaign.spec.channels.clone(),
                content: variant.content.clone(),
                template: variant.template.clone(),
                variables: campaign.spec.variables.clone(),
                purpose: Some(campaign.purpose.clone()),
                from: campaign.spec.from.clone(),
                send_at: (at > now).then_some(at),
                validity: None,
                campaign: Some(campaign.label.as_str().to_owned()),
                track_links: campaign.spec.track_links,
                human_agent: false,
            };
            // The same key for the same recipient every time: a page taken again finds
            // the message stored the first time.
            let idempotency = Idempotency {
                key: format!("campaign:{}:{}", record.id, contact_id),
                request_hash: format!("campaign:{}", record.id),
            };
            outcomes.push(RecipientOutcome {
                contact_id: contact_id.clone(),
                state: RecipientState::Pending,
                variant: variant.name.clone(),
                message_id: None,
                reason: None,
            });
            requests.push((outcomes.len() - 1, request, idempotency));
        }

        Ok(Decided { outcomes, requests })
    }

    /// Stores a decided page: its messages through the accept path, then what became of
    /// each recipient (and the plan as it stood after the page), in that order, so that a
    /// page taken again after a crash finds its messages by their keys.
    async fn store_page(
        &self,
        record: &CampaignRecord,
        decided: Decided,
        plan: Option<Plan>,
    ) -> Result<Vec<RecipientOutcome>, CampaignError> {
        let tenant = record.tenant_id.as_str();
        let Decided {
            mut outcomes,
            requests,
        } = decided;
        let answers =
            futures::future::join_all(requests.into_iter().map(|(slot, request, idempotency)| {
                let acceptor = self.acceptor.clone();
                async move {
                    (
                        slot,
                        acceptor.accept(tenant, request, Some(idempotency)).await,
                    )
                }
            }))
            .await;
        for (slot, answer) in answers {
            let outcome = &mut outcomes[slot];
            match answer {
                Ok(accepted) if accepted.status == MessageStatus::Rejected => {
                    outcome.state = RecipientState::Skipped;
                    outcome.message_id = Some(accepted.id);
                    outcome.reason = Some("rejected".into());
                }
                Ok(accepted) => {
                    outcome.state = RecipientState::Enqueued;
                    outcome.message_id = Some(accepted.id);
                }
                Err(AcceptError::IdempotencyConflict { message_id }) => {
                    outcome.state = RecipientState::Enqueued;
                    outcome.message_id = Some(message_id);
                }
                Err(AcceptError::Invalid { detail, .. }) => {
                    outcome.state = RecipientState::Skipped;
                    let mut reason = format!("refused: {detail}");
                    reason.truncate(reason.floor_char_boundary(200));
                    outcome.reason = Some(reason);
                }
                // The tenant refuses what its content checks score too high: this
                // recipient's message is not sent, the others go on.
                Err(AcceptError::ContentRefused { .. }) => {
                    outcome.state = RecipientState::Skipped;
                    outcome.reason = Some("content_check".into());
                }
                Err(e) => return Err(store_error(e)),
            }
        }
        self.store.record_recipients(&record.id, &outcomes).await?;
        if let Some(plan) = plan {
            self.store
                .set_campaign_plan(&record.id, &serde_json::to_value(&plan).unwrap_or_default())
                .await?;
        }
        Ok(outcomes)
    }
}

/// Pages being stored, oldest first.
type InFlight = VecDeque<tokio::task::JoinHandle<Result<Vec<RecipientOutcome>, CampaignError>>>;

/// One page decided: every recipient's outcome (`Pending` for those with a message to
/// accept), and the messages, each with the index of its recipient's outcome.
struct Decided {
    outcomes: Vec<RecipientOutcome>,
    requests: Vec<(usize, SendRequest, Idempotency)>,
}

/// A recipient's own `preferred_hour` attribute (0–23), which wins over what was learned.
fn preferred_hour(contact: &Contact) -> Option<u8> {
    contact
        .attributes
        .get("preferred_hour")
        .and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .filter(|h| *h < 24)
        .map(|h| h as u8)
}

fn store_error(e: AcceptError) -> CampaignError {
    match e {
        AcceptError::Store(e) => CampaignError::Store(e),
        other => CampaignError::Store(StoreError::Corrupt(other.to_string())),
    }
}
