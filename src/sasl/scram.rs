//! Placeholder: being implemented.
#![allow(unused_variables, dead_code)]
use super::*;
use alloc::boxed::Box;

pub(super) fn client(
    mechanism: &Mechanism,
    credentials: &Credentials,
    context: &ClientContext,
    rng: &mut dyn Random,
) -> Result<Box<dyn ClientMechanism>, SaslError> {
    Err(SaslError::Unsupported("scram".into()))
}

pub(super) fn server(
    mechanism: &Mechanism,
    context: &ServerContext,
    rng: &mut dyn Random,
) -> Result<Box<dyn ServerMechanism>, SaslError> {
    Err(SaslError::Unsupported("scram".into()))
}
