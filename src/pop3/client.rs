//! The POP3 client machine (RFC 1939), with CAPA (RFC 2449), STLS (RFC 2595), SASL AUTH
//! (RFC 5034), APOP, USER/PASS and XTND XMIT.
//!
//! Sans-IO: bytes from the server go in with [`Client::receive`], what happened comes out of
//! [`Client::poll_event`], bytes to send come out of [`Client::poll_transmit`]. The machine
//! runs the greeting, `CAPA` and `STLS` itself; then it reports [`Event::Ready`] and the
//! application authenticates and works on the maildrop with plain method calls.
//!
//! ```
//! use mailwire::pop3::client::{Client, ClientConfig, Event};
//! use mailwire::tls::{TlsInfo, TlsPolicy};
//!
//! let mut client = Client::new(ClientConfig::new("pop.example.org"));
//! client.receive(b"+OK POP3 ready <1896.697170952@pop.example.org>\r\n").unwrap();
//! assert_eq!(client.poll_transmit().unwrap(), b"CAPA\r\n");
//! client.receive(b"+OK\r\nSTLS\r\nSASL PLAIN\r\n.\r\n").unwrap();
//! assert_eq!(client.poll_transmit().unwrap(), b"STLS\r\n");
//! client.receive(b"+OK Begin TLS\r\n").unwrap();
//! while let Some(event) = client.poll_event() {
//!     if event == Event::StartTls {
//!         // ... run the TLS handshake on the socket, then:
//!         client.tls_established(TlsInfo::default()).unwrap();
//!     }
//! }
//! assert_eq!(client.poll_transmit().unwrap(), b"CAPA\r\n");
//! ```
//!
//! STLS is fail-closed (RFC 2595 §4, `starttls-cases.md`): any byte after the `+OK` to STLS
//! before [`Client::tls_established`] is [`Error::StartTlsInjection`]; the capabilities learnt
//! before TLS are forgotten and `CAPA` is sent again before anything else; with
//! [`TlsPolicy::Required`] a missing or refused STLS closes the session before any credential
//! is sent. PLAIN, LOGIN and USER/PASS need TLS unless [`ClientConfig::allow_plaintext`].
//!
//! Message bodies (RETR, TOP) come out unstuffed as [`Event::MessageData`] chunks whose
//! boundaries follow the input, so a 50 MB message never sits whole in the machine.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use super::apop;
use super::command::{Command, WriteError};
use super::response::{
    CodeKind, DropListing, MultiLine, MultiLineReader, Response, ResponseError, ScanListing, StatusLine, UidListing,
};
use super::{Capabilities, CapabilityError};
use crate::sasl::{self, ClientContext, ClientMechanism, Credentials, Mechanism, Random, SaslError, Secret, Selection};
use crate::tls::{TlsInfo, TlsPolicy};
use crate::wire::{
    AUTH_LINE_LIMIT, DotDecoder, DotEncoder, LineError, LineReader, POP3_RESPONSE_LIMIT, encode_initial, encode_payload,
};

/// How the client behaves (plain data; see [`ClientConfig::new`]).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// When to upgrade with STLS (default [`TlsPolicy::Required`]).
    pub tls: TlsPolicy,
    /// The server's host name, for SASL (DIGEST-MD5 `digest-uri`, OAUTHBEARER `host`).
    pub host: String,
    /// The server's port, for OAUTHBEARER.
    pub port: Option<u16>,
    /// Allow PLAIN, LOGIN and USER/PASS without TLS (default `false`, RFC 2595 §2.3 spirit).
    pub allow_plaintext: bool,
    /// Allow SASL ANONYMOUS when choosing a mechanism automatically (default `false`).
    pub allow_anonymous: bool,
    /// The lowest SCRAM iteration count accepted (default 4096, RFC 7677 §4).
    pub min_scram_iterations: u32,
    /// Most lines in a CAPA, LIST or UIDL response (default 100 000); more is
    /// [`Error::Response`] with [`ResponseError::TooManyLines`].
    pub max_lines: usize,
    /// Most challenges in one SASL exchange before the client cancels it (default 16).
    pub max_auth_rounds: usize,
    /// Most bytes kept while the machine waits for the application (default 64 KiB).
    pub max_buffered: usize,
    /// Send a client-first mechanism's initial response on the AUTH line when it fits 255
    /// octets (default `true`, RFC 5034 §4); `false` always waits for the empty challenge,
    /// for servers that mishandle initial responses.
    pub send_initial_response: bool,
}

impl ClientConfig {
    /// Defaults for a server called `host`.
    pub fn new(host: impl Into<String>) -> Self {
        Self {
            tls: TlsPolicy::Required,
            host: host.into(),
            port: None,
            allow_plaintext: false,
            allow_anonymous: false,
            min_scram_iterations: 4096,
            max_lines: 100_000,
            max_auth_rounds: 16,
            max_buffered: 64 * 1024,
            send_initial_response: true,
        }
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self::new("localhost")
    }
}

/// How to log in (RFC 1939 §7, RFC 5034).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// `AUTH` with this SASL mechanism (RFC 5034).
    Sasl(Mechanism),
    /// `APOP` with the greeting's timestamp (RFC 1939 §7).
    Apop,
    /// `USER` then `PASS` (RFC 1939 §7): the password in the clear.
    UserPass,
}

/// A `-ERR` answer: its response code (RFC 2449 §8, RFC 3206) and text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ErrReply {
    /// What the code means, if there was one.
    pub kind: Option<CodeKind>,
    /// The code as sent, without brackets (`SYS/TEMP`).
    pub code: Option<String>,
    /// The text, non-UTF-8 bytes replaced.
    pub text: String,
}

impl ErrReply {
    fn from_line(line: &StatusLine<'_>) -> Self {
        Self {
            kind: line.code.map(|code| code.kind()),
            code: line.code.map(|code| String::from(code.as_str())),
            text: lossy(line.text),
        }
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A maildrop command, as named in [`Event::Done`] and [`Event::Failed`] (RFC 1939 §5, §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Request {
    /// `STAT`.
    Stat,
    /// `LIST [msg]`.
    List(Option<u32>),
    /// `UIDL [msg]`.
    Uidl(Option<u32>),
    /// `RETR msg`.
    Retr(u32),
    /// `TOP msg n`.
    Top(u32),
    /// `DELE msg`.
    Dele(u32),
    /// `RSET`.
    Rset,
    /// `NOOP`.
    Noop,
}

/// A unique-id listing, owned (RFC 1939 §7).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UniqueId {
    /// The message number.
    pub msg: u32,
    /// The unique id.
    pub uid: String,
}

/// What QUIT achieved (RFC 1939 §6).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum QuitOutcome {
    /// `+OK` in the UPDATE state: the deletions are committed.
    Committed(String),
    /// `+OK` before login: nothing to commit.
    NoUpdate(String),
    /// `-ERR`: some deletions could not be committed.
    Failed(ErrReply),
}

/// What happened; poll with [`Client::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The server's `+OK` greeting; `apop` says whether it carried an APOP timestamp.
    Greeting {
        /// The greeting text.
        text: String,
        /// An APOP timestamp was found (RFC 1939 §7).
        apop: bool,
    },
    /// A `CAPA` list was read (RFC 2449 §5); after TLS it replaces the earlier one.
    Capabilities(Capabilities),
    /// The server does not know `CAPA`: its capabilities are unknown.
    NoCapabilities(ErrReply),
    /// The server said `+OK` to STLS: run the TLS handshake now, then call
    /// [`Client::tls_established`] (RFC 2595 §4). No byte may arrive before that.
    StartTls,
    /// The server refused STLS and the policy lets the session go on in plaintext.
    StartTlsRefused(ErrReply),
    /// Negotiation is over: the application may authenticate.
    Ready {
        /// Whether the session is protected by TLS.
        tls: bool,
    },
    /// Logged in: the maildrop is open (TRANSACTION state).
    Authenticated {
        /// How.
        method: AuthMethod,
    },
    /// The login failed; the session is still in the AUTHORIZATION state.
    AuthFailed {
        /// How it was tried.
        method: AuthMethod,
        /// The server's `-ERR` (`[AUTH]`: wrong credentials, `[SYS/TEMP]`: try later).
        reply: ErrReply,
        /// Why the client cancelled the exchange, or the error the server reported inside it
        /// (an OAuth JSON status), if any.
        reason: Option<String>,
    },
    /// The answer to `STAT` (RFC 1939 §5).
    Stat {
        /// Number of messages.
        count: u32,
        /// Maildrop size in octets.
        size: u64,
    },
    /// Scan listings from `LIST` or `LIST n` (RFC 1939 §5).
    Listing(Vec<ScanListing>),
    /// Unique-id listings from `UIDL` or `UIDL n` (RFC 1939 §7).
    UniqueIds(Vec<UniqueId>),
    /// `+OK` to RETR or TOP: the message follows as [`Event::MessageData`].
    MessageStart {
        /// The message number.
        msg: u32,
        /// The status text (often the size).
        text: String,
    },
    /// A piece of the message, unstuffed (RFC 1939 §3).
    MessageData(Vec<u8>),
    /// The message ended.
    MessageEnd {
        /// The message number.
        msg: u32,
    },
    /// `+OK` to DELE, RSET or NOOP.
    Done {
        /// The command.
        request: Request,
        /// The status text.
        text: String,
    },
    /// `-ERR` to a maildrop command.
    Failed {
        /// The command.
        request: Request,
        /// The server's answer.
        reply: ErrReply,
    },
    /// `+OK` to `XTND XMIT`: send the message with [`Client::send_body_chunk`] and
    /// [`Client::finish_body`].
    XmitReady,
    /// `-ERR` to `XTND XMIT`: the message is not sent.
    XmitRefused(ErrReply),
    /// The final answer after the message: `Ok(text)` if the server accepted it.
    XmitDone(Result<String, ErrReply>),
    /// The answer to QUIT; the session is over.
    Quit(QuitOutcome),
}

/// Errors of the client. The first group is the server's fault and closes the machine; the
/// second is the caller's and leaves the machine as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A response line that is not POP3 (RFC 1939 §3), a malformed listing, or a multi-line
    /// response longer than [`ClientConfig::max_lines`].
    #[error("invalid response: {0}")]
    Response(#[from] ResponseError),
    /// The server broke the protocol (unsolicited data, a continuation outside AUTH).
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    /// A response line longer than its limit (RFC 2449 §4, RFC 4954 §4).
    #[error("response line too long: {0}")]
    LineTooLong(LineError),
    /// The greeting was `-ERR`.
    #[error("server refused the session: {0:?}")]
    GreetingRejected(ErrReply),
    /// Bytes came after the `+OK` to STLS before TLS was established: a response injection
    /// (RFC 2595 §4, CVE-2020-14928 class).
    #[error("data after the STLS response before TLS (response injection)")]
    StartTlsInjection,
    /// TLS is required but the server does not offer STLS (stripping, RFC 2595 §4).
    #[error("TLS required but the server does not offer STLS")]
    StartTlsNotOffered,
    /// TLS is required but the server refused STLS.
    #[error("TLS required but the server refused STLS: {0:?}")]
    StartTlsFailed(ErrReply),
    /// The CAPA list breaks the bounds.
    #[error("unusable capability list: {0}")]
    Capabilities(CapabilityError),
    /// The server accepted the login without proving itself (SCRAM `v=` missing or wrong).
    #[error("server not verified: {0}")]
    ServerNotVerified(SaslError),
    /// More than [`ClientConfig::max_buffered`] bytes arrived while the machine waited for
    /// the application.
    #[error("too much input while waiting for the application")]
    BufferFull,
    /// Caller: the call does not fit the machine's state.
    #[error("not possible now: {0}")]
    InvalidState(&'static str),
    /// Caller: the method would send a password in the clear (no TLS, plaintext not allowed).
    #[error("{0:?} would send the password without TLS")]
    InsecureMechanism(AuthMethod),
    /// Caller: the server offers no method the credentials and policy allow.
    #[error("no usable authentication method")]
    NoMechanism,
    /// Caller: the server does not offer this SASL mechanism.
    #[error("mechanism {0} not offered by the server")]
    NotOffered(Mechanism),
    /// Caller: APOP without a timestamp in the greeting.
    #[error("the greeting has no APOP timestamp")]
    NoApopTimestamp,
    /// Caller: the credentials do not fit the mechanism (missing password, CR/LF in a name).
    #[error("SASL: {0}")]
    Sasl(SaslError),
    /// Caller: an argument cannot be sent (CR, LF or NUL; too long).
    #[error("cannot write command: {0}")]
    Write(#[from] WriteError),
    /// The machine is closed (after QUIT or a fatal error).
    #[error("the session is closed")]
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Greeting,
    Negotiating,
    AwaitTls,
    Authorization,
    Transaction,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Capa,
    Stls,
    Auth,
    Apop,
    User,
    Pass,
    Cmd(Request),
    XmitGoAhead,
    XmitResult,
    Quit,
}

impl Pending {
    /// Commands that may be pipelined when the server offers PIPELINING (RFC 2449 §6.6).
    fn pipelinable(self) -> bool {
        matches!(self, Self::Cmd(_) | Self::Quit)
    }
}

#[derive(Debug)]
enum Multi {
    Capa(MultiLineReader, Capabilities),
    List(MultiLineReader, Vec<ScanListing>),
    Uidl(MultiLineReader, Vec<UniqueId>),
}

#[derive(Debug)]
struct Body {
    decoder: DotDecoder,
    msg: u32,
}

#[derive(Debug)]
struct AuthExchange {
    method: AuthMethod,
    mechanism: Option<alloc::boxed::Box<dyn ClientMechanism>>,
    /// An initial response too long for the command line, sent after the first challenge.
    pending_initial: Option<Secret>,
    /// The USER/PASS password, until PASS goes out.
    password: Option<Secret>,
    rounds: usize,
    cancelled: Option<String>,
}

/// What the machine does with the next input.
enum Expect {
    /// A response line.
    Line,
    /// Nothing: any byte is a protocol violation.
    Nothing,
    /// Nothing until TLS: any byte is an injection.
    TlsHandshake,
    /// The application is sending a message: keep input, bounded.
    Later,
}

/// The POP3 client machine. See the module docs for the driving loop.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    phase: Phase,
    reader: LineReader,
    events: VecDeque<Event>,
    transmit: VecDeque<Vec<u8>>,
    /// Sent, awaiting their response, oldest first.
    in_flight: VecDeque<Pending>,
    /// Not yet sent (no PIPELINING): each waits for the previous response.
    queued: VecDeque<(Pending, Vec<u8>)>,
    multi: Option<Multi>,
    body: Option<Body>,
    auth: Option<AuthExchange>,
    /// `Some` while the application streams an XTND XMIT message.
    xmit: Option<DotEncoder>,
    quit_queued: bool,
    /// `+OK` to STLS read; [`Event::StartTls`] goes out once no byte follows it.
    start_tls_pending: bool,
    capabilities: Option<Capabilities>,
    timestamp: Option<Vec<u8>>,
    tls: Option<TlsInfo>,
}

impl Client {
    /// A client waiting for the server's greeting.
    pub fn new(config: ClientConfig) -> Self {
        Self {
            config,
            phase: Phase::Greeting,
            reader: LineReader::new(POP3_RESPONSE_LIMIT),
            events: VecDeque::new(),
            transmit: VecDeque::new(),
            in_flight: VecDeque::new(),
            queued: VecDeque::new(),
            multi: None,
            body: None,
            auth: None,
            xmit: None,
            quit_queued: false,
            start_tls_pending: false,
            capabilities: None,
            timestamp: None,
            tls: None,
        }
    }

    /// The next thing that happened.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next bytes to send to the server.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// Whether the session is over (after QUIT or a fatal error).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Whether the session runs over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether the client is logged in (TRANSACTION state, RFC 1939 §5).
    pub fn is_authenticated(&self) -> bool {
        self.phase == Phase::Transaction
    }

    /// The current capabilities: `None` before CAPA was answered, right after TLS, or when
    /// the server does not know CAPA.
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.capabilities.as_ref()
    }

    /// The APOP timestamp of the greeting, brackets included.
    pub fn apop_timestamp(&self) -> Option<&[u8]> {
        self.timestamp.as_deref()
    }

    /// Feeds bytes from the server. A server fault closes the machine and is returned.
    pub fn receive(&mut self, data: &[u8]) -> Result<(), Error> {
        if data.is_empty() {
            return Ok(());
        }
        if self.phase == Phase::Closed {
            return Err(Error::Closed);
        }
        if self.phase == Phase::AwaitTls {
            return self.fail(Error::StartTlsInjection);
        }
        self.reader.feed(data);
        self.run()
    }

    /// The caller finished the TLS handshake asked for by [`Event::StartTls`]. Capabilities
    /// learnt before are forgotten and `CAPA` goes out again (RFC 2595 §4). For implicit TLS
    /// (port 995) call it before any byte is received.
    pub fn tls_established(&mut self, info: TlsInfo) -> Result<(), Error> {
        match self.phase {
            Phase::AwaitTls => {
                self.reader.clear();
                self.tls = Some(info);
                self.capabilities = None;
                self.phase = Phase::Negotiating;
                self.send_now(Pending::Capa, &Command::Capa)
            }
            Phase::Greeting if !self.reader.has_pending() && self.tls.is_none() => {
                self.tls = Some(info);
                Ok(())
            }
            Phase::Closed => Err(Error::Closed),
            _ => Err(Error::InvalidState("no STLS in progress")),
        }
    }

    /// Logs in with the strongest method the server offers and the credentials and policy
    /// allow: a SASL mechanism that does not reveal the password, else APOP, else PLAIN or
    /// LOGIN, else USER/PASS (the last three only over TLS unless allowed). Returns the
    /// method chosen; the outcome comes as [`Event::Authenticated`] or [`Event::AuthFailed`].
    pub fn authenticate(&mut self, credentials: &Credentials, rng: &mut dyn Random) -> Result<AuthMethod, Error> {
        self.check_authorization()?;
        let method = self.choose(credentials)?;
        self.authenticate_with(credentials, method.clone(), rng)?;
        Ok(method)
    }

    /// Logs in with `method`.
    pub fn authenticate_with(
        &mut self,
        credentials: &Credentials,
        method: AuthMethod,
        rng: &mut dyn Random,
    ) -> Result<(), Error> {
        self.check_authorization()?;
        match &method {
            AuthMethod::Sasl(mechanism) => self.start_sasl(credentials, mechanism, rng),
            AuthMethod::Apop => {
                let timestamp = self.timestamp.as_deref().ok_or(Error::NoApopTimestamp)?;
                let password =
                    credentials.password.as_ref().ok_or(Error::Sasl(SaslError::MissingCredential("password")))?;
                let digest = apop::digest(timestamp, password.expose());
                let line = Command::Apop { name: &credentials.authcid, digest: &digest }.to_bytes()?;
                self.auth = Some(AuthExchange::new(AuthMethod::Apop));
                self.push_line(Pending::Apop, line);
                Ok(())
            }
            AuthMethod::UserPass => {
                if !self.plaintext_allowed() {
                    return Err(Error::InsecureMechanism(AuthMethod::UserPass));
                }
                let password =
                    credentials.password.clone().ok_or(Error::Sasl(SaslError::MissingCredential("password")))?;
                let pass =
                    password.expose_str().ok_or(Error::Sasl(SaslError::InvalidCredential("password is not UTF-8")))?;
                // Check PASS now so that nothing goes out if it cannot be written.
                Command::Pass(pass).to_bytes()?;
                let line = Command::User(&credentials.authcid).to_bytes()?;
                let mut exchange = AuthExchange::new(AuthMethod::UserPass);
                exchange.password = Some(password);
                self.auth = Some(exchange);
                self.push_line(Pending::User, line);
                Ok(())
            }
        }
    }

    /// `STAT` (RFC 1939 §5): answered by [`Event::Stat`].
    pub fn stat(&mut self) -> Result<(), Error> {
        self.maildrop(Request::Stat, Command::Stat)
    }

    /// `LIST` or `LIST msg` (RFC 1939 §5): answered by [`Event::Listing`].
    pub fn list(&mut self, msg: Option<u32>) -> Result<(), Error> {
        self.maildrop(Request::List(msg), Command::List(msg))
    }

    /// `UIDL` or `UIDL msg` (RFC 1939 §7): answered by [`Event::UniqueIds`].
    pub fn uidl(&mut self, msg: Option<u32>) -> Result<(), Error> {
        self.maildrop(Request::Uidl(msg), Command::Uidl(msg))
    }

    /// `RETR msg` (RFC 1939 §5): the message streams out as [`Event::MessageData`].
    pub fn retr(&mut self, msg: u32) -> Result<(), Error> {
        self.maildrop(Request::Retr(msg), Command::Retr(msg))
    }

    /// `TOP msg lines` (RFC 1939 §7): the headers and `lines` body lines.
    pub fn top(&mut self, msg: u32, lines: u32) -> Result<(), Error> {
        self.maildrop(Request::Top(msg), Command::Top { msg, lines })
    }

    /// `DELE msg` (RFC 1939 §5): marks the message; QUIT commits.
    pub fn dele(&mut self, msg: u32) -> Result<(), Error> {
        self.maildrop(Request::Dele(msg), Command::Dele(msg))
    }

    /// `RSET` (RFC 1939 §5): unmarks every deleted message.
    pub fn rset(&mut self) -> Result<(), Error> {
        self.maildrop(Request::Rset, Command::Rset)
    }

    /// `NOOP` (RFC 1939 §5).
    pub fn noop(&mut self) -> Result<(), Error> {
        self.maildrop(Request::Noop, Command::Noop)
    }

    /// `XTND XMIT`: asks to send a message through the server. Wait for
    /// [`Event::XmitReady`] before sending the message; a refusal is [`Event::XmitRefused`].
    pub fn xtnd_xmit(&mut self) -> Result<(), Error> {
        self.check_transaction()?;
        if self.in_flight.contains(&Pending::XmitGoAhead) || self.queued.iter().any(|(p, _)| *p == Pending::XmitGoAhead)
        {
            return Err(Error::InvalidState("XTND XMIT in progress"));
        }
        let line = Command::XtndXmit.to_bytes()?;
        self.push_line(Pending::XmitGoAhead, line);
        Ok(())
    }

    /// Sends a piece of the XTND XMIT message (a whole RFC 5322 message with its recipient
    /// headers), dot-stuffed on the way out; bare CR and LF become CRLF.
    pub fn send_body_chunk(&mut self, data: &[u8]) -> Result<(), Error> {
        let encoder = self.xmit.as_mut().ok_or(Error::InvalidState("no XTND XMIT go-ahead"))?;
        let mut out = Vec::with_capacity(data.len() + 16);
        encoder.encode(data, &mut out);
        if !out.is_empty() {
            self.transmit.push_back(out);
        }
        Ok(())
    }

    /// Ends the XTND XMIT message with `.`; the outcome comes as [`Event::XmitDone`].
    pub fn finish_body(&mut self) -> Result<(), Error> {
        let mut encoder = self.xmit.take().ok_or(Error::InvalidState("no XTND XMIT go-ahead"))?;
        let mut out = Vec::new();
        encoder.finish(&mut out);
        self.transmit.push_back(out);
        self.in_flight.push_back(Pending::XmitResult);
        // A response that arrived while the message was being sent is read now.
        self.run()
    }

    /// `QUIT` (RFC 1939 §6): after login the server commits the deletions (UPDATE state);
    /// the outcome comes as [`Event::Quit`].
    pub fn quit(&mut self) -> Result<(), Error> {
        match self.phase {
            Phase::Closed => return Err(Error::Closed),
            Phase::Authorization | Phase::Transaction => {}
            // Never queue anything behind the machine's own CAPA/STLS (C13).
            Phase::Greeting | Phase::Negotiating | Phase::AwaitTls => {
                return Err(Error::InvalidState("QUIT not possible now"));
            }
        }
        if self.quit_queued {
            return Err(Error::InvalidState("QUIT already sent"));
        }
        if self.xmit.is_some() {
            return Err(Error::InvalidState("finish the XTND XMIT message first"));
        }
        let line = Command::Quit.to_bytes()?;
        self.quit_queued = true;
        self.push_line(Pending::Quit, line);
        Ok(())
    }

    fn fail<T>(&mut self, error: Error) -> Result<T, Error> {
        self.phase = Phase::Closed;
        // A closed machine upgrades nothing: a StartTls not yet polled goes (so that the events
        // do not depend on whether the injected bytes came with the reply or after it).
        self.events.retain(|event| !matches!(event, Event::StartTls));
        self.reader.clear();
        self.queued.clear();
        self.in_flight.clear();
        self.xmit = None;
        self.auth = None;
        Err(error)
    }

    fn plaintext_allowed(&self) -> bool {
        self.tls.is_some() || self.config.allow_plaintext
    }

    fn check_authorization(&self) -> Result<(), Error> {
        match self.phase {
            Phase::Closed => Err(Error::Closed),
            Phase::Authorization if self.in_flight.is_empty() && self.queued.is_empty() && !self.quit_queued => Ok(()),
            Phase::Transaction => Err(Error::InvalidState("already authenticated")),
            _ => Err(Error::InvalidState("not ready to authenticate")),
        }
    }

    fn check_transaction(&self) -> Result<(), Error> {
        match self.phase {
            Phase::Closed => Err(Error::Closed),
            Phase::Transaction if !self.quit_queued && self.xmit.is_none() => Ok(()),
            Phase::Transaction => Err(Error::InvalidState("QUIT sent or XTND XMIT in progress")),
            _ => Err(Error::InvalidState("not authenticated")),
        }
    }

    fn maildrop(&mut self, request: Request, command: Command<'_>) -> Result<(), Error> {
        self.check_transaction()?;
        if self.in_flight.contains(&Pending::XmitGoAhead) || self.queued.iter().any(|(p, _)| *p == Pending::XmitGoAhead)
        {
            return Err(Error::InvalidState("XTND XMIT in progress"));
        }
        let line = command.to_bytes()?;
        self.push_line(Pending::Cmd(request), line);
        Ok(())
    }

    fn choose(&self, credentials: &Credentials) -> Result<AuthMethod, Error> {
        let tls = self.tls.as_ref();
        let offered: &[Mechanism] = self.capabilities.as_ref().map(|c| c.sasl.as_slice()).unwrap_or_default();
        let selection = Selection {
            tls: tls.is_some(),
            allow_plaintext: self.config.allow_plaintext,
            has_password: credentials.password.is_some(),
            has_token: credentials.token.is_some(),
            has_client_certificate: tls.is_some_and(|t| t.client_certificate),
            has_channel_binding: tls.is_some_and(|t| t.channel_binding.is_some()),
            allow_anonymous: self.config.allow_anonymous,
            forced: None,
        };
        let sasl = sasl::select(offered, &selection).ok();
        let apop = self.timestamp.is_some() && credentials.password.is_some();
        let user_offered = self.capabilities.as_ref().is_none_or(|c| c.user);
        match sasl {
            Some(mechanism) if !mechanism.is_plaintext() && mechanism != Mechanism::Anonymous => {
                Ok(AuthMethod::Sasl(mechanism))
            }
            _ if apop => Ok(AuthMethod::Apop),
            Some(mechanism) => Ok(AuthMethod::Sasl(mechanism)),
            None if credentials.password.is_some() && user_offered => {
                if self.plaintext_allowed() {
                    Ok(AuthMethod::UserPass)
                } else {
                    Err(Error::InsecureMechanism(AuthMethod::UserPass))
                }
            }
            None => match offered.iter().find(|m| m.is_plaintext()) {
                Some(m) if credentials.password.is_some() && !self.plaintext_allowed() => {
                    Err(Error::InsecureMechanism(AuthMethod::Sasl(m.clone())))
                }
                _ => Err(Error::NoMechanism),
            },
        }
    }

    fn start_sasl(
        &mut self,
        credentials: &Credentials,
        mechanism: &Mechanism,
        rng: &mut dyn Random,
    ) -> Result<(), Error> {
        if let Some(caps) = &self.capabilities {
            if !caps.sasl.contains(mechanism) {
                return Err(Error::NotOffered(mechanism.clone()));
            }
        }
        if mechanism.is_plaintext() && !self.plaintext_allowed() {
            return Err(Error::InsecureMechanism(AuthMethod::Sasl(mechanism.clone())));
        }
        let mut context = ClientContext::new("pop", self.config.host.clone());
        context.port = self.config.port;
        context.channel_binding = self.tls.as_ref().and_then(|t| t.channel_binding.clone());
        context.server_offers_plus = self.capabilities.as_ref().is_some_and(|c| c.sasl.iter().any(Mechanism::is_plus));
        context.min_scram_iterations = self.config.min_scram_iterations;
        let mut client = sasl::client(mechanism, credentials, &context, rng).map_err(Error::Sasl)?;
        let initial = if mechanism.client_first() { client.initial_response().map_err(Error::Sasl)? } else { None };
        let name = mechanism.as_str();
        let mut exchange = AuthExchange::new(AuthMethod::Sasl(mechanism.clone()));
        // RFC 5034 §4: the initial response only if the command fits in 255 octets.
        let line = match &initial {
            Some(initial) if !self.config.send_initial_response => {
                exchange.pending_initial = Some(initial.clone());
                Command::Auth { mechanism: Some(name), initial_response: None }.to_bytes()?
            }
            Some(initial) => {
                let encoded = encode_initial(initial.expose());
                match (Command::Auth { mechanism: Some(name), initial_response: Some(&encoded) }).to_bytes() {
                    Ok(line) => line,
                    Err(WriteError::TooLong) => {
                        exchange.pending_initial = Some(initial.clone());
                        Command::Auth { mechanism: Some(name), initial_response: None }.to_bytes()?
                    }
                    Err(err) => return Err(err.into()),
                }
            }
            None => Command::Auth { mechanism: Some(name), initial_response: None }.to_bytes()?,
        };
        exchange.mechanism = Some(client);
        self.auth = Some(exchange);
        self.push_line(Pending::Auth, line);
        Ok(())
    }

    /// Sends a command now, whatever else is in flight (the machine's own CAPA and STLS).
    fn send_now(&mut self, pending: Pending, command: &Command<'_>) -> Result<(), Error> {
        let line = command.to_bytes()?;
        self.transmit.push_back(line);
        self.in_flight.push_back(pending);
        Ok(())
    }

    /// Queues a command: it goes out at once if nothing is in flight, or if both it and
    /// everything in flight may be pipelined and the server offers PIPELINING.
    fn push_line(&mut self, pending: Pending, line: Vec<u8>) {
        self.queued.push_back((pending, line));
        self.flush();
    }

    fn flush(&mut self) {
        let pipelining = self.capabilities.as_ref().is_some_and(|c| c.pipelining);
        while let Some((pending, _)) = self.queued.front() {
            let may_send = self.in_flight.is_empty()
                || (pipelining && pending.pipelinable() && self.in_flight.iter().all(|p| p.pipelinable()));
            if !may_send || self.xmit.is_some() {
                break;
            }
            if let Some((pending, line)) = self.queued.pop_front() {
                self.transmit.push_back(line);
                self.in_flight.push_back(pending);
            }
        }
    }

    fn expect(&self) -> Expect {
        match self.phase {
            Phase::Greeting => Expect::Line,
            Phase::AwaitTls => Expect::TlsHandshake,
            Phase::Closed => Expect::Nothing,
            _ if self.xmit.is_some() => Expect::Later,
            _ if self.in_flight.is_empty() => Expect::Nothing,
            _ => Expect::Line,
        }
    }

    fn run(&mut self) -> Result<(), Error> {
        let mut reader = core::mem::replace(&mut self.reader, LineReader::new(0));
        let result = self.process(&mut reader);
        self.reader = reader;
        match result {
            Ok(()) => Ok(()),
            Err(error) => self.fail(error),
        }
    }

    fn process(&mut self, reader: &mut LineReader) -> Result<(), Error> {
        loop {
            if self.body.is_some() {
                if !reader.has_pending() {
                    return Ok(());
                }
                let raw = reader.take_pending();
                let consumed = self.feed_body(&raw);
                match consumed {
                    Some(consumed) => reader.feed(raw.get(consumed..).unwrap_or_default()),
                    None => return Ok(()),
                }
                continue;
            }
            match self.expect() {
                Expect::Line => {}
                // After the answer to QUIT the session is over: what follows in the same read
                // is dropped unread, as a later read would be.
                Expect::Nothing if self.phase == Phase::Closed => {
                    reader.clear();
                    return Ok(());
                }
                Expect::Nothing if reader.has_pending() => {
                    return Err(Error::Protocol("unsolicited data from the server"));
                }
                Expect::TlsHandshake if reader.has_pending() => return Err(Error::StartTlsInjection),
                Expect::TlsHandshake => {
                    if core::mem::take(&mut self.start_tls_pending) {
                        self.events.push_back(Event::StartTls);
                    }
                    return Ok(());
                }
                Expect::Later if reader.pending_len() > self.config.max_buffered => return Err(Error::BufferFull),
                Expect::Nothing | Expect::Later => return Ok(()),
            }
            let limit =
                if self.in_flight.front() == Some(&Pending::Auth) { AUTH_LINE_LIMIT } else { POP3_RESPONSE_LIMIT };
            reader.set_limit(limit);
            match reader.next_line() {
                None => return Ok(()),
                Some(Err(error)) => return Err(Error::LineTooLong(error)),
                Some(Ok(line)) => self.handle_line(line)?,
            }
        }
    }

    /// Unstuffs body bytes; `Some(consumed)` once the terminator has been read.
    fn feed_body(&mut self, raw: &[u8]) -> Option<usize> {
        let body = self.body.as_mut()?;
        let mut out = Vec::new();
        let step = body.decoder.decode(raw, &mut out);
        let msg = body.msg;
        if !out.is_empty() {
            self.events.push_back(Event::MessageData(out));
        }
        if !step.done {
            return None;
        }
        self.body = None;
        self.events.push_back(Event::MessageEnd { msg });
        self.complete();
        Some(step.consumed)
    }

    /// The response of the oldest command in flight is complete.
    fn complete(&mut self) {
        self.in_flight.pop_front();
        self.flush();
    }

    fn status(line: &[u8]) -> Result<StatusLine<'_>, Error> {
        match Response::parse(line)? {
            Response::Status(status) => Ok(status),
            Response::Continuation(_) => Err(Error::Protocol("continuation outside AUTH")),
        }
    }

    fn handle_line(&mut self, line: &[u8]) -> Result<(), Error> {
        if self.phase == Phase::Greeting {
            return self.on_greeting(line);
        }
        if self.multi.is_some() {
            return self.on_multi_line(line);
        }
        let Some(&pending) = self.in_flight.front() else {
            return Err(Error::Protocol("unsolicited data from the server"));
        };
        if pending == Pending::Auth {
            return self.on_auth_line(line);
        }
        let status = Self::status(line)?;
        match pending {
            Pending::Capa => self.on_capa(&status),
            Pending::Stls => self.on_stls(&status),
            Pending::Apop | Pending::Pass => {
                self.complete();
                self.login_result(&status);
                Ok(())
            }
            Pending::User => {
                self.complete();
                if status.is_ok() {
                    let password = self.auth.as_mut().and_then(|a| a.password.take());
                    let password = password.ok_or(Error::Protocol("PASS without a password"))?;
                    let line = Command::Pass(password.expose_str().unwrap_or_default()).to_bytes()?;
                    self.push_line(Pending::Pass, line);
                } else {
                    self.login_result(&status);
                }
                Ok(())
            }
            Pending::Cmd(request) => self.on_maildrop(request, &status),
            Pending::XmitGoAhead => {
                self.complete();
                if status.is_ok() {
                    self.xmit = Some(DotEncoder::new());
                    self.events.push_back(Event::XmitReady);
                } else {
                    self.events.push_back(Event::XmitRefused(ErrReply::from_line(&status)));
                }
                Ok(())
            }
            Pending::XmitResult => {
                self.complete();
                let result = if status.is_ok() { Ok(lossy(status.text)) } else { Err(ErrReply::from_line(&status)) };
                self.events.push_back(Event::XmitDone(result));
                Ok(())
            }
            Pending::Quit => {
                let outcome = match (status.is_ok(), self.phase) {
                    (true, Phase::Transaction) => QuitOutcome::Committed(lossy(status.text)),
                    (true, _) => QuitOutcome::NoUpdate(lossy(status.text)),
                    (false, _) => QuitOutcome::Failed(ErrReply::from_line(&status)),
                };
                self.events.push_back(Event::Quit(outcome));
                self.in_flight.clear();
                self.queued.clear();
                self.phase = Phase::Closed;
                Ok(())
            }
            Pending::Auth => Ok(()),
        }
    }

    fn on_greeting(&mut self, line: &[u8]) -> Result<(), Error> {
        let status = Self::status(line)?;
        if !status.is_ok() {
            return Err(Error::GreetingRejected(ErrReply::from_line(&status)));
        }
        self.timestamp = apop::find_timestamp(line).map(<[u8]>::to_vec);
        self.events.push_back(Event::Greeting { text: lossy(status.text), apop: self.timestamp.is_some() });
        self.phase = Phase::Negotiating;
        self.send_now(Pending::Capa, &Command::Capa)
    }

    fn on_capa(&mut self, status: &StatusLine<'_>) -> Result<(), Error> {
        if status.is_ok() {
            self.multi = Some(Multi::Capa(MultiLineReader::new(self.config.max_lines), Capabilities::default()));
            return Ok(());
        }
        self.complete();
        self.events.push_back(Event::NoCapabilities(ErrReply::from_line(status)));
        self.capabilities = None;
        self.after_capa()
    }

    /// CAPA answered: STLS by policy, or ready (RFC 2595 §4).
    fn after_capa(&mut self) -> Result<(), Error> {
        if self.tls.is_some() || self.config.tls == TlsPolicy::Disabled {
            return self.ready();
        }
        let offered = self.capabilities.as_ref().map(|c| c.stls);
        match (self.config.tls, offered) {
            (TlsPolicy::Required, Some(false)) => Err(Error::StartTlsNotOffered),
            // Without CAPA, STLS can only be tried: a refusal still fails closed.
            (TlsPolicy::Required, _) | (_, Some(true)) => self.send_now(Pending::Stls, &Command::Stls),
            _ => self.ready(),
        }
    }

    fn ready(&mut self) -> Result<(), Error> {
        self.phase = Phase::Authorization;
        self.events.push_back(Event::Ready { tls: self.tls.is_some() });
        Ok(())
    }

    fn on_stls(&mut self, status: &StatusLine<'_>) -> Result<(), Error> {
        self.complete();
        if status.is_ok() {
            // Nothing may follow until TLS: `process` checks the buffer right after this line
            // and only then reports StartTls, so an injection never looks like an upgrade.
            self.phase = Phase::AwaitTls;
            self.start_tls_pending = true;
            return Ok(());
        }
        let reply = ErrReply::from_line(status);
        if self.config.tls == TlsPolicy::Required {
            return Err(Error::StartTlsFailed(reply));
        }
        self.events.push_back(Event::StartTlsRefused(reply));
        self.ready()
    }

    fn on_multi_line(&mut self, line: &[u8]) -> Result<(), Error> {
        let Some(multi) = self.multi.as_mut() else { return Ok(()) };
        let reader = match multi {
            Multi::Capa(reader, _) | Multi::List(reader, _) | Multi::Uidl(reader, _) => reader,
        };
        let data = match reader.line(line)? {
            MultiLine::Line(data) => data,
            MultiLine::End => {
                let finished = self.multi.take();
                self.complete();
                match finished {
                    Some(Multi::Capa(_, caps)) => {
                        self.events.push_back(Event::Capabilities(caps.clone()));
                        self.capabilities = Some(caps);
                        return self.after_capa();
                    }
                    Some(Multi::List(_, entries)) => self.events.push_back(Event::Listing(entries)),
                    Some(Multi::Uidl(_, entries)) => self.events.push_back(Event::UniqueIds(entries)),
                    None => {}
                }
                return Ok(());
            }
        };
        match multi {
            Multi::Capa(_, caps) => caps.parse_line(data).map_err(Error::Capabilities)?,
            Multi::List(_, entries) => entries.push(ScanListing::parse(data)?),
            Multi::Uidl(_, entries) => {
                let entry = UidListing::parse(data)?;
                entries.push(UniqueId { msg: entry.msg, uid: String::from(entry.uid) });
            }
        }
        Ok(())
    }

    fn on_maildrop(&mut self, request: Request, status: &StatusLine<'_>) -> Result<(), Error> {
        if !status.is_ok() {
            self.complete();
            self.events.push_back(Event::Failed { request, reply: ErrReply::from_line(status) });
            return Ok(());
        }
        let max = self.config.max_lines;
        match request {
            Request::Stat => {
                let drop = DropListing::parse(status.text)?;
                self.complete();
                self.events.push_back(Event::Stat { count: drop.count, size: drop.size });
            }
            Request::List(None) => self.multi = Some(Multi::List(MultiLineReader::new(max), Vec::new())),
            Request::Uidl(None) => self.multi = Some(Multi::Uidl(MultiLineReader::new(max), Vec::new())),
            Request::List(Some(_)) => {
                let entry = ScanListing::parse(status.text)?;
                self.complete();
                self.events.push_back(Event::Listing(alloc::vec![entry]));
            }
            Request::Uidl(Some(_)) => {
                let entry = UidListing::parse(status.text)?;
                let entry = UniqueId { msg: entry.msg, uid: String::from(entry.uid) };
                self.complete();
                self.events.push_back(Event::UniqueIds(alloc::vec![entry]));
            }
            Request::Retr(msg) | Request::Top(msg) => {
                self.events.push_back(Event::MessageStart { msg, text: lossy(status.text) });
                self.body = Some(Body { decoder: DotDecoder::new(), msg });
            }
            Request::Dele(_) | Request::Rset | Request::Noop => {
                self.complete();
                self.events.push_back(Event::Done { request, text: lossy(status.text) });
            }
        }
        Ok(())
    }

    /// `+OK` or `-ERR` to APOP, PASS, or USER.
    fn login_result(&mut self, status: &StatusLine<'_>) {
        let method = self.auth.take().map_or(AuthMethod::UserPass, |a| a.method);
        if status.is_ok() {
            self.phase = Phase::Transaction;
            self.events.push_back(Event::Authenticated { method });
        } else {
            self.events.push_back(Event::AuthFailed { method, reply: ErrReply::from_line(status), reason: None });
        }
    }

    fn on_auth_line(&mut self, line: &[u8]) -> Result<(), Error> {
        let response = Response::parse(line)?;
        let exchange = self.auth.as_mut().ok_or(Error::Protocol("AUTH response without an exchange"))?;
        match response {
            Response::Continuation(continuation) => {
                if exchange.cancelled.is_some() {
                    return Err(Error::Protocol("challenge after the client cancelled"));
                }
                exchange.rounds += 1;
                let answer = if exchange.rounds > self.config.max_auth_rounds {
                    Err(String::from("too many challenges"))
                } else if let Some(initial) = exchange.pending_initial.take() {
                    // RFC 5034 §4: the initial response that did not fit the command line
                    // answers the first (empty) challenge; any text there is ignored (B20).
                    Ok(initial)
                } else if let Some(mechanism) = exchange.mechanism.as_mut() {
                    // B20: a challenge that is not base64 goes to the mechanism raw; PLAIN and
                    // LOGIN ignore challenge text, the others refuse it.
                    let decoded = continuation.decode();
                    let challenge: &[u8] = match &decoded {
                        Ok(bytes) => bytes,
                        Err(_) => continuation.raw,
                    };
                    mechanism.step(challenge).map_err(|e| alloc::format!("{e}"))
                } else {
                    Err(String::from("no mechanism"))
                };
                let mut out = match answer {
                    Ok(response) => encode_payload(response.expose()).into_bytes(),
                    Err(reason) => {
                        exchange.cancelled = Some(reason);
                        b"*".to_vec()
                    }
                };
                out.extend_from_slice(b"\r\n");
                self.transmit.push_back(out);
                Ok(())
            }
            Response::Status(status) => {
                let Some(mut exchange) = self.auth.take() else { return Ok(()) };
                self.complete();
                if status.is_ok() {
                    if exchange.cancelled.is_some() {
                        return Err(Error::Protocol("+OK after the client cancelled AUTH"));
                    }
                    if exchange.pending_initial.is_some() {
                        return Err(Error::ServerNotVerified(SaslError::ServerNotVerified(
                            "success before the credentials were sent",
                        )));
                    }
                    if let Some(mechanism) = exchange.mechanism.as_mut() {
                        // The server must have proved itself where the mechanism can tell.
                        mechanism.finish(None).map_err(Error::ServerNotVerified)?;
                    }
                    self.phase = Phase::Transaction;
                    self.events.push_back(Event::Authenticated { method: exchange.method });
                } else {
                    let server_error = exchange.mechanism.as_ref().and_then(|m| m.server_error()).map(String::from);
                    let reason = exchange.cancelled.take().or(server_error);
                    self.events.push_back(Event::AuthFailed {
                        method: exchange.method,
                        reply: ErrReply::from_line(&status),
                        reason,
                    });
                }
                Ok(())
            }
        }
    }
}

impl AuthExchange {
    fn new(method: AuthMethod) -> Self {
        Self { method, mechanism: None, pending_initial: None, password: None, rounds: 0, cancelled: None }
    }
}
