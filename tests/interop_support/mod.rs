//! Shared by the interop tests: where the peers are (set by scripts/test.sh) and how to run
//! the example programs. A missing peer fails the test with instructions; nothing is skipped.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The value of an environment variable that scripts/test.sh exports, or a failing test.
pub fn env(var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            panic!(
                "{var} is not set{}: the interop peers are started by scripts/test.sh; run it, or start \
                 scripts/peers/start-dovecot.sh / start-exim.sh yourself and export the variables it documents",
                if ci { " (CI=true: a missing peer fails the run)" } else { "" }
            )
        }
    }
}

/// `127.0.0.1:PORT` of a peer whose port is in `var`.
pub fn addr(var: &str) -> String {
    let port: u16 = env(var).parse().unwrap_or_else(|_| panic!("{var} is not a port number"));
    format!("127.0.0.1:{port}")
}

/// Dovecot's state directory (ssl/ca.pem, sink/).
pub fn dovecot_dir() -> PathBuf {
    PathBuf::from(env("MAILWIRE_DOVECOT_DIR"))
}

/// Exim's state directory (ssl/ca.pem, mail/mbox).
pub fn exim_dir() -> PathBuf {
    PathBuf::from(env("MAILWIRE_EXIM_DIR"))
}

/// The path of a built example program (cargo test --all-targets builds them).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: build the examples first (cargo build --examples; scripts/test.sh does)",
        path.display()
    );
    path
}

/// Runs an example with `args` and returns its output (the child is waited for; a hung peer
/// is cut off by the example's own 30 s socket timeouts).
pub fn run(name: &str, args: &[&str]) -> Output {
    Command::new(example(name)).args(args).env_remove("MAILWIRE_PASSWORD").output().unwrap()
}

/// Exit code and stderr, for assertions.
pub fn outcome(out: &Output) -> (i32, String) {
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A fresh scratch directory under the target directory.
pub fn scratch(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().join("scratch").join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The test accounts: (user, password, OAuth token).
pub const ALICE: (&str, &str, &str) = ("alice", "wonderland", "alice-token-123");
/// The user whose name needs SCRAM escaping and whose password is not Latin-1.
pub const ODD: (&str, &str, &str) = ("odd,user=name", "pässwörd€", "odd-token-456");

/// Alice's message 2 as POP3 delivers it (CRLF, unstuffed): lines starting with dots.
pub fn dot_message() -> Vec<u8> {
    let lines = [
        "From: Bob <bob@example.org>",
        "To: Alice <alice@localhost>",
        "Subject: dot-stuffing test",
        "Date: Tue, 14 Nov 2023 22:13:22 +0000",
        "Message-ID: <msg2@example.org>",
        "",
        "The next lines start with dots.",
        ".",
        "..",
        ".leading dot",
        "...three dots",
        ". dot space",
        "end of dot test",
    ];
    lines.iter().flat_map(|l| format!("{l}\r\n").into_bytes()).collect()
}
