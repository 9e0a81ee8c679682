//! Interop with GNU SASL: our client against `gsasl --server`, and `gsasl --client` against
//! our server, for PLAIN, LOGIN, CRAM-MD5, DIGEST-MD5, SCRAM-SHA-1 and SCRAM-SHA-256, with the
//! right password (both sides succeed) and a wrong one (both sides fail), as `alice` and as
//! `odd,user=name` / `pässwörd€`.
//!
//! `gsasl` without `--connect` speaks a line protocol on stdin/stdout: the first line it
//! writes is the mechanism name; then it writes one base64 line a step (possibly empty) and
//! reads one. Both sides start by writing a line (the client its initial response or nothing,
//! the server its first challenge or nothing) and the non-empty one is forwarded. After its
//! last output each side waits for one more line, which plays the part of the protocol's
//! final success reply. Exit status 0 is success, 1 failure.
//!
//! `gsasl` comes from Debian's `gsasl` package (`scripts/install-peers.sh`, run by
//! `scripts/test.sh` and `.ci/run`). Without it these tests fail, loudly, never skip.
//!
//! What "fails on both sides" means: the gsasl server and our server always detect a wrong
//! password. A client only can where the mechanism proves the server (DIGEST-MD5 `rspauth`,
//! SCRAM's server signature): there the test also demands that the client itself refuses.
//! PLAIN, LOGIN and CRAM-MD5 clients learn the outcome from the server's reply only.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use mailwire::sasl::{
    AuthFailure, ClientContext, CredentialAnswer, CredentialRequest, Credentials, Identity, Mechanism, OsRandom,
    SaslError, Secret, ServerContext, ServerStep, client, server,
};
use md5::{Digest, Md5};

/// How long one line or one exit may take before the peer counts as hung.
const TIMEOUT: Duration = Duration::from_secs(20);

const ALICE: (&str, &str) = ("alice", "wonderland");
const ODD: (&str, &str) = ("odd,user=name", "pässwörd€");

/// Options both sides share (as in shared/peers/gsasl-pair.py): no TLS, service `smtp` at
/// `localhost`, DIGEST-MD5 `auth` only so gsasl never prompts; the realm is added per run.
const COMMON: [&str; 5] =
    ["--quiet", "--no-starttls", "--service=smtp", "--hostname=localhost", "--quality-of-protection=qop-auth"];

/// The DIGEST-MD5 realm of most runs (what Exim/Cyrus offers; the server context's host).
const REALM: &str = "localhost";

/// Whether the client side of `mechanism` verifies the server.
fn verifies_server(mechanism: &Mechanism) -> bool {
    matches!(mechanism, Mechanism::DigestMd5 | Mechanism::ScramSha1 | Mechanism::ScramSha256)
}

/// How many gsasl server lines our client answers with its own messages (initial response
/// included); later lines get the empty "final" line.
fn client_messages(mechanism: &Mechanism) -> usize {
    match mechanism {
        Mechanism::Plain | Mechanism::CramMd5 => 1,
        Mechanism::Login | Mechanism::DigestMd5 => 2,
        Mechanism::ScramSha1 | Mechanism::ScramSha256 => 3,
        other => panic!("no gsasl interop for {other}"),
    }
}

/// Fails the test unless `gsasl` runs. Under CI it must be there; locally the message says
/// how to get it. Never a silent skip.
fn require_gsasl() {
    let found = Command::new("gsasl")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("gsasl is not installed on the CI machine: .ci/run must run scripts/install-peers.sh first");
    }
    eprintln!("\n\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("!!  gsasl (GNU SASL) is not installed: the interop tests cannot run.");
    eprintln!("!!  Install it with scripts/install-peers.sh (apt-get install gsasl).");
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n");
    panic!("gsasl is not installed (run scripts/install-peers.sh)");
}

/// A `gsasl` child process driven line by line, with a timeout on every read and on exit.
/// Dropping it kills the child if it still runs.
struct Peer {
    timeout: Duration,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Option<JoinHandle<String>>,
    transcript: Vec<String>,
}

impl Peer {
    fn spawn(args: &[&str]) -> Self {
        require_gsasl();
        Self::spawn_program("gsasl", args, TIMEOUT)
    }

    fn spawn_program(program: &str, args: &[&str], timeout: Duration) -> Self {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} does not start: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let (sender, lines) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let stdin = child.stdin.take();
        let transcript = vec![format!("$ {program} {}", args.join(" "))];
        Self { timeout, child, stdin, lines, stderr: Some(stderr), transcript }
    }

    /// The next line the peer wrote, `None` once it closed its output.
    fn read_line(&mut self) -> Option<String> {
        match self.lines.recv_timeout(self.timeout) {
            Ok(line) => {
                self.transcript.push(format!("gsasl: {line:?}"));
                Some(line)
            }
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                panic!("the peer sent nothing for {:?}\n{}", self.timeout, self.transcript.join("\n"));
            }
        }
    }

    /// Writes one line; false if the peer is gone.
    fn write_line(&mut self, line: &str) -> bool {
        self.transcript.push(format!("us:    {line:?}"));
        let Some(stdin) = self.stdin.as_mut() else { return false };
        stdin.write_all(line.as_bytes()).and_then(|()| stdin.write_all(b"\n")).and_then(|()| stdin.flush()).is_ok()
    }

    /// Closes stdin and waits for the exit status; a hung peer is killed and fails the test.
    fn finish(&mut self) -> (i32, String) {
        self.stdin = None;
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for gsasl") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the peer did not exit within {:?}\n{}", self.timeout, self.transcript.join("\n"));
            }
            thread::sleep(Duration::from_millis(5));
        };
        let stderr = self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        (status.code().unwrap_or(-1), stderr)
    }

    fn log(&self) -> String {
        self.transcript.join("\n")
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn encode(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

fn decode(line: &str) -> Vec<u8> {
    B64.decode(line.trim()).unwrap_or_else(|e| panic!("gsasl wrote invalid base64 {line:?}: {e}"))
}

/// What happened when our client ran against `gsasl --server`.
#[derive(Debug)]
struct ClientRun {
    /// gsasl's exit status: 0 = it authenticated us.
    server_exit: i32,
    /// An error our client raised during the exchange.
    client_error: Option<SaslError>,
    /// What our client's `finish` said once the exchange was over.
    client_finish: Result<(), SaslError>,
    log: String,
}

/// Our client (knowing `password`) against `gsasl --server` (expecting `server_password`).
/// `realm` is what gsasl offers (`""`: no realm directive at all).
fn our_client_vs_gsasl(
    mechanism: &Mechanism,
    user: &str,
    password: &str,
    server_password: &str,
    realm: &str,
) -> ClientRun {
    let name = mechanism.as_str();
    let mech_arg = format!("--mechanism={name}");
    let realm_arg = format!("--realm={realm}");
    let mut args = vec!["--server", "-d", &mech_arg, "-a", user, "-p", server_password, "--iteration-count=4096"];
    args.extend(COMMON);
    args.push(&realm_arg);
    let mut peer = Peer::spawn(&args);
    assert_eq!(peer.read_line().as_deref(), Some(name), "gsasl names its mechanism\n{}", peer.log());

    let context = ClientContext::new("smtp", "localhost");
    let credentials = Credentials::password(user, password);
    let mut ours = client(mechanism, &credentials, &context, &mut OsRandom).expect("client builds");
    let mut answered = 0;
    let mut client_error = None;
    while let Some(line) = peer.read_line() {
        let challenge = decode(&line);
        let response = if answered >= client_messages(mechanism) {
            Ok(Secret::default())
        } else if answered == 0 && mechanism.client_first() {
            ours.initial_response().map(Option::unwrap_or_default)
        } else {
            ours.step(&challenge)
        };
        answered += 1;
        match response {
            Ok(response) => {
                if !peer.write_line(&encode(response.expose())) {
                    break;
                }
            }
            Err(error) => {
                client_error = Some(error);
                break;
            }
        }
    }
    let (server_exit, stderr) = peer.finish();
    let client_finish = ours.finish(None);
    ClientRun { server_exit, client_error, client_finish, log: format!("{}\nstderr: {stderr}", peer.log()) }
}

/// The server's user table. DIGEST-MD5 secrets are handed out as a password or as the stored
/// HA1, to cover both answers.
struct Users {
    users: HashMap<&'static str, &'static str>,
    digest_as_ha1: bool,
}

impl Users {
    fn new(digest_as_ha1: bool) -> Self {
        Self { users: HashMap::from([ALICE, ODD]), digest_as_ha1 }
    }

    fn answer(&self, request: &CredentialRequest) -> CredentialAnswer {
        let known = |user: &str| self.users.get(user).copied();
        match request {
            CredentialRequest::VerifyPassword { authcid, password } => match known(authcid) {
                Some(stored) if password.expose() == stored.as_bytes() => CredentialAnswer::Verified,
                Some(_) => CredentialAnswer::Rejected,
                None => CredentialAnswer::UnknownUser,
            },
            CredentialRequest::Password { authcid } | CredentialRequest::ScramCredentials { authcid, .. } => {
                known(authcid).map_or(CredentialAnswer::UnknownUser, |p| CredentialAnswer::Password(Secret::from(p)))
            }
            CredentialRequest::DigestSecret { username, realm } => match known(username) {
                None => CredentialAnswer::UnknownUser,
                Some(password) if self.digest_as_ha1 => {
                    // Both test passwords are hashed as UTF-8: `€` is outside ISO-8859-1.
                    let ha1 = Md5::new()
                        .chain_update(username.as_bytes())
                        .chain_update(b":")
                        .chain_update(realm.as_bytes())
                        .chain_update(b":")
                        .chain_update(password.as_bytes())
                        .finalize();
                    CredentialAnswer::DigestHa1(Secret::new(ha1.to_vec()))
                }
                Some(password) => CredentialAnswer::Password(Secret::from(password)),
            },
            other => panic!("unexpected question {other:?}"),
        }
    }
}

/// What happened when `gsasl --client` ran against our server.
#[derive(Debug)]
struct ServerRun {
    /// gsasl's exit status: 0 = it believes it authenticated.
    client_exit: i32,
    /// Our server's outcome.
    outcome: Result<Identity, AuthFailure>,
    log: String,
}

/// `gsasl --client` as `user` with `password` against our server with the fixed user table.
fn gsasl_vs_our_server(mechanism: &Mechanism, user: &str, password: &str, users: &Users) -> ServerRun {
    let name = mechanism.as_str();
    let mech_arg = format!("--mechanism={name}");
    let realm_arg = format!("--realm={REALM}");
    let mut args = vec!["--client", "-d", &mech_arg, "-a", user, "-p", password, "--no-cb"];
    args.extend(COMMON);
    args.push(&realm_arg);
    let mut peer = Peer::spawn(&args);
    assert_eq!(peer.read_line().as_deref(), Some(name), "gsasl names its mechanism\n{}", peer.log());

    let context = ServerContext::new("smtp", REALM);
    let mut ours = server(mechanism, &context, &mut OsRandom).expect("server builds");
    let first = peer.read_line().unwrap_or_else(|| panic!("gsasl --client wrote no first line\n{}", peer.log()));
    let first = decode(&first);
    let mut step = match (mechanism.client_first(), first.is_empty()) {
        (true, false) => ours.start(Some(&first)),
        (true, true) => ours.start(None),
        // A server-first mechanism whose client spoke anyway (gsasl's LOGIN sends the user
        // name at once): as gsasl-pair.py does, our first challenge is skipped.
        (false, false) => match ours.start(None) {
            ServerStep::Challenge(_) => ours.step(&first),
            other => other,
        },
        (false, true) => ours.start(None),
    };
    let outcome = loop {
        step = match step {
            ServerStep::Ask(request) => ours.answer(users.answer(&request)),
            ServerStep::Challenge(challenge) => {
                if !peer.write_line(&encode(&challenge)) {
                    break Err(AuthFailure::Misuse("gsasl went away"));
                }
                match peer.read_line() {
                    Some(line) => ours.step(&decode(&line)),
                    None => break Err(AuthFailure::Misuse("gsasl closed its output")),
                }
            }
            ServerStep::Success { identity, additional } => {
                if let Some(additional) = additional {
                    peer.write_line(&encode(&additional));
                }
                // The line gsasl waits for after its last output: our "235".
                peer.write_line("");
                break Ok(identity);
            }
            ServerStep::Failure(failure) => break Err(failure),
            other => panic!("unexpected server step {other:?}"),
        };
    };
    let (client_exit, stderr) = peer.finish();
    ServerRun { client_exit, outcome, log: format!("{}\nstderr: {stderr}", peer.log()) }
}

/// Our client against `gsasl --server`: both users, right and wrong password.
fn check_our_client(mechanism: Mechanism) {
    for (user, password) in [ALICE, ODD] {
        let run = our_client_vs_gsasl(&mechanism, user, password, password, REALM);
        assert_eq!(run.server_exit, 0, "{mechanism} {user}: gsasl --server refused us\n{}", run.log);
        assert_eq!(run.client_error, None, "{mechanism} {user}: our client failed\n{}", run.log);
        assert_eq!(run.client_finish, Ok(()), "{mechanism} {user}: our client did not accept\n{}", run.log);

        let run = our_client_vs_gsasl(&mechanism, user, "wrong-password", password, REALM);
        assert_ne!(run.server_exit, 0, "{mechanism} {user}: gsasl --server took a wrong password\n{}", run.log);
        if verifies_server(&mechanism) {
            assert!(run.client_finish.is_err(), "{mechanism} {user}: our client believed a failed server\n{}", run.log);
        }
    }
}

/// `gsasl --client` against our server: both users, right and wrong password.
fn check_our_server(mechanism: Mechanism, users: &Users) {
    for (user, password) in [ALICE, ODD] {
        let run = gsasl_vs_our_server(&mechanism, user, password, users);
        assert_eq!(
            run.outcome,
            Ok(Identity { authcid: user.into(), authzid: None }),
            "{mechanism} {user}: our server refused gsasl\n{}",
            run.log
        );
        assert_eq!(run.client_exit, 0, "{mechanism} {user}: gsasl --client failed\n{}", run.log);

        let run = gsasl_vs_our_server(&mechanism, user, "wrong-password", users);
        assert_eq!(
            run.outcome,
            Err(AuthFailure::Credentials),
            "{mechanism} {user}: our server took a wrong password\n{}",
            run.log
        );
        if verifies_server(&mechanism) {
            assert_ne!(run.client_exit, 0, "{mechanism} {user}: gsasl --client believed a failed server\n{}", run.log);
        }
    }
}

/// A peer that hangs fails the test within the timeout instead of hanging it.
#[test]
#[should_panic(expected = "the peer sent nothing")]
fn hung_peer_fails_the_test() {
    let mut peer = Peer::spawn_program("sleep", &["30"], Duration::from_millis(200));
    peer.read_line();
}

/// A peer that never exits fails the test within the timeout.
#[test]
#[should_panic(expected = "the peer did not exit")]
fn peer_that_never_exits_fails_the_test() {
    let mut peer = Peer::spawn_program("sleep", &["30"], Duration::from_millis(200));
    peer.stdin = None;
    peer.finish();
}

#[test]
fn plain_our_client_vs_gsasl_server() {
    check_our_client(Mechanism::Plain);
}

#[test]
fn plain_gsasl_client_vs_our_server() {
    check_our_server(Mechanism::Plain, &Users::new(false));
}

#[test]
fn login_our_client_vs_gsasl_server() {
    check_our_client(Mechanism::Login);
}

#[test]
fn login_gsasl_client_vs_our_server() {
    check_our_server(Mechanism::Login, &Users::new(false));
}

#[test]
fn cram_md5_our_client_vs_gsasl_server() {
    check_our_client(Mechanism::CramMd5);
}

#[test]
fn cram_md5_gsasl_client_vs_our_server() {
    check_our_server(Mechanism::CramMd5, &Users::new(false));
}

#[test]
fn digest_md5_our_client_vs_gsasl_server() {
    check_our_client(Mechanism::DigestMd5);
}

#[test]
fn digest_md5_gsasl_client_vs_our_server_with_password() {
    check_our_server(Mechanism::DigestMd5, &Users::new(false));
}

#[test]
fn digest_md5_gsasl_client_vs_our_server_with_stored_ha1() {
    check_our_server(Mechanism::DigestMd5, &Users::new(true));
}

#[test]
fn scram_sha_1_our_client_vs_gsasl_server() {
    check_our_client(Mechanism::ScramSha1);
}

#[test]
fn scram_sha_1_gsasl_client_vs_our_server() {
    check_our_server(Mechanism::ScramSha1, &Users::new(false));
}

#[test]
fn scram_sha_256_our_client_vs_gsasl_server() {
    check_our_client(Mechanism::ScramSha256);
}

#[test]
fn scram_sha_256_gsasl_client_vs_our_server() {
    check_our_server(Mechanism::ScramSha256, &Users::new(false));
}

/// No realm offered: our client sends none and hashes with the empty realm, as gsasl does
/// (RFC 2831 §2.1.2).
#[test]
fn digest_md5_our_client_vs_gsasl_server_without_realm() {
    for (user, password) in [ALICE, ODD] {
        let run = our_client_vs_gsasl(&Mechanism::DigestMd5, user, password, password, "");
        assert!(!run.log.contains(&encode(b"realm")), "no realm in the challenge\n{}", run.log);
        assert_eq!((run.server_exit, &run.client_error, &run.client_finish), (0, &None, &Ok(())), "{}", run.log);
        let run = our_client_vs_gsasl(&Mechanism::DigestMd5, user, "wrong", password, "");
        assert_ne!(run.server_exit, 0, "{}", run.log);
        assert!(run.client_finish.is_err(), "{}", run.log);
    }
}

/// A non-ASCII password that fits in ISO-8859-1 is hashed as ISO-8859-1 (RFC 2831
/// §2.1.2.1), by gsasl and by us. gsasl hashes a user name as sent even when it fits
/// (measured: `jürgen` is hashed as UTF-8), where the RFC and Cyrus SASL, and our client,
/// convert it too; our server accepts both, so only that direction runs with `jürgen`.
#[test]
fn digest_md5_latin1_range_password_with_gsasl() {
    let password = "pässwörd";
    let run = our_client_vs_gsasl(&Mechanism::DigestMd5, "latin", password, password, REALM);
    assert_eq!((run.server_exit, &run.client_error, &run.client_finish), (0, &None, &Ok(())), "{}", run.log);
    for user in ["latin", "jürgen"] {
        let users = Users { users: HashMap::from([(user, password)]), digest_as_ha1: false };
        let run = gsasl_vs_our_server(&Mechanism::DigestMd5, user, password, &users);
        assert_eq!(run.outcome, Ok(Identity { authcid: user.into(), authzid: None }), "{}", run.log);
        assert_eq!(run.client_exit, 0, "{}", run.log);
        let run = gsasl_vs_our_server(&Mechanism::DigestMd5, user, "passwörd", &users);
        assert_eq!(run.outcome, Err(AuthFailure::Credentials), "{}", run.log);
        assert_ne!(run.client_exit, 0, "{}", run.log);
    }
}
