//! CRAM-MD5 (RFC 2195): the server sends `<random.random@host>`, the client answers
//! `user SP lowercase-hex(HMAC-MD5(password, challenge))`.
//!
//! RFC 2195 says nothing of character sets. Following GNU SASL, both sides key the HMAC with
//! the SASLprep form of the password (RFC 4013), and fall back to the password's raw UTF-8
//! when SASLprep refuses it, so the two sides always agree. The server SASLpreps the user
//! name before asking for the password; the client sends it as given.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use hmac::{KeyInit, Mac};

use super::plain::deny;
use super::saslprep::saslprep;
use super::{
    AuthFailure, ClientMechanism, CredentialAnswer, CredentialRequest, Credentials, Identity, Mechanism, Random,
    SaslError, Secret, ServerContext, ServerMechanism, ServerStep, ct_eq, identity_is_clean,
};

/// Longest user name accepted from a client, as for PLAIN.
const MAX_USER: usize = 255;
/// Length of the hex digest (RFC 2195 §2).
const DIGEST_HEX: usize = 32;

/// HMAC-MD5 of `challenge` keyed with the prepared `password` (RFC 2195 §2, RFC 2104).
fn digest(password: &[u8], challenge: &[u8]) -> Secret {
    let prepared = core::str::from_utf8(password).ok().and_then(|text| saslprep(text).ok());
    let key = prepared.as_ref().map_or(password, |text| text.as_bytes());
    // HMAC takes keys of any length; the error branch cannot happen.
    let Ok(mut mac) = hmac::Hmac::<md5::Md5>::new_from_slice(key) else { return Secret::default() };
    mac.update(challenge);
    Secret::new(mac.finalize().into_bytes().to_vec())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

fn unhex(text: &[u8]) -> Option<Vec<u8>> {
    let digit = |c: u8| char::from(c).to_digit(16).and_then(|d| u8::try_from(d).ok());
    text.chunks(2).map(|pair| Some((digit(*pair.first()?)? << 4) | digit(*pair.get(1)?)?)).collect()
}

pub(super) fn client(credentials: &Credentials) -> Result<Box<dyn ClientMechanism>, SaslError> {
    let password = credentials.password.clone().ok_or(SaslError::MissingCredential("password"))?;
    if credentials.authzid.as_ref().is_some_and(|authzid| *authzid != credentials.authcid) {
        return Err(SaslError::InvalidCredential("CRAM-MD5 cannot carry an authzid"));
    }
    if credentials.authcid.is_empty() || credentials.authcid.len() > MAX_USER {
        return Err(SaslError::InvalidCredential("CRAM-MD5 user name must be 1 to 255 octets"));
    }
    Ok(Box::new(CramClient { user: credentials.authcid.clone(), password, answered: false }))
}

/// CRAM-MD5 client: one answer to the server's challenge.
#[derive(Debug)]
struct CramClient {
    user: String,
    password: Secret,
    answered: bool,
}

impl ClientMechanism for CramClient {
    fn mechanism(&self) -> Mechanism {
        Mechanism::CramMd5
    }

    /// Server-first: no initial response.
    fn initial_response(&mut self) -> Result<Option<Secret>, SaslError> {
        Ok(None)
    }

    fn step(&mut self, challenge: &[u8]) -> Result<Secret, SaslError> {
        if self.answered {
            return Err(SaslError::UnexpectedChallenge);
        }
        if challenge.is_empty() {
            return Err(SaslError::MalformedChallenge("empty CRAM-MD5 challenge"));
        }
        self.answered = true;
        let digest = hex(digest(self.password.expose(), challenge).expose());
        Ok(Secret::from(format!("{} {digest}", self.user)))
    }

    fn finish(&mut self, _additional: Option<&[u8]>) -> Result<(), SaslError> {
        if !self.answered {
            return Err(SaslError::ServerNotVerified("success before the credentials were sent"));
        }
        Ok(())
    }
}

/// The challenge `<digits.digits@host>` (RFC 2195 §2: a unique, msg-id-like string).
fn challenge(host: &str, rng: &mut dyn Random) -> Vec<u8> {
    let mut bytes = [0u8; 12];
    rng.fill(&mut bytes);
    let (first, second) = bytes.split_at(4);
    let first = first.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
    let second = second.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    format!("<{first}.{second}@{host}>").into_bytes()
}

pub(super) fn server(context: &ServerContext, rng: &mut dyn Random) -> Result<Box<dyn ServerMechanism>, SaslError> {
    let host = context.host.as_bytes();
    if host.is_empty() || !identity_is_clean(host) || host.iter().any(|b| matches!(b, b'<' | b'>' | b' ')) {
        return Err(SaslError::InvalidCredential("server host name unusable in a CRAM-MD5 challenge"));
    }
    Ok(Box::new(CramServer { challenge: challenge(&context.host, rng), state: State::Start }))
}

#[derive(Debug)]
enum State {
    Start,
    WaitingResponse,
    Verifying { authcid: String, digest: Vec<u8> },
    Done,
}

/// CRAM-MD5 server: sends the challenge, asks for the user's password, checks the digest.
#[derive(Debug)]
struct CramServer {
    challenge: Vec<u8>,
    state: State,
}

/// Splits `user SP digest` at the last space (user names may hold spaces) and checks both.
fn parse(response: &[u8]) -> Result<(String, Vec<u8>), AuthFailure> {
    let space = response.iter().rposition(|&b| b == b' ').ok_or(AuthFailure::Malformed("no space in response"))?;
    let (user, digest) = response.split_at(space);
    let digest = digest.get(1..).unwrap_or_default();
    if digest.len() != DIGEST_HEX {
        return Err(AuthFailure::Malformed("digest is not 32 hex digits"));
    }
    let digest = unhex(digest).ok_or(AuthFailure::Malformed("digest is not 32 hex digits"))?;
    if user.is_empty() || user.len() > MAX_USER {
        return Err(AuthFailure::Malformed("user name must be 1 to 255 octets"));
    }
    if !identity_is_clean(user) {
        return Err(AuthFailure::Malformed("NUL, CR or LF in the user name"));
    }
    let user = core::str::from_utf8(user).map_err(|_| AuthFailure::Malformed("not UTF-8"))?;
    let user = saslprep(user).map_err(|_| AuthFailure::Malformed("user name fails SASLprep"))?;
    if user.is_empty() {
        return Err(AuthFailure::Malformed("user name maps to nothing"));
    }
    Ok((user.into_owned(), digest))
}

impl ServerMechanism for CramServer {
    fn mechanism(&self) -> Mechanism {
        Mechanism::CramMd5
    }

    /// An initial response is refused: the server speaks first (RFC 4954 §4, 501).
    fn start(&mut self, initial_response: Option<&[u8]>) -> ServerStep {
        match (core::mem::replace(&mut self.state, State::Done), initial_response) {
            (State::Start, None) => {
                self.state = State::WaitingResponse;
                ServerStep::Challenge(self.challenge.clone())
            }
            (State::Start, Some(_)) => {
                ServerStep::Failure(AuthFailure::Malformed("CRAM-MD5 takes no initial response"))
            }
            _ => ServerStep::Failure(AuthFailure::Misuse("start called twice")),
        }
    }

    fn step(&mut self, response: &[u8]) -> ServerStep {
        if !matches!(core::mem::replace(&mut self.state, State::Done), State::WaitingResponse) {
            return ServerStep::Failure(AuthFailure::Misuse("no response expected"));
        }
        match parse(response) {
            Ok((authcid, digest)) => {
                self.state = State::Verifying { authcid: authcid.clone(), digest };
                ServerStep::Ask(CredentialRequest::Password { authcid })
            }
            Err(failure) => ServerStep::Failure(failure),
        }
    }

    fn answer(&mut self, answer: CredentialAnswer) -> ServerStep {
        let State::Verifying { authcid, digest: sent } = core::mem::replace(&mut self.state, State::Done) else {
            return ServerStep::Failure(AuthFailure::Misuse("no question pending"));
        };
        match answer {
            CredentialAnswer::Password(password) => {
                if ct_eq(digest(password.expose(), &self.challenge).expose(), &sent) {
                    ServerStep::Success { identity: Identity { authcid, authzid: None }, additional: None }
                } else {
                    ServerStep::Failure(AuthFailure::Credentials)
                }
            }
            answer => ServerStep::Failure(deny(answer)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::{ClientContext, FixedRandom, client as make_client, server as make_server};
    use crate::wire::{decode_base64, encode_payload};

    fn cram_client(user: &str, password: &str) -> Box<dyn ClientMechanism> {
        let ctx = ClientContext::new("smtp", "localhost");
        make_client(&Mechanism::CramMd5, &Credentials::password(user, password), &ctx, &mut FixedRandom::new(0))
            .unwrap()
    }

    /// A server whose challenge is forced to `challenge`, as if its random source made it.
    fn cram_server(challenge: &[u8]) -> CramServer {
        CramServer { challenge: challenge.to_vec(), state: State::Start }
    }

    /// Vectors §1 (RFC 2195 §2): client response and server check.
    #[test]
    fn rfc2195_vector_both_sides() {
        let challenge = decode_base64(b"PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+").unwrap();
        assert_eq!(challenge.as_slice(), b"<1896.697170952@postoffice.reston.mci.net>");
        let mut client = cram_client("tim", "tanstaaftanstaaf");
        assert_eq!(client.initial_response().unwrap(), None);
        let response = client.step(&challenge).unwrap();
        assert_eq!(response.expose(), b"tim b913a602c7eda7a495b4e6e7334d3890");
        assert_eq!(encode_payload(response.expose()), "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw");
        client.finish(None).unwrap();

        let mut server = cram_server(&challenge);
        assert_eq!(server.start(None), ServerStep::Challenge(challenge.to_vec()));
        assert_eq!(
            server.step(response.expose()),
            ServerStep::Ask(CredentialRequest::Password { authcid: "tim".into() })
        );
        assert_eq!(
            server.answer(CredentialAnswer::Password(Secret::from("tanstaaftanstaaf"))),
            ServerStep::Success { identity: Identity { authcid: "tim".into(), authzid: None }, additional: None }
        );
    }

    /// Vectors §2 example C (RFC 4954): the response's structure; the password is not given.
    #[test]
    fn rfc4954_example_c_structure() {
        let challenge = decode_base64(b"PDQxOTI5NDIzNDEuMTI4Mjg0NzJAc291cmNlZm91ci5hbmRyZXcuY211LmVkdT4=").unwrap();
        let response = decode_base64(b"cmpzMyBlYzNhNTlmZWQzOTVhYmExZWM2MzY3YzRmNGI0MWFjMA==").unwrap();
        assert_eq!(response.as_slice(), b"rjs3 ec3a59fed395aba1ec6367c4f4b41ac0");
        let mut server = cram_server(&challenge);
        server.start(None);
        assert_eq!(server.step(&response), ServerStep::Ask(CredentialRequest::Password { authcid: "rjs3".into() }));
        assert_eq!(
            server.answer(CredentialAnswer::Password(Secret::from("guess"))),
            ServerStep::Failure(AuthFailure::Credentials)
        );
        let ours = cram_client("rjs3", "anything").step(&challenge).unwrap();
        assert!(ours.expose().starts_with(b"rjs3 ") && ours.len() == 5 + DIGEST_HEX);
    }

    #[test]
    fn challenge_comes_from_the_random_source() {
        let ctx = ServerContext::new("smtp", "mx.example.org");
        let one = make_server(&Mechanism::CramMd5, &ctx, &mut FixedRandom::new(3)).unwrap().start(None);
        let again = make_server(&Mechanism::CramMd5, &ctx, &mut FixedRandom::new(3)).unwrap().start(None);
        let other = make_server(&Mechanism::CramMd5, &ctx, &mut FixedRandom::new(4)).unwrap().start(None);
        assert_eq!(one, again);
        assert_ne!(one, other);
        let ServerStep::Challenge(text) = one else { panic!() };
        let text = core::str::from_utf8(&text).unwrap();
        let inner = text.strip_prefix('<').unwrap().strip_suffix("@mx.example.org>").unwrap();
        let (a, b) = inner.split_once('.').unwrap();
        assert!(a.parse::<u32>().is_ok() && b.parse::<u64>().is_ok(), "{text}");
        for host in ["", "a\r\nb", "a>b", "a b"] {
            let ctx = ServerContext::new("smtp", host);
            assert!(make_server(&Mechanism::CramMd5, &ctx, &mut FixedRandom::new(0)).is_err());
        }
    }

    /// B17: CR, LF or NUL in the user name is refused, on both sides.
    #[test]
    fn field_b17_line_breaks_in_the_user_name() {
        for user in [&b"nouser\r\n+OK injected"[..], b"a\nb", b"a\rb", b"a\0b"] {
            let mut response = user.to_vec();
            response.extend_from_slice(b" b913a602c7eda7a495b4e6e7334d3890");
            let mut server = cram_server(b"<1.2@h>");
            server.start(None);
            assert!(matches!(server.step(&response), ServerStep::Failure(AuthFailure::Malformed(_))), "{user:?}");
        }
        let ctx = ClientContext::new("smtp", "h");
        for bad in ["a\rb", "a\nb", "a\0b"] {
            let err =
                make_client(&Mechanism::CramMd5, &Credentials::password(bad, "pw"), &ctx, &mut FixedRandom::new(0));
            assert!(matches!(err, Err(SaslError::InvalidCredential(_))));
        }
    }

    #[test]
    fn malformed_responses() {
        let long_user = [b'u'; 256];
        let mut too_long = long_user.to_vec();
        too_long.extend_from_slice(b" b913a602c7eda7a495b4e6e7334d3890");
        for bad in [
            &b""[..],
            b"tim",
            b"tim ",
            b" b913a602c7eda7a495b4e6e7334d3890",
            b"tim b913a602c7eda7a495b4e6e7334d389",
            b"tim b913a602c7eda7a495b4e6e7334d38900",
            b"tim b913a602c7eda7a495b4e6e7334d389g",
            b"tim +913a602c7eda7a495b4e6e7334d3890",
            b"\xff b913a602c7eda7a495b4e6e7334d3890",
            "\u{fe00} b913a602c7eda7a495b4e6e7334d3890".as_bytes(),
            &too_long,
        ] {
            let mut server = cram_server(b"<1.2@h>");
            server.start(None);
            assert!(matches!(server.step(bad), ServerStep::Failure(AuthFailure::Malformed(_))), "{bad:?}");
        }
        let mut server = cram_server(b"<1.2@h>");
        assert!(matches!(server.start(Some(b"")), ServerStep::Failure(AuthFailure::Malformed(_))));
        let mut server = cram_server(b"<1.2@h>");
        assert!(matches!(server.step(b"tim 00"), ServerStep::Failure(AuthFailure::Misuse(_))));
        let mut server = cram_server(b"<1.2@h>");
        server.start(None);
        server.step(b"tim b913a602c7eda7a495b4e6e7334d3890");
        assert_eq!(server.answer(CredentialAnswer::UnknownUser), ServerStep::Failure(AuthFailure::Credentials));
        assert!(matches!(server.answer(CredentialAnswer::Verified), ServerStep::Failure(AuthFailure::Misuse(_))));
        let mut server = cram_server(b"<1.2@h>");
        server.start(None);
        server.step(b"tim b913a602c7eda7a495b4e6e7334d3890");
        assert!(matches!(server.answer(CredentialAnswer::Verified), ServerStep::Failure(AuthFailure::Misuse(_))));
        let mut client = cram_client("tim", "pw");
        assert!(matches!(client.finish(None), Err(SaslError::ServerNotVerified(_))));
        assert!(matches!(client.step(b""), Err(SaslError::MalformedChallenge(_))));
        client.step(b"<1.2@h>").unwrap();
        assert_eq!(client.step(b"<1.2@h>"), Err(SaslError::UnexpectedChallenge));
    }

    #[test]
    fn user_names_with_spaces_and_upper_case_hex() {
        let mut server = cram_server(b"<1896.697170952@postoffice.reston.mci.net>");
        server.start(None);
        assert!(matches!(server.step(b"tim B913A602C7EDA7A495B4E6E7334D3890"), ServerStep::Ask(_)));
        assert!(matches!(
            server.answer(CredentialAnswer::Password(Secret::from("tanstaaftanstaaf"))),
            ServerStep::Success { .. }
        ));
        let mut client = cram_client("John Smith", "pw");
        let response = client.step(b"<1.2@h>").unwrap();
        let mut server = cram_server(b"<1.2@h>");
        server.start(None);
        assert_eq!(
            server.step(response.expose()),
            ServerStep::Ask(CredentialRequest::Password { authcid: "John Smith".into() })
        );
    }

    fn run(user: &str, password: &str, stored: &str, seed: u64) -> ServerStep {
        let mut client = cram_client(user, password);
        let ctx = ServerContext::new("smtp", "mx.example.org");
        let mut server = make_server(&Mechanism::CramMd5, &ctx, &mut FixedRandom::new(seed)).unwrap();
        let ServerStep::Challenge(challenge) = server.start(None) else { panic!() };
        match server.step(client.step(&challenge).unwrap().expose()) {
            ServerStep::Ask(CredentialRequest::Password { .. }) => {
                server.answer(CredentialAnswer::Password(Secret::from(stored)))
            }
            other => other,
        }
    }

    proptest::proptest! {
        #[test]
        fn client_and_server_agree(user in "[^\\x00\\r\\n]{1,20}", password in "[^\\x00]{0,30}", seed: u64) {
            let step = run(&user, &password, &password, seed);
            match saslprep(&user) {
                Ok(u) if !u.is_empty() => proptest::prop_assert_eq!(step, ServerStep::Success {
                    identity: Identity { authcid: u.into_owned(), authzid: None }, additional: None,
                }),
                _ => proptest::prop_assert!(matches!(step, ServerStep::Failure(AuthFailure::Malformed(_)))),
            }
        }

        #[test]
        fn wrong_password_fails(user in "[a-zA-Z0-9é€ ]{1,20}", password in "[^\\x00]{0,30}", seed: u64) {
            let wrong = alloc::format!("{password}x");
            proptest::prop_assert_eq!(run(&user, &password, &wrong, seed), ServerStep::Failure(AuthFailure::Credentials));
        }
    }
}
