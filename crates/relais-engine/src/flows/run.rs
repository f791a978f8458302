//! The flow interpreter: from where a conversation's bot stands and the customer's latest
//! message, the nodes to run until the bot waits for an answer or the flow ends.
//!
//! It decides and [`FlowIo`] acts: saying something, calling an HTTP endpoint, asking the
//! knowledge base, storing an answer. The live pipeline and `simulate` share this code and
//! differ only in their `FlowIo`, so a simulation shows what the bot would really do.

use async_trait::async_trait;
use relais_core::contact::Identity;
use relais_core::content::Content;
use relais_core::flow::{
    AnswerCheck, AnswerContext, AnswerKind, Facts, FlowDefinition, MAX_STEPS_PER_MESSAGE, Node,
};
use relais_core::template::{ContentTemplate, Template, template_context};
use serde::Serialize;
use serde_json::{Map, Value};
use std::time::Duration;

/// An HTTP call an `http` node makes, personalised.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpCall {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    #[serde(skip)]
    pub timeout: Duration,
}

/// What the knowledge base said to the customer's message.
#[derive(Debug, Clone, PartialEq)]
pub enum KnowledgeReply {
    Answer(String),
    /// No good answer (or no knowledge base, or no model): a human should answer.
    NeedsHuman(String),
}

/// Why the interpreter's world failed it; the inbound message is tried again later.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FlowIoError(pub String);

/// What a flow does outside itself.
#[async_trait]
pub trait FlowIo: Send {
    /// Says `content` to the customer (node `node`).
    async fn say(&mut self, node: &str, content: Content) -> Result<(), FlowIoError>;
    /// Calls an endpoint; its JSON answer, or why there is none (timeout, refused,
    /// a status other than 2xx, not JSON).
    async fn call(&mut self, node: &str, call: HttpCall) -> Result<Value, String>;
    async fn knowledge(&mut self, question: &str) -> Result<KnowledgeReply, FlowIoError>;
    /// Stores an answer in a contact attribute (first-party data, with where and when);
    /// `identity` is the address the answer claims as the customer's own (an `email` or
    /// `phone` answer), linked to their contact once the answer is stored.
    async fn store_answer(
        &mut self,
        node: &str,
        attribute: &str,
        value: &Value,
        identity: Option<&Identity>,
    ) -> Result<(), FlowIoError>;
    /// Sets a contact attribute.
    async fn set_attribute(&mut self, attribute: &str, value: &Value) -> Result<(), FlowIoError>;
}

/// Where a conversation's bot waits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Waiting {
    pub node: String,
    pub attempts: u32,
}

/// Why the flow gave the conversation to a human.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "detail")]
pub enum HandoffReason {
    /// A `handoff` node.
    Asked,
    /// More than [`MAX_STEPS_PER_MESSAGE`] nodes for one message: a loop.
    Loop,
    /// Every attempt at a question failed and it has no `on_fail`.
    NoValidAnswer,
    /// The knowledge base had no good answer.
    KnowledgeBase(String),
    /// The flow cannot go on: a node it names is gone (the flow changed), a template
    /// names a variable nobody set.
    Broken(String),
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Ending {
    /// The bot waits for the customer's answer.
    Waiting(Waiting),
    /// The flow ended; the conversation is resolved, or waits for an agent when `resolve`
    /// was `false`.
    Ended { resolve: bool },
    HandedOff {
        team: Option<String>,
        #[serde(flatten)]
        reason: HandoffReason,
    },
}

/// The result of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    pub ending: Ending,
    /// The flow's variables after the run.
    pub vars: Map<String, Value>,
    /// The contact's attributes after the run (answers and `set` included).
    #[serde(skip)]
    pub attributes: Map<String, Value>,
    /// The nodes run, in order.
    pub visited: Vec<String>,
}

/// What a run starts from.
pub struct RunStart<'a> {
    pub flow: &'a FlowDefinition,
    /// Where the bot waits, or `None` to start the flow.
    pub waiting: Option<Waiting>,
    pub vars: Map<String, Value>,
    /// The contact's attributes.
    pub attributes: Map<String, Value>,
    /// The customer's latest message.
    pub facts: Facts,
    /// `fr` or `en`, for the hints written when a question's answer does not fit.
    pub language: Option<String>,
    pub answers: AnswerContext,
}

/// Runs the flow for the customer's latest message.
pub async fn run(start: RunStart<'_>, io: &mut dyn FlowIo) -> Result<Run, FlowIoError> {
    let RunStart {
        flow,
        waiting,
        mut vars,
        mut attributes,
        mut facts,
        language,
        answers,
    } = start;
    let mut visited = Vec::new();
    let (mut current, mut attempts, mut answering) = match waiting {
        Some(w) => (w.node, w.attempts, true),
        None => (flow.start.clone(), 0, false),
    };
    let handoff = |team: Option<String>, reason: HandoffReason| Ending::HandedOff { team, reason };
    let ending = loop {
        if visited.len() >= MAX_STEPS_PER_MESSAGE {
            tracing::warn!(node = %current, "a flow ran {MAX_STEPS_PER_MESSAGE} nodes for one message; handing off");
            break handoff(None, HandoffReason::Loop);
        }
        let Some(node) = flow.node(&current) else {
            break handoff(
                None,
                HandoffReason::Broken(format!("the flow has no node `{current}` any more")),
            );
        };
        visited.push(current.clone());
        let context = template_context(&attributes, &vars);
        let step: Result<Option<String>, Ending> = match node {
            Node::Ask(ask) if answering => {
                answering = false;
                // A chosen button's payload answers first, as it says more than its
                // title; an answer the check refuses as a payload is read as words. A
                // form's values come as the payload only: when they do not fit, what is
                // wrong with them is what the customer is told.
                let checked = match facts.payload.as_deref().map(|p| ask.check(p, &answers)) {
                    Some(Ok(value)) => Ok(value),
                    Some(Err(refused)) if ask.validate.kind == AnswerKind::Form => Err(refused),
                    _ => ask.check(&facts.text, &answers),
                };
                match checked {
                    Ok(value) => {
                        if let Some(attribute) = &ask.attribute {
                            let identity = ask.claimed_identity(&value);
                            io.store_answer(&current, attribute, &value, identity.as_ref())
                                .await?;
                            // Merged into a known customer by that answer, the contact now
                            // has the customer's attributes; the run goes on with the ones
                            // it had, so that a visitor who typed someone's address is not
                            // shown that person's data by the rest of the turn.
                            attributes.insert(attribute.clone(), value.clone());
                        }
                        if let Some(var) = &ask.var {
                            vars.insert(var.clone(), value.clone());
                        }
                        facts.answer = Some(value);
                        attempts = 0;
                        Ok(ask.next.clone())
                    }
                    Err(refused) => {
                        attempts += 1;
                        tracing::debug!(node = %current, error = %refused, attempts, "an answer was refused");
                        if attempts >= ask.attempts() {
                            attempts = 0;
                            match &ask.on_fail {
                                Some(target) => Ok(Some(target.clone())),
                                None => Err(handoff(None, HandoffReason::NoValidAnswer)),
                            }
                        } else {
                            let retry = ask
                                .retry_text
                                .clone()
                                .or_else(|| refused.form_hint(language.as_deref()))
                                .unwrap_or_else(|| ask.validate.hint(language.as_deref()));
                            match say_retry(io, &current, node, &ask.validate, &retry, &context)
                                .await?
                            {
                                Ok(()) => Err(Ending::Waiting(Waiting {
                                    node: current.clone(),
                                    attempts,
                                })),
                                Err(broken) => Err(handoff(None, broken)),
                            }
                        }
                    }
                }
            }
            Node::Ask(ask) => match say(io, &current, node, &ask.validate.choices, &context).await?
            {
                Ok(()) => Err(Ending::Waiting(Waiting {
                    node: current.clone(),
                    attempts: 0,
                })),
                Err(broken) => Err(handoff(None, broken)),
            },
            Node::Send(send) => match say(io, &current, node, &[], &context).await? {
                Ok(()) => Ok(send.next.clone()),
                Err(broken) => Err(handoff(None, broken)),
            },
            Node::Branch(branch) => Ok(Some(
                branch
                    .cases
                    .iter()
                    .find(|case| case.when.holds(&facts, &attributes, &vars))
                    .map(|case| case.next.clone())
                    .unwrap_or_else(|| branch.default.clone()),
            )),
            Node::Http(http) => match personalise_call(http, &context) {
                Err(broken) => Err(handoff(None, broken)),
                Ok(call) => {
                    let save_as = http.save_as.clone().unwrap_or_else(|| current.clone());
                    match io.call(&current, call).await {
                        Ok(answer) => {
                            vars.insert(save_as, answer);
                            Ok(http.next.clone())
                        }
                        Err(why) => {
                            tracing::info!(node = %current, error = %why, "a flow's HTTP call failed; taking on_fail");
                            vars.insert(save_as, serde_json::json!({"error": why}));
                            Ok(Some(http.on_fail.clone()))
                        }
                    }
                }
            },
            Node::Set(set) => match personalise_value(&set.value, &context) {
                Err(broken) => Err(handoff(None, broken)),
                Ok(value) => {
                    if let Some(attribute) = &set.attribute {
                        io.set_attribute(attribute, &value).await?;
                        attributes.insert(attribute.clone(), value.clone());
                    }
                    if let Some(var) = &set.var {
                        vars.insert(var.clone(), value);
                    }
                    Ok(set.next.clone())
                }
            },
            Node::Answer(answer) => match io.knowledge(&facts.text).await? {
                KnowledgeReply::Answer(text) => {
                    io.say(&current, Content::text(text)).await?;
                    Ok(answer.next.clone())
                }
                KnowledgeReply::NeedsHuman(why) => Err(handoff(
                    answer.team.clone(),
                    HandoffReason::KnowledgeBase(why),
                )),
            },
            Node::Handoff(h) => match say(io, &current, node, &[], &context).await? {
                Ok(()) => Err(handoff(h.team.clone(), HandoffReason::Asked)),
                Err(broken) => Err(handoff(h.team.clone(), broken)),
            },
            Node::End(end) => match say(io, &current, node, &[], &context).await? {
                Ok(()) => Err(Ending::Ended {
                    resolve: end.resolve.unwrap_or(true),
                }),
                Err(broken) => Err(handoff(None, broken)),
            },
        };
        match step {
            Ok(Some(target)) => current = target,
            // A node without `next` ends the flow, as `end` does.
            Ok(None) => break Ending::Ended { resolve: true },
            Err(ending) => break ending,
        }
    };
    Ok(Run {
        ending,
        vars,
        attributes,
        visited,
    })
}

/// Says what `node` says, personalised; `offered` are a question's choices, shown as
/// quick replies when it gives none.
async fn say(
    io: &mut dyn FlowIo,
    name: &str,
    node: &Node,
    offered: &[String],
    context: &Value,
) -> Result<Result<(), HandoffReason>, FlowIoError> {
    match node.say().and_then(|say| say.to_content(offered)) {
        Some(content) => speak(io, name, content, context).await,
        None => Ok(Ok(())),
    }
}

/// The retry text of a question, with its choices again.
async fn say_retry(
    io: &mut dyn FlowIo,
    name: &str,
    node: &Node,
    check: &AnswerCheck,
    retry: &str,
    context: &Value,
) -> Result<Result<(), HandoffReason>, FlowIoError> {
    let mut content = Content::text(retry.to_owned());
    if let Some(question) = node.say().and_then(|say| say.to_content(&check.choices)) {
        content.quick_replies = question.quick_replies;
    }
    speak(io, name, content, context).await
}

/// Says `content` personalised; a template that cannot be filled is not sent, and the
/// reason is given back for a handoff.
async fn speak(
    io: &mut dyn FlowIo,
    name: &str,
    content: Content,
    context: &Value,
) -> Result<Result<(), HandoffReason>, FlowIoError> {
    match personalise(&content, context) {
        Ok(content) => {
            io.say(name, content).await?;
            Ok(Ok(()))
        }
        Err(broken) => Ok(Err(broken)),
    }
}

fn personalise(content: &Content, context: &Value) -> Result<Content, HandoffReason> {
    ContentTemplate::compile(content)
        .and_then(|t| t.render(context))
        .map_err(|e| HandoffReason::Broken(e.to_string()))
}

fn render(text: &str, context: &Value) -> Result<String, HandoffReason> {
    if !relais_core::content::has_template_syntax(text) {
        return Ok(text.to_owned());
    }
    Template::compile(text)
        .and_then(|t| t.render(context))
        .map_err(|e| HandoffReason::Broken(e.to_string()))
}

/// A JSON value whose strings are templates, filled.
fn personalise_value(value: &Value, context: &Value) -> Result<Value, HandoffReason> {
    Ok(match value {
        Value::String(s) => Value::String(render(s, context)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| personalise_value(v, context))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), personalise_value(v, context)?)))
                .collect::<Result<_, HandoffReason>>()?,
        ),
        other => other.clone(),
    })
}

fn personalise_call(
    http: &relais_core::flow::HttpNode,
    context: &Value,
) -> Result<HttpCall, HandoffReason> {
    Ok(HttpCall {
        method: http.method().to_owned(),
        url: render(&http.url, context)?,
        headers: http
            .headers
            .iter()
            .map(|(k, v)| Ok((k.clone(), render(v, context)?)))
            .collect::<Result<_, HandoffReason>>()?,
        body: http
            .body
            .as_ref()
            .map(|b| personalise_value(b, context))
            .transpose()?,
        timeout: Duration::from_millis(http.timeout_ms()),
    })
}
