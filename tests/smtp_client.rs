//! The SMTP client machine: STARTTLS cases (starttls-cases.md), field cases (field-cases.md),
//! the RFC 4954 sessions and the Dovecot and Exim transcripts replayed, split-input
//! invariance, hostile replies.

mod support;

use mailwire::sasl::{ChannelBinding, ChannelBindingType, Credentials, Mechanism, SaslError, SelectError};
use mailwire::smtp::client::{AuthRejection, Error, Event};
use mailwire::smtp::{Client, ClientConfig, EnhancedCode, Parameter, Reply, ReplyError, WriteError};
use mailwire::tls::{TlsInfo, TlsPolicy};
use mailwire::wire::DotDecoder;
use support::Session;

// ---------------------------------------------------------------------------------------------
// Helpers

fn config(policy: TlsPolicy) -> ClientConfig {
    let mut config = ClientConfig::new("client.example", "mail.example.net");
    config.tls = policy;
    config
}

/// A random source that yields `bytes` first (to reproduce a transcript's nonce), then zeros.
fn scripted_rng(bytes: Vec<u8>) -> Box<dyn mailwire::sasl::Random + Send> {
    let mut queue = std::collections::VecDeque::from(bytes);
    Box::new(move |dest: &mut [u8]| {
        for byte in dest {
            *byte = queue.pop_front().unwrap_or(0);
        }
    })
}

/// The bytes `sasl::nonce` turns into `nonce`.
fn nonce_bytes(nonce: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    nonce.bytes().map(|c| u8::try_from(ALPHABET.iter().position(|&a| a == c).unwrap()).unwrap()).collect()
}

fn new_client(config: ClientConfig) -> Client {
    Client::new(config, scripted_rng(Vec::new()))
}

fn events(client: &mut Client) -> Vec<Event> {
    std::iter::from_fn(|| client.poll_event()).collect()
}

fn output(client: &mut Client) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(bytes) = client.poll_transmit() {
        out.extend_from_slice(&bytes);
    }
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const GREETING: &[u8] = b"220 mail.example.net ESMTP\r\n";
const EHLO_TLS: &[u8] = b"250-mail.example.net\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n";
const EHLO_AFTER_TLS: &[u8] =
    b"250-mail.example.net\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 AUTH SCRAM-SHA-256 PLAIN LOGIN CRAM-MD5\r\n";

/// A client that has sent STARTTLS and waits for its reply.
fn at_starttls() -> Client {
    let mut client = new_client(config(TlsPolicy::Required));
    client.receive(GREETING).unwrap();
    client.receive(EHLO_TLS).unwrap();
    assert_eq!(text(&output(&mut client)), "EHLO client.example\r\nSTARTTLS\r\n");
    assert_eq!(events(&mut client), vec![Event::Greeting(Reply::new(220, "mail.example.net ESMTP"))]);
    client
}

/// A client ready after STARTTLS and the second EHLO.
fn ready_after_tls(info: TlsInfo, ehlo: &[u8]) -> Client {
    let mut client = at_starttls();
    client.receive(b"220 2.0.0 Ready\r\n").unwrap();
    assert_eq!(events(&mut client), vec![Event::StartTls]);
    client.tls_established(info).unwrap();
    assert_eq!(text(&output(&mut client)), "EHLO client.example\r\n");
    client.receive(ehlo).unwrap();
    assert!(matches!(events(&mut client).as_slice(), [Event::Ready(_)]));
    client
}

/// A plaintext session (TLS disabled) ready after EHLO.
fn ready_plain(ehlo: &[u8], allow_plaintext: bool) -> Client {
    let mut config = config(TlsPolicy::Disabled);
    config.allow_plaintext = allow_plaintext;
    let mut client = new_client(config);
    client.receive(GREETING).unwrap();
    client.receive(ehlo).unwrap();
    assert_eq!(text(&output(&mut client)), "EHLO client.example\r\n");
    assert!(matches!(events(&mut client).as_slice(), [Event::Greeting(_), Event::Ready(_)]));
    client
}

fn password() -> Credentials {
    Credentials::password("alice", "wonderland")
}

// ---------------------------------------------------------------------------------------------
// STARTTLS cases (shared/vectors/starttls-cases.md)

#[test]
fn starttls_c1_response_injection_in_one_chunk() {
    let mut client = at_starttls();
    let result = client.receive(b"220 2.0.0 Ready\r\n250-evil\r\n250 AUTH PLAIN\r\n");
    assert_eq!(result, Err(Error::StartTlsInjection));
    assert!(client.is_closed());
    assert_eq!(events(&mut client), vec![], "no upgrade action");
    assert!(output(&mut client).is_empty());
    assert_eq!(client.tls_established(TlsInfo::default()), Err(Error::Closed));
    assert!(client.capabilities().is_none());
    assert_eq!(client.receive(b"250 ok\r\n"), Err(Error::Closed));
}

#[test]
fn starttls_c2_response_injection_before_handshake() {
    let mut client = at_starttls();
    client.receive(b"220 Ready\r\n").unwrap();
    assert_eq!(events(&mut client), vec![Event::StartTls]);
    assert_eq!(client.receive(b"235 2.7.0 ok\r\n"), Err(Error::StartTlsInjection));
    assert!(client.is_closed());
    assert_eq!(events(&mut client), vec![]);
    assert!(output(&mut client).is_empty());
    assert_eq!(client.tls_established(TlsInfo::default()), Err(Error::Closed));
    assert!(!client.is_authenticated());
    // A single byte is enough.
    let mut client = at_starttls();
    client.receive(b"220 Ready\r\n").unwrap();
    assert_eq!(client.receive(b"2"), Err(Error::StartTlsInjection));
}

#[test]
fn starttls_c4_split_reply_is_legit() {
    let mut client = at_starttls();
    client.receive(b"22").unwrap();
    assert_eq!(events(&mut client), vec![]);
    client.receive(b"0 Ready\r\n").unwrap();
    assert_eq!(events(&mut client), vec![Event::StartTls]);
    client.tls_established(TlsInfo::default()).unwrap();
    assert_eq!(events(&mut client), vec![], "upgrade emitted exactly once");
    assert_eq!(text(&output(&mut client)), "EHLO client.example\r\n");
}

#[test]
fn starttls_c5_multiline_220_is_legit() {
    let mut client = at_starttls();
    client.receive(b"220-go\r\n220 ahead\r\n").unwrap();
    assert_eq!(events(&mut client), vec![Event::StartTls]);
    client.tls_established(TlsInfo::default()).unwrap();
    assert_eq!(text(&output(&mut client)), "EHLO client.example\r\n");
    // Bytes after it are C1.
    let mut client = at_starttls();
    assert_eq!(client.receive(b"220-go\r\n220 ahead\r\nX"), Err(Error::StartTlsInjection));
    assert_eq!(events(&mut client), vec![]);
}

#[test]
fn starttls_c6_stripped_capability_with_tls_required() {
    let mut client = new_client(config(TlsPolicy::Required));
    client.receive(GREETING).unwrap();
    let result = client.receive(b"250-mail.example\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n");
    assert_eq!(result, Err(Error::StartTlsNotOffered));
    assert!(client.is_closed());
    assert_eq!(text(&output(&mut client)), "EHLO client.example\r\nQUIT\r\n", "nothing but QUIT");
    assert_eq!(client.authenticate(&password()), Err(Error::Closed));
    assert_eq!(client.send_mail("a@b.example", &["c@d.example"]), Err(Error::Closed));
    assert!(output(&mut client).is_empty());
    // A HELO-only server has no STARTTLS either.
    let mut client = new_client(config(TlsPolicy::Required));
    client.receive(GREETING).unwrap();
    client.receive(b"502 5.5.1 EHLO not implemented\r\n").unwrap();
    assert_eq!(client.receive(b"250 mail.example\r\n"), Err(Error::StartTlsNotOffered));
    assert_eq!(text(&output(&mut client)), "EHLO client.example\r\nHELO client.example\r\nQUIT\r\n");
}

#[test]
fn starttls_c7_refusal_with_tls_required() {
    for refusal in [&b"454 4.7.0 TLS not available\r\n"[..], b"502 5.5.1 no\r\n", b"500 what\r\n", b"250 OK\r\n"] {
        let mut client = at_starttls();
        let result = client.receive(refusal);
        assert!(matches!(result, Err(Error::StartTlsRefused(_))), "{}: {result:?}", text(refusal));
        assert!(client.is_closed());
        assert_eq!(text(&output(&mut client)), "QUIT\r\n", "{}", text(refusal));
        assert_eq!(events(&mut client), vec![]);
        assert_eq!(client.authenticate(&password()), Err(Error::Closed));
        assert!(output(&mut client).is_empty());
    }
}

#[test]
fn starttls_c9_stale_capabilities_are_not_used() {
    let mut client = new_client(config(TlsPolicy::Required));
    client.receive(GREETING).unwrap();
    client.receive(b"250-mail.example\r\n250-AUTH PLAIN LOGIN XOAUTH2\r\n250 STARTTLS\r\n").unwrap();
    client.receive(b"220 go\r\n").unwrap();
    client.tls_established(TlsInfo::default()).unwrap();
    assert!(client.capabilities().is_none(), "pre-TLS capabilities forgotten");
    assert!(matches!(client.authenticate(&password()), Err(Error::InvalidState(_))));
    assert!(matches!(client.send_mail("a@b.example", &["c@d.example"]), Err(Error::InvalidState(_))));
    assert_eq!(text(&output(&mut client)), "EHLO client.example\r\nSTARTTLS\r\nEHLO client.example\r\n");
    client.receive(b"250-mail.example\r\n250 AUTH SCRAM-SHA-256\r\n").unwrap();
    assert_eq!(client.capabilities().unwrap().auth, vec![Mechanism::ScramSha256]);
    assert_eq!(client.authenticate(&password()), Ok(Mechanism::ScramSha256));
    assert!(text(&output(&mut client)).starts_with("AUTH SCRAM-SHA-256 "));
}

#[test]
fn starttls_c10_capability_tampering_before_tls() {
    let post = b"250-mail\r\n250 AUTH SCRAM-SHA-256-PLUS SCRAM-SHA-256\r\n";
    let mut client = ready_after_tls(TlsInfo::default(), post);
    assert_eq!(client.authenticate(&password()), Ok(Mechanism::ScramSha256));
    // With channel binding the -PLUS variant wins; the injected PLAIN is never offered.
    let binding = ChannelBinding { kind: ChannelBindingType::TlsExporter, data: vec![7; 32] };
    let info = TlsInfo { channel_binding: Some(binding), ..TlsInfo::default() };
    let mut client = ready_after_tls(info, post);
    assert_eq!(client.capabilities().unwrap().auth, vec![Mechanism::ScramSha256Plus, Mechanism::ScramSha256]);
    assert_eq!(client.authenticate(&password()), Ok(Mechanism::ScramSha256Plus));
    // Forcing the injected mechanism fails: it is not in the post-TLS list.
    let mut config = config(TlsPolicy::Required);
    config.mechanism = Some(Mechanism::Plain);
    let mut client = new_client(config);
    client.receive(GREETING).unwrap();
    client.receive(b"250-mail\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n").unwrap();
    client.receive(b"220 go\r\n").unwrap();
    client.tls_established(TlsInfo::default()).unwrap();
    client.receive(post).unwrap();
    output(&mut client);
    assert_eq!(client.authenticate(&password()), Err(Error::Select(SelectError::NotOffered(Mechanism::Plain))));
    assert!(output(&mut client).is_empty());
}

#[test]
fn starttls_c11_starttls_readvertised_after_tls_is_ignored() {
    let mut client = ready_after_tls(TlsInfo::default(), b"250-mail\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n");
    assert!(client.is_tls());
    assert!(output(&mut client).is_empty(), "no second STARTTLS");
    client.quit().unwrap();
    assert_eq!(text(&output(&mut client)), "QUIT\r\n");
}

#[test]
fn starttls_c12_no_security_layer_and_data_after_235_is_not_capabilities() {
    // mailwire never negotiates a SASL security layer (DIGEST-MD5 uses qop=auth), so RFC 4954's
    // re-EHLO rule never applies; bytes after 235 are never read as capabilities.
    let mut client = ready_after_tls(TlsInfo::default(), b"250-mail\r\n250 AUTH PLAIN\r\n");
    let before = client.capabilities().cloned();
    assert_eq!(client.authenticate(&password()), Ok(Mechanism::Plain));
    output(&mut client);
    client.receive(b"235 2.7.0 ok\r\n250-evil\r\n250 AUTH PLAIN\r\n").unwrap();
    let got = events(&mut client);
    assert!(matches!(got.as_slice(), [Event::Authenticated { .. }]), "{got:?}");
    assert_eq!(client.capabilities().cloned(), before);
    assert!(output(&mut client).is_empty(), "no reaction to the extra bytes");
}

#[test]
fn starttls_c13_nothing_pipelined_after_starttls() {
    let mut client = new_client(config(TlsPolicy::Required));
    client.receive(GREETING).unwrap();
    client.receive(EHLO_TLS).unwrap();
    assert_eq!(text(&output(&mut client)), "EHLO client.example\r\nSTARTTLS\r\n");
    assert!(matches!(client.send_mail("a@b.example", &["c@d.example"]), Err(Error::InvalidState(_))));
    assert!(matches!(client.authenticate(&password()), Err(Error::InvalidState(_))));
    assert!(matches!(client.quit(), Err(Error::InvalidState(_))));
    assert!(matches!(client.rset(), Err(Error::InvalidState(_))));
    assert!(output(&mut client).is_empty());
    client.receive(b"220 go\r\n").unwrap();
    assert!(matches!(client.quit(), Err(Error::InvalidState(_))));
    assert!(output(&mut client).is_empty(), "nothing before the handshake");
}

#[test]
fn starttls_c14_plaintext_credentials_guard() {
    let mut config = config(TlsPolicy::Opportunistic);
    config.mechanism = None;
    let mut client = new_client(config.clone());
    client.receive(GREETING).unwrap();
    client.receive(b"250-mail\r\n250 AUTH PLAIN LOGIN\r\n").unwrap();
    assert!(matches!(events(&mut client).as_slice(), [Event::Greeting(_), Event::Ready(_)]));
    output(&mut client);
    assert_eq!(client.authenticate(&password()), Err(Error::Select(SelectError::NoAcceptable)));
    assert!(output(&mut client).is_empty());
    config.mechanism = Some(Mechanism::Plain);
    let mut client = new_client(config.clone());
    client.receive(GREETING).unwrap();
    client.receive(b"250-mail\r\n250 AUTH PLAIN LOGIN\r\n").unwrap();
    output(&mut client);
    assert_eq!(client.authenticate(&password()), Err(Error::Select(SelectError::InsecureMechanism(Mechanism::Plain))));
    assert!(output(&mut client).is_empty());
    // Only an explicit permission sends PLAIN in the clear.
    config.allow_plaintext = true;
    let mut client = new_client(config);
    client.receive(GREETING).unwrap();
    client.receive(b"250-mail\r\n250 AUTH PLAIN LOGIN\r\n").unwrap();
    output(&mut client);
    assert_eq!(client.authenticate(&password()), Ok(Mechanism::Plain));
    assert_eq!(text(&output(&mut client)), "AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n");
}

// ---------------------------------------------------------------------------------------------
// Field cases (shared/vectors/field-cases.md)

#[test]
fn field_b01_bare_334_is_an_empty_challenge() {
    for challenge in [&b"334\r\n"[..], b"334 \r\n"] {
        let mut config = config(TlsPolicy::Disabled);
        config.allow_plaintext = true;
        config.send_initial_response = false;
        let mut client = new_client(config);
        client.receive(GREETING).unwrap();
        client.receive(b"250-mail\r\n250 AUTH PLAIN\r\n").unwrap();
        output(&mut client);
        client.authenticate(&password()).unwrap();
        assert_eq!(text(&output(&mut client)), "AUTH PLAIN\r\n");
        client.receive(challenge).unwrap();
        assert_eq!(text(&output(&mut client)), "AGFsaWNlAHdvbmRlcmxhbmQ=\r\n");
        client.receive(b"235 2.7.0 ok\r\n").unwrap();
        assert!(events(&mut client).contains(&Event::Authenticated { mechanism: Mechanism::Plain }));
    }
    // EXTERNAL deferred the same way.
    let info = TlsInfo { client_certificate: true, ..TlsInfo::default() };
    let mut client = ready_after_tls(info, b"250-mail\r\n250 AUTH EXTERNAL\r\n");
    client.authenticate(&Credentials::default()).unwrap();
    assert_eq!(text(&output(&mut client)), "AUTH EXTERNAL =\r\n");
}

#[test]
fn field_b01_bare_334_to_xoauth2() {
    let mut config = config(TlsPolicy::Required);
    config.send_initial_response = false;
    let mut client = new_client(config);
    client.receive(GREETING).unwrap();
    client.receive(EHLO_TLS).unwrap();
    client.receive(b"220 go\r\n").unwrap();
    client.tls_established(TlsInfo::default()).unwrap();
    client.receive(b"250-mail\r\n250 AUTH XOAUTH2\r\n").unwrap();
    output(&mut client);
    let token = Credentials::token("user@example.org", "ya29.TOKEN");
    assert_eq!(client.authenticate(&token), Ok(Mechanism::XOAuth2));
    assert_eq!(text(&output(&mut client)), "AUTH XOAUTH2\r\n");
    client.receive(b"334\r\n").unwrap();
    // field-cases.md B20: the same message Gmail receives over POP3.
    assert_eq!(text(&output(&mut client)), "dXNlcj11c2VyQGV4YW1wbGUub3JnAWF1dGg9QmVhcmVyIHlhMjkuVE9LRU4BAQ==\r\n");
    client.receive(b"235 2.7.0 Accepted\r\n").unwrap();
    assert!(events(&mut client).contains(&Event::Authenticated { mechanism: Mechanism::XOAuth2 }));
}

/// rfc-vectors.md §12: Google's SMTP XOAUTH2 transcript, verbatim (error challenge with its
/// trailing LF, empty answer, two-line 535), and the `235 2.7.0 Accepted` success.
#[test]
fn rfc_xoauth2_google_smtp_transcript() {
    const TOKEN: &str = "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg";
    const IR: &str = "AUTH XOAUTH2 dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==\r\n";
    let token = Credentials::token("someuser@example.com", TOKEN);
    let mut client = auth_client(b"250-mail\r\n250 AUTH XOAUTH2\r\n", Some(Mechanism::XOAuth2));
    client.authenticate(&token).unwrap();
    assert_eq!(text(&output(&mut client)), IR);
    client.receive(b"235 2.7.0 Accepted\r\n").unwrap();
    assert!(client.is_authenticated());

    let mut client = auth_client(b"250-mail\r\n250 AUTH XOAUTH2\r\n", Some(Mechanism::XOAuth2));
    client.authenticate(&token).unwrap();
    assert_eq!(text(&output(&mut client)), IR);
    client
        .receive(b"334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIG1hYyIsInNjb3BlIjoiaHR0cHM6Ly9tYWlsLmdvb2dsZS5jb20vIn0K\r\n")
        .unwrap();
    assert_eq!(text(&output(&mut client)), "\r\n");
    assert_eq!(events(&mut client), vec![]);
    client
        .receive(
            b"535-5.7.1 Username and Password not accepted. Learn more at\r\n\
              535 5.7.1 https://support.google.com/mail/?p=BadCredentials hx9sm5317360pbc.68\r\n",
        )
        .unwrap();
    let got = events(&mut client);
    let [Event::AuthFailed { reason: AuthRejection::InvalidCredentials, server_error: Some(error), .. }] =
        got.as_slice()
    else {
        panic!("{got:?}")
    };
    assert!(error.contains(r#""status":"401""#) && error.contains("bearer mac"), "{error}");
    assert!(!client.is_authenticated());
    assert!(output(&mut client).is_empty());
}

/// rfc-vectors.md §2 rules (RFC 4954 §4): with PIPELINING, AUTH ends a group; nothing is
/// sent after it until its outcome, and a mail transaction asked for meanwhile is refused or
/// held, never written behind the AUTH line.
#[test]
fn rfc4954_auth_is_last_in_a_pipelined_group() {
    let mut client = auth_client(b"250-mail\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n", Some(Mechanism::Plain));
    client.authenticate(&password()).unwrap();
    assert_eq!(text(&output(&mut client)), "AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n");
    let early = client.send_mail("a@example.org", &["b@example.org"]);
    assert!(output(&mut client).is_empty(), "nothing behind AUTH before its reply");
    client.receive(b"235 2.7.0 Authentication successful\r\n").unwrap();
    assert!(client.is_authenticated());
    let after = text(&output(&mut client));
    match early {
        // Held: MAIL goes out only after the 235.
        Ok(()) => assert!(after.starts_with("MAIL FROM:<a@example.org>\r\n"), "{after}"),
        // Refused: nothing was queued.
        Err(_) => assert_eq!(after, ""),
    }
}

#[test]
fn oauth_error_challenge_answered_before_the_final_code() {
    // peer-transcripts.md §2: Dovecot's XOAUTH2 and OAUTHBEARER failures.
    for (mechanism, acknowledgement, json) in [
        ("XOAUTH2", "", r#"{"status":"401","schemes":"bearer","scope":"mail"}"#),
        ("OAUTHBEARER", "AQ==", r#"{"status":"invalid_token"}"#),
    ] {
        let mut client =
            auth_client(format!("250-mail\r\n250 AUTH {mechanism}\r\n").as_bytes(), Some(Mechanism::parse(mechanism)));
        client.authenticate(&Credentials::token("alice", "wrong-secret")).unwrap();
        assert!(text(&output(&mut client)).starts_with(&format!("AUTH {mechanism} ")));
        client.receive(format!("334 {}\r\n", mailwire::wire::encode_payload(json.as_bytes())).as_bytes()).unwrap();
        assert_eq!(text(&output(&mut client)), format!("{acknowledgement}\r\n"));
        assert_eq!(events(&mut client), vec![], "no outcome before the final code");
        client.receive(b"535 5.7.8 Authentication failed.\r\n").unwrap();
        let got = events(&mut client);
        let [
            Event::AuthFailed {
                reason: AuthRejection::InvalidCredentials,
                server_error: Some(error),
                cancelled: None,
                ..
            },
        ] = got.as_slice()
        else {
            panic!("{got:?}")
        };
        assert!(error.contains("status"), "{error}");
    }
}

#[test]
fn field_b02_login_ignores_challenge_text() {
    for (first, second) in [("VXNlciBOYW1lAA==", "UGFzc3dvcmQ6"), ("dXNlcm5hbWU6", "cGFzc3dvcmQ6")] {
        let mut client = ready_after_tls(TlsInfo::default(), b"250-mail\r\n250 AUTH LOGIN\r\n");
        client.authenticate(&password()).unwrap();
        assert_eq!(text(&output(&mut client)), "AUTH LOGIN\r\n");
        client.receive(format!("334 {first}\r\n").as_bytes()).unwrap();
        assert_eq!(text(&output(&mut client)), "YWxpY2U=\r\n", "user name first, never `*`");
        client.receive(format!("334 {second}\r\n").as_bytes()).unwrap();
        assert_eq!(text(&output(&mut client)), "d29uZGVybGFuZA==\r\n");
        client.receive(b"235 2.7.0 ok\r\n").unwrap();
        assert!(events(&mut client).contains(&Event::Authenticated { mechanism: Mechanism::Login }));
    }
}

#[test]
fn field_b04_lower_case_keywords() {
    let mut client = new_client(config(TlsPolicy::Required));
    client.receive(GREETING).unwrap();
    client.receive(b"250-mail.example.net\r\n250-starttls\r\n250 auth plain login\r\n").unwrap();
    assert_eq!(text(&output(&mut client)), "EHLO client.example\r\nSTARTTLS\r\n");
    client.receive(b"220 go\r\n").unwrap();
    client.tls_established(TlsInfo::default()).unwrap();
    client.receive(b"250-mail.example.net\r\n250 auth plain login\r\n").unwrap();
    assert_eq!(client.capabilities().unwrap().auth, vec![Mechanism::Plain, Mechanism::Login]);
    assert_eq!(client.authenticate(&password()), Ok(Mechanism::Plain));
}

#[test]
fn field_b09_partial_line_after_220_is_injection() {
    let mut client = at_starttls();
    assert_eq!(client.receive(b"220 2.0.0 Ready\r\n250-AUTH PLAIN"), Err(Error::StartTlsInjection));
    assert_eq!(events(&mut client), vec![], "no upgrade");
    assert!(client.is_closed());
    assert!(output(&mut client).is_empty());
    // Split: the fragment arrives after the 220, before the handshake.
    let mut client = at_starttls();
    client.receive(b"220 2.0.0 Ready\r\n").unwrap();
    assert_eq!(client.receive(b"250-AUTH PLAIN"), Err(Error::StartTlsInjection));
    // The class: any leftover, even one byte or a lone line ending, in the same read or the next.
    for tail in [&b"2"[..], b"\r", b"\n", b"250", b"250-STARTTLS\r\n250 AUTH PLAIN\r\n", b"\x16\x03\x01"] {
        for same_read in [true, false] {
            let mut client = at_starttls();
            let result = if same_read {
                client.receive(&[&b"220 2.0.0 Ready\r\n"[..], tail].concat())
            } else {
                client.receive(b"220 2.0.0 Ready\r\n").unwrap();
                events(&mut client);
                client.receive(tail)
            };
            assert_eq!(result, Err(Error::StartTlsInjection), "{tail:?}");
            assert!(client.is_closed());
            assert!(!events(&mut client).contains(&Event::StartTls) || !same_read);
            assert_eq!(client.tls_established(TlsInfo::default()), Err(Error::Closed));
            assert!(output(&mut client).is_empty());
        }
    }
}

#[test]
fn field_b11_refused_starttls_never_sends_credentials() {
    let ehlo = b"250-mail.example.net\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n";
    let mut client = new_client(config(TlsPolicy::Required));
    client.receive(GREETING).unwrap();
    client.receive(ehlo).unwrap();
    let result = client.receive(b"454 4.7.0 TLS not available\r\n");
    assert_eq!(
        result,
        Err(Error::StartTlsRefused(Reply::enhanced(454, EnhancedCode::new(4, 7, 0), "TLS not available")))
    );
    assert_eq!(text(&output(&mut client)), "EHLO client.example\r\nSTARTTLS\r\nQUIT\r\n");
    assert_eq!(client.authenticate(&password()), Err(Error::Closed));
    // Opportunistic: the session goes on in plaintext, and PLAIN stays refused.
    let mut client = new_client(config(TlsPolicy::Opportunistic));
    client.receive(GREETING).unwrap();
    client.receive(ehlo).unwrap();
    client.receive(b"454 4.7.0 TLS not available\r\n").unwrap();
    assert!(events(&mut client).iter().any(|e| matches!(e, Event::Ready(_))));
    output(&mut client);
    assert!(client.authenticate(&password()).is_err());
    assert!(output(&mut client).is_empty(), "no credential in the clear");
    // The class: every non-220 answer, under both policies, is a refusal, never an upgrade,
    // and no credential follows in the clear.
    for refusal in [&b"502 5.5.1 no\r\n"[..], b"500 what\r\n", b"501 5.5.4 syntax\r\n", b"250 OK\r\n", b"554 no\r\n"] {
        for policy in [TlsPolicy::Required, TlsPolicy::Opportunistic] {
            let mut client = new_client(config(policy));
            client.receive(GREETING).unwrap();
            client.receive(ehlo).unwrap();
            output(&mut client);
            let _ = client.receive(refusal);
            assert!(!events(&mut client).contains(&Event::StartTls), "{}", text(refusal));
            assert!(client.tls_established(TlsInfo::default()).is_err(), "{}", text(refusal));
            let _ = client.authenticate(&password());
            let out = text(&output(&mut client));
            assert!(!out.contains("AUTH"), "{}: {out}", text(refusal));
        }
    }
}

#[test]
fn field_b14_multiline_enhanced_rejection_kept_line_by_line() {
    let mut client = ready_after_tls(TlsInfo::default(), EHLO_AFTER_TLS);
    client.send_mail("alice@example.org", &["bob@example.net", "carol@example.net"]).unwrap();
    assert_eq!(
        text(&output(&mut client)),
        "MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.net>\r\nRCPT TO:<carol@example.net>\r\nDATA\r\n"
    );
    client
        .receive(
            b"250 2.1.0 OK\r\n550-5.7.25 [192.0.2.1] The IP address sending this message does not have a\r\n\
550-5.7.25 PTR record setup, or the corresponding forward DNS entry does not\r\n550 5.7.25 match the sending IP.\r\n\
250 2.1.5 OK\r\n354 go\r\n",
        )
        .unwrap();
    let got = events(&mut client);
    let Event::RecipientRejected { index: 0, reply } = &got[1] else { panic!("{got:?}") };
    assert_eq!(reply.code, 550);
    assert_eq!(reply.lines.len(), 3);
    assert!(reply.lines.iter().all(|l| l.enhanced == Some(EnhancedCode::new(5, 7, 25))));
    assert_eq!(reply.lines[1].text, "PTR record setup, or the corresponding forward DNS entry does not");
    assert!(matches!(got[2], Event::RecipientAccepted { index: 1, .. }));
    assert_eq!(got[3], Event::DataReady);
    client.send_body_chunk(b"Subject: x\r\n\r\nhi\r\n").unwrap();
    client.finish_body().unwrap();
    client.receive(b"250 message processed\r\n").unwrap();
    assert_eq!(events(&mut client), vec![Event::MessageAccepted(Reply::new(250, "message processed"))]);
}

#[test]
fn field_b16_injection_in_arguments_sends_nothing() {
    let mut client = ready_after_tls(TlsInfo::default(), EHLO_AFTER_TLS);
    let result = client.send_mail("user@example.org>\r\nRCPT TO:<other@example.net", &["bob@example.net"]);
    assert_eq!(result, Err(Error::Command(WriteError::Injection)));
    let result = client.send_mail("a@example.org", &["bob@example.net\r\nRSET"]);
    assert_eq!(result, Err(Error::Command(WriteError::Injection)));
    let option = [Parameter::Other { keyword: "X-OPT\nRSET", value: None }];
    let result = client.send_mail_with("a@example.org", &option, &["bob@example.net"], &[]);
    assert_eq!(result, Err(Error::Command(WriteError::Injection)));
    let option = [Parameter::Other { keyword: "X-OPT", value: Some("a\0b") }];
    let result = client.send_mail_with("a@example.org", &[], &["bob@example.net"], &option);
    assert_eq!(result, Err(Error::Command(WriteError::Injection)));
    assert!(output(&mut client).is_empty());
    // The session is still usable.
    client.send_mail("a@example.org", &["bob@example.net"]).unwrap();
    assert!(text(&output(&mut client)).starts_with("MAIL FROM:<a@example.org>\r\n"));
}

// ---------------------------------------------------------------------------------------------
// AUTH framing

fn auth_client(ehlo: &[u8], mechanism: Option<Mechanism>) -> Client {
    let mut config = config(TlsPolicy::Required);
    config.mechanism = mechanism;
    let mut client = new_client(config);
    client.receive(GREETING).unwrap();
    client.receive(EHLO_TLS).unwrap();
    client.receive(b"220 go\r\n").unwrap();
    client.tls_established(TlsInfo::default()).unwrap();
    client.receive(ehlo).unwrap();
    output(&mut client);
    events(&mut client);
    client
}

#[test]
fn rfc4954_auth_reply_codes_are_typed_outcomes() {
    for (code, reason) in [
        (535, AuthRejection::InvalidCredentials),
        (534, AuthRejection::MechanismTooWeak),
        (538, AuthRejection::EncryptionRequired),
        (454, AuthRejection::TemporaryFailure),
        (432, AuthRejection::PasswordTransitionNeeded),
        (504, AuthRejection::UnsupportedMechanism),
        (530, AuthRejection::StartTlsRequired),
        (501, AuthRejection::Other),
        (500, AuthRejection::Other),
    ] {
        let mut client = auth_client(b"250-mail\r\n250 AUTH PLAIN\r\n", None);
        client.authenticate(&password()).unwrap();
        output(&mut client);
        client.receive(format!("{code} x\r\n").as_bytes()).unwrap();
        let got = events(&mut client);
        let [Event::AuthFailed { reason: got_reason, reply, cancelled: None, .. }] = got.as_slice() else {
            panic!("{got:?}")
        };
        assert_eq!((*got_reason, reply.code), (reason, code));
        assert!(!client.is_authenticated());
        // The session goes on: another try is possible.
        client.authenticate(&password()).unwrap();
        assert!(text(&output(&mut client)).starts_with("AUTH PLAIN "));
    }
}

#[test]
fn auth_undecodable_challenge_is_cancelled() {
    let mut client = auth_client(b"250-mail\r\n250 AUTH CRAM-MD5\r\n", None);
    client.authenticate(&password()).unwrap();
    assert_eq!(text(&output(&mut client)), "AUTH CRAM-MD5\r\n");
    client.receive(b"334 not base64!\r\n").unwrap();
    assert_eq!(text(&output(&mut client)), "*\r\n");
    client.receive(b"501 5.7.0 cancelled\r\n").unwrap();
    let got = events(&mut client);
    let [
        Event::AuthFailed {
            reason: AuthRejection::Cancelled, cancelled: Some(SaslError::MalformedChallenge(_)), ..
        },
    ] = got.as_slice()
    else {
        panic!("{got:?}")
    };
    // A 235 after our `*` is not a success.
    let mut client = auth_client(b"250-mail\r\n250 AUTH CRAM-MD5\r\n", None);
    client.authenticate(&password()).unwrap();
    client.receive(b"334 =\r\n").unwrap();
    output(&mut client);
    assert!(matches!(client.receive(b"235 ok\r\n"), Err(Error::ServerNotVerified(_))));
    assert!(client.is_closed());
}

#[test]
fn auth_rounds_are_bounded() {
    let mut config = config(TlsPolicy::Disabled);
    config.max_auth_rounds = 3;
    config.allow_plaintext = true;
    config.send_initial_response = false;
    let mut client = new_client(config);
    client.receive(GREETING).unwrap();
    client.receive(b"250-mail\r\n250 AUTH LOGIN\r\n").unwrap();
    output(&mut client);
    client.authenticate(&password()).unwrap();
    output(&mut client);
    client.receive(b"334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n").unwrap();
    assert_eq!(text(&output(&mut client)), "YWxpY2U=\r\nd29uZGVybGFuZA==\r\n");
    // LOGIN has nothing more to say: the third challenge is cancelled.
    client.receive(b"334 UGFzc3dvcmQ6\r\n").unwrap();
    assert_eq!(text(&output(&mut client)), "*\r\n");
    // A server that ignores the cancel ends the session.
    assert!(matches!(client.receive(b"334 UGFzc3dvcmQ6\r\n"), Err(Error::UnexpectedReply(_))));
    assert!(client.is_closed());
}

#[test]
fn auth_initial_response_too_long_goes_after_empty_challenge() {
    let mut client = auth_client(b"250-mail\r\n250 AUTH PLAIN\r\n", None);
    let long = "u".repeat(250);
    let credentials = Credentials::password(long.clone(), "p".repeat(200).as_str());
    client.authenticate(&credentials).unwrap();
    assert_eq!(text(&output(&mut client)), "AUTH PLAIN\r\n");
    client.receive(b"334 \r\n").unwrap();
    let line = output(&mut client);
    assert!(line.len() > 512);
    let decoded = mailwire::wire::decode_base64(&line[..line.len() - 2]).unwrap();
    assert_eq!(&decoded[..], format!("\0{long}\0{}", "p".repeat(200)).as_bytes());
    // Right at the limit the response stays on the line: "AUTH PLAIN " + 500 + CRLF = 513 > 512.
    let mut client = auth_client(b"250-mail\r\n250 AUTH PLAIN\r\n", None);
    let credentials = Credentials::password("u".repeat(185), "p".repeat(186).as_str()); // 373 octets → 500 base64
    client.authenticate(&credentials).unwrap();
    assert_eq!(text(&output(&mut client)), "AUTH PLAIN\r\n");
    let mut client = auth_client(b"250-mail\r\n250 AUTH PLAIN\r\n", None);
    let credentials = Credentials::password("u".repeat(184), "p".repeat(184).as_str()); // 370 → 496: 509 octets
    client.authenticate(&credentials).unwrap();
    let line = output(&mut client);
    assert_eq!(line.len(), 509);
    assert!(line.starts_with(b"AUTH PLAIN "));
}

#[test]
fn auth_cancel_by_the_application() {
    let mut client = auth_client(b"250-mail\r\n250 AUTH LOGIN\r\n", None);
    client.authenticate(&password()).unwrap();
    client.cancel_auth().unwrap();
    output(&mut client);
    client.receive(b"334 VXNlcm5hbWU6\r\n").unwrap();
    assert_eq!(text(&output(&mut client)), "*\r\n", "the user name is never sent");
    client.receive(b"501 5.7.0 cancelled\r\n").unwrap();
    let got = events(&mut client);
    assert!(matches!(got.as_slice(), [Event::AuthFailed { reason: AuthRejection::Cancelled, .. }]), "{got:?}");
    assert!(matches!(client.cancel_auth(), Err(Error::InvalidState(_))));
}

#[test]
fn auth_scram_unverified_server_is_an_error() {
    let mut config = config(TlsPolicy::Disabled);
    config.mechanism = Some(Mechanism::ScramSha256);
    let mut client = Client::new(config, scripted_rng(nonce_bytes("rOprNGfwEbeRWgbNEkqO")));
    client.receive(GREETING).unwrap();
    client.receive(b"250-mail\r\n250 AUTH SCRAM-SHA-256\r\n").unwrap();
    output(&mut client);
    client.authenticate(&Credentials::password("user", "pencil")).unwrap();
    // RFC 7677 §3: the client's first message.
    let first = output(&mut client);
    let first = mailwire::wire::decode_base64(
        first.strip_prefix(b"AUTH SCRAM-SHA-256 ").unwrap().strip_suffix(b"\r\n").unwrap(),
    )
    .unwrap();
    assert_eq!(&first[..], b"n,,n=user,r=rOprNGfwEbeRWgbNEkqOAAAA");
    let server_first = b"r=rOprNGfwEbeRWgbNEkqOAAAA%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    client.receive(format!("334 {}\r\n", mailwire::wire::encode_payload(server_first)).as_bytes()).unwrap();
    assert!(!output(&mut client).is_empty());
    // Success without the server's signature: not verified.
    assert!(matches!(client.receive(b"235 2.7.0 ok\r\n"), Err(Error::ServerNotVerified(_))));
    assert!(client.is_closed());
    assert!(!client.is_authenticated());
}

#[test]
fn external_only_with_a_client_certificate() {
    let ehlo = b"250-mail\r\n250 AUTH EXTERNAL\r\n";
    let mut client = ready_after_tls(TlsInfo::default(), ehlo);
    assert_eq!(client.authenticate(&Credentials::default()), Err(Error::Select(SelectError::NoAcceptable)));
    let info = TlsInfo { client_certificate: true, ..TlsInfo::default() };
    let mut client = ready_after_tls(info, ehlo);
    let credentials = Credentials { authzid: Some("alice".into()), ..Credentials::default() };
    assert_eq!(client.authenticate(&credentials), Ok(Mechanism::External));
    assert_eq!(text(&output(&mut client)), "AUTH EXTERNAL YWxpY2U=\r\n");
}

// ---------------------------------------------------------------------------------------------
// Mail transactions

#[test]
fn several_messages_rset_and_quit_without_pipelining() {
    let mut client = ready_plain(b"250-mail\r\n250 8BITMIME\r\n", false);
    for round in 0..3 {
        client.send_mail("a@example.org", &["b@example.org", "c@example.org"]).unwrap();
        assert_eq!(text(&output(&mut client)), "MAIL FROM:<a@example.org>\r\n", "one command at a time");
        client.receive(b"250 OK\r\n").unwrap();
        assert_eq!(text(&output(&mut client)), "RCPT TO:<b@example.org>\r\n");
        client.receive(b"250 OK\r\n").unwrap();
        assert_eq!(text(&output(&mut client)), "RCPT TO:<c@example.org>\r\n");
        client.receive(b"550 no\r\n").unwrap();
        assert_eq!(text(&output(&mut client)), "DATA\r\n");
        client.receive(b"354 go\r\n").unwrap();
        client.send_body_chunk(b".dot\nline\r").unwrap();
        client.send_body_chunk(b"\n.").unwrap();
        client.finish_body().unwrap();
        assert_eq!(text(&output(&mut client)), "..dot\r\nline\r\n..\r\n.\r\n");
        client.receive(format!("250 queued {round}\r\n").as_bytes()).unwrap();
        let got = events(&mut client);
        assert_eq!(got.len(), 5, "{got:?}");
        assert!(matches!(got[2], Event::RecipientRejected { index: 1, .. }));
        assert_eq!(got[4], Event::MessageAccepted(Reply::new(250, format!("queued {round}"))));
    }
    client.rset().unwrap();
    client.receive(b"250 reset\r\n").unwrap();
    assert_eq!(events(&mut client), vec![Event::Reset(Reply::new(250, "reset"))]);
    client.quit().unwrap();
    assert_eq!(text(&output(&mut client)), "RSET\r\nQUIT\r\n");
    client.receive(b"221 bye\r\n").unwrap();
    assert_eq!(events(&mut client), vec![Event::Closed(Reply::new(221, "bye"))]);
    assert!(client.is_closed());
}

#[test]
fn no_recipient_accepted_resets_the_transaction() {
    // Without PIPELINING: DATA is not sent, RSET is.
    let mut client = ready_plain(b"250 mail\r\n", false);
    client.send_mail("a@example.org", &["b@example.org"]).unwrap();
    client.receive(b"250 OK\r\n550 no such user\r\n").unwrap();
    assert_eq!(text(&output(&mut client)), "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRSET\r\n");
    client.receive(b"250 reset\r\n").unwrap();
    let got = events(&mut client);
    assert_eq!(got.last(), Some(&Event::MessageRejected(Reply::new(550, "no such user"))));
    client.send_mail("a@example.org", &["c@example.org"]).unwrap();
    // With PIPELINING: DATA was sent; its refusal ends the transaction, then RSET.
    let mut client = ready_plain(b"250-mail\r\n250 PIPELINING\r\n", false);
    client.send_mail("a@example.org", &["b@example.org"]).unwrap();
    client.receive(b"250 OK\r\n550 no such user\r\n554 no valid recipients\r\n").unwrap();
    assert_eq!(text(&output(&mut client)), "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nRSET\r\n");
    client.receive(b"250 reset\r\n").unwrap();
    assert_eq!(events(&mut client).last(), Some(&Event::MessageRejected(Reply::new(554, "no valid recipients"))));
    // A 354 despite no recipient: only the terminator goes out, never the body.
    let mut client = ready_plain(b"250-mail\r\n250 PIPELINING\r\n", false);
    client.send_mail("a@example.org", &["b@example.org"]).unwrap();
    output(&mut client);
    client.receive(b"250 OK\r\n550 no\r\n354 go\r\n").unwrap();
    assert_eq!(text(&output(&mut client)), ".\r\n");
    assert!(matches!(client.send_body_chunk(b"x"), Err(Error::InvalidState(_))));
    client.receive(b"554 empty\r\n").unwrap();
    assert_eq!(events(&mut client).last(), Some(&Event::MessageRejected(Reply::new(554, "empty"))));
}

#[test]
fn sender_rejected() {
    let mut client = ready_plain(b"250 mail\r\n", false);
    client.send_mail("a@example.org", &["b@example.org"]).unwrap();
    client.receive(b"550 5.7.1 not you\r\n").unwrap();
    assert_eq!(text(&output(&mut client)), "MAIL FROM:<a@example.org>\r\n");
    assert!(matches!(events(&mut client).as_slice(), [Event::SenderRejected(_)]));
    client.quit().unwrap();
    // Pipelined: the other replies still come as events.
    let mut client = ready_plain(b"250-mail\r\n250 PIPELINING\r\n", false);
    client.send_mail("a@example.org", &["b@example.org"]).unwrap();
    client.receive(b"550 not you\r\n503 MAIL first\r\n503 MAIL first\r\n").unwrap();
    let got = events(&mut client);
    assert!(matches!(
        got.as_slice(),
        [Event::SenderRejected(_), Event::RecipientRejected { index: 0, .. }, Event::MessageRejected(_)]
    ));
    client.quit().unwrap();
    assert!(text(&output(&mut client)).ends_with("DATA\r\nQUIT\r\n"));
}

#[test]
fn mail_parameters_and_null_sender() {
    let mut client = ready_plain(b"250-mail\r\n250-PIPELINING\r\n250 SIZE 1000\r\n", false);
    let auth = mailwire::smtp::xtext::encode(b"e=mc2@example.com");
    let params = [Parameter::Size(42), Parameter::Auth(Some(&auth))];
    client.send_mail_with("", &params, &["b@example.org"], &[]).unwrap();
    assert_eq!(
        text(&output(&mut client)),
        "MAIL FROM:<> SIZE=42 AUTH=e+3Dmc2@example.com\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
    );
}

#[test]
fn utf8_addresses_need_smtputf8() {
    let mut client = ready_plain(b"250-mail\r\n250 PIPELINING\r\n", false);
    assert!(matches!(client.send_mail("用户@例子.广告", &["b@example.org"]), Err(Error::InvalidState(_))));
    assert!(matches!(client.send_mail("a@example.org", &["bøb@example.org"]), Err(Error::InvalidState(_))));
    assert!(output(&mut client).is_empty());
    let mut client = ready_plain(b"250-mail\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n", false);
    client.send_mail_with("用户@例子.广告", &[Parameter::Size(10)], &["bøb@example.org"], &[]).unwrap();
    assert_eq!(
        text(&output(&mut client)),
        "MAIL FROM:<用户@例子.广告> SIZE=10 SMTPUTF8\r\nRCPT TO:<bøb@example.org>\r\nDATA\r\n"
    );
}

#[test]
fn greeting_and_hello_refusals() {
    let mut client = new_client(config(TlsPolicy::Disabled));
    assert!(matches!(client.receive(b"554-no\r\n554 go away\r\n"), Err(Error::Rejected(_))));
    assert_eq!(text(&output(&mut client)), "QUIT\r\n");
    let mut client = new_client(config(TlsPolicy::Disabled));
    client.receive(GREETING).unwrap();
    assert!(matches!(client.receive(b"550 not you\r\n"), Err(Error::Rejected(_))));
    // EHLO refused with 500: HELO, and a session without extensions.
    let mut client = new_client(config(TlsPolicy::Opportunistic));
    client.receive(GREETING).unwrap();
    client.receive(b"500 5.5.1 what\r\n250 mail.example hello\r\n").unwrap();
    assert_eq!(text(&output(&mut client)), "EHLO client.example\r\nHELO client.example\r\n");
    let got = events(&mut client);
    let [Event::Greeting(_), Event::Ready(capabilities)] = got.as_slice() else { panic!("{got:?}") };
    assert!(capabilities.auth.is_empty() && !capabilities.starttls && !capabilities.pipelining);
    // 421 at any time closes the session.
    let mut client = ready_plain(b"250 mail\r\n", false);
    client.send_mail("a@example.org", &["b@example.org"]).unwrap();
    client.receive(b"421 4.3.2 shutting down\r\n").unwrap();
    assert!(client.is_closed());
    assert!(matches!(events(&mut client).as_slice(), [Event::Closed(r)] if r.code == 421));
}

#[test]
fn implicit_tls_before_the_greeting() {
    let mut client = new_client(config(TlsPolicy::Required));
    client.tls_established(TlsInfo::default()).unwrap();
    client.receive(GREETING).unwrap();
    client.receive(b"250-mail\r\n250 AUTH PLAIN\r\n").unwrap();
    assert_eq!(text(&output(&mut client)), "EHLO client.example\r\n", "no STARTTLS inside TLS");
    assert!(client.is_tls());
    assert_eq!(client.authenticate(&password()), Ok(Mechanism::Plain));
    assert!(matches!(client.tls_established(TlsInfo::default()), Err(Error::InvalidState(_))));
}

// ---------------------------------------------------------------------------------------------
// Hostile replies

#[test]
fn hostile_endless_continuation_lines() {
    let mut client = new_client(config(TlsPolicy::Disabled));
    client.receive(GREETING).unwrap();
    let mut result = Ok(());
    for _ in 0..1000 {
        result = client.receive(b"250-AUTH PLAIN LOGIN CRAM-MD5 padding padding padding\r\n");
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(Error::Reply(ReplyError::TooManyLines(100))));
    assert!(client.is_closed());
}

#[test]
fn hostile_megabyte_line() {
    let mut client = new_client(config(TlsPolicy::Disabled));
    client.receive(GREETING).unwrap();
    client.receive(b"250-").unwrap();
    let chunk = vec![b'x'; 4096];
    for _ in 0..256 {
        // The line's bytes are dropped as they come: nothing grows.
        client.receive(&chunk).unwrap();
    }
    let end = client.receive(b"\r\n");
    assert_eq!(end, Err(Error::Reply(ReplyError::LineTooLong { length: 4 + 256 * 4096 + 2, limit: 512 })));
    assert!(client.is_closed());
    // While a command waits for nothing, unprocessed bytes are bounded too.
    let mut client = ready_plain(b"250 mail\r\n", false);
    let mut result = Ok(());
    for _ in 0..256 {
        result = client.receive(&chunk);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(Error::BufferFull(64 * 1024)));
}

#[test]
fn hostile_unsolicited_flood_is_bounded() {
    let mut client = ready_plain(b"250 mail\r\n", false);
    let mut result = Ok(());
    for _ in 0..100 {
        result = client.receive(&b"250 unsolicited\r\n".repeat(100));
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(Error::BufferFull(64 * 1024)));
    assert!(client.is_closed());
}

#[test]
fn hostile_garbage_codes_and_binary() {
    for bad in
        [&b"2x0 ok\r\n"[..], b"99\r\n", b"1000 ok\r\n", b"\x00\x01\x02\r\n", b"250 a\0b\r\n", b"\xff\xfe\xfd\r\n"]
    {
        let mut client = new_client(config(TlsPolicy::Disabled));
        client.receive(GREETING).unwrap();
        let result = client.receive(bad);
        assert!(matches!(result, Err(Error::Reply(ReplyError::BadCode | ReplyError::Binary))), "{bad:?}: {result:?}");
        assert!(client.is_closed());
        assert!(output(&mut client) == b"EHLO client.example\r\n");
    }
    // Mixed codes inside one reply.
    let mut client = new_client(config(TlsPolicy::Disabled));
    assert_eq!(client.receive(b"220-a\r\n250 b\r\n"), Err(Error::Reply(ReplyError::CodeMismatch)));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Arbitrary server bytes at any point of a session: no panic, bounded output.
    #[test]
    fn arbitrary_server_bytes_never_panic(
        prefix in 0usize..4,
        noise in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
    ) {
        let steps: [&[u8]; 3] = [GREETING, EHLO_TLS, b"220 go\r\n"];
        let mut client = new_client(config(TlsPolicy::Required));
        for step in steps.iter().take(prefix) {
            let _ = client.receive(step);
        }
        let _ = client.receive(&noise);
        let _ = client.authenticate(&password());
        let out = output(&mut client);
        proptest::prop_assert!(out.len() < 200);
        proptest::prop_assert!(!text(&out).contains("AUTH"), "no credential before TLS");
    }
}

// ---------------------------------------------------------------------------------------------
// Transcript replays (RFC 4954 sessions, Dovecot submission, Exim)

/// What the application does during a replay: authenticate, send a message, quit, as the
/// session's directives say.
struct Driver<'a> {
    session: &'a Session,
    tried_auth: bool,
    sent_mail: bool,
    quit: bool,
}

impl Driver<'_> {
    fn credentials(&self) -> Credentials {
        let user = self.session.get("user").unwrap_or("").to_string();
        let secret = self.session.get("secret").unwrap_or("");
        let mut credentials = if self.session.yes("token") {
            Credentials::token(user, secret)
        } else if secret.is_empty() {
            Credentials { authcid: user, ..Credentials::default() }
        } else {
            Credentials::password(user, secret)
        };
        credentials.authzid = self.session.get("authzid").map(String::from);
        credentials
    }

    fn next(&mut self, client: &mut Client) -> Result<(), Error> {
        if !self.tried_auth && (self.session.get("mechanism").is_some() || self.session.get("user").is_some()) {
            self.tried_auth = true;
            client.authenticate(&self.credentials())?;
            return Ok(());
        }
        if let (false, Some(from), Some(rcpt)) =
            (self.sent_mail, self.session.get("mail-from"), self.session.get("rcpt"))
        {
            self.sent_mail = true;
            return client.send_mail(from, &[rcpt]);
        }
        if !self.quit && self.session.get("quit") != Some("no") {
            self.quit = true;
            return client.quit();
        }
        Ok(())
    }

    fn react(&mut self, client: &mut Client, event: &Event) -> Result<(), Error> {
        match event {
            Event::Ready(_) | Event::Authenticated { .. } | Event::AuthFailed { .. } | Event::MessageAccepted(_) => {
                self.next(client)
            }
            Event::DataReady => {
                let (stuffed, _) = support::parse_py_bytes(self.session.get("body-stuffed").unwrap());
                let mut body = Vec::new();
                let mut decoder = DotDecoder::new();
                assert!(decoder.decode(&stuffed, &mut body).done);
                // Stream the body in pieces that cut lines and dots.
                for piece in body.chunks(7) {
                    client.send_body_chunk(piece)?;
                }
                client.finish_body()
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug, PartialEq)]
struct Run {
    events: Vec<Event>,
    output: Vec<u8>,
    error: Option<Error>,
    closed: bool,
}

fn session_config(session: &Session) -> ClientConfig {
    let mut config = ClientConfig::new(session.get("domain").unwrap_or("client.example"), "localhost");
    config.server_port = Some(11587);
    config.tls = match session.get("tls") {
        Some("disabled") => TlsPolicy::Disabled,
        Some("opportunistic") => TlsPolicy::Opportunistic,
        _ => TlsPolicy::Required,
    };
    config.mechanism = session.get("mechanism").map(Mechanism::parse);
    config.allow_plaintext = session.yes("plaintext");
    config.send_initial_response = session.get("ir") != Some("no");
    if session.yes("cancel") {
        // Cancel at the first challenge, whenever it arrives.
        config.max_auth_rounds = 0;
    }
    config
}

/// Replays `session` with the server bytes of each TLS segment cut as `segments` says.
fn replay(session: &Session, segments: &[Vec<&[u8]>]) -> Run {
    let rng = scripted_rng(session.get("nonce").map(nonce_bytes).unwrap_or_default());
    let mut client = Client::new(session_config(session), rng);
    let mut driver = Driver { session, tried_auth: false, sent_mail: false, quit: false };
    let mut run = Run { events: Vec::new(), output: Vec::new(), error: None, closed: false };
    'outer: for (index, chunks) in segments.iter().enumerate() {
        if index > 0 {
            let info = TlsInfo { client_certificate: session.yes("client-certificate"), ..TlsInfo::default() };
            if let Err(error) = client.tls_established(info) {
                run.error = Some(error);
                break;
            }
        }
        for chunk in chunks {
            let mut result = client.receive(chunk);
            while result.is_ok() {
                let Some(event) = client.poll_event() else { break };
                result = driver.react(&mut client, &event);
                run.events.push(event);
            }
            run.output.extend(output(&mut client));
            if let Err(error) = result {
                run.error = Some(error);
                break 'outer;
            }
        }
    }
    run.output.extend(output(&mut client));
    run.closed = client.is_closed();
    run
}

fn check_outcome(session: &Session, run: &Run) {
    let name = &session.name;
    assert_eq!(run.error, None, "{name}");
    support::assert_lines(&run.output, &session.client_lines(), name);
    let expect = session.get("expect").unwrap_or("");
    let found = run.events.iter().any(|event| match (expect, event) {
        ("ready", Event::Ready(_)) => true,
        ("authenticated", Event::Authenticated { .. }) => true,
        ("message-accepted", Event::MessageAccepted(_)) => true,
        (expect, Event::AuthFailed { reply, reason, .. }) if expect.starts_with("auth-failed ") => {
            let code: u16 = expect["auth-failed ".len()..].parse().unwrap();
            let typed = match code {
                535 => *reason == AuthRejection::InvalidCredentials,
                501 => *reason == AuthRejection::Cancelled,
                _ => true,
            };
            reply.code == code && typed
        }
        _ => false,
    });
    assert!(found, "{name}: no `{expect}` in {:#?}", run.events);
    let ends_with_quit = session.client_lines().last().is_some_and(|l| l.as_deref() == Some(&b"QUIT\r\n"[..]));
    assert_eq!(run.closed, ends_with_quit, "{name}");
    if ends_with_quit {
        assert!(matches!(run.events.last(), Some(Event::Closed(r)) if r.code == 221), "{name}");
    }
}

/// Sessions whose mechanism is not implemented yet are skipped (reported by name).
fn usable(session: &Session) -> bool {
    let Some(mechanism) = session.get("mechanism") else { return true };
    let mechanism = Mechanism::parse(mechanism);
    let probe = Credentials {
        authcid: "u".into(),
        password: Some("p".into()),
        token: Some("t".into()),
        ..Credentials::default()
    };
    let context = mailwire::sasl::ClientContext::new("smtp", "h");
    !matches!(
        mailwire::sasl::client(&mechanism, &probe, &context, &mut mailwire::sasl::FixedRandom::new(0)),
        Err(SaslError::Unsupported(_))
    )
}

/// Replays every session of `file` whole, then with each TLS segment cut at every point and
/// byte by byte, then with everything byte by byte: the same events and output each time.
/// Returns how many sessions ran.
fn replay_file(file: &str) -> usize {
    let sessions = support::load(file);
    let mut skipped = Vec::new();
    for session in &sessions {
        if !usable(session) {
            skipped.push(session.name.clone());
            continue;
        }
        let segments = session.server_segments();
        let whole: Vec<Vec<&[u8]>> = segments.iter().map(|s| vec![s.as_slice()]).collect();
        let reference = replay(session, &whole);
        check_outcome(session, &reference);
        for (index, segment) in segments.iter().enumerate() {
            for chunks in support::chunkings(segment).into_iter().skip(1) {
                let mut cut = whole.clone();
                let sizes: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
                cut[index] = chunks;
                assert_eq!(replay(session, &cut), reference, "{}: segment {index} cut into {sizes:?}", session.name);
            }
        }
        let bytewise: Vec<Vec<&[u8]>> = segments.iter().map(|s| s.chunks(1).collect()).collect();
        assert_eq!(replay(session, &bytewise), reference, "{}: all byte by byte", session.name);
    }
    if !skipped.is_empty() {
        eprintln!("{file}: skipped, mechanism not implemented yet: {skipped:#?}");
    }
    sessions.len() - skipped.len()
}

#[test]
fn rfc4954_sessions_replayed_at_every_split() {
    assert_eq!(replay_file("smtp-rfc4954.txt"), 6);
}

#[test]
fn rfc4954_example_a_greeting_as_printed_is_incomplete() {
    let mut client = new_client(config(TlsPolicy::Required));
    client.receive(b"220-smtp.example.com ESMTP Server\r\n").unwrap();
    assert_eq!(events(&mut client), vec![]);
    assert!(output(&mut client).is_empty(), "no EHLO before the greeting is complete");
}

#[test]
fn dovecot_submission_transcripts_replayed() {
    assert_eq!(replay_file("smtp-dovecot-submission.txt"), 28);
}

#[test]
fn exim_transcripts_replayed() {
    assert_eq!(replay_file("smtp-exim.txt"), 22);
}

#[test]
fn split_invariance_of_injection_cases() {
    // Whatever the cut, injected bytes after the STARTTLS 220 end in StartTlsInjection, and
    // no event comes from them.
    let input = b"220 2.0.0 Ready\r\n250-evil\r\n250 AUTH PLAIN\r\n";
    for chunks in support::chunkings(input) {
        let mut client = at_starttls();
        let mut result = Ok(());
        let mut got = Vec::new();
        for chunk in &chunks {
            result = client.receive(chunk);
            got.extend(events(&mut client));
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(Error::StartTlsInjection), "{chunks:?}");
        assert!(got.iter().all(|e| *e == Event::StartTls), "{got:?}");
        assert!(output(&mut client).is_empty());
    }
}

#[test]
fn client_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Client>();
    assert_send::<Event>();
    assert_send::<Error>();
}
