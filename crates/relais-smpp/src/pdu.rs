//! Building and reading the PDUs Relais uses, on top of `rusmpp`'s types: turns strings into
//! its length-checked octet strings, reads TLVs by tag, and extracts the user data of
//! `submit_sm` / `deliver_sm` (UDH, SAR TLVs or `message_payload`).

use bytes::Bytes;
use rusmpp::pdus::{
    BindReceiver, BindTransceiver, BindTransmitter, DeliverSm, DeliverSmResp, SubmitSm,
    SubmitSmResp,
};
use rusmpp::tlvs::{
    MessageDeliveryRequestTlvValue, MessageSubmissionRequestTlvValue, Tlv, TlvValue,
};
use rusmpp::types::{AnyOctetString, COctetString, EmptyOrFullCOctetString, OctetString};
use rusmpp::values::{
    DataCoding as RDataCoding, EsmClass, InterfaceVersion, MessagePayload, MessageState, Npi,
    RegisteredDelivery, ServiceType, Ton,
};
use rusmpp::{Command, CommandStatus, Pdu};

use crate::concat::{Udh, parse_udh};
use crate::receipt::{ReceiptState, format_receipt_text};

/// The optional parameter that carries the application's reference for a message (the
/// Relais message id) unless a channel names another: the first tag of SMPP 3.4's range for
/// SMSC vendor-specific parameters (0x1400–0x3FFF). An SMSC that does not know it ignores
/// it (SMPP 3.4, 3.2.4); one that keeps it can deduplicate a message sent twice.
pub const DEFAULT_REFERENCE_TLV: u16 = 0x1400;

/// The range of tags a client reference may use.
pub const VENDOR_TLVS: std::ops::RangeInclusive<u16> = 0x1400..=0x3FFF;

/// esm_class bit "UDH indicator".
pub const ESM_UDHI: u8 = 0x40;
/// esm_class message type "SMSC delivery receipt".
pub const ESM_RECEIPT: u8 = 0x04;

/// A value did not fit an SMPP field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    #[error("field {field}: {reason}")]
    Field { field: &'static str, reason: String },
}

/// A C-octet string field (`MAX` includes the terminating NUL, as in the spec tables).
pub fn cstr<const MIN: usize, const MAX: usize>(
    field: &'static str,
    s: &str,
) -> Result<COctetString<MIN, MAX>, PduError> {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    COctetString::from_vec(v).map_err(|e| PduError::Field {
        field,
        reason: e.to_string(),
    })
}

/// An octet string field.
pub fn octets<const MIN: usize, const MAX: usize>(
    field: &'static str,
    b: impl Into<Bytes>,
) -> Result<OctetString<MIN, MAX>, PduError> {
    OctetString::from_bytes(b.into()).map_err(|e| PduError::Field {
        field,
        reason: e.to_string(),
    })
}

/// A C-octet string's text without its NUL (lossy for non-ASCII, which the spec forbids).
pub fn text_of(b: &[u8]) -> String {
    let b = b.strip_suffix(&[0]).unwrap_or(b);
    String::from_utf8_lossy(b).into_owned()
}

/// How an ESME binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BindMode {
    Transmitter,
    Receiver,
    Transceiver,
}

impl BindMode {
    pub fn can_submit(self) -> bool {
        matches!(self, BindMode::Transmitter | BindMode::Transceiver)
    }
    pub fn can_receive(self) -> bool {
        matches!(self, BindMode::Receiver | BindMode::Transceiver)
    }
}

/// A bind request's credentials as the server sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindRequest {
    pub mode: BindMode,
    pub system_id: String,
    pub password: String,
    pub system_type: String,
    pub interface_version: u8,
}

/// Builds a `bind_*` PDU (interface version 3.4).
pub fn bind_pdu(
    mode: BindMode,
    system_id: &str,
    password: &str,
    system_type: &str,
) -> Result<Pdu, PduError> {
    let sid = cstr::<1, 16>("system_id", system_id)?;
    let pwd = cstr::<1, 9>("password", password)?;
    let st = cstr::<1, 13>("system_type", system_type)?;
    let v = InterfaceVersion::Smpp3_4;
    let range = COctetString::empty();
    Ok(match mode {
        BindMode::Transmitter => Pdu::BindTransmitter(BindTransmitter::new(
            sid,
            pwd,
            st,
            v,
            Ton::Unknown,
            Npi::Unknown,
            range,
        )),
        BindMode::Receiver => Pdu::BindReceiver(BindReceiver::new(
            sid,
            pwd,
            st,
            v,
            Ton::Unknown,
            Npi::Unknown,
            range,
        )),
        BindMode::Transceiver => Pdu::BindTransceiver(BindTransceiver::new(
            sid,
            pwd,
            st,
            v,
            Ton::Unknown,
            Npi::Unknown,
            range,
        )),
    })
}

/// Reads a bind request from any of the three bind PDUs.
pub fn bind_request(pdu: &Pdu) -> Option<BindRequest> {
    macro_rules! req {
        ($b:expr, $mode:expr) => {
            BindRequest {
                mode: $mode,
                system_id: text_of(&$b.system_id),
                password: text_of(&$b.password),
                system_type: text_of(&$b.system_type),
                interface_version: u8::from($b.interface_version),
            }
        };
    }
    Some(match pdu {
        Pdu::BindTransmitter(b) => req!(b, BindMode::Transmitter),
        Pdu::BindReceiver(b) => req!(b, BindMode::Receiver),
        Pdu::BindTransceiver(b) => req!(b, BindMode::Transceiver),
        _ => return None,
    })
}

/// The `bind_*_resp` matching `mode`.
pub fn bind_resp_pdu(mode: BindMode, system_id: &str) -> Pdu {
    let sid = cstr::<1, 16>("system_id", system_id).unwrap_or_else(|_| COctetString::empty());
    let v = Some(InterfaceVersion::Smpp3_4);
    match mode {
        BindMode::Transmitter => {
            Pdu::BindTransmitterResp(rusmpp::pdus::BindTransmitterResp::new(sid, v))
        }
        BindMode::Receiver => Pdu::BindReceiverResp(rusmpp::pdus::BindReceiverResp::new(sid, v)),
        BindMode::Transceiver => {
            Pdu::BindTransceiverResp(rusmpp::pdus::BindTransceiverResp::new(sid, v))
        }
    }
}

/// An error response with no body, for any request id (`*_resp` = id | 0x8000_0000).
pub fn error_resp(request_id: u32, sequence_number: u32, status: CommandStatus) -> Command {
    let resp_id = rusmpp::CommandId::from(request_id | 0x8000_0000);
    // A body-less response: rusmpp models it as `Pdu::Other` with an empty body, which encodes
    // as the bare header with the right command_id.
    Command::new(
        status,
        sequence_number,
        Pdu::Other {
            command_id: resp_id,
            body: AnyOctetString::empty(),
        },
    )
}

/// `submit_sm_resp` carrying `message_id`.
pub fn submit_sm_resp(message_id: &str) -> Result<Pdu, PduError> {
    Ok(Pdu::SubmitSmResp(SubmitSmResp::new(
        cstr::<1, 65>("message_id", message_id)?,
        Vec::new(),
    )))
}

/// `deliver_sm_resp` (message_id is unused and must be NULL).
pub fn deliver_sm_resp() -> Pdu {
    Pdu::DeliverSmResp(DeliverSmResp::new(COctetString::empty(), Vec::new()))
}

/// Fields common to `submit_sm` and `deliver_sm` that Relais sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortMessage {
    pub source: String,
    pub source_ton: u8,
    pub source_npi: u8,
    pub destination: String,
    pub dest_ton: u8,
    pub dest_npi: u8,
    pub esm_class: u8,
    pub registered_delivery: u8,
    pub data_coding: u8,
    /// `short_message` (with the UDH in front when esm_class has UDHI).
    pub short_message: Bytes,
    /// `message_payload` TLV (then `short_message` is empty).
    pub payload: Option<Bytes>,
    /// `sar_msg_ref_num`, `sar_total_segments`, `sar_segment_seqnum`.
    pub sar: Option<(u16, u8, u8)>,
    /// `receipted_message_id` TLV (receipts only).
    pub receipted_message_id: Option<String>,
    /// `message_state` TLV (receipts only).
    pub message_state: Option<u8>,
    /// The application's reference for the message, in a vendor-specific TLV (tag, text).
    pub client_reference: Option<(u16, String)>,
}

impl ShortMessage {
    /// A plain message with defaults: TON/NPI guessed from the address shape.
    pub fn new(source: &str, destination: &str) -> Self {
        let (source_ton, source_npi) = guess_ton_npi(source);
        let (dest_ton, dest_npi) = guess_ton_npi(destination);
        Self {
            source: source.to_string(),
            source_ton,
            source_npi,
            destination: destination.to_string(),
            dest_ton,
            dest_npi,
            esm_class: 0,
            registered_delivery: 0,
            data_coding: 0,
            short_message: Bytes::new(),
            payload: None,
            sar: None,
            receipted_message_id: None,
            message_state: None,
            client_reference: None,
        }
    }

    /// The user data bytes: `message_payload` if present, else `short_message` without UDH,
    /// and the parsed UDH if any.
    pub fn user_data(&self) -> (Option<Udh>, Bytes) {
        let data = match &self.payload {
            Some(p) if self.short_message.is_empty() => p.clone(),
            _ => self.short_message.clone(),
        };
        if self.esm_class & ESM_UDHI != 0
            && let Some((udh, len)) = parse_udh(&data)
        {
            return (Some(udh), data.slice(len..));
        }
        (None, data)
    }

    /// Which part of a longer message this is, from the SAR TLVs or else the UDH; `None`
    /// for a message of one part.
    pub fn concat_part(&self) -> Option<Udh> {
        self.sar
            .map(|(reference, total, seq)| Udh {
                reference,
                total,
                seq,
            })
            .or_else(|| self.user_data().0)
            .filter(|part| part.total > 1)
    }

    /// Decoded text of the user data (UDH removed). Unknown codings are shown as Latin-1 so
    /// that nothing is dropped.
    pub fn text(&self) -> String {
        let (_, data) = self.user_data();
        let coding = relais_core::sms::DataCoding::from_code(self.data_coding)
            .unwrap_or(relais_core::sms::DataCoding::Latin1);
        relais_core::sms::decode(&data, coding)
    }

    pub fn is_receipt(&self) -> bool {
        self.esm_class & 0x3C == ESM_RECEIPT
    }

    fn common(
        &self,
    ) -> Result<
        (
            COctetString<1, 21>,
            COctetString<1, 21>,
            OctetString<0, 255>,
        ),
        PduError,
    > {
        Ok((
            cstr::<1, 21>("source_addr", &self.source)?,
            cstr::<1, 21>("destination_addr", &self.destination)?,
            octets::<0, 255>("short_message", self.short_message.clone())?,
        ))
    }

    /// Builds a `submit_sm`.
    pub fn to_submit_sm(&self) -> Result<SubmitSm, PduError> {
        let (src, dst, sm) = self.common()?;
        let mut tlvs = Vec::new();
        if let Some(p) = &self.payload {
            tlvs.push(MessageSubmissionRequestTlvValue::MessagePayload(
                MessagePayload::new(AnyOctetString::from_bytes(p.clone())),
            ));
        }
        if let Some((r, t, s)) = self.sar {
            tlvs.push(MessageSubmissionRequestTlvValue::SarMsgRefNum(r));
            tlvs.push(MessageSubmissionRequestTlvValue::SarTotalSegments(t));
            tlvs.push(MessageSubmissionRequestTlvValue::SarSegmentSeqnum(s));
        }
        if let Some((tag, reference)) = &self.client_reference {
            tlvs.push(MessageSubmissionRequestTlvValue::Other {
                tag: rusmpp::tlvs::TlvTag::Other(*tag),
                value: AnyOctetString::from_bytes(Bytes::copy_from_slice(reference.as_bytes())),
            });
        }
        Ok(SubmitSm::new(
            ServiceType::default(),
            Ton::from(self.source_ton),
            Npi::from(self.source_npi),
            src,
            Ton::from(self.dest_ton),
            Npi::from(self.dest_npi),
            dst,
            EsmClass::from(self.esm_class),
            0,
            Default::default(),
            EmptyOrFullCOctetString::empty(),
            EmptyOrFullCOctetString::empty(),
            RegisteredDelivery::from(self.registered_delivery),
            Default::default(),
            RDataCoding::from(self.data_coding),
            0,
            sm,
            tlvs,
        ))
    }

    /// Builds a `deliver_sm`.
    pub fn to_deliver_sm(&self) -> Result<DeliverSm, PduError> {
        let (src, dst, sm) = self.common()?;
        let mut tlvs = Vec::new();
        if let Some(p) = &self.payload {
            tlvs.push(MessageDeliveryRequestTlvValue::MessagePayload(
                MessagePayload::new(AnyOctetString::from_bytes(p.clone())),
            ));
        }
        if let Some((r, t, s)) = self.sar {
            tlvs.push(MessageDeliveryRequestTlvValue::SarMsgRefNum(r));
            tlvs.push(MessageDeliveryRequestTlvValue::SarTotalSegments(t));
            tlvs.push(MessageDeliveryRequestTlvValue::SarSegmentSeqnum(s));
        }
        if let Some(id) = &self.receipted_message_id {
            tlvs.push(MessageDeliveryRequestTlvValue::ReceiptedMessageId(cstr::<
                1,
                65,
            >(
                "receipted_message_id",
                id,
            )?));
        }
        if let Some(st) = self.message_state {
            tlvs.push(MessageDeliveryRequestTlvValue::MessageState(
                MessageState::from(st),
            ));
        }
        Ok(DeliverSm::new(
            ServiceType::default(),
            Ton::from(self.source_ton),
            Npi::from(self.source_npi),
            src,
            Ton::from(self.dest_ton),
            Npi::from(self.dest_npi),
            dst,
            EsmClass::from(self.esm_class),
            0,
            Default::default(),
            EmptyOrFullCOctetString::empty(),
            EmptyOrFullCOctetString::empty(),
            RegisteredDelivery::from(self.registered_delivery),
            Default::default(),
            RDataCoding::from(self.data_coding),
            0,
            sm,
            tlvs,
        ))
    }

    /// Reads a `submit_sm`.
    pub fn from_submit_sm(p: &SubmitSm) -> Self {
        let mut m = Self::from_fields(Fields {
            source: &p.source_addr,
            source_ton: u8::from(p.source_addr_ton),
            source_npi: u8::from(p.source_addr_npi),
            destination: &p.destination_addr,
            dest_ton: u8::from(p.dest_addr_ton),
            dest_npi: u8::from(p.dest_addr_npi),
            esm_class: u8::from(p.esm_class),
            registered_delivery: u8::from(p.registered_delivery),
            data_coding: u8::from(p.data_coding),
            short_message: p.short_message().as_ref(),
        });
        m.read_tlvs(p.tlvs());
        m
    }

    /// Reads a `deliver_sm`.
    pub fn from_deliver_sm(p: &DeliverSm) -> Self {
        let mut m = Self::from_fields(Fields {
            source: &p.source_addr,
            source_ton: u8::from(p.source_addr_ton),
            source_npi: u8::from(p.source_addr_npi),
            destination: &p.destination_addr,
            dest_ton: u8::from(p.dest_addr_ton),
            dest_npi: u8::from(p.dest_addr_npi),
            esm_class: u8::from(p.esm_class),
            registered_delivery: u8::from(p.registered_delivery),
            data_coding: u8::from(p.data_coding),
            short_message: p.short_message().as_ref(),
        });
        m.read_tlvs(p.tlvs());
        m
    }

    fn from_fields(f: Fields<'_>) -> Self {
        Self {
            source: text_of(f.source),
            source_ton: f.source_ton,
            source_npi: f.source_npi,
            destination: text_of(f.destination),
            dest_ton: f.dest_ton,
            dest_npi: f.dest_npi,
            esm_class: f.esm_class,
            registered_delivery: f.registered_delivery,
            data_coding: f.data_coding,
            short_message: Bytes::copy_from_slice(f.short_message),
            payload: None,
            sar: None,
            receipted_message_id: None,
            message_state: None,
            client_reference: None,
        }
    }

    fn read_tlvs(&mut self, tlvs: &[Tlv]) {
        let (mut r, mut t, mut s) = (None, None, None);
        for tlv in tlvs {
            match tlv.value() {
                Some(TlvValue::MessagePayload(p)) => {
                    self.payload = Some(Bytes::copy_from_slice(p.value.as_ref()))
                }
                Some(TlvValue::SarMsgRefNum(v)) => r = Some(*v),
                Some(TlvValue::SarTotalSegments(v)) => t = Some(*v),
                Some(TlvValue::SarSegmentSeqnum(v)) => s = Some(*v),
                Some(TlvValue::ReceiptedMessageId(id)) => {
                    self.receipted_message_id = Some(text_of(id))
                }
                Some(TlvValue::MessageState(st)) => self.message_state = Some(u8::from(*st)),
                Some(TlvValue::Other { tag, value }) => {
                    let tag = u16::from(*tag);
                    if VENDOR_TLVS.contains(&tag) && self.client_reference.is_none() {
                        self.client_reference =
                            Some((tag, String::from_utf8_lossy(value.as_ref()).into_owned()));
                    }
                }
                _ => {}
            }
        }
        if let (Some(r), Some(t), Some(s)) = (r, t, s) {
            self.sar = Some((r, t, s));
        }
    }
}

struct Fields<'a> {
    source: &'a [u8],
    source_ton: u8,
    source_npi: u8,
    destination: &'a [u8],
    dest_ton: u8,
    dest_npi: u8,
    esm_class: u8,
    registered_delivery: u8,
    data_coding: u8,
    short_message: &'a [u8],
}

/// TON/NPI from the address shape: `+`/digits longer than 8 = international/ISDN, short
/// digits = national... short code, letters = alphanumeric sender. The `+` is kept out of the
/// address as SMSCs expect.
pub fn guess_ton_npi(addr: &str) -> (u8, u8) {
    let digits = addr.trim_start_matches('+');
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if addr.starts_with('+') || digits.len() > 8 {
            (1, 1) // international, ISDN
        } else {
            (3, 0) // network specific (short code)
        }
    } else if digits.is_empty() {
        (0, 0)
    } else {
        (5, 0) // alphanumeric
    }
}

/// Strips the `+` of an E.164 address for the wire.
pub fn wire_address(addr: &str) -> &str {
    addr.strip_prefix('+').unwrap_or(addr)
}

/// A standard delivery receipt `deliver_sm` (esm_class 0x04, receipt text, and the
/// `receipted_message_id` + `message_state` TLVs), from the handset back to the sender.
#[allow(clippy::too_many_arguments)]
pub fn receipt_message(
    original_source: &str,
    original_destination: &str,
    message_id: &str,
    state: ReceiptState,
    err: u16,
    submit_date: &str,
    done_date: &str,
    text: &str,
) -> ShortMessage {
    // The receipt travels from the handset (the original destination) to the sender.
    let mut m = ShortMessage::new(original_destination, original_source);
    m.esm_class = ESM_RECEIPT;
    let body = format_receipt_text(message_id, state, err, submit_date, done_date, text);
    m.short_message = Bytes::from(body.into_bytes());
    m.receipted_message_id = Some(message_id.to_string());
    m.message_state = Some(state.message_state());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ton_npi_guess() {
        assert_eq!(guess_ton_npi("+33612345678"), (1, 1));
        assert_eq!(guess_ton_npi("33612345678"), (1, 1));
        assert_eq!(guess_ton_npi("36180"), (3, 0));
        assert_eq!(guess_ton_npi("Relais"), (5, 0));
    }

    #[test]
    fn too_long_address_is_an_error_not_a_panic() {
        let m = ShortMessage::new(&"1".repeat(30), "123");
        assert!(m.to_submit_sm().is_err());
    }
}
