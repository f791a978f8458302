//! Whether a `branch` case holds: tests on the customer's latest message (its words, intent,
//! sentiment, urgency), the latest answer, a contact attribute or a flow variable.

use super::Condition;
use crate::keywords::normalize;
use serde::Serialize;
use serde_json::{Map, Value};

/// What a flow knows of the customer's latest message.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Facts {
    pub text: String,
    /// The recognised intent (none when out of scope or without a model).
    pub intent: Option<String>,
    /// `negative`, `neutral` or `positive`.
    pub sentiment: Option<String>,
    pub urgent: Option<bool>,
    /// The value the latest `ask` stored.
    pub answer: Option<Value>,
    /// The payload of the button or quick reply the customer chose: tapped, or answered by
    /// its number where the channel showed numbered lines.
    pub payload: Option<String>,
}

/// Whether `text`, as a whole, is one of `words` (case, accents and punctuation aside).
pub fn matches_words(words: &[String], text: &str) -> bool {
    let said = normalize(text);
    !said.is_empty() && words.iter().any(|w| normalize(w) == said)
}

impl Condition {
    /// Whether every test this condition gives holds.
    pub fn holds(
        &self,
        facts: &Facts,
        attributes: &Map<String, Value>,
        vars: &Map<String, Value>,
    ) -> bool {
        if let Some(intents) = &self.intent
            && !facts
                .intent
                .as_deref()
                .is_some_and(|i| intents.as_slice().iter().any(|w| w == i))
        {
            return false;
        }
        if let Some(labels) = &self.sentiment
            && !facts
                .sentiment
                .as_deref()
                .is_some_and(|s| labels.as_slice().iter().any(|w| w == s))
        {
            return false;
        }
        if let Some(urgent) = self.urgent
            && facts.urgent != Some(urgent)
        {
            return false;
        }
        if let Some(words) = &self.keyword
            && !matches_words(words.as_slice(), &facts.text)
        {
            return false;
        }
        if let Some(payloads) = &self.payload
            && !facts
                .payload
                .as_deref()
                .is_some_and(|p| payloads.as_slice().iter().any(|w| w == p))
        {
            return false;
        }
        if let Some(words) = &self.answer {
            let answer = match &facts.answer {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => return false,
                Some(other) => other.to_string(),
            };
            if !matches_words(words.as_slice(), &answer) {
                return false;
            }
        }
        if let Some(name) = &self.attribute
            && !self.compare(attributes.get(name))
        {
            return false;
        }
        if let Some(path) = &self.var
            && !self.compare(lookup(vars, path))
        {
            return false;
        }
        true
    }

    /// `equals`, `in` and `exists` applied to `value` (absent or `null` does not exist).
    fn compare(&self, value: Option<&Value>) -> bool {
        let value = value.filter(|v| !v.is_null());
        if let Some(exists) = self.exists
            && value.is_some() != exists
        {
            return false;
        }
        if let Some(expected) = &self.equals
            && !value.is_some_and(|v| same(v, expected))
        {
            return false;
        }
        if let Some(options) = &self.one_of
            && !value.is_some_and(|v| options.iter().any(|o| same(v, o)))
        {
            return false;
        }
        true
    }
}

/// A value found by a dotted path (`crm.bag.status`) in the flow's variables.
pub(crate) fn lookup<'a>(vars: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let first = vars.get(parts.next()?)?;
    parts.try_fold(first, |value, key| match value {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// Equality as a person means it: texts without regard to case and accents, a number
/// equal to its text (`"3"` and `3`), anything else exactly.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => normalize(x) == normalize(y),
        (Value::Number(x), Value::String(y)) | (Value::String(y), Value::Number(x)) => {
            y.trim().parse::<f64>().ok() == x.as_f64()
        }
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::OneOrMany;
    use serde_json::json;

    fn facts(text: &str) -> Facts {
        Facts {
            text: text.into(),
            intent: Some("track_bag".into()),
            sentiment: Some("negative".into()),
            urgent: Some(false),
            answer: Some(json!("Oui")),
            payload: None,
        }
    }

    #[test]
    fn every_given_test_must_hold() {
        let empty = Map::new();
        let angry_about_bags = Condition {
            intent: Some(OneOrMany::Many(vec!["track_bag".into(), "lost_bag".into()])),
            sentiment: Some(OneOrMany::One("negative".into())),
            ..Condition::default()
        };
        assert!(angry_about_bags.holds(&facts("où est mon sac"), &empty, &empty));
        let mut calm = facts("où est mon sac");
        calm.sentiment = Some("neutral".into());
        assert!(!angry_about_bags.holds(&calm, &empty, &empty));
        let urgent = Condition {
            urgent: Some(true),
            ..Condition::default()
        };
        assert!(!urgent.holds(&facts("x"), &empty, &empty));
    }

    #[test]
    fn keywords_and_answers_match_as_whole_words() {
        let empty = Map::new();
        let menu = Condition {
            keyword: Some(OneOrMany::Many(vec!["menu".into(), "accueil".into()])),
            ..Condition::default()
        };
        assert!(menu.holds(&facts("Menu !"), &empty, &empty));
        assert!(!menu.holds(&facts("le menu du jour"), &empty, &empty));
        let yes = Condition {
            answer: Some(OneOrMany::One("oui".into())),
            ..Condition::default()
        };
        assert!(yes.holds(&facts("whatever"), &empty, &empty));
    }

    #[test]
    fn attributes_and_variables_are_compared_as_people_mean() {
        let attributes = json!({"vip": true, "tier": "Gold", "bags": 2})
            .as_object()
            .cloned()
            .unwrap();
        let vars = json!({"crm": {"bag": {"status": "delayed"}, "items": ["a", "b"]}})
            .as_object()
            .cloned()
            .unwrap();
        let f = facts("x");
        let cond = |c: Condition| c.holds(&f, &attributes, &vars);
        assert!(cond(Condition {
            attribute: Some("vip".into()),
            equals: Some(json!(true)),
            ..Condition::default()
        }));
        assert!(cond(Condition {
            attribute: Some("tier".into()),
            one_of: Some(vec![json!("gold"), json!("platinum")]),
            ..Condition::default()
        }));
        assert!(cond(Condition {
            attribute: Some("bags".into()),
            equals: Some(json!("2")),
            ..Condition::default()
        }));
        assert!(!cond(Condition {
            attribute: Some("email".into()),
            exists: Some(true),
            ..Condition::default()
        }));
        assert!(cond(Condition {
            var: Some("crm.bag.status".into()),
            equals: Some(json!("Delayed")),
            ..Condition::default()
        }));
        assert!(cond(Condition {
            var: Some("crm.items.1".into()),
            equals: Some(json!("b")),
            ..Condition::default()
        }));
        assert!(!cond(Condition {
            var: Some("crm.missing.deep".into()),
            exists: Some(true),
            ..Condition::default()
        }));
    }
}
