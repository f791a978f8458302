//! The SQL both backends share. The statements are written once in portable SQL (`$n`
//! placeholders, `ON CONFLICT`, `RETURNING`) and instantiated per sqlx driver by a macro,
//! because sqlx has no driver-generic executor short of the `Any` driver we refuse.
//! Backend-specific pieces stay in `sqlite.rs` and `postgres.rs`.

macro_rules! impl_sql_store {
    ($store:ty, $db:ty, $backend:expr) => {
        mod shared_sql {
            use super::*;
            use relais_core::channel::ChannelKind;
            use relais_core::consent::{ConsentRecord, ConsentSource, ConsentStatus, Purpose};
            use relais_core::contact::{merge_attributes, Attributes, Contact, Identity, MergeCause};
            use relais_core::tenant::Scopes;
            use sqlx::Row;
            use std::collections::HashMap;
            use $crate::{
                from_micros, micros, new_id, ApiKeyRecord, ContactPatch, ImportOutcome, ImportRow,
                MergeRecord, NewApiKey, NewContact, Page, PageRequest, PlannedContact, PlannedContacts, StoreError, StoreResult, Tenant,
            };
            use jiff::Timestamp;

            type Db = $db;
            type Tx<'a> = sqlx::Transaction<'a, Db>;
            type DbRow = <Db as sqlx::Database>::Row;
            type DbConn = <Db as sqlx::Database>::Connection;

            /// Ids or addresses per `IN (…)` list.
            const CHUNK: usize = 1000;
            /// Bound parameters per multi-row insert: under SQLite's 32766 and PostgreSQL's
            /// 65535, and large enough that statement overhead vanishes.
            const MAX_PARAMS: usize = 30_000;

            fn tenant_from_row(row: &DbRow) -> StoreResult<Tenant> {
                Ok(Tenant {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    created_at: from_micros(row.try_get("created_at")?)?,
                })
            }

            fn key_from_row(row: &DbRow) -> StoreResult<ApiKeyRecord> {
                let scopes: String = row.try_get("scopes")?;
                Ok(ApiKeyRecord {
                    id: row.try_get("id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    prefix: row.try_get("prefix")?,
                    scopes: Scopes::from_db(&scopes).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    label: row.try_get("label")?,
                    created_at: from_micros(row.try_get("created_at")?)?,
                })
            }

            fn attributes_from_json(s: &str) -> StoreResult<Attributes> {
                serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("contact attributes: {e}")))
            }

            fn attributes_to_json(a: &Attributes) -> String {
                serde_json::Value::Object(a.clone()).to_string()
            }

            fn channel_from_db(s: &str) -> StoreResult<ChannelKind> {
                s.parse().map_err(|e: relais_core::channel::UnknownChannelKind| StoreError::Corrupt(e.to_string()))
            }

            fn consent_from_row(row: &DbRow) -> StoreResult<ConsentRecord> {
                let channel: Option<String> = row.try_get("channel")?;
                let purpose: String = row.try_get("purpose")?;
                let status: String = row.try_get("status")?;
                let source: String = row.try_get("source")?;
                let corrupt = |e: relais_core::consent::ConsentError| StoreError::Corrupt(e.to_string());
                Ok(ConsentRecord {
                    id: row.try_get("id")?,
                    contact_id: row.try_get("contact_id")?,
                    channel: channel.as_deref().map(channel_from_db).transpose()?,
                    purpose: Purpose::parse(&purpose).map_err(corrupt)?,
                    status: ConsentStatus::parse(&status).map_err(corrupt)?,
                    source: ConsentSource::parse(&source).map_err(corrupt)?,
                    proof: row.try_get("proof")?,
                    recorded_at: from_micros(row.try_get("recorded_at")?)?,
                })
            }

            /// Loads contacts with their identities, in the order of `ids`.
            async fn load_contacts(conn: &mut DbConn, tenant: &str, ids: &[String]) -> StoreResult<Vec<Contact>> {
                let mut by_id: HashMap<String, Contact> = HashMap::with_capacity(ids.len());
                for chunk in ids.chunks(CHUNK) {
                    let mut q = sqlx::QueryBuilder::<Db>::new(
                        "SELECT id, attributes, timezone, locale, created_at, updated_at FROM contacts WHERE tenant_id = ",
                    );
                    q.push_bind(tenant).push(" AND id IN (");
                    let mut sep = q.separated(", ");
                    for id in chunk {
                        sep.push_bind(id);
                    }
                    q.push(")");
                    for row in q.build().fetch_all(&mut *conn).await? {
                        let id: String = row.try_get("id")?;
                        let attributes: String = row.try_get("attributes")?;
                        by_id.insert(id.clone(), Contact {
                            id,
                            attributes: attributes_from_json(&attributes)?,
                            timezone: row.try_get("timezone")?,
                            locale: row.try_get("locale")?,
                            identities: Vec::new(),
                            created_at: from_micros(row.try_get("created_at")?)?,
                            updated_at: from_micros(row.try_get("updated_at")?)?,
                        });
                    }
                    let mut q = sqlx::QueryBuilder::<Db>::new(
                        "SELECT contact_id, channel, address FROM identities WHERE tenant_id = ",
                    );
                    q.push_bind(tenant).push(" AND contact_id IN (");
                    let mut sep = q.separated(", ");
                    for id in chunk {
                        sep.push_bind(id);
                    }
                    q.push(") ORDER BY created_at, channel, address");
                    for row in q.build().fetch_all(&mut *conn).await? {
                        let contact_id: String = row.try_get("contact_id")?;
                        let channel: String = row.try_get("channel")?;
                        if let Some(c) = by_id.get_mut(&contact_id) {
                            c.identities.push(Identity { channel: channel_from_db(&channel)?, address: row.try_get("address")? });
                        }
                    }
                }
                Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
            }

            async fn load_contact(conn: &mut DbConn, tenant: &str, id: &str) -> StoreResult<Option<Contact>> {
                Ok(load_contacts(conn, tenant, &[id.to_owned()]).await?.pop())
            }

            async fn identity_owners(
                tx: &mut Tx<'_>,
                tenant: &str,
                identities: &[&Identity],
            ) -> StoreResult<HashMap<(ChannelKind, String), String>> {
                let mut owners = HashMap::new();
                for chunk in identities.chunks(CHUNK) {
                    let mut q = sqlx::QueryBuilder::<Db>::new(
                        "SELECT channel, address, contact_id FROM identities WHERE tenant_id = ",
                    );
                    q.push_bind(tenant).push(" AND address IN (");
                    let mut sep = q.separated(", ");
                    for i in chunk {
                        sep.push_bind(i.address.as_str());
                    }
                    q.push(")");
                    for row in q.build().fetch_all(&mut **tx).await? {
                        let channel: String = row.try_get("channel")?;
                        owners.insert((channel_from_db(&channel)?, row.try_get("address")?), row.try_get("contact_id")?);
                    }
                }
                Ok(owners)
            }

            async fn insert_identities(
                tx: &mut Tx<'_>,
                tenant: &str,
                rows: &[(&str, &Identity)],
                now: Timestamp,
            ) -> StoreResult<()> {
                for mut q in identity_inserts(tenant, rows, now) {
                    q.build().execute(&mut **tx).await.map_err(identity_conflict)?;
                }
                Ok(())
            }

            /// The statements inserting `rows` (contact id, identity); a taken identity
            /// fails them (see `identity_conflict`).
            fn identity_inserts<'a>(
                tenant: &'a str,
                rows: &[(&'a str, &'a Identity)],
                now: Timestamp,
            ) -> Vec<sqlx::QueryBuilder<Db>> {
                rows.chunks(MAX_PARAMS / 5)
                    .map(|chunk| {
                        let mut q = sqlx::QueryBuilder::<Db>::new(
                            "INSERT INTO identities (tenant_id, channel, address, contact_id, created_at) ",
                        );
                        q.push_values(chunk, |mut b, (contact_id, identity)| {
                            b.push_bind(tenant)
                                .push_bind(identity.channel.as_str())
                                .push_bind(identity.address.as_str())
                                .push_bind(*contact_id)
                                .push_bind(micros(now));
                        });
                        q
                    })
                    .collect()
            }

            /// The owners of each of `addresses` (distinct), on every channel, earliest
            /// identity first.
            async fn owners_by_address(
                conn: &mut DbConn,
                tenant: &str,
                addresses: &[&str],
            ) -> StoreResult<HashMap<String, Vec<(ChannelKind, String)>>> {
                let mut owners: HashMap<String, Vec<(ChannelKind, String)>> = HashMap::new();
                for chunk in addresses.chunks(CHUNK) {
                    let mut q = sqlx::QueryBuilder::<Db>::new(
                        "SELECT channel, address, contact_id FROM identities WHERE tenant_id = ",
                    );
                    q.push_bind(tenant).push(" AND address IN (");
                    let mut sep = q.separated(", ");
                    for a in chunk {
                        sep.push_bind(*a);
                    }
                    q.push(") ORDER BY created_at");
                    for row in q.build().fetch_all(&mut *conn).await? {
                        let channel: String = row.try_get("channel")?;
                        owners
                            .entry(row.try_get("address")?)
                            .or_default()
                            .push((channel_from_db(&channel)?, row.try_get("contact_id")?));
                    }
                }
                Ok(owners)
            }

            /// The owner of `identity` as `contact_by_identity` finds it: any channel for a
            /// phone-addressed identity, the same channel otherwise.
            fn owner_of<'a>(
                owners: &'a HashMap<String, Vec<(ChannelKind, String)>>,
                identity: &Identity,
            ) -> Option<&'a String> {
                owners
                    .get(&identity.address)?
                    .iter()
                    .find(|(channel, _)| identity.channel.is_phone_addressed() || *channel == identity.channel)
                    .map(|(_, id)| id)
            }

            fn identity_conflict(e: sqlx::Error) -> StoreError {
                match &e {
                    sqlx::Error::Database(db) if $crate::noted(db.is_unique_violation()) => {
                        StoreError::Conflict("an identity already belongs to another contact of this tenant".into())
                    }
                    _ => e.into(),
                }
            }

            async fn insert_consents(tx: &mut Tx<'_>, tenant: &str, records: &[ConsentRecord]) -> StoreResult<()> {
                for chunk in records.chunks(MAX_PARAMS / 9) {
                    let mut q = sqlx::QueryBuilder::<Db>::new(
                        "INSERT INTO consents (id, tenant_id, contact_id, channel, purpose, status, source, proof, recorded_at) ",
                    );
                    q.push_values(chunk, |mut b, r| {
                        b.push_bind(r.id.as_str())
                            .push_bind(tenant)
                            .push_bind(r.contact_id.as_str())
                            .push_bind(r.channel.map(|c| c.as_str()))
                            .push_bind(r.purpose.as_str().to_owned())
                            .push_bind(r.status.as_str())
                            .push_bind(r.source.as_str())
                            .push_bind(r.proof.clone())
                            .push_bind(micros(r.recorded_at));
                    });
                    q.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            async fn ensure_contact(tx: &mut Tx<'_>, tenant: &str, id: &str) -> StoreResult<()> {
                let found = sqlx::query("SELECT 1 FROM contacts WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&mut **tx)
                    .await?;
                found.map(|_| ()).ok_or_else(|| StoreError::NotFound(format!("contact {id}")))
            }

            #[async_trait::async_trait]
            impl $crate::Store for $store {
                fn backend(&self) -> $crate::Backend {
                    $backend
                }

                async fn create_tenant(&self, name: &str, now: Timestamp) -> StoreResult<Tenant> {
                    let tenant = Tenant { id: new_id(), name: name.to_owned(), created_at: now };
                    sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
                        .bind(&tenant.id)
                        .bind(&tenant.name)
                        .bind(micros(now))
                        .execute(self.writer())
                        .await
                        .map_err(|e| match &e {
                            sqlx::Error::Database(db) if $crate::noted(db.is_unique_violation()) => {
                                StoreError::Conflict(format!("tenant `{name}` already exists"))
                            }
                            _ => e.into(),
                        })?;
                    Ok(tenant)
                }

                async fn tenant_by_name(&self, name: &str) -> StoreResult<Option<Tenant>> {
                    let row = sqlx::query("SELECT id, name, created_at FROM tenants WHERE name = $1")
                        .bind(name)
                        .fetch_optional(self.reader())
                        .await?;
                    row.as_ref().map(tenant_from_row).transpose()
                }

                async fn tenant(&self, id: &str) -> StoreResult<Option<Tenant>> {
                    let row = sqlx::query("SELECT id, name, created_at FROM tenants WHERE id = $1")
                        .bind(id)
                        .fetch_optional(self.reader())
                        .await?;
                    row.as_ref().map(tenant_from_row).transpose()
                }

                async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
                    let rows = sqlx::query("SELECT id, name, created_at FROM tenants ORDER BY id")
                        .fetch_all(self.reader())
                        .await?;
                    rows.iter().map(tenant_from_row).collect()
                }

                async fn insert_api_key(&self, key: &NewApiKey, now: Timestamp) -> StoreResult<ApiKeyRecord> {
                    let record = ApiKeyRecord {
                        id: new_id(),
                        tenant_id: key.tenant_id.clone(),
                        prefix: key.prefix.clone(),
                        scopes: key.scopes.clone(),
                        label: key.label.clone(),
                        created_at: now,
                    };
                    sqlx::query(
                        "INSERT INTO api_keys (id, tenant_id, key_hash, prefix, scopes, label, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&record.id)
                    .bind(&key.tenant_id)
                    .bind(&key.key_hash)
                    .bind(&key.prefix)
                    .bind(key.scopes.to_db())
                    .bind(&key.label)
                    .bind(micros(now))
                    .execute(self.writer())
                    .await?;
                    Ok(record)
                }

                async fn api_key_by_hash(&self, hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
                    let row = sqlx::query(
                        "SELECT id, tenant_id, prefix, scopes, label, created_at FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
                    )
                    .bind(hash)
                    .fetch_optional(self.reader())
                    .await?;
                    row.as_ref().map(key_from_row).transpose()
                }

                async fn create_contact(&self, tenant: &str, new: &NewContact, now: Timestamp) -> StoreResult<Contact> {
                    let id = new_id();
                    let mut tx = self.begin_write().await?;
                    sqlx::query(
                        "INSERT INTO contacts (id, tenant_id, attributes, timezone, locale, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
                    )
                    .bind(&id)
                    .bind(tenant)
                    .bind(attributes_to_json(&new.attributes))
                    .bind(&new.timezone)
                    .bind(&new.locale)
                    .bind(micros(now))
                    .execute(&mut *tx)
                    .await?;
                    let refs: Vec<&Identity> = new.identities.iter().collect();
                    if let Some(((channel, address), owner)) = identity_owners(&mut tx, tenant, &refs)
                        .await?
                        .into_iter()
                        .find(|(k, _)| new.identities.iter().any(|i| i.channel == k.0 && i.address == k.1))
                    {
                        return Err(StoreError::Conflict(format!("{channel} identity {address} already belongs to contact {owner}")));
                    }
                    let rows: Vec<(&str, &Identity)> = new.identities.iter().map(|i| (id.as_str(), i)).collect();
                    insert_identities(&mut tx, tenant, &rows, now).await?;
                    tx.commit().await?;
                    load_contact(&mut *self.reader().acquire().await?, tenant, &id)
                        .await?
                        .ok_or_else(|| StoreError::NotFound(format!("contact {id}")))
                }

                async fn contact(&self, tenant: &str, id: &str) -> StoreResult<Option<Contact>> {
                    load_contact(&mut *self.reader().acquire().await?, tenant, id).await
                }

                async fn contacts_by_ids(&self, tenant: &str, ids: &[&str]) -> StoreResult<Vec<Contact>> {
                    if ids.is_empty() {
                        return Ok(Vec::new());
                    }
                    // Two statements per 1,000 ids: the contacts, then their identities.
                    let ids: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
                    load_contacts(&mut *self.reader().acquire().await?, tenant, &ids).await
                }

                async fn update_contact(&self, tenant: &str, id: &str, patch: &ContactPatch, now: Timestamp) -> StoreResult<Contact> {
                    let mut tx = self.begin_write().await?;
                    let current = load_contact(&mut *tx, tenant, id)
                        .await?
                        .ok_or_else(|| StoreError::NotFound(format!("contact {id}")))?;
                    let mut attributes = current.attributes.clone();
                    if let Some(changes) = &patch.attributes {
                        for (k, v) in changes {
                            if v.is_null() {
                                attributes.remove(k);
                            } else {
                                attributes.insert(k.clone(), v.clone());
                            }
                        }
                    }
                    let timezone = patch.timezone.clone().unwrap_or(current.timezone);
                    let locale = patch.locale.clone().unwrap_or(current.locale);
                    sqlx::query(
                        "UPDATE contacts SET attributes = $1, timezone = $2, locale = $3, updated_at = $4 WHERE tenant_id = $5 AND id = $6",
                    )
                    .bind(attributes_to_json(&attributes))
                    .bind(&timezone)
                    .bind(&locale)
                    .bind(micros(now))
                    .bind(tenant)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    load_contact(&mut *self.reader().acquire().await?, tenant, id)
                        .await?
                        .ok_or_else(|| StoreError::NotFound(format!("contact {id}")))
                }

                async fn delete_contact(&self, tenant: &str, id: &str) -> StoreResult<bool> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query(
                        "DELETE FROM flow_sessions WHERE tenant_id = $1 \
                         AND conversation_id IN (SELECT id FROM conversations WHERE tenant_id = $1 AND contact_id = $2)",
                    )
                    .bind(tenant)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    // A flow's answers are the contact's personal data: they go with it.
                    for table in ["identities", "consents", "conversations", "flow_answers"] {
                        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE tenant_id = $1 AND contact_id = $2")))
                            .bind(tenant)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    // The messages stay (they were sent, or received) without pointing at
                    // a contact that no longer exists.
                    for table in ["messages", "inbound_messages"] {
                        sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE {table} SET contact_id = NULL WHERE tenant_id = $1 AND contact_id = $2")))
                            .bind(tenant)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    let done = sqlx::query("DELETE FROM contacts WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn list_contacts(&self, tenant: &str, page: &PageRequest) -> StoreResult<Page<Contact>> {
                    let limit = page.limit.clamp(1, 1000) as i64;
                    let rows = sqlx::query(
                        "SELECT id FROM contacts WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                    )
                    .bind(tenant)
                    .bind(page.after.as_deref().unwrap_or(""))
                    .bind(limit + 1)
                    .fetch_all(self.reader())
                    .await?;
                    let mut ids = rows.iter().map(|r| r.try_get::<String, _>("id")).collect::<Result<Vec<_>, _>>()?;
                    let more = ids.len() as i64 > limit;
                    ids.truncate(limit as usize);
                    let data = load_contacts(&mut *self.reader().acquire().await?, tenant, &ids).await?;
                    let next_cursor = if more { ids.last().cloned() } else { None };
                    Ok(Page { data, next_cursor })
                }

                async fn contact_by_identity(
                    &self,
                    tenant: &str,
                    channel: Option<ChannelKind>,
                    address: &str,
                ) -> StoreResult<Option<Contact>> {
                    let row = sqlx::query(
                        "SELECT contact_id FROM identities WHERE tenant_id = $1 AND address = $2 AND ($3 IS NULL OR channel = $3) ORDER BY created_at LIMIT 1",
                    )
                    .bind(tenant)
                    .bind(address)
                    .bind(channel.map(|c| c.as_str()))
                    .fetch_optional(self.reader())
                    .await?;
                    match row {
                        Some(row) => load_contact(&mut *self.reader().acquire().await?, tenant, &row.try_get::<String, _>("contact_id")?).await,
                        None => Ok(None),
                    }
                }

                async fn add_identity(&self, tenant: &str, contact_id: &str, identity: &Identity, now: Timestamp) -> StoreResult<Contact> {
                    let mut tx = self.begin_write().await?;
                    ensure_contact(&mut tx, tenant, contact_id).await?;
                    let owners = identity_owners(&mut tx, tenant, &[identity]).await?;
                    match owners.get(&(identity.channel, identity.address.clone())) {
                        Some(owner) if owner == contact_id => {}
                        Some(owner) => {
                            return Err(StoreError::Conflict(format!(
                                "{} identity {} already belongs to contact {owner}",
                                identity.channel, identity.address
                            )))
                        }
                        None => insert_identities(&mut tx, tenant, &[(contact_id, identity)], now).await?,
                    }
                    tx.commit().await?;
                    load_contact(&mut *self.reader().acquire().await?, tenant, contact_id)
                        .await?
                        .ok_or_else(|| StoreError::NotFound(format!("contact {contact_id}")))
                }

                async fn remove_identity(&self, tenant: &str, contact_id: &str, identity: &Identity) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "DELETE FROM identities WHERE tenant_id = $1 AND contact_id = $2 AND channel = $3 AND address = $4",
                    )
                    .bind(tenant)
                    .bind(contact_id)
                    .bind(identity.channel.as_str())
                    .bind(&identity.address)
                    .execute(self.writer())
                    .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn merge_contacts(&self, tenant: &str, survivor: &str, merged: &str, cause: &MergeCause, now: Timestamp) -> StoreResult<MergeRecord> {
                    if survivor == merged {
                        return Err(StoreError::Invalid("a contact cannot be merged into itself".into()));
                    }
                    let mut tx = self.begin_write().await?;
                    let both = load_contacts(&mut *tx, tenant, &[survivor.to_owned(), merged.to_owned()]).await?;
                    let (Some(keep), Some(gone)) = (
                        both.iter().find(|c| c.id == survivor),
                        both.iter().find(|c| c.id == merged),
                    ) else {
                        let missing = if both.iter().any(|c| c.id == survivor) { merged } else { survivor };
                        return Err(StoreError::NotFound(format!("contact {missing}")));
                    };
                    let attributes = merge_attributes(&keep.attributes, &gone.attributes);
                    sqlx::query(
                        "UPDATE contacts SET attributes = $1, timezone = $2, locale = $3, updated_at = $4 WHERE tenant_id = $5 AND id = $6",
                    )
                    .bind(attributes_to_json(&attributes))
                    .bind(keep.timezone.clone().or_else(|| gone.timezone.clone()))
                    .bind(keep.locale.clone().or_else(|| gone.locale.clone()))
                    .bind(micros(now))
                    .bind(tenant)
                    .bind(survivor)
                    .execute(&mut *tx)
                    .await?;
                    // One conversation per contact: the survivor's keeps the merged one's
                    // messages, or the merged one's becomes the survivor's.
                    sqlx::query(
                        "UPDATE inbound_messages SET conversation_id = (SELECT id FROM conversations WHERE tenant_id = $1 AND contact_id = $2) \
                         WHERE tenant_id = $1 AND contact_id = $3 \
                           AND EXISTS (SELECT 1 FROM conversations WHERE tenant_id = $1 AND contact_id = $2)",
                    )
                    .bind(tenant)
                    .bind(survivor)
                    .bind(merged)
                    .execute(&mut *tx)
                    .await?;
                    // The flow session of a conversation that goes would be left behind,
                    // holding the merged contact's answers in its variables.
                    sqlx::query(
                        "DELETE FROM flow_sessions WHERE tenant_id = $1 \
                           AND conversation_id IN (SELECT id FROM conversations WHERE tenant_id = $1 AND contact_id = $3) \
                           AND EXISTS (SELECT 1 FROM conversations WHERE tenant_id = $1 AND contact_id = $2)",
                    )
                    .bind(tenant)
                    .bind(survivor)
                    .bind(merged)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "DELETE FROM conversations WHERE tenant_id = $1 AND contact_id = $3 \
                           AND EXISTS (SELECT 1 FROM conversations WHERE tenant_id = $1 AND contact_id = $2)",
                    )
                    .bind(tenant)
                    .bind(survivor)
                    .bind(merged)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("UPDATE conversations SET contact_id = $2 WHERE tenant_id = $1 AND contact_id = $3")
                        .bind(tenant)
                        .bind(survivor)
                        .bind(merged)
                        .execute(&mut *tx)
                        .await?;
                    for table in self.contact_history_tables() {
                        sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE {table} SET contact_id = $1 WHERE tenant_id = $2 AND contact_id = $3")))
                            .bind(survivor)
                            .bind(tenant)
                            .bind(merged)
                            .execute(&mut *tx)
                            .await?;
                    }
                    sqlx::query("DELETE FROM contacts WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant)
                        .bind(merged)
                        .execute(&mut *tx)
                        .await?;
                    let record = MergeRecord {
                        id: new_id(),
                        survivor_id: survivor.to_owned(),
                        merged_id: merged.to_owned(),
                        merged_snapshot: gone.clone(),
                        merged_at: now,
                        cause: cause.clone(),
                    };
                    let snapshot = serde_json::to_string(&record.merged_snapshot)
                        .map_err(|e| StoreError::Invalid(format!("contact snapshot: {e}")))?;
                    let cause = serde_json::to_string(&record.cause)
                        .map_err(|e| StoreError::Invalid(format!("merge cause: {e}")))?;
                    sqlx::query(
                        "INSERT INTO contact_merges (id, tenant_id, survivor_id, merged_id, merged_snapshot, merged_at, cause) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&record.id)
                    .bind(tenant)
                    .bind(survivor)
                    .bind(merged)
                    .bind(snapshot)
                    .bind(micros(now))
                    .bind(cause)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(record)
                }

                async fn merges(&self, tenant: &str, survivor: &str) -> StoreResult<Vec<MergeRecord>> {
                    let rows = sqlx::query(
                        "SELECT id, survivor_id, merged_id, merged_snapshot, merged_at, cause FROM contact_merges WHERE tenant_id = $1 AND survivor_id = $2 ORDER BY merged_at, id",
                    )
                    .bind(tenant)
                    .bind(survivor)
                    .fetch_all(self.reader())
                    .await?;
                    rows.iter()
                        .map(|row| {
                            let snapshot: String = row.try_get("merged_snapshot")?;
                            let cause = match row.try_get::<Option<String>, _>("cause")? {
                                Some(cause) => serde_json::from_str(&cause)
                                    .map_err(|e| StoreError::Corrupt(format!("merge cause: {e}")))?,
                                // Written before causes were kept (0036): the API's.
                                None => MergeCause::Api,
                            };
                            Ok(MergeRecord {
                                id: row.try_get("id")?,
                                survivor_id: row.try_get("survivor_id")?,
                                merged_id: row.try_get("merged_id")?,
                                merged_snapshot: serde_json::from_str(&snapshot)
                                    .map_err(|e| StoreError::Corrupt(format!("merge snapshot: {e}")))?,
                                merged_at: from_micros(row.try_get("merged_at")?)?,
                                cause,
                            })
                        })
                        .collect()
                }

                async fn import_contacts(&self, tenant: &str, rows: &[ImportRow], now: Timestamp) -> StoreResult<Vec<ImportOutcome>> {
                    let mut tx = self.begin_write().await?;
                    let all: Vec<&Identity> = rows.iter().flat_map(|r| r.identities.iter()).collect();
                    // Owners known so far: the database's, then those created by earlier rows
                    // of this batch, so a file that lists a person twice updates, not duplicates.
                    let mut owners = identity_owners(&mut tx, tenant, &all).await?;
                    let existing_ids: Vec<String> = {
                        let mut v: Vec<String> = owners.values().cloned().collect();
                        v.sort();
                        v.dedup();
                        v
                    };
                    let mut attributes_of: HashMap<String, Attributes> = load_contacts(&mut *tx, tenant, &existing_ids)
                        .await?
                        .into_iter()
                        .map(|c| (c.id, c.attributes))
                        .collect();
                    let mut outcomes = Vec::with_capacity(rows.len());
                    let mut new_contacts: Vec<(String, &ImportRow)> = Vec::new();
                    let mut new_identities: Vec<(String, &Identity)> = Vec::new();
                    let mut updated: Vec<(String, &ImportRow)> = Vec::new();
                    let mut consents: Vec<ConsentRecord> = Vec::new();
                    for row in rows {
                        let mut matched: Vec<&String> = row
                            .identities
                            .iter()
                            .filter_map(|i| owners.get(&(i.channel, i.address.clone())))
                            .collect();
                        matched.sort();
                        matched.dedup();
                        let contact_id = match matched.as_slice() {
                            [] => {
                                let id = new_id();
                                new_contacts.push((id.clone(), row));
                                outcomes.push(ImportOutcome::Created { contact_id: id.clone() });
                                id
                            }
                            [one] => {
                                let id = (*one).clone();
                                updated.push((id.clone(), row));
                                outcomes.push(ImportOutcome::Updated { contact_id: id.clone() });
                                id
                            }
                            many => {
                                outcomes.push(ImportOutcome::Rejected {
                                    reason: format!(
                                        "its identities belong to {} different contacts ({})",
                                        many.len(),
                                        many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                                    ),
                                });
                                continue;
                            }
                        };
                        for identity in &row.identities {
                            let key = (identity.channel, identity.address.clone());
                            if !owners.contains_key(&key) {
                                owners.insert(key, contact_id.clone());
                                new_identities.push((contact_id.clone(), identity));
                            }
                        }
                        for c in &row.consents {
                            consents.push(ConsentRecord {
                                id: new_id(),
                                contact_id: contact_id.clone(),
                                channel: None,
                                purpose: c.purpose.clone(),
                                status: c.status,
                                source: ConsentSource::Import,
                                proof: c.proof.clone(),
                                recorded_at: now,
                            });
                        }
                    }
                    for chunk in new_contacts.chunks(MAX_PARAMS / 7) {
                        let mut q = sqlx::QueryBuilder::<Db>::new(
                            "INSERT INTO contacts (id, tenant_id, attributes, timezone, locale, created_at, updated_at) ",
                        );
                        q.push_values(chunk, |mut b, (id, row)| {
                            b.push_bind(id.as_str())
                                .push_bind(tenant)
                                .push_bind(attributes_to_json(&row.attributes))
                                .push_bind(row.timezone.clone())
                                .push_bind(row.locale.clone())
                                .push_bind(micros(now))
                                .push_bind(micros(now));
                        });
                        q.build().execute(&mut *tx).await?;
                    }
                    let identity_rows: Vec<(&str, &Identity)> = new_identities.iter().map(|(c, i)| (c.as_str(), *i)).collect();
                    let created: HashMap<&str, &ImportRow> = new_contacts.iter().map(|(id, row)| (id.as_str(), *row)).collect();
                    insert_identities(&mut tx, tenant, &identity_rows, now).await?;
                    // Updates: values in the file win; contacts created earlier in the batch
                    // are updated too, so the last row about a person has the last word.
                    for (id, row) in &updated {
                        let base = match attributes_of.get(id) {
                            Some(a) => a.clone(),
                            None => created.get(id.as_str()).map(|r| r.attributes.clone()).unwrap_or_default(),
                        };
                        let merged = merge_attributes(&row.attributes, &base);
                        sqlx::query(
                            "UPDATE contacts SET attributes = $1, timezone = COALESCE($2, timezone), locale = COALESCE($3, locale), updated_at = $4 WHERE tenant_id = $5 AND id = $6",
                        )
                        .bind(attributes_to_json(&merged))
                        .bind(&row.timezone)
                        .bind(&row.locale)
                        .bind(micros(now))
                        .bind(tenant)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                        attributes_of.insert(id.clone(), merged);
                    }
                    insert_consents(&mut tx, tenant, &consents).await?;
                    tx.commit().await?;
                    Ok(outcomes)
                }

                async fn resolve_or_create_contacts(
                    &self,
                    tenant: &str,
                    identities: &[Identity],
                    now: Timestamp,
                ) -> StoreResult<Vec<(Contact, bool)>> {
                    let planned = self.plan_contacts(tenant, identities, now).await?;
                    if !planned.new.is_empty() {
                        $crate::MessageStore::insert_accepted(self, &[], None, &[], &planned.new)
                            .await
                            .map_err(|e| match e {
                                StoreError::IdentityTaken(d) => StoreError::Conflict(d),
                                other => other,
                            })?;
                    }
                    Ok(planned.resolved)
                }

                async fn plan_contacts(
                    &self,
                    tenant: &str,
                    identities: &[Identity],
                    now: Timestamp,
                ) -> StoreResult<PlannedContacts> {
                    let mut addresses: Vec<&str> = identities.iter().map(|i| i.address.as_str()).collect();
                    addresses.sort_unstable();
                    addresses.dedup();
                    let mut owners = owners_by_address(&mut *self.reader().acquire().await?, tenant, &addresses).await?;
                    let mut created: HashMap<String, Contact> = HashMap::new();
                    let mut new = Vec::new();
                    // Built here, written by the caller's transaction. Another request may
                    // create one of these identities meanwhile: then the identities' key
                    // refuses the insert and nothing of that transaction is written.
                    let stamp = from_micros(micros(now))?;
                    for identity in identities {
                        if owner_of(&owners, identity).is_some() {
                            continue;
                        }
                        let id = new_id();
                        owners.entry(identity.address.clone()).or_default().push((identity.channel, id.clone()));
                        created.insert(id.clone(), Contact {
                            id: id.clone(),
                            attributes: Attributes::new(),
                            timezone: None,
                            locale: None,
                            identities: vec![identity.clone()],
                            created_at: stamp,
                            updated_at: stamp,
                        });
                        new.push(PlannedContact {
                            tenant_id: tenant.to_owned(),
                            id,
                            identity: identity.clone(),
                            created_at: stamp,
                        });
                    }
                    let mut existing: Vec<String> = identities
                        .iter()
                        .filter_map(|i| owner_of(&owners, i))
                        .filter(|id| !created.contains_key(*id))
                        .cloned()
                        .collect();
                    existing.sort_unstable();
                    existing.dedup();
                    let loaded: HashMap<String, Contact> = if existing.is_empty() {
                        HashMap::new()
                    } else {
                        load_contacts(&mut *self.reader().acquire().await?, tenant, &existing)
                            .await?
                            .into_iter()
                            .map(|c| (c.id.clone(), c))
                            .collect()
                    };
                    let resolved = identities
                        .iter()
                        .map(|i| {
                            let id = owner_of(&owners, i);
                            match id.and_then(|id| created.get(id)) {
                                Some(new) => Ok((new.clone(), true)),
                                None => id
                                    .and_then(|id| loaded.get(id))
                                    .map(|c| (c.clone(), false))
                                    // Deleted between the look-up and the load.
                                    .ok_or_else(|| StoreError::Conflict(format!("the contact owning {} changed meanwhile", i.address))),
                            }
                        })
                        .collect::<StoreResult<Vec<_>>>()?;
                    Ok(PlannedContacts { resolved, new })
                }

                async fn consents_of(&self, tenant: &str, contact_ids: &[String]) -> StoreResult<HashMap<String, Vec<ConsentRecord>>> {
                    let mut ledgers: HashMap<String, Vec<ConsentRecord>> = HashMap::new();
                    let mut conn = self.reader().acquire().await?;
                    for chunk in contact_ids.chunks(CHUNK) {
                        let mut q = sqlx::QueryBuilder::<Db>::new(
                            "SELECT id, contact_id, channel, purpose, status, source, proof, recorded_at FROM consents WHERE tenant_id = ",
                        );
                        q.push_bind(tenant).push(" AND contact_id IN (");
                        let mut sep = q.separated(", ");
                        for id in chunk {
                            sep.push_bind(id.as_str());
                        }
                        q.push(") ORDER BY recorded_at, id");
                        for row in q.build().fetch_all(&mut *conn).await? {
                            let record = consent_from_row(&row)?;
                            ledgers.entry(record.contact_id.clone()).or_default().push(record);
                        }
                    }
                    Ok(ledgers)
                }

                async fn append_consent(&self, tenant: &str, record: &ConsentRecord) -> StoreResult<()> {
                    let mut tx = self.begin_write().await?;
                    ensure_contact(&mut tx, tenant, &record.contact_id).await?;
                    insert_consents(&mut tx, tenant, std::slice::from_ref(record)).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn put_setting(&self, tenant: &str, key: &str, value: &serde_json::Value, now: Timestamp) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO tenant_settings (tenant_id, key, value, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                    )
                    .bind(tenant)
                    .bind(key)
                    .bind(value.to_string())
                    .bind(micros(now))
                    .execute(self.writer())
                    .await?;
                    self.config().settings.forget(tenant, key);
                    Ok(())
                }

                async fn setting(&self, tenant: &str, key: &str) -> StoreResult<Option<serde_json::Value>> {
                    if let Some(value) = self.config().settings.fresh(tenant, key) {
                        return Ok(value);
                    }
                    let read_at = std::time::Instant::now();
                    let row = sqlx::query("SELECT value FROM tenant_settings WHERE tenant_id = $1 AND key = $2")
                        .bind(tenant)
                        .bind(key)
                        .fetch_optional(self.reader())
                        .await?;
                    let value = row
                        .map(|r| {
                            let text: String = r.try_get("value")?;
                            serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("setting {key}: {e}")))
                        })
                        .transpose()?;
                    self.config().settings.keep(tenant, key, read_at, value.clone());
                    Ok(value)
                }

                async fn save_nlu_model(&self, tenant: &str, model: &[u8], summary: &str, now: Timestamp) -> StoreResult<i64> {
                    let mut tx = self.begin_write().await?;
                    let row = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM nlu_models WHERE tenant_id = $1")
                        .bind(tenant)
                        .fetch_one(&mut *tx)
                        .await?;
                    let version: i64 = row.try_get::<i64, _>("v")? + 1;
                    sqlx::query("INSERT INTO nlu_models (tenant_id, version, model, summary, created_at) VALUES ($1, $2, $3, $4, $5)")
                        .bind(tenant)
                        .bind(version)
                        .bind(model)
                        .bind(summary)
                        .bind(micros(now))
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| match &e {
                            sqlx::Error::Database(db) if $crate::noted(db.is_unique_violation()) => {
                                StoreError::Conflict("another model was saved at the same time; retry".into())
                            }
                            _ => e.into(),
                        })?;
                    tx.commit().await?;
                    self.config().model_versions.forget(tenant, "");
                    Ok(version)
                }

                async fn nlu_model_version(&self, tenant: &str) -> StoreResult<Option<i64>> {
                    if let Some(version) = self.config().model_versions.fresh(tenant, "") {
                        return Ok(version);
                    }
                    let read_at = std::time::Instant::now();
                    let row = sqlx::query("SELECT MAX(version) AS v FROM nlu_models WHERE tenant_id = $1")
                        .bind(tenant)
                        .fetch_one(self.reader())
                        .await?;
                    let version = row.try_get::<Option<i64>, _>("v")?;
                    self.config().model_versions.keep(tenant, "", read_at, version);
                    Ok(version)
                }

                async fn nlu_model(&self, tenant: &str) -> StoreResult<Option<$crate::NluModelRecord>> {
                    let row = sqlx::query(
                        "SELECT version, model, summary, created_at FROM nlu_models WHERE tenant_id = $1 ORDER BY version DESC LIMIT 1",
                    )
                    .bind(tenant)
                    .fetch_optional(self.reader())
                    .await?;
                    row.map(|r| {
                        Ok($crate::NluModelRecord {
                            version: r.try_get("version")?,
                            model: r.try_get("model")?,
                            summary: r.try_get("summary")?,
                            created_at: from_micros(r.try_get("created_at")?)?,
                        })
                    })
                    .transpose()
                }

                async fn check_writable(&self) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO write_probe (id, writes) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET writes = write_probe.writes + 1",
                    )
                    .execute(self.writer())
                    .await?;
                    match $crate::refused_recently() {
                        Some(why) => Err(StoreError::Unavailable(format!("a write was refused: {why}"))),
                        None => Ok(()),
                    }
                }

                async fn consents(&self, tenant: &str, contact_id: &str) -> StoreResult<Vec<ConsentRecord>> {
                    let rows = sqlx::query(
                        "SELECT id, contact_id, channel, purpose, status, source, proof, recorded_at FROM consents WHERE tenant_id = $1 AND contact_id = $2 ORDER BY recorded_at, id",
                    )
                    .bind(tenant)
                    .bind(contact_id)
                    .fetch_all(self.reader())
                    .await?;
                    rows.iter().map(consent_from_row).collect()
                }
            }
        }
    };
}

pub(crate) use impl_sql_store;
