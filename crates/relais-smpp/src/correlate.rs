//! Matches delivery receipts to the submits they are about.
//!
//! An SMSC may send a receipt before we have processed its `submit_sm_resp` (receipts on
//! another bind, or two tasks racing). Such a receipt is held, bounded in number and time,
//! and released as soon as the id becomes known. When the hold expires or the buffer is full
//! it is released uncorrelated (`reference: None`): never dropped.
//!
//! An id whose final receipt went out is kept a while longer (the last [`FINISHED_KEPT`] of
//! them): an SMSC delivers a receipt again when its `deliver_sm_resp` was lost or refused,
//! and that copy must be correlated too, not held and released uncorrelated. A receipt travels with
//! its acknowledgement (`A`, an [`crate::Ack`] in the client), so one held or released here
//! is answered to the SMSC only when the application confirms it.
//!
//! Ids are compared after normalisation (trimmed, lower case, leading zeros removed). Some
//! SMSCs write the id of the receipt in another base than the id of the `submit_sm_resp`
//! (Kannel's `msg-id-type`); that is configured with [`ReceiptIdBase`], never guessed: a
//! guess would match receipt `16` to the submit `10` (0x10) of another message.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::receipt::ReceiptState;

/// Which submitted part an SMSC message id stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRef {
    /// The application's reference given in `SubmitRequest::reference`.
    pub reference: Arc<str>,
    /// 1-based.
    pub index: u8,
    pub total: u8,
}

/// A delivery receipt as the application receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The SMSC message id (as in `submit_sm_resp`, if the SMSC is consistent).
    pub message_id: String,
    /// Set when the receipt was matched to a submit of this client.
    pub part: Option<PartRef>,
    pub state: ReceiptState,
    /// `err:` of the receipt text (network-specific error code), if any.
    pub error: Option<String>,
    /// Receipt sender (the handset address) and recipient (our source address).
    pub source: String,
    pub destination: String,
    /// The receipt text as received.
    pub text: String,
}

/// Ids whose final receipt went out that are still remembered, for receipts delivered
/// again (a bind lost before its answer): 100 000 covers minutes of traffic at hundreds of
/// receipts per second, for about 15 MB.
pub const FINISHED_KEPT: usize = 100_000;

/// Receipts matched to submits; `A` travels with each receipt (its acknowledgement).
#[derive(Debug)]
pub struct Correlator<A = ()> {
    known: HashMap<String, (PartRef, u64)>,
    known_order: VecDeque<(String, u64)>,
    /// Known ids whose final receipt went out, oldest first.
    finished: VecDeque<(String, u64)>,
    early: HashMap<String, (Receipt, A, u64)>,
    early_order: VecDeque<(String, u64, Instant)>,
    counter: u64,
    max_known: usize,
    max_early: usize,
    hold: Duration,
    receipt_ids: ReceiptIdBase,
}

/// Normal form of a message id.
pub fn normalise(id: &str) -> String {
    let t = id.trim().to_ascii_lowercase();
    let s = t.trim_start_matches('0');
    if s.is_empty() && !t.is_empty() {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// How the id in a receipt relates to the id the SMSC gave in `submit_sm_resp`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptIdBase {
    /// The same string (after normalisation). Most SMSCs.
    #[default]
    Same,
    /// `submit_sm_resp` gives hex, the receipt gives the same number in decimal.
    HexSubmitDecimalReceipt,
    /// `submit_sm_resp` gives decimal, the receipt gives the same number in hex.
    DecimalSubmitHexReceipt,
}

impl ReceiptIdBase {
    /// The receipt's id written the way the `submit_sm_resp` wrote it. An id that does not
    /// parse in the configured base is kept as it is (and will then only match verbatim).
    fn submit_form(self, receipt_id: &str) -> String {
        let n = normalise(receipt_id);
        let converted = match self {
            ReceiptIdBase::Same => None,
            ReceiptIdBase::HexSubmitDecimalReceipt => {
                n.parse::<u128>().ok().map(|v| format!("{v:x}"))
            }
            ReceiptIdBase::DecimalSubmitHexReceipt => {
                u128::from_str_radix(&n, 16).ok().map(|v| v.to_string())
            }
        };
        converted.unwrap_or(n)
    }
}

impl<A> Correlator<A> {
    pub fn new(max_known: usize, max_early: usize, hold: Duration) -> Self {
        Self::with_receipt_ids(max_known, max_early, hold, ReceiptIdBase::Same)
    }

    pub fn with_receipt_ids(
        max_known: usize,
        max_early: usize,
        hold: Duration,
        receipt_ids: ReceiptIdBase,
    ) -> Self {
        Self {
            known: HashMap::new(),
            known_order: VecDeque::new(),
            finished: VecDeque::new(),
            early: HashMap::new(),
            early_order: VecDeque::new(),
            counter: 0,
            max_known: max_known.max(1),
            max_early: max_early.max(1),
            hold,
            receipt_ids,
        }
    }

    /// Records that `id` was given to `part`. Returns receipts that were waiting for it.
    pub fn on_submitted(&mut self, id: &str, part: PartRef) -> Vec<(Receipt, A)> {
        let mut released = Vec::new();
        let key = normalise(id);
        if let Some((mut r, a, _)) = self.early.remove(&key) {
            r.part = Some(part.clone());
            released.push((r, a));
        }
        self.counter += 1;
        let n = self.counter;
        self.known.insert(key.clone(), (part, n));
        self.known_order.push_back((key.clone(), n));
        if released.iter().any(|(r, _)| r.state.is_final()) {
            self.finish(key, n);
        }
        while self.known.len() > self.max_known {
            let Some((k, n)) = self.known_order.pop_front() else {
                break;
            };
            if self.known.get(&k).is_some_and(|(_, m)| *m == n) {
                self.known.remove(&k);
            }
        }
        if self.known_order.len() > 2 * self.known.len() + 1024 {
            let known = &self.known;
            self.known_order
                .retain(|(k, n)| known.get(k).is_some_and(|(_, m)| m == n));
        }
        released
    }

    /// A receipt arrived. Returns what to emit now: the receipt itself when its id is known
    /// (or when it cannot be held), plus any older held receipt pushed out of a full buffer.
    pub fn on_receipt(&mut self, mut r: Receipt, ack: A, now: Instant) -> Vec<(Receipt, A)> {
        let key = self.receipt_ids.submit_form(&r.message_id);
        if let Some((part, n)) = self.known.get(&key) {
            r.part = Some(part.clone());
            let n = *n;
            if r.state.is_final() {
                self.finish(key, n);
            }
            return vec![(r, ack)];
        }
        let mut out = Vec::new();
        self.counter += 1;
        if let Some((old, old_ack, _)) = self.early.insert(key.clone(), (r, ack, self.counter)) {
            out.push((old, old_ack)); // a second receipt for the same unknown id: emit the first
        }
        self.early_order.push_back((key, self.counter, now));
        while self.early.len() > self.max_early {
            match self.early_order.pop_front() {
                Some((k, n, _)) => {
                    if self.early.get(&k).is_some_and(|(_, _, m)| *m == n)
                        && let Some((r, a, _)) = self.early.remove(&k)
                    {
                        out.push((r, a));
                    }
                }
                None => break,
            }
        }
        out
    }

    /// The final receipt of `key` went out: it is forgotten once [`FINISHED_KEPT`] others
    /// have finished after it.
    fn finish(&mut self, key: String, n: u64) {
        self.finished.push_back((key, n));
        while self.finished.len() > FINISHED_KEPT.min(self.max_known) {
            let Some((k, m)) = self.finished.pop_front() else {
                break;
            };
            if self.known.get(&k).is_some_and(|(_, o)| *o == m) {
                self.known.remove(&k);
            }
        }
    }

    /// Releases (uncorrelated) the receipts held longer than the hold time.
    pub fn expire(&mut self, now: Instant) -> Vec<(Receipt, A)> {
        let mut out = Vec::new();
        while let Some((_, _, at)) = self.early_order.front() {
            if now.duration_since(*at) < self.hold {
                break;
            }
            let Some((k, n, _)) = self.early_order.pop_front() else {
                break;
            };
            if self.early.get(&k).is_some_and(|(_, _, m)| *m == n)
                && let Some((r, a, _)) = self.early.remove(&k)
            {
                out.push((r, a));
            }
        }
        out
    }

    /// Receipts currently held.
    pub fn held(&self) -> usize {
        self.early.len()
    }

    /// Ids currently remembered.
    pub fn known(&self) -> usize {
        self.known.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(id: &str, state: ReceiptState) -> Receipt {
        Receipt {
            message_id: id.into(),
            part: None,
            state,
            error: None,
            source: "33600000000".into(),
            destination: "Relais".into(),
            text: String::new(),
        }
    }

    fn part(r: &str) -> PartRef {
        PartRef {
            reference: Arc::from(r),
            index: 1,
            total: 1,
        }
    }

    #[test]
    fn receipt_after_resp_is_correlated_at_once() {
        let mut c: Correlator = Correlator::new(100, 100, Duration::from_secs(10));
        assert!(c.on_submitted("abc", part("m1")).is_empty());
        let out = c.on_receipt(receipt("ABC", ReceiptState::Delivered), (), Instant::now());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0.part.as_ref().map(|p| &*p.reference), Some("m1"));
    }

    #[test]
    fn a_receipt_delivered_again_after_its_final_one_is_still_correlated() {
        let mut c: Correlator = Correlator::new(100, 100, Duration::from_secs(10));
        c.on_submitted("7", part("m7"));
        let first = c.on_receipt(receipt("7", ReceiptState::Delivered), (), Instant::now());
        let again = c.on_receipt(receipt("7", ReceiptState::Delivered), (), Instant::now());
        assert_eq!(first[0].0.part.as_ref().map(|p| &*p.reference), Some("m7"));
        assert_eq!(again[0].0.part.as_ref().map(|p| &*p.reference), Some("m7"));
        assert_eq!(c.held(), 0);
    }

    #[test]
    fn finished_ids_are_forgotten_after_enough_others_finish() {
        let mut c: Correlator = Correlator::new(4, 100, Duration::from_secs(10));
        for i in 0..10 {
            c.on_submitted(&format!("{i}"), part("m"));
            c.on_receipt(
                receipt(&format!("{i}"), ReceiptState::Delivered),
                (),
                Instant::now(),
            );
        }
        assert!(c.known() <= 4);
    }

    #[test]
    fn early_receipt_is_held_then_released_with_its_reference() {
        let mut c: Correlator = Correlator::new(100, 100, Duration::from_secs(10));
        let out = c.on_receipt(receipt("42", ReceiptState::Delivered), (), Instant::now());
        assert!(out.is_empty());
        assert_eq!(c.held(), 1);
        let out = c.on_submitted("0042", part("m2"));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0.part.as_ref().map(|p| &*p.reference), Some("m2"));
        assert_eq!(c.held(), 0);
    }

    #[test]
    fn hex_resp_matches_decimal_receipt_when_configured() {
        let mut c: Correlator = Correlator::with_receipt_ids(
            100,
            100,
            Duration::from_secs(10),
            ReceiptIdBase::HexSubmitDecimalReceipt,
        );
        c.on_submitted("ff", part("m3"));
        let out = c.on_receipt(
            receipt("255", ReceiptState::Undeliverable),
            (),
            Instant::now(),
        );
        assert_eq!(out[0].0.part.as_ref().map(|p| &*p.reference), Some("m3"));
    }

    #[test]
    fn an_early_receipt_never_matches_another_number_written_in_another_base() {
        // Receipt for id 16 arrives before its resp, while id 10 (0x10 = 16) is known.
        let mut c: Correlator = Correlator::new(100, 100, Duration::from_secs(10));
        c.on_submitted("10", part("ten"));
        let out = c.on_receipt(receipt("16", ReceiptState::Delivered), (), Instant::now());
        assert!(out.is_empty(), "held, not matched to message 10");
        let out = c.on_submitted("16", part("sixteen"));
        assert_eq!(
            out[0].0.part.as_ref().map(|p| &*p.reference),
            Some("sixteen")
        );
    }

    #[test]
    fn held_receipts_are_never_lost() {
        let t0 = Instant::now();
        let mut c: Correlator = Correlator::new(100, 2, Duration::from_secs(10));
        let mut emitted = 0;
        for i in 0..5 {
            emitted += c
                .on_receipt(receipt(&format!("x{i}"), ReceiptState::Delivered), (), t0)
                .len();
        }
        assert_eq!(emitted, 3, "buffer of 2 overflows three times");
        let expired = c.expire(t0 + Duration::from_secs(11));
        assert_eq!(expired.len(), 2);
        assert!(expired.iter().all(|(r, _)| r.part.is_none()));
    }

    #[test]
    fn known_ids_are_bounded() {
        let mut c: Correlator = Correlator::new(10, 10, Duration::from_secs(1));
        for i in 0..1000 {
            c.on_submitted(&format!("{i}"), part("m"));
        }
        assert!(c.known() <= 10);
        assert!(c.known_order.len() <= 2 * 10 + 1024);
    }
}
