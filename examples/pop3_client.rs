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

use common::tls::{self, ClientTlsOptions};
use common::{Args, Conn, DriveError, Side, Sink, Transcript};
use mailwire::pop3::client::{AuthMethod, Client, ClientConfig, Error, Event, QuitOutcome};
use mailwire::sasl::{Credentials, Mechanism, OsRandom, Secret};
use mailwire::tls::TlsPolicy;

impl_machine!(Client, Event, Error);

const USAGE: &str = "usage: pop3_client --connect HOST:PORT [options]
  --tls starttls|opportunistic|implicit|none   STLS required (default), if offered, TLS first, never
  --ca-file PEM        trust this CA (default: the system bundle)
  --insecure           do not verify the server certificate
  --cert PEM --key PEM present a client certificate (for EXTERNAL)
  --user NAME          log in as NAME
  --password PW        password (or the MAILWIRE_PASSWORD environment variable)
  --token TOKEN        OAuth bearer token (XOAUTH2, OAUTHBEARER)
  --mech NAME          use this SASL mechanism (default: the strongest offered)
  --apop               log in with APOP
  --user-pass          log in with USER/PASS
  --allow-plaintext    permit PLAIN, LOGIN and USER/PASS without TLS
  --list | --uidl | --retr N [--out FILE] | --top N LINES | --dele N | --xmit FILE
                       what to do once logged in, in the order given
  -v                   print the transcript to stderr, secrets redacted
exit: 0 ok, 2 usage, 3 connection/TLS, 4 auth rejected, 5 protocol violation,
      6 command or message rejected, 7 no acceptable mechanism or TLS unavailable";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    StartTls,
    Opportunistic,
    Implicit,
    None,
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
    connect: String,
    tls: TlsMode,
    ca_file: Option<PathBuf>,
    insecure: bool,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    user: Option<String>,
    password: Option<String>,
    token: Option<String>,
    method: Option<AuthMethod>,
    allow_plaintext: bool,
    actions: Vec<Action>,
    verbose: bool,
}

fn parse() -> Result<Options, String> {
    let mut args = Args::from_env();
    let mut o = Options {
        connect: String::new(),
        tls: TlsMode::StartTls,
        ca_file: None,
        insecure: false,
        cert: None,
        key: None,
        user: None,
        password: std::env::var("MAILWIRE_PASSWORD").ok(),
        token: None,
        method: None,
        allow_plaintext: false,
        actions: Vec::new(),
        verbose: false,
    };
    while let Some(opt) = args.next_option() {
        match opt.as_str() {
            "--connect" => o.connect = args.value(&opt)?,
            "--tls" => {
                o.tls = match args.value(&opt)?.as_str() {
                    "starttls" | "stls" => TlsMode::StartTls,
                    "opportunistic" => TlsMode::Opportunistic,
                    "implicit" => TlsMode::Implicit,
                    "none" => TlsMode::None,
                    other => return Err(format!("--tls: unknown mode {other:?}")),
                }
            }
            "--ca-file" => o.ca_file = Some(args.value(&opt)?.into()),
            "--insecure" => o.insecure = true,
            "--cert" => o.cert = Some(args.value(&opt)?.into()),
            "--key" => o.key = Some(args.value(&opt)?.into()),
            "--user" => o.user = Some(args.value(&opt)?),
            "--password" => o.password = Some(args.value(&opt)?),
            "--token" => o.token = Some(args.value(&opt)?),
            "--mech" => o.method = Some(AuthMethod::Sasl(Mechanism::parse(&args.value(&opt)?))),
            "--apop" => o.method = Some(AuthMethod::Apop),
            "--user-pass" => o.method = Some(AuthMethod::UserPass),
            "--allow-plaintext" => o.allow_plaintext = true,
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
            "-v" | "--verbose" => o.verbose = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if o.connect.is_empty() {
        return Err("--connect HOST:PORT is required".into());
    }
    if !o.actions.is_empty() && o.user.is_none() {
        return Err("maildrop commands need --user".into());
    }
    Ok(o)
}

/// How the run ended.
struct Fail(u8, String);

fn protocol_code(e: &Error) -> u8 {
    match e {
        Error::StartTlsNotOffered | Error::StartTlsFailed(_) => 7,
        Error::NoMechanism | Error::NotOffered(_) | Error::InsecureMechanism(_) | Error::NoApopTimestamp => 7,
        Error::GreetingRejected(_) => 3,
        Error::Sasl(_) | Error::Write(_) => 2,
        _ => 5,
    }
}

fn machine(e: Error) -> Fail {
    Fail(protocol_code(&e), e.to_string())
}

fn drive(e: DriveError<Error>) -> Fail {
    match e {
        DriveError::Io(e) => Fail(3, format!("connection: {e}")),
        DriveError::Machine(e) => machine(e),
    }
}

fn run(o: Options) -> Result<(), Fail> {
    let tls_options =
        ClientTlsOptions::from_files(o.ca_file.as_deref(), o.insecure, o.cert.as_deref(), o.key.as_deref())
            .map_err(|e| Fail(2, e.to_string()))?;
    let host = common::host_of(&o.connect).to_string();
    let tls_config = tls::client_config(&tls_options).map_err(|e| Fail(2, e.to_string()))?;
    let server_name = tls::server_name(&host).map_err(|e| Fail(2, e.to_string()))?;
    let sink = if o.verbose { Sink::Stderr } else { Sink::Off };
    let mut conn = Conn::connect(&o.connect, Transcript::new(sink, Side::Client, ""))
        .map_err(|e| Fail(3, format!("{}: {e}", o.connect)))?;

    let mut config = ClientConfig::new(host);
    config.port = o.connect.rsplit_once(':').and_then(|(_, p)| p.parse().ok());
    config.allow_plaintext = o.allow_plaintext;
    config.tls = match o.tls {
        TlsMode::StartTls => TlsPolicy::Required,
        TlsMode::Opportunistic => TlsPolicy::Opportunistic,
        TlsMode::Implicit | TlsMode::None => TlsPolicy::Disabled,
    };
    let mut client = Client::new(config);
    if o.tls == TlsMode::Implicit {
        let info =
            conn.start_tls_client(tls_config.clone(), server_name.clone()).map_err(|e| Fail(3, format!("TLS: {e}")))?;
        client.tls_established(info).map_err(machine)?;
    }

    let credentials = o.user.as_ref().map(|user| Credentials {
        authcid: user.clone(),
        password: o.password.as_ref().map(|p| Secret::from(p.as_str())),
        token: o.token.as_ref().map(|t| Secret::from(t.as_str())),
        ..Credentials::default()
    });
    let mut actions = o.actions.into_iter();
    let mut current: Option<Action> = None;
    let mut body: Vec<u8> = Vec::new();
    let mut failure: Option<Fail> = None;
    let mut rng = OsRandom;
    let mut stdout = std::io::stdout().lock();

    while let Some(event) = conn.next_event(&mut client).map_err(drive)? {
        let mut next = false;
        match event {
            Event::StartTls => {
                let info = conn
                    .start_tls_client(tls_config.clone(), server_name.clone())
                    .map_err(|e| Fail(3, format!("TLS: {e}")))?;
                client.tls_established(info).map_err(machine)?;
            }
            Event::Ready { .. } => match &credentials {
                Some(creds) => {
                    let started = match &o.method {
                        Some(method) => client.authenticate_with(creds, method.clone(), &mut rng),
                        None => client.authenticate(creds, &mut rng).map(|_| ()),
                    };
                    started.map_err(machine)?;
                }
                None => client.quit().map_err(machine)?,
            },
            Event::Authenticated { method } => {
                conn.transcript.note(&format!("logged in with {method:?}"));
                next = true;
            }
            Event::AuthFailed { method, reply, reason } => {
                let why = reason.map(|r| format!(" ({r})")).unwrap_or_default();
                failure = Some(Fail(4, format!("{method:?} rejected: {}{why}", reply.text)));
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
                    Some(Action::Retr(_, Some(path))) => {
                        std::fs::write(path, &body).map_err(|e| Fail(2, format!("{}: {e}", path.display())))?
                    }
                    _ => {
                        let _ = stdout.write_all(&body);
                    }
                }
                next = true;
            }
            Event::Done { .. } => next = true,
            Event::Failed { request, reply } => {
                failure = Some(Fail(6, format!("{request:?} refused: {}", reply.text)));
                client.quit().map_err(machine)?;
            }
            Event::XmitReady => {
                let Some(Action::Xmit(path)) = &current else {
                    return Err(Fail(5, "XTND XMIT go-ahead nobody asked for".into()));
                };
                let message = std::fs::read(path).map_err(|e| Fail(2, format!("{}: {e}", path.display())))?;
                client.send_body_chunk(&message).map_err(machine)?;
                client.finish_body().map_err(machine)?;
            }
            Event::XmitRefused(reply) | Event::XmitDone(Err(reply)) => {
                failure = Some(Fail(6, format!("XTND XMIT refused: {}", reply.text)));
                client.quit().map_err(machine)?;
            }
            Event::XmitDone(Ok(_)) => next = true,
            Event::Quit(QuitOutcome::Failed(reply)) => {
                failure.get_or_insert(Fail(6, format!("QUIT: {}", reply.text)));
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
    conn.close();
    match failure {
        Some(f) => Err(f),
        None if !client.is_closed() => Err(Fail(5, "the server closed the connection early".into())),
        None => Ok(()),
    }
}

fn main() -> ExitCode {
    let options = match parse() {
        Ok(o) => o,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("pop3_client: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(code, msg)) => {
            eprintln!("pop3_client: {msg}");
            ExitCode::from(code)
        }
    }
}
