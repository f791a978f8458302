//! Bot flows: what a tenant's bot says and asks, as data (`PUT /v1/flows/{name}`, JSON or
//! YAML), and the pure rules that run it — entry, answer checks, branch conditions.
//!
//! A flow is a graph of named nodes: `send`, `ask`, `branch`, `http`, `set`, `answer`,
//! `handoff`, `end`. [`FlowDefinition::parse`] turns the tenant's document into a
//! definition, or into every mistake it holds, each with the JSON pointer of the field
//! at fault (`/nodes/ask_ref/next: no node is named "chek"`): a flow that parsed runs
//! without meeting a dangling reference, an unknown validation or a template that does not
//! compile. Running it needs a store, a clock and the network, so it lives in the engine.

mod answer;
mod condition;
mod validate;

pub use answer::{
    AnswerCheck, AnswerContext, AnswerError, AnswerKind, FormFieldProblem, check_answer,
    check_form_answer,
};
pub use condition::{Facts, matches_words};
pub use validate::{FlowError, FlowErrors};

use crate::channel::ChannelKind;
use crate::contact::Identity;
use crate::content::Content;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Nodes one inbound message may run before the flow is taken to loop and a human is
/// called: a long legitimate run (greeting, three branches, a CRM call, a question) takes
/// about ten.
pub const MAX_STEPS_PER_MESSAGE: usize = 50;
/// Nodes in one flow.
pub const MAX_NODES: usize = 500;
/// Times a question is asked when no `attempts` is given.
pub const DEFAULT_ATTEMPTS: u32 = 3;
/// Most attempts a question may allow.
pub const MAX_ATTEMPTS: u32 = 10;
/// How long an `http` node waits when it gives no `timeout_ms`.
pub const DEFAULT_HTTP_TIMEOUT_MS: u64 = 5_000;
/// The longest an `http` node may wait: the customer is waiting too.
pub const MAX_HTTP_TIMEOUT_MS: u64 = 30_000;
/// Longest flow name.
pub const MAX_NAME_CHARS: usize = 64;

/// A tenant's flow, as uploaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowDefinition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Which inbound messages start this flow.
    #[serde(default)]
    pub entry: Entry,
    /// The first node.
    pub start: String,
    pub nodes: BTreeMap<String, Node>,
}

/// When a flow starts: on a conversation's first message (or the first after it was
/// resolved), on a keyword, or on an intent; `channels`, when given, limits it to those.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    #[serde(default)]
    pub new_conversation: bool,
    /// Whole-message keywords, matched as STOP is (case, accents and punctuation aside).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    /// Intents of the tenant's NLU model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intents: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<ChannelKind>,
}

/// Why an entry rule picked a flow; a keyword outranks an intent, which outranks a new
/// conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryMatch {
    NewConversation,
    Intent,
    Keyword,
}

impl Entry {
    /// Whether a message with these `facts` starts the flow, and by which rule.
    pub fn matches(
        &self,
        channel: ChannelKind,
        opening: bool,
        facts: &Facts,
    ) -> Option<EntryMatch> {
        if !self.channels.is_empty() && !self.channels.contains(&channel) {
            return None;
        }
        if !self.keywords.is_empty() && matches_words(&self.keywords, &facts.text) {
            return Some(EntryMatch::Keyword);
        }
        if let Some(intent) = facts.intent.as_deref()
            && self.intents.iter().any(|i| i == intent)
        {
            return Some(EntryMatch::Intent);
        }
        (opening && self.new_conversation).then_some(EntryMatch::NewConversation)
    }
}

/// One step of a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Node {
    Send(SendNode),
    Ask(AskNode),
    Branch(BranchNode),
    Http(HttpNode),
    Set(SetNode),
    Answer(AnswerNode),
    Handoff(HandoffNode),
    End(EndNode),
}

impl Node {
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Send(_) => "send",
            Node::Ask(_) => "ask",
            Node::Branch(_) => "branch",
            Node::Http(_) => "http",
            Node::Set(_) => "set",
            Node::Answer(_) => "answer",
            Node::Handoff(_) => "handoff",
            Node::End(_) => "end",
        }
    }

    /// What the node says, for the nodes that speak.
    pub fn say(&self) -> Option<Say<'_>> {
        let (text, content, quick_replies) = match self {
            Node::Send(n) => (&n.text, &n.content, &n.quick_replies),
            Node::Ask(n) => (&n.text, &n.content, &n.quick_replies),
            Node::Handoff(n) => (&n.text, &n.content, &n.quick_replies),
            Node::End(n) => (&n.text, &n.content, &n.quick_replies),
            _ => return None,
        };
        Some(Say {
            text: text.as_ref(),
            content: content.as_ref(),
            quick_replies,
        })
    }

    /// The nodes this one may lead to, each with the field that names it.
    pub fn targets(&self) -> Vec<(String, &str)> {
        fn field<'a>(name: &str, target: &'a Option<String>) -> Option<(String, &'a str)> {
            target.as_deref().map(|t| (name.to_owned(), t))
        }
        match self {
            Node::Send(n) => field("next", &n.next).into_iter().collect(),
            Node::Ask(n) => [field("next", &n.next), field("on_fail", &n.on_fail)]
                .into_iter()
                .flatten()
                .collect(),
            Node::Branch(n) => n
                .cases
                .iter()
                .enumerate()
                .map(|(i, case)| (format!("cases/{i}/next"), case.next.as_str()))
                .chain([("default".to_owned(), n.default.as_str())])
                .collect(),
            Node::Http(n) => field("next", &n.next)
                .into_iter()
                .chain([("on_fail".to_owned(), n.on_fail.as_str())])
                .collect(),
            Node::Set(n) => field("next", &n.next).into_iter().collect(),
            Node::Answer(n) => field("next", &n.next).into_iter().collect(),
            Node::Handoff(_) | Node::End(_) => Vec::new(),
        }
    }
}

/// What a bot says (the `text`, `content` and `quick_replies` of a `send`, `ask`,
/// `handoff` or `end` node): a `text`, or any `content` (buttons, cards, media), with
/// optional quick replies. Both may use `{{ … }}` over the contact's attributes and the
/// flow's variables.
#[derive(Debug, Clone, Copy)]
pub struct Say<'a> {
    pub text: Option<&'a String>,
    pub content: Option<&'a Content>,
    pub quick_replies: &'a [String],
}

impl Say<'_> {
    /// Whether there is anything to say.
    pub fn is_empty(&self) -> bool {
        self.text.is_none() && self.content.is_none()
    }

    /// The message, before personalisation; `offered` are the quick replies a question
    /// adds when the node gives none.
    pub fn to_content(&self, offered: &[String]) -> Option<Content> {
        let mut content = match (self.content, self.text) {
            (Some(content), _) => content.clone(),
            (None, Some(text)) => Content::text(text.clone()),
            (None, None) => return None,
        };
        let replies = if self.quick_replies.is_empty() {
            offered
        } else {
            self.quick_replies
        };
        if content.quick_replies.is_empty() {
            content.quick_replies = replies
                .iter()
                .map(|title| crate::content::QuickReply {
                    title: title.clone(),
                    payload: None,
                })
                .collect();
        }
        Some(content)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendNode {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quick_replies: Vec<String>,
    /// Where to go next; none ends the flow (as `end` does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Asks a question and waits for the customer's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskNode {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quick_replies: Vec<String>,
    /// The contact attribute the answer is stored in (first-party data, shown on the
    /// contact with where and when it was given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// A flow variable the answer is kept in instead (or as well), for later nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub var: Option<String>,
    #[serde(default)]
    pub validate: AnswerCheck,
    /// How many answers are taken before `on_fail` (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Said before asking again after an answer that does not fit; a sentence that says
    /// what is expected is written when none is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Where to go when every attempt failed; none hands the conversation to a human.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_fail: Option<String>,
    /// Whether an `email` or `phone` answer kept in `attribute` is the customer's own
    /// address, which links their contact to it (default `true`); `false` for someone
    /// else's (a friend to invite, an emergency contact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<bool>,
}

impl AskNode {
    pub fn attempts(&self) -> u32 {
        self.attempts.unwrap_or(DEFAULT_ATTEMPTS)
    }

    /// The value kept for the customer's answer `input`, or why it does not fit: a `form`
    /// check reads the values by the fields of the form the node asks
    /// ([`check_form_answer`]), any other by its kind ([`check_answer`]).
    pub fn check(&self, input: &str, context: &AnswerContext) -> Result<Value, AnswerError> {
        let form = self.content.as_ref().and_then(|c| match &c.body {
            crate::content::Body::Form(form) => Some(form),
            _ => None,
        });
        match form {
            Some(form) if self.validate.kind == AnswerKind::Form => {
                check_form_answer(form, input, context)
            }
            _ => check_answer(&self.validate, input, context),
        }
    }

    /// The identity a valid answer (`value`, as [`check_answer`] keeps it) claims for the
    /// customer: an `email` or `phone` answer kept in an `attribute`, unless `link` is
    /// `false`. A phone number is claimed under [`ChannelKind::PHONE_NUMBER`], where
    /// every phone channel finds it.
    pub fn claimed_identity(&self, value: &Value) -> Option<Identity> {
        if self.attribute.is_none() || self.link == Some(false) {
            return None;
        }
        let channel = match self.validate.kind {
            AnswerKind::Email => ChannelKind::Email,
            AnswerKind::Phone => ChannelKind::PHONE_NUMBER,
            _ => return None,
        };
        Some(Identity {
            channel,
            address: value.as_str()?.to_owned(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchNode {
    /// Tried in order; the first whose `when` holds is taken.
    pub cases: Vec<Case>,
    pub default: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub when: Condition,
    pub next: String,
}

/// A test on the customer's latest message and what the flow knows; every field given
/// must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The message's intent is one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<OneOrMany>,
    /// `negative`, `neutral` or `positive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentiment: Option<OneOrMany>,
    /// The message is (or is not) urgent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgent: Option<bool>,
    /// The whole message is one of these words, as keywords are matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyword: Option<OneOrMany>,
    /// The customer chose a button or quick reply with one of these payloads (compared
    /// exactly), by tapping it or, on a channel without buttons, by answering its number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<OneOrMany>,
    /// The latest stored answer (after its check: `"oui"` for the choice `Oui`) is one of
    /// these, compared as keywords are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<OneOrMany>,
    /// A contact attribute, compared with `equals`, `in` or `exists`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// A flow variable by dotted path (`crm.status`), compared the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub var: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "in")]
    pub one_of: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
}

/// A word or a list of words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn as_slice(&self) -> &[String] {
        match self {
            OneOrMany::One(one) => std::slice::from_ref(one),
            OneOrMany::Many(many) => many,
        }
    }
}

/// Calls an HTTP endpoint (a CRM) and keeps its JSON answer in a variable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpNode {
    /// `GET` by default, `POST` when there is a `body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// May use `{{ … }}`.
    pub url: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Sent as JSON; its strings may use `{{ … }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The variable that holds the answer (default: the node's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_as: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Taken on a timeout, a refused connection, a status other than 2xx, or an answer
    /// that is not JSON.
    pub on_fail: String,
}

impl HttpNode {
    pub fn method(&self) -> &str {
        match &self.method {
            Some(m) => m.as_str(),
            None if self.body.is_some() => "POST",
            None => "GET",
        }
    }

    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms.unwrap_or(DEFAULT_HTTP_TIMEOUT_MS)
    }
}

/// Sets a contact attribute or a flow variable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetNode {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub var: Option<String>,
    /// A JSON value; a string may use `{{ … }}`.
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Answers the customer's latest message from the tenant's knowledge base, with its
/// sources; when the knowledge base has no good answer, hands off to `team`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerNode {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Passes the conversation to a human: it waits for an agent of `team`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoffNode {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quick_replies: Vec<String>,
}

/// Ends the flow; the conversation is resolved unless `resolve` is `false` (then it
/// waits for an agent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndNode {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quick_replies: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve: Option<bool>,
}

impl FlowDefinition {
    /// Reads and checks a flow document; every mistake is reported, each at its pointer.
    pub fn parse(document: &Value) -> Result<FlowDefinition, FlowErrors> {
        validate::parse(document)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.get(name)
    }
}

/// A flow's name: what `PUT /v1/flows/{name}` takes.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a flow name is 1 to {MAX_NAME_CHARS} letters, digits, `-`, `_` or `.`"
        ))
    }
}

#[cfg(test)]
mod tests;
