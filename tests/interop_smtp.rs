//! Our SMTP client (examples/smtp_client, run as a built program) against Exim 4 and Dovecot's
//! submission service, always over STARTTLS: every SASL mechanism each peer offers, with the
//! right secret (the message is then sent, and found in Exim's mbox or in the SMTP sink behind
//! Dovecot) and a wrong one (exit 4), for `alice` and for `odd,user=name` / `pässwörd€`.
//! Plus examples/tokio_client against Exim. The peers are started by scripts/test.sh
//! (MAILWIRE_EXIM_*, MAILWIRE_DOVECOT_*); a missing peer fails the test, never skips it.
//!
//! What a peer cannot do, and so is not tested against it:
//! - Exim: XOAUTH2 and OAUTHBEARER. Exim has no authenticator for them short of its gsasl
//!   driver (not in Debian's exim4-daemon-heavy build used here, which has Cyrus SASL); the
//!   test below checks that forcing them fails cleanly with exit 7 instead.
//! - Both: EXTERNAL (neither peer is configured to map client certificates to users), and
//!   SCRAM-*-PLUS (Dovecot 2.3 has no channel binding; Exim's Cyrus authenticator is not given
//!   any by Exim).

mod interop_support;
use interop_support as support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::{ALICE, ODD, outcome, run};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Exim,
    Dovecot,
}

impl Peer {
    fn addr(self) -> String {
        support::addr(match self {
            Peer::Exim => "MAILWIRE_EXIM_SMTP",
            Peer::Dovecot => "MAILWIRE_DOVECOT_SUBMISSION",
        })
    }

    fn dir(self) -> PathBuf {
        match self {
            Peer::Exim => support::exim_dir(),
            Peer::Dovecot => support::dovecot_dir(),
        }
    }

    fn ca(self) -> String {
        self.dir().join("ssl/ca.pem").to_str().unwrap().to_string()
    }

    /// Every message the peer delivered so far: Exim's mbox split at `From ` lines, or the
    /// sink's files.
    fn delivered(self) -> Vec<String> {
        match self {
            Peer::Exim => {
                let mbox = std::fs::read(self.dir().join("mail/mbox")).unwrap_or_default();
                let text = String::from_utf8_lossy(&mbox).into_owned();
                text.split("\nFrom ").map(str::to_string).collect()
            }
            Peer::Dovecot => {
                let Ok(entries) = std::fs::read_dir(self.dir().join("sink")) else {
                    return Vec::new();
                };
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                    .filter_map(|e| std::fs::read(e.path()).ok())
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .collect()
            }
        }
    }

    /// The delivered message holding `marker`, waiting for Exim's delivery process.
    fn find(self, marker: &str) -> String {
        let start = Instant::now();
        loop {
            if let Some(m) = self.delivered().into_iter().find(|m| m.contains(marker)) {
                return m;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "{self:?} never delivered the message {marker}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Runs `example` against `peer` over STARTTLS with the peer's CA and `-v`.
fn client(example: &str, peer: Peer, args: &[&str]) -> (i32, String) {
    let server = peer.addr();
    let ca = peer.ca();
    let mut all = vec!["--connect", &server, "--ca-file", &ca, "-v"];
    all.extend_from_slice(args);
    outcome(&run(example, &all))
}

fn smtp(peer: Peer, args: &[&str]) -> (i32, String) {
    client("smtp_client", peer, args)
}

/// The sender address of a test account: the odd name needs a quoted local part.
fn address(user: &str) -> String {
    if user.contains(',') { format!("\"{user}\"@localhost") } else { format!("{user}@localhost") }
}

/// A message file with a unique Message-ID (the marker to look for), 8-bit text and lines
/// that need dot-stuffing.
fn message(tag: &str, from: &str) -> (PathBuf, String) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let marker = format!("{}-{n}-{}@mailwire.test", tag.replace([',', '=', ' '], "_"), std::process::id());
    let text = format!(
        "From: {from}\r\nTo: bob@localhost\r\nSubject: interop {tag}\r\nMessage-ID: <{marker}>\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         Grüße from mailwire.\r\n.leading dot\r\n..two dots\r\n.\r\nlast line\r\n"
    );
    let path = support::scratch(&format!("smtp-{n}")).join("message.eml");
    std::fs::write(&path, text).unwrap();
    (path, marker)
}

/// The body lines of [`message`] as the peer stored them (dots unstuffed).
fn check_body(peer: Peer, stored: &str) {
    let eol = if peer == Peer::Exim { "\n" } else { "\r\n" };
    let body = ["Grüße from mailwire.", ".leading dot", "..two dots", ".", "last line"].join(eol);
    assert!(stored.contains(&body), "{peer:?} stored the body differently:\n{stored}");
}

/// Logs in with `mech` as each account: the right secret authenticates and delivers a
/// message; a wrong one is refused with exit 4.
fn login_matrix(peer: Peer, mech: &str, token: bool) {
    login_matrix_with("smtp_client", peer, mech, token, &[ALICE, ODD]);
}

fn login_matrix_with(example: &str, peer: Peer, mech: &str, token: bool, accounts: &[(&str, &str, &str)]) {
    for &(user, password, tok) in accounts {
        let (secret_flag, good) = if token { ("--token", tok) } else { ("--password", password) };
        let from = address(user);
        let (file, marker) = message(&format!("{peer:?}-{mech}-{user}"), &from);
        let file = file.to_str().unwrap();
        let args = [
            "--user",
            user,
            secret_flag,
            good,
            "--mech",
            mech,
            "--from",
            &from,
            "--to",
            "bob@localhost",
            "--message",
            file,
        ];
        let (code, stderr) = client(example, peer, &args);
        assert_eq!(code, 0, "{example} {peer:?} {user} {mech} with the right secret:\n{stderr}");
        assert!(stderr.contains("-- TLS established"), "{stderr}");
        assert!(stderr.contains(&format!("C: AUTH {mech}")), "{mech} was not used:\n{stderr}");
        assert!(!stderr.contains(good), "the transcript shows the secret:\n{stderr}");
        let stored = peer.find(&marker);
        check_body(peer, &stored);

        let (code, stderr) = client(example, peer, &["--user", user, secret_flag, "wrong-secret", "--mech", mech]);
        assert_eq!(code, 4, "{example} {peer:?} {user} {mech} with a wrong secret must be refused (exit 4):\n{stderr}");
    }
}

// ---------------------------------------------------------------------------------------------
// Exim: PLAIN, LOGIN, CRAM-MD5 (Exim's own authenticators); DIGEST-MD5, SCRAM-SHA-1,
// SCRAM-SHA-256 (Cyrus SASL).

#[test]
fn smtp_exim_plain() {
    login_matrix(Peer::Exim, "PLAIN", false);
}

#[test]
fn smtp_exim_login() {
    login_matrix(Peer::Exim, "LOGIN", false);
}

#[test]
fn smtp_exim_cram_md5() {
    login_matrix(Peer::Exim, "CRAM-MD5", false);
}

#[test]
fn smtp_exim_digest_md5() {
    login_matrix(Peer::Exim, "DIGEST-MD5", false);
}

#[test]
fn smtp_exim_scram_sha_1() {
    login_matrix(Peer::Exim, "SCRAM-SHA-1", false);
}

#[test]
fn smtp_exim_scram_sha_256() {
    login_matrix(Peer::Exim, "SCRAM-SHA-256", false);
}

/// Exim offers no OAuth mechanism: forcing one is "no acceptable mechanism", and no token is
/// sent.
#[test]
fn smtp_exim_oauth_not_offered_is_exit_7() {
    for mech in ["XOAUTH2", "OAUTHBEARER"] {
        let (code, stderr) = smtp(Peer::Exim, &["--user", ALICE.0, "--token", ALICE.2, "--mech", mech]);
        assert_eq!(code, 7, "{mech}:\n{stderr}");
        assert!(!stderr.contains("C: AUTH"), "{stderr}");
    }
}

// ---------------------------------------------------------------------------------------------
// Dovecot submission: everything its passdbs allow, OAuth tokens checked by a passwd-file.

#[test]
fn smtp_dovecot_plain() {
    login_matrix(Peer::Dovecot, "PLAIN", false);
}

#[test]
fn smtp_dovecot_login() {
    login_matrix(Peer::Dovecot, "LOGIN", false);
}

#[test]
fn smtp_dovecot_cram_md5() {
    login_matrix(Peer::Dovecot, "CRAM-MD5", false);
}

#[test]
fn smtp_dovecot_digest_md5() {
    login_matrix(Peer::Dovecot, "DIGEST-MD5", false);
}

#[test]
fn smtp_dovecot_scram_sha_1() {
    login_matrix(Peer::Dovecot, "SCRAM-SHA-1", false);
}

#[test]
fn smtp_dovecot_scram_sha_256() {
    login_matrix(Peer::Dovecot, "SCRAM-SHA-256", false);
}

#[test]
fn smtp_dovecot_xoauth2() {
    login_matrix(Peer::Dovecot, "XOAUTH2", true);
}

#[test]
fn smtp_dovecot_oauthbearer() {
    login_matrix(Peer::Dovecot, "OAUTHBEARER", true);
}

// ---------------------------------------------------------------------------------------------
// Options and exit codes against the real peers.

#[test]
fn smtp_default_mechanism_is_strongest() {
    for peer in [Peer::Exim, Peer::Dovecot] {
        let (code, stderr) = smtp(peer, &["--user", ALICE.0, "--password", ALICE.1]);
        assert_eq!(code, 0, "{peer:?}:\n{stderr}");
        assert!(stderr.contains("C: AUTH SCRAM-SHA-256 [initial response redacted]"), "{peer:?}:\n{stderr}");
        assert!(stderr.contains("C: QUIT"), "{stderr}");
    }
}

#[test]
fn smtp_dovecot_sink_gets_the_envelope() {
    let (file, marker) = message("envelope", "alice@localhost");
    let file = file.to_str().unwrap();
    let to = ["bob@localhost", "\"odd,user=name\"@localhost"];
    let args = [
        "--user",
        ALICE.0,
        "--password",
        ALICE.1,
        "--from",
        "alice@localhost",
        "--to",
        to[0],
        "--to",
        to[1],
        "--message",
        file,
    ];
    let (code, stderr) = smtp(Peer::Dovecot, &args);
    assert_eq!(code, 0, "{stderr}");
    let stored = Peer::Dovecot.find(&marker);
    assert!(stored.starts_with("X-Sink-From: <alice@localhost>"), "{stored}");
    for rcpt in to {
        assert!(stored.contains(&format!("X-Sink-To: <{rcpt}>")), "{rcpt} missing:\n{stored}");
    }
}

/// Exim takes RCPT only after AUTH: without credentials the message is refused (exit 6).
#[test]
fn smtp_exim_unauthenticated_rcpt_is_exit_6() {
    let (file, _) = message("unauthenticated", "alice@localhost");
    let args = ["--from", "alice@localhost", "--to", "bob@localhost", "--message", file.to_str().unwrap()];
    let (code, stderr) = smtp(Peer::Exim, &args);
    assert_eq!(code, 6, "{stderr}");
    assert!(stderr.contains("authentication required"), "{stderr}");
    assert!(stderr.contains("C: QUIT"), "{stderr}");
}

/// A UTF-8 recipient: Exim offers SMTPUTF8, so MAIL carries the parameter and the message is
/// delivered; Dovecot submission does not, so nothing is sent, the session ends with QUIT and
/// the exit code is 6.
#[test]
fn smtp_utf8_recipient() {
    let (file, marker) = message("utf8", "alice@localhost");
    let file = file.to_str().unwrap();
    let args = [
        "--user",
        ALICE.0,
        "--password",
        ALICE.1,
        "--from",
        "alice@localhost",
        "--to",
        "jürgen@localhost",
        "--message",
        file,
    ];
    let (code, stderr) = smtp(Peer::Exim, &args);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("C: MAIL FROM:<alice@localhost> BODY=8BITMIME SMTPUTF8"), "{stderr}");
    assert!(Peer::Exim.find(&marker).contains("jürgen@localhost"));
    let (code, stderr) = smtp(Peer::Dovecot, &args);
    assert_eq!(code, 6, "{stderr}");
    assert!(!stderr.contains("C: MAIL") && stderr.contains("C: QUIT"), "{stderr}");
}

/// Without TLS a password mechanism in the clear is not chosen, and nothing is sent.
#[test]
fn smtp_plaintext_password_without_tls_is_exit_7() {
    for peer in [Peer::Exim, Peer::Dovecot] {
        let (code, stderr) =
            smtp(peer, &["--tls", "none", "--user", ALICE.0, "--password", ALICE.1, "--mech", "PLAIN"]);
        assert_eq!(code, 7, "{peer:?}:\n{stderr}");
        assert!(!stderr.contains("C: AUTH") && !stderr.contains("C: STARTTLS"), "{stderr}");
        // Allowed explicitly, it works (loopback only).
        let args = ["--tls", "none", "--allow-plaintext", "--user", ALICE.0, "--password", ALICE.1, "--mech", "PLAIN"];
        let (code, stderr) = smtp(peer, &args);
        assert_eq!(code, 0, "{peer:?}:\n{stderr}");
    }
}

#[test]
fn smtp_wrong_ca_is_exit_3() {
    // Dovecot's CA did not sign Exim's certificate.
    let server = Peer::Exim.addr();
    let other = Peer::Dovecot.ca();
    let out = run("smtp_client", &["--connect", &server, "--ca-file", &other, "--user", "x", "--password", "y"]);
    let (code, stderr) = outcome(&out);
    assert_eq!(code, 3, "{stderr}");
}

#[test]
fn smtp_insecure_skips_verification() {
    let server = Peer::Exim.addr();
    let out = run("smtp_client", &["--connect", &server, "--insecure", "--user", ALICE.0, "--password", ALICE.1]);
    let (code, stderr) = outcome(&out);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn smtp_password_from_environment() {
    let server = Peer::Dovecot.addr();
    let ca = Peer::Dovecot.ca();
    let out = std::process::Command::new(support::example("smtp_client"))
        .args(["--connect", &server, "--ca-file", &ca, "--user", ODD.0, "--mech", "CRAM-MD5"])
        .env("MAILWIRE_PASSWORD", ODD.1)
        .output()
        .unwrap();
    let (code, stderr) = outcome(&out);
    assert_eq!(code, 0, "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// The tokio driver (examples/tokio_client), which shares no driving code with smtp_client.

#[test]
fn tokio_exim_plain() {
    login_matrix_with("tokio_client", Peer::Exim, "PLAIN", false, &[ALICE, ODD]);
}

#[test]
fn tokio_dovecot_scram_sha_256() {
    login_matrix_with("tokio_client", Peer::Dovecot, "SCRAM-SHA-256", false, &[ALICE, ODD]);
}
