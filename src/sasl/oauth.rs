//! Placeholder: being implemented.
#![allow(unused_variables, dead_code)]
use super::*;
use alloc::boxed::Box;

pub(super) fn client(
    mechanism: &Mechanism,
    credentials: &Credentials,
    context: &ClientContext,
) -> Result<Box<dyn ClientMechanism>, SaslError> {
    Err(SaslError::Unsupported("oauth".into()))
}

pub(super) fn server(mechanism: &Mechanism, context: &ServerContext) -> Result<Box<dyn ServerMechanism>, SaslError> {
    Err(SaslError::Unsupported("oauth".into()))
}
