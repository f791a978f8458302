//! A JSON value with the JSON pointer it was found at, so that every error about a
//! webhook delivery names its place (`/entry/0/messaging/0/sender/id`).
//!
//! The same idea as `whatsapp/json_node.rs`, which is private to that module and reads
//! Unix seconds; Messenger's timestamps are milliseconds and its errors its own.

use super::webhook::WebhookError;
use jiff::Timestamp;
use serde_json::Value;

pub(super) struct Node<'v> {
    pub(super) value: &'v Value,
    pub(super) pointer: String,
}

impl<'v> Node<'v> {
    pub(super) fn root(value: &'v Value) -> Node<'v> {
        Node {
            value,
            pointer: String::new(),
        }
    }

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

    /// An id: Meta writes them as strings, but a JSON integer is taken too.
    pub(super) fn id(&self) -> Result<String, WebhookError> {
        let id = match self.value {
            Value::String(s) => s.trim().to_owned(),
            Value::Number(n) if n.is_u64() => n.to_string(),
            _ => String::new(),
        };
        if id.is_empty() {
            Err(self.invalid("must be a non-empty id"))
        } else {
            Ok(id)
        }
    }

    pub(super) fn flag(&self, key: &str) -> Result<bool, WebhookError> {
        match self.optional(key) {
            None => Ok(false),
            Some(node) => node
                .value
                .as_bool()
                .ok_or_else(|| node.invalid("must be true or false")),
        }
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

    /// Unix milliseconds, as Meta writes `time`, `timestamp` and `watermark`.
    pub(super) fn millis(&self) -> Result<Timestamp, WebhookError> {
        let millis = match self.value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        }
        .ok_or_else(|| self.invalid("must be unix milliseconds, such as 1458692752478"))?;
        Timestamp::from_millisecond(millis).map_err(|_| self.invalid("is out of range"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_name_the_pointer_of_the_field() {
        let value = json!({"a": [{"b": null, "t": 1458692752478u64, "n": "x", "f": 1}]});
        let root = Node::root(&value);
        let item = root.required("a").unwrap().items().unwrap().remove(0);
        assert_eq!(
            item.required("b").err(),
            Some(WebhookError::Missing("/a/0/b".into()))
        );
        assert_eq!(
            item.required("t")
                .unwrap()
                .millis()
                .unwrap()
                .as_millisecond(),
            1_458_692_752_478
        );
        assert_eq!(
            item.flag("f").err(),
            Some(WebhookError::Invalid {
                pointer: "/a/0/f".into(),
                detail: "must be true or false".into()
            })
        );
        assert!(!item.flag("absent").unwrap());
        assert!(item.required("n").unwrap().millis().is_err());
    }
}
