//! The two SMTP client programs (examples/smtp_client on blocking sockets, examples/tokio_client
//! on tokio) against scripted servers on loopback, for what real peers will not do: STARTTLS
//! response injection, a missing or refused STARTTLS, refused greetings, garbage replies,
//! refused senders, recipients and messages. Each case checks the exit code and what the
//! server received (no credential after a failed upgrade, QUIT where one is due, the body
//! dot-stuffed). Also the command-line errors.

#[path = "../examples/common/mod.rs"]
mod common;
mod interop_support;

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use common::tls::{self, TestCa};
use common::{Conn, Transcript};
use interop_support::{outcome, run, scratch};
use rustls::ServerConfig;

const CLIENTS: [&str; 2] = ["smtp_client", "tokio_client"];

/// What the scripted server does, in order.
enum Step {
    /// Writes these bytes in one write.
    Send(&'static str),
    /// Reads a client line; it must start with this.
    Expect(&'static str),
    /// The TLS handshake (server side).
    Tls,
    /// Reads the message up to the lone dot; records it as one `BODY:` entry.
    Body,
    /// Closes the connection.
    Close,
}

use Step::{Body, Close, Expect, Send, Tls};

/// Everything the server read, line by line; an `UNEXPECTED:` entry where the script broke.
type Received = Vec<String>;

struct Server {
    conn: Conn,
    buf: Vec<u8>,
    received: Received,
}

impl Server {
    fn line(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                return Some(String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_string());
            }
            match self.conn.recv() {
                Ok(Some(data)) => self.buf.extend_from_slice(data),
                _ => return None,
            }
        }
    }

    fn play(&mut self, steps: &[Step], tls: &Option<Arc<ServerConfig>>) {
        for step in steps {
            match step {
                Send(text) => {
                    if self.conn.send(text.as_bytes()).is_err() {
                        return;
                    }
                }
                Expect(prefix) => match self.line() {
                    Some(line) if line.starts_with(prefix) => self.received.push(line),
                    Some(line) => return self.received.push(format!("UNEXPECTED: {line} (wanted {prefix})")),
                    None => return self.received.push(format!("UNEXPECTED: end of stream (wanted {prefix})")),
                },
                Tls => {
                    let config = tls.clone().expect("a TLS script needs a certificate");
                    match self.conn.start_tls_server(config) {
                        Ok(info) => match info.peer_identity {
                            Some(id) => self.received.push(format!("TLS client {id}")),
                            None => self.received.push("TLS".into()),
                        },
                        Err(_) => return self.received.push("UNEXPECTED: TLS handshake failed".into()),
                    }
                }
                Body => {
                    let mut body = String::new();
                    loop {
                        match self.line() {
                            Some(line) if line == "." => break,
                            Some(line) => {
                                body.push_str(&line);
                                body.push_str("\r\n");
                            }
                            None => return self.received.push("UNEXPECTED: end of stream in the body".into()),
                        }
                    }
                    self.received.push(format!("BODY:{body}"));
                }
                Close => return,
            }
        }
        // Whatever the client sends after the script, until it closes.
        while let Some(line) = self.line() {
            self.received.push(line);
        }
    }
}

/// A server playing `steps` for one connection: its address and what it will have received.
fn serve(steps: Vec<Step>, tls: Option<Arc<ServerConfig>>) -> (String, JoinHandle<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let mut server =
            Server { conn: Conn::new(tcp, Transcript::off()).unwrap(), buf: Vec::new(), received: Vec::new() };
        server.play(&steps, &tls);
        server.received
    });
    (addr, handle)
}

/// A CA file for the client and a server configuration whose certificate it signed.
fn certificates() -> (PathBuf, Arc<ServerConfig>) {
    let ca = TestCa::new("scripted server CA").unwrap();
    let config = tls::server_config(ca.server(&["localhost", "127.0.0.1"]).unwrap(), None).unwrap();
    let path = scratch(&format!("ca-{:p}", &config)).join("ca.pem");
    std::fs::write(&path, &ca.pem).unwrap();
    (path, config)
}

/// Runs `client` against a scripted server with the script's CA trusted; returns the exit
/// code, stderr and what the server received.
fn session(client: &str, steps: Vec<Step>, args: &[&str]) -> (i32, String, Received) {
    let (ca, config) = certificates();
    let (addr, server) = serve(steps, Some(config));
    let mut all = vec!["--connect", &addr, "--ca-file", ca.to_str().unwrap(), "-v"];
    all.extend_from_slice(args);
    let (code, stderr) = outcome(&run(client, &all));
    (code, stderr, server.join().unwrap())
}

fn message_file(text: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = scratch(&format!("message-{n}")).join("m.eml");
    std::fs::write(&path, text).unwrap();
    path
}

const GREETING: &str = "220 fake.example ESMTP\r\n";
const EHLO_TLS: &str = "250-fake.example\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n";
const EHLO_AFTER: &str = "250-fake.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 AUTH PLAIN SCRAM-SHA-256\r\n";

/// Greeting, EHLO, STARTTLS, TLS, EHLO again: the session ready.
fn upgraded() -> Vec<Step> {
    upgraded_with(EHLO_AFTER)
}

fn upgraded_with(ehlo: &'static str) -> Vec<Step> {
    vec![
        Send(GREETING),
        Expect("EHLO "),
        Send(EHLO_TLS),
        Expect("STARTTLS"),
        Send("220 2.0.0 go ahead\r\n"),
        Tls,
        Expect("EHLO "),
        Send(ehlo),
    ]
}

/// Upgraded, then PLAIN (the only mechanism offered) accepted.
fn logged_in() -> Vec<Step> {
    let mut steps = upgraded_with("250-fake.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 AUTH PLAIN\r\n");
    steps.extend([Expect("AUTH PLAIN "), Send("235 2.7.0 ok\r\n")]);
    steps
}

fn assert_no_credentials(received: &Received) {
    assert!(!received.iter().any(|l| l.starts_with("AUTH")), "a credential was sent: {received:?}");
}

// ---------------------------------------------------------------------------------------------
// STARTTLS (RFC 3207)

/// starttls-cases C1: a reply injected behind the `220` in the same segment. No handshake,
/// no credential, exit 5.
#[test]
fn starttls_injection_is_exit_5() {
    for client in CLIENTS {
        let steps = vec![
            Send(GREETING),
            Expect("EHLO "),
            Send(EHLO_TLS),
            Expect("STARTTLS"),
            Send("220 2.0.0 go ahead\r\n250-fake.example\r\n250 AUTH PLAIN\r\n"),
        ];
        let (code, stderr, received) = session(client, steps, &["--user", "alice", "--password", "secret"]);
        assert_eq!(code, 5, "{client}:\n{stderr}");
        assert!(stderr.contains("STARTTLS"), "{client}: {stderr}");
        assert!(!received.iter().any(|l| l.starts_with("UNEXPECTED") || l == "TLS"), "{client}: {received:?}");
        assert_no_credentials(&received);
        assert!(!stderr.contains("secret"), "{stderr}");
    }
}

/// C6: STARTTLS required and not offered: QUIT, no credential, exit 7.
#[test]
fn starttls_not_offered_is_exit_7() {
    for client in CLIENTS {
        let steps = vec![Send(GREETING), Expect("EHLO "), Send("250-fake.example\r\n250 AUTH PLAIN\r\n")];
        let (code, stderr, received) = session(client, steps, &["--user", "alice", "--password", "secret"]);
        assert_eq!(code, 7, "{client}:\n{stderr}");
        assert_eq!(received, ["EHLO localhost", "QUIT"], "{client}");
    }
}

/// C7: STARTTLS refused: QUIT, no credential, exit 7.
#[test]
fn starttls_refused_is_exit_7() {
    for client in CLIENTS {
        let steps = vec![
            Send(GREETING),
            Expect("EHLO "),
            Send(EHLO_TLS),
            Expect("STARTTLS"),
            Send("454 4.7.0 TLS not available\r\n"),
        ];
        let (code, stderr, received) = session(client, steps, &["--user", "alice", "--password", "secret"]);
        assert_eq!(code, 7, "{client}:\n{stderr}");
        assert_eq!(received, ["EHLO localhost", "STARTTLS", "QUIT"], "{client}");
    }
}

/// `--tls opportunistic` goes on without STARTTLS when it is not offered, but still keeps
/// PLAIN off a plaintext connection (exit 7) unless `--allow-plaintext`.
#[test]
fn opportunistic_without_starttls() {
    let steps = || vec![Send(GREETING), Expect("EHLO "), Send("250-fake.example\r\n250 AUTH PLAIN\r\n")];
    let (code, stderr, received) =
        session("smtp_client", steps(), &["--tls", "opportunistic", "--user", "alice", "--password", "secret"]);
    assert_eq!(code, 7, "{stderr}");
    assert_no_credentials(&received);
    let mut allowed = steps();
    allowed.extend([Expect("AUTH PLAIN "), Send("235 ok\r\n"), Expect("QUIT"), Send("221 bye\r\n")]);
    let args = ["--tls", "opportunistic", "--allow-plaintext", "--user", "alice", "--password", "secret"];
    let (code, stderr, received) = session("smtp_client", allowed, &args);
    assert_eq!(code, 0, "{stderr}\n{received:?}");
    assert!(stderr.contains("C: AUTH PLAIN [initial response redacted]"), "{stderr}");
}

/// RFC 8314: `--tls implicit` runs the handshake before the greeting and never sends STARTTLS.
#[test]
fn implicit_tls() {
    let steps = vec![
        Tls,
        Send(GREETING),
        Expect("EHLO "),
        Send(EHLO_AFTER),
        Expect("AUTH SCRAM-SHA-256 "),
        Send("535 5.7.8 no\r\n"),
        Expect("QUIT"),
        Send("221 bye\r\n"),
    ];
    let (code, stderr, received) =
        session("smtp_client", steps, &["--tls", "implicit", "--user", "alice", "--password", "secret"]);
    assert_eq!(code, 4, "{stderr}\n{received:?}");
    assert_eq!(received.first().map(String::as_str), Some("TLS"), "{received:?}");
}

/// `--cert`/`--key`: the client certificate is presented in the STARTTLS handshake, and
/// EXTERNAL (RFC 4422 appendix A) is chosen as the strongest mechanism, with an empty authzid.
#[test]
fn client_certificate_and_external() {
    let ca = TestCa::new("scripted server CA").unwrap();
    let config = tls::server_config(ca.server(&["127.0.0.1"]).unwrap(), Some(std::slice::from_ref(&ca.cert))).unwrap();
    let (_, chain, key) = ca.client_pem("alice").unwrap();
    let dir = scratch("external");
    for (name, text) in [("ca.pem", &ca.pem), ("cert.pem", &chain), ("key.pem", &key)] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let steps = vec![
        Send(GREETING),
        Expect("EHLO "),
        Send(EHLO_TLS),
        Expect("STARTTLS"),
        Send("220 2.0.0 go ahead\r\n"),
        Tls,
        Expect("EHLO "),
        Send("250-fake.example\r\n250 AUTH PLAIN EXTERNAL SCRAM-SHA-256\r\n"),
        Expect("AUTH EXTERNAL ="),
        Send("235 2.7.0 ok\r\n"),
        Expect("QUIT"),
        Send("221 bye\r\n"),
    ];
    let (addr, server) = serve(steps, Some(config));
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let (ca, cert, key) = (path("ca.pem"), path("cert.pem"), path("key.pem"));
    let args = ["--connect", &addr, "--ca-file", &ca, "--cert", &cert, "--key", &key, "--user", "alice", "-v"];
    let (code, stderr) = outcome(&run("smtp_client", &args));
    let received = server.join().unwrap();
    assert_eq!(code, 0, "{stderr}\n{received:?}");
    assert!(received.contains(&"TLS client alice".to_string()), "{received:?}");
}

// ---------------------------------------------------------------------------------------------
// Refusals and broken servers

#[test]
fn greeting_refused_is_exit_3() {
    for client in CLIENTS {
        for greeting in ["554 5.3.2 go away\r\n", "421 4.3.2 shutting down\r\n"] {
            let (code, stderr, _) = session(client, vec![Send(greeting)], &[]);
            assert_eq!(code, 3, "{client} {greeting}:\n{stderr}");
        }
    }
}

#[test]
fn garbage_reply_is_exit_5() {
    for client in CLIENTS {
        let steps = vec![Send(GREETING), Expect("EHLO "), Send("hello there\r\n")];
        let (code, stderr, _) = session(client, steps, &[]);
        assert_eq!(code, 5, "{client}:\n{stderr}");
    }
}

#[test]
fn server_closing_early_is_exit_5() {
    for client in CLIENTS {
        let (code, stderr, _) = session(client, vec![Send(GREETING), Expect("EHLO "), Close], &[]);
        assert_eq!(code, 5, "{client}:\n{stderr}");
    }
}

#[test]
fn auth_rejected_is_exit_4_and_redacted() {
    for client in CLIENTS {
        let mut steps = upgraded();
        steps.extend([
            Expect("AUTH PLAIN "),
            Send("535 5.7.8 bad credentials\r\n"),
            Expect("QUIT"),
            Send("221 bye\r\n"),
        ]);
        let args = ["--user", "alice", "--password", "hunter2", "--mech", "PLAIN"];
        let (code, stderr, received) = session(client, steps, &args);
        assert_eq!(code, 4, "{client}:\n{stderr}\n{received:?}");
        assert!(stderr.contains("C: AUTH PLAIN [initial response redacted]"), "{client}: {stderr}");
        assert!(!stderr.contains("hunter2") && !stderr.contains("AGFsaWNlAGh1bnRlcjI"), "{client}: {stderr}");
    }
}

/// A forced mechanism the server does not offer: exit 7, nothing sent.
#[test]
fn forced_mechanism_not_offered_is_exit_7() {
    for client in CLIENTS {
        let mut steps = upgraded();
        steps.extend([Expect("QUIT"), Send("221 bye\r\n")]);
        let (code, stderr, received) =
            session(client, steps, &["--user", "alice", "--password", "x", "--mech", "CRAM-MD5"]);
        assert_eq!(code, 7, "{client}:\n{stderr}");
        assert_no_credentials(&received);
    }
}

/// The message goes out dot-stuffed with CRLF line ends, 8BITMIME declared for 8-bit text.
#[test]
fn message_is_sent_dot_stuffed() {
    for client in CLIENTS {
        let mut steps = logged_in();
        steps.extend([
            Expect("MAIL FROM:<alice@example.org> BODY=8BITMIME"),
            Expect("RCPT TO:<bob@example.org>"),
            Expect("DATA"),
            Send("250 ok\r\n250 ok\r\n354 go\r\n"),
            Body,
            Send("250 2.0.0 queued\r\n"),
            Expect("QUIT"),
            Send("221 bye\r\n"),
        ]);
        let file = message_file("Subject: dots\n\n.one\n..two\nGrüße\n.\nend");
        let args = [
            "--user",
            "alice",
            "--password",
            "x",
            "--from",
            "alice@example.org",
            "--to",
            "bob@example.org",
            "--message",
            file.to_str().unwrap(),
        ];
        let (code, stderr, received) = session(client, steps, &args);
        assert_eq!(code, 0, "{client}:\n{stderr}\n{received:?}");
        let body = received.iter().find_map(|l| l.strip_prefix("BODY:")).unwrap();
        assert_eq!(body, "Subject: dots\r\n\r\n..one\r\n...two\r\nGrüße\r\n..\r\nend\r\n", "{client}");
    }
}

#[test]
fn sender_refused_is_exit_6() {
    for client in CLIENTS {
        let mut steps = logged_in();
        steps.extend([
            Expect("MAIL"),
            Expect("RCPT"),
            Expect("DATA"),
            Send("550 5.7.1 not you\r\n503 5.5.1 no sender\r\n503 5.5.1 no recipients\r\n"),
            Expect("QUIT"),
            Send("221 bye\r\n"),
        ]);
        let file = message_file("Subject: x\r\n\r\nhi\r\n");
        let args =
            ["--user", "a", "--password", "x", "--from", "a@x", "--to", "b@x", "--message", file.to_str().unwrap()];
        let (code, stderr, received) = session(client, steps, &args);
        assert_eq!(code, 6, "{client}:\n{stderr}\n{received:?}");
        assert!(stderr.contains("not you"), "{client}: {stderr}");
    }
}

/// One of two recipients refused: the message goes to the other, and the run still fails (6).
#[test]
fn recipient_refused_is_exit_6() {
    for client in CLIENTS {
        let mut steps = logged_in();
        steps.extend([
            Expect("MAIL"),
            Expect("RCPT TO:<good@x>"),
            Expect("RCPT TO:<bad@x>"),
            Expect("DATA"),
            Send("250 ok\r\n250 ok\r\n550 5.1.1 no such user\r\n354 go\r\n"),
            Body,
            Send("250 queued\r\n"),
            Expect("QUIT"),
            Send("221 bye\r\n"),
        ]);
        let file = message_file("Subject: x\r\n\r\nhi\r\n");
        let args = [
            "--user",
            "a",
            "--password",
            "x",
            "--from",
            "a@x",
            "--to",
            "good@x",
            "--to",
            "bad@x",
            "--message",
            file.to_str().unwrap(),
        ];
        let (code, stderr, received) = session(client, steps, &args);
        assert_eq!(code, 6, "{client}:\n{stderr}\n{received:?}");
        assert!(stderr.contains("bad@x") && stderr.contains("no such user"), "{client}: {stderr}");
        assert!(received.iter().any(|l| l.starts_with("BODY:")), "{client}: {received:?}");
    }
}

#[test]
fn message_refused_is_exit_6() {
    for client in CLIENTS {
        let mut steps = logged_in();
        steps.extend([
            Expect("MAIL"),
            Expect("RCPT"),
            Expect("DATA"),
            Send("250 ok\r\n250 ok\r\n354 go\r\n"),
            Body,
            Send("554 5.6.0 content refused\r\n"),
            Expect("QUIT"),
            Send("221 bye\r\n"),
        ]);
        let file = message_file("Subject: x\r\n\r\nhi\r\n");
        let args =
            ["--user", "a", "--password", "x", "--from", "a@x", "--to", "b@x", "--message", file.to_str().unwrap()];
        let (code, stderr, received) = session(client, steps, &args);
        assert_eq!(code, 6, "{client}:\n{stderr}\n{received:?}");
        assert!(stderr.contains("content refused"), "{client}: {stderr}");
    }
}

/// A `421` instead of a reply ends the session: exit 3.
#[test]
fn service_closing_is_exit_3() {
    for client in CLIENTS {
        let mut steps = upgraded();
        steps.extend([Expect("AUTH"), Send("421 4.3.0 shutting down\r\n")]);
        let (code, stderr, _) = session(client, steps, &["--user", "a", "--password", "x"]);
        assert_eq!(code, 3, "{client}:\n{stderr}");
    }
}

// ---------------------------------------------------------------------------------------------
// Command line and connection

#[test]
fn usage_errors_are_exit_2() {
    for client in CLIENTS {
        for args in [
            &[][..],
            &["--connect", "127.0.0.1"][..],
            &["--connect", "127.0.0.1:25", "--bogus"][..],
            &["--connect", "127.0.0.1:25", "--to", "b@x"][..],
            &["--connect", "127.0.0.1:25", "--from", "a@x"][..],
            &["--connect", "127.0.0.1:25", "--tls", "sometimes"][..],
            &["--connect", "127.0.0.1:25", "--user"][..],
        ] {
            let (code, stderr) = outcome(&run(client, args));
            assert_eq!(code, 2, "{client} {args:?}:\n{stderr}");
            assert!(stderr.contains("usage:"), "{client} {args:?}: {stderr}");
        }
        // Asking for help is not an error: the usage on standard output, exit 0.
        let out = run(client, &["--help"]);
        assert_eq!(outcome(&out).0, 0, "{client} --help");
        assert!(String::from_utf8_lossy(&out.stdout).contains("usage:"), "{client} --help");
        // Unreadable files are usage errors too, found before connecting.
        let args = ["--connect", "127.0.0.1:1", "--from", "a@x", "--to", "b@x", "--message", "/nonexistent/m.eml"];
        assert_eq!(outcome(&run(client, &args)).0, 2, "{client}");
        let args = ["--connect", "127.0.0.1:1", "--ca-file", "/nonexistent/ca.pem"];
        assert_eq!(outcome(&run(client, &args)).0, 2, "{client}");
    }
}

#[test]
fn connection_refused_is_exit_3() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (ca, _) = certificates();
    for client in CLIENTS {
        let addr = format!("127.0.0.1:{port}");
        let (code, stderr) = outcome(&run(client, &["--connect", &addr, "--ca-file", ca.to_str().unwrap()]));
        assert_eq!(code, 3, "{client}:\n{stderr}");
    }
}
