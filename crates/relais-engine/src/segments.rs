//! Segments of the API: a named filter over a tenant's contacts, saved, counted and
//! sampled (`/v1/segments`), and a filter tried without saving it (`/v1/segments/preview`),
//! so that a marketer sees who a campaign would reach before it starts.

use jiff::Timestamp;
use relais_core::contact::Contact;
use relais_core::segment::{Filter, ParseError};
use relais_store::{SegmentRecord, Store, StoreError};
use serde::Serialize;

/// Contacts a preview or a segment shows by default, and at most.
pub const DEFAULT_SAMPLE: i64 = 10;
pub const MAX_SAMPLE: i64 = 100;

/// Why a segment request was refused.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The filter does not parse; the error names the character.
    #[error("the filter does not parse, {0}")]
    Filter(ParseError),
    #[error("{0}")]
    Name(String),
    #[error("no segment `{0}`")]
    NotFound(String),
    #[error("a segment named `{0}` exists")]
    NameTaken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A segment with who it holds now.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentView {
    #[serde(flatten)]
    pub record: SegmentRecord,
    pub count: i64,
    pub sample: Vec<Contact>,
}

/// Who a filter holds now: how many, and the first of them.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub filter: String,
    pub count: i64,
    pub sample: Vec<Contact>,
}

fn check_name(name: &str) -> Result<(), SegmentError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(SegmentError::Name(
            "a segment's name has 1 to 64 ASCII letters, digits, `-`, `_` or `.`".into(),
        ))
    }
}

pub fn parse(filter: &str) -> Result<Filter, SegmentError> {
    Filter::parse(filter).map_err(SegmentError::Filter)
}

/// How many contacts `filter` holds, and the first `sample` of them.
pub async fn preview(
    store: &dyn Store,
    tenant: &str,
    text: &str,
    sample: i64,
    now: Timestamp,
) -> Result<Preview, SegmentError> {
    let filter = parse(text)?;
    let (count, sample) = count_and_sample(store, tenant, &filter, sample, now).await?;
    Ok(Preview {
        filter: text.to_owned(),
        count,
        sample,
    })
}

async fn count_and_sample(
    store: &dyn Store,
    tenant: &str,
    filter: &Filter,
    sample: i64,
    now: Timestamp,
) -> Result<(i64, Vec<Contact>), SegmentError> {
    let count = store.count_matching(tenant, filter, now).await?;
    let sample = sample.clamp(0, MAX_SAMPLE);
    let ids = if sample > 0 {
        store
            .matching_contacts(tenant, filter, now, None, sample)
            .await?
    } else {
        Vec::new()
    };
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut contacts = if refs.is_empty() {
        Vec::new()
    } else {
        store.contacts_by_ids(tenant, &refs).await?
    };
    contacts.sort_by(|a, b| a.id.cmp(&b.id));
    Ok((count, contacts))
}

pub async fn create(
    store: &dyn Store,
    tenant: &str,
    name: &str,
    filter: &str,
    now: Timestamp,
) -> Result<SegmentView, SegmentError> {
    check_name(name)?;
    let parsed = parse(filter)?;
    let record = store
        .insert_segment(tenant, name, filter, now)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => SegmentError::NameTaken(name.to_owned()),
            other => other.into(),
        })?;
    let (count, sample) = count_and_sample(store, tenant, &parsed, DEFAULT_SAMPLE, now).await?;
    Ok(SegmentView {
        record,
        count,
        sample,
    })
}

pub async fn get(
    store: &dyn Store,
    tenant: &str,
    id_or_name: &str,
    sample: i64,
    now: Timestamp,
) -> Result<SegmentView, SegmentError> {
    let record = store
        .segment(tenant, id_or_name)
        .await?
        .ok_or_else(|| SegmentError::NotFound(id_or_name.to_owned()))?;
    let filter = parse(&record.filter)?;
    let (count, sample) = count_and_sample(store, tenant, &filter, sample, now).await?;
    Ok(SegmentView {
        record,
        count,
        sample,
    })
}

pub async fn update(
    store: &dyn Store,
    tenant: &str,
    id_or_name: &str,
    filter: &str,
    now: Timestamp,
) -> Result<SegmentView, SegmentError> {
    let parsed = parse(filter)?;
    let existing = store
        .segment(tenant, id_or_name)
        .await?
        .ok_or_else(|| SegmentError::NotFound(id_or_name.to_owned()))?;
    let record = store
        .update_segment(tenant, &existing.id, filter, now)
        .await?
        .ok_or_else(|| SegmentError::NotFound(id_or_name.to_owned()))?;
    let (count, sample) = count_and_sample(store, tenant, &parsed, DEFAULT_SAMPLE, now).await?;
    Ok(SegmentView {
        record,
        count,
        sample,
    })
}

pub async fn delete(store: &dyn Store, tenant: &str, id_or_name: &str) -> Result<(), SegmentError> {
    let existing = store
        .segment(tenant, id_or_name)
        .await?
        .ok_or_else(|| SegmentError::NotFound(id_or_name.to_owned()))?;
    store.delete_segment(tenant, &existing.id).await?;
    Ok(())
}
