//! The client against the simulator (and raw sockets against the server): what an operator
//! would see — messages accepted with ids, receipts matched to messages, MO joined, throttling
//! absorbed, bad peers isolated.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use relais_smpp::simulator::{SimConfig, SimHandle, start};
use relais_smpp::{
    ClientConfig, ClientEvents, Concatenation, ConnectError, ErrorKind, ReceiptState, SmppClient,
    SmppEvent, SubmitRequest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn sim(cfg: SimConfig) -> (SimHandle, tokio::sync::oneshot::Sender<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let h = start(
        SimConfig {
            listen: "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()),
            ..cfg
        },
        async move {
            let _ = rx.await;
        },
    )
    .await
    .unwrap_or_else(|e| panic!("simulator: {e}"));
    (h, tx)
}

fn client_cfg(h: &SimHandle) -> ClientConfig {
    ClientConfig {
        host: "127.0.0.1".into(),
        port: h.smpp_addr.port(),
        system_id: "relais".into(),
        password: "secret".into(),
        source_addr: "Relais".into(),
        ..ClientConfig::default()
    }
}

async fn next_receipt(ev: &mut ClientEvents) -> relais_smpp::Receipt {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ev.recv()).await {
            Ok(Some(SmppEvent::Receipt(r, ack))) => {
                ack.confirm();
                return r;
            }
            Ok(Some(_)) => continue,
            other => panic!("no receipt: {other:?}"),
        }
    }
}

async fn next_inbound(ev: &mut ClientEvents) -> relais_smpp::InboundMessage {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ev.recv()).await {
            Ok(Some(SmppEvent::Inbound(m, ack))) => {
                ack.confirm();
                return m;
            }
            Ok(Some(_)) => continue,
            other => panic!("no inbound: {other:?}"),
        }
    }
}

#[tokio::test]
async fn short_message_gets_an_id_and_a_correlated_delivered_receipt() {
    let (h, _stop) = sim(SimConfig {
        receipt_delay_ms: 10,
        ..SimConfig::default()
    })
    .await;
    let (client, mut ev) = SmppClient::connect(client_cfg(&h))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let out = client
        .submit(SubmitRequest {
            destination: "+33612345678".into(),
            text: "Your code is 123456".into(),
            reference: Some("msg-1".into()),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.part_ids.len(), 1);
    let r = next_receipt(&mut ev).await;
    assert_eq!(r.state, ReceiptState::Delivered);
    assert_eq!(r.message_id, out.part_ids[0]);
    let part = r.part.unwrap_or_else(|| panic!("receipt not correlated"));
    assert_eq!(&*part.reference, "msg-1");
    assert_eq!((part.index, part.total), (1, 1));
    assert_eq!(r.source, "33612345678");
    client.close();
}

#[tokio::test]
async fn every_submit_carries_its_reference_for_the_smsc_to_deduplicate() {
    let (h, _stop) = sim(SimConfig::default()).await;
    let (client, _ev) = SmppClient::connect(client_cfg(&h))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let submit = |reference: &str, text: String| SubmitRequest {
        destination: "+33612345678".into(),
        text,
        reference: Some(reference.into()),
        ..Default::default()
    };
    client
        .submit(submit("01a2-short", "Bonjour".into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client
        .submit(submit("01a2-long", "x".repeat(200)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let seen = h.stats.references.lock().unwrap().clone();
    assert_eq!(seen.get("01a2-short"), Some(&1), "{seen:?}");
    assert_eq!(seen.get("01a2-long#1"), Some(&1), "{seen:?}");
    assert_eq!(seen.get("01a2-long#2"), Some(&1), "{seen:?}");

    // A channel whose SMSC refuses unknown parameters can turn it off.
    let (quiet, _ev) = SmppClient::connect(ClientConfig {
        reference_tlv: None,
        ..client_cfg(&h)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    quiet
        .submit(submit("01a2-untold", "Bonjour".into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !h.stats
            .references
            .lock()
            .unwrap()
            .contains_key("01a2-untold")
    );
}

#[tokio::test]
async fn long_message_parts_each_get_ids_and_receipts() {
    let (h, _stop) = sim(SimConfig {
        receipt_delay_ms: 0,
        ..SimConfig::default()
    })
    .await;
    for mode in [
        Concatenation::Udh8,
        Concatenation::Udh16,
        Concatenation::Sar,
    ] {
        let (client, mut ev) = SmppClient::connect(ClientConfig {
            concatenation: mode,
            ..client_cfg(&h)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let text = "Ж".repeat(150); // UCS-2: 3 parts of <= 67
        let out = client
            .submit(SubmitRequest {
                destination: "33612345678".into(),
                text,
                reference: Some(format!("long-{mode:?}")),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.part_ids.len(), 3, "{mode:?}");
        let mut seen = Vec::new();
        for _ in 0..3 {
            let r = next_receipt(&mut ev).await;
            let p = r.part.unwrap_or_else(|| panic!("uncorrelated"));
            assert_eq!(p.total, 3);
            seen.push((p.index, r.state));
        }
        seen.sort_by_key(|s| s.0);
        let states: Vec<_> = seen.iter().map(|s| s.1).collect();
        assert_eq!(
            relais_smpp::message_outcome(3, &states),
            relais_smpp::MessageOutcome::Delivered
        );
        client.close();
    }
}

#[tokio::test]
async fn message_payload_sends_one_pdu() {
    let (h, _stop) = sim(SimConfig::default()).await;
    let (client, _ev) = SmppClient::connect(ClientConfig {
        concatenation: Concatenation::Payload,
        ..client_cfg(&h)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let out = client
        .submit(SubmitRequest {
            destination: "33612345678".into(),
            text: "a".repeat(500),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.part_ids.len(), 1);
    assert_eq!(h.stats.submits.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn failure_rate_yields_undelivered_receipts() {
    let (h, _stop) = sim(SimConfig {
        receipt_delay_ms: 0,
        failure_rate: 1.0,
        ..SimConfig::default()
    })
    .await;
    let (client, mut ev) = SmppClient::connect(client_cfg(&h))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client
        .submit(SubmitRequest {
            destination: "33612345678".into(),
            text: "hi".into(),
            reference: Some("f".into()),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let r = next_receipt(&mut ev).await;
    assert_eq!(r.state, ReceiptState::Undeliverable);
    assert_eq!(r.error.as_deref(), Some("001"));
}

#[tokio::test]
async fn throttling_is_absorbed_by_slowing_down() {
    let (h, _stop) = sim(SimConfig {
        throttle_rate: 0.3,
        ..SimConfig::default()
    })
    .await;
    let (client, _ev) = SmppClient::connect(ClientConfig {
        throttle_pause_ms: 5,
        max_throttle_retries: 50,
        ..client_cfg(&h)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut tasks = Vec::new();
    for i in 0..100 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            c.submit(SubmitRequest {
                destination: "33612345678".into(),
                text: format!("m{i}"),
                ..Default::default()
            })
            .await
        }));
    }
    for t in tasks {
        let r = t.await.unwrap_or_else(|e| panic!("{e}"));
        assert!(r.is_ok(), "{r:?}");
    }
    assert!(h.stats.throttled.load(Ordering::Relaxed) > 0);
}

#[tokio::test]
async fn max_rate_is_respected() {
    let (h, _stop) = sim(SimConfig::default()).await;
    let (client, _ev) = SmppClient::connect(ClientConfig {
        max_rate: Some(200.0),
        ..client_cfg(&h)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            c.submit(SubmitRequest {
                destination: "33612345678".into(),
                text: "x".into(),
                ..Default::default()
            })
            .await
        }));
    }
    for t in tasks {
        assert!(t.await.map(|r| r.is_ok()).unwrap_or(false));
    }
    // 100 messages at 200/s take about 0.5 s (minus the 10 ms burst allowance).
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(400), "too fast: {took:?}");
}

#[tokio::test]
async fn mo_short_and_concatenated_reach_the_application() {
    let (h, _stop) = sim(SimConfig::default()).await;
    let (_client, mut ev) = SmppClient::connect(client_cfg(&h))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let n = h
        .inject_mo(None, "+33699999999", "36180", "STOP")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 1);
    let m = next_inbound(&mut ev).await;
    assert_eq!(
        (m.source.as_str(), m.destination.as_str(), m.text.as_str()),
        ("33699999999", "36180", "STOP")
    );
    let long = "Bonjour, je voudrais changer mon rendez-vous de demain. ".repeat(6);
    let n = h
        .inject_mo(None, "33699999999", "36180", &long)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(n > 1);
    let m = next_inbound(&mut ev).await;
    assert_eq!(m.text, long);
    let emoji = "Merci 😀 à bientôt";
    h.inject_mo(None, "33699999999", "36180", emoji)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next_inbound(&mut ev).await.text, emoji);
}

#[tokio::test]
async fn mo_over_http() {
    let (h, _stop) = sim(SimConfig {
        http_listen: Some("127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!())),
        ..SimConfig::default()
    })
    .await;
    let (_client, mut ev) = SmppClient::connect(client_cfg(&h))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = h.http_addr.unwrap_or_else(|| panic!("no http"));
    let body = r#"{"from":"33611111111","to":"36180","text":"HELP"}"#;
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let req = format!(
        "POST /mo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        body
    );
    s.write_all(req.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp).await;
    assert!(resp.starts_with("HTTP/1.1 202"), "{resp}");
    assert_eq!(next_inbound(&mut ev).await.text, "HELP");
}

#[tokio::test]
async fn wrong_password_is_a_bind_error() {
    let (h, _stop) = sim(SimConfig {
        system_id: Some("relais".into()),
        password: Some("right".into()),
        ..SimConfig::default()
    })
    .await;
    let r = SmppClient::connect(client_cfg(&h)).await;
    assert_eq!(r.err(), Some(ConnectError::BindRefused(0x0E)));
}

#[tokio::test]
async fn unreachable_smsc_is_reported() {
    let r = SmppClient::connect(ClientConfig {
        port: 1,
        system_id: "x".into(),
        reconnect_min_ms: 10,
        ..ClientConfig::default()
    })
    .await;
    assert!(matches!(r, Err(ConnectError::Unreachable(_))));
}

#[tokio::test]
async fn permanent_error_for_unencodable_address() {
    let (h, _stop) = sim(SimConfig::default()).await;
    let (client, _ev) = SmppClient::connect(client_cfg(&h))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let e = client
        .submit(SubmitRequest {
            destination: "1".repeat(40),
            text: "x".into(),
            ..Default::default()
        })
        .await
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(e.kind, ErrorKind::Permanent);
}

#[tokio::test]
async fn reconnects_after_the_smsc_restarts() {
    let (h, stop) = sim(SimConfig::default()).await;
    let port = h.smpp_addr.port();
    let (client, _ev) = SmppClient::connect(ClientConfig {
        reconnect_min_ms: 50,
        reconnect_max_ms: 200,
        ..client_cfg(&h)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let _ = stop.send(());
    // Wait until the client notices.
    let t0 = Instant::now();
    while client.connected_binds() > 0 && t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(client.connected_binds(), 0);
    let err = client
        .submit(SubmitRequest {
            destination: "33612345678".into(),
            text: "x".into(),
            ..Default::default()
        })
        .await
        .err()
        .unwrap_or_else(|| panic!("accepted while down"));
    assert!(err.is_transient());
    // Same port again.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let _h2 = start(
        SimConfig {
            listen: format!("127.0.0.1:{port}")
                .parse()
                .unwrap_or_else(|_| unreachable!()),
            ..SimConfig::default()
        },
        async move {
            let _ = rx.await;
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let t0 = Instant::now();
    while client.connected_binds() == 0 && t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(client.connected_binds(), 1);
    assert!(
        client
            .submit(SubmitRequest {
                destination: "33612345678".into(),
                text: "back".into(),
                ..Default::default()
            })
            .await
            .is_ok()
    );
    drop(tx);
}

#[tokio::test]
async fn several_binds_and_a_window_pipeline_many_submits() {
    let (h, _stop) = sim(SimConfig {
        receipt_delay_ms: 0,
        ..SimConfig::default()
    })
    .await;
    let (client, mut ev) = SmppClient::connect(ClientConfig {
        binds: 3,
        window: 20,
        ..client_cfg(&h)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(client.connected_binds(), 3);
    let mut tasks = Vec::new();
    for i in 0..600 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            c.submit(SubmitRequest {
                destination: "33612345678".into(),
                text: format!("n{i}"),
                reference: Some(format!("r{i}")),
                ..Default::default()
            })
            .await
        }));
    }
    for t in tasks {
        assert!(t.await.map(|r| r.is_ok()).unwrap_or(false));
    }
    let mut refs = std::collections::HashSet::new();
    while refs.len() < 600 {
        let r = next_receipt(&mut ev).await;
        refs.insert(r.part.map(|p| p.reference.to_string()).unwrap_or_default());
    }
    assert!(!refs.contains(""), "every receipt correlated");
}

#[tokio::test]
async fn transmitter_receiver_binds_get_receipts_on_the_receiver() {
    let (h, _stop) = sim(SimConfig {
        receipt_delay_ms: 0,
        ..SimConfig::default()
    })
    .await;
    let (client, mut ev) = SmppClient::connect(ClientConfig {
        bind_style: relais_smpp::BindStyle::TransmitterReceiver,
        ..client_cfg(&h)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let out = client
        .submit(SubmitRequest {
            destination: "33612345678".into(),
            text: "tx/rx".into(),
            reference: Some("txrx".into()),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let r = next_receipt(&mut ev).await;
    assert_eq!(r.message_id, out.part_ids[0]);
    assert_eq!(
        r.part.map(|p| p.reference.to_string()).as_deref(),
        Some("txrx")
    );
}

/// A client sending garbage gets generic_nack and is eventually closed; a well-behaved client
/// on the same server keeps working throughout.
#[tokio::test]
async fn broken_peer_does_not_disturb_other_sessions() {
    let (h, _stop) = sim(SimConfig::default()).await;
    let (client, _ev) = SmppClient::connect(client_cfg(&h))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let mut raw = tokio::net::TcpStream::connect(h.smpp_addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // bind_transceiver with a body that does not parse (no NUL terminators).
    let mut pdu = Vec::new();
    pdu.extend_from_slice(&24u32.to_be_bytes());
    pdu.extend_from_slice(&9u32.to_be_bytes());
    pdu.extend_from_slice(&0u32.to_be_bytes());
    pdu.extend_from_slice(&42u32.to_be_bytes());
    pdu.extend_from_slice(b"AAAAAAAA");
    raw.write_all(&pdu).await.unwrap_or_else(|e| panic!("{e}"));
    let mut head = [0u8; 16];
    raw.read_exact(&mut head)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        u32::from_be_bytes([head[4], head[5], head[6], head[7]]),
        0x8000_0000,
        "generic_nack"
    );
    assert_eq!(
        u32::from_be_bytes([head[12], head[13], head[14], head[15]]),
        42
    );
    // Then a length that cannot be right: the server closes that session.
    raw.write_all(&[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut rest)).await;

    assert!(
        client
            .submit(SubmitRequest {
                destination: "33612345678".into(),
                text: "still fine".into(),
                ..Default::default()
            })
            .await
            .is_ok()
    );
}

/// `connect` returning Ok means the bind is usable at once: the first submit must not meet
/// "no bind is connected" (a race found by the benchmark).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_submit_right_after_connect_is_accepted() {
    let (h, _stop) = sim(SimConfig::default()).await;
    for _ in 0..20 {
        let (client, _ev) = SmppClient::connect(client_cfg(&h))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(client.connected_binds(), 1);
        let r = client
            .submit(SubmitRequest {
                destination: "33612345678".into(),
                text: "first".into(),
                ..Default::default()
            })
            .await;
        assert!(r.is_ok(), "{r:?}");
        client.close();
    }
}
