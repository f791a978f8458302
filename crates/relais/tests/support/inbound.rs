//! What became of customers' messages: stored once, processed, answered once by the bot.

use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Gives the server at `base` a bot for every conversation: each message answers a
/// question asked again, so each message gets exactly one answer.
pub async fn answer_everything(base: &str) {
    let flow = json!({
        "entry": {"new_conversation": true},
        "start": "again",
        "nodes": {"again": {"type": "ask", "text": "Merci, c'est noté. Autre chose ?", "var": "last", "next": "again"}}
    });
    let put = super::client()
        .put(format!("{base}/v1/flows/answer-everything"))
        .bearer_auth(super::ADMIN_KEY)
        .json(&flow)
        .send()
        .await
        .expect("upload the flow");
    assert!(
        put.status().is_success(),
        "{}",
        put.text().await.unwrap_or_default()
    );
}

/// What the store holds of the customers' messages and the bot's answers.
#[derive(Default)]
pub struct Answered {
    /// Inbound message ids by provider id (more than one is a duplicate).
    inbound: HashMap<String, Vec<String>>,
    /// Inbound messages not processed all the way.
    unprocessed: HashSet<String>,
    /// The bot's answers by the inbound message they answer: their statuses.
    answers: HashMap<String, Vec<String>>,
}

/// (provider id, inbound id, not processed yet) and (idempotency key, status).
type Rows = (Vec<(String, String, bool)>, Vec<(String, String)>);

const INBOUND: &str = "SELECT provider_id, id, processed_at IS NULL FROM inbound_messages \
                       WHERE provider_id IS NOT NULL";
const ANSWERS: &str =
    "SELECT idempotency_key, status FROM messages WHERE idempotency_key LIKE 'relais:flow:%'";

impl Answered {
    /// Read (read-only) from the SQLite database `db`; empty while it cannot be read.
    pub async fn read_sqlite(db: &Path) -> Answered {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(db)
            .read_only(true);
        let Ok(pool) = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
        else {
            return Answered::default();
        };
        let inbound = sqlx::query_as(INBOUND).fetch_all(&pool).await;
        let answers = sqlx::query_as(ANSWERS).fetch_all(&pool).await;
        pool.close().await;
        Answered::of((inbound.unwrap_or_default(), answers.unwrap_or_default()))
    }

    /// [`Answered::read_sqlite`] from the PostgreSQL database at `url`.
    pub async fn read_postgres(url: &str) -> Answered {
        let Ok(pool) = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
        else {
            return Answered::default();
        };
        let inbound = sqlx::query_as(INBOUND).fetch_all(&pool).await;
        let answers = sqlx::query_as(ANSWERS).fetch_all(&pool).await;
        pool.close().await;
        Answered::of((inbound.unwrap_or_default(), answers.unwrap_or_default()))
    }

    fn of((inbound, answers): Rows) -> Answered {
        let mut stored = Answered::default();
        for (provider_id, id, unprocessed) in inbound {
            if unprocessed {
                stored.unprocessed.insert(id.clone());
            }
            stored.inbound.entry(provider_id).or_default().push(id);
        }
        for (key, status) in answers {
            // relais:flow:{inbound id}:{rank}
            let answered = key
                .strip_prefix("relais:flow:")
                .and_then(|rest| rest.rsplit_once(':'))
                .map(|(id, _rank)| id.to_owned())
                .unwrap_or(key);
            stored.answers.entry(answered).or_default().push(status);
        }
        stored
    }

    /// Inbound messages stored, all provider ids together.
    pub fn stored_count(&self) -> usize {
        self.inbound.values().map(Vec::len).sum()
    }
}

/// What became of the messages a server acknowledged.
#[derive(Debug, Default)]
pub struct InboundReport {
    pub acknowledged: usize,
    /// Requests sent again after getting no answer or a 503.
    pub resent: usize,
    /// Acknowledged and not stored.
    pub lost: usize,
    /// Stored more than once, or answered more than once (what the customer would see).
    pub duplicated: usize,
    /// Not answered, or the answer not sent.
    pub stuck: usize,
    /// Stored and not processed all the way.
    pub unprocessed: usize,
}

impl InboundReport {
    pub fn of(acknowledged: &[String], resent: usize, stored: &Answered) -> InboundReport {
        let mut report = InboundReport {
            acknowledged: acknowledged.len(),
            resent,
            unprocessed: stored.unprocessed.len(),
            ..InboundReport::default()
        };
        for provider_id in acknowledged {
            let Some(ids) = stored.inbound.get(provider_id) else {
                report.lost += 1;
                continue;
            };
            report.duplicated += ids.len() - 1;
            for id in ids {
                match stored.answers.get(id).map(Vec::as_slice) {
                    None | Some([]) => report.stuck += 1,
                    // Handed to the phone: the sandbox keeps a `delivered` receipt due in
                    // memory, which a kill loses, as a real provider's would be redelivered.
                    Some([status]) if matches!(status.as_str(), "sent" | "delivered" | "read") => {}
                    Some([_not_sent]) => report.stuck += 1,
                    Some(more) => report.duplicated += more.len() - 1,
                }
            }
        }
        report
    }

    pub fn settled(&self) -> bool {
        self.lost == 0 && self.stuck == 0 && self.unprocessed == 0
    }

    /// What is not settled yet, to tell progress from a stall.
    pub fn unsettled(&self) -> (usize, usize) {
        (self.lost, self.stuck + self.unprocessed)
    }
}

/// Reads what became of `acknowledged` until it is settled, or until nothing has changed
/// for `stall` (a message a stop left midway is taken up again 30 s later, then at the
/// next sweep, every 10 s: waiting for it is not being stuck).
pub async fn settle<F, R>(
    acknowledged: &[String],
    resent: usize,
    stall: std::time::Duration,
    read: F,
) -> InboundReport
where
    F: Fn() -> R,
    R: std::future::Future<Output = Answered>,
{
    let mut report = InboundReport::of(acknowledged, resent, &read().await);
    let mut unsettled = report.unsettled();
    let mut progress_at = std::time::Instant::now();
    while !report.settled() && progress_at.elapsed() < stall {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        report = InboundReport::of(acknowledged, resent, &read().await);
        if report.unsettled() < unsettled {
            unsettled = report.unsettled();
            progress_at = std::time::Instant::now();
        }
    }
    report
}

/// Where customers write from.
#[derive(Clone)]
pub enum Writing {
    /// Simulated phones.
    Sim { base: String },
    /// WhatsApp: Meta's webhook calls, signed with the app secret, to the channel's hook.
    WhatsApp { hook: String },
}

const WA_PHONE_NUMBER_ID: &str = "106540352242922";
const WA_APP_SECRET: &str = "the-app-secret";

impl Writing {
    /// The request carrying customer `customer`'s message `text` with provider id `id`.
    pub fn request(
        &self,
        client: &reqwest::Client,
        customer: usize,
        id: &str,
        text: &str,
    ) -> reqwest::RequestBuilder {
        match self {
            Writing::Sim { base } => client
                .post(format!("{base}/v1/sim/phones/+3361{customer:07}/reply"))
                .bearer_auth(super::ADMIN_KEY)
                .json(&json!({"text": text, "provider_id": id})),
            Writing::WhatsApp { hook } => {
                let body = json!({"object": "whatsapp_business_account", "entry": [{
                    "id": "102290129340398", "changes": [{"field": "messages", "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {"display_phone_number": "15550783881",
                                     "phone_number_id": WA_PHONE_NUMBER_ID},
                        "contacts": [{"profile": {"name": "Client"}, "wa_id": format!("3361{customer:07}")}],
                        "messages": [{"from": format!("3361{customer:07}"), "id": id,
                                      "timestamp": "1764840000", "type": "text",
                                      "text": {"body": text}}]}}]}]})
                .to_string();
                let signature =
                    relais_channels::whatsapp::signature::sign(WA_APP_SECRET, body.as_bytes());
                client
                    .post(hook)
                    .header("content-type", "application/json")
                    .header("x-hub-signature-256", signature)
                    .body(body)
            }
        }
    }
}

/// A fake of the Graph API's send endpoint that takes every message; its base URL.
pub async fn fake_graph() -> String {
    async fn sent(
        axum::Json(body): axum::Json<serde_json::Value>,
    ) -> axum::Json<serde_json::Value> {
        static SENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        axum::Json(json!({"messaging_product": "whatsapp",
            "contacts": [{"input": body["to"], "wa_id": body["to"]}],
            "messages": [{"id": format!("wamid.OUT{n}")}]}))
    }
    let graph = axum::Router::new().route(
        "/{version}/{phone_number_id}/messages",
        axum::routing::post(sent),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, graph).await });
    base
}

/// Configures the WhatsApp channel customers write to; its hook's URL.
pub async fn whatsapp_channel(base: &str, graph: &str) -> String {
    let created = super::client()
        .post(format!("{base}/v1/channels"))
        .bearer_auth(super::ADMIN_KEY)
        .json(&json!({"kind": "whatsapp", "name": "wa", "config": {
            "phone_number_id": WA_PHONE_NUMBER_ID, "access_token": "EAAG-test-token",
            "app_secret": WA_APP_SECRET, "verify_token": "the-verify-token",
            "base_url": graph}}))
        .send()
        .await
        .expect("create the channel");
    assert_eq!(created.status().as_u16(), 201);
    let created: serde_json::Value = created.json().await.unwrap();
    format!("{base}{}", created["webhook_url"].as_str().unwrap())
}
