//! The reference server: SMTP submission (STARTTLS, AUTH, POP-before-SMTP) and POP3 (STLS,
//! SASL, APOP, USER/PASS, XTND XMIT) in one process, sharing one POP-before-SMTP table, mail
//! kept in a maildir so POP3 fetches what SMTP accepted. See `--help`.

mod common;
mod reference;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use common::tls;
use common::{Args, Sink};

const USAGE: &str = "\
usage: server [--smtp ADDR] [--pop3 ADDR] --users FILE --maildir DIR
              [--tls-cert PEM --tls-key PEM] [--client-ca PEM] [--require-tls]
              [--relay-ttl SECONDS] [--xmit] [--hostname NAME] [-v]

  --smtp ADDR        SMTP submission listener, e.g. 127.0.0.1:2525 (port 0: any free port)
  --pop3 ADDR        POP3 listener, e.g. 127.0.0.1:1110
  --users FILE       'name:password' lines; '{SCRAM-SHA-256}ITER:SALT:STORED:SERVER' (base64)
                     as the secret stores SCRAM keys instead of a password; '#' comments
  --maildir DIR      DIR/USER/new/ holds each user's mail; DIR/.outbound/ mail for others
  --tls-cert PEM     certificate chain for STARTTLS/STLS (with --tls-key)
  --tls-key PEM      its private key
  --client-ca PEM    accept client certificates signed by this CA (SASL EXTERNAL as the
                     certificate's common name)
  --require-tls      no AUTH, USER/PASS, APOP-less plaintext logins or MAIL before TLS
  --relay-ttl SECS   how long a POP3 login lets its address relay by SMTP (default 1800)
  --xmit             accept XTND XMIT (send mail through POP3)
  --hostname NAME    name in greetings (default localhost)
  -v                 print session transcripts (secrets redacted) to stderr

Prints 'smtp ADDR' and 'pop3 ADDR' (the bound addresses) on stdout, then serves until killed.
Exit codes: 2 usage, 3 cannot listen, create the maildir or load TLS files.";

struct Cli {
    smtp: Option<SocketAddr>,
    pop3: Option<SocketAddr>,
    users: PathBuf,
    maildir: PathBuf,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    require_tls: bool,
    relay_ttl: u64,
    xmit: bool,
    hostname: String,
    verbose: bool,
}

fn parse() -> Result<Cli, String> {
    let mut args = Args::from_env();
    let (mut smtp, mut pop3, mut users, mut maildir, mut cert, mut key, mut client_ca) =
        (None, None, None, None, None, None, None);
    let (mut require_tls, mut xmit, mut verbose) = (false, false, false);
    let mut relay_ttl = 1800;
    let mut hostname = String::from("localhost");
    while let Some(opt) = args.next_option() {
        match opt.as_str() {
            "--smtp" => smtp = Some(args.parsed("--smtp")?),
            "--pop3" => pop3 = Some(args.parsed("--pop3")?),
            "--users" => users = Some(PathBuf::from(args.value("--users")?)),
            "--maildir" => maildir = Some(PathBuf::from(args.value("--maildir")?)),
            "--tls-cert" => cert = Some(PathBuf::from(args.value("--tls-cert")?)),
            "--tls-key" => key = Some(PathBuf::from(args.value("--tls-key")?)),
            "--client-ca" => client_ca = Some(PathBuf::from(args.value("--client-ca")?)),
            "--require-tls" => require_tls = true,
            "--relay-ttl" => relay_ttl = args.parsed("--relay-ttl")?,
            "--xmit" => xmit = true,
            "--hostname" => hostname = args.value("--hostname")?,
            "-v" => verbose = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if smtp.is_none() && pop3.is_none() {
        return Err("give --smtp, --pop3 or both".into());
    }
    if cert.is_some() != key.is_some() {
        return Err("--tls-cert and --tls-key go together".into());
    }
    if client_ca.is_some() && cert.is_none() {
        return Err("--client-ca needs --tls-cert and --tls-key".into());
    }
    if require_tls && cert.is_none() {
        return Err("--require-tls needs --tls-cert and --tls-key".into());
    }
    Ok(Cli {
        smtp,
        pop3,
        users: users.ok_or("--users is required")?,
        maildir: maildir.ok_or("--maildir is required")?,
        cert,
        key,
        client_ca,
        require_tls,
        relay_ttl,
        xmit,
        hostname,
        verbose,
    })
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("server: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let users = match reference::Users::load(&cli.users) {
        Ok(users) => users,
        Err(e) => {
            eprintln!("server: {e}");
            return ExitCode::from(2);
        }
    };
    let tls = match (&cli.cert, &cli.key) {
        (Some(cert), Some(key)) => {
            let config = tls::Identity::from_pem_files(cert, key).and_then(|identity| {
                let cas = cli.client_ca.as_deref().map(tls::load_certs).transpose()?;
                tls::server_config(identity, cas.as_deref())
            });
            match config {
                Ok(config) => Some(config),
                Err(e) => {
                    eprintln!("server: TLS: {e}");
                    return ExitCode::from(3);
                }
            }
        }
        _ => None,
    };
    let options = reference::Options {
        smtp: cli.smtp,
        pop3: cli.pop3,
        users,
        maildir: cli.maildir,
        tls,
        require_tls: cli.require_tls,
        relay_ttl: Duration::from_secs(cli.relay_ttl),
        xmit: cli.xmit,
        hostname: cli.hostname,
        transcript: if cli.verbose { Sink::Stderr } else { Sink::Off },
    };
    let running = match reference::start(options) {
        Ok(running) => running,
        Err(e) => {
            eprintln!("server: {e}");
            return ExitCode::from(3);
        }
    };
    let mut out = std::io::stdout().lock();
    for (name, addr) in [("smtp", running.smtp), ("pop3", running.pop3)] {
        if let Some(addr) = addr {
            let _ = writeln!(out, "{name} {addr}");
        }
    }
    let _ = out.flush();
    drop(out);
    loop {
        std::thread::park();
    }
}
