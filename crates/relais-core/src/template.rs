//! Personalisation: `Bonjour {{ first_name }}` filled from the contact's attributes and the
//! request's `variables`, with minijinja.
//!
//! Templates come from API callers and run on the shared server, so they are fenced in:
//! - a fuel limit stops a template that loops too long (minijinja counts instructions);
//! - an environment with no `range()`, no `set`, `macro`, `include` or `import`, and only
//!   filters whose output is no larger than their input, plus a ban on `*` (which would
//!   repeat a string a hundred million times) keep memory bounded;
//! - the output and the source have a maximum size;
//! - an undefined variable is an error that names it (`undefined variable `first_name` at
//!   line 1`), never an empty gap in a message sent to a million people.
//!
//! Compile once, render many times: [`Template`] and [`ContentTemplate`] hold the parsed
//! form and are cheap to share between sends of a campaign.

use crate::content::{Content, ContentError, has_template_syntax};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt;
use std::io;

/// Instructions one render may execute: a greeting takes a few dozen; a loop over a
/// hundred order lines a few thousand.
pub const FUEL: u64 = 50_000;
pub const MAX_SOURCE_BYTES: usize = 50_000;
pub const MAX_OUTPUT_BYTES: usize = 100_000;
const RECURSION_LIMIT: usize = 32;
const TEMPLATE_NAME: &str = "message";

/// Statement tags a message template may use.
const ALLOWED_TAGS: &[&str] = &[
    "if", "elif", "else", "endif", "for", "endfor", "raw", "endraw",
];

/// Where in a template something happened, when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line(pub Option<usize>);

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(line) => write!(f, "line {line}"),
            None => f.write_str("an unknown line"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template syntax error at {line}: {message}")]
    Syntax { line: Line, message: String },
    #[error("undefined variable `{name}` at {line}")]
    UndefinedVariable { name: String, line: Line },
    #[error("{what} is not available in message templates ({line}); {hint}")]
    NotAllowed {
        what: String,
        line: Line,
        hint: &'static str,
    },
    #[error("the template is {len} bytes long, at most {max}")]
    SourceTooLong { len: usize, max: usize },
    #[error("the template does too much work and was stopped at {line}; loop over fewer items")]
    TooExpensive { line: Line },
    #[error("the personalised text is longer than {max} bytes")]
    OutputTooLong { max: usize },
    #[error("template error at {line}: {message}")]
    Render { line: Line, message: String },
}

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Template {
    env: Environment<'static>,
    source: String,
    /// Variables the template reads from its context, in order of first appearance, with
    /// nested paths (`order.total`) as written.
    variables: Vec<String>,
}

impl Template {
    pub fn compile(source: &str) -> Result<Template, TemplateError> {
        if source.len() > MAX_SOURCE_BYTES {
            return Err(TemplateError::SourceTooLong {
                len: source.len(),
                max: MAX_SOURCE_BYTES,
            });
        }
        check_policy(source)?;
        let mut env = restricted_environment();
        env.add_template_owned(TEMPLATE_NAME, source.to_owned())
            .map_err(|err| syntax_error(&err))?;
        let variables = {
            let template = env
                .get_template(TEMPLATE_NAME)
                .map_err(|err| syntax_error(&err))?;
            let mut names: Vec<String> = template.undeclared_variables(true).into_iter().collect();
            names.sort_by_key(|name| (first_position(source, name), name.clone()));
            names
        };
        Ok(Template {
            env,
            source: source.to_owned(),
            variables,
        })
    }

    /// The variables the template reads, in order of first appearance (`order.total` for a
    /// nested read), so a caller can check a contact list before sending.
    pub fn variables(&self) -> &[String] {
        &self.variables
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders with `context` (a JSON object; see [`template_context`]).
    pub fn render(&self, context: &Value) -> Result<String, TemplateError> {
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|err| syntax_error(&err))?;
        let mut out = CappedWriter {
            buffer: Vec::new(),
            overflowed: false,
        };
        match template.render_captured_to(context, &mut out) {
            Ok(_) => String::from_utf8(out.buffer).map_err(|_| TemplateError::Render {
                line: Line(None),
                message: "the output is not valid UTF-8".into(),
            }),
            Err(_) if out.overflowed => Err(TemplateError::OutputTooLong {
                max: MAX_OUTPUT_BYTES,
            }),
            Err(err) => Err(self.render_error(&err, context)),
        }
    }

    fn render_error(&self, err: &minijinja::Error, context: &Value) -> TemplateError {
        let line = Line(err.line());
        match err.kind() {
            ErrorKind::OutOfFuel => TemplateError::TooExpensive { line },
            ErrorKind::UndefinedError => {
                let failing = err
                    .range()
                    .and_then(|range| self.source.get(range))
                    .unwrap_or_default();
                let missing: Vec<&String> = self
                    .variables
                    .iter()
                    .filter(|name| !is_defined(context, name))
                    .collect();
                let name = missing
                    .iter()
                    .find(|name| mentions(failing, name))
                    .or_else(|| missing.first())
                    .map(|name| name.to_string());
                match name {
                    Some(name) => TemplateError::UndefinedVariable { name, line },
                    None => TemplateError::Render {
                        line,
                        message: describe(err),
                    },
                }
            }
            _ => TemplateError::Render {
                line,
                message: describe(err),
            },
        }
    }
}

fn restricted_environment() -> Environment<'static> {
    let mut env = Environment::empty();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION_LIMIT);
    // Messages are plain text; HTML escaping belongs to the email adapter.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_keep_trailing_newline(true);
    // Filters whose output is bounded by their input.
    env.add_filter("lower", minijinja::filters::lower);
    env.add_filter("upper", minijinja::filters::upper);
    env.add_filter("title", minijinja::filters::title);
    env.add_filter("capitalize", minijinja::filters::capitalize);
    env.add_filter("trim", minijinja::filters::trim);
    env.add_filter("default", minijinja::filters::default);
    env.add_filter("length", minijinja::filters::length);
    env.add_filter("first", minijinja::filters::first);
    env.add_filter("last", minijinja::filters::last);
    env.add_filter("join", minijinja::filters::join);
    env.add_filter("round", minijinja::filters::round);
    env.add_filter("abs", minijinja::filters::abs);
    env.add_filter("int", minijinja::filters::int);
    env.add_filter("float", minijinja::filters::float);
    env.add_filter("string", minijinja::filters::string);
    env.add_filter("urlencode", urlencode);
    env.add_test("defined", minijinja::tests::is_defined);
    env.add_test("undefined", minijinja::tests::is_undefined);
    env.add_test("none", minijinja::tests::is_none);
    env
}

/// Percent-encodes a value for a query string or a path segment of a personalised link.
fn urlencode(value: &minijinja::Value) -> String {
    let text = value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned);
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Refuses what the fuel limit cannot stop: statements that build values (`set`, macros,
/// includes) and `*`, which repeats strings. Scans the tags outside string literals.
fn check_policy(source: &str) -> Result<(), TemplateError> {
    let mut rest = source;
    let mut line = 1;
    while let Some(open) = rest.find(['{']) {
        line += rest[..open].matches('\n').count();
        let after = &rest[open..];
        let (close, is_statement) = if after.starts_with("{#") {
            ("#}", None)
        } else if after.starts_with("{{") {
            ("}}", Some(false))
        } else if after.starts_with("{%") {
            ("%}", Some(true))
        } else {
            rest = &after[1..];
            continue;
        };
        // An unclosed tag is a syntax error minijinja reports with its own words.
        let Some(end) = find_tag_end(&after[2..], close) else {
            return Ok(());
        };
        let inner = &after[2..2 + end];
        let next = &after[2 + end + close.len()..];
        match is_statement {
            None => {}
            Some(is_statement) => {
                if let Some(offset) = star_outside_strings(inner) {
                    let at = Line(Some(line + inner[..offset].matches('\n').count()));
                    return Err(TemplateError::NotAllowed {
                        what: "`*`".into(),
                        line: at,
                        hint: "pass computed values in `variables` instead",
                    });
                }
                if is_statement {
                    let word = inner
                        .trim_start_matches(['-', '+', '~'])
                        .split_whitespace()
                        .next()
                        .unwrap_or_default();
                    let word = word.trim_end_matches(['-', '+', '~']);
                    if !ALLOWED_TAGS.contains(&word) {
                        return Err(TemplateError::NotAllowed {
                            what: format!("`{{% {word} %}}`"),
                            line: Line(Some(line)),
                            hint: "message templates may use `if` and `for` blocks and `{{ … }}` expressions",
                        });
                    }
                    if word == "raw" {
                        // Everything up to `endraw` is literal text.
                        line += after[..2 + end + close.len()].matches('\n').count();
                        let Some(raw_end) = next.find("endraw") else {
                            return Ok(());
                        };
                        line += next[..raw_end].matches('\n').count();
                        rest = &next[raw_end..];
                        continue;
                    }
                }
            }
        }
        line += after[..2 + end + close.len()].matches('\n').count();
        rest = next;
    }
    Ok(())
}

/// The offset of the tag's closing delimiter, skipping string literals.
fn find_tag_end(inner: &str, close: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (offset, c) in inner.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '"' || c == '\'' => quote = Some(c),
            None if inner[offset..].starts_with(close) => return Some(offset),
            None => {}
        }
    }
    None
}

fn star_outside_strings(inner: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (offset, c) in inner.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '*' => return Some(offset),
            None => {}
        }
    }
    None
}

fn syntax_error(err: &minijinja::Error) -> TemplateError {
    TemplateError::Syntax {
        line: Line(err.line()),
        message: describe(err),
    }
}

/// minijinja's own words, without the template name it adds.
fn describe(err: &minijinja::Error) -> String {
    err.detail()
        .map_or_else(|| err.kind().to_string(), str::to_owned)
}

fn first_position(source: &str, name: &str) -> usize {
    let head = name.split('.').next().unwrap_or(name);
    source
        .match_indices(head)
        .find(|(offset, _)| is_word_at(source, *offset, head))
        .map_or(usize::MAX, |(offset, _)| offset)
}

fn mentions(text: &str, name: &str) -> bool {
    let head = name.split('.').next().unwrap_or(name);
    text.match_indices(head)
        .any(|(offset, _)| is_word_at(text, offset, head))
}

fn is_word_at(text: &str, offset: usize, word: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let before = text[..offset].chars().next_back();
    let after = text[offset + word.len()..].chars().next();
    !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
}

/// Whether the dotted path `name` leads to a value in `context`.
fn is_defined(context: &Value, name: &str) -> bool {
    name.split('.')
        .try_fold(context, |value, key| value.get(key))
        .is_some()
}

/// Collects output up to [`MAX_OUTPUT_BYTES`], then refuses more, which stops the render.
struct CappedWriter {
    buffer: Vec<u8>,
    overflowed: bool,
}

impl io::Write for CappedWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.buffer.len() + bytes.len() > MAX_OUTPUT_BYTES {
            self.overflowed = true;
            return Err(io::Error::other("message template output limit reached"));
        }
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The values a template sees: the contact's attributes, overridden by the request's
/// `variables` (the request is more specific than the stored profile).
pub fn template_context(
    attributes: &serde_json::Map<String, Value>,
    variables: &serde_json::Map<String, Value>,
) -> Value {
    let mut merged = attributes.clone();
    merged.extend(
        variables
            .iter()
            .map(|(key, value)| (key.clone(), value.clone())),
    );
    Value::Object(merged)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentTemplateError {
    #[error("`{field}`: {source}")]
    Field {
        field: String,
        #[source]
        source: TemplateError,
    },
    #[error("the personalised content is not valid: {0}")]
    Invalid(#[from] ContentError),
}

/// Every text field of a [`Content`] compiled once; fields without template syntax are
/// kept as they are.
#[derive(Debug, Clone)]
pub struct ContentTemplate {
    content: Content,
    /// One entry per text field, in [`Content::try_for_each_text_mut`] order.
    fields: Vec<Option<Template>>,
}

impl ContentTemplate {
    pub fn compile(content: &Content) -> Result<ContentTemplate, ContentTemplateError> {
        let mut fields = Vec::new();
        let mut copy = content.clone();
        copy.try_for_each_text_mut(|field, text| {
            let compiled = if has_template_syntax(text) {
                Some(
                    Template::compile(text).map_err(|source| ContentTemplateError::Field {
                        field: field.to_owned(),
                        source,
                    })?,
                )
            } else {
                None
            };
            fields.push(compiled);
            Ok::<(), ContentTemplateError>(())
        })?;
        Ok(ContentTemplate {
            content: content.clone(),
            fields,
        })
    }

    /// Every variable any field reads.
    pub fn variables(&self) -> BTreeSet<String> {
        self.fields
            .iter()
            .flatten()
            .flat_map(|template| template.variables().iter().cloned())
            .collect()
    }

    /// The content for one recipient, validated again (a personalised link must still be
    /// a link; a personalised text must not be empty).
    pub fn render(&self, context: &Value) -> Result<Content, ContentTemplateError> {
        let mut rendered = self.content.clone();
        let mut templates = self.fields.iter();
        rendered.try_for_each_text_mut(|field, text| {
            if let Some(Some(template)) = templates.next() {
                *text = template
                    .render(context)
                    .map_err(|source| ContentTemplateError::Field {
                        field: field.to_owned(),
                        source,
                    })?;
            }
            Ok::<(), ContentTemplateError>(())
        })?;
        rendered.validate()?;
        Ok(rendered)
    }
}

/// Personalises every text field of `content` (a one-off; campaigns should compile a
/// [`ContentTemplate`] once).
pub fn render_content(content: &Content, context: &Value) -> Result<Content, ContentTemplateError> {
    ContentTemplate::compile(content)?.render(context)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn render(source: &str, context: Value) -> Result<String, TemplateError> {
        Template::compile(source)?.render(&context)
    }

    #[test]
    fn compiled_templates_can_be_shared_between_tasks() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<Template>();
        shareable::<ContentTemplate>();
    }

    #[test]
    fn greets_by_first_name() {
        assert_eq!(
            render(
                "Bonjour {{ first_name }} !",
                json!({"first_name": "Amélie"})
            )
            .unwrap(),
            "Bonjour Amélie !"
        );
    }

    #[test]
    fn nested_values_loops_and_conditions() {
        let source = "{% if vip %}Cher client VIP, {% endif %}commande {{ order.id }} :\n{% for line in order.lines %}- {{ line.name }}\n{% endfor %}";
        let context = json!({"vip": true, "order": {"id": "A-12", "lines": [{"name": "Pain"}, {"name": "Lait"}]}});
        assert_eq!(
            render(source, context).unwrap(),
            "Cher client VIP, commande A-12 :\n- Pain\n- Lait\n"
        );
    }

    #[test]
    fn an_undefined_variable_is_named_with_its_line() {
        let err = render("Bonjour {{ first_name }}", json!({})).unwrap_err();
        assert_eq!(err.to_string(), "undefined variable `first_name` at line 1");
        let err = render(
            "Bonjour {{ name }},\nvotre code : {{ code }}",
            json!({"name": "Léa"}),
        )
        .unwrap_err();
        assert_eq!(
            err,
            TemplateError::UndefinedVariable {
                name: "code".into(),
                line: Line(Some(2))
            }
        );
        let err = render("{{ order.total }}", json!({"order": {}})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "undefined variable `order.total` at line 1"
        );
    }

    #[test]
    fn a_condition_on_a_missing_variable_is_an_error_too() {
        let err = render("{% if vip %}VIP{% endif %}", json!({})).unwrap_err();
        assert_eq!(err.to_string(), "undefined variable `vip` at line 1");
    }

    #[test]
    fn optional_values_use_default_or_is_defined() {
        assert_eq!(
            render("Hi {{ nickname | default('there') }}", json!({})).unwrap(),
            "Hi there"
        );
        assert_eq!(
            render(
                "{% if coupon is defined %}{{ coupon }}{% else %}-{% endif %}",
                json!({})
            )
            .unwrap(),
            "-"
        );
    }

    #[test]
    fn syntax_errors_carry_their_line() {
        let err = Template::compile("Hello\n{{ name ").unwrap_err();
        assert!(
            matches!(
                err,
                TemplateError::Syntax {
                    line: Line(Some(2)),
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("template syntax error at line 2"),
            "{err}"
        );
    }

    #[test]
    fn a_hostile_loop_runs_out_of_fuel() {
        let context = json!({"items": (0..1000).collect::<Vec<_>>()});
        let source = "{% for a in items %}{% for b in items %}{{ a }}{% endfor %}{% endfor %}";
        let err = render(source, context).unwrap_err();
        assert!(matches!(err, TemplateError::TooExpensive { .. }), "{err:?}");
    }

    #[test]
    fn huge_ranges_and_repetition_are_refused() {
        let err = Template::compile("{% for i in range(10**9) %}x{% endfor %}").unwrap_err();
        assert!(matches!(err, TemplateError::NotAllowed { .. }), "{err:?}");
        assert!(Template::compile("{{ 'x' * 100000000 }}").is_err());
        let err = render("{% for i in range(100) %}x{% endfor %}", json!({})).unwrap_err();
        assert!(err.to_string().contains("range"), "{err}");
        // A `*` inside a string is just a character.
        assert_eq!(
            render("{{ '*' }} 5* rating", json!({})).unwrap(),
            "* 5* rating"
        );
    }

    #[test]
    fn value_building_statements_are_refused() {
        for source in [
            "{% set a = 1 %}",
            "{% macro m() %}{% endmacro %}",
            "{% include 'x' %}",
            "{%- set a = 1 -%}",
        ] {
            let err = Template::compile(source).unwrap_err();
            assert!(
                err.to_string()
                    .contains("is not available in message templates"),
                "{source}: {err}"
            );
        }
        assert_eq!(
            render("{% raw %}{% set x %}{{ * }}{% endraw %}", json!({})).unwrap(),
            "{% set x %}{{ * }}"
        );
    }

    #[test]
    fn output_is_capped() {
        let big = "x".repeat(60_000);
        let err = render("{{ a }}{{ a }}", json!({"a": big})).unwrap_err();
        assert_eq!(
            err,
            TemplateError::OutputTooLong {
                max: MAX_OUTPUT_BYTES
            }
        );
    }

    #[test]
    fn no_html_escaping_in_messages() {
        assert_eq!(
            render("{{ name }}", json!({"name": "Tom & <Jerry>"})).unwrap(),
            "Tom & <Jerry>"
        );
    }

    #[test]
    fn urlencode_for_personalised_links() {
        assert_eq!(
            render(
                "https://x.example/?n={{ name | urlencode }}",
                json!({"name": "Zoé D"})
            )
            .unwrap(),
            "https://x.example/?n=Zo%C3%A9%20D"
        );
    }

    #[test]
    fn variables_are_listed_in_order() {
        let template =
            Template::compile("{{ b }} {{ a.x }} {% for i in items %}{{ i }}{% endfor %}").unwrap();
        assert_eq!(template.variables(), ["b", "a.x", "items"]);
    }

    #[test]
    fn request_variables_override_contact_attributes() {
        let attributes = json!({"first_name": "Jean", "city": "Lyon"});
        let variables = json!({"first_name": "Jeannot"});
        let context = template_context(
            attributes.as_object().unwrap(),
            variables.as_object().unwrap(),
        );
        assert_eq!(
            render("{{ first_name }} de {{ city }}", context).unwrap(),
            "Jeannot de Lyon"
        );
    }

    #[test]
    fn every_text_field_of_a_content_is_personalised() {
        let content: Content = serde_json::from_value(json!({
            "card": {"title": "{{ first_name }}, for you", "text": "{{ product }}",
                "buttons": [{"type": "url", "title": "See", "url": "https://shop.example/p/{{ sku | urlencode }}"}]},
            "quick_replies": ["Merci {{ first_name }}"]
        }))
        .unwrap();
        let rendered = render_content(
            &content,
            &json!({"first_name": "Ana", "product": "Boots", "sku": "B 1"}),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&rendered).unwrap(),
            json!({"card": {"title": "Ana, for you", "text": "Boots",
                "buttons": [{"type": "url", "title": "See", "url": "https://shop.example/p/B%201"}]},
                "quick_replies": ["Merci Ana"]})
        );
        let compiled = ContentTemplate::compile(&content).unwrap();
        assert_eq!(
            compiled.variables().into_iter().collect::<Vec<_>>(),
            ["first_name", "product", "sku"]
        );
    }

    #[test]
    fn content_errors_name_the_field() {
        let content: Content = serde_json::from_value(
            json!({"text": "Hi", "buttons": [{"type": "reply", "title": "{{ label }}"}]}),
        )
        .unwrap();
        let err = render_content(&content, &json!({})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`buttons[0].title`: undefined variable `label` at line 1"
        );
        let link: Content = serde_json::from_value(json!({"text": "Hi", "buttons": [{"type": "url", "title": "Go", "url": "https://x.example/{{ path }}"}]})).unwrap();
        assert!(render_content(&link, &json!({"path": "ok"})).is_ok());
        let err = render_content(&link, &json!({"path": "a b"})).unwrap_err();
        assert!(
            err.to_string()
                .contains("`buttons[0].url`: `https://x.example/a b` is not a usable link"),
            "{err}"
        );
        let text: Content = serde_json::from_value(json!({"text": "{{ blank }}"})).unwrap();
        let err = render_content(&text, &json!({"blank": "  "})).unwrap_err();
        assert!(matches!(err, ContentTemplateError::Invalid(_)), "{err:?}");
    }

    proptest! {
        #[test]
        fn text_without_template_syntax_is_unchanged(text in "[^{}]{1,200}") {
            prop_assert_eq!(render(&text, json!({})).unwrap(), text.clone());
        }

        #[test]
        fn substituted_values_appear_verbatim(value in "\\PC{0,100}") {
            prop_assert_eq!(render("<{{ v }}>", json!({"v": value.clone()})).unwrap(), format!("<{value}>"));
        }

        #[test]
        fn no_input_panics(source in "\\PC{0,80}") {
            if let Ok(template) = Template::compile(&source) {
                let _ = template.render(&json!({"a": 1, "b": "x", "items": [1, 2, 3]}));
            }
        }
    }
}
