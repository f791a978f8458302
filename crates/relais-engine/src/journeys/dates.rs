//! Triggers no request carries. Date attributes: the worker looks at the contacts of the
//! tenants that have date journeys every [`SCAN_EVERY`] and enters those whose date came
//! due (a birthday at 09:00 in their time zone, 30 days before a renewal); the occurrence
//! is the entry key, so looking twice enters once. Segment entries: at the same pace, the
//! worker evaluates the saved segment of each journey triggered by one and enters the
//! contacts who came into it since its last look ([`enter_segment_entries`]).

use super::{Occurrence, contact_zone, entry, live_journeys};
use jiff::{SignedDuration, Timestamp};
use relais_core::journey::when::{DateValue, due_anniversary, due_date};
use relais_core::journey::{JourneyDefinition, Trigger};
use relais_core::segment::Filter;
use relais_store::{PageRequest, Store, StoreError};
use serde_json::{Map, Value};
use std::collections::HashSet;

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

/// Contacts whose segment entries are written per transaction.
const ENTRIES_PER_WRITE: usize = 500;

/// Looks at the saved segment of every journey triggered by a segment entry and enters
/// the contacts who came into it since the journey's last look; how many runs were
/// entered. A journey's first look only records who is there: contacts already in the
/// segment when the journey starts watching it do not enter. Those who leave are
/// forgotten, and enter again (as the re-entry rule allows) when they come back.
pub async fn enter_segment_entries(store: &dyn Store, now: Timestamp) -> Result<usize, StoreError> {
    let mut entered = 0;
    for tenant in store.list_tenants().await? {
        for (name, journey) in live_journeys(store, &tenant.id).await? {
            if let Trigger::Segment { name: segment } = &journey.trigger {
                entered +=
                    look_at_segment(store, &tenant.id, &name, &journey, segment, now).await?;
            }
        }
    }
    Ok(entered)
}

async fn look_at_segment(
    store: &dyn Store,
    tenant: &str,
    name: &str,
    journey: &JourneyDefinition,
    segment: &str,
    now: Timestamp,
) -> Result<usize, StoreError> {
    let Some(saved) = store.segment(tenant, segment).await? else {
        tracing::warn!(
            tenant,
            journey = name,
            segment,
            "the journey's segment is not saved: nobody enters it"
        );
        return Ok(0);
    };
    let filter = match Filter::parse(&saved.filter) {
        Ok(filter) => filter,
        Err(e) => {
            tracing::warn!(tenant, journey = name, segment, error = %e, "the journey's segment no longer parses: nobody enters it");
            return Ok(0);
        }
    };
    let first_look = store
        .segment_scanned_at(tenant, name, segment)
        .await?
        .is_none();
    let mut before: HashSet<String> = store
        .segment_members(tenant, name, segment)
        .await?
        .into_iter()
        .collect();
    let mut entered = 0;
    let mut after: Option<String> = None;
    loop {
        let page = store
            .matching_contacts(tenant, &filter, now, after.as_deref(), i64::from(PAGE))
            .await?;
        let newcomers: Vec<String> = page
            .iter()
            .filter(|id| !before.remove(id.as_str()))
            .cloned()
            .collect();
        for chunk in newcomers.chunks(ENTRIES_PER_WRITE) {
            let runs: Vec<_> = if first_look {
                Vec::new()
            } else {
                chunk
                    .iter()
                    .map(|contact_id| {
                        let mut properties = Map::new();
                        properties.insert("segment".into(), Value::String(segment.to_owned()));
                        let occurrence = Occurrence {
                            key: format!("segment:{segment}:{now}"),
                            entered_by: None,
                            properties,
                        };
                        entry(tenant, name, journey, contact_id, occurrence, now)
                    })
                    .collect()
            };
            entered += store
                .apply_segment_scan(tenant, name, segment, chunk, &runs, &[], false, now)
                .await?
                .len();
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => after = Some(last.clone()),
            _ => break,
        }
    }
    let left: Vec<String> = before.into_iter().collect();
    for chunk in left.chunks(ENTRIES_PER_WRITE) {
        store
            .apply_segment_scan(tenant, name, segment, &[], &[], chunk, false, now)
            .await?;
    }
    store
        .apply_segment_scan(tenant, name, segment, &[], &[], &[], true, now)
        .await?;
    Ok(entered)
}
