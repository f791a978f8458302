//! Personalisation: `Bonjour {{ first_name }}` filled from the contact's attributes and the
//! request's `variables`, with minijinja.
//!
//! Templates come from API callers and run on the shared server, so every render is
//! bounded in work, memory and output, per message and per request:
//! - before compiling, the source's size, the length of each tag and the nesting of blocks
//!   are bounded, and only `if`/`for` blocks, `{{ … }}`, a fixed list of filters and tests,
//!   and operators that cannot repeat text are allowed ([`policy`]);
//! - `~`, `+`, comparisons and subscripts are rewritten to go through filters of ours, and
//!   every filter that builds a text, or scans one or a list, checks and charges it to the
//!   render ([`env`]);
//! - a render has an allowance of minijinja fuel (instructions), output bytes and built
//!   bytes: a message's ([`RenderLimits::MESSAGE`]), or less when the request's
//!   [`RenderBudget`] is nearly spent ([`render`]);
//! - an undefined variable is an error that names it (`undefined variable `first_name` at
//!   line 1`), never an empty gap in a message sent to a million people.
//!
//! Compile once, render many times: [`Template`] and [`ContentTemplate`] hold the parsed
//! form and are cheap to share between sends of a campaign.

mod budget;
mod env;
mod policy;
mod render;
#[cfg(test)]
mod tests;

pub use budget::{RenderBudget, RenderLimits, Resource};

use crate::content::{Content, ContentError, has_template_syntax};
use minijinja::{Environment, ErrorKind};
use render::Failure;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt;

/// Instructions one message may execute, all its fields together: a greeting takes a
/// dozen, a loop over a hundred order lines about 1,500. The slowest instructions left
/// (a comparison in a loop, with the two filters that measure its operands) take about
/// 120 ns: 6 ms a message.
pub const MESSAGE_FUEL: u64 = 50_000;
/// The longest template source. WhatsApp's 4,096 characters take at most 16 KiB in UTF-8;
/// twice that leaves room for the template syntax, and keeps line numbers within the
/// 16-bit counters of minijinja's lexer.
pub const MAX_SOURCE_BYTES: usize = 32 * 1024;
/// Personalised text of one message, its fields together. No channel takes more than
/// 10,000 characters in one message (web chat, `sim`); 64 KiB leaves room for e-mail.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;
/// One value built by a template (`a ~ b`, `items | join(", ")`): no longer than the
/// message it could be printed into.
pub const MAX_VALUE_BYTES: usize = MAX_OUTPUT_BYTES;
/// The variables one template reads (the contact's attributes and the request's
/// `variables`): the bytes of their texts and keys, and 16 bytes for every value (number,
/// text, list, map), since converting a value for minijinja (~90 ns) costs far more than
/// copying a byte.
pub const MAX_CONTEXT_BYTES: usize = 64 * 1024;
/// Bytes of values one message's renders may build, the copy of the variables included:
/// four times the output, for a text that is upper-cased, truncated and then printed.
pub const MAX_WORK_BYTES: usize = 4 * MAX_OUTPUT_BYTES;
/// Tokens in one `{{ … }}` or `{% … %}` tag. minijinja recurses once per operator when it
/// parses, compiles and drops an expression; a chain of 10,000 `~` overflowed a 2 MiB
/// thread stack and aborted the process. A condition over 20 alternatives takes ~80.
pub const MAX_TAG_TOKENS: usize = 128;
/// Blocks open at once, each `elif` counting as one more (minijinja nests it in the
/// previous branch, and recursed ~1 KiB of stack per level: 2,000 `elif` aborted).
pub const MAX_NESTING: usize = 64;

const TEMPLATE_NAME: &str = "message";

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

/// Why one template could not be compiled or rendered.
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
    #[error(
        "the tag at {line} has more than {max} parts; split it or pass computed values in `variables`"
    )]
    ExpressionTooLong { line: Line, max: usize },
    #[error("the template nests more than {max} blocks (each `elif` counts) at {line}")]
    NestedTooDeep { line: Line, max: usize },
    #[error("the variables the template reads take more than {max} bytes")]
    ContextTooLarge { max: usize },
    #[error(
        "the template does too much work (fuel exhausted after {max} instructions) and was stopped at {line}; loop over fewer items"
    )]
    TooExpensive { line: Line, max: u64 },
    #[error("the personalised message is longer than {max} bytes")]
    OutputTooLong { max: usize },
    #[error("the template builds a value longer than {max} bytes at {line}")]
    ValueTooLong { line: Line, max: usize },
    #[error(
        "the template builds more than {max} bytes of values along the way (stopped at {line})"
    )]
    BuildsTooMuch { line: Line, max: usize },
    #[error("template error at {line}: {message}")]
    Render { line: Line, message: String },
}

impl TemplateError {
    /// The error for running out of a message's `resource`.
    fn exhausted(resource: Resource, line: Line) -> TemplateError {
        let limits = RenderLimits::MESSAGE;
        match resource {
            Resource::Fuel => TemplateError::TooExpensive {
                line,
                max: limits.fuel,
            },
            Resource::Output => TemplateError::OutputTooLong {
                max: limits.output_bytes,
            },
            Resource::Work => TemplateError::BuildsTooMuch {
                line,
                max: limits.work_bytes,
            },
        }
    }
}

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Template {
    env: Environment<'static>,
    source: String,
    /// What minijinja compiled: `source` with `~` and `+` rewritten (see [`policy`]).
    compiled: String,
    /// Variables the template reads from its context, in order of first appearance, with
    /// nested paths (`order.total`) as written.
    variables: Vec<String>,
    /// The top-level names among `variables`: all a render copies from the context.
    roots: Vec<String>,
}

impl Template {
    pub fn compile(source: &str) -> Result<Template, TemplateError> {
        let compiled = policy::check_and_rewrite(source)?;
        let mut env = env::environment();
        // minijinja stops when its fuel reaches zero, so a render may use all but one.
        env.set_fuel(Some(MESSAGE_FUEL + 1));
        env.add_template_owned(TEMPLATE_NAME, compiled.clone())
            .map_err(|err| policy::syntax_error(&err))?;
        let variables = {
            let template = env
                .get_template(TEMPLATE_NAME)
                .map_err(|err| policy::syntax_error(&err))?;
            let mut names: Vec<String> = template.undeclared_variables(true).into_iter().collect();
            names.sort_by_key(|name| (first_position(source, name), name.clone()));
            names
        };
        let mut roots: Vec<String> = Vec::new();
        for name in &variables {
            let root = name.split('.').next().unwrap_or(name);
            if !roots.iter().any(|known| known == root) {
                roots.push(root.to_owned());
            }
        }
        Ok(Template {
            env,
            source: source.to_owned(),
            compiled,
            variables,
            roots,
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

    /// Renders with `context` (a JSON object; see [`template_context`]) within one
    /// message's limits.
    pub fn render(&self, context: &Value) -> Result<String, TemplateError> {
        let run = render::run(
            &self.env,
            TEMPLATE_NAME,
            &self.roots,
            context,
            RenderLimits::MESSAGE,
        );
        run.result.map_err(|failure| self.word(failure, context))
    }

    /// A failure in the user's words.
    fn word(&self, failure: Failure, context: &Value) -> TemplateError {
        match failure {
            Failure::Template(err) => err,
            Failure::Exhausted { resource, line } => TemplateError::exhausted(resource, line),
            Failure::Jinja(err) => self.render_error(&err, context),
        }
    }

    fn render_error(&self, err: &minijinja::Error, context: &Value) -> TemplateError {
        let line = Line(err.line());
        match err.kind() {
            ErrorKind::UndefinedError => {
                let failing = err
                    .range()
                    .and_then(|range| self.compiled.get(range))
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
    /// The request's [`RenderBudget`] ran out: its messages together did too much, though
    /// this one alone might not have.
    #[error(
        "the templates of this request together use more than {limit} {resource}; send fewer messages per request or simpler templates"
    )]
    BudgetExhausted { resource: Resource, limit: u64 },
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

    /// The content for one recipient, within one message's limits, validated again (a
    /// personalised link must still be a link; a personalised text must not be empty).
    pub fn render(&self, context: &Value) -> Result<Content, ContentTemplateError> {
        self.render_within(context, &mut RenderBudget::new(RenderLimits::MESSAGE))
    }

    /// Like [`render`](Self::render), also spending from `budget`, which the caller shares
    /// between all the messages of a request. What the renders spent is charged even when
    /// they fail.
    pub fn render_within(
        &self,
        context: &Value,
        budget: &mut RenderBudget,
    ) -> Result<Content, ContentTemplateError> {
        let mut message_left = RenderLimits::MESSAGE;
        let mut rendered = self.content.clone();
        let mut templates = self.fields.iter();
        rendered.try_for_each_text_mut(|field, text| {
            let Some(Some(template)) = templates.next() else {
                return Ok(());
            };
            let allowance = message_left.min(budget.left());
            // Whose limit a shortage is: the request's when it left less than the message.
            let message_before = message_left;
            let request_bound =
                move |resource| allowance.get(resource) < message_before.get(resource);
            let run = render::run(
                &template.env,
                TEMPLATE_NAME,
                &template.roots,
                context,
                allowance,
            );
            budget.charge(run.spent);
            message_left = message_left.saturating_sub(run.spent);
            match run.result {
                Ok(output) => {
                    *text = output;
                    Ok(())
                }
                Err(Failure::Exhausted { resource, .. }) if request_bound(resource) => {
                    Err(ContentTemplateError::BudgetExhausted {
                        resource,
                        limit: budget.limits().get(resource),
                    })
                }
                Err(failure) => Err(ContentTemplateError::Field {
                    field: field.to_owned(),
                    source: template.word(failure, context),
                }),
            }
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
