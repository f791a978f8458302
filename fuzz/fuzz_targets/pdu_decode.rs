//! Feeds arbitrary bytes to the SMPP frame decoder. Invariants: no panic and no unbounded
//! allocation while decoding, re-encoding, or reading a PDU's user data, text and receipt.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use relais_smpp::Pdu;
use relais_smpp::codec::{Frame, PduCodec, to_bytes};
use relais_smpp::pdu::ShortMessage;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut codec = PduCodec::new(8 * 1024);
    let mut buf = BytesMut::from(data);
    for _ in 0..64 {
        match codec.decode(&mut buf) {
            Ok(Some(Frame::Command(cmd))) => {
                // Re-encoding what we decoded must not panic either. It need not give the same
                // command back: rusmpp 0.4 reads some malformed bodies leniently (stray bytes
                // after a body-less PDU; a TLV whose value_length runs past the PDU) and writes
                // them back differently. Relais never re-sends a received PDU; the PDUs it
                // builds round-trip exactly (tests/codec.rs property tests).
                let mut again = to_bytes(&cmd);
                let _ = PduCodec::new(usize::MAX).decode(&mut again);
                let m = match cmd.pdu() {
                    Some(Pdu::SubmitSm(sm)) => Some(ShortMessage::from_submit_sm(sm)),
                    Some(Pdu::DeliverSm(d)) => Some(ShortMessage::from_deliver_sm(d)),
                    _ => None,
                };
                if let Some(m) = m {
                    let _ = m.text();
                    let _ = m.user_data();
                    let _ = relais_smpp::receipt::parse_receipt_text(&String::from_utf8_lossy(
                        &m.short_message,
                    ));
                }
            }
            Ok(Some(Frame::Malformed { .. })) => {}
            Ok(None) | Err(_) => break,
        }
    }
});
