//! An SMTP submission client for pointing mailwire at a real server: `smtp::Client` driven over
//! a blocking socket with rustls. Run `cargo run --example smtp_client -- --help`.
//!
//! It connects, upgrades with STARTTLS (required unless `--tls` says otherwise), authenticates
//! when `--user` is given, sends `--message` (a file, or `-` / nothing for standard input) from
//! `--from` to every `--to`, and quits. Without `--to` it only authenticates.
//!
//! Exit codes (the same as `pop3_client`): 0 success, 2 usage, 3 connection or TLS failure
//! (a `421` included), 4 authentication rejected, 5 protocol violation by the server (STARTTLS
//! injection included), 6 a command or the message rejected (any recipient refused included),
//! 7 no acceptable mechanism or TLS required but unavailable.

mod common;

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use common::cli::{self, ClientOptions, Fail, Session, TlsMode, exit};
use common::{Args, DriveError};
use mailwire::sasl::OsRandom;
use mailwire::smtp::client::{Error, Event};
use mailwire::smtp::{Body, Client, ClientConfig, Parameter};

impl_machine!(Client, Event, Error);

fn usage() -> String {
    format!(
        "usage: smtp_client --connect HOST:PORT [options]
{}
  --ehlo NAME          the name sent with EHLO (default: localhost)
  --from ADDR          the envelope sender (needed with --to; \"\" for the null sender)
  --to ADDR            a recipient (repeatable); without one, authenticate and quit
  --message FILE       the message, headers included (default and `-`: standard input)
{}",
        cli::COMMON_USAGE,
        cli::EXIT_USAGE
    )
}

/// Bytes of the message handed to the machine at a time.
const CHUNK: usize = 64 * 1024;

struct Options {
    client: ClientOptions,
    ehlo: String,
    from: Option<String>,
    to: Vec<String>,
    message: Option<PathBuf>,
}

fn parse() -> Result<Options, String> {
    let mut args = Args::from_env();
    let mut o = Options {
        client: ClientOptions::default(),
        ehlo: "localhost".into(),
        from: None,
        to: Vec::new(),
        message: None,
    };
    while let Some(opt) = args.next_option() {
        if o.client.take(&opt, &mut args)? {
            continue;
        }
        match opt.as_str() {
            "--ehlo" => o.ehlo = args.value(&opt)?,
            "--from" => o.from = Some(args.value(&opt)?),
            "--to" => o.to.push(args.value(&opt)?),
            "--message" => o.message = Some(args.value(&opt)?.into()),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    o.client.check()?;
    if !o.to.is_empty() && o.from.is_none() {
        return Err("--to needs --from".into());
    }
    if o.to.is_empty() && (o.from.is_some() || o.message.is_some()) {
        return Err("--from and --message need at least one --to".into());
    }
    Ok(o)
}

/// Reads the message: a file, or standard input for `-` or no `--message`.
fn read_message(path: Option<&std::path::Path>) -> Result<Vec<u8>, Fail> {
    let mut message = Vec::new();
    match path {
        Some(p) if p.as_os_str() != "-" => {
            message = std::fs::read(p).map_err(|e| Fail(exit::USAGE, format!("{}: {e}", p.display())))?;
        }
        _ => {
            std::io::stdin()
                .read_to_end(&mut message)
                .map_err(|e| Fail(exit::USAGE, format!("standard input: {e}")))?;
        }
    }
    Ok(message)
}

fn protocol_code(e: &Error) -> u8 {
    match e {
        Error::StartTlsNotOffered | Error::StartTlsRefused(_) | Error::Select(_) => exit::UNAVAILABLE,
        Error::Rejected(_) => exit::CONNECTION,
        Error::Sasl(_) | Error::Command(_) => exit::USAGE,
        // What the client asked for does not fit this server (a UTF-8 address without SMTPUTF8).
        Error::InvalidState(_) => exit::REJECTED,
        _ => exit::PROTOCOL,
    }
}

fn machine(e: Error) -> Fail {
    Fail(protocol_code(&e), e.to_string())
}

fn drive(e: DriveError<Error>) -> Fail {
    match e {
        DriveError::Io(e) => Fail(exit::CONNECTION, format!("connection: {e}")),
        DriveError::Machine(e) => machine(e),
    }
}

/// Starts the mail transaction if there is one; `false` when there is nothing to send or it
/// could not start (the reason in `failure`).
fn start_mail(client: &mut Client, o: &Options, message: &[u8], failure: &mut Option<Fail>) -> bool {
    let Some(from) = o.from.as_deref().filter(|_| !o.to.is_empty()) else {
        return false;
    };
    let to: Vec<&str> = o.to.iter().map(String::as_str).collect();
    // RFC 6152 §3: 8-bit content is declared where the server takes it.
    let eight_bit = !message.is_ascii() && client.capabilities().is_some_and(|c| c.eight_bit_mime);
    let params: &[Parameter<'_>] = if eight_bit { &[Parameter::Body(Body::EightBitMime)] } else { &[] };
    match client.send_mail_with(from, params, &to, &[]) {
        Ok(()) => true,
        // Nothing was sent (e.g. a UTF-8 address for a server without SMTPUTF8): the session
        // is still fine for QUIT.
        Err(e) => {
            *failure = Some(machine(e));
            false
        }
    }
}

fn run(o: Options) -> Result<(), Fail> {
    let message = if o.to.is_empty() { Vec::new() } else { read_message(o.message.as_deref())? };
    let mut session = Session::open(&o.client)?;
    let mut config = ClientConfig::new(o.ehlo.clone(), o.client.host());
    config.server_port = o.client.port();
    config.allow_plaintext = o.client.allow_plaintext;
    config.tls = o.client.tls.policy();
    config.mechanism = o.client.mech.clone();
    let mut client = Client::new(config, Box::new(OsRandom));
    if o.client.tls == TlsMode::Implicit {
        let info = session.start_tls()?;
        client.tls_established(info).map_err(machine)?;
    }
    let credentials = o.client.credentials();
    let mut failure: Option<Fail> = None;
    // Nothing left to do but QUIT, sent as soon as the machine is idle.
    let mut done = false;
    let mut quit_sent = false;
    let mut refused: Vec<String> = Vec::new();

    loop {
        let event = match session.conn.next_event(&mut client) {
            Ok(Some(event)) => event,
            Ok(None) => break,
            Err(e) => {
                // A machine that gives up may still have a polite QUIT to send.
                let _ = session.conn.flush_machine(&mut client);
                return Err(drive(e));
            }
        };
        match event {
            Event::StartTls => {
                let info = session.start_tls()?;
                client.tls_established(info).map_err(machine)?;
            }
            Event::Ready(_) => match &credentials {
                Some(creds) => {
                    let mechanism = client.authenticate(creds).map_err(machine)?;
                    session.conn.transcript.note(&format!("authenticating with {mechanism}"));
                }
                None => done = !start_mail(&mut client, &o, &message, &mut failure),
            },
            Event::Authenticated { mechanism } => {
                session.conn.transcript.note(&format!("authenticated with {mechanism}"));
                done = !start_mail(&mut client, &o, &message, &mut failure);
            }
            Event::AuthFailed { mechanism, reason, reply, cancelled, server_error } => {
                let why = server_error.map(|e| format!(" (server said {e})")).unwrap_or_default();
                failure = Some(match cancelled {
                    // The client gave up on a challenge it could not accept: the server's fault.
                    Some(error) if why.is_empty() => {
                        Fail(exit::PROTOCOL, format!("{mechanism}: bad challenge ({error}); server: {reply}"))
                    }
                    _ => Fail(exit::AUTH, format!("{mechanism} rejected ({reason:?}): {reply}{why}")),
                });
                done = true;
            }
            Event::SenderRejected(reply) => {
                failure.get_or_insert(Fail(exit::REJECTED, format!("MAIL FROM refused: {reply}")));
                done = true;
            }
            Event::RecipientRejected { index, reply } => {
                let to = o.to.get(index).map(String::as_str).unwrap_or("?");
                refused.push(format!("<{to}>: {reply}"));
            }
            Event::DataReady => {
                for chunk in message.chunks(CHUNK) {
                    client.send_body_chunk(chunk).map_err(machine)?;
                    session.conn.flush_machine(&mut client).map_err(|e| drive(DriveError::Io(e)))?;
                }
                client.finish_body().map_err(machine)?;
            }
            Event::MessageAccepted(reply) => {
                session.conn.transcript.note(&format!("message accepted: {reply}"));
                if !refused.is_empty() {
                    let list = refused.join("; ");
                    failure.get_or_insert(Fail(exit::REJECTED, format!("recipients refused: {list}")));
                }
                done = true;
            }
            Event::MessageRejected(reply) => {
                let also = if refused.is_empty() { String::new() } else { format!(" ({})", refused.join("; ")) };
                failure.get_or_insert(Fail(exit::REJECTED, format!("message refused: {reply}{also}")));
                done = true;
            }
            Event::Closed(reply) if !quit_sent => {
                failure.get_or_insert(Fail(exit::CONNECTION, format!("the server ended the session: {reply}")));
            }
            Event::Closed(reply) if !reply.is_positive() => {
                failure.get_or_insert(Fail(exit::REJECTED, format!("QUIT: {reply}")));
            }
            _ => {}
        }
        if done && !quit_sent && !client.is_closed() {
            match client.quit() {
                Ok(()) => quit_sent = true,
                // Replies to pipelined commands are still to come.
                Err(Error::InvalidState(_)) => {}
                Err(e) => return Err(machine(e)),
            }
        }
    }
    let closed = client.is_closed();
    session.conn.close();
    match failure {
        Some(f) => Err(f),
        None if !closed => Err(Fail(exit::PROTOCOL, "the server closed the connection early".into())),
        None => Ok(()),
    }
}

fn main() -> ExitCode {
    cli::main("smtp_client", &usage(), parse, run)
}
