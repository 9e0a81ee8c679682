//! The POP3 server machine against scripted clients and against our own `pop3::Client`:
//! STARTTLS cases (starttls-cases.md, POP3 forms), field cases, RFC 1939 / RFC 5034 examples,
//! split-input invariance, every SASL mechanism end to end, and bad input.

use mailwire::pop3::client::{self, AuthMethod, Client, ClientConfig, QuitOutcome};
use mailwire::pop3::server::{Error, Event, MessageInfo};
use mailwire::pop3::{CodeKind, Response, Server, ServerConfig};
use mailwire::sasl::{
    AuthFailure, ChannelBinding, ChannelBindingType, CredentialAnswer, CredentialRequest, Credentials, FixedRandom,
    Identity, Mechanism, Secret,
};
use mailwire::tls::{TlsInfo, TlsPolicy};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Scripted harness

/// Everything a run produced: bytes sent (greeting excluded), events (XMIT data merged, since
/// chunk boundaries follow the input), the errors returned, and whether the machine closed.
#[derive(Debug, Clone, PartialEq)]
struct Trace {
    out: Vec<u8>,
    events: Vec<Event>,
    errors: Vec<Error>,
    closed: bool,
}

impl Trace {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }
}

fn drain(server: &mut Server, trace: &mut Trace) {
    while let Some(out) = server.poll_transmit() {
        trace.out.extend_from_slice(&out);
    }
    while let Some(event) = server.poll_event() {
        match (event, trace.events.last_mut()) {
            (Event::XmitData(data), Some(Event::XmitData(previous))) => previous.extend_from_slice(&data),
            (event, _) => trace.events.push(event),
        }
    }
    trace.closed = server.is_closed();
}

type Call = fn(&mut Server) -> Result<(), Error>;

enum Step {
    /// Bytes from the client.
    C(&'static [u8]),
    /// An application call.
    App(Call),
    /// The caller finished the TLS handshake.
    Tls,
}

use Step::{App, C, Tls};

#[derive(Clone, Copy)]
enum Split<'a> {
    Whole,
    At {
        step: usize,
        cut: usize,
    },
    Bytewise,
    /// Chunks of these sizes, cycling (0 counts as 1).
    Sizes(&'a [usize]),
}

fn tls_info() -> TlsInfo {
    TlsInfo {
        channel_binding: Some(ChannelBinding { kind: ChannelBindingType::TlsExporter, data: vec![7; 32] }),
        peer_identity: Some("alice".into()),
        client_certificate: false,
    }
}

fn new_server(config: &ServerConfig) -> Server {
    if config.apop {
        Server::with_apop_timestamp(config.clone(), FixedRandom::new(9), "<1896.697170952@dbc.mtview.ca.us>").unwrap()
    } else {
        Server::new(config.clone(), FixedRandom::new(9))
    }
}

fn run_split(config: &ServerConfig, steps: &[Step], split: Split<'_>) -> Trace {
    let mut server = new_server(config);
    while server.poll_transmit().is_some() {}
    let mut trace = Trace { out: Vec::new(), events: Vec::new(), errors: Vec::new(), closed: false };
    for (index, step) in steps.iter().enumerate() {
        match step {
            C(bytes) => {
                let chunks: Vec<&[u8]> = match split {
                    Split::Whole => vec![bytes],
                    Split::At { step, cut } if step == index => vec![&bytes[..cut], &bytes[cut..]],
                    Split::At { .. } => vec![bytes],
                    Split::Bytewise => bytes.chunks(1).collect(),
                    Split::Sizes(sizes) => {
                        let mut chunks = Vec::new();
                        let mut rest: &[u8] = bytes;
                        for size in sizes.iter().cycle() {
                            if rest.is_empty() {
                                break;
                            }
                            let (head, tail) = rest.split_at((*size).clamp(1, rest.len()));
                            chunks.push(head);
                            rest = tail;
                        }
                        chunks
                    }
                };
                for chunk in chunks {
                    let result = server.receive(chunk);
                    drain(&mut server, &mut trace);
                    if let Err(error) = result {
                        if trace.errors.last() != Some(&error) {
                            trace.errors.push(error);
                        }
                    }
                }
            }
            App(call) => {
                if let Err(error) = call(&mut server) {
                    trace.errors.push(error);
                }
            }
            Tls => {
                if let Err(error) = server.tls_established(tls_info()) {
                    trace.errors.push(error);
                }
            }
        }
        drain(&mut server, &mut trace);
    }
    trace
}

/// Runs the script whole, cut at every point of every client step, and byte by byte; all
/// runs must give the same trace, which is returned.
fn run(config: &ServerConfig, steps: &[Step]) -> Trace {
    let whole = run_split(config, steps, Split::Whole);
    for (index, step) in steps.iter().enumerate() {
        if let C(bytes) = step {
            for cut in 0..=bytes.len() {
                let split = run_split(config, steps, Split::At { step: index, cut });
                assert_eq!(split, whole, "split at step {index} byte {cut}");
            }
        }
    }
    assert_eq!(run_split(config, steps, Split::Bytewise), whole, "byte by byte");
    whole
}

fn config() -> ServerConfig {
    let mut config = ServerConfig::new("pop.example.org");
    config.mechanisms.push(Mechanism::Anonymous);
    config.mechanisms.push(Mechanism::XOAuth2);
    config.mechanisms.push(Mechanism::External);
    config
}

fn plaintext_config() -> ServerConfig {
    let mut config = config();
    config.allow_plaintext = true;
    config
}

fn verified(server: &mut Server) -> Result<(), Error> {
    server.answer_credentials(CredentialAnswer::Verified)
}

fn rejected(server: &mut Server) -> Result<(), Error> {
    server.answer_credentials(CredentialAnswer::Rejected)
}

fn listing() -> Vec<MessageInfo> {
    vec![MessageInfo::new(120, "uid-one"), MessageInfo::new(200, "uid-two"), MessageInfo::new(5, "uid-three")]
}

fn open(server: &mut Server) -> Result<(), Error> {
    server.maildrop_opened(listing())
}

fn count(trace: &Trace, pred: impl Fn(&Event) -> bool) -> usize {
    trace.events.iter().filter(|e| pred(e)).count()
}

fn verify_password(user: &str, password: &str) -> Event {
    Event::Credentials(CredentialRequest::VerifyPassword { authcid: user.into(), password: Secret::from(password) })
}

fn authenticated(user: &str, method: AuthMethod) -> Event {
    Event::Authenticated { identity: Identity { authcid: user.into(), authzid: None }, method }
}

fn open_maildrop(user: &str) -> Event {
    Event::OpenMaildrop { user: user.into() }
}

// ---------------------------------------------------------------------------------------------
// STARTTLS cases (starttls-cases.md), POP3 forms. Choice: `+OK` and discard.

#[test]
fn starttls_s3_pop3_injected_user_is_never_processed() {
    let trace = run(&config(), &[C(b"STLS\r\nUSER attacker\r\n"), Tls, C(b"PASS secret\r\n"), C(b"CAPA\r\n")]);
    // The injected USER produced no reply of its own, no state (PASS finds no user), and no
    // credential question.
    assert_eq!(
        trace.text(),
        "+OK Begin TLS negotiation\r\n-ERR USER first\r\n\
         +OK Capability list follows\r\nTOP\r\nUSER\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nUIDL\r\n\
         SASL SCRAM-SHA-256-PLUS SCRAM-SHA-256 SCRAM-SHA-1 PLAIN LOGIN ANONYMOUS XOAUTH2 EXTERNAL\r\n.\r\n"
    );
    assert_eq!(trace.events, vec![Event::StartTls]);
    assert!(trace.errors.is_empty());
}

#[test]
fn starttls_s3_pop3_discarded_bytes_are_counted() {
    let mut server = Server::new(config(), FixedRandom::new(1));
    while server.poll_transmit().is_some() {}
    server.receive(b"STLS\r\nUSER attacker\r\n").unwrap();
    assert_eq!(server.poll_transmit().unwrap(), b"+OK Begin TLS negotiation\r\n");
    assert_eq!(server.poll_transmit(), None);
    assert_eq!(server.discarded_after_stls(), 15);
    // Plaintext that arrives later, before the handshake is reported, is dropped too.
    server.receive(b"PASS x\r\n").unwrap();
    assert_eq!(server.discarded_after_stls(), 23);
    assert_eq!(server.poll_transmit(), None);
    assert_eq!(server.poll_event(), Some(Event::StartTls));
    assert_eq!(server.poll_event(), None);
}

#[test]
fn starttls_s1_pop3_command_injection() {
    let trace = run(&config(), &[C(b"STLS\r\nCAPA\r\nQUIT\r\n"), Tls]);
    assert_eq!(trace.out, b"+OK Begin TLS negotiation\r\n");
    assert_eq!(trace.events, vec![Event::StartTls]);
    assert!(!trace.closed);
    // The first command processed is the first line received over TLS.
    let trace = run(&config(), &[C(b"STLS\r\nQUIT\r\n"), Tls, C(b"NOOP\r\n")]);
    assert_eq!(trace.out, b"+OK Begin TLS negotiation\r\n-ERR Command not valid in this state\r\n");
    assert!(!trace.closed);
}

#[test]
fn starttls_s10_pop3_partial_line_at_switch() {
    let trace = run(&plaintext_config(), &[C(b"STLS\r\nUS"), Tls, C(b"ER bob\r\n")]);
    // `US` was dropped: `ER bob` is not glued into `USER bob`.
    assert_eq!(trace.out, b"+OK Begin TLS negotiation\r\n-ERR Unknown command\r\n");
}

#[test]
fn starttls_s4_pop3_state_reset_after_tls() {
    let trace = run(&plaintext_config(), &[C(b"USER alice\r\n"), C(b"STLS\r\n"), Tls, C(b"PASS secret\r\n")]);
    assert_eq!(trace.out, b"+OK\r\n+OK Begin TLS negotiation\r\n-ERR USER first\r\n");
    assert_eq!(trace.events, vec![Event::StartTls]);
}

#[test]
fn starttls_s5_pop3_capa_after_tls() {
    let trace = run(&config(), &[C(b"CAPA\r\n"), C(b"STLS\r\n"), Tls, C(b"CAPA\r\n")]);
    assert_eq!(
        trace.text(),
        "+OK Capability list follows\r\nTOP\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nUIDL\r\nSTLS\r\n\
         SASL SCRAM-SHA-256 SCRAM-SHA-1 ANONYMOUS XOAUTH2\r\n.\r\n\
         +OK Begin TLS negotiation\r\n\
         +OK Capability list follows\r\nTOP\r\nUSER\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nUIDL\r\n\
         SASL SCRAM-SHA-256-PLUS SCRAM-SHA-256 SCRAM-SHA-1 PLAIN LOGIN ANONYMOUS XOAUTH2 EXTERNAL\r\n.\r\n"
    );
}

#[test]
fn starttls_s6_pop3_second_stls() {
    let trace = run(&config(), &[C(b"STLS\r\n"), Tls, C(b"STLS\r\n")]);
    assert_eq!(trace.out, b"+OK Begin TLS negotiation\r\n-ERR Command not permitted when TLS active\r\n");
    assert_eq!(trace.events, vec![Event::StartTls]);
    // Implicit TLS: STLS is never available.
    let mut server = Server::new(config(), FixedRandom::new(1));
    server.tls_established(tls_info()).unwrap();
    while server.poll_transmit().is_some() {}
    server.receive(b"STLS\r\n").unwrap();
    assert_eq!(server.poll_transmit().unwrap(), b"-ERR Command not permitted when TLS active\r\n");
}

#[test]
fn starttls_s9_pop3_stls_outside_authorization() {
    let trace = run(
        &plaintext_config(),
        &[C(b"USER alice\r\nPASS secret\r\n"), App(verified), App(open), C(b"STLS\r\n"), C(b"NOOP\r\n")],
    );
    assert_eq!(trace.out, b"+OK\r\n+OK Logged in\r\n-ERR Command not valid in this state\r\n+OK\r\n");
    assert_eq!(count(&trace, |e| *e == Event::StartTls), 0);
}

#[test]
fn starttls_s2_pop3_credential_theft_variant() {
    // The attacker's own login pipelined after STLS: nothing of it is processed, no credential
    // question is asked, and the first command processed is the first line received over TLS.
    let trace = run(
        &plaintext_config(),
        &[C(b"STLS\r\nUSER attacker\r\nPASS attackers-password\r\nRETR 1\r\n"), Tls, C(b"PASS secret\r\n")],
    );
    assert_eq!(trace.text(), "+OK Begin TLS negotiation\r\n-ERR USER first\r\n");
    assert_eq!(trace.events, vec![Event::StartTls]);
    assert!(trace.errors.is_empty());
}

#[test]
fn starttls_s7_pop3_stls_with_args() {
    // RFC 2595 §4: STLS takes no argument; the machine must not upgrade.
    let trace = run(&config(), &[C(b"STLS foo\r\n"), C(b"CAPA\r\n")]);
    assert!(trace.text().starts_with("-ERR "), "{}", trace.text());
    assert!(!trace.text().contains("Begin TLS"), "{}", trace.text());
    assert!(trace.text().contains("+OK Capability list follows\r\n"), "{}", trace.text());
    assert_eq!(count(&trace, |e| *e == Event::StartTls), 0);
    assert!(!trace.closed);
}

#[test]
fn starttls_s8_pop3_plaintext_auth_before_tls() {
    let trace = run(
        &config(),
        &[C(b"AUTH PLAIN dGVzdAB0ZXN0ADEyMzQ=\r\n"), C(b"USER test\r\n"), C(b"AUTH LOGIN\r\n"), C(b"PASS x\r\n")],
    );
    assert_eq!(
        trace.text(),
        "-ERR Plaintext authentication disallowed without TLS\r\n-ERR USER not permitted now\r\n\
         -ERR Plaintext authentication disallowed without TLS\r\n-ERR USER first\r\n"
    );
    // Credentials are never checked.
    assert!(trace.events.is_empty());
}

#[test]
fn plus_and_external_need_what_tls_reported() {
    // TLS without channel binding data and without a client certificate.
    let mut server = Server::new(config(), FixedRandom::new(1));
    server.tls_established(TlsInfo::default()).unwrap();
    while server.poll_transmit().is_some() {}
    let caps = server.capabilities();
    assert!(!caps.sasl.iter().any(|m| m.is_plus() || *m == Mechanism::External), "{caps:?}");
    assert!(caps.sasl.contains(&Mechanism::Plain) && caps.user && !caps.stls);
    server.receive(b"AUTH SCRAM-SHA-256-PLUS\r\nAUTH EXTERNAL =\r\n").unwrap();
    let mut out = Vec::new();
    while let Some(bytes) = server.poll_transmit() {
        out.extend_from_slice(&bytes);
    }
    assert_eq!(out, b"-ERR Authentication mechanism not available\r\n".repeat(2));
    // Not counted as failed logins, and no credential question was asked.
    assert!(!server.is_closed());
    while let Some(event) = server.poll_event() {
        assert!(matches!(event, Event::AuthFailed { reason: AuthFailure::Unavailable(_), .. }), "{event:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Field cases (field-cases.md) that concern a POP3 server

#[test]
fn field_b02_login_challenges() {
    let trace = run(
        &config(),
        &[C(b"STLS\r\n"), Tls, C(b"AUTH LOGIN\r\n"), C(b"YWxpY2U=\r\n"), C(b"c2VjcmV0\r\n"), App(verified)],
    );
    assert_eq!(trace.text(), "+OK Begin TLS negotiation\r\n+ VXNlcm5hbWU6\r\n+ UGFzc3dvcmQ6\r\n");
    assert_eq!(
        trace.events,
        vec![
            Event::StartTls,
            verify_password("alice", "secret"),
            authenticated("alice", AuthMethod::Sasl(Mechanism::Login)),
            open_maildrop("alice"),
        ]
    );
}

#[test]
fn field_b05_lower_case_login_with_initial_response() {
    let trace =
        run(&config(), &[C(b"STLS\r\n"), Tls, C(b"auth login dXNlckBleGFtcGxlLm9yZw==\r\n"), C(b"c2VjcmV0\r\n")]);
    assert_eq!(trace.text(), "+OK Begin TLS negotiation\r\n+ UGFzc3dvcmQ6\r\n");
    assert_eq!(trace.events[1], verify_password("user@example.org", "secret"));
}

#[test]
fn field_b06_equals_is_an_empty_initial_response() {
    for script in [&b"AUTH ANONYMOUS =\r\n"[..], b"AUTH ANONYMOUS\r\n="] {
        let mut server = Server::new(config(), FixedRandom::new(1));
        while server.poll_transmit().is_some() {}
        server.receive(script).unwrap();
        if script.ends_with(b"=") {
            assert_eq!(server.poll_transmit().unwrap(), b"+ \r\n");
            server.receive(b"\r\n").unwrap();
        }
        assert_eq!(
            server.poll_event(),
            Some(Event::Credentials(CredentialRequest::Anonymous { trace: String::new() }))
        );
    }
}

#[test]
fn field_b17_crlf_in_identity_is_never_echoed() {
    let trace = run(&config(), &[C(b"STLS\r\n"), Tls, C(b"AUTH PLAIN AG5vdXNlcg0KK09LIGluamVjdGVkAHNlY3JldA==\r\n")]);
    assert_eq!(trace.text(), "+OK Begin TLS negotiation\r\n-ERR Malformed authentication data\r\n");
    assert_eq!(count(&trace, |e| matches!(e, Event::Credentials(_))), 0);
    assert!(!trace.text().contains("injected"));
}

#[test]
fn field_b18_plain_with_empty_authcid() {
    let trace = run(&config(), &[C(b"STLS\r\n"), Tls, C(b"AUTH PLAIN YWRtaW4AAHNlY3JldA==\r\n")]);
    assert_eq!(trace.text(), "+OK Begin TLS negotiation\r\n-ERR Malformed authentication data\r\n");
    assert_eq!(count(&trace, |e| matches!(e, Event::Credentials(_))), 0);
    // The valid contrast: an empty authzid.
    let trace = run(&config(), &[C(b"STLS\r\n"), Tls, C(b"AUTH PLAIN AHVzZXJAZXhhbXBsZS5vcmcAc2VjcmV0\r\n")]);
    assert_eq!(trace.events[1], verify_password("user@example.org", "secret"));
}

#[test]
fn field_b19_ok_without_text() {
    let trace = run(
        &plaintext_config(),
        &[C(b"USER alice\r\n"), C(b"PASS secret\r\n"), App(verified), App(open), C(b"NOOP\r\n")],
    );
    assert_eq!(trace.out, b"+OK\r\n+OK Logged in\r\n+OK\r\n");
    // Every line the server wrote parses back as a status.
    for line in trace.out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        assert!(matches!(Response::parse(line.strip_suffix(b"\r").unwrap()), Ok(Response::Status(_))));
    }
}

#[test]
fn field_b20_continuation_then_base64_is_not_a_command() {
    let trace = run(
        &config(),
        &[
            C(b"STLS\r\n"),
            Tls,
            C(b"AUTH XOAUTH2\r\n"),
            C(b"dXNlcj11c2VyQGV4YW1wbGUub3JnAWF1dGg9QmVhcmVyIHlhMjkuVE9LRU4BAQ==\r\n"),
            App(verified),
        ],
    );
    assert_eq!(trace.text(), "+OK Begin TLS negotiation\r\n+ \r\n");
    assert_eq!(
        trace.events[1],
        Event::Credentials(CredentialRequest::VerifyToken {
            user: "user@example.org".into(),
            token: Secret::from("ya29.TOKEN")
        })
    );
    assert_eq!(trace.events[3], open_maildrop("user@example.org"));
}

fn retr_b23(server: &mut Server) -> Result<(), Error> {
    server.message_chunk(b"Subject: t\r\n\r\n.hid")?;
    server.message_chunk(b"den\r\n")?;
    server.message_chunk(b"..\r\n")?;
    server.message_end()
}

#[test]
fn field_b23_dot_lines_stuffed_for_the_client() {
    let trace = run(
        &plaintext_config(),
        &[C(b"USER a\r\nPASS b\r\n"), App(verified), App(open), C(b"RETR 1\r\n"), App(retr_b23)],
    );
    assert_eq!(trace.out, b"+OK\r\n+OK Logged in\r\n+OK 120 octets\r\nSubject: t\r\n\r\n..hidden\r\n...\r\n.\r\n");
    assert_eq!(trace.events.last(), Some(&Event::Retrieve { msg: 1, top_lines: None }));
}

fn b24_top(server: &mut Server) -> Result<(), Error> {
    server.message_chunk(b"first\r\n.\r\n.dot\r\nlast\r\n")?;
    server.message_end()
}

fn b24_bare_lf(server: &mut Server) -> Result<(), Error> {
    server.message_chunk(b"a\r\n.\nb")?;
    server.message_end()
}

#[test]
fn field_b24_stuffing_in_top_and_bare_lf() {
    let trace = run(
        &plaintext_config(),
        &[
            C(b"USER a\r\nPASS b\r\n"),
            App(verified),
            App(open),
            C(b"TOP 1 99\r\n"),
            App(b24_top),
            C(b"RETR 2\r\n"),
            App(b24_bare_lf),
        ],
    );
    assert_eq!(
        trace.text(),
        "+OK\r\n+OK Logged in\r\n+OK\r\nfirst\r\n..\r\n..dot\r\nlast\r\n.\r\n\
         +OK 200 octets\r\na\r\n..\r\nb\r\n.\r\n"
    );
}

// ---------------------------------------------------------------------------------------------
// RFC examples

#[test]
fn rfc1939_apop_example() {
    let mut config = config();
    config.apop = true;
    let mut server = new_server(&config);
    assert_eq!(server.poll_transmit().unwrap(), b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n");
    let password = |s: &mut Server| s.answer_credentials(CredentialAnswer::Password(Secret::from("tanstaaf")));
    let trace = run(&config, &[C(b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"), App(password), App(open)]);
    assert_eq!(trace.out, b"+OK Logged in\r\n");
    assert_eq!(
        trace.events,
        vec![
            Event::Credentials(CredentialRequest::Password { authcid: "mrose".into() }),
            authenticated("mrose", AuthMethod::Apop),
            open_maildrop("mrose"),
        ]
    );
    // Upper-case hex is the same digest; a wrong secret is `[AUTH]`.
    let wrong = |s: &mut Server| s.answer_credentials(CredentialAnswer::Password(Secret::from("tanstaafl")));
    let trace = run(&config, &[C(b"APOP mrose C4C9334BAC560ECC979E58001B3E22FB\r\n"), App(password)]);
    assert_eq!(trace.events[2], open_maildrop("mrose"));
    let trace = run(&config, &[C(b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"), App(wrong)]);
    assert_eq!(trace.out, b"-ERR [AUTH] Authentication failed\r\n");
    assert_eq!(trace.events[1], Event::AuthFailed { method: AuthMethod::Apop, reason: AuthFailure::Credentials });
}

#[test]
fn rfc1939_apop_off_and_malformed() {
    let trace = run(&config(), &[C(b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n")]);
    assert_eq!(trace.out, b"-ERR APOP not available\r\n");
    let mut config = config();
    config.apop = true;
    let trace = run(&config, &[C(b"APOP mrose nothex\r\n")]);
    assert_eq!(trace.out, b"-ERR Malformed authentication data\r\n");
    // A real greeting carries a fresh timestamp from the caller's randomness.
    let mut server = Server::new(config.clone(), FixedRandom::new(3));
    let greeting = server.poll_transmit().unwrap();
    let timestamp = server.apop_timestamp().unwrap().to_owned();
    assert!(timestamp.ends_with("@pop.example.org>"));
    assert_eq!(mailwire::pop3::apop::find_timestamp(&greeting), Some(timestamp.as_bytes()));
    let mut other = Server::new(config, FixedRandom::new(4));
    assert_ne!(other.apop_timestamp().unwrap(), timestamp);
    assert!(other.poll_transmit().is_some());
}

#[test]
fn rfc5034_auth_plain_with_and_without_initial_response() {
    let expected = vec![
        Event::StartTls,
        verify_password("test", "test"),
        authenticated("test", AuthMethod::Sasl(Mechanism::Plain)),
        open_maildrop("test"),
    ];
    let trace = run(
        &config(),
        &[C(b"STLS\r\n"), Tls, C(b"AUTH PLAIN\r\n"), C(b"dGVzdAB0ZXN0AHRlc3Q=\r\n"), App(verified), App(open)],
    );
    assert_eq!(trace.text(), "+OK Begin TLS negotiation\r\n+ \r\n+OK Logged in\r\n");
    assert_eq!(trace.events, expected);
    let trace =
        run(&config(), &[C(b"STLS\r\n"), Tls, C(b"AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=\r\n"), App(verified), App(open)]);
    assert_eq!(trace.text(), "+OK Begin TLS negotiation\r\n+OK Logged in\r\n");
    assert_eq!(trace.events, expected);
}

#[test]
fn rfc5034_cancel_unknown_mechanism_and_bad_base64() {
    let trace = run(
        &config(),
        &[
            C(b"STLS\r\n"),
            Tls,
            C(b"AUTH PLAIN\r\n*\r\n"),
            C(b"AUTH GSSAPI\r\n"),
            C(b"AUTH PLAIN\r\n!!notbase64\r\n"),
            C(b"AUTH PLAIN *\r\n"),
            C(b"AUTH\r\n"),
        ],
    );
    assert_eq!(
        trace.text(),
        "+OK Begin TLS negotiation\r\n+ \r\n-ERR Authentication cancelled\r\n-ERR Unrecognized authentication type\r\n\
         + \r\n-ERR Malformed authentication data\r\n-ERR Authentication cancelled\r\n\
         +OK\r\nSCRAM-SHA-256-PLUS\r\nSCRAM-SHA-256\r\nSCRAM-SHA-1\r\nPLAIN\r\nLOGIN\r\nANONYMOUS\r\nXOAUTH2\r\nEXTERNAL\r\n.\r\n"
    );
}

#[test]
fn rfc3206_response_codes() {
    let temp = |s: &mut Server| s.answer_credentials(CredentialAnswer::TemporaryFailure);
    let locked = |s: &mut Server| s.maildrop_locked();
    let failed = |s: &mut Server| s.maildrop_failed();
    let delayed = |s: &mut Server| s.maildrop_login_delay();
    let trace = run(
        &plaintext_config(),
        &[
            C(b"USER a\r\nPASS b\r\n"),
            App(temp),
            C(b"USER a\r\nPASS b\r\n"),
            App(verified),
            App(locked),
            C(b"USER a\r\nPASS b\r\n"),
            App(verified),
            App(failed),
            C(b"STAT\r\n"),
            C(b"USER a\r\nPASS b\r\n"),
            App(verified),
            App(delayed),
        ],
    );
    assert_eq!(
        trace.text(),
        "+OK\r\n-ERR [SYS/TEMP] Temporary authentication failure\r\n\
         +OK\r\n-ERR [IN-USE] Maildrop is locked by another session\r\n\
         +OK\r\n-ERR [SYS/TEMP] Maildrop unavailable\r\n-ERR Command not valid in this state\r\n\
         +OK\r\n-ERR [LOGIN-DELAY] Minimum time between logins not yet passed\r\n"
    );
    // Every code parses back with its meaning.
    let kinds: Vec<Option<CodeKind>> = trace
        .text()
        .lines()
        .filter_map(|line| match Response::parse(line.as_bytes()) {
            Ok(Response::Status(status)) => status.code.map(|code| Some(code.kind())),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        vec![Some(CodeKind::SysTemp), Some(CodeKind::InUse), Some(CodeKind::SysTemp), Some(CodeKind::LoginDelay)]
    );
    assert!(!trace.closed);
}

#[test]
fn failed_login_limit_closes_the_session() {
    let trace = run(
        &plaintext_config(),
        &[
            C(b"USER a\r\nPASS b\r\n"),
            App(rejected),
            C(b"USER a\r\nPASS b\r\n"),
            App(rejected),
            C(b"USER a\r\nPASS b\r\nUSER a\r\n"),
            App(rejected),
        ],
    );
    assert_eq!(trace.text(), "+OK\r\n-ERR [AUTH] Authentication failed\r\n".repeat(3));
    assert!(trace.closed);
    assert_eq!(count(&trace, |e| matches!(e, Event::AuthFailed { .. })), 3);
}

// ---------------------------------------------------------------------------------------------
// Maildrop commands

fn logged_in() -> Vec<Step> {
    vec![C(b"USER a\r\nPASS b\r\n"), App(verified), App(open)]
}

#[test]
fn transaction_listing_and_deletions() {
    let mut steps = logged_in();
    steps.extend([
        C(b"STAT\r\nLIST\r\nUIDL\r\nLIST 2\r\nUIDL 3\r\n"),
        C(b"DELE 2\r\nDELE 2\r\nLIST 2\r\nRETR 2\r\nTOP 2 0\r\nUIDL 2\r\nDELE 4\r\nDELE 0\r\nSTAT\r\nLIST\r\n"),
        C(b"RSET\r\nSTAT\r\nDELE 1\r\nDELE 3\r\nQUIT\r\n"),
    ]);
    let commit = |s: &mut Server| s.commit_done(true);
    steps.push(App(commit));
    let trace = run(&plaintext_config(), &steps);
    assert_eq!(
        trace.text(),
        "+OK\r\n+OK Logged in\r\n\
         +OK 3 325\r\n+OK 3 messages (325 octets)\r\n1 120\r\n2 200\r\n3 5\r\n.\r\n\
         +OK\r\n1 uid-one\r\n2 uid-two\r\n3 uid-three\r\n.\r\n+OK 2 200\r\n+OK 3 uid-three\r\n\
         +OK Message deleted\r\n-ERR No such message\r\n-ERR No such message\r\n-ERR No such message\r\n\
         -ERR No such message\r\n-ERR No such message\r\n-ERR No such message\r\n-ERR No such message\r\n\
         +OK 2 125\r\n+OK 2 messages (125 octets)\r\n1 120\r\n3 5\r\n.\r\n\
         +OK maildrop has 3 messages (325 octets)\r\n+OK 3 325\r\n+OK Message deleted\r\n+OK Message deleted\r\n\
         +OK POP3 server signing off\r\n"
    );
    assert_eq!(trace.events.last(), Some(&Event::Commit { deleted: vec![1, 3] }));
    assert!(trace.closed);
}

#[test]
fn quit_in_authorization_and_failed_commit() {
    let trace = run(&config(), &[C(b"QUIT\r\nNOOP\r\n")]);
    assert_eq!(trace.out, b"+OK POP3 server signing off\r\n");
    assert!(trace.closed);
    let mut steps = logged_in();
    steps.push(C(b"QUIT\r\n"));
    steps.push(App(|s| s.commit_done(false)));
    let trace = run(&plaintext_config(), &steps);
    assert!(trace.text().ends_with("-ERR [SYS/TEMP] Some deleted messages not removed\r\n"));
    assert_eq!(trace.events.last(), Some(&Event::Commit { deleted: vec![] }));
    assert!(trace.closed);
}

#[test]
fn commands_in_the_wrong_state() {
    let trace = run(
        &plaintext_config(),
        &[
            C(b"STAT\r\nLIST\r\nRETR 1\r\nDELE 1\r\nNOOP\r\nRSET\r\nPASS x\r\nXTND XMIT\r\nFOO\r\n"),
            C(b"USER a\r\nPASS b\r\n"),
            App(verified),
            App(open),
            C(b"USER a\r\nPASS b\r\nAPOP a 0123456789abcdef0123456789abcdef\r\nAUTH PLAIN\r\nXTND XMIT\r\nXTND XLST a\r\n"),
        ],
    );
    let wrong = "-ERR Command not valid in this state\r\n";
    let expected = format!(
        "{}-ERR USER first\r\n{wrong}-ERR Unknown command\r\n+OK\r\n+OK Logged in\r\n{}\
         -ERR Unknown XTND subcommand\r\n-ERR Unknown XTND subcommand\r\n",
        wrong.repeat(6),
        wrong.repeat(4)
    );
    assert_eq!(trace.text(), expected);
}

#[test]
fn top_cuts_after_the_header_and_n_lines() {
    let body: &[u8] = b"From: a\r\nSubject: b\r\n\r\nline 1\r\n.line 2\r\nline 3\r\n";
    for (lines, expected) in [
        (0u32, &b"From: a\r\nSubject: b\r\n\r\n"[..]),
        (1, b"From: a\r\nSubject: b\r\n\r\nline 1\r\n"),
        (2, b"From: a\r\nSubject: b\r\n\r\nline 1\r\n..line 2\r\n"),
        (3, b"From: a\r\nSubject: b\r\n\r\nline 1\r\n..line 2\r\nline 3\r\n"),
        (9, b"From: a\r\nSubject: b\r\n\r\nline 1\r\n..line 2\r\nline 3\r\n"),
    ] {
        // Streamed in every chunk size, with bare LF line ends too.
        for chunk in 1..=body.len() {
            for bare in [false, true] {
                let stored: Vec<u8> =
                    if bare { String::from_utf8_lossy(body).replace("\r\n", "\n").into_bytes() } else { body.to_vec() };
                let mut server = Server::new(plaintext_config(), FixedRandom::new(1));
                server.receive(b"USER a\r\nPASS b\r\n").unwrap();
                server.answer_credentials(CredentialAnswer::Verified).unwrap();
                server.maildrop_opened(listing()).unwrap();
                while server.poll_transmit().is_some() {}
                server.receive(format!("TOP 1 {lines}\r\n").as_bytes()).unwrap();
                for piece in stored.chunks(chunk) {
                    if server.wants_message_data() {
                        server.message_chunk(piece).unwrap();
                    }
                }
                server.message_end().unwrap();
                let mut out = Vec::new();
                while let Some(bytes) = server.poll_transmit() {
                    out.extend_from_slice(&bytes);
                }
                let mut want = b"+OK\r\n".to_vec();
                want.extend_from_slice(expected);
                want.extend_from_slice(b".\r\n");
                assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&want), "{lines} {chunk} {bare}");
            }
        }
    }
}

#[test]
fn message_failed_before_and_after_data() {
    let mut steps = logged_in();
    steps.extend([C(b"RETR 1\r\nNOOP\r\n"), App(|s| s.message_failed())]);
    let trace = run(&plaintext_config(), &steps);
    assert!(trace.text().ends_with("+OK Logged in\r\n-ERR [SYS/TEMP] Message unavailable\r\n+OK\r\n"));
    let mut steps = logged_in();
    steps.extend([C(b"RETR 1\r\n"), App(|s| s.message_chunk(b"abc")), App(|s| s.message_failed())]);
    let trace = run(&plaintext_config(), &steps);
    assert!(trace.text().ends_with("+OK 120 octets\r\nabc"));
    assert!(trace.closed);
}

#[test]
fn output_queue_is_bounded() {
    let mut config = plaintext_config();
    config.max_output = 1000;
    let mut server = Server::new(config, FixedRandom::new(1));
    server.receive(b"USER a\r\nPASS b\r\n").unwrap();
    server.answer_credentials(CredentialAnswer::Verified).unwrap();
    server.maildrop_opened(listing()).unwrap();
    server.receive(b"RETR 1\r\n").unwrap();
    let chunk = [b'x'; 300];
    let mut sent = 0;
    while server.wants_message_data() {
        server.message_chunk(&chunk).unwrap();
        sent += 1;
    }
    assert!(sent <= 4);
    assert_eq!(server.message_chunk(&chunk), Err(Error::OutputFull));
    while server.poll_transmit().is_some() {}
    assert!(server.wants_message_data());
    server.message_chunk(&chunk).unwrap();
    server.message_end().unwrap();
}

#[test]
fn pipelined_flood_is_held_back_by_the_output_bound() {
    let mut config = plaintext_config();
    config.max_output = 4096;
    let mut server = Server::new(config, FixedRandom::new(1));
    server.receive(b"USER a\r\nPASS b\r\n").unwrap();
    server.answer_credentials(CredentialAnswer::Verified).unwrap();
    let big: Vec<MessageInfo> = (0..1000).map(|i| MessageInfo::new(i, format!("u{i}"))).collect();
    server.maildrop_opened(big).unwrap();
    while server.poll_transmit().is_some() {}
    // 10 000 LISTs of ~9 KB each would be 90 MB of output if all were answered at once.
    server.receive(&b"LIST\r\n".repeat(10_000)).unwrap();
    let one_list = 9000;
    let mut lists = 0;
    let mut most = 0;
    loop {
        most = most.max(server.queued_output());
        match server.poll_transmit() {
            Some(out) => lists += out.windows(6).filter(|w| w == b"+OK 10").count(),
            None => break,
        }
    }
    assert_eq!(lists, 10_000, "every LIST is answered, in turn");
    assert!(most <= 4096 + one_list, "{most}");
    // A flood beyond max_buffered while held back is a typed error.
    let mut server = Server::new(plaintext_config(), FixedRandom::new(1));
    server.receive(b"USER a\r\nPASS b\r\n").unwrap();
    server.answer_credentials(CredentialAnswer::Verified).unwrap();
    server.maildrop_opened(listing()).unwrap();
    assert_eq!(server.receive(&b"CAPA\r\n".repeat(100_000)), Err(Error::BufferFull));
    assert!(server.is_closed());
}

#[test]
fn caller_errors_leave_the_machine_as_it_was() {
    let mut server = Server::new(plaintext_config(), FixedRandom::new(1));
    assert_eq!(
        server.answer_credentials(CredentialAnswer::Verified),
        Err(Error::InvalidState("the machine is not waiting for this"))
    );
    assert!(server.maildrop_opened(listing()).is_err());
    assert!(server.message_end().is_err());
    assert!(server.commit_done(true).is_err());
    assert!(server.tls_established(tls_info()).is_ok(), "implicit TLS before any byte");
    server.receive(b"USER a\r\nPASS b\r\n").unwrap();
    assert!(server.tls_established(tls_info()).is_err());
    assert_eq!(server.answer_credentials(CredentialAnswer::Password(Secret::from("x"))), Err(Error::AnswerMismatch));
    server.answer_credentials(CredentialAnswer::Verified).unwrap();
    assert_eq!(server.maildrop_opened(vec![MessageInfo::new(1, "bad uid")]), Err(Error::InvalidUid(1)));
    assert_eq!(server.maildrop_opened(vec![MessageInfo::new(1, "")]), Err(Error::InvalidUid(1)));
    server.maildrop_opened(listing()).unwrap();
    assert!(server.is_authenticated());
    assert_eq!(server.identity(), Some(&Identity { authcid: "a".into(), authzid: None }));
    assert!(Server::with_apop_timestamp(config(), FixedRandom::new(1), "no timestamp").is_err());
}

// ---------------------------------------------------------------------------------------------
// XTND XMIT

fn xmit_config() -> ServerConfig {
    let mut config = plaintext_config();
    config.xtnd_xmit = true;
    config.max_xmit_size = 64;
    config
}

#[test]
fn xtnd_xmit_unstuffs_and_waits_for_the_verdict() {
    let mut steps = logged_in();
    steps.extend([
        C(b"XTND XMIT\r\nTo: b@example.org\r\n\r\n..dot\r\nbody\r\n.\r\nNOOP\r\n"),
        App(|s| s.xmit_accepted()),
        C(b"XTND XMIT\r\nx\r\n.\r\n"),
        App(|s| s.xmit_rejected("Unable to send message")),
    ]);
    let trace = run(&xmit_config(), &steps);
    assert_eq!(
        trace.text(),
        "+OK\r\n+OK Logged in\r\n+OK Start sending message\r\n+OK Message sent\r\n+OK\r\n\
         +OK Start sending message\r\n-ERR Unable to send message\r\n"
    );
    let tail: Vec<Event> = trace.events[3..].to_vec();
    assert_eq!(
        tail,
        vec![
            Event::XmitData(b"To: b@example.org\r\n\r\n.dot\r\nbody\r\n".to_vec()),
            Event::XmitEnd,
            Event::XmitData(b"x\r\n".to_vec()),
            Event::XmitEnd,
        ]
    );
}

#[test]
fn field_b16_xmit_rejection_text_with_crlf_is_refused() {
    let mut server = Server::new(xmit_config(), FixedRandom::new(1));
    server.receive(b"USER a\r\nPASS b\r\n").unwrap();
    server.answer_credentials(CredentialAnswer::Verified).unwrap();
    server.maildrop_opened(listing()).unwrap();
    server.receive(b"XTND XMIT\r\n.\r\n").unwrap();
    while server.poll_transmit().is_some() {}
    assert_eq!(server.xmit_rejected("bad\r\n+OK injected"), Err(Error::InvalidText));
    assert_eq!(server.poll_transmit(), None);
    server.xmit_rejected("bad").unwrap();
    assert_eq!(server.poll_transmit().unwrap(), b"-ERR bad\r\n");
}

#[test]
fn xtnd_xmit_over_the_limit_keeps_sync() {
    let mut steps = logged_in();
    steps.extend([
        C(b"XTND XMIT\r\n"),
        C(b"0123456789012345678901234567890123456789\r\n"),
        C(b"01234567890123456789012345678901234567890123456789\r\n.\r\nNOOP\r\n"),
    ]);
    let trace = run(&xmit_config(), &steps);
    assert_eq!(trace.text(), "+OK\r\n+OK Logged in\r\n+OK Start sending message\r\n-ERR Message too large\r\n+OK\r\n");
    assert_eq!(count(&trace, |e| *e == Event::XmitAborted), 1);
    assert_eq!(count(&trace, |e| *e == Event::XmitEnd), 0);
    let data: usize = trace.events.iter().map(|e| if let Event::XmitData(d) = e { d.len() } else { 0 }).sum();
    assert_eq!(data, 64);
}

#[test]
fn endless_xmit_body_is_bounded() {
    let mut server = Server::new(xmit_config(), FixedRandom::new(1));
    server.receive(b"USER a\r\nPASS b\r\n").unwrap();
    server.answer_credentials(CredentialAnswer::Verified).unwrap();
    server.maildrop_opened(listing()).unwrap();
    server.receive(b"XTND XMIT\r\n").unwrap();
    while server.poll_event().is_some() {}
    let line = [b'a'; 1000];
    let mut events = 0;
    for _ in 0..10_000 {
        server.receive(&line).unwrap();
        server.receive(b"\r\n").unwrap();
        while server.poll_event().is_some() {
            events += 1;
        }
    }
    // The first 64 bytes, then the abort; nothing more.
    assert_eq!(events, 2);
    while server.poll_transmit().is_some() {}
    server.receive(b".\r\nNOOP\r\n").unwrap();
    assert_eq!(server.poll_transmit().unwrap(), b"-ERR Message too large\r\n");
    assert_eq!(server.poll_transmit().unwrap(), b"+OK\r\n");
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[test]
fn lines_over_the_limit() {
    let long = format!("USER {}\r\nNOOP\r\n", "a".repeat(300));
    let long: &'static [u8] = Box::leak(long.into_bytes().into_boxed_slice());
    let trace = run(&config(), &[C(long)]);
    assert_eq!(trace.out, b"-ERR Line too long\r\n-ERR Command not valid in this state\r\n");
    // An endless line without LF costs no memory beyond the limit, and framing resumes.
    let mut server = Server::new(config(), FixedRandom::new(1));
    while server.poll_transmit().is_some() {}
    for _ in 0..1000 {
        server.receive(&[b'x'; 1000]).unwrap();
    }
    server.receive(b"\r\nCAPA\r\n").unwrap();
    assert_eq!(server.poll_transmit().unwrap(), b"-ERR Line too long\r\n");
    assert!(server.poll_transmit().unwrap().starts_with(b"+OK Capability list follows\r\n"));
}

#[test]
fn auth_response_lines_may_be_long_but_bounded() {
    // A SASL response line longer than 255 octets is fine (RFC 5034 §4)...
    let token = "t".repeat(600);
    let message = format!("user=alice\x01auth=Bearer {token}\x01\x01");
    let mut server = Server::new(config(), FixedRandom::new(1));
    server.tls_established(tls_info()).unwrap();
    server.receive(b"AUTH XOAUTH2\r\n").unwrap();
    let mut line = base64_encode(message.as_bytes()).into_bytes();
    line.extend_from_slice(b"\r\n");
    server.receive(&line).unwrap();
    assert!(matches!(server.poll_event(), Some(Event::Credentials(CredentialRequest::VerifyToken { .. }))));
    // An initial response that makes the AUTH line longer than 255 octets is taken too
    // (clients with long OAuth tokens send it anyway)...
    let mut server = Server::new(config(), FixedRandom::new(1));
    server.tls_established(tls_info()).unwrap();
    server.receive(format!("AUTH XOAUTH2 {}\r\n", base64_encode(message.as_bytes())).as_bytes()).unwrap();
    assert_eq!(
        server.poll_event(),
        Some(Event::Credentials(CredentialRequest::VerifyToken { user: "alice".into(), token: Secret::from(token) }))
    );
    // ...but only in AUTHORIZATION, and no other command may be that long.
    server.answer_credentials(CredentialAnswer::Verified).unwrap();
    server.maildrop_opened(listing()).unwrap();
    while server.poll_transmit().is_some() {}
    server.receive(format!("AUTH XOAUTH2 {}\r\n", base64_encode(message.as_bytes())).as_bytes()).unwrap();
    assert_eq!(server.poll_transmit().unwrap(), b"-ERR Command not valid in this state\r\n");
    // ...but not beyond 12288.
    let mut server = Server::new(config(), FixedRandom::new(1));
    server.tls_established(tls_info()).unwrap();
    while server.poll_transmit().is_some() {}
    server.receive(b"AUTH PLAIN\r\n").unwrap();
    server.receive(&vec![b'A'; 20_000]).unwrap();
    server.receive(b"\r\nNOOP\r\n").unwrap();
    let mut out = Vec::new();
    while let Some(bytes) = server.poll_transmit() {
        out.extend_from_slice(&bytes);
    }
    assert_eq!(out, b"+ \r\n-ERR Malformed authentication data\r\n-ERR Command not valid in this state\r\n");
}

fn base64_encode(data: &[u8]) -> String {
    mailwire::wire::encode_payload(data)
}

#[test]
fn input_while_waiting_is_bounded() {
    let mut config = plaintext_config();
    config.max_buffered = 1000;
    let mut server = Server::new(config, FixedRandom::new(1));
    server.receive(b"USER a\r\nPASS b\r\n").unwrap();
    server.receive(&[b'N'; 900]).unwrap();
    assert_eq!(server.receive(&[b'N'; 200]), Err(Error::BufferFull));
    assert!(server.is_closed());
    // Input after the end is ignored.
    assert_eq!(server.receive(b"NOOP\r\n"), Ok(()));
    assert_eq!(server.answer_credentials(CredentialAnswer::Verified), Err(Error::Closed));
}

#[test]
fn server_is_small_and_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Server>();
    let size = core::mem::size_of::<Server>();
    assert!(size <= 2048, "{size}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random bytes in random chunks, with an application that answers whatever it is asked,
    /// never panic and never grow the input buffer beyond its bounds.
    #[test]
    fn random_input_never_panics(
        prefix in prop::sample::select(vec![
            &b""[..], b"USER a\r\nPASS b\r\n", b"AUTH PLAIN\r\n", b"STLS\r\n", b"XTND XMIT\r\n",
            b"AUTH SCRAM-SHA-256\r\n", b"AUTH LOGIN\r\n", b"RETR 1\r\n", b"TOP 2 1\r\n",
        ]),
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..24),
    ) {
        let mut config = xmit_config();
        config.mechanisms.push(Mechanism::CramMd5);
        config.mechanisms.push(Mechanism::DigestMd5);
        let mut server = Server::new(config, FixedRandom::new(5));
        let mut input = vec![prefix.to_vec(), b"USER a\r\nPASS b\r\n".to_vec(), prefix.to_vec()];
        input.extend(chunks);
        for chunk in input {
            let _ = server.receive(&chunk);
            while let Some(event) = server.poll_event() {
                let _ = match event {
                    Event::StartTls => server.tls_established(tls_info()),
                    Event::Credentials(CredentialRequest::Password { .. } | CredentialRequest::DigestSecret { .. }
                        | CredentialRequest::ScramCredentials { .. }) =>
                        server.answer_credentials(CredentialAnswer::Password(Secret::from("pw"))),
                    Event::Credentials(_) => server.answer_credentials(CredentialAnswer::Verified),
                    Event::OpenMaildrop { .. } => server.maildrop_opened(listing()),
                    Event::Retrieve { .. } => server
                        .message_chunk(b"A: b\r\n\r\n.x\r\n")
                        .and_then(|()| server.message_end()),
                    Event::Commit { .. } => server.commit_done(true),
                    Event::XmitEnd => server.xmit_accepted(),
                    _ => Ok(()),
                };
            }
            while server.poll_transmit().is_some() {}
        }
    }
}

fn long_session() -> Vec<Step> {
    vec![
        C(b"CAPA\r\nAUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=\r\nSTLS\r\nUSER x\r\n"),
        Tls,
        C(b"CAPA\r\nAUTH PLAIN\r\ndGVzdAB0ZXN0AHRlc3Q=\r\nSTAT\r\n"),
        App(rejected),
        C(b"USER alice\r\nPASS wonder land\r\nLIST\r\n"),
        App(verified),
        App(open),
        C(b"UIDL\r\nRETR 1\r\nDELE 1\r\n"),
        App(retr_b23),
        C(b"TOP 2 0\r\nXTND XMIT\r\n"),
        App(b24_top),
        C(b"a\r\n..b\r\n.\r\nXTND XMIT\r\n"),
        App(|s| s.xmit_accepted()),
        C(b"0123456789012345678901234567890123456789\r\n0123456789012345678901234567890123456789\r\n.\r\nQUIT\r\n"),
        App(|s| s.commit_done(true)),
    ]
}

fn long_config() -> ServerConfig {
    let mut config = xmit_config();
    config.allow_plaintext = false;
    config
}

#[test]
fn long_session_is_split_invariant() {
    let trace = run(&long_config(), &long_session());
    let capa_after = "+OK Capability list follows\r\nTOP\r\nUSER\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nUIDL\r\n\
                      SASL SCRAM-SHA-256-PLUS SCRAM-SHA-256 SCRAM-SHA-1 PLAIN LOGIN ANONYMOUS XOAUTH2 EXTERNAL\r\n.\r\n";
    let expected = format!(
        "+OK Capability list follows\r\nTOP\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nUIDL\r\nSTLS\r\n\
         SASL SCRAM-SHA-256 SCRAM-SHA-1 ANONYMOUS XOAUTH2\r\n.\r\n\
         -ERR Plaintext authentication disallowed without TLS\r\n+OK Begin TLS negotiation\r\n{capa_after}\
         + \r\n-ERR [AUTH] Authentication failed\r\n-ERR Command not valid in this state\r\n\
         +OK\r\n+OK Logged in\r\n+OK 3 messages (325 octets)\r\n1 120\r\n2 200\r\n3 5\r\n.\r\n\
         +OK\r\n1 uid-one\r\n2 uid-two\r\n3 uid-three\r\n.\r\n\
         +OK 120 octets\r\nSubject: t\r\n\r\n..hidden\r\n...\r\n.\r\n+OK Message deleted\r\n\
         +OK\r\nfirst\r\n..\r\n..dot\r\nlast\r\n.\r\n\
         +OK Start sending message\r\n+OK Message sent\r\n+OK Start sending message\r\n-ERR Message too large\r\n\
         +OK POP3 server signing off\r\n"
    );
    assert_eq!(trace.text(), expected);
    assert_eq!(trace.events[8], Event::XmitData(b"a\r\n.b\r\n".to_vec()));
    assert_eq!(
        trace.events[10],
        Event::XmitData([&b"0123456789".repeat(4)[..], b"\r\n", &b"0123456789".repeat(2)[..], b"01"].concat())
    );
    assert_eq!(trace.events[11], Event::XmitAborted);
    assert_eq!(trace.events.last(), Some(&Event::Commit { deleted: vec![1] }));
}

proptest! {
    /// The long session cut into chunks of random sizes gives the same trace as whole.
    #[test]
    fn random_splits_give_the_same_trace(sizes in prop::collection::vec(1usize..40, 1..16)) {
        let config = long_config();
        let steps = long_session();
        let whole = run_split(&config, &steps, Split::Whole);
        prop_assert_eq!(run_split(&config, &steps, Split::Sizes(&sizes)), whole);
    }
}

// ---------------------------------------------------------------------------------------------
// Our client against our server, in memory

const MESSAGE: &[u8] = b"From: bob@example.org\r\nSubject: dots\r\n\r\n.leading dot\r\n.\r\n..two\r\nend\r\n";

struct Pair {
    client: Client,
    server: Server,
    client_events: Vec<client::Event>,
    server_events: Vec<Event>,
    retrieved: Vec<u8>,
    xmitted: Vec<u8>,
    user: &'static str,
    password: &'static str,
    token: &'static str,
    /// Deliver every byte on its own, both ways.
    bytewise: bool,
}

impl Pair {
    fn new(client_config: ClientConfig, server_config: ServerConfig) -> Self {
        Self {
            client: Client::new(client_config),
            server: Server::new(server_config, FixedRandom::new(11)),
            client_events: Vec::new(),
            server_events: Vec::new(),
            retrieved: Vec::new(),
            xmitted: Vec::new(),
            user: "alice",
            password: "wonderland",
            token: "ya29.token",
            bytewise: false,
        }
    }

    fn answer(&self, request: &CredentialRequest) -> CredentialAnswer {
        let user_ok = |user: &str| user == self.user;
        match request {
            CredentialRequest::VerifyPassword { authcid, password } => {
                if user_ok(authcid) && password.expose() == self.password.as_bytes() {
                    CredentialAnswer::Verified
                } else {
                    CredentialAnswer::Rejected
                }
            }
            CredentialRequest::VerifyToken { user, token } => {
                if user_ok(user) && token.expose() == self.token.as_bytes() {
                    CredentialAnswer::Verified
                } else {
                    CredentialAnswer::Rejected
                }
            }
            CredentialRequest::Password { authcid } if user_ok(authcid) => {
                CredentialAnswer::Password(Secret::from(self.password))
            }
            CredentialRequest::DigestSecret { username, .. } if user_ok(username) => {
                CredentialAnswer::Password(Secret::from(self.password))
            }
            CredentialRequest::ScramCredentials { authcid, .. } if user_ok(authcid) => {
                CredentialAnswer::Password(Secret::from(self.password))
            }
            CredentialRequest::Anonymous { .. } => CredentialAnswer::Verified,
            CredentialRequest::Authorize { .. } => CredentialAnswer::Rejected,
            _ => CredentialAnswer::UnknownUser,
        }
    }

    fn server_events(&mut self) {
        while let Some(event) = self.server.poll_event() {
            match &event {
                Event::StartTls => self.server.tls_established(tls_info()).unwrap(),
                Event::Credentials(request) => {
                    let answer = self.answer(request);
                    self.server.answer_credentials(answer).unwrap();
                }
                Event::OpenMaildrop { .. } => self
                    .server
                    .maildrop_opened(vec![MessageInfo::new(MESSAGE.len() as u64, "m1"), MessageInfo::new(3, "m2")])
                    .unwrap(),
                Event::Retrieve { msg, .. } => {
                    let body: &[u8] = if *msg == 1 { MESSAGE } else { b"x\r\n" };
                    for chunk in body.chunks(5) {
                        if self.server.wants_message_data() {
                            self.server.message_chunk(chunk).unwrap();
                        }
                    }
                    self.server.message_end().unwrap();
                }
                Event::Commit { .. } => self.server.commit_done(true).unwrap(),
                Event::XmitData(data) => self.xmitted.extend_from_slice(data),
                Event::XmitEnd => self.server.xmit_accepted().unwrap(),
                _ => {}
            }
            self.server_events.push(event);
        }
    }

    /// Moves bytes both ways until nothing moves.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(out) = self.client.poll_transmit() {
                let size = if self.bytewise { 1 } else { out.len().max(1) };
                for chunk in out.chunks(size) {
                    self.server.receive(chunk).unwrap();
                    self.server_events();
                }
                moved = true;
            }
            self.server_events();
            while let Some(out) = self.server.poll_transmit() {
                let size = if self.bytewise { 1 } else { out.len().max(1) };
                for chunk in out.chunks(size) {
                    self.client.receive(chunk).unwrap();
                }
                moved = true;
            }
            while let Some(event) = self.client.poll_event() {
                match &event {
                    client::Event::StartTls => {
                        let info = TlsInfo {
                            channel_binding: tls_info().channel_binding,
                            peer_identity: None,
                            client_certificate: true,
                        };
                        self.client.tls_established(info).unwrap();
                    }
                    client::Event::MessageData(data) => self.retrieved.extend_from_slice(data),
                    client::Event::XmitReady => {
                        self.client.send_body_chunk(b"To: carol@example.org\r\n\r\n.hi\r\n").unwrap();
                        self.client.finish_body().unwrap();
                    }
                    _ => {}
                }
                self.client_events.push(event);
                moved = true;
            }
            if !moved {
                break;
            }
        }
    }

    fn client_has(&self, pred: impl Fn(&client::Event) -> bool) -> bool {
        self.client_events.iter().any(pred)
    }
}

fn credentials(mechanism: Option<&Mechanism>) -> Credentials {
    match mechanism {
        Some(Mechanism::XOAuth2 | Mechanism::OAuthBearer) => Credentials::token("alice", "ya29.token"),
        Some(Mechanism::Anonymous) => Credentials { trace: Some("sirhc".into()), ..Credentials::default() },
        Some(Mechanism::External) => Credentials::default(),
        _ => Credentials::password("alice", "wonderland"),
    }
}

fn all_mechanisms_config(tls: bool) -> (ClientConfig, ServerConfig) {
    let mut server = ServerConfig::new("pop.example.org");
    server.mechanisms = Mechanism::KNOWN.to_vec();
    server.apop = true;
    server.xtnd_xmit = true;
    server.scram_iterations = 4096;
    let mut client = ClientConfig::new("pop.example.org");
    if !tls {
        server.stls = false;
        client.tls = TlsPolicy::Disabled;
    }
    (client, server)
}

/// Logs in with `method` and runs a whole maildrop session, checking every byte; the same
/// session delivered byte by byte both ways gives the same server events.
fn session(method: AuthMethod, tls: bool, plaintext: bool) {
    let whole = session_with(method.clone(), tls, plaintext, false);
    let bytewise = session_with(method.clone(), tls, plaintext, true);
    assert_eq!(whole, bytewise, "{method:?} tls={tls}");
}

fn session_with(method: AuthMethod, tls: bool, plaintext: bool, bytewise: bool) -> Vec<Event> {
    let (mut client_config, mut server_config) = all_mechanisms_config(tls);
    client_config.allow_plaintext = plaintext;
    server_config.allow_plaintext = plaintext;
    let mut pair = Pair::new(client_config, server_config);
    pair.bytewise = bytewise;
    pair.pump();
    assert!(pair.client_has(|e| *e == client::Event::Ready { tls }), "{method:?}: {:?}", pair.client_events);
    let mechanism = match &method {
        AuthMethod::Sasl(m) => Some(m),
        _ => None,
    };
    pair.client.authenticate_with(&credentials(mechanism), method.clone(), &mut FixedRandom::new(3)).unwrap();
    pair.pump();
    assert!(
        pair.client_has(|e| matches!(e, client::Event::Authenticated { method: m } if *m == method)),
        "{method:?} tls={tls}: {:?} / {:?}",
        pair.client_events,
        pair.server_events
    );
    let expected_user = if mechanism == Some(&Mechanism::Anonymous) { "anonymous" } else { "alice" };
    assert!(
        pair.server_events.iter().any(|e| matches!(e, Event::Authenticated { method: m, .. } if *m == method)),
        "{:?}",
        pair.server_events
    );
    let opened: Vec<&Event> = pair.server_events.iter().filter(|e| matches!(e, Event::OpenMaildrop { .. })).collect();
    assert_eq!(opened.len(), 1);
    if mechanism != Some(&Mechanism::Anonymous) {
        assert_eq!(opened[0], &open_maildrop(expected_user));
    }

    pair.client.list(None).unwrap();
    pair.client.uidl(None).unwrap();
    pair.client.retr(1).unwrap();
    pair.pump();
    assert_eq!(pair.retrieved, MESSAGE, "byte-exact after unstuffing");
    assert!(
        pair.client_has(
            |e| matches!(e, client::Event::Listing(l) if l.len() == 2 && l[0].size == MESSAGE.len() as u64)
        )
    );
    assert!(pair.client_has(|e| matches!(e, client::Event::UniqueIds(u) if u.len() == 2 && u[1].uid == "m2")));

    pair.retrieved.clear();
    pair.client.top(1, 1).unwrap();
    pair.pump();
    assert_eq!(pair.retrieved, b"From: bob@example.org\r\nSubject: dots\r\n\r\n.leading dot\r\n");

    pair.client.xtnd_xmit().unwrap();
    pair.pump();
    assert_eq!(pair.xmitted, b"To: carol@example.org\r\n\r\n.hi\r\n");
    assert!(pair.client_has(|e| matches!(e, client::Event::XmitDone(Ok(_)))));

    pair.client.dele(1).unwrap();
    pair.client.quit().unwrap();
    pair.pump();
    assert!(pair.server_events.contains(&Event::Commit { deleted: vec![1] }));
    assert!(pair.client_has(|e| matches!(e, client::Event::Quit(QuitOutcome::Committed(_)))));
    assert!(pair.server.is_closed() && pair.client.is_closed());
    let mut events = pair.server_events;
    // XMIT chunk boundaries follow the input.
    events.dedup_by(|next, previous| match (next, previous) {
        (Event::XmitData(next), Event::XmitData(previous)) => {
            previous.extend_from_slice(next);
            true
        }
        _ => false,
    });
    events
}

#[test]
fn client_server_every_sasl_mechanism_over_stls() {
    for mechanism in Mechanism::KNOWN {
        session(AuthMethod::Sasl(mechanism), true, false);
    }
    session(AuthMethod::Apop, true, false);
    session(AuthMethod::UserPass, true, false);
}

#[test]
fn client_server_without_tls() {
    for mechanism in Mechanism::KNOWN {
        match mechanism {
            m if m.is_plus() || m == Mechanism::External => {}
            m if m.is_plaintext() => session(AuthMethod::Sasl(m), false, true),
            m => session(AuthMethod::Sasl(m), false, false),
        }
    }
    session(AuthMethod::Apop, false, false);
    session(AuthMethod::UserPass, false, true);
}

#[test]
fn client_server_wrong_passwords() {
    for method in [
        AuthMethod::Sasl(Mechanism::ScramSha256),
        AuthMethod::Sasl(Mechanism::ScramSha1Plus),
        AuthMethod::Sasl(Mechanism::DigestMd5),
        AuthMethod::Sasl(Mechanism::CramMd5),
        AuthMethod::Sasl(Mechanism::Plain),
        AuthMethod::Sasl(Mechanism::Login),
        AuthMethod::Sasl(Mechanism::XOAuth2),
        AuthMethod::Sasl(Mechanism::OAuthBearer),
        AuthMethod::Apop,
        AuthMethod::UserPass,
    ] {
        let (client_config, server_config) = all_mechanisms_config(true);
        let mut pair = Pair::new(client_config, server_config);
        pair.password = "not-it";
        pair.token = "other";
        pair.pump();
        for attempt in 1..=3 {
            let mechanism = match &method {
                AuthMethod::Sasl(m) => Some(m),
                _ => None,
            };
            pair.client.authenticate_with(&credentials(mechanism), method.clone(), &mut FixedRandom::new(3)).unwrap();
            pair.pump();
            let failures = pair
                .client_events
                .iter()
                .filter(|e| matches!(e, client::Event::AuthFailed { reply, .. } if reply.kind == Some(CodeKind::Auth)))
                .count();
            assert_eq!(failures, attempt, "{method:?}: {:?}", pair.client_events);
            assert!(!pair.client_has(|e| matches!(e, client::Event::Authenticated { .. })));
        }
        assert!(pair.server.is_closed(), "{method:?}: three failures close the session");
        assert_eq!(pair.server_events.iter().filter(|e| matches!(e, Event::OpenMaildrop { .. })).count(), 0);
    }
}

#[test]
fn client_server_automatic_choice_prefers_the_strongest() {
    let (client_config, server_config) = all_mechanisms_config(true);
    let mut pair = Pair::new(client_config, server_config);
    pair.pump();
    let method = pair.client.authenticate(&credentials(None), &mut FixedRandom::new(1)).unwrap();
    assert_eq!(method, AuthMethod::Sasl(Mechanism::ScramSha256Plus));
    pair.pump();
    assert!(pair.client_has(|e| matches!(e, client::Event::Authenticated { .. })));
}

#[test]
fn client_server_external_uses_the_certificate_identity() {
    let (client_config, server_config) = all_mechanisms_config(true);
    let mut pair = Pair::new(client_config, server_config);
    pair.pump();
    let caps = pair.client.capabilities().unwrap().clone();
    assert!(caps.sasl.contains(&Mechanism::External) && !caps.stls && caps.user);
    pair.client
        .authenticate_with(&Credentials::default(), AuthMethod::Sasl(Mechanism::External), &mut FixedRandom::new(1))
        .unwrap();
    pair.pump();
    assert!(pair.server_events.contains(&authenticated("alice", AuthMethod::Sasl(Mechanism::External))));
}
