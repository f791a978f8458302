//! The store's share of one message's way through the send pipeline, step by step, with
//! nothing else running: accept (message, events, outbox), claim, `sending`, settle as
//! `sent` with a provider id, and the `delivered` receipt. Prints microseconds per message
//! for each step, so a change to the schema or the statements can be measured alone.
//!
//! ```sh
//! cargo run --release -p relais-store --example hot_path -- 50000
//! ```

use jiff::{SignedDuration, Timestamp};
use relais_core::status::MessageStatus;
use relais_store::{
    MessageEvent, MessageStore, NewMessage, OutboxNext, Settlement, SqliteStore, Store,
};
use std::time::{Duration, Instant};

const ROUND: usize = 1000;

// The allocator of the `relais` binary, so that the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn message(tenant: &str, n: usize, now: Timestamp) -> NewMessage {
    NewMessage {
        human_agent_since: None,
        id: relais_core::ids::new_id(),
        tenant_id: tenant.to_owned(),
        contact_id: None,
        to_address: format!("+336{n:08}"),
        channel: "sim".into(),
        step: 0,
        chain: serde_json::json!(["sim"]),
        content: serde_json::json!({"text": format!("Bonjour {n}, votre code est {n}")}),
        purpose: "transactional".into(),
        sender: None,
        campaign: None,
        status: MessageStatus::Queued,
        segments: Some(1),
        idempotency_key: None,
        request_hash: None,
        send_at: None,
        expires_at: None,
        created_at: now,
        events: vec![
            MessageEvent::new(MessageStatus::Accepted, now),
            MessageEvent::new(MessageStatus::Queued, now),
        ],
        due_at: Some(now),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let total: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(50_000);
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(&dir.path().join("relais.db")).await?;
    let now = Timestamp::now();
    let tenant = store.create_tenant("bench", now).await?.id;
    let mut spent = [Duration::ZERO; 5];
    let mut done = 0;
    while done < total {
        let batch: Vec<NewMessage> = (done..done + ROUND)
            .map(|n| message(&tenant, n, now))
            .collect();
        let t = Instant::now();
        store.insert_messages(&batch).await?;
        spent[0] += t.elapsed();

        let t = Instant::now();
        let claimed = store
            .claim_due(now, ROUND as u32, "bench", SignedDuration::from_secs(60))
            .await?;
        spent[1] += t.elapsed();
        assert_eq!(claimed.len(), ROUND);

        let marks: Vec<(String, MessageEvent)> = claimed
            .iter()
            .map(|c| {
                (
                    c.message.id.clone(),
                    MessageEvent::new(MessageStatus::Sending, now)
                        .channel("sim")
                        .attempt(1),
                )
            })
            .collect();
        let t = Instant::now();
        store.record_statuses(&marks).await?;
        spent[2] += t.elapsed();

        let settlements: Vec<(String, Settlement)> = claimed
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut s = Settlement::new(OutboxNext::Done);
                s.status = Some(MessageEvent::new(MessageStatus::Sent, now).channel("sim"));
                s.provider_id = Some(format!("smsc-{}-{i}", done));
                (c.message.id.clone(), s)
            })
            .collect();
        let t = Instant::now();
        store.settle_all("bench", &settlements, now).await?;
        spent[3] += t.elapsed();

        let receipts: Vec<(String, MessageEvent)> = claimed
            .iter()
            .map(|c| {
                (
                    c.message.id.clone(),
                    MessageEvent::new(MessageStatus::Delivered, now)
                        .channel("sim")
                        .reason("receipt"),
                )
            })
            .collect();
        let t = Instant::now();
        store.record_statuses(&receipts).await?;
        spent[4] += t.elapsed();
        done += ROUND;
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / total as f64;
    let names = [
        "accept",
        "claim",
        "sending",
        "settle sent",
        "receipt delivered",
    ];
    for (name, d) in names.iter().zip(spent) {
        println!("{name:<18} {:>7.1} µs/message", per(d));
    }
    let all: Duration = spent.iter().sum();
    println!(
        "{:<18} {:>7.1} µs/message ({:.0} messages/s through one writer)",
        "total",
        per(all),
        total as f64 / all.as_secs_f64()
    );
    Ok(())
}
