//! Reading a flow document and finding its mistakes, each at the JSON pointer of the field
//! at fault. The shape (types, unknown fields) is read by serde, which stops at the first
//! mistake; the meaning (references, checks, templates) is then checked in full, so a
//! tenant sees every dangling `next` at once.

use super::{
    AnswerKind, Condition, FlowDefinition, MAX_ATTEMPTS, MAX_HTTP_TIMEOUT_MS, MAX_NODES, Node, Say,
};
use crate::content::has_template_syntax;
use crate::template::{ContentTemplate, Template};
use serde::Serialize;
use serde_json::Value;
use std::fmt;

/// Most cases in one `branch`.
const MAX_CASES: usize = 50;
/// Longest node, attribute or variable name.
const MAX_NAME_CHARS: usize = 64;

/// One mistake in a flow document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowError {
    /// The JSON pointer (RFC 6901) of the field at fault, e.g. `/nodes/ask_ref/next`.
    pub pointer: String,
    pub message: String,
}

/// Every mistake found in a flow document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowErrors(pub Vec<FlowError>);

impl fmt::Display for FlowErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for e in &self.0 {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{}: {}", e.pointer, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for FlowErrors {}

/// `/a/b` with `~` and `/` in a segment escaped as RFC 6901 says.
fn pointer(segments: &[&str]) -> String {
    segments
        .iter()
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// `value` read as a `T`, or the mistake at its pointer under `at`.
fn read<T: serde::de::DeserializeOwned>(value: &Value, at: &[&str]) -> Result<T, FlowError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut segments: Vec<String> = at.iter().map(|s| (*s).to_owned()).collect();
        segments.extend(e.path().iter().filter_map(|segment| match segment {
            serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
            serde_path_to_error::Segment::Map { key } => Some(key.clone()),
            serde_path_to_error::Segment::Enum { variant } => Some(variant.clone()),
            serde_path_to_error::Segment::Unknown => None,
        }));
        let refs: Vec<&str> = segments.iter().map(String::as_str).collect();
        FlowError {
            pointer: pointer(&refs),
            message: e.inner().to_string(),
        }
    })
}

/// A node read by its `type`, so that a mistake inside it is reported at its own field
/// (serde reads a tagged enum from a buffer that forgets where it was).
fn read_node(name: &str, value: &Value) -> Result<Node, FlowError> {
    let at = ["nodes", name];
    let kind = match value.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(_) => {
            return Err(FlowError {
                pointer: pointer(&["nodes", name, "type"]),
                message: "must be a string".into(),
            });
        }
        None => {
            return Err(FlowError {
                pointer: pointer(&at),
                message:
                    "a node needs a `type`: send, ask, branch, http, set, answer, handoff or end"
                        .into(),
            });
        }
    };
    let mut fields = value.clone();
    if let Value::Object(map) = &mut fields {
        map.remove("type");
    }
    Ok(match kind {
        "send" => Node::Send(read(&fields, &at)?),
        "ask" => Node::Ask(read(&fields, &at)?),
        "branch" => Node::Branch(read(&fields, &at)?),
        "http" => Node::Http(read(&fields, &at)?),
        "set" => Node::Set(read(&fields, &at)?),
        "answer" => Node::Answer(read(&fields, &at)?),
        "handoff" => Node::Handoff(read(&fields, &at)?),
        "end" => Node::End(read(&fields, &at)?),
        other => {
            return Err(FlowError {
                pointer: pointer(&["nodes", name, "type"]),
                message: format!(
                    "unknown node type `{other}`; expected send, ask, branch, http, set, answer, handoff or end"
                ),
            });
        }
    })
}

/// The document's shape, read part by part so that every node's first mistake is
/// reported, not just the first of the document.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Shape {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    entry: super::Entry,
    start: String,
    nodes: std::collections::BTreeMap<String, Value>,
}

pub(super) fn parse(document: &Value) -> Result<FlowDefinition, FlowErrors> {
    let shape: Shape = read(document, &[]).map_err(|e| FlowErrors(vec![e]))?;
    let mut errors = Vec::new();
    let mut nodes = std::collections::BTreeMap::new();
    for (name, value) in &shape.nodes {
        match read_node(name, value) {
            Ok(node) => {
                nodes.insert(name.clone(), node);
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(FlowErrors(errors));
    }
    let flow = FlowDefinition {
        description: shape.description,
        entry: shape.entry,
        start: shape.start,
        nodes,
    };
    check(&flow, &mut errors);
    if errors.is_empty() {
        Ok(flow)
    } else {
        Err(FlowErrors(errors))
    }
}

fn check(flow: &FlowDefinition, errors: &mut Vec<FlowError>) {
    let mut error = |segments: &[&str], message: String| {
        errors.push(FlowError {
            pointer: pointer(segments),
            message,
        });
    };
    if flow.nodes.is_empty() {
        error(&["nodes"], "a flow needs at least one node".into());
    }
    if flow.nodes.len() > MAX_NODES {
        error(
            &["nodes"],
            format!(
                "a flow has at most {MAX_NODES} nodes, not {}",
                flow.nodes.len()
            ),
        );
    }
    if !flow.nodes.contains_key(&flow.start) {
        error(&["start"], format!("no node is named `{}`", flow.start));
    }
    for (i, keyword) in flow.entry.keywords.iter().enumerate() {
        if crate::keywords::normalize(keyword).is_empty() {
            error(
                &["entry", "keywords", &i.to_string()],
                "a keyword needs a letter or a digit".into(),
            );
        }
    }
    for (name, node) in &flow.nodes {
        let at = |field: &str| -> Vec<String> {
            let mut v = vec!["nodes".to_owned(), name.clone()];
            v.extend(
                field
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
            v
        };
        let mut error_at = |field: &str, message: String| {
            let segments = at(field);
            let refs: Vec<&str> = segments.iter().map(String::as_str).collect();
            error(&refs, message);
        };
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            error_at(
                "",
                format!("a node name is 1 to {MAX_NAME_CHARS} characters"),
            );
        }
        for (field, target) in node.targets() {
            if !flow.nodes.contains_key(target) {
                error_at(&field, format!("no node is named `{target}`"));
            }
        }
        if let Some(say) = node.say() {
            check_say(say, node, &mut error_at);
        }
        match node {
            Node::Ask(ask) => {
                let attempts = ask.attempts();
                if !(1..=MAX_ATTEMPTS).contains(&attempts) {
                    error_at("attempts", format!("must be from 1 to {MAX_ATTEMPTS}"));
                }
                for (field, value) in [("attribute", &ask.attribute), ("var", &ask.var)] {
                    if let Some(v) = value {
                        check_identifier(v, field, &mut error_at);
                    }
                }
                let v = &ask.validate;
                match v.kind {
                    AnswerKind::Choice if v.choices.is_empty() => error_at(
                        "validate/choices",
                        "a choice needs at least one choice".into(),
                    ),
                    AnswerKind::Choice
                        if v.choices
                            .iter()
                            .any(|c| crate::keywords::normalize(c).is_empty()) =>
                    {
                        error_at(
                            "validate/choices",
                            "every choice needs a letter or a digit".into(),
                        )
                    }
                    AnswerKind::Choice => {}
                    _ if !v.choices.is_empty() => error_at(
                        "validate/choices",
                        "only a `choice` check takes `choices`".into(),
                    ),
                    _ => {}
                }
                let asks_a_form = ask
                    .content
                    .as_ref()
                    .is_some_and(|c| matches!(c.body, crate::content::Body::Form(_)));
                if v.kind == AnswerKind::Form && !asks_a_form {
                    error_at(
                        "validate",
                        "a `form` check needs `content` with a `form` to fill in".into(),
                    );
                }
                if v.pattern.is_some() && v.kind != AnswerKind::Text {
                    error_at(
                        "validate/pattern",
                        "only a `text` check takes `pattern`".into(),
                    );
                }
                if let Err(e) = v.compiled_pattern() {
                    error_at("validate/pattern", e.to_string());
                }
                if (v.min.is_some() || v.max.is_some()) && v.kind != AnswerKind::Number {
                    error_at(
                        "validate",
                        "only a `number` check takes `min` and `max`".into(),
                    );
                }
                if let (Some(min), Some(max)) = (v.min, v.max)
                    && min > max
                {
                    error_at("validate/min", format!("{min} is above max {max}"));
                }
                if let Some(text) = &ask.retry_text {
                    check_template(text, "retry_text", &mut error_at);
                }
                if ask.link.is_some()
                    && (ask.attribute.is_none()
                        || !matches!(v.kind, AnswerKind::Email | AnswerKind::Phone))
                {
                    error_at(
                        "link",
                        "only an `email` or `phone` answer kept in an `attribute` links the contact"
                            .into(),
                    );
                }
            }
            Node::Branch(branch) => {
                if branch.cases.len() > MAX_CASES {
                    error_at("cases", format!("a branch has at most {MAX_CASES} cases"));
                }
                for (i, case) in branch.cases.iter().enumerate() {
                    check_condition(&case.when, &format!("cases/{i}/when"), &mut error_at);
                }
            }
            Node::Http(http) => {
                if !matches!(http.method(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
                    error_at(
                        "method",
                        format!("`{}` is not GET, POST, PUT, PATCH or DELETE", http.method()),
                    );
                }
                let timeout = http.timeout_ms();
                if !(1..=MAX_HTTP_TIMEOUT_MS).contains(&timeout) {
                    error_at(
                        "timeout_ms",
                        format!("must be from 1 to {MAX_HTTP_TIMEOUT_MS} milliseconds"),
                    );
                }
                if has_template_syntax(&http.url) {
                    check_template(&http.url, "url", &mut error_at);
                } else {
                    match check_url(&http.url) {
                        Ok(()) => {}
                        Err(message) => error_at("url", message),
                    }
                }
                for (header, value) in &http.headers {
                    check_template(value, &format!("headers/{header}"), &mut error_at);
                }
                if let Some(body) = &http.body {
                    check_json_templates(body, "body", &mut error_at);
                }
                if let Some(var) = &http.save_as {
                    check_identifier(var, "save_as", &mut error_at);
                }
            }
            Node::Set(set) => {
                match (&set.attribute, &set.var) {
                    (None, None) | (Some(_), Some(_)) => error_at(
                        "",
                        "a set node takes exactly one of `attribute` and `var`".into(),
                    ),
                    (Some(name), None) => check_identifier(name, "attribute", &mut error_at),
                    (None, Some(name)) => check_identifier(name, "var", &mut error_at),
                }
                check_json_templates(&set.value, "value", &mut error_at);
            }
            Node::Send(_) | Node::Answer(_) | Node::Handoff(_) | Node::End(_) => {}
        }
    }
}

/// A URL an `http` node may call: absolute, `http` or `https`. Where it may point (no
/// private addresses unless the server allows them) is checked when it is called.
fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("`{url}` is not an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("`{url}` has no host"));
    }
    Ok(())
}

fn check_say(say: Say<'_>, node: &Node, error_at: &mut impl FnMut(&str, String)) {
    let speaks_required = matches!(node, Node::Send(_) | Node::Ask(_));
    if say.text.is_some() && say.content.is_some() {
        error_at("content", "give `text` or `content`, not both".into());
        return;
    }
    if say.is_empty() {
        if speaks_required {
            error_at(
                "",
                format!("a {} node needs `text` or `content`", node.kind()),
            );
        }
        if !say.quick_replies.is_empty() {
            error_at(
                "quick_replies",
                "quick replies need a `text` or `content`".into(),
            );
        }
        return;
    }
    let field = if say.text.is_some() {
        "text"
    } else {
        "content"
    };
    if let Some(content) = say.to_content(&[]) {
        if let Err(e) = content.validate() {
            error_at(field, e.to_string());
        } else if let Err(e) = ContentTemplate::compile(&content) {
            error_at(field, e.to_string());
        }
    }
}

fn check_template(text: &str, field: &str, error_at: &mut impl FnMut(&str, String)) {
    if has_template_syntax(text)
        && let Err(e) = Template::compile(text)
    {
        error_at(field, e.to_string());
    }
}

fn check_json_templates(value: &Value, field: &str, error_at: &mut impl FnMut(&str, String)) {
    match value {
        Value::String(s) => check_template(s, field, error_at),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_json_templates(item, &format!("{field}/{i}"), error_at);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                check_json_templates(item, &format!("{field}/{k}"), error_at);
            }
        }
        _ => {}
    }
}

fn check_identifier(name: &str, field: &str, error_at: &mut impl FnMut(&str, String)) {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name.chars().all(|c| c.is_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !ok {
        error_at(
            field,
            format!(
                "`{name}` is not a name: 1 to {MAX_NAME_CHARS} letters, digits or `_`, not starting with a digit"
            ),
        );
    }
}

fn check_condition(when: &Condition, field: &str, error_at: &mut impl FnMut(&str, String)) {
    let compares = when.equals.is_some() || when.one_of.is_some() || when.exists.is_some();
    let subject = when.attribute.is_some() || when.var.is_some();
    let tests = when.intent.is_some()
        || when.sentiment.is_some()
        || when.urgent.is_some()
        || when.keyword.is_some()
        || when.answer.is_some()
        || when.payload.is_some()
        || subject;
    if !tests {
        error_at(field, "a condition needs at least one test".into());
    }
    if when.attribute.is_some() && when.var.is_some() {
        error_at(field, "compare `attribute` or `var`, not both".into());
    }
    if compares && !subject {
        error_at(
            field,
            "`equals`, `in` and `exists` compare an `attribute` or a `var`".into(),
        );
    }
    if subject && !compares {
        error_at(
            field,
            "say how to compare: `equals`, `in` or `exists`".into(),
        );
    }
    if let Some(labels) = &when.sentiment {
        for label in labels.as_slice() {
            if !matches!(label.as_str(), "negative" | "neutral" | "positive") {
                error_at(
                    &format!("{field}/sentiment"),
                    format!("`{label}` is not negative, neutral or positive"),
                );
            }
        }
    }
}
