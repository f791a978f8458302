//! A tenant's stored template (`/v1/templates`): a name and its language variants, each a
//! content whose texts may use `{{ variables }}`, and optionally the approved provider
//! template (WhatsApp's) it maps to.
//!
//! Invariants, checked once by [`StoredTemplate::parse`]:
//! - the name is 1 to 128 letters, digits, `_`, `-` or `.` (what a send's `template` takes);
//! - there is at least one variant and at most [`MAX_VARIANTS`], no two of the same
//!   language (compared without case, `-` and `_` alike);
//! - each variant's content is valid, is not itself a template, and its template syntax
//!   compiles within the render policy, so that a send fails only on its variables.

use crate::content::{Body, Content};
use crate::template::ContentTemplate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Language variants one template may have: every official language of the EU and a
/// few more.
pub const MAX_VARIANTS: usize = 50;
/// The longest template name.
pub const MAX_NAME_CHARS: usize = 128;
/// The longest language tag (BCP 47 allows 35).
pub const MAX_LANGUAGE_CHARS: usize = 35;
/// Meta caps a template's name at 512 characters.
pub const MAX_PROVIDER_NAME_CHARS: usize = 512;

/// A checked stored template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredTemplate {
    pub name: String,
    pub variants: Vec<TemplateVariant>,
}

/// One language of a stored template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateVariant {
    /// A language tag such as `fr` or `en-GB`.
    pub language: String,
    /// What is sent, personalised with the contact's attributes and the send's variables.
    pub content: Content,
    /// The approved provider template this variant stands for, sent instead of `content`
    /// on channels with provider templates.
    #[serde(default, rename = "whatsapp", skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderTemplateRef>,
}

/// An approved template of the provider, by name and language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderTemplateRef {
    pub name: String,
    pub language: String,
    /// The variables (the contact's attributes and the send's `variables`) that fill the
    /// provider template's numbered parameters `{{1}}`, `{{2}}`…, in order. Empty: the
    /// send's variables are passed as they are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<String>,
}

/// Parameters one provider template may take: far above what Meta allows in a body.
pub const MAX_PARAMETERS: usize = 100;

/// A mistake in a template, at its JSON pointer (relative to the template document).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pointer}: {detail}")]
pub struct TemplateMistake {
    pub pointer: String,
    pub detail: String,
}

fn mistake(pointer: impl Into<String>, detail: impl Into<String>) -> TemplateMistake {
    TemplateMistake {
        pointer: pointer.into(),
        detail: detail.into(),
    }
}

/// Checks a template name (`order_shipped`).
pub fn check_name(name: &str) -> Result<(), String> {
    let count = name.chars().count();
    if count == 0 || count > MAX_NAME_CHARS {
        return Err(format!(
            "a template name has 1 to {MAX_NAME_CHARS} characters"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(format!(
            "`{name}` is not a template name: use letters, digits, `_`, `-` and `.`"
        ));
    }
    Ok(())
}

fn check_language(language: &str) -> Result<(), String> {
    let count = language.chars().count();
    let ok = (2..=MAX_LANGUAGE_CHARS).contains(&count)
        && language.starts_with(|c: char| c.is_ascii_alphabetic())
        && language
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{language}` is not a language tag; use one such as fr, en or pt-BR"
        ))
    }
}

/// A language tag compared loosely: lower case, `_` as `-`.
fn folded(language: &str) -> String {
    language.trim().to_ascii_lowercase().replace('_', "-")
}

/// The primary language of a tag: `fr` of `fr-FR`.
fn primary(language: &str) -> String {
    folded(language)
        .split('-')
        .next()
        .unwrap_or_default()
        .to_owned()
}

impl StoredTemplate {
    /// Reads and checks a template document: `{"variants": [...]}`, with `name` too when
    /// `name` is `None` (a create), or optionally equal to it (a replace by name).
    /// Every mistake is reported, each at its pointer.
    pub fn parse(
        name: Option<&str>,
        document: &Value,
    ) -> Result<StoredTemplate, Vec<TemplateMistake>> {
        let mut mistakes = Vec::new();
        let Some(object) = document.as_object() else {
            return Err(vec![mistake("", "a template is a JSON object")]);
        };
        for key in object.keys() {
            if !matches!(key.as_str(), "name" | "variants") {
                mistakes.push(mistake(
                    format!("/{key}"),
                    format!("unknown field `{key}`; a template has `name` and `variants`"),
                ));
            }
        }
        let given = object.get("name");
        let name = match (name, given) {
            (Some(path), None) => path.to_owned(),
            (Some(path), Some(Value::String(body))) if body == path => path.to_owned(),
            (Some(path), Some(_)) => {
                mistakes.push(mistake(
                    "/name",
                    format!("the name in the body must be `{path}`, as in the path, or left out"),
                ));
                path.to_owned()
            }
            (None, Some(Value::String(body))) => body.clone(),
            (None, Some(_)) => {
                mistakes.push(mistake("/name", "`name` must be a string"));
                String::new()
            }
            (None, None) => {
                mistakes.push(mistake("/name", "`name` is required"));
                String::new()
            }
        };
        if !mistakes.iter().any(|m| m.pointer == "/name")
            && let Err(e) = check_name(&name)
        {
            mistakes.push(mistake("/name", e));
        }
        let mut variants = Vec::new();
        match object.get("variants") {
            None => mistakes.push(mistake(
                "/variants",
                "`variants` is required: at least one language",
            )),
            Some(Value::Array(items)) if items.is_empty() => mistakes.push(mistake(
                "/variants",
                "`variants` needs at least one language",
            )),
            Some(Value::Array(items)) if items.len() > MAX_VARIANTS => mistakes.push(mistake(
                "/variants",
                format!("{} variants, at most {MAX_VARIANTS}", items.len()),
            )),
            Some(Value::Array(items)) => {
                let mut languages: Vec<String> = Vec::new();
                for (index, item) in items.iter().enumerate() {
                    if let Some(language) = item.get("language").and_then(Value::as_str) {
                        if languages.contains(&folded(language)) {
                            mistakes.push(mistake(
                                format!("/variants/{index}/language"),
                                format!("language `{language}` has a variant already"),
                            ));
                        }
                        languages.push(folded(language));
                    }
                    match variant(index, item) {
                        Ok(v) => variants.push(v),
                        Err(mut found) => mistakes.append(&mut found),
                    }
                }
            }
            Some(_) => mistakes.push(mistake("/variants", "`variants` must be a list")),
        }
        if mistakes.is_empty() {
            Ok(StoredTemplate { name, variants })
        } else {
            Err(mistakes)
        }
    }

    /// The variant for the first of `wanted` languages that has one (the exact tag first,
    /// then the same primary language: `fr-CA` finds `fr`), else the first variant.
    pub fn variant(&self, wanted: &[&str]) -> Option<&TemplateVariant> {
        for language in wanted {
            let tag = folded(language);
            if tag.is_empty() {
                continue;
            }
            if let Some(exact) = self.variants.iter().find(|v| folded(&v.language) == tag) {
                return Some(exact);
            }
            let main = primary(language);
            if let Some(close) = self.variants.iter().find(|v| primary(&v.language) == main) {
                return Some(close);
            }
        }
        self.variants.first()
    }
}

fn variant(index: usize, item: &Value) -> Result<TemplateVariant, Vec<TemplateMistake>> {
    let at = |p: &str| format!("/variants/{index}{p}");
    let Some(object) = item.as_object() else {
        return Err(vec![mistake(
            at(""),
            "a variant is an object with `language` and `content`",
        )]);
    };
    let mut mistakes = Vec::new();
    for key in object.keys() {
        if !matches!(key.as_str(), "language" | "content" | "whatsapp") {
            mistakes.push(mistake(
                at(&format!("/{key}")),
                format!(
                    "unknown field `{key}`; a variant has `language`, `content` and `whatsapp`"
                ),
            ));
        }
    }
    let language = match object.get("language") {
        Some(Value::String(language)) => {
            if let Err(e) = check_language(language) {
                mistakes.push(mistake(at("/language"), e));
            }
            language.trim().to_owned()
        }
        Some(_) => {
            mistakes.push(mistake(
                at("/language"),
                "`language` must be a string such as `fr`",
            ));
            String::new()
        }
        None => {
            mistakes.push(mistake(
                at("/language"),
                "`language` is required, e.g. `fr`",
            ));
            String::new()
        }
    };
    let content = match object.get("content") {
        None => {
            mistakes.push(mistake(
                at("/content"),
                "`content` is required, e.g. {\"text\": \"Bonjour {{ first_name }}\"}",
            ));
            None
        }
        Some(value) => match Content::deserialize(value) {
            Err(e) => {
                mistakes.push(mistake(at("/content"), e.to_string()));
                None
            }
            Ok(content) if matches!(content.body, Body::Template(_)) => {
                mistakes.push(mistake(
                    at("/content/template"),
                    "a stored template's content is what is sent (text, media, card…), not another template; map a WhatsApp template with `whatsapp`",
                ));
                None
            }
            Ok(content) => match ContentTemplate::compile(&content) {
                Ok(_) => Some(content),
                Err(e) => {
                    mistakes.push(mistake(at("/content"), e.to_string()));
                    None
                }
            },
        },
    };
    let provider = match object.get("whatsapp") {
        None | Some(Value::Null) => None,
        Some(value) => match ProviderTemplateRef::deserialize(value) {
            Err(e) => {
                mistakes.push(mistake(
                    at("/whatsapp"),
                    format!("{e}; expected {{\"name\": \"order_shipped\", \"language\": \"fr\"}}"),
                ));
                None
            }
            Ok(provider) => {
                let name_ok = !provider.name.is_empty()
                    && provider.name.chars().count() <= MAX_PROVIDER_NAME_CHARS
                    && provider
                        .name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !name_ok {
                    mistakes.push(mistake(
                        at("/whatsapp/name"),
                        format!(
                            "`{}` is not a WhatsApp template name: letters, digits and `_`, at most {MAX_PROVIDER_NAME_CHARS}",
                            provider.name
                        ),
                    ));
                }
                if let Err(e) = check_language(&provider.language) {
                    mistakes.push(mistake(at("/whatsapp/language"), e));
                }
                if provider.parameters.len() > MAX_PARAMETERS {
                    mistakes.push(mistake(
                        at("/whatsapp/parameters"),
                        format!("at most {MAX_PARAMETERS} parameters"),
                    ));
                }
                for (i, parameter) in provider.parameters.iter().enumerate() {
                    let ok = !parameter.is_empty()
                        && parameter.len() <= 64
                        && parameter
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !ok {
                        mistakes.push(mistake(
                            at(&format!("/whatsapp/parameters/{i}")),
                            format!(
                                "`{parameter}` is not a variable name (letters, digits and `_`)"
                            ),
                        ));
                    }
                }
                Some(provider)
            }
        },
    };
    match (mistakes.is_empty(), content) {
        (true, Some(content)) => Ok(TemplateVariant {
            language,
            content,
            provider,
        }),
        _ => Err(mistakes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(document: Value) -> Result<StoredTemplate, Vec<TemplateMistake>> {
        StoredTemplate::parse(None, &document)
    }

    fn pointers(result: Result<StoredTemplate, Vec<TemplateMistake>>) -> Vec<String> {
        result.unwrap_err().into_iter().map(|m| m.pointer).collect()
    }

    #[test]
    fn a_template_with_two_languages_and_a_whatsapp_mapping_is_read() {
        let template = parse(json!({"name": "order_shipped", "variants": [
            {"language": "fr", "content": {"text": "Bonjour {{ first_name }}"},
             "whatsapp": {"name": "order_shipped", "language": "fr"}},
            {"language": "en", "content": {"text": "Hello {{ first_name }}"}}
        ]}))
        .unwrap();
        assert_eq!(template.name, "order_shipped");
        assert_eq!(template.variants.len(), 2);
        assert_eq!(
            template.variants[0]
                .provider
                .as_ref()
                .map(|p| p.name.as_str()),
            Some("order_shipped")
        );
        assert_eq!(template.variants[1].provider, None);
    }

    #[test]
    fn every_mistake_is_reported_at_its_pointer() {
        let found = pointers(parse(
            json!({"name": "bad name!", "colour": 1, "variants": [
                {"language": "fr", "content": {"text": "Bonjour {{ first_name"}},
                {"language": "f", "content": {"text": "x"}},
                {"language": "en", "content": {"template": "other"}},
                {"language": "de", "content": {"text": "x"}, "whatsapp": {"name": "a b", "language": "de"}},
                {"language": "FR", "content": {"text": "doppelt"}}
            ]}),
        ));
        for expected in [
            "/name",
            "/colour",
            "/variants/0/content",
            "/variants/1/language",
            "/variants/2/content/template",
            "/variants/3/whatsapp/name",
            "/variants/4/language",
        ] {
            assert!(
                found.iter().any(|p| p == expected),
                "{expected} in {found:?}"
            );
        }
    }

    #[test]
    fn a_template_needs_variants() {
        assert_eq!(pointers(parse(json!({"name": "x"}))), ["/variants"]);
        assert_eq!(
            pointers(parse(json!({"name": "x", "variants": []}))),
            ["/variants"]
        );
        assert_eq!(
            pointers(parse(
                json!({"variants": [{"language": "fr", "content": {"text": "x"}}]})
            )),
            ["/name"]
        );
    }

    #[test]
    fn the_name_in_the_path_wins_and_a_different_one_in_the_body_is_refused() {
        let doc = json!({"variants": [{"language": "fr", "content": {"text": "x"}}]});
        assert_eq!(
            StoredTemplate::parse(Some("promo"), &doc).unwrap().name,
            "promo"
        );
        let doc =
            json!({"name": "other", "variants": [{"language": "fr", "content": {"text": "x"}}]});
        assert_eq!(
            pointers(StoredTemplate::parse(Some("promo"), &doc)),
            ["/name"]
        );
    }

    #[test]
    fn the_variant_is_the_wanted_language_then_its_primary_language_then_the_first() {
        let template = parse(json!({"name": "t", "variants": [
            {"language": "en", "content": {"text": "Hello"}},
            {"language": "fr", "content": {"text": "Bonjour"}},
            {"language": "pt-BR", "content": {"text": "Olá"}}
        ]}))
        .unwrap();
        let language = |wanted: &[&str]| template.variant(wanted).map(|v| v.language.clone());
        assert_eq!(language(&["fr"]).as_deref(), Some("fr"));
        assert_eq!(language(&["fr-CA"]).as_deref(), Some("fr"));
        assert_eq!(language(&["pt_br"]).as_deref(), Some("pt-BR"));
        assert_eq!(language(&["de", "fr-FR"]).as_deref(), Some("fr"));
        assert_eq!(language(&["de"]).as_deref(), Some("en"));
        assert_eq!(language(&[]).as_deref(), Some("en"));
    }
}
