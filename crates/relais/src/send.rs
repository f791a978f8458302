//! `relais send`: one message through a running server's API, as an application would send
//! it. Every failure is one line that says what to do about it.

use anyhow::{Context, anyhow, bail};
use clap::Args;
use relais_core::status::MessageStatus;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// Recipient: an E.164 phone number (national numbers use the server's default country).
    #[arg(long)]
    pub to: String,
    /// The text; `{{ name }}` placeholders are filled from the contact's attributes.
    pub text: String,
    /// Channel name or id; by default the server picks a route.
    #[arg(long)]
    pub channel: Option<String>,
    /// `transactional`, `marketing`, or a marketing topic.
    #[arg(long)]
    pub purpose: Option<String>,
    /// Base URL of the running `relais serve`.
    #[arg(long, env = "RELAIS_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// API key with the send scope; defaults to `<data-dir>/admin-api-key`.
    #[arg(long, env = "RELAIS_API_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Wait until the message reaches a final status (delivered, read, failed, …).
    #[arg(long)]
    pub wait: bool,
    /// Longest wait with `--wait`, in seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

pub async fn run(args: SendArgs, data_dir: &Path) -> anyhow::Result<()> {
    let key = match &args.key {
        Some(key) => key.trim().to_owned(),
        None => read_key_file(&data_dir.join("admin-api-key"))?,
    };
    let base = args.server.trim_end_matches('/').to_owned();
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("relais-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")?;

    let mut body = json!({"to": args.to, "content": {"text": args.text}});
    if let Some(channel) = &args.channel {
        body["channel"] = json!(channel);
    }
    if let Some(purpose) = &args.purpose {
        body["purpose"] = json!(purpose);
    }
    let accepted = call(
        client
            .post(format!("{base}/v1/messages"))
            .bearer_auth(&key)
            .json(&body),
        &base,
    )
    .await?;
    let id = text_field(&accepted, "id")?;
    let mut status = text_field(&accepted, "status")?;
    println!("id: {id}");
    println!("status: {status}");
    if !args.wait {
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut pause = Duration::from_millis(100);
    while !settled(&status) {
        if Instant::now() >= deadline {
            bail!(
                "message {id} is still `{status}` after {} s (see GET /v1/messages/{id})",
                args.timeout
            );
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
        let message = call(
            client
                .get(format!("{base}/v1/messages/{id}"))
                .bearer_auth(&key),
            &base,
        )
        .await?;
        let now = text_field(&message, "status")?;
        if now != status {
            println!("status: {now}");
            status = now;
        }
    }
    Ok(())
}

/// A status after which nothing more happens to the message on its own (`sent` waits for
/// a receipt, `scheduled` for its time).
fn settled(status: &str) -> bool {
    status
        .parse::<MessageStatus>()
        .map(|s| s.is_final() || s.is_delivered())
        .unwrap_or(true)
}

pub(crate) fn read_key_file(path: &Path) -> anyhow::Result<String> {
    let key = std::fs::read_to_string(path).map_err(|e| {
        anyhow!(
            "no API key: pass --key or RELAIS_API_KEY, or run from the server's data directory ({} : {e})",
            path.display()
        )
    })?;
    let key = key.trim().to_owned();
    if key.is_empty() {
        bail!("{} is empty: pass --key or RELAIS_API_KEY", path.display());
    }
    Ok(key)
}

/// Sends the request; the JSON answer of a 2xx, or an error line naming the problem.
async fn call(request: reqwest::RequestBuilder, base: &str) -> anyhow::Result<Value> {
    let response = request.send().await.map_err(|e| {
        if e.is_connect() {
            anyhow!(
                "cannot reach the Relais server at {base}: is `relais serve` running? (--server)"
            )
        } else if e.is_timeout() {
            anyhow!("the Relais server at {base} did not answer in time")
        } else {
            anyhow!("request to {base} failed: {e}")
        }
    })?;
    let code = response.status();
    let text = response
        .text()
        .await
        .with_context(|| format!("the answer of {base} was cut off"))?;
    if code.is_success() {
        return serde_json::from_str(&text)
            .with_context(|| format!("{base} answered {code} with something other than JSON"));
    }
    let problem: Option<Value> = serde_json::from_str(&text).ok();
    let detail = problem
        .as_ref()
        .and_then(|p| p.get("detail"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| text.chars().take(200).collect());
    match code.as_u16() {
        401 => bail!("the server refused the API key (401 Unauthorized): {detail}"),
        403 => bail!("the API key may not send messages (403 Forbidden): {detail}"),
        422 => bail!("the server refused the message (422): {detail}"),
        _ => bail!("the server answered {code}: {detail}"),
    }
}

fn text_field(value: &Value, name: &str) -> anyhow::Result<String> {
    value
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("the server's answer has no `{name}`"))
}
