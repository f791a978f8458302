//! Everything between a request and a message ready to store, for many requests at once:
//! the store is asked first (recipients resolved and created together, configured
//! channels, consent ledgers and quiet hours read once), then the routing, rendering and
//! scheduling run off the async workers, each request's templates within its own budget,
//! so that a hostile template slows only its own request.

use super::route::{ChannelNames, Named, kind_of, pick_route, resolve_channel_names, route_steps};
use super::templated::{Known, fit_route, render_stored};
use super::{AcceptContext, AcceptError, Idempotency, Recipient, SendRequest, invalid};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use relais_core::campaign::CampaignLabel;
use relais_core::channel::ChannelKind;
use relais_core::consent::{ConsentRecord, Purpose, may_send};
use relais_core::contact::{AddressRules, Contact, Identity};
use relais_core::content::{Body, ChannelCapabilities, Content, TextLimit, degrade};
use relais_core::content_check::{Assessment, ContentRules, Verdict, texts_of};
use relais_core::phone::{normalize_phone, region_of_e164};
use relais_core::quiet_hours::{QuietHours, country_of_time_zone, hold};
use relais_core::sender::Sender;
use relais_core::sms::segment_info;
use relais_core::status::MessageStatus;
use relais_core::template::{
    ContentTemplate, ContentTemplateError, RenderBudget, template_context,
};
use relais_store::{
    ContentCheckRecord, MessageEvent, NewMessage, NewTrackedLink, PlannedContact, PlannedContacts,
    StoreError,
};
use std::collections::HashMap;

/// The tenant setting holding quiet hours (see `docs/settings.md`).
pub const QUIET_HOURS_SETTING: &str = relais_core::settings::QUIET_HOURS_KEY;

/// Who a checked request goes to, before the store is asked.
pub(super) enum Target {
    Contact(String),
    Identity(Identity),
}

/// A request that passed the checks needing no store.
pub(super) struct Checked {
    pub(super) request: SendRequest,
    purpose: Purpose,
    sender: Option<Sender>,
    campaign: Option<CampaignLabel>,
    content: Content,
    target: Target,
    /// The country of the number in `to`, when `to` is a phone number (parsing it again
    /// for quiet hours costs as much as the rest of the accept path).
    region: Option<Option<String>>,
    pub(super) idempotency: Option<Idempotency>,
    /// Prefix of the JSON pointers of its errors (`/messages/3` in a batch).
    base: String,
}

/// The checks that need no store, in the order the request is read: purpose, content,
/// recipient.
pub(super) fn check(
    rules: AddressRules,
    request: SendRequest,
    idempotency: Option<Idempotency>,
    base: String,
) -> Result<Checked, AcceptError> {
    let at = |p: &str| format!("{base}{p}");
    let purpose = request.purpose.clone().unwrap_or(Purpose::Transactional);
    if matches!(purpose, Purpose::All) {
        return Err(invalid(
            &at("/purpose"),
            "a message cannot be sent for purpose `all`",
        ));
    }
    let sender = request
        .from
        .as_deref()
        .map(Sender::parse)
        .transpose()
        .map_err(|e| invalid(&at("/from"), e.to_string()))?;
    let campaign = request
        .campaign
        .as_deref()
        .map(CampaignLabel::parse)
        .transpose()
        .map_err(|e| invalid(&at("/campaign"), e.to_string()))?;
    let content = match (&request.content, &request.template) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                &at("/template"),
                "give either `content` or `template`, not both",
            ));
        }
        (Some(c), None) => c.clone(),
        (None, Some(t)) => Content::text(t.clone()),
        (None, None) => {
            return Err(invalid(
                &at("/content"),
                "`content` or `template` is required",
            ));
        }
    };
    content
        .validate()
        .map_err(|e| invalid(&at("/content"), e.to_string()))?;
    if let Body::Template(template) = &content.body
        && template.fallback.is_some()
    {
        return Err(invalid(
            &at("/content/fallback"),
            "`fallback` is set by Relais from a stored template (see /v1/templates); leave it out",
        ));
    }
    let pointer = at("/to");
    let mut region = None;
    let target = match &request.to {
        Recipient::Contact { contact_id } => Target::Contact(contact_id.clone()),
        Recipient::Phone(raw) => {
            let phone = normalize_phone(raw, rules.default_country)
                .map_err(|e| invalid(&pointer, e.to_string()))?;
            region = Some(phone.region());
            Target::Identity(Identity {
                channel: ChannelKind::PHONE_NUMBER,
                address: phone.into_string(),
            })
        }
        Recipient::Address { channel, address } => Target::Identity(
            Identity::parse(*channel, address, rules)
                .map_err(|e| invalid(&format!("{pointer}/address"), e.to_string()))?,
        ),
    };
    Ok(Checked {
        request,
        purpose,
        sender,
        campaign,
        content,
        target,
        region,
        idempotency,
        base,
    })
}

/// A request whose recipient and channels the store resolved: all the building needs.
struct Resolved {
    checked: Checked,
    contact: Contact,
    /// The address the request named (`None` for a contact named by id): it is the one
    /// taken on every step it reaches; other steps take the contact's own address there.
    given: Option<Identity>,
    named: Named,
    /// The request (job) it belongs to: its templates draw on that job's budget.
    job: usize,
}

/// A message built but not yet checked against consent and quiet hours.
struct Draft {
    message: NewMessage,
    /// The tracked links of its content, to store before it.
    links: Vec<NewTrackedLink>,
    /// What the content checks found, when they found anything.
    check: Option<(Assessment, Verdict)>,
    kind: ChannelKind,
    purpose: Purpose,
    send_at: Option<Timestamp>,
    timezone: Option<String>,
    region: Option<Option<String>>,
    /// The contact's `country` attribute, for recipients whose address has no country.
    country_attribute: Option<String>,
    base: String,
}

/// Prepares checked requests of one tenant, each tagged with its job. The outer error is a
/// store failure (nothing may be stored); the inner ones refuse one request.
pub(super) async fn prepare(
    ctx: &AcceptContext<'_>,
    tenant: &str,
    items: Vec<(usize, Result<Checked, AcceptError>)>,
) -> Result<Prepared, AcceptError> {
    // Recipients: every address in one look-up; the contacts of unknown ones are planned
    // here and written with the messages, in their transaction.
    let identities: Vec<Identity> = items
        .iter()
        .filter_map(|(_, c)| match c {
            Ok(Checked {
                target: Target::Identity(identity),
                ..
            }) => Some(identity.clone()),
            _ => None,
        })
        .collect();
    // The store is asked three things at once: the recipients (created when unknown), the
    // configured channels the requests name, and the tenant's quiet hours. Asked one after
    // the other, each waited its turn on a connection: 2 ms of a 6 ms group.
    let by_id: Vec<&str> = items
        .iter()
        .filter_map(|(_, c)| match c {
            Ok(Checked {
                target: Target::Contact(contact_id),
                ..
            }) => Some(contact_id.as_str()),
            _ => None,
        })
        .collect();
    let names = named_channels(&items);
    let (resolved, named_channels, quiet, known_contacts, checks, verified) = tokio::join!(
        resolve_identities(ctx, tenant, &identities),
        look_up_channels(ctx, tenant, names),
        quiet_hours(ctx, tenant),
        contacts_by_id(ctx, tenant, &by_id),
        content_rules(ctx, tenant),
        crate::senders::VerifiedSenders::of(ctx.store.as_ref(), tenant),
    );
    let checks = checks?;
    let verified = verified?;
    let known_contacts = known_contacts?;
    let PlannedContacts { resolved, new } = resolved?;
    let mut resolved = resolved.into_iter();
    let mut channels = named_channels?;
    let quiet = quiet?;
    let mut new_contacts: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut ready: Vec<Result<Resolved, AcceptError>> = Vec::with_capacity(items.len());
    for (job, item) in items {
        let mut checked = match item {
            Ok(c) => c,
            Err(e) => {
                ready.push(Err(e));
                continue;
            }
        };
        let (contact, given) = match &checked.target {
            Target::Identity(identity) => match resolved.next() {
                Some((contact, created)) => {
                    if created {
                        new_contacts.insert(contact.id.clone());
                    }
                    (contact, Some(identity.clone()))
                }
                None => {
                    return Err(StoreError::Corrupt("a recipient was not resolved".into()).into());
                }
            },
            Target::Contact(contact_id) => {
                match sendable_contact(known_contacts.get(contact_id), contact_id, &checked.base) {
                    Ok(found) => (found, None),
                    Err(e) => {
                        ready.push(Err(e));
                        continue;
                    }
                }
            }
        };
        let base = checked.base.clone();
        // Every name was looked up above: this asks the store nothing, but once per kind
        // named that the server has no adapter of its own for.
        match resolve_channel_names(
            &**ctx.store,
            tenant,
            &mut checked.request,
            &base,
            &mut channels,
            ctx.built_in,
        )
        .await
        {
            Ok(named) => ready.push(Ok(Resolved {
                checked,
                contact,
                given,
                named,
                job,
            })),
            Err(e @ AcceptError::Store(_)) => return Err(e),
            Err(e) => ready.push(Err(e)),
        }
    }

    // Consent ledgers of the recipients in one query (a contact created just now has none).
    let mut contact_ids: Vec<String> = ready
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| r.contact.id.clone())
        .filter(|id| !new_contacts.contains(id))
        .collect();
    contact_ids.sort_unstable();
    contact_ids.dedup();
    let ledgers = if contact_ids.is_empty() {
        HashMap::new()
    } else {
        ctx.store.consents_of(tenant, &contact_ids).await?
    };

    let known = known(ctx, tenant, &ready, &new_contacts).await?;
    let build = Build {
        tenant: tenant.to_owned(),
        now: ctx.now,
        configured: ctx.configured.to_vec(),
        ledgers,
        quiet,
        known,
        links: ctx.links.cloned(),
        checks,
        verified,
    };
    // Rendering is bounded by each request's budget, but a request may still spend a few
    // milliseconds per message: on the blocking pool, never on the workers that answer
    // other requests (two hostile requests once froze /healthz for 22 s).
    let (messages, links, checks) = tokio::task::spawn_blocking(move || build.all(ready))
        .await
        .map_err(|e| StoreError::Corrupt(format!("building the messages failed: {e}")))?;
    Ok(Prepared {
        messages,
        contacts: new,
        links,
        checks,
    })
}

/// The messages of one tenant's requests (or why each was refused), and the contacts
/// planned for their new recipients, to be written with them.
pub(super) struct Prepared {
    pub(super) messages: Vec<Result<NewMessage, AcceptError>>,
    pub(super) contacts: Vec<PlannedContact>,
    /// The tracked links of the messages that will be stored.
    pub(super) links: Vec<NewTrackedLink>,
    /// What the content checks found in the messages that will be stored (those that
    /// scored).
    pub(super) checks: Vec<ContentCheckRecord>,
}

/// What building the messages needs, owned (it runs on the blocking pool).
struct Build {
    tenant: String,
    now: Timestamp,
    configured: Vec<ChannelKind>,
    ledgers: HashMap<String, Vec<ConsentRecord>>,
    quiet: QuietHours,
    known: Known,
    links: Option<crate::tracked_links::LinkTracking>,
    /// The tenant's anti-phishing checks.
    checks: ContentRules,
    /// The senders a `from` may name, when the tenant requires verified ones.
    verified: crate::senders::VerifiedSenders,
}

/// A message built, what it was stored with: its tracked links and the checks' findings.
type Built = (
    Vec<Result<NewMessage, AcceptError>>,
    Vec<NewTrackedLink>,
    Vec<ContentCheckRecord>,
);

impl Build {
    fn all(&self, ready: Vec<Result<Resolved, AcceptError>>) -> Built {
        let mut templates: HashMap<String, ContentTemplate> = HashMap::new();
        let mut budgets: HashMap<usize, RenderBudget> = HashMap::new();
        let mut links = Vec::new();
        let mut checks = Vec::new();
        let messages = ready
            .into_iter()
            .map(|item| {
                let item = item?;
                let budget = budgets
                    .entry(item.job)
                    .or_insert_with(RenderBudget::per_request);
                let mut draft = self.draft(item, &mut templates, budget)?;
                let drafted_links = std::mem::take(&mut draft.links);
                let check = draft.check.clone();
                let message = self.decide(draft)?;
                // A rejected message is never sent: its links would never be seen.
                if message.status != MessageStatus::Rejected {
                    links.extend(drafted_links);
                }
                if let Some((assessment, verdict)) = check {
                    checks.push(ContentCheckRecord {
                        message_id: message.id.clone(),
                        tenant_id: message.tenant_id.clone(),
                        score: assessment.score,
                        reasons: assessment.reasons,
                        // `hold` only for a message actually held (consent may have
                        // rejected it first).
                        verdict: if verdict == Verdict::Hold
                            && message.status == MessageStatus::Held
                        {
                            "hold"
                        } else {
                            "send"
                        }
                        .to_owned(),
                        created_at: self.now,
                    });
                }
                Ok(message)
            })
            .collect();
        (messages, links, checks)
    }

    /// Routes and personalises one request for its contact. `templates` keeps the
    /// templates compiled for earlier requests, by content.
    fn draft(
        &self,
        resolved: Resolved,
        templates: &mut HashMap<String, ContentTemplate>,
        budget: &mut RenderBudget,
    ) -> Result<Draft, AcceptError> {
        let Resolved {
            checked,
            contact,
            given,
            named,
            ..
        } = resolved;
        let Checked {
            request,
            purpose,
            sender,
            campaign,
            content,
            idempotency,
            region,
            base,
            ..
        } = checked;
        let at = |p: &str| format!("{base}{p}");
        let now = self.now;
        if !self.verified.allows(sender.as_ref().map(Sender::as_str)) {
            return Err(invalid(
                &at("/from"),
                format!(
                    "`{}` is not a verified sender of this tenant, and its settings require one (`senders.require_verified`); register and verify it under /v1/senders",
                    sender.as_ref().map(Sender::as_str).unwrap_or_default()
                ),
            ));
        }
        // Each step's address: the one the request named where it reaches, else the
        // contact's own on that channel (a push subscription, then their phone number).
        let address_on = |kind: ChannelKind| -> Option<String> {
            given
                .as_ref()
                .filter(|g| g.reaches_on(kind))
                .map(|g| g.address.clone())
                .or_else(|| contact.address_on(kind).map(str::to_owned))
        };
        let chain = pick_route(
            &request,
            &contact,
            given.as_ref(),
            &self.configured,
            &named.kinds,
            &at,
        )?;
        chain
            .check_capabilities(|name| {
                name.parse()
                    .ok()
                    .or_else(|| named.kinds.get(name).copied())
                    .map(ChannelCapabilities::for_kind)
            })
            .map_err(|e| invalid(&at("/channels"), e.to_string()))?;

        // A stored template is rendered from its variant; any other content is
        // personalised as it is.
        let stored = render_stored(
            &self.known,
            &content,
            &contact,
            &request.variables,
            templates,
            budget,
            &at,
        )?;
        let mut rendered = match stored {
            Some(rendered) => rendered,
            None => personalise(&request, &content, &contact, templates, budget, &at)?,
        };
        // The content as the person would read it, before its links become short links.
        let check = self.check(&rendered, &at)?;

        // Each step's form of the content, and the steps a closed window leaves out.
        let named_steps = request.channels.is_some();
        let kinds = chain
            .steps()
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let pointer = if named_steps {
                    at(&format!("/channels/{i}"))
                } else {
                    at("/channel")
                };
                kind_of(&named.kinds, &step.channel, &pointer)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (chain, skipped) = fit_route(
            chain,
            &rendered,
            &kinds,
            &contact,
            &|kind| address_on(kind).is_some(),
            &self.known,
            named_steps,
            request.human_agent,
            now,
            &at,
        )?;
        // The id first: a step naming a kind is routed among the tenant's channels of that
        // kind by a draw seeded with it (the steps a closed window left out are not routed).
        let id = relais_core::ids::new_id();
        let routed = route_steps(&chain, &named.routes, &address_on, &id, &at)?;
        // Rewritten before segments are counted: an SMS is counted with its short links.
        let links = match &self.links {
            Some(tracking) if request.track_links != Some(false) => {
                tracking.rewrite(&mut rendered, &self.tenant, &id, now)
            }
            _ => Vec::new(),
        };
        let first = chain
            .steps()
            .first()
            .ok_or_else(|| invalid(&at("/channels"), "the chain is empty"))?;
        let kind = kind_of(
            &named.kinds,
            &first.channel,
            &at(if named_steps {
                "/channels/0"
            } else {
                "/channel"
            }),
        )?;
        let address = address_on(kind).ok_or_else(|| {
            invalid(
                &at("/to"),
                format!("the contact has no address on `{kind}`"),
            )
        })?;
        // A human agent's reply keeps when the customer last wrote, so that the channel
        // can tell at send time whether the 24 h window still holds.
        let human_agent_since = if request.human_agent {
            self.known
                .last_inbound
                .get(&(contact.id.clone(), kind))
                .copied()
        } else {
            None
        };
        let segments = segments_for(&rendered, kind);
        let chain_json = serde_json::to_value(&chain).unwrap_or(serde_json::Value::Null);
        let content_json = serde_json::to_value(&rendered).unwrap_or(serde_json::Value::Null);
        let expires_at = request.validity.map(|v| v.expires_at(now));
        let channel = routed
            .into_iter()
            .next()
            .flatten()
            .unwrap_or_else(|| first.channel.clone());
        let message = NewMessage {
            id,
            tenant_id: self.tenant.clone(),
            contact_id: Some(contact.id.clone()),
            to_address: address,
            channel,
            step: 0,
            chain: chain_json,
            content: content_json,
            purpose: purpose.as_str().to_owned(),
            sender: sender.map(Sender::into_string),
            campaign,
            human_agent_since,
            status: MessageStatus::Accepted,
            segments,
            idempotency_key: idempotency.as_ref().map(|i| i.key.clone()),
            request_hash: idempotency.map(|i| i.request_hash),
            send_at: request.send_at,
            expires_at,
            created_at: now,
            events: std::iter::once(MessageEvent::new(MessageStatus::Accepted, now))
                .chain(skipped)
                .collect(),
            due_at: None,
        };
        Ok(Draft {
            message,
            links,
            check,
            kind,
            purpose,
            send_at: request.send_at,
            country_attribute: contact
                .attributes
                .get("country")
                .and_then(|value| value.as_str())
                .map(str::to_owned),
            timezone: contact.timezone,
            region,
            base,
        })
    }

    /// Consent, then when: a refusal is stored as a rejected message, so the sender can
    /// see why.
    fn decide(&self, draft: Draft) -> Result<NewMessage, AcceptError> {
        let ledger = draft
            .message
            .contact_id
            .as_ref()
            .and_then(|id| self.ledgers.get(id))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let decision = may_send(ledger, draft.kind, &draft.purpose);
        if !decision.allowed {
            let mut message = draft.message;
            message.events.push(
                MessageEvent::new(MessageStatus::Rejected, self.now)
                    .reason(decision.code)
                    .detail(decision.explanation)
                    .channel(draft.kind.as_str()),
            );
            message.status = MessageStatus::Rejected;
            return Ok(message);
        }
        if let Some((assessment, Verdict::Hold)) = &draft.check {
            // Held for review: no outbox row until a reviewer releases it.
            let mut message = draft.message;
            message.events.push(
                MessageEvent::new(MessageStatus::Held, self.now)
                    .reason("content_check")
                    .detail(format!("held for review, {}", assessment.summary())),
            );
            message.status = MessageStatus::Held;
            message.due_at = None;
            return Ok(message);
        }
        schedule(self.now, draft, &self.quiet)
    }

    /// The content checks on a rendered content: refused at once (nothing is stored)
    /// when the tenant refuses what scores at its threshold, otherwise what they found.
    fn check(
        &self,
        rendered: &Content,
        at: &dyn Fn(&str) -> String,
    ) -> Result<Option<(Assessment, Verdict)>, AcceptError> {
        if !self.checks.enabled {
            return Ok(None);
        }
        let texts = texts_of(rendered);
        let assessment = self.checks.assess(texts.iter().map(String::as_str));
        if assessment.score == 0 {
            return Ok(None);
        }
        match self.checks.verdict(&assessment) {
            Verdict::Refuse => Err(AcceptError::ContentRefused {
                pointer: at("/content"),
                assessment,
            }),
            verdict => Ok(Some((assessment, verdict))),
        }
    }
}

/// Personalises `content` with the contact's attributes and the request's variables.
/// `templates` keeps the templates compiled for earlier requests, by content.
fn personalise(
    request: &SendRequest,
    content: &Content,
    contact: &Contact,
    templates: &mut HashMap<String, ContentTemplate>,
    budget: &mut RenderBudget,
    at: &dyn Fn(&str) -> String,
) -> Result<Content, AcceptError> {
    // Personalise with the contact's attributes and the request's variables.
    let template_pointer = if request.template.is_some() {
        "/template"
    } else {
        "/content"
    };
    let context = template_context(&contact.attributes, &request.variables);
    let key = serde_json::to_string(&content).ok();
    let compiled = match key.as_ref().and_then(|k| templates.get(k)) {
        Some(t) => Ok(t.clone()),
        None => ContentTemplate::compile(content).inspect(|t| {
            if let Some(k) = key {
                templates.insert(k, t.clone());
            }
        }),
    };
    compiled
        .and_then(|t| t.render_within(&context, budget))
        .map_err(|e| match e {
            ContentTemplateError::Field { field, source } => {
                let pointer = if request.template.is_some() {
                    at(template_pointer)
                } else {
                    at(&format!(
                        "/content/{}",
                        field
                            .replace('.', "/")
                            .replace(['[', ']'], "/")
                            .replace("//", "/")
                            .trim_end_matches('/')
                    ))
                };
                invalid(&pointer, source.to_string())
            }
            other => invalid(&at(template_pointer), other.to_string()),
        })
}

/// The group's stored templates, the provider templates they may send, and when its
/// recipients last wrote on the channel kinds with a customer-service window: each asked
/// only when a request needs it, so that a plain SMS campaign asks nothing more.
async fn known(
    ctx: &AcceptContext<'_>,
    tenant: &str,
    ready: &[Result<Resolved, AcceptError>],
    new_contacts: &std::collections::HashSet<String>,
) -> Result<Known, AcceptError> {
    let mut known = Known::default();
    let mut names: Vec<String> = ready
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter_map(|r| match &r.checked.content.body {
            Body::Template(t) => Some(t.name.clone()),
            _ => None,
        })
        .collect();
    if !names.is_empty() {
        names.sort_unstable();
        names.dedup();
        let asked: Vec<&str> = names.iter().map(String::as_str).collect();
        let stored = ctx.store.templates_named(tenant, &asked).await?;
        let mut provider_names = names.clone();
        for record in stored {
            provider_names.extend(
                record
                    .variants
                    .iter()
                    .filter_map(|v| v.provider.as_ref().map(|p| p.name.clone())),
            );
            known
                .templates
                .insert(record.name.clone(), record.template());
        }
        provider_names.sort_unstable();
        provider_names.dedup();
        let asked: Vec<&str> = provider_names.iter().map(String::as_str).collect();
        known.registry = ctx.store.provider_templates_named(tenant, &asked).await?;
    }
    let mut contacts: Vec<&str> = ready
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter(|r| !new_contacts.contains(&r.contact.id) && may_meet_a_window(r))
        .map(|r| r.contact.id.as_str())
        .collect();
    if !contacts.is_empty() {
        contacts.sort_unstable();
        contacts.dedup();
        for last in ctx.store.last_inbound_at(tenant, &contacts).await? {
            known
                .last_inbound
                .insert((last.contact_id, last.channel), last.at);
        }
    }
    Ok(known)
}

/// Whether a step of the request's route may be a channel with a customer-service window.
fn may_meet_a_window(r: &Resolved) -> bool {
    let windowed = |kind: ChannelKind| {
        ChannelCapabilities::for_kind(kind)
            .service_window_hours
            .is_some()
    };
    let request = &r.checked.request;
    let names: Vec<&str> = request
        .channel
        .iter()
        .map(String::as_str)
        .chain(
            request
                .channels
                .iter()
                .flat_map(|chain| chain.steps().iter().map(|s| s.channel.as_str())),
        )
        .collect();
    if names.is_empty() {
        return r.contact.identities.iter().any(|i| windowed(i.channel));
    }
    names.iter().any(|name| {
        r.named
            .kinds
            .get(*name)
            .copied()
            .or_else(|| name.parse().ok())
            .is_some_and(windowed)
    })
}

/// The names of configured channels the requests name (`channel` or a step of `channels`
/// that is not a channel kind), each once.
fn named_channels(items: &[(usize, Result<Checked, AcceptError>)]) -> Vec<String> {
    let mut names: Vec<String> = items
        .iter()
        .filter_map(|(_, c)| c.as_ref().ok())
        .flat_map(|c| {
            let request = &c.request;
            request.channel.iter().cloned().chain(
                request
                    .channels
                    .iter()
                    .flat_map(|chain| chain.steps().iter().map(|s| s.channel.clone())),
            )
        })
        .filter(|name| name.parse::<ChannelKind>().is_err())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The configured channels named `names`, as [`resolve_channel_names`] keeps them.
async fn look_up_channels(
    ctx: &AcceptContext<'_>,
    tenant: &str,
    names: Vec<String>,
) -> Result<ChannelNames, AcceptError> {
    let mut known = ChannelNames::default();
    for name in names {
        let found = ctx
            .store
            .channel_by_name_or_id(tenant, &name)
            .await?
            .map(|record| (record.id, record.kind));
        let entry = match found {
            Some((id, kind)) => match super::route::configured_kind(&kind) {
                Some(kind) => Some((id, kind)),
                // A channel that does not send: left out, so that the request is refused
                // with the reason where it names it.
                None => continue,
            },
            None => None,
        };
        known.names.insert(name, entry);
    }
    Ok(known)
}

/// The tenant's content checks, ready to assess its messages; the server's own short
/// links are never scored.
async fn content_rules(ctx: &AcceptContext<'_>, tenant: &str) -> Result<ContentRules, AcceptError> {
    let checks = crate::settings::content_checks_of(ctx.store.as_ref(), tenant).await?;
    let own: Vec<&str> = ctx.links.iter().map(|l| l.base().as_str()).collect();
    Ok(checks.rules(&own))
}

/// The tenant's quiet hours (the default when none are set).
async fn quiet_hours(ctx: &AcceptContext<'_>, tenant: &str) -> Result<QuietHours, AcceptError> {
    Ok(crate::settings::quiet_hours_of(ctx.store.as_ref(), tenant).await?)
}

/// The contacts of `identities` (each with `true` when planned now), those of unknown
/// ones planned, not written.
async fn resolve_identities(
    ctx: &AcceptContext<'_>,
    tenant: &str,
    identities: &[Identity],
) -> Result<PlannedContacts, AcceptError> {
    if identities.is_empty() {
        return Ok(PlannedContacts::default());
    }
    Ok(ctx.store.plan_contacts(tenant, identities, ctx.now).await?)
}

/// The contacts requests name by id, in one look-up.
async fn contacts_by_id(
    ctx: &AcceptContext<'_>,
    tenant: &str,
    ids: &[&str],
) -> Result<HashMap<String, Contact>, AcceptError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(ctx
        .store
        .contacts_by_ids(tenant, ids)
        .await?
        .into_iter()
        .map(|c| (c.id.clone(), c))
        .collect())
}

/// A contact named by id, who has an address to send to.
fn sendable_contact(
    found: Option<&Contact>,
    contact_id: &str,
    base: &str,
) -> Result<Contact, AcceptError> {
    let pointer = format!("{base}/to/contact_id");
    let contact = found
        .ok_or_else(|| invalid(&pointer, format!("no contact {contact_id} in this tenant")))?;
    if contact.identities.is_empty() {
        return Err(invalid(
            &pointer,
            "the contact has no identity (phone number or address) to send to",
        ));
    }
    Ok(contact.clone())
}

/// When: `send_at`, then the recipient's quiet hours. The recipient's country, which
/// picks the built-in quiet-hours rule, is the region of their phone number, else their
/// contact's `country` attribute, else the country of their time zone.
fn schedule(now: Timestamp, draft: Draft, quiet: &QuietHours) -> Result<NewMessage, AcceptError> {
    let Draft {
        mut message,
        kind,
        purpose,
        send_at,
        timezone,
        region,
        country_attribute,
        base,
        // Taken by `Build::all` before the decision.
        links: _,
        check: _,
    } = draft;
    let wanted = send_at.filter(|s| *s > now).unwrap_or(now);
    let country = region
        .unwrap_or_else(|| region_of_e164(&message.to_address))
        .or_else(|| {
            country_attribute
                .map(|code| code.trim().to_ascii_uppercase())
                .filter(|code| code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()))
        })
        .or_else(|| {
            timezone
                .as_deref()
                .and_then(country_of_time_zone)
                .map(str::to_owned)
        });
    let tz = timezone
        .as_deref()
        .and_then(|tz| TimeZone::get(tz).ok())
        .or_else(|| country.as_deref().and_then(zone_of_country))
        .unwrap_or(TimeZone::UTC);
    let held = hold(wanted, &tz, country.as_deref(), &purpose, quiet)
        .map_err(|e| invalid(&format!("{base}/purpose"), e.to_string()))?;
    let due = held.until;
    if due > now {
        let (reason, detail) = if due > wanted {
            // The rules' names say why, e.g. "FR: no marketing on Sundays".
            (
                "quiet_hours",
                format!("held by quiet hours until {due}: {}", held.rule_names()),
            )
        } else {
            ("send_at", format!("scheduled for {due}"))
        };
        message.events.push(
            MessageEvent::new(MessageStatus::Scheduled, now)
                .reason(reason)
                .detail(detail),
        );
        message.status = MessageStatus::Scheduled;
    } else {
        message
            .events
            .push(MessageEvent::new(MessageStatus::Queued, now).channel(kind.as_str()));
        message.status = MessageStatus::Queued;
    }
    message.due_at = Some(due);
    Ok(message)
}

/// The time zone of the country of a phone number, for contacts without one of their own
/// (`None` for an address that is not an international number, or a country not known).
pub fn phone_time_zone(address: &str) -> Option<TimeZone> {
    region_of_e164(address).as_deref().and_then(zone_of_country)
}

/// The time zone most of a country's people live in, for contacts without one.
pub(crate) fn zone_of_country(country: &str) -> Option<TimeZone> {
    let zone = match country {
        "FR" | "MC" => "Europe/Paris",
        "BE" => "Europe/Brussels",
        "CH" => "Europe/Zurich",
        "DE" => "Europe/Berlin",
        "ES" => "Europe/Madrid",
        "IT" => "Europe/Rome",
        "GB" => "Europe/London",
        "NL" => "Europe/Amsterdam",
        "PT" => "Europe/Lisbon",
        "PL" => "Europe/Warsaw",
        "LU" => "Europe/Luxembourg",
        "RE" => "Indian/Reunion",
        "GP" | "MF" | "BL" => "America/Guadeloupe",
        "MQ" => "America/Martinique",
        "GF" => "America/Cayenne",
        "YT" => "Indian/Mayotte",
        "PM" => "America/Miquelon",
        "CA" => "America/Toronto",
        "US" => "America/New_York",
        _ => return None,
    };
    TimeZone::get(zone).ok()
}

/// SMS segments of the text, on channels whose limit counts segments or that simulate
/// phones.
pub fn segments_for(content: &Content, kind: ChannelKind) -> Option<i64> {
    let caps = ChannelCapabilities::for_kind(kind);
    let sms_like = matches!(caps.text_limit, TextLimit::SmsSegments(_)) || kind.is_sandbox();
    if !sms_like {
        return None;
    }
    let degraded = degrade(content, caps);
    match &degraded.body {
        Body::Text(text) => i64::try_from(segment_info(text).segments).ok(),
        _ => None,
    }
}
