//! Receipt texts, UDHs and SMS decoding come straight from the network: none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relais_core::sms::{DataCoding, decode, segment_info, split};
use relais_smpp::concat::parse_udh;
use relais_smpp::receipt::parse_receipt_text;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let _ = parse_receipt_text(&s);
    let _ = parse_udh(data);
    for dc in [DataCoding::Gsm7, DataCoding::Latin1, DataCoding::Ucs2] {
        let t = decode(data, dc);
        assert_eq!(split(&t).concat(), t);
        let _ = segment_info(&t);
    }
});
