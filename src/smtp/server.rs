//! The SMTP server machine (RFC 5321), with STARTTLS (RFC 3207), AUTH (RFC 4954), PIPELINING
//! (RFC 2920), SIZE (RFC 1870) and CHUNKING (RFC 3030). Sans-IO: bytes in with
//! [`Server::receive`], events out with [`Server::poll_event`], bytes to send with
//! [`Server::poll_transmit`].
//!
//! The session runs greeting → EHLO/HELO → STARTTLS → AUTH → MAIL/RCPT/DATA or BDAT → QUIT.
//! Commands out of order get `503`, bad arguments `501`, unknown commands `500`, commands
//! not offered `502`. The machine answers everything it can decide itself; what only the
//! application knows comes as an [`Event`] it answers later, at any time:
//!
//! - [`Event::Credentials`]: a SASL mechanism asks for a password check, stored keys or an
//!   authorization decision; answer with [`Server::answer_credentials`].
//! - [`Event::Mail`], [`Event::Rcpt`], [`Event::DataEnd`]: answer with [`Server::accept`],
//!   [`Server::accept_with`] or [`Server::reject`]. They carry the authenticated identity,
//!   so the application decides whether the session may relay (with
//!   [`relay::SubmissionPolicy`](crate::relay::SubmissionPolicy) for POP-before-SMTP, say).
//!
//! While an answer is pending, input is queued (bounded by [`ServerConfig::max_buffered`]) and
//! processed in order afterwards, so pipelined commands get their replies in order.
//!
//! The body of DATA is unstuffed by the wire dot decoder (only `CRLF . CRLF` ends it, never a
//! bare-LF form) and handed out as [`Event::Data`] pieces of exactly
//! [`ServerConfig::max_data_chunk`] octets (the last one shorter), so the events do not depend
//! on how the input was split.
//!
//! STARTTLS: the server replies `220` and emits [`Event::StartTls`]: send everything
//! [`poll_transmit`](Server::poll_transmit) holds, run the TLS handshake, then call
//! [`tls_established`](Server::tls_established). Whatever the client sent after
//! `STARTTLS\r\n` in plaintext, in the same read or in a later one before the handshake,
//! whole commands or part of one, is dropped unread and never executed: the CVE-2011-0411
//! class (starttls-cases S1, S2, S10; [`Server::discarded_after_starttls`] counts it). Dropping
//! rather than refusing gives the same outcome however the bytes were split across reads,
//! since a refusal could only see what had already arrived. After TLS the session is as
//! after the greeting (EHLO needed again, identity and transaction forgotten), and STARTTLS is
//! neither offered nor accepted again.
//!
//! AUTH replies (RFC 4954 §4, §6): `334` challenges (`334 ` with the space when empty, and
//! SCRAM's server-final message as a last `334` whose empty answer gets `235`), `235 2.7.0`
//! success, `535 5.7.8` wrong credentials or malformed mechanism data (nothing the client
//! sent is ever echoed), `501 5.7.0` cancelled with `*`, `501 5.5.2` bad base64, `500 5.5.6`
//! line over 12288 octets, `454 4.7.0` temporary failure, `504 5.5.4` mechanism not offered,
//! `538 5.7.11` mechanism offered only under TLS, `530 5.7.0` TLS required first, `503 5.5.1`
//! after success or inside a transaction. After [`ServerConfig::max_auth_failures`] failed
//! exchanges the failure reply is followed by `421` and the session ends.
//!
//! Memory: `size_of::<Server>()` is about 540 octets on 64-bit targets (a test keeps it under
//! 2 KiB); the TLS report and the AUTH exchange are boxed, and every buffer is bounded (command
//! line 512, AUTH line 12288, queued input [`ServerConfig::max_buffered`], body pieces
//! [`ServerConfig::max_data_chunk`], queued output [`ServerConfig::max_output`]: a client
//! that pipelines commands without reading the replies stops being read, then gets
//! [`Error::BufferFull`]).
//!
//! ```
//! use mailwire::sasl::{CredentialAnswer, CredentialRequest, FixedRandom};
//! use mailwire::smtp::{Server, ServerConfig, server::Event};
//! use mailwire::tls::TlsInfo;
//!
//! let mut server = Server::new(ServerConfig::new("mail.example.net"), Box::new(FixedRandom::new(1)));
//! // What the client sends, read by read (after the second, through TLS).
//! let reads: [&[u8]; 4] = [
//!     b"EHLO client.example\r\n",
//!     b"STARTTLS\r\n",
//!     b"EHLO client.example\r\nAUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n",
//!     b"MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n\
//!       Subject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n",
//! ];
//! let mut sent: Vec<u8> = Vec::new();
//! let mut message: Vec<u8> = Vec::new();
//! for bytes in reads {
//!     server.receive(bytes)?;
//!     while let Some(event) = server.poll_event() {
//!         match event {
//!             // Flush what poll_transmit holds, then run the TLS handshake on the socket.
//!             Event::StartTls => {
//!                 while let Some(out) = server.poll_transmit() {
//!                     sent.extend_from_slice(&out);
//!                 }
//!                 server.tls_established(TlsInfo::default())?;
//!             }
//!             Event::Credentials(CredentialRequest::VerifyPassword { authcid, password }) => {
//!                 let good = authcid == "alice" && password.expose() == b"wonderland";
//!                 server.answer_credentials(if good {
//!                     CredentialAnswer::Verified
//!                 } else {
//!                     CredentialAnswer::Rejected
//!                 })?;
//!             }
//!             // Authenticated users may send anywhere; others only to local domains.
//!             Event::Mail { identity, .. } if identity.is_none() => {
//!                 server.reject(mailwire::smtp::Reply::new(530, "Authentication required"))?;
//!             }
//!             Event::Mail { .. } | Event::Rcpt { .. } | Event::DataEnd { .. } => server.accept()?,
//!             Event::Data(bytes) => message.extend_from_slice(&bytes),
//!             _ => {}
//!         }
//!     }
//!     while let Some(out) = server.poll_transmit() {
//!         sent.extend_from_slice(&out);
//!     }
//! }
//! assert_eq!(message, b"Subject: hi\r\n\r\n.dot\r\n");
//! let sent = String::from_utf8(sent).unwrap();
//! assert!(sent.starts_with("220 mail.example.net ESMTP\r\n250-mail.example.net\r\n"));
//! assert!(sent.contains("220 2.0.0 Ready to start TLS\r\n"));
//! assert!(sent.contains("235 2.7.0 Authentication successful\r\n"));
//! assert!(sent.ends_with("250 2.0.0 Message accepted\r\n221 2.0.0 Bye\r\n"));
//! assert!(server.is_closed());
//! # Ok::<(), mailwire::smtp::server::Error>(())
//! ```

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use zeroize::Zeroizing;

use super::{
    Capabilities, Command, EnhancedCode, OtherExtension, Parameter, ParseError, Reply, ReplyLine, ReplyWriteError,
};
use crate::sasl::{
    self, AuthFailure, CredentialAnswer, CredentialRequest, Identity, Mechanism, Random, ServerContext,
    ServerMechanism, ServerStep,
};
use crate::tls::TlsInfo;
use crate::wire::{AUTH_LINE_LIMIT, DotDecoder, LineError, LineReader, Payload, SMTP_COMMAND_LIMIT};

/// How a server session behaves. Plain data: build it with [`ServerConfig::new`] and change
/// fields as needed.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The server's host name, in the greeting and the EHLO reply (RFC 5321 §4.1.1.1). One
    /// that cannot be written (empty, spaces, control characters) is replaced by `localhost`.
    pub hostname: String,
    /// Other names clients may use for this server (e.g. `127.0.0.1`), accepted in a
    /// DIGEST-MD5 `digest-uri` (RFC 2831 §2.1.2).
    pub host_aliases: Vec<String>,
    /// Text after the host name in the `220` greeting (RFC 5321 §4.3.1).
    pub greeting: String,
    /// Advertise PIPELINING (RFC 2920). Pipelined commands are processed in order either way.
    pub pipelining: bool,
    /// Advertise 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
    /// Advertise SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// Advertise ENHANCEDSTATUSCODES and put enhanced codes in the machine's replies
    /// (RFC 2034).
    pub enhanced_status_codes: bool,
    /// Advertise and accept BDAT (CHUNKING, RFC 3030).
    pub chunking: bool,
    /// Advertise DSN (RFC 3461); the parameters reach the application in the events.
    pub dsn: bool,
    /// Further extensions to advertise, as they are.
    pub other_extensions: Vec<OtherExtension>,
    /// The message size limit: advertised with SIZE, a larger declared `SIZE=` gets `552` at
    /// MAIL, a larger body gets `552` after its end (RFC 1870). `None`: no limit, no SIZE.
    pub max_message_size: Option<u64>,
    /// Offer STARTTLS (RFC 3207); the driver must be able to run TLS then.
    pub tls_available: bool,
    /// Refuse AUTH before TLS with `530 5.7.0` and offer no mechanism before TLS.
    pub require_tls_for_auth: bool,
    /// Refuse MAIL before TLS with `530 5.7.0` (RFC 3207 §4).
    pub require_tls_for_mail: bool,
    /// Mechanisms offered without TLS (when `require_tls_for_auth` is false).
    pub mechanisms_before_tls: Vec<Mechanism>,
    /// Mechanisms offered under TLS. `-PLUS` ones are offered only with channel binding data,
    /// EXTERNAL only with a client certificate identity ([`TlsInfo`]).
    pub mechanisms_after_tls: Vec<Mechanism>,
    /// Failed AUTH exchanges in one session after which the server replies `421` and closes;
    /// 0 for no limit.
    pub max_auth_failures: u32,
    /// Challenges in one AUTH exchange before it fails.
    pub max_auth_rounds: u32,
    /// Accepted recipients in one transaction; more get `452 4.5.3` (RFC 5321 §4.5.3.1.10).
    pub max_recipients: usize,
    /// Bad commands (`500`-`504` replies) after which the server replies `421` and closes;
    /// 0 for no limit.
    pub max_errors: u32,
    /// Size of the [`Event::Data`] pieces.
    pub max_data_chunk: usize,
    /// Bytes received but not yet processed (input queued while the application decides)
    /// beyond which [`Server::receive`] fails; never less than one AUTH line
    /// ([`AUTH_LINE_LIMIT`]).
    pub max_buffered: usize,
    /// Output bytes waiting in [`Server::poll_transmit`] above which no further command is
    /// read (a client that pipelines without reading its replies must not grow memory);
    /// taking the output resumes reading. Input then waits, up to `max_buffered`.
    pub max_output: usize,
    /// SCRAM iteration count used when the application answers with a password.
    pub scram_iterations: u32,
    /// OAuth scope named in XOAUTH2/OAUTHBEARER error challenges.
    pub oauth_scope: Option<String>,
}

impl ServerConfig {
    /// A configuration for `hostname`: STARTTLS offered and required for AUTH; PLAIN, LOGIN,
    /// SCRAM (with `-PLUS`) and EXTERNAL offered under TLS; PIPELINING, 8BITMIME,
    /// ENHANCEDSTATUSCODES, CHUNKING; a 25 MiB SIZE limit.
    pub fn new(hostname: impl Into<String>) -> Self {
        Self {
            hostname: hostname.into(),
            host_aliases: Vec::new(),
            greeting: String::from("ESMTP"),
            pipelining: true,
            eight_bit_mime: true,
            smtputf8: false,
            enhanced_status_codes: true,
            chunking: true,
            dsn: false,
            other_extensions: Vec::new(),
            max_message_size: Some(25 * 1024 * 1024),
            tls_available: true,
            require_tls_for_auth: true,
            require_tls_for_mail: false,
            mechanisms_before_tls: Vec::new(),
            mechanisms_after_tls: alloc::vec![
                Mechanism::ScramSha256Plus,
                Mechanism::ScramSha1Plus,
                Mechanism::ScramSha256,
                Mechanism::ScramSha1,
                Mechanism::External,
                Mechanism::Plain,
                Mechanism::Login,
            ],
            max_auth_failures: 3,
            max_auth_rounds: 8,
            max_recipients: 100,
            max_errors: 20,
            max_data_chunk: 16 * 1024,
            max_buffered: 64 * 1024,
            max_output: 256 * 1024,
            scram_iterations: 4096,
            oauth_scope: None,
        }
    }
}

/// The parameters of a MAIL or RCPT command, owned (RFC 5321 §4.1.2 `esmtp-param`); the
/// codec validated them when the line was parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParameterList(String);

impl ParameterList {
    /// The parameters as they came, space separated.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The parameters, in order.
    pub fn iter(&self) -> impl Iterator<Item = Parameter<'_>> {
        self.0.split(' ').filter(|item| !item.is_empty()).filter_map(|item| Parameter::parse(item).ok())
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// `SIZE=` (RFC 1870 §6).
    pub fn size(&self) -> Option<u64> {
        self.iter().find_map(|p| match p {
            Parameter::Size(size) => Some(size),
            _ => None,
        })
    }

    /// `AUTH=` (RFC 4954 §5): `Some(None)` for `AUTH=<>`, else the xtext-encoded mailbox.
    pub fn auth(&self) -> Option<Option<&str>> {
        self.iter().find_map(|p| match p {
            Parameter::Auth(mailbox) => Some(mailbox),
            _ => None,
        })
    }

    fn from_params(params: &super::Parameters<'_>) -> Self {
        Self(String::from(params.wire_text().unwrap_or_default().trim_matches(' ')))
    }
}

/// What happened, or what the application must decide.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// EHLO or HELO was answered (RFC 5321 §4.1.1.1).
    Helo {
        /// The client's domain or address literal, as sent.
        domain: String,
        /// EHLO (true) or HELO.
        extended: bool,
    },
    /// `220` to STARTTLS is queued: send it, run the TLS handshake, then call
    /// [`Server::tls_established`] (RFC 3207 §4).
    StartTls,
    /// The SASL mechanism needs the application: answer with [`Server::answer_credentials`].
    /// Input waits until then.
    Credentials(CredentialRequest),
    /// `235`: the session is authenticated (RFC 4954 §6).
    Authenticated {
        /// Who.
        identity: Identity,
        /// The mechanism used.
        mechanism: Mechanism,
    },
    /// An AUTH exchange failed; the session goes on unauthenticated unless the failure limit
    /// was reached.
    AuthFailed {
        /// The mechanism tried.
        mechanism: Mechanism,
        /// Why.
        failure: AuthFailure,
        /// The reply sent.
        reply: Reply,
    },
    /// MAIL FROM (RFC 5321 §4.1.1.2): answer with [`Server::accept`] or [`Server::reject`].
    Mail {
        /// The reverse-path mailbox, empty for `<>`.
        from: String,
        /// The parameters.
        parameters: ParameterList,
        /// The authenticated identity, if any.
        identity: Option<Identity>,
    },
    /// RCPT TO (RFC 5321 §4.1.1.3): answer with [`Server::accept`] or [`Server::reject`].
    Rcpt {
        /// The forward-path mailbox.
        to: String,
        /// The parameters.
        parameters: ParameterList,
        /// The authenticated identity, if any.
        identity: Option<Identity>,
    },
    /// A message body begins (after `354` to DATA, or with the first BDAT chunk).
    DataStart,
    /// A piece of the body, unstuffed.
    Data(Vec<u8>),
    /// The body is complete: answer with [`Server::accept`] (the message is taken for
    /// delivery) or [`Server::reject`]. The transaction ends either way.
    DataEnd {
        /// Octets in the body.
        size: u64,
        /// The authenticated identity, if any.
        identity: Option<Identity>,
    },
    /// The machine refused the body itself (over the size limit, `552`): drop what
    /// [`Event::Data`] gave. The transaction is over.
    DataRejected(Reply),
    /// The transaction in progress was abandoned (RSET, or EHLO/HELO again).
    Reset,
    /// The client sent QUIT; `221` is queued and the session is over.
    Quit,
    /// The server ended the session after this reply (`421` after too many failures or
    /// errors, or the refusal of data pipelined after STARTTLS).
    Closed(Reply),
}

/// What went wrong. Peer faults close the machine; caller faults leave it as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// More input queued than [`ServerConfig::max_buffered`] (peer fault); `421` is queued.
    #[error("more than {0} bytes buffered")]
    BufferFull(usize),
    /// The call does not fit the session's state (caller fault).
    #[error("not possible now: {0}")]
    InvalidState(&'static str),
    /// The reply given cannot be used: wrong class for the call, or not writable (caller
    /// fault).
    #[error("invalid reply: {0}")]
    InvalidReply(&'static str),
    /// The answer does not fit the pending [`CredentialRequest`] (a `Verified` to a request
    /// for SCRAM keys, say; caller fault): nothing happened, the request still waits.
    #[error("the answer does not fit the credential request")]
    AnswerMismatch,
    /// The machine is closed.
    #[error("session closed")]
    Closed,
}

impl From<ReplyWriteError> for Error {
    fn from(error: ReplyWriteError) -> Self {
        match error {
            ReplyWriteError::Injection => Self::InvalidReply("CR, LF or NUL in the text"),
            ReplyWriteError::Invalid => Self::InvalidReply("the reply cannot be written"),
        }
    }
}

/// What an answer from the application is pending for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Mail,
    Rcpt,
    DataEnd,
}

#[derive(Debug)]
enum State {
    /// Reading command lines.
    Command,
    /// A `334` went out: the next line is a SASL response.
    AuthLine,
    /// Success with additional data went out as a last `334`: the next line must be empty.
    AuthFinal,
    /// [`Event::Credentials`] is waiting for its answer.
    AuthAnswer,
    /// An event is waiting for accept or reject.
    Decision(Decision),
    /// Reading a DATA body.
    Data,
    /// Reading a BDAT chunk; `refusal` is the reply when the chunk is read only to be dropped.
    Bdat { size: u64, remaining: u64, last: bool, refusal: Option<Reply> },
    /// `220` to STARTTLS went out; waiting for the driver's handshake.
    Tls,
    /// The session is over.
    Closed,
}

struct AuthExchange {
    mechanism: Box<dyn ServerMechanism>,
    name: Mechanism,
    rounds: u32,
    /// Success decided, its additional data sent as a last challenge.
    success: Option<Identity>,
    /// The question waiting for [`Server::answer_credentials`].
    asked: Option<CredentialRequest>,
}

#[derive(Debug, Default)]
struct Transaction {
    recipients: usize,
    /// A body has started with BDAT.
    bdat: bool,
    size: u64,
    too_big: bool,
}

/// The SMTP server machine. See the [module documentation](self).
pub struct Server {
    config: ServerConfig,
    rng: Box<dyn Random + Send>,
    reader: LineReader,
    state: State,
    events: VecDeque<Event>,
    out: Vec<u8>,
    tls: Option<Box<TlsInfo>>,
    received: bool,
    /// Plaintext octets dropped after STARTTLS.
    discarded: usize,
    helo: bool,
    identity: Option<Identity>,
    auth: Option<Box<AuthExchange>>,
    transaction: Option<Transaction>,
    decoder: DotDecoder,
    body: Vec<u8>,
    auth_failures: u32,
    errors: u32,
}

impl core::fmt::Debug for Server {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Server")
            .field("state", &self.state)
            .field("tls", &self.tls.is_some())
            .field("authenticated", &self.identity.is_some())
            .finish_non_exhaustive()
    }
}

fn code(class: u8, subject: u16, detail: u16) -> Option<EnhancedCode> {
    Some(EnhancedCode::new(class, subject, detail))
}

impl Server {
    /// A server session on a new connection; the `220` greeting is queued. `rng` feeds the
    /// mechanisms' nonces and challenges.
    pub fn new(config: ServerConfig, rng: Box<dyn Random + Send>) -> Self {
        let mut server = Self {
            config,
            rng,
            reader: LineReader::new(SMTP_COMMAND_LIMIT),
            state: State::Command,
            events: VecDeque::new(),
            out: Vec::new(),
            tls: None,
            received: false,
            discarded: 0,
            helo: false,
            identity: None,
            auth: None,
            transaction: None,
            decoder: DotDecoder::new(),
            body: Vec::new(),
            auth_failures: 0,
            errors: 0,
        };
        let mut greeting = String::from(server.hostname());
        if !server.config.greeting.is_empty() {
            greeting.push(' ');
            greeting.push_str(&server.config.greeting);
        }
        if Reply::new(220, greeting.as_str()).write(&mut server.out).is_err() {
            server.out.extend_from_slice(b"220 localhost ESMTP\r\n");
        }
        server
    }

    /// Feeds bytes received from the client; processes every command it can. Input after the
    /// session closed is ignored (`Ok`), so the outcome never depends on how reads were split.
    pub fn receive(&mut self, data: &[u8]) -> Result<(), Error> {
        match self.state {
            // Whatever a client sends after the session ended is ignored, however it was
            // split across reads (the driver hangs up on `is_closed`).
            State::Closed => return Ok(()),
            State::Tls => {
                // RFC 3207 §4.2, CVE-2011-0411: plaintext after STARTTLS is never read.
                self.discarded = self.discarded.saturating_add(data.len());
                return Ok(());
            }
            _ => {}
        }
        if data.is_empty() {
            return Ok(());
        }
        self.received = true;
        self.reader.feed(data);
        self.process()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Bytes to send to the client, if any.
    ///
    /// Commands stop being read while more than [`ServerConfig::max_output`] bytes wait here;
    /// taking them resumes reading, so poll events again after draining this.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.out.is_empty() {
            return None;
        }
        let out = core::mem::take(&mut self.out);
        if self.reader.has_pending() {
            // A failure closes the machine, which `is_closed` reports.
            let _ = self.process();
        }
        Some(out)
    }

    /// Bytes waiting in [`poll_transmit`](Self::poll_transmit).
    pub fn queued_output(&self) -> usize {
        self.out.len()
    }

    /// Whether the session is over (QUIT, `421`, or a fatal error): send what
    /// [`poll_transmit`](Self::poll_transmit) holds, then close the connection.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Whether the session is protected by TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Plaintext octets the client sent after `STARTTLS` that were dropped unread (RFC 3207
    /// §4.2): non-zero means a client or a man in the middle pipelined across the switch.
    pub fn discarded_after_starttls(&self) -> usize {
        self.discarded
    }

    /// What the driver reported about TLS, if the session is protected.
    pub fn tls_info(&self) -> Option<&TlsInfo> {
        self.tls.as_deref()
    }

    /// Who authenticated, if anyone.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// Whether AUTH succeeded.
    pub fn is_authenticated(&self) -> bool {
        self.identity.is_some()
    }

    /// The mechanisms offered now (RFC 4954 §3): under TLS or not, `-PLUS` only with channel
    /// binding data, EXTERNAL only with a client certificate identity.
    pub fn mechanisms(&self) -> Vec<Mechanism> {
        let tls = self.tls.as_deref();
        let list = match tls {
            Some(_) => &self.config.mechanisms_after_tls,
            None if self.config.require_tls_for_auth => return Vec::new(),
            None => &self.config.mechanisms_before_tls,
        };
        let mut offered: Vec<Mechanism> = Vec::new();
        for mechanism in list {
            let usable = match mechanism {
                Mechanism::ScramSha1Plus | Mechanism::ScramSha256Plus => {
                    tls.is_some_and(|t| t.channel_binding.is_some())
                }
                Mechanism::External => tls.is_some_and(|t| t.peer_identity.is_some()),
                Mechanism::Other(_) => false,
                _ => true,
            };
            if usable && !offered.contains(mechanism) {
                offered.push(mechanism.clone());
            }
        }
        offered
    }

    /// The driver's TLS handshake is done: after [`Event::StartTls`], or before any input for
    /// implicit TLS (RFC 8314). `info` carries the channel binding data (for `-PLUS`) and the
    /// identity verified from the client's certificate (for EXTERNAL). The session restarts
    /// as after the greeting (RFC 3207 §4.2).
    pub fn tls_established(&mut self, info: TlsInfo) -> Result<(), Error> {
        match self.state {
            State::Closed => Err(Error::Closed),
            State::Tls => {
                self.tls = Some(Box::new(info));
                self.helo = false;
                self.identity = None;
                self.auth = None;
                self.transaction = None;
                self.reader.clear();
                self.reader.set_limit(SMTP_COMMAND_LIMIT);
                self.state = State::Command;
                Ok(())
            }
            State::Command if !self.received && self.tls.is_none() => {
                self.tls = Some(Box::new(info));
                Ok(())
            }
            _ => Err(Error::InvalidState("TLS can only start after the STARTTLS reply or before any input")),
        }
    }

    /// Answers the pending [`Event::Credentials`].
    pub fn answer_credentials(&mut self, answer: CredentialAnswer) -> Result<(), Error> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        if !matches!(self.state, State::AuthAnswer) {
            return Err(Error::InvalidState("no credential request pending"));
        }
        let Some(exchange) = self.auth.as_mut() else {
            return Err(Error::InvalidState("no AUTH exchange in progress"));
        };
        if !exchange.asked.as_ref().is_some_and(|request| request.accepts(&answer)) {
            return Err(Error::AnswerMismatch);
        }
        exchange.asked = None;
        let step = exchange.mechanism.answer(answer);
        self.on_auth_step(step);
        self.process()
    }

    /// Accepts the pending MAIL (`250 2.1.0`), RCPT (`250 2.1.5`) or message (`250 2.0.0`).
    pub fn accept(&mut self) -> Result<(), Error> {
        let decision = self.decision()?;
        let reply = match decision {
            Decision::Mail => Reply { code: 250, lines: alloc::vec![line(code(2, 1, 0), "Sender OK")] },
            Decision::Rcpt => Reply { code: 250, lines: alloc::vec![line(code(2, 1, 5), "Recipient OK")] },
            Decision::DataEnd => Reply { code: 250, lines: alloc::vec![line(code(2, 0, 0), "Message accepted")] },
        };
        self.decide(decision, true, &reply)
    }

    /// Accepts the pending MAIL, RCPT or message with this `2yz` reply (a queue id, say).
    pub fn accept_with(&mut self, reply: Reply) -> Result<(), Error> {
        let decision = self.decision()?;
        if !reply.is_positive() {
            return Err(Error::InvalidReply("accepting needs a 2yz reply"));
        }
        self.decide(decision, true, &reply)
    }

    /// Rejects the pending MAIL, RCPT or message with this `4yz`/`5yz` reply. A rejected
    /// message ends the transaction; a `421` ends the session (RFC 5321 §3.8).
    pub fn reject(&mut self, reply: Reply) -> Result<(), Error> {
        let decision = self.decision()?;
        if !reply.is_negative() {
            return Err(Error::InvalidReply("rejecting needs a 4yz or 5yz reply"));
        }
        self.decide(decision, false, &reply)
    }

    /// Ends the session with a `421` (RFC 5321 §3.8), e.g. on the driver's idle timeout or a
    /// shutdown.
    pub fn close(&mut self, text: &str) -> Result<(), Error> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let mut reply = self.reply(421, code(4, 4, 2), text);
        if reply.to_bytes().is_err() {
            reply = self.reply(421, code(4, 4, 2), "Closing connection");
        }
        self.close_with(reply);
        Ok(())
    }

    fn decision(&self) -> Result<Decision, Error> {
        match self.state {
            State::Decision(decision) => Ok(decision),
            State::Closed => Err(Error::Closed),
            _ => Err(Error::InvalidState("no MAIL, RCPT or message waiting for a decision")),
        }
    }

    fn decide(&mut self, decision: Decision, accepted: bool, reply: &Reply) -> Result<(), Error> {
        reply.to_bytes()?;
        if reply.code == 421 {
            // RFC 5321 §3.8: the server closes the channel after a 421.
            self.close_with(reply.clone());
            return Ok(());
        }
        reply.write(&mut self.out)?;
        match (decision, accepted) {
            (Decision::Mail, true) => self.transaction = Some(Transaction::default()),
            (Decision::Rcpt, true) => {
                if let Some(transaction) = self.transaction.as_mut() {
                    transaction.recipients += 1;
                }
            }
            (Decision::DataEnd, _) => self.transaction = None,
            _ => {}
        }
        self.state = State::Command;
        self.process()
    }

    fn hostname(&self) -> &str {
        let name = self.config.hostname.as_str();
        if name.is_empty() || name.bytes().any(|b| b <= b' ' || b == 0x7f) { "localhost" } else { name }
    }

    /// One of the machine's own replies, with its enhanced code when they are advertised.
    fn reply(&self, code: u16, enhanced: Option<EnhancedCode>, text: &str) -> Reply {
        let enhanced = enhanced.filter(|_| self.config.enhanced_status_codes);
        Reply { code, lines: alloc::vec![line(enhanced, text)] }
    }

    fn send(&mut self, code: u16, enhanced: Option<EnhancedCode>, text: &str) -> Reply {
        let reply = self.reply(code, enhanced, text);
        // The machine's own texts are constants that always write.
        let _ = reply.write(&mut self.out);
        reply
    }

    /// A `50x` reply to a bad command; too many of them end the session.
    fn bad(&mut self, code: u16, enhanced: Option<EnhancedCode>, text: &str) {
        self.send(code, enhanced, text);
        self.count_error();
    }

    fn count_error(&mut self) {
        self.errors = self.errors.saturating_add(1);
        if self.config.max_errors != 0 && self.errors >= self.config.max_errors && !self.is_closed() {
            let reply = self.reply(421, code(4, 7, 0), "Too many errors, closing connection");
            self.close_with(reply);
        }
    }

    /// Sends `reply` and ends the session.
    fn close_with(&mut self, reply: Reply) {
        let _ = reply.write(&mut self.out);
        self.shut();
        self.events.push_back(Event::Closed(reply));
    }

    fn shut(&mut self) {
        self.state = State::Closed;
        self.reader.clear();
        self.auth = None;
        self.transaction = None;
        self.body = Vec::new();
    }

    fn process(&mut self) -> Result<(), Error> {
        loop {
            match &self.state {
                State::Command | State::AuthLine | State::AuthFinal => {
                    if !self.out.is_empty() && self.out.len() >= self.config.max_output {
                        // Back-pressure: read on once the output has been taken.
                        break;
                    }
                    let line = match self.reader.next_line() {
                        None => break,
                        Some(Ok(line)) => Ok(Zeroizing::new(line.to_vec())),
                        Some(Err(error)) => Err(error),
                    };
                    match self.state {
                        State::Command => self.on_command_line(line),
                        State::AuthLine => self.on_auth_line(line),
                        _ => self.on_auth_final(line),
                    }
                }
                State::Data => {
                    if !self.reader.has_pending() {
                        break;
                    }
                    self.on_data_bytes();
                }
                State::Bdat { remaining, .. } => {
                    if *remaining > 0 && !self.reader.has_pending() {
                        break;
                    }
                    self.on_bdat_bytes();
                }
                State::AuthAnswer | State::Decision(_) | State::Tls | State::Closed => break,
            }
        }
        let limit = self.config.max_buffered.max(AUTH_LINE_LIMIT);
        if !self.is_closed() && self.reader.pending_len() > limit {
            let reply = self.reply(421, code(4, 7, 0), "Too much pipelined input, closing connection");
            self.close_with(reply);
            return Err(Error::BufferFull(limit));
        }
        Ok(())
    }

    fn on_command_line(&mut self, line: Result<Zeroizing<Vec<u8>>, LineError>) {
        let line = match line {
            Ok(line) => line,
            // RFC 5321 §4.5.3.1.4: 500 for a line too long.
            Err(_) => return self.bad(500, code(5, 5, 2), "Line too long"),
        };
        let command = match Command::parse(&line) {
            Ok(command) => command,
            Err(ParseError::Unrecognized) => return self.bad(500, code(5, 5, 2), "Command unrecognized"),
            Err(ParseError::Syntax(_)) => {
                let verb = line.split(|&b| b == b' ').next().unwrap_or_default();
                let text = if verb.eq_ignore_ascii_case(b"STARTTLS") {
                    "Syntax error (no parameters allowed)"
                } else {
                    "Syntax error in parameters or arguments"
                };
                return self.bad(501, code(5, 5, 4), text);
            }
        };
        match command {
            Command::Ehlo(domain) => self.on_hello(domain, true),
            Command::Helo(domain) => self.on_hello(domain, false),
            Command::StartTls => self.on_starttls(),
            Command::Auth { mechanism, initial } => self.on_auth(mechanism, initial),
            Command::Mail { from, params } => self.on_mail(from.mailbox, &params),
            Command::Rcpt { to, params } => self.on_rcpt(to.mailbox, &params),
            Command::Data => self.on_data(),
            Command::Bdat { size, last } => self.on_bdat(size, last),
            Command::Rset => {
                self.abandon_transaction();
                self.send(250, code(2, 0, 0), "OK");
            }
            Command::Noop(_) => {
                self.send(250, code(2, 0, 0), "OK");
            }
            Command::Help(_) => {
                self.send(214, code(2, 0, 0), "See RFC 5321");
            }
            Command::Vrfy(_) => {
                self.send(252, code(2, 5, 0), "Cannot VRFY user, but will accept message");
            }
            Command::Expn(_) => self.bad(502, code(5, 5, 1), "EXPN not supported"),
            Command::Quit => {
                self.send(221, code(2, 0, 0), "Bye");
                self.shut();
                self.events.push_back(Event::Quit);
            }
        }
    }

    fn abandon_transaction(&mut self) {
        if self.transaction.take().is_some() {
            self.events.push_back(Event::Reset);
        }
    }

    /// EHLO/HELO (RFC 5321 §4.1.1.1); resets a transaction in progress (§4.1.4).
    fn on_hello(&mut self, domain: &str, extended: bool) {
        self.abandon_transaction();
        self.helo = true;
        let hostname = String::from(self.hostname());
        if extended {
            let capabilities = Capabilities {
                domain: hostname.clone(),
                greeting: String::new(),
                starttls: self.config.tls_available && self.tls.is_none(),
                pipelining: self.config.pipelining,
                eight_bit_mime: self.config.eight_bit_mime,
                smtputf8: self.config.smtputf8,
                enhanced_status_codes: self.config.enhanced_status_codes,
                chunking: self.config.chunking,
                dsn: self.config.dsn,
                size: self.config.max_message_size,
                auth: self.mechanisms(),
                other: self.config.other_extensions.clone(),
            };
            let lines = match capabilities.ehlo_lines() {
                Ok(lines) => lines,
                Err(_) => alloc::vec![hostname],
            };
            let reply = Reply { code: 250, lines: lines.into_iter().map(|text| line(None, &text)).collect() };
            if reply.write(&mut self.out).is_err() {
                self.out.extend_from_slice(b"250 localhost\r\n");
            }
        } else {
            let reply = Reply::new(250, hostname);
            let _ = reply.write(&mut self.out);
        }
        self.events.push_back(Event::Helo { domain: String::from(domain), extended });
    }

    /// STARTTLS (RFC 3207 §4): nothing pipelined after it is ever executed.
    fn on_starttls(&mut self) {
        if self.tls.is_some() {
            return self.bad(503, code(5, 5, 1), "TLS already active");
        }
        if !self.config.tls_available {
            return self.bad(502, code(5, 5, 1), "STARTTLS not available");
        }
        if self.transaction.is_some() {
            return self.bad(503, code(5, 5, 1), "Mail transaction in progress");
        }
        // CVE-2011-0411: whatever was pipelined after STARTTLS is dropped unread.
        self.discarded = self.discarded.saturating_add(self.reader.pending_len());
        self.reader.clear();
        self.send(220, code(2, 0, 0), "Ready to start TLS");
        self.state = State::Tls;
        self.events.push_back(Event::StartTls);
    }

    /// AUTH (RFC 4954 §4).
    fn on_auth(&mut self, name: &str, initial: Option<&str>) {
        if !self.helo {
            return self.bad(503, code(5, 5, 1), "EHLO/HELO first");
        }
        if self.identity.is_some() {
            return self.bad(503, code(5, 5, 1), "Already authenticated");
        }
        if self.transaction.is_some() {
            return self.bad(503, code(5, 5, 1), "AUTH not allowed during a mail transaction");
        }
        if self.tls.is_none() && self.config.require_tls_for_auth {
            // RFC 3207 §4; starttls-cases S8: the credentials are not looked at.
            return self.bad(530, code(5, 7, 0), "Must issue a STARTTLS command first");
        }
        let mechanism = Mechanism::parse(name);
        if !self.mechanisms().contains(&mechanism) {
            if self.tls.is_none() && self.config.tls_available && self.config.mechanisms_after_tls.contains(&mechanism)
            {
                return self.bad(538, code(5, 7, 11), "Encryption required for requested authentication mechanism");
            }
            return self.bad(504, code(5, 5, 4), "Unrecognized authentication type");
        }
        let initial = match initial.map(|text| crate::wire::decode_response(text.as_bytes())) {
            None => None,
            Some(Ok(Payload::Data(data))) => Some(data),
            Some(Ok(Payload::Empty)) => Some(Zeroizing::new(Vec::new())),
            Some(Ok(Payload::Cancel) | Err(_)) => return self.bad(501, code(5, 5, 2), "Invalid base64 data"),
        };
        if initial.is_some() && matches!(mechanism, Mechanism::CramMd5 | Mechanism::DigestMd5) {
            return self.bad(501, code(5, 7, 0), "Initial response not allowed for this mechanism");
        }
        let mut context = ServerContext::new("smtp", self.hostname());
        context.host_aliases = self.config.host_aliases.clone();
        let tls = self.tls.as_deref();
        context.channel_binding = tls.and_then(|t| t.channel_binding.clone());
        context.tls_identity = tls.and_then(|t| t.peer_identity.clone());
        context.offers_plus = self.mechanisms().iter().any(Mechanism::is_plus);
        context.scram_iterations = self.config.scram_iterations;
        context.oauth_scope = self.config.oauth_scope.clone();
        let mut server = match sasl::server(&mechanism, &context, &mut *self.rng) {
            Ok(server) => server,
            Err(_) => return self.bad(504, code(5, 5, 4), "Unrecognized authentication type"),
        };
        let step = server.start(initial.as_ref().map(|data| data.as_slice()));
        self.auth =
            Some(Box::new(AuthExchange { mechanism: server, name: mechanism, rounds: 0, success: None, asked: None }));
        self.on_auth_step(step);
    }

    fn on_auth_step(&mut self, step: ServerStep) {
        let Some(exchange) = self.auth.as_mut() else {
            self.state = State::Command;
            return;
        };
        match step {
            ServerStep::Challenge(challenge) => {
                exchange.rounds += 1;
                if exchange.rounds > self.config.max_auth_rounds {
                    let reply = self.reply(501, code(5, 7, 0), "Too many authentication rounds");
                    return self.fail_auth(AuthFailure::Malformed("too many rounds"), reply);
                }
                self.send_challenge(&challenge);
                self.state = State::AuthLine;
            }
            ServerStep::Ask(request) => {
                exchange.asked = Some(request.clone());
                self.events.push_back(Event::Credentials(request));
                self.state = State::AuthAnswer;
            }
            ServerStep::Success { identity, additional: Some(additional) } => {
                // RFC 4954 §4: data with success goes out as a last challenge; the client's
                // empty answer then gets 235.
                exchange.success = Some(identity);
                self.send_challenge(&additional);
                self.state = State::AuthFinal;
            }
            ServerStep::Success { identity, additional: None } => self.auth_succeeded(identity),
            ServerStep::Failure(failure) => {
                let reply = match failure {
                    AuthFailure::Temporary | AuthFailure::Misuse(_) => {
                        self.reply(454, code(4, 7, 0), "Temporary authentication failure")
                    }
                    AuthFailure::Cancelled => self.reply(501, code(5, 7, 0), "Authentication cancelled"),
                    _ => self.reply(535, code(5, 7, 8), "Authentication credentials invalid"),
                };
                self.fail_auth(failure, reply);
            }
        }
    }

    /// `334` with the base64 challenge; `334 ` with the space when it is empty (field B01).
    fn send_challenge(&mut self, challenge: &[u8]) {
        let text = Zeroizing::new(crate::wire::encode_payload(challenge));
        let reply = Reply::new(334, text.as_str());
        let _ = reply.write(&mut self.out);
        self.reader.set_limit(AUTH_LINE_LIMIT);
    }

    fn auth_succeeded(&mut self, identity: Identity) {
        let mechanism = self.auth.take().map(|exchange| exchange.name).unwrap_or(Mechanism::External);
        self.reader.set_limit(SMTP_COMMAND_LIMIT);
        self.state = State::Command;
        self.send(235, code(2, 7, 0), "Authentication successful");
        self.identity = Some(identity.clone());
        self.events.push_back(Event::Authenticated { identity, mechanism });
    }

    /// Ends the exchange with `reply`; counts the failure and closes at the limit.
    fn fail_auth(&mut self, failure: AuthFailure, reply: Reply) {
        let mechanism = self.auth.take().map(|exchange| exchange.name).unwrap_or(Mechanism::External);
        self.reader.set_limit(SMTP_COMMAND_LIMIT);
        self.state = State::Command;
        let _ = reply.write(&mut self.out);
        let counted = !matches!(failure, AuthFailure::Temporary | AuthFailure::Misuse(_));
        self.events.push_back(Event::AuthFailed { mechanism, failure, reply });
        if counted {
            self.auth_failures = self.auth_failures.saturating_add(1);
            let limit = self.config.max_auth_failures;
            if limit != 0 && self.auth_failures >= limit {
                let reply = self.reply(421, code(4, 7, 0), "Too many failed authentication attempts");
                self.close_with(reply);
            }
        }
    }

    fn on_auth_line(&mut self, line: Result<Zeroizing<Vec<u8>>, LineError>) {
        let line = match line {
            Ok(line) => line,
            Err(_) => {
                let reply = self.reply(500, code(5, 5, 6), "Authentication exchange line is too long");
                return self.fail_auth(AuthFailure::Malformed("line too long"), reply);
            }
        };
        let step = match crate::wire::decode_response(&line) {
            Ok(Payload::Cancel) => {
                let reply = self.reply(501, code(5, 7, 0), "Authentication cancelled");
                return self.fail_auth(AuthFailure::Cancelled, reply);
            }
            Err(_) => {
                let reply = self.reply(501, code(5, 5, 2), "Invalid base64 data");
                return self.fail_auth(AuthFailure::Malformed("response is not base64"), reply);
            }
            Ok(payload) => {
                let data = match &payload {
                    Payload::Data(data) => data.as_slice(),
                    _ => &[],
                };
                match self.auth.as_mut() {
                    Some(exchange) => exchange.mechanism.step(data),
                    None => ServerStep::Failure(AuthFailure::Misuse("no exchange")),
                }
            }
        };
        self.on_auth_step(step);
    }

    fn on_auth_final(&mut self, line: Result<Zeroizing<Vec<u8>>, LineError>) {
        let payload = match line {
            Ok(line) => crate::wire::decode_response(&line),
            Err(_) => {
                let reply = self.reply(500, code(5, 5, 6), "Authentication exchange line is too long");
                return self.fail_auth(AuthFailure::Malformed("line too long"), reply);
            }
        };
        match payload {
            Ok(Payload::Empty) => match self.auth.as_mut().and_then(|exchange| exchange.success.take()) {
                Some(identity) => self.auth_succeeded(identity),
                None => {
                    let reply = self.reply(454, code(4, 7, 0), "Temporary authentication failure");
                    self.fail_auth(AuthFailure::Misuse("no exchange"), reply);
                }
            },
            Ok(Payload::Cancel) => {
                let reply = self.reply(501, code(5, 7, 0), "Authentication cancelled");
                self.fail_auth(AuthFailure::Cancelled, reply);
            }
            _ => {
                let reply = self.reply(501, code(5, 5, 2), "Expected an empty response");
                self.fail_auth(AuthFailure::Malformed("response to the final challenge is not empty"), reply);
            }
        }
    }

    /// MAIL (RFC 5321 §4.1.1.2), SIZE (RFC 1870 §6).
    fn on_mail(&mut self, from: &str, params: &super::Parameters<'_>) {
        if !self.helo {
            return self.bad(503, code(5, 5, 1), "EHLO/HELO first");
        }
        if self.transaction.is_some() {
            return self.bad(503, code(5, 5, 1), "Nested MAIL command");
        }
        if self.config.require_tls_for_mail && self.tls.is_none() {
            return self.bad(530, code(5, 7, 0), "Must issue a STARTTLS command first");
        }
        if let (Some(limit), Some(size)) = (self.config.max_message_size, params.size()) {
            if size > limit {
                self.send(552, code(5, 3, 4), "Message size exceeds fixed maximum message size");
                return;
            }
        }
        self.events.push_back(Event::Mail {
            from: String::from(from),
            parameters: ParameterList::from_params(params),
            identity: self.identity.clone(),
        });
        self.state = State::Decision(Decision::Mail);
    }

    /// RCPT (RFC 5321 §4.1.1.3).
    fn on_rcpt(&mut self, to: &str, params: &super::Parameters<'_>) {
        let Some(transaction) = self.transaction.as_ref() else {
            return self.bad(503, code(5, 5, 1), "Need MAIL command");
        };
        if transaction.recipients >= self.config.max_recipients {
            self.send(452, code(4, 5, 3), "Too many recipients");
            return;
        }
        self.events.push_back(Event::Rcpt {
            to: String::from(to),
            parameters: ParameterList::from_params(params),
            identity: self.identity.clone(),
        });
        self.state = State::Decision(Decision::Rcpt);
    }

    /// DATA (RFC 5321 §4.1.1.4).
    fn on_data(&mut self) {
        let Some(transaction) = self.transaction.as_mut() else {
            return self.bad(503, code(5, 5, 1), "Need MAIL command");
        };
        if transaction.bdat {
            return self.bad(503, code(5, 5, 1), "DATA not allowed after BDAT");
        }
        if transaction.recipients == 0 {
            // RFC 2920 §3.1: DATA pipelined after refused recipients.
            return self.bad(554, code(5, 5, 1), "No valid recipients");
        }
        transaction.size = 0;
        transaction.too_big = false;
        let _ = Reply::new(354, "Start mail input; end with <CRLF>.<CRLF>").write(&mut self.out);
        self.decoder = DotDecoder::new();
        self.body.clear();
        self.events.push_back(Event::DataStart);
        self.state = State::Data;
    }

    /// BDAT (RFC 3030 §2): the chunk is always read, even when it is refused, so the command
    /// stream stays in sync.
    fn on_bdat(&mut self, size: u64, last: bool) {
        let refusal = if !self.config.chunking {
            Some(self.reply(502, code(5, 5, 1), "BDAT not available"))
        } else {
            match self.transaction.as_mut() {
                None => Some(self.reply(503, code(5, 5, 1), "Need MAIL command")),
                Some(transaction) if transaction.recipients == 0 => {
                    Some(self.reply(554, code(5, 5, 1), "No valid recipients"))
                }
                Some(transaction) => {
                    if !transaction.bdat {
                        transaction.bdat = true;
                        transaction.size = 0;
                        transaction.too_big = false;
                        self.body.clear();
                        self.events.push_back(Event::DataStart);
                    }
                    None
                }
            }
        };
        self.state = State::Bdat { size, remaining: size, last, refusal };
    }

    /// Counts `len` body octets just appended to `self.body` and hands out full pieces.
    fn account_body(&mut self, len: usize) {
        let limit = self.config.max_message_size;
        let chunk = self.config.max_data_chunk.max(1);
        let Some(transaction) = self.transaction.as_mut() else {
            self.body.clear();
            return;
        };
        let before = transaction.size;
        transaction.size = before.saturating_add(len as u64);
        if transaction.too_big {
            self.body.clear();
            return;
        }
        // The pieces handed out depend only on the bytes, not on how they were read: up to
        // the limit every full piece goes out, past it nothing more.
        let over = match limit {
            Some(limit) if transaction.size > limit => {
                let keep = usize::try_from(limit.saturating_sub(before)).unwrap_or(usize::MAX).min(len);
                self.body.truncate(self.body.len() - len + keep);
                transaction.too_big = true;
                true
            }
            _ => false,
        };
        while self.body.len() >= chunk {
            let rest = self.body.split_off(chunk);
            let piece = core::mem::replace(&mut self.body, rest);
            self.events.push_back(Event::Data(piece));
        }
        if over {
            self.body.clear();
        }
    }

    fn on_data_bytes(&mut self) {
        let input = self.reader.take_pending();
        let step = self.config.max_data_chunk.max(1);
        let mut at = 0;
        while at < input.len() {
            let end = input.len().min(at + step);
            let before = self.body.len();
            let decoded = self.decoder.decode(input.get(at..end).unwrap_or_default(), &mut self.body);
            at += decoded.consumed;
            let added = self.body.len() - before;
            self.account_body(added);
            if decoded.done {
                self.reader.feed(input.get(at..).unwrap_or_default());
                return self.end_of_body();
            }
        }
    }

    fn on_bdat_bytes(&mut self) {
        let State::Bdat { remaining, .. } = &mut self.state else { return };
        let input = self.reader.take_pending();
        let take = usize::try_from(*remaining).unwrap_or(usize::MAX).min(input.len());
        *remaining -= take as u64;
        let done = *remaining == 0;
        let keep = matches!(self.state, State::Bdat { refusal: None, .. });
        if keep {
            let step = self.config.max_data_chunk.max(1);
            for piece in input.get(..take).unwrap_or_default().chunks(step) {
                self.body.extend_from_slice(piece);
                self.account_body(piece.len());
            }
        }
        self.reader.feed(input.get(take..).unwrap_or_default());
        if !done {
            return;
        }
        let State::Bdat { size, last, refusal, .. } = core::mem::replace(&mut self.state, State::Command) else {
            return;
        };
        if let Some(refusal) = refusal {
            let _ = refusal.write(&mut self.out);
            return self.count_error();
        }
        let too_big = self.transaction.as_ref().is_some_and(|t| t.too_big);
        if last || too_big {
            return self.end_of_body();
        }
        let text = alloc::format!("{size} octets received");
        self.send(250, code(2, 0, 0), &text);
    }

    /// The body is complete (or refused): hand out the rest and ask for a decision.
    fn end_of_body(&mut self) {
        self.state = State::Command;
        let Some(transaction) = self.transaction.as_ref() else { return };
        if transaction.too_big {
            self.transaction = None;
            self.body.clear();
            let reply = self.send(552, code(5, 3, 4), "Message size exceeds fixed maximum message size");
            self.events.push_back(Event::DataRejected(reply));
            return;
        }
        let size = transaction.size;
        if !self.body.is_empty() {
            self.events.push_back(Event::Data(core::mem::take(&mut self.body)));
        }
        self.events.push_back(Event::DataEnd { size, identity: self.identity.clone() });
        self.state = State::Decision(Decision::DataEnd);
    }
}

fn line(enhanced: Option<EnhancedCode>, text: &str) -> ReplyLine {
    ReplyLine { enhanced, text: String::from(text) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::FixedRandom;

    fn server(config: ServerConfig) -> Server {
        Server::new(config, Box::new(FixedRandom::new(1)))
    }

    fn output(server: &mut Server) -> String {
        let mut out = Vec::new();
        while let Some(bytes) = server.poll_transmit() {
            out.extend_from_slice(&bytes);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn idle_server_is_small() {
        // Goal: an idle session costs at most 2 KiB besides its buffers.
        let size = core::mem::size_of::<Server>();
        assert!(size <= 2048, "Server is {size} bytes");
    }

    #[test]
    fn parameter_list_reads_what_the_codec_validated() {
        let list = ParameterList(String::from("SIZE=42 AUTH=<> BODY=8BITMIME X-FOO=bar"));
        assert_eq!(list.size(), Some(42));
        assert_eq!(list.auth(), Some(None));
        assert_eq!(list.iter().count(), 4);
        assert!(!list.is_empty());
        assert!(ParameterList::default().is_empty());
        assert_eq!(ParameterList::default().size(), None);
    }

    #[test]
    fn enhanced_codes_only_when_advertised() {
        let mut config = ServerConfig::new("mx.example");
        config.enhanced_status_codes = false;
        let mut server = server(config);
        server.receive(b"EHLO x\r\nNOOP\r\nRCPT TO:<a@x>\r\n").unwrap();
        let out = output(&mut server);
        assert!(!out.contains("ENHANCEDSTATUSCODES"), "{out}");
        assert!(out.ends_with("250 OK\r\n503 Need MAIL command\r\n"), "{out}");
    }

    #[test]
    fn unusable_hostname_and_greeting_are_replaced() {
        let mut config = ServerConfig::new("bad host\r\n250 forged");
        config.greeting = String::from("x\r\n");
        let mut server = server(config);
        server.receive(b"HELO x\r\n").unwrap();
        assert_eq!(output(&mut server), "220 localhost ESMTP\r\n250 localhost\r\n");
    }

    #[test]
    fn implicit_tls_before_any_input() {
        let mut server = server(ServerConfig::new("mx.example"));
        server.tls_established(TlsInfo::default()).unwrap();
        assert!(server.is_tls());
        server.receive(b"EHLO x\r\n").unwrap();
        let out = output(&mut server);
        assert!(!out.contains("STARTTLS") && out.contains("AUTH "), "{out}");
        assert!(matches!(server.tls_established(TlsInfo::default()), Err(Error::InvalidState(_))));
    }

    #[test]
    fn close_sends_421() {
        let mut server = server(ServerConfig::new("mx.example"));
        output(&mut server);
        server.close("Idle timeout").unwrap();
        assert_eq!(output(&mut server), "421 4.4.2 Idle timeout\r\n");
        assert!(server.is_closed());
        assert!(matches!(server.poll_event(), Some(Event::Closed(_))));
        assert_eq!(server.close("again"), Err(Error::Closed));
        let mut server = self::server(ServerConfig::new("mx.example"));
        output(&mut server);
        server.close("bad\r\ntext").unwrap();
        assert_eq!(output(&mut server), "421 4.4.2 Closing connection\r\n");
    }

    #[test]
    fn buffer_limit_is_at_least_one_auth_line() {
        let mut config = ServerConfig::new("mx.example");
        config.max_buffered = 10;
        let mut server = server(config);
        server.receive(b"EHLO x\r\nMAIL FROM:<a@x>\r\nNOOP\r\nNOOP\r\n").unwrap();
        assert!(matches!(server.state, State::Decision(Decision::Mail)));
        let flood = [b'A'; AUTH_LINE_LIMIT];
        assert_eq!(server.receive(&flood), Err(Error::BufferFull(AUTH_LINE_LIMIT)));
    }
}
