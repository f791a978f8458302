//! A TCP connection split in a frame reader and a batching writer.
//!
//! Both halves are used from one task inside `tokio::select!`: `read_frame` and `write_some`
//! are cancel safe (state lives in the buffers), so a session can wait for input, for
//! handler results and for room to write at once, and never deadlocks with a peer that is
//! itself blocked writing. Responses accumulate in the write buffer and go out in one
//! `write` call once no input is ready: on loopback a `write` costs the sender the peer's
//! receive path too, so that batching is what makes 20k+ PDU/s cheap.

use bytes::{Buf, BytesMut};
use rusmpp::Command;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::Decoder;

use crate::codec::{CodecError, Frame, PduCodec, encode_command};

/// Sessions write only when no input is ready, so everything answered in one wake-up goes
/// out in one `write`. Once this many bytes wait, a session stops taking input until they
/// are written: it bounds both the delay of an answer and the memory a fast peer can make
/// us hold (back-pressure).
pub const WRITE_BATCH: usize = 64 * 1024;

pub struct FrameReader {
    half: OwnedReadHalf,
    buf: BytesMut,
    codec: PduCodec,
}

pub struct FrameWriter {
    half: OwnedWriteHalf,
    buf: BytesMut,
    /// Bytes queued and bytes handed to the socket since the start: a PDU queued when
    /// `queued()` was `n` is written once `written() >= n` (what a session reads to know
    /// which answers left, when the connection ends).
    queued: u64,
    written: u64,
}

/// Splits a stream into its reader and writer.
pub fn split(stream: TcpStream, max_pdu_len: usize) -> (FrameReader, FrameWriter) {
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    (
        FrameReader {
            half: r,
            buf: BytesMut::with_capacity(64 * 1024),
            codec: PduCodec::new(max_pdu_len),
        },
        FrameWriter {
            half: w,
            buf: BytesMut::with_capacity(64 * 1024),
            queued: 0,
            written: 0,
        },
    )
}

impl FrameReader {
    /// A frame already in the buffer, without waiting.
    pub fn try_frame(&mut self) -> Result<Option<Frame>, CodecError> {
        self.codec.decode(&mut self.buf)
    }

    /// Waits for the next frame. `Ok(None)` on a clean end of stream. Cancel safe.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, CodecError> {
        loop {
            if let Some(f) = self.codec.decode(&mut self.buf)? {
                return Ok(Some(f));
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(64 * 1024);
            }
            if self.half.read_buf(&mut self.buf).await? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(CodecError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed inside a PDU",
                )));
            }
        }
    }
}

impl FrameWriter {
    /// Queues a PDU; nothing is sent until `write_some`/`flush`.
    pub fn queue(&mut self, command: &Command) {
        let before = self.buf.len();
        encode_command(command, &mut self.buf);
        self.queued += (self.buf.len() - before) as u64;
    }

    /// Bytes queued since the connection opened: the end of the last PDU queued.
    pub fn queued(&self) -> u64 {
        self.queued
    }

    /// Bytes handed to the socket since the connection opened.
    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    pub fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Writes as much of the queue as the socket takes now. Cancel safe.
    pub async fn write_some(&mut self) -> std::io::Result<()> {
        let n = self.half.write(&self.buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        self.buf.advance(n);
        self.written += n as u64;
        if self.buf.is_empty() && self.buf.capacity() > 4 * 1024 * 1024 {
            // A burst grew the buffer; give the memory back.
            self.buf = BytesMut::with_capacity(64 * 1024);
        }
        Ok(())
    }

    /// Writes the whole queue.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        while self.has_pending() {
            self.write_some().await?;
        }
        self.half.flush().await
    }

    /// Flushes and shuts the write side down.
    pub async fn shutdown(&mut self) {
        let _ = self.flush().await;
        let _ = self.half.shutdown().await;
    }
}
