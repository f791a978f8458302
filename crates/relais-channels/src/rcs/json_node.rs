//! A JSON value with the JSON pointer it was found at, so that every error about a
//! webhook payload names its place (`/suggestionResponse/postbackData`).

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

    pub(super) fn required_string(&self, key: &str) -> Result<String, WebhookError> {
        self.required(key)?.string().map(str::to_owned)
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

    /// An int64, which Google's JSON writes as a string (`"4096"`); a number is taken too.
    pub(super) fn count(&self) -> Result<u64, WebhookError> {
        match self.value {
            Value::String(s) => s.trim().parse().ok(),
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
        .ok_or_else(|| self.invalid("must be a count, such as \"4096\""))
    }

    /// An RFC 3339 timestamp (`"2014-10-02T15:01:23.045123456Z"`, or with an offset).
    pub(super) fn timestamp(&self) -> Result<Timestamp, WebhookError> {
        self.string()?
            .trim()
            .parse::<Timestamp>()
            .map_err(|_| self.invalid("must be an RFC 3339 time, such as 2014-10-02T15:01:23Z"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_name_the_pointer_of_the_field() {
        let value = json!({"a": {"b": null, "t": "2014-10-02T15:01:23.045123456Z",
            "o": "2014-10-02T15:01:23+05:30", "n": "x", "c": "4096"}});
        let a = Node::root(&value).required("a").unwrap();
        assert_eq!(
            a.required("b").err(),
            Some(WebhookError::Missing("/a/b".into()))
        );
        assert_eq!(
            a.required("t").unwrap().timestamp().unwrap().as_second(),
            1_412_262_083
        );
        assert_eq!(
            a.required("o").unwrap().timestamp().unwrap().as_second(),
            1_412_262_083 - 19_800
        );
        assert_eq!(a.required("c").unwrap().count(), Ok(4096));
        assert_eq!(
            a.required("n").unwrap().number().err(),
            Some(WebhookError::Invalid {
                pointer: "/a/n".into(),
                detail: "must be a number".into()
            })
        );
    }
}
