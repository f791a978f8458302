//! `POST /v1/events`: a customer event recorded for its contact, with what it causes —
//! goal events end the runs they are the goal of, triggers enter runs, an `entered_area`
//! position is matched against the tenant's geofences — all written at once.

use super::{Occurrence, entry, live_journeys, lookup};
use jiff::Timestamp;
use relais_core::channel::ChannelKind;
use relais_core::contact::{AddressRules, Contact, Identity};
use relais_core::journey::geo::Position;
use relais_core::journey::{ENTERED_AREA, Trigger, check_name};
use relais_core::phone::normalize_phone;
use relais_store::{ContactEvent, EventRecorded, EventWrite, PlannedContact, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The tenant setting that, when `true`, creates the contact of an event for an unknown
/// phone number or address (as `"create_contact": true` does for one request).
pub const CREATE_CONTACTS_SETTING: &str = "events_create_contacts";

/// Largest `properties` object, in bytes of JSON: an event describes what happened, it
/// does not carry documents.
pub const MAX_PROPERTIES_BYTES: usize = 16 * 1024;

/// Who an event is about: as `to` of `POST /v1/messages`.
#[derive(Debug, Clone)]
pub enum ContactRef {
    Id(String),
    Phone(String),
    Address {
        channel: ChannelKind,
        address: String,
    },
}

impl<'de> Deserialize<'de> for ContactRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        const EXPECTED: &str = "`contact` must be a phone number such as \"+33612345678\", {\"contact_id\": …} or {\"channel\": …, \"address\": …}";
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct ById {
            contact_id: String,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct ByAddress {
            channel: ChannelKind,
            address: String,
        }
        match Value::deserialize(d)? {
            Value::String(phone) => Ok(ContactRef::Phone(phone)),
            v @ Value::Object(_) if v.get("contact_id").is_some() => ById::deserialize(v)
                .map(|c| ContactRef::Id(c.contact_id))
                .map_err(|e| D::Error::custom(format!("{e}; {EXPECTED}"))),
            v @ Value::Object(_) => ByAddress::deserialize(v)
                .map(|a| ContactRef::Address {
                    channel: a.channel,
                    address: a.address,
                })
                .map_err(|e| D::Error::custom(format!("{e}; {EXPECTED}"))),
            _ => Err(D::Error::custom(EXPECTED)),
        }
    }
}

/// The body of `POST /v1/events`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    pub contact: ContactRef,
    /// `cart_abandoned`, `purchase`, `entered_area`…
    pub name: String,
    #[serde(default)]
    pub properties: Map<String, Value>,
    /// The client's id of the event: the same id again is answered with the first
    /// event's result and applies nothing.
    #[serde(default)]
    pub id: Option<String>,
    /// A conversion's value (an order's amount).
    #[serde(default)]
    pub value: Option<f64>,
    /// Create the contact when the phone number or address is unknown (default: the
    /// tenant's `events_create_contacts` setting, else refuse with 404).
    #[serde(default)]
    pub create_contact: Option<bool>,
}

/// Why an event was refused; nothing was recorded.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("{pointer}: {detail}")]
    Invalid { pointer: String, detail: String },
    /// No contact matches and none was to be created.
    #[error("{0}")]
    UnknownContact(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(pointer: &str, detail: impl Into<String>) -> EventError {
    EventError::Invalid {
        pointer: pointer.to_owned(),
        detail: detail.into(),
    }
}

/// What recording an event did (or did the first time, for a repeated id).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventAnswer {
    pub id: String,
    pub contact_id: String,
    pub name: String,
    pub at: Timestamp,
    /// The contact was created for this event.
    pub created_contact: bool,
    /// Journeys the event entered the contact into.
    pub entered: Vec<String>,
    /// Journeys whose run for the contact the event ended (it is their goal).
    pub exited: Vec<String>,
    /// The geofences an `entered_area` position lies in.
    pub geofences: Vec<String>,
    /// This id was recorded before: the answer is the first one's, nothing was applied.
    #[serde(skip)]
    pub duplicate: bool,
}

impl EventAnswer {
    fn of(event: &ContactEvent, duplicate: bool) -> EventAnswer {
        let names = |key: &str| -> Vec<String> {
            event
                .outcome
                .get(key)
                .and_then(Value::as_array)
                .map_or_else(Vec::new, |list| {
                    list.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
        };
        EventAnswer {
            id: event
                .idempotency_id
                .clone()
                .unwrap_or_else(|| event.id.clone()),
            contact_id: event.contact_id.clone(),
            name: event.name.clone(),
            at: event.at,
            created_contact: event
                .outcome
                .get("created_contact")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            entered: names("entered"),
            exited: names("exited"),
            geofences: names("geofences"),
            duplicate,
        }
    }
}

/// Records a customer event for `tenant`; see the module doc.
pub async fn record_event(
    store: &dyn Store,
    rules: AddressRules,
    tenant: &str,
    request: EventRequest,
    now: Timestamp,
) -> Result<EventAnswer, EventError> {
    let checked = check(&request)?;
    if let Some(key) = &request.id
        && let Some(first) = store.contact_event_by_idempotency_id(tenant, key).await?
    {
        return Ok(EventAnswer::of(&first, true));
    }
    let create = match request.create_contact {
        Some(create) => create,
        None => store
            .setting(tenant, CREATE_CONTACTS_SETTING)
            .await?
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
    };
    // A contact created for the event by a concurrent request meanwhile makes the write
    // refuse ours: once more finds theirs.
    for attempt in 0..2 {
        let (contact, planned) =
            find_contact(store, rules, tenant, &request.contact, create, now).await?;
        match apply(
            store,
            tenant,
            &request,
            &checked,
            &contact,
            planned.as_ref(),
            now,
        )
        .await
        {
            Err(EventError::Store(StoreError::IdentityTaken(_))) if attempt == 0 => continue,
            other => return other,
        }
    }
    Err(StoreError::Conflict("the event's contact kept changing; try again".into()).into())
}

/// What the request holds, checked.
struct Checked {
    position: Option<Position>,
}

fn check(request: &EventRequest) -> Result<Checked, EventError> {
    check_name(&request.name).map_err(|e| invalid("/name", e))?;
    if let Some(id) = &request.id
        && (id.trim().is_empty() || id.len() > 255)
    {
        return Err(invalid("/id", "must hold 1 to 255 characters"));
    }
    if let Some(value) = request.value
        && !value.is_finite()
    {
        return Err(invalid("/value", "must be a finite number"));
    }
    if Value::Object(request.properties.clone()).to_string().len() > MAX_PROPERTIES_BYTES {
        return Err(invalid(
            "/properties",
            format!("must take at most {MAX_PROPERTIES_BYTES} bytes of JSON"),
        ));
    }
    let position = if request.name == ENTERED_AREA {
        let coordinate = |key: &str| {
            request
                .properties
                .get(key)
                .and_then(Value::as_f64)
                .ok_or_else(|| {
                    invalid(
                        &format!("/properties/{key}"),
                        "an `entered_area` event needs `lat` and `lon` numbers",
                    )
                })
        };
        let (lat, lon) = (coordinate("lat")?, coordinate("lon")?);
        Some(Position::new(lat, lon).map_err(|e| {
            let field = if matches!(e, relais_core::journey::geo::GeoError::Latitude(_)) {
                "lat"
            } else {
                "lon"
            };
            invalid(&format!("/properties/{field}"), e.to_string())
        })?)
    } else {
        None
    };
    Ok(Checked { position })
}

/// The event's contact, or the one to create with it.
async fn find_contact(
    store: &dyn Store,
    rules: AddressRules,
    tenant: &str,
    reference: &ContactRef,
    create: bool,
    now: Timestamp,
) -> Result<(Contact, Option<PlannedContact>), EventError> {
    let identity = match reference {
        ContactRef::Id(id) => {
            return match store.contact(tenant, id).await? {
                Some(c) => Ok((c, None)),
                None => Err(EventError::UnknownContact(format!(
                    "no contact has id `{id}` (a contact is created only for a phone number or an address)"
                ))),
            };
        }
        ContactRef::Phone(raw) => {
            let phone = normalize_phone(raw, rules.default_country)
                .map_err(|e| invalid("/contact", e.to_string()))?;
            Identity {
                channel: ChannelKind::PHONE_NUMBER,
                address: phone.into_string(),
            }
        }
        ContactRef::Address { channel, address } => Identity::parse(*channel, address, rules)
            .map_err(|e| invalid("/contact/address", e.to_string()))?,
    };
    // A bare phone number is the person's on any channel (SMS, WhatsApp, …).
    let channel = match reference {
        ContactRef::Phone(_) => None,
        _ => Some(identity.channel),
    };
    if let Some(found) = store
        .contact_by_identity(tenant, channel, &identity.address)
        .await?
    {
        return Ok((found, None));
    }
    if !create {
        return Err(EventError::UnknownContact(format!(
            "no contact has the address `{}`; send \"create_contact\": true to create it",
            identity.address
        )));
    }
    let mut plan = store
        .plan_contacts(tenant, std::slice::from_ref(&identity), now)
        .await?;
    let contact = plan
        .resolved
        .pop()
        .map(|(c, _)| c)
        .ok_or_else(|| StoreError::Corrupt("a planned contact is missing".into()))?;
    Ok((contact, plan.new.pop()))
}

async fn apply(
    store: &dyn Store,
    tenant: &str,
    request: &EventRequest,
    checked: &Checked,
    contact: &Contact,
    planned: Option<&PlannedContact>,
    now: Timestamp,
) -> Result<EventAnswer, EventError> {
    let mut geofences = Vec::new();
    if let Some(position) = checked.position {
        for record in store.geofences(tenant).await? {
            if record.geofence()?.contains(position) {
                geofences.push(record.name);
            }
        }
    }
    let event_id = relais_core::ids::new_id();
    let occurrence_key = format!("event:{}", request.id.as_deref().unwrap_or(&event_id));
    let mut exits = Vec::new();
    let mut entries = Vec::new();
    for (name, journey) in live_journeys(store, tenant).await? {
        if journey.exits_on(&request.name) {
            exits.push(name.clone());
        }
        let mut properties = request.properties.clone();
        let triggered = match &journey.trigger {
            Trigger::Event {
                name: wanted,
                filter,
            } => {
                wanted == &request.name
                    && filter
                        .as_ref()
                        .is_none_or(|f| f.holds(&lookup(contact, &request.properties)))
            }
            Trigger::Geofence { name: area } => {
                let inside = geofences.contains(area);
                if inside {
                    properties.insert("geofence".into(), Value::String(area.clone()));
                }
                inside
            }
            Trigger::Anniversary { .. } | Trigger::Date { .. } | Trigger::Segment { .. } => false,
        };
        if triggered {
            let occurrence = Occurrence {
                key: occurrence_key.clone(),
                entered_by: Some(event_id.clone()),
                properties,
            };
            entries.push(entry(tenant, &name, &journey, &contact.id, occurrence, now));
        }
    }
    let mut outcome = Map::new();
    outcome.insert("geofences".into(), json!(geofences));
    outcome.insert("created_contact".into(), Value::Bool(planned.is_some()));
    let event = ContactEvent {
        id: event_id,
        tenant_id: tenant.to_owned(),
        contact_id: contact.id.clone(),
        name: request.name.clone(),
        properties: request.properties.clone(),
        value: request.value,
        idempotency_id: request.id.clone(),
        outcome,
        at: now,
    };
    let write = EventWrite {
        event: &event,
        new_contact: planned,
        exits: &exits,
        entries: &entries,
    };
    match store.record_contact_event(&write).await? {
        EventRecorded::New { event, .. } => Ok(EventAnswer::of(&event, false)),
        EventRecorded::Duplicate(first) => Ok(EventAnswer::of(&first, true)),
    }
}
