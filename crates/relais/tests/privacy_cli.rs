//! `relais contacts export` and `relais contacts erase` on the data directory of a running
//! `relais serve`.

mod support;

use serde_json::{Value, json};
use std::process::Output;
use support::{ADMIN_KEY, Server, free_port, relais};

fn contacts(data: &std::path::Path, args: &[&str]) -> Output {
    relais()
        .env("RELAIS_DATA_DIR", data)
        .arg("contacts")
        .args(args)
        .output()
        .expect("run relais contacts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_is_exported_and_erased_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start::<&str>(&data, free_port(), &[]).await;
    let base = server.base.as_str();
    let client = support::client();
    let contact: Value = client
        .post(format!("{base}/v1/contacts"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"attributes": {"first_name": "Zoelle"},
                      "identities": [{"channel": "sms", "address": "+33698765432"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = contact["id"].as_str().expect("created").to_owned();

    let out = contacts(&data, &["export", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let export: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(export["contact_id"], id.as_str());
    assert!(export.to_string().contains("Zoelle"));

    let zip = tmp.path().join("zoe.zip");
    let out = contacts(
        &data,
        &["export", &id, "--zip", "--output", zip.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries = relais_engine::privacy::zip::read_stored(&std::fs::read(&zip).unwrap())
        .expect("a readable zip");
    assert!(entries.iter().any(|(name, _)| name == "identities.csv"));

    let out = contacts(&data, &["export", "nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("contact nobody not found"));

    let out = contacts(&data, &["erase", &id, "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["suppressed_addresses"], 1);
    let status = client
        .get(format!("{base}/v1/contacts/{id}"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
    let out = contacts(&data, &["erase", &id, "--yes"]);
    assert!(!out.status.success(), "erased once");
    drop(server);
}
