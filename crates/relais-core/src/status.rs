//! The status of a message, and the one rule for changing it: status only moves forward.
//!
//! Receipts arrive late, twice, and out of order (a provider's `sent` webhook can overtake
//! its `delivered` webhook; an SMSC retries a DLR). So a status update is not "set", it is
//! [`advance`]: the engine offers the incoming status and keeps the current one unless the
//! incoming one says more.
//!
//! The rule is a total order (see [`MessageStatus::rank`]) and [`advance`] keeps the
//! higher of the two. Because "keep the maximum" does not depend on the order in which
//! updates come, the final status of a message does not depend on the order in which its
//! receipts arrive. The order is:
//!
//! ```text
//! accepted < held < scheduled < queued < sending < sent
//!          < canceled < expired < failed < rejected < undelivered
//!          < delivered < read
//! ```
//!
//! Choices made for conflicting receipts:
//! - Evidence that the person got the message (`delivered`, `read`) beats every failure:
//!   an SMSC may report `undelivered`/`expired` and later deliver on its own retry; the
//!   handset's receipt is the fact. A failure never overwrites `delivered` or `read`.
//! - Among failures, the most specific statement from the network wins: `undelivered`
//!   (the network tried and could not reach the handset) over `rejected` (the provider
//!   refused it) over `failed` (an error somewhere) over `expired` (validity ran out) over
//!   `canceled` (our own decision).
//! - Progress statuses (`queued` … `sent`) arriving after a failure are stale and ignored.
//! - `canceled` is a command, not a receipt: it applies only while the message has not
//!   started sending (`accepted`, `scheduled`, `queued`). Once sending, it is too late.
//! - `held` is set only when a message is accepted, by the content checks
//!   (`crate::content_check`): it waits for a reviewer, who releases it (on to `queued` or
//!   `scheduled`) or rejects it (`rejected`). No receipt ever comes for it.
//! - A retry does not move the status back: a message being retried stays `sending`; the
//!   attempts are events, not statuses.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The status of a message, exactly as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    Accepted,
    Held,
    Scheduled,
    Queued,
    Sending,
    Sent,
    Delivered,
    Read,
    Undelivered,
    Failed,
    Rejected,
    Expired,
    Canceled,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 13] = [
        MessageStatus::Accepted,
        MessageStatus::Held,
        MessageStatus::Scheduled,
        MessageStatus::Queued,
        MessageStatus::Sending,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Read,
        MessageStatus::Undelivered,
        MessageStatus::Failed,
        MessageStatus::Rejected,
        MessageStatus::Expired,
        MessageStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Accepted => "accepted",
            MessageStatus::Held => "held",
            MessageStatus::Scheduled => "scheduled",
            MessageStatus::Queued => "queued",
            MessageStatus::Sending => "sending",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
            MessageStatus::Undelivered => "undelivered",
            MessageStatus::Failed => "failed",
            MessageStatus::Rejected => "rejected",
            MessageStatus::Expired => "expired",
            MessageStatus::Canceled => "canceled",
        }
    }

    /// Position in the total order that [`advance`] follows; higher says more.
    pub fn rank(self) -> u8 {
        match self {
            MessageStatus::Accepted => 0,
            MessageStatus::Held => 1,
            MessageStatus::Scheduled => 2,
            MessageStatus::Queued => 3,
            MessageStatus::Sending => 4,
            MessageStatus::Sent => 5,
            MessageStatus::Canceled => 6,
            MessageStatus::Expired => 7,
            MessageStatus::Failed => 8,
            MessageStatus::Rejected => 9,
            MessageStatus::Undelivered => 10,
            MessageStatus::Delivered => 11,
            MessageStatus::Read => 12,
        }
    }

    /// The outcome is settled: no retry, no timer, fallback may move on (or finish).
    ///
    /// `delivered` is not final because `read` may still follow on channels with read
    /// receipts. A final failure can still be upgraded by a late `delivered`/`read`
    /// receipt (see the module documentation); that is a correction of the record, not
    /// new work.
    pub fn is_final(self) -> bool {
        matches!(self, MessageStatus::Read) || self.is_failure()
    }

    /// The person got the message.
    pub fn is_delivered(self) -> bool {
        matches!(self, MessageStatus::Delivered | MessageStatus::Read)
    }

    /// The message did not and will not reach the person on this attempt.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            MessageStatus::Undelivered
                | MessageStatus::Failed
                | MessageStatus::Rejected
                | MessageStatus::Expired
                | MessageStatus::Canceled
        )
    }

    /// A user may still cancel: nothing has been handed to a provider yet.
    pub fn is_cancelable(self) -> bool {
        matches!(
            self,
            MessageStatus::Accepted
                | MessageStatus::Held
                | MessageStatus::Scheduled
                | MessageStatus::Queued
        )
    }
}

/// The status after `incoming` is offered to a message in status `current`, or `None`
/// when the incoming status is stale, a duplicate, or too late, and must be ignored.
pub fn advance(current: MessageStatus, incoming: MessageStatus) -> Option<MessageStatus> {
    if incoming == MessageStatus::Canceled && !current.is_cancelable() {
        return None;
    }
    (incoming.rank() > current.rank()).then_some(incoming)
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown message status `{0}`; expected one of accepted, held, scheduled, queued, sending, sent, delivered, read, undelivered, failed, rejected, expired, canceled"
)]
pub struct UnknownMessageStatus(pub String);

impl FromStr for MessageStatus {
    type Err = UnknownMessageStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessageStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownMessageStatus(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::MessageStatus::*;
    use super::*;
    use proptest::prelude::*;

    fn apply_all(start: MessageStatus, updates: &[MessageStatus]) -> MessageStatus {
        updates.iter().fold(start, |current, &incoming| {
            advance(current, incoming).unwrap_or(current)
        })
    }

    #[test]
    fn serde_names_are_the_api_names() {
        for status in MessageStatus::ALL {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(
                serde_json::from_str::<MessageStatus>(&json).unwrap(),
                status
            );
            assert_eq!(status.as_str().parse::<MessageStatus>().unwrap(), status);
        }
        assert!("Delivered".parse::<MessageStatus>().is_err());
    }

    #[test]
    fn the_normal_path_moves_forward() {
        assert_eq!(advance(Accepted, Queued), Some(Queued));
        assert_eq!(advance(Queued, Sending), Some(Sending));
        assert_eq!(advance(Sending, Sent), Some(Sent));
        assert_eq!(advance(Sent, Delivered), Some(Delivered));
        assert_eq!(advance(Delivered, Read), Some(Read));
    }

    #[test]
    fn a_late_sent_never_overwrites_delivered() {
        assert_eq!(advance(Delivered, Sent), None);
        assert_eq!(advance(Read, Delivered), None);
        assert_eq!(
            advance(Delivered, Delivered),
            None,
            "a duplicate receipt is ignored"
        );
    }

    #[test]
    fn read_may_skip_delivered() {
        // Some channels only report `read`; it implies delivery.
        assert_eq!(advance(Sent, Read), Some(Read));
    }

    #[test]
    fn a_failure_never_overwrites_a_delivery() {
        for failure in [Undelivered, Failed, Rejected, Expired, Canceled] {
            assert_eq!(advance(Delivered, failure), None, "{failure}");
            assert_eq!(advance(Read, failure), None, "{failure}");
        }
    }

    #[test]
    fn a_late_delivery_corrects_a_failure() {
        assert_eq!(advance(Undelivered, Delivered), Some(Delivered));
        assert_eq!(advance(Expired, Delivered), Some(Delivered));
        assert_eq!(advance(Failed, Read), Some(Read));
    }

    #[test]
    fn stale_progress_after_a_failure_is_ignored() {
        assert_eq!(advance(Undelivered, Sent), None);
        assert_eq!(advance(Failed, Queued), None);
    }

    #[test]
    fn the_most_specific_failure_wins() {
        assert_eq!(advance(Expired, Undelivered), Some(Undelivered));
        assert_eq!(advance(Undelivered, Expired), None);
        assert_eq!(advance(Failed, Rejected), Some(Rejected));
    }

    #[test]
    fn cancel_only_applies_before_sending() {
        assert_eq!(advance(Scheduled, Canceled), Some(Canceled));
        assert_eq!(advance(Queued, Canceled), Some(Canceled));
        assert_eq!(advance(Sending, Canceled), None);
        assert_eq!(advance(Sent, Canceled), None);
    }

    #[test]
    fn a_held_message_is_released_rejected_or_canceled_never_sent_as_it_is() {
        assert_eq!(advance(Accepted, Held), Some(Held));
        assert_eq!(advance(Held, Queued), Some(Queued));
        assert_eq!(advance(Held, Scheduled), Some(Scheduled));
        assert_eq!(advance(Held, Rejected), Some(Rejected));
        assert_eq!(advance(Held, Canceled), Some(Canceled));
        assert_eq!(
            advance(Queued, Held),
            None,
            "a message is held only when accepted"
        );
        assert!(!Held.is_final());
    }

    #[test]
    fn a_retry_does_not_move_status_back() {
        assert_eq!(advance(Sending, Queued), None);
        assert_eq!(advance(Sending, Scheduled), None);
    }

    #[test]
    fn finality() {
        let finals: Vec<_> = MessageStatus::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .collect();
        assert_eq!(
            finals,
            vec![Read, Undelivered, Failed, Rejected, Expired, Canceled]
        );
        assert!(!Delivered.is_final());
        assert!(Delivered.is_delivered() && Read.is_delivered() && !Sent.is_delivered());
    }

    fn any_status() -> impl Strategy<Value = MessageStatus> {
        proptest::sample::select(MessageStatus::ALL.to_vec())
    }

    fn any_receipt() -> impl Strategy<Value = MessageStatus> {
        // Everything but `canceled`, which is a user's command and not a receipt.
        proptest::sample::select(
            MessageStatus::ALL
                .into_iter()
                .filter(|s| *s != Canceled)
                .collect::<Vec<_>>(),
        )
    }

    proptest! {
        #[test]
        fn the_final_status_does_not_depend_on_receipt_order(
            receipts in proptest::collection::vec(any_receipt(), 0..12),
            seed in any::<u64>(),
        ) {
            let mut shuffled = receipts.clone();
            // A deterministic shuffle driven by the generated seed.
            let mut state = seed;
            for i in (1..shuffled.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let j = (state >> 33) as usize % (i + 1);
                shuffled.swap(i, j);
            }
            prop_assert_eq!(apply_all(Accepted, &receipts), apply_all(Accepted, &shuffled));
        }

        #[test]
        fn status_never_moves_backward(current in any_status(), incoming in any_status()) {
            if let Some(next) = advance(current, incoming) {
                prop_assert!(next.rank() > current.rank());
                prop_assert_eq!(next, incoming);
            }
        }

        #[test]
        fn once_delivered_always_delivered(updates in proptest::collection::vec(any_status(), 0..12)) {
            let end = apply_all(Delivered, &updates);
            prop_assert!(end.is_delivered());
        }
    }
}
