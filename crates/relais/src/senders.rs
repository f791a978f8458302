//! `relais senders list|add|code|verify|remove`: a tenant's senders on a running server,
//! through `/v1/senders` (docs/trust.md). Every failure is one line.

use crate::settings::{Api, Server};
use clap::Subcommand;
use serde_json::json;
use std::path::Path;

#[derive(Debug, Subcommand)]
pub enum SendersCommand {
    /// List the tenant's senders, as JSON.
    List {
        #[command(flatten)]
        server: Server,
    },
    /// Register a sender; KIND is `phone_number`, `alphanumeric_id`, `whatsapp_name` or
    /// `email_domain` (the answer gives an email domain's TXT record to publish).
    Add {
        kind: String,
        value: String,
        /// An email domain's DKIM selector.
        #[arg(long)]
        dkim_selector: Option<String>,
        #[command(flatten)]
        server: Server,
    },
    /// Send a phone number sender a verification code.
    Code {
        id: String,
        #[command(flatten)]
        server: Server,
    },
    /// Verify a sender: a phone number with `--code`; an email domain by its TXT record,
    /// looked up now; an alphanumeric ID or WhatsApp display name is approved.
    Verify {
        id: String,
        #[arg(long)]
        code: Option<String>,
        #[command(flatten)]
        server: Server,
    },
    /// Remove a sender.
    Remove {
        id: String,
        #[command(flatten)]
        server: Server,
    },
}

pub async fn run(command: SendersCommand, data_dir: &Path) -> anyhow::Result<()> {
    use reqwest::Method;
    let answer = match command {
        SendersCommand::List { server } => {
            Api::at(&server, data_dir, "/v1/senders")?
                .call(Method::GET, None)
                .await?
        }
        SendersCommand::Add {
            kind,
            value,
            dkim_selector,
            server,
        } => {
            let mut body = json!({"kind": kind, "value": value});
            if let Some(selector) = dkim_selector {
                body["dkim_selector"] = json!(selector);
            }
            Api::at(&server, data_dir, "/v1/senders")?
                .call(Method::POST, Some(body))
                .await?
        }
        SendersCommand::Code { id, server } => {
            Api::at(&server, data_dir, &format!("/v1/senders/{id}/code"))?
                .call(Method::POST, None)
                .await?
        }
        SendersCommand::Verify { id, code, server } => {
            let body = code.map(|code| json!({ "code": code }));
            Api::at(&server, data_dir, &format!("/v1/senders/{id}/verify"))?
                .call(Method::POST, body)
                .await?
        }
        SendersCommand::Remove { id, server } => {
            Api::at(&server, data_dir, &format!("/v1/senders/{id}"))?
                .call(Method::DELETE, None)
                .await?;
            println!("removed sender {id}");
            return Ok(());
        }
    };
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}
