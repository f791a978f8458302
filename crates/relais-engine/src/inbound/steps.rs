//! The steps of the pipeline for a group of messages: each step runs for the whole group,
//! with one store operation where it writes or reads for every message, and a message
//! that fails a step leaves the group there (stored, it is taken up again later).

use super::{
    Core, InboundError, MESSAGE_RECEIVED, NewInbound, Received, annotations, flow_error,
    sender_address,
};
use crate::events::{EventKind, Publish};
use crate::flows::{Chosen, Turn, TurnRequest};
use crate::keywords::{self, KeywordPlan, keywords_of};
use crate::replies::{Reply, reply_many};
use crate::send::AcceptError;
use jiff::Timestamp;
use relais_core::contact::Identity;
use relais_core::conversation::ConversationState;
use relais_core::flow::Facts;
use relais_store::{
    Conversation, InboundFinish, InboundMessage, InboundPlacement, NewInboundMessage, StoreError,
};
use std::collections::{BTreeMap, HashMap};

/// Tries at creating a group's new senders' contacts (a concurrent message from the same
/// new sender may create one first: the next try finds it).
const CONTACT_TRIES: usize = 3;

/// One message on its way through the steps.
struct Work {
    message: InboundMessage,
    keyword_action: Option<&'static str>,
    /// When the annotations were made by this run (written with the mark).
    annotated: Option<Timestamp>,
    facts: Facts,
    language: Option<String>,
    urgent: bool,
    negative: bool,
    /// The conversation a satisfaction rating was given to.
    rated: Option<Conversation>,
    /// A keyword or a rating: it reopens nothing and reaches no flow.
    absorbed: bool,
    chosen: Option<Chosen>,
    conversation: Option<Conversation>,
    bot: Option<Turn>,
    team: Option<String>,
    /// The entry point whose referral tag the message carries.
    referral: Option<relais_store::EntryPoint>,
}

impl Core {
    /// Steps 1 and 2 for a group (contacts, then the store, once per provider id), then
    /// the rest for the messages that are new; the answers in the messages' order.
    pub(super) async fn receive_group(
        &self,
        messages: Vec<NewInbound>,
    ) -> Vec<Result<Received, InboundError>> {
        let now = self.clock.now();
        let mut answers: Vec<Option<Result<Received, InboundError>>> =
            messages.iter().map(|_| None).collect();
        let mut rows = Vec::with_capacity(messages.len());
        let mut identities: BTreeMap<String, Vec<(usize, Identity)>> = BTreeMap::new();
        for (index, msg) in messages.into_iter().enumerate() {
            let thread = if msg.answers.is_empty() {
                None
            } else {
                match super::thread::thread_owner(self.store.as_ref(), &msg).await {
                    Ok(owner) => owner,
                    Err(e) => {
                        // Placed by its address instead, it would start another thread:
                        // the provider delivers it again.
                        answers[index] = Some(Err(e.into()));
                        None
                    }
                }
            };
            let provider_id = msg
                .provider_id
                .map(|id| id.trim().to_owned())
                .filter(|id| !id.is_empty());
            let from = match (&thread, sender_address(msg.channel, &msg.from)) {
                // The channel does not say who answered: the one the answered message
                // went to (a push notification's button is pressed where it was shown).
                (Some(answered), _) if msg.from.trim().is_empty() => answered.to_address.clone(),
                (None, _) if msg.from.trim().is_empty() => {
                    // (Unless the look-up failed: that error stands, to be delivered again.)
                    answers[index].get_or_insert(Err(InboundError::Invalid(
                        "no sender, and no message Relais sent that this one answers".into(),
                    )));
                    String::new()
                }
                (Some(_), Some(address)) => address,
                (None, Some(address)) => {
                    identities.entry(msg.tenant_id.clone()).or_default().push((
                        index,
                        Identity {
                            channel: msg.channel,
                            address: address.clone(),
                        },
                    ));
                    address
                }
                (_, None) => {
                    // An address we cannot read (an alphanumeric sender, a malformed
                    // number) still carries a customer's words: keep them under the raw
                    // address, unattributed.
                    tracing::warn!(
                        channel = %msg.channel,
                        from = %msg.from,
                        "inbound sender address is not valid for its channel; stored as received"
                    );
                    msg.from.trim().to_owned()
                }
            };
            rows.push(NewInboundMessage {
                id: relais_core::ids::new_id(),
                tenant_id: msg.tenant_id,
                channel: msg.channel,
                channel_id: msg.channel_id,
                from_address: from,
                to_address: msg.to.trim().to_owned(),
                contact_id: thread.map(|answered| answered.contact_id),
                text: msg.text,
                payload: msg
                    .payload
                    .map(|payload| payload.trim().to_owned())
                    .filter(|payload| !payload.is_empty()),
                media: msg.media,
                provider_id,
                received_at: now,
            });
        }
        for (tenant, wanted) in identities {
            match self.contacts_for(&tenant, &wanted, now).await {
                Ok(owners) => {
                    for ((index, _), contact_id) in wanted.iter().zip(owners) {
                        rows[*index].contact_id = Some(contact_id);
                    }
                }
                Err(e) => {
                    for (index, _) in &wanted {
                        answers[*index] = Some(Err(e.share().into()));
                    }
                }
            }
        }
        for (index, row) in rows.iter_mut().enumerate() {
            if answers[index].is_some() {
                continue;
            }
            match super::choices::chosen_by_number(self.store.as_ref(), row).await {
                Ok(Some(payload)) => row.payload = Some(payload),
                Ok(None) => {}
                // Stored without its choice, the answer would reach the flow as a bare
                // number: the provider delivers it again instead.
                Err(e) => answers[index] = Some(Err(e.into())),
            }
        }
        let (indexes, rows): (Vec<usize>, Vec<NewInboundMessage>) = rows
            .into_iter()
            .enumerate()
            .filter(|(index, _)| answers[*index].is_none())
            .unzip();
        let inserted = match self.store.insert_inbound_many(&rows).await {
            Ok(inserted) => inserted,
            Err(e) => {
                for index in indexes {
                    answers[index] = Some(Err(e.share().into()));
                }
                return settled(answers);
            }
        };
        let mut created = Vec::new();
        let mut created_at = Vec::new();
        for (index, insert) in indexes.into_iter().zip(inserted) {
            if insert.created {
                metrics::counter!("relais_inbound_messages_total", "channel" => insert.message.channel.as_str())
                    .increment(1);
                created.push(insert.message);
                created_at.push(index);
            } else {
                // Its first run finishes it, or the resume sweep does after a crash.
                answers[index] = Some(Ok(Received {
                    message: insert.message,
                    duplicate: true,
                }));
            }
        }
        let stored = created.clone();
        let outcomes = self.process(created).await;
        for ((index, outcome), stored) in created_at.into_iter().zip(outcomes).zip(stored) {
            answers[index] = Some(match outcome {
                Ok(message) => Ok(Received {
                    message,
                    duplicate: false,
                }),
                // Stored: the sweep takes it up again once the bot's world is back.
                Err(InboundError::Flow(why)) => {
                    tracing::warn!(message = %stored.id, error = %why, "the bot's turn failed; the message will be processed again");
                    Ok(Received {
                        message: stored,
                        duplicate: false,
                    })
                }
                Err(e) => Err(e),
            });
        }
        settled(answers)
    }

    /// The contacts owning the identities (created, each holding just its identity, for
    /// those nobody owns), in their order.
    async fn contacts_for(
        &self,
        tenant: &str,
        wanted: &[(usize, Identity)],
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        let identities: Vec<Identity> = wanted.iter().map(|(_, i)| i.clone()).collect();
        let mut last = None;
        for _ in 0..CONTACT_TRIES {
            match self
                .store
                .resolve_or_create_contacts(tenant, &identities, now)
                .await
            {
                Ok(found) if found.len() == identities.len() => {
                    return Ok(found.into_iter().map(|(contact, _)| contact.id).collect());
                }
                Ok(_) => return Err(StoreError::Corrupt("no contact for a sender".into())),
                Err(e @ StoreError::Conflict(_)) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| StoreError::Corrupt("no contact for a sender".into())))
    }

    /// Steps 3 to 7 for stored messages, each idempotent; the outcomes in their order. A
    /// contact's messages go through in their order, one round each.
    pub(super) async fn process(
        &self,
        messages: Vec<InboundMessage>,
    ) -> Vec<Result<InboundMessage, InboundError>> {
        let count = messages.len();
        let mut rounds = rounds_of(messages.into_iter().enumerate().collect()).into_iter();
        let mut outcomes: Vec<Option<Result<InboundMessage, InboundError>>> =
            (0..count).map(|_| None).collect();
        while let Some(round) = rounds.next() {
            let (indexes, messages): (Vec<usize>, Vec<InboundMessage>) = round.into_iter().unzip();
            let senders: Vec<Option<String>> =
                messages.iter().map(|m| m.contact_id.clone()).collect();
            let processed = self.process_round(messages).await;
            // A message whose flow merged its contact into a known customer: the sender's
            // next messages (their rows moved with the merge) are the customer's too.
            let mut merged: HashMap<(String, String), String> = HashMap::new();
            for (sender, outcome) in senders.into_iter().zip(&processed) {
                if let (Some(before), Ok(message)) = (sender, outcome)
                    && let Some(after) = &message.contact_id
                    && *after != before
                {
                    merged.insert((message.tenant_id.clone(), before), after.clone());
                }
            }
            for (index, outcome) in indexes.into_iter().zip(processed) {
                outcomes[index] = Some(outcome);
            }
            if !merged.is_empty() {
                // Placed again in rounds, as the customer's own messages may be among them.
                let mut rest: Vec<(usize, InboundMessage)> = rounds.flatten().collect();
                rest.sort_by_key(|(index, _)| *index);
                for (_, message) in &mut rest {
                    if let Some(contact) = &message.contact_id
                        && let Some(after) =
                            merged.get(&(message.tenant_id.clone(), contact.clone()))
                    {
                        message.contact_id = Some(after.clone());
                    }
                }
                rounds = rounds_of(rest).into_iter();
            }
        }
        settled(outcomes)
    }

    /// Steps 3 to 7 for messages of distinct contacts.
    async fn process_round(
        &self,
        messages: Vec<InboundMessage>,
    ) -> Vec<Result<InboundMessage, InboundError>> {
        let now = self.clock.now();
        let mut outcomes: Vec<Option<Result<InboundMessage, InboundError>>> =
            messages.iter().map(|_| None).collect();
        // Keywords, then annotations, ratings and the flow each would start.
        let actions = self.carry_out_keywords(&messages, &mut outcomes, now).await;
        let mut works: Vec<(usize, Work)> = Vec::with_capacity(messages.len());
        for (index, (message, action)) in messages.into_iter().zip(actions).enumerate() {
            if outcomes[index].is_some() {
                continue;
            }
            match self.read(message, action).await {
                Ok(work) => works.push((index, work)),
                Err(e) => outcomes[index] = Some(Err(e)),
            }
        }
        // The conversations, placed together.
        let mut works = self.place(works, &mut outcomes).await;
        // Those that came through an entry point are attributed to it (and its campaign).
        for (index, work) in &works {
            if let Err(e) = self.attribute(work).await {
                outcomes[*index] = Some(Err(e.into()));
            }
        }
        works.retain(|(index, _)| outcomes[*index].is_none());
        for (index, work) in &works {
            if let Err(e) = self.thank_for_rating(work, now).await {
                outcomes[*index] = Some(Err(e));
            }
        }
        works.retain(|(index, _)| outcomes[*index].is_none());
        // The bot's turns, taken together.
        let requests: Vec<(usize, TurnRequest<'_>)> = works
            .iter()
            .enumerate()
            .filter_map(|(k, (_, work))| {
                let conversation = work.conversation.as_ref()?;
                (!work.absorbed && conversation.state == ConversationState::Bot).then(|| {
                    (
                        k,
                        TurnRequest {
                            message: &work.message,
                            conversation,
                            facts: work.facts.clone(),
                            language: work.language.clone(),
                            chosen: work.chosen.clone(),
                        },
                    )
                })
            })
            .collect();
        let (asked, requests): (Vec<usize>, Vec<TurnRequest<'_>>) = requests.into_iter().unzip();
        let turns = self
            .flows
            .take_turns(self.accept_context(now), requests)
            .await;
        for (k, turn) in asked.into_iter().zip(turns) {
            let (index, work) = &mut works[k];
            match turn {
                Ok(bot) => {
                    // An address the customer gave merged them into a known customer: the
                    // message (its stored row moved with the merge) and what follows now
                    // belong to that customer and their conversation.
                    if let Some(moved) = bot.as_ref().and_then(|turn| turn.moved.clone()) {
                        work.message.contact_id = Some(moved.contact_id);
                        work.team = moved.conversation.team.clone();
                        work.conversation = Some(moved.conversation);
                    }
                    work.bot = bot;
                }
                Err(e) => outcomes[*index] = Some(Err(flow_error(e))),
            }
        }
        works.retain(|(index, _)| outcomes[*index].is_none());
        // A conversation that waits for or is with a human: the desk places it in its
        // team's queue (priority, SLA) and assigns it when someone has room.
        for (index, work) in &mut works {
            if let Err(e) = self.route_to_desk(work).await {
                outcomes[*index] = Some(Err(e));
            }
        }
        works.retain(|(index, _)| outcomes[*index].is_none());
        match self.tell_and_mark(&mut works).await {
            Ok(()) => {
                for (index, work) in works {
                    outcomes[index] = Some(Ok(work.message));
                }
            }
            Err(e) => {
                for (index, _) in works {
                    outcomes[index] = Some(Err(e.share().into()));
                }
            }
        }
        settled(outcomes)
    }

    /// The keywords of the messages carried out: each one decided, their replies accepted
    /// together (before any opt-out is written: after it, nothing could be sent), then
    /// their consent changes written. The action of each message's keyword, if any.
    async fn carry_out_keywords(
        &self,
        messages: &[InboundMessage],
        outcomes: &mut [Option<Result<InboundMessage, InboundError>>],
        now: Timestamp,
    ) -> Vec<Option<&'static str>> {
        let store = &*self.store;
        let mut plans: Vec<Option<KeywordPlan>> = messages.iter().map(|_| None).collect();
        for (index, message) in messages.iter().enumerate() {
            let Some(contact_id) = message.contact_id.as_deref() else {
                continue;
            };
            let planned = async {
                let keywords = keywords_of(store, &message.tenant_id).await?;
                match keywords.find(&message.text) {
                    Some(matched) => {
                        keywords::plan(store, &keywords, message, contact_id, &matched).await
                    }
                    None => Ok(None),
                }
            };
            match planned.await {
                Ok(plan) => plans[index] = plan,
                Err(e) => outcomes[index] = Some(Err(e.into())),
            }
        }
        let mut replied = Vec::new();
        let mut replies = Vec::new();
        for (index, (message, plan)) in messages.iter().zip(&plans).enumerate() {
            if let Some(text) = plan.as_ref().and_then(|p| p.reply.as_ref()) {
                replied.push(index);
                replies.push(Reply {
                    message,
                    content: serde_json::json!({ "text": text }),
                    key: keywords::reply_key(message),
                });
            }
        }
        let answers = reply_many(self.accept_context(now), replies).await;
        for (index, answer) in replied.into_iter().zip(answers) {
            match answer {
                Ok(()) => {}
                Err(AcceptError::Store(e)) => outcomes[index] = Some(Err(e.into())),
                Err(refused) => {
                    // A reply that can never go (the tenant's text is refused by the
                    // channel): the keyword's consent change must still be written.
                    tracing::warn!(message = %messages[index].id, error = %refused, "a keyword reply was refused");
                }
            }
        }
        let mut actions = Vec::with_capacity(messages.len());
        for (index, (message, plan)) in messages.iter().zip(plans).enumerate() {
            let Some(plan) = plan.filter(|_| outcomes[index].is_none()) else {
                actions.push(None);
                continue;
            };
            let action = plan.action.as_str();
            match keywords::apply(store, plan, message, now).await {
                Ok(()) => {
                    tracing::info!(message = %message.id, action, "keyword");
                    actions.push(Some(action));
                }
                Err(e) => {
                    outcomes[index] = Some(Err(e.into()));
                    actions.push(None);
                }
            }
        }
        actions
    }

    /// The text annotated, a rating taken, the flow the message would start.
    async fn read(
        &self,
        mut message: InboundMessage,
        keyword_action: Option<&'static str>,
    ) -> Result<Work, InboundError> {
        let tenant = message.tenant_id.clone();
        let keyword = keyword_action.is_some();
        // Annotated once; written with the mark (a run cut short classifies again).
        let mut annotated = None;
        if message.annotations.is_none() {
            match self.nlu.classify(&tenant, &message.text, 1).await {
                Ok(classification) => {
                    let at = self.clock.now();
                    message.annotations = Some(annotations(&classification));
                    message.annotated_at = Some(at);
                    annotated = Some(at);
                }
                Err(e) => {
                    tracing::error!(
                        tenant = %tenant,
                        message_id = %message.id,
                        error = %e,
                        "inbound message stored without annotations: classification failed"
                    );
                }
            }
        }
        let (mut facts, language) =
            crate::flows::facts_of(&message.text, message.annotations.as_ref());
        facts.payload = message.payload.clone();
        let urgent = facts.urgent == Some(true);
        let negative = facts.sentiment.as_deref() == Some("negative");
        // The answer to a satisfaction question is a rating, not a new request: like a
        // keyword, it reopens nothing and reaches no flow.
        let mut rated = None;
        if let Some(contact_id) = message.contact_id.as_deref()
            && !keyword
        {
            rated = self
                .desk
                .take_rating(&tenant, contact_id, &message.text, message.received_at)
                .await?;
        }
        let absorbed = keyword || rated.is_some();
        // A referral tag (a click-to-chat link's prefilled text) names the entry point the
        // person came through: its flow, when it has one, is the one to start.
        let referral = match message.contact_id.as_deref() {
            Some(_) if !absorbed => {
                crate::entry_points::referred_by(&*self.store, &tenant, &message.text).await?
            }
            _ => None,
        };
        let referred_flow = match referral.as_ref().and_then(|r| r.flow.as_deref()) {
            Some(flow) => self
                .flows
                .chosen_by_name(&tenant, flow)
                .await
                .map_err(flow_error)?,
            None => None,
        };
        // A flow that this message would start if it opens the conversation: then the
        // conversation opens in the `bot` state, otherwise it waits for an agent.
        let chosen = match message.contact_id.as_deref() {
            Some(_) if !absorbed && referred_flow.is_some() => referred_flow,
            Some(_) if !absorbed => self
                .flows
                .choose(&tenant, message.channel, true, &facts)
                .await
                .map_err(flow_error)?,
            _ => None,
        };
        Ok(Work {
            message,
            keyword_action,
            annotated,
            facts,
            language,
            urgent,
            negative,
            rated,
            absorbed,
            chosen,
            conversation: None,
            bot: None,
            team: None,
            referral,
        })
    }

    /// Each message placed in its contact's conversation, in one store operation; those
    /// that fail it leave the group with the error.
    async fn place(
        &self,
        works: Vec<(usize, Work)>,
        outcomes: &mut [Option<Result<InboundMessage, InboundError>>],
    ) -> Vec<(usize, Work)> {
        let lasts: Vec<Option<serde_json::Value>> = works
            .iter()
            .map(|(_, work)| {
                let m = &work.message;
                m.contact_id.as_ref().map(|_| {
                    let mut last = serde_json::json!({
                        "direction": "in",
                        "text": m.text,
                        "channel": m.channel,
                        "at": m.received_at,
                        "message_id": m.id,
                    });
                    // An image's text may be empty: the list says an image came.
                    if let Some(media) = &m.media {
                        last["media"] =
                            serde_json::json!({"id": media.id, "mime_type": media.mime_type});
                    }
                    last
                })
            })
            .collect();
        let mut placed_for = Vec::new();
        let mut placements = Vec::new();
        for (k, ((_, work), last)) in works.iter().zip(&lasts).enumerate() {
            let (Some(contact_id), Some(last)) = (work.message.contact_id.as_deref(), last) else {
                continue;
            };
            let m = &work.message;
            placed_for.push(k);
            placements.push(InboundPlacement {
                tenant_id: &m.tenant_id,
                contact_id,
                message_id: &m.id,
                channel: m.channel,
                channel_id: m.channel_id.as_deref(),
                address: &m.from_address,
                last_message: last,
                at: m.received_at,
                state: if work.absorbed {
                    ConversationState::Resolved
                } else if work.chosen.is_some() {
                    ConversationState::Bot
                } else {
                    ConversationState::Pending
                },
                reopens: !work.absorbed,
            });
        }
        let placed = self.store.place_inbound_many(&placements).await;
        drop(placements);
        let mut works = works;
        match placed {
            Ok(conversations) => {
                for (k, conversation) in placed_for.into_iter().zip(conversations) {
                    works[k].1.team = conversation.team.clone();
                    works[k].1.conversation = Some(conversation);
                }
            }
            Err(e) => {
                for k in placed_for {
                    outcomes[works[k].0] = Some(Err(e.share().into()));
                }
            }
        }
        works
            .into_iter()
            .filter(|(index, _)| outcomes[*index].is_none())
            .collect()
    }

    /// Records that the message's conversation came through the entry point its referral
    /// tag names (once per message, however often this runs).
    async fn attribute(&self, work: &Work) -> Result<(), StoreError> {
        let (Some(entry), Some(conversation), Some(contact_id)) = (
            work.referral.as_ref(),
            work.conversation.as_ref(),
            work.message.contact_id.as_deref(),
        ) else {
            return Ok(());
        };
        self.store
            .attribute_conversation(&relais_store::Attribution {
                tenant_id: work.message.tenant_id.clone(),
                inbound_id: work.message.id.clone(),
                conversation_id: conversation.id.clone(),
                entry_point_id: entry.id.clone(),
                campaign: entry.campaign.clone(),
                contact_id: contact_id.to_owned(),
                at: work.message.received_at,
            })
            .await
    }

    /// Thanks the customer who just rated their conversation (once per message).
    async fn thank_for_rating(&self, work: &Work, now: Timestamp) -> Result<(), InboundError> {
        let (Some(conversation), Some(rated)) = (work.conversation.as_ref(), work.rated.as_ref())
        else {
            return Ok(());
        };
        let message = &work.message;
        let thanks = crate::agents::csat_thanks(rated);
        if let Err(refused) = crate::replies::reply_once(
            self.accept_context(now),
            message,
            serde_json::json!({ "text": thanks }),
            &format!("relais:csat:{}", message.id),
        )
        .await
        {
            match refused {
                AcceptError::Store(e) => return Err(e.into()),
                refused => {
                    tracing::warn!(message = %message.id, error = %refused, "the thanks for a rating was refused")
                }
            }
        }
        tracing::info!(conversation = %conversation.id, score = ?rated.csat_score, "satisfaction rating");
        Ok(())
    }

    /// Hands a conversation that waits for a human (or is with one) to the desk.
    async fn route_to_desk(&self, work: &mut Work) -> Result<(), InboundError> {
        let Some(placed) = work.conversation.as_ref() else {
            return Ok(());
        };
        if work.absorbed {
            return Ok(());
        }
        let handed_over = work
            .bot
            .as_ref()
            .is_some_and(|turn| turn.state != placed.state);
        let current = if handed_over {
            self.store
                .conversation(&work.message.tenant_id, &placed.id)
                .await?
        } else {
            Some(placed.clone())
        };
        if let Some(current) = current
            && matches!(
                current.state,
                ConversationState::Pending | ConversationState::Open
            )
        {
            let routed = self
                .desk
                .customer_wrote(
                    &current,
                    work.urgent,
                    work.negative,
                    work.message.received_at,
                )
                .await?;
            work.team = routed.team;
        }
        Ok(())
    }

    /// The tenant's application and live event stream hear of each message (once per
    /// message however often this runs), and the messages are marked processed.
    async fn tell_and_mark(&self, works: &mut [(usize, Work)]) -> Result<(), StoreError> {
        let store = &*self.store;
        let at = self.clock.now();
        let mut with_webhooks: HashMap<String, bool> = HashMap::new();
        let mut publish = Vec::new();
        for (_, work) in works.iter() {
            let message = &work.message;
            let tenant = message.tenant_id.as_str();
            let conversation_id = work.conversation.as_ref().map(|c| c.id.as_str());
            let data = serde_json::json!({
                "id": message.id,
                "channel": message.channel,
                "channel_id": message.channel_id,
                "from": message.from_address,
                "to": message.to_address,
                "text": message.text,
                "payload": message.payload,
                "media": message.media,
                "received_at": message.received_at,
                "contact_id": message.contact_id,
                "conversation_id": conversation_id,
                "keyword": work.keyword_action,
                "annotations": message.annotations,
                "bot": work.bot.as_ref().map(|turn| {
                    let mut bot = serde_json::json!({
                        "flow": turn.flow,
                        "ending": turn.run.ending,
                        "state": turn.state,
                    });
                    // What an address the customer gave did (added to their contact,
                    // merged them into a known customer…): an agent reads it as the
                    // customer's claim.
                    if !turn.links.is_empty() {
                        bot["links"] = serde_json::json!(turn.links);
                    }
                    bot
                }),
            });
            let webhooks = match with_webhooks.get(tenant) {
                Some(known) => *known,
                None => {
                    let any = !store.webhooks(tenant).await?.is_empty();
                    with_webhooks.insert(tenant.to_owned(), any);
                    any
                }
            };
            if webhooks {
                // Signed like status events.
                crate::webhooks::queue_event(
                    store,
                    tenant,
                    MESSAGE_RECEIVED,
                    data.clone(),
                    &format!("in_{}", message.id),
                    at,
                )
                .await?;
                if let Some(conversation) = &work.conversation
                    && conversation.opened_at == message.received_at
                    && !work.absorbed
                {
                    self.desk.announce_opened(conversation, &message.id).await?;
                }
            }
            if self.events.is_some() {
                publish.push(Publish {
                    tenant: tenant.to_owned(),
                    kind: EventKind::MessageReceived,
                    conversation_id: conversation_id.map(str::to_owned),
                    team: work.team.clone(),
                    data,
                    key: Some(format!("in_{}", message.id)),
                });
                if let (Some(turn), Some(before)) = (&work.bot, &work.conversation)
                    && turn.state != before.state
                {
                    // The bot resolved the conversation or handed it to a team.
                    let team = match &turn.run.ending {
                        crate::flows::Ending::HandedOff { team, .. } => team.clone(),
                        _ => None,
                    };
                    publish.push(Publish {
                        tenant: tenant.to_owned(),
                        kind: EventKind::ConversationStateChanged,
                        conversation_id: Some(before.id.clone()),
                        team: team.clone(),
                        data: serde_json::json!({
                            "id": before.id,
                            "state": turn.state,
                            "previous_state": before.state,
                            "contact_id": before.contact_id,
                            "team": team,
                            "by": {"flow": turn.flow},
                        }),
                        key: Some(format!("flow_{}", message.id)),
                    });
                }
            }
        }
        if let Some(events) = &self.events
            && !publish.is_empty()
        {
            events.publish_all(publish).await?;
        }
        let finished: Vec<InboundFinish<'_>> = works
            .iter()
            .map(|(_, work)| {
                let m = &work.message;
                InboundFinish {
                    tenant_id: &m.tenant_id,
                    id: &m.id,
                    contact_id: None,
                    conversation_id: work.conversation.as_ref().map(|c| c.id.as_str()),
                    annotations: m.annotations.as_ref().zip(work.annotated),
                    at,
                }
            })
            .collect();
        store.finish_inbound_many(&finished).await?;
        for (_, work) in works.iter_mut() {
            work.message.conversation_id = work.conversation.as_ref().map(|c| c.id.clone());
            work.message.processed_at = Some(at);
        }
        Ok(())
    }
}

/// Messages (with their index in the group, in its order) in rounds of distinct contacts:
/// a contact's first message in the first round, its second in the second…
fn rounds_of(messages: Vec<(usize, InboundMessage)>) -> Vec<Vec<(usize, InboundMessage)>> {
    let mut rounds: Vec<Vec<(usize, InboundMessage)>> = Vec::new();
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for (index, message) in messages {
        let round = match &message.contact_id {
            Some(contact) => {
                let n = seen
                    .entry((message.tenant_id.clone(), contact.clone()))
                    .or_insert(0);
                *n += 1;
                *n - 1
            }
            None => 0,
        };
        if rounds.len() <= round {
            rounds.resize_with(round + 1, Vec::new);
        }
        rounds[round].push((index, message));
    }
    rounds
}

/// Each message's outcome; one no step gave (a bug) is an error, not a panic.
fn settled<T>(outcomes: Vec<Option<Result<T, InboundError>>>) -> Vec<Result<T, InboundError>> {
    outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| Err(StoreError::Corrupt("a message got no outcome".into()).into()))
        })
        .collect()
}
