//! Interoperability with SMPP implementations written elsewhere:
//! (a) PyPI `smpplib` as an ESME against our `SmppServer`;
//! (b) Debian `kannel` (bearerbox + smsbox) as an ESME against our simulator, receipts seen
//!     through Kannel's dlr-url callback;
//! (c) our client against an SMSC built on npm `smpp` (node-smpp).
//! Each test looks for its peer; when it is missing it skips (or fails under
//! `RELAIS_REQUIRE_PEERS=1`). `scripts/install-smpp-peers.sh` installs them.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use relais_smpp::concat::{Udh, parse_udh};
use relais_smpp::pdu::{BindRequest, ShortMessage, receipt_message};
use relais_smpp::receipt::{ReceiptState, receipt_date};
use relais_smpp::server::{Authenticator, ServerConfig, SmppServer, SubmitContext, SubmitHandler};
use relais_smpp::simulator::{SimConfig, start};
use relais_smpp::{ClientConfig, CommandStatus, SmppClient, SmppEvent, SubmitRequest};
use support::*;
use tokio::net::TcpListener;

struct TenantAuth;

impl Authenticator for TenantAuth {
    type Principal = String;
    async fn authenticate(
        &self,
        req: &BindRequest,
        _peer: SocketAddr,
    ) -> Result<String, CommandStatus> {
        match (req.system_id.as_str(), req.password.as_str()) {
            ("pyclient", "pw") => Ok("tenant-a".to_string()),
            ("pyclient", _) => Err(CommandStatus::EsmeRinvpaswd),
            _ => Err(CommandStatus::EsmeRinvsysid),
        }
    }
}

/// Texts the handler received, with their UDH.
type Seen = Arc<Mutex<Vec<(Option<Udh>, String)>>>;

/// Accepts every submit, records it, and sends a DELIVRD receipt 20 ms later.
#[derive(Default)]
struct RecordingHandler {
    next: AtomicU64,
    seen: Seen,
}

impl SubmitHandler<String> for RecordingHandler {
    async fn submit(
        &self,
        ctx: SubmitContext<'_, String>,
        m: ShortMessage,
    ) -> Result<String, CommandStatus> {
        let id = format!("R{}", self.next.fetch_add(1, Ordering::Relaxed) + 1);
        let (udh, _) = m.user_data();
        if let Ok(mut s) = self.seen.lock() {
            s.push((udh, m.text()));
        }
        let handle = ctx.handle.clone();
        let principal = ctx.principal.clone();
        let now = receipt_date(SystemTime::now());
        let receipt = receipt_message(
            &m.source,
            &m.destination,
            &id,
            ReceiptState::Delivered,
            0,
            &now,
            &now,
            &m.text(),
        );
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if let Err(e) = handle.deliver(&principal, receipt).await {
                eprintln!("receipt not delivered: {e}");
            }
        });
        Ok(id)
    }
}

const PY_CLIENT: &str = r#"
import sys, json, smpplib.client, smpplib.consts, smpplib.gsm
port = int(sys.argv[1]); long_text = sys.argv[2]
c = smpplib.client.Client('127.0.0.1', port, timeout=10, allow_unknown_opt_params=True)
resps, dlrs = [], []
c.set_message_sent_handler(lambda pdu: resps.append(pdu.message_id.decode()))
def on_deliver(pdu):
    rid = pdu.receipted_message_id
    dlrs.append({"id": rid.decode() if isinstance(rid, bytes) else rid,
                 "state": pdu.message_state, "text": pdu.short_message.decode()})
    return 0
c.set_message_received_handler(on_deliver)
c.connect()
c.bind_transceiver(system_id='pyclient', password='pw')
sent = 0
for text in ["Hello from smpplib", long_text]:
    parts, coding, esm = smpplib.gsm.make_parts(text)
    for p in parts:
        c.send_message(source_addr_ton=smpplib.consts.SMPP_TON_ALNUM, source_addr='PyShop',
                       dest_addr_ton=smpplib.consts.SMPP_TON_INTL, destination_addr='33612345678',
                       short_message=p, data_coding=coding, esm_class=esm, registered_delivery=True)
        sent += 1
while len(dlrs) < sent or len(resps) < sent:
    c.read_once()
c.unbind()
c.disconnect()
print(json.dumps({"sent": sent, "resps": resps, "dlrs": dlrs}))
"#;

#[tokio::test]
async fn smpplib_client_against_our_server() {
    if !peer_available("python smpplib", has_python_module("smpplib")) {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let handler = RecordingHandler::default();
    let seen = handler.seen.clone();
    let server = SmppServer::new(ServerConfig::default(), TenantAuth, handler);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(listener, async move {
        let _ = stop_rx.await;
    }));
    let long_text =
        "Votre colis est en route: suivez-le sur https://relais.example/t/ABC123 . ".repeat(4);
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("python3")
            .args(["-c", PY_CLIENT, &port.to_string(), &long_text])
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("smpplib client timed out"))
    .unwrap_or_else(|e| panic!("python3: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "smpplib failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let sent = v["sent"].as_u64().unwrap_or(0);
    assert!(sent >= 3, "short + at least two long parts, got {sent}");
    let resps: Vec<String> = v["resps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(String::from))
        .collect();
    assert_eq!(resps.len() as u64, sent);
    let dlrs = v["dlrs"].as_array().cloned().unwrap_or_default();
    for d in &dlrs {
        let id = d["id"].as_str().unwrap_or("");
        assert!(resps.iter().any(|r| r == id), "receipt for unknown id {id}");
        assert_eq!(d["state"].as_u64(), Some(2), "message_state DELIVERED");
        assert!(d["text"].as_str().unwrap_or("").contains("stat:DELIVRD"));
    }
    // What the handler saw: the short text, and the long text once its parts are joined.
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert!(
        seen.iter()
            .any(|(u, t)| u.is_none() && t == "Hello from smpplib")
    );
    let mut parts: Vec<_> = seen
        .iter()
        .filter_map(|(u, t)| u.map(|u| (u.seq, t.clone())))
        .collect();
    parts.sort();
    assert_eq!(
        parts.into_iter().map(|p| p.1).collect::<String>(),
        long_text
    );
    let _ = stop_tx.send(());
}

#[tokio::test]
async fn smpplib_with_wrong_password_is_refused() {
    if !peer_available("python smpplib", has_python_module("smpplib")) {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let server = SmppServer::new(
        ServerConfig::default(),
        TenantAuth,
        RecordingHandler::default(),
    );
    tokio::spawn(server.serve(listener, std::future::pending()));
    let script = r#"
import sys, smpplib.client, smpplib.exceptions
c = smpplib.client.Client('127.0.0.1', int(sys.argv[1]), timeout=5)
c.connect()
try:
    c.bind_transceiver(system_id='pyclient', password='nope')
    print("BOUND")
except smpplib.exceptions.PDUError as e:
    print("REFUSED", e.args[1])
"#;
    let out = tokio::process::Command::new("python3")
        .args(["-c", script, &port.to_string()])
        .output()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("REFUSED 14"),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn kannel_sends_through_our_simulator_and_gets_delivered_receipts() {
    if !peer_available("kannel (bearerbox, smsbox)", has_kannel()) {
        return;
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sim = start(
        SimConfig {
            listen: "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()),
            receipt_delay_ms: 20,
            ..SimConfig::default()
        },
        async move {
            let _ = stop_rx.await;
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let kannel = Kannel::start(sim.smpp_addr.port(), 50).unwrap_or_else(|e| panic!("kannel: {e}"));
    assert!(kannel.ready().await, "smsbox did not open its sendsms port");
    let sink = DlrSink::start().await.unwrap_or_else(|e| panic!("{e}"));
    let dlr_url = format!("http://{}/dlr?type=%d&id=%F&to=%p", sink.addr);
    let sendsms: SocketAddr = ([127, 0, 0, 1], kannel.sendsms_port).into();
    let mut http = HttpConn::connect(sendsms)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Kannel may need a moment to bind to the simulator: retry until accepted.
    let short = kannel.sendsms_path("33612345678", "Hello through Kannel", Some(&dlr_url));
    let t0 = Instant::now();
    loop {
        let (status, body) = http.get(&short).await.unwrap_or_else(|e| panic!("{e}"));
        if status == 202 || body.contains("Accepted") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "sendsms kept failing: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let long = "Kannel concatenates this text because it is longer than one SMS. ".repeat(4);
    let (status, body) = http
        .get(&kannel.sendsms_path("33611111111", &long, Some(&dlr_url)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        status == 202 || body.contains("Accepted"),
        "{status} {body}"
    );

    let t0 = Instant::now();
    while sink.delivered.load(Ordering::Relaxed) < 2 && t0.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lines = sink.lines.lock().map(|l| l.clone()).unwrap_or_default();
    assert!(
        sink.delivered.load(Ordering::Relaxed) >= 2,
        "delivered DLRs: {lines:?}\naccess log:\n{}",
        kannel.access_log()
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("to=%2B33612345678") || l.contains("to=33612345678")),
        "{lines:?}"
    );
    // The long text went out as several submit_sm (UDH), each acknowledged.
    assert!(sim.stats.submits.load(Ordering::Relaxed) >= 3);
    // Kannel logged the receipts it received from us.
    assert!(kannel.access_log().contains("stat:DELIVRD"));
    let _ = stop_tx.send(());
}

const NODE_SMSC: &str = r#"
const smpp = require('smpp');
let n = 0;
const server = smpp.createServer(function (session) {
  session.on('bind_transceiver', function (pdu) {
    if (pdu.system_id !== 'relais' || pdu.password !== 'secret') {
      session.send(pdu.response({ command_status: smpp.ESME_RBINDFAIL }));
      session.close();
      return;
    }
    session.send(pdu.response());
    setTimeout(function () {
      session.deliver_sm({ source_addr: '33699999999', destination_addr: '36180', short_message: 'Hello from node-smpp' });
    }, 50);
  });
  session.on('submit_sm', function (pdu) {
    const id = 'N' + (++n);
    session.send(pdu.response({ message_id: id }));
    setTimeout(function () {
      session.deliver_sm({
        source_addr: pdu.destination_addr, destination_addr: pdu.source_addr, esm_class: 4,
        short_message: 'id:' + id + ' sub:001 dlvrd:001 submit date:2511211200 done date:2511211200 stat:DELIVRD err:000 text:x',
        receipted_message_id: id, message_state: 2,
      });
    }, 20);
  });
  session.on('enquire_link', function (pdu) { session.send(pdu.response()); });
  session.on('unbind', function (pdu) { session.send(pdu.response()); session.close(); });
  session.on('error', function () {});
});
server.listen(parseInt(process.env.SMSC_PORT), '127.0.0.1', function () { console.log('LISTENING'); });
"#;

#[tokio::test]
async fn our_client_against_node_smpp_smsc() {
    let Some(dir) = node_smpp_dir() else {
        peer_available("node-smpp (npm smpp)", false);
        return;
    };
    let port = free_port();
    let mut child = tokio::process::Command::new("node")
        .args(["-e", NODE_SMSC])
        .env("SMSC_PORT", port.to_string())
        .env("NODE_PATH", dir.join("node_modules"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("node: {e}"));
    // Wait for LISTENING.
    let t0 = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "node SMSC did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (client, mut ev) = SmppClient::connect(ClientConfig {
        host: "127.0.0.1".into(),
        port,
        system_id: "relais".into(),
        password: "secret".into(),
        source_addr: "Relais".into(),
        ..ClientConfig::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut ids = Vec::new();
    for (i, text) in ["Short one", &"Long one, in several parts. ".repeat(10)]
        .iter()
        .enumerate()
    {
        let out = client
            .submit(SubmitRequest {
                destination: "+33612345678".into(),
                text: text.to_string(),
                reference: Some(format!("node-{i}")),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        ids.extend(out.part_ids);
    }
    assert!(ids.len() >= 3);
    let mut receipts = 0;
    let mut mo = None;
    let t0 = Instant::now();
    while (receipts < ids.len() || mo.is_none()) && t0.elapsed() < Duration::from_secs(10) {
        match tokio::time::timeout(Duration::from_secs(5), ev.recv()).await {
            Ok(Some(SmppEvent::Receipt(r, ack))) => {
                ack.confirm();
                assert!(ids.contains(&r.message_id));
                assert_eq!(r.state, ReceiptState::Delivered);
                assert!(r.part.is_some(), "receipt correlated to its message");
                receipts += 1;
            }
            Ok(Some(SmppEvent::Inbound(m, ack))) => {
                ack.confirm();
                mo = Some(m);
            }
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    assert_eq!(receipts, ids.len());
    let mo = mo.unwrap_or_else(|| panic!("no MO from node-smpp"));
    assert_eq!(mo.text, "Hello from node-smpp");
    assert_eq!(mo.source, "33699999999");
    client.close();
    let _ = child.kill().await;
}

#[test]
fn udh_helper_is_reexported_for_handlers() {
    // Handlers see parts with their UDH parsed; a bare UDH without concatenation IE is 1/1.
    assert_eq!(parse_udh(&[0x00]).map(|(u, n)| (u.total, n)), Some((1, 1)));
}
