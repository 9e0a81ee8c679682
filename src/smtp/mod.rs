//! SMTP (RFC 5321) with AUTH (RFC 4954) and STARTTLS (RFC 3207): codec and sans-IO machines.

mod capabilities;

pub use self::capabilities::{Capabilities, CapabilityError, Extension, OtherExtension};
