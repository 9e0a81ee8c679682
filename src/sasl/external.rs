//! EXTERNAL (RFC 4422 appendix A): the client is already authenticated outside SASL, here by
//! its TLS certificate; its one message is the authzid to act as, possibly empty.
//!
//! The server authenticates the client as [`ServerContext::tls_identity`], the identity the
//! driver verified from the certificate. Without one the mechanism is unavailable.

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::{
    AuthFailure, ClientMechanism, CredentialAnswer, CredentialRequest, Credentials, Identity, Mechanism, SaslError,
    Secret, ServerContext, ServerMechanism, ServerStep, identity_is_clean,
};

/// Longest authzid accepted, as for PLAIN (RFC 4616 §2).
const MAX_AUTHZID: usize = 255;

pub(super) fn client(credentials: &Credentials) -> Result<Box<dyn ClientMechanism>, SaslError> {
    let authzid = credentials.authzid.as_deref().unwrap_or("");
    if authzid.len() > MAX_AUTHZID {
        return Err(SaslError::InvalidCredential("authzid longer than 255 octets"));
    }
    Ok(Box::new(ExternalClient { message: Some(Secret::from(authzid)) }))
}

/// EXTERNAL client: the authzid is the initial response (empty: `AUTH EXTERNAL =`, B06).
#[derive(Debug)]
struct ExternalClient {
    message: Option<Secret>,
}

impl ClientMechanism for ExternalClient {
    fn mechanism(&self) -> Mechanism {
        Mechanism::External
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
            return Err(SaslError::ServerNotVerified("success before the authzid was sent"));
        }
        Ok(())
    }
}

pub(super) fn server(context: &ServerContext) -> Result<Box<dyn ServerMechanism>, SaslError> {
    Ok(Box::new(ExternalServer { tls_identity: context.tls_identity.clone(), state: State::Start }))
}

#[derive(Debug)]
enum State {
    Start,
    WaitingResponse,
    Authorizing { authcid: String, authzid: String },
    Done,
}

/// EXTERNAL server: authenticates as the TLS identity, asks before acting as another one.
#[derive(Debug)]
struct ExternalServer {
    tls_identity: Option<String>,
    state: State,
}

impl ExternalServer {
    fn handle(&mut self, authzid: &[u8]) -> ServerStep {
        let Some(authcid) = self.tls_identity.clone() else {
            return ServerStep::Failure(AuthFailure::Unavailable("no TLS client identity"));
        };
        if authzid.len() > MAX_AUTHZID {
            return ServerStep::Failure(AuthFailure::Malformed("authzid longer than 255 octets"));
        }
        if !identity_is_clean(authzid) {
            return ServerStep::Failure(AuthFailure::Malformed("NUL, CR or LF in the authzid"));
        }
        let Ok(authzid) = core::str::from_utf8(authzid) else {
            return ServerStep::Failure(AuthFailure::Malformed("not UTF-8"));
        };
        if authzid.is_empty() || authzid == authcid {
            return ServerStep::Success { identity: Identity { authcid, authzid: None }, additional: None };
        }
        self.state = State::Authorizing { authcid: authcid.clone(), authzid: authzid.to_string() };
        ServerStep::Ask(CredentialRequest::Authorize { authcid, authzid: authzid.to_string() })
    }
}

impl ServerMechanism for ExternalServer {
    fn mechanism(&self) -> Mechanism {
        Mechanism::External
    }

    fn start(&mut self, initial_response: Option<&[u8]>) -> ServerStep {
        if !matches!(core::mem::replace(&mut self.state, State::Done), State::Start) {
            return ServerStep::Failure(AuthFailure::Misuse("start called twice"));
        }
        match self.tls_identity.as_deref() {
            None => return ServerStep::Failure(AuthFailure::Unavailable("no TLS client identity")),
            Some(identity) if !identity_is_clean(identity.as_bytes()) || identity.is_empty() => {
                return ServerStep::Failure(AuthFailure::Unavailable("TLS client identity unusable"));
            }
            Some(_) => {}
        }
        match initial_response {
            Some(authzid) => self.handle(authzid),
            None => {
                self.state = State::WaitingResponse;
                ServerStep::Challenge(Vec::new())
            }
        }
    }

    fn step(&mut self, response: &[u8]) -> ServerStep {
        if !matches!(core::mem::replace(&mut self.state, State::Done), State::WaitingResponse) {
            return ServerStep::Failure(AuthFailure::Misuse("no response expected"));
        }
        self.handle(response)
    }

    fn answer(&mut self, answer: CredentialAnswer) -> ServerStep {
        let State::Authorizing { authcid, authzid } = core::mem::replace(&mut self.state, State::Done) else {
            return ServerStep::Failure(AuthFailure::Misuse("no question pending"));
        };
        match answer {
            CredentialAnswer::Verified => {
                ServerStep::Success { identity: Identity { authcid, authzid: Some(authzid) }, additional: None }
            }
            CredentialAnswer::TemporaryFailure => ServerStep::Failure(AuthFailure::Temporary),
            CredentialAnswer::Rejected | CredentialAnswer::UnknownUser => {
                ServerStep::Failure(AuthFailure::NotAuthorized)
            }
            _ => ServerStep::Failure(AuthFailure::Misuse("wrong kind of answer")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::{ClientContext, FixedRandom, client as make_client, server as make_server};
    use crate::wire::encode_initial;

    fn external_client(authzid: Option<&str>) -> Box<dyn ClientMechanism> {
        let creds = Credentials { authzid: authzid.map(String::from), ..Credentials::default() };
        make_client(&Mechanism::External, &creds, &ClientContext::new("smtp", "h"), &mut FixedRandom::new(0)).unwrap()
    }

    fn external_server(tls_identity: Option<&str>) -> Box<dyn ServerMechanism> {
        let mut ctx = ServerContext::new("smtp", "h");
        ctx.tls_identity = tls_identity.map(String::from);
        make_server(&Mechanism::External, &ctx, &mut FixedRandom::new(0)).unwrap()
    }

    fn success(authcid: &str, authzid: Option<&str>) -> ServerStep {
        ServerStep::Success {
            identity: Identity { authcid: authcid.into(), authzid: authzid.map(String::from) },
            additional: None,
        }
    }

    /// Vectors §14 and RFC 4954 example D: `AUTH EXTERNAL =` → 235.
    #[test]
    fn rfc4954_example_d_and_field_b06_empty_authzid() {
        let mut client = external_client(None);
        let message = client.initial_response().unwrap().unwrap();
        assert_eq!(encode_initial(message.expose()), "=");
        let mut server = external_server(Some("client.example.com"));
        assert_eq!(server.start(Some(message.expose())), success("client.example.com", None));
        client.finish(None).unwrap();
    }

    #[test]
    fn authzid_equal_to_identity_or_asked() {
        let mut server = external_server(Some("alice"));
        assert_eq!(server.start(Some(b"alice")), success("alice", None));
        let mut server = external_server(Some("alice"));
        assert_eq!(
            server.start(Some(b"bob")),
            ServerStep::Ask(CredentialRequest::Authorize { authcid: "alice".into(), authzid: "bob".into() })
        );
        assert_eq!(server.answer(CredentialAnswer::Verified), success("alice", Some("bob")));
        let mut server = external_server(Some("alice"));
        server.start(Some(b"bob"));
        assert_eq!(server.answer(CredentialAnswer::Rejected), ServerStep::Failure(AuthFailure::NotAuthorized));
        let mut server = external_server(Some("alice"));
        server.start(Some(b"bob"));
        assert_eq!(server.answer(CredentialAnswer::TemporaryFailure), ServerStep::Failure(AuthFailure::Temporary));
    }

    #[test]
    fn no_certificate_is_unavailable() {
        for initial in [None, Some(&b""[..]), Some(b"bob")] {
            let mut server = external_server(None);
            assert!(matches!(server.start(initial), ServerStep::Failure(AuthFailure::Unavailable(_))));
        }
        let mut server = external_server(Some("bad\r\nidentity"));
        assert!(matches!(server.start(Some(b"")), ServerStep::Failure(AuthFailure::Unavailable(_))));
    }

    #[test]
    fn without_initial_response_empty_challenge() {
        let mut server = external_server(Some("alice"));
        assert_eq!(server.start(None), ServerStep::Challenge(Vec::new()));
        let mut client = external_client(Some("alice"));
        assert!(matches!(client.finish(None), Err(SaslError::ServerNotVerified(_))));
        let message = client.step(b"").unwrap();
        assert_eq!(server.step(message.expose()), success("alice", None));
        assert_eq!(client.step(b""), Err(SaslError::UnexpectedChallenge));
        assert_eq!(client.initial_response(), Err(SaslError::UnexpectedChallenge));
    }

    /// B17: the authzid is the only identity field; CR, LF and NUL are refused on both sides.
    #[test]
    fn field_b17_line_breaks_in_the_authzid() {
        for bad in [&b"nouser\r\n+OK injected"[..], b"a\nb", b"a\rb", b"a\0b"] {
            let mut server = external_server(Some("alice"));
            assert!(matches!(server.start(Some(bad)), ServerStep::Failure(AuthFailure::Malformed(_))), "{bad:?}");
        }
        for bad in ["a\rb", "a\nb", "a\0b"] {
            let creds = Credentials { authzid: Some(bad.into()), ..Credentials::default() };
            let err =
                make_client(&Mechanism::External, &creds, &ClientContext::new("smtp", "h"), &mut FixedRandom::new(0));
            assert!(matches!(err, Err(SaslError::InvalidCredential(_))));
        }
    }

    #[test]
    fn malformed_and_out_of_order() {
        for bad in [&[b'a'; 256][..], b"\xff\xfe"] {
            let mut server = external_server(Some("alice"));
            assert!(matches!(server.start(Some(bad)), ServerStep::Failure(AuthFailure::Malformed(_))));
        }
        let mut server = external_server(Some("alice"));
        assert!(matches!(server.step(b""), ServerStep::Failure(AuthFailure::Misuse(_))));
        assert!(matches!(server.answer(CredentialAnswer::Verified), ServerStep::Failure(AuthFailure::Misuse(_))));
        let mut server = external_server(Some("alice"));
        server.start(Some(b"bob"));
        assert!(matches!(
            server.answer(CredentialAnswer::Password(Secret::from("x"))),
            ServerStep::Failure(AuthFailure::Misuse(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn client_and_server_agree(identity in "[^\\x00\\r\\n]{1,20}", authzid in "[^\\x00\\r\\n]{0,20}") {
            let mut client = external_client(Some(&authzid));
            let mut server = external_server(Some(&identity));
            let step = server.start(Some(client.initial_response().unwrap().unwrap().expose()));
            if authzid.is_empty() || authzid == identity {
                proptest::prop_assert_eq!(step, success(&identity, None));
            } else {
                proptest::prop_assert_eq!(step, ServerStep::Ask(CredentialRequest::Authorize {
                    authcid: identity.clone(), authzid: authzid.clone(),
                }));
                proptest::prop_assert_eq!(server.answer(CredentialAnswer::Rejected), ServerStep::Failure(AuthFailure::NotAuthorized));
            }
        }
    }
}
