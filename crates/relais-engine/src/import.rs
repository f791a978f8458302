//! Streaming contact import from CSV.
//!
//! A blocking thread parses and validates rows (CSV parsing is CPU work) and hands batches
//! to the async side, which writes each batch in one transaction. The channel between them
//! is bounded, so a fast file never buffers more than two batches in memory, and parsing
//! the next batch overlaps with writing the previous one.
//!
//! Columns: an identity column per channel kind (`sms` or `phone`, `whatsapp`, `telegram`,
//! `email`, `webpush`, `webchat`, …), `timezone`, `locale`, `consent:<purpose>` (value
//! `opted_in` / `opted_out`, also `yes`/`no`/`true`/`false`/`1`/`0`), `opt_in_proof` (the
//! proof kept with the row's opt-ins), and every other column becomes a string attribute.
//! Empty cells are ignored.
//!
//! A row naming an address of an erased person is rejected unless it carries a fresh
//! opt-in: an `opted_in` consent column and an `opt_in_proof` (see `privacy`).

use jiff::Timestamp;
use relais_core::channel::ChannelKind;
use relais_core::consent::{ConsentStatus, Purpose};
use relais_core::contact::{
    AddressRules, Attributes, Identity, validate_locale, validate_timezone,
};
use relais_store::{ImportConsent, ImportOutcome, ImportRow, Store, StoreError};
use serde::Serialize;
use std::io::Read;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Rows written per transaction.
pub const BATCH_ROWS: usize = 5_000;
/// Rejected rows listed one by one in the summary; the count is always exact.
pub const MAX_LISTED_ERRORS: usize = 1_000;

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ImportSummary {
    pub rows: u64,
    pub created: u64,
    pub updated: u64,
    pub rejected: u64,
    /// The first rejected rows with their reasons (line numbers count the header as 1).
    pub errors: Vec<RowError>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the CSV header is unusable: {0}")]
    Header(String),
    #[error("cannot read the CSV input: {0}")]
    Read(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Progress as the import goes: rows and input bytes handled so far.
pub trait ImportProgress: Send + Sync {
    fn advance(&self, rows: u64, bytes: u64);
}

impl ImportProgress for () {
    fn advance(&self, _: u64, _: u64) {}
}

enum Column {
    Identity(ChannelKind),
    Timezone,
    Locale,
    Consent(Purpose),
    OptInProof,
    Attribute(String),
    Ignored,
}

struct Columns(Vec<Column>);

impl Columns {
    fn from_header(header: &csv::StringRecord) -> Result<Columns, ImportError> {
        let mut columns = Vec::with_capacity(header.len());
        let mut has_identity = false;
        for name in header.iter() {
            let name = name.trim().trim_start_matches('\u{feff}');
            let lower = name.to_ascii_lowercase();
            let column = if let Some(purpose) = lower
                .strip_prefix("consent:")
                .or_else(|| lower.strip_prefix("consent_"))
            {
                Column::Consent(
                    Purpose::parse(purpose)
                        .map_err(|e| ImportError::Header(format!("column `{name}`: {e}")))?,
                )
            } else if lower == "opt_in_proof" {
                Column::OptInProof
            } else if lower == "phone" || lower == "mobile" {
                Column::Identity(ChannelKind::PHONE_NUMBER)
            } else if let Ok(kind) = lower.parse::<ChannelKind>() {
                Column::Identity(kind)
            } else if lower == "timezone" || lower == "time_zone" {
                Column::Timezone
            } else if lower == "locale" || lower == "language" {
                Column::Locale
            } else if lower == "id" || name.is_empty() {
                Column::Ignored
            } else {
                Column::Attribute(name.to_owned())
            };
            has_identity |= matches!(column, Column::Identity(_));
            columns.push(column);
        }
        if !has_identity {
            return Err(ImportError::Header(
                "no identity column; name at least one column phone, sms, whatsapp, telegram, email, webpush or webchat".into(),
            ));
        }
        Ok(Columns(columns))
    }

    /// The row, and whether it carries a fresh opt-in (an `opted_in` consent with an
    /// `opt_in_proof`).
    fn row(
        &self,
        record: &csv::StringRecord,
        rules: AddressRules,
    ) -> Result<(ImportRow, bool), String> {
        let mut row = ImportRow {
            attributes: Attributes::new(),
            ..Default::default()
        };
        let mut proof = None;
        for (column, value) in self.0.iter().zip(record.iter()) {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            match column {
                Column::Identity(kind) => {
                    let identity =
                        Identity::parse(*kind, value, rules).map_err(|e| format!("{kind}: {e}"))?;
                    if !row.identities.contains(&identity) {
                        row.identities.push(identity);
                    }
                }
                Column::Timezone => {
                    validate_timezone(value).map_err(|e| e.to_string())?;
                    row.timezone = Some(value.to_owned());
                }
                Column::Locale => {
                    validate_locale(value).map_err(|e| e.to_string())?;
                    row.locale = Some(value.to_owned());
                }
                Column::Consent(purpose) => {
                    let status = match value.to_ascii_lowercase().as_str() {
                        "opted_in" | "yes" | "true" | "1" | "y" => ConsentStatus::OptedIn,
                        "opted_out" | "no" | "false" | "0" | "n" => ConsentStatus::OptedOut,
                        other => {
                            return Err(format!(
                                "consent:{purpose}: `{other}` is not opted_in or opted_out"
                            ));
                        }
                    };
                    row.consents.push(ImportConsent {
                        purpose: purpose.clone(),
                        status,
                        proof: Some(format!("imported column consent:{purpose}={value}")),
                    });
                }
                Column::OptInProof => proof = Some(value.to_owned()),
                Column::Attribute(name) => {
                    row.attributes
                        .insert(name.clone(), serde_json::Value::String(value.to_owned()));
                }
                Column::Ignored => {}
            }
        }
        if row.identities.is_empty() {
            return Err("the row has no identity (phone, email, …)".into());
        }
        let mut fresh = false;
        if let Some(proof) = proof {
            for consent in &mut row.consents {
                if consent.status == ConsentStatus::OptedIn {
                    consent.proof = Some(proof.clone());
                    fresh = true;
                }
            }
        }
        Ok((row, fresh))
    }
}

struct Batch {
    rows: Vec<ImportRow>,
    /// Whether each row of `rows` carries a fresh opt-in.
    fresh: Vec<bool>,
    /// File line of each row in `rows`.
    lines: Vec<u64>,
    rejected: Vec<RowError>,
    bytes: u64,
}

/// Imports CSV from a blocking reader into `tenant`. `now` stamps every row.
pub async fn import_csv<R>(
    input: R,
    store: Arc<dyn Store>,
    tenant: &str,
    rules: AddressRules,
    now: Timestamp,
    progress: Arc<dyn ImportProgress>,
) -> Result<ImportSummary, ImportError>
where
    R: Read + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Result<Batch, ImportError>>(2);
    let parser = tokio::task::spawn_blocking(move || parse_batches(input, rules, tx));
    let mut summary = ImportSummary::default();
    let mut failure = None;
    while let Some(batch) = rx.recv().await {
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        let mut rejected = batch.rejected;
        let (rows, lines, unblock) = drop_erased(
            &*store,
            tenant,
            batch.rows,
            batch.fresh,
            batch.lines,
            &mut rejected,
        )
        .await?;
        let outcomes = if rows.is_empty() {
            Vec::new()
        } else {
            store.import_contacts(tenant, &rows, now).await?
        };
        if !unblock.is_empty() {
            store.lift_suppression(tenant, &unblock).await?;
        }
        for (outcome, line) in outcomes.into_iter().zip(lines) {
            match outcome {
                ImportOutcome::Created { .. } => summary.created += 1,
                ImportOutcome::Updated { .. } => summary.updated += 1,
                ImportOutcome::Rejected { reason } => rejected.push(RowError { line, reason }),
            }
        }
        rejected.sort_by_key(|e| e.line);
        summary.rejected += rejected.len() as u64;
        let room = MAX_LISTED_ERRORS.saturating_sub(summary.errors.len());
        summary.errors.extend(rejected.into_iter().take(room));
        summary.rows = summary.created + summary.updated + summary.rejected;
        progress.advance(summary.rows, batch.bytes);
    }
    drop(rx);
    let _ = parser.await;
    match failure {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

/// The rows to import: those naming an erased person's address without a fresh opt-in
/// are moved to `rejected`. Also gives the erased addresses the kept rows opt in again.
async fn drop_erased(
    store: &dyn Store,
    tenant: &str,
    rows: Vec<ImportRow>,
    fresh: Vec<bool>,
    lines: Vec<u64>,
    rejected: &mut Vec<RowError>,
) -> Result<(Vec<ImportRow>, Vec<u64>, Vec<String>), StoreError> {
    let addresses: Vec<String> = rows
        .iter()
        .flat_map(|r| r.identities.iter().map(|i| i.address.clone()))
        .collect();
    let blocked = store.suppressed_addresses(tenant, &addresses).await?;
    if blocked.is_empty() {
        return Ok((rows, lines, Vec::new()));
    }
    let mut kept = (
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
    );
    let mut unblock = Vec::new();
    for ((row, fresh), line) in rows.into_iter().zip(fresh).zip(lines) {
        let erased: Vec<&String> = row
            .identities
            .iter()
            .map(|i| &i.address)
            .filter(|a| blocked.contains(a))
            .collect();
        match erased.first() {
            Some(address) if !fresh => rejected.push(RowError {
                line,
                reason: format!(
                    "{address} belongs to a person whose data was erased; import them again only with an opted_in consent column and an opt_in_proof"
                ),
            }),
            _ => {
                unblock.extend(erased.into_iter().cloned());
                kept.0.push(row);
                kept.1.push(line);
            }
        }
    }
    Ok((kept.0, kept.1, unblock))
}

fn parse_batches<R: Read>(
    input: R,
    rules: AddressRules,
    tx: mpsc::Sender<Result<Batch, ImportError>>,
) {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::None)
        .from_reader(input);
    let columns = match reader
        .headers()
        .map_err(|e| ImportError::Read(e.to_string()))
        .and_then(Columns::from_header)
    {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.blocking_send(Err(e));
            return;
        }
    };
    let header_len = reader.headers().map(|h| h.len()).unwrap_or(0);
    let mut record = csv::StringRecord::new();
    let mut last_pos = 0u64;
    let new_batch = || Batch {
        rows: Vec::with_capacity(BATCH_ROWS),
        fresh: Vec::with_capacity(BATCH_ROWS),
        lines: Vec::with_capacity(BATCH_ROWS),
        rejected: Vec::new(),
        bytes: 0,
    };
    let mut batch = new_batch();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(0, |p| p.line());
                if record.len() != header_len {
                    batch.rejected.push(RowError {
                        line,
                        reason: format!(
                            "the row has {} fields, the header has {header_len}",
                            record.len()
                        ),
                    });
                } else {
                    match columns.row(&record, rules) {
                        Ok((row, fresh)) => {
                            batch.rows.push(row);
                            batch.fresh.push(fresh);
                            batch.lines.push(line);
                        }
                        Err(reason) => batch.rejected.push(RowError { line, reason }),
                    }
                }
            }
            Err(e) => {
                // A malformed record (e.g. invalid UTF-8) costs that row, not the import.
                let line = e.position().map_or(0, |p| p.line());
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    let _ = tx.blocking_send(Err(ImportError::Read(e.to_string())));
                    return;
                }
                batch.rejected.push(RowError {
                    line,
                    reason: format!("unreadable row: {e}"),
                });
            }
        }
        if batch.rows.len() + batch.rejected.len() >= BATCH_ROWS {
            let pos = reader.position().byte();
            batch.bytes = pos - last_pos;
            last_pos = pos;
            if tx
                .blocking_send(Ok(std::mem::replace(&mut batch, new_batch())))
                .is_err()
            {
                return;
            }
        }
    }
    batch.bytes = reader.position().byte() - last_pos;
    let _ = tx.blocking_send(Ok(batch));
}

#[cfg(test)]
mod tests {
    use super::*;
    use relais_store::{PageRequest, SqliteStore};

    const FR: AddressRules = AddressRules {
        default_country: Some(phonenumber::country::Id::FR),
    };

    async fn store() -> (Arc<dyn Store>, String, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db")).await.unwrap();
        let t = relais_store::Store::create_tenant(&store, "t", Timestamp::UNIX_EPOCH)
            .await
            .unwrap();
        (Arc::new(store), t.id, dir)
    }

    #[tokio::test]
    async fn broken_rows_are_reported_and_good_rows_land() {
        let (store, t, _dir) = store().await;
        let csv = "phone,email,first_name,timezone,consent:marketing\n\
                   06 12 34 56 78,ana@example.com,Ana,Europe/Paris,yes\n\
                   12,,Bad phone,,\n\
                   0033 6 99 99 99 99,,Bob,,no\n\
                   ,,Nobody,,\n\
                   0612345678,,Ana again,,\n\
                   +33781234567,x@y.fr,Tz,Mars/Base,\n\
                   +33781234568,too,many,fields,here,now\n\
                   +33781234569,,Bad consent,,maybe\n";
        let summary = import_csv(
            std::io::Cursor::new(csv.to_owned()),
            store.clone(),
            &t,
            FR,
            Timestamp::UNIX_EPOCH,
            Arc::new(()),
        )
        .await
        .unwrap();
        assert_eq!(
            (
                summary.rows,
                summary.created,
                summary.updated,
                summary.rejected
            ),
            (8, 2, 1, 5)
        );
        let lines: Vec<u64> = summary.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 5, 7, 8, 9]);
        assert!(
            summary.errors[0].reason.contains("sms"),
            "{:?}",
            summary.errors[0]
        );
        assert!(summary.errors[1].reason.contains("no identity"));
        assert!(summary.errors[2].reason.contains("Mars/Base"));
        assert!(summary.errors[3].reason.contains("fields"));
        assert!(summary.errors[4].reason.contains("maybe"));
        let ana = store
            .contact_by_identity(&t, None, "+33612345678")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ana.attributes["first_name"], "Ana again");
        assert_eq!(ana.identities.len(), 2);
        let ledger = store.consents(&t, &ana.id).await.unwrap();
        assert_eq!(ledger.len(), 1);
        let all = store
            .list_contacts(
                &t,
                &PageRequest {
                    after: None,
                    limit: 100,
                },
            )
            .await
            .unwrap();
        assert_eq!(all.data.len(), 2);
    }

    #[tokio::test]
    async fn a_file_without_identity_column_is_refused_whole() {
        let (store, t, _dir) = store().await;
        let err = import_csv(
            std::io::Cursor::new("name,city\nAna,Lyon\n"),
            store.clone(),
            &t,
            FR,
            Timestamp::UNIX_EPOCH,
            Arc::new(()),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("no identity column"), "{err}");
        assert!(
            store
                .list_contacts(
                    &t,
                    &PageRequest {
                        after: None,
                        limit: 10
                    }
                )
                .await
                .unwrap()
                .data
                .is_empty()
        );
    }

    #[tokio::test]
    async fn large_files_span_batches() {
        let (store, t, _dir) = store().await;
        let mut csv = String::from("phone,n\n");
        for i in 0..(BATCH_ROWS * 2 + 10) {
            csv.push_str(&format!("+3361{:07},{i}\n", i));
        }
        let summary = import_csv(
            std::io::Cursor::new(csv),
            store.clone(),
            &t,
            FR,
            Timestamp::UNIX_EPOCH,
            Arc::new(()),
        )
        .await
        .unwrap();
        assert_eq!(summary.created as usize, BATCH_ROWS * 2 + 10);
        assert_eq!(summary.rejected, 0);
    }
}
