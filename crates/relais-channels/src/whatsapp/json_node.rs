//! A JSON value with the JSON pointer it was found at, so that every error about a
//! webhook delivery names its place (`/entry/0/changes/0/value/messages/0/from`).

use super::webhook::WebhookError;
use jiff::Timestamp;
use serde_json::Value;

/// A JSON value with the pointer it was found at, so every error names its place.
pub(super) struct Node<'v> {
    pub(super) value: &'v Value,
    pub(super) pointer: String,
}

impl<'v> Node<'v> {
    /// A member that is present and not `null`.
    pub(super) fn optional(&self, key: &str) -> Option<Node<'v>> {
        self.value
            .get(key)
            .filter(|value| !value.is_null())
            .map(|value| Node {
                value,
                pointer: format!("{}/{key}", self.pointer),
            })
    }

    pub(super) fn required(&self, key: &str) -> Result<Node<'v>, WebhookError> {
        self.optional(key)
            .ok_or_else(|| WebhookError::Missing(format!("{}/{key}", self.pointer)))
    }

    pub(super) fn optional_string(&self, key: &str) -> Result<Option<String>, WebhookError> {
        self.optional(key)
            .map(|node| node.string().map(str::to_owned))
            .transpose()
    }

    pub(super) fn invalid(&self, detail: &str) -> WebhookError {
        WebhookError::Invalid {
            pointer: self.pointer.clone(),
            detail: detail.to_owned(),
        }
    }

    pub(super) fn string(&self) -> Result<&'v str, WebhookError> {
        self.value
            .as_str()
            .ok_or_else(|| self.invalid("must be a string"))
    }

    pub(super) fn number(&self) -> Result<f64, WebhookError> {
        self.value
            .as_f64()
            .ok_or_else(|| self.invalid("must be a number"))
    }

    pub(super) fn items(&self) -> Result<Vec<Node<'v>>, WebhookError> {
        let items = self
            .value
            .as_array()
            .ok_or_else(|| self.invalid("must be an array"))?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(index, value)| Node {
                value,
                pointer: format!("{}/{index}", self.pointer),
            })
            .collect())
    }

    /// Unix seconds, which Meta writes as a string (`"1739321024"`); a number is taken too.
    pub(super) fn timestamp(&self) -> Result<Timestamp, WebhookError> {
        let seconds = match self.value {
            Value::String(s) => s.trim().parse::<i64>().ok(),
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
        .ok_or_else(|| self.invalid("must be unix seconds, such as \"1739321024\""))?;
        Timestamp::from_second(seconds).map_err(|_| self.invalid("is out of range"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_name_the_pointer_of_the_field() {
        let value = json!({"a": [{"b": null, "t": "1739321024", "n": "x"}]});
        let root = Node {
            value: &value,
            pointer: String::new(),
        };
        let item = root.required("a").unwrap().items().unwrap().remove(0);
        assert_eq!(
            item.required("b").err(),
            Some(WebhookError::Missing("/a/0/b".into()))
        );
        assert_eq!(
            item.required("t").unwrap().timestamp().unwrap().as_second(),
            1_739_321_024
        );
        assert_eq!(
            item.required("n").unwrap().number().err(),
            Some(WebhookError::Invalid {
                pointer: "/a/0/n".into(),
                detail: "must be a number".into()
            })
        );
    }
}
