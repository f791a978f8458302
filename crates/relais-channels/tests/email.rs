//! The e-mail channel against real peers written elsewhere: PyPI's `aiosmtpd` is the SMTP
//! server the adapter sends through (the test reads back what it received), and PyPI's
//! `dkimpy` checks the DKIM signatures. Both are installed by
//! `scripts/install-email-peers.sh`; a test that needs one skips with a message when it is
//! missing, and fails instead under `RELAIS_REQUIRE_PEERS=1`.

use jiff::Timestamp;
use relais_channels::adapter::OutboundMessage;
use relais_channels::{
    ChannelEvent, ChannelIdentity, MessageRef, Started, WebhookAnswer, WebhookError, WebhookRequest,
};
use relais_core::channel::ChannelKind;
use relais_core::content::Content;
use relais_core::retry::ErrorClass;
use relais_core::status::MessageStatus;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const FROM: &str = "news@shop.example";
const KEY: &str = include_str!("fixtures/email/dkim-test-key.pem");
const PUBLIC_KEY: &str = include_str!("fixtures/email/dkim-test-key.pub.b64");

fn peer_available(module: &str) -> bool {
    let present = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return true;
    }
    if std::env::var("RELAIS_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!(
            "python3 module {module} is missing and RELAIS_REQUIRE_PEERS=1 (run scripts/install-email-peers.sh)"
        );
    }
    eprintln!("SKIP: python3 module {module} is missing (run scripts/install-email-peers.sh)");
    false
}

/// An aiosmtpd server on loopback that writes each message it takes to `dir/<n>.eml`
/// (and its envelope recipients to `dir/<n>.rcpt`); recipients starting with `reject`
/// get a 550, with `busy` a 451.
struct SmtpServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

const SERVER: &str = r#"
import sys, os, itertools
from aiosmtpd.controller import Controller
out = sys.argv[1]
counter = itertools.count(1)
class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if address.startswith("busy"):
            return "451 4.3.2 Please try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"
    async def handle_DATA(self, server, session, envelope):
        n = next(counter)
        data = envelope.original_content or envelope.content
        with open(os.path.join(out, "%d.eml" % n), "wb") as f:
            f.write(data)
        with open(os.path.join(out, "%d.rcpt" % n), "w") as f:
            f.write(envelope.mail_from + "\n" + "\n".join(envelope.rcpt_tos))
        return "250 Message accepted for delivery"
import socket
probe = socket.socket()
probe.bind(("127.0.0.1", 0))
port = probe.getsockname()[1]
probe.close()
c = Controller(Handler(), hostname="127.0.0.1", port=port)
c.start()
print(port, flush=True)
sys.stdin.read()
c.stop()
"#;

impl SmtpServer {
    fn start(name: &str) -> SmtpServer {
        let dir = std::env::temp_dir().join(format!("relais-email-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new("python3")
            .args(["-c", SERVER, dir.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("aiosmtpd said {line:?}"));
        SmtpServer { child, port, dir }
    }

    fn received(&self, n: usize) -> (Vec<u8>, String) {
        let eml = std::fs::read(self.dir.join(format!("{n}.eml"))).unwrap();
        let rcpt = std::fs::read_to_string(self.dir.join(format!("{n}.rcpt"))).unwrap();
        (eml, rcpt)
    }

    fn count(&self) -> usize {
        std::fs::read_dir(&self.dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "eml")
            })
            .count()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(stdin) = self.child.stdin.as_mut() {
            let _ = stdin.write_all(b"");
        }
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether dkimpy finds the message's DKIM signature good, with the fixture's public key
/// published as the selector's TXT record.
fn dkim_verifies(message: &[u8], dir: &Path) -> bool {
    let path = dir.join("verify.eml");
    std::fs::write(&path, message).unwrap();
    let script = format!(
        r#"
import sys, dkim
record = b"v=DKIM1; k=rsa; p={}"
def dns(name, timeout=5):
    assert name == b"relais2026._domainkey.shop.example.", name
    return record
print(dkim.verify(open(sys.argv[1], "rb").read(), dnsfunc=dns))
"#,
        PUBLIC_KEY.trim()
    );
    let out = Command::new("python3")
        .args(["-c", &script, path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim() == "True"
}

fn identity() -> ChannelIdentity {
    ChannelIdentity {
        id: "ch_email".into(),
        tenant_id: "default".into(),
        name: "mail".into(),
    }
}

fn config(port: u16) -> Value {
    json!({"host": "127.0.0.1", "port": port, "tls": "none", "from": FROM,
        "from_name": "Shop Example", "dkim_domain": "shop.example",
        "dkim_selector": "relais2026", "dkim_private_key": KEY})
}

fn start(config: Value) -> Started {
    relais_channels::start("email", identity(), &config).unwrap()
}

fn outbound(id: &str, to: &str, content: Value) -> OutboundMessage {
    OutboundMessage {
        purpose: relais_core::consent::Purpose::Transactional,
        message_id: id.into(),
        tenant_id: "default".into(),
        channel: ChannelKind::Email,
        to: to.into(),
        from: None,
        content: serde_json::from_value::<Content>(content).unwrap(),
        human_agent_since: None,
        attempt: 1,
        now: Timestamp::from_second(1_750_000_000).unwrap(),
    }
}

fn header<'m>(message: &'m mail_parser::Message<'m>, name: &'static str) -> Option<&'m str> {
    message.header_raw(name).map(str::trim)
}

// ---- sending ----

#[tokio::test]
async fn a_message_reaches_the_smtp_server_with_both_parts_and_a_good_dkim_signature() {
    if !peer_available("aiosmtpd") || !peer_available("dkim") {
        return;
    }
    let server = SmtpServer::start("send");
    let channel = start(config(server.port)).adapter;
    assert_eq!(channel.kind(), ChannelKind::Email);
    let ack = channel
        .send(&outbound(
            "msg_01J",
            "claire@example.org",
            json!({"text": "Your order <42> has shipped & is on its way",
                "buttons": [{"type": "url", "title": "Track it", "url": "https://shop.example/t/42"}]}),
        ))
        .await
        .unwrap();
    assert_eq!(ack.provider_id, "msg_01J@shop.example");

    let (raw, rcpt) = server.received(1);
    assert_eq!(rcpt, "news@shop.example\nclaire@example.org");
    let message = mail_parser::MessageParser::default().parse(&raw).unwrap();
    assert_eq!(message.message_id(), Some("msg_01J@shop.example"));
    assert_eq!(
        message.subject(),
        Some("Your order <42> has shipped & is on its way")
    );
    let from = message.from().and_then(|a| a.first()).unwrap();
    assert_eq!(
        (from.name(), from.address()),
        (Some("Shop Example"), Some(FROM))
    );
    assert!(
        header(&message, "Content-Type")
            .unwrap()
            .starts_with("multipart/alternative"),
        "{:?}",
        header(&message, "Content-Type")
    );
    let text = message.body_text(0).unwrap();
    assert!(text.contains("Your order <42> has shipped"), "{text}");
    assert!(
        text.contains("Track it: https://shop.example/t/42"),
        "{text}"
    );
    let html = message.body_html(0).unwrap();
    assert!(
        html.contains("Your order &lt;42&gt; has shipped &amp; is on its way"),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"https://shop.example/t/42\">Track it</a>"),
        "{html}"
    );
    assert!(header(&message, "List-Unsubscribe").is_none());

    let signature = header(&message, "DKIM-Signature").unwrap();
    assert!(
        signature.contains("d=shop.example; s=relais2026"),
        "{signature}"
    );
    assert!(
        dkim_verifies(&raw, &server.dir),
        "dkimpy refused the signature"
    );
    let mut tampered = raw.clone();
    let at = tampered.windows(8).position(|w| w == b"shipped ").unwrap();
    tampered[at] = b'S';
    assert!(
        !dkim_verifies(&tampered, &server.dir),
        "dkimpy took a changed message"
    );
}

#[tokio::test]
async fn a_carousel_arrives_as_a_table_of_cards() {
    if !peer_available("aiosmtpd") {
        return;
    }
    let server = SmtpServer::start("cards");
    let channel = start(config(server.port)).adapter;
    channel
        .send(&outbound(
            "msg_cards",
            "claire@example.org",
            json!({"carousel": [
                {"title": "Red shoes", "text": "39 €",
                 "media": {"url": "https://shop.example/r.jpg", "mime_type": "image/jpeg"}},
                {"title": "Blue shoes",
                 "buttons": [{"type": "url", "title": "Buy", "url": "https://shop.example/b"}]}]}),
        ))
        .await
        .unwrap();
    let (raw, _) = server.received(1);
    let message = mail_parser::MessageParser::default().parse(&raw).unwrap();
    assert_eq!(message.subject(), Some("Red shoes"));
    let html = message.body_html(0).unwrap();
    assert_eq!(html.matches("<td").count(), 2, "{html}");
    assert!(
        html.contains("<img src=\"https://shop.example/r.jpg\" alt=\"Red shoes\""),
        "{html}"
    );
    assert!(html.contains("39 €"), "{html}");
    let text = message.body_text(0).unwrap().replace("\r\n", "\n");
    assert!(
        text.contains("Blue shoes\nBuy: https://shop.example/b"),
        "{text}"
    );
}

#[tokio::test]
async fn a_marketing_mail_has_a_signed_one_click_unsubscribe_link_and_a_transactional_one_none() {
    if !peer_available("aiosmtpd") || !peer_available("dkim") {
        return;
    }
    let server = SmtpServer::start("unsubscribe");
    let mut with_url = config(server.port);
    with_url["public_url"] = json!("https://relais.shop.example");
    let channel = start(with_url).adapter;
    let mut sale = outbound(
        "msg_sale",
        "claire@example.org",
        json!({"text": "Winter sale"}),
    );
    sale.purpose = relais_core::consent::Purpose::Marketing;
    channel.send(&sale).await.unwrap();
    channel
        .send(&outbound(
            "msg_receipt",
            "claire@example.org",
            json!({"text": "Your receipt"}),
        ))
        .await
        .unwrap();

    let (raw, _) = server.received(1);
    let message = mail_parser::MessageParser::default().parse(&raw).unwrap();
    let list = header(&message, "List-Unsubscribe")
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let token = list
        .strip_prefix("<https://relais.shop.example/unsubscribe/")
        .and_then(|rest| rest.split_once('>'))
        .map(|(token, _)| token)
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(
        relais_channels::email::unsubscribe::current().verify(token),
        Ok(relais_channels::email::unsubscribe::Unsubscribed {
            tenant_id: "default".into(),
            message_id: "msg_sale".into(),
        }),
        "the link names the message, signed with the server's key"
    );
    assert!(
        list.ends_with(", <mailto:news@shop.example?subject=unsubscribe>"),
        "{list}"
    );
    assert_eq!(
        header(&message, "List-Unsubscribe-Post"),
        Some("List-Unsubscribe=One-Click")
    );
    assert!(
        dkim_verifies(&raw, &server.dir),
        "the signature covers the unsubscribe headers and verifies"
    );

    let (raw, _) = server.received(2);
    let message = mail_parser::MessageParser::default().parse(&raw).unwrap();
    assert_eq!(header(&message, "List-Unsubscribe"), None);
    assert_eq!(header(&message, "List-Unsubscribe-Post"), None);
}

#[tokio::test]
async fn a_550_is_permanent_with_the_servers_text_and_a_451_is_retried() {
    if !peer_available("aiosmtpd") {
        return;
    }
    let server = SmtpServer::start("refusals");
    let channel = start(config(server.port)).adapter;
    let e = channel
        .send(&outbound("m1", "reject@example.org", json!({"text": "Hi"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "smtp_rejected")
    );
    assert!(
        e.reason.contains("550") && e.reason.contains("User unknown"),
        "{e}"
    );
    let e = channel
        .send(&outbound("m2", "busy@example.org", json!({"text": "Hi"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "smtp_transient")
    );
    assert!(e.reason.contains("451"), "{e}");
    assert_eq!(server.count(), 0, "nothing was delivered");
    assert!(channel.is_ready());
}

#[tokio::test]
async fn a_server_that_refuses_connections_means_retry_later() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let channel = start(config(port)).adapter;
    let e = channel
        .send(&outbound("m1", "claire@example.org", json!({"text": "Hi"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "connection_failed")
    );
}

#[tokio::test]
async fn an_address_that_is_not_one_is_refused_before_connecting() {
    let channel = start(config(1)).adapter;
    let e = channel
        .send(&outbound("m1", "+33612345678", json!({"text": "Hi"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "invalid_recipient")
    );
}

// ---- inbound, from a relay ----

const SECRET: &str = "relay-2f9c1e7a";

fn hook_config() -> Value {
    let mut config = config(2525);
    config["inbound_secret"] = json!(SECRET);
    config
}

fn post(
    started: &Started,
    auth: Option<&str>,
    content_type: &str,
    body: &str,
) -> Result<Vec<ChannelEvent>, WebhookError> {
    let mut headers = vec![("content-type".to_owned(), content_type.to_owned())];
    if let Some(auth) = auth {
        headers.push(("authorization".to_owned(), auth.to_owned()));
    }
    let body = body.replace('\n', "\r\n");
    let request = WebhookRequest {
        is_get: false,
        query: &[],
        headers: &headers,
        body: body.as_bytes(),
    };
    let reader = started
        .webhook
        .as_ref()
        .expect("an email channel takes /hooks");
    match reader(&request)? {
        WebhookAnswer::Deliver(events) => Ok(events),
        WebhookAnswer::Echo(e) => panic!("unexpected echo {e}"),
    }
}

const REPLY: &str = "Return-Path: <claire@example.org>
From: Claire Martin <Claire@Example.org>
To: Shop Example <news@shop.example>
Subject: Re: Your order <42> has shipped
Date: Sat, 05 Dec 2026 09:12:00 +0100
Message-ID: <CAF=reply-1@mail.example.org>
In-Reply-To: <msg_01J@shop.example>
References: <msg_01J@shop.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Can you leave it with the neighbour at number 12?

On Sat, 5 Dec 2026 at 08:00, Shop Example <news@shop.example> wrote:
> Your order <42> has shipped & is on its way
";

#[test]
fn a_reply_is_an_inbound_message_from_its_sender_without_the_quote() {
    let started = start(hook_config());
    let events = post(
        &started,
        Some(&format!("Bearer {SECRET}")),
        "message/rfc822",
        REPLY,
    )
    .unwrap();
    let [ChannelEvent::Inbound(inbound, _)] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(inbound.channel, ChannelKind::Email);
    assert_eq!(inbound.channel_id.as_deref(), Some("ch_email"));
    assert_eq!(inbound.from, "claire@example.org");
    assert_eq!(inbound.to, FROM);
    assert_eq!(
        inbound.text,
        "Can you leave it with the neighbour at number 12?"
    );
    assert_eq!(
        inbound.provider_id.as_deref(),
        Some("CAF=reply-1@mail.example.org")
    );
    // A redelivery carries the same provider id, which the engine stores once.
    let again = post(
        &started,
        Some(&format!("Bearer {SECRET}")),
        "message/rfc822",
        REPLY,
    )
    .unwrap();
    let [ChannelEvent::Inbound(again, _)] = again.as_slice() else {
        panic!("{again:?}");
    };
    assert_eq!(again.provider_id, inbound.provider_id);
}

#[test]
fn an_html_only_mail_is_read_as_text() {
    let started = start(hook_config());
    let html = "From: claire@example.org
To: news@shop.example
Subject: hello
Message-ID: <html-1@example.org>
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8

<html><body><p>Is the <b>red</b> pair still in stock?</p></body></html>
";
    let events = post(
        &started,
        Some(&format!("Bearer {SECRET}")),
        "message/rfc822",
        html,
    )
    .unwrap();
    let [ChannelEvent::Inbound(inbound, _)] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(inbound.text, "Is the red pair still in stock?");
}

#[test]
fn a_relay_without_the_secret_is_refused_and_nothing_is_read() {
    let started = start(hook_config());
    for auth in [None, Some("Bearer wrong"), Some(SECRET)] {
        let e = post(&started, auth, "message/rfc822", REPLY).unwrap_err();
        assert!(
            matches!(e, WebhookError::Unauthorized(_)),
            "{auth:?}: {e:?}"
        );
    }
    // A channel without inbound_secret takes no mail at all.
    let closed = start(config(2525));
    let e = post(
        &closed,
        Some(&format!("Bearer {SECRET}")),
        "message/rfc822",
        REPLY,
    )
    .unwrap_err();
    assert!(matches!(e, WebhookError::Unauthorized(_)), "{e:?}");
    // The right secret with something that is not a message is malformed.
    let e = post(
        &started,
        Some(&format!("Bearer {SECRET}")),
        "application/json",
        "{}",
    )
    .unwrap_err();
    assert!(matches!(e, WebhookError::Malformed(_)), "{e:?}");
    let e = post(
        &started,
        Some(&format!("Bearer {SECRET}")),
        "message/rfc822",
        "no headers at all",
    )
    .unwrap_err();
    assert!(matches!(e, WebhookError::Malformed(_)), "{e:?}");
}

#[test]
fn an_out_of_office_answer_is_not_stored() {
    let started = start(hook_config());
    let auto = REPLY.replace(
        "MIME-Version: 1.0",
        "Auto-Submitted: auto-replied\nMIME-Version: 1.0",
    );
    let events = post(
        &started,
        Some(&format!("Bearer {SECRET}")),
        "message/rfc822",
        &auto,
    )
    .unwrap();
    assert!(events.is_empty(), "{events:?}");
}

/// A bounce as Postfix writes it (RFC 3464), returning the headers of the mail.
fn dsn(action: &str, status: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.shop.example (Mail Delivery System)
To: news@shop.example
Subject: Undelivered Mail Returned to Sender
Message-ID: <20261205081500.1A2B3C@mx.shop.example>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary=\"B1\"

--B1
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

--B1
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.shop.example
X-Postfix-Queue-ID: 1A2B3C
Arrival-Date: Sat,  5 Dec 2026 08:14:58 +0000 (UTC)

Final-Recipient: rfc822; nobody@example.org
Original-Recipient: rfc822;nobody@example.org
Action: {action}
Status: {status}
Remote-MTA: dns; mail.example.org
Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.org>: Recipient address
    rejected: User unknown in virtual mailbox table

--B1
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: Shop Example <news@shop.example>
To: nobody@example.org
Subject: Your order <42> has shipped
Message-ID: <msg_01J@shop.example>

--B1--
"
    )
}

#[test]
fn a_bounce_marks_the_message_it_returns_undelivered_with_the_servers_answer() {
    let started = start(hook_config());
    let events = post(
        &started,
        Some(&format!("Bearer {SECRET}")),
        "message/rfc822",
        &dsn("failed", "5.1.1"),
    )
    .unwrap();
    let [ChannelEvent::Status(report, _)] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(report.channel_id, "ch_email");
    assert_eq!(
        report.message,
        MessageRef::Provider("msg_01J@shop.example".into())
    );
    assert_eq!(report.status, MessageStatus::Undelivered);
    let detail = report.detail.as_deref().unwrap();
    assert!(
        detail.starts_with("hard bounce 5.1.1: smtp; 550 5.1.1"),
        "{detail}"
    );
    assert!(
        detail.contains("User unknown in virtual mailbox table"),
        "{detail}"
    );
}

#[test]
fn a_report_of_a_delay_changes_nothing() {
    let started = start(hook_config());
    let events = post(
        &started,
        Some(&format!("Bearer {SECRET}")),
        "message/rfc822",
        &dsn("delayed", "4.4.1"),
    )
    .unwrap();
    assert!(events.is_empty(), "{events:?}");
}

/// An SMTP server that offers `AUTH PLAIN LOGIN` and refuses every login with `code`.
async fn refusing_login(code: &'static str) -> u16 {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = tokio::io::BufReader::new(read).lines();
                write.write_all(b"220 mx.test ESMTP\r\n").await.unwrap();
                while let Ok(Some(line)) = lines.next_line().await {
                    let answer = match line.get(..4).unwrap_or_default() {
                        "EHLO" => "250-mx.test\r\n250 AUTH PLAIN LOGIN\r\n".to_owned(),
                        "AUTH" => format!("{code} 5.7.8 Authentication credentials invalid\r\n"),
                        "QUIT" => return,
                        _ => "250 ok\r\n".to_owned(),
                    };
                    if write.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn a_refused_login_holds_the_channel_without_spending_the_attempt() {
    let port = refusing_login("535").await;
    let mut config = config(port);
    config["username"] = json!("news@shop.example");
    config["password"] = json!("hunter2-wrong");
    let channel = start(config).adapter;
    assert!(channel.is_ready());
    let e = channel
        .send(&outbound("m1", "claire@example.org", json!({"text": "Hi"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::NotSent, "auth_failed")
    );
    assert!(!e.reason.contains("hunter2"), "{e}");
    assert!(
        !channel.is_ready(),
        "the channel waits before trying the login again"
    );
}

#[test]
fn a_bounce_that_returns_the_whole_message_finds_it_too() {
    let started = start(hook_config());
    let whole = dsn("failed", "5.2.2")
        .replace("Content-Type: text/rfc822-headers", "Content-Type: message/rfc822")
        .replace(
            "Message-ID: <msg_01J@shop.example>\n",
            "Message-ID: <msg_01J@shop.example>\nContent-Type: text/plain\n\nYour order has shipped.\n",
        );
    let events = post(
        &started,
        Some(&format!("Bearer {SECRET}")),
        "message/rfc822",
        &whole,
    )
    .unwrap();
    let [ChannelEvent::Status(report, _)] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(
        report.message,
        MessageRef::Provider("msg_01J@shop.example".into())
    );
    assert!(
        report
            .detail
            .as_deref()
            .unwrap()
            .starts_with("hard bounce 5.2.2"),
        "{report:?}"
    );
}
