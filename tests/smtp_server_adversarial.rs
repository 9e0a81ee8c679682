//! Adversarial review of `smtp::Server`: memory a peer can make grow, smuggling forms,
//! STARTTLS injection shapes, AUTH limits and caller errors, and a long random session with
//! arbitrary application answers at arbitrary times (never a panic, errors typed).

use mailwire::sasl::{AuthFailure, CredentialAnswer, CredentialRequest, FixedRandom, Identity, Mechanism, Secret};
use mailwire::smtp::server::{Error, Event};
use mailwire::smtp::{Reply, Server, ServerConfig};
use mailwire::tls::TlsInfo;

const MIB: usize = 1024 * 1024;

fn new_server(config: ServerConfig) -> Server {
    Server::new(config, Box::new(FixedRandom::new(3)))
}

fn output(server: &mut Server) -> String {
    let mut out = Vec::new();
    while let Some(bytes) = server.poll_transmit() {
        out.extend_from_slice(&bytes);
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn events(server: &mut Server) -> Vec<Event> {
    std::iter::from_fn(|| server.poll_event()).collect()
}

/// A server after the greeting, `EHLO x`, STARTTLS and the handshake, and `EHLO x` again.
fn tls_ready(config: ServerConfig, info: TlsInfo) -> Server {
    let mut server = new_server(config);
    server.receive(b"EHLO x\r\nSTARTTLS\r\n").unwrap();
    assert_eq!(events(&mut server).last(), Some(&Event::StartTls));
    server.tls_established(info).unwrap();
    server.receive(b"EHLO x\r\n").unwrap();
    output(&mut server);
    events(&mut server);
    server
}

fn accept_all(server: &mut Server) -> Vec<Event> {
    let mut seen = Vec::new();
    while let Some(event) = server.poll_event() {
        match &event {
            Event::Mail { .. } | Event::Rcpt { .. } | Event::DataEnd { .. } => server.accept().unwrap(),
            _ => {}
        }
        seen.push(event);
    }
    seen
}

// ---------------------------------------------------------------------------------------------
// Memory

/// A client that pipelines small commands and never reads its replies: the driver keeps
/// reading (as an async driver with separate reader and writer may), the output is never taken.
/// What the machine holds must stay bounded; it must not grow with the 50 MB sent.
#[test]
fn memory_pipelined_flood_with_unread_replies_is_bounded() {
    for command in [&b"NOOP\r\n"[..], b"EHLO x\r\n", b"RSET\r\n", b"bogus\r\n", b"HELP\r\n"] {
        let mut config = ServerConfig::new("mx.example");
        config.max_errors = 0;
        let mut server = new_server(config);
        let chunk = command.repeat(64 * 1024 / command.len());
        let mut sent = 0;
        let mut failed = None;
        let mut events = 0usize;
        while sent < 50 * MIB {
            if let Err(error) = server.receive(&chunk) {
                failed = Some(error);
                break;
            }
            sent += chunk.len();
            // The application keeps up with events; only the socket is stuck.
            events += std::iter::from_fn(|| server.poll_event()).count();
            // max_output (256 KiB) plus the reply that crossed it.
            assert!(server.queued_output() <= 257 * 1024, "{command:?}: {} bytes queued", server.queued_output());
        }
        let held = output(&mut server).len();
        assert!(held <= 257 * 1024 + 100, "{command:?}: {held} bytes of output held after {sent} bytes in");
        assert!(events <= 5_000, "{command:?}: {events} events");
        assert!(sent <= 512 * 1024, "{command:?}: {sent} bytes read before the session was closed");
        assert!(matches!(failed, Some(Error::BufferFull(_))), "{command:?}: {failed:?}");
    }
}

/// The same flood, with the driver writing everything out after each read: nothing is held
/// and the session goes on.
#[test]
fn memory_pipelined_flood_with_replies_taken_goes_on() {
    let mut server = new_server(ServerConfig::new("mx.example"));
    let chunk = b"NOOP\r\n".repeat(64 * 1024 / 6);
    for _ in 0..200 {
        server.receive(&chunk).unwrap();
        let out = output(&mut server);
        assert!(out.len() <= 3 * chunk.len());
        assert!(server.queued_output() == 0);
    }
    assert!(!server.is_closed());
}

/// Reading stops at `max_output` queued bytes and resumes when the output is taken: every
/// pipelined command is answered in order, and a STARTTLS reached then is still checked for
/// bytes after it.
#[test]
fn memory_back_pressure_resumes_when_output_is_taken() {
    let mut config = ServerConfig::new("mx.example");
    config.max_output = 100;
    let mut server = new_server(config.clone());
    let mut input = b"EHLO x\r\n".to_vec();
    input.extend_from_slice(&b"NOOP\r\n".repeat(50));
    input.extend_from_slice(b"STARTTLS\r\n");
    server.receive(&input).unwrap();
    assert!(server.queued_output() < 400);
    let mut out = Vec::new();
    let mut seen = Vec::new();
    while let Some(bytes) = server.poll_transmit() {
        out.extend_from_slice(&bytes);
        seen.extend(events(&mut server));
    }
    let out = String::from_utf8(out).unwrap();
    assert_eq!(out.matches("250 2.0.0 OK\r\n").count(), 50, "{out}");
    assert!(out.ends_with("250 2.0.0 OK\r\n220 2.0.0 Ready to start TLS\r\n"), "{out}");
    assert_eq!(seen.last(), Some(&Event::StartTls));

    let mut server = new_server(config);
    let mut input = b"EHLO x\r\n".to_vec();
    input.extend_from_slice(&b"NOOP\r\n".repeat(50));
    input.extend_from_slice(b"STARTTLS\r\n");
    server.receive(&input).unwrap();
    server.receive(b"RSET\r\n").unwrap();
    let mut out = Vec::new();
    while let Some(bytes) = server.poll_transmit() {
        out.extend_from_slice(&bytes);
    }
    let out = String::from_utf8(out).unwrap();
    // The RSET that arrived while reading was paused is after STARTTLS: dropped unread.
    assert!(out.ends_with("250 2.0.0 OK\r\n220 2.0.0 Ready to start TLS\r\n"), "{out}");
    assert_eq!(events(&mut server).last(), Some(&Event::StartTls));
    assert_eq!(server.discarded_after_starttls(), 6);
    assert!(!server.is_closed());
}

/// 50 MB of DATA body in 64 KiB reads: the body pieces are at most `max_data_chunk`, every
/// piece is handed out as the bytes come (nothing accumulates in the machine), and after the
/// size limit nothing more is handed out.
#[test]
fn memory_data_body_of_50_mb_is_streamed_and_capped() {
    let mut config = ServerConfig::new("mx.example");
    config.max_message_size = Some(10 * MIB as u64);
    let mut server = new_server(config);
    server.receive(b"EHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n").unwrap();
    accept_all(&mut server);
    output(&mut server);
    let chunk = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!\r\n".repeat(1024);
    let mut delivered = 0usize;
    let mut sent = 0;
    while sent < 50 * MIB {
        server.receive(&chunk).unwrap();
        sent += chunk.len();
        for event in events(&mut server) {
            if let Event::Data(piece) = event {
                assert!(piece.len() <= 16 * 1024);
                delivered += piece.len();
            }
        }
        assert!(output(&mut server).is_empty());
    }
    assert!(delivered <= 10 * MIB, "{delivered}");
    server.receive(b".\r\nNOOP\r\n").unwrap();
    assert!(matches!(events(&mut server).as_slice(), [Event::DataRejected(_)]));
    assert_eq!(output(&mut server), "552 5.3.4 Message size exceeds fixed maximum message size\r\n250 2.0.0 OK\r\n");
}

/// `BDAT 18446744073709551615` and then 50 MB: the declared size does not reserve anything,
/// the data is capped at the size limit, and the machine holds nothing in between.
#[test]
fn memory_bdat_huge_declared_size() {
    let mut config = ServerConfig::new("mx.example");
    config.max_message_size = Some(MIB as u64);
    let mut server = new_server(config);
    server.receive(b"EHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\n").unwrap();
    accept_all(&mut server);
    output(&mut server);
    server.receive(b"BDAT 18446744073709551615 LAST\r\n").unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut delivered = 0usize;
    for _ in 0..(50 * MIB / chunk.len()) {
        server.receive(&chunk).unwrap();
        for event in events(&mut server) {
            if let Event::Data(piece) = event {
                delivered += piece.len();
            }
        }
        assert!(output(&mut server).is_empty());
    }
    assert!(delivered <= MIB, "{delivered}");
    assert!(!server.is_closed());
}

/// BDAT chunks refused (no transaction) are read and dropped, whatever their declared size.
#[test]
fn memory_refused_bdat_chunk_is_dropped() {
    let mut server = new_server(ServerConfig::new("mx.example"));
    server.receive(b"EHLO x\r\nBDAT 52428800\r\n").unwrap();
    events(&mut server);
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..800 {
        server.receive(&chunk).unwrap();
        assert!(events(&mut server).is_empty());
    }
    server.receive(b"NOOP\r\n").unwrap();
    assert!(output(&mut server).ends_with("503 5.5.1 Need MAIL command\r\n250 2.0.0 OK\r\n"));
}

/// RCPT beyond `max_recipients` gets 452 without asking the application, and recipients the
/// application refused are not counted, but cost a round trip each.
#[test]
fn memory_recipients_are_capped() {
    let mut config = ServerConfig::new("mx.example");
    config.max_recipients = 3;
    let mut server = new_server(config);
    server.receive(b"EHLO x\r\nMAIL FROM:<a@x>\r\n").unwrap();
    accept_all(&mut server);
    for _ in 0..10 {
        server.receive(b"RCPT TO:<b@x>\r\n").unwrap();
        accept_all(&mut server);
    }
    let out = output(&mut server);
    assert_eq!(out.matches("250 2.1.5").count(), 3, "{out}");
    assert_eq!(out.matches("452 4.5.3").count(), 7, "{out}");
}

/// A long line without LF, fed in pieces, is not stored.
#[test]
fn memory_endless_line_is_not_stored() {
    let mut server = new_server(ServerConfig::new("mx.example"));
    let chunk = vec![b'A'; 64 * 1024];
    for _ in 0..(50 * MIB / chunk.len()) {
        server.receive(&chunk).unwrap();
    }
    server.receive(b"\r\nNOOP\r\n").unwrap();
    assert!(output(&mut server).ends_with("500 5.5.2 Line too long\r\n250 2.0.0 OK\r\n"));
}

/// An AUTH exchange whose continuation line never ends is cut at the AUTH line limit.
#[test]
fn memory_endless_auth_continuation() {
    let mut server = tls_ready(ServerConfig::new("mx.example"), TlsInfo::default());
    server.receive(b"AUTH PLAIN\r\n").unwrap();
    let chunk = vec![b'A'; 64 * 1024];
    for _ in 0..100 {
        server.receive(&chunk).unwrap();
    }
    server.receive(b"\r\n").unwrap();
    let out = output(&mut server);
    assert!(out.ends_with("500 5.5.6 Authentication exchange line is too long\r\n"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// Smuggling

/// `LF . LF`, `CR . CR LF`, `LF . CRLF` and `CR LF . LF` never end DATA; the commands
/// after them are body, and only `CRLF . CRLF` ends it.
#[test]
fn smuggling_bare_forms_do_not_end_data() {
    for form in [&b"\n.\n"[..], b"\r.\r\n", b"\n.\r\n", b"\r\n.\n", b"\r\n.\r", b"\r\n.\r\r\n"] {
        let mut body = b"Subject: a\r\n\r\nfirst".to_vec();
        body.extend_from_slice(form);
        body.extend_from_slice(b"MAIL FROM:<evil@x>\r\nRCPT TO:<victim@x>\r\nDATA\r\nforged\r\n");
        let mut input = b"EHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n".to_vec();
        input.extend_from_slice(&body);
        input.extend_from_slice(b".\r\n");
        for chunks in [vec![&input[..]], input.chunks(1).collect::<Vec<_>>()] {
            let mut server = new_server(ServerConfig::new("mx.example"));
            let mut message = Vec::new();
            let mut seen = Vec::new();
            for chunk in chunks {
                server.receive(chunk).unwrap();
                for event in accept_all(&mut server) {
                    if let Event::Data(piece) = &event {
                        message.extend_from_slice(piece);
                    } else {
                        seen.push(event);
                    }
                }
            }
            let mails = seen.iter().filter(|e| matches!(e, Event::Mail { .. })).count();
            assert_eq!(mails, 1, "{form:?}: {seen:?}");
            assert_eq!(seen.iter().filter(|e| matches!(e, Event::DataEnd { .. })).count(), 1, "{form:?}");
            assert!(message.windows(6).any(|w| w == b"forged"), "{form:?}");
        }
    }
}

/// Bare CR inside a command line is not a line break: `RSET\rMAIL FROM:<x@x>` is one bad
/// line, never a MAIL.
#[test]
fn smuggling_bare_cr_in_commands() {
    let mut server = new_server(ServerConfig::new("mx.example"));
    server.receive(b"EHLO x\r\nRSET\rMAIL FROM:<x@x>\r\nMAIL FROM:<a\rb@x>\r\nRCPT TO:<a\0b@x>\r\n").unwrap();
    let seen = events(&mut server);
    assert!(!seen.iter().any(|e| matches!(e, Event::Mail { .. })), "{seen:?}");
    let out = output(&mut server);
    assert!(out.ends_with("501 5.5.4 Syntax error in parameters or arguments\r\n501 5.5.4 Syntax error in parameters or arguments\r\n501 5.5.4 Syntax error in parameters or arguments\r\n"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// STARTTLS

/// Every injection shape after `STARTTLS\r\n` (whole command, partial command, a lone CR or
/// LF, NUL), in the same read or a later one before the handshake: dropped unread and counted,
/// the upgrade goes on, and nothing of it is executed over TLS.
#[test]
fn starttls_injection_every_shape() {
    for tail in [&b"RSET\r\n"[..], b"R", b"\r", b"\n", b"\r\n", b" ", b"\0", b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\n"] {
        for same_read in [true, false] {
            let mut server = new_server(ServerConfig::new("mx.example"));
            let mut input = b"EHLO x\r\nSTARTTLS\r\n".to_vec();
            if same_read {
                input.extend_from_slice(tail);
                server.receive(&input).unwrap();
            } else {
                server.receive(&input).unwrap();
                assert_eq!(server.receive(tail), Ok(()), "{tail:?}");
            }
            assert_eq!(events(&mut server).last(), Some(&Event::StartTls), "{tail:?}");
            assert!(output(&mut server).ends_with("220 2.0.0 Ready to start TLS\r\n"), "{tail:?}");
            assert_eq!(server.discarded_after_starttls(), tail.len(), "{tail:?}");
            server.tls_established(TlsInfo::default()).unwrap();
            server.receive(b"NOOP\r\n").unwrap();
            assert_eq!(output(&mut server), "250 2.0.0 OK\r\n", "{tail:?}");
            assert_eq!(events(&mut server), vec![], "{tail:?}");
        }
    }
}

/// STARTTLS pipelined behind a command that waits for the application: what arrives after it
/// while the decision is pending is dropped when the STARTTLS is reached.
#[test]
fn starttls_injection_behind_a_pending_decision() {
    let mut server = new_server(ServerConfig::new("mx.example"));
    server.receive(b"EHLO x\r\nMAIL FROM:<a@x>\r\nRSET\r\nSTARTTLS\r\n").unwrap();
    server.receive(b"MAIL FROM:<evil@x>\r\n").unwrap();
    let seen = events(&mut server);
    assert!(matches!(seen.last(), Some(Event::Mail { .. })));
    server.reject(Reply::new(550, "no")).unwrap();
    let seen = events(&mut server);
    assert_eq!(seen.last(), Some(&Event::StartTls), "{seen:?}");
    assert!(!seen.iter().any(|e| matches!(e, Event::Mail { .. })));
    assert_eq!(server.discarded_after_starttls(), b"MAIL FROM:<evil@x>\r\n".len());
    assert!(!server.is_closed());
}

/// After TLS the AUTH identity from before TLS, the EHLO and the transaction are gone.
#[test]
fn starttls_resets_identity_from_before_tls() {
    let mut config = ServerConfig::new("mx.example");
    config.require_tls_for_auth = false;
    config.mechanisms_before_tls = vec![Mechanism::Plain];
    let mut server = new_server(config);
    server.receive(b"EHLO x\r\nAUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n").unwrap();
    let seen = events(&mut server);
    assert!(matches!(seen.last(), Some(Event::Credentials(_))));
    server.answer_credentials(CredentialAnswer::Verified).unwrap();
    assert!(server.is_authenticated());
    server.receive(b"STARTTLS\r\n").unwrap();
    events(&mut server);
    server.tls_established(TlsInfo::default()).unwrap();
    assert!(!server.is_authenticated());
    assert_eq!(server.identity(), None);
    output(&mut server);
    server.receive(b"MAIL FROM:<a@x>\r\nEHLO x\r\nMAIL FROM:<a@x>\r\n").unwrap();
    let seen = events(&mut server);
    assert!(matches!(seen.last(), Some(Event::Mail { identity: None, .. })), "{seen:?}");
    let out = output(&mut server);
    assert!(out.starts_with("503 5.5.1 EHLO/HELO first\r\n"), "{out}");
    assert!(!out.contains("STARTTLS"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// AUTH

/// The failure limit holds across mechanisms and `*` cancels.
#[test]
fn auth_failure_limit_across_mechanism_mixes() {
    let mut config = ServerConfig::new("mx.example");
    config.mechanisms_after_tls = vec![Mechanism::Plain, Mechanism::Login, Mechanism::CramMd5];
    let mut server = tls_ready(config, TlsInfo::default());
    // A wrong PLAIN password, a cancelled LOGIN, a wrong CRAM-MD5 digest: three failures.
    server.receive(b"AUTH PLAIN AGFsaWNlAHdyb25n\r\n").unwrap();
    events(&mut server);
    server.answer_credentials(CredentialAnswer::Rejected).unwrap();
    server.receive(b"AUTH LOGIN\r\n*\r\n").unwrap();
    server.receive(b"AUTH CRAM-MD5\r\n").unwrap();
    server.receive(b"YWxpY2UgMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA=\r\n").unwrap();
    let seen = events(&mut server);
    assert!(matches!(seen.last(), Some(Event::Credentials(CredentialRequest::Password { .. }))), "{seen:?}");
    server.answer_credentials(CredentialAnswer::Password(Secret::from("wonderland"))).unwrap();
    assert!(server.is_closed());
    let out = output(&mut server);
    assert!(out.ends_with("421 4.7.0 Too many failed authentication attempts\r\n"), "{out}");
}

/// A wrong token in XOAUTH2 gets the error challenge; cancelling it then still counts as a
/// failed attempt (the token was checked).
#[test]
fn auth_cancel_after_a_rejected_token_counts() {
    let mut config = ServerConfig::new("mx.example");
    config.mechanisms_after_tls = vec![Mechanism::XOAuth2];
    config.max_auth_failures = 2;
    let mut server = tls_ready(config, TlsInfo::default());
    for _ in 0..2 {
        // user=alice^Aauth=Bearer guess^A^A
        server.receive(b"AUTH XOAUTH2 dXNlcj1hbGljZQFhdXRoPUJlYXJlciBndWVzcwEB\r\n").unwrap();
        let seen = events(&mut server);
        assert!(matches!(seen.last(), Some(Event::Credentials(CredentialRequest::VerifyToken { .. }))), "{seen:?}");
        server.answer_credentials(CredentialAnswer::Rejected).unwrap();
        server.receive(b"*\r\n").unwrap();
    }
    assert!(server.is_closed(), "{}", output(&mut server));
}

/// Answers of the wrong kind are caller errors: typed, and the exchange still waits for a
/// good answer.
#[test]
fn auth_wrong_kind_of_answer_is_a_typed_caller_error() {
    let mut config = ServerConfig::new("mx.example");
    config.mechanisms_after_tls = vec![Mechanism::ScramSha256, Mechanism::Plain];
    let mut server = tls_ready(config, TlsInfo::default());
    // SCRAM client-first: n,,n=alice,r=abc
    server.receive(b"AUTH SCRAM-SHA-256 biwsbj1hbGljZSxyPWFiYw==\r\n").unwrap();
    assert!(matches!(events(&mut server).last(), Some(Event::Credentials(CredentialRequest::ScramCredentials { .. }))));
    let out_before = output(&mut server);
    assert_eq!(out_before, "");
    assert!(server.answer_credentials(CredentialAnswer::Verified).is_err());
    assert!(server.answer_credentials(CredentialAnswer::DigestHa1(Secret::from(vec![0; 16]))).is_err());
    assert_eq!(output(&mut server), "", "a caller error must not answer the client");
    server.answer_credentials(CredentialAnswer::Password(Secret::from("wonderland"))).unwrap();
    assert!(output(&mut server).starts_with("334 "));
    // PLAIN asks VerifyPassword; a Password answer is the wrong kind.
    server.receive(b"*\r\n").unwrap();
    output(&mut server);
    events(&mut server);
    server.receive(b"AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n").unwrap();
    events(&mut server);
    assert!(server.answer_credentials(CredentialAnswer::Password(Secret::from("x"))).is_err());
    assert_eq!(output(&mut server), "");
    server.answer_credentials(CredentialAnswer::Verified).unwrap();
    assert_eq!(output(&mut server), "235 2.7.0 Authentication successful\r\n");
}

/// AUTH after success is refused without looking at the credentials, and nothing the client
/// sent (identity, password) is ever echoed.
#[test]
fn auth_after_success_refused_and_nothing_echoed() {
    let mut server = tls_ready(ServerConfig::new("mx.example"), TlsInfo::default());
    // authzid "root\r\n250 forged", authcid alice: rejected as malformed without an echo
    server.receive(b"AUTH PLAIN cm9vdA0KMjUwIGZvcmdlZABhbGljZQB3b25kZXJsYW5k\r\n").unwrap();
    let mut out = output(&mut server);
    assert!(!events(&mut server).iter().any(|e| matches!(e, Event::Credentials(_))));
    server.receive(b"AUTH PLAIN YWxpY2UAYWxpY2UAd29uZGVybGFuZA==\r\n").unwrap();
    events(&mut server);
    server.answer_credentials(CredentialAnswer::Verified).unwrap();
    assert_eq!(server.identity(), Some(&Identity { authcid: "alice".into(), authzid: None }));
    server.receive(b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n").unwrap();
    assert!(events(&mut server).iter().all(|e| matches!(e, Event::Authenticated { .. })));
    out.push_str(&output(&mut server));
    assert!(out.ends_with("503 5.5.1 Already authenticated\r\n"), "{out}");
    for secret in ["alice", "wonderland", "root", "forged", "bob", "secret"] {
        assert!(!out.contains(secret), "{secret} echoed: {out}");
    }
}

/// PLAIN with an authzid other than the authcid asks the application to authorize it; a
/// refusal is a failure.
#[test]
fn auth_authzid_other_than_authcid_asks_authorize() {
    let mut server = tls_ready(ServerConfig::new("mx.example"), TlsInfo::default());
    // bob\0alice\0wonderland
    server.receive(b"AUTH PLAIN Ym9iAGFsaWNlAHdvbmRlcmxhbmQ=\r\n").unwrap();
    events(&mut server);
    server.answer_credentials(CredentialAnswer::Verified).unwrap();
    let seen = events(&mut server);
    assert_eq!(
        seen,
        vec![Event::Credentials(CredentialRequest::Authorize { authcid: "alice".into(), authzid: "bob".into() })]
    );
    server.answer_credentials(CredentialAnswer::Rejected).unwrap();
    assert!(!server.is_authenticated());
    let seen = events(&mut server);
    assert!(matches!(seen.as_slice(), [Event::AuthFailed { failure: AuthFailure::NotAuthorized, .. }]), "{seen:?}");
}

/// EXTERNAL is neither offered nor accepted without a verified client identity, `-PLUS`
/// never without channel binding data; both before and after TLS.
#[test]
fn auth_external_and_plus_need_tls_facts() {
    let mut config = ServerConfig::new("mx.example");
    config.require_tls_for_auth = false;
    config.mechanisms_before_tls = vec![Mechanism::External, Mechanism::ScramSha256Plus, Mechanism::Plain];
    config.mechanisms_after_tls = config.mechanisms_before_tls.clone();
    let mut server = new_server(config.clone());
    server
        .receive(b"EHLO x\r\nAUTH EXTERNAL =\r\nAUTH SCRAM-SHA-256-PLUS cD10bHMtZXhwb3J0ZXIsLG49YSxyPWI=\r\n")
        .unwrap();
    let out = output(&mut server);
    assert!(out.contains("250 AUTH PLAIN\r\n"), "{out}");
    // Before TLS: offered only under TLS (RFC 4954 §6, 538), credentials not looked at.
    assert!(out.ends_with("538 5.7.11 Encryption required for requested authentication mechanism\r\n538 5.7.11 Encryption required for requested authentication mechanism\r\n"), "{out}");
    assert!(!events(&mut server).iter().any(|e| matches!(e, Event::Credentials(_) | Event::Authenticated { .. })));
    let mut server = tls_ready(config, TlsInfo::default());
    server
        .receive(b"AUTH EXTERNAL =\r\nAUTH SCRAM-SHA-256-PLUS cD10bHMtZXhwb3J0ZXIsLG49YSxyPWI=\r\nEHLO x\r\n")
        .unwrap();
    let out = output(&mut server);
    assert!(
        out.starts_with("504 5.5.4 Unrecognized authentication type\r\n504 5.5.4 Unrecognized authentication type\r\n"),
        "{out}"
    );
    assert!(out.contains("250 AUTH PLAIN\r\n"), "{out}");
    assert!(!events(&mut server).iter().any(|e| matches!(e, Event::Credentials(_) | Event::Authenticated { .. })));
}

// ---------------------------------------------------------------------------------------------
// Caller errors

/// Answering twice, answering what was not asked, TLS at the wrong time: typed errors, and the
/// session still works.
#[test]
fn caller_errors_are_typed_and_harmless() {
    let mut server = new_server(ServerConfig::new("mx.example"));
    assert!(matches!(server.accept(), Err(Error::InvalidState(_))));
    assert!(matches!(server.answer_credentials(CredentialAnswer::Verified), Err(Error::InvalidState(_))));
    server.receive(b"EHLO x\r\nMAIL FROM:<a@x>\r\n").unwrap();
    events(&mut server);
    output(&mut server);
    assert!(matches!(server.tls_established(TlsInfo::default()), Err(Error::InvalidState(_))));
    assert!(matches!(server.accept_with(Reply::new(550, "x")), Err(Error::InvalidReply(_))));
    assert!(matches!(server.reject(Reply::new(250, "x")), Err(Error::InvalidReply(_))));
    assert!(matches!(server.reject(Reply::new(550, "bad\r\n250 forged")), Err(Error::InvalidReply(_))));
    assert!(matches!(server.reject(Reply::new(99, "x")), Err(Error::InvalidReply(_))));
    server.accept().unwrap();
    assert!(matches!(server.accept(), Err(Error::InvalidState(_))));
    assert_eq!(output(&mut server), "250 2.1.0 Sender OK\r\n");
}

// ---------------------------------------------------------------------------------------------
// Random sessions with arbitrary answers

mod random {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    pub enum Op {
        Receive(Vec<u8>),
        Accept,
        AcceptWith(u16),
        Reject(u16),
        Answer(u8),
        Tls(bool),
        Close,
        PollOut,
        PollEvent,
    }

    const WORDS: &[&[u8]] = &[
        b"EHLO x\r\n",
        b"HELO y\r\n",
        b"STARTTLS\r\n",
        b"MAIL FROM:<a@x>\r\n",
        b"MAIL FROM:<> SIZE=18446744073709551615\r\n",
        b"RCPT TO:<b@x>\r\n",
        b"DATA\r\n",
        b"body\n.\nmore\r\n.\r\n",
        b"BDAT 5\r\n",
        b"BDAT 0 LAST\r\n",
        b"BDAT 18446744073709551615 LAST\r\n",
        b"AUTH PLAIN\r\n",
        b"AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n",
        b"AUTH LOGIN\r\n",
        b"AUTH CRAM-MD5\r\n",
        b"AUTH DIGEST-MD5\r\n",
        b"AUTH SCRAM-SHA-256 biwsbj1hbGljZSxyPWFiYw==\r\n",
        b"AUTH SCRAM-SHA-256-PLUS cD10bHMtZXhwb3J0ZXIsLG49YSxyPWI=\r\n",
        b"AUTH EXTERNAL =\r\n",
        b"AUTH XOAUTH2 dXNlcj1hbGljZQFhdXRoPUJlYXJlciBndWVzcwEB\r\n",
        b"AUTH OAUTHBEARER bixhPWFsaWNlLAFhdXRoPUJlYXJlciB4AQE=\r\n",
        b"AUTH ANONYMOUS\r\n",
        b"*\r\n",
        b"=\r\n",
        b"YWxpY2U=\r\n",
        b"RSET\r\n",
        b"NOOP\r\n",
        b"QUIT\r\n",
        b"\r\n",
        b"\n",
        b"\r",
        b"\xff\xfe\0\r\n",
        b".\r\n",
    ];

    fn op() -> impl Strategy<Value = Op> {
        let word = proptest::sample::select(WORDS.to_vec()).prop_map(|w| Op::Receive(w.to_vec()));
        let garbage = proptest::collection::vec(any::<u8>(), 0..40).prop_map(Op::Receive);
        prop_oneof![
            6 => word,
            1 => garbage,
            2 => Just(Op::Accept),
            1 => (0u16..700).prop_map(Op::AcceptWith),
            1 => (0u16..700).prop_map(Op::Reject),
            2 => (0u8..10).prop_map(Op::Answer),
            1 => any::<bool>().prop_map(Op::Tls),
            1 => Just(Op::Close),
            2 => Just(Op::PollOut),
            2 => Just(Op::PollEvent),
        ]
    }

    fn answer(n: u8) -> CredentialAnswer {
        match n {
            0 => CredentialAnswer::Verified,
            1 => CredentialAnswer::Rejected,
            2 => CredentialAnswer::UnknownUser,
            3 => CredentialAnswer::TemporaryFailure,
            4 => CredentialAnswer::Password(Secret::from("wonderland")),
            5 => CredentialAnswer::DigestHa1(Secret::from(vec![1; 16])),
            6 => CredentialAnswer::DigestHa1(Secret::from(vec![1; 3])),
            7 => CredentialAnswer::Password(Secret::from(vec![0xff, 0xfe])),
            8 => CredentialAnswer::ScramKeys(
                mailwire::sasl::ScramKeys::derive(mailwire::sasl::ScramHash::Sha256, "pw", b"salt", 1).unwrap(),
            ),
            _ => CredentialAnswer::Password(Secret::from("")),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_sessions_with_arbitrary_answers_never_panic(ops in proptest::collection::vec(op(), 0..120)) {
            let mut config = ServerConfig::new("mx.example");
            config.require_tls_for_auth = false;
            config.mechanisms_before_tls = Mechanism::KNOWN.to_vec();
            config.mechanisms_after_tls = Mechanism::KNOWN.to_vec();
            config.max_message_size = Some(64);
            config.max_data_chunk = 7;
            config.max_buffered = 0;
            let mut server = new_server(config);
            let mut held = 0usize;
            for op in ops {
                let closed = server.is_closed();
                let queued_before = server.queued_output();
                let result = match op.clone() {
                    Op::Receive(bytes) => server.receive(&bytes),
                    Op::Accept => server.accept(),
                    Op::AcceptWith(code) => server.accept_with(Reply::new(code, "ok")),
                    Op::Reject(code) => server.reject(Reply::new(code, "no")),
                    Op::Answer(n) => server.answer_credentials(answer(n)),
                    Op::Tls(binding) => server.tls_established(TlsInfo {
                        channel_binding: binding.then(|| mailwire::sasl::ChannelBinding {
                            kind: mailwire::sasl::ChannelBindingType::TlsExporter,
                            data: vec![1; 32],
                        }),
                        peer_identity: binding.then(|| "alice".into()),
                        client_certificate: binding,
                    }),
                    Op::Close => server.close("bye"),
                    Op::PollOut => {
                        held = 0;
                        while server.poll_transmit().is_some() {}
                        Ok(())
                    }
                    Op::PollEvent => {
                        while server.poll_event().is_some() {}
                        Ok(())
                    }
                };
                // After close: input is ignored (the same however it was split), every
                // application call is a `Closed` error.
                if closed && matches!(op, Op::Receive(_)) {
                    prop_assert_eq!(result, Ok(()));
                    prop_assert_eq!(server.queued_output(), queued_before);
                } else if closed && !matches!(op, Op::PollOut | Op::PollEvent) {
                    prop_assert_eq!(result, Err(Error::Closed));
                }
                held = server.queued_output().max(held);
                prop_assert!(held < 256 * 1024);
            }
        }
    }
}
