//! Conditions of journeys: a `condition` step, and the property filter of an event
//! trigger. A condition compares a field — `attributes.<name>` (a contact attribute,
//! dotted paths reach into objects), `event.<name>` (a property of the event that started
//! the run), `timezone` or `locale` — with a value, and combines such tests with `all`,
//! `any` and `not`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Tests one condition may hold: enough for any real rule, and a bound on the work a
/// tenant's document can ask for per contact.
pub const MAX_TESTS: usize = 50;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Condition {
    All {
        all: Vec<Condition>,
    },
    Any {
        any: Vec<Condition>,
    },
    Not {
        not: Box<Condition>,
    },
    Test {
        field: String,
        op: Op,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<Value>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "=")]
    Equals,
    #[serde(rename = "!=")]
    NotEquals,
    #[serde(rename = "<")]
    Less,
    #[serde(rename = "<=")]
    LessOrEqual,
    #[serde(rename = ">")]
    Greater,
    #[serde(rename = ">=")]
    GreaterOrEqual,
    /// The field's value is one of `value` (a list).
    #[serde(rename = "in")]
    In,
    /// The field (a text or a list) contains `value`.
    #[serde(rename = "contains")]
    Contains,
    /// The field is set (`value` absent or `true`), or not (`false`).
    #[serde(rename = "exists")]
    Exists,
}

/// The roots a field may start with.
const ROOTS: &str = "`attributes.<name>`, `event.<name>`, `timezone` or `locale`";

impl Condition {
    /// Every mistake in the condition, each as (pointer below `base`, message).
    pub fn problems(&self, base: &str) -> Vec<(String, String)> {
        let mut found = Vec::new();
        if self.tests() > MAX_TESTS {
            found.push((
                base.to_owned(),
                format!("a condition may hold at most {MAX_TESTS} tests"),
            ));
        }
        self.collect_problems(base, &mut found);
        found
    }

    fn tests(&self) -> usize {
        match self {
            Condition::All { all: list } | Condition::Any { any: list } => {
                list.iter().map(Condition::tests).sum()
            }
            Condition::Not { not } => not.tests(),
            Condition::Test { .. } => 1,
        }
    }

    fn collect_problems(&self, base: &str, found: &mut Vec<(String, String)>) {
        match self {
            Condition::All { all } => {
                for (i, c) in all.iter().enumerate() {
                    c.collect_problems(&format!("{base}/all/{i}"), found);
                }
            }
            Condition::Any { any } => {
                for (i, c) in any.iter().enumerate() {
                    c.collect_problems(&format!("{base}/any/{i}"), found);
                }
            }
            Condition::Not { not } => not.collect_problems(&format!("{base}/not"), found),
            Condition::Test { field, op, value } => {
                let known = field == "timezone"
                    || field == "locale"
                    || ["attributes.", "event."].iter().any(|root| {
                        field
                            .strip_prefix(root)
                            .is_some_and(|rest| !rest.is_empty())
                    });
                if !known {
                    found.push((
                        format!("{base}/field"),
                        format!("`{field}` is not a field; use {ROOTS}"),
                    ));
                }
                match (op, value) {
                    (Op::Exists, None | Some(Value::Bool(_))) => {}
                    (Op::Exists, Some(_)) => found.push((
                        format!("{base}/value"),
                        "`exists` takes true, false or no value".into(),
                    )),
                    (Op::In, Some(Value::Array(_))) => {}
                    (Op::In, _) => found.push((
                        format!("{base}/value"),
                        "`in` takes a list of values".into(),
                    )),
                    (_, None) => found.push((
                        format!("{base}/value"),
                        "this test needs a `value` to compare with".into(),
                    )),
                    _ => {}
                }
            }
        }
    }

    /// Whether the condition holds, with `lookup` giving a field's value (`None` when
    /// unset). A comparison with an unset field is false, whatever the operator
    /// (`!=` included): a contact without a city is not "outside Lyon" by default.
    pub fn holds(&self, lookup: &dyn Fn(&str) -> Option<Value>) -> bool {
        match self {
            Condition::All { all } => all.iter().all(|c| c.holds(lookup)),
            Condition::Any { any } => any.iter().any(|c| c.holds(lookup)),
            Condition::Not { not } => !not.holds(lookup),
            Condition::Test { field, op, value } => {
                let actual = lookup(field).filter(|v| !v.is_null());
                if *op == Op::Exists {
                    let wanted = value.as_ref().and_then(Value::as_bool).unwrap_or(true);
                    return actual.is_some() == wanted;
                }
                let (Some(actual), Some(expected)) = (actual, value.as_ref()) else {
                    return false;
                };
                compare(&actual, *op, expected)
            }
        }
    }
}

fn compare(actual: &Value, op: Op, expected: &Value) -> bool {
    use std::cmp::Ordering;
    let order = || -> Option<Ordering> {
        match (actual, expected) {
            (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
            // Dates written as ISO 8601 text order as text.
            (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
            _ => None,
        }
    };
    match op {
        Op::Equals => same(actual, expected),
        Op::NotEquals => !same(actual, expected),
        Op::Less => order() == Some(Ordering::Less),
        Op::LessOrEqual => matches!(order(), Some(Ordering::Less | Ordering::Equal)),
        Op::Greater => order() == Some(Ordering::Greater),
        Op::GreaterOrEqual => matches!(order(), Some(Ordering::Greater | Ordering::Equal)),
        Op::In => expected
            .as_array()
            .is_some_and(|list| list.iter().any(|v| same(actual, v))),
        Op::Contains => match actual {
            Value::String(s) => expected.as_str().is_some_and(|e| s.contains(e)),
            Value::Array(items) => items.iter().any(|v| same(v, expected)),
            _ => false,
        },
        Op::Exists => true,
    }
}

/// Equality where `2` and `2.0` are the same number.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// The value at a dotted `path` inside `root` (`address.city`).
pub fn dotted<'a>(root: &'a serde_json::Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut value = root.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(v: Value) -> Condition {
        serde_json::from_value(v).unwrap()
    }

    fn facts(field: &str) -> Option<Value> {
        let attributes =
            json!({"city": "Lyon", "tier": 2, "tags": ["vip"], "address": {"zip": "69002"}});
        let event = json!({"total": 129.9});
        match field.split_once('.') {
            Some(("attributes", path)) => attributes
                .as_object()
                .and_then(|a| dotted(a, path))
                .cloned(),
            Some(("event", path)) => event.as_object().and_then(|e| dotted(e, path)).cloned(),
            _ => None,
        }
    }

    #[test]
    fn tests_compare_attributes_and_event_properties() {
        assert!(
            cond(json!({"field": "attributes.city", "op": "=", "value": "Lyon"})).holds(&facts)
        );
        assert!(cond(json!({"field": "event.total", "op": ">", "value": 100})).holds(&facts));
        assert!(
            cond(json!({"field": "attributes.tier", "op": "in", "value": [1, 2.0]})).holds(&facts)
        );
        assert!(
            cond(json!({"field": "attributes.tags", "op": "contains", "value": "vip"}))
                .holds(&facts)
        );
        assert!(
            cond(json!({"field": "attributes.address.zip", "op": "=", "value": "69002"}))
                .holds(&facts)
        );
        assert!(cond(json!({"all": [
            {"field": "attributes.city", "op": "exists"},
            {"not": {"field": "attributes.phone", "op": "exists"}},
            {"any": [{"field": "event.total", "op": "<", "value": 10}, {"field": "attributes.tier", "op": ">=", "value": 2}]}
        ]})).holds(&facts));
    }

    #[test]
    fn a_missing_field_makes_every_comparison_false() {
        assert!(!cond(json!({"field": "attributes.zip", "op": "!=", "value": "x"})).holds(&facts));
        assert!(!cond(json!({"field": "attributes.zip", "op": "=", "value": "x"})).holds(&facts));
        assert!(
            cond(json!({"field": "attributes.zip", "op": "exists", "value": false})).holds(&facts)
        );
    }

    #[test]
    fn mistakes_are_named_by_pointer() {
        let c = cond(
            json!({"all": [{"field": "city", "op": "=", "value": 1}, {"field": "event.x", "op": "in", "value": 3}]}),
        );
        let problems = c.problems("/steps/check/if");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].0, "/steps/check/if/all/0/field");
        assert_eq!(problems[1].0, "/steps/check/if/all/1/value");
    }
}
