//! The two worlds a flow runs in: the live one (answers accepted for sending, answers
//! stored on the contact, real HTTP calls) and a simulation (everything recorded in a
//! transcript, nothing sent or stored).

use super::Link;
use super::run::{FlowIo, FlowIoError, HttpCall, KnowledgeReply};
use crate::link::{self, Linked};
use crate::nlu::NluService;
use crate::replies::{Reply, reply_many};
use crate::send::{AcceptContext, AcceptError};
use async_trait::async_trait;
use jiff::Timestamp;
use relais_core::contact::{Identity, MergeCause};
use relais_core::content::Content;
use relais_store::{
    ContactPatch, Conversation, ConversationFilter, FlowAnswer, InboundMessage, PageRequest, Store,
    StoreError,
};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The HTTP client of `http` nodes, and where it may go.
pub(crate) struct FlowHttp {
    pub client: reqwest::Client,
    pub destinations: crate::webhooks::Destinations,
}

/// Largest answer an `http` node reads: a CRM record, not a file.
pub const MAX_HTTP_ANSWER_BYTES: usize = 256 * 1024;

/// Calls the endpoint of an `http` node with a client that reaches only the destinations
/// the server allows.
pub(crate) async fn call_endpoint(http: &FlowHttp, call: &HttpCall) -> Result<Value, String> {
    if let Some(refusal) = crate::webhooks::url_refusal(&call.url, http.destinations) {
        return Err(refusal);
    }
    let client = &http.client;
    let method = reqwest::Method::from_bytes(call.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut request = client
        .request(method, &call.url)
        .timeout(call.timeout)
        .header("accept", "application/json");
    for (name, value) in &call.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    if let Some(body) = &call.body {
        request = request.json(body);
    }
    let mut response = request.send().await.map_err(|e| {
        if e.is_timeout() {
            format!("no answer within {} ms", call.timeout.as_millis())
        } else {
            crate::webhooks::describe(&e)
        }
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("the endpoint answered {status}"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        if e.is_timeout() {
            format!("no answer within {} ms", call.timeout.as_millis())
        } else {
            crate::webhooks::describe(&e)
        }
    })? {
        if body.len() + chunk.len() > MAX_HTTP_ANSWER_BYTES {
            return Err(format!(
                "the answer is larger than {MAX_HTTP_ANSWER_BYTES} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&body).map_err(|e| format!("the answer is not JSON: {e}"))
}

pub(crate) async fn ask_knowledge_base(
    nlu: &NluService,
    tenant: &str,
    question: &str,
) -> KnowledgeReply {
    match nlu.answer(tenant, question).await {
        Ok(answer) if !answer.needs_human => KnowledgeReply::Answer(answer.text),
        Ok(answer) => KnowledgeReply::NeedsHuman(
            answer
                .handover_reason
                .and_then(|r| serde_json::to_value(r).ok())
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "needs_human".into()),
        ),
        Err(e) => KnowledgeReply::NeedsHuman(e.to_string()),
    }
}

/// The live world of one inbound message.
pub(crate) struct LiveIo<'a> {
    pub accept: AcceptContext<'a>,
    pub store: &'a dyn Store,
    pub nlu: &'a NluService,
    pub http: &'a FlowHttp,
    pub message: &'a InboundMessage,
    /// The message's contact, until an address the customer gives merges it into a known
    /// customer: that customer's from then on (the message's stored contact changed with
    /// the merge).
    pub contact_id: Option<String>,
    /// The message's conversation, or after such a merge the surviving contact's.
    pub conversation: Conversation,
    /// Whether a merge moved the thread to another contact (`contact_id`, `conversation`).
    pub moved: bool,
    /// The addresses the customer gave as their own in this turn, and what each did.
    pub links: Vec<Link>,
    pub flow: &'a str,
    pub now: Timestamp,
    /// Answers said so far for this message: the rank in each answer's key.
    pub said: usize,
    /// Answers said and not accepted yet, with their keys: accepted with the answers of
    /// the other messages of the group once the run ends, or before a call that may take
    /// a while (the customer reads "one moment" before the wait, not after).
    pub unsent: Vec<(String, Value)>,
    /// The latest thing said, for the conversation's list.
    pub last_said: Option<Content>,
    /// Why accepting answers before a call failed: the turn then fails as a whole (and is
    /// taken again later) rather than going on as if the customer had heard them.
    pub broken: Option<FlowIoError>,
}

impl LiveIo<'_> {
    /// Accepts the answers said so far, in their order.
    async fn flush(&mut self) -> Result<(), FlowIoError> {
        let unsent = std::mem::take(&mut self.unsent);
        if unsent.is_empty() {
            return Ok(());
        }
        let replies = unsent
            .into_iter()
            .map(|(key, content)| Reply {
                message: self.message,
                content,
                key,
            })
            .collect();
        for outcome in reply_many(self.accept, replies).await {
            match outcome {
                Ok(()) => {}
                Err(AcceptError::Store(e)) => return Err(FlowIoError(e.to_string())),
                Err(refused) => {
                    tracing::warn!(flow = self.flow, message = %self.message.id, error = %refused, "a flow's answer was refused");
                }
            }
        }
        Ok(())
    }

    async fn set_contact_attribute(
        &self,
        attribute: &str,
        value: &Value,
    ) -> Result<(), FlowIoError> {
        let Some(contact_id) = self.contact_id.as_deref() else {
            return Ok(());
        };
        let mut changes = Map::new();
        changes.insert(attribute.to_owned(), value.clone());
        self.store
            .update_contact(
                &self.message.tenant_id,
                contact_id,
                &ContactPatch {
                    attributes: Some(changes),
                    timezone: None,
                    locale: None,
                },
                self.now,
            )
            .await
            .map(|_| ())
            .map_err(|e| FlowIoError(e.to_string()))
    }

    /// Links `identity`, which the answer of `node` claims, to the contact (whose answer
    /// is already stored): see [`crate::link`].
    async fn link(
        &mut self,
        node: &str,
        identity: &Identity,
        plan: link::Plan,
        contact_id: &str,
    ) -> Result<(), StoreError> {
        let tenant = self.message.tenant_id.clone();
        let tenant = tenant.as_str();
        let cause = MergeCause::FlowAnswer {
            identity: identity.clone(),
            flow: self.flow.to_owned(),
            node: node.to_owned(),
            message_id: self.message.id.clone(),
            conversation_id: self.conversation.id.clone(),
        };
        let linked = link::carry_out(
            self.store, tenant, contact_id, identity, plan, &cause, self.now,
        )
        .await?;
        if let Linked::Merged {
            contact_id: survivor,
            ..
        } = &linked
        {
            // The rest of the turn writes on the customer and in their conversation (the
            // visitor's went when the customer had one).
            self.contact_id = Some(survivor.clone());
            let theirs = ConversationFilter {
                contact_id: Some(survivor.clone()),
                ..Default::default()
            };
            let first = PageRequest {
                after: None,
                limit: 1,
            };
            let found = self
                .store
                .list_conversations(tenant, &theirs, &first)
                .await?;
            if let Some(conversation) = found.data.into_iter().next() {
                self.conversation = conversation;
            }
            self.moved = true;
        }
        self.links.push(Link {
            node: node.to_owned(),
            identity: identity.clone(),
            linked,
        });
        Ok(())
    }
}

#[async_trait]
impl FlowIo for LiveIo<'_> {
    async fn say(&mut self, _node: &str, content: Content) -> Result<(), FlowIoError> {
        let key = format!("relais:flow:{}:{}", self.message.id, self.said);
        self.said += 1;
        let wire = serde_json::to_value(&content).map_err(|e| FlowIoError(e.to_string()))?;
        self.unsent.push((key, wire));
        self.last_said = Some(content);
        Ok(())
    }

    async fn call(&mut self, _node: &str, call: HttpCall) -> Result<Value, String> {
        if let Err(e) = self.flush().await {
            let why = e.to_string();
            self.broken = Some(e);
            return Err(why);
        }
        call_endpoint(self.http, &call).await
    }

    async fn knowledge(&mut self, question: &str) -> Result<KnowledgeReply, FlowIoError> {
        self.flush().await?;
        Ok(ask_knowledge_base(self.nlu, &self.message.tenant_id, question).await)
    }

    async fn store_answer(
        &mut self,
        node: &str,
        attribute: &str,
        value: &Value,
        identity: Option<&Identity>,
    ) -> Result<(), FlowIoError> {
        let Some(contact_id) = self.contact_id.clone() else {
            return Ok(());
        };
        let plan = match identity {
            Some(identity) => Some(
                link::examine(
                    self.store,
                    &self.message.tenant_id,
                    &contact_id,
                    identity,
                    &self.message.id,
                )
                .await
                .map_err(|e| FlowIoError(e.to_string()))?,
            ),
            None => None,
        };
        let answer = FlowAnswer {
            tenant_id: self.message.tenant_id.clone(),
            contact_id: contact_id.clone(),
            attribute: attribute.to_owned(),
            value: value.clone(),
            flow: self.flow.to_owned(),
            node: node.to_owned(),
            conversation_id: self.conversation.id.clone(),
            message_id: self.message.id.clone(),
            channel: self.message.channel,
            answered_at: self.message.received_at,
        };
        self.store
            .record_flow_answer(&answer)
            .await
            .map_err(|e| FlowIoError(e.to_string()))?;
        // Once per (message, attribute), like the answer itself.
        crate::crm::answer_captured(self.store, &answer, self.now)
            .await
            .map_err(|e| FlowIoError(e.to_string()))?;
        // Written on the contact before it is merged, so that the known customer's value
        // wins; not again on the customer when this message's merge is done already.
        if !plan.as_ref().is_some_and(link::Plan::done_before) {
            self.set_contact_attribute(attribute, value).await?;
        }
        if let (Some(identity), Some(plan)) = (identity, plan) {
            self.link(node, identity, plan, &contact_id)
                .await
                .map_err(|e| FlowIoError(e.to_string()))?;
        }
        Ok(())
    }

    async fn set_attribute(&mut self, attribute: &str, value: &Value) -> Result<(), FlowIoError> {
        self.set_contact_attribute(attribute, value).await
    }
}

/// One line of a simulation's transcript.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TranscriptLine {
    /// The customer's scripted input.
    Customer { text: String },
    /// What the bot would send.
    Bot { node: String, content: Content },
    /// A call the `http` node made (or its mock), with the answer or the failure.
    Http {
        node: String,
        request: HttpCall,
        #[serde(skip_serializing_if = "Option::is_none")]
        answer: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        mocked: bool,
    },
    /// An answer the flow would store on the contact, with the address it claims as the
    /// customer's own (linked to their contact when live).
    Answer {
        node: String,
        attribute: String,
        value: Value,
        #[serde(skip_serializing_if = "Option::is_none")]
        identity: Option<Identity>,
    },
    /// An attribute a `set` node would write.
    Attribute { attribute: String, value: Value },
}

/// What an `http` node answers in a simulation instead of calling out: a JSON answer, or
/// `{"fail": "why"}` to take its failure branch.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(untagged)]
pub enum HttpMock {
    Fail { fail: String },
    Answer(Value),
}

/// The simulated world: nothing leaves it but the calls of `http` nodes without a mock.
pub(crate) struct SimulatedIo<'a> {
    pub tenant: &'a str,
    pub nlu: &'a NluService,
    pub http: &'a FlowHttp,
    pub mocks: &'a BTreeMap<String, HttpMock>,
    pub transcript: Vec<TranscriptLine>,
}

#[async_trait]
impl FlowIo for SimulatedIo<'_> {
    async fn say(&mut self, node: &str, content: Content) -> Result<(), FlowIoError> {
        self.transcript.push(TranscriptLine::Bot {
            node: node.to_owned(),
            content,
        });
        Ok(())
    }

    async fn call(&mut self, node: &str, call: HttpCall) -> Result<Value, String> {
        let (result, mocked) = match self.mocks.get(node) {
            Some(HttpMock::Fail { fail }) => (Err(fail.clone()), true),
            Some(HttpMock::Answer(answer)) => (Ok(answer.clone()), true),
            None => (call_endpoint(self.http, &call).await, false),
        };
        self.transcript.push(TranscriptLine::Http {
            node: node.to_owned(),
            request: call,
            answer: result.as_ref().ok().cloned(),
            error: result.as_ref().err().cloned(),
            mocked,
        });
        result
    }

    async fn knowledge(&mut self, question: &str) -> Result<KnowledgeReply, FlowIoError> {
        Ok(ask_knowledge_base(self.nlu, self.tenant, question).await)
    }

    async fn store_answer(
        &mut self,
        node: &str,
        attribute: &str,
        value: &Value,
        identity: Option<&Identity>,
    ) -> Result<(), FlowIoError> {
        self.transcript.push(TranscriptLine::Answer {
            node: node.to_owned(),
            attribute: attribute.to_owned(),
            value: value.clone(),
            identity: identity.cloned(),
        });
        Ok(())
    }

    async fn set_attribute(&mut self, attribute: &str, value: &Value) -> Result<(), FlowIoError> {
        self.transcript.push(TranscriptLine::Attribute {
            attribute: attribute.to_owned(),
            value: value.clone(),
        });
        Ok(())
    }
}
