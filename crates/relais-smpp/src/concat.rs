//! Long messages: splitting a text into SMPP parts (UDH with 8- or 16-bit reference, SAR TLVs,
//! or one `message_payload`) and reassembling inbound parts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use relais_core::sms::{self, DataCoding};
use serde::{Deserialize, Serialize};

/// How a text longer than one SMS is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Concatenation {
    /// UDH information element 0x00 (8-bit reference): 153 GSM-7 / 67 UCS-2 per part.
    #[default]
    Udh8,
    /// UDH information element 0x08 (16-bit reference): 152 GSM-7 / 66 UCS-2 per part.
    Udh16,
    /// `sar_msg_ref_num` / `sar_total_segments` / `sar_segment_seqnum` TLVs; the SMSC builds
    /// the UDH.
    Sar,
    /// The whole text in one `submit_sm` with the `message_payload` TLV; the SMSC splits it.
    Payload,
}

/// A concatenation header (from a UDH or from SAR TLVs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Udh {
    pub reference: u16,
    pub total: u8,
    /// 1-based.
    pub seq: u8,
}

/// Parses the UDH at the start of `data`: returns the concatenation element (if any) and the
/// UDH length (UDHL byte included). `None` if the header is truncated.
pub fn parse_udh(data: &[u8]) -> Option<(Udh, usize)> {
    let udhl = usize::from(*data.first()?);
    let end = 1 + udhl;
    let ies = data.get(1..end)?;
    let mut i = 0;
    let mut found = None;
    while i + 2 <= ies.len() {
        let (iei, len) = (ies[i], usize::from(ies[i + 1]));
        let v = ies.get(i + 2..i + 2 + len)?;
        match (iei, v) {
            (0x00, [r, t, s]) => {
                found = Some(Udh {
                    reference: u16::from(*r),
                    total: *t,
                    seq: *s,
                })
            }
            (0x08, [r1, r2, t, s]) => {
                found = Some(Udh {
                    reference: u16::from_be_bytes([*r1, *r2]),
                    total: *t,
                    seq: *s,
                })
            }
            _ => {}
        }
        i += 2 + len;
    }
    // A UDH without a concatenation element still has to be stripped from the text.
    Some((
        found.unwrap_or(Udh {
            reference: 0,
            total: 1,
            seq: 1,
        }),
        end,
    ))
}

/// One part ready for `submit_sm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// `short_message` (UDH included when `udhi`).
    pub short_message: Bytes,
    /// `message_payload` (then `short_message` is empty).
    pub payload: Option<Bytes>,
    pub udhi: bool,
    pub sar: Option<(u16, u8, u8)>,
}

/// Errors building parts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConcatError {
    #[error(transparent)]
    Encoding(#[from] sms::SmsError),
    #[error("text needs {0} parts; SMS concatenation allows 255")]
    TooManyParts(usize),
}

/// Splits and encodes `text` for `coding` with `mode`. `reference` identifies the message
/// among concurrent long messages to the same handset.
pub fn build_parts(
    text: &str,
    coding: DataCoding,
    mode: Concatenation,
    reference: u16,
) -> Result<Vec<Part>, ConcatError> {
    if mode == Concatenation::Payload {
        let bytes = Bytes::from(sms::encode(text, coding)?);
        let (single, _) = coding.limits(0);
        let units: usize = text.chars().map(|c| coding.cost(c).unwrap_or(1)).sum();
        // Short texts still go in short_message: every SMSC understands it.
        if units <= single && bytes.len() <= 140 {
            return Ok(vec![Part {
                short_message: bytes,
                payload: None,
                udhi: false,
                sar: None,
            }]);
        }
        return Ok(vec![Part {
            short_message: Bytes::new(),
            payload: Some(bytes),
            udhi: false,
            sar: None,
        }]);
    }
    let udh_len = if mode == Concatenation::Udh16 { 7 } else { 6 };
    let (single, multi) = coding.limits(udh_len);
    let chunks = sms::split_with(text, coding, single, multi)?;
    if chunks.len() == 1 {
        return Ok(vec![Part {
            short_message: Bytes::from(sms::encode(text, coding)?),
            payload: None,
            udhi: false,
            sar: None,
        }]);
    }
    let total = u8::try_from(chunks.len()).map_err(|_| ConcatError::TooManyParts(chunks.len()))?;
    let mut parts = Vec::with_capacity(chunks.len());
    for (i, chunk) in chunks.iter().enumerate() {
        let seq = (i + 1) as u8;
        let body = sms::encode(chunk, coding)?;
        match mode {
            Concatenation::Sar => parts.push(Part {
                short_message: Bytes::from(body),
                payload: None,
                udhi: false,
                sar: Some((reference, total, seq)),
            }),
            _ => {
                let mut b = BytesMut::with_capacity(udh_len + body.len());
                if mode == Concatenation::Udh16 {
                    b.put_slice(&[0x06, 0x08, 0x04]);
                    b.put_u16(reference);
                } else {
                    b.put_slice(&[0x05, 0x00, 0x03, reference as u8]);
                }
                b.put_slice(&[total, seq]);
                b.put_slice(&body);
                parts.push(Part {
                    short_message: b.freeze(),
                    payload: None,
                    udhi: true,
                    sar: None,
                });
            }
        }
    }
    Ok(parts)
}

/// Collects inbound parts until a message is complete. Bounded: at most `max_pending`
/// incomplete messages are kept, and incomplete ones older than `ttl` are given up (returned
/// by `expire`, so the caller can still deliver what arrived). Each part brings an `A` (its
/// acknowledgement in the client); a complete message comes out with those of all its
/// parts, repeated parts included, so that every PDU is answered when the message is.
#[derive(Debug)]
pub struct Reassembler<A = ()> {
    pending: HashMap<(String, String, u16, u8), Pending<A>>,
    max_pending: usize,
    ttl: Duration,
}

#[derive(Debug)]
struct Pending<A> {
    parts: Vec<Option<String>>,
    acks: Vec<A>,
    first_seen: Instant,
}

/// An incomplete message given up by [`Reassembler::expire`].
#[derive(Debug)]
pub struct Incomplete<A> {
    pub source: String,
    pub destination: String,
    /// The parts that arrived, in order, the missing ones left out.
    pub text: String,
    pub acks: Vec<A>,
}

impl<A> Reassembler<A> {
    pub fn new(max_pending: usize, ttl: Duration) -> Self {
        Self {
            pending: HashMap::new(),
            max_pending: max_pending.max(1),
            ttl,
        }
    }

    /// Adds part `udh.seq` of `udh.total` (already decoded to text). Returns the whole text,
    /// with the acknowledgements of every part, when the last missing part arrives. The text
    /// of a repeated part is ignored (its acknowledgement is kept).
    pub fn push(
        &mut self,
        source: &str,
        destination: &str,
        udh: Udh,
        text: String,
        ack: A,
    ) -> Option<(String, Vec<A>)> {
        if udh.total <= 1 {
            return Some((text, vec![ack]));
        }
        if udh.seq == 0 || udh.seq > udh.total {
            // Nonsense header: deliver the part as it is rather than hold it.
            return Some((text, vec![ack]));
        }
        let key = (
            source.to_string(),
            destination.to_string(),
            udh.reference,
            udh.total,
        );
        if !self.pending.contains_key(&key) && self.pending.len() >= self.max_pending {
            // Full: drop the oldest incomplete message to make room. Its acknowledgements go
            // with it unconfirmed, so the SMSC delivers those parts again.
            if let Some(oldest) = self
                .pending
                .iter()
                .min_by_key(|(_, p)| p.first_seen)
                .map(|(k, _)| k.clone())
            {
                self.pending.remove(&oldest);
            }
        }
        let entry = self.pending.entry(key.clone()).or_insert_with(|| Pending {
            parts: vec![None; usize::from(udh.total)],
            acks: Vec::new(),
            first_seen: Instant::now(),
        });
        let slot = usize::from(udh.seq - 1);
        if entry.parts[slot].is_none() {
            entry.parts[slot] = Some(text);
        }
        entry.acks.push(ack);
        if entry.parts.iter().all(Option::is_some) {
            let done = self.pending.remove(&key)?;
            return Some((done.parts.into_iter().flatten().collect(), done.acks));
        }
        None
    }

    /// Removes incomplete messages older than the TTL and returns what arrived of them.
    pub fn expire(&mut self, now: Instant) -> Vec<Incomplete<A>> {
        let ttl = self.ttl;
        let old: Vec<_> = self
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.first_seen) >= ttl)
            .map(|(k, _)| k.clone())
            .collect();
        old.into_iter()
            .filter_map(|k| {
                let p = self.pending.remove(&k)?;
                Some(Incomplete {
                    source: k.0,
                    destination: k.1,
                    text: p.parts.into_iter().flatten().collect(),
                    acks: p.acks,
                })
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_parts(parts: &[Part], coding: DataCoding) -> String {
        let mut out = String::new();
        for p in parts {
            let data = p.payload.clone().unwrap_or_else(|| p.short_message.clone());
            let body = if p.udhi {
                let (_, n) = parse_udh(&data).unwrap_or((
                    Udh {
                        reference: 0,
                        total: 1,
                        seq: 1,
                    },
                    0,
                ));
                data.slice(n..)
            } else {
                data
            };
            out.push_str(&sms::decode(&body, coding));
        }
        out
    }

    #[test]
    fn udh8_parts_fit_140_octets_once_packed() {
        let text = "x".repeat(400);
        let parts =
            build_parts(&text, DataCoding::Gsm7, Concatenation::Udh8, 42).unwrap_or_default();
        assert_eq!(parts.len(), 3);
        for (i, p) in parts.iter().enumerate() {
            assert!(p.udhi);
            assert_eq!(&p.short_message[..6], &[5, 0, 3, 42, 3, (i + 1) as u8]);
            assert!(p.short_message.len() - 6 <= 153);
        }
        assert_eq!(decode_parts(&parts, DataCoding::Gsm7), text);
    }

    #[test]
    fn udh16_and_sar_and_payload() {
        let text = "ж".repeat(100);
        let p16 =
            build_parts(&text, DataCoding::Ucs2, Concatenation::Udh16, 0x1234).unwrap_or_default();
        assert_eq!(p16.len(), 2);
        assert_eq!(&p16[0].short_message[..7], &[6, 8, 4, 0x12, 0x34, 2, 1]);
        assert!(p16[0].short_message.len() <= 140);
        let sar = build_parts(&text, DataCoding::Ucs2, Concatenation::Sar, 7).unwrap_or_default();
        assert_eq!(sar[1].sar, Some((7, 2, 2)));
        let pl =
            build_parts(&text, DataCoding::Ucs2, Concatenation::Payload, 0).unwrap_or_default();
        assert_eq!(pl.len(), 1);
        assert_eq!(pl[0].payload.as_ref().map(|p| p.len()), Some(200));
    }

    #[test]
    fn reassembles_out_of_order_and_ignores_duplicates() {
        let mut r = Reassembler::new(10, Duration::from_secs(60));
        let u = |seq| Udh {
            reference: 9,
            total: 3,
            seq,
        };
        assert_eq!(r.push("a", "b", u(2), "B".into(), 1), None);
        assert_eq!(r.push("a", "b", u(2), "X".into(), 2), None);
        assert_eq!(r.push("a", "b", u(3), "C".into(), 3), None);
        assert_eq!(
            r.push("a", "b", u(1), "A".into(), 4),
            Some(("ABC".to_string(), vec![1, 2, 3, 4])),
            "every part's acknowledgement, the repeated one's too"
        );
        assert!(r.is_empty());
    }

    #[test]
    fn reassembler_is_bounded_and_expires() {
        let mut r: Reassembler = Reassembler::new(2, Duration::from_millis(0));
        for reference in 0..5 {
            let u = Udh {
                reference,
                total: 2,
                seq: 1,
            };
            r.push("a", "b", u, "x".into(), ());
        }
        assert_eq!(r.len(), 2);
        let expired = r.expire(Instant::now());
        assert_eq!(expired.len(), 2);
        assert!(r.is_empty());
    }

    #[test]
    fn truncated_udh_is_rejected() {
        assert_eq!(parse_udh(&[5, 0, 3]), None);
        assert_eq!(parse_udh(&[]), None);
    }

    proptest! {
        #[test]
        fn parts_decode_back_to_text(
            text in "[a-zA-Z0-9 €\\[\\]жé😀]{0,600}",
            mode in prop_oneof![Just(Concatenation::Udh8), Just(Concatenation::Udh16), Just(Concatenation::Sar)],
        ) {
            let coding = sms::detect_encoding(&text).data_coding();
            let parts = build_parts(&text, coding, mode, 3).unwrap_or_default();
            prop_assert!(!parts.is_empty());
            for p in &parts {
                prop_assert!(p.short_message.len() <= 140 || coding == DataCoding::Gsm7);
                if coding == DataCoding::Gsm7 {
                    // unpacked septets: UDH octets + septets must pack into 140 octets
                    let udh = if p.udhi { usize::from(p.short_message[0]) + 1 } else { 0 };
                    let septets = p.short_message.len() - udh;
                    prop_assert!((udh * 8).div_ceil(7) + septets <= 160);
                }
            }
            prop_assert_eq!(decode_parts(&parts, coding), text);
        }

        #[test]
        fn parse_udh_never_panics(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = parse_udh(&data);
        }
    }
}
