//! What the audit log records: who did what to which resource. The actions are stable
//! codes (`contact.read`, `key.create`): a compliance officer's saved query and an
//! exported CSV from last year must still mean the same thing, so a code is never renamed
//! or reused, only added.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One kind of audited act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditAction {
    #[serde(rename = "contact.create")]
    ContactCreate,
    #[serde(rename = "contact.list")]
    ContactList,
    #[serde(rename = "contact.read")]
    ContactRead,
    #[serde(rename = "contact.update")]
    ContactUpdate,
    #[serde(rename = "contact.delete")]
    ContactDelete,
    #[serde(rename = "contact.merge")]
    ContactMerge,
    #[serde(rename = "contact.export")]
    ContactExport,
    #[serde(rename = "contact.erase")]
    ContactErase,
    #[serde(rename = "contact.import")]
    ContactImport,
    #[serde(rename = "identity.add")]
    IdentityAdd,
    #[serde(rename = "identity.remove")]
    IdentityRemove,
    #[serde(rename = "consent.read")]
    ConsentRead,
    #[serde(rename = "consent.change")]
    ConsentChange,
    #[serde(rename = "conversation.read")]
    ConversationRead,
    #[serde(rename = "tenant.create")]
    TenantCreate,
    #[serde(rename = "key.create")]
    KeyCreate,
    #[serde(rename = "agent.create")]
    AgentCreate,
    #[serde(rename = "agent.update")]
    AgentUpdate,
    #[serde(rename = "agent.delete")]
    AgentDelete,
    #[serde(rename = "team.change")]
    TeamChange,
    #[serde(rename = "settings.change")]
    SettingsChange,
    #[serde(rename = "channel.change")]
    ChannelChange,
    #[serde(rename = "webhook.change")]
    WebhookChange,
    #[serde(rename = "credentials.issue")]
    CredentialsIssue,
    #[serde(rename = "audit.read")]
    AuditRead,
    #[serde(rename = "sender.change")]
    SenderChange,
    #[serde(rename = "message.review")]
    MessageReview,
}

impl AuditAction {
    pub const ALL: [AuditAction; 27] = [
        AuditAction::ContactCreate,
        AuditAction::ContactList,
        AuditAction::ContactRead,
        AuditAction::ContactUpdate,
        AuditAction::ContactDelete,
        AuditAction::ContactMerge,
        AuditAction::ContactExport,
        AuditAction::ContactErase,
        AuditAction::ContactImport,
        AuditAction::IdentityAdd,
        AuditAction::IdentityRemove,
        AuditAction::ConsentRead,
        AuditAction::ConsentChange,
        AuditAction::ConversationRead,
        AuditAction::TenantCreate,
        AuditAction::KeyCreate,
        AuditAction::AgentCreate,
        AuditAction::AgentUpdate,
        AuditAction::AgentDelete,
        AuditAction::TeamChange,
        AuditAction::SettingsChange,
        AuditAction::ChannelChange,
        AuditAction::WebhookChange,
        AuditAction::CredentialsIssue,
        AuditAction::AuditRead,
        AuditAction::SenderChange,
        AuditAction::MessageReview,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::ContactCreate => "contact.create",
            AuditAction::ContactList => "contact.list",
            AuditAction::ContactRead => "contact.read",
            AuditAction::ContactUpdate => "contact.update",
            AuditAction::ContactDelete => "contact.delete",
            AuditAction::ContactMerge => "contact.merge",
            AuditAction::ContactExport => "contact.export",
            AuditAction::ContactErase => "contact.erase",
            AuditAction::ContactImport => "contact.import",
            AuditAction::IdentityAdd => "identity.add",
            AuditAction::IdentityRemove => "identity.remove",
            AuditAction::ConsentRead => "consent.read",
            AuditAction::ConsentChange => "consent.change",
            AuditAction::ConversationRead => "conversation.read",
            AuditAction::TenantCreate => "tenant.create",
            AuditAction::KeyCreate => "key.create",
            AuditAction::AgentCreate => "agent.create",
            AuditAction::AgentUpdate => "agent.update",
            AuditAction::AgentDelete => "agent.delete",
            AuditAction::TeamChange => "team.change",
            AuditAction::SettingsChange => "settings.change",
            AuditAction::ChannelChange => "channel.change",
            AuditAction::WebhookChange => "webhook.change",
            AuditAction::CredentialsIssue => "credentials.issue",
            AuditAction::AuditRead => "audit.read",
            AuditAction::SenderChange => "sender.change",
            AuditAction::MessageReview => "message.review",
        }
    }

    /// The action a code names; `None` for a code Relais never wrote.
    pub fn parse(code: &str) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|a| a.as_str() == code)
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
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.as_str()), Some(action));
            let json = serde_json::to_string(&action).unwrap();
            assert_eq!(json, format!("\"{}\"", action.as_str()));
        }
        assert_eq!(AuditAction::parse("contact.steal"), None);
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
