//! A content as an e-mail: its subject, a text part and an HTML part, both from the same
//! content, so that every mail reader shows the same message.
//!
//! - Text is escaped into HTML, line breaks kept (`<br>`).
//! - A link button is a link (`<a href>`); a call button a `tel:` link; a reply button,
//!   which an e-mail cannot send back, its title (the engine degrades them already).
//! - A card is a table cell with its image, title, text and buttons; a carousel a table
//!   of such cards, side by side.
//! - An image is `<img>` with its caption as `alt`; other media a link to it.
//! - A location is its name, address and a map link; a form its text form.
//! - The subject is the first line of the text (a card's or a form's title, a media's
//!   caption or file name), cut at [`SUBJECT_CHARS`] characters.
//!
//! A provider template cannot be sent by e-mail: a permanent `bad_content` error.

use crate::adapter::SendError;
use relais_core::content::{Body, Button, Card, Content, Media, MediaKind};

/// Characters of a subject: RFC 5322's recommended line length, less `Subject: `.
pub const SUBJECT_CHARS: usize = 68;

/// One content as an e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The e-mail for `content`.
pub fn render(content: &Content) -> Result<Rendered, SendError> {
    let (subject, text, html) = match &content.body {
        Body::Text(text) => (text.clone(), text.clone(), paragraph(text)),
        Body::Media(media) => {
            let subject = media
                .caption
                .clone()
                .or_else(|| media.filename.clone())
                .unwrap_or_default();
            (subject, media_text(media), media_html(media))
        }
        Body::Card(card) => (
            card.title.clone(),
            card_text(card),
            cards_html(std::slice::from_ref(card)),
        ),
        Body::Carousel(cards) => (
            cards.first().map(|c| c.title.clone()).unwrap_or_default(),
            cards.iter().map(card_text).collect::<Vec<_>>().join("\n\n"),
            cards_html(cards),
        ),
        Body::Location(location) => {
            let map = format!(
                "https://www.openstreetmap.org/?mlat={}&mlon={}",
                location.lat, location.lon
            );
            let lines: Vec<String> = [
                location.name.clone(),
                location.address.clone(),
                Some(map.clone()),
            ]
            .into_iter()
            .flatten()
            .collect();
            let subject = location.name.clone().unwrap_or_else(|| "Location".into());
            let mut html = String::new();
            for line in &lines[..lines.len() - 1] {
                html.push_str(&paragraph(line));
            }
            html.push_str(&format!(
                "<p><a href=\"{}\">{}</a></p>",
                attr(&map),
                escape(&map)
            ));
            (subject, lines.join("\n"), html)
        }
        Body::Form(form) => {
            let text = form.as_text();
            (form.title.clone(), text.clone(), paragraph(&text))
        }
        Body::Template(template) => {
            return Err(SendError::permanent(
                "bad_content",
                format!(
                    "provider template `{}` cannot be sent by e-mail; store it as a Relais template",
                    template.name
                ),
            ));
        }
    };
    let mut text = text;
    let mut html = html;
    if !content.buttons.is_empty() {
        text.push_str("\n\n");
        text.push_str(&buttons_text(&content.buttons));
        html.push_str(&buttons_html(&content.buttons));
    }
    Ok(Rendered {
        subject: subject_of(&subject),
        text,
        html: format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>\n{html}\n</body></html>\n"
        ),
    })
}

/// The first non-empty line, cut at [`SUBJECT_CHARS`] characters with `…`.
fn subject_of(source: &str) -> String {
    let line = source
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or_default();
    if line.chars().count() <= SUBJECT_CHARS {
        return line.to_owned();
    }
    let cut: String = line.chars().take(SUBJECT_CHARS - 1).collect();
    format!("{}…", cut.trim_end())
}

/// HTML text: `& < > " '` escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An attribute value: escaped, and only http(s), mailto and tel addresses (anything else,
/// such as `javascript:`, becomes `#`).
fn attr(url: &str) -> String {
    let lower = url.trim().to_ascii_lowercase();
    let safe = ["https://", "http://", "mailto:", "tel:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme));
    if safe { escape(url.trim()) } else { "#".into() }
}

fn paragraph(text: &str) -> String {
    format!("<p>{}</p>", escape(text).replace('\n', "<br>\n"))
}

fn media_text(media: &Media) -> String {
    match &media.caption {
        Some(caption) => format!("{caption}\n{}", media.url),
        None => media.url.clone(),
    }
}

fn media_html(media: &Media) -> String {
    let label = media
        .caption
        .as_deref()
        .or(media.filename.as_deref())
        .unwrap_or("");
    if media.kind() == MediaKind::Image {
        let img = format!(
            "<p><img src=\"{}\" alt=\"{}\" style=\"max-width:100%\"></p>",
            attr(&media.url),
            escape(label)
        );
        match &media.caption {
            Some(caption) => format!("{img}{}", paragraph(caption)),
            None => img,
        }
    } else {
        let name = media
            .filename
            .as_deref()
            .or(media.caption.as_deref())
            .unwrap_or(&media.url);
        format!(
            "<p><a href=\"{}\">{}</a></p>",
            attr(&media.url),
            escape(name)
        )
    }
}

fn card_text(card: &Card) -> String {
    let mut lines = vec![card.title.clone()];
    lines.extend(card.text.clone());
    if let Some(media) = &card.media {
        lines.push(media.url.clone());
    }
    if !card.buttons.is_empty() {
        lines.push(buttons_text(&card.buttons));
    }
    lines.join("\n")
}

fn cards_html(cards: &[Card]) -> String {
    let cells: String = cards
        .iter()
        .map(|card| {
            let image = card
                .media
                .as_ref()
                .map(|media| {
                    if media.kind() == MediaKind::Image {
                        format!(
                            "<img src=\"{}\" alt=\"{}\" style=\"max-width:100%\"><br>",
                            attr(&media.url),
                            escape(&card.title)
                        )
                    } else {
                        format!("<a href=\"{}\">{}</a><br>", attr(&media.url), escape(&media.url))
                    }
                })
                .unwrap_or_default();
            let text = card
                .text
                .as_deref()
                .map(|t| format!("<p>{}</p>", escape(t).replace('\n', "<br>\n")))
                .unwrap_or_default();
            format!(
                "<td style=\"vertical-align:top;padding:8px;border:1px solid #ddd\">{image}<strong>{}</strong>{text}{}</td>",
                escape(&card.title),
                buttons_html(&card.buttons)
            )
        })
        .collect();
    format!(
        "<table role=\"presentation\" style=\"border-collapse:collapse\"><tr>{cells}</tr></table>"
    )
}

fn buttons_text(buttons: &[Button]) -> String {
    buttons
        .iter()
        .map(|button| match button {
            Button::Url { title, url } => format!("{title}: {url}"),
            Button::Call { title, phone } => format!("{title}: {phone}"),
            Button::Reply { title, .. } => title.clone(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn buttons_html(buttons: &[Button]) -> String {
    if buttons.is_empty() {
        return String::new();
    }
    let links: Vec<String> = buttons
        .iter()
        .map(|button| match button {
            Button::Url { title, url } => {
                format!("<a href=\"{}\">{}</a>", attr(url), escape(title))
            }
            Button::Call { title, phone } => {
                format!(
                    "<a href=\"{}\">{}</a>",
                    attr(&format!("tel:{phone}")),
                    escape(title)
                )
            }
            Button::Reply { title, .. } => escape(title),
        })
        .collect();
    format!("<p>{}</p>", links.join(" | "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn content(value: serde_json::Value) -> Content {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn text_is_escaped_and_its_first_line_is_the_subject() {
        let r = render(&content(json!({"text": "Order <42> & co\nShipped today"}))).unwrap();
        assert_eq!(r.subject, "Order <42> & co");
        assert_eq!(r.text, "Order <42> & co\nShipped today");
        assert!(
            r.html
                .contains("<p>Order &lt;42&gt; &amp; co<br>\nShipped today</p>"),
            "{}",
            r.html
        );
    }

    #[test]
    fn buttons_become_links_and_unsafe_schemes_do_not() {
        // Built by hand: content from the API refuses such a link already.
        let r = render(&Content {
            body: Body::Text("Hi".into()),
            buttons: vec![
                Button::Url {
                    title: "Track".into(),
                    url: "https://ex.com/t?a=1&b=2".into(),
                },
                Button::Url {
                    title: "Bad".into(),
                    url: "javascript:alert(1)".into(),
                },
            ],
            quick_replies: Vec::new(),
        })
        .unwrap();
        assert!(
            r.html
                .contains("<a href=\"https://ex.com/t?a=1&amp;b=2\">Track</a>"),
            "{}",
            r.html
        );
        assert!(r.html.contains("<a href=\"#\">Bad</a>"), "{}", r.html);
        assert!(
            r.text.contains("Track: https://ex.com/t?a=1&b=2"),
            "{}",
            r.text
        );
    }

    #[test]
    fn a_carousel_is_a_table_of_cards_with_images() {
        let r = render(&content(json!({"carousel": [
            {"title": "Red shoes", "text": "39 €", "media": {"url": "https://ex.com/r.jpg", "mime_type": "image/jpeg"}},
            {"title": "Blue shoes", "buttons": [{"type": "url", "title": "Buy", "url": "https://ex.com/b"}]}]}))).unwrap();
        assert_eq!(r.subject, "Red shoes");
        assert_eq!(r.html.matches("<td").count(), 2, "{}", r.html);
        assert!(
            r.html
                .contains("<img src=\"https://ex.com/r.jpg\" alt=\"Red shoes\""),
            "{}",
            r.html
        );
        assert!(
            r.text.contains("Blue shoes\nBuy: https://ex.com/b"),
            "{}",
            r.text
        );
    }

    #[test]
    fn long_subjects_are_cut() {
        let r = render(&content(json!({"text": "x".repeat(200)}))).unwrap();
        assert_eq!(r.subject.chars().count(), SUBJECT_CHARS);
        assert!(r.subject.ends_with('…'));
    }
}
