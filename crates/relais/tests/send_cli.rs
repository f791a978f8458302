//! `relais send` against a running `relais serve`.

mod support;

use serde_json::json;
use std::process::Output;
use support::{ADMIN_KEY, Server, free_port, relais};

fn send(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = relais();
    cmd.arg("send").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run relais send")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_reaches_the_sim_phone_and_reports_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start::<&str>(&data, free_port(), &[]).await;
    let base = server.base.as_str();
    let client = support::client();
    let r = client
        .post(format!("{base}/v1/contacts"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"attributes": {"first_name": "Ana"},
                      "identities": [{"channel": "sms", "address": "+33612345678"}]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    // The key comes from --key; --wait follows the message to its receipt.
    let out = send(
        &[
            "--to",
            "+33612345678",
            "Bonjour {{ first_name }}",
            "--channel",
            "sim",
            "--purpose",
            "transactional",
            "--server",
            base,
            "--key",
            ADMIN_KEY,
            "--wait",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .expect("an id line")
        .to_owned();
    assert!(text.contains("status: queued"), "{text}");
    assert!(
        text.lines().last() == Some("status: delivered"),
        "waits for the receipt: {text}"
    );
    let phone: serde_json::Value = client
        .get(format!("{base}/v1/sim/phones/+33612345678/messages"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let received: Vec<_> = phone["messages"]
        .as_array()
        .or(phone.as_array())
        .expect("a list of messages")
        .iter()
        .filter(|m| m["direction"] == "received")
        .collect();
    assert_eq!(received.len(), 1, "{phone}");
    assert_eq!(received[0]["text"], "Bonjour Ana");
    assert_eq!(received[0]["message_id"], id.as_str());

    // Without --key: RELAIS_API_KEY, then the data directory's admin-api-key file.
    let out = send(
        &["--to", "+33612345678", "Re-bonjour", "--server", base],
        &[("RELAIS_API_KEY", ADMIN_KEY)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let data_dir = data.to_str().unwrap();
    let out = send(
        &[
            "--to",
            "+33612345678",
            "Encore",
            "--server",
            base,
            "--data-dir",
            data_dir,
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("id: "));

    // An unknown variable: the problem's detail, on one line.
    let out = send(
        &[
            "--to",
            "+33699999999",
            "Bonjour {{ first_name }}",
            "--server",
            base,
            "--key",
            ADMIN_KEY,
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("422"), "{err}");
    assert!(err.contains("first_name"), "{err}");

    // A wrong key.
    let out = send(
        &[
            "--to",
            "+33612345678",
            "x",
            "--server",
            base,
            "--key",
            "nope",
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("401"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // No server there.
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let out = send(
        &[
            "--to",
            "+33612345678",
            "x",
            "--server",
            &nobody,
            "--key",
            ADMIN_KEY,
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("cannot reach the Relais server"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // No key anywhere.
    let empty = tmp.path().join("elsewhere");
    let out = send(
        &[
            "--to",
            "+33612345678",
            "x",
            "--server",
            base,
            "--data-dir",
            empty.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no API key"), "{}", stderr(&out));
}
