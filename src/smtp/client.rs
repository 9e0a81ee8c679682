//! The SMTP client machine (RFC 5321), with STARTTLS (RFC 3207), AUTH (RFC 4954) and
//! PIPELINING (RFC 2920). Sans-IO: bytes in with [`Client::receive`], events out with
//! [`Client::poll_event`], bytes to send with [`Client::poll_transmit`].
//!
//! The session runs greeting → EHLO (HELO when EHLO is refused with 500/502) → STARTTLS as
//! the [`TlsPolicy`] says → [`Event::Ready`]; the application then calls
//! [`authenticate`](Client::authenticate), [`send_mail`](Client::send_mail) (body streamed with
//! [`send_body_chunk`](Client::send_body_chunk) / [`finish_body`](Client::finish_body)),
//! [`rset`](Client::rset) and [`quit`](Client::quit).
//!
//! STARTTLS fails closed: after the `220` nothing may arrive before
//! [`tls_established`](Client::tls_established) ([`Error::StartTlsInjection`]); capabilities
//! learnt before TLS are forgotten and EHLO is sent again; nothing is pipelined with STARTTLS;
//! with [`TlsPolicy::Required`] a missing or refused STARTTLS ends the session before any
//! credential is sent.
//!
//! Replies that arrive while no command is outstanding stay buffered (bounded by
//! [`ClientConfig::max_buffered`]) until the application sends the command they answer, so
//! events and output do not depend on how the input was split.
//!
//! ```
//! use mailwire::sasl::{Credentials, FixedRandom};
//! use mailwire::smtp::{Client, ClientConfig, client::Event};
//! use mailwire::tls::TlsInfo;
//!
//! let config = ClientConfig::new("client.example", "mail.example.net");
//! let mut client = Client::new(config, Box::new(FixedRandom::new(1)));
//! // What the server sends, read by read (after the third, through TLS).
//! let reads: [&[u8]; 5] = [
//!     b"220 mail.example.net ESMTP\r\n",
//!     b"250-mail.example.net\r\n250 STARTTLS\r\n",
//!     b"220 2.0.0 Ready\r\n",
//!     b"250-mail.example.net\r\n250 AUTH PLAIN SCRAM-SHA-256\r\n",
//!     b"535 5.7.8 Authentication failed\r\n",
//! ];
//! let mut sent = Vec::new();
//! for bytes in reads {
//!     client.receive(bytes)?;
//!     while let Some(event) = client.poll_event() {
//!         match event {
//!             // Run the TLS handshake on the socket here.
//!             Event::StartTls => client.tls_established(TlsInfo::default())?,
//!             Event::Ready(_) => {
//!                 client.authenticate(&Credentials::password("alice", "wonderland"))?;
//!             }
//!             Event::AuthFailed { .. } | Event::Authenticated { .. } => client.quit()?,
//!             _ => {}
//!         }
//!     }
//!     while let Some(bytes) = client.poll_transmit() {
//!         sent.extend_from_slice(&bytes);
//!     }
//! }
//! let sent = String::from_utf8(sent).unwrap();
//! assert!(sent.starts_with("EHLO client.example\r\nSTARTTLS\r\nEHLO client.example\r\nAUTH SCRAM-SHA-256 "));
//! assert!(sent.ends_with("QUIT\r\n"));
//! # Ok::<(), mailwire::smtp::client::Error>(())
//! ```

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use super::{Capabilities, Command, Parameter, Parameters, Path, Reply, ReplyError, ReplyParser, WriteError};
use crate::sasl::{
    self, ClientContext, ClientMechanism, Credentials, Mechanism, Random, SaslError, SelectError, Selection,
};
use crate::tls::{TlsInfo, TlsPolicy};
use crate::wire::{AUTH_LINE_LIMIT, DotEncoder, LineReader, SMTP_COMMAND_LIMIT, SMTP_REPLY_LIMIT};

/// How a client session behaves. Plain data: build it with [`ClientConfig::new`] and change
/// fields as needed.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The name sent with EHLO/HELO (RFC 5321 §4.1.1.1): a domain or an address literal. One
    /// that cannot be sent (empty, spaces, CR/LF) is replaced by `[127.0.0.1]`.
    pub client_domain: String,
    /// The server's host name, for the SASL context (DIGEST-MD5 `digest-uri`, OAUTHBEARER).
    pub server_host: String,
    /// The server's port, for OAUTHBEARER.
    pub server_port: Option<u16>,
    /// Whether STARTTLS is required, used when offered, or never used.
    pub tls: TlsPolicy,
    /// Use this mechanism and no other (it must be offered after TLS).
    pub mechanism: Option<Mechanism>,
    /// Allow PLAIN and LOGIN without TLS (RFC 4954 §4 and §14).
    pub allow_plaintext: bool,
    /// Send the initial response on the AUTH line when it fits (RFC 4954 §4); when false it
    /// always follows the empty `334`, for servers that mishandle initial responses.
    pub send_initial_response: bool,
    /// Allow ANONYMOUS.
    pub allow_anonymous: bool,
    /// The lowest SCRAM iteration count accepted.
    pub min_scram_iterations: u32,
    /// Challenges answered in one AUTH exchange before the client cancels it.
    pub max_auth_rounds: usize,
    /// Lines accepted in one reply.
    pub max_reply_lines: usize,
    /// Bytes received but not yet processed (replies waiting for their command) beyond which
    /// [`Client::receive`] fails; never below the current line limit, so that a partial line
    /// counts the same however the bytes were split.
    pub max_buffered: usize,
}

impl ClientConfig {
    /// A configuration for `client_domain` talking to `server_host`, TLS required.
    pub fn new(client_domain: impl Into<String>, server_host: impl Into<String>) -> Self {
        Self {
            client_domain: client_domain.into(),
            server_host: server_host.into(),
            server_port: None,
            tls: TlsPolicy::Required,
            mechanism: None,
            allow_plaintext: false,
            send_initial_response: true,
            allow_anonymous: false,
            min_scram_iterations: 4096,
            max_auth_rounds: 10,
            max_reply_lines: ReplyParser::DEFAULT_MAX_LINES,
            max_buffered: 64 * 1024,
        }
    }
}

/// Why the server refused an AUTH exchange (RFC 4954 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthRejection {
    /// 535: the credentials are wrong (the user may be asked again).
    InvalidCredentials,
    /// 534: the mechanism is too weak for this server.
    MechanismTooWeak,
    /// 538: the mechanism needs an encrypted session.
    EncryptionRequired,
    /// 530: the server wants STARTTLS (RFC 3207 §4) or authentication first.
    StartTlsRequired,
    /// 454: a temporary failure on the server (do not ask the user again).
    TemporaryFailure,
    /// 432 (4.7.12): the user must change the password first (RFC 4954 §6).
    PasswordTransitionNeeded,
    /// 504: the mechanism is not supported.
    UnsupportedMechanism,
    /// 501 after the client cancelled with `*`.
    Cancelled,
    /// Any other negative reply (500 line too long, 501 syntax, 503 bad sequence, ...).
    Other,
}

impl AuthRejection {
    fn from_code(code: u16, cancelled: bool) -> Self {
        match code {
            535 => Self::InvalidCredentials,
            534 => Self::MechanismTooWeak,
            538 => Self::EncryptionRequired,
            530 => Self::StartTlsRequired,
            454 => Self::TemporaryFailure,
            432 => Self::PasswordTransitionNeeded,
            504 => Self::UnsupportedMechanism,
            _ if cancelled => Self::Cancelled,
            _ => Self::Other,
        }
    }
}

/// What happened, or what the application must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The server's `220` greeting (RFC 5321 §4.3.1).
    Greeting(Reply),
    /// The server accepted STARTTLS: run the TLS handshake on the same connection, then call
    /// [`Client::tls_established`] (RFC 3207 §4). Send no other byte in plaintext.
    StartTls,
    /// EHLO (or HELO) is done, after TLS where TLS is used: the session takes commands. The
    /// capabilities are the only ones the client uses.
    Ready(Capabilities),
    /// `235`: authenticated, and the mechanism verified the server where it can.
    Authenticated {
        /// The mechanism used.
        mechanism: Mechanism,
    },
    /// The AUTH exchange failed; the session goes on unauthenticated (RFC 4954 §6).
    AuthFailed {
        /// The mechanism tried.
        mechanism: Mechanism,
        /// What the reply code means.
        reason: AuthRejection,
        /// The server's final reply.
        reply: Reply,
        /// Why the client cancelled the exchange, if it did.
        cancelled: Option<SaslError>,
        /// The error the server reported in a challenge (OAuth JSON, SCRAM `e=`), if any.
        server_error: Option<String>,
    },
    /// MAIL FROM accepted.
    SenderAccepted(Reply),
    /// MAIL FROM refused; the transaction is over (replies to already pipelined commands
    /// still come as events).
    SenderRejected(Reply),
    /// A RCPT TO accepted; `index` is its place in the list given to `send_mail`.
    RecipientAccepted {
        /// Index of the recipient.
        index: usize,
        /// The reply.
        reply: Reply,
    },
    /// A RCPT TO refused.
    RecipientRejected {
        /// Index of the recipient.
        index: usize,
        /// The reply.
        reply: Reply,
    },
    /// `354`: stream the body with [`Client::send_body_chunk`], then [`Client::finish_body`].
    DataReady,
    /// The message was accepted for delivery.
    MessageAccepted(Reply),
    /// The message was not accepted: the reply to DATA, to the end of data, or, when no
    /// recipient was accepted, to the last RCPT. The client has reset the transaction.
    MessageRejected(Reply),
    /// The reply to [`Client::rset`].
    Reset(Reply),
    /// The session is over: the reply to QUIT, or a `421` the server sent instead of a reply.
    Closed(Reply),
}

/// What went wrong. Peer faults close the machine; caller faults leave it as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server sent something that is not a valid reply (peer fault).
    #[error("invalid reply: {0}")]
    Reply(#[from] ReplyError),
    /// Bytes arrived after the `220` to STARTTLS before TLS was established: a response
    /// injection (peer fault, RFC 3207 §4.2; starttls-cases C1, C2, B09). No upgrade.
    #[error("data after the STARTTLS reply before TLS was established")]
    StartTlsInjection,
    /// TLS is required and the server does not offer STARTTLS (peer fault, C6).
    #[error("TLS required but STARTTLS not offered")]
    StartTlsNotOffered,
    /// TLS is required and the server refused STARTTLS (peer fault, C7, B11).
    #[error("TLS required but STARTTLS refused: {0}")]
    StartTlsRefused(Reply),
    /// The server refused the session (greeting, EHLO and HELO refused) (peer fault).
    #[error("session refused: {0}")]
    Rejected(Reply),
    /// A reply that fits no command, or a code that makes no sense where it came (peer fault).
    #[error("unexpected reply: {0}")]
    UnexpectedReply(Reply),
    /// The server claimed success but the mechanism could not verify it (SCRAM without a
    /// valid `v=`, DIGEST-MD5 without `rspauth`) (peer fault).
    #[error("server not verified: {0}")]
    ServerNotVerified(SaslError),
    /// More bytes waiting to be processed than [`ClientConfig::max_buffered`] (peer fault).
    #[error("more than {0} bytes buffered")]
    BufferFull(usize),
    /// The call does not fit the session's state (caller fault).
    #[error("not possible now: {0}")]
    InvalidState(&'static str),
    /// An argument holds CR, LF or NUL or breaks the command syntax (caller fault, B16).
    #[error("invalid command argument: {0}")]
    Command(#[from] WriteError),
    /// No offered mechanism fits the credentials and policy (caller fault, C14).
    #[error("no usable mechanism: {0}")]
    Select(#[from] SelectError),
    /// The mechanism could not be started with these credentials (caller fault).
    #[error("mechanism failed to start: {0}")]
    Sasl(SaslError),
    /// The machine is closed.
    #[error("session closed")]
    Closed,
}

/// What an outstanding command waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    Auth,
    Mail,
    Rcpt(usize),
    Data,
    EndOfData,
    Rset { auto: bool },
    Quit,
}

struct AuthExchange {
    mechanism: Box<dyn ClientMechanism>,
    name: Mechanism,
    /// An initial response too long for the command line, sent after the empty `334`.
    deferred: Option<sasl::Secret>,
    rounds: usize,
    cancelled: Option<SaslError>,
    cancel_requested: bool,
}

impl core::fmt::Debug for AuthExchange {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AuthExchange").field("mechanism", &self.name).field("rounds", &self.rounds).finish()
    }
}

#[derive(Debug, Default)]
struct Transaction {
    /// Commands not yet sent (without PIPELINING, one at a time).
    unsent: VecDeque<(Vec<u8>, Expect)>,
    mail_accepted: bool,
    recipients: usize,
    accepted: usize,
    /// Whether the body is being streamed (after 354).
    in_body: bool,
    /// 354 came with no recipient accepted: only the terminator was sent.
    discard: bool,
    /// An event held back until the automatic RSET is answered.
    held: Option<Event>,
}

/// The SMTP client machine. See the [module documentation](self).
pub struct Client {
    config: ClientConfig,
    rng: Box<dyn Random + Send>,
    reader: LineReader,
    parser: ReplyParser,
    expect: VecDeque<Expect>,
    events: VecDeque<Event>,
    out: Vec<u8>,
    capabilities: Option<Capabilities>,
    tls: Option<TlsInfo>,
    awaiting_tls: bool,
    greeted: bool,
    authenticated: bool,
    auth: Option<AuthExchange>,
    transaction: Option<Transaction>,
    encoder: DotEncoder,
    closed: bool,
}

impl core::fmt::Debug for Client {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("expect", &self.expect)
            .field("tls", &self.tls.is_some())
            .field("authenticated", &self.authenticated)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client waiting for the server's greeting. `rng` feeds the mechanisms' nonces.
    pub fn new(config: ClientConfig, rng: Box<dyn Random + Send>) -> Self {
        let parser = ReplyParser::with_max_lines(config.max_reply_lines);
        Self {
            config,
            rng,
            reader: LineReader::new(SMTP_REPLY_LIMIT),
            parser,
            expect: VecDeque::from([Expect::Greeting]),
            events: VecDeque::new(),
            out: Vec::new(),
            capabilities: None,
            tls: None,
            awaiting_tls: false,
            greeted: false,
            authenticated: false,
            auth: None,
            transaction: None,
            encoder: DotEncoder::new(),
            closed: false,
        }
    }

    /// Feeds bytes received from the server; processes every reply a command waits for.
    pub fn receive(&mut self, data: &[u8]) -> Result<(), Error> {
        if self.closed {
            return Err(Error::Closed);
        }
        if data.is_empty() {
            return Ok(());
        }
        if self.awaiting_tls {
            // RFC 3207 §4.2: nothing read in plaintext after the 220 may be used.
            return self.fail(Error::StartTlsInjection);
        }
        self.reader.feed(data);
        self.process()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Bytes to send to the server, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.out.is_empty() { None } else { Some(core::mem::take(&mut self.out)) }
    }

    /// Whether the session is over (QUIT answered, 421, or a fatal error).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether the session is protected by TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether AUTH succeeded.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// The capabilities of the last EHLO, `None` until it is answered (and again right after
    /// TLS, RFC 3207 §4.2).
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.capabilities.as_ref()
    }

    /// The caller's TLS handshake is done: after [`Event::StartTls`], or before the greeting
    /// for implicit TLS (RFC 8314). Forgets every capability and sends EHLO again.
    pub fn tls_established(&mut self, info: TlsInfo) -> Result<(), Error> {
        if self.closed {
            return Err(Error::Closed);
        }
        if self.awaiting_tls {
            self.awaiting_tls = false;
            self.tls = Some(info);
            self.reader.clear();
            self.parser.reset();
            self.capabilities = None;
            self.send_ehlo();
            self.reader.set_limit(SMTP_REPLY_LIMIT);
            return Ok(());
        }
        if !self.greeted && self.tls.is_none() && !self.reader.has_pending() {
            self.tls = Some(info);
            return Ok(());
        }
        Err(Error::InvalidState("TLS can only start after the STARTTLS reply or before the greeting"))
    }

    /// Starts AUTH with a mechanism chosen from the post-TLS EHLO (RFC 4954 §4): the forced
    /// one, or the strongest usable one; PLAIN and LOGIN need TLS unless allowed. Returns the
    /// mechanism chosen. The outcome comes as [`Event::Authenticated`] or [`Event::AuthFailed`].
    pub fn authenticate(&mut self, credentials: &Credentials) -> Result<Mechanism, Error> {
        self.check_idle()?;
        if self.authenticated {
            return Err(Error::InvalidState("already authenticated"));
        }
        if self.config.tls == TlsPolicy::Required && self.tls.is_none() {
            return Err(Error::InvalidState("TLS is required before AUTH"));
        }
        let capabilities = self.capabilities.as_ref().ok_or(Error::InvalidState("no EHLO reply yet"))?;
        let tls = self.tls.as_ref();
        let selection = Selection {
            tls: tls.is_some(),
            allow_plaintext: self.config.allow_plaintext,
            has_password: credentials.password.is_some(),
            has_token: credentials.token.is_some(),
            has_client_certificate: tls.is_some_and(|t| t.client_certificate),
            has_channel_binding: tls.is_some_and(|t| t.channel_binding.is_some()),
            allow_anonymous: self.config.allow_anonymous,
            forced: self.config.mechanism.as_ref(),
        };
        let name = sasl::select(&capabilities.auth, &selection)?;
        let mut context = ClientContext::new("smtp", self.config.server_host.clone());
        context.port = self.config.server_port;
        context.channel_binding = tls.and_then(|t| t.channel_binding.clone());
        context.server_offers_plus = capabilities.auth.iter().any(Mechanism::is_plus);
        context.min_scram_iterations = self.config.min_scram_iterations;
        let mut mechanism = sasl::client(&name, credentials, &context, &mut *self.rng).map_err(Error::Sasl)?;
        let initial = mechanism.initial_response().map_err(Error::Sasl)?;
        let command = Command::Auth { mechanism: name.as_str(), initial: None };
        let mut line = command.to_bytes()?;
        let mut deferred = None;
        if let Some(initial) = initial {
            let encoded = zeroize::Zeroizing::new(crate::wire::encode_initial(initial.expose()));
            // RFC 4954 §4: the command line stays within 512 octets, else the response
            // follows the empty challenge.
            if self.config.send_initial_response && line.len() + 1 + encoded.len() <= SMTP_COMMAND_LIMIT {
                line.truncate(line.len() - 2);
                line.push(b' ');
                line.extend_from_slice(encoded.as_bytes());
                line.extend_from_slice(b"\r\n");
            } else {
                deferred = Some(initial);
            }
        }
        self.out.extend_from_slice(&line);
        zeroize::Zeroize::zeroize(&mut line);
        self.expect.push_back(Expect::Auth);
        self.reader.set_limit(AUTH_LINE_LIMIT);
        self.auth = Some(AuthExchange {
            mechanism,
            name: name.clone(),
            deferred,
            rounds: 0,
            cancelled: None,
            cancel_requested: false,
        });
        self.process()?;
        Ok(name)
    }

    /// Asks to cancel the AUTH exchange in progress: the next challenge is answered with `*`
    /// (RFC 4954 §4).
    pub fn cancel_auth(&mut self) -> Result<(), Error> {
        match self.auth.as_mut() {
            Some(exchange) => {
                exchange.cancel_requested = true;
                Ok(())
            }
            None => Err(Error::InvalidState("no AUTH exchange in progress")),
        }
    }

    /// Starts a mail transaction (RFC 5321 §3.3) with no parameters.
    pub fn send_mail(&mut self, from: &str, recipients: &[&str]) -> Result<(), Error> {
        self.send_mail_with(from, &[], recipients, &[])
    }

    /// Starts a mail transaction: MAIL FROM with `mail_params`, one RCPT TO per recipient
    /// with `rcpt_params`, then DATA; all at once when the server offers PIPELINING
    /// (RFC 2920 §3.1). `from` may be empty for the null reverse-path. Nothing is sent when an
    /// argument holds CR, LF or NUL (field case B16). UTF-8 addresses need a server offering
    /// SMTPUTF8; the parameter is then added to MAIL (RFC 6531 §3.4).
    pub fn send_mail_with(
        &mut self,
        from: &str,
        mail_params: &[Parameter<'_>],
        recipients: &[&str],
        rcpt_params: &[Parameter<'_>],
    ) -> Result<(), Error> {
        self.check_idle()?;
        if recipients.is_empty() {
            return Err(Error::InvalidState("no recipients"));
        }
        // RFC 6531 §3.4: UTF-8 addresses only to a server offering SMTPUTF8, with the parameter.
        let mut with_utf8 = Vec::new();
        let mut mail_params = mail_params;
        if !from.is_ascii() || recipients.iter().any(|r| !r.is_ascii()) {
            if !self.capabilities.as_ref().is_some_and(|c| c.smtputf8) {
                return Err(Error::InvalidState("UTF-8 address and the server does not offer SMTPUTF8"));
            }
            if !mail_params.contains(&Parameter::SmtpUtf8) {
                with_utf8.extend_from_slice(mail_params);
                with_utf8.push(Parameter::SmtpUtf8);
                mail_params = &with_utf8;
            }
        }
        let mut commands = VecDeque::with_capacity(recipients.len() + 2);
        let mail = Command::Mail { from: Path::new(from), params: Parameters::from_slice(mail_params) };
        commands.push_back((mail.to_bytes()?, Expect::Mail));
        for (index, to) in recipients.iter().enumerate() {
            let rcpt = Command::Rcpt { to: Path::new(to), params: Parameters::from_slice(rcpt_params) };
            commands.push_back((rcpt.to_bytes()?, Expect::Rcpt(index)));
        }
        commands.push_back((Command::Data.to_bytes()?, Expect::Data));
        let pipelining = self.capabilities.as_ref().is_some_and(|c| c.pipelining);
        let mut transaction = Transaction { unsent: commands, recipients: recipients.len(), ..Transaction::default() };
        while let Some((line, expect)) = transaction.unsent.pop_front() {
            self.out.extend_from_slice(&line);
            self.expect.push_back(expect);
            if !pipelining {
                break;
            }
        }
        self.transaction = Some(transaction);
        self.process()
    }

    /// Streams part of the message after [`Event::DataReady`]; dot-stuffed and CRLF-normalized
    /// on the way out (RFC 5321 §4.5.2).
    pub fn send_body_chunk(&mut self, chunk: &[u8]) -> Result<(), Error> {
        if self.closed {
            return Err(Error::Closed);
        }
        if !self.transaction.as_ref().is_some_and(|t| t.in_body) {
            return Err(Error::InvalidState("no DATA in progress"));
        }
        self.encoder.encode(chunk, &mut self.out);
        Ok(())
    }

    /// Ends the message with `CRLF . CRLF`; the outcome comes as [`Event::MessageAccepted`]
    /// or [`Event::MessageRejected`].
    pub fn finish_body(&mut self) -> Result<(), Error> {
        if self.closed {
            return Err(Error::Closed);
        }
        let Some(transaction) = self.transaction.as_mut().filter(|t| t.in_body) else {
            return Err(Error::InvalidState("no DATA in progress"));
        };
        transaction.in_body = false;
        self.encoder.finish(&mut self.out);
        self.expect.push_back(Expect::EndOfData);
        self.process()
    }

    /// Sends RSET (RFC 5321 §4.1.1.5); the reply comes as [`Event::Reset`].
    pub fn rset(&mut self) -> Result<(), Error> {
        self.check_idle()?;
        self.out.extend_from_slice(b"RSET\r\n");
        self.expect.push_back(Expect::Rset { auto: false });
        self.process()
    }

    /// Sends QUIT (RFC 5321 §4.1.1.10); the reply comes as [`Event::Closed`].
    pub fn quit(&mut self) -> Result<(), Error> {
        self.check_idle()?;
        self.out.extend_from_slice(b"QUIT\r\n");
        self.expect.push_back(Expect::Quit);
        self.process()
    }

    fn check_idle(&self) -> Result<(), Error> {
        if self.closed {
            return Err(Error::Closed);
        }
        if self.capabilities.is_none() || !self.expect.is_empty() || self.transaction.is_some() || self.awaiting_tls {
            return Err(Error::InvalidState("the session is not ready for a command"));
        }
        Ok(())
    }

    /// Closes the machine and returns `error`.
    fn fail(&mut self, error: Error) -> Result<(), Error> {
        self.closed = true;
        // A closed machine upgrades nothing: a StartTls not yet polled goes (so that the events
        // do not depend on whether the injected bytes came with the reply or after it).
        self.events.retain(|event| !matches!(event, Event::StartTls));
        self.awaiting_tls = false;
        self.expect.clear();
        self.auth = None;
        self.transaction = None;
        self.capabilities = None;
        self.reader.clear();
        self.parser.reset();
        Err(error)
    }

    /// Closes the machine after a polite QUIT.
    fn fail_with_quit(&mut self, error: Error) -> Result<(), Error> {
        self.out.extend_from_slice(b"QUIT\r\n");
        self.fail(error)
    }

    fn process(&mut self) -> Result<(), Error> {
        while !self.closed && !self.awaiting_tls && !self.expect.is_empty() {
            if self.transaction.as_ref().is_some_and(|t| t.in_body) {
                break;
            }
            let reply = match self.parser.next_reply(&mut self.reader) {
                None => break,
                Some(Ok(reply)) => reply,
                Some(Err(error)) => return self.fail(error.into()),
            };
            self.dispatch(reply)?;
        }
        // A partial line is bounded by the line limit already; counting it against a smaller
        // `max_buffered` would make the outcome depend on how the bytes were split.
        if !self.closed && self.reader.pending_len() > self.config.max_buffered.max(self.reader.limit()) {
            let limit = self.config.max_buffered;
            return self.fail(Error::BufferFull(limit));
        }
        Ok(())
    }

    fn dispatch(&mut self, reply: Reply) -> Result<(), Error> {
        let Some(expect) = self.expect.pop_front() else {
            return self.fail(Error::UnexpectedReply(reply));
        };
        if reply.code == 421 && !matches!(expect, Expect::Quit) {
            // RFC 5321 §3.8: the server is shutting down the channel.
            self.closed = true;
            self.expect.clear();
            self.events.push_back(Event::Closed(reply));
            return Ok(());
        }
        match expect {
            Expect::Greeting => self.on_greeting(reply),
            Expect::Ehlo => self.on_ehlo(reply),
            Expect::Helo => self.on_helo(reply),
            Expect::StartTls => self.on_starttls(reply),
            Expect::Auth => self.on_auth(reply),
            Expect::Mail => self.on_mail(reply),
            Expect::Rcpt(index) => self.on_rcpt(index, reply),
            Expect::Data => self.on_data(reply),
            Expect::EndOfData => self.on_end_of_data(reply),
            Expect::Rset { auto } => self.on_rset(auto, reply),
            Expect::Quit => {
                self.closed = true;
                self.expect.clear();
                self.events.push_back(Event::Closed(reply));
                Ok(())
            }
        }
    }

    fn send_ehlo(&mut self) {
        let domain = self.config.client_domain.clone();
        match Command::Ehlo(&domain).to_bytes() {
            Ok(line) => self.out.extend_from_slice(&line),
            // A domain that cannot be written: send a valid placeholder literal instead.
            Err(_) => self.out.extend_from_slice(b"EHLO [127.0.0.1]\r\n"),
        }
        self.expect.push_back(Expect::Ehlo);
    }

    fn on_greeting(&mut self, reply: Reply) -> Result<(), Error> {
        if reply.code != 220 {
            // RFC 5321 §3.1: 554 instead of 220; the client should send QUIT.
            return self.fail_with_quit(Error::Rejected(reply));
        }
        self.greeted = true;
        self.events.push_back(Event::Greeting(reply));
        self.send_ehlo();
        Ok(())
    }

    fn on_ehlo(&mut self, reply: Reply) -> Result<(), Error> {
        match reply.code {
            250 => {
                let capabilities = Capabilities::parse(reply.text_lines());
                self.after_hello(capabilities)
            }
            500 | 502 => {
                let domain = self.config.client_domain.clone();
                match Command::Helo(&domain).to_bytes() {
                    Ok(line) => self.out.extend_from_slice(&line),
                    Err(_) => self.out.extend_from_slice(b"HELO [127.0.0.1]\r\n"),
                }
                self.expect.push_back(Expect::Helo);
                Ok(())
            }
            _ => self.fail_with_quit(Error::Rejected(reply)),
        }
    }

    fn on_helo(&mut self, reply: Reply) -> Result<(), Error> {
        if reply.code != 250 {
            return self.fail_with_quit(Error::Rejected(reply));
        }
        let capabilities = Capabilities::parse(reply.text_lines().take(1));
        self.after_hello(capabilities)
    }

    /// EHLO or HELO answered: upgrade by policy, or report the session ready.
    fn after_hello(&mut self, capabilities: Capabilities) -> Result<(), Error> {
        if self.tls.is_none() {
            match self.config.tls {
                TlsPolicy::Required if !capabilities.starttls => {
                    return self.fail_with_quit(Error::StartTlsNotOffered);
                }
                TlsPolicy::Required | TlsPolicy::Opportunistic if capabilities.starttls => {
                    // RFC 3207 §4, C13: STARTTLS goes alone, nothing after it.
                    self.capabilities = Some(capabilities);
                    self.out.extend_from_slice(b"STARTTLS\r\n");
                    self.expect.push_back(Expect::StartTls);
                    return Ok(());
                }
                _ => {}
            }
        }
        self.capabilities = Some(capabilities.clone());
        self.events.push_back(Event::Ready(capabilities));
        Ok(())
    }

    fn on_starttls(&mut self, reply: Reply) -> Result<(), Error> {
        if reply.code == 220 {
            if self.reader.has_pending() {
                return self.fail(Error::StartTlsInjection);
            }
            self.awaiting_tls = true;
            self.capabilities = None;
            self.reader.clear();
            self.parser.reset();
            self.events.push_back(Event::StartTls);
            return Ok(());
        }
        if self.config.tls == TlsPolicy::Required {
            return self.fail_with_quit(Error::StartTlsRefused(reply));
        }
        // Opportunistic: go on in plaintext with what EHLO said.
        let capabilities = self.capabilities.clone().unwrap_or_default();
        self.events.push_back(Event::Ready(capabilities));
        Ok(())
    }

    fn send_auth_line(&mut self, text: &[u8]) {
        self.out.extend_from_slice(text);
        self.out.extend_from_slice(b"\r\n");
        self.expect.push_back(Expect::Auth);
    }

    fn on_auth(&mut self, reply: Reply) -> Result<(), Error> {
        let Some(mut exchange) = self.auth.take() else {
            return self.fail(Error::UnexpectedReply(reply));
        };
        if reply.code == 334 {
            let limit = self.config.max_auth_rounds;
            exchange.rounds += 1;
            if exchange.cancelled.is_some() || exchange.rounds > limit.saturating_add(1) {
                // A challenge after our `*`: the server ignores the cancel.
                return self.fail(Error::UnexpectedReply(reply));
            }
            let challenge = reply.lines.first().map(|l| l.text.as_bytes()).unwrap_or_default();
            let answer: Result<sasl::Secret, SaslError> = if exchange.cancel_requested {
                Err(SaslError::MalformedChallenge("cancelled by the application"))
            } else if exchange.rounds > limit {
                Err(SaslError::MalformedChallenge("too many challenges"))
            } else if let Some(initial) = exchange.deferred.take() {
                // The server should send an empty challenge here; its text, if any, cannot
                // change what the mechanism's first message is.
                Ok(initial)
            } else {
                match crate::wire::decode_base64(challenge) {
                    Ok(decoded) => exchange.mechanism.step(&decoded),
                    Err(_) => Err(SaslError::MalformedChallenge("challenge is not base64")),
                }
            };
            match answer {
                Ok(response) => {
                    let encoded = zeroize::Zeroizing::new(crate::wire::encode_payload(response.expose()));
                    self.send_auth_line(encoded.as_bytes());
                }
                Err(error) => {
                    exchange.cancelled = Some(error);
                    self.send_auth_line(b"*");
                }
            }
            self.auth = Some(exchange);
            return Ok(());
        }
        self.reader.set_limit(SMTP_REPLY_LIMIT);
        if reply.code == 235 {
            if exchange.cancelled.is_some() || exchange.deferred.is_some() {
                return self.fail(Error::ServerNotVerified(SaslError::ServerNotVerified(
                    "success before the exchange was complete",
                )));
            }
            if let Err(error) = exchange.mechanism.finish(None) {
                return self.fail(Error::ServerNotVerified(error));
            }
            self.authenticated = true;
            self.events.push_back(Event::Authenticated { mechanism: exchange.name });
            return Ok(());
        }
        if !reply.is_negative() {
            return self.fail(Error::UnexpectedReply(reply));
        }
        let cancelled = exchange.cancelled.is_some();
        self.events.push_back(Event::AuthFailed {
            reason: AuthRejection::from_code(reply.code, cancelled),
            server_error: exchange.mechanism.server_error().map(String::from),
            mechanism: exchange.name,
            reply,
            cancelled: exchange.cancelled,
        });
        Ok(())
    }

    fn transaction(&mut self) -> Option<&mut Transaction> {
        self.transaction.as_mut()
    }

    /// Sends the next unsent command of the transaction (no PIPELINING).
    fn send_next(&mut self) {
        if let Some((line, expect)) = self.transaction().and_then(|t| t.unsent.pop_front()) {
            self.out.extend_from_slice(&line);
            self.expect.push_back(expect);
        }
    }

    /// Ends the transaction with `event`; resets the server's transaction first when MAIL
    /// was accepted and no message went through.
    fn end_transaction(&mut self, event: Event, reset: bool) {
        match self.transaction.as_mut() {
            Some(transaction) if reset && transaction.mail_accepted => {
                transaction.unsent.clear();
                transaction.held = Some(event);
                self.out.extend_from_slice(b"RSET\r\n");
                self.expect.push_back(Expect::Rset { auto: true });
            }
            _ => {
                self.transaction = None;
                self.events.push_back(event);
            }
        }
    }

    fn on_mail(&mut self, reply: Reply) -> Result<(), Error> {
        let Some(transaction) = self.transaction.as_mut() else {
            return self.fail(Error::UnexpectedReply(reply));
        };
        if reply.is_positive() {
            transaction.mail_accepted = true;
            self.events.push_back(Event::SenderAccepted(reply));
            self.send_next();
        } else {
            // Without PIPELINING nothing else was sent; with it, the replies still come.
            transaction.unsent.clear();
            self.events.push_back(Event::SenderRejected(reply));
            if self.expect.is_empty() {
                self.transaction = None;
            }
        }
        Ok(())
    }

    fn on_rcpt(&mut self, index: usize, reply: Reply) -> Result<(), Error> {
        let Some(transaction) = self.transaction.as_mut() else {
            return self.fail(Error::UnexpectedReply(reply));
        };
        let last = index + 1 >= transaction.recipients;
        let accepted = transaction.mail_accepted && reply.is_positive();
        if accepted {
            transaction.accepted += 1;
        }
        let none_accepted = transaction.accepted == 0;
        let pipelined = self.expect.front() == Some(&Expect::Data);
        if last && none_accepted && !pipelined && transaction.mail_accepted {
            // No recipient: DATA is not sent (RFC 5321 §3.3).
            self.events.push_back(Event::RecipientRejected { index, reply: reply.clone() });
            self.end_transaction(Event::MessageRejected(reply), true);
            return Ok(());
        }
        self.events.push_back(if accepted {
            Event::RecipientAccepted { index, reply }
        } else {
            Event::RecipientRejected { index, reply }
        });
        self.send_next();
        if self.expect.is_empty() && self.transaction.as_ref().is_some_and(|t| !t.mail_accepted) {
            self.transaction = None;
        }
        Ok(())
    }

    fn on_data(&mut self, reply: Reply) -> Result<(), Error> {
        let Some(transaction) = self.transaction.as_mut() else {
            return self.fail(Error::UnexpectedReply(reply));
        };
        if reply.code == 354 {
            if transaction.mail_accepted && transaction.accepted > 0 {
                transaction.in_body = true;
                self.encoder = DotEncoder::new();
                self.events.push_back(Event::DataReady);
            } else {
                // RFC 2920 §3.1: DATA accepted without a recipient; send an empty message end.
                transaction.discard = true;
                self.out.extend_from_slice(b".\r\n");
                self.expect.push_back(Expect::EndOfData);
            }
            return Ok(());
        }
        if !reply.is_negative() {
            return self.fail(Error::UnexpectedReply(reply));
        }
        self.end_transaction(Event::MessageRejected(reply), true);
        Ok(())
    }

    fn on_end_of_data(&mut self, reply: Reply) -> Result<(), Error> {
        let Some(transaction) = self.transaction.take() else {
            return self.fail(Error::UnexpectedReply(reply));
        };
        self.events.push_back(if reply.is_positive() && !transaction.discard {
            Event::MessageAccepted(reply)
        } else {
            Event::MessageRejected(reply)
        });
        Ok(())
    }

    fn on_rset(&mut self, auto: bool, reply: Reply) -> Result<(), Error> {
        if !auto {
            self.events.push_back(Event::Reset(reply));
            return Ok(());
        }
        if let Some(event) = self.transaction.take().and_then(|t| t.held) {
            self.events.push_back(event);
        }
        Ok(())
    }
}
