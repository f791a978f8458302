//! The client and the simulator when things go wrong, as an operator would count them:
//! receipts acknowledged only once the application confirms them, delivered again when it
//! does not, none lost when a bind drops, every message through a throttling SMSC, and an
//! SMSC that is down telling "not connected" apart from a failure.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use relais_smpp::{
    Ack, ClientConfig, ClientEvents, ErrorKind, Receipt, SimConfig, SmppClient, SmppEvent,
    SubmitRequest,
};
use support::{client_config, eventually, simulator};

async fn next_event(ev: &mut ClientEvents) -> SmppEvent {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ev.recv()).await {
            Ok(Some(SmppEvent::Bind { .. })) => continue,
            Ok(Some(e)) => return e,
            other => panic!("no event: {other:?}"),
        }
    }
}

async fn next_receipt(ev: &mut ClientEvents) -> (Receipt, Ack) {
    match next_event(ev).await {
        SmppEvent::Receipt(r, ack) => (r, ack),
        other => panic!("expected a receipt, got {other:?}"),
    }
}

fn message(reference: &str) -> SubmitRequest {
    SubmitRequest {
        destination: "33612345678".into(),
        text: format!("message {reference}"),
        reference: Some(reference.into()),
        ..Default::default()
    }
}

async fn connect(cfg: ClientConfig) -> (SmppClient, ClientEvents) {
    SmppClient::connect(cfg)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

fn reference(r: &Receipt) -> String {
    r.part
        .as_ref()
        .map(|p| p.reference.to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_receipt_is_not_acknowledged_until_the_application_confirms_it() {
    let (sim, _stop) = simulator(SimConfig {
        receipt_delay_ms: 0,
        ..SimConfig::default()
    })
    .await;
    let (client, mut ev) = connect(client_config(&sim)).await;
    client
        .submit(message("m1"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (first, first_ack) = next_receipt(&mut ev).await;
    // A second round trip on the same bind: had the first receipt been answered, the
    // simulator would have counted it before delivering this one.
    client
        .submit(message("m2"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (second, second_ack) = next_receipt(&mut ev).await;
    assert_eq!(
        (reference(&first), reference(&second)),
        ("m1".into(), "m2".into())
    );
    assert_eq!(
        sim.counters().receipts_acked,
        0,
        "answered before the application confirmed"
    );

    first_ack.confirm();
    eventually("the confirmed receipt is acknowledged", || {
        sim.counters().receipts_acked == 1
    })
    .await;
    second_ack.confirm();
    eventually("both are acknowledged", || {
        sim.counters().receipts_acked == 2
    })
    .await;
    assert_eq!(sim.counters().receipts_redelivered, 0);
}

#[tokio::test]
async fn a_dropped_acknowledgement_makes_the_simulator_deliver_it_again() {
    let (sim, _stop) = simulator(SimConfig {
        receipt_delay_ms: 0,
        redelivery_delay_ms: 50,
        ..SimConfig::default()
    })
    .await;
    let (client, mut ev) = connect(client_config(&sim)).await;
    let out = client
        .submit(message("m1"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (first, ack) = next_receipt(&mut ev).await;
    drop(ack); // the application could not store it (stopping, store error)
    let (again, ack) = next_receipt(&mut ev).await;
    assert_eq!(again.message_id, first.message_id);
    assert_eq!(again.message_id, out.part_ids[0]);
    assert_eq!(reference(&again), "m1", "the copy is correlated too");
    ack.confirm();
    eventually("the copy is acknowledged", || {
        sim.counters().receipts_acked == 1
    })
    .await;
    let c = sim.counters();
    assert_eq!((c.receipts_created, c.receipts_redelivered), (1, 1), "{c}");
}

#[tokio::test]
async fn an_unconfirmed_receipt_is_given_back_to_the_smsc_at_its_deadline() {
    let (sim, _stop) = simulator(SimConfig {
        receipt_delay_ms: 0,
        redelivery_delay_ms: 50,
        ..SimConfig::default()
    })
    .await;
    let (client, mut ev) = connect(ClientConfig {
        ack_timeout_ms: 1000,
        ..client_config(&sim)
    })
    .await;
    client
        .submit(message("slow"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (first, late_ack) = next_receipt(&mut ev).await;
    // Held past the deadline: the bind answers ESME_RX_T_APPN and the SMSC delivers again.
    let (again, ack) = next_receipt(&mut ev).await;
    assert_eq!(again.message_id, first.message_id);
    late_ack.confirm(); // too late: that deliver_sm was answered already
    ack.confirm();
    eventually("the copy is acknowledged", || {
        sim.counters().receipts_acked == 1
    })
    .await;
    assert!(sim.counters().receipts_redelivered >= 1);
}

#[tokio::test]
async fn a_bind_lost_with_unconfirmed_receipts_gets_them_again_on_the_next_bind_with_none_lost() {
    let (sim, _stop) = simulator(SimConfig {
        receipt_delay_ms: 0,
        redelivery_delay_ms: 100,
        ..SimConfig::default()
    })
    .await;
    let (client, mut ev) = connect(client_config(&sim)).await;
    let n = 20;
    for i in 0..n {
        client
            .submit(message(&format!("r{i}")))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let mut unconfirmed = Vec::new();
    for _ in 0..n {
        unconfirmed.push(next_receipt(&mut ev).await);
    }
    // The SMSC drops the bind before the application confirmed anything.
    sim.drop_binds().await.unwrap_or_else(|e| panic!("{e}"));
    // Confirmations for a bind that is gone change nothing.
    Ack::confirm_all(unconfirmed.into_iter().map(|(_, ack)| ack));
    assert!(client.ready().await);
    let mut got = HashSet::new();
    while got.len() < n {
        let (r, ack) = next_receipt(&mut ev).await;
        got.insert(reference(&r));
        ack.confirm();
    }
    let expected: HashSet<String> = (0..n).map(|i| format!("r{i}")).collect();
    assert_eq!(got, expected, "every receipt came again, correlated");
    eventually("all acknowledged", || {
        sim.counters().receipts_acked == n as u64
    })
    .await;
    let c = sim.counters();
    assert_eq!(c.receipts_created, n as u64, "{c}");
    assert!(c.receipts_redelivered >= n as u64, "{c}");
}

#[tokio::test]
async fn a_long_mo_is_acknowledged_only_when_the_whole_message_is_confirmed() {
    let (sim, _stop) = simulator(SimConfig::default()).await;
    let (_client, mut ev) = connect(client_config(&sim)).await;
    let text = "Bonjour, je voudrais changer mon rendez-vous de demain matin. ".repeat(5);
    let parts = sim
        .inject_mo(None, "33699999999", "36180", &text)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(parts > 1);
    let SmppEvent::Inbound(mo, ack) = next_event(&mut ev).await else {
        panic!("expected the MO");
    };
    assert_eq!(mo.text, text);
    assert_eq!(ack.pdus(), parts);
    assert_eq!(sim.counters().mo_acked, 0);
    ack.confirm();
    eventually("every part is acknowledged", || {
        sim.counters().mo_acked == parts as u64
    })
    .await;
}

#[tokio::test]
async fn a_full_event_buffer_makes_the_smsc_deliver_later_and_never_stalls_submits() {
    let (sim, _stop) = simulator(SimConfig {
        receipt_delay_ms: 0,
        redelivery_delay_ms: 50,
        ..SimConfig::default()
    })
    .await;
    let (client, mut ev) = connect(ClientConfig {
        events_capacity: 16,
        ..client_config(&sim)
    })
    .await;
    let n = 60;
    // Nobody reads events meanwhile: the bind must keep submitting.
    for i in 0..n {
        client
            .submit(message(&format!("f{i}")))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let mut got = HashSet::new();
    while got.len() < n {
        let (r, ack) = next_receipt(&mut ev).await;
        got.insert(reference(&r));
        ack.confirm();
    }
    eventually("all acknowledged", || {
        sim.counters().receipts_acked == n as u64
    })
    .await;
    assert!(sim.counters().receipts_redelivered > 0);
}

#[tokio::test]
async fn a_throttling_smsc_gets_every_message_through_with_no_failure() {
    let (sim, _stop) = simulator(SimConfig {
        receipt_delay_ms: 0,
        throttle_rate: 0.3,
        max_tps: Some(200.0),
        ..SimConfig::default()
    })
    .await;
    let (client, mut ev) = connect(ClientConfig {
        max_rate: Some(300.0),
        throttle_pause_ms: 20,
        ..client_config(&sim)
    })
    .await;
    tokio::spawn(async move {
        while let Some(e) = ev.recv().await {
            if let SmppEvent::Receipt(_, ack) | SmppEvent::Inbound(_, ack) = e {
                ack.confirm();
            }
        }
    });
    let n = 400;
    let mut tasks = Vec::new();
    for i in 0..n {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            c.submit(message(&format!("t{i}"))).await
        }));
    }
    for t in tasks {
        let r = t.await.unwrap_or_else(|e| panic!("{e}"));
        assert!(r.is_ok(), "{r:?}");
    }
    let c = sim.counters();
    assert_eq!(c.accepted, n, "each message accepted exactly once: {c}");
    assert!(c.throttled > 0, "{c}");
}

#[tokio::test]
async fn not_connected_while_the_smsc_is_down_and_ready_once_it_is_back() {
    let (sim, _stop) = simulator(SimConfig::default()).await;
    let (client, _ev) = connect(client_config(&sim)).await;
    assert!(client.is_ready());
    sim.stop_listening().await;
    eventually("the client sees the SMSC go", || !client.is_ready()).await;
    let e = client
        .submit(message("while down"))
        .await
        .err()
        .unwrap_or_else(|| panic!("accepted while down"));
    assert_eq!(e.kind, ErrorKind::NotConnected, "{e}");
    assert!(e.accepted_part_ids.is_empty());

    sim.start_listening()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ready = tokio::time::timeout(Duration::from_secs(20), client.ready()).await;
    assert_eq!(ready.ok(), Some(true));
    assert!(client.is_ready());
    client
        .submit(message("back"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client.close();
    assert!(!client.ready().await, "a closed client is never ready");
}

#[tokio::test]
async fn requests_queued_on_a_bind_that_drops_come_back_not_connected() {
    let (sim, _stop) = simulator(SimConfig::default()).await;
    // One submit per second: the others wait in the bind's queue.
    let (client, _ev) = connect(ClientConfig {
        max_rate: Some(1.0),
        ..client_config(&sim)
    })
    .await;
    let mut tasks = Vec::new();
    for i in 0..5 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            c.submit(message(&format!("q{i}"))).await
        }));
    }
    eventually("the first submit reached the SMSC", || {
        sim.counters().submits >= 1
    })
    .await;
    sim.stop_listening().await;
    let mut not_connected = 0;
    for t in tasks {
        match t.await.unwrap_or_else(|e| panic!("{e}")) {
            Ok(_) => {}
            Err(e) if e.kind == ErrorKind::NotConnected => not_connected += 1,
            // Written but unanswered: the SMSC may have it.
            Err(e) => assert_eq!(e.kind, ErrorKind::Transient, "{e}"),
        }
    }
    let accepted = sim.counters().accepted as usize;
    assert!(
        not_connected >= 3,
        "queued requests: {not_connected} not connected"
    );
    assert!(
        not_connected <= 5 - accepted,
        "none the SMSC accepted is said to be not connected"
    );
}

/// An SMSC that restarts again and again while the client's window is full. The client
/// sends a message again (as Relais does) when it learns nothing of it (`Transient`) or
/// when it never left (`NotConnected`), and never after an `Ok`. The simulator records,
/// for each submit it accepted, whether its `submit_sm_resp` was written to the
/// connection before its session ended: a message accepted twice must have lost the
/// answer to its first submit with that session (the client could not know), never
/// after the client was answered; and each answer written must reach the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smsc_restarting_mid_window_gets_again_only_what_it_never_answered() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    const RESTARTS: usize = 8;

    let (sim, _stop) = simulator(SimConfig::default()).await;
    let (client, _ev) = connect(ClientConfig {
        window: 20,
        registered_delivery: false,
        reconnect_min_ms: 10,
        reconnect_max_ms: 50,
        ..client_config(&sim)
    })
    .await;
    let running = Arc::new(AtomicBool::new(true));
    let mut senders = Vec::new();
    for task in 0..40 {
        let (client, running) = (client.clone(), running.clone());
        senders.push(tokio::spawn(async move {
            // Per reference (each ends `Ok`): how often the client was told the SMSC may
            // have it.
            let mut outcomes: Vec<(String, u32)> = Vec::new();
            let mut i = 0;
            while running.load(Ordering::Relaxed) {
                let reference = format!("t{task}-{i}");
                i += 1;
                let mut unknown = 0;
                loop {
                    match client.submit(message(&reference)).await {
                        Ok(_) => break,
                        Err(e) if e.kind == ErrorKind::NotConnected => {
                            client.ready().await;
                        }
                        Err(e) if e.kind == ErrorKind::Transient => unknown += 1,
                        Err(e) => panic!("{reference}: {e}"),
                    }
                }
                outcomes.push((reference, unknown));
            }
            outcomes
        }));
    }
    for _ in 0..RESTARTS {
        let before = sim.counters().accepted;
        eventually("submits flow", || sim.counters().accepted >= before + 200).await;
        sim.restart(Duration::from_millis(20))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let before = sim.counters().accepted;
    eventually("submits flow after the restarts", || {
        sim.counters().accepted >= before + 200
    })
    .await;
    running.store(false, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for s in senders {
        outcomes.extend(s.await.unwrap_or_else(|e| panic!("{e}")));
    }
    client.close();
    // A session records that an answer left just after writing it: the client may read
    // it first.
    eventually("the simulator knows what became of every answer", || {
        sim.stats.answers.lock().is_ok_and(|a| {
            a.values()
                .flatten()
                .all(|f| *f != relais_smpp::AnswerFate::Pending)
        })
    })
    .await;
    let answers = sim
        .stats
        .answers
        .lock()
        .map(|a| a.clone())
        .unwrap_or_default();
    let mut told_unknown = 0;
    for (reference, unknown) in &outcomes {
        told_unknown += unknown;
        let fates = answers.get(reference).cloned().unwrap_or_default();
        let written = fates
            .iter()
            .filter(|f| **f == relais_smpp::AnswerFate::Written)
            .count();
        assert_eq!(
            (written, fates.last()),
            (1, Some(&relais_smpp::AnswerFate::Written)),
            "{reference}: the client was answered once, by the last submit; the SMSC saw {fates:?} (the client was told {unknown} times that the SMSC may have it)"
        );
    }
    let repeats = sim.stats.repeats();
    eprintln!(
        "{} messages, {RESTARTS} restarts: repeats {repeats:?}, the client told {told_unknown} times that the SMSC may have a message; {}",
        outcomes.len(),
        sim.counters()
    );
    assert_eq!(repeats.after_answer, 0, "{repeats:?}");
}
