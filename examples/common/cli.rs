//! The command line the client examples share: connection, TLS and credential options, the
//! exit codes, opening the socket and running `main`. What the options mean to a protocol (which
//! machine, which commands, which error is which exit code) stays in each example.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use mailwire::sasl::{Credentials, Mechanism, Secret};
use mailwire::tls::{TlsInfo, TlsPolicy};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;

use super::tls::{self, ClientTlsOptions};
use super::{Args, Conn, Side, Sink, Transcript};

/// The exit codes of the client examples.
pub mod exit {
    /// Bad command line, unreadable file, or a request the library refused to write.
    pub const USAGE: u8 = 2;
    /// The connection or the TLS handshake failed, or the server refused the session.
    pub const CONNECTION: u8 = 3;
    /// The server rejected the authentication.
    pub const AUTH: u8 = 4;
    /// The server broke the protocol (STARTTLS/STLS injection included).
    pub const PROTOCOL: u8 = 5;
    /// A command or the message was rejected.
    pub const REJECTED: u8 = 6;
    /// No acceptable mechanism, or TLS required but not available.
    pub const UNAVAILABLE: u8 = 7;
}

/// The usage lines of the options [`ClientOptions`] reads.
pub const COMMON_USAGE: &str = "  --connect HOST:PORT  the server
  --tls starttls|opportunistic|implicit|none   upgrade required (default), if offered, TLS first, never
  --ca-file PEM        trust this CA (default: the system bundle)
  --insecure           do not verify the server certificate
  --cert PEM --key PEM present a client certificate (for EXTERNAL)
  --user NAME          log in as NAME
  --password PW        password (or the MAILWIRE_PASSWORD environment variable)
  --token TOKEN        OAuth bearer token (XOAUTH2, OAUTHBEARER)
  --mech NAME          use this SASL mechanism (default: the strongest offered)
  --allow-plaintext    permit PLAIN and LOGIN without TLS
  -v                   print the transcript to stderr, secrets redacted
  -h, --help           this text";

/// The exit code summary for usage texts.
pub const EXIT_USAGE: &str = "exit: 0 ok, 2 usage, 3 connection/TLS, 4 auth rejected, 5 protocol violation,
      6 command or message rejected, 7 no acceptable mechanism or TLS unavailable";

/// How TLS is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// STARTTLS/STLS, required.
    StartTls,
    /// STARTTLS/STLS when offered.
    Opportunistic,
    /// TLS from the first byte (RFC 8314).
    Implicit,
    /// Never.
    None,
}

impl TlsMode {
    /// The `--tls` value.
    pub fn parse(value: &str) -> Result<Self, String> {
        Ok(match value {
            "starttls" | "stls" => TlsMode::StartTls,
            "opportunistic" => TlsMode::Opportunistic,
            "implicit" => TlsMode::Implicit,
            "none" => TlsMode::None,
            other => return Err(format!("--tls: unknown mode {other:?}")),
        })
    }

    /// The machine's upgrade policy (implicit TLS is done before the machine sees a byte).
    pub fn policy(self) -> TlsPolicy {
        match self {
            TlsMode::StartTls => TlsPolicy::Required,
            TlsMode::Opportunistic => TlsPolicy::Opportunistic,
            TlsMode::Implicit | TlsMode::None => TlsPolicy::Disabled,
        }
    }
}

/// The options every client example takes.
#[derive(Debug)]
pub struct ClientOptions {
    /// `--connect HOST:PORT`.
    pub connect: String,
    /// `--tls`.
    pub tls: TlsMode,
    /// `--ca-file`.
    pub ca_file: Option<PathBuf>,
    /// `--insecure`.
    pub insecure: bool,
    /// `--cert`.
    pub cert: Option<PathBuf>,
    /// `--key`.
    pub key: Option<PathBuf>,
    /// `--user`.
    pub user: Option<String>,
    /// `--password`, or `MAILWIRE_PASSWORD`.
    pub password: Option<String>,
    /// `--token`.
    pub token: Option<String>,
    /// `--mech`.
    pub mech: Option<Mechanism>,
    /// `--allow-plaintext`.
    pub allow_plaintext: bool,
    /// `-v`.
    pub verbose: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect: String::new(),
            tls: TlsMode::StartTls,
            ca_file: None,
            insecure: false,
            cert: None,
            key: None,
            user: None,
            password: std::env::var("MAILWIRE_PASSWORD").ok(),
            token: None,
            mech: None,
            allow_plaintext: false,
            verbose: false,
        }
    }
}

impl ClientOptions {
    /// Reads option `opt` (and its value) if it is one of these; `Ok(false)` if it is not.
    /// `--help` is an empty error: [`main`] prints the usage on standard output and exits 0.
    pub fn take(&mut self, opt: &str, args: &mut Args) -> Result<bool, String> {
        match opt {
            "--connect" => self.connect = args.value(opt)?,
            "--tls" => self.tls = TlsMode::parse(&args.value(opt)?)?,
            "--ca-file" => self.ca_file = Some(args.value(opt)?.into()),
            "--insecure" => self.insecure = true,
            "--cert" => self.cert = Some(args.value(opt)?.into()),
            "--key" => self.key = Some(args.value(opt)?.into()),
            "--user" => self.user = Some(args.value(opt)?),
            "--password" => self.password = Some(args.value(opt)?),
            "--token" => self.token = Some(args.value(opt)?),
            "--mech" => self.mech = Some(Mechanism::parse(&args.value(opt)?)),
            "--allow-plaintext" => self.allow_plaintext = true,
            "-v" | "--verbose" => self.verbose = true,
            "-h" | "--help" => return Err(String::new()),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks what every client needs.
    pub fn check(&self) -> Result<(), String> {
        if self.connect.is_empty() {
            return Err("--connect HOST:PORT is required".into());
        }
        if self.connect.rsplit_once(':').is_none_or(|(_, port)| port.parse::<u16>().is_err()) {
            return Err(format!("--connect {:?}: HOST:PORT expected", self.connect));
        }
        Ok(())
    }

    /// The host part of `--connect`.
    pub fn host(&self) -> &str {
        super::host_of(&self.connect)
    }

    /// The port of `--connect`.
    pub fn port(&self) -> Option<u16> {
        self.connect.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
    }

    /// The credentials, when `--user` was given.
    pub fn credentials(&self) -> Option<Credentials> {
        self.user.as_ref().map(|user| Credentials {
            authcid: user.clone(),
            password: self.password.as_ref().map(|p| Secret::from(p.as_str())),
            token: self.token.as_ref().map(|t| Secret::from(t.as_str())),
            ..Credentials::default()
        })
    }
}

/// How a run ended when it did not succeed: exit code and message.
#[derive(Debug)]
pub struct Fail(pub u8, pub String);

/// A connected socket and what its TLS handshake will need.
pub struct Session {
    /// The connection.
    pub conn: Conn,
    tls_config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl Session {
    /// Reads the TLS files and connects (bad files: exit 2; no connection: exit 3).
    pub fn open(o: &ClientOptions) -> Result<Self, Fail> {
        let usage = |e: tls::TlsSetupError| Fail(exit::USAGE, e.to_string());
        let tls_options =
            ClientTlsOptions::from_files(o.ca_file.as_deref(), o.insecure, o.cert.as_deref(), o.key.as_deref())
                .map_err(usage)?;
        let tls_config = tls::client_config(&tls_options).map_err(usage)?;
        let server_name = tls::server_name(o.host()).map_err(usage)?;
        let sink = if o.verbose { Sink::Stderr } else { Sink::Off };
        let conn = Conn::connect(&o.connect, Transcript::new(sink, Side::Client, ""))
            .map_err(|e| Fail(exit::CONNECTION, format!("{}: {e}", o.connect)))?;
        Ok(Session { conn, tls_config, server_name })
    }

    /// Runs the TLS handshake on the socket (failure: exit 3).
    pub fn start_tls(&mut self) -> Result<TlsInfo, Fail> {
        self.conn
            .start_tls_client(self.tls_config.clone(), self.server_name.clone())
            .map_err(|e| Fail(exit::CONNECTION, format!("TLS: {e}")))
    }
}

/// Runs a client example: parses the command line (a usage error prints `usage` and exits 2),
/// then `run`; a failure is printed as `name: message` and becomes the exit code.
pub fn main<O>(
    name: &str,
    usage: &str,
    parse: impl FnOnce() -> Result<O, String>,
    run: impl FnOnce(O) -> Result<(), Fail>,
) -> ExitCode {
    let options = match parse() {
        Ok(o) => o,
        // `--help`: asked for, so on standard output and a success.
        Err(msg) if msg.is_empty() => {
            println!("{usage}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("{name}: {msg}\n{usage}");
            return ExitCode::from(exit::USAGE);
        }
    };
    match run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(code, msg)) => {
            eprintln!("{name}: {msg}");
            ExitCode::from(code)
        }
    }
}
