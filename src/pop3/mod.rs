//! POP3 (RFC 1939) with CAPA (RFC 2449), STLS (RFC 2595), AUTH (RFC 5034), APOP and XTND XMIT:
//! codec and sans-IO machines.

pub mod apop;
mod capabilities;
pub mod client;
mod command;
mod response;
pub mod server;

pub use self::capabilities::{
    Capabilities, CapabilityError, Expire, ExpirePolicy, LoginDelay, MAX_ARGS, MAX_MECHANISMS, MAX_OTHER,
    OtherCapability,
};
pub use self::client::{Client, ClientConfig};
pub use self::command::{ARG_LIMIT, Command, ParseError, WriteError, parse_number};
pub use self::response::{
    CodeKind, Continuation, DropListing, MultiLine, MultiLineReader, Response, ResponseCode, ResponseError,
    ScanListing, Status, StatusLine, UidListing, unstuff,
};
pub use self::server::{Server, ServerConfig};
