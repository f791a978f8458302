//! A minimal DNS TXT look-up over UDP (RFC 1035), for verifying senders' domains: one
//! question, recursion desired, the answer's TXT records read back. The resolver is the
//! server's configuration (`RELAIS_DNS_RESOLVER`), by default the first `nameserver` of
//! `/etc/resolv.conf` — the system's resolver. No TCP fallback: a truncated answer is an
//! error (a verification record fits in a UDP answer many times over).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// How long one try waits for the answer, and how many tries: 2 × 2 s, so that a
/// verification request answers within 5 s even with a resolver that is down.
const TRY_TIMEOUT: Duration = Duration::from_secs(2);
const TRIES: usize = 2;

const TYPE_TXT: u16 = 16;
const CLASS_IN: u16 = 1;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("`{0}` is not a domain name")]
    BadName(String),
    #[error("the DNS resolver {0} did not answer")]
    Timeout(SocketAddr),
    #[error("the DNS resolver {resolver} failed: {detail}")]
    Failed {
        resolver: SocketAddr,
        detail: String,
    },
}

/// Where TXT records are looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolver {
    pub addr: SocketAddr,
}

impl Resolver {
    pub fn new(addr: SocketAddr) -> Resolver {
        Resolver { addr }
    }

    /// `1.1.1.1`, `1.1.1.1:53` or `[2606:4700::1111]:53`; port 53 when none is given.
    pub fn parse(raw: &str) -> Option<Resolver> {
        let raw = raw.trim();
        raw.parse::<SocketAddr>()
            .ok()
            .or_else(|| raw.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
            .map(Resolver::new)
    }

    /// The system's resolver: the first `nameserver` of `/etc/resolv.conf`, else
    /// 127.0.0.1:53.
    pub fn system() -> Resolver {
        std::fs::read_to_string("/etc/resolv.conf")
            .ok()
            .and_then(|conf| {
                conf.lines().find_map(|line| {
                    let mut words = line.split_whitespace();
                    (words.next() == Some("nameserver"))
                        .then(|| words.next().and_then(Resolver::parse))
                        .flatten()
                })
            })
            .unwrap_or(Resolver::new(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                53,
            )))
    }

    /// The TXT records of `name`, each one string (its character-strings joined); none
    /// when the name does not exist.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
        let id: u16 = rand::random();
        let query = query(id, name)?;
        let bind: SocketAddr = if self.addr.is_ipv4() {
            "0.0.0.0:0".parse().unwrap_or(self.addr)
        } else {
            "[::]:0".parse().unwrap_or(self.addr)
        };
        let failed = |detail: String| DnsError::Failed {
            resolver: self.addr,
            detail,
        };
        let socket = tokio::net::UdpSocket::bind(bind)
            .await
            .map_err(|e| failed(e.to_string()))?;
        socket
            .connect(self.addr)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let mut buf = vec![0u8; 4096];
        for _ in 0..TRIES {
            socket
                .send(&query)
                .await
                .map_err(|e| failed(e.to_string()))?;
            loop {
                match tokio::time::timeout(TRY_TIMEOUT, socket.recv(&mut buf)).await {
                    Err(_) => break,
                    Ok(Err(e)) => return Err(failed(e.to_string())),
                    Ok(Ok(n)) => match parse_answer(id, &buf[..n]) {
                        // Another query's answer (a late one of an earlier try): wait on.
                        Answer::NotOurs => continue,
                        Answer::Records(records) => return Ok(records),
                        Answer::Error(detail) => return Err(failed(detail)),
                    },
                }
            }
        }
        Err(DnsError::Timeout(self.addr))
    }
}

/// A query for the TXT records of `name`.
fn query(id: u16, name: &str) -> Result<Vec<u8>, DnsError> {
    let bad = || DnsError::BadName(name.chars().take(255).collect());
    let name = name.trim_end_matches('.');
    if name.is_empty() || name.len() > 253 {
        return Err(bad());
    }
    let mut q = Vec::with_capacity(name.len() + 18);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00]); // recursion desired
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    for label in name.split('.') {
        let len = u8::try_from(label.len()).map_err(|_| bad())?;
        if len == 0 || len > 63 || !label.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad());
        }
        q.push(len);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&TYPE_TXT.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(q)
}

enum Answer {
    NotOurs,
    Records(Vec<String>),
    Error(String),
}

fn parse_answer(id: u16, msg: &[u8]) -> Answer {
    let u16_at =
        |at: usize| -> Option<u16> { Some(u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?])) };
    let Some(got) = u16_at(0) else {
        return Answer::NotOurs;
    };
    let Some(flags) = u16_at(2) else {
        return Answer::NotOurs;
    };
    if got != id || flags & 0x8000 == 0 {
        return Answer::NotOurs;
    }
    if flags & 0x0200 != 0 {
        return Answer::Error("the answer was truncated".into());
    }
    match flags & 0x000f {
        0 => {}
        // NXDOMAIN: no such name, so no records.
        3 => return Answer::Records(Vec::new()),
        code => return Answer::Error(format!("response code {code}")),
    }
    match read_records(msg) {
        Some(records) => Answer::Records(records),
        None => Answer::Error("the answer is malformed".into()),
    }
}

fn read_records(msg: &[u8]) -> Option<Vec<String>> {
    let u16_at =
        |at: usize| -> Option<u16> { Some(u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?])) };
    let questions = u16_at(4)?;
    let answers = u16_at(6)?;
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(msg, at)? + 4;
    }
    let mut records = Vec::new();
    for _ in 0..answers {
        at = skip_name(msg, at)?;
        let kind = u16_at(at)?;
        let length = usize::from(u16_at(at + 8)?);
        let data = msg.get(at + 10..at + 10 + length)?;
        at += 10 + length;
        if kind != TYPE_TXT {
            continue;
        }
        let mut text = Vec::new();
        let mut i = 0;
        while i < data.len() {
            let n = usize::from(data[i]);
            text.extend_from_slice(data.get(i + 1..i + 1 + n)?);
            i += 1 + n;
        }
        records.push(String::from_utf8_lossy(&text).into_owned());
    }
    Some(records)
}

/// The offset after the name at `at` (labels, ending with a zero or a pointer).
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)?;
        if len == 0 {
            return Some(at + 1);
        }
        if len & 0xc0 == 0xc0 {
            return Some(at + 2);
        }
        at += 1 + usize::from(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_names_the_txt_records_of_the_name() {
        let q = query(0x1234, "mabanque.fr.").unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..], b"\x08mabanque\x02fr\x00\x00\x10\x00\x01");
        assert!(query(1, "a..b").is_err());
        assert!(query(1, "a b.fr").is_err());
    }

    #[test]
    fn an_answer_gives_its_txt_records_and_a_missing_name_none() {
        let q = query(7, "mabanque.fr").unwrap();
        let mut answer = q.clone();
        answer[2] = 0x81;
        answer[3] = 0x80;
        answer[7] = 2;
        for text in [&["relais-verification=", "abc"][..], &["v=spf1 -all"][..]] {
            let data: Vec<u8> = text
                .iter()
                .flat_map(|s| std::iter::once(s.len() as u8).chain(s.bytes()))
                .collect();
            answer.extend_from_slice(&[0xc0, 0x0c, 0, 16, 0, 1, 0, 0, 0, 60]);
            answer.extend_from_slice(&(data.len() as u16).to_be_bytes());
            answer.extend_from_slice(&data);
        }
        match parse_answer(7, &answer) {
            Answer::Records(r) => assert_eq!(r, ["relais-verification=abc", "v=spf1 -all"]),
            _ => panic!("records expected"),
        }
        assert!(matches!(parse_answer(8, &answer), Answer::NotOurs));
        let mut missing = q;
        missing[2] = 0x81;
        missing[3] = 0x83;
        assert!(matches!(parse_answer(7, &missing), Answer::Records(r) if r.is_empty()));
        assert!(matches!(
            parse_answer(7, &answer[..answer.len() - 3]),
            Answer::Error(_)
        ));
    }

    #[test]
    fn resolvers_are_written_with_or_without_a_port() {
        assert_eq!(Resolver::parse("127.0.0.1").unwrap().addr.port(), 53);
        assert_eq!(Resolver::parse("127.0.0.1:5353").unwrap().addr.port(), 5353);
        assert!(Resolver::parse("dns.example").is_none());
    }
}
