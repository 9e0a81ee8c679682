//! Placeholder: being implemented.
#![allow(unused_variables, dead_code)]
use super::*;
use alloc::boxed::Box;

pub(super) fn client(credentials: &Credentials) -> Result<Box<dyn ClientMechanism>, SaslError> {
    Err(SaslError::Unsupported("login".into()))
}

pub(super) fn server() -> Result<Box<dyn ServerMechanism>, SaslError> {
    Err(SaslError::Unsupported("login".into()))
}
