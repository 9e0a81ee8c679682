//! LOGIN (draft-murchison-sasl-login): the server prompts for the user name, then the
//! password; each client response carries one of them in the clear.
//!
//! The client ignores what the prompts say (B02: `User Name\0`, `username:` and friends all
//! get the user name first, the password second) and sends no initial response. Some clients
//! (B05: .NET's `SmtpClient`) send the user name as an initial response (`AUTH LOGIN
//! dXNlcg==`); the server takes it as the user name and prompts only for the password.
//!
//! Like GNU SASL, the client sends the strings as given (UTF-8) and the server applies
//! SASLprep (RFC 4013), so the application sees the same forms as with PLAIN.

use alloc::boxed::Box;
use alloc::string::String;

use super::plain::deny;
use super::saslprep::saslprep;
use super::{
    AuthFailure, ClientMechanism, CredentialAnswer, CredentialRequest, Credentials, Identity, Mechanism, SaslError,
    Secret, ServerMechanism, ServerStep, identity_is_clean,
};

/// Longest user name or password, as for PLAIN (RFC 4616 §2).
const MAX_FIELD: usize = 255;
/// The server's first prompt (draft-murchison-sasl-login §2, no NUL).
const USERNAME_PROMPT: &[u8] = b"Username:";
/// The server's second prompt.
const PASSWORD_PROMPT: &[u8] = b"Password:";

pub(super) fn client(credentials: &Credentials) -> Result<Box<dyn ClientMechanism>, SaslError> {
    let password = credentials.password.as_ref().ok_or(SaslError::MissingCredential("password"))?;
    if credentials.authzid.as_ref().is_some_and(|authzid| *authzid != credentials.authcid) {
        return Err(SaslError::InvalidCredential("LOGIN cannot carry an authzid"));
    }
    let user = credentials.authcid.as_bytes();
    if user.is_empty() || user.len() > MAX_FIELD || password.is_empty() || password.len() > MAX_FIELD {
        return Err(SaslError::InvalidCredential("LOGIN fields must be 1 to 255 octets"));
    }
    if password.expose().contains(&0) {
        return Err(SaslError::InvalidCredential("NUL in password"));
    }
    Ok(Box::new(LoginClient { answers: [Secret::from(user), password.clone()], sent: 0 }))
}

/// LOGIN client: one answer a prompt, in order.
#[derive(Debug)]
struct LoginClient {
    answers: [Secret; 2],
    sent: usize,
}

impl ClientMechanism for LoginClient {
    fn mechanism(&self) -> Mechanism {
        Mechanism::Login
    }

    /// Server-first: no initial response.
    fn initial_response(&mut self) -> Result<Option<Secret>, SaslError> {
        Ok(None)
    }

    /// The first prompt gets the user name, the second the password, whatever they say (B02).
    fn step(&mut self, _challenge: &[u8]) -> Result<Secret, SaslError> {
        let answer = self.answers.get(self.sent).cloned().ok_or(SaslError::UnexpectedChallenge)?;
        self.sent += 1;
        Ok(answer)
    }

    fn finish(&mut self, _additional: Option<&[u8]>) -> Result<(), SaslError> {
        if self.sent < self.answers.len() {
            return Err(SaslError::ServerNotVerified("success before the credentials were sent"));
        }
        Ok(())
    }
}

pub(super) fn server() -> Result<Box<dyn ServerMechanism>, SaslError> {
    Ok(Box::new(LoginServer { state: State::Start }))
}

#[derive(Debug)]
enum State {
    Start,
    WaitingUser,
    WaitingPassword { authcid: String },
    Verifying { authcid: String },
    Done,
}

/// LOGIN server: prompts for both fields, then asks for a password check.
#[derive(Debug)]
struct LoginServer {
    state: State,
}

/// Checks and prepares one field; never echoes it.
fn prepare(field: &[u8], what: &'static str) -> Result<String, AuthFailure> {
    if field.is_empty() || field.len() > MAX_FIELD {
        return Err(AuthFailure::Malformed(what));
    }
    if !identity_is_clean(field) {
        return Err(AuthFailure::Malformed("NUL, CR or LF in a LOGIN field"));
    }
    let text = core::str::from_utf8(field).map_err(|_| AuthFailure::Malformed("not UTF-8"))?;
    let prepared = saslprep(text).map_err(|_| AuthFailure::Malformed("LOGIN field fails SASLprep"))?;
    if prepared.is_empty() {
        // Only characters SASLprep maps to nothing.
        return Err(AuthFailure::Malformed(what));
    }
    Ok(prepared.into_owned())
}

impl LoginServer {
    fn user(&mut self, response: &[u8]) -> ServerStep {
        match prepare(response, "user name must be 1 to 255 octets") {
            Ok(authcid) => {
                self.state = State::WaitingPassword { authcid };
                ServerStep::Challenge(PASSWORD_PROMPT.to_vec())
            }
            Err(failure) => ServerStep::Failure(failure),
        }
    }
}

impl ServerMechanism for LoginServer {
    fn mechanism(&self) -> Mechanism {
        Mechanism::Login
    }

    /// An initial response is the user name (B05).
    fn start(&mut self, initial_response: Option<&[u8]>) -> ServerStep {
        if !matches!(self.state, State::Start) {
            self.state = State::Done;
            return ServerStep::Failure(AuthFailure::Misuse("start called twice"));
        }
        self.state = State::Done;
        match initial_response {
            Some(user) => self.user(user),
            None => {
                self.state = State::WaitingUser;
                ServerStep::Challenge(USERNAME_PROMPT.to_vec())
            }
        }
    }

    fn step(&mut self, response: &[u8]) -> ServerStep {
        match core::mem::replace(&mut self.state, State::Done) {
            State::WaitingUser => self.user(response),
            State::WaitingPassword { authcid } => match prepare(response, "password must be 1 to 255 octets") {
                Ok(password) => {
                    self.state = State::Verifying { authcid: authcid.clone() };
                    ServerStep::Ask(CredentialRequest::VerifyPassword { authcid, password: Secret::from(password) })
                }
                Err(failure) => ServerStep::Failure(failure),
            },
            _ => ServerStep::Failure(AuthFailure::Misuse("no response expected")),
        }
    }

    fn answer(&mut self, answer: CredentialAnswer) -> ServerStep {
        match (core::mem::replace(&mut self.state, State::Done), answer) {
            (State::Verifying { authcid }, CredentialAnswer::Verified) => {
                ServerStep::Success { identity: Identity { authcid, authzid: None }, additional: None }
            }
            (State::Verifying { .. }, answer) => ServerStep::Failure(deny(answer)),
            _ => ServerStep::Failure(AuthFailure::Misuse("no question pending")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::{ClientContext, FixedRandom, ServerContext, client as make_client, server as make_server};
    use crate::wire::encode_payload;

    fn login_client(user: &str, password: &str) -> Box<dyn ClientMechanism> {
        let ctx = ClientContext::new("smtp", "localhost");
        make_client(&Mechanism::Login, &Credentials::password(user, password), &ctx, &mut FixedRandom::new(0)).unwrap()
    }

    fn login_server() -> Box<dyn ServerMechanism> {
        make_server(&Mechanism::Login, &ServerContext::new("smtp", "h"), &mut FixedRandom::new(0)).unwrap()
    }

    fn verify(authcid: &str, password: &str) -> ServerStep {
        ServerStep::Ask(CredentialRequest::VerifyPassword { authcid: authcid.into(), password: Secret::from(password) })
    }

    /// Vectors §4: `334 VXNlcm5hbWU6` / `dGVzdA==` / `334 UGFzc3dvcmQ6` / `dGVzdDEyMzQ=`.
    #[test]
    fn vectors_s4_exchange_both_sides() {
        let mut client = login_client("test", "test1234");
        let mut server = login_server();
        assert_eq!(client.initial_response().unwrap(), None);
        let ServerStep::Challenge(prompt) = server.start(None) else { panic!() };
        assert_eq!(encode_payload(&prompt), "VXNlcm5hbWU6");
        let user = client.step(&prompt).unwrap();
        assert_eq!(encode_payload(user.expose()), "dGVzdA==");
        let ServerStep::Challenge(prompt) = server.step(user.expose()) else { panic!() };
        assert_eq!(encode_payload(&prompt), "UGFzc3dvcmQ6");
        let password = client.step(&prompt).unwrap();
        assert_eq!(encode_payload(password.expose()), "dGVzdDEyMzQ=");
        assert_eq!(server.step(password.expose()), verify("test", "test1234"));
        assert_eq!(
            server.answer(CredentialAnswer::Verified),
            ServerStep::Success { identity: Identity { authcid: "test".into(), authzid: None }, additional: None }
        );
        client.finish(None).unwrap();
        assert_eq!(client.step(b"more?"), Err(SaslError::UnexpectedChallenge));
    }

    /// B02: every prompt variant gets the user name first, the password second.
    #[test]
    fn field_b02_client_ignores_prompt_text() {
        let prompts: [&[u8]; 8] =
            [b"User Name\0", b"username:", b"USERNAME:", b"Password\0", b"password:", b"", b"\xff\xfe", b"go ahead"];
        for first in prompts {
            for second in prompts {
                let mut client = login_client("user@example.org", "s3cret");
                assert_eq!(client.step(first).unwrap().expose(), b"user@example.org");
                assert_eq!(client.step(second).unwrap().expose(), b"s3cret");
            }
        }
    }

    #[test]
    fn field_b02_server_prompts_have_no_nul() {
        let mut server = login_server();
        assert_eq!(server.start(None), ServerStep::Challenge(b"Username:".to_vec()));
        assert_eq!(server.step(b"u"), ServerStep::Challenge(b"Password:".to_vec()));
    }

    /// B05: `auth login dXNlckBleGFtcGxlLm9yZw==` → only the password is asked for.
    #[test]
    fn field_b05_initial_response_is_the_user_name() {
        let mut server = login_server();
        let initial = crate::wire::decode_base64(b"dXNlckBleGFtcGxlLm9yZw==").unwrap();
        assert_eq!(server.start(Some(&initial)), ServerStep::Challenge(b"Password:".to_vec()));
        assert_eq!(server.step(b"pw"), verify("user@example.org", "pw"));
        assert_eq!(server.answer(CredentialAnswer::Rejected), ServerStep::Failure(AuthFailure::Credentials));
    }

    /// B20: continuation text such as `+ go ahead` is ignored by LOGIN and PLAIN alike.
    #[test]
    fn field_b20_login_and_plain_ignore_challenge_text() {
        let mut login = login_client("u", "p");
        assert_eq!(login.step(b"go ahead").unwrap().expose(), b"u");
        let ctx = ClientContext::new("pop", "localhost");
        let mut plain =
            make_client(&Mechanism::Plain, &Credentials::password("u", "p"), &ctx, &mut FixedRandom::new(0)).unwrap();
        assert_eq!(plain.step(b"go ahead").unwrap().expose(), b"\0u\0p");
    }

    /// B17: CR, LF or NUL in the user name (prompted or initial) or the password is refused.
    #[test]
    fn field_b17_line_breaks_in_every_field() {
        for bad in [&b"nouser\r\n+OK injected"[..], b"a\nb", b"a\rb", b"a\0b"] {
            let mut server = login_server();
            assert!(matches!(server.start(Some(bad)), ServerStep::Failure(AuthFailure::Malformed(_))));
            let mut server = login_server();
            server.start(None);
            assert!(matches!(server.step(bad), ServerStep::Failure(AuthFailure::Malformed(_))));
            let mut server = login_server();
            server.start(Some(b"user"));
            assert!(matches!(server.step(bad), ServerStep::Failure(AuthFailure::Malformed(_))));
        }
        let ctx = ClientContext::new("smtp", "h");
        for bad in ["a\rb", "a\nb", "a\0b"] {
            let creds = Credentials::password(bad, "pw");
            let err = make_client(&Mechanism::Login, &creds, &ctx, &mut FixedRandom::new(0)).unwrap_err();
            assert!(matches!(err, SaslError::InvalidCredential(_)));
        }
    }

    #[test]
    fn malformed_and_out_of_order() {
        let long = [b'a'; 256];
        for bad in [&b""[..], &long, b"\xff\xfe", b"bell\x07", "\u{fe00}\u{ad}".as_bytes()] {
            let mut server = login_server();
            assert!(matches!(server.start(Some(bad)), ServerStep::Failure(AuthFailure::Malformed(_))), "{bad:?}");
        }
        let mut server = login_server();
        assert!(matches!(server.answer(CredentialAnswer::Verified), ServerStep::Failure(AuthFailure::Misuse(_))));
        let mut server = login_server();
        server.start(None);
        assert!(matches!(server.start(None), ServerStep::Failure(AuthFailure::Misuse(_))));
        assert!(matches!(server.step(b"u"), ServerStep::Failure(AuthFailure::Misuse(_))));
        let mut server = login_server();
        server.start(Some(b"u"));
        server.step(b"p");
        assert_eq!(server.answer(CredentialAnswer::TemporaryFailure), ServerStep::Failure(AuthFailure::Temporary));
        let mut server = login_server();
        server.start(Some(b"u"));
        server.step(b"p");
        assert!(matches!(server.step(b"p"), ServerStep::Failure(AuthFailure::Misuse(_))));
        assert!(matches!(server.answer(CredentialAnswer::Verified), ServerStep::Failure(AuthFailure::Misuse(_))));
        let mut client = login_client("u", "p");
        client.step(b"").unwrap();
        assert!(matches!(client.finish(None), Err(SaslError::ServerNotVerified(_))));
        let creds = Credentials { authzid: Some("other".into()), ..Credentials::password("u", "p") };
        let err = make_client(&Mechanism::Login, &creds, &ClientContext::new("smtp", "h"), &mut FixedRandom::new(0));
        assert!(matches!(err, Err(SaslError::InvalidCredential(_))));
    }

    fn run(user: &str, password: &str, server_password: &str) -> ServerStep {
        let mut client = login_client(user, password);
        let mut server = login_server();
        let mut step = server.start(client.initial_response().unwrap().as_ref().map(|s| s.expose()));
        while let ServerStep::Challenge(prompt) = step {
            step = server.step(client.step(&prompt).unwrap().expose());
        }
        let ServerStep::Ask(CredentialRequest::VerifyPassword { password, .. }) = &step else { return step };
        let right = saslprep(server_password).map(|p| Secret::from(p.as_ref()) == *password).unwrap_or(false);
        server.answer(if right { CredentialAnswer::Verified } else { CredentialAnswer::Rejected })
    }

    proptest::proptest! {
        #[test]
        fn client_and_server_agree(user in "[^\\x00\\r\\n]{1,20}", password in "[^\\x00\\r\\n]{1,30}") {
            let step = run(&user, &password, &password);
            match (saslprep(&user), saslprep(&password)) {
                (Ok(u), Ok(p)) if !u.is_empty() && !p.is_empty() => {
                    proptest::prop_assert_eq!(step, ServerStep::Success {
                        identity: Identity { authcid: u.into_owned(), authzid: None }, additional: None,
                    });
                }
                _ => proptest::prop_assert!(matches!(step, ServerStep::Failure(AuthFailure::Malformed(_)))),
            }
        }

        #[test]
        fn wrong_password_fails(user in "[a-zA-Z0-9é€]{1,20}", password in "[a-zA-Z0-9é€ ]{1,30}") {
            let wrong = alloc::format!("{password}x");
            proptest::prop_assert_eq!(run(&user, &password, &wrong), ServerStep::Failure(AuthFailure::Credentials));
        }
    }
}
