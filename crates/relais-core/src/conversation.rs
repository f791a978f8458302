//! The states of a conversation: the one thread a contact has with a tenant, across every
//! channel.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConversationState {
    /// A bot flow is answering.
    Bot,
    /// Waiting for an agent.
    Pending,
    /// An agent has it.
    Open,
    /// Done; the contact's next message (other than a keyword) opens it again.
    Resolved,
}

impl ConversationState {
    pub const ALL: [ConversationState; 4] = [
        ConversationState::Bot,
        ConversationState::Pending,
        ConversationState::Open,
        ConversationState::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConversationState::Bot => "bot",
            ConversationState::Pending => "pending",
            ConversationState::Open => "open",
            ConversationState::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Result<Self, UnknownConversationState> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownConversationState(s.to_owned()))
    }
}

impl fmt::Display for ConversationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown conversation state `{0}`; expected bot, pending, open or resolved")]
pub struct UnknownConversationState(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back_as_written() {
        for state in ConversationState::ALL {
            assert_eq!(ConversationState::parse(state.as_str()), Ok(state));
        }
        assert!(ConversationState::parse("closed").is_err());
    }
}
