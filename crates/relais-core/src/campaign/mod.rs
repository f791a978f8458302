//! Campaigns' pure rules: the label their messages carry, how recipients are split
//! between the variants of an A/B test and which variant wins, and when a recipient's
//! message goes (a daily send window, the hour they usually engage).

mod label;
pub mod split;
pub mod timing;

pub use label::*;

use std::fmt;

/// Where a campaign is in its life: created (`draft`), sending (`running`), stopped for
/// now (`paused`), done (`completed`), or stopped for good (`canceled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CampaignState {
    Draft,
    Running,
    Paused,
    Completed,
    Canceled,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown campaign state `{0}`")]
pub struct UnknownCampaignState(pub String);

impl CampaignState {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Draft => "draft",
            CampaignState::Running => "running",
            CampaignState::Paused => "paused",
            CampaignState::Completed => "completed",
            CampaignState::Canceled => "canceled",
        }
    }

    pub fn parse(raw: &str) -> Result<CampaignState, UnknownCampaignState> {
        Ok(match raw {
            "draft" => CampaignState::Draft,
            "running" => CampaignState::Running,
            "paused" => CampaignState::Paused,
            "completed" => CampaignState::Completed,
            "canceled" => CampaignState::Canceled,
            other => return Err(UnknownCampaignState(other.to_owned())),
        })
    }
}

impl fmt::Display for CampaignState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for CampaignState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The step a running campaign is at: sending to everyone (`send`), to an A/B test's
/// group (`test`), or the winner to the rest (`rest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CampaignPhase {
    Send,
    Test,
    Rest,
}

impl CampaignPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignPhase::Send => "send",
            CampaignPhase::Test => "test",
            CampaignPhase::Rest => "rest",
        }
    }

    pub fn parse(raw: &str) -> Option<CampaignPhase> {
        Some(match raw {
            "send" => CampaignPhase::Send,
            "test" => CampaignPhase::Test,
            "rest" => CampaignPhase::Rest,
            _ => return None,
        })
    }
}

impl serde::Serialize for CampaignPhase {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What became of one recipient of a started campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecipientState {
    /// Still to do.
    Pending,
    /// In the rest of an A/B test: waits for the winner.
    Waiting,
    /// Their message is stored.
    Enqueued,
    /// Not sent to, for a reason (consent, frequency cap, no address…).
    Skipped,
    /// The campaign was canceled before their turn.
    Canceled,
}

impl RecipientState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientState::Pending => "pending",
            RecipientState::Waiting => "waiting",
            RecipientState::Enqueued => "enqueued",
            RecipientState::Skipped => "skipped",
            RecipientState::Canceled => "canceled",
        }
    }

    pub fn parse(raw: &str) -> Option<RecipientState> {
        Some(match raw {
            "pending" => RecipientState::Pending,
            "waiting" => RecipientState::Waiting,
            "enqueued" => RecipientState::Enqueued,
            "skipped" => RecipientState::Skipped,
            "canceled" => RecipientState::Canceled,
            _ => return None,
        })
    }
}
