//! A small SMTP server (RFC 5321) that takes the mail people write back to Relais, and the
//! bounces, and hands each accepted mail to a [`MailSink`]; it stores nothing itself.
//!
//! - [`line`]: lines read with a bound on their length, whatever the client sends;
//! - [`session`]: one client's conversation, command by command.
//!
//! What it speaks: `EHLO`/`HELO`, `MAIL FROM` (with `SIZE=` and `BODY=`), `RCPT TO`,
//! `DATA` (dot-unstuffed), `RSET`, `NOOP`, `QUIT`; `VRFY` and `EXPN` are refused (502),
//! anything else is unknown (500). No `STARTTLS`, no `AUTH`, no pipelining advertised:
//! it listens where a trusted mail server hands it mail (loopback, or behind your MX).
//!
//! Invariants:
//! - A mail is answered `250` only once the sink said it is stored; a sink that could not
//!   store it gets the client a `451` (it tries again later), a mail the sink cannot read
//!   a `554` with the reason.
//! - A recipient the sink does not take is refused at `RCPT` (`550 5.1.1`); a mail is
//!   handed to the sink with the recipients it took only.
//! - Memory per client is bounded: a command line is at most 512 octets and a text line
//!   1000 (RFC 5321 4.5.3.1.4 and .6), a message at most `max_message_bytes` (`552`
//!   beyond, read to its end and dropped), a transaction at most `max_recipients`.
//! - A client that says nothing for `command_timeout` is told `421` and disconnected; one
//!   that disconnects mid-`DATA` leaves nothing behind; one that keeps sending bad
//!   commands is disconnected after `max_errors`. Nothing a client sends panics.

mod line;
mod session;

use async_trait::async_trait;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// How the listener treats its clients.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    /// The name it greets with (`220 {hostname} ESMTP`).
    pub hostname: String,
    /// The largest message taken, in octets (advertised as `SIZE`).
    pub max_message_bytes: usize,
    /// Recipients per transaction; RFC 5321 4.5.3.1.8 asks that 100 be taken.
    pub max_recipients: usize,
    /// How long a client may stay silent, at a command or within `DATA`; RFC 5321
    /// 4.5.3.2.7 asks a server to wait 5 minutes.
    pub command_timeout: Duration,
    /// Bad commands a client may send before it is disconnected.
    pub max_errors: usize,
    /// Clients served at once; more are told `421` and disconnected.
    pub max_sessions: usize,
}

impl Default for ListenerSettings {
    fn default() -> Self {
        ListenerSettings {
            hostname: "relais".into(),
            // Ten times the relay hook's request limit: replies with a photo or two.
            max_message_bytes: 10 * 1024 * 1024,
            max_recipients: 100,
            command_timeout: Duration::from_secs(300),
            max_errors: 10,
            max_sessions: 100,
        }
    }
}

/// One mail the listener accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrivedMail {
    /// The `MAIL FROM` address; empty for a bounce (`MAIL FROM:<>`).
    pub reverse_path: String,
    /// The `RCPT TO` addresses the sink took, in lower case.
    pub recipients: Vec<String>,
    /// The message as the client sent it, dot-unstuffed, lines ending in CRLF.
    pub data: Vec<u8>,
}

/// Why the sink did not keep a mail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailRefused {
    /// It could not be stored now (the store is down): the client tries again later.
    #[error("the mail could not be stored now")]
    NotStored,
    /// It cannot be read, now or later.
    #[error("{0}")]
    Unreadable(String),
}

/// Where accepted mail goes.
#[async_trait]
pub trait MailSink: Send + Sync {
    /// Whether mail for `recipient` (in lower case) is taken here.
    fn takes(&self, recipient: &str) -> bool;
    /// Stores one mail; `Ok` only once it is durably stored.
    async fn deliver(&self, mail: ArrivedMail) -> Result<(), MailRefused>;
}

/// Serves SMTP clients on `listener` until `shutdown` completes; sessions under way are
/// left to finish on their own.
pub async fn serve(
    listener: TcpListener,
    settings: ListenerSettings,
    sink: Arc<dyn MailSink>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let settings = Arc::new(settings);
    let sessions = Arc::new(tokio::sync::Semaphore::new(settings.max_sessions));
    tokio::pin!(shutdown);
    loop {
        let (mut socket, peer) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // A client that went away before it was accepted, or no file
                    // descriptor left: the next accept may work.
                    tracing::warn!(error = %e, "SMTP listener: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = sessions.clone().try_acquire_owned() else {
            tokio::spawn(async move {
                let _ = socket
                    .write_all(b"421 4.3.2 too many connections, try again later\r\n")
                    .await;
            });
            continue;
        };
        let settings = settings.clone();
        let sink = sink.clone();
        tokio::spawn(async move {
            if let Err(e) = session::run(socket, &settings, sink.as_ref()).await {
                tracing::debug!(%peer, error = %e, "SMTP session ended by an I/O error");
            }
            drop(permit);
        });
    }
}
