//! GDPR requests as the API and the CLI make them: a contact's export (JSON, or a zip
//! of one CSV per kind), their erasure, the rule that an erased person comes back only
//! with a fresh opt-in, and the retention sweeper.
//!
//! The re-creation rule: once a person is erased, the keyed digests of their addresses
//! block `POST /v1/contacts` and import rows naming one of them, unless the request
//! carries a fresh opt-in with its proof (`opt_in` in the create body; an `opt_in_proof`
//! column beside an `opted_in` `consent:<purpose>` in the import). A contact created so
//! unblocks those addresses.

pub mod retention;
pub mod zip;

use jiff::Timestamp;
use relais_core::channel::ChannelKind;
use relais_core::consent::{ConsentRecord, ConsentSource, ConsentStatus, Purpose};
use relais_core::contact::Contact;
use relais_store::{ContactExport, ErasureReport, NewContact, Store, StoreError};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error("contact {0} not found")]
    NotFound(String),
    /// The address belongs to an erased person and the request carries no fresh opt-in.
    #[error(
        "{0} belongs to a person whose data was erased; create them again only with a fresh opt-in (`opt_in` with its `proof`)"
    )]
    Erased(String),
    #[error("the opt-in needs a proof (what the person agreed to, where and when)")]
    ProofMissing,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for PrivacyError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => {
                PrivacyError::NotFound(what.trim_start_matches("contact ").to_owned())
            }
            other => PrivacyError::Store(other),
        }
    }
}

/// A fresh opt-in given with a request to create a contact.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptIn {
    /// `marketing`, `transactional`, `all` or a topic.
    pub purpose: Purpose,
    /// The channel it covers; all channels when left out.
    #[serde(default)]
    pub channel: Option<ChannelKind>,
    /// What the person agreed to, where and when (kept in the consent ledger).
    pub proof: String,
}

/// Everything Relais holds about the tenant's contact `id`.
pub async fn export_contact(
    store: &dyn Store,
    tenant: &str,
    id: &str,
) -> Result<ContactExport, PrivacyError> {
    store
        .export_contact(tenant, id)
        .await?
        .ok_or_else(|| PrivacyError::NotFound(id.to_owned()))
}

/// The export as a zip holding one CSV per kind (`messages_out.csv`…) and the whole
/// export as `export.json`.
pub fn export_zip(export: &ContactExport) -> Result<Vec<u8>, PrivacyError> {
    let mut archive = zip::ZipWriter::default();
    for section in &export.sections {
        archive.add(&format!("{}.csv", section.kind), &csv_of(&section.rows)?);
    }
    let json = serde_json::to_vec_pretty(export)
        .map_err(|e| PrivacyError::Store(StoreError::Invalid(format!("export: {e}"))))?;
    archive.add("export.json", &json);
    Ok(archive.finish())
}

/// Rows as CSV: one column per key (in the rows' key order, then first appearance),
/// nested values as JSON.
fn csv_of(rows: &[serde_json::Map<String, serde_json::Value>]) -> Result<Vec<u8>, PrivacyError> {
    let mut columns: Vec<&str> = Vec::new();
    for row in rows {
        for key in row.keys() {
            if !columns.contains(&key.as_str()) {
                columns.push(key);
            }
        }
    }
    if columns.is_empty() {
        // No row: an empty file (the kind's name says what would be in it).
        return Ok(Vec::new());
    }
    let failed = |e: csv::Error| PrivacyError::Store(StoreError::Invalid(format!("csv: {e}")));
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(&columns).map_err(failed)?;
    for row in rows {
        out.write_record(columns.iter().map(|c| match row.get(*c) {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        }))
        .map_err(failed)?;
    }
    out.into_inner()
        .map_err(|e| PrivacyError::Store(StoreError::Invalid(format!("csv: {e}"))))
}

/// Erases the tenant's contact `id` everywhere and blocks their addresses.
pub async fn erase_contact(
    store: &dyn Store,
    tenant: &str,
    id: &str,
    now: Timestamp,
) -> Result<ErasureReport, PrivacyError> {
    let report = store.erase_contact(tenant, id, now).await?;
    tracing::info!(
        tenant,
        contact = id,
        suppressed = report.suppressed_addresses,
        "contact erased"
    );
    metrics::counter!("relais_contacts_erased_total").increment(1);
    Ok(report)
}

/// Creates a contact, unless one of its addresses belongs to an erased person and no
/// fresh opt-in comes with it; the opt-in is recorded in the consent ledger and unblocks
/// the addresses.
pub async fn create_contact(
    store: &dyn Store,
    tenant: &str,
    new: &NewContact,
    opt_in: Option<&OptIn>,
    now: Timestamp,
) -> Result<Contact, PrivacyError> {
    if opt_in.is_some_and(|o| o.proof.trim().is_empty()) {
        return Err(PrivacyError::ProofMissing);
    }
    let addresses: Vec<String> = new.identities.iter().map(|i| i.address.clone()).collect();
    let blocked = store.suppressed_addresses(tenant, &addresses).await?;
    if let (Some(address), None) = (blocked.first(), opt_in) {
        return Err(PrivacyError::Erased(address.clone()));
    }
    let contact = store.create_contact(tenant, new, now).await?;
    if let Some(opt_in) = opt_in {
        store
            .append_consent(
                tenant,
                &ConsentRecord {
                    id: relais_core::ids::new_id(),
                    contact_id: contact.id.clone(),
                    channel: opt_in.channel,
                    purpose: opt_in.purpose.clone(),
                    status: ConsentStatus::OptedIn,
                    source: ConsentSource::Api,
                    proof: Some(opt_in.proof.clone()),
                    recorded_at: now,
                },
            )
            .await?;
        if !blocked.is_empty() {
            store.lift_suppression(tenant, &blocked).await?;
        }
    }
    Ok(contact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_csv_with_every_key_as_a_column() {
        let rows: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(
            r#"[{"id": "a", "content": {"text": "hi, \"you\""}}, {"id": "b", "extra": 2, "content": null}]"#,
        )
        .unwrap();
        let csv = String::from_utf8(csv_of(&rows).unwrap()).unwrap();
        assert_eq!(
            csv,
            "content,id,extra\n\"{\"\"text\"\":\"\"hi, \\\"\"you\\\"\"\"\"}\",a,\n,b,2\n"
        );
        assert!(
            csv_of(&[]).unwrap().is_empty(),
            "no row, no header to guess"
        );
    }
}
