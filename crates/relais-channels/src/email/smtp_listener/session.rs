//! One client's SMTP conversation: a greeting, then one answer per command line, in
//! order, until `QUIT`, a disconnection, a timeout or too many errors.

use super::line::{Line, content, read_line};
use super::{ArrivedMail, ListenerSettings, MailRefused, MailSink};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// The longest command line, with its CRLF (RFC 5321 4.5.3.1.4).
const COMMAND_LINE: usize = 512;

/// The longest text line within `DATA`, with its CRLF (RFC 5321 4.5.3.1.6).
const TEXT_LINE: usize = 1000;

/// A mail being given: from `MAIL` to the end of `DATA`, or `RSET`.
struct Transaction {
    reverse_path: String,
    /// The distinct recipients taken.
    recipients: Vec<String>,
    /// `RCPT` commands taken, a recipient named twice counted twice.
    taken: usize,
}

/// What the session does after a command.
enum Next {
    Go,
    Close,
}

/// How a `DATA` section ended.
enum Data {
    Complete(Vec<u8>),
    TooLarge,
    LineTooLong,
    /// The client disconnected or fell silent: the session ends.
    Gone,
}

struct Session<'a, W> {
    settings: &'a ListenerSettings,
    sink: &'a dyn MailSink,
    writer: W,
    greeted: bool,
    transaction: Option<Transaction>,
    errors: usize,
}

/// Serves one client until the conversation ends.
pub(super) async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    settings: &ListenerSettings,
    sink: &dyn MailSink,
) -> std::io::Result<()> {
    let (reader, writer) = tokio::io::split(stream);
    let mut reader = BufReader::new(reader);
    let mut session = Session {
        settings,
        sink,
        writer,
        greeted: false,
        transaction: None,
        errors: 0,
    };
    session
        .answer(&format!("220 {} ESMTP Relais", settings.hostname))
        .await?;
    let mut line = Vec::with_capacity(COMMAND_LINE);
    loop {
        let read = tokio::time::timeout(
            settings.command_timeout,
            read_line(&mut reader, COMMAND_LINE, &mut line),
        )
        .await;
        let next = match read {
            Err(_) => return session.timed_out().await,
            Ok(read) => match read? {
                Line::Closed => return Ok(()),
                Line::TooLong => {
                    session
                        .error("500 5.5.2 line too long: a command is at most 512 octets")
                        .await?
                }
                Line::Complete => {
                    let text = String::from_utf8_lossy(content(&line)).into_owned();
                    session.command(&text, &mut reader).await?
                }
            },
        };
        if let Next::Close = next {
            return Ok(());
        }
    }
}

impl<W: AsyncWrite + Unpin> Session<'_, W> {
    async fn answer(&mut self, reply: &str) -> std::io::Result<()> {
        self.writer.write_all(reply.as_bytes()).await?;
        self.writer.write_all(b"\r\n").await
    }

    async fn ok(&mut self, reply: &str) -> std::io::Result<Next> {
        self.answer(reply).await?;
        Ok(Next::Go)
    }

    /// Answers a bad command; past `max_errors` of them, says goodbye.
    async fn error(&mut self, reply: &str) -> std::io::Result<Next> {
        self.answer(reply).await?;
        self.errors += 1;
        if self.errors >= self.settings.max_errors {
            self.answer("421 4.7.0 too many errors, closing the connection")
                .await?;
            return Ok(Next::Close);
        }
        Ok(Next::Go)
    }

    async fn timed_out(&mut self) -> std::io::Result<()> {
        self.answer("421 4.4.2 timeout, closing the connection")
            .await
    }

    async fn command<R: tokio::io::AsyncBufRead + Unpin>(
        &mut self,
        text: &str,
        reader: &mut R,
    ) -> std::io::Result<Next> {
        let (verb, argument) = match text.split_once(' ') {
            Some((verb, argument)) => (verb, argument.trim()),
            None => (text.trim(), ""),
        };
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" | "HELO" if argument.is_empty() => {
                self.error("501 5.5.4 say who you are: EHLO your.domain")
                    .await
            }
            "EHLO" => {
                self.greeted = true;
                self.transaction = None;
                let reply = format!(
                    "250-{} greets {argument}\r\n250-SIZE {}\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES",
                    self.settings.hostname, self.settings.max_message_bytes
                );
                self.ok(&reply).await
            }
            "HELO" => {
                self.greeted = true;
                self.transaction = None;
                let reply = format!("250 {}", self.settings.hostname);
                self.ok(&reply).await
            }
            "MAIL" => self.mail(argument).await,
            "RCPT" => self.rcpt(argument).await,
            "DATA" => self.data(reader).await,
            "RSET" => {
                self.transaction = None;
                self.ok("250 2.0.0 reset").await
            }
            "NOOP" => self.ok("250 2.0.0 ok").await,
            "QUIT" => {
                self.answer("221 2.0.0 bye").await?;
                Ok(Next::Close)
            }
            "VRFY" | "EXPN" => self.ok("502 5.5.1 addresses are not verified here").await,
            _ => self.error("500 5.5.2 command not recognized").await,
        }
    }

    async fn mail(&mut self, argument: &str) -> std::io::Result<Next> {
        if !self.greeted {
            return self.error("503 5.5.1 say EHLO first").await;
        }
        if self.transaction.is_some() {
            return self
                .error("503 5.5.1 a mail is already being given (RSET to start over)")
                .await;
        }
        let Some((reverse_path, parameters)) = path_after(argument, "FROM:") else {
            return self.error("501 5.5.4 syntax: MAIL FROM:<address>").await;
        };
        for parameter in parameters.split_whitespace() {
            let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
            match name.to_ascii_uppercase().as_str() {
                "SIZE" => match value.parse::<u64>() {
                    Ok(size) if size > self.settings.max_message_bytes as u64 => {
                        let reply = format!(
                            "552 5.3.4 the message is larger than the {} octets taken here",
                            self.settings.max_message_bytes
                        );
                        return self.ok(&reply).await;
                    }
                    Ok(_) => {}
                    Err(_) => return self.error("501 5.5.4 SIZE must be a number").await,
                },
                "BODY" => {}
                _ => return self.error("555 5.5.4 parameter not recognized").await,
            }
        }
        self.transaction = Some(Transaction {
            reverse_path,
            recipients: Vec::new(),
            taken: 0,
        });
        self.ok("250 2.1.0 sender ok").await
    }

    async fn rcpt(&mut self, argument: &str) -> std::io::Result<Next> {
        let Some(count) = self.transaction.as_ref().map(|t| t.taken) else {
            return self.error("503 5.5.1 say MAIL first").await;
        };
        let Some((recipient, _)) = path_after(argument, "TO:") else {
            return self.error("501 5.5.4 syntax: RCPT TO:<address>").await;
        };
        if count >= self.settings.max_recipients {
            return self.ok("452 4.5.3 too many recipients").await;
        }
        let recipient = recipient.to_ascii_lowercase();
        if recipient.is_empty() || !self.sink.takes(&recipient) {
            return self.ok("550 5.1.1 no such mailbox here").await;
        }
        if let Some(transaction) = &mut self.transaction {
            transaction.taken += 1;
            if !transaction.recipients.contains(&recipient) {
                transaction.recipients.push(recipient);
            }
        }
        self.ok("250 2.1.5 recipient ok").await
    }

    async fn data<R: tokio::io::AsyncBufRead + Unpin>(
        &mut self,
        reader: &mut R,
    ) -> std::io::Result<Next> {
        let Some(recipients) = self.transaction.as_ref().map(|t| t.recipients.len()) else {
            return self.error("503 5.5.1 say MAIL first").await;
        };
        if recipients == 0 {
            return self.error("554 5.5.1 no valid recipients").await;
        }
        self.answer("354 end data with <CR><LF>.<CR><LF>").await?;
        let data = read_data(reader, self.settings).await?;
        let Some(transaction) = self.transaction.take() else {
            return Ok(Next::Close);
        };
        let data = match data {
            Data::Gone => return Ok(Next::Close),
            Data::TooLarge => {
                let reply = format!(
                    "552 5.3.4 the message is larger than the {} octets taken here",
                    self.settings.max_message_bytes
                );
                return self.ok(&reply).await;
            }
            Data::LineTooLong => {
                return self
                    .ok("500 5.5.6 a line of the message is longer than 1000 octets")
                    .await;
            }
            Data::Complete(data) => data,
        };
        let mail = ArrivedMail {
            reverse_path: transaction.reverse_path,
            recipients: transaction.recipients,
            data,
        };
        match self.sink.deliver(mail).await {
            Ok(()) => self.ok("250 2.0.0 stored").await,
            Err(MailRefused::NotStored) => {
                self.ok("451 4.3.0 the mail could not be stored now, try again later")
                    .await
            }
            Err(MailRefused::Unreadable(reason)) => {
                let reason: String = reason
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .take(400)
                    .collect();
                self.ok(&format!("554 5.6.0 {reason}")).await
            }
        }
    }
}

/// The text of a `DATA` section up to the line holding a single `.`, dot-unstuffed
/// (RFC 5321 4.5.2), its lines ending in CRLF.
async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    settings: &ListenerSettings,
) -> std::io::Result<Data> {
    let mut data = Vec::new();
    let mut line = Vec::with_capacity(TEXT_LINE);
    let (mut too_large, mut too_long) = (false, false);
    loop {
        let read = tokio::time::timeout(
            settings.command_timeout,
            read_line(reader, TEXT_LINE, &mut line),
        )
        .await;
        match read {
            // Silent in the middle of a message: nothing of it is kept.
            Err(_) | Ok(Ok(Line::Closed)) => return Ok(Data::Gone),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Line::TooLong)) => too_long = true,
            Ok(Ok(Line::Complete)) => {
                let text = content(&line);
                if text == b"." {
                    break;
                }
                let text = text.strip_prefix(b".").unwrap_or(text);
                if data.len() + text.len() + 2 > settings.max_message_bytes {
                    // Read to its end, so that the client hears the answer; kept no more.
                    too_large = true;
                    data = Vec::new();
                }
                if !too_large {
                    data.extend_from_slice(text);
                    data.extend_from_slice(b"\r\n");
                }
            }
        }
    }
    Ok(if too_large {
        Data::TooLarge
    } else if too_long {
        Data::LineTooLong
    } else {
        Data::Complete(data)
    })
}

/// The address in `FROM:<address> params` (or `TO:`), and what follows it; the angle
/// brackets are required, a source route (`<@relay:user@domain>`) is dropped.
fn path_after<'a>(argument: &'a str, keyword: &str) -> Option<(String, &'a str)> {
    let head = argument.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = argument.get(keyword.len()..)?.trim_start();
    let rest = rest.strip_prefix('<')?;
    let (path, parameters) = rest.split_once('>')?;
    let address = match path.split_once(':') {
        Some((route, address)) if route.starts_with('@') => address,
        _ => path,
    };
    Some((address.trim().to_owned(), parameters.trim()))
}

#[cfg(test)]
mod tests {
    use super::path_after;

    #[test]
    fn paths_are_read_with_their_brackets_and_parameters() {
        assert_eq!(
            path_after("FROM:<a@b.fr> SIZE=10", "FROM:"),
            Some(("a@b.fr".into(), "SIZE=10"))
        );
        assert_eq!(path_after("from: <>", "FROM:"), Some((String::new(), "")));
        assert_eq!(
            path_after("TO:<@relay.example:c@d.fr>", "TO:"),
            Some(("c@d.fr".into(), ""))
        );
        assert_eq!(path_after("TO:c@d.fr", "TO:"), None);
        assert_eq!(path_after("FROM<a@b>", "FROM:"), None);
        assert_eq!(path_after("é", "FROM:"), None);
    }
}
