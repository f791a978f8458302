//! The SMTP listener spoken to over TCP, line by line, as a mail server (or a bad client)
//! would: what it answers, what it hands the sink, and that bad input never stops it.

use async_trait::async_trait;
use relais_channels::email::smtp_listener::{
    ArrivedMail, ListenerSettings, MailRefused, MailSink, serve,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

const MAILBOX: &str = "news@shop.example";

/// Keeps what it is given; answers as told.
#[derive(Default)]
struct Sink {
    mails: Mutex<Vec<ArrivedMail>>,
    refuse: Mutex<Option<MailRefused>>,
}

#[async_trait]
impl MailSink for Sink {
    fn takes(&self, recipient: &str) -> bool {
        recipient == MAILBOX
    }
    async fn deliver(&self, mail: ArrivedMail) -> Result<(), MailRefused> {
        if let Some(refused) = self.refuse.lock().unwrap().clone() {
            return Err(refused);
        }
        self.mails.lock().unwrap().push(mail);
        Ok(())
    }
}

impl Sink {
    fn mails(&self) -> Vec<ArrivedMail> {
        self.mails.lock().unwrap().clone()
    }
}

fn settings() -> ListenerSettings {
    ListenerSettings {
        hostname: "mx.test".into(),
        max_message_bytes: 4096,
        max_recipients: 3,
        ..ListenerSettings::default()
    }
}

async fn listener(settings: ListenerSettings) -> (u16, Arc<Sink>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = Arc::new(Sink::default());
    tokio::spawn(serve(
        listener,
        settings,
        sink.clone(),
        std::future::pending(),
    ));
    (port, sink)
}

struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Client {
    /// Connects and reads the greeting.
    async fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let (read, writer) = stream.into_split();
        let mut client = Client {
            reader: BufReader::new(read),
            writer,
        };
        let greeting = client.reply().await;
        assert!(greeting.starts_with("220 mx.test"), "{greeting}");
        client
    }

    /// One whole reply (the lines of a multi-line one joined by `\n`); empty when the
    /// server closed the connection.
    async fn reply(&mut self) -> String {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return reply;
            }
            let last = line.as_bytes().get(3) != Some(&b'-');
            reply.push_str(line.trim_end());
            if last {
                return reply;
            }
            reply.push('\n');
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.unwrap();
    }

    /// Sends a command line, answers its reply.
    async fn says(&mut self, command: &str) -> String {
        self.send(format!("{command}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// EHLO, MAIL, RCPT to the mailbox, DATA: ready for the message.
    async fn start_mail(&mut self) {
        assert!(self.says("EHLO client.test").await.starts_with("250"));
        assert!(self.says("MAIL FROM:<>").await.starts_with("250"));
        assert!(
            self.says(&format!("RCPT TO:<{MAILBOX}>"))
                .await
                .starts_with("250")
        );
        assert!(self.says("DATA").await.starts_with("354"));
    }
}

fn code(reply: &str) -> &str {
    reply.get(..3).unwrap_or(reply)
}

#[tokio::test]
async fn a_mail_is_handed_over_dot_unstuffed_and_acknowledged_once_stored() {
    let (port, sink) = listener(settings()).await;
    let mut client = Client::connect(port).await;
    let ehlo = client.says("EHLO client.test").await;
    assert!(ehlo.contains("SIZE 4096"), "{ehlo}");
    assert!(!ehlo.contains("PIPELINING"), "{ehlo}");
    assert_eq!(
        code(
            &client
                .says("MAIL FROM:<claire@example.org> SIZE=300 BODY=8BITMIME")
                .await
        ),
        "250"
    );
    assert_eq!(
        code(&client.says("RCPT TO:<News@Shop.Example>").await),
        "250"
    );
    assert_eq!(code(&client.says("DATA").await), "354");
    client
        .send(b"Subject: hi\r\n\r\n..a line that starts with a dot\r\nbye\r\n.\r\n")
        .await;
    let stored = client.reply().await;
    assert!(stored.starts_with("250 2.0.0"), "{stored}");
    assert_eq!(
        sink.mails(),
        vec![ArrivedMail {
            reverse_path: "claire@example.org".into(),
            recipients: vec![MAILBOX.into()],
            data: b"Subject: hi\r\n\r\n.a line that starts with a dot\r\nbye\r\n".to_vec(),
        }]
    );
    assert_eq!(code(&client.says("QUIT").await), "221");
    assert_eq!(client.reply().await, "", "closed after QUIT");
}

#[tokio::test]
async fn an_unknown_recipient_is_refused_at_rcpt_and_no_mail_goes_without_one() {
    let (port, sink) = listener(settings()).await;
    let mut client = Client::connect(port).await;
    client.says("EHLO client.test").await;
    client.says("MAIL FROM:<a@example.org>").await;
    let refused = client.says("RCPT TO:<someone@elsewhere.example>").await;
    assert!(refused.starts_with("550 5.1.1"), "{refused}");
    assert_eq!(code(&client.says("DATA").await), "554");
    assert!(sink.mails().is_empty());
}

#[tokio::test]
async fn commands_out_of_order_or_unknown_get_errors_and_the_session_goes_on() {
    let (port, sink) = listener(ListenerSettings {
        max_errors: 20,
        ..settings()
    })
    .await;
    let mut client = Client::connect(port).await;
    assert_eq!(code(&client.says("MAIL FROM:<a@b.fr>").await), "503");
    assert_eq!(code(&client.says("EHLO").await), "501");
    assert_eq!(code(&client.says("HELO client.test").await), "250");
    assert_eq!(
        code(&client.says("RCPT TO:<news@shop.example>").await),
        "503"
    );
    assert_eq!(code(&client.says("DATA").await), "503");
    assert_eq!(code(&client.says("MAIL FROM:a@b.fr").await), "501");
    assert_eq!(code(&client.says("MAIL FROM:<a@b.fr> AUTH=x").await), "555");
    assert_eq!(code(&client.says("VRFY news").await), "502");
    assert_eq!(code(&client.says("STARTTLS").await), "500");
    assert_eq!(code(&client.says("NOOP").await), "250");
    // Not UTF-8, and 600 octets without a line break.
    client.send(b"\xff\xfe\xfd\r\n").await;
    assert_eq!(code(&client.reply().await), "500");
    client.send(&[b'A'; 600]).await;
    assert_eq!(code(&client.says("").await), "500");
    assert_eq!(code(&client.says("MAIL FROM:<a@b.fr>").await), "250");
    assert_eq!(code(&client.says("MAIL FROM:<a@b.fr>").await), "503");
    assert_eq!(code(&client.says("RSET").await), "250");
    assert_eq!(
        code(&client.says("RCPT TO:<news@shop.example>").await),
        "503"
    );
    assert!(sink.mails().is_empty());
}

#[tokio::test]
async fn a_client_that_keeps_sending_garbage_is_disconnected() {
    let (port, _) = listener(settings()).await;
    let mut client = Client::connect(port).await;
    for _ in 0..settings().max_errors {
        assert_eq!(code(&client.says("GARBAGE").await), "500");
    }
    let bye = client.reply().await;
    assert!(bye.starts_with("421"), "{bye}");
    assert_eq!(client.reply().await, "", "closed");
}

#[tokio::test]
async fn an_oversized_message_is_refused_with_552_and_the_session_goes_on() {
    let (port, sink) = listener(settings()).await;
    let mut client = Client::connect(port).await;
    client.says("EHLO client.test").await;
    let announced = client.says("MAIL FROM:<a@b.fr> SIZE=5000").await;
    assert!(announced.starts_with("552 5.3.4"), "{announced}");
    assert_eq!(code(&client.says("MAIL FROM:<a@b.fr>").await), "250");
    client.says(&format!("RCPT TO:<{MAILBOX}>")).await;
    assert_eq!(code(&client.says("DATA").await), "354");
    let line = format!("{}\r\n", "x".repeat(900));
    for _ in 0..10 {
        client.send(line.as_bytes()).await;
    }
    client.send(b".\r\n").await;
    let refused = client.reply().await;
    assert!(refused.starts_with("552 5.3.4"), "{refused}");
    assert!(sink.mails().is_empty());

    // The next mail of the same session is taken.
    client.says("MAIL FROM:<a@b.fr>").await;
    client.says(&format!("RCPT TO:<{MAILBOX}>")).await;
    client.says("DATA").await;
    client.send(b"Subject: small\r\n\r\nok\r\n.\r\n").await;
    assert_eq!(code(&client.reply().await), "250");
    assert_eq!(sink.mails().len(), 1);
}

#[tokio::test]
async fn a_message_line_over_1000_octets_is_refused() {
    let (port, sink) = listener(settings()).await;
    let mut client = Client::connect(port).await;
    client.start_mail().await;
    client
        .send(format!("{}\r\n.\r\n", "y".repeat(1200)).as_bytes())
        .await;
    assert_eq!(code(&client.reply().await), "500");
    assert!(sink.mails().is_empty());
}

#[tokio::test]
async fn too_many_recipients_are_refused_with_452() {
    let (port, _) = listener(settings()).await;
    let mut client = Client::connect(port).await;
    client.says("EHLO client.test").await;
    client.says("MAIL FROM:<a@b.fr>").await;
    for _ in 0..settings().max_recipients {
        assert_eq!(
            code(&client.says(&format!("RCPT TO:<{MAILBOX}>")).await),
            "250"
        );
    }
    assert_eq!(
        code(&client.says(&format!("RCPT TO:<{MAILBOX}>")).await),
        "452"
    );
}

#[tokio::test]
async fn a_client_gone_mid_data_leaves_nothing_and_the_listener_serves_the_next() {
    let (port, sink) = listener(settings()).await;
    let mut client = Client::connect(port).await;
    client.start_mail().await;
    client.send(b"Subject: cut\r\n\r\nhalf a mess").await;
    drop(client);

    let mut next = Client::connect(port).await;
    next.start_mail().await;
    // Broken MIME and a header that is not UTF-8: the listener hands the bytes on.
    next.send(b"Subject: \xe9t\xe9\r\nContent-Type: multipart/mixed; boundary=\"never\"\r\n\r\n--nev\r\n.\r\n")
        .await;
    assert_eq!(code(&next.reply().await), "250");
    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "only the finished mail");
    assert!(mails[0].data.starts_with(b"Subject: \xe9t\xe9\r\n"));
}

#[tokio::test]
async fn a_mail_the_sink_cannot_store_or_read_is_not_acknowledged() {
    let (port, sink) = listener(settings()).await;
    let mut client = Client::connect(port).await;
    *sink.refuse.lock().unwrap() = Some(MailRefused::NotStored);
    client.start_mail().await;
    client.send(b"Subject: a\r\n\r\nx\r\n.\r\n").await;
    let later = client.reply().await;
    assert!(later.starts_with("451 4.3.0"), "{later}");
    *sink.refuse.lock().unwrap() = Some(MailRefused::Unreadable(
        "the message has no `From` address\r\n250 injected".into(),
    ));
    client.says("MAIL FROM:<a@b.fr>").await;
    client.says(&format!("RCPT TO:<{MAILBOX}>")).await;
    client.says("DATA").await;
    client.send(b"Subject: a\r\n\r\nx\r\n.\r\n").await;
    let never = client.reply().await;
    assert!(never.starts_with("554 5.6.0 the message has no"), "{never}");
    assert!(
        !never.contains('\n'),
        "one line, whatever the reason says: {never}"
    );
    assert_eq!(code(&client.says("NOOP").await), "250");
}

#[tokio::test]
async fn a_silent_client_is_told_421_and_disconnected() {
    let (port, _) = listener(ListenerSettings {
        command_timeout: Duration::from_millis(200),
        ..settings()
    })
    .await;
    let mut client = Client::connect(port).await;
    let bye = client.reply().await;
    assert!(bye.starts_with("421 4.4.2"), "{bye}");
    assert_eq!(client.reply().await, "", "closed");
}
