//! The web pages in a real browser: `relais serve` runs, and a script drives Debian's
//! chromium through playwright-core (npm) against it. Screenshots go to
//! `target/screenshots/`.
//!
//! The browser and playwright-core are installed by `scripts/install-browser.sh` (the test
//! command runs it as root). Without them the tests say so and pass, unless
//! `RELAIS_REQUIRE_BROWSER=1`, as in CI, where a missing browser is a failure.

mod support;

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{ADMIN_KEY, Server, free_port};

const CHROMIUM: &str = "/usr/bin/chromium";

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// `target/screenshots`, beside the test binary's profile directory.
fn screenshots_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/browser-<hash>
    exe.ancestors()
        .nth(3)
        .map(|target| target.join("screenshots"))
        .unwrap_or_else(|| PathBuf::from("target/screenshots"))
}

/// What is missing to run a browser test, if anything.
fn missing() -> Option<String> {
    if !Path::new(CHROMIUM).exists() {
        return Some(format!("{CHROMIUM} (Debian package chromium)"));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node".into());
    }
    let playwright = scripts_dir().join("node_modules/playwright-core/package.json");
    if !playwright.exists() {
        return Some(format!("{} (npm ci there)", scripts_dir().display()));
    }
    None
}

fn browser_available() -> bool {
    match missing() {
        None => true,
        Some(what) if std::env::var("RELAIS_REQUIRE_BROWSER").as_deref() == Ok("1") => {
            panic!("browser tests need {what}: run scripts/install-browser.sh as root")
        }
        Some(what) => {
            eprintln!(
                "skipped: browser tests need {what} (scripts/install-browser.sh installs it)"
            );
            false
        }
    }
}

/// Runs `script` (in tests/browser) against `server`, with `env` besides the harness's,
/// and fails with its output.
fn drive(script: &str, server: &Server, env: &[(&str, &str)]) {
    let output = Command::new("node")
        .arg(scripts_dir().join(script))
        .current_dir(scripts_dir())
        .env("RELAIS_BASE", &server.base)
        .env("RELAIS_KEY", ADMIN_KEY)
        .env("SCREENSHOT_DIR", screenshots_dir())
        .envs(env.iter().copied())
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{stderr}\nthe server's log:\n{}",
        server.log_text()
    );
}

/// Starts a server of its own, drives `script` against it and checks that it saved
/// `screenshots`.
async fn browser_test(script: &str, screenshots: &[&str]) {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        free_port(),
        &[] as &[(&str, &str)],
    )
    .await;
    drive(script, &server, &[]);
    for name in screenshots {
        let path = screenshots_dir().join(name);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(size > 1000, "{} was not written", path.display());
    }
}

#[tokio::test]
async fn the_sandbox_page_sends_receives_and_replies_in_a_browser() {
    browser_test("sandbox.mjs", &["sandbox.png", "sandbox-phone.png"]).await;
}

#[tokio::test]
async fn the_dashboard_shows_a_batch_sent_and_delivered_in_a_browser() {
    browser_test(
        "dashboard.mjs",
        &[
            "dashboard.png",
            "dashboard-campaign.png",
            "dashboard-phone.png",
        ],
    )
    .await;
}

#[tokio::test]
async fn an_agent_answers_a_customer_live_in_the_console() {
    browser_test("console.mjs", &["console.png", "console-phone.png"]).await;
}

/// A site of its own (its own port: another origin) whose page `/?channel=ID` embeds the
/// widget of that channel, served by `relais`.
async fn embedding_site(relais: &str) -> String {
    let relais = relais.to_owned();
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(
            move |axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>| {
                let channel: String = q
                    .get("channel")
                    .map(|c| c.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect())
                    .unwrap_or_default();
                let relais = relais.clone();
                async move {
                    axum::response::Html(format!(
                        "<!doctype html><html lang=\"fr\"><head><meta charset=\"utf-8\"><link rel=\"icon\" href=\"data:,\"><title>Boutique</title></head>\
                         <body><h1>Boutique</h1><p>Une page d'un autre site.</p>\
                         <script src=\"{relais}/widget.js\" data-channel=\"{channel}\" async></script></body></html>"
                    ))
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A site of its own that embeds the widget of a new `webchat` channel titled "Boutique"
/// (with more of its `config`), the only site whose pages may open the chat: the site's
/// address and its page's.
async fn widget_page(server: &Server, config: serde_json::Value) -> (String, String) {
    let site = embedding_site(&server.base).await;
    let mut config = config;
    config["allowed_origins"] = json!([site]);
    config["title"] = json!("Boutique");
    let created: serde_json::Value = support::client()
        .post(format!("{}/v1/channels", server.base))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"kind": "webchat", "name": "site", "config": config}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let channel = created["id"].as_str().expect("the channel was created");
    let page = format!("{site}/?channel={channel}");
    (site, page)
}

#[tokio::test]
async fn a_visitor_chats_through_the_widget_with_the_bot_and_an_agent_across_a_restart() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut server = Server::start(&data, port, &[] as &[(&str, &str)]).await;
    let (_, page) = widget_page(&server, json!({"color": "#8e44ad"})).await;

    let mut node = tokio::process::Command::new("node")
        .arg(scripts_dir().join("widget.mjs"))
        .current_dir(scripts_dir())
        .env("RELAIS_BASE", &server.base)
        .env("RELAIS_KEY", ADMIN_KEY)
        .env("SCREENSHOT_DIR", screenshots_dir())
        .env("PAGE_URL", &page)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run node");
    let mut stdin = node.stdin.take().unwrap();
    let mut lines = tokio::io::BufReader::new(node.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        println!("{line}");
        printed.push_str(&line);
        printed.push('\n');
        if line == "RESTART-SERVER" {
            server.kill();
            server = Server::start(&data, port, &[] as &[(&str, &str)]).await;
            stdin.write_all(b"restarted\n").await.unwrap();
        }
    }
    let output = node.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "widget.mjs failed:\n{printed}\n{}\nthe server's log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log_text()
    );
    assert!(screenshots_dir().join("widget.png").exists());
}

// Two threads: the embedding site answers the browser while `drive` waits for node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_opts_in_to_push_notifications_of_replies_from_the_widget() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        free_port(),
        &[] as &[(&str, &str)],
    )
    .await;
    let (site, page) = widget_page(&server, json!({})).await;
    drive(
        "widget_push.mjs",
        &server,
        &[("PAGE_URL", page.as_str()), ("SITE", site.as_str())],
    );
    assert!(screenshots_dir().join("widget-push.png").exists());
}
