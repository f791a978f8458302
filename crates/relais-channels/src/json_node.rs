//! A JSON value with the JSON pointer it was found at, so that every error about a
//! provider's webhook payload names its place (`/entry/0/changes/0/value/messages/0/from`).
//! Each channel reads its payloads with it and reports in its own error type.

use jiff::Timestamp;
use serde_json::Value;
use std::marker::PhantomData;

/// The two errors reading a field can give, in a channel's own error type.
pub(crate) trait FieldError {
    /// Nothing (or `null`) at `pointer`.
    fn missing(pointer: String) -> Self;
    /// Something at `pointer`, but not what it must be.
    fn invalid(pointer: String, detail: String) -> Self;
}

/// A JSON value with the pointer it was found at; errors are `E`.
pub(crate) struct Node<'v, E> {
    pub(crate) value: &'v Value,
    pub(crate) pointer: String,
    error: PhantomData<fn() -> E>,
}

impl<'v, E: FieldError> Node<'v, E> {
    /// The whole payload.
    pub(crate) fn root(value: &'v Value) -> Self {
        Node {
            value,
            pointer: String::new(),
            error: PhantomData,
        }
    }

    fn at(&self, value: &'v Value, step: &dyn std::fmt::Display) -> Self {
        Node {
            value,
            pointer: format!("{}/{step}", self.pointer),
            error: PhantomData,
        }
    }

    /// A member that is present and not `null`.
    pub(crate) fn optional(&self, key: &str) -> Option<Self> {
        self.value
            .get(key)
            .filter(|value| !value.is_null())
            .map(|value| self.at(value, &key))
    }

    pub(crate) fn required(&self, key: &str) -> Result<Self, E> {
        self.optional(key)
            .ok_or_else(|| E::missing(format!("{}/{key}", self.pointer)))
    }

    pub(crate) fn optional_string(&self, key: &str) -> Result<Option<String>, E> {
        self.optional(key)
            .map(|node| node.string().map(str::to_owned))
            .transpose()
    }

    pub(crate) fn required_string(&self, key: &str) -> Result<String, E> {
        self.required(key)?.string().map(str::to_owned)
    }

    pub(crate) fn invalid(&self, detail: &str) -> E {
        E::invalid(self.pointer.clone(), detail.to_owned())
    }

    pub(crate) fn string(&self) -> Result<&'v str, E> {
        self.value
            .as_str()
            .ok_or_else(|| self.invalid("must be a string"))
    }

    pub(crate) fn number(&self) -> Result<f64, E> {
        self.value
            .as_f64()
            .ok_or_else(|| self.invalid("must be a number"))
    }

    /// An id: providers write them as strings, but a JSON integer is taken too.
    pub(crate) fn id(&self) -> Result<String, E> {
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

    /// A member that is `true` or `false`; absent is `false`.
    pub(crate) fn flag(&self, key: &str) -> Result<bool, E> {
        match self.optional(key) {
            None => Ok(false),
            Some(node) => node
                .value
                .as_bool()
                .ok_or_else(|| node.invalid("must be true or false")),
        }
    }

    pub(crate) fn items(&self) -> Result<Vec<Self>, E> {
        let items = self
            .value
            .as_array()
            .ok_or_else(|| self.invalid("must be an array"))?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(index, value)| self.at(value, &index))
            .collect())
    }

    /// An integer written as a string (`"4096"`, as Google writes int64), or a number.
    fn integer(&self) -> Option<i64> {
        match self.value {
            Value::String(s) => s.trim().parse::<i64>().ok(),
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    /// A count (`"4096"` or `4096`).
    pub(crate) fn count(&self) -> Result<u64, E> {
        self.integer()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| self.invalid("must be a count, such as \"4096\""))
    }

    /// Unix seconds, as Meta writes WhatsApp's timestamps (`"1739321024"`).
    pub(crate) fn unix_seconds(&self) -> Result<Timestamp, E> {
        let seconds = self
            .integer()
            .ok_or_else(|| self.invalid("must be unix seconds, such as \"1739321024\""))?;
        Timestamp::from_second(seconds).map_err(|_| self.invalid("is out of range"))
    }

    /// Unix milliseconds, as Meta writes Messenger's `time`, `timestamp` and `watermark`.
    pub(crate) fn unix_millis(&self) -> Result<Timestamp, E> {
        let millis = self
            .integer()
            .ok_or_else(|| self.invalid("must be unix milliseconds, such as 1458692752478"))?;
        Timestamp::from_millisecond(millis).map_err(|_| self.invalid("is out of range"))
    }

    /// An RFC 3339 time (`"2014-10-02T15:01:23.045123456Z"`, or with an offset).
    pub(crate) fn rfc3339(&self) -> Result<Timestamp, E> {
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

    #[derive(Debug, PartialEq)]
    enum Error {
        Missing(String),
        Invalid(String, String),
    }

    impl FieldError for Error {
        fn missing(pointer: String) -> Self {
            Error::Missing(pointer)
        }
        fn invalid(pointer: String, detail: String) -> Self {
            Error::Invalid(pointer, detail)
        }
    }

    #[test]
    fn errors_name_the_pointer_of_the_field() {
        let value = json!({"a": [{"b": null, "n": "x", "f": 1, "id": 42}]});
        let item = Node::<Error>::root(&value)
            .required("a")
            .unwrap()
            .items()
            .unwrap()
            .remove(0);
        assert_eq!(
            item.required("b").err(),
            Some(Error::Missing("/a/0/b".into()))
        );
        assert_eq!(
            item.required("n").unwrap().number().err(),
            Some(Error::Invalid("/a/0/n".into(), "must be a number".into()))
        );
        assert_eq!(
            item.flag("f").err(),
            Some(Error::Invalid(
                "/a/0/f".into(),
                "must be true or false".into()
            ))
        );
        assert!(!item.flag("absent").unwrap());
        assert_eq!(item.required("id").unwrap().id(), Ok("42".into()));
    }

    #[test]
    fn times_are_read_as_each_provider_writes_them() {
        let value = json!({"s": "1739321024", "ms": 1458692752478u64, "z": "2014-10-02T15:01:23.045123456Z",
            "o": "2014-10-02T15:01:23+05:30", "c": "4096", "bad": "soon"});
        let root = Node::<Error>::root(&value);
        let field = |key: &str| root.required(key).unwrap();
        assert_eq!(
            field("s").unix_seconds().unwrap().as_second(),
            1_739_321_024
        );
        assert_eq!(
            field("ms").unix_millis().unwrap().as_millisecond(),
            1_458_692_752_478
        );
        assert_eq!(field("z").rfc3339().unwrap().as_second(), 1_412_262_083);
        assert_eq!(
            field("o").rfc3339().unwrap().as_second(),
            1_412_262_083 - 19_800
        );
        assert_eq!(field("c").count(), Ok(4096));
        assert!(field("bad").unix_seconds().is_err());
        assert!(field("bad").unix_millis().is_err());
        assert!(field("bad").rfc3339().is_err());
    }
}
