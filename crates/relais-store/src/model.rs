//! Records the store reads and writes, beside the domain types of relais-core.

use relais_core::consent::{ConsentSource, ConsentStatus, Purpose};
use relais_core::contact::{Attributes, Contact, Identity, MergeCause};
use relais_core::tenant::Scopes;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub created_at: jiff::Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub tenant_id: String,
    pub key_hash: String,
    pub prefix: String,
    pub scopes: Scopes,
    pub label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKeyRecord {
    pub id: String,
    pub tenant_id: String,
    pub prefix: String,
    pub scopes: Scopes,
    pub label: Option<String>,
    pub created_at: jiff::Timestamp,
}

/// A contact to create; identities must already be in canonical form.
#[derive(Debug, Clone, Default)]
pub struct NewContact {
    pub attributes: Attributes,
    pub timezone: Option<String>,
    pub locale: Option<String>,
    pub identities: Vec<Identity>,
}

/// Changes to a contact. `attributes` are merged key by key; a JSON `null` removes a key.
/// `Some(None)` clears the time zone or locale.
#[derive(Debug, Clone, Default)]
pub struct ContactPatch {
    pub attributes: Option<Attributes>,
    pub timezone: Option<Option<String>>,
    pub locale: Option<Option<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// The `next_cursor` of the previous page.
    pub after: Option<String>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeRecord {
    pub id: String,
    pub survivor_id: String,
    pub merged_id: String,
    /// The merged contact as it was just before the merge.
    pub merged_snapshot: Contact,
    pub merged_at: jiff::Timestamp,
    pub cause: MergeCause,
}

/// One valid row of an import.
#[derive(Debug, Clone, Default)]
pub struct ImportRow {
    pub identities: Vec<Identity>,
    pub attributes: Attributes,
    pub timezone: Option<String>,
    pub locale: Option<String>,
    /// Consents stated by the file, recorded with source `import`.
    pub consents: Vec<ImportConsent>,
}

#[derive(Debug, Clone)]
pub struct ImportConsent {
    pub purpose: Purpose,
    pub status: ConsentStatus,
    pub proof: Option<String>,
}

impl ImportConsent {
    pub const SOURCE: ConsentSource = ConsentSource::Import;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    Created { contact_id: String },
    Updated { contact_id: String },
    Rejected { reason: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct NluModelRecord {
    pub version: i64,
    pub model: Vec<u8>,
    pub summary: String,
    pub created_at: jiff::Timestamp,
}
