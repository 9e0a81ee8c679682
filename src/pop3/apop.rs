//! APOP (RFC 1939 §7): the greeting's timestamp and the MD5 digest that proves the shared
//! secret without sending it.
//!
//! ```
//! use mailwire::pop3::apop;
//!
//! let greeting = b"POP3 server ready <1896.697170952@dbc.mtview.ca.us>";
//! let timestamp = apop::find_timestamp(greeting).unwrap();
//! let digest = apop::digest(timestamp, b"tanstaaf");
//! assert_eq!(digest, "c4c9334bac560ecc979e58001b3e22fb");
//! assert!(apop::verify(timestamp, b"tanstaaf", digest.as_bytes()));
//! ```

use alloc::string::String;
use md5::{Digest as _, Md5};

use crate::sasl::{Random, ct_eq, nonce};

/// Longest timestamp accepted or generated, angle brackets included (a `msg-id` fits easily).
pub const MAX_TIMESTAMP: usize = 256;

/// Length of a digest in hex.
pub const DIGEST_LEN: usize = 32;

/// A host name that cannot go into a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("host name unusable in an APOP timestamp (empty, too long, or with space, <, >, @ or control characters)")]
pub struct InvalidHost;

/// Whether a byte may appear between the brackets: printable ASCII except space and `<>`.
fn timestamp_byte(byte: u8) -> bool {
    byte.is_ascii_graphic() && byte != b'<' && byte != b'>'
}

/// Finds the first APOP timestamp anywhere in a greeting (RFC 1939 §7): `<` then printable
/// characters containing an `@` with something on both sides, then `>`, at most
/// [`MAX_TIMESTAMP`] octets. The brackets are part of the result.
pub fn find_timestamp(greeting: &[u8]) -> Option<&[u8]> {
    let mut rest = greeting;
    let mut offset = 0;
    while let Some(open) = memchr::memchr(b'<', rest) {
        let start = offset + open;
        let after = greeting.get(start + 1..).unwrap_or_default();
        let inner_len = after.iter().take(MAX_TIMESTAMP - 2).take_while(|&&b| timestamp_byte(b)).count();
        if after.get(inner_len) == Some(&b'>') {
            let inner = after.get(..inner_len).unwrap_or_default();
            let valid = match memchr::memchr(b'@', inner) {
                Some(at) => at > 0 && at + 1 < inner.len(),
                None => false,
            };
            if valid {
                return greeting.get(start..start + inner_len + 2);
            }
        }
        offset = start + 1;
        rest = greeting.get(offset..).unwrap_or_default();
    }
    None
}

/// The APOP digest: lowercase hex of `MD5(timestamp secret)` (RFC 1939 §7).
pub fn digest(timestamp: &[u8], secret: &[u8]) -> String {
    let mut hasher = Md5::new();
    hasher.update(timestamp);
    hasher.update(secret);
    let hash = hasher.finalize();
    let mut out = String::with_capacity(DIGEST_LEN);
    for byte in hash.iter() {
        out.push(hex_digit(byte >> 4));
        out.push(hex_digit(byte & 0x0f));
    }
    out
}

fn hex_digit(nibble: u8) -> char {
    char::from(if nibble < 10 { b'0' + nibble } else { b'a' + nibble - 10 })
}

/// Checks a client's digest in constant time (RFC 1939 §7). Upper-case hex is accepted.
pub fn verify(timestamp: &[u8], secret: &[u8], client_digest: &[u8]) -> bool {
    let expected = digest(timestamp, secret);
    let mut given = [0u8; DIGEST_LEN];
    if client_digest.len() != DIGEST_LEN {
        return false;
    }
    for (slot, byte) in given.iter_mut().zip(client_digest) {
        *slot = byte.to_ascii_lowercase();
    }
    ct_eq(expected.as_bytes(), &given)
}

/// Whether `digest` has the shape of an APOP digest: 32 hex digits.
pub fn is_digest(digest: &[u8]) -> bool {
    digest.len() == DIGEST_LEN && digest.iter().all(u8::is_ascii_hexdigit)
}

/// A fresh timestamp for a greeting: `<random.random@host>` from the caller's randomness
/// (RFC 1939 §7 asks for a value unique to each greeting).
pub fn timestamp(rng: &mut dyn Random, host: &str) -> Result<String, InvalidHost> {
    check_host(host)?;
    let mut out = String::with_capacity(host.len() + 40);
    out.push('<');
    out.push_str(&nonce(rng, 16));
    out.push('.');
    out.push_str(&nonce(rng, 12));
    out.push('@');
    out.push_str(host);
    out.push('>');
    Ok(out)
}

/// Checks that `host` can end an APOP timestamp.
pub fn check_host(host: &str) -> Result<(), InvalidHost> {
    if host.is_empty() || host.len() > MAX_TIMESTAMP - 40 || !host.bytes().all(|b| timestamp_byte(b) && b != b'@') {
        return Err(InvalidHost);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::FixedRandom;

    /// RFC 1939 §7 (rfc-vectors.md §8).
    #[test]
    fn rfc1939_apop_vector() {
        let greeting = b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>";
        let timestamp = find_timestamp(greeting).unwrap();
        assert_eq!(timestamp, b"<1896.697170952@dbc.mtview.ca.us>");
        assert_eq!(digest(timestamp, b"tanstaaf"), "c4c9334bac560ecc979e58001b3e22fb");
        assert!(verify(timestamp, b"tanstaaf", b"c4c9334bac560ecc979e58001b3e22fb"));
        assert!(verify(timestamp, b"tanstaaf", b"C4C9334BAC560ECC979E58001B3E22FB"));
        assert!(!verify(timestamp, b"tanstaaF", b"c4c9334bac560ecc979e58001b3e22fb"));
        assert!(!verify(timestamp, b"tanstaaf", b"c4c9334bac560ecc979e58001b3e22f"));
        assert!(!verify(timestamp, b"tanstaaf", b""));
        assert!(is_digest(b"c4c9334bac560ecc979e58001b3e22fb"));
        assert!(!is_digest(b"c4c9334bac560ecc979e58001b3e22fg"));
    }

    #[test]
    fn timestamp_anywhere_and_shapes() {
        assert_eq!(find_timestamp(b"<a@b> ready"), Some(&b"<a@b>"[..]));
        assert_eq!(find_timestamp(b"x <no-at> then <1.2@h.example> end"), Some(&b"<1.2@h.example>"[..]));
        assert_eq!(find_timestamp(b"<<1@h>"), Some(&b"<1@h>"[..]));
        for bad in [&b"ready"[..], b"<@h>", b"<a@>", b"<a b@h>", b"<a@h", b"a@h>", b"<>", b"<\x01@h>", b"<a@h\r\n>"] {
            assert_eq!(find_timestamp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn timestamp_is_bounded() {
        let mut long = alloc::vec![b'<'];
        long.extend(core::iter::repeat_n(b'a', 300));
        long.extend_from_slice(b"@h>");
        assert_eq!(find_timestamp(&long), None);
        let mut fits = alloc::vec![b'<'];
        fits.extend(core::iter::repeat_n(b'a', MAX_TIMESTAMP - 4));
        fits.extend_from_slice(b"@h>");
        assert_eq!(find_timestamp(&fits).map(<[u8]>::len), Some(MAX_TIMESTAMP));
    }

    #[test]
    fn generated_timestamps() {
        let a = timestamp(&mut FixedRandom::new(1), "pop.example.org").unwrap();
        let b = timestamp(&mut FixedRandom::new(2), "pop.example.org").unwrap();
        assert_ne!(a, b);
        let greeting = alloc::format!("+OK ready {a}");
        assert_eq!(find_timestamp(greeting.as_bytes()), Some(a.as_bytes()));
        assert!(a.ends_with("@pop.example.org>"));
        for bad in ["", "a b", "a@b", "h\r\n", "<h>"] {
            assert_eq!(timestamp(&mut FixedRandom::new(1), bad), Err(InvalidHost), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(greeting in proptest::collection::vec(proptest::sample::select(alloc::vec![b'<', b'>', b'@', b'a', b' ', 0u8]), 0..80)) {
            if let Some(ts) = find_timestamp(&greeting) {
                proptest::prop_assert!(ts.starts_with(b"<") && ts.ends_with(b">") && ts.contains(&b'@'));
            }
        }

        #[test]
        fn digest_round_trip(seed in proptest::num::u64::ANY, secret in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            let ts = timestamp(&mut FixedRandom::new(seed), "h.example").unwrap();
            let d = digest(ts.as_bytes(), &secret);
            proptest::prop_assert!(is_digest(d.as_bytes()));
            proptest::prop_assert!(verify(ts.as_bytes(), &secret, d.as_bytes()));
        }
    }
}
