//! The storage conformance suite on SQLite.

use relais_store::{SqliteStore, Store};
use std::sync::Arc;

struct Fixture {
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn finish(self) {}
}

async fn fresh() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("relais.db"))
        .await
        .expect("open sqlite");
    Fixture {
        store: Arc::new(store),
        _dir: dir,
    }
}

relais_store::conformance_suite!(fresh);

/// A store that held `rows` at schema `version`, opened (and so upgraded) by this build.
async fn upgraded_from<S: AsRef<str>>(
    version: i64,
    rows: &[S],
) -> (tempfile::TempDir, SqliteStore) {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("relais.db");
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let old = SqlitePool::connect_with(options).await.expect("open");
    sqlx::migrate!("./migrations/sqlite")
        .run_to(version, &old)
        .await
        .expect("old schema");
    for statement in rows {
        sqlx::query(sqlx::AssertSqlSafe(statement.as_ref().to_owned()))
            .execute(&old)
            .await
            .expect("old rows");
    }
    old.close().await;
    let store = SqliteStore::open(&path).await.expect("upgrade");
    (dir, store)
}

#[tokio::test]
async fn an_event_log_from_before_0014_is_kept() {
    let (_dir, store) = upgraded_from(13, relais_store::conformance::PRE_0014_LOG).await;
    relais_store::conformance::an_event_log_from_before_0014_is_kept(&store).await;
}

/// Migration 0016 rebuilds the outbox without a rowid: the work it held, leased or not,
/// is still there to claim.
#[tokio::test]
async fn the_outbox_from_before_0016_is_kept() {
    use relais_store::MessageStore;
    let mut statements = vec![
        "INSERT INTO tenants (id, name, created_at) VALUES ('t-old', 'old', 1790000000000000)"
            .to_owned(),
    ];
    for (id, lease) in [
        ("m-free", "NULL, NULL"),
        ("m-leased", "'n1', 1790000009000000"),
    ] {
        statements.push(format!(
            "INSERT INTO messages (id, tenant_id, to_address, channel, step, chain, content, purpose, status, created_at, updated_at) \
             VALUES ('{id}', 't-old', '+33612345678', 'sim', 0, '[\"sim\"]', '{{\"text\":\"Bonjour\"}}', 'transactional', 'queued', 1790000000000000, 1790000000000000)"
        ));
        statements.push(format!(
            "INSERT INTO outbox (message_id, tenant_id, due_at, phase, lease_owner, lease_until, attempts) \
             VALUES ('{id}', 't-old', 1790000001000000, 'send', {lease}, 0)"
        ));
    }
    let (_dir, store) = upgraded_from(15, &statements).await;
    let at = |micros: i64| jiff::Timestamp::from_microsecond(micros).expect("time");
    let lease = jiff::SignedDuration::from_secs(30);
    let free = store
        .claim_due(at(1790000002000000), 10, "n2", lease)
        .await
        .expect("claim");
    let ids: Vec<&str> = free.iter().map(|i| i.message.id.as_str()).collect();
    assert_eq!(ids, ["m-free"], "the leased row waits for its lease");
    let later = store
        .claim_due(at(1790000010000000), 10, "n2", lease)
        .await
        .expect("claim");
    let ids: Vec<&str> = later.iter().map(|i| i.message.id.as_str()).collect();
    assert_eq!(ids, ["m-leased"], "the lease ran out");
}

#[tokio::test]
async fn the_outbox_from_before_0018_has_its_lanes() {
    let (_dir, store) = upgraded_from(17, relais_store::conformance::PRE_0018_OUTBOX).await;
    relais_store::conformance::the_outbox_from_before_0018_has_its_lanes(&store).await;
}

#[tokio::test]
async fn a_webhook_from_before_0019_has_a_closed_circuit() {
    let (_dir, store) = upgraded_from(18, relais_store::conformance::PRE_0019_WEBHOOK).await;
    relais_store::conformance::a_webhook_from_before_0019_has_a_closed_circuit(&store).await;
}

#[tokio::test]
async fn a_message_from_before_0025_has_no_campaign() {
    let (_dir, store) = upgraded_from(24, relais_store::conformance::PRE_0025_MESSAGE).await;
    relais_store::conformance::a_message_from_before_0025_has_no_campaign(&store).await;
}

#[tokio::test]
async fn an_inbound_message_from_before_0035_has_no_media() {
    let (_dir, store) = upgraded_from(34, relais_store::conformance::PRE_0029_INBOUND).await;
    relais_store::conformance::an_inbound_message_from_before_0035_has_no_media(&store).await;
}

#[tokio::test]
async fn a_store_from_before_0029_keeps_its_inbound_and_takes_templates() {
    let (_dir, store) = upgraded_from(28, relais_store::conformance::PRE_0029_INBOUND).await;
    relais_store::conformance::a_store_from_before_0029_keeps_its_inbound_and_takes_templates(
        &store,
    )
    .await;
}

/// SQLite answers SQLITE_BUSY at once, without waiting out the busy timeout, to a
/// transaction that read and then tries to write while another connection holds the
/// write lock. A RESTART checkpoint holds that lock while it waits for the readers of an
/// older snapshot; `relais bench inbound` lost about one message in 20,000 this way ("database
/// is locked" on the consent a STOP records, which reads its contact first). The store's
/// writes that read first must wait for the checkpoint like the others.
#[tokio::test]
async fn a_write_that_reads_first_waits_for_a_checkpoint_held_by_an_old_reader() {
    use relais_core::consent::{ConsentRecord, ConsentSource, ConsentStatus, Purpose};
    use relais_store::NewContact;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
    use sqlx::{Connection, Row};
    use std::time::Duration;

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("relais.db");
    let store = SqliteStore::open(&path).await.expect("open");
    let now = jiff::Timestamp::now();
    let tenant = store.create_tenant("t", now).await.expect("tenant").id;
    let new_contact = || NewContact {
        attributes: Default::default(),
        timezone: None,
        locale: None,
        identities: Vec::new(),
    };
    let contact = store
        .create_contact(&tenant, &new_contact(), now)
        .await
        .expect("contact");

    let options = SqliteConnectOptions::new()
        .filename(&path)
        .busy_timeout(Duration::from_secs(10));
    // A reader keeps a snapshot, and the store writes after it: the log now holds frames
    // the reader may still need, which no checkpoint can copy while it reads.
    let mut reader = SqliteConnection::connect_with(&options)
        .await
        .expect("reader");
    sqlx::query("BEGIN")
        .execute(&mut reader)
        .await
        .expect("begin");
    sqlx::query("SELECT count(*) FROM contacts")
        .fetch_one(&mut reader)
        .await
        .expect("read");
    store
        .create_contact(&tenant, &new_contact(), now)
        .await
        .expect("a write after the reader's snapshot");
    // The checkpoint takes the write lock, then waits for the reader.
    let mut checkpointer = SqliteConnection::connect_with(&options)
        .await
        .expect("checkpointer");
    let checkpoint = tokio::spawn(async move {
        sqlx::query("PRAGMA wal_checkpoint(RESTART)")
            .fetch_one(&mut checkpointer)
            .await
            .map(|row| row.get::<i64, _>(0))
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !checkpoint.is_finished(),
        "the checkpoint waits for the reader, holding the write lock"
    );

    let consent = ConsentRecord {
        id: "consent-1".into(),
        contact_id: contact.id.clone(),
        channel: None,
        purpose: Purpose::Marketing,
        status: ConsentStatus::OptedOut,
        source: ConsentSource::Keyword,
        proof: Some("STOP".into()),
        recorded_at: now,
    };
    let reader_leaves = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sqlx::query("COMMIT")
            .execute(&mut reader)
            .await
            .expect("commit");
    };
    let (recorded, ()) = tokio::join!(store.append_consent(&tenant, &consent), reader_leaves);
    recorded.expect("the consent waits for the checkpoint instead of failing");
    let busy = checkpoint.await.expect("join").expect("checkpoint");
    assert_eq!(busy, 0, "the checkpoint finished once the reader left");
    assert_eq!(
        store
            .consents(&tenant, &contact.id)
            .await
            .expect("consents")
            .len(),
        1
    );
    store.close().await;
}

/// Writers faster than the checkpoints (half a MiB per contact from four writers at once,
/// 300 MiB in all) never take the log past its documented 128 MiB: it is started over past
/// 32 MiB, copied with writers held past 64 MiB, and writes wait past 96 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_stays_under_its_bound_while_writers_outrun_the_checkpoints() {
    use relais_store::NewContact;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::Duration;

    const BOUND: u64 = 128 * 1024 * 1024;
    const WRITTEN: usize = 600; // contacts of 512 KiB: 300 MiB of log in all
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("relais.db");
    let store = Arc::new(SqliteStore::open(&path).await.expect("open"));
    let now = jiff::Timestamp::now();
    let tenant = store.create_tenant("t", now).await.expect("tenant").id;

    let wal = dir.path().join("relais.db-wal");
    let peak = Arc::new(AtomicU64::new(0));
    let writing = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (peak, writing) = (peak.clone(), writing.clone());
        tokio::spawn(async move {
            while writing.load(Ordering::Relaxed) {
                let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
                peak.fetch_max(size, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (store, tenant) = (store.clone(), tenant.clone());
            tokio::spawn(async move {
                let filler = format!("{w}").repeat(512 * 1024);
                let contact = NewContact {
                    attributes: [("notes".to_owned(), serde_json::json!(filler))]
                        .into_iter()
                        .collect(),
                    timezone: None,
                    locale: None,
                    identities: Vec::new(),
                };
                for _ in 0..WRITTEN / 4 {
                    store
                        .create_contact(&tenant, &contact, jiff::Timestamp::now())
                        .await
                        .expect("a write");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    writing.store(false, Ordering::Relaxed);
    watcher.await.expect("watcher");
    let peak = peak.load(Ordering::Relaxed);
    eprintln!("write-ahead log peak: {:.1} MiB", peak as f64 / 1048576.0);
    assert!(
        peak > 32 * 1024 * 1024,
        "the log never grew past where it is started over: the test wrote too little"
    );
    assert!(
        peak <= BOUND,
        "the log reached {:.1} MiB (bound 128 MiB)",
        peak as f64 / 1048576.0
    );
}

#[tokio::test]
async fn a_message_from_before_0032_is_no_human_agents_reply() {
    let (_dir, store) = upgraded_from(30, relais_store::conformance::PRE_0025_MESSAGE).await;
    relais_store::conformance::a_message_from_before_0032_is_no_human_agents_reply(&store).await;
}

#[tokio::test]
async fn a_merge_from_before_0036_was_asked_through_the_api() {
    let (_dir, store) = upgraded_from(35, relais_store::conformance::PRE_0036_MERGE).await;
    relais_store::conformance::a_merge_from_before_0036_was_asked_through_the_api(&store).await;
}

/// Nothing that reaches the database, Relais's own code included, can rewrite the audit
/// log: the table refuses updates and deletes.
#[tokio::test]
async fn the_audit_log_refuses_updates_and_deletes() {
    let (_dir, store) = upgraded_from::<&str>(42, &[]).await;
    let tenant = store
        .create_tenant("acme", jiff::Timestamp::now())
        .await
        .unwrap();
    let entry = relais_store::conformance::an_erasure_entry(&tenant.id);
    use relais_store::AuditStore;
    store.append_audit(&entry).await.unwrap();
    store.close().await;
    let pool = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new().filename(_dir.path().join("relais.db")),
    )
    .await
    .expect("open");
    for statement in relais_store::conformance::AUDIT_REWRITES {
        let refused = sqlx::query(statement).execute(&pool).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("append-only")),
            "{statement}: {refused:?}"
        );
    }
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_log WHERE actor_id = 'key-1'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}
