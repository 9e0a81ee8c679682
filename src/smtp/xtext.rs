//! xtext (RFC 3461 §4), the encoding of the `AUTH=` (RFC 4954 §5), `ENVID` and `ORCPT`
//! parameters: printable ASCII except `+` and `=` stands for itself, every other octet is
//! `+` and two upper-case hex digits.

use alloc::string::String;
use alloc::vec::Vec;

/// Text that is not valid xtext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum XtextError {
    /// A character outside `!`..`~`, or a bare `=`.
    #[error("invalid character in xtext")]
    InvalidChar,
    /// `+` not followed by two upper-case hex digits.
    #[error("invalid hexchar in xtext")]
    InvalidHex,
}

/// Whether `byte` stands for itself in xtext (RFC 3461 §4 `xchar`).
fn is_xchar(byte: u8) -> bool {
    matches!(byte, b'!'..=b'~') && byte != b'+' && byte != b'='
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Checks that `text` is xtext, without decoding it (RFC 3461 §4).
pub fn validate(text: &[u8]) -> Result<(), XtextError> {
    let mut rest = text;
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        if byte == b'+' {
            match rest {
                [high, low, tail @ ..] if hex_value(*high).is_some() && hex_value(*low).is_some() => rest = tail,
                _ => return Err(XtextError::InvalidHex),
            }
        } else if !is_xchar(byte) {
            return Err(XtextError::InvalidChar);
        }
    }
    Ok(())
}

/// Decodes xtext into the octets it stands for (RFC 3461 §4).
pub fn decode(text: &[u8]) -> Result<Vec<u8>, XtextError> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        if byte == b'+' {
            match rest {
                [high, low, tail @ ..] => match (hex_value(*high), hex_value(*low)) {
                    (Some(high), Some(low)) => {
                        out.push(high << 4 | low);
                        rest = tail;
                    }
                    _ => return Err(XtextError::InvalidHex),
                },
                _ => return Err(XtextError::InvalidHex),
            }
        } else if is_xchar(byte) {
            out.push(byte);
        } else {
            return Err(XtextError::InvalidChar);
        }
    }
    Ok(out)
}

/// Encodes octets as xtext (RFC 3461 §4); the result is always valid xtext.
pub fn encode(data: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(data.len());
    for &byte in data {
        if is_xchar(byte) {
            out.push(char::from(byte));
        } else {
            out.push('+');
            for nibble in [byte >> 4, byte & 0x0f] {
                out.push(HEX.get(usize::from(nibble)).map_or('0', |&h| char::from(h)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4954 §5.1: `e=mc2@example.com` travels as `e+3Dmc2@example.com`.
    #[test]
    fn rfc4954_auth_examples() {
        assert_eq!(encode(b"e=mc2@example.com"), "e+3Dmc2@example.com");
        assert_eq!(decode(b"e+3Dmc2@example.com").unwrap(), b"e=mc2@example.com");
        assert_eq!(encode(b"john+@example.org"), "john+2B@example.org");
        assert_eq!(encode(b"<>"), "<>");
    }

    #[test]
    fn bad_xtext() {
        assert_eq!(decode(b"a=b"), Err(XtextError::InvalidChar));
        assert_eq!(decode(b"a b"), Err(XtextError::InvalidChar));
        assert_eq!(decode(b"a+3"), Err(XtextError::InvalidHex));
        assert_eq!(decode(b"a+3d"), Err(XtextError::InvalidHex));
        assert_eq!(decode(b"+"), Err(XtextError::InvalidHex));
        assert_eq!(validate(b"a\r\n"), Err(XtextError::InvalidChar));
        assert_eq!(validate(b"ok+2B"), Ok(()));
    }

    proptest::proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let text = encode(&data);
            proptest::prop_assert_eq!(validate(text.as_bytes()), Ok(()));
            proptest::prop_assert_eq!(decode(text.as_bytes()), Ok(data));
        }
    }
}
