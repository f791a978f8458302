//! `relais settings show|set|replace`: a tenant's settings (quiet hours, sender rates,
//! frequency cap, prices, content checks, sender rules) read and changed through a running server's `/v1/settings`, so
//! that the change applies at once, without a restart. Every failure is one line.

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// The sections `set` may name (`/v1/settings`, docs/settings.md).
const SECTIONS: [&str; 7] = [
    "quiet_hours",
    "sender_rates",
    "frequency_cap",
    "prices",
    "retention",
    "content_checks",
    "senders",
];

#[derive(Debug, Clone, Args)]
pub struct Server {
    /// Base URL of the running `relais serve`.
    #[arg(long, env = "RELAIS_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// API key (admin scope to change settings); defaults to `<data-dir>/admin-api-key`.
    #[arg(long, env = "RELAIS_API_KEY", hide_env_values = true)]
    pub key: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// Print the tenant's settings as JSON (one section with `--section`).
    Show {
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(SECTIONS))]
        section: Option<String>,
        #[command(flatten)]
        server: Server,
    },
    /// Replace one section with a JSON value, e.g.
    /// `relais settings set sender_rates '{"senders": {"Promo": 5}}'`; the other sections
    /// stay as they are. `relais settings set frequency_cap null` removes the cap.
    Set {
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(SECTIONS))]
        section: String,
        /// The section's new value (JSON).
        value: String,
        #[command(flatten)]
        server: Server,
    },
    /// Replace every section with the JSON document in FILE (`-` for standard input);
    /// sections it leaves out go back to their defaults.
    Replace {
        file: String,
        #[command(flatten)]
        server: Server,
    },
}

pub async fn run(command: SettingsCommand, data_dir: &Path) -> anyhow::Result<()> {
    let answer = match command {
        SettingsCommand::Show { section, server } => {
            let settings = Api::new(&server, data_dir)?
                .call(reqwest::Method::GET, None)
                .await?;
            match section {
                Some(name) => settings.get(&name).cloned().unwrap_or(Value::Null),
                None => settings,
            }
        }
        SettingsCommand::Set {
            section,
            value,
            server,
        } => {
            let value: Value = serde_json::from_str(&value)
                .with_context(|| format!("the value of `{section}` is not JSON"))?;
            Api::new(&server, data_dir)?
                .call(reqwest::Method::PATCH, Some(json!({ section: value })))
                .await?
        }
        SettingsCommand::Replace { file, server } => {
            let text = if file == "-" {
                std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {file}"))?
            };
            let document: Value =
                serde_json::from_str(&text).with_context(|| format!("{file} is not JSON"))?;
            Api::new(&server, data_dir)?
                .call(reqwest::Method::PUT, Some(document))
                .await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}

/// A running server's API, as the CLI calls it: one path, an answer or one error line.
pub(crate) struct Api {
    client: reqwest::Client,
    url: String,
    base: String,
    key: String,
}

impl Api {
    fn new(server: &Server, data_dir: &Path) -> anyhow::Result<Api> {
        Api::at(server, data_dir, "/v1/settings")
    }

    /// The API at `path` (`/v1/senders`).
    pub(crate) fn at(server: &Server, data_dir: &Path, path: &str) -> anyhow::Result<Api> {
        let key = match &server.key {
            Some(key) => key.trim().to_owned(),
            None => crate::send::read_key_file(&data_dir.join("admin-api-key"))?,
        };
        let base = server.server.trim_end_matches('/').to_owned();
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("relais-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Api {
            client,
            url: format!("{base}{path}"),
            base,
            key,
        })
    }

    /// The JSON answer of a 2xx, or an error line naming the problem.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let base = &self.base;
        let mut request = self
            .client
            .request(method, &self.url)
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_connect() {
                anyhow!("cannot reach the Relais server at {base}: is `relais serve` running? (--server)")
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
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text)
                .with_context(|| format!("{base} answered {code} with something other than JSON"));
        }
        let detail = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|problem| problem.get("detail")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| text.chars().take(200).collect());
        match code.as_u16() {
            401 => bail!("the server refused the API key (401 Unauthorized): {detail}"),
            403 => bail!("the API key may not do this (403 Forbidden; an admin key may): {detail}"),
            422 => bail!("the server refused the request, nothing changed (422): {detail}"),
            _ => bail!("the server answered {code}: {detail}"),
        }
    }
}
