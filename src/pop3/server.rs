//! The POP3 server machine (RFC 1939): AUTHORIZATION, TRANSACTION and UPDATE states, with CAPA
//! (RFC 2449), STLS (RFC 2595), SASL AUTH (RFC 5034), APOP, USER/PASS, response codes
//! (RFC 2449 §8, RFC 3206) and XTND XMIT.
//!
//! Sans-IO: bytes from the client go in with [`Server::receive`], what the application must
//! decide comes out of [`Server::poll_event`], bytes to send come out of
//! [`Server::poll_transmit`]. The machine never looks anything up itself:
//!
//! - credentials: [`Event::Credentials`] asks a [`CredentialRequest`], answered at any later
//!   time with [`Server::answer_credentials`]. APOP asks for the user's cleartext secret
//!   ([`CredentialRequest::Password`]) and the machine compares the digest in constant time;
//!   USER/PASS asks [`CredentialRequest::VerifyPassword`];
//! - the maildrop: [`Event::OpenMaildrop`] is answered with [`Server::maildrop_opened`] (the
//!   listing, from which STAT, LIST and UIDL are answered), [`Server::maildrop_locked`]
//!   (`-ERR [IN-USE]`), [`Server::maildrop_login_delay`] (`-ERR [LOGIN-DELAY]`) or
//!   [`Server::maildrop_failed`] (`-ERR [SYS/TEMP]`);
//! - messages: [`Event::Retrieve`] is answered by streaming the whole message with
//!   [`Server::message_chunk`] and [`Server::message_end`]. The machine dot-stuffs, turns bare
//!   CR and LF into CRLF, and for TOP cuts the message itself after the header, the blank line
//!   and the asked number of body lines ([`Server::wants_message_data`] turns false once it has
//!   enough, and whenever more than [`ServerConfig::max_output`] bytes wait to be sent);
//! - deletions: `QUIT` in TRANSACTION emits [`Event::Commit`], answered with
//!   [`Server::commit_done`] (UPDATE state, RFC 1939 §6);
//! - XTND XMIT (off by default): the unstuffed message comes out as [`Event::XmitData`] chunks
//!   and [`Event::XmitEnd`], answered with [`Server::xmit_accepted`] or
//!   [`Server::xmit_rejected`].
//!
//! Logins: wrong credentials get `-ERR [AUTH]` (RFC 3206 §5), a
//! [`CredentialAnswer::TemporaryFailure`] gets `-ERR [SYS/TEMP]`; after
//! [`ServerConfig::max_auth_failures`] failed logins the machine closes. PLAIN, LOGIN and
//! USER/PASS are neither offered nor accepted before TLS unless
//! [`ServerConfig::allow_plaintext`]; EXTERNAL needs [`TlsInfo::peer_identity`], `-PLUS`
//! needs [`TlsInfo::channel_binding`]. SCRAM's server-final message goes out as a last `+ `
//! challenge, and `+OK` follows the client's empty answer (RFC 5034 §4). Replies never echo
//! what the client sent.
//!
//! POP-before-SMTP: on [`Event::Authenticated`] the application records the peer address,
//! e.g. `relay_table.record(peer_ip, now, Some(identity.acting_as()))` with
//! [`crate::relay::RelayTable`], or writes it to whatever store its SMTP servers share.
//!
//! While the machine waits for the application it reads no further command; pipelined input
//! stays buffered (at most [`ServerConfig::max_buffered`] bytes) and is read once the answer
//! came, in order (RFC 2449 §6.6).
//!
//! STLS (RFC 2595 §4) is injection-safe by discarding: the machine answers `+OK`, emits
//! [`Event::StartTls`] and drops every byte that came after `STLS\r\n` — in the same read or
//! in any later one — until [`Server::tls_established`]. So nothing sent in plaintext is ever
//! read as if it had come over TLS (CVE-2011-0411 class), whatever the read boundaries: the
//! outcome does not depend on how the bytes were split, which a "reject when more bytes are
//! buffered" rule cannot promise. After TLS the session starts AUTHORIZATION afresh (a USER
//! given before is forgotten), CAPA no longer lists STLS, and a second STLS gets
//! `-ERR Command not permitted when TLS active`.
//!
//! ```
//! use mailwire::pop3::server::{Event, MessageInfo};
//! use mailwire::pop3::{Server, ServerConfig};
//! use mailwire::sasl::{CredentialAnswer, CredentialRequest, FixedRandom};
//! use mailwire::tls::TlsInfo;
//!
//! let mut config = ServerConfig::new("pop.example.org");
//! config.allow_plaintext = true; // USER/PASS without TLS, for the example only
//! let mut server = Server::new(config, FixedRandom::new(1));
//! let mut wire = Vec::new();
//! let mut pump = |server: &mut Server, wire: &mut Vec<u8>| {
//!     while let Some(out) = server.poll_transmit() {
//!         wire.extend_from_slice(&out);
//!     }
//! };
//! pump(&mut server, &mut wire);
//! assert!(wire.starts_with(b"+OK POP3 server ready"));
//!
//! server.receive(b"USER alice\r\nPASS wonderland\r\n").unwrap();
//! match server.poll_event() {
//!     Some(Event::Credentials(CredentialRequest::VerifyPassword { authcid, password })) => {
//!         assert_eq!((authcid.as_str(), password.expose()), ("alice", &b"wonderland"[..]));
//!         server.answer_credentials(CredentialAnswer::Verified).unwrap();
//!     }
//!     other => panic!("{other:?}"),
//! }
//! assert!(matches!(server.poll_event(), Some(Event::Authenticated { .. })));
//! assert_eq!(server.poll_event(), Some(Event::OpenMaildrop { user: "alice".into() }));
//! server.maildrop_opened(vec![MessageInfo::new(20, "uid-1")]).unwrap();
//!
//! server.receive(b"RETR 1\r\n").unwrap();
//! assert_eq!(server.poll_event(), Some(Event::Retrieve { msg: 1, top_lines: None }));
//! server.message_chunk(b"Subject: hi\r\n\r\n.dot\r\n").unwrap();
//! server.message_end().unwrap();
//!
//! server.receive(b"DELE 1\r\nQUIT\r\n").unwrap();
//! assert_eq!(server.poll_event(), Some(Event::Commit { deleted: vec![1] }));
//! server.commit_done(true).unwrap();
//! assert!(server.is_closed());
//!
//! wire.clear();
//! pump(&mut server, &mut wire);
//! assert_eq!(
//!     wire,
//!     &b"+OK\r\n+OK Logged in\r\n+OK 20 octets\r\nSubject: hi\r\n\r\n..dot\r\n.\r\n\
//!        +OK Message deleted\r\n+OK POP3 server signing off\r\n"[..]
//! );
//! ```

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use zeroize::Zeroizing;

use super::apop;
pub use super::client::AuthMethod;
use super::command::{Command, ParseError};
use super::response::{Response, ResponseCode, StatusLine};
use super::{Capabilities, Expire, LoginDelay};
use crate::sasl::{
    self, AuthFailure, CredentialAnswer, CredentialRequest, Identity, Mechanism, Random, Secret, ServerContext,
    ServerMechanism, ServerStep,
};
use crate::tls::TlsInfo;
use crate::wire::{
    AUTH_LINE_LIMIT, DotDecoder, DotEncoder, LineReader, POP3_COMMAND_LIMIT, Payload, decode_response, encode_payload,
};

/// How the server behaves (plain data; see [`ServerConfig::new`]).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The server's host name: the APOP timestamp's domain and the SASL realm/host.
    pub host: String,
    /// Other names clients may use for this server (e.g. `127.0.0.1`), accepted in a
    /// DIGEST-MD5 `digest-uri` (RFC 2831 §2.1.2).
    pub host_aliases: Vec<String>,
    /// Text of the `+OK` greeting, before the APOP timestamp.
    pub greeting: String,
    /// Put an APOP timestamp in the greeting and accept `APOP` (default `false`: APOP needs
    /// the users' cleartext secrets and MD5).
    pub apop: bool,
    /// Accept `USER`/`PASS` (default `true`; before TLS only with
    /// [`allow_plaintext`](Self::allow_plaintext)).
    pub user_pass: bool,
    /// SASL mechanisms offered for `AUTH`, in CAPA order (default SCRAM-SHA-256-PLUS,
    /// SCRAM-SHA-256, SCRAM-SHA-1, PLAIN, LOGIN). PLAIN and LOGIN are offered before TLS only
    /// with [`allow_plaintext`](Self::allow_plaintext), `-PLUS` only with channel binding
    /// data, EXTERNAL only with a verified client certificate identity.
    pub mechanisms: Vec<Mechanism>,
    /// Allow PLAIN, LOGIN and USER/PASS without TLS (default `false`, RFC 2595 §2.3 spirit).
    pub allow_plaintext: bool,
    /// Offer and accept `STLS` (default `true`; the caller must then be able to run TLS).
    pub stls: bool,
    /// Accept `XTND XMIT` (default `false`: it lets every mailbox owner send mail through
    /// this server; the application decides what to do with the message).
    pub xtnd_xmit: bool,
    /// Largest XTND XMIT message, unstuffed (default 10 MiB); a bigger one is read to its end
    /// and refused with `-ERR`.
    pub max_xmit_size: usize,
    /// Failed logins after which the session is closed (default 3); 0 for no limit.
    pub max_auth_failures: u32,
    /// Unknown, overlong or malformed commands after which the session is closed with
    /// `-ERR Too many errors` (default 20); 0 for no limit.
    pub max_errors: u32,
    /// Most challenges in one SASL exchange (default 16).
    pub max_auth_rounds: usize,
    /// Most input bytes kept while the machine waits for the application or for its output
    /// to be taken (default 64 KiB); more closes the session with [`Error::BufferFull`].
    pub max_buffered: usize,
    /// Output bytes waiting in [`Server::poll_transmit`] above which
    /// [`Server::message_chunk`] refuses more message data and no further command is read
    /// (default 256 KiB).
    pub max_output: usize,
    /// SCRAM iteration count used when the application answers with a password (default 4096).
    pub scram_iterations: u32,
    /// OAuth scope named in XOAUTH2/OAUTHBEARER error challenges.
    pub oauth_scope: Option<String>,
    /// `IMPLEMENTATION` text in CAPA (RFC 2449 §6.9), if any.
    pub implementation: Option<String>,
    /// `EXPIRE` in CAPA (RFC 2449 §6.7), if any.
    pub expire: Option<Expire>,
    /// `LOGIN-DELAY` in CAPA (RFC 2449 §6.5), if any.
    pub login_delay: Option<LoginDelay>,
}

impl ServerConfig {
    /// Defaults for a server called `host`.
    pub fn new(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            host_aliases: Vec::new(),
            greeting: String::from("POP3 server ready"),
            apop: false,
            user_pass: true,
            mechanisms: alloc::vec![
                Mechanism::ScramSha256Plus,
                Mechanism::ScramSha256,
                Mechanism::ScramSha1,
                Mechanism::Plain,
                Mechanism::Login,
            ],
            allow_plaintext: false,
            stls: true,
            xtnd_xmit: false,
            max_xmit_size: 10 * 1024 * 1024,
            max_auth_failures: 3,
            max_errors: 20,
            max_auth_rounds: 16,
            max_buffered: 64 * 1024,
            max_output: 256 * 1024,
            scram_iterations: 4096,
            oauth_scope: None,
            implementation: None,
            expire: None,
            login_delay: None,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self::new("localhost")
    }
}

/// One message of the maildrop, as the application lists it (RFC 1939 §5, §7).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageInfo {
    /// Size in octets, as LIST and STAT report it (RFC 1939 §5: with CRLF line ends).
    pub size: u64,
    /// The unique id for UIDL: 1 to 70 characters in 0x21–0x7E (RFC 1939 §7).
    pub uid: String,
}

impl MessageInfo {
    /// A message of `size` octets with unique id `uid`.
    pub fn new(size: u64, uid: impl Into<String>) -> Self {
        Self { size, uid: uid.into() }
    }
}

/// What the application must decide or know; poll with [`Server::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The client sent `STLS` and got `+OK`: run the TLS handshake on the socket now, then
    /// call [`Server::tls_established`] (RFC 2595 §4).
    StartTls,
    /// A credential question: answer with [`Server::answer_credentials`].
    Credentials(CredentialRequest),
    /// The client proved who it is. The maildrop is opened next ([`Event::OpenMaildrop`]);
    /// this is the moment to record the client address for POP-before-SMTP
    /// ([`crate::relay::RelayTable::record`]).
    Authenticated {
        /// Who logged in.
        identity: Identity,
        /// How.
        method: AuthMethod,
    },
    /// A login failed; the machine already answered `-ERR`. The session is closed when the
    /// failure limit was reached ([`Server::is_closed`]).
    AuthFailed {
        /// How it was tried.
        method: AuthMethod,
        /// Why.
        reason: AuthFailure,
    },
    /// Open and lock `user`'s maildrop: answer with [`Server::maildrop_opened`],
    /// [`Server::maildrop_locked`] or [`Server::maildrop_failed`].
    OpenMaildrop {
        /// The identity the session acts as.
        user: String,
    },
    /// Stream message `msg` with [`Server::message_chunk`] and [`Server::message_end`]
    /// (or [`Server::message_failed`]). For TOP the machine cuts the message itself.
    Retrieve {
        /// The message number (1-based, as in the listing).
        msg: u32,
        /// `Some(n)` for `TOP msg n`: only the header and `n` body lines go out.
        top_lines: Option<u32>,
    },
    /// `QUIT` in TRANSACTION: remove these messages (numbers as in the listing) and unlock
    /// the maildrop, then call [`Server::commit_done`] (RFC 1939 §6).
    Commit {
        /// The messages marked deleted, in ascending order.
        deleted: Vec<u32>,
    },
    /// A piece of an XTND XMIT message, unstuffed.
    XmitData(Vec<u8>),
    /// The XTND XMIT message is complete: answer [`Server::xmit_accepted`] or
    /// [`Server::xmit_rejected`].
    XmitEnd,
    /// The XTND XMIT message went over [`ServerConfig::max_xmit_size`]: drop what came so
    /// far. The machine reads to the terminator and answers `-ERR` itself.
    XmitAborted,
}

/// Errors of the server. [`Error::BufferFull`] is the client's fault and closes the machine;
/// the others are the caller's and leave the machine as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// More than [`ServerConfig::max_buffered`] bytes arrived while the machine waited for
    /// the application.
    #[error("too much input while waiting for the application")]
    BufferFull,
    /// Caller: the call does not fit the machine's state.
    #[error("not possible now: {0}")]
    InvalidState(&'static str),
    /// Caller: the answer does not fit the question asked (a `Verified` to a request for a
    /// secret, say).
    #[error("the answer does not fit the credential request")]
    AnswerMismatch,
    /// Caller: a text cannot go on a response line (CR, LF or NUL; too long).
    #[error("text cannot be sent on a response line")]
    InvalidText,
    /// Caller: a unique id breaks RFC 1939 §7 (1 to 70 characters in 0x21–0x7E).
    #[error("invalid unique id for message {0}")]
    InvalidUid(u32),
    /// Caller: more than [`ServerConfig::max_output`] bytes wait to be sent; poll them first.
    #[error("output queue full")]
    OutputFull,
    /// The machine is closed (after QUIT, the failure limit, or a fatal error).
    #[error("the session is closed")]
    Closed,
}

/// RFC 1939 §3 states, plus the wait for the TLS handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Authorization,
    AwaitTls,
    Transaction,
    Closed,
}

/// What the machine does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Read commands.
    Command,
    /// Read a SASL response line.
    SaslLine,
    /// A SASL success with additional data was sent as `+ `: read the client's empty line.
    SaslFinal,
    /// Wait for [`Server::answer_credentials`].
    Credentials,
    /// Wait for the maildrop.
    Maildrop,
    /// Wait for message data.
    Message,
    /// Read an XTND XMIT body.
    XmitBody,
    /// Wait for the XTND XMIT verdict.
    XmitVerdict,
    /// Wait for the commit.
    Commit,
}

#[derive(Debug)]
enum Login {
    Sasl {
        mechanism: Box<dyn ServerMechanism>,
        asked: Option<CredentialRequest>,
        rounds: usize,
        /// Success whose additional data went out as a last challenge.
        done: Option<Identity>,
        /// The application refused the credentials but the mechanism goes on (the OAuth
        /// error challenge): however the exchange ends, it is a failed login.
        refused: bool,
    },
    Apop {
        user: String,
        digest: [u8; apop::DIGEST_LEN],
    },
    Pass {
        user: String,
    },
}

impl Login {
    fn method(&self) -> AuthMethod {
        match self {
            Self::Sasl { mechanism, .. } => AuthMethod::Sasl(mechanism.mechanism()),
            Self::Apop { .. } => AuthMethod::Apop,
            Self::Pass { .. } => AuthMethod::UserPass,
        }
    }
}

/// A message going out for RETR or TOP.
#[derive(Debug)]
struct Outgoing {
    encoder: DotEncoder,
    size: u64,
    started: bool,
    top: Option<TopCut>,
}

/// Cuts a stuffed, CRLF-normalised message after its header, the blank line and `lines` body
/// lines (RFC 1939 §7 TOP).
#[derive(Debug)]
struct TopCut {
    in_body: bool,
    remaining: u32,
    /// Bytes of the current line seen so far.
    line_len: usize,
    done: bool,
}

impl TopCut {
    fn new(lines: u32) -> Self {
        Self { in_body: false, remaining: lines, line_len: 0, done: false }
    }

    /// How many bytes of `out` to keep.
    fn keep(&mut self, out: &[u8]) -> usize {
        let mut pos = 0;
        while !self.done {
            let rest = out.get(pos..).unwrap_or_default();
            let Some(n) = memchr::memchr(b'\n', rest) else {
                self.line_len += rest.len();
                return out.len();
            };
            let line_len = self.line_len + n + 1;
            pos += n + 1;
            self.line_len = 0;
            if self.in_body {
                self.remaining = self.remaining.saturating_sub(1);
            } else if line_len == 2 {
                // The blank line (CRLF alone) ends the header.
                self.in_body = true;
            } else {
                continue;
            }
            if self.in_body && self.remaining == 0 {
                self.done = true;
            }
        }
        pos
    }
}

/// An XTND XMIT message coming in.
#[derive(Debug)]
struct Incoming {
    decoder: DotDecoder,
    size: usize,
    too_big: bool,
}

/// The POP3 server machine. See the module docs for the driving loop.
pub struct Server {
    config: ServerConfig,
    rng: Box<dyn Random + Send>,
    phase: Phase,
    mode: Mode,
    reader: LineReader,
    events: VecDeque<Event>,
    transmit: VecDeque<Vec<u8>>,
    /// Bytes in `transmit`.
    queued: usize,
    timestamp: Option<String>,
    tls: Option<TlsInfo>,
    /// The `USER` name waiting for `PASS`.
    user: Option<String>,
    login: Option<Box<Login>>,
    /// Who logged in.
    identity: Option<Identity>,
    failures: u32,
    /// Bad commands so far.
    errors: u32,
    /// A command was read (implicit TLS must be reported before).
    started: bool,
    maildrop: Vec<MessageInfo>,
    deleted: Vec<bool>,
    outgoing: Option<Box<Outgoing>>,
    incoming: Option<Box<Incoming>>,
    /// Plaintext bytes dropped after STLS.
    discarded: usize,
}

impl core::fmt::Debug for Server {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Server")
            .field("phase", &self.phase)
            .field("mode", &self.mode)
            .field("tls", &self.tls.is_some())
            .field("messages", &self.maildrop.len())
            .finish_non_exhaustive()
    }
}

const WRONG_STATE: &str = "Command not valid in this state";

impl Server {
    /// A server that has just accepted a connection: the greeting (with an APOP timestamp
    /// from `rng` when [`ServerConfig::apop`] is on) is queued. `rng` also feeds the SASL
    /// nonces and challenges. A host name that cannot go into a timestamp is replaced by
    /// `localhost` there.
    pub fn new(config: ServerConfig, rng: impl Random + Send + 'static) -> Self {
        Self::build(config, Box::new(rng), None)
    }

    /// Like [`new`](Self::new), with APOP on and the application's own greeting timestamp
    /// (RFC 1939 §7 suggests `<process-ID.clock@hostname>`; it must differ for every
    /// greeting). Used for known-answer tests. Fails with [`Error::InvalidText`] unless
    /// `timestamp` is exactly one APOP timestamp, brackets included.
    pub fn with_apop_timestamp(
        mut config: ServerConfig,
        rng: impl Random + Send + 'static,
        timestamp: &str,
    ) -> Result<Self, Error> {
        if apop::find_timestamp(timestamp.as_bytes()) != Some(timestamp.as_bytes()) {
            return Err(Error::InvalidText);
        }
        config.apop = true;
        Ok(Self::build(config, Box::new(rng), Some(String::from(timestamp))))
    }

    fn build(config: ServerConfig, rng: Box<dyn Random + Send>, timestamp: Option<String>) -> Self {
        let mut server = Self {
            config,
            rng,
            phase: Phase::Authorization,
            mode: Mode::Command,
            reader: LineReader::new(POP3_COMMAND_LIMIT),
            events: VecDeque::new(),
            transmit: VecDeque::new(),
            queued: 0,
            timestamp,
            tls: None,
            user: None,
            login: None,
            identity: None,
            failures: 0,
            errors: 0,
            started: false,
            maildrop: Vec::new(),
            deleted: Vec::new(),
            outgoing: None,
            incoming: None,
            discarded: 0,
        };
        if server.config.apop && server.timestamp.is_none() {
            let host =
                if apop::check_host(&server.config.host).is_ok() { server.config.host.as_str() } else { "localhost" };
            server.timestamp = apop::timestamp(server.rng.as_mut(), host).ok();
        }
        let mut text = String::new();
        if clean(&server.config.greeting) {
            text.push_str(&server.config.greeting);
        } else {
            text.push_str("POP3 server ready");
        }
        if let Some(timestamp) = &server.timestamp {
            text.push(' ');
            text.push_str(timestamp);
        }
        let text = text.into_bytes();
        server.reply_ok(&text);
        server
    }

    /// The next thing the application must know or decide.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next bytes to send to the client.
    ///
    /// Commands stop being read while more than [`ServerConfig::max_output`] bytes wait here
    /// (a pipelined flood of `LIST` must not grow memory); taking output out resumes them,
    /// so poll events again after draining this.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        let out = self.transmit.pop_front()?;
        self.queued = self.queued.saturating_sub(out.len());
        if self.queued < self.config.max_output && self.reader.has_pending() && self.reads_commands() {
            // An error closes the machine, which `is_closed` reports.
            let _ = self.run();
        }
        Some(out)
    }

    /// Bytes waiting in [`poll_transmit`](Self::poll_transmit).
    pub fn queued_output(&self) -> usize {
        self.queued
    }

    /// Whether the session is over: send what [`poll_transmit`](Self::poll_transmit) still
    /// holds, then close the connection.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Whether the session runs over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether the client is logged in with the maildrop open (TRANSACTION state).
    pub fn is_authenticated(&self) -> bool {
        self.phase == Phase::Transaction
    }

    /// Who logged in, from [`Event::Authenticated`] on (`None` again if the maildrop could
    /// not be opened).
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// The APOP timestamp of the greeting, brackets included.
    pub fn apop_timestamp(&self) -> Option<&str> {
        self.timestamp.as_deref()
    }

    /// Plaintext bytes dropped after `STLS` (an attempted command injection when not zero).
    pub fn discarded_after_stls(&self) -> usize {
        self.discarded
    }

    /// The capabilities CAPA reports now (RFC 2449 §5): STLS only before TLS, SASL
    /// mechanisms and USER only when usable now, nothing for login after it.
    pub fn capabilities(&self) -> Capabilities {
        let authorization = self.phase != Phase::Transaction;
        Capabilities {
            top: true,
            user: authorization && self.user_pass_allowed(),
            sasl: if authorization { self.offered() } else { Vec::new() },
            resp_codes: true,
            auth_resp_code: true,
            login_delay: self.config.login_delay,
            pipelining: true,
            expire: self.config.expire,
            uidl: true,
            implementation: self.config.implementation.clone(),
            stls: authorization && self.config.stls && self.tls.is_none(),
            other: Vec::new(),
        }
    }

    /// Feeds bytes from the client. Bad commands are answered with `-ERR` and are not
    /// errors; only [`Error::BufferFull`] (fatal) comes back. Once the machine is closed,
    /// input is ignored: send what is left to send and close the connection.
    pub fn receive(&mut self, data: &[u8]) -> Result<(), Error> {
        if self.phase == Phase::Closed {
            // Whatever a client pipelines after the end is ignored: hang up.
            return Ok(());
        }
        if self.phase == Phase::AwaitTls {
            // RFC 2595 §4 / CVE-2011-0411: plaintext after STLS is never read.
            self.discarded += data.len();
            return Ok(());
        }
        if data.is_empty() {
            return Ok(());
        }
        self.reader.feed(data);
        self.run()
    }

    /// The TLS handshake asked for by [`Event::StartTls`] is done. The session starts
    /// AUTHORIZATION afresh (RFC 2595 §4). For implicit TLS (port 995) call it before any
    /// byte is received; the greeting, already queued, then goes out over TLS.
    pub fn tls_established(&mut self, info: TlsInfo) -> Result<(), Error> {
        match self.phase {
            Phase::AwaitTls => {
                self.reader.clear();
                self.tls = Some(info);
                self.phase = Phase::Authorization;
                self.mode = Mode::Command;
                self.user = None;
                Ok(())
            }
            Phase::Authorization if !self.started && !self.reader.has_pending() && self.tls.is_none() => {
                self.tls = Some(info);
                Ok(())
            }
            Phase::Closed => Err(Error::Closed),
            _ => Err(Error::InvalidState("no STLS in progress")),
        }
    }

    /// Answers the last [`Event::Credentials`].
    pub fn answer_credentials(&mut self, answer: CredentialAnswer) -> Result<(), Error> {
        self.check_mode(Mode::Credentials)?;
        let Some(login) = self.login.as_mut() else { return Err(Error::InvalidState("no credential request")) };
        match login.as_mut() {
            Login::Sasl { mechanism, asked, refused, .. } => {
                let fits = asked.as_ref().is_some_and(|request| request.accepts(&answer));
                if !fits {
                    return Err(Error::AnswerMismatch);
                }
                *asked = None;
                *refused |= matches!(answer, CredentialAnswer::Rejected | CredentialAnswer::UnknownUser);
                let step = mechanism.answer(answer);
                self.mode = Mode::SaslLine;
                self.sasl_step(step);
            }
            Login::Apop { user, digest } => {
                let outcome = match answer {
                    CredentialAnswer::Password(secret) => {
                        let timestamp = self.timestamp.as_deref().unwrap_or_default();
                        if apop::verify(timestamp.as_bytes(), secret.expose(), digest) {
                            Ok(Identity { authcid: user.clone(), authzid: None })
                        } else {
                            Err(AuthFailure::Credentials)
                        }
                    }
                    CredentialAnswer::Rejected | CredentialAnswer::UnknownUser => Err(AuthFailure::Credentials),
                    CredentialAnswer::TemporaryFailure => Err(AuthFailure::Temporary),
                    _ => return Err(Error::AnswerMismatch),
                };
                self.mode = Mode::Command;
                self.login_outcome(outcome);
            }
            Login::Pass { user } => {
                let outcome = match answer {
                    CredentialAnswer::Verified => Ok(Identity { authcid: user.clone(), authzid: None }),
                    CredentialAnswer::Rejected | CredentialAnswer::UnknownUser => Err(AuthFailure::Credentials),
                    CredentialAnswer::TemporaryFailure => Err(AuthFailure::Temporary),
                    _ => return Err(Error::AnswerMismatch),
                };
                self.mode = Mode::Command;
                self.login_outcome(outcome);
            }
        }
        self.run()
    }

    /// The maildrop asked for by [`Event::OpenMaildrop`] is open and locked: `+OK`, and the
    /// session enters TRANSACTION (RFC 1939 §4). Message `n` is `listing[n - 1]`.
    pub fn maildrop_opened(&mut self, listing: Vec<MessageInfo>) -> Result<(), Error> {
        self.check_mode(Mode::Maildrop)?;
        if u32::try_from(listing.len()).is_err() {
            return Err(Error::InvalidState("more messages than POP3 can number"));
        }
        for (index, message) in listing.iter().enumerate() {
            let uid = message.uid.as_bytes();
            if uid.is_empty() || uid.len() > 70 || !uid.iter().all(|b| matches!(b, b'!'..=b'~')) {
                return Err(Error::InvalidUid(msg_number(index)));
            }
        }
        self.deleted = alloc::vec![false; listing.len()];
        self.maildrop = listing;
        self.phase = Phase::Transaction;
        self.mode = Mode::Command;
        self.reply_ok(b"Logged in");
        self.run()
    }

    /// The maildrop is locked by another session: `-ERR [IN-USE]` (RFC 2449 §8.1.1); the
    /// session stays in AUTHORIZATION.
    pub fn maildrop_locked(&mut self) -> Result<(), Error> {
        self.check_mode(Mode::Maildrop)?;
        self.identity = None;
        self.mode = Mode::Command;
        self.reply_err(Some("IN-USE"), b"Maildrop is locked by another session");
        self.run()
    }

    /// The user logged in too soon after the last login: `-ERR [LOGIN-DELAY]`
    /// (RFC 2449 §8.1.2); the session stays in AUTHORIZATION.
    pub fn maildrop_login_delay(&mut self) -> Result<(), Error> {
        self.check_mode(Mode::Maildrop)?;
        self.identity = None;
        self.mode = Mode::Command;
        self.reply_err(Some("LOGIN-DELAY"), b"Minimum time between logins not yet passed");
        self.run()
    }

    /// The maildrop cannot be opened for now: `-ERR [SYS/TEMP]` (RFC 3206 §4); the session
    /// stays in AUTHORIZATION.
    pub fn maildrop_failed(&mut self) -> Result<(), Error> {
        self.check_mode(Mode::Maildrop)?;
        self.identity = None;
        self.mode = Mode::Command;
        self.reply_err(Some("SYS/TEMP"), b"Maildrop unavailable");
        self.run()
    }

    /// Whether [`message_chunk`](Self::message_chunk) wants more data now: a message is
    /// being sent, TOP has not cut it yet, and the output queue is below
    /// [`ServerConfig::max_output`].
    pub fn wants_message_data(&self) -> bool {
        self.mode == Mode::Message
            && self.queued < self.config.max_output
            && !self.outgoing.as_ref().is_some_and(|o| o.top.as_ref().is_some_and(|t| t.done))
    }

    /// The next piece of the message asked for by [`Event::Retrieve`], as stored (the machine
    /// dot-stuffs and writes CRLF line ends). Data beyond a TOP cut is dropped.
    pub fn message_chunk(&mut self, data: &[u8]) -> Result<(), Error> {
        self.check_mode(Mode::Message)?;
        if self.queued >= self.config.max_output {
            return Err(Error::OutputFull);
        }
        let Some(mut outgoing) = self.outgoing.take() else { return Err(Error::InvalidState("no message")) };
        self.start_message(&mut outgoing);
        if outgoing.top.as_ref().is_some_and(|t| t.done) {
            self.outgoing = Some(outgoing);
            return Ok(());
        }
        let mut out = Vec::with_capacity(data.len() + data.len() / 32 + 8);
        outgoing.encoder.encode(data, &mut out);
        if let Some(top) = outgoing.top.as_mut() {
            let keep = top.keep(&out);
            out.truncate(keep);
        }
        self.push(out);
        self.outgoing = Some(outgoing);
        Ok(())
    }

    /// The message is complete: the terminator goes out (a missing final CRLF is added).
    pub fn message_end(&mut self) -> Result<(), Error> {
        self.check_mode(Mode::Message)?;
        let Some(mut outgoing) = self.outgoing.take() else { return Err(Error::InvalidState("no message")) };
        self.start_message(&mut outgoing);
        let mut out = Vec::new();
        if outgoing.top.as_ref().is_some_and(|t| t.done) {
            out.extend_from_slice(b".\r\n");
        } else {
            outgoing.encoder.finish(&mut out);
        }
        self.push(out);
        self.mode = Mode::Command;
        self.run()
    }

    /// The message cannot be read. Before any data went out the client gets
    /// `-ERR [SYS/TEMP]` and the session goes on; after, the response cannot be ended
    /// honestly and the session is closed.
    pub fn message_failed(&mut self) -> Result<(), Error> {
        self.check_mode(Mode::Message)?;
        let outgoing = self.outgoing.take();
        self.mode = Mode::Command;
        if outgoing.is_some_and(|o| o.started) {
            self.close();
            return Ok(());
        }
        self.reply_err(Some("SYS/TEMP"), b"Message unavailable");
        self.run()
    }

    /// The deletions of [`Event::Commit`] are done (`ok`) or failed: `+OK` or
    /// `-ERR [SYS/TEMP]`, then the session is closed (RFC 1939 §6).
    pub fn commit_done(&mut self, ok: bool) -> Result<(), Error> {
        self.check_mode(Mode::Commit)?;
        if ok {
            self.reply_ok(b"POP3 server signing off");
        } else {
            self.reply_err(Some("SYS/TEMP"), b"Some deleted messages not removed");
        }
        self.close();
        Ok(())
    }

    /// The XTND XMIT message was accepted for delivery: `+OK`.
    pub fn xmit_accepted(&mut self) -> Result<(), Error> {
        self.check_mode(Mode::XmitVerdict)?;
        self.mode = Mode::Command;
        self.reply_ok(b"Message sent");
        self.run()
    }

    /// The XTND XMIT message was refused: `-ERR text` (no CR, LF or NUL).
    pub fn xmit_rejected(&mut self, text: &str) -> Result<(), Error> {
        self.check_mode(Mode::XmitVerdict)?;
        let line = Response::Status(StatusLine::err(text.as_bytes())).to_bytes().map_err(|_| Error::InvalidText)?;
        self.mode = Mode::Command;
        self.push(line);
        self.run()
    }

    // -----------------------------------------------------------------------------------------
    // Internals

    /// Whether input lines are read now (not waiting for the application or TLS).
    fn reads_commands(&self) -> bool {
        matches!(self.phase, Phase::Authorization | Phase::Transaction)
            && matches!(self.mode, Mode::Command | Mode::SaslLine | Mode::SaslFinal | Mode::XmitBody)
    }

    fn check_mode(&self, mode: Mode) -> Result<(), Error> {
        if self.phase == Phase::Closed {
            return Err(Error::Closed);
        }
        if self.mode != mode {
            return Err(Error::InvalidState("the machine is not waiting for this"));
        }
        Ok(())
    }

    fn close(&mut self) {
        self.phase = Phase::Closed;
        self.mode = Mode::Command;
        self.reader.clear();
        self.login = None;
        self.outgoing = None;
        self.incoming = None;
    }

    fn push(&mut self, out: Vec<u8>) {
        if !out.is_empty() {
            self.queued += out.len();
            self.transmit.push_back(out);
        }
    }

    fn reply(&mut self, status: StatusLine<'_>) {
        // Texts are the machine's own or checked; a failure falls back to a bare status.
        let line = Response::Status(status).to_bytes().unwrap_or_else(|_| {
            let mut line = Vec::from(status.status.as_str().as_bytes());
            line.extend_from_slice(b"\r\n");
            line
        });
        self.push(line);
    }

    fn reply_ok(&mut self, text: &[u8]) {
        self.reply(StatusLine::ok(text));
    }

    /// A command that could not be read: `-ERR`, and the session ends after
    /// [`ServerConfig::max_errors`] of them.
    fn bad_command(&mut self, text: &[u8]) {
        self.reply_err(None, text);
        self.errors = self.errors.saturating_add(1);
        if self.config.max_errors != 0 && self.errors >= self.config.max_errors {
            self.reply_err(None, b"Too many errors");
            self.close();
        }
    }

    fn reply_err(&mut self, code: Option<&'static str>, text: &[u8]) {
        let mut status = StatusLine::err(text);
        status.code = code.and_then(ResponseCode::new);
        self.reply(status);
    }

    fn plaintext_allowed(&self) -> bool {
        self.tls.is_some() || self.config.allow_plaintext
    }

    fn user_pass_allowed(&self) -> bool {
        self.config.user_pass && self.plaintext_allowed()
    }

    /// Whether `mechanism` may run now.
    fn usable(&self, mechanism: &Mechanism) -> bool {
        let tls = self.tls.as_ref();
        match mechanism {
            Mechanism::Plain | Mechanism::Login => self.plaintext_allowed(),
            Mechanism::External => tls.is_some_and(|t| t.peer_identity.is_some()),
            m if m.is_plus() => tls.is_some_and(|t| t.channel_binding.is_some()),
            Mechanism::Other(_) => false,
            _ => true,
        }
    }

    /// The SASL mechanisms CAPA lists now.
    fn offered(&self) -> Vec<Mechanism> {
        let mut offered: Vec<Mechanism> = Vec::new();
        for mechanism in &self.config.mechanisms {
            if self.usable(mechanism) && !offered.contains(mechanism) {
                offered.push(mechanism.clone());
            }
        }
        offered
    }

    fn run(&mut self) -> Result<(), Error> {
        let mut reader = core::mem::replace(&mut self.reader, LineReader::new(0));
        let result = self.process(&mut reader);
        if matches!(self.phase, Phase::AwaitTls | Phase::Closed) {
            // Nothing that came after STLS (or after the end) is ever read.
            self.discarded += if self.phase == Phase::AwaitTls { reader.pending_len() } else { 0 };
            reader.clear();
        }
        self.reader = reader;
        if result.is_err() {
            self.close();
        }
        result
    }

    fn process(&mut self, reader: &mut LineReader) -> Result<(), Error> {
        loop {
            if self.phase != Phase::Authorization && self.phase != Phase::Transaction {
                return Ok(());
            }
            match self.mode {
                Mode::Command | Mode::SaslLine | Mode::SaslFinal if self.queued >= self.config.max_output => {
                    // Back-pressure: read on once the output has been taken.
                    if reader.pending_len() > self.config.max_buffered {
                        return Err(Error::BufferFull);
                    }
                    return Ok(());
                }
                Mode::Command | Mode::SaslLine | Mode::SaslFinal => {}
                Mode::XmitBody => {
                    if !reader.has_pending() {
                        return Ok(());
                    }
                    let raw = reader.take_pending();
                    match self.feed_xmit(&raw) {
                        Some(consumed) => reader.feed(raw.get(consumed..).unwrap_or_default()),
                        None => return Ok(()),
                    }
                    continue;
                }
                Mode::Credentials | Mode::Maildrop | Mode::Message | Mode::XmitVerdict | Mode::Commit => {
                    if reader.pending_len() > self.config.max_buffered {
                        return Err(Error::BufferFull);
                    }
                    return Ok(());
                }
            }
            let sasl = matches!(self.mode, Mode::SaslLine | Mode::SaslFinal);
            // Command lines are held to 255 octets in `command`, except AUTH with an initial
            // response, which the reader lets through up to the SASL line limit.
            reader.set_limit(AUTH_LINE_LIMIT);
            match reader.next_line() {
                None => return Ok(()),
                Some(Err(_)) if sasl => self.sasl_abort(AuthFailure::Malformed("response line too long")),
                Some(Err(_)) => self.bad_command(b"Line too long"),
                // Copies wiped after use: PASS and SASL lines carry secrets.
                Some(Ok(line)) if sasl => {
                    let line = Zeroizing::new(line.to_vec());
                    self.sasl_line(&line);
                }
                Some(Ok(line)) => {
                    self.started = true;
                    let line = Zeroizing::new(line.to_vec());
                    self.command(&line);
                }
            }
        }
    }

    /// Unstuffs XTND XMIT bytes; `Some(consumed)` once the terminator was read.
    fn feed_xmit(&mut self, raw: &[u8]) -> Option<usize> {
        let incoming = self.incoming.as_mut()?;
        let mut out = Vec::new();
        let step = incoming.decoder.decode(raw, &mut out);
        if !incoming.too_big {
            // Exactly the first `max_xmit_size` bytes go out, whatever the read boundaries.
            let room = self.config.max_xmit_size.saturating_sub(incoming.size);
            let too_big = out.len() > room;
            out.truncate(room);
            incoming.size += out.len();
            if !out.is_empty() {
                self.events.push_back(Event::XmitData(out));
            }
            if too_big {
                incoming.too_big = true;
                self.events.push_back(Event::XmitAborted);
            }
        }
        if !step.done {
            return None;
        }
        let too_big = self.incoming.take().is_some_and(|i| i.too_big);
        if too_big {
            self.mode = Mode::Command;
            self.reply_err(None, b"Message too large");
        } else {
            self.mode = Mode::XmitVerdict;
            self.events.push_back(Event::XmitEnd);
        }
        Some(step.consumed)
    }

    fn command(&mut self, line: &[u8]) {
        if line.len() + 2 > POP3_COMMAND_LIMIT {
            // RFC 5034 §4 asks clients to keep AUTH within 255 octets, but clients with long
            // OAuth tokens send the initial response anyway; take it, bounded by the AUTH
            // line limit. Any other long command is refused (RFC 2449 §4).
            return match long_auth(line) {
                Some((mechanism, initial)) if self.phase == Phase::Authorization => {
                    self.user = None;
                    self.auth(mechanism, Some(initial));
                }
                Some(_) => self.reply_err(None, WRONG_STATE.as_bytes()),
                None => self.bad_command(b"Line too long"),
            };
        }
        let command = match Command::parse(line) {
            Ok(command) => command,
            Err(ParseError::Unrecognized) => return self.bad_command(b"Unknown command"),
            Err(ParseError::TooLong) => return self.bad_command(b"Line too long"),
            Err(ParseError::Syntax(_)) => return self.bad_command(b"Syntax error"),
        };
        match command {
            Command::Capa => self.capa(),
            Command::Quit => self.quit(),
            Command::Noop if self.phase == Phase::Transaction => self.reply_ok(b""),
            _ if self.phase == Phase::Authorization => self.authorization(command),
            _ => self.transaction(command),
        }
    }

    fn capa(&mut self) {
        match self.capabilities().encode_response() {
            Ok(out) => self.push(out),
            Err(_) => self.reply_err(Some("SYS/PERM"), b"Capabilities misconfigured"),
        }
    }

    fn quit(&mut self) {
        if self.phase == Phase::Transaction {
            let deleted = self
                .deleted
                .iter()
                .enumerate()
                .filter(|(_, deleted)| **deleted)
                .map(|(index, _)| msg_number(index))
                .collect();
            self.mode = Mode::Commit;
            self.events.push_back(Event::Commit { deleted });
        } else {
            self.reply_ok(b"POP3 server signing off");
            self.close();
        }
    }

    fn authorization(&mut self, command: Command<'_>) {
        match command {
            Command::Stls => self.stls(),
            Command::User(name) => {
                if !self.user_pass_allowed() {
                    self.user = None;
                    return self.reply_err(None, b"USER not permitted now");
                }
                self.user = Some(String::from(name));
                self.reply_ok(b"");
            }
            Command::Pass(password) => {
                let Some(user) = self.user.take() else { return self.reply_err(None, b"USER first") };
                if !self.user_pass_allowed() {
                    return self.reply_err(None, b"PASS not permitted now");
                }
                let request =
                    CredentialRequest::VerifyPassword { authcid: user.clone(), password: Secret::from(password) };
                self.login = Some(Box::new(Login::Pass { user }));
                self.mode = Mode::Credentials;
                self.events.push_back(Event::Credentials(request));
            }
            Command::Apop { name, digest } => {
                self.user = None;
                if !self.config.apop || self.timestamp.is_none() {
                    return self.reply_err(None, b"APOP not available");
                }
                let mut lower = [0u8; apop::DIGEST_LEN];
                if !apop::is_digest(digest.as_bytes()) {
                    return self
                        .login_failed(AuthMethod::Apop, AuthFailure::Malformed("APOP digest is not 32 hex digits"));
                }
                for (slot, byte) in lower.iter_mut().zip(digest.bytes()) {
                    *slot = byte.to_ascii_lowercase();
                }
                self.login = Some(Box::new(Login::Apop { user: String::from(name), digest: lower }));
                self.mode = Mode::Credentials;
                self.events.push_back(Event::Credentials(CredentialRequest::Password { authcid: String::from(name) }));
            }
            Command::Auth { mechanism: None, .. } => {
                let mut out = Vec::from(&b"+OK\r\n"[..]);
                for mechanism in self.offered() {
                    out.extend_from_slice(mechanism.as_str().as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b".\r\n");
                self.push(out);
            }
            Command::Auth { mechanism: Some(name), initial_response } => {
                self.user = None;
                self.auth(name, initial_response);
            }
            _ => self.reply_err(None, WRONG_STATE.as_bytes()),
        }
    }

    fn stls(&mut self) {
        if self.tls.is_some() {
            return self.reply_err(None, b"Command not permitted when TLS active");
        }
        if !self.config.stls {
            return self.reply_err(None, b"STLS not available");
        }
        self.reply_ok(b"Begin TLS negotiation");
        self.user = None;
        self.phase = Phase::AwaitTls;
        self.events.push_back(Event::StartTls);
    }

    fn auth(&mut self, name: &str, initial_response: Option<&str>) {
        let mechanism = Mechanism::parse(name);
        let method = AuthMethod::Sasl(mechanism.clone());
        if !self.config.mechanisms.contains(&mechanism) || matches!(mechanism, Mechanism::Other(_)) {
            return self.reply_err(None, b"Unrecognized authentication type");
        }
        if mechanism.is_plaintext() && !self.plaintext_allowed() {
            return self.reply_err(None, b"Plaintext authentication disallowed without TLS");
        }
        if !self.usable(&mechanism) {
            return self.login_failed(method, AuthFailure::Unavailable("mechanism not available on this session"));
        }
        let initial = match initial_response.map(|text| decode_response(text.as_bytes())) {
            None => None,
            Some(Ok(Payload::Cancel)) => return self.login_failed(method, AuthFailure::Cancelled),
            Some(Ok(Payload::Empty)) => Some(Vec::new()),
            Some(Ok(Payload::Data(data))) => Some(data.to_vec()),
            Some(Err(_)) => return self.login_failed(method, AuthFailure::Malformed("initial response is not base64")),
        };
        let initial = initial.map(Secret::from);
        let context = self.sasl_context();
        let mut server = match sasl::server(&mechanism, &context, self.rng.as_mut()) {
            Ok(server) => server,
            Err(_) => return self.reply_err(None, b"Unrecognized authentication type"),
        };
        let step = server.start(initial.as_ref().map(Secret::expose));
        self.login =
            Some(Box::new(Login::Sasl { mechanism: server, asked: None, rounds: 0, done: None, refused: false }));
        self.mode = Mode::SaslLine;
        self.sasl_step(step);
    }

    fn sasl_context(&self) -> ServerContext {
        let mut context = ServerContext::new("pop", self.config.host.clone());
        context.host_aliases = self.config.host_aliases.clone();
        context.channel_binding = self.tls.as_ref().and_then(|t| t.channel_binding.clone());
        context.offers_plus = self.offered().iter().any(Mechanism::is_plus);
        context.tls_identity = self.tls.as_ref().and_then(|t| t.peer_identity.clone());
        context.scram_iterations = self.config.scram_iterations;
        context.oauth_scope = self.config.oauth_scope.clone();
        context
    }

    /// Acts on what the mechanism wants next.
    fn sasl_step(&mut self, step: ServerStep) {
        let max_rounds = self.config.max_auth_rounds;
        let Some(Login::Sasl { asked, rounds, done, .. }) = self.login.as_deref_mut() else { return };
        match step {
            ServerStep::Challenge(data) => {
                *rounds += 1;
                if *rounds > max_rounds {
                    return self.sasl_abort(AuthFailure::Malformed("too many rounds"));
                }
                self.continuation(&data);
            }
            ServerStep::Ask(request) => {
                *asked = Some(request.clone());
                self.mode = Mode::Credentials;
                self.events.push_back(Event::Credentials(request));
            }
            ServerStep::Success { identity, additional: Some(data) } if !data.is_empty() => {
                // RFC 5034 §4: POP3 cannot carry data with +OK; it goes as a last challenge.
                *done = Some(identity);
                self.mode = Mode::SaslFinal;
                self.continuation(&data);
            }
            ServerStep::Success { identity, .. } => {
                self.mode = Mode::Command;
                self.login_outcome(Ok(identity));
            }
            ServerStep::Failure(reason) => self.sasl_abort(reason),
        }
    }

    fn continuation(&mut self, data: &[u8]) {
        let mut line = Vec::from(&b"+ "[..]);
        line.extend_from_slice(encode_payload(data).as_bytes());
        line.extend_from_slice(b"\r\n");
        self.push(line);
    }

    fn sasl_abort(&mut self, reason: AuthFailure) {
        self.mode = Mode::Command;
        self.login_outcome(Err(reason));
    }

    fn sasl_line(&mut self, line: &[u8]) {
        let payload = match decode_response(line) {
            Ok(Payload::Cancel) => return self.sasl_abort(AuthFailure::Cancelled),
            Ok(payload) => payload,
            Err(_) => return self.sasl_abort(AuthFailure::Malformed("response is not base64")),
        };
        if self.mode == Mode::SaslFinal {
            let identity = match self.login.as_deref_mut() {
                Some(Login::Sasl { done, .. }) => done.take(),
                _ => None,
            };
            self.mode = Mode::Command;
            return match (payload, identity) {
                (Payload::Empty, Some(identity)) => self.login_outcome(Ok(identity)),
                _ => self.login_outcome(Err(AuthFailure::Malformed("data after the server's final message"))),
            };
        }
        let step = match (self.login.as_deref_mut(), &payload) {
            (Some(Login::Sasl { mechanism, .. }), Payload::Data(data)) => mechanism.step(data),
            (Some(Login::Sasl { mechanism, .. }), _) => mechanism.step(&[]),
            _ => ServerStep::Failure(AuthFailure::Misuse("no exchange")),
        };
        self.sasl_step(step);
    }

    /// The end of a login attempt: on success ask for the maildrop, on failure `-ERR`.
    fn login_outcome(&mut self, outcome: Result<Identity, AuthFailure>) {
        let login = self.login.take();
        let refused = matches!(login.as_deref(), Some(Login::Sasl { refused: true, .. }));
        let method = login.map_or(AuthMethod::UserPass, |login| login.method());
        // Credentials already refused: a cancel or garbage afterwards does not make the
        // attempt free (the failure limit would not hold).
        let outcome = match outcome {
            Err(AuthFailure::Cancelled | AuthFailure::Malformed(_)) if refused => Err(AuthFailure::Credentials),
            outcome => outcome,
        };
        match outcome {
            Ok(identity) => {
                let user = String::from(identity.acting_as());
                self.events.push_back(Event::Authenticated { identity: identity.clone(), method });
                self.identity = Some(identity);
                self.mode = Mode::Maildrop;
                self.events.push_back(Event::OpenMaildrop { user });
            }
            Err(reason) => self.login_failed(method, reason),
        }
    }

    fn login_failed(&mut self, method: AuthMethod, reason: AuthFailure) {
        self.login = None;
        self.mode = Mode::Command;
        match reason {
            AuthFailure::Temporary | AuthFailure::Misuse(_) => {
                self.reply_err(Some("SYS/TEMP"), b"Temporary authentication failure")
            }
            AuthFailure::Cancelled => self.reply_err(None, b"Authentication cancelled"),
            AuthFailure::Unavailable(_) => self.reply_err(None, b"Authentication mechanism not available"),
            AuthFailure::Malformed(_) => self.reply_err(None, b"Malformed authentication data"),
            _ => self.reply_err(Some("AUTH"), b"Authentication failed"),
        }
        let counts = !matches!(
            reason,
            AuthFailure::Temporary | AuthFailure::Cancelled | AuthFailure::Misuse(_) | AuthFailure::Unavailable(_)
        );
        self.events.push_back(Event::AuthFailed { method, reason });
        if counts {
            self.failures += 1;
            if self.config.max_auth_failures != 0 && self.failures >= self.config.max_auth_failures {
                self.close();
            }
        }
    }

    /// The index of a visible message.
    fn visible(&self, msg: u32) -> Option<usize> {
        let index = usize::try_from(msg).ok()?.checked_sub(1)?;
        match self.deleted.get(index) {
            Some(false) => Some(index),
            _ => None,
        }
    }

    fn transaction(&mut self, command: Command<'_>) {
        match command {
            Command::Stat => {
                let (count, size) = self.totals();
                self.reply_ok(alloc::format!("{count} {size}").as_bytes());
            }
            Command::List(Some(msg)) | Command::Uidl(Some(msg)) | Command::Dele(msg) | Command::Retr(msg)
                if self.visible(msg).is_none() =>
            {
                self.reply_err(None, b"No such message")
            }
            Command::Top { msg, .. } if self.visible(msg).is_none() => self.reply_err(None, b"No such message"),
            Command::List(Some(msg)) => {
                let size = self.visible(msg).and_then(|i| self.maildrop.get(i)).map_or(0, |m| m.size);
                self.reply_ok(alloc::format!("{msg} {size}").as_bytes());
            }
            Command::Uidl(Some(msg)) => {
                let uid = self.visible(msg).and_then(|i| self.maildrop.get(i)).map(|m| m.uid.clone());
                self.reply_ok(alloc::format!("{msg} {}", uid.unwrap_or_default()).as_bytes());
            }
            Command::List(None) | Command::Uidl(None) => {
                let uidl = matches!(command, Command::Uidl(_));
                let (count, size) = self.totals();
                let mut out = if uidl {
                    Vec::from(&b"+OK\r\n"[..])
                } else {
                    alloc::format!("+OK {count} messages ({size} octets)\r\n").into_bytes()
                };
                for (index, message) in self.maildrop.iter().enumerate() {
                    if self.deleted.get(index) == Some(&false) {
                        let msg = msg_number(index);
                        let line = if uidl {
                            alloc::format!("{msg} {}\r\n", message.uid)
                        } else {
                            alloc::format!("{msg} {}\r\n", message.size)
                        };
                        out.extend_from_slice(line.as_bytes());
                    }
                }
                out.extend_from_slice(b".\r\n");
                self.push(out);
            }
            Command::Retr(msg) => self.retrieve(msg, None),
            Command::Top { msg, lines } => self.retrieve(msg, Some(lines)),
            Command::Dele(msg) => {
                if let Some(flag) = self.visible(msg).and_then(|i| self.deleted.get_mut(i)) {
                    *flag = true;
                }
                self.reply_ok(b"Message deleted");
            }
            Command::Rset => {
                self.deleted.iter_mut().for_each(|flag| *flag = false);
                let (count, size) = self.totals();
                self.reply_ok(alloc::format!("maildrop has {count} messages ({size} octets)").as_bytes());
            }
            Command::XtndXmit if self.config.xtnd_xmit => {
                self.incoming = Some(Box::new(Incoming { decoder: DotDecoder::new(), size: 0, too_big: false }));
                self.mode = Mode::XmitBody;
                self.reply_ok(b"Start sending message");
            }
            Command::XtndXmit | Command::Xtnd(_) => self.reply_err(None, b"Unknown XTND subcommand"),
            _ => self.reply_err(None, WRONG_STATE.as_bytes()),
        }
    }

    fn totals(&self) -> (usize, u64) {
        self.maildrop
            .iter()
            .zip(&self.deleted)
            .filter(|(_, deleted)| !**deleted)
            .fold((0, 0u64), |(count, size), (message, _)| (count + 1, size.saturating_add(message.size)))
    }

    fn retrieve(&mut self, msg: u32, top_lines: Option<u32>) {
        let size = self.visible(msg).and_then(|i| self.maildrop.get(i)).map_or(0, |m| m.size);
        self.outgoing = Some(Box::new(Outgoing {
            encoder: DotEncoder::new(),
            size,
            started: false,
            top: top_lines.map(TopCut::new),
        }));
        self.mode = Mode::Message;
        self.events.push_back(Event::Retrieve { msg, top_lines });
    }

    /// Sends the `+OK` of RETR/TOP before the first data.
    fn start_message(&mut self, outgoing: &mut Outgoing) {
        if !outgoing.started {
            outgoing.started = true;
            if outgoing.top.is_some() {
                self.reply_ok(b"");
            } else {
                self.reply_ok(alloc::format!("{} octets", outgoing.size).as_bytes());
            }
        }
    }
}

/// `AUTH mechanism initial-response` on a line longer than the command limit.
fn long_auth(line: &[u8]) -> Option<(&str, &str)> {
    let line = core::str::from_utf8(line).ok()?;
    let mut words = line.split(' ').filter(|w| !w.is_empty());
    let keyword = words.next()?;
    let mechanism = words.next()?;
    let initial = words.next()?;
    let valid = keyword.eq_ignore_ascii_case("AUTH")
        && words.next().is_none()
        && mechanism.len() <= super::ARG_LIMIT
        && line.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    valid.then_some((mechanism, initial))
}

/// Message number of a listing index.
fn msg_number(index: usize) -> u32 {
    u32::try_from(index).map_or(u32::MAX, |i| i.saturating_add(1))
}

/// Text that can go on a response line.
fn clean(text: &str) -> bool {
    !text.bytes().any(|b| matches!(b, 0 | b'\r' | b'\n')) && text.len() < 300
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::{FixedRandom, ScramHash};
    use alloc::vec;

    fn cut(lines: u32, chunks: &[&[u8]]) -> Vec<u8> {
        let mut top = TopCut::new(lines);
        let mut out = Vec::new();
        for chunk in chunks {
            if top.done {
                break;
            }
            let keep = top.keep(chunk);
            out.extend_from_slice(chunk.get(..keep).unwrap());
        }
        out
    }

    #[test]
    fn top_cut_counts_header_blank_line_and_body_lines() {
        let message: &[u8] = b"A: 1\r\nB: 2\r\n\r\nx\r\ny\r\nz\r\n";
        assert_eq!(cut(0, &[message]), b"A: 1\r\nB: 2\r\n\r\n");
        assert_eq!(cut(2, &[message]), b"A: 1\r\nB: 2\r\n\r\nx\r\ny\r\n");
        assert_eq!(cut(7, &[message]), message);
        // Split inside CRLF and inside the blank line.
        for at in 0..message.len() {
            let (a, b) = message.split_at(at);
            assert_eq!(cut(1, &[a, b]), b"A: 1\r\nB: 2\r\n\r\nx\r\n", "{at}");
        }
        // No blank line: all of it is header.
        assert_eq!(cut(0, &[b"A: 1\r\nB: 2\r\n"]), b"A: 1\r\nB: 2\r\n");
    }

    #[test]
    fn answers_must_fit_the_question() {
        let password = CredentialAnswer::Password(Secret::from("x"));
        let verify = CredentialRequest::VerifyPassword { authcid: "a".into(), password: Secret::from("x") };
        assert!(verify.accepts(&CredentialAnswer::Verified));
        assert!(!verify.accepts(&password));
        let scram = CredentialRequest::ScramCredentials { authcid: "a".into(), hash: ScramHash::Sha256 };
        assert!(scram.accepts(&password));
        assert!(!scram.accepts(&CredentialAnswer::Verified));
        for any in [CredentialAnswer::Rejected, CredentialAnswer::UnknownUser, CredentialAnswer::TemporaryFailure] {
            assert!(verify.accepts(&any) && scram.accepts(&any));
        }
    }

    #[test]
    fn long_auth_lines() {
        let token = "A".repeat(400);
        let line = alloc::format!("auth XOAUTH2 {token}");
        assert_eq!(long_auth(line.as_bytes()), Some(("XOAUTH2", token.as_str())));
        assert_eq!(long_auth(alloc::format!("USER {token}").as_bytes()), None);
        assert_eq!(long_auth(alloc::format!("AUTH X {token} more").as_bytes()), None);
        assert_eq!(long_auth(alloc::format!("AUTH X {token}\u{0}").as_bytes()), None);
    }

    #[test]
    fn greeting_and_sasl_final_message_as_last_challenge() {
        let mut config = ServerConfig::new("pop.example.org");
        config.greeting = String::from("bad\r\ngreeting");
        let mut server = Server::new(config, FixedRandom::new(1));
        assert_eq!(server.poll_transmit().unwrap(), b"+OK POP3 server ready\r\n");
        server.tls_established(TlsInfo::default()).unwrap();
        // SCRAM-SHA-256 against the sasl client: the server-final goes as `+ ` and the
        // client's empty line completes the login (RFC 5034 §4).
        let credentials = crate::sasl::Credentials::password("user", "pencil");
        let context = crate::sasl::ClientContext::new("pop", "pop.example.org");
        let mut client =
            crate::sasl::client(&Mechanism::ScramSha256, &credentials, &context, &mut FixedRandom::new(2)).unwrap();
        let first = client.initial_response().unwrap().unwrap();
        let line = alloc::format!("AUTH SCRAM-SHA-256 {}\r\n", encode_payload(first.expose()));
        server.receive(line.as_bytes()).unwrap();
        assert!(matches!(
            server.poll_event(),
            Some(Event::Credentials(CredentialRequest::ScramCredentials { hash: ScramHash::Sha256, .. }))
        ));
        server.answer_credentials(CredentialAnswer::Password(Secret::from("pencil"))).unwrap();
        let mut challenge = server.poll_transmit().unwrap();
        for _ in 0..2 {
            let text = challenge.strip_prefix(b"+ ").unwrap().strip_suffix(b"\r\n").unwrap();
            let decoded = crate::wire::decode_base64(text).unwrap();
            let response = client.step(&decoded).unwrap();
            let mut line = encode_payload(response.expose()).into_bytes();
            line.extend_from_slice(b"\r\n");
            server.receive(&line).unwrap();
            if let Some(next) = server.poll_transmit() {
                challenge = next;
            }
        }
        client.finish(None).unwrap();
        assert!(matches!(server.poll_event(), Some(Event::Authenticated { .. })));
        assert_eq!(server.poll_event(), Some(Event::OpenMaildrop { user: "user".into() }));
        server.maildrop_opened(vec![]).unwrap();
        assert_eq!(server.poll_transmit().unwrap(), b"+OK Logged in\r\n");
        server.receive(b"STAT\r\nCAPA\r\n").unwrap();
        assert_eq!(server.poll_transmit().unwrap(), b"+OK 0 0\r\n");
        // After login CAPA lists no login capability.
        assert_eq!(
            server.poll_transmit().unwrap(),
            b"+OK Capability list follows\r\nTOP\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nUIDL\r\n.\r\n"
        );
    }

    #[test]
    fn idle_size() {
        let size = core::mem::size_of::<Server>();
        assert!(size <= 2048, "{size}");
    }
}
