//! A POP3 client for pointing mailwire at a real server: `pop3::Client` driven over a blocking
//! socket with rustls. Run `cargo run --example pop3_client -- --help`.
//!
//! Exit codes (the same as `smtp_client`): 0 success, 2 usage, 3 connection or TLS failure,
//! 4 authentication rejected, 5 protocol violation by the server (STLS injection included),
//! 6 a command or message rejected, 7 no acceptable mechanism or TLS required but unavailable.

mod common;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use common::cli::{self, ClientOptions, Fail, Session, TlsMode, exit};
use common::{Args, DriveError};
use mailwire::pop3::client::{AuthMethod, Client, ClientConfig, Error, Event, QuitOutcome};
use mailwire::sasl::OsRandom;

impl_machine!(Client, Event, Error);

fn usage() -> String {
    format!(
        "usage: pop3_client --connect HOST:PORT [options]
{}
  --apop               log in with APOP
  --user-pass          log in with USER/PASS (in the clear: TLS or --allow-plaintext)
  --list | --uidl | --retr N [--out FILE] | --top N LINES | --dele N | --xmit FILE
                       what to do once logged in, in the order given
{}",
        cli::COMMON_USAGE,
        cli::EXIT_USAGE
    )
}

#[derive(Debug)]
enum Action {
    List,
    Uidl,
    Retr(u32, Option<PathBuf>),
    Top(u32, u32),
    Dele(u32),
    Xmit(PathBuf),
}

struct Options {
    client: ClientOptions,
    /// `--apop` or `--user-pass`; else SASL (`--mech` or the strongest offered).
    method: Option<AuthMethod>,
    actions: Vec<Action>,
}

fn parse() -> Result<Options, String> {
    let mut args = Args::from_env();
    let mut o = Options { client: ClientOptions::default(), method: None, actions: Vec::new() };
    while let Some(opt) = args.next_option() {
        if o.client.take(&opt, &mut args)? {
            continue;
        }
        match opt.as_str() {
            "--apop" => o.method = Some(AuthMethod::Apop),
            "--user-pass" => o.method = Some(AuthMethod::UserPass),
            "--list" => o.actions.push(Action::List),
            "--uidl" => o.actions.push(Action::Uidl),
            "--retr" => o.actions.push(Action::Retr(args.parsed(&opt)?, None)),
            "--out" => match o.actions.last_mut() {
                Some(Action::Retr(_, out)) => *out = Some(args.value(&opt)?.into()),
                _ => return Err("--out goes after --retr N".into()),
            },
            "--top" => {
                let msg = args.parsed(&opt)?;
                o.actions.push(Action::Top(msg, args.parsed(&opt)?));
            }
            "--dele" => o.actions.push(Action::Dele(args.parsed(&opt)?)),
            "--xmit" => o.actions.push(Action::Xmit(args.value(&opt)?.into())),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    o.client.check()?;
    if !o.actions.is_empty() && o.client.user.is_none() {
        return Err("maildrop commands need --user".into());
    }
    Ok(o)
}

fn protocol_code(e: &Error) -> u8 {
    match e {
        Error::StartTlsNotOffered | Error::StartTlsFailed(_) => exit::UNAVAILABLE,
        Error::NoMechanism | Error::NotOffered(_) | Error::InsecureMechanism(_) | Error::NoApopTimestamp => {
            exit::UNAVAILABLE
        }
        Error::GreetingRejected(_) => exit::CONNECTION,
        Error::Sasl(_) | Error::Write(_) => exit::USAGE,
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

fn run(o: Options) -> Result<(), Fail> {
    let mut session = Session::open(&o.client)?;
    let mut config = ClientConfig::new(o.client.host());
    config.port = o.client.port();
    config.allow_plaintext = o.client.allow_plaintext;
    config.tls = o.client.tls.policy();
    let mut client = Client::new(config);
    if o.client.tls == TlsMode::Implicit {
        let info = session.start_tls()?;
        client.tls_established(info).map_err(machine)?;
    }
    let credentials = o.client.credentials();
    let method = o.method.or(o.client.mech.clone().map(AuthMethod::Sasl));
    let mut actions = o.actions.into_iter();
    let mut current: Option<Action> = None;
    let mut body: Vec<u8> = Vec::new();
    let mut failure: Option<Fail> = None;
    let mut rng = OsRandom;
    let mut stdout = std::io::stdout().lock();

    while let Some(event) = session.conn.next_event(&mut client).map_err(drive)? {
        let mut next = false;
        match event {
            Event::StartTls => {
                let info = session.start_tls()?;
                client.tls_established(info).map_err(machine)?;
            }
            Event::Ready { .. } => match &credentials {
                Some(creds) => {
                    let started = match &method {
                        Some(method) => client.authenticate_with(creds, method.clone(), &mut rng),
                        None => client.authenticate(creds, &mut rng).map(|_| ()),
                    };
                    started.map_err(machine)?;
                }
                None => client.quit().map_err(machine)?,
            },
            Event::Authenticated { method } => {
                session.conn.transcript.note(&format!("logged in with {method:?}"));
                next = true;
            }
            Event::AuthFailed { method, reply, reason } => {
                let why = reason.map(|r| format!(" ({r})")).unwrap_or_default();
                failure = Some(Fail(exit::AUTH, format!("{method:?} rejected: {}{why}", reply.text)));
                client.quit().map_err(machine)?;
            }
            Event::Listing(list) => {
                for l in list {
                    let _ = writeln!(stdout, "{} {}", l.msg, l.size);
                }
                next = true;
            }
            Event::UniqueIds(ids) => {
                for id in ids {
                    let _ = writeln!(stdout, "{} {}", id.msg, id.uid);
                }
                next = true;
            }
            Event::MessageStart { .. } => body.clear(),
            Event::MessageData(data) => body.extend_from_slice(&data),
            Event::MessageEnd { .. } => {
                match &current {
                    Some(Action::Retr(_, Some(path))) => std::fs::write(path, &body)
                        .map_err(|e| Fail(exit::USAGE, format!("{}: {e}", path.display())))?,
                    _ => {
                        let _ = stdout.write_all(&body);
                    }
                }
                next = true;
            }
            Event::Done { .. } => next = true,
            Event::Failed { request, reply } => {
                failure = Some(Fail(exit::REJECTED, format!("{request:?} refused: {}", reply.text)));
                client.quit().map_err(machine)?;
            }
            Event::XmitReady => {
                let Some(Action::Xmit(path)) = &current else {
                    return Err(Fail(exit::PROTOCOL, "XTND XMIT go-ahead nobody asked for".into()));
                };
                let message = std::fs::read(path).map_err(|e| Fail(exit::USAGE, format!("{}: {e}", path.display())))?;
                client.send_body_chunk(&message).map_err(machine)?;
                client.finish_body().map_err(machine)?;
            }
            Event::XmitRefused(reply) | Event::XmitDone(Err(reply)) => {
                failure = Some(Fail(exit::REJECTED, format!("XTND XMIT refused: {}", reply.text)));
                client.quit().map_err(machine)?;
            }
            Event::XmitDone(Ok(_)) => next = true,
            Event::Quit(QuitOutcome::Failed(reply)) => {
                failure.get_or_insert(Fail(exit::REJECTED, format!("QUIT: {}", reply.text)));
            }
            Event::Quit(_) => {}
            _ => {}
        }
        if next {
            current = actions.next();
            match &current {
                None => client.quit(),
                Some(Action::List) => client.list(None),
                Some(Action::Uidl) => client.uidl(None),
                Some(Action::Retr(n, _)) => client.retr(*n),
                Some(Action::Top(n, lines)) => client.top(*n, *lines),
                Some(Action::Dele(n)) => client.dele(*n),
                Some(Action::Xmit(_)) => client.xtnd_xmit(),
            }
            .map_err(machine)?;
        }
    }
    let _ = stdout.flush();
    session.conn.close();
    match failure {
        Some(f) => Err(f),
        None if !client.is_closed() => Err(Fail(exit::PROTOCOL, "the server closed the connection early".into())),
        None => Ok(()),
    }
}

fn main() -> ExitCode {
    cli::main("pop3_client", &usage(), parse, run)
}
