//! The web pages in a real browser: `relais serve` runs, and a script drives Debian's
//! chromium through playwright-core (npm) against it. Screenshots go to
//! `target/screenshots/`.
//!
//! The browser and playwright-core are installed by `scripts/install-browser.sh` (the test
//! command runs it as root). Without them the tests say so and pass, unless
//! `RELAIS_REQUIRE_BROWSER=1`, as in CI, where a missing browser is a failure.

mod support;

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

/// Runs `script` (in tests/browser) against `server` and fails with its output.
fn drive(script: &str, server: &Server) {
    let output = Command::new("node")
        .arg(scripts_dir().join(script))
        .current_dir(scripts_dir())
        .env("RELAIS_BASE", &server.base)
        .env("RELAIS_KEY", ADMIN_KEY)
        .env("SCREENSHOT_DIR", screenshots_dir())
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
    drive(script, &server);
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
    browser_test("dashboard.mjs", &["dashboard.png", "dashboard-phone.png"]).await;
}

#[tokio::test]
async fn an_agent_answers_a_customer_live_in_the_console() {
    browser_test("console.mjs", &["console.png", "console-phone.png"]).await;
}
