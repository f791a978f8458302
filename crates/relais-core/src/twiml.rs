//! TwiML answers to an inbound message: `<Response>` holding `<Message>` elements, each a
//! reply to send. A message's text is its own text or its `<Body>`; `<Media>` gives a media
//! URL. Other verbs (`<Redirect>`…) and attributes are ignored. A document that is not
//! well-formed XML, or whose root is not `<Response>`, is refused whole: nothing is sent.

use quick_xml::Reader;
use quick_xml::events::Event;

/// One `<Message>` of a TwiML answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TwimlMessage {
    pub body: String,
    /// The `<Media>` URLs, in order.
    pub media: Vec<String>,
}

/// Why a TwiML answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwimlError {
    #[error("the answer is not well-formed XML: {0}")]
    NotXml(String),
    #[error("the root element is <{0}>, not <Response>")]
    WrongRoot(String),
}

/// Where the text being read goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sink {
    Nowhere,
    Body,
    Media,
}

/// The messages a TwiML answer asks to send; an empty answer asks for none.
pub fn parse(doc: &str) -> Result<Vec<TwimlMessage>, TwimlError> {
    if doc.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut reader = Reader::from_str(doc);
    let mut stack: Vec<String> = Vec::new();
    let mut messages: Vec<TwimlMessage> = Vec::new();
    let mut seen_root = false;
    let not_xml = |e: &dyn std::fmt::Display| TwimlError::NotXml(e.to_string());
    loop {
        let event = reader.read_event().map_err(|e| not_xml(&e))?;
        let target = match stack
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["Response", "Message"] | ["Response", "Message", "Body"] => Sink::Body,
            ["Response", "Message", "Media"] => Sink::Media,
            _ => Sink::Nowhere,
        };
        let text = match event {
            Event::Start(e) | Event::Empty(e) if stack.is_empty() && seen_root => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                return Err(TwimlError::NotXml(format!(
                    "a second root element <{name}>"
                )));
            }
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                open(&mut stack, &mut messages, &mut seen_root, &name)?;
                stack.push(name);
                if target == Sink::Body
                    && stack.last().is_some_and(|n| n == "Media")
                    && let Some(m) = messages.last_mut()
                {
                    m.media.push(String::new());
                }
                continue;
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                open(&mut stack, &mut messages, &mut seen_root, &name)?;
                continue;
            }
            Event::End(_) => {
                stack.pop();
                continue;
            }
            Event::Text(t) => t.decode().map_err(|e| not_xml(&e))?.into_owned(),
            Event::CData(t) => t.decode().map_err(|e| not_xml(&e))?.into_owned(),
            Event::GeneralRef(r) => match r.resolve_char_ref().map_err(|e| not_xml(&e))? {
                Some(c) => c.to_string(),
                None => {
                    let name = r.decode().map_err(|e| not_xml(&e))?;
                    match name.as_ref() {
                        "amp" => "&".to_owned(),
                        "lt" => "<".to_owned(),
                        "gt" => ">".to_owned(),
                        "quot" => "\"".to_owned(),
                        "apos" => "'".to_owned(),
                        other => {
                            return Err(TwimlError::NotXml(format!("unknown entity &{other};")));
                        }
                    }
                }
            },
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => continue,
        };
        if stack.is_empty() {
            if !text.trim().is_empty() {
                return Err(TwimlError::NotXml("text outside the root element".into()));
            }
            continue;
        }
        match (target, messages.last_mut()) {
            (Sink::Body, Some(m)) => m.body.push_str(&text),
            (Sink::Media, Some(m)) => {
                if let Some(url) = m.media.last_mut() {
                    url.push_str(&text);
                }
            }
            _ => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err(TwimlError::NotXml(format!("<{open}> is never closed")));
    }
    if !seen_root {
        return Err(TwimlError::NotXml("no root element".into()));
    }
    for m in &mut messages {
        m.body = m.body.trim().to_owned();
        m.media = m
            .media
            .iter()
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect();
    }
    messages.retain(|m| !m.body.is_empty() || !m.media.is_empty());
    Ok(messages)
}

/// An element opens (`<name>` or `<name/>`) with `stack` the elements around it.
fn open(
    stack: &mut [String],
    messages: &mut Vec<TwimlMessage>,
    seen_root: &mut bool,
    name: &str,
) -> Result<(), TwimlError> {
    if stack.is_empty() {
        if name != "Response" {
            return Err(TwimlError::WrongRoot(name.to_owned()));
        }
        *seen_root = true;
    } else if stack.len() == 1 && name == "Message" {
        messages.push(TwimlMessage::default());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodies(doc: &str) -> Result<Vec<String>, TwimlError> {
        parse(doc).map(|m| m.into_iter().map(|m| m.body).collect())
    }

    #[test]
    fn each_message_of_a_response_is_a_reply() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
            <Response>
              <Message>Merci &amp; à bientôt &#8364;</Message>
              <Message to="+33600000000"><Body>Deux</Body><Media>https://x/a.png</Media></Message>
              <Redirect>https://example.com/next</Redirect>
            </Response>"#;
        let messages = parse(doc);
        assert_eq!(
            messages,
            Ok(vec![
                TwimlMessage {
                    body: "Merci & à bientôt €".into(),
                    media: vec![]
                },
                TwimlMessage {
                    body: "Deux".into(),
                    media: vec!["https://x/a.png".into()]
                },
            ])
        );
    }

    #[test]
    fn an_empty_answer_or_response_sends_nothing() {
        assert_eq!(bodies(""), Ok(vec![]));
        assert_eq!(bodies("<Response/>"), Ok(vec![]));
        assert_eq!(bodies("<Response><Message/></Response>"), Ok(vec![]));
    }

    #[test]
    fn what_is_not_twiml_is_refused_whole() {
        assert!(matches!(
            bodies("<Response><Message>Oui</Response>"),
            Err(TwimlError::NotXml(_))
        ));
        assert!(matches!(
            bodies("<Response><Message>Oui</Message>"),
            Err(TwimlError::NotXml(_))
        ));
        assert!(matches!(bodies("Merci !"), Err(TwimlError::NotXml(_))));
        assert!(matches!(
            bodies("<Response/><Response/>"),
            Err(TwimlError::NotXml(_))
        ));
        assert_eq!(
            bodies("<html><body>Oui</body></html>"),
            Err(TwimlError::WrongRoot("html".into()))
        );
        assert!(matches!(
            bodies("<Response><Message>&bogus;</Message></Response>"),
            Err(TwimlError::NotXml(_))
        ));
    }
}
