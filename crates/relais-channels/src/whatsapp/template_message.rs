//! The `template` object of a send: an approved template by name and language, with its
//! body parameters taken from the content's `variables`.
//!
//! WhatsApp templates number their variables (`{{1}}`, `{{2}}`) or name them
//! (`{{order_id}}`). Variables keyed `"1"`, `"2"`, … become positional parameters in that
//! order (they must run from 1 without a gap, or the text would shift); other keys become
//! named parameters (`parameter_name`). A mix of the two is refused, as Meta refuses it.
//! The content model carries no quick-reply button parameters, so none are sent: a
//! template's quick replies then answer with their own text as payload.

use super::send::bad_content;
use crate::adapter::SendError;
use relais_core::content::TemplateRef;
use serde_json::{Value, json};

pub(super) fn payload(template: &TemplateRef) -> Result<Value, SendError> {
    let language = template
        .language
        .as_deref()
        .map(str::trim)
        .filter(|language| !language.is_empty())
        .ok_or_else(|| {
            bad_content(format!(
                "WhatsApp keeps one template per language; template `{}` needs its `language` (e.g. fr, en_US)",
                template.name
            ))
        })?;
    // Meta writes locales with an underscore (`en_US`); Relais users may write BCP 47.
    let language = language.replace('-', "_");
    let mut object = json!({"name": template.name, "language": {"code": language}});
    let parameters = body_parameters(template)?;
    if !parameters.is_empty() {
        object["components"] = json!([{"type": "body", "parameters": parameters}]);
    }
    Ok(object)
}

fn body_parameters(template: &TemplateRef) -> Result<Vec<Value>, SendError> {
    let mut numbered = Vec::new();
    let mut named = Vec::new();
    for (key, value) in &template.variables {
        let text = parameter_text(key, value)?;
        match key.parse::<usize>() {
            Ok(position) if position >= 1 => numbered.push((position, text)),
            _ => named.push(json!({"type": "text", "parameter_name": key, "text": text})),
        }
    }
    if !numbered.is_empty() && !named.is_empty() {
        return Err(bad_content(
            "template variables are either numbered (1, 2, …) or named, not both",
        ));
    }
    if named.is_empty() {
        numbered.sort_by_key(|(position, _)| *position);
        let gapless = numbered
            .iter()
            .enumerate()
            .all(|(index, (position, _))| *position == index + 1);
        if !gapless {
            return Err(bad_content(
                "numbered template variables must run 1, 2, 3 … without a gap",
            ));
        }
        return Ok(numbered
            .into_iter()
            .map(|(_, text)| json!({"type": "text", "text": text}))
            .collect());
    }
    Ok(named)
}

fn parameter_text(key: &str, value: &Value) -> Result<String, SendError> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(flag.to_string()),
        _ => Err(bad_content(format!(
            "template variable `{key}` must be a text or a number to fill a WhatsApp template"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whatsapp::send::request_body;
    use relais_core::content::Content;

    fn template(value: Value) -> Result<Value, SendError> {
        let content: Content = serde_json::from_value(value).unwrap();
        request_body("33612345678", &content).map(|body| body["template"].clone())
    }

    #[test]
    fn numbered_variables_become_positional_body_parameters_in_order() {
        let sent = template(json!({"template": "order_shipped", "language": "fr",
            "variables": {"2": "A-12", "1": "Marie"}}))
        .unwrap();
        assert_eq!(
            sent,
            json!({"name": "order_shipped", "language": {"code": "fr"}, "components": [{"type": "body",
                "parameters": [{"type": "text", "text": "Marie"}, {"type": "text", "text": "A-12"}]}]})
        );
    }

    #[test]
    fn named_variables_become_named_parameters() {
        let sent = template(json!({"template": "order_shipped", "language": "en-US",
            "variables": {"order_id": "A-12", "total": 89}}))
        .unwrap();
        assert_eq!(sent["language"]["code"], "en_US");
        assert_eq!(
            sent["components"][0]["parameters"],
            json!([{"type": "text", "parameter_name": "order_id", "text": "A-12"},
                   {"type": "text", "parameter_name": "total", "text": "89"}])
        );
    }

    #[test]
    fn a_template_without_variables_sends_no_components() {
        let sent = template(json!({"template": "hello_world", "language": "en_US"})).unwrap();
        assert_eq!(
            sent,
            json!({"name": "hello_world", "language": {"code": "en_US"}})
        );
    }

    #[test]
    fn a_missing_language_a_gap_a_mix_or_an_object_value_is_bad_content() {
        for bad in [
            json!({"template": "hello_world"}),
            json!({"template": "t", "language": "fr", "variables": {"1": "a", "3": "c"}}),
            json!({"template": "t", "language": "fr", "variables": {"1": "a", "name": "b"}}),
            json!({"template": "t", "language": "fr", "variables": {"order": {"id": 1}}}),
        ] {
            assert_eq!(
                template(bad.clone()).unwrap_err().code,
                "bad_content",
                "{bad}"
            );
        }
    }
}
