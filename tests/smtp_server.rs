//! The SMTP server machine: STARTTLS cases (starttls-cases.md S1-S10), field cases
//! (field-cases.md), RFC 4954 sessions as known answers, our client against our server for
//! every mechanism, split-input invariance, hostile input.

mod support;

use mailwire::sasl::{
    AuthFailure, ChannelBinding, ChannelBindingType, CredentialAnswer, CredentialRequest, Credentials, FixedRandom,
    Identity, Mechanism, Random, ScramKeys,
};
use mailwire::smtp::server::{Error, Event};
use mailwire::smtp::{Client, ClientConfig, Reply, Server, ServerConfig, client};
use mailwire::tls::{TlsInfo, TlsPolicy};

// ---------------------------------------------------------------------------------------------
// Helpers

const HOST: &str = "mail.example.net";
const GREETING: &str = "220 mail.example.net ESMTP\r\n";

fn config() -> ServerConfig {
    ServerConfig::new(HOST)
}

/// A random source that yields `bytes` first (to reproduce a transcript's challenge), then
/// zeros.
fn scripted_rng(bytes: Vec<u8>) -> Box<dyn Random + Send> {
    let mut queue = std::collections::VecDeque::from(bytes);
    Box::new(move |dest: &mut [u8]| {
        for byte in dest {
            *byte = queue.pop_front().unwrap_or(0);
        }
    })
}

fn new_server(config: ServerConfig) -> Server {
    Server::new(config, Box::new(FixedRandom::new(7)))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn output(server: &mut Server) -> String {
    let mut out = Vec::new();
    while let Some(bytes) = server.poll_transmit() {
        out.extend_from_slice(&bytes);
    }
    text(&out)
}

fn events(server: &mut Server) -> Vec<Event> {
    std::iter::from_fn(|| server.poll_event()).collect()
}

fn tls_info() -> TlsInfo {
    TlsInfo::default()
}

fn tls_with_binding() -> TlsInfo {
    TlsInfo {
        channel_binding: Some(ChannelBinding { kind: ChannelBindingType::TlsExporter, data: vec![0x42; 32] }),
        ..TlsInfo::default()
    }
}

/// The application used by most tests: a user table, accept every MAIL and RCPT except
/// mailboxes starting with `reject`, accept every message.
#[derive(Default)]
struct App {
    /// Collected message bodies.
    messages: Vec<Vec<u8>>,
    body: Vec<u8>,
    /// TLS info reported at the handshake.
    tls: Option<TlsInfo>,
    /// Answer credential questions with a temporary failure.
    temporary: bool,
    /// Store SCRAM keys rather than passwords.
    scram_keys: bool,
}

fn password_of(user: &str) -> Option<&'static str> {
    match user {
        "alice" => Some("wonderland"),
        "tim" => Some("tanstaaftanstaaf"),
        "test" => Some("1234"),
        _ => None,
    }
}

impl App {
    fn answer(&self, request: &CredentialRequest) -> CredentialAnswer {
        if self.temporary {
            return CredentialAnswer::TemporaryFailure;
        }
        match request {
            CredentialRequest::VerifyPassword { authcid, password } => match password_of(authcid) {
                Some(good) if password.expose() == good.as_bytes() => CredentialAnswer::Verified,
                Some(_) => CredentialAnswer::Rejected,
                None => CredentialAnswer::UnknownUser,
            },
            CredentialRequest::VerifyToken { user, token } => {
                if token.expose() == format!("token-{user}").as_bytes() {
                    CredentialAnswer::Verified
                } else {
                    CredentialAnswer::Rejected
                }
            }
            CredentialRequest::Password { authcid } => {
                password_of(authcid).map_or(CredentialAnswer::UnknownUser, |p| CredentialAnswer::Password(p.into()))
            }
            CredentialRequest::DigestSecret { username, .. } => {
                password_of(username).map_or(CredentialAnswer::UnknownUser, |p| CredentialAnswer::Password(p.into()))
            }
            CredentialRequest::ScramCredentials { authcid, hash } => match password_of(authcid) {
                Some(p) if self.scram_keys => {
                    CredentialAnswer::ScramKeys(ScramKeys::derive(*hash, p, b"fixed salt", 4096).unwrap())
                }
                Some(p) => CredentialAnswer::Password(p.into()),
                None => CredentialAnswer::UnknownUser,
            },
            CredentialRequest::Anonymous { .. } => CredentialAnswer::Verified,
            CredentialRequest::Authorize { authcid, authzid } => {
                if authcid == authzid || authcid == "admin" {
                    CredentialAnswer::Verified
                } else {
                    CredentialAnswer::Rejected
                }
            }
            _ => CredentialAnswer::Rejected,
        }
    }

    /// Answers every event that needs an answer, until none is left; returns the events.
    fn drive(&mut self, server: &mut Server) -> Vec<Event> {
        let mut seen = Vec::new();
        while let Some(event) = server.poll_event() {
            let result = match &event {
                Event::StartTls => server.tls_established(self.tls.clone().unwrap_or_default()),
                Event::Credentials(request) => server.answer_credentials(self.answer(request)),
                Event::Mail { from: address, .. } | Event::Rcpt { to: address, .. } => {
                    if address.starts_with("reject") {
                        server.reject(Reply::new(550, "No such user here"))
                    } else {
                        server.accept()
                    }
                }
                Event::Data(bytes) => {
                    self.body.extend_from_slice(bytes);
                    Ok(())
                }
                Event::DataEnd { .. } => {
                    self.messages.push(std::mem::take(&mut self.body));
                    server.accept()
                }
                _ => Ok(()),
            };
            // Answers fail only once the session was closed behind the event (input flood).
            assert!(result.is_ok() || server.is_closed(), "{event:?}: {result:?}");
            seen.push(event);
        }
        seen
    }
}

/// What a run produced.
#[derive(Debug, PartialEq)]
struct Run {
    events: Vec<Event>,
    output: String,
    errors: Vec<Error>,
    closed: bool,
    messages: Vec<Vec<u8>>,
}

/// Feeds `segments` (one per TLS segment: each later one comes after the handshake), each
/// cut into the given chunks, answering with `App`.
fn run_chunks(make: &dyn Fn() -> (Server, App), segments: &[Vec<&[u8]>]) -> Run {
    let (mut server, mut app) = make();
    let mut events = app.drive(&mut server);
    let mut errors = Vec::new();
    for chunks in segments {
        for chunk in chunks {
            if server.is_closed() {
                // The driver closes the connection: nothing more is read.
                break;
            }
            if let Err(error) = server.receive(chunk) {
                errors.push(error);
            }
            events.extend(app.drive(&mut server));
        }
    }
    Run { events, output: output(&mut server), errors, closed: server.is_closed(), messages: app.messages }
}

fn run(make: &dyn Fn() -> (Server, App), segments: &[&[u8]]) -> Run {
    let segments: Vec<Vec<&[u8]>> = segments.iter().map(|s| vec![*s]).collect();
    run_chunks(make, &segments)
}

/// Runs the session whole, then with each segment cut at every point and byte by byte, and
/// checks that every run gives the same events and output.
fn assert_split_invariant(make: &dyn Fn() -> (Server, App), segments: &[&[u8]], context: &str) -> Run {
    let whole = run(make, segments);
    for (i, segment) in segments.iter().enumerate() {
        for chunks in support::chunkings(segment).into_iter().skip(1) {
            let mut cut: Vec<Vec<&[u8]>> = segments.iter().map(|s| vec![*s]).collect();
            cut[i] = chunks.clone();
            let result = run_chunks(make, &cut);
            assert_eq!(
                result,
                whole,
                "{context}: segment {i} in chunks of {:?}",
                chunks.iter().map(|c| c.len()).collect::<Vec<_>>()
            );
        }
    }
    whole
}

fn plain_server() -> (Server, App) {
    (new_server(config()), App::default())
}

/// A server that has answered the greeting and `EHLO x`, before TLS.
fn after_ehlo(config: ServerConfig) -> Server {
    let mut server = new_server(config);
    server.receive(b"EHLO x\r\n").unwrap();
    let out = output(&mut server);
    assert!(out.starts_with(GREETING) && out.contains("250 "), "{out}");
    assert_eq!(events(&mut server), vec![Event::Helo { domain: "x".into(), extended: true }]);
    server
}

/// A server after STARTTLS and the handshake, before the second EHLO.
fn after_tls(config: ServerConfig, info: TlsInfo) -> Server {
    let mut server = after_ehlo(config);
    server.receive(b"STARTTLS\r\n").unwrap();
    assert_eq!(output(&mut server), "220 2.0.0 Ready to start TLS\r\n");
    assert_eq!(events(&mut server), vec![Event::StartTls]);
    server.tls_established(info).unwrap();
    assert!(server.is_tls());
    server
}

// ---------------------------------------------------------------------------------------------
// STARTTLS cases (shared/vectors/starttls-cases.md)

/// Whether any reply after the EHLO reply is a 2yz produced from injected input.
fn no_reply_from_injection(out: &str) {
    assert!(!out.contains("250 2.0.0 OK"), "RSET executed: {out}");
    assert!(!out.contains("Sender OK"), "MAIL executed: {out}");
    assert!(!out.contains("Recipient OK"), "RCPT executed: {out}");
    assert!(!out.contains("354"), "DATA executed: {out}");
}

/// After `STARTTLS\r\n` plus `injected`, at every split point: `220`, [`Event::StartTls`],
/// every injected byte dropped unread (counted), nothing replied to it, before or after the
/// handshake; over TLS the first command processed is the first one sent through TLS.
fn injection_at_every_split(injected: &[u8]) {
    let input = [b"STARTTLS\r\n".as_slice(), injected].concat();
    for chunks in support::chunkings(&input) {
        let mut server = after_ehlo(config());
        for chunk in &chunks {
            assert_eq!(server.receive(chunk), Ok(()), "{chunks:?}");
        }
        assert_eq!(output(&mut server), "220 2.0.0 Ready to start TLS\r\n", "{chunks:?}");
        assert_eq!(events(&mut server), vec![Event::StartTls], "{chunks:?}");
        assert_eq!(server.discarded_after_starttls(), injected.len(), "{chunks:?}");
        assert!(!server.is_closed() && !server.is_tls());
        server.tls_established(tls_info()).unwrap();
        server.receive(b"EHLO x\r\n").unwrap();
        let out = output(&mut server);
        no_reply_from_injection(&out);
        assert!(out.starts_with("250-mail.example.net\r\n"), "{out}");
        assert_eq!(events(&mut server), vec![Event::Helo { domain: "x".into(), extended: true }], "{chunks:?}");
        assert_eq!(server.discarded_after_starttls(), injected.len());
    }
}

#[test]
fn starttls_s1_command_injection() {
    let mut server = after_ehlo(config());
    server.receive(b"STARTTLS\r\nRSET\r\n").unwrap();
    assert_eq!(output(&mut server), "220 2.0.0 Ready to start TLS\r\n");
    assert_eq!(events(&mut server), vec![Event::StartTls]);
    assert_eq!(server.discarded_after_starttls(), 6);
    // More plaintext before the handshake is dropped too.
    assert_eq!(server.receive(b"RSET\r\n"), Ok(()));
    assert_eq!(output(&mut server), "");
    assert_eq!(events(&mut server), vec![]);
    server.tls_established(tls_info()).unwrap();
    // Nothing of the injected RSETs is answered inside TLS.
    server.receive(b"NOOP\r\n").unwrap();
    assert_eq!(output(&mut server), "250 2.0.0 OK\r\n");
    assert_eq!(server.discarded_after_starttls(), 12);
}

fn code(class: u8, subject: u16, detail: u16) -> mailwire::smtp::EnhancedCode {
    mailwire::smtp::EnhancedCode::new(class, subject, detail)
}

#[test]
fn starttls_s1_command_injection_at_every_split() {
    injection_at_every_split(b"RSET\r\n");
}

#[test]
fn starttls_s2_credential_theft_variant() {
    injection_at_every_split(b"MAIL FROM:<a@x>\r\nRCPT TO:<attacker@x>\r\nDATA\r\n");
}

#[test]
fn starttls_s2_first_command_after_handshake_is_the_first_over_tls() {
    // The legitimate flow: STARTTLS alone; the first command processed after the handshake
    // is the first one received through TLS.
    let mut server = after_tls(config(), tls_info());
    assert_eq!(server.receive(b"MAIL FROM:<a@x>\r\n"), Ok(()));
    assert_eq!(output(&mut server), "503 5.5.1 EHLO/HELO first\r\n");
    assert_eq!(events(&mut server), vec![]);
    assert_eq!(server.discarded_after_starttls(), 0);
}

#[test]
fn starttls_s4_state_reset() {
    let mut server = after_tls(config(), tls_info());
    server.receive(b"MAIL FROM:<a@x>\r\n").unwrap();
    assert_eq!(output(&mut server), "503 5.5.1 EHLO/HELO first\r\n");
    assert_eq!(events(&mut server), vec![]);
    // A transaction and an identity from before TLS are forgotten too.
    let mut config = config();
    config.require_tls_for_auth = false;
    config.mechanisms_before_tls = vec![Mechanism::Plain];
    let mut server = after_ehlo(config);
    server.receive(b"AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n").unwrap();
    let mut app = App::default();
    app.drive(&mut server);
    assert!(server.is_authenticated());
    server.receive(b"STARTTLS\r\n").unwrap();
    app.drive(&mut server);
    assert!(server.is_tls());
    assert!(!server.is_authenticated());
    assert_eq!(output(&mut server), "235 2.7.0 Authentication successful\r\n220 2.0.0 Ready to start TLS\r\n");
}

#[test]
fn starttls_s5_ehlo_after_tls() {
    let mut server = after_tls(config(), tls_info());
    server.receive(b"EHLO x\r\n").unwrap();
    assert_eq!(
        output(&mut server),
        "250-mail.example.net\r\n250-SIZE 26214400\r\n250-PIPELINING\r\n250-8BITMIME\r\n\
         250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250 AUTH SCRAM-SHA-256 SCRAM-SHA-1 PLAIN LOGIN\r\n"
    );
    // Before TLS: STARTTLS offered, no AUTH (TLS required for it).
    let mut server = new_server(config());
    server.receive(b"EHLO x\r\n").unwrap();
    assert_eq!(
        output(&mut server),
        format!(
            "{GREETING}250-mail.example.net\r\n250-SIZE 26214400\r\n250-PIPELINING\r\n250-8BITMIME\r\n\
             250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250 STARTTLS\r\n"
        )
    );
}

#[test]
fn starttls_s6_second_starttls() {
    let mut server = after_tls(config(), tls_info());
    server.receive(b"STARTTLS\r\n").unwrap();
    assert_eq!(output(&mut server), "503 5.5.1 TLS already active\r\n");
    server.receive(b"EHLO x\r\nSTARTTLS\r\n").unwrap();
    let out = output(&mut server);
    assert!(!out.contains("STARTTLS"), "{out}");
    assert!(out.ends_with("503 5.5.1 TLS already active\r\n"));
    assert_eq!(events(&mut server), vec![Event::Helo { domain: "x".into(), extended: true }]);
}

#[test]
fn starttls_s7_starttls_with_args() {
    let mut server = after_ehlo(config());
    server.receive(b"STARTTLS foo\r\n").unwrap();
    assert_eq!(output(&mut server), "501 5.5.4 Syntax error (no parameters allowed)\r\n");
    assert_eq!(events(&mut server), vec![]);
    assert!(!server.is_closed());
}

#[test]
fn starttls_s8_auth_before_tls() {
    let mut server = after_ehlo(config());
    server.receive(b"AUTH PLAIN dGVzdAB0ZXN0ADEyMzQ=\r\n").unwrap();
    assert_eq!(output(&mut server), "530 5.7.0 Must issue a STARTTLS command first\r\n");
    assert_eq!(events(&mut server), vec![], "credentials not checked");
}

#[test]
fn starttls_s10_partial_line_at_switch() {
    let mut server = after_ehlo(config());
    server.receive(b"STARTTLS\r\nMAI").unwrap();
    assert_eq!(output(&mut server), "220 2.0.0 Ready to start TLS\r\n");
    server.tls_established(tls_info()).unwrap();
    // The partial "MAI" did not survive the switch: "L FROM" is not a command.
    server.receive(b"L FROM:<a@x>\r\n").unwrap();
    assert_eq!(output(&mut server), "500 5.5.2 Command unrecognized\r\n");
    injection_at_every_split(b"MAIL FROM:<a@x>\r\n");
    injection_at_every_split(b"MAI");
}

#[test]
fn field_b10_starttls_plaintext_command_injection() {
    injection_at_every_split(b"RSET\r\nMAIL FROM:<user@example.org>\r\n");
}

#[test]
fn starttls_refused_during_a_transaction_and_when_unavailable() {
    let mut server = after_ehlo(config());
    server.receive(b"MAIL FROM:<a@x>\r\n").unwrap();
    App::default().drive(&mut server);
    server.receive(b"STARTTLS\r\n").unwrap();
    assert_eq!(output(&mut server), "250 2.1.0 Sender OK\r\n503 5.5.1 Mail transaction in progress\r\n");
    let mut config = config();
    config.tls_available = false;
    let mut server = after_ehlo(config);
    server.receive(b"STARTTLS\r\n").unwrap();
    assert_eq!(output(&mut server), "502 5.5.1 STARTTLS not available\r\n");
}

#[test]
fn mail_refused_before_tls_when_required() {
    let mut config = config();
    config.require_tls_for_mail = true;
    let mut server = after_ehlo(config);
    server.receive(b"MAIL FROM:<a@x>\r\n").unwrap();
    assert_eq!(output(&mut server), "530 5.7.0 Must issue a STARTTLS command first\r\n");
    assert_eq!(events(&mut server), vec![]);
}

// ---------------------------------------------------------------------------------------------
// AUTH: field cases and RFC 4954

/// A server under TLS after EHLO, offering every mechanism there is.
fn auth_ready(info: TlsInfo) -> Server {
    let mut config = config();
    config.mechanisms_after_tls = Mechanism::KNOWN.to_vec();
    let mut server = after_tls(config, info);
    server.receive(b"EHLO client.example.com\r\n").unwrap();
    output(&mut server);
    events(&mut server);
    server
}

fn alice() -> Identity {
    Identity { authcid: "alice".into(), authzid: None }
}

#[test]
fn field_b01_empty_challenge_has_the_space() {
    let mut server = auth_ready(tls_info());
    server.receive(b"AUTH PLAIN\r\n").unwrap();
    assert_eq!(output(&mut server), "334 \r\n");
    server.receive(b"AGFsaWNlAHdvbmRlcmxhbmQ=\r\n").unwrap();
    assert!(matches!(events(&mut server).as_slice(), [Event::Credentials(CredentialRequest::VerifyPassword { .. })]));
    server.answer_credentials(CredentialAnswer::Verified).unwrap();
    assert_eq!(output(&mut server), "235 2.7.0 Authentication successful\r\n");
    assert_eq!(events(&mut server), vec![Event::Authenticated { identity: alice(), mechanism: Mechanism::Plain }]);
    // XOAUTH2 without an initial response gets the same empty challenge.
    let mut server = auth_ready(tls_info());
    server.receive(b"AUTH XOAUTH2\r\n").unwrap();
    assert_eq!(output(&mut server), "334 \r\n");
}

#[test]
fn field_b02_login_prompts_without_nul() {
    let mut server = auth_ready(tls_info());
    server.receive(b"AUTH LOGIN\r\n").unwrap();
    assert_eq!(output(&mut server), "334 VXNlcm5hbWU6\r\n");
    server.receive(b"YWxpY2U=\r\n").unwrap();
    assert_eq!(output(&mut server), "334 UGFzc3dvcmQ6\r\n");
    server.receive(b"d29uZGVybGFuZA==\r\n").unwrap();
    App::default().drive(&mut server);
    assert_eq!(output(&mut server), "235 2.7.0 Authentication successful\r\n");
    assert_eq!(server.identity(), Some(&alice()));
}

#[test]
fn field_b05_lower_case_login_with_initial_response() {
    let mut server = auth_ready(tls_info());
    server.receive(b"auth login dXNlckBleGFtcGxlLm9yZw==\r\n").unwrap();
    assert_eq!(output(&mut server), "334 UGFzc3dvcmQ6\r\n");
    server.receive(b"c2VjcmV0\r\n").unwrap();
    assert_eq!(
        events(&mut server),
        vec![Event::Credentials(CredentialRequest::VerifyPassword {
            authcid: "user@example.org".into(),
            password: "secret".into()
        })]
    );
}

#[test]
fn field_b06_equals_is_an_empty_initial_response() {
    for input in [&b"AUTH ANONYMOUS =\r\n"[..], b"AUTH ANONYMOUS\r\n=\r\n"] {
        let mut server = auth_ready(tls_info());
        server.receive(input).unwrap();
        let events = App::default().drive(&mut server);
        assert_eq!(events[0], Event::Credentials(CredentialRequest::Anonymous { trace: String::new() }));
        let out = output(&mut server);
        let expected = if input.len() > 18 { "334 \r\n" } else { "" };
        assert_eq!(out, format!("{expected}235 2.7.0 Authentication successful\r\n"));
    }
}

#[test]
fn field_b17_line_breaks_in_plain_identity_never_echoed() {
    let mut server = auth_ready(tls_info());
    server.receive(b"AUTH PLAIN AG5vdXNlcg0KK09LIGluamVjdGVkAHNlY3JldA==\r\n").unwrap();
    let out = output(&mut server);
    assert_eq!(out, "535 5.7.8 Authentication credentials invalid\r\n");
    assert!(!out.contains("injected") && !out.contains("nouser") && !out.contains("secret"));
    let events = events(&mut server);
    assert!(matches!(events.as_slice(), [Event::AuthFailed { failure: AuthFailure::Malformed(_), .. }]), "{events:?}");
}

#[test]
fn field_b18_plain_with_empty_authcid() {
    let mut server = auth_ready(tls_info());
    server.receive(b"AUTH PLAIN YWRtaW4AAHNlY3JldA==\r\n").unwrap();
    assert_eq!(output(&mut server), "535 5.7.8 Authentication credentials invalid\r\n");
    let events = events(&mut server);
    assert!(matches!(events.as_slice(), [Event::AuthFailed { .. }]), "no credential check: {events:?}");
    // The valid contrast: empty authzid.
    server.receive(b"AUTH PLAIN AHVzZXJAZXhhbXBsZS5vcmcAc2VjcmV0\r\n").unwrap();
    assert!(matches!(
        crate::events(&mut server).as_slice(),
        [Event::Credentials(CredentialRequest::VerifyPassword { authcid, .. })] if authcid == "user@example.org"
    ));
}

/// RFC 4954 §4.1 example A: PLAIN with an initial response after STARTTLS; PLAIN only
/// advertised after TLS.
#[test]
fn rfc4954_example_a_plain_initial_response_after_starttls() {
    let make = || {
        let mut config = ServerConfig::new("smtp.example.com");
        config.mechanisms_after_tls = vec![Mechanism::DigestMd5, Mechanism::Plain];
        (new_server(config), App::default())
    };
    let run = assert_split_invariant(
        &make,
        &[
            b"EHLO client.example.com\r\nSTARTTLS\r\n",
            b"EHLO client.example.com\r\nAUTH PLAIN dGVzdAB0ZXN0ADEyMzQ=\r\n",
        ],
        "RFC 4954 A",
    );
    let before = "220 smtp.example.com ESMTP\r\n250-smtp.example.com\r\n250-SIZE 26214400\r\n250-PIPELINING\r\n\
                  250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250 STARTTLS\r\n\
                  220 2.0.0 Ready to start TLS\r\n";
    let after = "250-smtp.example.com\r\n250-SIZE 26214400\r\n250-PIPELINING\r\n250-8BITMIME\r\n\
                 250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250 AUTH DIGEST-MD5 PLAIN\r\n\
                 235 2.7.0 Authentication successful\r\n";
    assert_eq!(run.output, format!("{before}{after}"));
    let test = Identity { authcid: "test".into(), authzid: None };
    assert_eq!(
        run.events,
        vec![
            Event::Helo { domain: "client.example.com".into(), extended: true },
            Event::StartTls,
            Event::Helo { domain: "client.example.com".into(), extended: true },
            Event::Credentials(CredentialRequest::VerifyPassword { authcid: "test".into(), password: "1234".into() }),
            Event::Authenticated { identity: test, mechanism: Mechanism::Plain },
        ]
    );
}

/// RFC 4954 §4.1 example B: no initial response; the exact empty challenge `334 `.
#[test]
fn rfc4954_example_b_plain_after_empty_challenge() {
    let mut server = auth_ready(tls_info());
    server.receive(b"AUTH PLAIN\r\n").unwrap();
    assert_eq!(output(&mut server).as_bytes(), b"334 \r\n");
    server.receive(b"dGVzdAB0ZXN0ADEyMzQ=\r\n").unwrap();
    App::default().drive(&mut server);
    assert_eq!(output(&mut server), "235 2.7.0 Authentication successful\r\n");
}

/// The bytes `challenge` draws to produce `<first.second@host>`.
fn cram_rng(first: u32, second: u64) -> Vec<u8> {
    let mut bytes = first.to_be_bytes().to_vec();
    bytes.extend_from_slice(&second.to_be_bytes());
    bytes
}

/// RFC 4954 §4.1 example C: CRAM-MD5, the challenge reproduced byte for byte. The RFC does
/// not give the password, so the right digest cannot be checked: a wrong one fails.
#[test]
fn rfc4954_example_c_cram_md5() {
    let mut config = ServerConfig::new("sourcefour.andrew.cmu.edu");
    config.require_tls_for_auth = false;
    config.mechanisms_before_tls = vec![Mechanism::DigestMd5, Mechanism::CramMd5];
    let mut server = Server::new(config, scripted_rng(cram_rng(4192942341, 12828472)));
    server.receive(b"EHLO client.example.com\r\nAUTH CRAM-MD5\r\n").unwrap();
    let out = output(&mut server);
    assert!(out.contains("250 AUTH DIGEST-MD5 CRAM-MD5\r\n"), "{out}");
    assert!(out.ends_with("334 PDQxOTI5NDIzNDEuMTI4Mjg0NzJAc291cmNlZm91ci5hbmRyZXcuY211LmVkdT4=\r\n"), "{out}");
    events(&mut server);
    server.receive(b"cmpzMyBlYzNhNTlmZWQzOTVhYmExZWM2MzY3YzRmNGI0MWFjMA==\r\n").unwrap();
    assert_eq!(events(&mut server), vec![Event::Credentials(CredentialRequest::Password { authcid: "rjs3".into() })]);
    server.answer_credentials(CredentialAnswer::Password("not the password".into())).unwrap();
    assert_eq!(output(&mut server), "535 5.7.8 Authentication credentials invalid\r\n");
}

/// RFC 2195 §2 in its SMTP form: challenge, response and success, with the known password.
#[test]
fn rfc2195_cram_md5_known_answer() {
    let make = || {
        let mut config = ServerConfig::new("postoffice.reston.mci.net");
        config.require_tls_for_auth = false;
        config.mechanisms_before_tls = vec![Mechanism::CramMd5];
        (Server::new(config, scripted_rng(cram_rng(1896, 697170952))), App::default())
    };
    let run = assert_split_invariant(
        &make,
        &[b"EHLO x\r\nAUTH CRAM-MD5\r\ndGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n"],
        "RFC 2195",
    );
    assert!(run.output.ends_with(
        "334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n235 2.7.0 Authentication successful\r\n"
    ));
    assert_eq!(
        run.events.last(),
        Some(&Event::Authenticated {
            identity: Identity { authcid: "tim".into(), authzid: None },
            mechanism: Mechanism::CramMd5
        })
    );
}

/// RFC 4954 §4.1 example D: EXTERNAL with `=`, as the client certificate's identity.
#[test]
fn rfc4954_example_d_external_with_equals() {
    let info = TlsInfo { peer_identity: Some("alice".into()), ..TlsInfo::default() };
    let mut config = config();
    config.mechanisms_after_tls = vec![Mechanism::External, Mechanism::DigestMd5, Mechanism::Plain];
    let mut server = after_tls(config, info);
    server.receive(b"EHLO client.example.com\r\nAUTH EXTERNAL =\r\n").unwrap();
    let out = output(&mut server);
    assert!(out.contains("250 AUTH EXTERNAL DIGEST-MD5 PLAIN\r\n"), "{out}");
    assert!(out.ends_with("\r\n235 2.7.0 Authentication successful\r\n"), "{out}");
    assert_eq!(
        events(&mut server).last(),
        Some(&Event::Authenticated { identity: alice(), mechanism: Mechanism::External })
    );
}

#[test]
fn rfc4954_cancel_gets_501() {
    let mut config = ServerConfig::new("sourcefour.andrew.cmu.edu");
    config.require_tls_for_auth = false;
    config.mechanisms_before_tls = vec![Mechanism::CramMd5];
    let mut server = Server::new(config, scripted_rng(cram_rng(4192942341, 12828472)));
    server.receive(b"EHLO client.example.com\r\nAUTH CRAM-MD5\r\n*\r\n").unwrap();
    let out = output(&mut server);
    assert!(
        out.ends_with(
            "334 PDQxOTI5NDIzNDEuMTI4Mjg0NzJAc291cmNlZm91ci5hbmRyZXcuY211LmVkdT4=\r\n501 5.7.0 Authentication cancelled\r\n"
        ),
        "{out}"
    );
    assert!(matches!(
        events(&mut server).last(),
        Some(Event::AuthFailed { failure: AuthFailure::Cancelled, mechanism: Mechanism::CramMd5, .. })
    ));
}

#[test]
fn rfc4954_mail_auth_parameter_reaches_the_application() {
    let mut server = after_ehlo(config());
    server.receive(b"MAIL FROM:<e=mc2@example.com> AUTH=e+3Dmc2@example.com\r\n").unwrap();
    let events = events(&mut server);
    let [Event::Mail { from, parameters, identity: None }] = events.as_slice() else { panic!("{events:?}") };
    assert_eq!(from, "e=mc2@example.com");
    assert_eq!(parameters.auth(), Some(Some("e+3Dmc2@example.com")));
    server.accept().unwrap();
    assert_eq!(output(&mut server), "250 2.1.0 Sender OK\r\n");
    server.receive(b"RSET\r\nMAIL FROM:<john+@example.org> AUTH=<>\r\n").unwrap();
    let events = crate::events(&mut server);
    assert!(
        matches!(events.as_slice(), [Event::Reset, Event::Mail { parameters, .. }] if parameters.auth() == Some(None)),
        "{events:?}"
    );
}

#[test]
fn rfc4954_reply_codes() {
    // 504 unknown mechanism, 501 bad base64, 501 initial response to a server-first one,
    // 503 AUTH after AUTH, 503 AUTH in a transaction, 454 temporary failure, 500 long line.
    let mut server = auth_ready(tls_info());
    server.receive(b"AUTH GSSAPI\r\n").unwrap();
    assert_eq!(output(&mut server), "504 5.5.4 Unrecognized authentication type\r\n");
    server.receive(b"AUTH PLAIN =AAA\r\n").unwrap();
    assert_eq!(output(&mut server), "501 5.5.2 Invalid base64 data\r\n");
    server.receive(b"AUTH CRAM-MD5 dGVzdA==\r\n").unwrap();
    assert_eq!(output(&mut server), "501 5.7.0 Initial response not allowed for this mechanism\r\n");
    server.receive(b"AUTH PLAIN\r\nAAA=BBB\r\n").unwrap();
    assert_eq!(output(&mut server), "334 \r\n501 5.5.2 Invalid base64 data\r\n");
    assert!(matches!(events(&mut server).as_slice(), [Event::AuthFailed { failure: AuthFailure::Malformed(_), .. }]));
    let mut long = b"AUTH PLAIN\r\n".to_vec();
    long.extend(std::iter::repeat_n(b'A', 20_000));
    long.extend_from_slice(b"\r\n");
    server.receive(&long).unwrap();
    assert_eq!(output(&mut server), "334 \r\n500 5.5.6 Authentication exchange line is too long\r\n");
    events(&mut server);
    assert!(!server.is_closed());
    server.receive(b"AUTH PLAIN\r\n*\r\n").unwrap();
    assert_eq!(
        output(&mut server),
        "334 \r\n501 5.7.0 Authentication cancelled\r\n421 4.7.0 Too many failed authentication attempts\r\n"
    );
    assert!(server.is_closed(), "third failure: the default limit is 3");

    let mut server = auth_ready(tls_info());
    server.receive(b"AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n").unwrap();
    let mut app = App { temporary: true, ..App::default() };
    app.drive(&mut server);
    assert_eq!(output(&mut server), "454 4.7.0 Temporary authentication failure\r\n");
    server.receive(b"AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n").unwrap();
    App::default().drive(&mut server);
    assert_eq!(output(&mut server), "235 2.7.0 Authentication successful\r\n");
    server.receive(b"AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n").unwrap();
    assert_eq!(output(&mut server), "503 5.5.1 Already authenticated\r\n");

    let mut server = auth_ready(tls_info());
    server.receive(b"MAIL FROM:<a@x>\r\n").unwrap();
    App::default().drive(&mut server);
    server.receive(b"AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n").unwrap();
    assert_eq!(output(&mut server), "250 2.1.0 Sender OK\r\n503 5.5.1 AUTH not allowed during a mail transaction\r\n");
}

#[test]
fn auth_538_when_the_mechanism_needs_tls() {
    let mut config = config();
    config.require_tls_for_auth = false;
    config.mechanisms_before_tls = vec![Mechanism::ScramSha256];
    let mut server = after_ehlo(config);
    server.receive(b"AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n").unwrap();
    assert_eq!(output(&mut server), "538 5.7.11 Encryption required for requested authentication mechanism\r\n");
    assert_eq!(events(&mut server), vec![]);
}

#[test]
fn auth_before_ehlo_is_out_of_sequence() {
    let mut server = new_server(config());
    server.receive(b"AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n").unwrap();
    assert_eq!(output(&mut server), format!("{GREETING}503 5.5.1 EHLO/HELO first\r\n"));
}

#[test]
fn plus_and_external_offered_only_when_usable() {
    let mut all = config();
    all.mechanisms_after_tls = Mechanism::KNOWN.to_vec();
    let offered = |info: TlsInfo| after_tls(all.clone(), info).mechanisms();
    let none = offered(tls_info());
    assert!(!none.iter().any(|m| m.is_plus() || *m == Mechanism::External), "{none:?}");
    let plus = offered(tls_with_binding());
    assert!(plus.contains(&Mechanism::ScramSha256Plus) && plus.contains(&Mechanism::ScramSha1Plus));
    assert!(!plus.contains(&Mechanism::External));
    let external = offered(TlsInfo { peer_identity: Some("alice".into()), ..TlsInfo::default() });
    assert!(external.contains(&Mechanism::External));
    // Not offered means 504 when asked for.
    let mut server = auth_ready(tls_info());
    server.receive(b"AUTH EXTERNAL =\r\nAUTH SCRAM-SHA-256-PLUS\r\n").unwrap();
    assert_eq!(
        output(&mut server),
        "504 5.5.4 Unrecognized authentication type\r\n504 5.5.4 Unrecognized authentication type\r\n"
    );
}

#[test]
fn failed_auth_limit_closes_with_421() {
    let mut server = auth_ready(tls_info());
    let wrong = b"AUTH PLAIN AGFsaWNlAHdyb25n\r\n"; // \0alice\0wrong
    let mut app = App::default();
    for _ in 0..2 {
        server.receive(wrong).unwrap();
        app.drive(&mut server);
        assert_eq!(output(&mut server), "535 5.7.8 Authentication credentials invalid\r\n");
    }
    server.receive(wrong).unwrap();
    let events = app.drive(&mut server);
    assert_eq!(
        output(&mut server),
        "535 5.7.8 Authentication credentials invalid\r\n421 4.7.0 Too many failed authentication attempts\r\n"
    );
    assert!(
        matches!(events.as_slice(), [Event::Credentials(_), Event::AuthFailed { .. }, Event::Closed(r)] if r.code == 421)
    );
    assert!(server.is_closed());
    assert_eq!(server.receive(wrong), Ok(()));
    assert_eq!(output(&mut server), "");
}

#[test]
fn answer_without_question_is_a_caller_error() {
    let mut server = auth_ready(tls_info());
    assert!(matches!(server.answer_credentials(CredentialAnswer::Verified), Err(Error::InvalidState(_))));
    assert!(matches!(server.accept(), Err(Error::InvalidState(_))));
    assert!(matches!(server.reject(Reply::new(550, "no")), Err(Error::InvalidState(_))));
    server.receive(b"MAIL FROM:<a@x>\r\n").unwrap();
    events(&mut server);
    assert!(matches!(server.reject(Reply::new(250, "ok")), Err(Error::InvalidReply(_))));
    assert!(matches!(server.accept_with(Reply::new(550, "no")), Err(Error::InvalidReply(_))));
    assert!(matches!(server.reject(Reply::new(550, "a\r\n250 forged")), Err(Error::InvalidReply(_))));
    assert_eq!(output(&mut server), "", "nothing written by refused calls");
    server.accept_with(Reply::new(250, "queued as X1")).unwrap();
    assert_eq!(output(&mut server), "250 queued as X1\r\n");
    // A 421 from the application ends the session; queued input is dropped.
    server.receive(b"RCPT TO:<b@x>\r\nNOOP\r\n").unwrap();
    events(&mut server);
    server.reject(Reply::enhanced(421, code(4, 3, 2), "Shutting down")).unwrap();
    assert_eq!(output(&mut server), "421 4.3.2 Shutting down\r\n");
    assert!(server.is_closed());
    assert!(matches!(events(&mut server).as_slice(), [Event::Closed(r)] if r.code == 421));
}

// ---------------------------------------------------------------------------------------------
// Mail transactions

const SESSION: &[u8] = b"EHLO client.example\r\n\
MAIL FROM:<alice@example.net> SIZE=100 BODY=8BITMIME\r\n\
RCPT TO:<bob@example.org>\r\n\
RCPT TO:<reject@example.org>\r\n\
RCPT TO:<carol@example.org> NOTIFY=NEVER\r\n\
DATA\r\n\
Subject: dots\r\n\
\r\n\
..hidden\r\n\
a\n.\nb\r\n\
...\r\n\
.\r\n\
RSET\r\nNOOP\r\nVRFY bob\r\nHELP\r\nQUIT\r\n";

#[test]
fn mail_session_replies_in_order_and_body_unstuffed() {
    let run = assert_split_invariant(&plain_server, &[SESSION], "mail session");
    assert_eq!(
        run.output,
        format!(
            "{GREETING}250-mail.example.net\r\n250-SIZE 26214400\r\n250-PIPELINING\r\n250-8BITMIME\r\n\
             250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250 STARTTLS\r\n\
             250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n550 No such user here\r\n250 2.1.5 Recipient OK\r\n\
             354 Start mail input; end with <CRLF>.<CRLF>\r\n250 2.0.0 Message accepted\r\n\
             250 2.0.0 OK\r\n250 2.0.0 OK\r\n252 2.5.0 Cannot VRFY user, but will accept message\r\n\
             214 2.0.0 See RFC 5321\r\n221 2.0.0 Bye\r\n"
        )
    );
    // Smuggling forms (bare LF dot LF) are data, never an end.
    assert_eq!(run.messages, vec![b"Subject: dots\r\n\r\n.hidden\r\na\n.\nb\r\n..\r\n".to_vec()]);
    let body_len = run.messages[0].len() as u64;
    let rcpt = |to: &str, parameters: &str| Event::Rcpt {
        to: to.into(),
        parameters: parameter_list(parameters),
        identity: None,
    };
    assert_eq!(
        run.events,
        vec![
            Event::Helo { domain: "client.example".into(), extended: true },
            Event::Mail {
                from: "alice@example.net".into(),
                parameters: parameter_list("SIZE=100 BODY=8BITMIME"),
                identity: None
            },
            rcpt("bob@example.org", ""),
            rcpt("reject@example.org", ""),
            rcpt("carol@example.org", "NOTIFY=NEVER"),
            Event::DataStart,
            Event::Data(run.messages[0].clone()),
            Event::DataEnd { size: body_len, identity: None },
            Event::Quit,
        ]
    );
    assert!(run.closed);
}

/// A `ParameterList` as the server builds it, from a MAIL line.
fn parameter_list(text: &str) -> mailwire::smtp::server::ParameterList {
    let mut server = after_ehlo(config());
    server.receive(format!("MAIL FROM:<a@x> {text}\r\n").as_bytes()).unwrap();
    match events(&mut server).pop() {
        Some(Event::Mail { parameters, .. }) => parameters,
        other => panic!("{other:?}"),
    }
}

#[test]
fn pipelined_commands_wait_for_the_application() {
    let mut server = after_ehlo(config());
    server.receive(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\nDATA\r\nbody\r\n.\r\nNOOP\r\n").unwrap();
    assert_eq!(output(&mut server), "", "nothing before the decision");
    assert!(matches!(events(&mut server).as_slice(), [Event::Mail { .. }]));
    server.accept().unwrap();
    assert_eq!(output(&mut server), "250 2.1.0 Sender OK\r\n");
    assert!(matches!(events(&mut server).as_slice(), [Event::Rcpt { to, .. }] if to == "b@x"));
    server.reject(Reply::enhanced(450, code(4, 2, 1), "Try later")).unwrap();
    assert!(matches!(events(&mut server).as_slice(), [Event::Rcpt { to, .. }] if to == "c@x"));
    server.accept().unwrap();
    assert_eq!(
        events(&mut server),
        vec![Event::DataStart, Event::Data(b"body\r\n".to_vec()), Event::DataEnd { size: 6, identity: None }]
    );
    server.reject(Reply::enhanced(554, code(5, 6, 0), "Content refused")).unwrap();
    assert_eq!(
        output(&mut server),
        "450 4.2.1 Try later\r\n250 2.1.5 Recipient OK\r\n354 Start mail input; end with <CRLF>.<CRLF>\r\n\
         554 5.6.0 Content refused\r\n250 2.0.0 OK\r\n"
    );
    // The rejected message ended the transaction.
    server.receive(b"RCPT TO:<b@x>\r\n").unwrap();
    assert_eq!(output(&mut server), "503 5.5.1 Need MAIL command\r\n");
}

#[test]
fn sequence_errors() {
    let mut server = new_server(config());
    server.receive(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\nBDAT 3\r\nxyzFOO\r\nMAIL FROM:a@x\r\n").unwrap();
    assert_eq!(
        output(&mut server),
        format!(
            "{GREETING}503 5.5.1 EHLO/HELO first\r\n503 5.5.1 Need MAIL command\r\n503 5.5.1 Need MAIL command\r\n\
             503 5.5.1 Need MAIL command\r\n500 5.5.2 Command unrecognized\r\n\
             501 5.5.4 Syntax error in parameters or arguments\r\n"
        )
    );
    assert_eq!(events(&mut server), vec![]);
    // DATA with no accepted recipient; a nested MAIL.
    let mut server = after_ehlo(config());
    server.receive(b"MAIL FROM:<a@x>\r\nRCPT TO:<reject@x>\r\nDATA\r\nMAIL FROM:<a@x>\r\n").unwrap();
    App::default().drive(&mut server);
    assert_eq!(
        output(&mut server),
        "250 2.1.0 Sender OK\r\n550 No such user here\r\n554 5.5.1 No valid recipients\r\n503 5.5.1 Nested MAIL command\r\n"
    );
}

#[test]
fn helo_and_ehlo_again_reset_the_transaction() {
    let mut server = new_server(config());
    server.receive(b"HELO x\r\nMAIL FROM:<a@x>\r\n").unwrap();
    App::default().drive(&mut server);
    server.receive(b"EHLO y\r\nRCPT TO:<b@x>\r\n").unwrap();
    let out = output(&mut server);
    assert!(out.starts_with(&format!("{GREETING}250 mail.example.net\r\n250 2.1.0 Sender OK\r\n250-mail")), "{out}");
    assert!(out.ends_with("503 5.5.1 Need MAIL command\r\n"));
    assert_eq!(
        events(&mut server),
        vec![Event::Reset, Event::Helo { domain: "y".into(), extended: true }],
        "after the drive above"
    );
}

#[test]
fn size_declared_over_the_limit_is_552_at_mail() {
    let mut config = config();
    config.max_message_size = Some(1000);
    let mut server = after_ehlo(config);
    server.receive(b"MAIL FROM:<a@x> SIZE=1001\r\nMAIL FROM:<a@x> SIZE=1000\r\n").unwrap();
    assert_eq!(output(&mut server), "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
    assert!(matches!(events(&mut server).as_slice(), [Event::Mail { .. }]));
}

#[test]
fn body_over_the_limit_is_552_after_the_end_and_stays_in_sync() {
    let make = || {
        let mut config = config();
        config.max_message_size = Some(10);
        config.max_data_chunk = 4;
        (new_server(config), App::default())
    };
    let input = b"EHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n0123456789ABCDEF\r\n.\r\nNOOP\r\n";
    let run = assert_split_invariant(&make, &[input], "size");
    assert!(run.output.ends_with(
        "354 Start mail input; end with <CRLF>.<CRLF>\r\n552 5.3.4 Message size exceeds fixed maximum message size\r\n\
         250 2.0.0 OK\r\n"
    ));
    assert!(run.messages.is_empty());
    let tail = &run.events[run.events.len() - 4..];
    assert_eq!(
        tail,
        [
            Event::DataStart,
            Event::Data(b"0123".to_vec()),
            Event::Data(b"4567".to_vec()),
            Event::DataRejected(Reply::enhanced(552, code(5, 3, 4), "Message size exceeds fixed maximum message size"))
        ]
    );
}

#[test]
fn data_pieces_have_the_configured_size() {
    let make = || {
        let mut config = config();
        config.max_data_chunk = 5;
        (new_server(config), App::default())
    };
    let input = b"EHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<Postmaster>\r\nDATA\r\n.abcdefgh\r\n\r\n.\r\n";
    let run = assert_split_invariant(&make, &[input], "pieces");
    let pieces: Vec<&Event> = run.events.iter().filter(|e| matches!(e, Event::Data(_))).collect();
    assert_eq!(
        pieces,
        [&Event::Data(b"abcde".to_vec()), &Event::Data(b"fgh\r\n".to_vec()), &Event::Data(b"\r\n".to_vec())]
    );
}

#[test]
fn bdat_chunks() {
    let input = b"EHLO x\r\nMAIL FROM:<a@x> BODY=BINARYMIME\r\nRCPT TO:<b@x>\r\n\
BDAT 5\r\nab\r\n.BDAT 0\r\nBDAT 3 LAST\r\nxyzQUIT\r\n";
    let run = assert_split_invariant(&plain_server, &[input], "bdat");
    assert!(
        run.output.ends_with(
            "250 2.1.5 Recipient OK\r\n250 2.0.0 5 octets received\r\n250 2.0.0 0 octets received\r\n\
             250 2.0.0 Message accepted\r\n221 2.0.0 Bye\r\n"
        ),
        "{}",
        run.output
    );
    assert_eq!(run.messages, vec![b"ab\r\n.xyz".to_vec()]);
    // Refused chunks are still read: the next command is in sync.
    let mut server = after_ehlo(config());
    server.receive(b"BDAT 6\r\nNOOP\r\nNOOP\r\n").unwrap();
    assert_eq!(output(&mut server), "503 5.5.1 Need MAIL command\r\n250 2.0.0 OK\r\n");
    let mut config = config();
    config.chunking = false;
    let mut server = after_ehlo(config);
    server.receive(b"BDAT 4 LAST\r\nQUITNOOP\r\n").unwrap();
    assert_eq!(output(&mut server), "502 5.5.1 BDAT not available\r\n250 2.0.0 OK\r\n");
    // DATA after BDAT is refused.
    let mut server = after_ehlo(crate::config());
    server.receive(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nBDAT 1\r\nxDATA\r\n").unwrap();
    App::default().drive(&mut server);
    assert!(output(&mut server).ends_with("250 2.0.0 1 octets received\r\n503 5.5.1 DATA not allowed after BDAT\r\n"));
}

#[test]
fn bdat_over_the_size_limit() {
    let mut config = config();
    config.max_message_size = Some(4);
    let mut server = after_ehlo(config);
    server.receive(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nBDAT 3\r\nabcBDAT 3 LAST\r\ndefNOOP\r\n").unwrap();
    let events = App::default().drive(&mut server);
    assert!(output(&mut server).ends_with(
        "250 2.0.0 3 octets received\r\n552 5.3.4 Message size exceeds fixed maximum message size\r\n250 2.0.0 OK\r\n"
    ));
    assert!(matches!(events.last(), Some(Event::DataRejected(_))), "{events:?}");
}

#[test]
fn identity_is_given_with_later_events() {
    let mut server = auth_ready(tls_info());
    server
        .receive(b"AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\nx\r\n.\r\n")
        .unwrap();
    let events = App::default().drive(&mut server);
    let who = Some(alice());
    assert!(events.contains(&Event::Mail {
        from: "a@x".into(),
        parameters: Default::default(),
        identity: who.clone()
    }));
    assert!(events.contains(&Event::Rcpt { to: "b@x".into(), parameters: Default::default(), identity: who.clone() }));
    assert!(events.contains(&Event::DataEnd { size: 3, identity: who }));
}

// ---------------------------------------------------------------------------------------------
// Our client against our server, in memory

/// Everything that happened in one client-server session.
#[derive(Debug)]
struct Pumped {
    /// What the client sent, one entry per TLS segment.
    client_bytes: Vec<Vec<u8>>,
    server_events: Vec<Event>,
    client_events: Vec<client::Event>,
    server_output: String,
    messages: Vec<Vec<u8>>,
}

const BODY: &[u8] = b"Subject: dots\r\n\r\n.\r\n..two\r\n.\r\nlast line\r\n";

/// Runs `client` against `server` until both are quiet: TLS when offered, AUTH with
/// `credentials` (if any), one message with [`BODY`], QUIT.
fn pump(
    mut client: Client,
    mut server: Server,
    mut app: App,
    credentials: Option<Credentials>,
    info: TlsInfo,
) -> Pumped {
    let mut client_bytes = vec![Vec::new()];
    let mut server_events = Vec::new();
    let mut client_events = Vec::new();
    let mut server_output = Vec::new();
    app.tls = Some(info.clone());
    for _ in 0..100 {
        let mut moved = false;
        // Server side.
        for event in app.drive(&mut server) {
            moved = true;
            if event == Event::StartTls {
                client_bytes.push(Vec::new());
            }
            server_events.push(event);
        }
        while let Some(bytes) = server.poll_transmit() {
            moved = true;
            server_output.extend_from_slice(&bytes);
            if client.receive(&bytes).is_err() {
                break;
            }
        }
        // Client side.
        while let Some(event) = client.poll_event() {
            moved = true;
            match &event {
                client::Event::StartTls => client.tls_established(info.clone()).unwrap(),
                client::Event::Ready(_) => match &credentials {
                    Some(credentials) => {
                        client.authenticate(credentials).unwrap();
                    }
                    None => client.send_mail("alice@example.net", &["bob@example.org"]).unwrap(),
                },
                client::Event::Authenticated { .. } => {
                    client.send_mail("alice@example.net", &["bob@example.org"]).unwrap()
                }
                client::Event::DataReady => {
                    for piece in BODY.chunks(3) {
                        client.send_body_chunk(piece).unwrap();
                    }
                    client.finish_body().unwrap();
                }
                client::Event::AuthFailed { .. } | client::Event::MessageAccepted(_) => client.quit().unwrap(),
                _ => {}
            }
            client_events.push(event);
        }
        while let Some(bytes) = client.poll_transmit() {
            moved = true;
            client_bytes.last_mut().unwrap().extend_from_slice(&bytes);
            let _ = server.receive(&bytes);
        }
        if !moved {
            break;
        }
    }
    Pumped { client_bytes, server_events, client_events, server_output: text(&server_output), messages: app.messages }
}

fn client_config(tls: TlsPolicy, mechanism: Mechanism) -> ClientConfig {
    let mut config = ClientConfig::new("client.example", HOST);
    config.tls = tls;
    config.server_port = Some(587);
    config.allow_anonymous = mechanism == Mechanism::Anonymous;
    config.allow_plaintext = true;
    config.mechanism = Some(mechanism);
    config
}

fn credentials_for(mechanism: &Mechanism, good: bool) -> Credentials {
    let secret = if good { "wonderland" } else { "looking-glass" };
    match mechanism {
        Mechanism::XOAuth2 | Mechanism::OAuthBearer => {
            Credentials::token("alice", if good { "token-alice" } else { "expired" })
        }
        Mechanism::External => Credentials {
            authcid: String::new(),
            authzid: (!good).then(|| "bob".to_string()),
            ..Credentials::default()
        },
        Mechanism::Anonymous => Credentials { trace: Some("sirhc".into()), ..Credentials::default() },
        _ => Credentials::password("alice", secret),
    }
}

fn server_for(tls: bool, scram_keys: bool) -> (Server, App) {
    let mut config = config();
    config.tls_available = tls;
    config.require_tls_for_auth = tls;
    config.mechanisms_before_tls = Mechanism::KNOWN.to_vec();
    config.mechanisms_after_tls = Mechanism::KNOWN.to_vec();
    let server = Server::new(config, Box::new(FixedRandom::new(99)));
    (server, App { scram_keys, ..App::default() })
}

/// Every mechanism, with and without STARTTLS, right and wrong secrets: the outcome on both
/// sides, the message delivered byte for byte; then the recorded client bytes replayed into
/// a fresh server at every split point give the same events and output.
#[test]
fn client_against_server_every_mechanism() {
    let mut cases = 0;
    for mechanism in Mechanism::KNOWN {
        for tls in [true, false] {
            if (mechanism.is_plus() || mechanism == Mechanism::External) && !tls {
                continue;
            }
            for good in [true, false] {
                if mechanism == Mechanism::Anonymous && !good {
                    continue;
                }
                let info = match &mechanism {
                    Mechanism::External => {
                        TlsInfo { peer_identity: Some("alice".into()), client_certificate: true, ..TlsInfo::default() }
                    }
                    m if m.is_plus() => tls_with_binding(),
                    _ => TlsInfo::default(),
                };
                let policy = if tls { TlsPolicy::Required } else { TlsPolicy::Disabled };
                let scram_keys = good && tls;
                let client = Client::new(client_config(policy, mechanism.clone()), Box::new(FixedRandom::new(5)));
                let (server, app) = server_for(tls, scram_keys);
                let context = format!("{mechanism} tls={tls} good={good}");
                let pumped = pump(client, server, app, Some(credentials_for(&mechanism, good)), info.clone());
                check_pumped(&pumped, &mechanism, tls, good, &context);
                // Replay what the client sent at every split point.
                let make = || {
                    let (server, mut app) = server_for(tls, scram_keys);
                    app.tls = Some(info.clone());
                    (server, app)
                };
                let segments: Vec<&[u8]> = pumped.client_bytes.iter().map(Vec::as_slice).collect();
                let replay = assert_split_invariant(&make, &segments, &context);
                assert_eq!(replay.events, pumped.server_events, "{context}: replay");
                assert_eq!(replay.output, pumped.server_output, "{context}: replay output");
                cases += 1;
            }
        }
    }
    assert!(cases >= 35, "{cases}");
}

fn check_pumped(pumped: &Pumped, mechanism: &Mechanism, tls: bool, good: bool, context: &str) {
    let out = &pumped.server_output;
    assert!(out.ends_with("221 2.0.0 Bye\r\n"), "{context}: {out}");
    assert_eq!(pumped.server_events.contains(&Event::StartTls), tls, "{context}");
    let authenticated = pumped.server_events.iter().find_map(|e| match e {
        Event::Authenticated { identity, mechanism } => Some((identity.clone(), mechanism.clone())),
        _ => None,
    });
    let client_ok = pumped.client_events.iter().any(|e| matches!(e, client::Event::Authenticated { .. }));
    assert_eq!(client_ok, good, "{context}: client outcome {:?}", pumped.client_events);
    if good {
        let (identity, used) = authenticated.unwrap_or_else(|| panic!("{context}: {:?}", pumped.server_events));
        assert_eq!(&used, mechanism, "{context}");
        let expected = if *mechanism == Mechanism::Anonymous { "anonymous" } else { "alice" };
        assert_eq!(identity.authcid, expected, "{context}");
        assert_eq!(pumped.messages, vec![BODY.to_vec()], "{context}: message byte for byte");
        assert!(out.contains("235 2.7.0 Authentication successful\r\n"), "{context}");
        if matches!(
            mechanism,
            Mechanism::ScramSha1 | Mechanism::ScramSha256 | Mechanism::ScramSha1Plus | Mechanism::ScramSha256Plus
        ) {
            // RFC 4954 §4: the server-final message as a last 334, then 235.
            let last_334 = out.rfind("334 ").unwrap();
            let final_b64 = &out[last_334 + 4..out[last_334..].find("\r\n").unwrap() + last_334];
            let decoded = String::from_utf8(base64_decode(final_b64)).unwrap();
            assert!(decoded.starts_with("v="), "{context}: {decoded}");
            assert!(out[last_334..].contains("\r\n235 2.7.0"), "{context}");
        }
    } else {
        assert!(authenticated.is_none(), "{context}");
        assert!(pumped.server_events.iter().any(|e| matches!(e, Event::AuthFailed { .. })), "{context}");
        assert!(out.contains("535 5.7.8 Authentication credentials invalid\r\n"), "{context}: {out}");
        assert!(pumped.messages.is_empty(), "{context}");
        // The wrong secret never comes back.
        assert!(!out.contains("looking-glass") && !out.contains("expired"), "{context}");
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    match mailwire::wire::decode_response(text.as_bytes()).unwrap() {
        mailwire::wire::Payload::Data(data) => data.to_vec(),
        _ => Vec::new(),
    }
}

#[test]
fn client_against_server_without_auth_plaintext() {
    let client = Client::new(client_config(TlsPolicy::Disabled, Mechanism::Plain), Box::new(FixedRandom::new(5)));
    let (server, app) = server_for(false, false);
    let pumped = pump(client, server, app, None, TlsInfo::default());
    assert_eq!(pumped.messages, vec![BODY.to_vec()]);
    assert!(pumped.server_events.iter().any(|e| matches!(e, Event::Mail { identity: None, .. })));
    assert!(pumped.client_events.iter().any(|e| matches!(e, client::Event::MessageAccepted(_))));
}

// ---------------------------------------------------------------------------------------------
// Hostile input

#[test]
fn hostile_megabyte_line() {
    let mut server = after_ehlo(config());
    for _ in 0..1024 {
        server.receive(&[b'A'; 1024]).unwrap();
    }
    assert_eq!(output(&mut server), "");
    server.receive(b"\r\nNOOP\r\n").unwrap();
    assert_eq!(output(&mut server), "500 5.5.2 Line too long\r\n250 2.0.0 OK\r\n");
    // In one read, too.
    let mut server = after_ehlo(config());
    let mut input = vec![b'B'; 1 << 20];
    input.extend_from_slice(b"\r\nNOOP\r\n");
    server.receive(&input).unwrap();
    assert_eq!(output(&mut server), "500 5.5.2 Line too long\r\n250 2.0.0 OK\r\n");
}

#[test]
fn hostile_binary_garbage_ends_with_421() {
    let mut server = after_ehlo(config());
    let mut garbage = Vec::new();
    let mut rng = FixedRandom::new(3);
    for _ in 0..100 {
        let mut line = [0u8; 40];
        rng.fill(&mut line);
        garbage.extend(line.iter().map(|b| if *b == b'\n' { 0 } else { *b }));
        garbage.extend_from_slice(b"\r\n");
    }
    assert_eq!(server.receive(&garbage), Ok(()));
    let out = output(&mut server);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 21, "{out}");
    assert!(lines[..20].iter().all(|l| l.starts_with("500 ") || l.starts_with("501 ")), "{out}");
    assert_eq!(lines[20], "421 4.7.0 Too many errors, closing connection");
    assert!(server.is_closed());
}

#[test]
fn hostile_endless_auth_continuations() {
    // A continuation line that never ends is dropped as it comes, then refused with 500.
    let mut server = auth_ready(tls_info());
    server.receive(b"AUTH PLAIN\r\n").unwrap();
    assert_eq!(output(&mut server), "334 \r\n");
    for _ in 0..1024 {
        server.receive(&[b'A'; 1024]).unwrap();
    }
    server.receive(b"\r\nNOOP\r\n").unwrap();
    assert_eq!(output(&mut server), "500 5.5.6 Authentication exchange line is too long\r\n250 2.0.0 OK\r\n");
    // AUTH after AUTH after AUTH: the failure limit ends it.
    let mut config = config();
    config.max_auth_failures = 5;
    config.mechanisms_after_tls = vec![Mechanism::Login];
    let mut server = after_tls(config, tls_info());
    server.receive(b"EHLO x\r\n").unwrap();
    let mut endless = Vec::new();
    for _ in 0..50 {
        endless.extend_from_slice(b"AUTH LOGIN\r\nYQ==\r\nYg==\r\n");
    }
    server.receive(&endless).unwrap();
    let events = App::default().drive(&mut server);
    assert_eq!(events.iter().filter(|e| matches!(e, Event::AuthFailed { .. })).count(), 5);
    assert!(server.is_closed());
    assert!(output(&mut server).ends_with("421 4.7.0 Too many failed authentication attempts\r\n"));
}

#[test]
fn hostile_too_many_recipients() {
    let mut config = config();
    config.max_recipients = 3;
    let mut server = after_ehlo(config);
    let mut input = b"MAIL FROM:<a@x>\r\n".to_vec();
    for i in 0..5 {
        input.extend_from_slice(format!("RCPT TO:<r{i}@x>\r\n").as_bytes());
    }
    server.receive(&input).unwrap();
    let events = App::default().drive(&mut server);
    assert_eq!(events.iter().filter(|e| matches!(e, Event::Rcpt { .. })).count(), 3);
    assert!(
        output(&mut server)
            .ends_with("250 2.1.5 Recipient OK\r\n452 4.5.3 Too many recipients\r\n452 4.5.3 Too many recipients\r\n")
    );
}

#[test]
fn hostile_pipelined_flood_while_deciding_is_bounded() {
    let mut server = after_ehlo(config());
    server.receive(b"MAIL FROM:<a@x>\r\n").unwrap();
    let flood = b"NOOP\r\n".repeat(20_000);
    let result = server.receive(&flood);
    assert_eq!(result, Err(Error::BufferFull(64 * 1024)));
    assert!(server.is_closed());
    assert_eq!(output(&mut server), "421 4.7.0 Too much pipelined input, closing connection\r\n");
}

#[test]
fn idle_server_size() {
    let size = std::mem::size_of::<Server>();
    assert!(size <= 2048, "{size}");
}

#[test]
fn server_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Server>();
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_in_random_chunks_never_panic(
        prefix in proptest::sample::select(vec![
            &b""[..], b"EHLO x\r\n", b"EHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n",
            b"EHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nBDAT 20\r\n", b"EHLO x\r\nSTARTTLS\r\n",
        ]),
        noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        words in proptest::collection::vec(proptest::sample::select(vec![
            &b"AUTH PLAIN\r\n"[..], b"AUTH LOGIN\r\n", b"*\r\n", b"=\r\n", b"\r\n.\r\n", b"QUIT\r\n",
            b"BDAT 3 LAST\r\n", b"STARTTLS\r\n", b"RSET\r\n", b"AUTH SCRAM-SHA-256 biwsbj11LHI9YQ==\r\n",
        ]), 0..6),
        cuts in proptest::collection::vec(0usize..800, 0..8),
    ) {
        let mut input = prefix.to_vec();
        for (i, word) in words.iter().enumerate() {
            let at = if noise.is_empty() { 0 } else { (i * 97) % noise.len() };
            input.extend_from_slice(&noise[..at]);
            input.extend_from_slice(word);
        }
        input.extend_from_slice(&noise);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut config = config();
        config.mechanisms_after_tls = Mechanism::KNOWN.to_vec();
        config.require_tls_for_auth = false;
        config.mechanisms_before_tls = Mechanism::KNOWN.to_vec();
        let mut server = new_server(config);
        let mut app = App::default();
        let mut last = 0;
        for cut in cuts.into_iter().chain([input.len()]) {
            let _ = server.receive(&input[last..cut]);
            app.drive(&mut server);
            last = cut;
        }
        let out = output(&mut server);
        proptest::prop_assert!(out.len() < 64 * 1024);
    }
}

// ---------------------------------------------------------------------------------------------
// Split invariance of arbitrary command soup, and relaying decided by the application

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

    /// Without STARTTLS (whose outcome depends on timing by design) any input, cut anywhere,
    /// gives the same events and output as in one read.
    #[test]
    fn any_input_cut_anywhere_gives_the_same_run(
        words in proptest::collection::vec(proptest::sample::select(vec![
            &b"EHLO x\r\n"[..], b"HELO y\r\n", b"MAIL FROM:<a@x> SIZE=10\r\n", b"MAIL FROM:<a@x> SIZE=99999999999\r\n",
            b"RCPT TO:<b@x>\r\n", b"RCPT TO:<reject@x>\r\n", b"DATA\r\n", b"body\r\n", b"..x\n.\n\r\n",
            b".\r\n", b"BDAT 4\r\n", b"BDAT 2 LAST\r\n", b"RSET\r\n", b"NOOP\r\n", b"bogus\r\n", b"\xff\xfe\r\n",
            b"AUTH PLAIN\r\n", b"AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n", b"AUTH LOGIN YWxpY2U=\r\n",
            b"d29uZGVybGFuZA==\r\n", b"*\r\n", b"=\r\n", b"QUIT\r\n", b"\r\n", b"NO", b"OP\r\n",
        ]), 0..24),
        cuts in proptest::collection::vec(0usize..2000, 1..6),
    ) {
        let input: Vec<u8> = words.concat();
        let make = || {
            let mut config = config();
            config.require_tls_for_auth = false;
            config.mechanisms_before_tls = vec![Mechanism::Plain, Mechanism::Login];
            config.max_data_chunk = 3;
            config.max_message_size = Some(40);
            (new_server(config), App::default())
        };
        let whole = run(&make, &[&input]);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for cut in cuts {
            chunks.push(&input[last..cut]);
            last = cut;
        }
        chunks.push(&input[last..]);
        proptest::prop_assert_eq!(&run_chunks(&make, &[chunks]), &whole);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        proptest::prop_assert_eq!(&run_chunks(&make, &[bytes]), &whole);
    }
}

/// POP-before-SMTP and SASL both plug in at the RCPT decision through
/// `relay::SubmissionPolicy`, fed the identity the event carries.
#[test]
fn relay_decided_with_the_submission_policy() {
    use core::net::{IpAddr, Ipv4Addr};
    use core::time::Duration;
    use mailwire::relay::{RelayConfig, RelayTable, SubmissionPolicy};

    let mut table = RelayTable::new(RelayConfig::default());
    let popped = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let stranger = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 8));
    let now = Duration::from_secs(1_700_000_000);
    table.record(popped, now, Some("bob"));
    let policy = SubmissionPolicy::default();
    let session = |client: IpAddr, auth: bool| {
        let mut server = auth_ready(tls_info());
        if auth {
            server.receive(b"AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n").unwrap();
            App::default().drive(&mut server);
        }
        server.receive(b"MAIL FROM:<a@example.net>\r\nRCPT TO:<far@elsewhere.example>\r\n").unwrap();
        server.poll_transmit();
        while let Some(event) = server.poll_event() {
            match event {
                Event::Mail { .. } => server.accept().unwrap(),
                Event::Rcpt { identity, .. } => {
                    if policy.decide(&table, identity.as_ref(), client, now, false).is_allowed() {
                        server.accept().unwrap();
                    } else {
                        server.reject(Reply::enhanced(554, code(5, 7, 1), "Relay access denied")).unwrap();
                    }
                }
                _ => {}
            }
        }
        output(&mut server)
    };
    assert_eq!(session(popped, false), "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n");
    assert_eq!(session(stranger, true), "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n");
    assert_eq!(session(stranger, false), "250 2.1.0 Sender OK\r\n554 5.7.1 Relay access denied\r\n");
}

/// Fuzzing found it: input after the session closed must be ignored the same way whether it
/// came in the read that closed the session or in later reads (split invariance).
#[test]
fn input_after_close_ignored_however_split() {
    let input = b"\x0f%.\n(\n%\n\n".repeat(3);
    let run = |pieces: &[&[u8]]| {
        let mut config = config();
        config.max_errors = 3;
        let mut server = Server::new(config, Box::new(FixedRandom::new(1)));
        let results: Vec<_> = pieces.iter().map(|p| server.receive(p)).collect();
        (results.iter().all(Result::is_ok), output(&mut server), events(&mut server))
    };
    let whole = run(&[&input]);
    assert!(whole.0 && whole.1.ends_with("421 4.7.0 Too many errors, closing connection\r\n"), "{whole:?}");
    for at in 0..=input.len() {
        let (a, b) = input.split_at(at);
        assert_eq!(run(&[a, b]), whole, "split at {at}");
    }
}
