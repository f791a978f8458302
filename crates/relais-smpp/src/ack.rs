//! Acknowledgements of `deliver_sm`: the SMSC gets `deliver_sm_resp` only once the
//! application has made the receipt or MO message durable.
//!
//! Every event born of `deliver_sm` carries an [`Ack`]. Confirming it makes the bind that
//! read the PDU(s) answer `ESME_ROK`; dropping it unconfirmed makes that bind answer
//! `ESME_RX_T_APPN`, which tells the SMSC to deliver the message again later. Either way the
//! answer is one message on the bind's unbounded channel (no task, no lock per
//! acknowledgement), so an application confirming a group after one commit pays little.
//!
//! Invariants: a PDU is answered at most once ([`PendingAcks`] forgets it when answered); an
//! acknowledgement for a bind that has since reconnected is ignored (the SMSC delivers the
//! unanswered PDU again on the new bind); a PDU left unanswered past the deadline is answered
//! `ESME_RX_T_APPN` by the bind, and a later confirmation of it is ignored.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusmpp::CommandStatus;
use tokio::sync::mpsc;

/// What an [`Ack`] tells its bind about one `deliver_sm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AckMsg {
    /// The bind session that read the PDU (a bind counts its sessions).
    pub epoch: u64,
    pub seq: u32,
    pub confirmed: bool,
}

/// The receiving end of a bind's acknowledgements lives in its task; this is the sending end
/// every [`Ack`] of that bind points to.
#[derive(Debug)]
pub(crate) struct AckSink {
    tx: mpsc::UnboundedSender<AckMsg>,
}

impl AckSink {
    pub(crate) fn new() -> (Arc<AckSink>, mpsc::UnboundedReceiver<AckMsg>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(AckSink { tx }), rx)
    }
}

#[derive(Debug)]
struct Token {
    sink: Arc<AckSink>,
    epoch: u64,
    seq: u32,
}

impl Token {
    fn answer(&self, confirmed: bool) {
        // The bind task is gone (client closed): the SMSC delivers again on the next bind.
        let _ = self.sink.tx.send(AckMsg {
            epoch: self.epoch,
            seq: self.seq,
            confirmed,
        });
    }
}

/// The acknowledgement of the `deliver_sm` PDU(s) an event was made of: one for a receipt or
/// a short MO message, one per part for a concatenated MO message.
///
/// Call [`Ack::confirm`] once the event is durable. Dropping it unconfirmed (the
/// application stops, its store fails) makes the SMSC deliver the event again.
#[must_use = "an Ack dropped unconfirmed makes the SMSC deliver the event again"]
pub struct Ack {
    tokens: Vec<Token>,
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ack")
            .field("pdus", &self.tokens.len())
            .finish()
    }
}

impl Ack {
    pub(crate) fn new(sink: Arc<AckSink>, epoch: u64, seq: u32) -> Ack {
        Ack {
            tokens: vec![Token { sink, epoch, seq }],
        }
    }

    /// An acknowledgement of nothing (for tests and events with no PDU behind them).
    pub fn none() -> Ack {
        Ack { tokens: Vec::new() }
    }

    /// Joins the PDUs of `others` to this acknowledgement (the parts of one MO message).
    pub(crate) fn join(mut self, others: impl IntoIterator<Item = Ack>) -> Ack {
        for mut other in others {
            self.tokens.append(&mut other.tokens);
        }
        self
    }

    /// Number of `deliver_sm` PDUs this acknowledges.
    pub fn pdus(&self) -> usize {
        self.tokens.len()
    }

    /// The event is durable: the SMSC gets `ESME_ROK` for each of its PDUs.
    pub fn confirm(mut self) {
        for t in self.tokens.drain(..) {
            t.answer(true);
        }
    }

    /// Confirms a group (what an application does after one commit).
    pub fn confirm_all(acks: impl IntoIterator<Item = Ack>) {
        for a in acks {
            a.confirm();
        }
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        for t in self.tokens.drain(..) {
            t.answer(false);
        }
    }
}

/// The `deliver_sm` PDUs of one bind session waiting for the application, with their
/// deadline.
#[derive(Debug)]
pub(crate) struct PendingAcks {
    epoch: u64,
    open: HashMap<u32, Instant>,
    /// Opening order = deadline order (one timeout for all); may hold answered entries,
    /// which `expire` skips.
    order: VecDeque<(u32, Instant)>,
    max: usize,
    timeout: Duration,
}

impl PendingAcks {
    pub(crate) fn new(epoch: u64, max: usize, timeout: Duration) -> Self {
        Self {
            epoch,
            open: HashMap::new(),
            order: VecDeque::new(),
            max: max.max(1),
            timeout,
        }
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.open.len()
    }

    /// No room for another: the caller answers the PDU `ESME_RX_T_APPN` at once.
    pub(crate) fn is_full(&self) -> bool {
        self.open.len() >= self.max
    }

    /// Starts waiting for the application's answer to PDU `seq`.
    pub(crate) fn open(&mut self, seq: u32, now: Instant) {
        self.open.insert(seq, now);
        self.order.push_back((seq, now));
        if self.order.len() > 2 * self.open.len() + 1024 {
            let open = &self.open;
            self.order.retain(|(s, at)| open.get(s) == Some(at));
        }
    }

    /// The status to answer for an acknowledgement, or `None` when it is not for a PDU this
    /// session still waits for (another session's, already answered, or past its deadline).
    pub(crate) fn settle(&mut self, msg: AckMsg) -> Option<CommandStatus> {
        if msg.epoch != self.epoch {
            return None;
        }
        self.open.remove(&msg.seq)?;
        Some(if msg.confirmed {
            CommandStatus::EsmeRok
        } else {
            CommandStatus::EsmeRxTAppn
        })
    }

    /// The PDUs whose deadline passed: the caller answers them `ESME_RX_T_APPN` before the
    /// SMSC gives up on them.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<u32> {
        let mut out = Vec::new();
        while let Some(&(seq, at)) = self.order.front() {
            if now.duration_since(at) < self.timeout {
                break;
            }
            self.order.pop_front();
            if self.open.get(&seq) == Some(&at) {
                self.open.remove(&seq);
                out.push(seq);
            }
        }
        out
    }

    /// Every PDU still waiting (the session is ending).
    pub(crate) fn drain(&mut self) -> Vec<u32> {
        self.order.clear();
        self.open.drain().map(|(s, _)| s).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(epoch: u64, seq: u32, confirmed: bool) -> AckMsg {
        AckMsg {
            epoch,
            seq,
            confirmed,
        }
    }

    #[test]
    fn a_confirmed_ack_answers_ok_and_a_dropped_one_asks_for_redelivery() {
        let (sink, mut rx) = AckSink::new();
        Ack::new(sink.clone(), 1, 7).confirm();
        drop(Ack::new(sink.clone(), 1, 8));
        assert_eq!(rx.try_recv().ok(), Some(msg(1, 7, true)));
        assert_eq!(rx.try_recv().ok(), Some(msg(1, 8, false)));
        assert!(rx.try_recv().is_err(), "each PDU answered once");
    }

    #[test]
    fn a_joined_ack_answers_every_part() {
        let (sink, mut rx) = AckSink::new();
        let a = Ack::new(sink.clone(), 1, 1).join([Ack::new(sink.clone(), 2, 5), Ack::none()]);
        assert_eq!(a.pdus(), 2);
        Ack::confirm_all([a]);
        assert_eq!(rx.try_recv().ok(), Some(msg(1, 1, true)));
        assert_eq!(rx.try_recv().ok(), Some(msg(2, 5, true)));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn pending_acks_answer_only_their_own_session_once() {
        let t0 = Instant::now();
        let mut p = PendingAcks::new(3, 10, Duration::from_secs(20));
        p.open(1, t0);
        p.open(2, t0);
        assert_eq!(p.settle(msg(2, 1, true)), None, "older session");
        assert_eq!(p.settle(msg(3, 1, true)), Some(CommandStatus::EsmeRok));
        assert_eq!(p.settle(msg(3, 1, true)), None, "answered already");
        assert_eq!(p.settle(msg(3, 2, false)), Some(CommandStatus::EsmeRxTAppn));
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn pending_acks_past_their_deadline_are_given_back_and_late_answers_ignored() {
        let t0 = Instant::now();
        let mut p = PendingAcks::new(1, 2, Duration::from_secs(20));
        p.open(1, t0);
        p.open(2, t0 + Duration::from_secs(5));
        assert!(p.is_full());
        assert!(p.expire(t0 + Duration::from_secs(19)).is_empty());
        assert_eq!(p.expire(t0 + Duration::from_secs(20)), vec![1]);
        assert_eq!(p.settle(msg(1, 1, true)), None);
        assert!(!p.is_full());
        assert_eq!(p.drain(), vec![2]);
    }
}
