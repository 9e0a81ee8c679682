//! Interop: Python's `poplib` (a real, independent client) against `pop3::Server` on a
//! loopback socket, driven by the examples' blocking plumbing with rustls for STLS. Covers the
//! greeting, CAPA before and after STLS, USER/PASS over TLS, APOP in plaintext, a wrong
//! password (`-ERR [AUTH]`), STAT, LIST, UIDL, RETR of a message with dot lines (byte-exact
//! after poplib unstuffs), TOP, DELE and QUIT with the commit. python3 is installed by
//! scripts/install-peers.sh; a missing one fails the test, never skips it.

#[path = "../examples/common/mod.rs"]
mod common;

use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::thread;

use common::tls::{self, TestCa};
use common::{Conn, Transcript};
use mailwire::pop3::server::{Event, MessageInfo};
use mailwire::pop3::{Server, ServerConfig};
use mailwire::sasl::{CredentialAnswer, CredentialRequest, OsRandom, Secret};

const MESSAGE: &[u8] = b"From: bob@example.org\r\nSubject: dots\r\n\r\n.leading dot\r\n.\r\n..two\r\nend\r\n";

/// Serves one connection to the end; returns the machine's events.
fn serve(listener: &TcpListener, config: ServerConfig, tls_config: Arc<rustls::ServerConfig>) -> Vec<Event> {
    let (tcp, _) = listener.accept().unwrap();
    let mut conn = Conn::new(tcp, Transcript::off()).unwrap();
    let mut server = Server::new(config, OsRandom);
    let mut events = Vec::new();
    loop {
        while let Some(out) = server.poll_transmit() {
            conn.send(&out).unwrap();
        }
        if server.is_closed() {
            break;
        }
        if let Some(event) = server.poll_event() {
            match &event {
                Event::StartTls => {
                    let info = conn.start_tls_server(tls_config.clone()).unwrap();
                    server.tls_established(info).unwrap();
                }
                Event::Credentials(CredentialRequest::VerifyPassword { authcid, password }) => {
                    let ok = authcid == "alice" && password.expose() == b"wonderland";
                    let answer = if ok { CredentialAnswer::Verified } else { CredentialAnswer::Rejected };
                    server.answer_credentials(answer).unwrap();
                }
                Event::Credentials(CredentialRequest::Password { authcid }) if authcid == "alice" => {
                    server.answer_credentials(CredentialAnswer::Password(Secret::from("wonderland"))).unwrap();
                }
                Event::Credentials(_) => server.answer_credentials(CredentialAnswer::UnknownUser).unwrap(),
                Event::OpenMaildrop { .. } => server
                    .maildrop_opened(vec![MessageInfo::new(MESSAGE.len() as u64, "m-1"), MessageInfo::new(3, "m-2")])
                    .unwrap(),
                Event::Retrieve { msg, .. } => {
                    let body: &[u8] = if *msg == 1 { MESSAGE } else { b"x\r\n" };
                    for chunk in body.chunks(7) {
                        if server.wants_message_data() {
                            server.message_chunk(chunk).unwrap();
                        }
                    }
                    server.message_end().unwrap();
                }
                Event::Commit { .. } => server.commit_done(true).unwrap(),
                _ => {}
            }
            events.push(event);
            continue;
        }
        let Some(data) = conn.recv().unwrap() else { break };
        let data = data.to_vec();
        server.receive(&data).unwrap();
    }
    conn.close();
    events
}

const SCRIPT: &str = r#"
import json, poplib, ssl, sys
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
out = {}
p = poplib.POP3(host, port, timeout=20)
out["welcome"] = p.getwelcome().decode()
out["capa_plain"] = sorted(p.capa().keys())
p.stls(context=ssl.create_default_context(cafile=ca))
out["capa_tls"] = {k: v for k, v in sorted(p.capa().items())}
try:
    p.user("alice"); p.pass_("not-it")
except poplib.error_proto as e:
    out["wrong"] = e.args[0].decode()
p.user("alice")
out["pass"] = p.pass_("wonderland").decode()
out["stat"] = list(p.stat())
out["list"] = [l.decode() for l in p.list()[1]]
out["uidl"] = [l.decode() for l in p.uidl()[1]]
out["retr"] = [l.decode() for l in p.retr(1)[1]]
out["top"] = [l.decode() for l in p.top(1, 1)[1]]
out["dele"] = p.dele(1).decode()
out["stat_after"] = list(p.stat())
out["quit"] = p.quit().decode()
q = poplib.POP3(host, port, timeout=20)
out["apop"] = q.apop("alice", "wonderland").decode()
out["apop_quit"] = q.quit().decode()
print(json.dumps(out))
"#;

#[test]
fn python_poplib_against_our_server() {
    if Command::new("python3").arg("-c").arg("import poplib, ssl").output().map(|o| !o.status.success()).unwrap_or(true)
    {
        panic!("python3 with poplib and ssl is not available (run scripts/install-peers.sh)");
    }
    let ca = TestCa::new("mailwire test CA").unwrap();
    let tls_config = tls::server_config(ca.server(&["localhost", "127.0.0.1"]).unwrap(), None).unwrap();
    let ca_file = std::env::temp_dir().join(format!("mailwire-poplib-ca-{}.pem", std::process::id()));
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let mut config = ServerConfig::new("pop.example.org");
        config.implementation = Some("mailwire test".into());
        let first = serve(&listener, config.clone(), tls_config.clone());
        config.apop = true;
        config.allow_plaintext = false;
        let second = serve(&listener, config, tls_config);
        (first, second)
    });
    let output = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg("127.0.0.1")
        .arg(port.to_string())
        .arg(&ca_file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&ca_file);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "poplib failed:\n{}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    let (first, second) = server.join().unwrap();

    let expect = |key: &str, value: &str| {
        let needle = format!("\"{key}\": {value}");
        assert!(stdout.contains(&needle), "{needle} not in {stdout}");
    };
    expect("welcome", "\"+OK POP3 server ready\"");
    expect(
        "capa_plain",
        "[\"AUTH-RESP-CODE\", \"IMPLEMENTATION\", \"PIPELINING\", \"RESP-CODES\", \"SASL\", \"STLS\", \"TOP\", \"UIDL\"]",
    );
    expect(
        "capa_tls",
        "{\"AUTH-RESP-CODE\": [], \"IMPLEMENTATION\": [\"mailwire\", \"test\"], \"PIPELINING\": [], \
         \"RESP-CODES\": [], \"SASL\": [\"SCRAM-SHA-256-PLUS\", \"SCRAM-SHA-256\", \"SCRAM-SHA-1\", \"PLAIN\", \
         \"LOGIN\"], \"TOP\": [], \"UIDL\": [], \"USER\": []}",
    );
    expect("wrong", "\"-ERR [AUTH] Authentication failed\"");
    expect("pass", "\"+OK Logged in\"");
    expect("stat", &format!("[2, {}]", MESSAGE.len() + 3));
    expect("list", &format!("[\"1 {}\", \"2 3\"]", MESSAGE.len()));
    expect("uidl", "[\"1 m-1\", \"2 m-2\"]");
    expect("retr", "[\"From: bob@example.org\", \"Subject: dots\", \"\", \".leading dot\", \".\", \"..two\", \"end\"]");
    expect("top", "[\"From: bob@example.org\", \"Subject: dots\", \"\", \".leading dot\"]");
    expect("dele", "\"+OK Message deleted\"");
    expect("stat_after", "[1, 3]");
    expect("quit", "\"+OK POP3 server signing off\"");
    expect("apop", "\"+OK Logged in\"");
    expect("apop_quit", "\"+OK POP3 server signing off\"");

    assert!(first.contains(&Event::StartTls));
    assert!(first.contains(&Event::Commit { deleted: vec![1] }));
    assert!(second.iter().any(|e| matches!(e, Event::Credentials(CredentialRequest::Password { .. }))));
    assert!(second.contains(&Event::Commit { deleted: vec![] }));
}
