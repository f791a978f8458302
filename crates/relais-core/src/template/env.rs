//! The minijinja environment message templates run in: no globals or functions, strict
//! undefined variables, no escaping, and filters of our own that check the size of what
//! they build and charge it to the render's [`Meter`].
//!
//! minijinja counts instructions (fuel) but not bytes: one `~` or `join` may build a value
//! a thousand times its inputs, which is how `'0123456789'|join(…|join(…))` reached 4 GB
//! with a few instructions, and one `==` may compare two lists of thousands of items.
//! Every filter here that makes a new text checks its size before keeping it and charges
//! it; the operands of comparisons and subscripts go through filters that charge what
//! minijinja is about to scan; `~`, `+`, comparisons and subscripts are rewritten to use
//! them by [`super::policy`]. Filters that return one of their inputs (`default`, `first`)
//! or a number of one (`round`) do no such work and are minijinja's.

use super::MAX_NESTING;
use super::policy::{CONCAT_FILTER, INDEXABLE_FILTER, NUMBER_FILTER, OPERAND_FILTER};
use minijinja::value::{Object, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, UndefinedBehavior};
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// What comparing or joining one item of a list or map costs, in work bytes. minijinja
/// took 660 ns an item for `1 in` a list of 10,000 empty lists (copying a byte takes well
/// under 1 ns); at 64 bytes an item, a message's work allowance visits at most 4,096 items
/// (under 3 ms).
const ITEM_WORK: usize = 64;

/// The name under which a render's [`Meter`] sits in its context; not an identifier, so
/// no template can name it.
pub(super) const METER_KEY: &str = "relais meter";

/// What one render may still build, and which limit stopped it, if one did.
#[derive(Debug)]
pub(super) struct Meter {
    work_left: AtomicUsize,
    max_value: usize,
    tripped: AtomicU8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tripped {
    /// A single value would pass `max_value`.
    Value,
    /// The values built together would pass the render's work allowance.
    Work,
}

impl Object for Meter {}

impl Meter {
    pub(super) fn new(work_bytes: usize, max_value: usize) -> Meter {
        Meter {
            work_left: AtomicUsize::new(work_bytes),
            max_value,
            tripped: AtomicU8::new(0),
        }
    }

    pub(super) fn work_left(&self) -> usize {
        self.work_left.load(Ordering::Relaxed)
    }

    pub(super) fn tripped(&self) -> Option<Tripped> {
        match self.tripped.load(Ordering::Relaxed) {
            1 => Some(Tripped::Value),
            2 => Some(Tripped::Work),
            _ => None,
        }
    }

    /// Takes `bytes` of a value being built from the allowance, or refuses (and remembers
    /// why).
    fn charge(&self, bytes: usize) -> Result<(), Error> {
        if bytes > self.max_value {
            return Err(self.trip(Tripped::Value));
        }
        self.spend(bytes)
    }

    /// Takes `bytes` of work (a value built or scanned) from the allowance.
    fn spend(&self, bytes: usize) -> Result<(), Error> {
        let left = self.work_left();
        if bytes > left {
            return Err(self.trip(Tripped::Work));
        }
        self.work_left.store(left - bytes, Ordering::Relaxed);
        Ok(())
    }

    fn trip(&self, why: Tripped) -> Error {
        self.tripped.store(
            match why {
                Tripped::Value => 1,
                Tripped::Work => 2,
            },
            Ordering::Relaxed,
        );
        let message = match why {
            Tripped::Value => "a value built by the template is too long",
            Tripped::Work => "the template builds too much text",
        };
        Error::new(ErrorKind::InvalidOperation, message)
    }

    /// The most a filter may build now: a longer value is refused before it is finished.
    fn room(&self) -> usize {
        self.max_value.min(self.work_left())
    }
}

fn meter(state: &State) -> Result<Arc<Meter>, Error> {
    state
        .lookup(METER_KEY)
        .and_then(|value| value.downcast_object::<Meter>())
        .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "no render meter"))
}

pub(super) fn environment() -> Environment<'static> {
    let mut env = Environment::empty();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // minijinja counts nested loops against this; every nesting the policy lets through
    // must render.
    env.set_recursion_limit(MAX_NESTING);
    // Debug mode copies the source and the variables into every error: a cost per failed
    // render that a batch of bad rows would multiply.
    env.set_debug(false);
    // Messages are plain text; HTML escaping belongs to the email adapter.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_keep_trailing_newline(true);
    env.add_filter(CONCAT_FILTER, concat);
    env.add_filter(NUMBER_FILTER, number);
    env.add_filter(OPERAND_FILTER, |state: &State, value: Value| {
        spend_on(&*meter(state)?, &value)?;
        Ok::<_, Error>(value)
    });
    env.add_filter(INDEXABLE_FILTER, |state: &State, value: Value| {
        // Lists and maps are indexed directly; a text is walked character by character.
        if let Some(text) = value.as_str() {
            meter(state)?.spend(text.len())?;
        }
        Ok::<_, Error>(value)
    });
    env.add_filter("lower", |state: &State, value: &Value| {
        map_text(state, value, |text| text.to_lowercase())
    });
    env.add_filter("upper", |state: &State, value: &Value| {
        map_text(state, value, |text| text.to_uppercase())
    });
    env.add_filter("title", |state: &State, value: &Value| {
        map_text(state, value, title)
    });
    env.add_filter("capitalize", |state: &State, value: &Value| {
        map_text(state, value, capitalize)
    });
    env.add_filter("trim", trim);
    env.add_filter("urlencode", |state: &State, value: &Value| {
        map_text(state, value, urlencode)
    });
    env.add_filter("string", |state: &State, value: &Value| {
        if value.kind() == ValueKind::String {
            return Ok(value.clone());
        }
        map_text(state, value, str::to_owned)
    });
    env.add_filter("join", join);
    env.add_filter("replace", replace);
    env.add_filter("truncate", truncate);
    // These read a text from end to end (counting characters, parsing a number).
    env.add_filter("length", |state: &State, value: &Value| {
        spend_on_text(state, value)?;
        minijinja::filters::length(value)
    });
    env.add_filter("int", |state: &State, value: &Value| {
        spend_on_text(state, value)?;
        minijinja::filters::int(state, value)
    });
    env.add_filter("float", |state: &State, value: &Value| {
        spend_on_text(state, value)?;
        minijinja::filters::float(state, value)
    });
    // These return one of their inputs, one item of it, or a number: nothing to measure.
    env.add_filter("default", minijinja::filters::default);
    env.add_filter("first", minijinja::filters::first);
    env.add_filter("last", minijinja::filters::last);
    env.add_filter("round", minijinja::filters::round);
    env.add_filter("abs", minijinja::filters::abs);
    env.add_test("defined", minijinja::tests::is_defined);
    env.add_test("undefined", minijinja::tests::is_undefined);
    env.add_test("none", minijinja::tests::is_none);
    env.add_test("number", minijinja::tests::is_number);
    env.add_test("string", minijinja::tests::is_string);
    env
}

/// Charges the work of comparing or searching `value`: its texts' bytes and its items.
fn spend_on(meter: &Meter, value: &Value) -> Result<(), Error> {
    if let Some(text) = value.as_str() {
        return meter.spend(text.len());
    }
    if !matches!(
        value.kind(),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable
    ) {
        return Ok(());
    }
    let is_map = value.kind() == ValueKind::Map;
    // A failure to iterate is minijinja's to report when it compares.
    for item in value.try_iter().into_iter().flatten() {
        meter.spend(ITEM_WORK)?;
        spend_on(meter, &item)?;
        if is_map && let Ok(entry) = value.get_item(&item) {
            spend_on(meter, &entry)?;
        }
    }
    Ok(())
}

fn spend_on_text(state: &State, value: &Value) -> Result<(), Error> {
    match value.as_str() {
        Some(text) => meter(state)?.spend(text.len()),
        None => Ok(()),
    }
}

fn defined(value: &Value) -> Result<(), Error> {
    if value.is_undefined() {
        Err(Error::from(ErrorKind::UndefinedError))
    } else {
        Ok(())
    }
}

/// Writes into a string, refusing to grow it past `room` bytes.
struct Bounded {
    text: String,
    room: usize,
    overflowed: bool,
}

impl Bounded {
    fn new(room: usize) -> Bounded {
        Bounded {
            text: String::new(),
            room,
            overflowed: false,
        }
    }

    /// Appends `value` as a template prints it.
    fn push_value(&mut self, value: &Value) -> fmt::Result {
        match value.as_str() {
            Some(text) => self.write_str(text),
            None => write!(self, "{value}"),
        }
    }

    /// Charges what was written to the meter, or says which limit it passed.
    fn finish(self, meter: &Meter) -> Result<String, Error> {
        if self.overflowed {
            // Past `room`: whichever of the two limits `room` came from.
            return Err(meter
                .charge(self.room.saturating_add(1))
                .err()
                .unwrap_or_else(|| meter.trip(Tripped::Work)));
        }
        meter.charge(self.text.len())?;
        Ok(self.text)
    }
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, part: &str) -> fmt::Result {
        if self.text.len() + part.len() > self.room {
            self.overflowed = true;
            return Err(fmt::Error);
        }
        self.text.push_str(part);
        Ok(())
    }
}

/// The text of `value` as a template prints it, charged to the meter when it had to be
/// made (a number, a list) rather than borrowed (a string).
fn text_of<'v>(value: &'v Value, meter: &Meter) -> Result<std::borrow::Cow<'v, str>, Error> {
    defined(value)?;
    if let Some(text) = value.as_str() {
        return Ok(text.into());
    }
    let mut out = Bounded::new(meter.room());
    let _ = out.push_value(value);
    out.finish(meter).map(Into::into)
}

/// Applies `f` to the text of `value` and charges the result.
fn map_text(state: &State, value: &Value, f: impl Fn(&str) -> String) -> Result<Value, Error> {
    let meter = meter(state)?;
    let text = text_of(value, &meter)?;
    // Case mapping at most triples a text (`ΐ` → `Ϊ́`): refuse before building it when
    // even its input could not fit.
    if text.len() > meter.room() {
        return Err(meter
            .charge(text.len())
            .err()
            .unwrap_or_else(|| meter.trip(Tripped::Work)));
    }
    let output = f(&text);
    meter.charge(output.len())?;
    Ok(Value::from(output))
}

/// `a ~ b ~ c`: all printed side by side, as minijinja does, within the limits.
fn concat(
    state: &State,
    first: &Value,
    rest: minijinja::value::Rest<Value>,
) -> Result<Value, Error> {
    let meter = meter(state)?;
    let mut out = Bounded::new(meter.room());
    for part in std::iter::once(first).chain(rest.iter()) {
        defined(part)?;
        if out.push_value(part).is_err() {
            break;
        }
    }
    out.finish(&meter).map(Value::from)
}

/// Lets a number (or a boolean) through to minijinja's `+`, which cannot be checked: `+` on
/// texts or lists would build values without limit, and `~` does that job.
fn number(value: &Value) -> Result<Value, Error> {
    defined(value)?;
    if value.is_number() || value.kind() == ValueKind::Bool {
        Ok(value.clone())
    } else {
        Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "`+` adds numbers, not a {}; write `~` to put texts together",
                value.kind()
            ),
        ))
    }
}

fn trim(state: &State, value: &Value, chars: Option<&str>) -> Result<Value, Error> {
    let meter = meter(state)?;
    let text = text_of(value, &meter)?;
    let trimmed = match chars {
        Some(chars) => {
            meter.spend(chars.len())?;
            // A set, not a slice: `trim(long_text)` would otherwise compare every
            // character of one text with every character of the other.
            let chars: std::collections::BTreeSet<char> = chars.chars().collect();
            text.trim_matches(|c| chars.contains(&c))
        }
        None => text.trim(),
    };
    meter.charge(trimmed.len())?;
    Ok(Value::from(trimmed))
}

fn join(state: &State, value: &Value, separator: Option<&Value>) -> Result<Value, Error> {
    defined(value)?;
    let meter = meter(state)?;
    let separator = match separator {
        Some(separator) => text_of(separator, &meter)?,
        None => "".into(),
    };
    let items = value.try_iter().map_err(|err| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("cannot join a {}", value.kind()),
        )
        .with_source(err)
    })?;
    let mut out = Bounded::new(meter.room());
    for (index, item) in items.enumerate() {
        meter.spend(ITEM_WORK)?;
        let written = if index > 0 {
            out.write_str(&separator)
        } else {
            Ok(())
        };
        if written.and_then(|()| out.push_value(&item)).is_err() {
            break;
        }
    }
    out.finish(&meter).map(Value::from)
}

fn replace(state: &State, value: &Value, from: &Value, to: &Value) -> Result<Value, Error> {
    let meter = meter(state)?;
    let text = text_of(value, &meter)?;
    let from = text_of(from, &meter)?;
    let to = text_of(to, &meter)?;
    let mut out = Bounded::new(meter.room());
    if from.is_empty() {
        // Python's rule, which minijinja follows: `to` between every two characters and at
        // both ends; the size check below is what keeps it sane.
        let _ = out.write_str(&to).and_then(|()| {
            text.chars().try_for_each(|c| {
                out.write_char(c)?;
                out.write_str(&to)
            })
        });
    } else {
        let mut rest: &str = &text;
        let mut written = Ok(());
        while let Some(at) = rest.find(&*from) {
            written = out.write_str(&rest[..at]).and_then(|()| out.write_str(&to));
            if written.is_err() {
                break;
            }
            rest = &rest[at + from.len()..];
        }
        let _ = written.and_then(|()| out.write_str(rest));
    }
    out.finish(&meter).map(Value::from)
}

/// Jinja's `truncate(length=255, killwords=false, end='...', leeway=0)`, counting
/// characters. Jinja's default leeway is 5 (a text 5 characters too long is left alone),
/// which surprises anyone counting SMS characters; pass `leeway=5` for it.
fn truncate(
    state: &State,
    value: &Value,
    positional: minijinja::value::Rest<Value>,
    kwargs: minijinja::value::Kwargs,
) -> Result<Value, Error> {
    let meter = meter(state)?;
    let text = text_of(value, &meter)?;
    // Jinja's order: length, killwords, end, leeway; each may also be named.
    let arg = |index: usize, name: &str| -> Result<Option<Value>, Error> {
        let named = kwargs.get::<Option<Value>>(name)?;
        Ok(named.or_else(|| positional.get(index).cloned()))
    };
    let number = |value: Option<Value>, default: usize| -> Result<usize, Error> {
        value.map_or(Ok(default), |value| {
            value.as_usize().ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    format!("truncate takes a whole number, not {value}"),
                )
            })
        })
    };
    if positional.len() > 4 {
        return Err(Error::from(ErrorKind::TooManyArguments));
    }
    let length = number(arg(0, "length")?, 255)?;
    let killwords = arg(1, "killwords")?.is_some_and(|value| value.is_true());
    let end = arg(2, "end")?;
    let end = match &end {
        Some(end) => end.as_str().unwrap_or("..."),
        None => "...",
    };
    let leeway = number(arg(3, "leeway")?, 0)?;
    kwargs.assert_all_used()?;
    let chars = text.chars().count();
    if chars <= length.saturating_add(leeway) {
        return Ok(match text {
            std::borrow::Cow::Borrowed(_) => value.clone(),
            std::borrow::Cow::Owned(text) => Value::from(text),
        });
    }
    let keep = length.saturating_sub(end.chars().count());
    let cut = text
        .char_indices()
        .nth(keep)
        .map_or(text.len(), |(at, _)| at);
    let mut head = &text[..cut];
    if !killwords && let Some(space) = head.rfind(' ') {
        head = &head[..space];
    }
    let out = format!("{head}{end}");
    meter.charge(out.len())?;
    Ok(Value::from(out))
}

fn title(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut capitalize = true;
    for c in text.chars() {
        if c.is_ascii_punctuation() || c.is_whitespace() {
            out.push(c);
            capitalize = true;
        } else if capitalize {
            out.extend(c.to_uppercase());
            capitalize = false;
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        None => String::new(),
        Some(first) => first.to_uppercase().collect::<String>() + &chars.as_str().to_lowercase(),
    }
}

/// Percent-encodes a value for a query string or a path segment of a personalised link.
fn urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}
