//! The reference server's application side, shared by `examples/server.rs` (the command-line
//! server) and `examples/demo.rs`: the user database, the maildirs, the POP-before-SMTP table,
//! a clock that a demo can move forward, and one thread per connection driving
//! `smtp::Server` or `pop3::Server`.
//!
//! No protocol logic lives here: the machines decide what bytes mean and what to answer; this
//! answers their questions (credentials, relaying, the maildrop) and moves bytes and files.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use mailwire::pop3;
use mailwire::relay::{RelayConfig, RelayDecision, RelayTable, SubmissionPolicy};
use mailwire::sasl::{
    CredentialAnswer, CredentialRequest, Identity, Mechanism, OsRandom, ScramHash, ScramKeys, Secret,
};
use mailwire::smtp::{self, EnhancedCode, Reply};

use crate::common::{Conn, DriveError, Side, Sink, Transcript};

crate::impl_machine!(smtp::Server, smtp::server::Event, smtp::server::Error);
crate::impl_machine!(pop3::Server, pop3::server::Event, pop3::server::Error);

/// The mechanisms both protocols offer, strongest first. The machines offer `-PLUS` only with
/// channel binding, EXTERNAL only with a verified client certificate, and PLAIN/LOGIN only
/// under TLS unless the server runs without `--require-tls`.
const MECHANISMS: [Mechanism; 9] = [
    Mechanism::ScramSha256Plus,
    Mechanism::ScramSha1Plus,
    Mechanism::ScramSha256,
    Mechanism::ScramSha1,
    Mechanism::DigestMd5,
    Mechanism::CramMd5,
    Mechanism::External,
    Mechanism::Plain,
    Mechanism::Login,
];

/// Most connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 64;

/// What one user may authenticate with.
#[derive(Default)]
pub struct Account {
    /// The cleartext password (every mechanism, APOP).
    pub password: Option<Secret>,
    /// Stored SCRAM keys, by hash (SCRAM without the cleartext password).
    pub scram: Vec<(ScramHash, ScramKeys)>,
}

/// The users file: one `name:secret` line per user, `#` comments. The secret is a cleartext
/// password, or `{SCRAM-SHA-1}` / `{SCRAM-SHA-256}` followed by
/// `ITERATIONS:SALT:STOREDKEY:SERVERKEY` (base64) for a stored SCRAM form. A user may have one
/// line of each kind. The name ends at the first `:`.
#[derive(Default)]
pub struct Users {
    accounts: HashMap<String, Account>,
}

impl Users {
    /// Parses the users file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut users = Users::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, secret) = line.split_once(':').ok_or(format!("users line {}: no ':'", n + 1))?;
            if name.is_empty() || name.starts_with('.') || name.contains(['/', '\0']) {
                return Err(format!("users line {}: unusable user name {name:?}", n + 1));
            }
            let account = users.accounts.entry(name.to_string()).or_default();
            let stored = [("{SCRAM-SHA-1}", ScramHash::Sha1), ("{SCRAM-SHA-256}", ScramHash::Sha256)]
                .into_iter()
                .find_map(|(tag, hash)| secret.strip_prefix(tag).map(|rest| (hash, rest)));
            match stored {
                Some((hash, rest)) => {
                    let keys = parse_scram(rest).ok_or(format!("users line {}: bad stored SCRAM keys", n + 1))?;
                    account.scram.push((hash, keys));
                }
                None if account.password.is_some() => {
                    return Err(format!("users line {}: a second password for {name:?}", n + 1));
                }
                None => account.password = Some(Secret::from(secret)),
            }
        }
        Ok(users)
    }

    /// Reads a users file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Users::parse(&text)
    }

    /// Whether `name` is a user.
    pub fn exists(&self, name: &str) -> bool {
        self.accounts.contains_key(name)
    }

    /// What the machines may know of a TLS session: a client certificate stands for the user
    /// it names, and only for an existing one (EXTERNAL succeeds on the certificate's name
    /// alone, so any other name would authenticate, and relay, as nobody).
    pub fn tls_identity(&self, mut info: mailwire::tls::TlsInfo) -> mailwire::tls::TlsInfo {
        info.peer_identity = info.peer_identity.filter(|name| self.exists(name));
        info
    }

    /// Answers a SASL, APOP or USER/PASS question for the machines.
    pub fn answer(&self, request: &CredentialRequest) -> CredentialAnswer {
        let password_of = |user: &str| self.accounts.get(user).and_then(|a| a.password.clone());
        match request {
            CredentialRequest::VerifyPassword { authcid, password } => match self.accounts.get(authcid) {
                None => CredentialAnswer::UnknownUser,
                Some(Account { password: Some(stored), .. }) => {
                    if mailwire::sasl::ct_eq(stored.expose(), password.expose()) {
                        CredentialAnswer::Verified
                    } else {
                        CredentialAnswer::Rejected
                    }
                }
                Some(_) => CredentialAnswer::Rejected,
            },
            CredentialRequest::Password { authcid } => match password_of(authcid) {
                Some(p) => CredentialAnswer::Password(p),
                None => CredentialAnswer::UnknownUser,
            },
            CredentialRequest::DigestSecret { username, .. } => match password_of(username) {
                Some(p) => CredentialAnswer::Password(p),
                None => CredentialAnswer::UnknownUser,
            },
            CredentialRequest::ScramCredentials { authcid, hash } => match self.accounts.get(authcid) {
                None => CredentialAnswer::UnknownUser,
                Some(account) => match account.scram.iter().find(|(h, _)| h == hash) {
                    Some((_, keys)) => CredentialAnswer::ScramKeys(keys.clone()),
                    None => match &account.password {
                        Some(p) => CredentialAnswer::Password(p.clone()),
                        None => CredentialAnswer::UnknownUser,
                    },
                },
            },
            // Acting as someone else is not allowed here; EXTERNAL's certificate name must be
            // a user.
            CredentialRequest::Authorize { authcid, authzid } => {
                if authcid == authzid && self.exists(authcid) {
                    CredentialAnswer::Verified
                } else {
                    CredentialAnswer::Rejected
                }
            }
            _ => CredentialAnswer::Rejected,
        }
    }
}

fn parse_scram(text: &str) -> Option<ScramKeys> {
    let mut parts = text.split(':');
    let iterations = parts.next()?.parse().ok()?;
    let salt = B64.decode(parts.next()?).ok()?;
    let stored_key = B64.decode(parts.next()?).ok()?;
    let server_key = B64.decode(parts.next()?).ok()?;
    if parts.next().is_some() || salt.is_empty() {
        return None;
    }
    Some(ScramKeys { salt, iterations, stored_key: Secret::new(stored_key), server_key: Secret::new(server_key) })
}

/// Formats stored SCRAM keys as a users-file secret.
pub fn scram_line(hash: ScramHash, keys: &ScramKeys) -> String {
    let tag = match hash {
        ScramHash::Sha1 => "{SCRAM-SHA-1}",
        ScramHash::Sha256 => "{SCRAM-SHA-256}",
    };
    format!(
        "{tag}{}:{}:{}:{}",
        keys.iterations,
        B64.encode(&keys.salt),
        B64.encode(keys.stored_key.expose()),
        B64.encode(keys.server_key.expose())
    )
}

/// Wall-clock time as the relay table sees it, plus an offset a demo can move forward to show
/// expiry without waiting.
#[derive(Default)]
pub struct Clock {
    offset_secs: AtomicU64,
}

impl Clock {
    /// Now, since the UNIX epoch, plus the offset.
    pub fn now(&self) -> Duration {
        let real = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        real + Duration::from_secs(self.offset_secs.load(Ordering::Relaxed))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.offset_secs.fetch_add(by.as_secs(), Ordering::Relaxed);
    }
}

/// How the reference server runs.
pub struct Options {
    /// Where SMTP listens (port 0: any free one).
    pub smtp: Option<SocketAddr>,
    /// Where POP3 listens.
    pub pop3: Option<SocketAddr>,
    /// The users.
    pub users: Users,
    /// The maildir root: `DIR/USER/new/` holds each user's messages, `DIR/.outbound/` mail for
    /// addresses that are not local users.
    pub maildir: PathBuf,
    /// TLS: the server configuration (with a client CA when client certificates are wanted).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Refuse AUTH, USER/PASS and MAIL before TLS.
    pub require_tls: bool,
    /// How long a POP3 login lets its address relay.
    pub relay_ttl: Duration,
    /// Accept XTND XMIT.
    pub xmit: bool,
    /// The host name in greetings.
    pub hostname: String,
    /// Where session transcripts go.
    pub transcript: Sink,
}

/// What every session shares.
pub struct Shared {
    /// The options.
    pub options: Options,
    /// POP-before-SMTP.
    pub relay: Mutex<RelayTable>,
    /// The clock for the relay table.
    pub clock: Clock,
    open_maildrops: Mutex<HashSet<String>>,
    connections: AtomicUsize,
    counter: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running server: its addresses and shared state.
pub struct Running {
    /// Where SMTP listens.
    pub smtp: Option<SocketAddr>,
    /// Where POP3 listens.
    pub pop3: Option<SocketAddr>,
    /// The shared state (relay table, clock).
    pub shared: Arc<Shared>,
}

/// Binds the listeners and serves each in a thread of its own.
pub fn start(options: Options) -> io::Result<Running> {
    let context = |what: String| move |e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
    let tmp = options.maildir.join(".tmp");
    fs::create_dir_all(&tmp).map_err(context(format!("maildir {}", tmp.display())))?;
    let bind = |addr: SocketAddr| TcpListener::bind(addr).map_err(context(format!("cannot listen on {addr}")));
    let smtp = options.smtp.map(bind).transpose()?;
    let pop3 = options.pop3.map(bind).transpose()?;
    let relay = RelayTable::new(RelayConfig { ttl: options.relay_ttl, ..RelayConfig::default() });
    let shared = Arc::new(Shared {
        options,
        relay: Mutex::new(relay),
        clock: Clock::default(),
        open_maildrops: Mutex::new(HashSet::new()),
        connections: AtomicUsize::new(0),
        counter: AtomicU64::new(0),
    });
    let running = Running {
        smtp: smtp.as_ref().map(TcpListener::local_addr).transpose()?,
        pop3: pop3.as_ref().map(TcpListener::local_addr).transpose()?,
        shared: shared.clone(),
    };
    if let Some(listener) = smtp {
        let shared = shared.clone();
        thread::spawn(move || serve(listener, shared, smtp_session, b"421 4.3.2 Too many connections, try later\r\n"));
    }
    if let Some(listener) = pop3 {
        thread::spawn(move || {
            serve(listener, shared, pop3_session, b"-ERR [SYS/TEMP] Too many connections, try later\r\n")
        });
    }
    Ok(running)
}

type Session = fn(&mut Conn, &Shared) -> Result<(), String>;

fn serve(listener: TcpListener, shared: Arc<Shared>, session: Session, busy: &'static [u8]) {
    for tcp in listener.incoming() {
        let Ok(mut tcp) = tcp else { continue };
        if shared.connections.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            shared.connections.fetch_sub(1, Ordering::SeqCst);
            // Too many sessions: say so in the protocol's words, then hang up.
            let _ = tcp.write_all(busy);
            continue;
        }
        let shared = shared.clone();
        thread::spawn(move || {
            run_session(tcp, &shared, session);
            shared.connections.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

fn run_session(tcp: TcpStream, shared: &Shared, session: Session) {
    let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let transcript = Transcript::new(shared.options.transcript, Side::Server, format!("[server {peer}] "));
    let Ok(mut conn) = Conn::new(tcp, transcript) else { return };
    if let Err(e) = session(&mut conn, shared) {
        conn.transcript.note(&format!("session ended: {e}"));
    }
    conn.close();
}

fn drive<E: std::fmt::Display>(e: DriveError<E>) -> String {
    e.to_string()
}

impl Shared {
    fn unique(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        // The counter is padded so that names sort in delivery order (POP3 numbers messages
        // by name).
        format!("{}.{}.{n:08}.mailwire", t.as_secs(), std::process::id())
    }

    /// The client's address. When the socket cannot tell, the unspecified address: POP3
    /// logins from such a session are not recorded, so it never matches the relay table (a
    /// loopback fallback would let it relay on any loopback login).
    fn peer_ip(conn: &Conn) -> IpAddr {
        conn.peer().map(|a| a.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    /// The user a recipient address belongs to: its local part, if that is a user.
    fn local_user(&self, address: &str) -> Option<String> {
        let local = address.rsplit_once('@').map_or(address, |(l, _)| l);
        let local = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')).unwrap_or(local);
        self.options.users.exists(local).then(|| local.to_string())
    }

    /// A new file in the maildir's `tmp/`, for a message being received.
    fn incoming(&self) -> io::Result<(PathBuf, File)> {
        let path = self.options.maildir.join(".tmp").join(self.unique());
        let file = File::create(&path)?;
        Ok((path, file))
    }

    /// Delivers the message in `.tmp` to each recipient: a local user's `new/`, or `.outbound/`.
    fn deliver(&self, tmp: &Path, recipients: &[String]) -> io::Result<()> {
        let mut targets: Vec<PathBuf> = recipients
            .iter()
            .map(|r| match self.local_user(r) {
                Some(user) => self.options.maildir.join(user).join("new"),
                None => self.options.maildir.join(".outbound"),
            })
            .collect();
        targets.sort();
        targets.dedup();
        for dir in targets {
            fs::create_dir_all(&dir)?;
            fs::hard_link(tmp, dir.join(self.unique()))
                .or_else(|_| fs::copy(tmp, dir.join(self.unique())).map(drop))?;
        }
        fs::remove_file(tmp)
    }
}

/// The address the client connected to, which DIGEST-MD5 clients may name in `digest-uri`
/// instead of the host name.
fn host_aliases(conn: &Conn) -> Vec<String> {
    conn.local().map(|a| vec![a.ip().to_string()]).unwrap_or_default()
}

/// One SMTP session: `smtp::Server` driven over the connection.
fn smtp_session(conn: &mut Conn, shared: &Shared) -> Result<(), String> {
    let o = &shared.options;
    let mut config = smtp::ServerConfig::new(o.hostname.clone());
    config.host_aliases = host_aliases(conn);
    config.tls_available = o.tls.is_some();
    config.require_tls_for_auth = o.require_tls;
    config.require_tls_for_mail = o.require_tls;
    config.mechanisms_after_tls = MECHANISMS.to_vec();
    config.mechanisms_before_tls = if o.require_tls { Vec::new() } else { MECHANISMS.to_vec() };
    let mut server = smtp::Server::new(config, Box::new(OsRandom));
    let ip = Shared::peer_ip(conn);
    let policy = SubmissionPolicy::default();
    let mut recipients: Vec<String> = Vec::new();
    let mut body: Option<(PathBuf, File)> = None;
    use smtp::server::Event;
    while let Some(event) = conn.next_event(&mut server).map_err(drive)? {
        match event {
            Event::StartTls => {
                let tls = o.tls.clone().ok_or("STARTTLS without a TLS configuration")?;
                let info = conn.start_tls_server(tls).map_err(|e| format!("TLS: {e}"))?;
                server.tls_established(o.users.tls_identity(info)).map_err(|e| e.to_string())?;
            }
            Event::Credentials(request) => {
                server.answer_credentials(o.users.answer(&request)).map_err(|e| e.to_string())?;
            }
            Event::Authenticated { identity, mechanism } => {
                conn.transcript.note(&format!("authenticated {} by {mechanism}", identity.acting_as()));
            }
            Event::Mail { .. } => {
                recipients.clear();
                server.accept().map_err(|e| e.to_string())?;
            }
            Event::Rcpt { to, identity, .. } => {
                let now = shared.clock.now();
                let decision = policy.decide(&lock(&shared.relay), identity.as_ref(), ip, now, false);
                if decision == RelayDecision::Denied {
                    conn.transcript.note(&format!("relay denied for {ip}"));
                    let reply =
                        Reply::enhanced(554, EnhancedCode::new(5, 7, 1), "Relay access denied: authenticate first");
                    server.reject(reply).map_err(|e| e.to_string())?;
                } else {
                    conn.transcript.note(&format!("relay allowed: {decision:?}"));
                    recipients.push(to);
                    server.accept().map_err(|e| e.to_string())?;
                }
            }
            Event::DataStart => body = Some(shared.incoming().map_err(|e| e.to_string())?),
            Event::Data(chunk) => {
                if let Some((_, file)) = body.as_mut() {
                    file.write_all(&chunk).map_err(|e| e.to_string())?;
                }
            }
            Event::DataEnd { .. } => match body.take() {
                Some((path, file)) => {
                    drop(file);
                    match shared.deliver(&path, &recipients) {
                        Ok(()) => server.accept().map_err(|e| e.to_string())?,
                        Err(e) => {
                            conn.transcript.note(&format!("delivery failed: {e}"));
                            let reply = Reply::enhanced(451, EnhancedCode::new(4, 3, 0), "Local error in delivery");
                            server.reject(reply).map_err(|e| e.to_string())?;
                        }
                    }
                }
                None => server.accept().map_err(|e| e.to_string())?,
            },
            Event::DataRejected(_) | Event::Reset => {
                if let Some((path, _)) = body.take() {
                    let _ = fs::remove_file(path);
                }
            }
            _ => {}
        }
    }
    if let Some((path, _)) = body.take() {
        let _ = fs::remove_file(path);
    }
    Ok(())
}

/// A user's maildrop, locked for one POP3 session.
struct Maildrop {
    user: String,
    files: Vec<PathBuf>,
}

impl Maildrop {
    /// Message `n` (1-based, as POP3 numbers them).
    fn file(&self, n: u32) -> Option<&PathBuf> {
        self.files.get((n as usize).checked_sub(1)?)
    }
}

/// One POP3 session: `pop3::Server` driven over the connection.
fn pop3_session(conn: &mut Conn, shared: &Shared) -> Result<(), String> {
    let o = &shared.options;
    let mut config = pop3::ServerConfig::new(o.hostname.clone());
    config.host_aliases = host_aliases(conn);
    config.stls = o.tls.is_some();
    config.allow_plaintext = !o.require_tls;
    config.apop = true;
    config.xtnd_xmit = o.xmit;
    config.mechanisms = MECHANISMS.to_vec();
    let mut server = pop3::Server::new(config, OsRandom);
    let ip = Shared::peer_ip(conn);
    let mut maildrop: Option<Maildrop> = None;
    let mut identity: Option<Identity> = None;
    let mut xmit: Option<(PathBuf, File)> = None;
    let result = pop3_loop(conn, shared, &mut server, ip, &mut maildrop, &mut identity, &mut xmit);
    if let Some(drop) = maildrop {
        lock(&shared.open_maildrops).remove(&drop.user);
    }
    if let Some((path, _)) = xmit {
        let _ = fs::remove_file(path);
    }
    result
}

fn pop3_loop(
    conn: &mut Conn,
    shared: &Shared,
    server: &mut pop3::Server,
    ip: IpAddr,
    maildrop: &mut Option<Maildrop>,
    identity: &mut Option<Identity>,
    xmit: &mut Option<(PathBuf, File)>,
) -> Result<(), String> {
    let o = &shared.options;
    use pop3::server::Event;
    while let Some(event) = conn.next_event(server).map_err(drive)? {
        match event {
            Event::StartTls => {
                let tls = o.tls.clone().ok_or("STLS without a TLS configuration")?;
                let info = conn.start_tls_server(tls).map_err(|e| format!("TLS: {e}"))?;
                server.tls_established(o.users.tls_identity(info)).map_err(|e| e.to_string())?;
            }
            Event::Credentials(request) => {
                server.answer_credentials(o.users.answer(&request)).map_err(|e| e.to_string())?;
            }
            Event::Authenticated { identity: who, method } => {
                // POP-before-SMTP: this address may relay for the table's time-to-live.
                if !ip.is_unspecified() {
                    lock(&shared.relay).record(ip, shared.clock.now(), Some(who.acting_as()));
                }
                conn.transcript.note(&format!("{} logged in by {method:?}; {ip} may relay", who.acting_as()));
                *identity = Some(who);
            }
            Event::OpenMaildrop { user } => {
                // Only a user has a maildrop (the name becomes a path).
                if !o.users.exists(&user) {
                    server.maildrop_failed().map_err(|e| e.to_string())?;
                    continue;
                }
                if !lock(&shared.open_maildrops).insert(user.clone()) {
                    server.maildrop_locked().map_err(|e| e.to_string())?;
                    continue;
                }
                match list_maildrop(&o.maildir.join(&user).join("new")) {
                    Ok((files, listing)) => {
                        *maildrop = Some(Maildrop { user, files });
                        server.maildrop_opened(listing).map_err(|e| e.to_string())?;
                    }
                    Err(e) => {
                        lock(&shared.open_maildrops).remove(&user);
                        conn.transcript.note(&format!("maildrop: {e}"));
                        server.maildrop_failed().map_err(|e| e.to_string())?;
                    }
                }
            }
            Event::Retrieve { msg, .. } => {
                let path = maildrop.as_ref().and_then(|m| m.file(msg)).cloned();
                match path.map(File::open) {
                    Some(Ok(file)) => stream_message(conn, server, file)?,
                    _ => server.message_failed().map_err(|e| e.to_string())?,
                }
            }
            Event::Commit { deleted } => {
                let mut ok = true;
                if let Some(m) = maildrop.as_ref() {
                    for n in deleted {
                        if let Some(path) = m.file(n) {
                            ok &= fs::remove_file(path).is_ok();
                        }
                    }
                }
                server.commit_done(ok).map_err(|e| e.to_string())?;
            }
            Event::XmitData(chunk) => {
                if xmit.is_none() {
                    *xmit = Some(shared.incoming().map_err(|e| e.to_string())?);
                }
                if let Some((_, file)) = xmit.as_mut() {
                    file.write_all(&chunk).map_err(|e| e.to_string())?;
                }
            }
            Event::XmitEnd => {
                let Some((path, file)) = xmit.take() else {
                    server.xmit_rejected("empty message").map_err(|e| e.to_string())?;
                    continue;
                };
                drop(file);
                let recipients = header_recipients(&path);
                if recipients.is_empty() {
                    let _ = fs::remove_file(&path);
                    server.xmit_rejected("no recipients in the headers").map_err(|e| e.to_string())?;
                } else {
                    match shared.deliver(&path, &recipients) {
                        Ok(()) => {
                            let who = identity.as_ref().map(Identity::acting_as).unwrap_or("?");
                            conn.transcript.note(&format!("XTND XMIT from {who} to {}", recipients.join(", ")));
                            server.xmit_accepted().map_err(|e| e.to_string())?;
                        }
                        Err(e) => {
                            conn.transcript.note(&format!("delivery failed: {e}"));
                            server.xmit_rejected("local error in delivery").map_err(|e| e.to_string())?;
                        }
                    }
                }
            }
            Event::XmitAborted => {
                if let Some((path, _)) = xmit.take() {
                    let _ = fs::remove_file(path);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The messages in `new/`, oldest first, with their sizes and unique ids (the file names).
fn list_maildrop(dir: &Path) -> io::Result<(Vec<PathBuf>, Vec<pop3::server::MessageInfo>)> {
    let mut entries = match fs::read_dir(dir) {
        Ok(read) => read.collect::<Result<Vec<_>, _>>()?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    entries.sort_by_key(|e| e.file_name());
    let mut files = Vec::new();
    let mut listing = Vec::new();
    for entry in entries {
        let size = entry.metadata()?.len();
        let uid: String =
            entry.file_name().to_string_lossy().chars().filter(|c| c.is_ascii_graphic()).take(70).collect();
        files.push(entry.path());
        listing.push(pop3::server::MessageInfo::new(size, uid));
    }
    Ok((files, listing))
}

/// Streams a message file into the machine, writing out between chunks so that the machine's
/// output queue stays bounded.
fn stream_message(conn: &mut Conn, server: &mut pop3::Server, mut file: File) -> Result<(), String> {
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        if !server.wants_message_data() {
            break;
        }
        server.message_chunk(&buf[..n]).map_err(|e| e.to_string())?;
        conn.flush_machine(server).map_err(|e| e.to_string())?;
    }
    server.message_end().map_err(|e| e.to_string())
}

/// The addresses in a message's `To:`, `Cc:` and `Bcc:` headers (XTND XMIT carries its
/// recipients there).
fn header_recipients(path: &Path) -> Vec<String> {
    let Ok(data) = fs::read(path) else { return Vec::new() };
    let text = String::from_utf8_lossy(&data);
    let mut fields: Vec<String> = Vec::new();
    for line in text.split("\r\n") {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.push_str(line);
            }
        } else {
            fields.push(line.to_string());
        }
    }
    let mut out = Vec::new();
    for field in fields {
        let Some((name, value)) = field.split_once(':') else { continue };
        if !["to", "cc", "bcc"].contains(&name.trim().to_ascii_lowercase().as_str()) {
            continue;
        }
        for part in value.split(',') {
            let part = part.trim();
            let addr = match (part.find('<'), part.rfind('>')) {
                (Some(a), Some(b)) if a < b => &part[a + 1..b],
                _ => part,
            };
            if addr.contains('@') {
                out.push(addr.to_string());
            }
        }
    }
    out
}
