//! A `relais serve` killed with SIGKILL in the middle of a campaign, restarted on the same
//! data directory, finishes it with every recipient sent exactly once: no recipient
//! skipped (lost), none with two messages (duplicated), none left to do (stuck).

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};
use support::{ADMIN_KEY, Server, client, free_port};

const CONTACTS: usize = 20_000;

async fn campaign(base: &str, id: &str) -> serde_json::Value {
    client()
        .get(format!("{base}/v1/campaigns/{id}"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_killed_mid_send_resumes_and_sends_each_recipient_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let port = free_port();
    let env: [(&str, &str); 1] = [("RELAIS_DEFAULT_COUNTRY", "FR")];
    let mut server = Server::start(&data, port, &env).await;
    let base = server.base.clone();
    let http = client();

    let mut csv = String::from("phone,first_name,consent:marketing\n");
    for n in 0..CONTACTS {
        csv.push_str(&format!("+336{n:08},C{n},yes\n"));
    }
    let imported: serde_json::Value = http
        .post(format!("{base}/v1/contacts/import"))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(imported["created"], CONTACTS, "{imported}");

    let created: serde_json::Value = http
        .post(format!("{base}/v1/campaigns"))
        .bearer_auth(ADMIN_KEY)
        .json(&serde_json::json!({
            "name": "crash-test",
            "filter": "identity.sms exists and consent.sms.marketing = 'opted_in'",
            "channel": "sim",
            "content": {"text": "Bonjour {{ first_name }}, -20 % aujourd'hui"}
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let started = http
        .post(format!("{base}/v1/campaigns/{id}/start"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert!(
        started.status().is_success(),
        "{}",
        started.text().await.unwrap()
    );

    // Killed once some of it is stored and much is still to do.
    let deadline = Instant::now() + Duration::from_secs(120);
    let at_kill = loop {
        let c = campaign(&base, &id).await;
        let enqueued = c["progress"]["enqueued"].as_u64().unwrap_or(0);
        if enqueued >= 2_000 {
            break enqueued;
        }
        assert!(
            Instant::now() < deadline,
            "the campaign did not progress: {c}\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    server.kill();
    assert!(
        (at_kill as usize) < CONTACTS,
        "killed too late to test anything"
    );

    let server = Server::start(&data, port, &env).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    let done = loop {
        let c = campaign(&server.base, &id).await;
        if c["state"] == "completed" {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "the campaign did not finish: {c}\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop(server);

    // What the store holds: one message per recipient, each recipient done.
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(data.join("relais.db"))
        .read_only(true);
    let db = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let per_contact: Vec<(String, i64)> = sqlx::query_as(
        "SELECT contact_id, COUNT(*) FROM messages WHERE campaign = 'crash-test' GROUP BY contact_id",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let messages: HashMap<String, i64> = per_contact.into_iter().collect();
    let recipients: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT contact_id, state, message_id FROM campaign_recipients WHERE campaign_id = ?",
    )
    .bind(&id)
    .fetch_all(&db)
    .await
    .unwrap();
    let duplicated = messages.values().filter(|n| **n > 1).count();
    let lost = recipients
        .iter()
        .filter(|(contact, state, _)| state != "pending" && !messages.contains_key(contact))
        .count();
    let stuck = recipients
        .iter()
        .filter(|(_, state, _)| state == "pending")
        .count();
    let unlinked = recipients
        .iter()
        .filter(|(_, state, message)| state == "enqueued" && message.is_none())
        .count();
    println!(
        "campaign crash: {} recipients, {} enqueued at the kill; lost {lost}, duplicated {duplicated}, stuck {stuck}",
        recipients.len(),
        at_kill
    );
    assert_eq!(recipients.len(), CONTACTS);
    assert_eq!((lost, duplicated, stuck, unlinked), (0, 0, 0, 0));
    assert_eq!(messages.len(), CONTACTS, "every recipient has a message");
    assert_eq!(done["progress"]["enqueued"], CONTACTS, "{done}");
}
