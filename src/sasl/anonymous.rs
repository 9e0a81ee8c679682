//! ANONYMOUS (RFC 4505): a guest login whose one message is optional trace information
//! (0 to 255 UTF-8 characters, often an email address), which the server may log.
//!
//! The trace is not an identity: a guest that the application lets in authenticates as
//! [`ANONYMOUS_ID`].

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::plain::deny;
use super::{
    AuthFailure, ClientMechanism, CredentialAnswer, CredentialRequest, Credentials, Identity, Mechanism, SaslError,
    Secret, ServerMechanism, ServerStep, identity_is_clean,
};

/// The authcid of a guest let in by ANONYMOUS.
const ANONYMOUS_ID: &str = "anonymous";
/// Most characters of trace information (RFC 4505 §3).
const MAX_TRACE_CHARS: usize = 255;

/// Checks a trace: at most 255 characters, no NUL, CR or LF.
fn trace_is_valid(trace: &str) -> bool {
    identity_is_clean(trace.as_bytes()) && trace.chars().nth(MAX_TRACE_CHARS).is_none()
}

pub(super) fn client(credentials: &Credentials) -> Result<Box<dyn ClientMechanism>, SaslError> {
    let trace = credentials.trace.as_deref().unwrap_or("");
    if !trace_is_valid(trace) {
        return Err(SaslError::InvalidCredential("trace must be 0 to 255 characters without NUL, CR or LF"));
    }
    Ok(Box::new(AnonymousClient { message: Some(Secret::from(trace)) }))
}

/// ANONYMOUS client: the trace is the initial response (empty: `AUTH ANONYMOUS =`, B06).
#[derive(Debug)]
struct AnonymousClient {
    message: Option<Secret>,
}

impl ClientMechanism for AnonymousClient {
    fn mechanism(&self) -> Mechanism {
        Mechanism::Anonymous
    }

    fn initial_response(&mut self) -> Result<Option<Secret>, SaslError> {
        self.message.take().map(Some).ok_or(SaslError::UnexpectedChallenge)
    }

    /// Without an initial response the server sends an empty challenge; its text is ignored.
    fn step(&mut self, _challenge: &[u8]) -> Result<Secret, SaslError> {
        self.message.take().ok_or(SaslError::UnexpectedChallenge)
    }

    fn finish(&mut self, _additional: Option<&[u8]>) -> Result<(), SaslError> {
        if self.message.is_some() {
            return Err(SaslError::ServerNotVerified("success before the trace was sent"));
        }
        Ok(())
    }
}

pub(super) fn server() -> Result<Box<dyn ServerMechanism>, SaslError> {
    Ok(Box::new(AnonymousServer { state: State::Start }))
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    Start,
    WaitingResponse,
    Deciding,
    Done,
}

/// ANONYMOUS server: checks the trace and asks whether guests may log in.
#[derive(Debug)]
struct AnonymousServer {
    state: State,
}

impl AnonymousServer {
    fn handle(&mut self, message: &[u8]) -> ServerStep {
        let Ok(trace) = core::str::from_utf8(message) else {
            return ServerStep::Failure(AuthFailure::Malformed("trace is not UTF-8"));
        };
        if !trace_is_valid(trace) {
            return ServerStep::Failure(AuthFailure::Malformed("trace too long or with NUL, CR or LF"));
        }
        self.state = State::Deciding;
        ServerStep::Ask(CredentialRequest::Anonymous { trace: trace.to_string() })
    }
}

impl ServerMechanism for AnonymousServer {
    fn mechanism(&self) -> Mechanism {
        Mechanism::Anonymous
    }

    fn start(&mut self, initial_response: Option<&[u8]>) -> ServerStep {
        if core::mem::replace(&mut self.state, State::Done) != State::Start {
            return ServerStep::Failure(AuthFailure::Misuse("start called twice"));
        }
        match initial_response {
            Some(message) => self.handle(message),
            None => {
                self.state = State::WaitingResponse;
                ServerStep::Challenge(Vec::new())
            }
        }
    }

    fn step(&mut self, response: &[u8]) -> ServerStep {
        if core::mem::replace(&mut self.state, State::Done) != State::WaitingResponse {
            return ServerStep::Failure(AuthFailure::Misuse("no response expected"));
        }
        self.handle(response)
    }

    fn answer(&mut self, answer: CredentialAnswer) -> ServerStep {
        match (core::mem::replace(&mut self.state, State::Done), answer) {
            (State::Deciding, CredentialAnswer::Verified) => ServerStep::Success {
                identity: Identity { authcid: String::from(ANONYMOUS_ID), authzid: None },
                additional: None,
            },
            (State::Deciding, answer) => ServerStep::Failure(deny(answer)),
            _ => ServerStep::Failure(AuthFailure::Misuse("no question pending")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::{ClientContext, FixedRandom, client as make_client, server as make_server};
    use crate::wire::{Payload, decode_response, encode_initial, encode_payload};

    fn anonymous_client(trace: Option<&str>) -> Result<Box<dyn ClientMechanism>, SaslError> {
        let creds = Credentials { trace: trace.map(String::from), ..Credentials::default() };
        make_client(&Mechanism::Anonymous, &creds, &ClientContext::new("smtp", "h"), &mut FixedRandom::new(0))
    }

    fn anonymous_server() -> Box<dyn ServerMechanism> {
        make_server(&Mechanism::Anonymous, &crate::sasl::ServerContext::new("smtp", "h"), &mut FixedRandom::new(0))
            .unwrap()
    }

    fn asks(trace: &str) -> ServerStep {
        ServerStep::Ask(CredentialRequest::Anonymous { trace: trace.into() })
    }

    /// Vectors §13 (RFC 4505 §4): trace `sirhc`, `c2lyaGM=`.
    #[test]
    fn rfc4505_example_both_sides() {
        let mut client = anonymous_client(Some("sirhc")).unwrap();
        let mut server = anonymous_server();
        assert_eq!(server.start(None), ServerStep::Challenge(Vec::new()));
        let message = client.step(b"").unwrap();
        assert_eq!(encode_payload(message.expose()), "c2lyaGM=");
        assert_eq!(server.step(message.expose()), asks("sirhc"));
        assert_eq!(
            server.answer(CredentialAnswer::Verified),
            ServerStep::Success { identity: Identity { authcid: "anonymous".into(), authzid: None }, additional: None }
        );
        client.finish(None).unwrap();
    }

    /// B06: `AUTH ANONYMOUS =` and `334 ` / `=` both carry an empty trace, which is valid.
    #[test]
    fn field_b06_empty_trace() {
        let mut client = anonymous_client(None).unwrap();
        let message = client.initial_response().unwrap().unwrap();
        assert_eq!(encode_initial(message.expose()), "=");
        assert_eq!(decode_response(b"="), Ok(Payload::Empty));
        let mut server = anonymous_server();
        assert_eq!(server.start(Some(b"")), asks(""));
        let mut server = anonymous_server();
        assert_eq!(server.start(None), ServerStep::Challenge(Vec::new()));
        assert_eq!(server.step(b""), asks(""));
        assert_eq!(server.answer(CredentialAnswer::Rejected), ServerStep::Failure(AuthFailure::Credentials));
    }

    /// B17: the trace is the only identity-like field; CR, LF and NUL are refused on both sides.
    #[test]
    fn field_b17_line_breaks_in_the_trace() {
        for bad in [&b"nouser\r\n+OK injected"[..], b"a\nb", b"a\rb", b"a\0b"] {
            let mut server = anonymous_server();
            assert!(matches!(server.start(Some(bad)), ServerStep::Failure(AuthFailure::Malformed(_))), "{bad:?}");
        }
        for bad in ["a\rb", "a\nb", "a\0b"] {
            assert!(matches!(anonymous_client(Some(bad)), Err(SaslError::InvalidCredential(_))));
        }
    }

    #[test]
    fn trace_length_counts_characters() {
        let longest = "€".repeat(255);
        assert!(anonymous_client(Some(&longest)).is_ok());
        assert_eq!(anonymous_server().start(Some(longest.as_bytes())), asks(&longest));
        let too_long = "a".repeat(256);
        assert!(matches!(anonymous_client(Some(&too_long)), Err(SaslError::InvalidCredential(_))));
        assert!(matches!(
            anonymous_server().start(Some(too_long.as_bytes())),
            ServerStep::Failure(AuthFailure::Malformed(_))
        ));
    }

    #[test]
    fn malformed_and_out_of_order() {
        assert!(matches!(anonymous_server().start(Some(b"\xff")), ServerStep::Failure(AuthFailure::Malformed(_))));
        let mut server = anonymous_server();
        assert!(matches!(server.step(b""), ServerStep::Failure(AuthFailure::Misuse(_))));
        let mut server = anonymous_server();
        server.start(Some(b"x"));
        assert!(matches!(server.start(Some(b"x")), ServerStep::Failure(AuthFailure::Misuse(_))));
        assert!(matches!(server.answer(CredentialAnswer::Verified), ServerStep::Failure(AuthFailure::Misuse(_))));
        let mut server = anonymous_server();
        server.start(Some(b"x"));
        assert_eq!(server.answer(CredentialAnswer::TemporaryFailure), ServerStep::Failure(AuthFailure::Temporary));
        let mut client = anonymous_client(None).unwrap();
        assert!(matches!(client.finish(None), Err(SaslError::ServerNotVerified(_))));
        client.initial_response().unwrap();
        assert_eq!(client.step(b""), Err(SaslError::UnexpectedChallenge));
    }

    proptest::proptest! {
        #[test]
        fn client_and_server_agree(trace in "[^\\x00\\r\\n]{0,255}") {
            let mut client = anonymous_client(Some(&trace)).unwrap();
            let mut server = anonymous_server();
            let step = server.start(Some(client.initial_response().unwrap().unwrap().expose()));
            proptest::prop_assert_eq!(step, asks(&trace));
        }
    }
}
