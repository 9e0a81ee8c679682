//! # mailwire
//!
//! Sans-IO building blocks for proving who a mail user is: SMTP AUTH with SASL (RFC 4954,
//! RFC 4422), STARTTLS (RFC 3207), POP3 STLS (RFC 2595), POP3 SASL AUTH (RFC 5034), APOP and
//! XTND XMIT (RFC 1939, draft-hansen-pop3-xtndext), POP-before-SMTP, and TLS client
//! certificates via SASL EXTERNAL.
//!
//! Nothing here touches a socket, a clock, a file or the OS random source behind the caller's
//! back: bytes go in, events and bytes to send come out, time is an argument and randomness is
//! a caller-given [`sasl::Random`] (with `sasl::OsRandom` under the `std` feature).
//!
//! Layers, bottom to top:
//! - [`wire`]: bounded CRLF line reader, dot-stuffing codec, base64 payload rules.
//! - [`sasl`]: every mechanism, client and server side, with names, ranking and SASLprep.
//! - [`smtp`]: codec and the `Client` / `Server` machines.
//! - [`pop3`]: codec and the `Client` / `Server` machines.
//! - [`relay`]: POP-before-SMTP table and the submission policy.
//! - [`tls`]: the TLS policy and what the caller reports after a handshake.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::todo,
    clippy::unimplemented
)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

extern crate alloc;

pub mod pop3;
pub mod relay;
pub mod sasl;
pub mod smtp;
pub mod tls;
pub mod wire;
