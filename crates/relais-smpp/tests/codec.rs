//! Every PDU Relais sends or reads survives encode → frame → decode unchanged, and no byte
//! sequence makes the decoder panic or lose sync.

use bytes::BytesMut;
use proptest::prelude::*;
use relais_smpp::codec::{CodecError, Frame, PduCodec, to_bytes};
use relais_smpp::pdu::{
    BindMode, ShortMessage, bind_pdu, bind_request, deliver_sm_resp, error_resp, submit_sm_resp,
};
use relais_smpp::{Command, CommandId, CommandStatus, Pdu};
use tokio_util::codec::Decoder;

fn round_trip(cmd: &Command) -> Command {
    let mut buf = to_bytes(cmd);
    let mut codec = PduCodec::default();
    match codec.decode(&mut buf) {
        Ok(Some(Frame::Command(c))) => {
            assert!(buf.is_empty(), "frame fully consumed");
            c
        }
        other => panic!("decode failed: {other:?}"),
    }
}

fn addr() -> impl Strategy<Value = String> {
    "[0-9]{1,20}"
}

fn ascii(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-zA-Z0-9_]{{1,{max}}}"))
        .unwrap_or_else(|_| unreachable!())
}

fn short_message() -> impl Strategy<Value = ShortMessage> {
    (
        addr(),
        addr(),
        any::<u8>(),
        prop_oneof![Just(0u8), Just(3), Just(8)],
        proptest::collection::vec(any::<u8>(), 0..=254),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 1..2000)),
        proptest::option::of((any::<u16>(), 1u8..10, 1u8..10)),
        proptest::option::of("[a-f0-9]{1,64}"),
        proptest::option::of(1u8..=8),
    )
        .prop_map(|(src, dst, esm, dc, sm, payload, sar, rid, state)| {
            let mut m = ShortMessage::new(&src, &dst);
            m.esm_class = esm & 0x7C; // bits 0-1 are the messaging mode; keep them 0 (default)
            m.data_coding = dc;
            m.registered_delivery = 1;
            m.short_message = sm.into();
            m.payload = payload.map(Into::into);
            m.sar = sar;
            m.receipted_message_id = rid;
            m.message_state = state;
            m
        })
}

proptest! {
    #[test]
    fn bind_round_trip(sid in ascii(15), pwd in ascii(8), st in ascii(12), seq in 1u32..0x7FFF_FFFF,
                       mode in prop_oneof![Just(BindMode::Transmitter), Just(BindMode::Receiver), Just(BindMode::Transceiver)]) {
        let pdu = bind_pdu(mode, &sid, &pwd, &st).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let cmd = Command::new(CommandStatus::EsmeRok, seq, pdu);
        let back = round_trip(&cmd);
        prop_assert_eq!(&back, &cmd);
        let req = back.pdu().and_then(bind_request);
        prop_assert!(req.is_some());
        let req = req.unwrap_or_else(|| unreachable!());
        prop_assert_eq!(req.system_id, sid);
        prop_assert_eq!(req.password, pwd);
        prop_assert_eq!(req.mode, mode);
        prop_assert_eq!(req.interface_version, 0x34);
    }

    #[test]
    fn bind_resp_round_trip(sid in ascii(15), seq in 1u32..0x7FFF_FFFF,
                            mode in prop_oneof![Just(BindMode::Transmitter), Just(BindMode::Receiver), Just(BindMode::Transceiver)]) {
        let cmd = Command::new(CommandStatus::EsmeRok, seq, relais_smpp::pdu::bind_resp_pdu(mode, &sid));
        prop_assert_eq!(round_trip(&cmd), cmd);
    }

    #[test]
    fn submit_sm_round_trip(m in short_message(), seq in 1u32..0x7FFF_FFFF) {
        let mut m = m;
        m.receipted_message_id = None; // not allowed in submit_sm
        m.message_state = None;
        let sm = m.to_submit_sm().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let cmd = Command::new(CommandStatus::EsmeRok, seq, Pdu::SubmitSm(sm));
        let back = round_trip(&cmd);
        prop_assert_eq!(&back, &cmd);
        match back.pdu() {
            Some(Pdu::SubmitSm(sm)) => prop_assert_eq!(ShortMessage::from_submit_sm(sm), m),
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn deliver_sm_round_trip(m in short_message(), seq in 1u32..0x7FFF_FFFF) {
        let d = m.to_deliver_sm().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let cmd = Command::new(CommandStatus::EsmeRok, seq, Pdu::DeliverSm(d));
        let back = round_trip(&cmd);
        prop_assert_eq!(&back, &cmd);
        match back.pdu() {
            Some(Pdu::DeliverSm(d)) => prop_assert_eq!(ShortMessage::from_deliver_sm(d), m),
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn responses_round_trip(id in "[a-zA-Z0-9]{1,64}", seq in 1u32..0x7FFF_FFFF, status in any::<u32>()) {
        let pdu = submit_sm_resp(&id).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let ok = Command::new(CommandStatus::EsmeRok, seq, pdu);
        prop_assert_eq!(round_trip(&ok), ok);
        let d = Command::new(CommandStatus::EsmeRok, seq, deliver_sm_resp());
        prop_assert_eq!(round_trip(&d), d);
        // An error response has no body; what matters is id, status and sequence number.
        let err = error_resp(CommandId::SubmitSm.into(), seq, CommandStatus::from(status));
        let back = round_trip(&err);
        prop_assert_eq!(back.id(), CommandId::SubmitSmResp);
        prop_assert_eq!(back.status(), CommandStatus::from(status));
        prop_assert_eq!(back.sequence_number(), seq);
    }

    #[test]
    fn empty_pdus_round_trip(seq in 1u32..0x7FFF_FFFF, status in any::<u32>()) {
        for pdu in [Pdu::EnquireLink, Pdu::EnquireLinkResp, Pdu::Unbind, Pdu::UnbindResp, Pdu::GenericNack] {
            let cmd = Command::new(CommandStatus::from(status), seq, pdu);
            prop_assert_eq!(round_trip(&cmd), cmd);
        }
    }

    #[test]
    fn frames_split_anywhere_decode_the_same(m in short_message(), cut in 0usize..400) {
        let d = m.to_deliver_sm().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let cmd = Command::new(CommandStatus::EsmeRok, 7, Pdu::DeliverSm(d));
        let two = [to_bytes(&cmd), to_bytes(&Command::new(CommandStatus::EsmeRok, 8, Pdu::EnquireLink))].concat();
        let cut = cut.min(two.len());
        let mut codec = PduCodec::default();
        let mut buf = BytesMut::from(&two[..cut]);
        let mut got = Vec::new();
        while let Ok(Some(f)) = codec.decode(&mut buf) { got.push(f); }
        buf.extend_from_slice(&two[cut..]);
        while let Ok(Some(f)) = codec.decode(&mut buf) { got.push(f); }
        prop_assert_eq!(got.len(), 2);
        prop_assert_eq!(&got[0], &Frame::Command(cmd));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut codec = PduCodec::new(4096);
        let mut buf = BytesMut::from(&data[..]);
        for _ in 0..100 {
            match codec.decode(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }

    #[test]
    fn garbage_body_keeps_stream_in_sync(body in proptest::collection::vec(any::<u8>(), 0..100), id in prop_oneof![Just(4u32), Just(5), Just(9), Just(0x1234)]) {
        // A PDU with a well-formed header and a random body, followed by a good enquire_link.
        let len = 16 + body.len() as u32;
        let mut raw = Vec::new();
        raw.extend_from_slice(&len.to_be_bytes());
        raw.extend_from_slice(&id.to_be_bytes());
        raw.extend_from_slice(&0u32.to_be_bytes());
        raw.extend_from_slice(&77u32.to_be_bytes());
        raw.extend_from_slice(&body);
        raw.extend_from_slice(&to_bytes(&Command::new(CommandStatus::EsmeRok, 78, Pdu::EnquireLink)));
        let mut codec = PduCodec::default();
        let mut buf = BytesMut::from(&raw[..]);
        let first = codec.decode(&mut buf);
        prop_assert!(matches!(first, Ok(Some(_))));
        if let Ok(Some(Frame::Malformed { sequence_number, .. })) = first {
            prop_assert_eq!(sequence_number, 77);
        }
        let second = codec.decode(&mut buf);
        prop_assert!(matches!(second, Ok(Some(Frame::Command(ref c))) if c.sequence_number() == 78 && c.id() == CommandId::EnquireLink));
    }
}

#[test]
fn oversized_and_undersized_lengths_are_refused() {
    let mut codec = PduCodec::new(1024);
    let mut buf = BytesMut::from(&[0u8, 0, 0x10, 0, 0, 0, 0, 4][..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(CodecError::TooLong {
            len: 4096,
            max: 1024
        })
    ));
    let mut buf = BytesMut::from(&[0u8, 0, 0, 8, 0, 0, 0, 4][..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(CodecError::TooShort(8))
    ));
}

#[test]
fn unknown_command_id_is_answered_invalid_command_id() {
    let mut raw = Vec::new();
    raw.extend_from_slice(&16u32.to_be_bytes());
    raw.extend_from_slice(&0x0000_1234u32.to_be_bytes());
    raw.extend_from_slice(&0u32.to_be_bytes());
    raw.extend_from_slice(&5u32.to_be_bytes());
    let mut codec = PduCodec::default();
    let mut buf = BytesMut::from(&raw[..]);
    // rusmpp keeps unknown ids as `Pdu::Other`/no body; either way the header is intact.
    match codec.decode(&mut buf) {
        Ok(Some(Frame::Command(c))) => assert_eq!(u32::from(c.id()), 0x1234),
        Ok(Some(Frame::Malformed {
            status,
            sequence_number,
            ..
        })) => {
            assert_eq!(status, CommandStatus::EsmeRinvcmdid);
            assert_eq!(sequence_number, 5);
        }
        other => panic!("{other:?}"),
    }
}

/// Inputs found by `cargo fuzz` (fuzz/): rusmpp reads them leniently; they must not panic and
/// must leave the stream usable.
#[test]
fn fuzz_regressions_decode_without_panic() {
    let cases: [&[u8]; 2] = [
        // enquire_link carrying stray body bytes: read as enquire_link with no body.
        &[
            0, 0, 0, 0x1a, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0x2e,
            0, 0, 6,
        ],
        // bind_transmitter_resp whose TLV declares more bytes than the PDU holds.
        &[
            0, 0, 0, 0x1e, 0x80, 0, 0, 2, 0, 0x80, 0, 2, 0, 0, 0x7a, 0x78, 0x26, 0, 6, 0x0d, 0,
            0x78, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
    ];
    for raw in cases {
        let mut buf = BytesMut::from(raw);
        let frame = PduCodec::default().decode(&mut buf);
        eprintln!("{frame:?}");
        if let Ok(Some(Frame::Command(c))) = frame {
            let mut again = to_bytes(&c);
            let bytes = again.to_vec();
            eprintln!(
                "re-encoded {bytes:02x?} -> {:?}",
                PduCodec::default().decode(&mut again)
            );
        }
    }
}
