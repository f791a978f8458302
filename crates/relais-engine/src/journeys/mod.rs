//! Journeys at run time: customer events recorded and matched against the tenant's
//! journeys and geofences ([`intake`]), journey documents and geofences checked before they
//! are stored (here), contacts' runs advanced step by step by a worker that claims due runs
//! with leases ([`worker`]), the engagement a `branch` looks for ([`engagement`]), and the
//! triggers no request carries: date attributes and segment entries ([`dates`]).
//!
//! Invariants: an event is recorded with everything it causes in one transaction (the
//! contact it creates, the runs it enters and ends), or not at all; a client's event id
//! enters nothing twice; a run's position is in the store, so a restarted worker takes it
//! up where it stood; a `send` step's message is accepted with an idempotency key of the
//! run and its step count, so a step retried after a crash finds its message instead of
//! sending another.

pub mod dates;
pub mod engagement;
pub mod intake;
pub mod report;
pub mod worker;

pub use dates::enter_segment_entries;
pub use intake::{ContactRef, EventAnswer, EventError, EventRequest, record_event};
pub use report::{JourneyAnalytics, journey_analytics};
pub use worker::{JourneyReport, JourneyWorker};

use crate::send::SendRequest;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use relais_core::contact::Contact;
use relais_core::journey::geo::{GeoError, Geofence};
use relais_core::journey::{
    JourneyDefinition, JourneyError, JourneyErrors, Reentry, Step, check_name,
};
use relais_core::phone::normalize_phone;
use relais_store::{GeofenceRecord, JourneyRecord, NewJourneyRun, Store, StoreError};
use serde_json::{Map, Value, json};

/// Why a journey or geofence was not stored; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum JourneysError {
    /// The document has mistakes, each at its JSON pointer.
    #[error("{0}")]
    Invalid(JourneyErrors),
    #[error("{0}")]
    BadName(String),
    #[error("{0}")]
    BadGeofence(GeoError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a journey document — its shape ([`JourneyDefinition::parse`]) and each `send`
/// step as the accept path will read it — and stores it.
pub async fn put_journey(
    store: &dyn Store,
    tenant: &str,
    name: &str,
    document: &Value,
    now: Timestamp,
) -> Result<JourneyRecord, JourneysError> {
    check_name(name).map_err(JourneysError::BadName)?;
    check_journey(document).map_err(JourneysError::Invalid)?;
    Ok(store.put_journey(tenant, name, document, now).await?)
}

/// [`JourneyDefinition::parse`], and every `send` step read as a `POST /v1/messages` body:
/// a mistake there is named by its step now, not found by the worker hours later.
pub fn check_journey(document: &Value) -> Result<JourneyDefinition, JourneyErrors> {
    let definition = JourneyDefinition::parse(document)?;
    let mut errors = Vec::new();
    for (name, step) in &definition.steps {
        if let Step::Send { message, .. } = step
            && let Err(e) = send_request(message, "check", &Map::new())
        {
            errors.push(JourneyError {
                pointer: format!("/steps/{name}{}", e.0),
                message: e.1,
            });
        }
    }
    if errors.is_empty() {
        Ok(definition)
    } else {
        Err(JourneyErrors(errors))
    }
}

/// The request a `send` step makes for `contact_id`: the step's fields, `to` the contact,
/// and the event's properties as template variables the step does not set itself
/// (`{{ cart_url }}`). On error, the pointer inside the step and what is wrong.
pub(crate) fn send_request(
    message: &Map<String, Value>,
    contact_id: &str,
    event_properties: &Map<String, Value>,
) -> Result<(SendRequest, Value), (String, String)> {
    let mut body = message.clone();
    body.insert("to".into(), json!({ "contact_id": contact_id }));
    if !event_properties.is_empty() {
        let mut variables = match body.remove("variables") {
            Some(Value::Object(v)) => v,
            Some(other) => {
                return Err((
                    "/variables".into(),
                    format!("must be an object, not {other}"),
                ));
            }
            None => Map::new(),
        };
        for (k, v) in event_properties {
            variables.entry(k.clone()).or_insert_with(|| v.clone());
        }
        body.insert("variables".into(), Value::Object(variables));
    }
    let body = Value::Object(body);
    let request = serde_path_to_error::deserialize::<_, SendRequest>(&body).map_err(|e| {
        use serde_path_to_error::Segment;
        let mut pointer = String::new();
        for segment in e.path().iter() {
            match segment {
                Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
                Segment::Map { key } | Segment::Enum { variant: key } => {
                    pointer.push('/');
                    pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                }
                Segment::Unknown => pointer.push_str("/?"),
            }
        }
        (pointer, e.into_inner().to_string())
    })?;
    Ok((request, body))
}

/// Checks a geofence and stores it under `name`.
pub async fn put_geofence(
    store: &dyn Store,
    tenant: &str,
    name: &str,
    lat: f64,
    lon: f64,
    radius_m: f64,
    now: Timestamp,
) -> Result<GeofenceRecord, JourneysError> {
    check_name(name).map_err(JourneysError::BadName)?;
    let area = Geofence::new(lat, lon, radius_m).map_err(JourneysError::BadGeofence)?;
    Ok(store.put_geofence(tenant, name, &area, now).await?)
}

/// The tenant's journeys that parse, with their names. A stored document that no longer
/// parses (a rule tightened since it was stored) is skipped with a warning rather than
/// stopping every other journey.
pub(crate) async fn live_journeys(
    store: &dyn Store,
    tenant: &str,
) -> Result<Vec<(String, JourneyDefinition)>, StoreError> {
    Ok(store
        .list_journeys(tenant)
        .await?
        .into_iter()
        .filter_map(|record| match JourneyDefinition::parse(&record.definition) {
            Ok(definition) => Some((record.name, definition)),
            Err(e) => {
                tracing::warn!(tenant, journey = %record.name, error = %e, "a stored journey no longer parses; skipped");
                None
            }
        })
        .collect())
}

/// One occurrence of a trigger for a contact.
pub(crate) struct Occurrence {
    /// What tells it from other occurrences: an event's id, a birthday's year.
    pub key: String,
    /// The event, when an event is the trigger.
    pub entered_by: Option<String>,
    /// What conditions and templates read as `event.*`.
    pub properties: Map<String, Value>,
}

/// A run entering `journey` for `contact_id` now, keyed by the occurrence — or by `once`
/// when the journey is entered once in a contact's life.
pub(crate) fn entry(
    tenant: &str,
    journey: &str,
    definition: &JourneyDefinition,
    contact_id: &str,
    occurrence: Occurrence,
    now: Timestamp,
) -> NewJourneyRun {
    let Occurrence {
        key: occurrence,
        entered_by,
        properties: event_properties,
    } = occurrence;
    NewJourneyRun {
        id: relais_core::ids::new_id(),
        tenant_id: tenant.to_owned(),
        journey: journey.to_owned(),
        contact_id: contact_id.to_owned(),
        entry_key: match definition.reentry {
            Reentry::Once => "once".to_owned(),
            Reentry::AfterExit | Reentry::Always => occurrence,
        },
        exclusive: definition.reentry != Reentry::Always,
        entered_by,
        event_properties,
        step: definition.start.clone(),
        due_at: now,
    }
}

/// The contact's time zone: theirs, else their phone number's country's, else UTC.
pub(crate) fn contact_zone(contact: &Contact) -> TimeZone {
    if let Some(tz) = contact
        .timezone
        .as_deref()
        .and_then(|tz| TimeZone::get(tz).ok())
    {
        return tz;
    }
    contact
        .identities
        .iter()
        .filter(|i| i.channel.is_phone_addressed())
        .find_map(|i| normalize_phone(&i.address, None).ok()?.region())
        .and_then(|country| crate::send::zone_of_country(&country))
        .unwrap_or(TimeZone::UTC)
}

/// A field of a condition, for `contact` and the event properties of a run or an event.
pub(crate) fn lookup<'a>(
    contact: &'a Contact,
    event: &'a Map<String, Value>,
) -> impl Fn(&str) -> Option<Value> + 'a {
    move |field: &str| match field.split_once('.') {
        Some(("attributes", path)) => {
            relais_core::journey::dotted(&contact.attributes, path).cloned()
        }
        Some(("event", path)) => relais_core::journey::dotted(event, path).cloned(),
        _ => match field {
            "timezone" => contact.timezone.clone().map(Value::String),
            "locale" => contact.locale.clone().map(Value::String),
            _ => None,
        },
    }
}
