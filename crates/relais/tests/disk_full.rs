//! `relais serve` on a disk that fills up: while the store cannot write, sends answer 503
//! (problem+json, `Retry-After`) and store nothing, and `/healthz` says so; once space
//! returns, it recovers by itself, with every message it acknowledged stored and sent.
//!
//! The disk is a small tmpfs mounted for the test (root, as in CI; see
//! `relais_store::scratch::SmallDisk` for what happens without it).
//!
//! The same holds for customers writing in: a message the store cannot take is refused with
//! 503 and the provider delivers it again; once space returns, every message is stored
//! once and answered once.

mod support;

use relais_store::scratch::SmallDisk;
use serde_json::json;
use std::time::{Duration, Instant};
use support::inbound::{
    Answered, Writing, answer_everything, fake_graph, settle, whatsapp_channel,
};
use support::{ADMIN_KEY, Server, free_port};

fn message(n: usize) -> serde_json::Value {
    json!({
        "to": format!("+336{:08}", 30_000_000 + n),
        "channel": "sim",
        "purpose": "transactional",
        // Some bulk, so that the disk fills after a few thousand messages.
        "content": {"text": format!("Votre colis {n} arrive demain. {}", "x".repeat(300))},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_stores_nothing_and_recovers_by_itself_with_nothing_lost() {
    let mount = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount_for_test(mount.path(), "24m") else {
        return;
    };
    let data = disk.path().join("data");
    // The log on the small disk too, as it often is: a server whose log cannot be
    // written keeps serving.
    let log = disk.path().join("serve.log");
    let server = Server::start_logging_to(&data, free_port(), &[("RELAIS_LOG", "warn")], log).await;
    let client = support::client();
    let send = |n: usize| {
        client
            .post(format!("{}/v1/messages", server.base))
            .bearer_auth(ADMIN_KEY)
            .json(&message(n))
            .timeout(Duration::from_secs(20))
            .send()
    };

    let ballast = disk.fill_leaving(256 * 1024);
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    let mut n = 0;
    while refused < 50 {
        assert!(n < 20_000, "the disk never filled up");
        let r = send(n).await.unwrap_or_else(|e| {
            panic!(
                "no answer: {e}; log (up to the full disk):\n{}",
                server.log_text()
            )
        });
        n += 1;
        match r.status().as_u16() {
            202 => {
                let body: serde_json::Value = r.json().await.unwrap();
                acknowledged.push(body["id"].as_str().unwrap().to_owned());
            }
            503 => {
                refused += 1;
                let problem = assert_unavailable(r).await;
                assert!(
                    problem["detail"]
                        .as_str()
                        .unwrap_or("")
                        .contains("not stored"),
                    "{problem}"
                );
            }
            other => panic!(
                "a send on a full disk got {other}: {}",
                r.text().await.unwrap()
            ),
        }
    }
    assert_eq!(
        health(&client, &server).await,
        503,
        "/healthz says the store cannot write"
    );

    // Space comes back: no restart, the server recovers by itself.
    space_back(&client, &server, &ballast).await;
    for m in n..n + 100 {
        let r = send(m).await.unwrap();
        assert_eq!(
            r.status().as_u16(),
            202,
            "sends work again once space returns"
        );
        let body: serde_json::Value = r.json().await.unwrap();
        acknowledged.push(body["id"].as_str().unwrap().to_owned());
    }

    // Every acknowledged message is stored and goes out; nothing else was stored.
    let db = data.join("relais.db");
    let deadline = Instant::now() + Duration::from_secs(60);
    let (lost, stuck, stored) = loop {
        let stored = support::sqlite_statuses(&db).await;
        let lost = acknowledged
            .iter()
            .filter(|id| !stored.contains_key(*id))
            .count();
        let stuck = stored.values().filter(|s| *s != "delivered").count();
        if (lost == 0 && stuck == 0) || Instant::now() > deadline {
            break (lost, stuck, stored);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "fault report (disk full): {} acknowledged, {refused} refused with 503, lost {lost}, stuck {stuck}, stored {}",
        acknowledged.len(),
        stored.len()
    );
    assert_eq!(
        lost,
        0,
        "acknowledged messages missing; log:\n{}",
        server.log_text()
    );
    assert_eq!(
        stuck,
        0,
        "messages not delivered; log:\n{}",
        server.log_text()
    );
    assert_eq!(
        stored.len(),
        acknowledged.len(),
        "a refused send stored something"
    );
    drop(server);
    drop(disk);
}

/// The status `/healthz` answers.
async fn health(client: &reqwest::Client, server: &Server) -> u16 {
    client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .expect("/healthz answers")
        .status()
        .as_u16()
}

/// Gives the space back, and waits until the server says, by itself, that it can write.
async fn space_back(client: &reqwest::Client, server: &Server, ballast: &std::path::Path) {
    std::fs::remove_file(ballast).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while health(client, server).await != 200 {
        assert!(
            Instant::now() < deadline,
            "/healthz stayed 503 once space returned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks a 503 (problem+json, with `Retry-After`); the problem.
async fn assert_unavailable(r: reqwest::Response) -> serde_json::Value {
    assert!(
        r.headers().contains_key("retry-after"),
        "a 503 says when to try again"
    );
    assert_eq!(
        r.headers()["content-type"],
        "application/problem+json",
        "a 503 is problem+json"
    );
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_writing_on_a_full_disk_get_503_then_are_stored_and_answered_once() {
    customers_write_on_a_full_disk(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_webhooks_on_a_full_disk_get_503_then_are_stored_and_answered_once() {
    customers_write_on_a_full_disk(true).await;
}

async fn customers_write_on_a_full_disk(on_whatsapp: bool) {
    let mount = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount_for_test(mount.path(), "24m") else {
        return;
    };
    let data = disk.path().join("data");
    let log = disk.path().join("serve.log");
    let server = Server::start_logging_to(&data, free_port(), &[("RELAIS_LOG", "warn")], log).await;
    let client = support::client();
    answer_everything(&server.base).await;
    let writing = if on_whatsapp {
        let graph = fake_graph().await;
        Writing::WhatsApp {
            hook: whatsapp_channel(&server.base, &graph).await,
        }
    } else {
        Writing::Sim {
            base: server.base.clone(),
        }
    };
    // Eight customers writing in turn, each message with its provider id; some bulk, so
    // that the disk fills after a few thousand.
    let write = |n: usize| {
        let text = format!("Message {n} : où est mon colis ? {}", "x".repeat(300));
        writing
            .request(&client, n % 8, &format!("mo-{n}"), &text)
            .timeout(Duration::from_secs(20))
            .send()
    };

    let ballast = disk.fill_leaving(2 * 1024 * 1024);
    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    let mut n = 0;
    while refused.len() < 30 {
        assert!(n < 20_000, "the disk never filled up");
        let r = write(n).await.unwrap_or_else(|e| {
            panic!(
                "no answer: {e}; log (up to the full disk):\n{}",
                server.log_text()
            )
        });
        match r.status().as_u16() {
            200 | 201 => acknowledged.push(format!("mo-{n}")),
            503 => {
                refused.push(n);
                let problem = assert_unavailable(r).await;
                assert_eq!(problem["status"], 503, "{problem}");
            }
            other => panic!(
                "a customer's message on a full disk got {other}: {}",
                r.text().await.unwrap()
            ),
        }
        n += 1;
    }
    assert_eq!(
        health(&client, &server).await,
        503,
        "/healthz says the store cannot write"
    );

    space_back(&client, &server, &ballast).await;
    // The provider delivers the refused messages again, then customers write on.
    for &m in refused.iter().chain(&(n..n + 50).collect::<Vec<_>>()) {
        let r = write(m).await.unwrap();
        assert!(
            matches!(r.status().as_u16(), 200 | 201),
            "a customer's message once space returned got {}: {}",
            r.status(),
            r.text().await.unwrap()
        );
        acknowledged.push(format!("mo-{m}"));
    }

    let db = data.join("relais.db");
    let report = settle(
        &acknowledged,
        refused.len(),
        Duration::from_secs(60),
        || Answered::read_sqlite(&db),
    )
    .await;
    let on = if on_whatsapp {
        "WhatsApp webhooks"
    } else {
        "sim phones"
    };
    eprintln!("inbound fault report ({on}, disk full): {report:?}");
    assert_eq!(report.lost, 0, "{report:?}\n{}", server.log_text());
    assert_eq!(report.duplicated, 0, "{report:?}\n{}", server.log_text());
    assert_eq!(report.stuck, 0, "{report:?}\n{}", server.log_text());
    assert_eq!(report.unprocessed, 0, "{report:?}\n{}", server.log_text());
    assert_eq!(
        Answered::read_sqlite(&db).await.stored_count(),
        acknowledged.len(),
        "a message was stored that no customer sent"
    );
    drop(server);
    drop(disk);
}

/// The audit log's promise on a full disk: a contact is never read without its entry. A
/// read whose entry cannot be written answers 503 and shows nothing of the contact; once
/// space returns, reads are answered again, and the log holds one entry per read answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_full_disk_a_contact_is_never_read_without_its_audit_entry() {
    let mount = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount_for_test(mount.path(), "24m") else {
        return;
    };
    let data = disk.path().join("data");
    let log = disk.path().join("serve.log");
    let server = Server::start_logging_to(&data, free_port(), &[("RELAIS_LOG", "warn")], log).await;
    let client = support::client();
    let created = client
        .post(format!("{}/v1/contacts", server.base))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"attributes": {"first_name": "Zoéline"},
                      "identities": [{"channel": "sms", "address": "+33612345678"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let contact: serde_json::Value = created.json().await.unwrap();
    let id = contact["id"].as_str().unwrap().to_owned();
    let read = || {
        client
            .get(format!("{}/v1/contacts/{id}", server.base))
            .bearer_auth(ADMIN_KEY)
            .timeout(Duration::from_secs(20))
            .send()
    };

    // Fill the disk until sends are refused: the store cannot write any more.
    let ballast = disk.fill_leaving(256 * 1024);
    let mut refused_sends = 0;
    let mut n = 0;
    while refused_sends < 20 {
        assert!(n < 20_000, "the disk never filled up");
        let r = client
            .post(format!("{}/v1/messages", server.base))
            .bearer_auth(ADMIN_KEY)
            .json(&message(n))
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .unwrap();
        n += 1;
        if r.status().as_u16() == 503 {
            refused_sends += 1;
        }
    }

    let (mut answered, mut refused) = (0, 0);
    for _ in 0..20 {
        let r = read().await.unwrap();
        match r.status().as_u16() {
            200 => {
                answered += 1;
                let body = r.text().await.unwrap();
                assert!(body.contains("Zoéline"), "{body}");
            }
            503 => {
                refused += 1;
                let problem = assert_unavailable(r).await;
                assert!(
                    !problem.to_string().contains("Zoéline")
                        && !problem.to_string().contains("+33612345678"),
                    "a refused read shows nothing of the contact: {problem}"
                );
            }
            other => panic!(
                "a read on a full disk got {other}: {}",
                r.text().await.unwrap()
            ),
        }
    }
    assert!(
        refused > 0,
        "no read met the full disk ({answered} answered); log:\n{}",
        server.log_text()
    );

    space_back(&client, &server, &ballast).await;
    let r = read().await.unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "reads work again once space returns"
    );
    answered += 1;

    let entries: serde_json::Value = client
        .get(format!(
            "{}/v1/audit?action=contact.read&resource_kind=contact&resource_id={id}",
            server.base
        ))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let logged = entries["data"].as_array().map_or(0, Vec::len);
    eprintln!(
        "fault report (audit on a full disk): {answered} reads answered, {refused} refused with 503, {logged} audit entries"
    );
    assert_eq!(
        logged, answered,
        "every read answered has its entry, and only those: {entries}"
    );
    drop(server);
    drop(disk);
}
