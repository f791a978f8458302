//! What a journey shows of itself: its runs by the step they stand at (or ended at), and
//! the funnel of each `send` step's messages by channel, with conversions credited by
//! its goal events (`exit_on`), as JSON and as CSV.

use crate::campaigns::report::{FunnelRow, address_prefix_chars, funnel_csv, funnel_rows};
use relais_core::journey::{JourneyDefinition, Step};
use relais_store::{FunnelQuery, Store, StoreError};
use serde::Serialize;
use std::collections::BTreeMap;

/// How long after a message a goal event is credited to it.
pub const CONVERSION_WINDOW: jiff::SignedDuration = jiff::SignedDuration::from_hours(7 * 24);

/// One step of the journey in the report.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub step: String,
    /// `wait`, `condition`, `send`, `branch` or `exit`; `null` for a step no longer in
    /// the journey that runs still stand at.
    pub kind: Option<&'static str>,
    /// Runs at this step by state (`active` runs stand there now; the others ended there).
    pub runs: BTreeMap<String, i64>,
    /// The messages the step sent, by channel (`send` steps).
    pub funnel: Vec<FunnelRow>,
}

/// A journey's report (`GET /v1/journeys/{name}/report`).
#[derive(Debug, Clone, Serialize)]
pub struct JourneyAnalytics {
    pub name: String,
    /// The goal events credited as conversions.
    pub conversion_events: Vec<String>,
    pub steps: Vec<StepReport>,
}

impl JourneyAnalytics {
    /// The funnel as CSV, one line per `send` step and channel.
    pub fn to_csv(&self) -> String {
        let rows: Vec<FunnelRow> = self
            .steps
            .iter()
            .flat_map(|step| {
                step.funnel.iter().map(|row| FunnelRow {
                    variant: Some(step.step.clone()),
                    ..row.clone()
                })
            })
            .collect();
        funnel_csv("step", &rows)
    }
}

fn kind_of(step: &Step) -> &'static str {
    match step {
        Step::Wait { .. } => "wait",
        Step::Condition { .. } => "condition",
        Step::Send { .. } => "send",
        Step::Branch { .. } => "branch",
        Step::Exit => "exit",
    }
}

/// The report of the tenant's journey `name`; `None` when there is no such journey.
pub async fn journey_analytics(
    store: &dyn Store,
    tenant: &str,
    name: &str,
) -> Result<Option<JourneyAnalytics>, StoreError> {
    let Some(record) = store.journey(tenant, name).await? else {
        return Ok(None);
    };
    // A stored journey that no longer parses still has runs and messages to count.
    let definition = JourneyDefinition::parse(&record.definition).ok();
    let goals = definition
        .as_ref()
        .map(|d| d.exit_on.clone())
        .unwrap_or_default();
    let prices = crate::settings::prices_of(store, tenant).await?;
    let query = FunnelQuery {
        conversion: (!goals.is_empty()).then(|| {
            let micros = i64::try_from(CONVERSION_WINDOW.as_micros()).unwrap_or(i64::MAX);
            (goals.clone(), micros)
        }),
        address_prefix_chars: address_prefix_chars(&prices),
    };
    let funnel = store.journey_funnel(tenant, name, &query).await?;
    let mut steps: BTreeMap<String, StepReport> = BTreeMap::new();
    let definition = definition.as_ref();
    if let Some(d) = definition {
        for name in d.steps.keys() {
            step_of(&mut steps, definition, name);
        }
    }
    for count in store.journey_step_counts(tenant, name).await? {
        *step_of(&mut steps, definition, &count.step)
            .runs
            .entry(count.state)
            .or_default() += count.count;
    }
    for mut row in funnel_rows(&funnel, &prices) {
        let name = row.variant.take().unwrap_or_default();
        step_of(&mut steps, definition, &name).funnel.push(row);
    }
    Ok(Some(JourneyAnalytics {
        name: record.name,
        conversion_events: goals,
        steps: steps.into_values().collect(),
    }))
}

fn step_of<'a>(
    steps: &'a mut BTreeMap<String, StepReport>,
    definition: Option<&JourneyDefinition>,
    name: &str,
) -> &'a mut StepReport {
    steps.entry(name.to_owned()).or_insert_with(|| StepReport {
        step: name.to_owned(),
        kind: definition.and_then(|d| d.steps.get(name)).map(kind_of),
        runs: BTreeMap::new(),
        funnel: Vec::new(),
    })
}
