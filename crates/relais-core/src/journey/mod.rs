//! Journeys: what a tenant does for a contact over time after something happens to them
//! (`PUT /v1/journeys/{name}`), as data, and the pure rules that read it.
//!
//! A journey has a trigger (an event, optionally filtered on its properties; a geofence
//! entered; a date attribute — a yearly one such as a birthday, or a dated one with an
//! offset such as 30 days before a renewal; a segment entered), a re-entry rule, goal
//! events that end it wherever the contact stands, and named steps from `start`: `wait`,
//! `condition`, `send`, `branch` (on the engagement with the last message sent) and
//! `exit`. A step without a successor ends the run. [`JourneyDefinition::parse`] gives the
//! definition or every mistake with the JSON pointer of the field at fault
//! (`/steps/remind/next: no step is named "remnd"`), so a journey that parsed never meets
//! a dangling step at run time. Running it needs a store and a clock: it lives in the
//! engine (`relais_engine::journeys`).

mod condition;
pub mod geo;
pub mod when;

pub use condition::{Condition, MAX_TESTS, Op, dotted};

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use when::TimeOfDay;

/// Steps in one journey: more than a marketer draws, and a bound on a document's size.
pub const MAX_STEPS: usize = 200;
/// Longest journey, step, geofence or event name.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest wait a `wait` step may ask for.
pub const MAX_WAIT: SignedDuration = SignedDuration::from_hours(24 * 366);
/// Longest engagement window of a `branch`: a read receipt a month late says nothing.
pub const MAX_WITHIN: SignedDuration = SignedDuration::from_hours(24 * 31);
/// Steps one run takes in a row without waiting before it is taken to loop and stopped.
pub const MAX_STEPS_IN_A_ROW: usize = 50;
/// The name of the event whose `lat`/`lon` properties are matched against geofences.
pub const ENTERED_AREA: &str = "entered_area";

/// Fields a `send` step passes to the accept path (as in `POST /v1/messages`, without
/// `to`: the run's contact is the recipient).
pub const SEND_FIELDS: &[&str] = &[
    "channel",
    "channels",
    "content",
    "template",
    "variables",
    "purpose",
    "from",
    "validity",
    "campaign",
];

/// A tenant's journey, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct JourneyDefinition {
    pub description: Option<String>,
    pub trigger: Trigger,
    pub reentry: Reentry,
    /// Goal events: one of these for the contact ends their run wherever it stands.
    pub exit_on: Vec<String>,
    pub start: String,
    pub steps: BTreeMap<String, Step>,
}

/// What enters a contact into a journey.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// A customer event of this name whose properties pass `filter` (fields `event.*`).
    Event {
        name: String,
        filter: Option<Condition>,
    },
    /// An `entered_area` event inside this geofence.
    Geofence { name: String },
    /// Every year on the date the attribute holds (`attributes.birthday`), at `at` in the
    /// contact's time zone.
    Anniversary { attribute: String, at: TimeOfDay },
    /// Once, `offset_days` from the date the attribute holds (negative: before), at `at`
    /// in the contact's time zone.
    Date {
        attribute: String,
        offset_days: i32,
        at: TimeOfDay,
    },
    /// The contact entered this segment (the segments feature calls the engine's hook).
    Segment { name: String },
}

/// Whether a contact may enter a journey again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reentry {
    /// Never again after the first entry.
    Once,
    /// Again once the previous run ended (the default: one run per contact at a time, so
    /// a customer who abandons two carts in an hour gets one reminder series).
    #[default]
    AfterExit,
    /// At every trigger, several runs side by side.
    Always,
}

impl Reentry {
    pub fn as_str(self) -> &'static str {
        match self {
            Reentry::Once => "once",
            Reentry::AfterExit => "after_exit",
            Reentry::Always => "always",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Wait {
        wait: Wait,
        next: Option<String>,
    },
    Condition {
        condition: Condition,
        then: Option<String>,
        otherwise: Option<String>,
    },
    /// The fields of a `POST /v1/messages` body but `to` (see [`SEND_FIELDS`]).
    Send {
        message: Map<String, Value>,
        next: Option<String>,
    },
    Branch {
        on: Engagement,
        within: SignedDuration,
        yes: Option<String>,
        no: Option<String>,
    },
    Exit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    For(SignedDuration),
    /// Until the next time the contact's clock shows this time.
    Until(TimeOfDay),
}

/// What a `branch` looks for on the last message the run sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Engagement {
    /// The message reached `read`.
    Read,
    /// A link of the message was clicked (its `clicked` event).
    Clicked,
    /// The contact wrote in after it was sent.
    Replied,
}

impl Engagement {
    pub fn as_str(self) -> &'static str {
        match self {
            Engagement::Read => "read",
            Engagement::Clicked => "clicked",
            Engagement::Replied => "replied",
        }
    }
}

/// A mistake in a journey document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JourneyError {
    /// The JSON pointer (RFC 6901) of the field at fault, e.g. `/steps/remind/next`.
    pub pointer: String,
    pub message: String,
}

/// Every mistake found in a journey document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct JourneyErrors(pub Vec<JourneyError>);

impl fmt::Display for JourneyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.pointer, e.message)?;
        }
        Ok(())
    }
}

/// A journey or geofence name: 1 to 64 letters, digits, `-`, `_` or `.`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a name: use 1 to {MAX_NAME_CHARS} letters, digits, `-`, `_` or `.`"
        ))
    }
}

/// Collects mistakes while a document is read.
struct Reader {
    errors: Vec<JourneyError>,
}

impl Reader {
    fn fail(&mut self, pointer: impl Into<String>, message: impl Into<String>) {
        self.errors.push(JourneyError {
            pointer: pointer.into(),
            message: message.into(),
        });
    }

    /// The object at `pointer`, refusing keys outside `allowed`.
    fn object<'a>(
        &mut self,
        value: &'a Value,
        pointer: &str,
        allowed: &[&str],
    ) -> Option<&'a Map<String, Value>> {
        let Some(map) = value.as_object() else {
            self.fail(pointer, "must be an object");
            return None;
        };
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                self.fail(
                    format!("{pointer}/{}", escape(key)),
                    format!("unknown field; expected one of {}", allowed.join(", ")),
                );
            }
        }
        Some(map)
    }

    fn text(&mut self, map: &Map<String, Value>, key: &str, pointer: &str) -> Option<String> {
        match map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Some(_) => {
                self.fail(format!("{pointer}/{key}"), "must be a non-empty text");
                None
            }
        }
    }

    fn required_text(
        &mut self,
        map: &Map<String, Value>,
        key: &str,
        pointer: &str,
    ) -> Option<String> {
        let found = self.text(map, key, pointer);
        if found.is_none() && map.get(key).is_none_or(Value::is_null) {
            self.fail(format!("{pointer}/{key}"), "is required");
        }
        found
    }

    fn duration(
        &mut self,
        map: &Map<String, Value>,
        key: &'static str,
        pointer: &str,
        max: SignedDuration,
    ) -> Option<SignedDuration> {
        let raw = self.required_text(map, key, pointer)?;
        match crate::retry::parse_duration(key, &raw) {
            Ok(d) if d.is_positive() && d <= max => Some(d),
            Ok(_) => {
                self.fail(
                    format!("{pointer}/{key}"),
                    format!(
                        "must be more than 0 and at most {} days",
                        max.as_hours() / 24
                    ),
                );
                None
            }
            Err(e) => {
                self.fail(format!("{pointer}/{key}"), e.to_string());
                None
            }
        }
    }

    fn time_of_day(
        &mut self,
        map: &Map<String, Value>,
        key: &str,
        pointer: &str,
    ) -> Option<TimeOfDay> {
        let raw = self.text(map, key, pointer)?;
        TimeOfDay::parse(&raw)
            .map_err(|e| self.fail(format!("{pointer}/{key}"), e.to_string()))
            .ok()
    }

    fn condition(&mut self, value: &Value, pointer: &str) -> Option<Condition> {
        match serde_json::from_value::<Condition>(value.clone()) {
            Ok(c) => {
                let problems = c.problems(pointer);
                let ok = problems.is_empty();
                for (p, m) in problems {
                    self.fail(p, m);
                }
                ok.then_some(c)
            }
            Err(_) => {
                self.fail(
                    pointer,
                    "must be a test {\"field\", \"op\", \"value\"} or {\"all\": […]}, {\"any\": […]}, {\"not\": …}",
                );
                None
            }
        }
    }
}

/// A key as a JSON pointer segment.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

impl JourneyDefinition {
    /// Reads and checks a journey document.
    pub fn parse(doc: &Value) -> Result<JourneyDefinition, JourneyErrors> {
        let mut r = Reader { errors: Vec::new() };
        let Some(top) = r.object(
            doc,
            "",
            &[
                "description",
                "trigger",
                "reentry",
                "exit_on",
                "start",
                "steps",
            ],
        ) else {
            return Err(JourneyErrors(r.errors));
        };
        let description = r.text(top, "description", "");
        let trigger = match top.get("trigger") {
            Some(t) => read_trigger(&mut r, t),
            None => {
                r.fail("/trigger", "is required");
                None
            }
        };
        let reentry = match top.get("reentry") {
            None | Some(Value::Null) => Reentry::default(),
            Some(v) => serde_json::from_value(v.clone()).unwrap_or_else(|_| {
                r.fail("/reentry", "must be \"once\", \"after_exit\" or \"always\"");
                Reentry::default()
            }),
        };
        let mut exit_on = Vec::new();
        match top.get("exit_on") {
            None | Some(Value::Null) => {}
            Some(Value::Array(names)) => {
                for (i, name) in names.iter().enumerate() {
                    match name.as_str().map(str::trim) {
                        Some(n) if check_name(n).is_ok() => exit_on.push(n.to_owned()),
                        _ => r.fail(format!("/exit_on/{i}"), "must be an event name"),
                    }
                }
            }
            Some(_) => r.fail("/exit_on", "must be a list of event names"),
        }
        let start = r.required_text(top, "start", "");
        let mut steps = BTreeMap::new();
        match top.get("steps").and_then(Value::as_object) {
            Some(raw) if raw.len() > MAX_STEPS => {
                r.fail("/steps", format!("a journey has at most {MAX_STEPS} steps"));
            }
            Some(raw) if raw.is_empty() => r.fail("/steps", "a journey needs at least one step"),
            Some(raw) => {
                for (name, value) in raw {
                    let pointer = format!("/steps/{}", escape(name));
                    if let Err(e) = check_name(name) {
                        r.fail(&pointer, e);
                    }
                    if let Some(step) = read_step(&mut r, value, &pointer) {
                        steps.insert(name.clone(), step);
                    }
                }
            }
            None => r.fail("/steps", "is required: an object of named steps"),
        }
        // Every reference names a step.
        if let Some(start) = &start
            && top.get("steps").is_some_and(Value::is_object)
            && !top["steps"]
                .as_object()
                .is_some_and(|s| s.contains_key(start))
        {
            r.fail("/start", format!("no step is named \"{start}\""));
        }
        let names = top.get("steps").and_then(Value::as_object);
        for (name, step) in &steps {
            for (field, target) in step.successors() {
                if !names.is_some_and(|n| n.contains_key(target)) {
                    r.fail(
                        format!("/steps/{}/{field}", escape(name)),
                        format!("no step is named \"{target}\""),
                    );
                }
            }
            if matches!(step, Step::Branch { .. })
                && !steps.values().any(|s| matches!(s, Step::Send { .. }))
            {
                r.fail(
                    format!("/steps/{}", escape(name)),
                    "a branch looks at the message a `send` step sent, and this journey has no `send` step",
                );
            }
        }
        match (r.errors.is_empty(), trigger, start) {
            (true, Some(trigger), Some(start)) => Ok(JourneyDefinition {
                description,
                trigger,
                reentry,
                exit_on,
                start,
                steps,
            }),
            _ => Err(JourneyErrors(r.errors)),
        }
    }

    /// Whether an event of this name ends a run of this journey.
    pub fn exits_on(&self, event: &str) -> bool {
        self.exit_on.iter().any(|e| e == event)
    }
}

impl Step {
    /// The step names this step may go to, with the field naming each.
    pub fn successors(&self) -> Vec<(&'static str, &str)> {
        let pairs: Vec<(&'static str, Option<&String>)> = match self {
            Step::Wait { next, .. } | Step::Send { next, .. } => vec![("next", next.as_ref())],
            Step::Condition {
                then, otherwise, ..
            } => vec![("then", then.as_ref()), ("else", otherwise.as_ref())],
            Step::Branch { yes, no, .. } => vec![("yes", yes.as_ref()), ("no", no.as_ref())],
            Step::Exit => vec![],
        };
        pairs
            .into_iter()
            .filter_map(|(field, target)| target.map(|t| (field, t.as_str())))
            .collect()
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Step::Wait { .. } => "wait",
            Step::Condition { .. } => "condition",
            Step::Send { .. } => "send",
            Step::Branch { .. } => "branch",
            Step::Exit => "exit",
        }
    }
}

fn read_trigger(r: &mut Reader, value: &Value) -> Option<Trigger> {
    let p = "/trigger";
    let map = r.object(
        value,
        p,
        &[
            "event",
            "where",
            "geofence",
            "anniversary",
            "date",
            "offset",
            "at",
            "segment",
        ],
    )?;
    let kinds: Vec<&str> = ["event", "geofence", "anniversary", "date", "segment"]
        .into_iter()
        .filter(|k| map.contains_key(*k))
        .collect();
    if kinds.len() != 1 {
        r.fail(
            p,
            "must name exactly one of `event`, `geofence`, `anniversary`, `date` or `segment`",
        );
        return None;
    }
    let named = |r: &mut Reader, key: &str| -> Option<String> {
        let name = r.required_text(map, key, p)?;
        match check_name(&name) {
            Ok(()) => Some(name),
            Err(e) => {
                r.fail(format!("{p}/{key}"), e);
                None
            }
        }
    };
    let only = |r: &mut Reader, allowed: &[&str]| {
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                r.fail(
                    format!("{p}/{key}"),
                    format!("does not go with `{}`", kinds[0]),
                );
            }
        }
    };
    match kinds[0] {
        "event" => {
            only(r, &["event", "where"]);
            let name = named(r, "event")?;
            let filter = match map.get("where") {
                None | Some(Value::Null) => None,
                Some(w) => {
                    let c = r.condition(w, &format!("{p}/where"))?;
                    Some(c)
                }
            };
            if name == ENTERED_AREA {
                r.fail(
                    format!("{p}/event"),
                    "to start on entering an area, name the area: {\"geofence\": \"shop-lyon\"}",
                );
            }
            Some(Trigger::Event { name, filter })
        }
        "geofence" => {
            only(r, &["geofence"]);
            Some(Trigger::Geofence {
                name: named(r, "geofence")?,
            })
        }
        "segment" => {
            only(r, &["segment"]);
            Some(Trigger::Segment {
                name: named(r, "segment")?,
            })
        }
        "anniversary" => {
            only(r, &["anniversary", "at"]);
            let attribute = r.required_text(map, "anniversary", p)?;
            let at = read_at(r, map, p)?;
            Some(Trigger::Anniversary {
                attribute: attribute
                    .strip_prefix("attributes.")
                    .unwrap_or(&attribute)
                    .to_owned(),
                at,
            })
        }
        _ => {
            only(r, &["date", "offset", "at"]);
            let attribute = r.required_text(map, "date", p)?;
            let offset_days = match r.text(map, "offset", p) {
                None => 0,
                Some(raw) => parse_days(&raw).or_else(|| {
                    r.fail(
                        format!("{p}/offset"),
                        format!(
                            "`{raw}` is not a number of days; write it like \"-30d\" or \"7d\""
                        ),
                    );
                    None
                })?,
            };
            let at = read_at(r, map, p)?;
            Some(Trigger::Date {
                attribute: attribute
                    .strip_prefix("attributes.")
                    .unwrap_or(&attribute)
                    .to_owned(),
                offset_days,
                at,
            })
        }
    }
}

/// `at` of a date trigger: 09:00 when not given (a message at midnight wakes people).
fn read_at(r: &mut Reader, map: &Map<String, Value>, p: &str) -> Option<TimeOfDay> {
    if map.get("at").is_none_or(Value::is_null) {
        return TimeOfDay::parse("09:00").ok();
    }
    r.time_of_day(map, "at", p)
}

/// `-30d`, `7d`, `+1d`: whole days, at most ten years either way.
fn parse_days(raw: &str) -> Option<i32> {
    let digits = raw.trim().strip_suffix('d')?;
    let days: i32 = digits.strip_prefix('+').unwrap_or(digits).parse().ok()?;
    (days.abs() <= 3660).then_some(days)
}

fn read_step(r: &mut Reader, value: &Value, p: &str) -> Option<Step> {
    let Some(kind) = value.get("type").and_then(Value::as_str) else {
        r.fail(
            format!("{p}/type"),
            "is required: one of wait, condition, send, branch, exit",
        );
        return None;
    };
    match kind {
        "wait" => {
            let map = r.object(value, p, &["type", "for", "until", "next"])?;
            let next = r.text(map, "next", p);
            let wait = match (map.contains_key("for"), map.contains_key("until")) {
                (true, false) => Wait::For(r.duration(map, "for", p, MAX_WAIT)?),
                (false, true) => Wait::Until(r.time_of_day(map, "until", p)?),
                _ => {
                    r.fail(
                        p,
                        "a wait needs either `for` (a duration) or `until` (a time of day)",
                    );
                    return None;
                }
            };
            Some(Step::Wait { wait, next })
        }
        "condition" => {
            let map = r.object(value, p, &["type", "if", "then", "else"])?;
            let then = r.text(map, "then", p);
            let otherwise = r.text(map, "else", p);
            let Some(test) = map.get("if") else {
                r.fail(format!("{p}/if"), "is required");
                return None;
            };
            let condition = r.condition(test, &format!("{p}/if"))?;
            Some(Step::Condition {
                condition,
                then,
                otherwise,
            })
        }
        "send" => {
            let mut allowed = vec!["type", "next"];
            allowed.extend_from_slice(SEND_FIELDS);
            let map = r.object(value, p, &allowed)?;
            let next = r.text(map, "next", p);
            if !map.contains_key("content") && !map.contains_key("template") {
                r.fail(p, "a send needs `content` or `template`");
            }
            let message: Map<String, Value> = map
                .iter()
                .filter(|(k, _)| SEND_FIELDS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Some(Step::Send { message, next })
        }
        "branch" => {
            let map = r.object(value, p, &["type", "on", "within", "yes", "no"])?;
            let yes = r.text(map, "yes", p);
            let no = r.text(map, "no", p);
            let on = match map
                .get("on")
                .map(|v| serde_json::from_value::<Engagement>(v.clone()))
            {
                Some(Ok(on)) => Some(on),
                _ => {
                    r.fail(
                        format!("{p}/on"),
                        "must be \"read\", \"clicked\" or \"replied\"",
                    );
                    None
                }
            };
            let within = r.duration(map, "within", p, MAX_WITHIN);
            Some(Step::Branch {
                on: on?,
                within: within?,
                yes,
                no,
            })
        }
        "exit" => {
            r.object(value, p, &["type"])?;
            Some(Step::Exit)
        }
        other => {
            r.fail(
                format!("{p}/type"),
                format!("`{other}` is not a step type; use wait, condition, send, branch or exit"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests;
