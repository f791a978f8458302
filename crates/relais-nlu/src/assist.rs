//! Generative answers grounded in the knowledge base, and agent assist (reply
//! suggestions, conversation summaries).
//!
//! The rule that matters: a customer never receives an invented or empty reply. The model
//! sees only the retrieved FAQ entries and must cite them as `[id]`; any doubt (nothing
//! retrieved, model error or timeout, empty answer, refusal, no citation, a citation of an
//! entry that was not retrieved) turns into a hand-over to a human with a fixed text.

use serde::{Deserialize, Serialize};

use crate::error::NluError;
use crate::kb::{KnowledgeBase, Retrieved};
use crate::language::{Language, detect_language};
use crate::llm::{ChatMessage, LlmClient};

/// How many FAQ entries are given to the model.
const RETRIEVED_ENTRIES: usize = 3;

/// What the model must answer when the entries do not contain the answer.
const NO_ANSWER_MARKER: &str = "NO_ANSWER";

/// Fixed hand-over texts, by language of the customer's question.
pub const HANDOVER_TEXT_EN: &str =
    "Thank you for your message. An agent will get back to you as soon as possible.";
pub const HANDOVER_TEXT_FR: &str =
    "Merci pour votre message. Un conseiller va vous répondre dans les meilleurs délais.";

/// The hand-over text for a language (French for French, English otherwise).
pub fn handover_text(language: Language) -> &'static str {
    match language {
        Language::Fr => HANDOVER_TEXT_FR,
        _ => HANDOVER_TEXT_EN,
    }
}

/// Why a question went to a human instead of being answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoverReason {
    NoRelevantEntry,
    ModelTimeout,
    ModelError,
    EmptyAnswer,
    ModelDeclined,
    MissingCitation,
    UnknownCitation,
}

/// A generated answer or a hand-over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The reply to send; the fixed hand-over text when `needs_human`.
    pub text: String,
    /// Ids of the FAQ entries the reply is based on (empty on hand-over).
    pub citations: Vec<String>,
    pub needs_human: bool,
    pub handover_reason: Option<HandoverReason>,
    /// Entries that were retrieved, for the agent console, even on hand-over.
    pub retrieved: Vec<String>,
}

/// Who wrote a message of the conversation given to agent assist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Speaker {
    Customer,
    Agent,
    Bot,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationMessage {
    pub speaker: Speaker,
    pub text: String,
}

fn handover(language: Language, reason: HandoverReason, retrieved: &[Retrieved]) -> Answer {
    Answer {
        text: handover_text(language).to_owned(),
        citations: Vec::new(),
        needs_human: true,
        handover_reason: Some(reason),
        retrieved: retrieved.iter().map(|hit| hit.entry.id.clone()).collect(),
    }
}

fn entries_block(retrieved: &[Retrieved]) -> String {
    retrieved
        .iter()
        .map(|hit| {
            format!(
                "[{}]\nQ: {}\nA: {}",
                hit.entry.id, hit.entry.question, hit.entry.answer
            )
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn grounding_instructions(language: Language) -> String {
    let reply_language = match language {
        Language::Unknown => "the customer's language".to_owned(),
        known => format!("the language with ISO code `{known}`"),
    };
    format!(
        "You are a customer-service assistant. Answer ONLY with facts from the FAQ entries \
         given below; never use other knowledge and never invent. Cite every entry you use \
         with its id in square brackets, e.g. [refund-delay]. Reply in {reply_language}, in at \
         most four sentences. If the entries do not answer the question, reply exactly \
         {NO_ANSWER_MARKER}."
    )
}

/// Ids written as `[id]` in the model's answer, in order of first appearance.
pub fn citations_in(text: &str) -> Vec<String> {
    let mut citations: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else { break };
        let id = after[..close].trim();
        // Several ids may share brackets: [a, b].
        for part in id.split(',') {
            let part = part.trim();
            if !part.is_empty() && !citations.iter().any(|known| known == part) {
                citations.push(part.to_owned());
            }
        }
        rest = &after[close + 1..];
    }
    citations
}

/// Checks a model reply against the retrieved entries and builds the answer.
fn grounded_answer(
    language: Language,
    reply: Result<String, NluError>,
    retrieved: &[Retrieved],
) -> Answer {
    let reply = match reply {
        Ok(reply) => reply,
        Err(NluError::LlmTimeout { .. }) => {
            return handover(language, HandoverReason::ModelTimeout, retrieved);
        }
        Err(NluError::LlmEmpty) => {
            return handover(language, HandoverReason::EmptyAnswer, retrieved);
        }
        Err(_) => return handover(language, HandoverReason::ModelError, retrieved),
    };
    if reply.trim().is_empty() {
        return handover(language, HandoverReason::EmptyAnswer, retrieved);
    }
    if reply.contains(NO_ANSWER_MARKER) {
        return handover(language, HandoverReason::ModelDeclined, retrieved);
    }
    let citations = citations_in(&reply);
    if citations.is_empty() {
        return handover(language, HandoverReason::MissingCitation, retrieved);
    }
    let all_known = citations
        .iter()
        .all(|cited| retrieved.iter().any(|hit| hit.entry.id == *cited));
    if !all_known {
        return handover(language, HandoverReason::UnknownCitation, retrieved);
    }
    Answer {
        text: reply,
        citations,
        needs_human: false,
        handover_reason: None,
        retrieved: retrieved.iter().map(|hit| hit.entry.id.clone()).collect(),
    }
}

/// Answers a customer's question from the knowledge base only, citing entries, or hands
/// over to a human (see the module documentation for when).
pub async fn answer(question: &str, kb: &KnowledgeBase, llm: &LlmClient) -> Answer {
    let language = detect_language(question);
    let retrieved = kb.search(question, RETRIEVED_ENTRIES);
    if retrieved.is_empty() {
        return handover(language, HandoverReason::NoRelevantEntry, &retrieved);
    }
    let messages = [
        ChatMessage::system(grounding_instructions(language)),
        ChatMessage::user(format!(
            "FAQ entries:\n\n{}\n\nCustomer question: {}",
            entries_block(&retrieved),
            question
        )),
    ];
    grounded_answer(language, llm.complete(&messages).await, &retrieved)
}

fn transcript(messages: &[ConversationMessage]) -> String {
    messages
        .iter()
        .map(|message| {
            let speaker = match message.speaker {
                Speaker::Customer => "Customer",
                Speaker::Agent => "Agent",
                Speaker::Bot => "Bot",
            };
            format!("{speaker}: {}", message.text)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Suggests the agent's next reply from the knowledge base, grounded the same way as
/// [`answer`]; the query is what the customer wrote since the agent last spoke.
pub async fn suggest_reply(
    messages: &[ConversationMessage],
    kb: &KnowledgeBase,
    llm: &LlmClient,
) -> Answer {
    let last_agent = messages
        .iter()
        .rposition(|message| message.speaker != Speaker::Customer);
    let pending: Vec<&str> = messages
        .iter()
        .skip(last_agent.map_or(0, |index| index + 1))
        .filter(|message| message.speaker == Speaker::Customer)
        .map(|message| message.text.as_str())
        .collect();
    let query = pending.join(" ");
    let language = detect_language(&query);
    let retrieved = kb.search(&query, RETRIEVED_ENTRIES);
    if retrieved.is_empty() {
        return handover(language, HandoverReason::NoRelevantEntry, &retrieved);
    }
    let prompt = [
        ChatMessage::system(format!(
            "{} You draft the agent's next message; the agent will review it.",
            grounding_instructions(language)
        )),
        ChatMessage::user(format!(
            "FAQ entries:\n\n{}\n\nConversation:\n{}\n\nDraft the agent's next message.",
            entries_block(&retrieved),
            transcript(messages)
        )),
    ];
    grounded_answer(language, llm.complete(&prompt).await, &retrieved)
}

/// Summarises a conversation for an agent taking it over (three short lines: request,
/// what was done, what is pending). Errors are returned as is: a summary is an aid for the
/// agent, not a reply to the customer.
pub async fn summarize(
    messages: &[ConversationMessage],
    llm: &LlmClient,
) -> Result<String, NluError> {
    if messages.is_empty() {
        return Err(NluError::Config("no messages to summarise".to_owned()));
    }
    let prompt = [
        ChatMessage::system(
            "Summarise this customer-service conversation for the agent who takes it over, \
             in the customer's language, in at most three short lines: the request, what was \
             already done, what is pending. Use only what the conversation says.",
        ),
        ChatMessage::user(transcript(messages)),
    ];
    llm.complete(&prompt).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations_are_parsed_from_brackets() {
        assert_eq!(
            citations_in("Refunds take 5 days [refund-delay]. See also [a, b] and [refund-delay]."),
            vec!["refund-delay", "a", "b"]
        );
        assert!(citations_in("no citation here").is_empty());
        assert!(citations_in("broken [bracket").is_empty());
    }
}
