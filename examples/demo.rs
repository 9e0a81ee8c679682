//! The loopback demo: mailwire's SMTP and POP3 clients against mailwire's reference server,
//! over real TCP and TLS (rustls, a certificate authority made at start), every way the crate
//! knows to prove who a user is:
//!
//! 1. SMTP: STARTTLS, then AUTH SCRAM-SHA-256-PLUS bound to the TLS session (`tls-exporter`),
//!    and a message with dot lines sent to alice.
//! 2. POP3: STLS, AUTH SCRAM-SHA-256-PLUS, LIST, RETR: the message arrives byte for byte.
//! 3. POP-before-SMTP: that POP3 login lets an SMTP session from the same address relay
//!    without AUTH; after the time-to-live (a simulated clock moved forward) it is refused.
//! 4. XTND XMIT: alice sends a message to bob through POP3; bob (whose SCRAM keys are stored,
//!    not his password) fetches it.
//! 5. TLS client certificates: a client presenting alice's certificate authenticates by SASL
//!    EXTERNAL; one without a certificate is not offered EXTERNAL and cannot use it.
//!
//! It prints the transcript (secrets redacted) and exits 0 only when every step did what it
//! should.

mod common;
mod reference;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use common::tls::{self, ClientTlsOptions, TestCa};
use common::{Conn, Side, Sink, Transcript};
use mailwire::pop3;
use mailwire::pop3::client::AuthMethod;
use mailwire::sasl::{Credentials, Mechanism, OsRandom, ScramHash, ScramKeys};
use mailwire::smtp;
use mailwire::tls::TlsInfo;

crate::impl_machine!(smtp::Client, smtp::client::Event, smtp::client::Error);
crate::impl_machine!(pop3::Client, pop3::client::Event, pop3::client::Error);

/// The POP-before-SMTP time-to-live the demo's server uses.
const RELAY_TTL: Duration = Duration::from_secs(30 * 60);

/// The message of step 1: lines that start with dots, to show the stuffing round trip.
const MESSAGE: &[u8] = b"From: alice@localhost\r\nTo: alice@localhost\r\nSubject: hello over SCRAM-PLUS\r\n\r\n\
Hello Alice,\r\n.\r\n..a line that starts with two dots\r\n.leading dot\r\nend\r\n";

/// The message of step 4, sent through POP3: the recipients are in the headers.
const XMIT_MESSAGE: &[u8] = b"From: alice@localhost\r\nTo: Bob <bob@localhost>\r\nSubject: sent with XTND XMIT\r\n\r\n\
Hi Bob, this travelled over POP3.\r\n";

/// What a client session saw.
#[derive(Debug, Default)]
struct Outcome {
    /// Mechanisms the server offered (after TLS).
    offered: Vec<Mechanism>,
    /// The mechanism that authenticated, if one did.
    authenticated: Option<String>,
    /// Why authentication did not happen, if it was tried.
    auth_error: Option<String>,
    /// Whether the message was accepted (None: none was sent).
    accepted: Option<bool>,
    /// The last reply about the message.
    reply: Option<String>,
    /// Messages fetched by POP3.
    fetched: Vec<Vec<u8>>,
    /// The XTND XMIT result.
    xmit: Option<bool>,
}

/// What an SMTP session should do.
struct SmtpPlan<'a> {
    credentials: Option<Credentials>,
    mechanism: Option<Mechanism>,
    client_cert: Option<tls::Identity>,
    mail: Option<(&'a str, &'a str, &'a [u8])>,
}

fn tls_client(
    roots: &[rustls::pki_types::CertificateDer<'static>],
    identity: Option<tls::Identity>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let options = ClientTlsOptions { roots: roots.to_vec(), insecure: false, identity };
    tls::client_config(&options).map_err(|e| e.to_string())
}

fn start_tls(conn: &mut Conn, config: Arc<rustls::ClientConfig>) -> Result<TlsInfo, String> {
    let name = tls::server_name("localhost").map_err(|e| e.to_string())?;
    conn.start_tls_client(config, name).map_err(|e| format!("TLS: {e}"))
}

fn smtp_session(
    addr: &str,
    roots: &[rustls::pki_types::CertificateDer<'static>],
    plan: SmtpPlan<'_>,
) -> Result<Outcome, String> {
    use smtp::client::Event;
    let tls_config = tls_client(roots, plan.client_cert)?;
    let mut conn =
        Conn::connect(addr, Transcript::new(Sink::Stdout, Side::Client, "    ")).map_err(|e| e.to_string())?;
    let mut config = smtp::ClientConfig::new("demo.example", "localhost");
    config.mechanism = plan.mechanism;
    let mut client = smtp::Client::new(config, Box::new(OsRandom));
    let mut out = Outcome::default();
    let mail = |client: &mut smtp::Client| -> Result<(), String> {
        match plan.mail {
            Some((from, to, _)) => client.send_mail(from, &[to]),
            None => client.quit(),
        }
        .map_err(|e| e.to_string())
    };
    while let Some(event) = conn.next_event(&mut client).map_err(|e| e.to_string())? {
        match event {
            Event::StartTls => {
                let info = start_tls(&mut conn, tls_config.clone())?;
                client.tls_established(info).map_err(|e| e.to_string())?;
            }
            Event::Ready(capabilities) => {
                out.offered = capabilities.auth.clone();
                match &plan.credentials {
                    Some(credentials) => {
                        if let Err(e) = client.authenticate(credentials) {
                            out.auth_error = Some(e.to_string());
                            client.quit().map_err(|e| e.to_string())?;
                        }
                    }
                    None => mail(&mut client)?,
                }
            }
            Event::Authenticated { mechanism } => {
                out.authenticated = Some(mechanism.to_string());
                mail(&mut client)?;
            }
            Event::AuthFailed { reply, .. } => {
                out.auth_error = Some(reply.text());
                client.quit().map_err(|e| e.to_string())?;
            }
            Event::DataReady => {
                let body = plan.mail.map(|(_, _, body)| body).unwrap_or_default();
                client.send_body_chunk(body).map_err(|e| e.to_string())?;
                client.finish_body().map_err(|e| e.to_string())?;
            }
            Event::MessageAccepted(reply) | Event::MessageRejected(reply) | Event::SenderRejected(reply) => {
                out.accepted = Some(reply.is_positive());
                out.reply = Some(format!("{} {}", reply.code, reply.text()));
                client.quit().map_err(|e| e.to_string())?;
            }
            Event::RecipientRejected { reply, .. } => out.reply = Some(format!("{} {}", reply.code, reply.text())),
            Event::Closed(_) => break,
            _ => {}
        }
    }
    conn.close();
    Ok(out)
}

/// What a POP3 session should do.
struct Pop3Plan<'a> {
    user: &'a str,
    password: &'a str,
    mechanism: Mechanism,
    xmit: Option<&'a [u8]>,
}

fn pop3_session(
    addr: &str,
    roots: &[rustls::pki_types::CertificateDer<'static>],
    plan: Pop3Plan<'_>,
) -> Result<Outcome, String> {
    use pop3::client::Event;
    let tls_config = tls_client(roots, None)?;
    let mut conn =
        Conn::connect(addr, Transcript::new(Sink::Stdout, Side::Client, "    ")).map_err(|e| e.to_string())?;
    let mut client = pop3::Client::new(pop3::ClientConfig::new("localhost"));
    let credentials = Credentials::password(plan.user, plan.password);
    let mut out = Outcome::default();
    let mut count = 0;
    let mut next = 0;
    let mut body = Vec::new();
    while let Some(event) = conn.next_event(&mut client).map_err(|e| e.to_string())? {
        match event {
            Event::StartTls => {
                let info = start_tls(&mut conn, tls_config.clone())?;
                client.tls_established(info).map_err(|e| e.to_string())?;
            }
            Event::Capabilities(capabilities) => out.offered = capabilities.sasl.clone(),
            Event::Ready { .. } => {
                let method = AuthMethod::Sasl(plan.mechanism.clone());
                client.authenticate_with(&credentials, method, &mut OsRandom).map_err(|e| e.to_string())?;
            }
            Event::Authenticated { method } => {
                out.authenticated = Some(format!("{method:?}"));
                match plan.xmit {
                    Some(_) => client.xtnd_xmit(),
                    None => client.list(None),
                }
                .map_err(|e| e.to_string())?;
            }
            Event::AuthFailed { reply, .. } => {
                out.auth_error = Some(format!("{reply:?}"));
                client.quit().map_err(|e| e.to_string())?;
            }
            Event::Listing(listing) => {
                count = listing.len();
                next = 1;
                if count == 0 {
                    client.quit().map_err(|e| e.to_string())?;
                } else {
                    client.retr(1).map_err(|e| e.to_string())?;
                }
            }
            Event::MessageStart { .. } => body.clear(),
            Event::MessageData(data) => body.extend_from_slice(&data),
            Event::MessageEnd { .. } => {
                out.fetched.push(std::mem::take(&mut body));
                next += 1;
                if next <= count {
                    client.retr(next as u32).map_err(|e| e.to_string())?;
                } else {
                    client.quit().map_err(|e| e.to_string())?;
                }
            }
            Event::XmitReady => {
                client.send_body_chunk(plan.xmit.unwrap_or_default()).map_err(|e| e.to_string())?;
                client.finish_body().map_err(|e| e.to_string())?;
            }
            Event::XmitRefused(_) => {
                out.xmit = Some(false);
                client.quit().map_err(|e| e.to_string())?;
            }
            Event::XmitDone(result) => {
                out.xmit = Some(result.is_ok());
                client.quit().map_err(|e| e.to_string())?;
            }
            Event::Failed { reply, .. } => return Err(format!("POP3 command failed: {reply:?}")),
            Event::Quit(_) => break,
            _ => {}
        }
    }
    conn.close();
    Ok(out)
}

/// The checks made so far.
#[derive(Default)]
struct Report {
    checks: Vec<(String, bool)>,
}

impl Report {
    fn check(&mut self, what: &str, ok: bool) {
        println!("  {} {what}", if ok { "PASS" } else { "FAIL" });
        self.checks.push((what.to_string(), ok));
    }

    fn step(&mut self, title: &str) {
        println!("\n== {title}");
    }
}

fn run(report: &mut Report) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("mailwire-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ca = TestCa::new("mailwire demo CA").map_err(|e| e.to_string())?;
    let server_identity = ca.server(&["localhost", "127.0.0.1"]).map_err(|e| e.to_string())?;
    let server_tls =
        tls::server_config(server_identity, Some(std::slice::from_ref(&ca.cert))).map_err(|e| e.to_string())?;
    let alice_cert = ca.client("alice").map_err(|e| e.to_string())?;
    let roots = [ca.cert.clone()];

    // bob's password is never stored: only his SCRAM-SHA-256 keys.
    let bob_keys =
        ScramKeys::derive(ScramHash::Sha256, "builder", b"demo-salt-for-bob", 4096).map_err(|e| e.to_string())?;
    let users_file = format!("alice:wonderland\nbob:{}\n", reference::scram_line(ScramHash::Sha256, &bob_keys));
    let users = reference::Users::parse(&users_file)?;
    let loopback = "127.0.0.1:0".parse().map_err(|_| "address")?;
    let server = reference::start(reference::Options {
        smtp: Some(loopback),
        pop3: Some(loopback),
        users,
        maildir: dir.clone(),
        tls: Some(server_tls),
        require_tls: true,
        relay_ttl: RELAY_TTL,
        xmit: true,
        hostname: "localhost".into(),
        transcript: Sink::Off,
    })
    .map_err(|e| format!("cannot start the server: {e}"))?;
    let smtp_addr = server.smtp.ok_or("no SMTP address")?.to_string();
    let pop3_addr = server.pop3.ok_or("no POP3 address")?.to_string();
    println!("mailwire demo: reference server on SMTP {smtp_addr} and POP3 {pop3_addr}, maildir {}", dir.display());

    report.step("1. SMTP: STARTTLS, AUTH SCRAM-SHA-256-PLUS (tls-exporter binding), send a message");
    let alice = Credentials::password("alice", "wonderland");
    let out = smtp_session(
        &smtp_addr,
        &roots,
        SmtpPlan {
            credentials: Some(alice.clone()),
            mechanism: Some(Mechanism::ScramSha256Plus),
            client_cert: None,
            mail: Some(("alice@localhost", "alice@localhost", MESSAGE)),
        },
    )?;
    report.check(
        "SCRAM-SHA-256-PLUS offered only after TLS and used",
        out.authenticated.as_deref() == Some("SCRAM-SHA-256-PLUS"),
    );
    report.check("message accepted", out.accepted == Some(true));

    report.step("2. POP3: STLS, AUTH SCRAM-SHA-256-PLUS, LIST, RETR");
    let out = pop3_session(
        &pop3_addr,
        &roots,
        Pop3Plan { user: "alice", password: "wonderland", mechanism: Mechanism::ScramSha256Plus, xmit: None },
    )?;
    report.check("logged in by SCRAM-SHA-256-PLUS", out.authenticated.is_some());
    report.check(
        "the message arrived byte for byte (dot lines included)",
        out.fetched.first().map(Vec::as_slice) == Some(MESSAGE),
    );

    report.step("3. POP-before-SMTP: the POP3 login lets 127.0.0.1 relay without AUTH, until the TTL passes");
    let relay = |report: &mut Report| {
        smtp_session(
            &smtp_addr,
            &roots,
            SmtpPlan {
                credentials: None,
                mechanism: None,
                client_cert: None,
                mail: Some((
                    "alice@localhost",
                    "alice@localhost",
                    b"Subject: no AUTH\r\n\r\nrelayed by POP-before-SMTP\r\n",
                )),
            },
        )
        .inspect_err(|e| report.check(&format!("SMTP session: {e}"), false))
    };
    let out = relay(report)?;
    report.check("accepted without AUTH right after the POP3 login", out.accepted == Some(true));
    server.shared.clock.advance(RELAY_TTL + Duration::from_secs(1));
    println!(
        "  -- simulated clock moved forward by {} s (the TTL is {} s)",
        RELAY_TTL.as_secs() + 1,
        RELAY_TTL.as_secs()
    );
    let out = relay(report)?;
    report.check(
        &format!("refused after the TTL ({})", out.reply.as_deref().unwrap_or("no reply")),
        out.accepted == Some(false) && out.reply.as_deref().is_some_and(|r| r.starts_with("554")),
    );

    report.step("4. XTND XMIT: alice sends to bob through POP3; bob (stored SCRAM keys only) fetches it");
    let out = pop3_session(
        &pop3_addr,
        &roots,
        Pop3Plan {
            user: "alice",
            password: "wonderland",
            mechanism: Mechanism::ScramSha256Plus,
            xmit: Some(XMIT_MESSAGE),
        },
    )?;
    report.check("XTND XMIT accepted", out.xmit == Some(true));
    let out = pop3_session(
        &pop3_addr,
        &roots,
        Pop3Plan { user: "bob", password: "builder", mechanism: Mechanism::ScramSha256, xmit: None },
    )?;
    report.check("bob logged in with SCRAM-SHA-256 against stored keys", out.authenticated.is_some());
    report.check("bob received the XTND XMIT message", out.fetched.first().map(Vec::as_slice) == Some(XMIT_MESSAGE));

    report.step("5. TLS client certificate: SASL EXTERNAL with alice's certificate; refused without one");
    let out = smtp_session(
        &smtp_addr,
        &roots,
        SmtpPlan {
            credentials: Some(Credentials { authcid: String::new(), ..Credentials::default() }),
            mechanism: Some(Mechanism::External),
            client_cert: Some(alice_cert),
            mail: Some(("alice@localhost", "alice@localhost", b"Subject: by certificate\r\n\r\nhello\r\n")),
        },
    )?;
    report
        .check("authenticated by EXTERNAL as the certificate's name", out.authenticated.as_deref() == Some("EXTERNAL"));
    report.check("message accepted for the certificate's user", out.accepted == Some(true));
    let out = smtp_session(
        &smtp_addr,
        &roots,
        SmtpPlan {
            credentials: Some(Credentials { authcid: String::new(), ..Credentials::default() }),
            mechanism: Some(Mechanism::External),
            client_cert: None,
            mail: None,
        },
    )?;
    report.check(
        "without a certificate EXTERNAL is not offered and not used",
        !out.offered.contains(&Mechanism::External) && out.authenticated.is_none() && out.auth_error.is_some(),
    );

    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn main() -> ExitCode {
    if let Some(arg) = std::env::args().nth(1) {
        let help = arg == "-h" || arg == "--help";
        let usage = "usage: demo\n\nRuns the reference server on loopback ports and our SMTP and POP3 clients against it,\n\
                     printing each session (secrets redacted); exits 0 only when every check passes.";
        if help {
            println!("{usage}");
            return ExitCode::SUCCESS;
        }
        eprintln!("demo: unknown argument {arg:?}\n\n{usage}");
        return ExitCode::from(2);
    }
    let mut report = Report::default();
    if let Err(e) = run(&mut report) {
        report.check(&format!("demo stopped: {e}"), false);
    }
    let failed = report.checks.iter().filter(|(_, ok)| !ok).count();
    println!("\n{} checks passed, {failed} failed", report.checks.len() - failed);
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
