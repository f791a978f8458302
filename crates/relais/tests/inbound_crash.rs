//! Customers writing in while `relais serve` is killed with SIGKILL: every message the
//! server acknowledged is stored once and answered once, after restarts on the same data.
//!
//! Customers write from simulated phones (`POST /v1/sim/phones/{n}/reply`), or on
//! WhatsApp, as Meta's signed webhooks to the channel's `/hooks/{id}` (the bot's answers
//! then go out through a local fake of the Graph API), each message with its own provider
//! id. A request that gets no answer or a 503 (the server was killed under it, or the
//! store could not take it) is sent again with the same provider id, as a provider
//! redelivers a webhook until it is acknowledged. Every conversation runs a bot flow that
//! answers each message once.
//!
//! The report counts, for the acknowledged messages:
//! - lost: acknowledged and not stored;
//! - duplicated: stored more than once, or answered more than once (a second answer to
//!   one message is what the customer would see);
//! - stuck: not answered, or answered and the answer not sent, once nothing has
//!   changed for [`SETTLE_STALL`]. A message a kill left midway is taken up again by the
//!   restarted server after `UNFINISHED_AFTER` (30 s): waiting for it is not being stuck.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::inbound::{Writing, answer_everything, fake_graph, settle, whatsapp_channel};
use support::{Database, Server, free_port};

/// Customers writing at once, each one message after the other.
const CUSTOMERS: usize = 24;
/// How long nothing may change before what is unfinished counts as stuck: longer than a
/// restarted server takes to resume a message a kill left midway (30 s, then a sweep every
/// 10 s).
const SETTLE_STALL: Duration = Duration::from_secs(60);

/// Customers writing as long as `running`, each message sent until acknowledged.
struct Customers {
    running: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<Vec<String>>>,
    /// Requests sent again after getting no answer (the server killed under them).
    resent: Arc<Mutex<usize>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Customers {
    fn start(writing: &Writing) -> Customers {
        let running = Arc::new(AtomicBool::new(true));
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let resent = Arc::new(Mutex::new(0));
        let tasks = (0..CUSTOMERS)
            .map(|customer| {
                let (running, acknowledged, resent) =
                    (running.clone(), acknowledged.clone(), resent.clone());
                let writing = writing.clone();
                tokio::spawn(async move {
                    let client = support::client();
                    let mut sequence = 0;
                    while running.load(Ordering::Relaxed) {
                        sequence += 1;
                        let provider_id = format!("mo-{customer}-{sequence}");
                        let text = format!("Message {sequence} : où est mon colis ?");
                        // A provider redelivers until it gets an answer; the test stops
                        // redelivering only when the load stops (the message is then not
                        // counted unless it was acknowledged).
                        loop {
                            let sent = writing
                                .request(&client, customer, &provider_id, &text)
                                .timeout(Duration::from_secs(10))
                                .send()
                                .await;
                            match sent {
                                Ok(r) if matches!(r.status().as_u16(), 200 | 201) => {
                                    acknowledged.lock().unwrap().push(provider_id.clone());
                                    break;
                                }
                                // A webhook the store could not take in time: Meta
                                // delivers it again.
                                Ok(r) if r.status().as_u16() == 503 => {
                                    *resent.lock().unwrap() += 1;
                                    tokio::time::sleep(Duration::from_millis(50)).await;
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

async fn kill_9_while_customers_write(db: Database, data: &Path, kills: usize, on_whatsapp: bool) {
    let port = free_port();
    let mut server = serve(data, port, &db).await;
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
    let customers = Customers::start(&writing);
    for kill in 0..kills {
        until_acknowledged(&customers, 300 + 100 * kill, &server).await;
        server.kill();
        server = serve(data, port, &db).await;
    }
    until_acknowledged(&customers, 300, &server).await;
    let (acknowledged, resent) = customers.stop().await;

    let report = settle(&acknowledged, resent, SETTLE_STALL, || db.answered()).await;
    let on = if on_whatsapp {
        "WhatsApp webhooks"
    } else {
        "sim phones"
    };
    eprintln!("inbound fault report ({on}, kill -9 ×{kills}): {report:?}");
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
    kill_9_while_customers_write(Database::Sqlite(data.join("relais.db")), &data, 3, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_three_times_while_customers_write_on_whatsapp_stores_and_answers_each_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    kill_9_while_customers_write(Database::Sqlite(data.join("relais.db")), &data, 3, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_three_times_while_customers_write_on_postgres_stores_and_answers_each_once() {
    let db = relais_store::scratch::EmptyDatabase::create("relais_inbound_faults")
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is required for this test: {e}"));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    kill_9_while_customers_write(Database::Postgres(db), &data, 3, false).await;
}
