//! A configured `email` channel end to end, against a small SMTP server inside the test:
//! the channel hides its secrets, a message goes out over SMTP with the `Message-ID`
//! that is its provider id, a bounce posted by the relay marks that message undelivered,
//! and a reply posted by the relay (only with the channel's inbound secret) is stored
//! once, however often it is posted.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use relais_core::clock::{Clock, SystemClock};
use relais_engine::dispatch::{Dispatcher, DispatcherConfig};
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_server::{AppState, HttpSettings, router};
use relais_store::{SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const SECRET: &str = "relay-2f9c1e7a";
const KEY: &str = include_str!("../../relais-channels/tests/fixtures/email/dkim-test-key.pem");

type Mailbox = Arc<Mutex<Vec<String>>>;

/// The least of an SMTP server (RFC 5321): greets, says yes to everything, keeps each
/// message's data.
async fn smtp_server() -> (u16, Mailbox) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mailbox = Mailbox::default();
    let kept = mailbox.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let kept = kept.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 mx.test ESMTP\r\n").await.unwrap();
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
                    let answer: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-mx.test\r\n250 8BITMIME\r\n",
                        "DATA" => {
                            write.write_all(b"354 go ahead\r\n").await.unwrap();
                            let mut data = String::new();
                            while let Ok(Some(line)) = lines.next_line().await {
                                if line == "." {
                                    break;
                                }
                                data.push_str(&line);
                                data.push_str("\r\n");
                            }
                            kept.lock().unwrap().push(data);
                            b"250 2.0.0 queued\r\n"
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => b"250 ok\r\n",
                    };
                    write.write_all(answer).await.unwrap();
                }
            });
        }
    });
    (port, mailbox)
}

struct Api {
    app: axum::Router,
    key: String,
    dispatcher: Arc<Dispatcher>,
    mailbox: Mailbox,
    port: u16,
    channels: relais_engine::channels::ConfiguredChannels,
    _store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn api() -> Api {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let Bootstrap::Created(key) = bootstrap(&*store, None, clock.now()).await.unwrap() else {
        panic!("first start")
    };
    let state = AppState::new(store.clone(), clock.clone(), HttpSettings::default(), None);
    let dispatcher = Dispatcher::new(
        store.clone(),
        clock,
        DispatcherConfig {
            lease_owner: "test".into(),
            ..Default::default()
        },
    )
    .with_registry(state.channels.registry());
    let (port, mailbox) = smtp_server().await;
    Api {
        channels: state.channels.clone(),
        app: router(state),
        key: key.secret,
        dispatcher: Arc::new(dispatcher),
        mailbox,
        port,
        _store: store,
        _dir: dir,
    }
}

impl Api {
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        support::call(&self.app, &self.key, method, uri, body).await
    }

    async fn channel(&self) -> Value {
        let (status, created) = self
            .call(
                "POST",
                "/v1/channels",
                Some(json!({"kind": "email", "name": "mail", "config": {
                    "host": "127.0.0.1", "port": self.port, "tls": "none",
                    "from": "news@shop.example", "from_name": "Shop Example",
                    "inbound_secret": SECRET, "dkim_domain": "shop.example",
                    "public_url": "https://relais.shop.example",
                    "dkim_selector": "relais2026", "dkim_private_key": KEY}})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created
    }

    /// Creates the channel; its `webhook_url`.
    async fn channel_hook(&self) -> String {
        let channel = self.channel().await;
        channel["webhook_url"].as_str().unwrap().to_owned()
    }

    async fn message(&self, id: &str) -> Value {
        self.call("GET", &format!("/v1/messages/{id}"), None)
            .await
            .1
    }

    async fn hook(&self, path: &str, raw: &str, secret: Option<&str>) -> StatusCode {
        let mut req = Request::builder()
            .method("POST")
            .uri(path)
            .header(header::CONTENT_TYPE, "message/rfc822");
        if let Some(secret) = secret {
            req = req.header(header::AUTHORIZATION, format!("Bearer {secret}"));
        }
        let raw = raw.replace('\n', "\r\n");
        support::respond(&self.app, req.body(Body::from(raw)).unwrap())
            .await
            .0
    }

    async fn inbound(&self) -> Vec<Value> {
        let (_, list) = self.call("GET", "/v1/inbound", None).await;
        list.get("data")
            .cloned()
            .unwrap_or(list)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Sends a text to `to` and runs the dispatcher until it is sent: its id and the mail
    /// the SMTP server got.
    async fn send(&self, to: &str, text: &str) -> (String, String) {
        self.send_for(to, text, "transactional").await
    }

    /// [`Api::send`] with a `purpose`.
    async fn send_for(&self, to: &str, text: &str, purpose: &str) -> (String, String) {
        let (status, accepted) = self
            .call(
                "POST",
                "/v1/messages",
                Some(json!({"to": {"channel": "email", "address": to},
                    "channel": "mail", "content": {"text": text}, "purpose": purpose})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        let id = accepted["id"].as_str().unwrap().to_owned();
        let message = self.wait_for(&id, "sent").await;
        assert_eq!(message["status"], "sent", "{message}");
        let mail = self.mailbox.lock().unwrap().last().cloned().unwrap();
        (id, mail)
    }

    async fn wait_for(&self, id: &str, status: &str) -> Value {
        let mut message = Value::Null;
        for _ in 0..200 {
            self.dispatcher.run_once().await.unwrap();
            message = self.message(id).await;
            if message["status"] == status {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        message
    }
}

fn header_of<'m>(mail: &'m str, name: &str) -> Option<&'m str> {
    mail.split("\r\n")
        .find(|line| {
            line.len() > name.len()
                && line[..name.len()].eq_ignore_ascii_case(name)
                && line.as_bytes()[name.len()] == b':'
        })
        .map(|line| line[name.len() + 1..].trim())
}

/// A delivery status notification (RFC 3464) saying the mail `message_id` bounced.
fn bounce_of(message_id: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.shop.example
To: news@shop.example
Subject: Undelivered Mail Returned to Sender
Message-ID: <bounce-1@mx.shop.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B1\"

--B1
Content-Type: text/plain

Your message could not be delivered.

--B1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.shop.example

Final-Recipient: rfc822; nobody@example.org
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.org>: User unknown

--B1
Content-Type: text/rfc822-headers

From: Shop Example <news@shop.example>
To: nobody@example.org
Message-ID: {message_id}

--B1--
"
    )
}

#[tokio::test]
async fn a_sent_mail_that_bounces_is_marked_undelivered_with_the_servers_answer() {
    let api = api().await;
    let channel = api.channel().await;
    assert_eq!(channel["config"]["inbound_secret"], "***");
    assert_eq!(channel["config"]["dkim_private_key"], "***");
    let hook = channel["webhook_url"].as_str().unwrap().to_owned();
    assert!(hook.starts_with("/hooks/"), "{hook}");

    let (id, mail) = api
        .send("nobody@example.org", "Your order has shipped")
        .await;
    assert!(
        mail.starts_with("DKIM-Signature: v=1; a=rsa-sha256;"),
        "{mail}"
    );
    assert_eq!(header_of(&mail, "To"), Some("nobody@example.org"));
    assert_eq!(header_of(&mail, "Subject"), Some("Your order has shipped"));
    let message_id = header_of(&mail, "Message-ID").unwrap().to_owned();

    let bounce = bounce_of(&message_id);
    assert_eq!(
        api.hook(&hook, &bounce, Some("guess")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(api.hook(&hook, &bounce, Some(SECRET)).await, StatusCode::OK);
    let message = api.wait_for(&id, "undelivered").await;
    assert_eq!(message["status"], "undelivered", "{message}");
    assert!(
        message.to_string().contains("550 5.1.1"),
        "the server's answer is kept: {message}"
    );

    // 5.1.1, an unknown mailbox: the address leaves its contact, and says so.
    assert!(
        message
            .to_string()
            .contains("this email address was removed from contact"),
        "{message}"
    );
    let contact = message["contact_id"].as_str().unwrap();
    let (_, found) = api
        .call("GET", &format!("/v1/contacts/{contact}"), None)
        .await;
    assert_eq!(found["identities"], json!([]), "{found}");
    let (status, problem) = api
        .call(
            "POST",
            "/v1/messages",
            Some(json!({"to": {"contact_id": contact}, "channel": "mail",
                "content": {"text": "Another try"}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
}

#[tokio::test]
async fn a_reply_posted_by_the_relay_is_stored_once_and_only_with_the_secret() {
    let api = api().await;
    let hook = api.channel_hook().await;
    let reply = "From: Claire Martin <claire@example.org>
To: news@shop.example
Subject: Re: Your order has shipped
Message-ID: <reply-1@example.org>
In-Reply-To: <whatever@shop.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Merci ! Can you leave it with the neighbour?

On Sat, 5 Dec 2026, Shop Example wrote:
> Your order has shipped
";
    assert_eq!(api.hook(&hook, reply, None).await, StatusCode::UNAUTHORIZED);
    assert!(
        api.inbound().await.is_empty(),
        "a refused call stores nothing"
    );
    assert_eq!(api.hook(&hook, reply, Some(SECRET)).await, StatusCode::OK);
    assert_eq!(
        api.hook(&hook, reply, Some(SECRET)).await,
        StatusCode::OK,
        "a redelivery"
    );
    let inbound = api.inbound().await;
    assert_eq!(inbound.len(), 1, "{inbound:?}");
    assert_eq!(inbound[0]["channel"], "email");
    assert_eq!(inbound[0]["from"], "claire@example.org");
    assert_eq!(
        inbound[0]["text"],
        "Merci ! Can you leave it with the neighbour?"
    );
}

/// A reply to `message_id` from `from`, as a mail program writes it.
fn reply_to(message_id: &str, from: &str, own_id: &str, text: &str) -> String {
    format!(
        "From: Claire <{from}>
To: news@shop.example
Subject: Re: Your order has shipped
Message-ID: <{own_id}>
In-Reply-To: {message_id}
References: <older@elsewhere.example> {message_id}
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

{text}

On Sat, 5 Dec 2026, Shop Example wrote:
> Your order has shipped
"
    )
}

#[tokio::test]
async fn a_reply_to_a_relais_mail_lands_in_its_conversation_even_from_another_address() {
    let api = api().await;
    let hook = api.channel_hook().await;
    let (sent, mail) = api
        .send("claire@example.org", "Your order has shipped")
        .await;
    let message_id = header_of(&mail, "Message-ID").unwrap().to_owned();
    let sent = api.message(&sent).await;

    let same = reply_to(
        &message_id,
        "claire@example.org",
        "r1@example.org",
        "Thanks!",
    );
    assert_eq!(api.hook(&hook, &same, Some(SECRET)).await, StatusCode::OK);
    let alias = reply_to(
        &message_id,
        "c.martin@alias.example",
        "r2@alias.example",
        "Leave it with the neighbour, please.",
    );
    assert_eq!(api.hook(&hook, &alias, Some(SECRET)).await, StatusCode::OK);

    let (_, list) = api.call("GET", "/v1/conversations", None).await;
    let conversations = list["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(conversations.len(), 1, "one thread: {list}");
    let conversation = &conversations[0];
    let (_, thread) = api
        .call(
            "GET",
            &format!("/v1/conversations/{}", conversation["id"].as_str().unwrap()),
            None,
        )
        .await;
    let texts: Vec<(String, String)> = thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["direction"].as_str().unwrap_or_default().to_owned(),
                m["content"]["text"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("out", "Your order has shipped"),
        ("in", "Thanks!"),
        ("in", "Leave it with the neighbour, please."),
    ] {
        assert!(
            texts
                .iter()
                .any(|(d, t)| d == expected.0 && t == expected.1),
            "{expected:?} in {texts:?}"
        );
    }
    assert_eq!(conversation["contact"], sent["contact_id"], "{sent}");

    // The alias is not made the customer's identity: a Message-ID proves no ownership.
    let (_, found) = api
        .call("GET", "/v1/contacts?identity=c.martin@alias.example", None)
        .await;
    assert_eq!(found["data"], json!([]), "{found}");
}

#[tokio::test]
async fn a_mail_that_answers_nothing_relais_sent_is_placed_by_its_sender() {
    let api = api().await;
    let hook = api.channel_hook().await;
    let (sent, _) = api
        .send("claire@example.org", "Your order has shipped")
        .await;
    let sent = api.message(&sent).await;
    let unknown = reply_to(
        "<never-sent@shop.example>",
        "c.martin@alias.example",
        "r3@alias.example",
        "Hello?",
    );
    assert_eq!(
        api.hook(&hook, &unknown, Some(SECRET)).await,
        StatusCode::OK
    );
    let (_, found) = api
        .call("GET", "/v1/contacts?identity=c.martin@alias.example", None)
        .await;
    let owner = found["data"][0]["id"].clone();
    assert!(owner.is_string(), "the sender got a contact: {found}");
    assert_ne!(
        owner, sent["contact_id"],
        "not the customer Relais wrote to"
    );
    let (_, list) = api.call("GET", "/v1/conversations", None).await;
    let owners: Vec<&Value> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["contact"])
        .collect();
    assert_eq!(owners, vec![&owner], "{list}");
}

/// What Python's `smtplib` (a client written elsewhere) says when it sends each mail to
/// the listener on `port`, one session per mail: `ok` or the server's code.
fn smtplib_sends(port: u16, mails: &[(&str, &str, &str)]) -> Vec<String> {
    let script = r#"
import json, smtplib, sys
port, mails = int(sys.argv[1]), json.load(sys.stdin)
for sender, recipient, data in mails:
    try:
        with smtplib.SMTP("127.0.0.1", port) as s:
            s.sendmail(sender, [recipient], data.encode("utf-8"))
        print("ok")
    except smtplib.SMTPRecipientsRefused as e:
        print(list(e.recipients.values())[0][0])
    except smtplib.SMTPResponseException as e:
        print(e.smtp_code)
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script, &port.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let input = serde_json::to_vec(mails).unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &input).unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_and_a_bounce_sent_over_smtp_land_as_with_the_relay_hook() {
    let api = api().await;
    api.channel().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let smtp_port = listener.local_addr().unwrap().port();
    tokio::spawn(relais_engine::smtp_server::serve(
        listener,
        api.channels.clone(),
        Default::default(),
        std::future::pending(),
    ));
    let (_, shipped) = api
        .send("claire@example.org", "Your order has shipped")
        .await;
    let (lost, lost_mail) = api.send("nobody@example.org", "Your invoice").await;
    let shipped_id = header_of(&shipped, "Message-ID").unwrap().to_owned();
    let lost_id = header_of(&lost_mail, "Message-ID").unwrap().to_owned();

    let reply = reply_to(
        &shipped_id,
        "c.martin@alias.example",
        "r-smtp@alias.example",
        "Leave it at the door.",
    )
    .replace('\n', "\r\n");
    let bounce = bounce_of(&lost_id).replace('\n', "\r\n");
    let answers = tokio::task::spawn_blocking(move || {
        smtplib_sends(
            smtp_port,
            &[
                ("c.martin@alias.example", "News@Shop.Example", &reply),
                ("", "news@shop.example", &bounce),
                (
                    "x@example.org",
                    "sales@shop.example",
                    "Subject: hi\r\n\r\nhi\r\n",
                ),
                ("x@example.org", "news@shop.example", "no header, no body"),
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(answers, ["ok", "ok", "550", "554"]);

    let message = api.wait_for(&lost, "undelivered").await;
    assert_eq!(message["status"], "undelivered", "{message}");
    assert!(message.to_string().contains("550 5.1.1"), "{message}");

    let (_, list) = api.call("GET", "/v1/conversations", None).await;
    let conversations = list["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(conversations.len(), 1, "{list}");
    let (_, thread) = api
        .call(
            "GET",
            &format!(
                "/v1/conversations/{}",
                conversations[0]["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    let texts: Vec<&str> = thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"]["text"].as_str().unwrap_or_default())
        .collect();
    assert!(texts.contains(&"Your order has shipped"), "{texts:?}");
    assert!(texts.contains(&"Leave it at the door."), "{texts:?}");
    assert_eq!(
        api.inbound().await.len(),
        1,
        "the bounce is no inbound message"
    );
}

/// The mail's header `name`, its folded lines joined (RFC 5322 2.2.3).
fn unfolded_header(mail: &str, name: &str) -> Option<String> {
    let unfolded = mail.replace("\r\n ", " ").replace("\r\n\t", " ");
    header_of(&unfolded, name).map(str::to_owned)
}

/// A form post to `path`, as a mail program's one-click unsubscribe is.
async fn post_form(app: &axum::Router, path: &str, body: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .method("POST")
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let (status, body, _) = support::respond(app, req).await;
    (
        status,
        body.as_str()
            .map_or_else(|| body.to_string(), str::to_owned),
    )
}

#[tokio::test]
async fn one_click_unsubscribe_records_one_opt_out_and_stops_the_next_marketing_mail() {
    let api = api().await;
    api.channel().await;
    let (receipt_id, receipt) = api.send("claire@example.org", "Your receipt").await;
    assert_eq!(
        unfolded_header(&receipt, "List-Unsubscribe"),
        None,
        "{receipt}"
    );
    assert_eq!(unfolded_header(&receipt, "List-Unsubscribe-Post"), None);
    let sent = api.message(&receipt_id).await;
    let contact = sent["contact_id"].as_str().unwrap().to_owned();
    let ledger_uri = format!("/v1/contacts/{contact}/consents");
    let (status, _) = api
        .call(
            "POST",
            &ledger_uri,
            Some(
                json!({"channel": "email", "purpose": "marketing", "status": "opted_in",
                "proof": "ticked the newsletter box at checkout"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (sale, mail) = api
        .send_for("claire@example.org", "Winter sale", "marketing")
        .await;
    assert_eq!(
        unfolded_header(&mail, "List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let list = unfolded_header(&mail, "List-Unsubscribe").unwrap();
    let url = list
        .strip_prefix("<https://relais.shop.example")
        .and_then(|rest| rest.split_once('>'))
        .map(|(path, _)| path.to_owned())
        .unwrap_or_else(|| panic!("{list}"));
    assert!(url.starts_with("/unsubscribe/"), "{url}");
    assert!(
        list.contains("<mailto:news@shop.example?subject=unsubscribe>"),
        "{list}"
    );
    let sent = api.message(&sale).await;
    assert_eq!(sent["contact_id"], contact.as_str());
    let before = api.call("GET", &ledger_uri, None).await.1;

    // Forged and malformed links change nothing.
    let tag_start = url.rfind('.').unwrap() + 1;
    let mut forged = url.clone();
    let flipped = if &url[tag_start..tag_start + 1] == "A" {
        "B"
    } else {
        "A"
    };
    forged.replace_range(tag_start..tag_start + 1, flipped);
    let body = "List-Unsubscribe=One-Click";
    assert_eq!(
        post_form(&api.app, &forged, body).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post_form(&api.app, "/unsubscribe/not-a-token", body)
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post_form(&api.app, &url, "List-Unsubscribe=Maybe").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        api.call("GET", &ledger_uri, None).await.1,
        before,
        "nothing recorded"
    );

    // Opening the link shows a button posting the same form, and changes nothing.
    let page = Request::builder().uri(&url).body(Body::empty()).unwrap();
    let (status, page, content_type) = support::respond(&api.app, page).await;
    let page = page.as_str().unwrap_or_default().to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains(&format!("<form method=\"post\" action=\"{url}\">")),
        "{page}"
    );
    assert!(
        page.contains("name=\"List-Unsubscribe\" value=\"One-Click\""),
        "{page}"
    );
    assert!(!page.contains("<script"), "{page}");
    assert_eq!(api.call("GET", &ledger_uri, None).await.1, before);

    for _ in 0..2 {
        let (status, answer) = post_form(&api.app, &url, body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let ledger = api.call("GET", &ledger_uri, None).await.1;
    let opt_outs: Vec<&Value> = ledger["history"]
        .as_array()
        .unwrap_or_else(|| panic!("{ledger}"))
        .iter()
        .filter(|r| r["status"] == "opted_out")
        .collect();
    assert_eq!(opt_outs.len(), 1, "once, however often posted: {ledger}");
    let record = opt_outs[0];
    assert_eq!(record["channel"], "email");
    assert_eq!(record["purpose"], "marketing");
    assert_eq!(record["source"], "channel");
    assert!(
        record["proof"].as_str().unwrap().contains(&sale),
        "{record}"
    );

    let (status, refused) = api
        .call(
            "POST",
            "/v1/messages",
            Some(json!({"to": {"contact_id": contact}, "channel": "mail",
                "content": {"text": "Last days of the sale"}, "purpose": "marketing"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{refused}");
    let id = refused["id"].as_str().unwrap().to_owned();
    let refused = api.wait_for(&id, "rejected").await;
    assert_eq!(refused["status"], "rejected", "{refused}");
    let reasons: Vec<&Value> = refused["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["reason"])
        .collect();
    assert!(reasons.contains(&&json!("opted_out")), "{refused}");
    assert_eq!(
        api.mailbox.lock().unwrap().len(),
        2,
        "no third mail went out"
    );
}
