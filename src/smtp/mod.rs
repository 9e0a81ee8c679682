//! SMTP (RFC 5321) with AUTH (RFC 4954) and STARTTLS (RFC 3207): codec and sans-IO machines.

mod capabilities;

pub use self::capabilities::{
    Capabilities, CapabilitiesRef, CapabilityError, Extension, MAX_EHLO_TEXT, OtherExtension,
};

mod command;
mod reply;
pub mod xtext;

pub use self::command::{Body, Command, Notify, Parameter, Parameters, ParseError, Path, Ret, WriteError};
pub use self::reply::{EnhancedCode, ParsedLine, Reply, ReplyError, ReplyLine, ReplyParser, ReplyWriteError};

pub mod client;

pub use self::client::{Client, ClientConfig};

pub mod server;

pub use self::server::{Server, ServerConfig};
