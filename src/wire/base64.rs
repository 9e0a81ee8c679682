//! Base64 payload rules of SASL exchanges in SMTP (RFC 4954 §4) and POP3 (RFC 5034 §4).

use alloc::string::String;
use alloc::vec::Vec;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

/// A client line during an AUTH exchange, decoded.
#[derive(Clone, PartialEq, Eq)]
pub enum Payload {
    /// Decoded bytes (wiped on drop: they may hold a password).
    Data(Zeroizing<Vec<u8>>),
    /// `=` or an empty line: a present but empty response.
    Empty,
    /// `*`: the client cancels the exchange.
    Cancel,
}

impl core::fmt::Debug for Payload {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Data(data) => write!(f, "Data(<{} octets redacted>)", data.len()),
            Self::Empty => f.write_str("Empty"),
            Self::Cancel => f.write_str("Cancel"),
        }
    }
}

/// A payload that is not strict base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Whitespace inside or around the payload.
    #[error("whitespace in a base64 payload")]
    Whitespace,
    /// A character outside the base64 alphabet, bad padding, or a wrong length.
    #[error("invalid base64 payload")]
    Invalid,
}

/// Strict base64 (RFC 4648 §4, with padding); the empty string decodes to nothing.
pub fn decode_base64(text: &[u8]) -> Result<Zeroizing<Vec<u8>>, PayloadError> {
    if text.iter().any(u8::is_ascii_whitespace) {
        return Err(PayloadError::Whitespace);
    }
    STANDARD.decode(text).map(Zeroizing::new).map_err(|_| PayloadError::Invalid)
}

/// Decodes a client's line in an AUTH exchange: `*` cancels, `=` or nothing is empty,
/// anything else must be strict base64.
pub fn decode_response(line: &[u8]) -> Result<Payload, PayloadError> {
    match line {
        b"*" => Ok(Payload::Cancel),
        b"=" | b"" => Ok(Payload::Empty),
        _ => decode_base64(line).map(Payload::Data),
    }
}

/// Base64 for a challenge or a continuation response; empty data gives the empty string.
pub fn encode_payload(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// Base64 for an initial response on the AUTH command line: empty data is `=`
/// (RFC 4954 §4, RFC 5034 §4).
pub fn encode_initial(data: &[u8]) -> String {
    if data.is_empty() { String::from("=") } else { STANDARD.encode(data) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_b06_equals_is_empty() {
        assert_eq!(decode_response(b"="), Ok(Payload::Empty));
        assert_eq!(decode_response(b""), Ok(Payload::Empty));
        assert_eq!(encode_initial(b""), "=");
        assert_eq!(encode_payload(b""), "");
    }

    #[test]
    fn star_cancels() {
        assert_eq!(decode_response(b"*"), Ok(Payload::Cancel));
    }

    #[test]
    fn strictness() {
        assert_eq!(decode_response(b"dGVz dA=="), Err(PayloadError::Whitespace));
        assert_eq!(decode_response(b" dGVzdA=="), Err(PayloadError::Whitespace));
        for bad in [&b"=AAA"[..], b"AAA=BBB", b"dGVzdA", b"dGV!dA==", b"**"] {
            assert_eq!(decode_response(bad), Err(PayloadError::Invalid), "{bad:?}");
        }
        assert_eq!(
            decode_response(b"dGVzdAB0ZXN0ADEyMzQ="),
            Ok(Payload::Data(Zeroizing::new(b"test\0test\x001234".to_vec())))
        );
    }

    #[test]
    fn debug_redacts() {
        let text = alloc::format!("{:?}", decode_response(b"c2VjcmV0").unwrap());
        assert!(!text.contains("secret"));
    }

    proptest::proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let expected = if data.is_empty() { Payload::Empty } else { Payload::Data(Zeroizing::new(data.clone())) };
            proptest::prop_assert_eq!(decode_response(encode_initial(&data).as_bytes()), Ok(expected.clone()));
            proptest::prop_assert_eq!(decode_response(encode_payload(&data).as_bytes()), Ok(expected));
        }
    }
}
