//! Triggers no request carries. Date attributes: the worker looks at the contacts of the
//! tenants that have date journeys every [`SCAN_EVERY`] and enters those whose date came
//! due (a birthday at 09:00 in their time zone, 30 days before a renewal); the occurrence
//! is the entry key, so looking twice enters once. Segment entries: [`enter_segment`] is
//! the hook the segments feature calls with the contacts that entered a segment.

use super::{Occurrence, contact_zone, entry, live_journeys};
use jiff::{SignedDuration, Timestamp};
use relais_core::journey::Trigger;
use relais_core::journey::when::{DateValue, due_anniversary, due_date};
use relais_store::{JourneyRun, PageRequest, Store, StoreError};
use serde_json::{Map, Value};

/// How often date triggers are looked for: a birthday wished at 09:10 instead of 09:00
/// is on time, and each look reads every contact of the tenants with date journeys.
pub const SCAN_EVERY: SignedDuration = SignedDuration::from_secs(600);

/// Contacts read per page while looking for due dates.
const PAGE: u32 = 1000;

/// Enters every contact whose date attribute is due now into the journeys it triggers;
/// how many runs were entered.
pub async fn enter_due_dates(store: &dyn Store, now: Timestamp) -> Result<usize, StoreError> {
    let mut entered = 0;
    for tenant in store.list_tenants().await? {
        let journeys: Vec<_> = live_journeys(store, &tenant.id)
            .await?
            .into_iter()
            .filter(|(_, j)| {
                matches!(
                    j.trigger,
                    Trigger::Anniversary { .. } | Trigger::Date { .. }
                )
            })
            .collect();
        if journeys.is_empty() {
            continue;
        }
        let mut after = None;
        loop {
            let page = store
                .list_contacts(&tenant.id, &PageRequest { after, limit: PAGE })
                .await?;
            let mut runs = Vec::new();
            for contact in &page.data {
                for (name, journey) in &journeys {
                    let (attribute, due) = match &journey.trigger {
                        Trigger::Anniversary { attribute, at } => {
                            let Some(value) = date_attribute(&contact.attributes, attribute) else {
                                continue;
                            };
                            let due = due_anniversary(value, *at, &contact_zone(contact), now)
                                .map(|(year, _)| format!("anniversary:{attribute}:{year}"));
                            (attribute, due)
                        }
                        Trigger::Date {
                            attribute,
                            offset_days,
                            at,
                        } => {
                            let Some(value) = date_attribute(&contact.attributes, attribute) else {
                                continue;
                            };
                            let due =
                                due_date(value, *offset_days, *at, &contact_zone(contact), now)
                                    .map(|moment| format!("date:{attribute}:{moment}"));
                            (attribute, due)
                        }
                        _ => continue,
                    };
                    let Some(key) = due else { continue };
                    let mut properties = Map::new();
                    if let Some(v) = contact.attributes.get(attribute) {
                        properties.insert(attribute.clone(), v.clone());
                    }
                    let occurrence = Occurrence {
                        key,
                        entered_by: None,
                        properties,
                    };
                    runs.push(entry(
                        &tenant.id,
                        name,
                        journey,
                        &contact.id,
                        occurrence,
                        now,
                    ));
                }
            }
            entered += store.enter_journey_runs(&runs).await?.len();
            match page.next_cursor {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
    }
    Ok(entered)
}

/// A contact's date attribute, when it holds a readable date (a wrong one is the
/// contact's data, not an error of the journey: it is skipped).
fn date_attribute(attributes: &Map<String, Value>, name: &str) -> Option<DateValue> {
    relais_core::journey::dotted(attributes, name)
        .and_then(Value::as_str)
        .and_then(|raw| DateValue::parse(raw).ok())
}

/// The hook for segment entries: enters `contact_ids`, who just entered segment
/// `segment` (`entry_key` tells this entry from later ones, e.g. the evaluation's time),
/// into the tenant's journeys triggered by that segment. The runs entered.
pub async fn enter_segment(
    store: &dyn Store,
    tenant: &str,
    segment: &str,
    contact_ids: &[String],
    entry_key: &str,
    now: Timestamp,
) -> Result<Vec<JourneyRun>, StoreError> {
    let mut runs = Vec::new();
    for (name, journey) in live_journeys(store, tenant).await? {
        if !matches!(&journey.trigger, Trigger::Segment { name } if name == segment) {
            continue;
        }
        for contact_id in contact_ids {
            let mut properties = Map::new();
            properties.insert("segment".into(), Value::String(segment.to_owned()));
            let occurrence = Occurrence {
                key: format!("segment:{segment}:{entry_key}"),
                entered_by: None,
                properties,
            };
            runs.push(entry(tenant, &name, &journey, contact_id, occurrence, now));
        }
    }
    store.enter_journey_runs(&runs).await
}
