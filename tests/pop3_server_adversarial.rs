//! Adversarial review of `pop3::Server`: memory a peer can make grow, message numbers at the
//! edges of u32, smuggling in XTND XMIT, STLS injection shapes, login limits across methods,
//! and a long random session with arbitrary application answers at arbitrary times.

use mailwire::pop3::server::{Error, Event, MessageInfo};
use mailwire::pop3::{Server, ServerConfig};
use mailwire::sasl::{AuthFailure, CredentialAnswer, CredentialRequest, FixedRandom, Mechanism, Secret};
use mailwire::tls::TlsInfo;

const MIB: usize = 1024 * 1024;
const TIMESTAMP: &str = "<1896.697170952@dbc.mtview.ca.us>";

fn config() -> ServerConfig {
    let mut config = ServerConfig::new("pop.example.org");
    config.allow_plaintext = true;
    config.xtnd_xmit = true;
    config.mechanisms.push(Mechanism::XOAuth2);
    config.mechanisms.push(Mechanism::CramMd5);
    config
}

fn new_server(config: ServerConfig) -> Server {
    let mut server = Server::with_apop_timestamp(config, FixedRandom::new(5), TIMESTAMP).unwrap();
    while server.poll_transmit().is_some() {}
    server
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

/// A server logged in as alice with three messages.
fn logged_in(config: ServerConfig) -> Server {
    let mut server = new_server(config);
    server.receive(b"USER alice\r\nPASS wonderland\r\n").unwrap();
    events(&mut server);
    server.answer_credentials(CredentialAnswer::Verified).unwrap();
    events(&mut server);
    server
        .maildrop_opened(vec![MessageInfo::new(10, "a"), MessageInfo::new(20, "b"), MessageInfo::new(30, "c")])
        .unwrap();
    output(&mut server);
    server
}

// ---------------------------------------------------------------------------------------------
// Numbers

/// Message numbers at and beyond the edges: never a panic, never another message.
#[test]
fn numbers_at_the_edges_of_u32() {
    let mut server = logged_in(config());
    let input = b"RETR 0\r\nLIST 0\r\nLIST 4294967295\r\nLIST 4294967296\r\nUIDL 99999999999999999999\r\n\
DELE 0\r\nDELE 4\r\nTOP 0 1\r\nTOP 4294967295 4294967295\r\nLIST -1\r\nLIST +1\r\nLIST 1 2\r\nLIST \r\n";
    server.receive(input).unwrap();
    assert!(events(&mut server).is_empty());
    let out = output(&mut server);
    assert_eq!(out.matches("-ERR").count(), 12, "{out}");
    assert!(out.ends_with("+OK 3 messages (60 octets)\r\n1 10\r\n2 20\r\n3 30\r\n.\r\n"), "{out}");
    server.receive(b"TOP 1 4294967295\r\n").unwrap();
    assert_eq!(events(&mut server), vec![Event::Retrieve { msg: 1, top_lines: Some(u32::MAX) }]);
    server.message_chunk(b"Subject: x\r\n\r\nline\r\n").unwrap();
    server.message_end().unwrap();
    assert_eq!(output(&mut server), "+OK\r\nSubject: x\r\n\r\nline\r\n.\r\n");
}

// ---------------------------------------------------------------------------------------------
// Memory

/// A client that pipelines commands and never reads the replies: the machine stops reading
/// at `max_output` queued bytes and fails once `max_buffered` bytes wait; it never holds 50 MB.
#[test]
fn memory_pipelined_flood_with_unread_replies_is_bounded() {
    for command in [&b"LIST\r\n"[..], b"NOOP\r\n", b"CAPA\r\n", b"bogus\r\n"] {
        let mut server = logged_in(config());
        let chunk = command.repeat(64 * 1024 / command.len());
        let mut sent = 0;
        let mut failed = None;
        while sent < 50 * MIB && !server.is_closed() {
            if let Err(error) = server.receive(&chunk) {
                failed = Some(error);
                break;
            }
            sent += chunk.len();
            assert!(events(&mut server).is_empty());
            assert!(server.queued_output() <= 257 * 1024);
        }
        // Bad commands end the session after `max_errors`; good ones fill the buffer.
        if command == b"bogus\r\n" {
            assert!(failed.is_none() && server.is_closed(), "{command:?}");
        } else {
            assert_eq!(failed, Some(Error::BufferFull), "{command:?}");
        }
        assert!(output(&mut server).len() <= 257 * 1024);
        assert!(sent <= 512 * 1024, "{command:?}: {sent}");
    }
}

/// A 50 MB XTND XMIT message: the pieces handed out stop at `max_xmit_size`, and the machine
/// answers `-ERR` at the terminator.
#[test]
fn memory_xmit_of_50_mb_is_capped() {
    let mut config = config();
    config.max_xmit_size = MIB;
    let mut server = logged_in(config);
    server.receive(b"XTND XMIT\r\n").unwrap();
    assert_eq!(output(&mut server), "+OK Start sending message\r\n");
    let chunk = b"To: bob@example.org\r\n".repeat(3000);
    let mut delivered = 0;
    let mut sent = 0;
    while sent < 50 * MIB {
        server.receive(&chunk).unwrap();
        sent += chunk.len();
        for event in events(&mut server) {
            if let Event::XmitData(data) = event {
                delivered += data.len();
            }
        }
    }
    assert!(delivered <= MIB, "{delivered}");
    server.receive(b".\r\nNOOP\r\n").unwrap();
    assert_eq!(output(&mut server), "-ERR Message too large\r\n+OK\r\n");
}

/// An endless line is not stored; a SASL exchange does not go on for ever.
#[test]
fn memory_endless_line_and_endless_sasl() {
    let mut server = new_server(config());
    let chunk = vec![b'A'; 64 * 1024];
    for _ in 0..(50 * MIB / chunk.len()) {
        server.receive(&chunk).unwrap();
        assert!(server.queued_output() == 0);
    }
    server.receive(b"\r\nCAPA\r\n").unwrap();
    assert!(output(&mut server).starts_with("-ERR Line too long\r\n+OK"));

    let mut config = config();
    config.max_auth_rounds = 4;
    let mut server = new_server(config);
    server.receive(b"AUTH LOGIN\r\n").unwrap();
    for _ in 0..100 {
        server.receive(b"YWxpY2U=\r\n").unwrap();
    }
    let seen = events(&mut server);
    assert!(seen.len() < 10, "{seen:?}");
}

// ---------------------------------------------------------------------------------------------
// Smuggling

/// Bare forms of the terminator never end an XTND XMIT message.
#[test]
fn smuggling_bare_forms_do_not_end_xmit() {
    for form in [&b"\n.\n"[..], b"\r.\r\n", b"\n.\r\n", b"\r\n.\n", b"\r\n.\r\r\n"] {
        let mut server = logged_in(config());
        let mut input = b"XTND XMIT\r\nTo: bob@example.org\r\n\r\nfirst".to_vec();
        input.extend_from_slice(form);
        input.extend_from_slice(b"DELE 1\r\nQUIT\r\n.\r\n");
        for chunk in input.chunks(3) {
            server.receive(chunk).unwrap();
        }
        let seen = events(&mut server);
        let data: Vec<u8> = seen
            .iter()
            .filter_map(|e| if let Event::XmitData(d) = e { Some(d.clone()) } else { None })
            .flatten()
            .collect();
        assert!(data.windows(6).any(|w| w == b"DELE 1"), "{form:?}");
        assert_eq!(seen.last(), Some(&Event::XmitEnd), "{form:?}: {seen:?}");
        assert!(!seen.iter().any(|e| matches!(e, Event::Commit { .. })), "{form:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// STLS

/// Every injection shape after STLS: same read, later read, partial line; nothing is read,
/// and USER given before STLS is forgotten.
#[test]
fn stls_injection_every_shape() {
    for tail in [&b"USER attacker\r\n"[..], b"U", b"\r", b"\n", b"PASS x\r\n", b"QUIT\r\n"] {
        for later in [false, true] {
            let mut config = config();
            config.allow_plaintext = false;
            let mut server = new_server(config);
            let mut input = b"STLS\r\n".to_vec();
            if later {
                server.receive(&input).unwrap();
                input.clear();
            }
            input.extend_from_slice(tail);
            server.receive(&input).unwrap();
            assert_eq!(events(&mut server), vec![Event::StartTls]);
            assert_eq!(output(&mut server), "+OK Begin TLS negotiation\r\n");
            server.tls_established(TlsInfo::default()).unwrap();
            server.receive(b"PASS secret\r\nNOOP\r\n").unwrap();
            assert_eq!(output(&mut server), "-ERR USER first\r\n-ERR Command not valid in this state\r\n");
            assert!(!server.is_closed());
        }
    }
    let mut server = new_server(config());
    server.receive(b"USER alice\r\nSTLS\r\n").unwrap();
    server.tls_established(TlsInfo::default()).unwrap();
    server.receive(b"PASS wonderland\r\nSTLS\r\n").unwrap();
    let out = output(&mut server);
    assert!(out.ends_with("-ERR USER first\r\n-ERR Command not permitted when TLS active\r\n"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// Logins

/// The failure limit holds across APOP, USER/PASS and SASL, and cancels of exchanges whose
/// credentials were already checked count too.
#[test]
fn login_failure_limit_across_methods() {
    let mut server = new_server(config());
    server.receive(b"APOP alice c4c9334bac560ecc979e58001b3e22fb\r\n").unwrap();
    events(&mut server);
    server.answer_credentials(CredentialAnswer::Password(Secret::from("wrong"))).unwrap();
    server.receive(b"USER alice\r\nPASS wrong\r\n").unwrap();
    events(&mut server);
    server.answer_credentials(CredentialAnswer::Rejected).unwrap();
    assert!(!server.is_closed());
    server.receive(b"AUTH PLAIN AGFsaWNlAHdyb25n\r\n").unwrap();
    events(&mut server);
    server.answer_credentials(CredentialAnswer::Rejected).unwrap();
    assert!(server.is_closed());
}

/// XOAUTH2: the token was checked and refused; `*` instead of the dummy response must not
/// make the attempt free.
#[test]
fn login_cancel_after_a_rejected_token_counts() {
    let mut config = config();
    config.max_auth_failures = 2;
    let mut server = new_server(config);
    for _ in 0..2 {
        server.receive(b"AUTH XOAUTH2 dXNlcj1hbGljZQFhdXRoPUJlYXJlciBndWVzcwEB\r\n").unwrap();
        let seen = events(&mut server);
        assert!(matches!(seen.last(), Some(Event::Credentials(CredentialRequest::VerifyToken { .. }))), "{seen:?}");
        server.answer_credentials(CredentialAnswer::Rejected).unwrap();
        server.receive(b"*\r\n").unwrap();
        let seen = events(&mut server);
        assert!(matches!(seen.as_slice(), [Event::AuthFailed { reason: AuthFailure::Credentials, .. }]), "{seen:?}");
    }
    assert!(server.is_closed());
    let out = output(&mut server);
    assert_eq!(out.matches("-ERR [AUTH] Authentication failed\r\n").count(), 2, "{out}");
}

/// Nothing the client sent is echoed in a reply.
#[test]
fn login_nothing_echoed() {
    let mut server = new_server(config());
    server.receive(b"USER root-secret\r\nPASS hunter2\r\n").unwrap();
    events(&mut server);
    server.answer_credentials(CredentialAnswer::Rejected).unwrap();
    server.receive(b"APOP mallory zzzz\r\nAUTH PLAIN bWFsbG9yeQBtYWxsb3J5AGh1bnRlcjI=\r\nAUTH BOGUS-MECH\r\n").unwrap();
    events(&mut server);
    let _ = server.answer_credentials(CredentialAnswer::Rejected);
    let out = output(&mut server);
    for secret in ["root", "hunter2", "mallory", "zzzz", "BOGUS"] {
        assert!(!out.contains(secret), "{secret}: {out}");
    }
}

/// AUTH, USER, APOP and STLS after login are refused.
#[test]
fn login_again_after_success_refused() {
    let mut server = logged_in(config());
    server.receive(b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\nUSER bob\r\nPASS secret\r\nAPOP bob c4c9334bac560ecc979e58001b3e22fb\r\nSTLS\r\n").unwrap();
    assert!(events(&mut server).is_empty());
    let out = output(&mut server);
    assert_eq!(out.matches("-ERR").count(), 5, "{out}");
}

/// Wrong kinds of answers, answers twice, calls out of turn: typed errors, state unchanged.
#[test]
fn caller_errors_are_typed_and_harmless() {
    let mut server = new_server(config());
    assert!(matches!(server.answer_credentials(CredentialAnswer::Verified), Err(Error::InvalidState(_))));
    assert!(matches!(server.maildrop_opened(Vec::new()), Err(Error::InvalidState(_))));
    assert!(matches!(server.message_chunk(b"x"), Err(Error::InvalidState(_))));
    assert!(matches!(server.commit_done(true), Err(Error::InvalidState(_))));
    assert!(matches!(server.xmit_accepted(), Err(Error::InvalidState(_))));
    server.receive(b"USER alice\r\nPASS wonderland\r\n").unwrap();
    events(&mut server);
    assert_eq!(server.answer_credentials(CredentialAnswer::Password(Secret::from("x"))), Err(Error::AnswerMismatch));
    server.answer_credentials(CredentialAnswer::Verified).unwrap();
    assert!(matches!(server.answer_credentials(CredentialAnswer::Verified), Err(Error::InvalidState(_))));
    assert_eq!(server.maildrop_opened(vec![MessageInfo::new(1, "bad uid")]), Err(Error::InvalidUid(1)));
    server.maildrop_opened(vec![MessageInfo::new(1, "ok")]).unwrap();
    assert!(server.is_authenticated());
}

/// An identity a SASL mechanism reports with an authzid other than the authcid was
/// authorized by the application first.
#[test]
fn login_authzid_is_authorized_by_the_application() {
    let mut server = new_server(config());
    server.receive(b"AUTH PLAIN Ym9iAGFsaWNlAHdvbmRlcmxhbmQ=\r\n").unwrap();
    events(&mut server);
    server.answer_credentials(CredentialAnswer::Verified).unwrap();
    assert_eq!(
        events(&mut server),
        vec![Event::Credentials(CredentialRequest::Authorize { authcid: "alice".into(), authzid: "bob".into() })]
    );
    server.answer_credentials(CredentialAnswer::Rejected).unwrap();
    let seen = events(&mut server);
    assert!(matches!(seen.as_slice(), [Event::AuthFailed { reason: AuthFailure::NotAuthorized, .. }]), "{seen:?}");
}

// ---------------------------------------------------------------------------------------------
// Random sessions with arbitrary answers

mod random {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Receive(Vec<u8>),
        Answer(u8),
        Maildrop(u8),
        Chunk(Vec<u8>),
        End,
        Failed,
        Commit(bool),
        Xmit(bool),
        Tls,
        PollOut,
        PollEvent,
    }

    const WORDS: &[&[u8]] = &[
        b"CAPA\r\n",
        b"STLS\r\n",
        b"USER alice\r\n",
        b"PASS wonderland\r\n",
        b"APOP alice c4c9334bac560ecc979e58001b3e22fb\r\n",
        b"AUTH\r\n",
        b"AUTH PLAIN\r\n",
        b"AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n",
        b"AUTH LOGIN\r\n",
        b"AUTH CRAM-MD5\r\n",
        b"AUTH SCRAM-SHA-256 biwsbj1hbGljZSxyPWFiYw==\r\n",
        b"AUTH XOAUTH2 dXNlcj1hbGljZQFhdXRoPUJlYXJlciBndWVzcwEB\r\n",
        b"AUTH EXTERNAL =\r\n",
        b"*\r\n",
        b"=\r\n",
        b"YWxpY2U=\r\n",
        b"STAT\r\n",
        b"LIST\r\n",
        b"LIST 1\r\n",
        b"LIST 0\r\n",
        b"LIST 4294967295\r\n",
        b"UIDL\r\n",
        b"RETR 1\r\n",
        b"RETR 0\r\n",
        b"TOP 2 0\r\n",
        b"TOP 1 4294967295\r\n",
        b"DELE 1\r\n",
        b"RSET\r\n",
        b"NOOP\r\n",
        b"XTND XMIT\r\n",
        b"body\n.\n\r\n.\r\n",
        b"QUIT\r\n",
        b"\r\n",
        b"\xff\0\r\n",
    ];

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => proptest::sample::select(WORDS.to_vec()).prop_map(|w| Op::Receive(w.to_vec())),
            1 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Op::Receive),
            2 => (0u8..10).prop_map(Op::Answer),
            1 => (0u8..5).prop_map(Op::Maildrop),
            1 => proptest::collection::vec(proptest::sample::select(b"a.\r\n".to_vec()), 0..20).prop_map(Op::Chunk),
            1 => Just(Op::End),
            1 => Just(Op::Failed),
            1 => any::<bool>().prop_map(Op::Commit),
            1 => any::<bool>().prop_map(Op::Xmit),
            1 => Just(Op::Tls),
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
            let mut config = config();
            config.mechanisms = Mechanism::KNOWN.to_vec();
            config.max_output = 300;
            config.max_buffered = 200;
            config.max_xmit_size = 20;
            let mut server = new_server(config);
            for op in ops {
                let closed = server.is_closed();
                let result = match op.clone() {
                    Op::Receive(bytes) => server.receive(&bytes),
                    Op::Answer(n) => server.answer_credentials(answer(n)),
                    Op::Maildrop(0) => server.maildrop_locked(),
                    Op::Maildrop(1) => server.maildrop_failed(),
                    Op::Maildrop(2) => server.maildrop_login_delay(),
                    Op::Maildrop(n) => server.maildrop_opened(
                        (0..n).map(|i| MessageInfo::new(u64::from(i) * 7, format!("u{i}"))).collect(),
                    ),
                    Op::Chunk(data) => server.message_chunk(&data),
                    Op::End => server.message_end(),
                    Op::Failed => server.message_failed(),
                    Op::Commit(ok) => server.commit_done(ok),
                    Op::Xmit(true) => server.xmit_accepted(),
                    Op::Xmit(false) => server.xmit_rejected("no"),
                    Op::Tls => server.tls_established(TlsInfo::default()),
                    Op::PollOut => {
                        while server.poll_transmit().is_some() {}
                        Ok(())
                    }
                    Op::PollEvent => {
                        while server.poll_event().is_some() {}
                        Ok(())
                    }
                };
                if closed && !matches!(op, Op::PollOut | Op::PollEvent | Op::Receive(_)) {
                    prop_assert_eq!(result, Err(Error::Closed));
                }
                prop_assert!(server.queued_output() < 64 * 1024);
            }
        }
    }
}

/// A client trickling bad commands (unknown, malformed, overlong) is cut off after
/// `max_errors`, in either state; 0 means no limit.
#[test]
fn bad_commands_end_the_session_after_max_errors() {
    for before_login in [true, false] {
        let mut config = config();
        config.max_errors = 3;
        let mut server = if before_login { new_server(config) } else { logged_in(config) };
        let long = format!("NOOP {}\r\n", "x".repeat(300));
        server.receive(b"FOO\r\nRETR x y z\r\n").unwrap();
        assert!(!server.is_closed());
        server.receive(long.as_bytes()).unwrap();
        let out = output(&mut server);
        assert!(out.ends_with("-ERR Line too long\r\n-ERR Too many errors\r\n"), "{out}");
        assert!(server.is_closed());
    }
    let mut config = config();
    config.max_errors = 0;
    let mut server = new_server(config);
    server.receive(&b"FOO\r\n".repeat(100)).unwrap();
    assert_eq!(output(&mut server).matches("-ERR Unknown command\r\n").count(), 100);
    assert!(!server.is_closed());
}

/// `max_auth_failures = 0` means no limit, as for SMTP.
#[test]
fn max_auth_failures_zero_is_no_limit() {
    let mut config = config();
    config.max_auth_failures = 0;
    let mut server = new_server(config);
    for _ in 0..10 {
        server.receive(b"USER alice\r\nPASS wrong\r\n").unwrap();
        events(&mut server);
        server.answer_credentials(CredentialAnswer::Rejected).unwrap();
    }
    assert_eq!(output(&mut server).matches("-ERR [AUTH]").count(), 10);
    assert!(!server.is_closed());
}
