//! What the audit log records: who did what to which resource. The actions are stable
//! codes (`contact.read`, `key.create`): a compliance officer's saved query and an
//! exported CSV from last year must still mean the same thing, so a code is never renamed
//! or reused, only added.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Declares the actions once: each variant with its code, the list of all of them, and
/// the code as text (what the store, the API and the CSV carry).
macro_rules! audit_actions {
    ($($variant:ident => $code:literal,)+) => {
        /// One kind of audited act.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditAction {
            $($variant,)+
        }

        impl AuditAction {
            pub const ALL: &[AuditAction] = &[$(AuditAction::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(AuditAction::$variant => $code,)+
                }
            }
        }
    };
}

audit_actions! {
    ContactCreate => "contact.create",
    ContactList => "contact.list",
    ContactRead => "contact.read",
    ContactUpdate => "contact.update",
    ContactDelete => "contact.delete",
    ContactMerge => "contact.merge",
    ContactExport => "contact.export",
    ContactErase => "contact.erase",
    ContactImport => "contact.import",
    IdentityAdd => "identity.add",
    IdentityRemove => "identity.remove",
    ConsentRead => "consent.read",
    ConsentChange => "consent.change",
    ConversationRead => "conversation.read",
    TenantCreate => "tenant.create",
    KeyCreate => "key.create",
    AgentCreate => "agent.create",
    AgentUpdate => "agent.update",
    AgentDelete => "agent.delete",
    TeamChange => "team.change",
    SettingsChange => "settings.change",
    ChannelChange => "channel.change",
    WebhookChange => "webhook.change",
    CredentialsIssue => "credentials.issue",
    AuditRead => "audit.read",
    SenderChange => "sender.change",
    MessageReview => "message.review",
}

impl Serialize for AuditAction {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AuditAction {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        AuditAction::parse(&code)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown audit action `{code}`")))
    }
}

impl AuditAction {
    /// The action a code names; `None` for a code Relais never wrote.
    pub fn parse(code: &str) -> Option<AuditAction> {
        AuditAction::ALL
            .iter()
            .copied()
            .find(|a| a.as_str() == code)
    }

    /// Whether the act only read personal data (as opposed to changing something).
    pub fn is_read(self) -> bool {
        matches!(
            self,
            AuditAction::ContactList
                | AuditAction::ContactRead
                | AuditAction::ContactExport
                | AuditAction::ConsentRead
                | AuditAction::ConversationRead
                | AuditAction::AuditRead
        )
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// An API key (an integration, a script): the actor id is the key's id.
    Key,
    /// An agent logged in to the console: the actor id is the agent's id.
    Agent,
    /// The `relais` command run on the server's machine: the actor id is the OS user.
    Cli,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Key => "key",
            ActorKind::Agent => "agent",
            ActorKind::Cli => "cli",
        }
    }

    pub fn parse(text: &str) -> Option<ActorKind> {
        [ActorKind::Key, ActorKind::Agent, ActorKind::Cli]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_code_reads_back_as_the_same_action() {
        for &action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.as_str()), Some(action));
            let json = serde_json::to_string(&action).unwrap();
            assert_eq!(json, format!("\"{}\"", action.as_str()));
        }
        assert_eq!(AuditAction::parse("contact.steal"), None);
        assert_eq!(
            serde_json::from_str::<AuditAction>("\"contact.erase\"").unwrap(),
            AuditAction::ContactErase
        );
        assert!(serde_json::from_str::<AuditAction>("\"contact.steal\"").is_err());
    }

    #[test]
    fn action_codes_are_unique() {
        let mut codes: Vec<_> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), AuditAction::ALL.len());
    }

    #[test]
    fn actor_kinds_read_back() {
        for kind in [ActorKind::Key, ActorKind::Agent, ActorKind::Cli] {
            assert_eq!(ActorKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ActorKind::parse("robot"), None);
    }
}
