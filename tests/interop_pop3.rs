//! Our POP3 client (examples/pop3_client) against Dovecot over STLS: every SASL mechanism
//! Dovecot offers, APOP and USER/PASS, each with a good and a bad password, for `alice` and
//! for `odd,user=name` / `pässwörd€`; LIST, UIDL, RETR byte-exact (dot lines, 2000 lines),
//! TOP, DELE + QUIT. The peer is started by scripts/test.sh (MAILWIRE_DOVECOT_*).

mod interop_support;
use interop_support as support;

use support::{ALICE, ODD, dovecot_dir, outcome, run};

fn pop3(args: &[&str]) -> (i32, String, Vec<u8>) {
    let server = support::addr("MAILWIRE_DOVECOT_POP3");
    let ca = dovecot_dir().join("ssl/ca.pem");
    let mut all = vec!["--connect", &server, "--ca-file", ca.to_str().unwrap(), "-v"];
    all.extend_from_slice(args);
    let out = run("pop3_client", &all);
    let (code, stderr) = outcome(&out);
    (code, stderr, out.stdout)
}

/// Logs in with `method` (extra arguments) as each account, with the right secret (exit 0,
/// the listing printed) and a wrong one (exit 4).
fn login_matrix(method: &[&str], token: bool) {
    for (user, password, tok) in [ALICE, ODD] {
        let (secret_flag, good) = if token { ("--token", tok) } else { ("--password", password) };
        let mut args = vec!["--user", user, secret_flag, good, "--list"];
        args.extend_from_slice(method);
        let (code, stderr, stdout) = pop3(&args);
        assert_eq!(code, 0, "{user} {method:?} with the right secret:\n{stderr}");
        assert!(!stdout.is_empty(), "{user}: LIST printed nothing");
        assert!(!stderr.contains(good), "the transcript shows the secret:\n{stderr}");
        let mut args = vec!["--user", user, secret_flag, "wrong-secret"];
        args.extend_from_slice(method);
        let (code, stderr, _) = pop3(&args);
        assert_eq!(code, 4, "{user} {method:?} with a wrong secret must be refused (exit 4):\n{stderr}");
    }
}

#[test]
fn pop3_dovecot_plain() {
    login_matrix(&["--mech", "PLAIN"], false);
}

#[test]
fn pop3_dovecot_login() {
    login_matrix(&["--mech", "LOGIN"], false);
}

#[test]
fn pop3_dovecot_cram_md5() {
    login_matrix(&["--mech", "CRAM-MD5"], false);
}

#[test]
fn pop3_dovecot_digest_md5() {
    login_matrix(&["--mech", "DIGEST-MD5"], false);
}

#[test]
fn pop3_dovecot_scram_sha_1() {
    login_matrix(&["--mech", "SCRAM-SHA-1"], false);
}

#[test]
fn pop3_dovecot_scram_sha_256() {
    login_matrix(&["--mech", "SCRAM-SHA-256"], false);
}

#[test]
fn pop3_dovecot_xoauth2() {
    login_matrix(&["--mech", "XOAUTH2"], true);
}

#[test]
fn pop3_dovecot_oauthbearer() {
    login_matrix(&["--mech", "OAUTHBEARER"], true);
}

#[test]
fn pop3_dovecot_apop() {
    login_matrix(&["--apop"], false);
}

#[test]
fn pop3_dovecot_user_pass() {
    login_matrix(&["--user-pass"], false);
}

#[test]
fn pop3_dovecot_default_mechanism_is_strongest() {
    let (code, stderr, _) = pop3(&["--user", ALICE.0, "--password", ALICE.1]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("AUTH SCRAM-SHA-256"), "expected SCRAM-SHA-256 to be chosen:\n{stderr}");
    assert!(stderr.contains("-- TLS established"), "{stderr}");
}

#[test]
fn pop3_dovecot_list_and_uidl() {
    let (code, stderr, stdout) = pop3(&["--user", ALICE.0, "--password", ALICE.1, "--list", "--uidl"]);
    assert_eq!(code, 0, "{stderr}");
    let text = String::from_utf8(stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "3 LIST + 3 UIDL lines:\n{text}");
    assert_eq!(lines[1], format!("2 {}", support::dot_message().len()), "LIST size of message 2");
    for (i, line) in lines[3..].iter().enumerate() {
        let (n, uid) = line.split_once(' ').unwrap();
        assert_eq!(n, (i + 1).to_string());
        assert!(!uid.is_empty());
    }
}

#[test]
fn pop3_dovecot_retr_dot_lines_byte_exact() {
    let dir = support::scratch("retr");
    let out = dir.join("2.eml");
    let (code, stderr, _) =
        pop3(&["--user", ALICE.0, "--password", ALICE.1, "--retr", "2", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::read(&out).unwrap(), support::dot_message());
}

#[test]
fn pop3_dovecot_retr_big_message() {
    let (code, stderr, stdout) = pop3(&["--user", ALICE.0, "--password", ALICE.1, "--retr", "3"]);
    assert_eq!(code, 0, "{stderr}");
    let text = String::from_utf8(stdout).unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    let expected: String =
        (1..=2000).map(|i| format!("line {i:04}: the quick brown fox jumps over the lazy dog\r\n")).collect();
    assert_eq!(body, expected);
}

#[test]
fn pop3_dovecot_top() {
    let (code, stderr, stdout) = pop3(&["--user", ALICE.0, "--password", ALICE.1, "--top", "2", "2"]);
    assert_eq!(code, 0, "{stderr}");
    let text = String::from_utf8(stdout).unwrap();
    assert!(text.starts_with("From: Bob <bob@example.org>\r\n"), "{text}");
    assert!(
        text.ends_with("\r\n\r\nThe next lines start with dots.\r\n.\r\n"),
        "headers, blank line, 2 lines:\n{text}"
    );
}

#[test]
fn pop3_dovecot_odd_user_retr_8bit() {
    let (code, stderr, stdout) =
        pop3(&["--user", ODD.0, "--password", ODD.1, "--mech", "SCRAM-SHA-256", "--retr", "1"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(String::from_utf8(stdout).unwrap().ends_with("\r\n\r\nGrüße, odd user.\r\n"));
}

#[test]
fn pop3_dovecot_dele_and_quit_commit() {
    let count = || {
        let (code, stderr, stdout) = pop3(&["--user", "bob", "--password", "builder", "--list"]);
        assert_eq!(code, 0, "{stderr}");
        String::from_utf8(stdout).unwrap().lines().count()
    };
    let before = count();
    assert!(before > 0, "bob's mailbox is empty: restart the peers (scripts/test.sh makes a fresh one)");
    let (code, stderr, _) = pop3(&["--user", "bob", "--password", "builder", "--dele", "1"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("C: DELE 1") && stderr.contains("C: QUIT"), "{stderr}");
    assert_eq!(count(), before - 1, "QUIT must commit the deletion");
}

#[test]
fn pop3_dovecot_bad_retr_is_exit_6() {
    let (code, stderr, _) = pop3(&["--user", ALICE.0, "--password", ALICE.1, "--retr", "99"]);
    assert_eq!(code, 6, "{stderr}");
}

#[test]
fn pop3_dovecot_wrong_ca_is_exit_3() {
    let server = support::addr("MAILWIRE_DOVECOT_POP3");
    // Exim's CA did not sign Dovecot's certificate.
    let other = support::exim_dir().join("ssl/ca.pem");
    let out = run(
        "pop3_client",
        &["--connect", &server, "--ca-file", other.to_str().unwrap(), "--user", "x", "--password", "y"],
    );
    assert_eq!(outcome(&out).0, 3, "{}", outcome(&out).1);
}
