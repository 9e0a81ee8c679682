//! The SMTP client machine driven by tokio and tokio-rustls: the same `smtp::Client` as
//! `smtp_client`, a different runtime, and no protocol code shared with the blocking examples
//! (only the rustls configuration helpers of `examples/common/tls.rs`). It shows
//! that the machine needs nothing from its driver but bytes in, bytes out and the TLS switch.
//! Run `cargo run --example tokio_client -- --help`.
//!
//! Options are a subset of `smtp_client`'s; the exit codes are the same: 0 success, 2 usage,
//! 3 connection or TLS failure, 4 authentication rejected, 5 protocol violation by the server
//! (STARTTLS injection included), 6 a command or the message rejected, 7 no acceptable
//! mechanism or TLS required but unavailable.

#[allow(dead_code)]
#[path = "common/tls.rs"]
mod tls;

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use mailwire::sasl::{Credentials, Mechanism, OsRandom, Secret};
use mailwire::smtp::client::{Error, Event};
use mailwire::smtp::{Body, Client, ClientConfig, Parameter};
use mailwire::tls::{TlsInfo, TlsPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;

const USAGE: &str = "usage: tokio_client --connect HOST:PORT [options]
  --tls starttls|none  STARTTLS required (default), or never
  --ca-file PEM        trust this CA (default: the system bundle)
  --insecure           do not verify the server certificate
  --user NAME          log in as NAME
  --password PW        password (or the MAILWIRE_PASSWORD environment variable)
  --token TOKEN        OAuth bearer token (XOAUTH2, OAUTHBEARER)
  --mech NAME          use this SASL mechanism (default: the strongest offered)
  --allow-plaintext    permit PLAIN and LOGIN without TLS
  --from ADDR --to ADDR [--to ADDR...] [--message FILE]
                       send FILE (default and `-`: standard input); without --to only log in
  -v                   print the transcript to stderr, secrets redacted
exit: 0 ok, 2 usage, 3 connection/TLS, 4 auth rejected, 5 protocol violation,
      6 command or message rejected, 7 no acceptable mechanism or TLS unavailable";

/// How long one connect, read, write or handshake may take.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
struct Options {
    connect: String,
    starttls: bool,
    ca_file: Option<PathBuf>,
    insecure: bool,
    user: Option<String>,
    password: Option<String>,
    token: Option<String>,
    mech: Option<Mechanism>,
    allow_plaintext: bool,
    from: Option<String>,
    to: Vec<String>,
    message: Option<PathBuf>,
    verbose: bool,
}

fn parse() -> Result<Options, String> {
    let mut o = Options {
        connect: String::new(),
        starttls: true,
        ca_file: None,
        insecure: false,
        user: None,
        password: std::env::var("MAILWIRE_PASSWORD").ok(),
        token: None,
        mech: None,
        allow_plaintext: false,
        from: None,
        to: Vec::new(),
        message: None,
        verbose: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(opt) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{opt} needs a value"));
        match opt.as_str() {
            "--connect" => o.connect = value()?,
            "--tls" => {
                o.starttls = match value()?.as_str() {
                    "starttls" => true,
                    "none" => false,
                    other => return Err(format!("--tls: {other:?} (starttls or none)")),
                }
            }
            "--ca-file" => o.ca_file = Some(value()?.into()),
            "--insecure" => o.insecure = true,
            "--user" => o.user = Some(value()?),
            "--password" => o.password = Some(value()?),
            "--token" => o.token = Some(value()?),
            "--mech" => o.mech = Some(Mechanism::parse(&value()?)),
            "--allow-plaintext" => o.allow_plaintext = true,
            "--from" => o.from = Some(value()?),
            "--to" => o.to.push(value()?),
            "--message" => o.message = Some(value()?.into()),
            "-v" | "--verbose" => o.verbose = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if o.connect.rsplit_once(':').is_none_or(|(_, port)| port.parse::<u16>().is_err()) {
        return Err("--connect HOST:PORT is required".into());
    }
    if !o.to.is_empty() && o.from.is_none() {
        return Err("--to needs --from".into());
    }
    if o.to.is_empty() && (o.from.is_some() || o.message.is_some()) {
        return Err("--from and --message need at least one --to".into());
    }
    Ok(o)
}

/// Exit code and message of a failed run.
struct Fail(u8, String);

fn machine(e: Error) -> Fail {
    let code = match &e {
        Error::StartTlsNotOffered | Error::StartTlsRefused(_) | Error::Select(_) => 7,
        Error::Rejected(_) => 3,
        Error::Sasl(_) | Error::Command(_) => 2,
        Error::InvalidState(_) => 6,
        _ => 5,
    };
    Fail(code, e.to_string())
}

fn connection(e: io::Error) -> Fail {
    Fail(3, format!("connection: {e}"))
}

// ---------------------------------------------------------------------------------------------
// TLS

/// The rustls configuration (shared with the blocking examples: TLS setup only, no protocol).
fn tls_connector(o: &Options) -> Result<TlsConnector, String> {
    let options =
        tls::ClientTlsOptions::from_files(o.ca_file.as_deref(), o.insecure, None, None).map_err(|e| e.to_string())?;
    Ok(TlsConnector::from(tls::client_config(&options).map_err(|e| e.to_string())?))
}

// ---------------------------------------------------------------------------------------------
// The socket, before and after STARTTLS

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while the handshake runs.
    Gone,
}

impl Io {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = async {
            match self {
                Io::Plain(s) => s.read(buf).await,
                Io::Tls(s) => match s.read(buf).await {
                    // No close_notify: SMTP itself says where the session ends.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                    other => other,
                },
                Io::Gone => Err(io::ErrorKind::NotConnected.into()),
            }
        };
        timeout(IO_TIMEOUT, read).await.map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
    }

    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let write = async {
            match self {
                Io::Plain(s) => s.write_all(bytes).await,
                Io::Tls(s) => {
                    s.write_all(bytes).await?;
                    s.flush().await
                }
                Io::Gone => Err(io::ErrorKind::NotConnected.into()),
            }
        };
        timeout(IO_TIMEOUT, write).await.map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
    }

    /// The STARTTLS handshake on the same socket.
    async fn start_tls(&mut self, connector: &TlsConnector, name: ServerName<'static>) -> io::Result<TlsInfo> {
        let Io::Plain(tcp) = std::mem::replace(self, Io::Gone) else {
            return Err(io::Error::other("TLS is already active"));
        };
        let tls = timeout(IO_TIMEOUT, connector.connect(name, tcp))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        let info = TlsInfo { channel_binding: tls::channel_binding(tls.get_ref().1), ..TlsInfo::default() };
        *self = Io::Tls(Box::new(tls));
        Ok(info)
    }

    async fn close(&mut self) {
        let _ = match self {
            Io::Plain(s) => s.shutdown().await,
            Io::Tls(s) => s.shutdown().await,
            Io::Gone => Ok(()),
        };
    }
}

// ---------------------------------------------------------------------------------------------
// Transcript

/// `-v`: every line, `C:` or `S:`, with SASL responses and initial responses hidden and the
/// message body summarised.
struct Transcript {
    on: bool,
    /// The last server line was a `334` challenge: the next client line is a SASL response.
    challenge: bool,
    /// An incomplete server line.
    partial: Vec<u8>,
}

impl Transcript {
    fn note(&self, text: &str) {
        if self.on {
            eprintln!("-- {text}");
        }
    }

    fn received(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end();
            self.challenge = line == "334" || line.starts_with("334 ");
            if self.on {
                eprintln!("S: {line}");
            }
        }
    }

    fn sent(&mut self, bytes: &[u8]) {
        for line in String::from_utf8_lossy(bytes).lines() {
            let shown = if std::mem::take(&mut self.challenge) {
                if line == "*" { line.to_string() } else { "[SASL response redacted]".to_string() }
            } else {
                match line.split(' ').collect::<Vec<_>>().as_slice() {
                    [verb, mech, _, ..] if verb.eq_ignore_ascii_case("AUTH") => {
                        format!("{verb} {mech} [initial response redacted]")
                    }
                    _ => line.to_string(),
                }
            };
            if self.on {
                eprintln!("C: {shown}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The session

fn read_message(path: Option<&Path>) -> Result<Vec<u8>, Fail> {
    match path {
        Some(p) if p.as_os_str() != "-" => std::fs::read(p).map_err(|e| Fail(2, format!("{}: {e}", p.display()))),
        _ => {
            let mut message = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut message)
                .map_err(|e| Fail(2, format!("standard input: {e}")))?;
            Ok(message)
        }
    }
}

/// Starts the transaction, if there is one to send; `false` when there is not or it could
/// not start (the reason in `failure`).
fn start_mail(client: &mut Client, o: &Options, message: &[u8], failure: &mut Option<Fail>) -> bool {
    let Some(from) = o.from.as_deref().filter(|_| !o.to.is_empty()) else {
        return false;
    };
    let to: Vec<&str> = o.to.iter().map(String::as_str).collect();
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

async fn run(o: Options) -> Result<(), Fail> {
    let message = if o.to.is_empty() { Vec::new() } else { read_message(o.message.as_deref())? };
    let connector = tls_connector(&o).map_err(|e| Fail(2, e))?;
    let host = o.connect.rsplit_once(':').map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'));
    let host = host.unwrap_or_default().to_string();
    let server_name = ServerName::try_from(host.clone()).map_err(|e| Fail(2, format!("server name {host}: {e}")))?;
    let tcp = timeout(IO_TIMEOUT, TcpStream::connect(&o.connect))
        .await
        .map_err(|_| Fail(3, format!("{}: timed out", o.connect)))?
        .map_err(|e| Fail(3, format!("{}: {e}", o.connect)))?;
    let _ = tcp.set_nodelay(true);
    let mut io = Io::Plain(tcp);

    let mut config = ClientConfig::new("localhost", host);
    config.server_port = o.connect.rsplit_once(':').and_then(|(_, p)| p.parse().ok());
    config.tls = if o.starttls { TlsPolicy::Required } else { TlsPolicy::Disabled };
    config.allow_plaintext = o.allow_plaintext;
    config.mechanism = o.mech.clone();
    let mut client = Client::new(config, Box::new(OsRandom));
    let credentials = o.user.as_ref().map(|user| Credentials {
        authcid: user.clone(),
        password: o.password.as_deref().map(Secret::from),
        token: o.token.as_deref().map(Secret::from),
        ..Credentials::default()
    });
    let mut transcript = Transcript { on: o.verbose, challenge: false, partial: Vec::new() };
    let mut buf = vec![0u8; 16 * 1024];
    let mut failure: Option<Fail> = None;
    let mut done = false;
    let mut quit_sent = false;
    let mut refused = Vec::new();

    loop {
        while let Some(out) = client.poll_transmit() {
            transcript.sent(&out);
            io.write(&out).await.map_err(connection)?;
        }
        let Some(event) = client.poll_event() else {
            if client.is_closed() {
                break;
            }
            let n = io.read(&mut buf).await.map_err(connection)?;
            if n == 0 {
                break;
            }
            let bytes = &buf[..n];
            transcript.received(bytes);
            if let Err(e) = client.receive(bytes) {
                // A machine that gives up may still have a polite QUIT to send.
                if let Some(out) = client.poll_transmit() {
                    transcript.sent(&out);
                    let _ = io.write(&out).await;
                }
                return Err(machine(e));
            }
            continue;
        };
        match event {
            Event::StartTls => {
                let info =
                    io.start_tls(&connector, server_name.clone()).await.map_err(|e| Fail(3, format!("TLS: {e}")))?;
                transcript.note("TLS established");
                client.tls_established(info).map_err(machine)?;
            }
            Event::Ready(_) => match &credentials {
                Some(creds) => {
                    let mechanism = client.authenticate(creds).map_err(machine)?;
                    transcript.note(&format!("authenticating with {mechanism}"));
                }
                None => done = !start_mail(&mut client, &o, &message, &mut failure),
            },
            Event::Authenticated { mechanism } => {
                transcript.note(&format!("authenticated with {mechanism}"));
                done = !start_mail(&mut client, &o, &message, &mut failure);
            }
            Event::AuthFailed { mechanism, reply, cancelled, server_error, .. } => {
                failure = Some(match (cancelled, server_error) {
                    (Some(error), None) => Fail(5, format!("{mechanism}: bad challenge ({error}); server: {reply}")),
                    (_, error) => {
                        let why = error.map(|e| format!(" (server said {e})")).unwrap_or_default();
                        Fail(4, format!("{mechanism} rejected: {reply}{why}"))
                    }
                });
                done = true;
            }
            Event::SenderRejected(reply) => {
                failure.get_or_insert(Fail(6, format!("MAIL FROM refused: {reply}")));
                done = true;
            }
            Event::RecipientRejected { index, reply } => {
                refused.push(format!("<{}>: {reply}", o.to.get(index).map(String::as_str).unwrap_or("?")));
            }
            Event::DataReady => {
                transcript.note(&format!("sending the message ({} bytes)", message.len()));
                let on = std::mem::replace(&mut transcript.on, false);
                for chunk in message.chunks(64 * 1024) {
                    client.send_body_chunk(chunk).map_err(machine)?;
                    while let Some(out) = client.poll_transmit() {
                        io.write(&out).await.map_err(connection)?;
                    }
                }
                client.finish_body().map_err(machine)?;
                transcript.on = on;
            }
            Event::MessageAccepted(reply) => {
                transcript.note(&format!("message accepted: {reply}"));
                if !refused.is_empty() {
                    failure.get_or_insert(Fail(6, format!("recipients refused: {}", refused.join("; "))));
                }
                done = true;
            }
            Event::MessageRejected(reply) => {
                let also = if refused.is_empty() { String::new() } else { format!(" ({})", refused.join("; ")) };
                failure.get_or_insert(Fail(6, format!("message refused: {reply}{also}")));
                done = true;
            }
            Event::Closed(reply) if !quit_sent => {
                failure.get_or_insert(Fail(3, format!("the server ended the session: {reply}")));
            }
            _ => {}
        }
        if done && !quit_sent && !client.is_closed() {
            match client.quit() {
                Ok(()) => quit_sent = true,
                Err(Error::InvalidState(_)) => {}
                Err(e) => return Err(machine(e)),
            }
        }
    }
    io.close().await;
    match failure {
        Some(f) => Err(f),
        None if !client.is_closed() => Err(Fail(5, "the server closed the connection early".into())),
        None => Ok(()),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let options = match parse() {
        Ok(o) => o,
        Err(msg) if msg.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("tokio_client: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(code, msg)) => {
            eprintln!("tokio_client: {msg}");
            ExitCode::from(code)
        }
    }
}
