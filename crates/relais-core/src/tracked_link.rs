//! Tracked links: the URLs of an outbound message's content rewritten to short links on the
//! server's public base (`{base}/l/{code}`), each with a code of its own.
//!
//! Invariants:
//! - A code is [`LinkCode::LEN`] base62 characters drawn at random (about 71 bits): a code
//!   nobody was given cannot be guessed, so a forged link resolves to nothing and the
//!   redirect is never open (only URLs Relais stored are ever redirected to).
//! - Only the URLs a person follows are rewritten: the links inside texts and captions, and
//!   the `url` of URL buttons. A media file's `url` is fetched by the provider, never by
//!   the person, and stays as it is.
//! - Rewriting never lengthens a link much: `https://relais.example.com/l/` plus 12
//!   characters is about 42 characters, and on SMS the base should be short (a short
//!   domain), as `docs/links.md` says.

use crate::content::Content;
use rand::Rng;
use std::fmt;

/// The code of one tracked link.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LinkCode(String);

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl LinkCode {
    /// 12 characters of 62: 62^12 ≈ 3.2e21 codes, so that even a billion issued links
    /// leave a guess a chance under 1 in 3e12.
    pub const LEN: usize = 12;

    /// A new random code.
    pub fn generate(rng: &mut impl Rng) -> LinkCode {
        let code = (0..Self::LEN)
            .map(|_| BASE62[rng.gen_range(0..BASE62.len())] as char)
            .collect();
        LinkCode(code)
    }

    /// A code as it comes in a URL; `None` when it cannot be one Relais issued (wrong
    /// length or characters), so that such a request is answered without a look-up.
    pub fn parse(raw: &str) -> Option<LinkCode> {
        (raw.len() == Self::LEN && raw.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| LinkCode(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LinkCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where this server is reached from the Internet (`https://relais.example.com`), with no
/// trailing slash: the base of short links and of click-to-chat web pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicBase(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the public URL must be an http:// or https:// address with a host and no query, e.g. https://relais.example.com (got `{0}`)"
)]
pub struct BadPublicBase(String);

impl PublicBase {
    pub fn parse(raw: &str) -> Result<PublicBase, BadPublicBase> {
        let trimmed = raw.trim().trim_end_matches('/');
        let bad = || BadPublicBase(raw.to_owned());
        let rest = trimmed
            .strip_prefix("https://")
            .or_else(|| trimmed.strip_prefix("http://"))
            .ok_or_else(bad)?;
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty()
            || rest.contains(['?', '#'])
            || rest.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad());
        }
        Ok(PublicBase(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The short link of `code`.
    pub fn short_link(&self, code: &LinkCode) -> String {
        format!("{}/l/{}", self.0, code)
    }
}

/// One URL of a message replaced by a short link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    pub code: LinkCode,
    /// The URL the short link redirects to.
    pub url: String,
    /// Where it was in the content (`text`, `buttons[0].url`…).
    pub field: String,
}

/// Replaces the URLs a person follows in `content` with short links on `base`, drawing a
/// code from `next_code` for each; the replaced URLs with their codes, in content order.
/// A URL met twice gets two codes (each place is a link of its own).
pub fn rewrite_content(
    content: &mut Content,
    base: &PublicBase,
    mut next_code: impl FnMut() -> LinkCode,
) -> Vec<Rewritten> {
    let mut links = Vec::new();
    let _ = content.try_for_each_text_mut(|field, value| -> Result<(), ()> {
        if is_button_url(field) {
            if is_web_url(value) {
                let code = next_code();
                links.push(Rewritten {
                    url: std::mem::replace(value, base.short_link(&code)),
                    code,
                    field: field.to_owned(),
                });
            }
        } else if is_prose(field) {
            *value = rewrite_text(value, |url| {
                let code = next_code();
                let short = base.short_link(&code);
                links.push(Rewritten {
                    code,
                    url: url.to_owned(),
                    field: field.to_owned(),
                });
                short
            });
        }
        Ok(())
    });
    links
}

fn is_button_url(field: &str) -> bool {
    field.ends_with(".url") && field.contains("buttons[")
}

/// Text a person reads, where links may be written among words.
fn is_prose(field: &str) -> bool {
    field == "text" || field.ends_with(".text") || field.ends_with(".caption")
}

fn is_web_url(s: &str) -> bool {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// `text` with every http(s) URL replaced by what `replace` gives for it. A URL runs to
/// the next whitespace; punctuation that ends a sentence (`.`, `,`, `!`, `?`, `;`, `:`)
/// and an unbalanced closing bracket or quote are not part of it.
pub fn rewrite_text(text: &str, mut replace: impl FnMut(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = find_url_start(rest) {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '<' || c == '>')
            .unwrap_or(tail.len());
        let url = trim_trailing(&tail[..end]);
        if url.len() <= "https://".len() {
            // A scheme with nothing after it is no link.
            out.push_str(&tail[..url.len().max(1)]);
            rest = &tail[url.len().max(1)..];
            continue;
        }
        out.push_str(&replace(url));
        rest = &tail[url.len()..];
    }
    out.push_str(rest);
    out
}

fn find_url_start(s: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    let http = lower.find("http://");
    let https = lower.find("https://");
    match (http, https) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn trim_trailing(url: &str) -> &str {
    let mut url = url;
    loop {
        let Some(last) = url.chars().last() else {
            return url;
        };
        let unbalanced = |open: char, close: char| {
            last == close && url.matches(open).count() < url.matches(close).count()
        };
        if matches!(last, '.' | ',' | '!' | '?' | ';' | ':' | '\'' | '"')
            || unbalanced('(', ')')
            || unbalanced('[', ']')
            || unbalanced('{', '}')
        {
            url = &url[..url.len() - last.len_utf8()];
        } else {
            return url;
        }
    }
}

/// Whether a request for a short link comes from a messaging app fetching a preview of
/// it (WhatsApp, Telegram, Messenger, Viber… fetch every link of a message the moment it
/// arrives, before anyone taps it): such a fetch is redirected but is not a click.
pub fn is_preview_fetcher(user_agent: &str) -> bool {
    const FETCHERS: [&str; 11] = [
        "whatsapp",
        "facebookexternalhit",
        "facebookcatalog",
        "telegrambot",
        "viber",
        "slackbot",
        "twitterbot",
        "discordbot",
        "linkedinbot",
        "skypeuripreview",
        "google-pagerenderer",
    ];
    let lower = user_agent.to_ascii_lowercase();
    FETCHERS.iter().any(|f| lower.contains(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> impl FnMut() -> LinkCode {
        let mut n = 0;
        move || {
            n += 1;
            LinkCode(format!("code{n:08}"))
        }
    }

    fn base() -> PublicBase {
        PublicBase::parse("https://r.example/").unwrap()
    }

    #[test]
    fn codes_are_twelve_base62_characters_and_differ() {
        let mut rng = rand::thread_rng();
        let a = LinkCode::generate(&mut rng);
        let b = LinkCode::generate(&mut rng);
        assert_eq!(a.as_str().len(), 12);
        assert!(a.as_str().bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        assert_eq!(LinkCode::parse(a.as_str()), Some(a));
    }

    #[test]
    fn a_code_of_the_wrong_shape_is_refused_before_any_look_up() {
        assert_eq!(LinkCode::parse("short"), None);
        assert_eq!(LinkCode::parse("abcdefghijk/"), None);
        assert_eq!(LinkCode::parse("../../etc/pa"), None);
        assert_eq!(LinkCode::parse("abcdefghijklm"), None);
    }

    #[test]
    fn the_public_base_loses_its_trailing_slash_and_must_be_http() {
        assert_eq!(base().as_str(), "https://r.example");
        assert!(PublicBase::parse("ftp://x").is_err());
        assert!(PublicBase::parse("https://").is_err());
        assert!(PublicBase::parse("https://x/?a=1").is_err());
        assert_eq!(
            PublicBase::parse("http://127.0.0.1:8080/relais")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8080/relais"
        );
    }

    #[test]
    fn urls_in_text_are_replaced_without_the_sentences_punctuation() {
        let mut seen = Vec::new();
        let out = rewrite_text(
            "Sale! See https://shop.example/sale?x=1. Or (http://a.example/b) now",
            |url| {
                seen.push(url.to_owned());
                "<L>".into()
            },
        );
        assert_eq!(out, "Sale! See <L>. Or (<L>) now");
        assert_eq!(
            seen,
            ["https://shop.example/sale?x=1", "http://a.example/b"]
        );
    }

    #[test]
    fn a_url_with_balanced_brackets_keeps_them() {
        let out = rewrite_text("https://en.wikipedia.org/wiki/Lyon_(city)", |url| {
            format!("[{url}]")
        });
        assert_eq!(out, "[https://en.wikipedia.org/wiki/Lyon_(city)]");
    }

    #[test]
    fn messaging_apps_fetching_previews_are_told_from_people() {
        assert!(is_preview_fetcher("WhatsApp/2.23.20.0 A"));
        assert!(is_preview_fetcher("TelegramBot (like TwitterBot)"));
        assert!(is_preview_fetcher(
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"
        ));
        assert!(!is_preview_fetcher(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"
        ));
    }

    #[test]
    fn text_without_links_is_untouched() {
        assert_eq!(
            rewrite_text("Bonjour, à demain", |_| "x".into()),
            "Bonjour, à demain"
        );
        assert_eq!(
            rewrite_text("see https:// nothing", |_| "x".into()),
            "see https:// nothing"
        );
    }

    #[test]
    fn texts_and_url_buttons_are_rewritten_but_not_media() {
        let mut content: Content = serde_json::from_value(serde_json::json!({
            "media": {"url": "https://cdn.example/a.jpg", "mime_type": "image/jpeg", "caption": "Look https://shop.example/a"},
            "buttons": [{"type": "url", "title": "Buy", "url": "https://shop.example/buy"}]
        }))
        .unwrap();
        let links = rewrite_content(&mut content, &base(), counter());
        let json = serde_json::to_value(&content).unwrap();
        assert_eq!(json["media"]["url"], "https://cdn.example/a.jpg");
        assert_eq!(
            json["media"]["caption"],
            "Look https://r.example/l/code00000001"
        );
        assert_eq!(
            json["buttons"][0]["url"],
            "https://r.example/l/code00000002"
        );
        assert_eq!(
            links.iter().map(|l| l.url.as_str()).collect::<Vec<_>>(),
            ["https://shop.example/a", "https://shop.example/buy"]
        );
        assert_eq!(links[1].field, "buttons[0].url");
    }
}
