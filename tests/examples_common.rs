//! The examples' shared plumbing (examples/common): TLS on a loopback socket, the
//! `tls-exporter` channel binding on both ends, client-certificate identities, redaction.

#[path = "../examples/common/mod.rs"]
mod common;

use std::net::TcpListener;
use std::thread;

use common::tls::{self, ClientTlsOptions, TestCa};
use common::{Conn, Side, Sink, Transcript};

/// Runs a handshake over loopback; returns (client info, server info).
fn handshake(client_cert: bool) -> (mailwire::tls::TlsInfo, mailwire::tls::TlsInfo) {
    let ca = TestCa::new("test CA").unwrap();
    let server_config =
        tls::server_config(ca.server(&["localhost"]).unwrap(), Some(std::slice::from_ref(&ca.cert))).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let mut conn = Conn::new(tcp, Transcript::off()).unwrap();
        let info = conn.start_tls_server(server_config).unwrap();
        conn.send(b"hello\r\n").unwrap();
        conn.close();
        info
    });
    let options = ClientTlsOptions {
        roots: vec![ca.cert.clone()],
        insecure: false,
        identity: client_cert.then(|| ca.client("alice").unwrap()),
    };
    let mut conn = Conn::connect(&addr.to_string(), Transcript::off()).unwrap();
    let info = conn.start_tls_client(tls::client_config(&options).unwrap(), tls::server_name("localhost").unwrap());
    let info = info.unwrap();
    assert_eq!(conn.recv().unwrap().unwrap(), b"hello\r\n");
    (info, server.join().unwrap())
}

#[test]
fn tls_exporter_binding_is_the_same_on_both_ends() {
    let (client, server) = handshake(false);
    let cb = client.channel_binding.expect("TLS 1.3 gives tls-exporter");
    assert_eq!(cb.kind, mailwire::sasl::ChannelBindingType::TlsExporter);
    assert_eq!(cb.data.len(), 32);
    assert_eq!(Some(cb), server.channel_binding);
    assert!(!client.client_certificate);
    assert_eq!(server.peer_identity, None);
}

#[test]
fn client_certificate_names_the_peer() {
    let (client, server) = handshake(true);
    assert!(client.client_certificate);
    assert_eq!(server.peer_identity.as_deref(), Some("alice"));
}

#[test]
fn insecure_client_accepts_an_unknown_ca() {
    let ca = TestCa::new("unknown CA").unwrap();
    let server_config = tls::server_config(ca.server(&["127.0.0.1"]).unwrap(), None).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        for _ in 0..2 {
            let (tcp, _) = listener.accept().unwrap();
            let mut conn = Conn::new(tcp, Transcript::off()).unwrap();
            let _ = conn.start_tls_server(server_config.clone());
        }
    });
    let other = TestCa::new("other CA").unwrap();
    let strict = ClientTlsOptions { roots: vec![other.cert.clone()], ..Default::default() };
    let mut conn = Conn::connect(&addr.to_string(), Transcript::off()).unwrap();
    let refused = conn.start_tls_client(tls::client_config(&strict).unwrap(), tls::server_name("127.0.0.1").unwrap());
    assert!(refused.is_err(), "a certificate from an untrusted CA must fail the handshake");
    let insecure = ClientTlsOptions { insecure: true, ..Default::default() };
    let mut conn = Conn::connect(&addr.to_string(), Transcript::off()).unwrap();
    conn.start_tls_client(tls::client_config(&insecure).unwrap(), tls::server_name("127.0.0.1").unwrap()).unwrap();
    conn.close();
    server.join().unwrap();
}

#[test]
fn transcript_redacts_secrets_in_client_lines() {
    let mut t = Transcript::new(Sink::Off, Side::Client, "");
    assert_eq!(t.redact_line_for_test("AUTH PLAIN AGFsaWNlAHNlY3JldA=="), "AUTH PLAIN [initial response redacted]");
    assert_eq!(t.redact_line_for_test("pass hunter2"), "pass [redacted]");
    assert_eq!(t.redact_line_for_test("APOP alice 0123456789abcdef"), "APOP alice [digest redacted]");
    t.server_line_for_test("334 PDEyMzQ+");
    assert_eq!(t.redact_line_for_test("YWxpY2UgZGlnZXN0"), "[SASL response redacted]");
    t.server_line_for_test("+ ");
    assert_eq!(t.redact_line_for_test("*"), "*");
    assert_eq!(t.redact_line_for_test("MAIL FROM:<a@b>"), "MAIL FROM:<a@b>");
}
