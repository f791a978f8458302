//! What a `command_status` means for a message: try again later (transient) or give up
//! (permanent). The table is documented in docs/smpp.md ("Error table"); keep both in step.

use rusmpp::CommandStatus;
use serde::{Deserialize, Serialize};

/// Whether a failed submit may succeed if retried later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    /// Retry later (same or another route): congestion, throttling, SMSC trouble, a link
    /// lost or a resp missing after the PDU was written (the SMSC may have the message).
    Transient,
    /// Retrying the same PDU cannot help: bad address, bad content, refused by policy.
    Permanent,
    /// No bind was up, or the bind dropped before the PDU was written: the SMSC never saw
    /// the message. Not a failure of the message; wait for a bind (`SmppClient::ready`).
    /// Never returned by [`classify`].
    #[serde(rename = "not_connected")]
    NotConnected,
}

/// Classifies a `command_status` received in a `submit_sm_resp` (or a `generic_nack`).
///
/// Rules: throttling, queue full, system errors, "try again" application errors and
/// bind-state errors (we reconnect and resend) are transient; everything that describes the
/// message itself (addresses, lengths, coding, flags, TLVs, policy) is permanent. Codes the
/// spec does not define (0x400-0x4FF are vendor specific) are transient: the engine retries
/// them a bounded number of times, which costs a few submits but never loses a message to an
/// SMSC's private "temporarily unavailable" code.
pub fn classify(status: CommandStatus) -> ErrorKind {
    use CommandStatus as S;
    match status {
        S::EsmeRok => ErrorKind::Transient, // not an error; callers do not ask
        S::EsmeRthrottled
        | S::EsmeRmsgqful
        | S::EsmeRsyserr
        | S::EsmeRxTAppn
        | S::EsmeRinvbndsts
        | S::EsmeRsubmitfail
        | S::EsmeRdeliveryfailure
        | S::EsmeRunknownerr
        | S::EsmeRqueryfail
        | S::EsmeRinvcmdid
        | S::EsmeRinvcmdlen
        | S::EsmeRsertypunavail
        | S::Other(_) => ErrorKind::Transient,
        S::EsmeRinvmsglen
        | S::EsmeRalybnd
        | S::EsmeRinvprtflg
        | S::EsmeRinvregdlvflg
        | S::EsmeRinvsrcadr
        | S::EsmeRinvdstadr
        | S::EsmeRinvmsgid
        | S::EsmeRbindfail
        | S::EsmeRinvpaswd
        | S::EsmeRinvsysid
        | S::EsmeRcancelfail
        | S::EsmeRreplacefail
        | S::EsmeRinvsertyp
        | S::EsmeRinvnumdests
        | S::EsmeRinvdlname
        | S::EsmeRinvdestflag
        | S::EsmeRinvsubrep
        | S::EsmeRinvesmclass
        | S::EsmeRcntsubdl
        | S::EsmeRinvsrcton
        | S::EsmeRinvsrcnpi
        | S::EsmeRinvdstton
        | S::EsmeRinvdstnpi
        | S::EsmeRinvsystyp
        | S::EsmeRinvrepflag
        | S::EsmeRinvnummsgs
        | S::EsmeRinvsched
        | S::EsmeRinvexpiry
        | S::EsmeRinvdftmsgid
        | S::EsmeRxPAppn
        | S::EsmeRxRAppn
        | S::EsmeRinvtlvstream
        | S::EsmeRtlvnotallwd
        | S::EsmeRinvtlvlen
        | S::EsmeRmissingtlv
        | S::EsmeRinvtlvval
        | S::EsmeRsertypunauth
        | S::EsmeRprohibited
        | S::EsmeRsertypdenied
        | S::EsmeRinvdcs
        | S::EsmeRinvsrcaddrsubunit
        | S::EsmeRinvdstaddrsubunit => ErrorKind::Permanent,
        // Broadcast (SMPP 5) codes: never answered to submit_sm by a 3.4 SMSC.
        _ => ErrorKind::Permanent,
    }
}

/// The numeric value of a status (for logs, APIs and the error table).
pub fn code(status: CommandStatus) -> u32 {
    u32::from(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_congestion_are_transient() {
        for s in [
            CommandStatus::EsmeRthrottled,
            CommandStatus::EsmeRmsgqful,
            CommandStatus::EsmeRsyserr,
            CommandStatus::EsmeRxTAppn,
            CommandStatus::Other(0x401),
        ] {
            assert_eq!(classify(s), ErrorKind::Transient, "{s:?}");
        }
    }

    #[test]
    fn bad_addresses_and_content_are_permanent() {
        for s in [
            CommandStatus::EsmeRinvdstadr,
            CommandStatus::EsmeRinvsrcadr,
            CommandStatus::EsmeRinvmsglen,
            CommandStatus::EsmeRinvdcs,
            CommandStatus::EsmeRxRAppn,
            CommandStatus::EsmeRprohibited,
        ] {
            assert_eq!(classify(s), ErrorKind::Permanent, "{s:?}");
        }
        assert_eq!(code(CommandStatus::EsmeRthrottled), 0x58);
    }
}
