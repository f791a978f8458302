//! SMPP 3.4 for Relais: PDU framing (bodies by `rusmpp`), a windowed ESME client, server
//! sessions for ESMEs connecting to Relais, and an SMSC simulator.
//!
//! Layout (mini-redis shape): `codec` (frames) → `connection` (buffered reads and batched
//! writes) → `pdu` / `concat` / `receipt` / `status` (what PDUs mean) → `client`, `server`,
//! `simulator` (sessions and their state). The client's pure rules have their own modules:
//! `ack` (when a `deliver_sm` is answered), `pace` (how fast a throttled bind submits),
//! `backoff` (when a lost bind reconnects).

pub mod ack;
pub mod backoff;
pub mod bind_throttle;
pub mod client;
pub mod codec;
pub mod concat;
pub mod connection;
pub mod correlate;
pub mod pace;
pub mod pdu;
pub mod receipt;
pub mod server;
mod sim_http;
pub mod simulator;
pub mod status;

pub use rusmpp::{Command, CommandId, CommandStatus, Pdu};

pub use ack::Ack;
pub use bind_throttle::{Admission, BindThrottle, BindThrottleConfig};
pub use client::{
    BindStyle, ClientConfig, ClientEvents, CodingPolicy, ConnectError, InboundMessage, SmppClient,
    SmppEvent, SubmitError, SubmitOutcome, SubmitRequest,
};
pub use concat::Concatenation;
pub use correlate::{PartRef, Receipt, ReceiptIdBase};
pub use pdu::{BindMode, BindRequest, ShortMessage};
pub use receipt::{MessageOutcome, ReceiptState, message_outcome};
pub use server::{
    Authenticator, DeliverError, ServerConfig, ServerHandle, SmppServer, SubmitContext,
    SubmitHandler,
};
pub use simulator::{AnswerFate, Repeats, SimConfig, SimCounters, SimHandle, SimStats};
pub use status::{ErrorKind, classify};
