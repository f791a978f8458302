//! Customers writing in while `relais serve` is killed with SIGKILL: every message the
//! server acknowledged is stored once and answered once, after restarts on the same data.
//!
//! Customers write from simulated phones (`POST /v1/sim/phones/{n}/reply`), each message
//! with its own provider id. A request that gets no answer (the server was killed under
//! it) is sent again with the same provider id, as a provider redelivers a webhook until it
//! is acknowledged. Every conversation runs a bot flow that answers each message once.
//!
//! The report counts, for the acknowledged messages:
//! - lost: acknowledged and not stored;
//! - duplicated: stored more than once, or answered more than once (a second answer to
//!   one message is what the customer would see);
//! - stuck: not answered, or answered and the answer not sent, once nothing has
//!   changed for [`SETTLE_STALL`]. A message a kill left midway is taken up again by the
//!   restarted server after `UNFINISHED_AFTER` (30 s): waiting for it is not being stuck.

mod support;

use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{ADMIN_KEY, Server, free_port};

/// Customers writing at once, each one message after the other.
const CUSTOMERS: usize = 24;
/// How long nothing may change before what is unfinished counts as stuck: longer than a
/// restarted server takes to resume a message a kill left midway (30 s, then a sweep every
/// 10 s).
const SETTLE_STALL: Duration = Duration::from_secs(60);

/// The bot: every message of a conversation answers a question asked again, so each
/// message gets exactly one answer.
fn flow() -> serde_json::Value {
    json!({
        "entry": {"new_conversation": true},
        "start": "again",
        "nodes": {"again": {"type": "ask", "text": "Merci, c'est noté. Autre chose ?", "var": "last", "next": "again"}}
    })
}

enum Database {
    Sqlite(PathBuf),
    Postgres(relais_store::scratch::EmptyDatabase),
}

/// What the store holds of the customers' messages and the bot's answers.
#[derive(Default)]
struct Stored {
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

impl Database {
    fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Database::Sqlite(_) => Vec::new(),
            Database::Postgres(db) => vec![("RELAIS_DATABASE_URL", db.url.clone())],
        }
    }

    async fn stored(&self) -> Stored {
        let (inbound, answers): Rows = match self {
            Database::Sqlite(path) => {
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .read_only(true);
                let Ok(pool) = sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(options)
                    .await
                else {
                    return Stored::default();
                };
                let inbound = sqlx::query_as(INBOUND).fetch_all(&pool).await;
                let answers = sqlx::query_as(ANSWERS).fetch_all(&pool).await;
                pool.close().await;
                (inbound.unwrap_or_default(), answers.unwrap_or_default())
            }
            Database::Postgres(db) => {
                let Ok(pool) = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&db.url)
                    .await
                else {
                    return Stored::default();
                };
                let inbound = sqlx::query_as(INBOUND).fetch_all(&pool).await;
                let answers = sqlx::query_as(ANSWERS).fetch_all(&pool).await;
                pool.close().await;
                (inbound.unwrap_or_default(), answers.unwrap_or_default())
            }
        };
        let mut stored = Stored::default();
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

    async fn finish(self) {
        if let Database::Postgres(db) = self {
            db.drop_database().await;
        }
    }
}

/// Customers writing as long as `running`, each message sent until acknowledged.
struct Customers {
    running: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<Vec<String>>>,
    /// Requests sent again after getting no answer (the server killed under them).
    resent: Arc<Mutex<usize>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Customers {
    fn start(base: &str) -> Customers {
        let running = Arc::new(AtomicBool::new(true));
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let resent = Arc::new(Mutex::new(0));
        let tasks = (0..CUSTOMERS)
            .map(|customer| {
                let (running, acknowledged, resent) =
                    (running.clone(), acknowledged.clone(), resent.clone());
                let url = format!("{base}/v1/sim/phones/+3361{customer:07}/reply");
                tokio::spawn(async move {
                    let client = support::client();
                    let mut sequence = 0;
                    while running.load(Ordering::Relaxed) {
                        sequence += 1;
                        let provider_id = format!("mo-{customer}-{sequence}");
                        let body = json!({"text": format!("Message {sequence} : où est mon colis ?"),
                                          "provider_id": provider_id});
                        // A provider redelivers until it gets an answer; the test stops
                        // redelivering only when the load stops (the message is then not
                        // counted unless it was acknowledged).
                        loop {
                            let sent = client
                                .post(&url)
                                .bearer_auth(ADMIN_KEY)
                                .json(&body)
                                .timeout(Duration::from_secs(10))
                                .send()
                                .await;
                            match sent {
                                Ok(r) if matches!(r.status().as_u16(), 200 | 201) => {
                                    acknowledged.lock().unwrap().push(provider_id.clone());
                                    break;
                                }
                                Ok(r) => panic!(
                                    "a customer's message refused: {} {}",
                                    r.status(),
                                    r.text().await.unwrap_or_default()
                                ),
                                Err(_) if !running.load(Ordering::Relaxed) => return,
                                Err(_) => {
                                    *resent.lock().unwrap() += 1;
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        Customers {
            running,
            acknowledged,
            resent,
            tasks,
        }
    }

    fn acknowledged_count(&self) -> usize {
        self.acknowledged.lock().unwrap().len()
    }

    async fn stop(self) -> (Vec<String>, usize) {
        self.running.store(false, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("a customer's task failed");
        }
        let acknowledged = self.acknowledged.lock().unwrap().clone();
        let resent = *self.resent.lock().unwrap();
        (acknowledged, resent)
    }
}

#[derive(Debug, Default)]
struct Report {
    acknowledged: usize,
    resent: usize,
    lost: usize,
    duplicated: usize,
    stuck: usize,
    /// Not processed all the way (part of `stuck`).
    unprocessed: usize,
}

impl Report {
    fn of(acknowledged: &[String], resent: usize, stored: &Stored) -> Report {
        let mut report = Report {
            acknowledged: acknowledged.len(),
            resent,
            unprocessed: stored.unprocessed.len(),
            ..Report::default()
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

    fn settled(&self) -> bool {
        self.lost == 0 && self.stuck == 0 && self.unprocessed == 0
    }
}

async fn serve(data: &Path, port: u16, db: &Database) -> Server {
    Server::start(data, port, &db.env()).await
}

/// Waits until the customers have had `more` messages acknowledged, with the server up.
async fn until_acknowledged(customers: &Customers, more: usize, server: &Server) {
    let target = customers.acknowledged_count() + more;
    let deadline = Instant::now() + Duration::from_secs(60);
    while customers.acknowledged_count() < target {
        assert!(
            Instant::now() < deadline,
            "customers' messages stalled at {}; log:\n{}",
            customers.acknowledged_count(),
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn kill_9_while_customers_write(db: Database, data: &Path, kills: usize) {
    let port = free_port();
    let mut server = serve(data, port, &db).await;
    let put = support::client()
        .put(format!("{}/v1/flows/answer-everything", server.base))
        .bearer_auth(ADMIN_KEY)
        .json(&flow())
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.text().await.unwrap());
    let customers = Customers::start(&server.base);
    for kill in 0..kills {
        until_acknowledged(&customers, 300 + 100 * kill, &server).await;
        server.kill();
        server = serve(data, port, &db).await;
    }
    until_acknowledged(&customers, 300, &server).await;
    let (acknowledged, resent) = customers.stop().await;

    let mut report = Report::of(&acknowledged, resent, &db.stored().await);
    let mut unsettled = (report.lost, report.stuck + report.unprocessed);
    let mut progress_at = Instant::now();
    while !report.settled() && progress_at.elapsed() < SETTLE_STALL {
        tokio::time::sleep(Duration::from_millis(250)).await;
        report = Report::of(&acknowledged, resent, &db.stored().await);
        if (report.lost, report.stuck + report.unprocessed) < unsettled {
            unsettled = (report.lost, report.stuck + report.unprocessed);
            progress_at = Instant::now();
        }
    }
    eprintln!("inbound fault report (kill -9 ×{kills}): {report:?}");
    assert!(
        report.acknowledged > 1000,
        "too little load to prove anything: {report:?}"
    );
    assert_eq!(report.lost, 0, "{report:?}\n{}", server.log_text());
    assert_eq!(report.duplicated, 0, "{report:?}\n{}", server.log_text());
    assert_eq!(report.stuck, 0, "{report:?}\n{}", server.log_text());
    assert_eq!(report.unprocessed, 0, "{report:?}\n{}", server.log_text());
    assert!(
        report.resent > 0,
        "no kill landed while a customer's message was in flight: {report:?}"
    );
    drop(server);
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_three_times_while_customers_write_on_sqlite_stores_and_answers_each_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    kill_9_while_customers_write(Database::Sqlite(data.join("relais.db")), &data, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_three_times_while_customers_write_on_postgres_stores_and_answers_each_once() {
    let db = relais_store::scratch::EmptyDatabase::create("relais_inbound_faults")
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is required for this test: {e}"));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    kill_9_while_customers_write(Database::Postgres(db), &data, 3).await;
}
