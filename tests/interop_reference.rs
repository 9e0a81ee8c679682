//! Real clients against mailwire's reference server (examples/server): Python's smtplib
//! (STARTTLS + AUTH) and poplib (STLS, APOP, USER/PASS, RETR), swaks (PLAIN, LOGIN, CRAM-MD5,
//! DIGEST-MD5 over STARTTLS), and the loopback demo itself. Each test starts its own server
//! on free loopback ports with a certificate authority made for it.
//!
//! python3 and swaks are installed by scripts/install-peers.sh; a missing one fails the test.

#[path = "../examples/common/mod.rs"]
mod common;
mod interop_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::tls::TestCa;
use interop_support::{example, scratch};

/// A running reference server, killed when dropped.
struct Server {
    child: Child,
    smtp: String,
    pop3: String,
    dir: PathBuf,
    ca: PathBuf,
    /// The authority behind `ca`, to sign client certificates.
    authority: TestCa,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(name: &str) -> Server {
        Self::start_with(name, &[])
    }

    /// Like `start`, with more server options; the CA file (`ca.pem` in the scratch
    /// directory) is written first, so `--client-ca` can name it.
    fn start_with(name: &str, extra: &[&str]) -> Server {
        let dir = scratch(name);
        let ca = TestCa::new("interop CA").unwrap();
        let (_, chain, key) = ca.server_pem(&["localhost", "127.0.0.1"]).unwrap();
        std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
        std::fs::write(dir.join("cert.pem"), chain).unwrap();
        std::fs::write(dir.join("key.pem"), key).unwrap();
        std::fs::write(dir.join("users"), "alice:wonderland\nodd,user=name:pässwörd€\n").unwrap();
        let mut child = Command::new(example("server"))
            .args(["--smtp", "127.0.0.1:0", "--pop3", "127.0.0.1:0", "--require-tls", "--xmit"])
            .arg("--users")
            .arg(dir.join("users"))
            .arg("--maildir")
            .arg(dir.join("mail"))
            .arg("--tls-cert")
            .arg(dir.join("cert.pem"))
            .arg("--tls-key")
            .arg(dir.join("key.pem"))
            .args(extra.iter().map(|arg| arg.replace("{dir}", dir.to_str().unwrap())))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut addr = |proto: &str| {
            let line = lines.next().expect("the server printed its addresses").unwrap();
            line.strip_prefix(&format!("{proto} ")).unwrap_or_else(|| panic!("unexpected line {line:?}")).to_string()
        };
        let smtp = addr("smtp");
        let pop3 = addr("pop3");
        Server { child, smtp, pop3, ca: dir.join("ca.pem"), dir, authority: ca }
    }

    fn port(addr: &str) -> &str {
        addr.rsplit_once(':').unwrap().1
    }

    /// Messages in `user`'s maildir.
    fn mailbox(&self, user: &str) -> Vec<Vec<u8>> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("mail").join(user).join("new")) else { return Vec::new() };
        let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }
}

fn python(script: &str, args: &[&str]) -> (i32, String, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python").join(script);
    let out = Command::new("python3").arg(path).args(args).output().expect("python3 is installed");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const MESSAGE: &[u8] =
    b"From: alice@localhost\r\nTo: alice@localhost\r\nSubject: interop\r\n\r\nline one\r\n.\r\n..two dots\r\nlast\r\n";

fn smtplib(server: &Server, user: &str, password: &str, mech: Option<&str>) -> (i32, String) {
    let msg = server.dir.join("message.eml");
    std::fs::write(&msg, MESSAGE).unwrap();
    let mut args = vec![
        "127.0.0.1",
        Server::port(&server.smtp),
        server.ca.to_str().unwrap(),
        user,
        password,
        "alice@localhost",
        "alice@localhost",
        msg.to_str().unwrap(),
    ];
    if let Some(mech) = mech {
        args.extend(["--mech", mech]);
    }
    let (code, _, stderr) = python("smtplib_submit.py", &args);
    (code, stderr)
}

#[test]
fn python_smtplib_starttls_login() {
    let server = Server::start("smtplib");
    for mech in [None, Some("PLAIN"), Some("LOGIN"), Some("CRAM-MD5")] {
        let before = server.mailbox("alice").len();
        let (code, stderr) = smtplib(&server, "alice", "wonderland", mech);
        assert_eq!(code, 0, "smtplib {mech:?}: {stderr}");
        let mail = server.mailbox("alice");
        assert_eq!(mail.len(), before + 1, "smtplib {mech:?}: the message was not delivered");
        // smtplib sends the body with CRLF line ends and dot-stuffs it; we store it unstuffed.
        assert!(mail.iter().any(|m| m == MESSAGE), "smtplib {mech:?}: stored message differs");
        let (code, stderr) = smtplib(&server, "alice", "wrong", mech);
        assert_eq!(code, 4, "smtplib {mech:?} with a wrong password must fail authentication: {stderr}");
    }
}

fn swaks(server: &Server, mech: &str, user: &str, password: &str) -> (i32, String) {
    let out = Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port", Server::port(&server.smtp), "--tls", "--ehlo", "swaks.example"])
        .args(["--auth", mech, "--auth-user", user, "--auth-password", password])
        .args(["--from", "alice@localhost", "--to", "alice@localhost", "--timeout", "30"])
        .args(["--header", "Subject: swaks interop"])
        .output()
        .expect("swaks is installed");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn swaks_every_mechanism_over_starttls() {
    let server = Server::start("swaks");
    for mech in ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5"] {
        let before = server.mailbox("alice").len();
        let (code, out) = swaks(&server, mech, "alice", "wonderland");
        assert_eq!(code, 0, "swaks {mech}:\n{out}");
        assert_eq!(server.mailbox("alice").len(), before + 1, "swaks {mech}: not delivered");
        let (code, out) = swaks(&server, mech, "alice", "wrong");
        assert_ne!(code, 0, "swaks {mech} with a wrong password must fail:\n{out}");
        assert!(out.contains("535"), "swaks {mech}: a wrong password gets 535:\n{out}");
        // the password never comes back in a reply
        assert!(!out.lines().any(|l| l.starts_with("<") && l.contains("wonderland")), "{out}");
    }
}

#[test]
fn swaks_odd_user_plain_and_cram_md5() {
    let server = Server::start("swaks-odd");
    for mech in ["PLAIN", "CRAM-MD5"] {
        let (code, out) = swaks(&server, mech, "odd,user=name", "pässwörd€");
        assert_eq!(code, 0, "swaks {mech} as odd,user=name:\n{out}");
    }
}

fn poplib(server: &Server, user: &str, password: &str, method: &str, dele: bool) -> (i32, String, String, PathBuf) {
    let out = scratch(&format!("poplib-{method}-{}", server.mailbox("alice").len()));
    let mut args = vec![
        "127.0.0.1",
        Server::port(&server.pop3),
        server.ca.to_str().unwrap(),
        user,
        password,
        method,
        out.to_str().unwrap(),
    ];
    if dele {
        args.push("--dele");
    }
    let (code, stdout, stderr) = python("poplib_fetch.py", &args);
    (code, stdout, stderr, out)
}

#[test]
fn python_poplib_stls_apop_user_retr() {
    let server = Server::start("poplib");
    let (code, stderr) = smtplib(&server, "alice", "wonderland", None);
    assert_eq!(code, 0, "{stderr}");
    for method in ["apop", "user"] {
        let (code, stdout, stderr, dir) = poplib(&server, "alice", "wonderland", method, false);
        assert_eq!(code, 0, "poplib {method}: {stderr}");
        assert_eq!(stdout.trim(), "count 1", "poplib {method}");
        assert_eq!(std::fs::read(dir.join("1.eml")).unwrap(), MESSAGE, "poplib {method}: RETR differs");
        let (code, _, stderr, _) = poplib(&server, "alice", "wrong", method, false);
        assert_eq!(code, 4, "poplib {method} with a wrong password: {stderr}");
    }
    // DELE + QUIT removes the message.
    let (code, _, stderr, _) = poplib(&server, "alice", "wonderland", "user", true);
    assert_eq!(code, 0, "{stderr}");
    assert!(server.mailbox("alice").is_empty(), "DELE + QUIT did not remove the message");
    let (code, stdout, stderr, _) = poplib(&server, "alice", "wonderland", "apop", false);
    assert_eq!((code, stdout.trim()), (0, "count 0"), "{stderr}");
}

#[test]
fn demo_runs_and_every_step_passes() {
    let out = Command::new(example("demo")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    for secret in ["wonderland", "builder"] {
        assert!(!stdout.contains(secret), "the demo transcript shows a secret:\n{stdout}");
    }
}

/// EXTERNAL takes the identity from the client certificate; a certificate that a trusted
/// client CA signed for a name that is not a user must not authenticate (and so relay):
/// EXTERNAL is then not offered at all, while a certificate naming a user still works.
#[test]
fn reference_external_needs_a_certificate_naming_a_user() {
    let server = Server::start_with("external-user", &["--client-ca", "{dir}/ca.pem"]);
    let ca = &server.authority;
    let mut results = Vec::new();
    for name in ["mallory", "alice"] {
        let (_, chain, key) = ca.client_pem(name).unwrap();
        let cert = server.dir.join(format!("{name}-cert.pem"));
        let key_path = server.dir.join(format!("{name}-key.pem"));
        std::fs::write(&cert, chain).unwrap();
        std::fs::write(&key_path, key).unwrap();
        let message = server.dir.join("message.txt");
        std::fs::write(&message, "Subject: relay?\r\n\r\nhi\r\n").unwrap();
        let out = interop_support::run(
            "smtp_client",
            &[
                "--connect",
                &server.smtp,
                "--ca-file",
                server.ca.to_str().unwrap(),
                "--cert",
                cert.to_str().unwrap(),
                "--key",
                key_path.to_str().unwrap(),
                "--user",
                name,
                "--mech",
                "EXTERNAL",
                "--from",
                "a@example.net",
                "--to",
                "far@elsewhere.example",
                "--message",
                message.to_str().unwrap(),
            ],
        );
        results.push(interop_support::outcome(&out));
    }
    assert_eq!(results[0].0, 7, "mallory: {}", results[0].1);
    assert_eq!(results[1].0, 0, "alice: {}", results[1].1);
}

/// A users file naming a user's password twice is refused at start (exit 2), never silently
/// resolved to one of them.
#[test]
fn reference_server_refuses_a_second_password_line() {
    let dir = scratch("dup-users");
    std::fs::write(dir.join("users"), "alice:wonderland\nalice:other\n").unwrap();
    let out = Command::new(example("server"))
        .args(["--smtp", "127.0.0.1:0", "--users"])
        .arg(dir.join("users"))
        .arg("--maildir")
        .arg(dir.join("mail"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a second password for \"alice\""));
}
