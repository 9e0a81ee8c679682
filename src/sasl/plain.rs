//! PLAIN (RFC 4616): `[authzid] NUL authcid NUL passwd` in one client message.

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::saslprep::saslprep;
use super::{
    AuthFailure, ClientMechanism, CredentialAnswer, CredentialRequest, Credentials, Identity, Mechanism, SaslError,
    Secret, ServerMechanism, ServerStep, identity_is_clean,
};

/// Longest authzid, authcid or password (RFC 4616 §2).
const MAX_PART: usize = 255;

pub(super) fn client(credentials: &Credentials) -> Result<Box<dyn ClientMechanism>, SaslError> {
    let password = credentials.password.as_ref().ok_or(SaslError::MissingCredential("password"))?;
    let password = password.expose_str().ok_or(SaslError::InvalidCredential("password is not UTF-8"))?;
    let authcid = saslprep(&credentials.authcid)?;
    let password = saslprep(password)?;
    let authzid = credentials.authzid.as_deref().unwrap_or("");
    if authcid.is_empty() || authcid.len() > MAX_PART || authzid.len() > MAX_PART || password.len() > MAX_PART {
        return Err(SaslError::InvalidCredential("PLAIN fields must be 1 to 255 octets"));
    }
    if password.is_empty() || password.contains('\0') {
        return Err(SaslError::InvalidCredential("empty password or NUL in password"));
    }
    let mut message = Vec::with_capacity(authzid.len() + authcid.len() + password.len() + 2);
    message.extend_from_slice(authzid.as_bytes());
    message.push(0);
    message.extend_from_slice(authcid.as_bytes());
    message.push(0);
    message.extend_from_slice(password.as_bytes());
    Ok(Box::new(PlainClient { message: Some(Secret::new(message)) }))
}

/// PLAIN client: the whole message is the initial response.
#[derive(Debug)]
struct PlainClient {
    message: Option<Secret>,
}

impl ClientMechanism for PlainClient {
    fn mechanism(&self) -> Mechanism {
        Mechanism::Plain
    }

    fn initial_response(&mut self) -> Result<Option<Secret>, SaslError> {
        self.message.take().map(Some).ok_or(SaslError::UnexpectedChallenge)
    }

    /// An empty challenge (`334 `) asks for the message when no initial response was sent;
    /// anything after that is a protocol error. Challenge text is ignored (B20: `+ go ahead`).
    fn step(&mut self, _challenge: &[u8]) -> Result<Secret, SaslError> {
        self.message.take().ok_or(SaslError::UnexpectedChallenge)
    }

    fn finish(&mut self, _additional: Option<&[u8]>) -> Result<(), SaslError> {
        if self.message.is_some() {
            return Err(SaslError::ServerNotVerified("success before the credentials were sent"));
        }
        Ok(())
    }
}

pub(super) fn server() -> Result<Box<dyn ServerMechanism>, SaslError> {
    Ok(Box::new(PlainServer { state: State::Start }))
}

#[derive(Debug)]
enum State {
    Start,
    WaitingResponse,
    Verifying { authcid: String, authzid: Option<String> },
    Authorizing { authcid: String, authzid: String },
    Done,
}

/// PLAIN server: parses the message, asks for a password check, then for authorization.
#[derive(Debug)]
struct PlainServer {
    state: State,
}

fn utf8(bytes: &[u8]) -> Result<&str, AuthFailure> {
    core::str::from_utf8(bytes).map_err(|_| AuthFailure::Malformed("not UTF-8"))
}

/// Splits and checks a PLAIN message (RFC 4616 §2). Never echoes anything back.
fn parse(message: &[u8]) -> Result<(Option<String>, String, Secret), AuthFailure> {
    let mut parts = message.splitn(3, |&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(AuthFailure::Malformed("PLAIN message needs two NUL separators"));
    };
    if authcid.is_empty() {
        // B18: never put the authzid in the authcid's place.
        return Err(AuthFailure::Malformed("empty authcid"));
    }
    if password.is_empty() || password.contains(&0) {
        return Err(AuthFailure::Malformed("empty password or extra NUL"));
    }
    if authzid.len() > MAX_PART || authcid.len() > MAX_PART || password.len() > MAX_PART {
        return Err(AuthFailure::Malformed("PLAIN field longer than 255 octets"));
    }
    if !identity_is_clean(authzid) || !identity_is_clean(authcid) {
        return Err(AuthFailure::Malformed("CR or LF in an identity"));
    }
    let authcid = saslprep(utf8(authcid)?).map_err(|_| AuthFailure::Malformed("authcid fails SASLprep"))?;
    let password = saslprep(utf8(password)?).map_err(|_| AuthFailure::Malformed("password fails SASLprep"))?;
    if authcid.is_empty() {
        // SASLprep may map every character to nothing: still an empty authcid (B18).
        return Err(AuthFailure::Malformed("empty authcid"));
    }
    let authzid = utf8(authzid)?;
    let authzid = (!authzid.is_empty()).then(|| authzid.to_string());
    Ok((authzid, authcid.into_owned(), Secret::from(password.as_bytes())))
}

impl PlainServer {
    fn handle(&mut self, message: &[u8]) -> ServerStep {
        match parse(message) {
            Ok((authzid, authcid, password)) => {
                self.state = State::Verifying { authcid: authcid.clone(), authzid };
                ServerStep::Ask(CredentialRequest::VerifyPassword { authcid, password })
            }
            Err(failure) => {
                self.state = State::Done;
                ServerStep::Failure(failure)
            }
        }
    }
}

impl ServerMechanism for PlainServer {
    fn mechanism(&self) -> Mechanism {
        Mechanism::Plain
    }

    fn start(&mut self, initial_response: Option<&[u8]>) -> ServerStep {
        if !matches!(self.state, State::Start) {
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
        if !matches!(self.state, State::WaitingResponse) {
            self.state = State::Done;
            return ServerStep::Failure(AuthFailure::Misuse("no response expected"));
        }
        self.handle(response)
    }

    fn answer(&mut self, answer: CredentialAnswer) -> ServerStep {
        match core::mem::replace(&mut self.state, State::Done) {
            State::Verifying { authcid, authzid } => match answer {
                CredentialAnswer::Verified => match authzid {
                    Some(authzid) if authzid != authcid => {
                        self.state = State::Authorizing { authcid: authcid.clone(), authzid: authzid.clone() };
                        ServerStep::Ask(CredentialRequest::Authorize { authcid, authzid })
                    }
                    _ => ServerStep::Success { identity: Identity { authcid, authzid: None }, additional: None },
                },
                answer => ServerStep::Failure(deny(answer)),
            },
            State::Authorizing { authcid, authzid } => match answer {
                CredentialAnswer::Verified => {
                    ServerStep::Success { identity: Identity { authcid, authzid: Some(authzid) }, additional: None }
                }
                CredentialAnswer::TemporaryFailure => ServerStep::Failure(AuthFailure::Temporary),
                _ => ServerStep::Failure(AuthFailure::NotAuthorized),
            },
            _ => ServerStep::Failure(AuthFailure::Misuse("no question pending")),
        }
    }
}

/// Maps a negative or unexpected answer to a failure.
pub(super) fn deny(answer: CredentialAnswer) -> AuthFailure {
    match answer {
        CredentialAnswer::Rejected | CredentialAnswer::UnknownUser => AuthFailure::Credentials,
        CredentialAnswer::TemporaryFailure => AuthFailure::Temporary,
        _ => AuthFailure::Misuse("wrong kind of answer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::{ClientContext, FixedRandom, client as make_client, server as make_server};

    fn run_server(message: &[u8]) -> ServerStep {
        let mut server = server().unwrap();
        server.start(Some(message))
    }

    /// RFC 4616 §4 and RFC 4954 / RFC 5034 examples.
    #[test]
    fn rfc4616_client_messages() {
        let ctx = ClientContext::new("smtp", "localhost");
        let cases: [(&str, Option<&str>, &str, &[u8]); 3] = [
            ("tim", None, "tanstaaftanstaaf", b"\0tim\0tanstaaftanstaaf"),
            ("Kurt", Some("Ursel"), "xipj3plmq", b"Ursel\0Kurt\0xipj3plmq"),
            ("test", Some("test"), "1234", b"test\0test\x001234"),
        ];
        for (authcid, authzid, password, expected) in cases {
            let mut creds = Credentials::password(authcid, password);
            creds.authzid = authzid.map(String::from);
            let mut mech = make_client(&Mechanism::Plain, &creds, &ctx, &mut FixedRandom::new(0)).unwrap();
            assert_eq!(mech.initial_response().unwrap().unwrap().expose(), expected);
            mech.finish(None).unwrap();
        }
    }

    #[test]
    fn rfc4616_server_asks_then_authorizes() {
        let mut server =
            make_server(&Mechanism::Plain, &crate::sasl::ServerContext::new("smtp", "h"), &mut FixedRandom::new(0))
                .unwrap();
        let step = server.start(Some(b"Ursel\0Kurt\0xipj3plmq"));
        assert_eq!(
            step,
            ServerStep::Ask(CredentialRequest::VerifyPassword {
                authcid: "Kurt".into(),
                password: Secret::from("xipj3plmq")
            })
        );
        let step = server.answer(CredentialAnswer::Verified);
        assert_eq!(
            step,
            ServerStep::Ask(CredentialRequest::Authorize { authcid: "Kurt".into(), authzid: "Ursel".into() })
        );
        assert_eq!(server.answer(CredentialAnswer::Rejected), ServerStep::Failure(AuthFailure::NotAuthorized));
    }

    #[test]
    fn no_initial_response_gets_empty_challenge() {
        let mut server = server().unwrap();
        assert_eq!(server.start(None), ServerStep::Challenge(Vec::new()));
        assert!(matches!(server.step(b"\0tim\0tanstaaftanstaaf"), ServerStep::Ask(_)));
        assert_eq!(
            server.answer(CredentialAnswer::Verified),
            ServerStep::Success { identity: Identity { authcid: "tim".into(), authzid: None }, additional: None }
        );
    }

    #[test]
    fn field_b18_empty_authcid_every_shape() {
        for message in [&b"admin\0\0secret"[..], b"\0\0secret", b"admin\0\0", b"\0\0", "\0\u{fe00}\0pw".as_bytes()] {
            assert!(matches!(run_server(message), ServerStep::Failure(AuthFailure::Malformed(_))), "{message:?}");
        }
        assert!(matches!(run_server(b"\0user@example.org\0secret"), ServerStep::Ask(_)));
    }

    #[test]
    fn field_b17_line_breaks_in_every_identity_field() {
        for message in [
            &b"\0nouser\r\n+OK injected\0secret"[..],
            b"\0nouser\n\0secret",
            b"\0nouser\r\0secret",
            b"az\r\nid\0user\0secret",
            b"az\nid\0user\0secret",
        ] {
            assert!(matches!(run_server(message), ServerStep::Failure(AuthFailure::Malformed(_))), "{message:?}");
        }
    }

    #[test]
    fn malformed_messages() {
        for message in [&b""[..], b"nonul", b"one\0nul", b"a\0b\0c\0d", &[0, b'u', 0, 0xff]] {
            assert!(matches!(run_server(message), ServerStep::Failure(_)), "{message:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn client_and_server_agree(
            authcid in "[^\\x00-\\x1f\\x7f-\\u{10ffff}]{1,20}|[a-zA-Z0-9é€ä]{1,20}",
            password in "[a-zA-Z0-9 !é€ä]{1,30}",
        ) {
            let creds = Credentials::password(authcid.clone(), password.as_str());
            let ctx = ClientContext::new("smtp", "h");
            let mut client = make_client(&Mechanism::Plain, &creds, &ctx, &mut FixedRandom::new(0)).unwrap();
            let message = client.initial_response().unwrap().unwrap();
            let mut server = server().unwrap();
            let step = server.start(Some(message.expose()));
            let expected_password = saslprep(&password).unwrap().into_owned();
            proptest::prop_assert_eq!(step, ServerStep::Ask(CredentialRequest::VerifyPassword {
                authcid: saslprep(&authcid).unwrap().into_owned(),
                password: Secret::from(expected_password.as_str()),
            }));
        }
    }
}
