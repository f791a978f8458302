//! The links of a text, found the way a phone finds them: with a scheme
//! (`https://ma-banque.fr/login`) or without (`ma-banque-securite.com/login`,
//! `www.example.fr`), each reduced to its host.
//!
//! A host is lowercased, its `xn--` labels decoded (RFC 3492), a user part dropped
//! (`https://mabanque.fr@evil.example/` goes to `evil.example`, as a browser does) and
//! its port dropped. Without a scheme, a word is a link only when its last label is a
//! two-letter country code, a common generic top-level domain or an `xn--` label, so that
//! `facture.pdf` or `M.Dupont` are not read as links.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The host of one link of a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Lowercased, `xn--` labels decoded to Unicode, no trailing dot.
    pub name: String,
    /// A label was written in punycode (`xn--`).
    pub punycode: bool,
    /// The host is an address, not a name (`http://192.0.2.7/`, `http://[2001:db8::1]/`).
    pub ip: Option<IpAddr>,
}

impl Host {
    /// Whether the host is `domain` or one of its subdomains.
    pub fn is_within(&self, domain: &str) -> bool {
        self.name == domain
            || (self.name.len() > domain.len()
                && self.name.ends_with(domain)
                && self.name.as_bytes()[self.name.len() - domain.len() - 1] == b'.')
    }

    /// The labels of the name, top-level domain last.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.name.split('.')
    }
}

/// Generic top-level domains a link without a scheme may end with (every two-letter
/// country code is taken too).
const BARE_TLDS: &[&str] = &[
    "com", "net", "org", "info", "biz", "xyz", "top", "online", "site", "app", "dev", "io", "shop",
    "store", "club", "live", "link", "click", "help", "support", "secure", "bank", "money", "pay",
    "services", "account", "login", "icu", "buzz", "cyou", "vip", "work", "world", "email", "tech",
    "cloud", "mobi", "pro", "name", "gov", "edu", "asia",
];

/// The hosts of the links in `text`, in order, each once.
pub fn link_hosts(text: &str) -> Vec<Host> {
    let mut hosts: Vec<Host> = Vec::new();
    for word in text.split(|c: char| c.is_whitespace() || "<>\"'`«»“”‘’()[]{}".contains(c))
    {
        let word = word.trim_end_matches(|c: char| ".,;:!?…".contains(c));
        if let Some(host) = host_of_word(word)
            && !hosts.contains(&host)
        {
            hosts.push(host);
        }
    }
    // `[` and `]` split words above: an IPv6 literal is looked for on its own.
    for (index, _) in text.match_indices("://[") {
        let rest = &text[index + 4..];
        if let Some(end) = rest.find(']')
            && let Ok(ip) = rest[..end].parse::<Ipv6Addr>()
        {
            let host = Host {
                name: format!("[{}]", &rest[..end]),
                punycode: false,
                ip: Some(IpAddr::V6(ip)),
            };
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
    }
    hosts
}

fn host_of_word(word: &str) -> Option<Host> {
    let lower = word.to_lowercase();
    let (schemed, rest) = match lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or("");
    if !schemed && authority.contains('@') {
        // An e-mail address, not a link.
        return None;
    }
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let name = authority.split(':').next().unwrap_or(authority);
    let name = name.trim_end_matches('.');
    if name.is_empty() {
        return None;
    }
    if let Some(ip) = ip_literal(name, schemed) {
        return Some(Host {
            name: name.to_owned(),
            punycode: false,
            ip: Some(ip),
        });
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|l| !valid_label(l)) {
        return None;
    }
    let tld = labels[labels.len() - 1];
    if !schemed {
        // The original spelling: a capitalised last label is prose (`M.Dupont`).
        let original_tld = word
            .split(['/', '?', '#'])
            .next()
            .and_then(|a| a.trim_end_matches('.').rsplit('.').next())
            .unwrap_or("");
        let known = tld.starts_with("xn--")
            || (tld.chars().count() == 2 && tld.chars().all(|c| c.is_ascii_alphabetic()))
            || BARE_TLDS.contains(&tld);
        if !known || original_tld.chars().any(char::is_uppercase) {
            return None;
        }
    }
    let mut punycode = false;
    let decoded: Vec<String> = labels
        .iter()
        .map(|label| match label.strip_prefix("xn--") {
            Some(encoded) => {
                punycode = true;
                decode_punycode(encoded)
                    .map(|l| l.to_lowercase())
                    .unwrap_or_else(|| (*label).to_owned())
            }
            None => (*label).to_owned(),
        })
        .collect();
    Some(Host {
        name: decoded.join("."),
        punycode,
        ip: None,
    })
}

/// Letters (of any script), digits and inner hyphens.
fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.chars().count() <= 63
        && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// The address a host is, when it is one. With a scheme a browser also takes a whole
/// number (`http://3232235777/`) or hexadecimal (`http://0xC0A80001/`) as IPv4.
fn ip_literal(name: &str, schemed: bool) -> Option<IpAddr> {
    if let Ok(v4) = name.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    if !schemed {
        return None;
    }
    let number = match name.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None if name.bytes().all(|b| b.is_ascii_digit()) => name.parse::<u32>().ok(),
        None => None,
    };
    number.map(|n| IpAddr::V4(Ipv4Addr::from(n)))
}

/// A punycode label (without `xn--`) decoded, per RFC 3492; `None` when it is not valid.
pub fn decode_punycode(input: &str) -> Option<String> {
    const BASE: u32 = 36;
    const TMIN: u32 = 1;
    const TMAX: u32 = 26;
    let (basic, extended) = match input.rfind('-') {
        Some(i) => (&input[..i], &input[i + 1..]),
        None => ("", input),
    };
    if !basic.is_ascii() {
        return None;
    }
    let mut output: Vec<char> = basic.chars().collect();
    let mut n: u32 = 128;
    let mut i: u32 = 0;
    let mut bias: u32 = 72;
    let mut bytes = extended.bytes().peekable();
    while bytes.peek().is_some() {
        let old_i = i;
        let mut w: u32 = 1;
        let mut k = BASE;
        loop {
            let byte = bytes.next()?;
            let digit = u32::from(match byte {
                b'a'..=b'z' => byte - b'a',
                b'A'..=b'Z' => byte - b'A',
                b'0'..=b'9' => byte - b'0' + 26,
                _ => return None,
            });
            i = i.checked_add(digit.checked_mul(w)?)?;
            let t = if k <= bias {
                TMIN
            } else if k >= bias + TMAX {
                TMAX
            } else {
                k - bias
            };
            if digit < t {
                break;
            }
            w = w.checked_mul(BASE - t)?;
            k += BASE;
        }
        let len = u32::try_from(output.len()).ok()? + 1;
        bias = adapt(i - old_i, len, old_i == 0);
        n = n.checked_add(i / len)?;
        i %= len;
        output.insert(i as usize, char::from_u32(n)?);
        i += 1;
    }
    Some(output.into_iter().collect())
}

fn adapt(delta: u32, points: u32, first: bool) -> u32 {
    const BASE: u32 = 36;
    let mut delta = if first { delta / 700 } else { delta / 2 };
    delta += delta / points;
    let mut k = 0;
    while delta > ((BASE - 1) * 26) / 2 {
        delta /= BASE - 1;
        k += BASE;
    }
    k + (BASE * delta) / (delta + 38)
}
