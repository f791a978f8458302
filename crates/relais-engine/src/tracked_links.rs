//! Tracked links at work: the accept path rewrites the URLs of a message to short links
//! on the server's public base ([`LinkTracking::rewrite`]), and `GET /l/{code}` records a
//! click and answers the URL to redirect to ([`follow`]).
//!
//! The link rows are written before the message's own transaction: a link whose message
//! was then refused by the store is never shown to anyone (the code was in no sent text),
//! while a message stored without its links would send short links that resolve to
//! nothing. A click is not a status: the message keeps its status (it never goes
//! backwards) and shows a `clicked` event among its events ([`with_clicks`]).

use jiff::Timestamp;
use relais_core::content::Content;
use relais_core::tracked_link::{LinkCode, PublicBase, is_preview_fetcher, rewrite_content};
use relais_store::{LinkStore, MessageEvent, NewTrackedLink, RecordedClick, StoreError};

/// Link tracking as the server is configured: on when it has a public base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTracking {
    base: PublicBase,
}

impl LinkTracking {
    pub fn new(base: PublicBase) -> LinkTracking {
        LinkTracking { base }
    }

    pub fn base(&self) -> &PublicBase {
        &self.base
    }

    /// Rewrites the URLs of `content` (a message of `tenant` with id `message_id`) to short
    /// links; the rows to store for them.
    pub fn rewrite(
        &self,
        content: &mut Content,
        tenant: &str,
        message_id: &str,
        now: Timestamp,
    ) -> Vec<NewTrackedLink> {
        let mut rng = rand::thread_rng();
        rewrite_content(content, &self.base, || LinkCode::generate(&mut rng))
            .into_iter()
            .map(|link| NewTrackedLink {
                code: link.code.as_str().to_owned(),
                tenant_id: tenant.to_owned(),
                message_id: message_id.to_owned(),
                url: link.url,
                field: link.field,
                created_at: now,
            })
            .collect()
    }
}

/// Follows a short link: the click recorded (with the message's channel and the browser's
/// user agent) and the URL to redirect to; `None`, with nothing recorded, for a code
/// Relais did not issue. A messaging app fetching the link's preview is redirected
/// without a click being recorded.
pub async fn follow(
    store: &dyn LinkStore,
    raw_code: &str,
    user_agent: Option<&str>,
    now: Timestamp,
) -> Result<Option<RecordedClick>, StoreError> {
    let Some(code) = LinkCode::parse(raw_code) else {
        return Ok(None);
    };
    // A user agent is a header anyone writes: kept to a sensible length.
    let user_agent = user_agent.map(|ua| truncate(ua, MAX_USER_AGENT_BYTES));
    if user_agent.is_some_and(is_preview_fetcher) {
        return store.resolve_link(code.as_str()).await;
    }
    let click = store.record_click(code.as_str(), now, user_agent).await?;
    if let Some(click) = &click {
        metrics::counter!("relais_link_clicks_total", "channel" => click.channel.clone())
            .increment(1);
    }
    Ok(click)
}

/// The link `raw_code` names, without recording a click: for a `HEAD` request, which
/// link checkers and mail scanners send, never a person's browser.
pub async fn peek(
    store: &dyn LinkStore,
    raw_code: &str,
) -> Result<Option<RecordedClick>, StoreError> {
    match LinkCode::parse(raw_code) {
        Some(code) => store.resolve_link(code.as_str()).await,
        None => Ok(None),
    }
}

/// Browsers send 100 to 300 bytes; 512 keeps every real one whole.
const MAX_USER_AGENT_BYTES: usize = 512;

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The message's events with one `clicked` event per click, in time order (a click at
/// the same instant as a status event comes after it).
pub async fn with_clicks(
    store: &dyn LinkStore,
    tenant: &str,
    message_id: &str,
    events: Vec<MessageEvent>,
) -> Result<Vec<EventOrClick>, StoreError> {
    let clicks = store.clicks_of_message(tenant, message_id).await?;
    let mut all: Vec<EventOrClick> = events.into_iter().map(EventOrClick::Event).collect();
    all.extend(clicks.into_iter().map(|c| {
        EventOrClick::Click(Click {
            at: c.at,
            channel: c.channel,
            url: c.url,
        })
    }));
    // Stable: status events keep their order, each click goes after what came before it.
    all.sort_by_key(EventOrClick::at);
    Ok(all)
}

/// An entry of a message's life as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum EventOrClick {
    Event(MessageEvent),
    Click(Click),
}

impl EventOrClick {
    pub fn at(&self) -> Timestamp {
        match self {
            EventOrClick::Event(e) => e.at,
            EventOrClick::Click(c) => c.at,
        }
    }
}

/// A click on one of the message's links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Click {
    pub at: Timestamp,
    pub channel: String,
    pub url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewritten_message_gets_one_row_per_link_on_the_public_base() {
        let tracking = LinkTracking::new(PublicBase::parse("https://r.example").unwrap());
        let mut content =
            Content::text("Soldes : https://shop.example/soldes et https://shop.example/");
        let rows = tracking.rewrite(&mut content, "t", "m", Timestamp::UNIX_EPOCH);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].url, "https://shop.example/soldes");
        let text = serde_json::to_value(&content).unwrap()["text"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            text,
            format!(
                "Soldes : https://r.example/l/{} et https://r.example/l/{}",
                rows[0].code, rows[1].code
            )
        );
        assert_ne!(rows[0].code, rows[1].code);
    }

    #[test]
    fn a_long_user_agent_is_cut_on_a_character_boundary() {
        let ua = "é".repeat(400);
        let cut = truncate(&ua, MAX_USER_AGENT_BYTES);
        assert!(cut.len() <= MAX_USER_AGENT_BYTES);
        assert!(ua.starts_with(cut));
    }
}
