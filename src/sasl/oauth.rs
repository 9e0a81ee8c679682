//! XOAUTH2 (Google's format) and OAUTHBEARER (RFC 7628): an OAuth 2.0 bearer token
//! (RFC 6750) for a user, in one client message.
//!
//! - OAUTHBEARER: `n,a=USER,^Ahost=HOST^Aport=PORT^Aauth=Bearer TOKEN^A^A` (RFC 7628 §3.1).
//! - XOAUTH2: `user=USER^Aauth=Bearer TOKEN^A^A`.
//!
//! A rejected token is reported in a JSON error challenge (RFC 7628 §3.2.2); the client answers
//! it with the single byte `0x01` (OAUTHBEARER) or an empty response (XOAUTH2), keeps the JSON
//! for [`ClientMechanism::server_error`], and the server then fails the exchange.
//!
//! OAUTHBEARER carries one identity, the GS2 `a=` authzid. It names the user the token is
//! for: the server asks about that user, and a message without `a=` is refused. The client
//! sends [`Credentials::authzid`] if set, else [`Credentials::authcid`], and refuses two
//! different ones.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use super::plain::deny;
use super::{
    AuthFailure, ClientContext, ClientMechanism, CredentialAnswer, CredentialRequest, Credentials, Identity, Mechanism,
    SaslError, Secret, ServerContext, ServerMechanism, ServerStep, identity_is_clean,
};

/// Separator of key/value pairs (RFC 7628 §3.1 `kvsep`).
const KVSEP: u8 = 0x01;
/// Longest user name.
const MAX_USER: usize = 255;
/// Longest token; a message still fits an AUTH line of 12288 octets once in base64.
const MAX_TOKEN: usize = 8192;
/// Most key/value pairs in a message.
const MAX_PAIRS: usize = 16;
/// Most characters of a server error kept by the client.
const MAX_ERROR_CHARS: usize = 1024;

/// Which of the two formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    XOAuth2,
    OAuthBearer,
}

impl Kind {
    fn of(mechanism: &Mechanism) -> Result<Self, SaslError> {
        match mechanism {
            Mechanism::XOAuth2 => Ok(Self::XOAuth2),
            Mechanism::OAuthBearer => Ok(Self::OAuthBearer),
            other => Err(SaslError::Unsupported(other.as_str().into())),
        }
    }

    fn mechanism(self) -> Mechanism {
        match self {
            Self::XOAuth2 => Mechanism::XOAuth2,
            Self::OAuthBearer => Mechanism::OAuthBearer,
        }
    }

    /// The client's answer to an error challenge (RFC 7628 §3.2.3; XOAUTH2: empty).
    fn dummy(self) -> &'static [u8] {
        match self {
            Self::XOAuth2 => &[],
            Self::OAuthBearer => &[KVSEP],
        }
    }
}

/// A user name fit for either format: no control character (so no NUL, CR, LF or `^A`).
fn user_is_clean(user: &[u8]) -> bool {
    identity_is_clean(user) && !user.iter().any(u8::is_ascii_control)
}

/// GS2 `saslname` escaping (RFC 5801 §4): `,` → `=2C`, `=` → `=3D`.
fn escape_saslname(out: &mut Vec<u8>, name: &str) {
    for byte in name.bytes() {
        match byte {
            b',' => out.extend_from_slice(b"=2C"),
            b'=' => out.extend_from_slice(b"=3D"),
            _ => out.push(byte),
        }
    }
}

pub(super) fn client(
    mechanism: &Mechanism,
    credentials: &Credentials,
    context: &ClientContext,
) -> Result<Box<dyn ClientMechanism>, SaslError> {
    let kind = Kind::of(mechanism)?;
    let token = credentials.token.as_ref().ok_or(SaslError::MissingCredential("token"))?;
    if token.is_empty() || token.len() > MAX_TOKEN || !token.expose().iter().all(u8::is_ascii_graphic) {
        return Err(SaslError::InvalidCredential("token must be 1 to 8192 printable ASCII characters"));
    }
    let user = match (credentials.authzid.as_deref(), credentials.authcid.as_str()) {
        (Some(authzid), authcid) if !authcid.is_empty() && authzid != authcid => {
            return Err(SaslError::InvalidCredential("OAuth carries one identity: authzid and user differ"));
        }
        (Some(authzid), _) if !authzid.is_empty() => authzid,
        (_, authcid) => authcid,
    };
    if user.is_empty() || user.len() > MAX_USER || !user_is_clean(user.as_bytes()) {
        return Err(SaslError::InvalidCredential("user must be 1 to 255 octets without control characters"));
    }
    let host = context.host.as_bytes();
    if !host.iter().all(u8::is_ascii_graphic) {
        return Err(SaslError::InvalidCredential("host name unusable in an OAuth message"));
    }
    let mut message = Vec::with_capacity(token.len() + user.len() * 3 + host.len() + 48);
    match kind {
        Kind::OAuthBearer => {
            message.extend_from_slice(b"n,a=");
            escape_saslname(&mut message, user);
            message.extend_from_slice(&[b',', KVSEP]);
            if !host.is_empty() {
                message.extend_from_slice(b"host=");
                message.extend_from_slice(host);
                message.push(KVSEP);
            }
            if let Some(port) = context.port {
                message.extend_from_slice(alloc::format!("port={port}").as_bytes());
                message.push(KVSEP);
            }
        }
        Kind::XOAuth2 => {
            message.extend_from_slice(b"user=");
            message.extend_from_slice(user.as_bytes());
            message.push(KVSEP);
        }
    }
    message.extend_from_slice(b"auth=Bearer ");
    message.extend_from_slice(token.expose());
    message.extend_from_slice(&[KVSEP, KVSEP]);
    Ok(Box::new(OAuthClient { kind, message: Secret::new(message), state: ClientState::Start, error: None }))
}

#[derive(Debug, PartialEq, Eq)]
enum ClientState {
    Start,
    Sent,
    ErrorAcknowledged,
}

/// OAuth client: the message, then at most one error challenge to acknowledge.
#[derive(Debug)]
struct OAuthClient {
    kind: Kind,
    message: Secret,
    state: ClientState,
    error: Option<String>,
}

impl ClientMechanism for OAuthClient {
    fn mechanism(&self) -> Mechanism {
        self.kind.mechanism()
    }

    fn initial_response(&mut self) -> Result<Option<Secret>, SaslError> {
        if self.state != ClientState::Start {
            return Err(SaslError::UnexpectedChallenge);
        }
        self.step(b"").map(Some)
    }

    /// Before the message: any challenge (`+ `, B20) asks for it. After: an error challenge,
    /// kept and acknowledged (RFC 7628 §3.2.3).
    fn step(&mut self, challenge: &[u8]) -> Result<Secret, SaslError> {
        match self.state {
            ClientState::Start => {
                self.state = ClientState::Sent;
                Ok(self.message.clone())
            }
            ClientState::Sent => {
                let text = String::from_utf8_lossy(challenge);
                let text: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
                self.error = Some(text.trim().chars().take(MAX_ERROR_CHARS).collect());
                self.state = ClientState::ErrorAcknowledged;
                Ok(Secret::from(self.kind.dummy()))
            }
            ClientState::ErrorAcknowledged => Err(SaslError::UnexpectedChallenge),
        }
    }

    fn finish(&mut self, _additional: Option<&[u8]>) -> Result<(), SaslError> {
        match self.state {
            ClientState::Start => Err(SaslError::ServerNotVerified("success before the token was sent")),
            ClientState::Sent => Ok(()),
            ClientState::ErrorAcknowledged => Err(SaslError::ServerError(self.error.clone().unwrap_or_default())),
        }
    }

    fn server_error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

/// Appends `text` as the body of a JSON string (RFC 8259 §7).
fn json_escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

/// The error challenge for a rejected token (RFC 7628 §3.2.2; Google's XOAUTH2 form).
fn error_challenge(kind: Kind, scope: Option<&str>) -> Vec<u8> {
    let mut json = String::from(match kind {
        Kind::OAuthBearer => r#"{"status":"invalid_token""#,
        Kind::XOAuth2 => r#"{"status":"401","schemes":"bearer""#,
    });
    if let Some(scope) = scope {
        json.push_str(r#","scope":""#);
        json_escape(&mut json, scope);
        json.push('"');
    }
    json.push('}');
    json.into_bytes()
}

pub(super) fn server(mechanism: &Mechanism, context: &ServerContext) -> Result<Box<dyn ServerMechanism>, SaslError> {
    let kind = Kind::of(mechanism)?;
    let error = error_challenge(kind, context.oauth_scope.as_deref());
    Ok(Box::new(OAuthServer { kind, error, state: ServerState::Start }))
}

#[derive(Debug)]
enum ServerState {
    Start,
    WaitingResponse,
    Verifying { user: String },
    WaitingDummy,
    Done,
}

/// OAuth server: parses the message, asks for a token check, reports a rejection in JSON.
#[derive(Debug)]
struct OAuthServer {
    kind: Kind,
    error: Vec<u8>,
    state: ServerState,
}

type Pair<'a> = (&'a [u8], &'a [u8]);

/// `*(key "=" value kvsep) kvsep` (RFC 7628 §3.1). XOAUTH2 values may also hold UTF-8.
fn kvpairs(kind: Kind, message: &[u8]) -> Result<Vec<Pair<'_>>, AuthFailure> {
    let mut body = message.strip_suffix(&[KVSEP]).ok_or(AuthFailure::Malformed("message must end with ^A"))?;
    let value_byte =
        |b: u8| matches!(b, 0x21..=0x7e | b' ' | b'\t' | b'\r' | b'\n') || (kind == Kind::XOAuth2 && b >= 0x80);
    let mut pairs: Vec<Pair<'_>> = Vec::new();
    while !body.is_empty() {
        let end = body.iter().position(|&b| b == KVSEP).ok_or(AuthFailure::Malformed("pair not ended by ^A"))?;
        let (pair, rest) = body.split_at(end);
        body = rest.get(1..).unwrap_or_default();
        let eq = pair.iter().position(|&b| b == b'=').ok_or(AuthFailure::Malformed("pair without ="))?;
        let (key, value) = pair.split_at(eq);
        let value = value.get(1..).unwrap_or_default();
        if key.is_empty() || !key.iter().all(u8::is_ascii_alphabetic) {
            return Err(AuthFailure::Malformed("key must be letters"));
        }
        if !value.iter().all(|&b| value_byte(b)) {
            return Err(AuthFailure::Malformed("invalid character in a value"));
        }
        if pairs.iter().any(|(seen, _)| *seen == key) {
            return Err(AuthFailure::Malformed("duplicate key"));
        }
        if pairs.len() == MAX_PAIRS {
            return Err(AuthFailure::Malformed("too many key/value pairs"));
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// `auth=Bearer <b64token>` (RFC 6750 §2.1; the scheme is case-insensitive).
fn bearer(pairs: &[Pair<'_>]) -> Result<Secret, AuthFailure> {
    let (_, value) = pairs.iter().find(|(key, _)| *key == b"auth").ok_or(AuthFailure::Malformed("no auth pair"))?;
    let scheme = value.get(..6).filter(|s| s.eq_ignore_ascii_case(b"bearer"));
    let rest = value.get(6..).filter(|r| r.first() == Some(&b' '));
    let (Some(_), Some(rest)) = (scheme, rest) else {
        return Err(AuthFailure::Malformed("auth is not Bearer SP token"));
    };
    let token = rest.get(rest.iter().take_while(|&&b| b == b' ').count()..).unwrap_or_default();
    let (body, padding) = token.split_at(token.iter().position(|&b| b == b'=').unwrap_or(token.len()));
    let b64token = !body.is_empty()
        && body.iter().all(|&b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
        && padding.iter().all(|&b| b == b'=');
    if !b64token || token.len() > MAX_TOKEN {
        return Err(AuthFailure::Malformed("token is not a b64token"));
    }
    Ok(Secret::from(token))
}

/// Decodes and checks a user name (a GS2 `saslname` for OAUTHBEARER).
fn user(raw: &[u8], saslname: bool) -> Result<String, AuthFailure> {
    let mut decoded = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        match (saslname, byte) {
            (true, b'=') => {
                let escaped = rest.get(..2).ok_or(AuthFailure::Malformed("bad = escape in a= name"))?;
                decoded.push(match escaped {
                    b"2C" => b',',
                    b"3D" => b'=',
                    _ => return Err(AuthFailure::Malformed("bad = escape in a= name")),
                });
                rest = rest.get(2..).unwrap_or_default();
            }
            _ => decoded.push(byte),
        }
    }
    if decoded.is_empty() || decoded.len() > MAX_USER {
        return Err(AuthFailure::Malformed("user must be 1 to 255 octets"));
    }
    if !user_is_clean(&decoded) {
        return Err(AuthFailure::Malformed("NUL, CR, LF or other control character in the user"));
    }
    String::from_utf8(decoded).map_err(|_| AuthFailure::Malformed("user is not UTF-8"))
}

/// Parses a client message into the user and the token.
fn parse(kind: Kind, message: &[u8]) -> Result<(String, Secret), AuthFailure> {
    match kind {
        Kind::XOAuth2 => {
            let pairs = kvpairs(kind, message)?;
            let (_, name) = pairs.iter().find(|(key, _)| *key == b"user").ok_or(AuthFailure::Malformed("no user"))?;
            Ok((user(name, false)?, bearer(&pairs)?))
        }
        Kind::OAuthBearer => {
            // gs2-header = gs2-cb-flag "," [authzid] "," (RFC 5801 §4); no channel binding here.
            let rest = match message {
                [b'n' | b'y', b',', rest @ ..] => rest,
                [b'p', b'=', ..] => return Err(AuthFailure::Malformed("OAUTHBEARER has no channel binding")),
                _ => return Err(AuthFailure::Malformed("bad GS2 header")),
            };
            let comma = rest.iter().position(|&b| b == b',').ok_or(AuthFailure::Malformed("bad GS2 header"))?;
            let (authzid, rest) = rest.split_at(comma);
            let name = authzid.strip_prefix(b"a=").ok_or(AuthFailure::Malformed("OAUTHBEARER needs a=user"))?;
            let pairs = match rest {
                [b',', KVSEP, pairs @ ..] => kvpairs(kind, pairs)?,
                _ => return Err(AuthFailure::Malformed("GS2 header not followed by ^A")),
            };
            Ok((user(name, true)?, bearer(&pairs)?))
        }
    }
}

impl OAuthServer {
    fn handle(&mut self, message: &[u8]) -> ServerStep {
        match parse(self.kind, message) {
            Ok((user, token)) => {
                self.state = ServerState::Verifying { user: user.clone() };
                ServerStep::Ask(CredentialRequest::VerifyToken { user, token })
            }
            Err(failure) => ServerStep::Failure(failure),
        }
    }
}

impl ServerMechanism for OAuthServer {
    fn mechanism(&self) -> Mechanism {
        self.kind.mechanism()
    }

    fn start(&mut self, initial_response: Option<&[u8]>) -> ServerStep {
        if !matches!(core::mem::replace(&mut self.state, ServerState::Done), ServerState::Start) {
            return ServerStep::Failure(AuthFailure::Misuse("start called twice"));
        }
        match initial_response {
            Some(message) => self.handle(message),
            None => {
                self.state = ServerState::WaitingResponse;
                ServerStep::Challenge(Vec::new())
            }
        }
    }

    /// After an error challenge, whatever the client answers (`0x01` or empty), the exchange
    /// fails (RFC 7628 §3.2.3).
    fn step(&mut self, response: &[u8]) -> ServerStep {
        match core::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::WaitingResponse => self.handle(response),
            ServerState::WaitingDummy => ServerStep::Failure(AuthFailure::Credentials),
            _ => ServerStep::Failure(AuthFailure::Misuse("no response expected")),
        }
    }

    fn answer(&mut self, answer: CredentialAnswer) -> ServerStep {
        let ServerState::Verifying { user } = core::mem::replace(&mut self.state, ServerState::Done) else {
            return ServerStep::Failure(AuthFailure::Misuse("no question pending"));
        };
        match answer {
            CredentialAnswer::Verified => {
                ServerStep::Success { identity: Identity { authcid: user, authzid: None }, additional: None }
            }
            CredentialAnswer::Rejected | CredentialAnswer::UnknownUser => {
                self.state = ServerState::WaitingDummy;
                ServerStep::Challenge(self.error.clone())
            }
            answer => ServerStep::Failure(deny(answer)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::{FixedRandom, client as make_client, server as make_server};
    use crate::wire::{decode_base64, encode_initial, encode_payload};

    const TOKEN: &str = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==";
    const GOOGLE_TOKEN: &str = "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg";

    fn oauth_client(mechanism: &Mechanism, creds: &Credentials, port: Option<u16>) -> Box<dyn ClientMechanism> {
        let mut ctx = ClientContext::new("imap", "server.example.com");
        ctx.port = port;
        make_client(mechanism, creds, &ctx, &mut FixedRandom::new(0)).unwrap()
    }

    fn oauth_server(mechanism: &Mechanism, scope: Option<&str>) -> Box<dyn ServerMechanism> {
        let mut ctx = ServerContext::new("smtp", "h");
        ctx.oauth_scope = scope.map(String::from);
        make_server(mechanism, &ctx, &mut FixedRandom::new(0)).unwrap()
    }

    fn verify(user: &str, token: &str) -> ServerStep {
        ServerStep::Ask(CredentialRequest::VerifyToken { user: user.into(), token: Secret::from(token) })
    }

    fn first_message(mechanism: &Mechanism, user: &str, token: &str, port: Option<u16>) -> Vec<u8> {
        let mut client = oauth_client(mechanism, &Credentials::token(user, token), port);
        client.initial_response().unwrap().unwrap().expose().to_vec()
    }

    /// Vectors §11 (RFC 7628 §4): the initial response, ports 143 and 587, and the server's view.
    #[test]
    fn rfc7628_initial_response_both_sides() {
        let message = first_message(&Mechanism::OAuthBearer, "user@example.com", TOKEN, Some(143));
        assert_eq!(
            message,
            b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
        );
        assert_eq!(message.len(), 111);
        assert_eq!(
            encode_initial(&message),
            "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB"
        );
        let message = first_message(&Mechanism::OAuthBearer, "user@example.com", TOKEN, Some(587));
        assert_eq!(
            encode_initial(&message),
            "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9NTg3AWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB"
        );
        let mut server = oauth_server(&Mechanism::OAuthBearer, None);
        assert_eq!(server.start(Some(&message)), verify("user@example.com", TOKEN));
        assert_eq!(
            server.answer(CredentialAnswer::Verified),
            ServerStep::Success {
                identity: Identity { authcid: "user@example.com".into(), authzid: None },
                additional: None
            }
        );
    }

    /// Vectors §11 failure: the client answers the JSON challenge with `AQ==` and keeps it.
    #[test]
    fn rfc7628_error_challenge_round_trip() {
        let challenges: [&[u8]; 2] = [
            b"eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3BlbmlkLWNvbmZpZ3VyYXRpb24iOiJodHRwczovL2V4YW1wbGUuY29tLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0=",
            b"eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZXhhbXBsZS5jb20vIn0=",
        ];
        for challenge in challenges {
            let json = decode_base64(challenge).unwrap();
            let mut client =
                oauth_client(&Mechanism::OAuthBearer, &Credentials::token("user@example.com", TOKEN), None);
            client.initial_response().unwrap();
            assert_eq!(encode_payload(client.step(&json).unwrap().expose()), "AQ==");
            assert_eq!(client.server_error(), core::str::from_utf8(&json).ok());
            assert_eq!(client.finish(None), Err(SaslError::ServerError(String::from_utf8(json.to_vec()).unwrap())));
            assert_eq!(client.step(b"again"), Err(SaslError::UnexpectedChallenge));
        }
        let mut server = oauth_server(&Mechanism::OAuthBearer, None);
        server.start(Some(&first_message(&Mechanism::OAuthBearer, "user@example.com", TOKEN, Some(143))));
        assert_eq!(
            server.answer(CredentialAnswer::Rejected),
            ServerStep::Challenge(br#"{"status":"invalid_token"}"#.to_vec())
        );
        assert_eq!(server.step(&[KVSEP]), ServerStep::Failure(AuthFailure::Credentials));
        let mut server = oauth_server(&Mechanism::OAuthBearer, Some("example_scope"));
        server.start(Some(&first_message(&Mechanism::OAuthBearer, "u", TOKEN, None)));
        assert_eq!(
            server.answer(CredentialAnswer::UnknownUser),
            ServerStep::Challenge(br#"{"status":"invalid_token","scope":"example_scope"}"#.to_vec())
        );
    }

    /// Vectors §12: Google's XOAUTH2 message, error challenge (with its trailing LF) and empty answer.
    #[test]
    fn xoauth2_google_vectors_both_sides() {
        let message = first_message(&Mechanism::XOAuth2, "someuser@example.com", GOOGLE_TOKEN, Some(587));
        assert_eq!(
            encode_initial(&message),
            "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
        );
        let json = decode_base64(
            b"eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIG1hYyIsInNjb3BlIjoiaHR0cHM6Ly9tYWlsLmdvb2dsZS5jb20vIn0K",
        )
        .unwrap();
        let mut client =
            oauth_client(&Mechanism::XOAuth2, &Credentials::token("someuser@example.com", GOOGLE_TOKEN), None);
        client.initial_response().unwrap();
        assert_eq!(client.step(&json).unwrap().expose(), b"");
        assert_eq!(
            client.server_error(),
            Some(r#"{"status":"401","schemes":"bearer mac","scope":"https://mail.google.com/"}"#)
        );
        assert!(matches!(client.finish(None), Err(SaslError::ServerError(_))));

        let mut server = oauth_server(&Mechanism::XOAuth2, Some("https://mail.google.com/"));
        assert_eq!(server.start(Some(&message)), verify("someuser@example.com", GOOGLE_TOKEN));
        assert_eq!(
            server.answer(CredentialAnswer::Rejected),
            ServerStep::Challenge(
                br#"{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}"#.to_vec()
            )
        );
        assert_eq!(server.step(b""), ServerStep::Failure(AuthFailure::Credentials));
    }

    /// B20: Gmail POP3 `+ ` (or `+ go ahead`) before the XOAUTH2 message.
    #[test]
    fn field_b20_xoauth2_after_empty_continuation() {
        let expected = decode_base64(b"dXNlcj11c2VyQGV4YW1wbGUub3JnAWF1dGg9QmVhcmVyIHlhMjkuVE9LRU4BAQ==").unwrap();
        for challenge in [&b""[..], b"go ahead"] {
            let mut client =
                oauth_client(&Mechanism::XOAuth2, &Credentials::token("user@example.org", "ya29.TOKEN"), None);
            assert_eq!(client.step(challenge).unwrap().expose(), expected.as_slice());
            client.finish(None).unwrap();
        }
        let mut server = oauth_server(&Mechanism::XOAuth2, None);
        assert_eq!(server.start(None), ServerStep::Challenge(Vec::new()));
        assert_eq!(server.step(&expected), verify("user@example.org", "ya29.TOKEN"));
    }

    /// B17: CR, LF, NUL (and ^A) in the user of either format, decoded or escaped, are refused.
    #[test]
    fn field_b17_line_breaks_in_every_user_field() {
        for bad in ["nouser\r\n+OK injected", "a\nb", "a\rb", "a\0b", "a\x01b"] {
            let xoauth2 = [b"user=", bad.as_bytes(), b"\x01auth=Bearer abc\x01\x01"].concat();
            let bearer = [b"n,a=", bad.as_bytes(), b",\x01auth=Bearer abc\x01\x01"].concat();
            assert!(matches!(
                oauth_server(&Mechanism::XOAuth2, None).start(Some(&xoauth2)),
                ServerStep::Failure(AuthFailure::Malformed(_))
            ));
            assert!(matches!(
                oauth_server(&Mechanism::OAuthBearer, None).start(Some(&bearer)),
                ServerStep::Failure(AuthFailure::Malformed(_))
            ));
            for mechanism in [Mechanism::XOAuth2, Mechanism::OAuthBearer] {
                let ctx = ClientContext::new("smtp", "h");
                for creds in [
                    Credentials::token(bad, "abc"),
                    Credentials { authzid: Some(bad.into()), ..Credentials::token("", "abc") },
                ] {
                    let err = make_client(&mechanism, &creds, &ctx, &mut FixedRandom::new(0));
                    assert!(matches!(err, Err(SaslError::InvalidCredential(_))), "{mechanism} {bad:?}");
                }
            }
        }
    }

    #[test]
    fn authzid_is_the_user_and_saslname_escaping() {
        let creds = Credentials { authzid: Some("a,b=c".into()), ..Credentials::token("", "abc") };
        let message = oauth_client(&Mechanism::OAuthBearer, &creds, None).initial_response().unwrap().unwrap();
        assert!(message.expose().starts_with(b"n,a=a=2Cb=3Dc,\x01host="));
        assert_eq!(oauth_server(&Mechanism::OAuthBearer, None).start(Some(message.expose())), verify("a,b=c", "abc"));
        let same = Credentials { authzid: Some("u".into()), ..Credentials::token("u", "abc") };
        assert!(
            make_client(&Mechanism::OAuthBearer, &same, &ClientContext::new("smtp", "h"), &mut FixedRandom::new(0))
                .is_ok()
        );
        let other = Credentials { authzid: Some("v".into()), ..Credentials::token("u", "abc") };
        let err =
            make_client(&Mechanism::OAuthBearer, &other, &ClientContext::new("smtp", "h"), &mut FixedRandom::new(0));
        assert!(matches!(err, Err(SaslError::InvalidCredential(_))));
        let creds = Credentials::token("u", "abc");
        for (token, bad) in [("", true), ("a b", true), ("a\x01", true), ("tök", true), ("a.b-c_d~e+f/g==", false)] {
            let creds = Credentials { token: Some(Secret::from(token)), ..creds.clone() };
            let result =
                make_client(&Mechanism::XOAuth2, &creds, &ClientContext::new("smtp", "h"), &mut FixedRandom::new(0));
            assert_eq!(result.is_err(), bad, "{token:?}");
        }
        assert!(matches!(
            make_client(
                &Mechanism::XOAuth2,
                &Credentials::password("u", "p"),
                &ClientContext::new("smtp", "h"),
                &mut FixedRandom::new(0)
            ),
            Err(SaslError::MissingCredential(_))
        ));
    }

    #[test]
    fn scheme_is_case_insensitive_and_extra_keys_are_kept_out() {
        for message in [
            &b"n,a=u,\x01auth=bearer abc\x01\x01"[..],
            b"n,a=u,\x01auth=BEARER   abc\x01\x01",
            b"y,a=u,\x01host=h\x01port=25\x01xtra=1\x01auth=Bearer abc\x01\x01",
        ] {
            assert_eq!(
                oauth_server(&Mechanism::OAuthBearer, None).start(Some(message)),
                verify("u", "abc"),
                "{message:?}"
            );
        }
        assert_eq!(
            oauth_server(&Mechanism::XOAuth2, None).start(Some(b"auth=Bearer abc\x01user=j\xc3\xb6\x01\x01")),
            verify("jö", "abc")
        );
    }

    #[test]
    fn malformed_messages() {
        let long_token = [&b"user=u\x01auth=Bearer "[..], &[b'a'; MAX_TOKEN + 1], b"\x01\x01"].concat();
        let extra: Vec<u8> = (b'a'..b'u').flat_map(|k| [b'k', k, b'=', b'v', KVSEP]).collect();
        let many = [&b"user=u\x01auth=Bearer a\x01"[..], &extra, b"\x01"].concat();
        let xoauth2: [&[u8]; 16] = [
            b"",
            b"\x01",
            b"user=u\x01auth=Bearer abc\x01",
            b"user=u\x01auth=Bearer abc",
            b"auth=Bearer abc\x01\x01",
            b"user=u\x01\x01",
            b"user=\x01auth=Bearer abc\x01\x01",
            b"user=u\x01auth=Basic abc\x01\x01",
            b"user=u\x01auth=Bearerabc\x01\x01",
            b"user=u\x01auth=Bearer \x01\x01",
            b"user=u\x01auth=Bearer a=b\x01\x01",
            b"user=u\x01auth=Bearer a b\x01\x01",
            b"user=u\x01user=v\x01auth=Bearer abc\x01\x01",
            b"user=u\x01=x\x01auth=Bearer abc\x01\x01",
            &long_token,
            &many,
        ];
        for message in xoauth2 {
            let step = oauth_server(&Mechanism::XOAuth2, None).start(Some(message));
            assert!(matches!(step, ServerStep::Failure(AuthFailure::Malformed(_))), "{message:?}");
        }
        let bearer: [&[u8]; 12] = [
            b"\x01",
            b"n,,\x01auth=Bearer abc\x01\x01",
            b"p=tls-unique,a=u,\x01auth=Bearer abc\x01\x01",
            b"x,a=u,\x01auth=Bearer abc\x01\x01",
            b"n,a=u\x01auth=Bearer abc\x01\x01",
            b"n,a=u,auth=Bearer abc\x01\x01",
            b"n,a=u=2,\x01auth=Bearer abc\x01\x01",
            b"n,a=u=41,\x01auth=Bearer abc\x01\x01",
            b"n,b=u,\x01auth=Bearer abc\x01\x01",
            b"n,a=\xff,\x01auth=Bearer abc\x01\x01",
            b"n,a=u,\x01host=\xc3\xa9\x01auth=Bearer abc\x01\x01",
            b"n,a=u,\x01\x01",
        ];
        for message in bearer {
            let step = oauth_server(&Mechanism::OAuthBearer, None).start(Some(message));
            assert!(matches!(step, ServerStep::Failure(AuthFailure::Malformed(_))), "{message:?}");
        }
    }

    #[test]
    fn out_of_order() {
        let mut server = oauth_server(&Mechanism::XOAuth2, None);
        assert!(matches!(server.step(b""), ServerStep::Failure(AuthFailure::Misuse(_))));
        assert!(matches!(server.answer(CredentialAnswer::Verified), ServerStep::Failure(AuthFailure::Misuse(_))));
        let mut server = oauth_server(&Mechanism::XOAuth2, None);
        server.start(Some(b"user=u\x01auth=Bearer abc\x01\x01"));
        assert!(matches!(server.start(None), ServerStep::Failure(AuthFailure::Misuse(_))));
        let mut server = oauth_server(&Mechanism::XOAuth2, None);
        server.start(Some(b"user=u\x01auth=Bearer abc\x01\x01"));
        assert_eq!(server.answer(CredentialAnswer::TemporaryFailure), ServerStep::Failure(AuthFailure::Temporary));
        let mut client = oauth_client(&Mechanism::OAuthBearer, &Credentials::token("u", "abc"), None);
        assert!(matches!(client.finish(None), Err(SaslError::ServerNotVerified(_))));
        assert_eq!(client.server_error(), None);
        client.initial_response().unwrap();
        assert_eq!(client.initial_response(), Err(SaslError::UnexpectedChallenge));
        client.finish(None).unwrap();
        let mut client = oauth_client(&Mechanism::XOAuth2, &Credentials::token("u", "abc"), None);
        client.initial_response().unwrap();
        client.step(b"\r\n{\"status\":\"400\"}\x07\n").unwrap();
        assert_eq!(client.server_error(), Some("{\"status\":\"400\"}"));
    }

    #[test]
    fn scope_is_json_escaped() {
        let mut server = oauth_server(&Mechanism::OAuthBearer, Some("a\"b\\c\nd"));
        server.start(Some(b"n,a=u,\x01auth=Bearer abc\x01\x01"));
        assert_eq!(
            server.answer(CredentialAnswer::Rejected),
            ServerStep::Challenge(br#"{"status":"invalid_token","scope":"a\"b\\c\u000ad"}"#.to_vec())
        );
    }

    fn run(mechanism: &Mechanism, user: &str, token: &str, valid: &str) -> (ServerStep, Option<String>) {
        let mut client = oauth_client(mechanism, &Credentials::token(user, token), Some(587));
        let mut server = oauth_server(mechanism, None);
        let mut step = server.start(Some(client.initial_response().unwrap().unwrap().expose()));
        if let ServerStep::Ask(CredentialRequest::VerifyToken { token, .. }) = &step {
            step = server.answer(if *token == Secret::from(valid) {
                CredentialAnswer::Verified
            } else {
                CredentialAnswer::Rejected
            });
        }
        if let ServerStep::Challenge(json) = &step {
            step = server.step(client.step(json).unwrap().expose());
        }
        (step, client.server_error().map(String::from))
    }

    proptest::proptest! {
        #[test]
        fn client_and_server_agree(
            user in "[^\\x00\\r\\n]{1,20}",
            token in "[A-Za-z0-9._~+/-]{1,60}={0,2}",
            bearer: bool,
        ) {
            let mechanism = if bearer { Mechanism::OAuthBearer } else { Mechanism::XOAuth2 };
            if user.chars().any(|c| c.is_ascii_control()) {
                let ctx = ClientContext::new("smtp", "h");
                let made = make_client(&mechanism, &Credentials::token(user.as_str(), token.as_str()), &ctx, &mut FixedRandom::new(0));
                proptest::prop_assert!(matches!(made, Err(SaslError::InvalidCredential(_))));
            } else {
                let (step, error) = run(&mechanism, &user, &token, &token);
                proptest::prop_assert_eq!(step, ServerStep::Success { identity: Identity { authcid: user.clone(), authzid: None }, additional: None });
                proptest::prop_assert_eq!(error, None);
                let (step, error) = run(&mechanism, &user, &token, "other");
                proptest::prop_assert_eq!(step, ServerStep::Failure(AuthFailure::Credentials));
                let reported = error.is_some_and(|e| e.starts_with(r#"{"status":"#));
                proptest::prop_assert!(reported);
            }
        }
    }
}
