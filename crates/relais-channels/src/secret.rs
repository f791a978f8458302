//! Comparing a secret a caller presents (a webhook's token, a relay's bearer secret) with
//! the channel's own, in time that does not depend on where they differ.

use crate::whatsapp::signature::keyed;
use hmac::Mac;

/// Whether `given` is `expected`. Both are reduced to an HMAC under one fixed key and the
/// digests compared with `verify_slice`, so that neither the length nor the first
/// difference shows in the time taken.
pub(crate) fn same_secret(expected: &str, given: &str) -> bool {
    const KEY: &[u8] = b"relais secret comparison";
    let Some(expected) = keyed(KEY, expected.as_bytes()) else {
        return false;
    };
    let digest = expected.finalize().into_bytes();
    keyed(KEY, given.as_bytes()).is_some_and(|given| given.verify_slice(&digest).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_match_only_when_equal() {
        assert!(same_secret("abc_DEF-1", "abc_DEF-1"));
        assert!(!same_secret("abc_DEF-1", "abc_DEF-2"));
        assert!(!same_secret("abc_DEF-1", "abc_DEF-1 "));
        assert!(!same_secret("abc_DEF-1", ""));
        assert!(!same_secret("", "x"));
    }
}
