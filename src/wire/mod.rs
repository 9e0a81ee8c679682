//! Framing shared by SMTP and POP3: a bounded CRLF [`LineReader`], the streaming dot-stuffing
//! codec ([`DotEncoder`], [`DotDecoder`]) and the base64 payload rules of SASL exchanges
//! ([`decode_response`], [`encode_payload`]).

mod base64;
mod dot;
mod line;

pub use self::base64::{Payload, PayloadError, decode_base64, decode_response, encode_initial, encode_payload};
pub use self::dot::{Decoded, DotDecoder, DotEncoder};
pub use self::line::{LineError, LineReader, Lines};

/// SMTP command line limit, CRLF included (RFC 5321 §4.5.3.1.4).
pub const SMTP_COMMAND_LIMIT: usize = 512;
/// SMTP reply line limit, CRLF included (RFC 5321 §4.5.3.1.5).
pub const SMTP_REPLY_LIMIT: usize = 512;
/// SASL exchange line limit for SMTP AUTH and POP3 AUTH continuations (RFC 4954 §4).
pub const AUTH_LINE_LIMIT: usize = 12288;
/// POP3 command limit with CAPA, CRLF included (RFC 2449 §4).
pub const POP3_COMMAND_LIMIT: usize = 255;
/// POP3 response line limit, CRLF included (RFC 2449 §4).
pub const POP3_RESPONSE_LIMIT: usize = 512;
