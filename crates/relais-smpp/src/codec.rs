//! Framing: SMPP PDUs over a byte stream.
//!
//! Bodies are decoded by `rusmpp`; the framing is ours because we need two things its
//! `CommandCodec` does not give: a PDU whose body cannot be decoded must still yield its
//! header (so the session can answer `generic_nack` with the right sequence number and carry
//! on), and the bytes of a bad PDU must be consumed whole so the stream stays in sync.

use bytes::{Buf, BufMut, BytesMut};
use rusmpp::decode::DecodeWithLength;
use rusmpp::encode::Length;
use rusmpp::encode::owned::Encode;
use rusmpp::{Command, CommandId, CommandStatus};
use tokio_util::codec::{Decoder, Encoder};

/// Header size: command_length, command_id, command_status, sequence_number.
pub const HEADER_LEN: usize = 16;

/// Default upper bound of `command_length`. A `message_payload` may carry up to 64 KiB; anything
/// larger is a broken or hostile peer and must not make us allocate.
pub const DEFAULT_MAX_PDU_LEN: usize = 70 * 1024;

/// One unit read from the wire.
// Not boxed: a frame is moved once from the decoder to its handler, and a box would cost an
// allocation per PDU on the hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A PDU `rusmpp` decoded.
    Command(Command),
    /// The header was sound but the body was not. Its bytes were consumed: the session answers
    /// (generic_nack or an error `*_resp`) and continues.
    Malformed {
        command_id: u32,
        sequence_number: u32,
        /// The status the answer should carry.
        status: CommandStatus,
    },
}

/// Errors that end a connection: after them the byte stream cannot be resynchronised.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("command_length {0} is below the 16-byte header")]
    TooShort(usize),
    #[error("command_length {len} exceeds the maximum of {max}")]
    TooLong { len: usize, max: usize },
}

/// tokio-util codec for SMPP PDUs.
#[derive(Debug, Clone)]
pub struct PduCodec {
    max_len: usize,
}

impl Default for PduCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PDU_LEN)
    }
}

impl PduCodec {
    pub fn new(max_len: usize) -> Self {
        Self {
            max_len: max_len.max(HEADER_LEN),
        }
    }
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

impl Decoder for PduCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let len = be_u32(&src[..4]) as usize;
        if len < HEADER_LEN {
            return Err(CodecError::TooShort(len));
        }
        if len > self.max_len {
            return Err(CodecError::TooLong {
                len,
                max: self.max_len,
            });
        }
        if src.len() < len {
            src.reserve(len - src.len());
            return Ok(None);
        }
        let mut frame = src.split_to(len);
        let command_id = be_u32(&frame[4..8]);
        let sequence_number = be_u32(&frame[12..16]);
        frame.advance(4);
        Ok(Some(match Command::decode(&mut frame, len - 4) {
            Ok((command, _)) => Frame::Command(command),
            Err(e) => {
                tracing::debug!(command_id, sequence_number, error = %e, "undecodable PDU body");
                Frame::Malformed {
                    command_id,
                    sequence_number,
                    status: malformed_status(command_id),
                }
            }
        }))
    }
}

/// The status to answer an undecodable PDU with: unknown ids get ESME_RINVCMDID, a known id
/// with a bad body gets ESME_RINVCMDLEN (the SMPP 3.4 answer to "body does not parse").
fn malformed_status(command_id: u32) -> CommandStatus {
    match CommandId::from(command_id) {
        CommandId::Other(_) => CommandStatus::EsmeRinvcmdid,
        _ => CommandStatus::EsmeRinvcmdlen,
    }
}

impl Encoder<&Command> for PduCodec {
    type Error = CodecError;

    fn encode(&mut self, command: &Command, dst: &mut BytesMut) -> Result<(), CodecError> {
        encode_command(command, dst);
        Ok(())
    }
}

/// Appends one PDU (with its length prefix) to `dst`. Used directly by the session writers,
/// which batch many PDUs into one buffer and one `write` call.
pub fn encode_command(command: &Command, dst: &mut BytesMut) {
    let len = 4 + command.length();
    dst.reserve(len);
    dst.put_u32(len as u32);
    command.encode(dst);
}

/// Encodes one PDU into a fresh buffer.
pub fn to_bytes(command: &Command) -> BytesMut {
    let mut b = BytesMut::new();
    encode_command(command, &mut b);
    b
}

/// The `generic_nack` for a PDU we could not process.
pub fn generic_nack(sequence_number: u32, status: CommandStatus) -> Command {
    Command::new(status, sequence_number, rusmpp::Pdu::GenericNack)
}
