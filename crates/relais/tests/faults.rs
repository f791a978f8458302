//! Fault injection against the real binary: `relais serve` sends over an SMPP channel to
//! an SMSC simulator that lives in the test (so it outlives every kill of the server), while
//! clients send one message per request and batches, as real clients do.
//!
//! Each scenario reports, for the messages the API acknowledged (202):
//! - lost: acknowledged and never submitted to the SMSC, or missing from the store;
//! - duplicated: submitted to the SMSC more than once (the simulator counts accepted submits
//!   per Relais message id, which travels in a vendor TLV), split by what Relais knew:
//!   `resent_after_answer`, sent again although the simulator had written the
//!   `submit_sm_resp` of an earlier submit to Relais' connection (Relais was told the SMSC
//!   had it: the promise is broken), and `resent_unanswered`, sent again because every
//!   earlier submit's answer was lost with its SMPP session (the SMSC went down between
//!   accepting it and answering: Relais could not know, and sending it again is the price
//!   of losing nothing);
//! - stuck: not delivered once the load has stopped and nothing finished for
//!   [`SETTLE_STALL`] (a throttled backlog drains slowly: waiting is not being stuck);
//!
//! and checks the promises: nothing lost, nothing stuck, no duplicate without a kill and at
//! most the channel's window per kill; an SMSC that goes down may get again at most the
//! window it had not answered, never a message it answered.

mod support;

use relais_smpp::{SimConfig, SimHandle};
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{ADMIN_KEY, Database, Server, free_port};

/// The SMPP channel's window (one bind): the most messages submitted and not yet recorded,
/// so the most a kill may send twice.
const WINDOW: usize = 20;
/// Messages per batch request of the batch client.
const BATCH: usize = 100;
/// Clients sending one message per request.
const SINGLE_CLIENTS: usize = 6;
/// How long the unfinished messages may stay the same before they count as stuck. A
/// recovering node takes over leases after 2 s and a throttled PDU waits 5 s at most.
const SETTLE_STALL: Duration = Duration::from_secs(30);

async fn simulator(throttle_rate: f64) -> SimHandle {
    relais_smpp::simulator::start(
        SimConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            receipt_delay_ms: 10,
            throttle_rate,
            redelivery_delay_ms: 200,
            system_id: Some("relais".into()),
            password: Some("secret".into()),
            ..SimConfig::default()
        },
        std::future::pending(),
    )
    .await
    .unwrap()
}

/// Clients sending as long as `running`: some one message per request, one in batches.
/// A request that gets no 202 (refused, connection reset by a kill) is not acknowledged and
/// so not counted; the client goes on with a new message.
struct Load {
    running: Arc<AtomicBool>,
    accepted: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(base: &str, channel: &str) -> Load {
        let running = Arc::new(AtomicBool::new(true));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let next_number = Arc::new(AtomicU64::new(20_000_000));
        let mut tasks = Vec::new();
        let message = {
            let channel = channel.to_owned();
            let next_number = next_number.clone();
            move || {
                json!({
                    "to": format!("+336{:08}", next_number.fetch_add(1, Ordering::Relaxed)),
                    "channel": channel,
                    "purpose": "transactional",
                    "content": {"text": "Votre colis arrive demain"},
                })
            }
        };
        for _ in 0..SINGLE_CLIENTS {
            let (running, accepted, message) = (running.clone(), accepted.clone(), message.clone());
            let url = format!("{base}/v1/messages");
            tasks.push(tokio::spawn(async move {
                let client = support::client();
                while running.load(Ordering::Relaxed) {
                    let sent = client
                        .post(&url)
                        .bearer_auth(ADMIN_KEY)
                        .json(&message())
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status().as_u16() == 202 => {
                            if let Ok(body) = r.json::<serde_json::Value>().await
                                && let Some(id) = body["id"].as_str()
                            {
                                accepted.lock().unwrap().push(id.to_owned());
                            }
                        }
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            }));
        }
        let (running_b, accepted_b) = (running.clone(), accepted.clone());
        let url = format!("{base}/v1/messages/batch");
        tasks.push(tokio::spawn(async move {
            let client = support::client();
            while running_b.load(Ordering::Relaxed) {
                let items: Vec<_> = (0..BATCH).map(|_| message()).collect();
                let sent = client
                    .post(&url)
                    .bearer_auth(ADMIN_KEY)
                    .json(&json!({ "messages": items }))
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                if let Ok(r) = sent
                    && r.status().as_u16() == 202
                    && let Ok(body) = r.json::<serde_json::Value>().await
                {
                    let ids = body["results"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| r["id"].as_str().map(str::to_owned));
                    accepted_b.lock().unwrap().extend(ids);
                }
                // A batch every 100 ms: a backlog for the dispatcher without flooding it.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
        Load {
            running,
            accepted,
            tasks,
        }
    }

    fn accepted_count(&self) -> usize {
        self.accepted.lock().unwrap().len()
    }

    async fn stop(self) -> Vec<String> {
        self.running.store(false, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        self.accepted.lock().unwrap().clone()
    }
}

/// What became of the acknowledged messages.
#[derive(Debug, Default)]
struct Report {
    accepted: usize,
    lost: usize,
    duplicated: usize,
    resent_after_answer: usize,
    resent_unanswered: usize,
    stuck: usize,
    failed: usize,
    statuses: HashMap<String, usize>,
}

impl Report {
    fn of(accepted: &[String], stored: &HashMap<String, String>, sim: &SimHandle) -> Report {
        let submitted = sim.stats.references.lock().unwrap().clone();
        let mut report = Report {
            accepted: accepted.len(),
            ..Report::default()
        };
        for status in stored.values() {
            *report.statuses.entry(status.clone()).or_default() += 1;
            match status.as_str() {
                "delivered" => {}
                "failed" | "expired" | "rejected" | "undelivered" | "canceled" => {
                    report.failed += 1
                }
                _ => report.stuck += 1,
            }
        }
        report.lost = accepted
            .iter()
            .filter(|id| !stored.contains_key(*id) || !submitted.contains_key(*id))
            .count();
        report.duplicated = submitted
            .values()
            .map(|n| (*n as usize).saturating_sub(1))
            .sum();
        let repeats = sim.stats.repeats();
        report.resent_after_answer = repeats.after_answer as usize;
        report.resent_unanswered = repeats.unanswered as usize;
        report
    }
}

/// Prints, for each message the simulator accepted more than once, what became of the
/// answer to each submit and (SQLite) the message's events: whether Relais got the first
/// answer, and why it sent the message again.
async fn repeated_whereabouts(db: &Database, sim: &SimHandle) {
    let repeated: Vec<(String, Vec<relais_smpp::AnswerFate>)> = sim
        .stats
        .answers
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, fates)| fates.len() > 1)
        .map(|(id, fates)| (id.clone(), fates.clone()))
        .collect();
    for (id, fates) in &repeated {
        eprintln!("accepted more than once: {id}, answers {fates:?}");
    }
    if let Database::Sqlite(path) = db {
        let ids: Vec<&String> = repeated.iter().map(|(id, _)| id).collect();
        for line in support::sqlite_whereabouts(path, &ids).await {
            eprintln!("  {line}");
        }
    }
}

/// Waits until every stored message is delivered (or failed), then reports. The backlog
/// of a throttled SMSC drains slowly (its throttled PDUs wait before going again), so the
/// wait lasts as long as messages keep finishing: what is still unfinished after `stall`
/// without any progress is stuck.
async fn settle(accepted: &[String], db: &Database, sim: &SimHandle, stall: Duration) -> Report {
    let mut unfinished = usize::MAX;
    let mut progress_at = Instant::now();
    loop {
        let report = Report::of(accepted, &db.statuses().await, sim);
        if report.stuck == 0 && report.lost == 0 {
            return report;
        }
        let now_unfinished = report.stuck + report.lost;
        if now_unfinished < unfinished {
            unfinished = now_unfinished;
            progress_at = Instant::now();
        } else if progress_at.elapsed() > stall {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A server on `data` with an SMPP channel to `sim`, ready to take messages.
async fn serve(data: &Path, port: u16, db: &Database) -> Server {
    let mut env = db.env();
    // A restarted node is a new lease owner: the killed node's claims must run out before
    // the new one takes them over.
    env.push(("RELAIS_DISPATCH_LEASE", "2".to_owned()));
    Server::start(data, port, &env).await
}

async fn smpp_channel(server: &Server, sim: &SimHandle) {
    let created = support::client()
        .post(format!("{}/v1/channels", server.base))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"kind": "smpp", "name": "orange", "config": {
            "host": "127.0.0.1", "port": sim.smpp_addr.port(), "system_id": "relais",
            "password": "secret", "source_addr": "RELAIS", "window": WINDOW, "binds": 1,
            "max_rate": 2000
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.status().as_u16(),
        201,
        "{}",
        created.text().await.unwrap()
    );
}

/// Waits until the simulator has taken `more` submits than `from`.
async fn until_submitted(sim: &SimHandle, from: u64, more: u64, server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while sim.counters().accepted < from + more {
        assert!(
            Instant::now() < deadline,
            "sending stalled at {} submits; log:\n{}",
            sim.counters().accepted,
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Kills the server with SIGKILL `kills` times while clients send (each kill lands while
/// requests are being accepted and messages are in the SMPP window), restarts it on the
/// same data each time, then checks what the API acknowledged.
async fn kill_9_while_accepting_and_sending(db: Database, data: &Path, kills: usize) {
    let sim = simulator(0.0).await;
    let port = free_port();
    let mut server = serve(data, port, &db).await;
    smpp_channel(&server, &sim).await;
    let load = Load::start(&server.base, "orange");
    for kill in 0..kills {
        let before = sim.counters().accepted;
        until_submitted(&sim, before, 600 + 200 * kill as u64, &server).await;
        server.kill();
        server = serve(data, port, &db).await;
    }
    until_submitted(&sim, sim.counters().accepted, 500, &server).await;
    let accepted = load.stop().await;
    let report = settle(&accepted, &db, &sim, SETTLE_STALL).await;
    eprintln!("fault report (kill -9 ×{kills}): {report:?}");
    assert!(
        report.accepted > 1000,
        "too little load to prove anything: {report:?}"
    );
    assert_eq!(report.lost, 0, "{report:?}\n{}", server.log_text());
    assert_eq!(report.stuck, 0, "{report:?}\n{}", server.log_text());
    assert_eq!(report.failed, 0, "{report:?}");
    assert!(
        report.duplicated <= WINDOW * kills,
        "more duplicates than the window ({WINDOW}) per kill: {report:?}"
    );
    drop(server);
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_three_times_on_sqlite_loses_nothing_and_resends_at_most_the_window() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    kill_9_while_accepting_and_sending(Database::Sqlite(data.join("relais.db")), &data, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_three_times_on_postgres_loses_nothing_and_resends_at_most_the_window() {
    let db = relais_store::scratch::EmptyDatabase::create("relais_faults")
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is required for this test: {e}"));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    kill_9_while_accepting_and_sending(Database::Postgres(db), &data, 3).await;
}

/// Sends under load while `disturb` runs against the simulator. No kill, so no message
/// the SMSC answered is sent again; at most `unanswered` messages whose answers the SMSC
/// lost when it went down (a window per restart).
async fn under_a_faulty_smsc<F: Future<Output = ()>>(
    name: &str,
    sim: SimHandle,
    unanswered: usize,
    disturb: impl FnOnce(SimHandle) -> F,
) -> (Report, SimHandle) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let db = Database::Sqlite(data.join("relais.db"));
    let server = serve(&data, free_port(), &db).await;
    smpp_channel(&server, &sim).await;
    let load = Load::start(&server.base, "orange");
    disturb(sim.clone()).await;
    until_submitted(&sim, sim.counters().accepted, 300, &server).await;
    assert!(load.accepted_count() > 0);
    let accepted = load.stop().await;
    let report = settle(&accepted, &db, &sim, SETTLE_STALL).await;
    eprintln!(
        "fault report ({name}): {report:?}, simulator {:?}",
        sim.counters()
    );
    if report.duplicated > 0 {
        repeated_whereabouts(&db, &sim).await;
    }
    assert!(
        report.accepted > 1000,
        "too little load to prove anything: {report:?}"
    );
    if report.stuck > 0
        && let Database::Sqlite(path) = &db
    {
        let stored = db.statuses().await;
        let stuck: Vec<&String> = stored
            .iter()
            .filter(|(_, s)| *s != "delivered")
            .map(|(id, _)| id)
            .collect();
        eprintln!(
            "stuck: {:#?}",
            support::sqlite_whereabouts(path, &stuck).await
        );
    }
    assert_eq!(report.lost, 0, "{report:?}\n{}", server.log_text());
    assert_eq!(report.stuck, 0, "{report:?}\n{}", server.log_text());
    assert_eq!(report.failed, 0, "messages failed for nothing: {report:?}");
    assert_eq!(
        report.resent_after_answer, 0,
        "messages sent again after the SMSC answered them: {report:?}"
    );
    assert_eq!(
        report.duplicated, report.resent_unanswered,
        "duplicates the simulator could not tell apart (after an answer or a lost one): {report:?}"
    );
    assert!(
        report.resent_unanswered <= unanswered,
        "more messages sent again after a lost answer than the window allows: {report:?}"
    );
    (report, sim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_smsc_slows_sending_and_fails_or_repeats_nothing() {
    let (_, sim) = under_a_faulty_smsc(
        "30 % ESME_RTHROTTLED",
        simulator(0.3).await,
        0,
        |sim| async move {
            tokio::time::sleep(Duration::from_secs(4)).await;
            assert!(sim.counters().throttled > 0, "the SMSC never throttled");
        },
    )
    .await;
    assert!(sim.counters().throttled > 100, "{:?}", sim.counters());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smsc_restarting_twice_mid_load_fails_or_repeats_nothing() {
    under_a_faulty_smsc(
        "SMSC down 3 s, twice",
        simulator(0.0).await,
        // The SMSC may go down between accepting a submit and writing its answer: a
        // window's worth per restart at most, sent again because Relais was never told.
        WINDOW * 2,
        |sim| async move {
            for _ in 0..2 {
                let before = sim.counters().accepted;
                let deadline = Instant::now() + Duration::from_secs(30);
                while sim.counters().accepted < before + 500 && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                sim.restart(Duration::from_secs(3)).await.unwrap();
            }
        },
    )
    .await;
}
