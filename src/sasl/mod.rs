//! SASL (RFC 4422): every mechanism mailwire speaks, client and server side, as pure
//! byte-in/byte-out machines.
//!
//! The protocol layers ([`crate::smtp`], [`crate::pop3`]) own the framing (base64, `334` /
//! `+ ` continuations, `=` and `*`); a mechanism only sees raw challenge and response bytes.
//!
//! - Client side: [`client`] builds a [`ClientMechanism`]: an optional
//!   [`initial_response`](ClientMechanism::initial_response), then one
//!   [`step`](ClientMechanism::step) per challenge, then [`finish`](ClientMechanism::finish)
//!   when the server reports success, which verifies the server where the mechanism can.
//! - Server side: [`server`] builds a [`ServerMechanism`]. It never calls into the application:
//!   when it needs a password check, stored keys or an authorization decision it returns
//!   [`ServerStep::Ask`] with a [`CredentialRequest`], and the caller answers later (after an
//!   async lookup, say) with [`ServerMechanism::answer`].
//! - [`select`] picks the strongest offered mechanism the caller can use.

mod anonymous;
mod cram_md5;
mod digest_md5;
mod external;
mod login;
mod oauth;
mod plain;
mod random;
pub mod saslprep;
mod scram;
mod secret;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

#[cfg(feature = "std")]
pub use self::random::OsRandom;
pub use self::random::{FixedRandom, Random, nonce};
pub use self::secret::{Secret, ct_eq};

/// A SASL mechanism name (RFC 4422 §3.1). Names compare case-insensitively: parse with
/// [`Mechanism::parse`], which upper-cases unknown names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mechanism {
    /// PLAIN (RFC 4616).
    Plain,
    /// LOGIN (draft-murchison-sasl-login).
    Login,
    /// CRAM-MD5 (RFC 2195).
    CramMd5,
    /// DIGEST-MD5 (RFC 2831), `auth` quality of protection only.
    DigestMd5,
    /// SCRAM-SHA-1 (RFC 5802).
    ScramSha1,
    /// SCRAM-SHA-1-PLUS (RFC 5802, with channel binding).
    ScramSha1Plus,
    /// SCRAM-SHA-256 (RFC 7677).
    ScramSha256,
    /// SCRAM-SHA-256-PLUS (RFC 7677, with channel binding).
    ScramSha256Plus,
    /// XOAUTH2 (Google's OAuth 2.0 bearer mechanism).
    XOAuth2,
    /// OAUTHBEARER (RFC 7628).
    OAuthBearer,
    /// EXTERNAL (RFC 4422 appendix A), e.g. a TLS client certificate.
    External,
    /// ANONYMOUS (RFC 4505).
    Anonymous,
    /// Any other name, upper-cased.
    Other(String),
}

impl Mechanism {
    /// Every mechanism mailwire implements, strongest first.
    pub const KNOWN: [Mechanism; 12] = [
        Mechanism::ScramSha256Plus,
        Mechanism::ScramSha1Plus,
        Mechanism::ScramSha256,
        Mechanism::ScramSha1,
        Mechanism::DigestMd5,
        Mechanism::CramMd5,
        Mechanism::OAuthBearer,
        Mechanism::XOAuth2,
        Mechanism::External,
        Mechanism::Plain,
        Mechanism::Login,
        Mechanism::Anonymous,
    ];

    /// Parses a name case-insensitively (RFC 4422 §3.1: names are upper case on the wire).
    pub fn parse(name: &str) -> Self {
        Self::from_bytes(name.as_bytes())
    }

    /// Parses a name from wire bytes case-insensitively; non-UTF-8 bytes are replaced.
    pub fn from_bytes(name: &[u8]) -> Self {
        Self::known(name).unwrap_or_else(|| Mechanism::Other(String::from_utf8_lossy(name).to_ascii_uppercase()))
    }

    /// One of the [`KNOWN`](Self::KNOWN) mechanisms, named case-insensitively, without
    /// allocating; `None` for any other name.
    pub fn known(name: &[u8]) -> Option<Self> {
        // The length picks the candidates, so most names are compared once.
        let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
        Some(match name.len() {
            5 if is("PLAIN") => Self::Plain,
            5 if is("LOGIN") => Self::Login,
            7 if is("XOAUTH2") => Self::XOAuth2,
            8 if is("CRAM-MD5") => Self::CramMd5,
            8 if is("EXTERNAL") => Self::External,
            9 if is("ANONYMOUS") => Self::Anonymous,
            10 if is("DIGEST-MD5") => Self::DigestMd5,
            11 if is("SCRAM-SHA-1") => Self::ScramSha1,
            11 if is("OAUTHBEARER") => Self::OAuthBearer,
            13 if is("SCRAM-SHA-256") => Self::ScramSha256,
            16 if is("SCRAM-SHA-1-PLUS") => Self::ScramSha1Plus,
            18 if is("SCRAM-SHA-256-PLUS") => Self::ScramSha256Plus,
            _ => return None,
        })
    }

    /// The registered name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Plain => "PLAIN",
            Self::Login => "LOGIN",
            Self::CramMd5 => "CRAM-MD5",
            Self::DigestMd5 => "DIGEST-MD5",
            Self::ScramSha1 => "SCRAM-SHA-1",
            Self::ScramSha1Plus => "SCRAM-SHA-1-PLUS",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
            Self::XOAuth2 => "XOAUTH2",
            Self::OAuthBearer => "OAUTHBEARER",
            Self::External => "EXTERNAL",
            Self::Anonymous => "ANONYMOUS",
            Self::Other(name) => name,
        }
    }

    /// Strength rank, higher is stronger; `None` for names mailwire does not implement.
    pub fn strength(&self) -> Option<u8> {
        let position = Self::KNOWN.iter().position(|m| m == self)?;
        u8::try_from(Self::KNOWN.len() - position).ok()
    }

    /// Whether the password crosses the wire in the clear (PLAIN, LOGIN), so that the
    /// mechanism needs TLS unless the caller allows otherwise.
    pub fn is_plaintext(&self) -> bool {
        matches!(self, Self::Plain | Self::Login)
    }

    /// Whether the mechanism binds to the TLS channel (the `-PLUS` variants).
    pub fn is_plus(&self) -> bool {
        matches!(self, Self::ScramSha1Plus | Self::ScramSha256Plus)
    }

    /// Whether the client speaks first (RFC 4422 §3.3), so an initial response is sent.
    pub fn client_first(&self) -> bool {
        !matches!(self, Self::CramMd5 | Self::DigestMd5 | Self::Login | Self::Other(_))
    }
}

impl core::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The hash of a SCRAM family member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramHash {
    /// SHA-1 (RFC 5802).
    Sha1,
    /// SHA-256 (RFC 7677).
    Sha256,
}

/// What a server stores for SCRAM instead of the password (RFC 5802 §2.2, §3).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramKeys {
    /// The salt.
    pub salt: Vec<u8>,
    /// The PBKDF2 iteration count.
    pub iterations: u32,
    /// `H(ClientKey)`.
    pub stored_key: Secret,
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Secret,
}

impl core::fmt::Debug for ScramKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ScramKeys").field("iterations", &self.iterations).finish_non_exhaustive()
    }
}

/// The kind of TLS channel binding (RFC 5056) a `-PLUS` mechanism uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelBindingType {
    /// `tls-exporter` (RFC 9266), the one for TLS 1.3.
    TlsExporter,
    /// `tls-server-end-point` (RFC 5929 §4).
    TlsServerEndPoint,
    /// `tls-unique` (RFC 5929 §3), TLS 1.2 only.
    TlsUnique,
}

impl ChannelBindingType {
    /// The name used in the GS2 header.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::TlsExporter => "tls-exporter",
            Self::TlsServerEndPoint => "tls-server-end-point",
            Self::TlsUnique => "tls-unique",
        }
    }

    /// Parses a GS2 channel binding name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "tls-exporter" => Some(Self::TlsExporter),
            "tls-server-end-point" => Some(Self::TlsServerEndPoint),
            "tls-unique" => Some(Self::TlsUnique),
            _ => None,
        }
    }
}

/// Channel binding data taken from the TLS session by the caller (for `tls-exporter`: the
/// 32-byte exporter with label `EXPORTER-Channel-Binding` and no context).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelBinding {
    /// The binding type.
    pub kind: ChannelBindingType,
    /// The binding data.
    pub data: Vec<u8>,
}

/// What a client knows about its user.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// Authentication identity (user name); for XOAUTH2/OAUTHBEARER the user.
    pub authcid: String,
    /// Authorization identity to act as, if not the authcid.
    pub authzid: Option<String>,
    /// The password.
    pub password: Option<Secret>,
    /// An OAuth 2.0 bearer token (XOAUTH2, OAUTHBEARER).
    pub token: Option<Secret>,
    /// ANONYMOUS trace information (RFC 4505), at most 255 characters.
    pub trace: Option<String>,
}

impl Credentials {
    /// A user name and password.
    pub fn password(authcid: impl Into<String>, password: impl Into<Secret>) -> Self {
        Self { authcid: authcid.into(), password: Some(password.into()), ..Self::default() }
    }

    /// A user name and OAuth 2.0 bearer token.
    pub fn token(user: impl Into<String>, token: impl Into<Secret>) -> Self {
        Self { authcid: user.into(), token: Some(token.into()), ..Self::default() }
    }
}

/// Where a client mechanism runs.
#[derive(Debug, Clone)]
pub struct ClientContext {
    /// GSSAPI service name: `smtp` or `pop` (DIGEST-MD5 `digest-uri`).
    pub service: String,
    /// The server's host name (DIGEST-MD5 `digest-uri`, OAUTHBEARER `host`).
    pub host: String,
    /// The server's port (OAUTHBEARER `port`), if known.
    pub port: Option<u16>,
    /// Channel binding data of the TLS session, for `-PLUS` mechanisms.
    pub channel_binding: Option<ChannelBinding>,
    /// Whether the server offered a `-PLUS` mechanism (SCRAM's `y` flag, RFC 5802 §6).
    pub server_offers_plus: bool,
    /// The lowest SCRAM iteration count accepted (RFC 7677 §4 asks for 4096).
    pub min_scram_iterations: u32,
}

impl ClientContext {
    /// A context for `service` (`smtp` or `pop`) at `host`.
    pub fn new(service: impl Into<String>, host: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            host: host.into(),
            port: None,
            channel_binding: None,
            server_offers_plus: false,
            min_scram_iterations: 4096,
        }
    }
}

/// Where a server mechanism runs.
#[derive(Debug, Clone)]
pub struct ServerContext {
    /// GSSAPI service name: `smtp` or `pop`.
    pub service: String,
    /// The server's host name; also the DIGEST-MD5 realm offered.
    pub host: String,
    /// Other names clients may know this server by (an address such as `127.0.0.1`, a
    /// cluster name): DIGEST-MD5 accepts them in `digest-uri` too (RFC 2831 §2.1.2).
    pub host_aliases: Vec<String>,
    /// Channel binding data of the TLS session, for `-PLUS` mechanisms.
    pub channel_binding: Option<ChannelBinding>,
    /// Whether this server offers `-PLUS` mechanisms (a client's `y` flag is then a downgrade).
    pub offers_plus: bool,
    /// The identity the driver verified from the client's TLS certificate (EXTERNAL).
    pub tls_identity: Option<String>,
    /// SCRAM iteration count used when the application answers with a password.
    pub scram_iterations: u32,
    /// OAuth scope named in XOAUTH2/OAUTHBEARER error challenges (RFC 7628 §3.2.2), if any.
    pub oauth_scope: Option<String>,
}

impl ServerContext {
    /// A context for `service` (`smtp` or `pop`) at `host`.
    pub fn new(service: impl Into<String>, host: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            host: host.into(),
            host_aliases: Vec::new(),
            channel_binding: None,
            offers_plus: false,
            tls_identity: None,
            scram_iterations: 4096,
            oauth_scope: None,
        }
    }
}

/// The client side of a mechanism.
pub trait ClientMechanism: core::fmt::Debug + Send {
    /// The mechanism.
    fn mechanism(&self) -> Mechanism;

    /// The initial response (RFC 4422 §3.3), or `None` for a server-first mechanism. May be
    /// empty (sent as `=`).
    fn initial_response(&mut self) -> Result<Option<Secret>, SaslError>;

    /// Answers a server challenge.
    fn step(&mut self, challenge: &[u8]) -> Result<Secret, SaslError>;

    /// The server reported success, with additional data if the protocol carries it. Fails
    /// when the mechanism could not verify the server (a SCRAM server signature not seen or
    /// wrong, a DIGEST-MD5 `rspauth` missing).
    fn finish(&mut self, additional: Option<&[u8]>) -> Result<(), SaslError>;

    /// The server's error report, if it sent one in a challenge (OAuth JSON, SCRAM `e=`).
    fn server_error(&self) -> Option<&str> {
        None
    }
}

/// The server side of a mechanism. It asks the caller instead of calling back.
pub trait ServerMechanism: core::fmt::Debug + Send {
    /// The mechanism.
    fn mechanism(&self) -> Mechanism;

    /// Starts the exchange, with the client's initial response if it sent one.
    fn start(&mut self, initial_response: Option<&[u8]>) -> ServerStep;

    /// Handles the client's response to the last challenge.
    fn step(&mut self, response: &[u8]) -> ServerStep;

    /// Answers the last [`ServerStep::Ask`].
    fn answer(&mut self, answer: CredentialAnswer) -> ServerStep;
}

/// What a server mechanism wants next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerStep {
    /// Send this challenge and wait for the client's response.
    Challenge(Vec<u8>),
    /// Answer this question with [`ServerMechanism::answer`].
    Ask(CredentialRequest),
    /// Authenticated. `additional` is data for the client with the outcome (SCRAM's
    /// server-final message); protocols that cannot carry it send it as a last challenge.
    Success {
        /// Who authenticated.
        identity: Identity,
        /// Additional data with success.
        additional: Option<Vec<u8>>,
    },
    /// The exchange failed.
    Failure(AuthFailure),
}

/// A question a server mechanism asks the application. Identities have been checked: no NUL,
/// CR or LF, SASLprep applied where the mechanism requires it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialRequest {
    /// PLAIN, LOGIN: is `password` the password of `authcid`? Answer
    /// [`CredentialAnswer::Verified`], `Rejected` or `UnknownUser`.
    VerifyPassword {
        /// The user.
        authcid: String,
        /// The password the client sent.
        password: Secret,
    },
    /// XOAUTH2, OAUTHBEARER: is `token` a valid bearer token for `user`? Answer `Verified`
    /// or `Rejected`.
    VerifyToken {
        /// The user the token is for.
        user: String,
        /// The bearer token.
        token: Secret,
    },
    /// CRAM-MD5 (and APOP): the user's cleartext secret. Answer `Password` or `UnknownUser`.
    Password {
        /// The user.
        authcid: String,
    },
    /// DIGEST-MD5: answer `Password` or `DigestHa1` (`MD5(user ":" realm ":" password)`).
    DigestSecret {
        /// The user.
        username: String,
        /// The realm the client chose.
        realm: String,
    },
    /// SCRAM: answer `ScramKeys` (stored form) or `Password`.
    ScramCredentials {
        /// The user.
        authcid: String,
        /// The hash the keys are for.
        hash: ScramHash,
    },
    /// ANONYMOUS: may this guest log in? Answer `Verified` or `Rejected`.
    Anonymous {
        /// The trace information the client gave.
        trace: String,
    },
    /// May `authcid` act as `authzid` (RFC 4422 §3.4.1)? Answer `Verified` or `Rejected`.
    Authorize {
        /// Who authenticated (for EXTERNAL, the TLS identity).
        authcid: String,
        /// Whom they want to act as.
        authzid: String,
    },
}

impl CredentialRequest {
    /// Whether `answer` is a kind of answer this request takes (a negative one always is);
    /// the machines refuse others as caller errors.
    pub(crate) fn accepts(&self, answer: &CredentialAnswer) -> bool {
        use CredentialAnswer as A;
        if matches!(answer, A::Rejected | A::UnknownUser | A::TemporaryFailure) {
            return true;
        }
        match self {
            Self::VerifyPassword { .. }
            | Self::VerifyToken { .. }
            | Self::Anonymous { .. }
            | Self::Authorize { .. } => {
                matches!(answer, A::Verified)
            }
            Self::Password { .. } => matches!(answer, A::Password(_)),
            Self::DigestSecret { .. } => matches!(answer, A::Password(_) | A::DigestHa1(_)),
            Self::ScramCredentials { .. } => matches!(answer, A::Password(_) | A::ScramKeys(_)),
        }
    }
}

/// The application's answer to a [`CredentialRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialAnswer {
    /// Yes: the password or token is right, the guest or authorization is allowed.
    Verified,
    /// No.
    Rejected,
    /// No such user (reported to the client like a wrong password).
    UnknownUser,
    /// The lookup failed for now (SMTP 454, POP3 `[SYS/TEMP]`).
    TemporaryFailure,
    /// The user's cleartext password.
    Password(Secret),
    /// DIGEST-MD5 stored form: the 16 raw bytes of `MD5(user ":" realm ":" password)`.
    DigestHa1(Secret),
    /// SCRAM stored form.
    ScramKeys(ScramKeys),
}

/// Who authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The authentication identity.
    pub authcid: String,
    /// The authorization identity, when the client asked for one other than `authcid`.
    pub authzid: Option<String>,
}

impl Identity {
    /// The identity the session acts as: the authzid if given, else the authcid.
    pub fn acting_as(&self) -> &str {
        self.authzid.as_deref().unwrap_or(&self.authcid)
    }
}

/// Why a server exchange failed. The protocol layers map these to reply codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFailure {
    /// The client's message broke the mechanism's syntax (SMTP 501).
    #[error("malformed client message: {0}")]
    Malformed(&'static str),
    /// Wrong password, token or proof, or unknown user (SMTP 535 5.7.8).
    #[error("invalid credentials")]
    Credentials,
    /// Authenticated, but not allowed to act as the requested identity (SMTP 535).
    #[error("not authorized to act as the requested identity")]
    NotAuthorized,
    /// The client cancelled with `*` (SMTP 501).
    #[error("cancelled by the client")]
    Cancelled,
    /// A temporary failure in the credential lookup (SMTP 454 4.7.0).
    #[error("temporary authentication failure")]
    Temporary,
    /// The mechanism cannot run here: EXTERNAL without a client certificate, `-PLUS` without
    /// channel binding data (SMTP 535).
    #[error("mechanism not available: {0}")]
    Unavailable(&'static str),
    /// SCRAM channel binding did not match, or a downgrade was detected.
    #[error("channel binding mismatch")]
    ChannelBinding,
    /// The application answered a question with the wrong kind of answer, or the mechanism
    /// was driven out of order (a caller error).
    #[error("mechanism used out of order: {0}")]
    Misuse(&'static str),
}

/// Errors of the client side, and of building a mechanism.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SaslError {
    /// The server's challenge broke the mechanism's syntax.
    #[error("malformed server challenge: {0}")]
    MalformedChallenge(&'static str),
    /// The server reported an error (SCRAM `e=`, OAuth JSON).
    #[error("server error: {0}")]
    ServerError(String),
    /// The server failed to prove it knows the credentials (SCRAM signature, DIGEST-MD5
    /// `rspauth`), or reported success too early.
    #[error("server not verified: {0}")]
    ServerNotVerified(&'static str),
    /// A challenge arrived after the exchange was complete, or before it was started.
    #[error("unexpected challenge")]
    UnexpectedChallenge,
    /// The credentials lack what this mechanism needs (password, token, channel binding).
    #[error("missing credential: {0}")]
    MissingCredential(&'static str),
    /// An identity or password contains NUL, CR or LF, or is otherwise unusable.
    #[error("invalid identity or secret: {0}")]
    InvalidCredential(&'static str),
    /// SASLprep (RFC 4013) refused a string.
    #[error("SASLprep failed: {0}")]
    Saslprep(&'static str),
    /// The SCRAM iteration count is below the configured minimum.
    #[error("SCRAM iteration count {0} below the minimum")]
    IterationsTooLow(u32),
    /// The mechanism is not implemented.
    #[error("unsupported mechanism {0}")]
    Unsupported(String),
}

/// Refuses identities that could inject protocol lines or truncate messages: NUL, CR, LF.
pub(crate) fn check_identity(value: &str) -> Result<(), SaslError> {
    if value.bytes().any(|b| matches!(b, 0 | b'\r' | b'\n')) {
        Err(SaslError::InvalidCredential("NUL, CR or LF in an identity"))
    } else {
        Ok(())
    }
}

/// Whether a decoded identity from a peer is free of NUL, CR and LF.
pub(crate) fn identity_is_clean(value: &[u8]) -> bool {
    !value.iter().any(|b| matches!(b, 0 | b'\r' | b'\n'))
}

/// Builds the client side of `mechanism`.
pub fn client(
    mechanism: &Mechanism,
    credentials: &Credentials,
    context: &ClientContext,
    rng: &mut dyn Random,
) -> Result<Box<dyn ClientMechanism>, SaslError> {
    check_identity(&credentials.authcid)?;
    if let Some(authzid) = &credentials.authzid {
        check_identity(authzid)?;
    }
    match mechanism {
        Mechanism::Plain => plain::client(credentials),
        Mechanism::Login => login::client(credentials),
        Mechanism::CramMd5 => cram_md5::client(credentials),
        Mechanism::DigestMd5 => digest_md5::client(credentials, context, rng),
        Mechanism::ScramSha1 | Mechanism::ScramSha1Plus | Mechanism::ScramSha256 | Mechanism::ScramSha256Plus => {
            scram::client(mechanism, credentials, context, rng)
        }
        Mechanism::XOAuth2 | Mechanism::OAuthBearer => oauth::client(mechanism, credentials, context),
        Mechanism::External => external::client(credentials),
        Mechanism::Anonymous => anonymous::client(credentials),
        Mechanism::Other(name) => Err(SaslError::Unsupported(name.clone())),
    }
}

/// Builds the server side of `mechanism`.
pub fn server(
    mechanism: &Mechanism,
    context: &ServerContext,
    rng: &mut dyn Random,
) -> Result<Box<dyn ServerMechanism>, SaslError> {
    match mechanism {
        Mechanism::Plain => plain::server(),
        Mechanism::Login => login::server(),
        Mechanism::CramMd5 => cram_md5::server(context, rng),
        Mechanism::DigestMd5 => digest_md5::server(context, rng),
        Mechanism::ScramSha1 | Mechanism::ScramSha1Plus | Mechanism::ScramSha256 | Mechanism::ScramSha256Plus => {
            scram::server(mechanism, context, rng)
        }
        Mechanism::XOAuth2 | Mechanism::OAuthBearer => oauth::server(mechanism, context),
        Mechanism::External => external::server(context),
        Mechanism::Anonymous => anonymous::server(),
        Mechanism::Other(name) => Err(SaslError::Unsupported(name.clone())),
    }
}

/// What the client can use, for [`select`].
#[derive(Debug, Clone, Default)]
pub struct Selection<'a> {
    /// The session is protected by TLS.
    pub tls: bool,
    /// Allow PLAIN and LOGIN without TLS.
    pub allow_plaintext: bool,
    /// The client holds a password.
    pub has_password: bool,
    /// The client holds an OAuth bearer token.
    pub has_token: bool,
    /// The client presented a TLS certificate (EXTERNAL).
    pub has_client_certificate: bool,
    /// Channel binding data is available (`-PLUS`).
    pub has_channel_binding: bool,
    /// Allow ANONYMOUS.
    pub allow_anonymous: bool,
    /// Use this mechanism and no other.
    pub forced: Option<&'a Mechanism>,
}

/// Why no mechanism could be selected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectError {
    /// The forced mechanism is not offered.
    #[error("mechanism {0} not offered by the server")]
    NotOffered(Mechanism),
    /// A plaintext mechanism would be used without TLS.
    #[error("mechanism {0} sends the password in the clear and the session has no TLS")]
    InsecureMechanism(Mechanism),
    /// No offered mechanism fits the credentials and policy.
    #[error("no acceptable mechanism offered")]
    NoAcceptable,
}

impl Selection<'_> {
    fn usable(&self, mechanism: &Mechanism) -> bool {
        match mechanism {
            Mechanism::ScramSha1Plus | Mechanism::ScramSha256Plus => self.has_password && self.has_channel_binding,
            Mechanism::ScramSha1 | Mechanism::ScramSha256 | Mechanism::DigestMd5 | Mechanism::CramMd5 => {
                self.has_password
            }
            Mechanism::Plain | Mechanism::Login => self.has_password && (self.tls || self.allow_plaintext),
            Mechanism::OAuthBearer | Mechanism::XOAuth2 => self.has_token,
            Mechanism::External => self.has_client_certificate,
            Mechanism::Anonymous => self.allow_anonymous,
            Mechanism::Other(_) => false,
        }
    }
}

/// Picks the strongest mechanism in `offered` that `selection` allows (RFC 4954 §4: the
/// client chooses). A forced mechanism must be offered, and a plaintext one still needs TLS
/// or `allow_plaintext`.
pub fn select(offered: &[Mechanism], selection: &Selection<'_>) -> Result<Mechanism, SelectError> {
    if let Some(forced) = selection.forced {
        if !offered.contains(forced) {
            return Err(SelectError::NotOffered(forced.clone()));
        }
        if forced.is_plaintext() && !selection.tls && !selection.allow_plaintext {
            return Err(SelectError::InsecureMechanism(forced.clone()));
        }
        return Ok(forced.clone());
    }
    offered
        .iter()
        .filter(|m| selection.usable(m))
        .max_by_key(|m| m.strength())
        .cloned()
        .ok_or(SelectError::NoAcceptable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn names_are_case_insensitive() {
        assert_eq!(Mechanism::parse("scram-sha-256-plus"), Mechanism::ScramSha256Plus);
        assert_eq!(Mechanism::parse("Cram-Md5"), Mechanism::CramMd5);
        assert_eq!(Mechanism::parse("gssapi"), Mechanism::Other("GSSAPI".into()));
        assert_eq!(
            Mechanism::parse("X-VERY-LONG-MECHANISM-NAME-BEYOND-16"),
            Mechanism::Other("X-VERY-LONG-MECHANISM-NAME-BEYOND-16".into())
        );
        for m in Mechanism::KNOWN {
            assert_eq!(Mechanism::parse(&m.as_str().to_ascii_lowercase()), m);
        }
    }

    #[test]
    fn selects_strongest_and_guards_plaintext() {
        let offered = vec![Mechanism::Plain, Mechanism::Login, Mechanism::CramMd5, Mechanism::ScramSha256];
        let mut sel = Selection { has_password: true, ..Selection::default() };
        assert_eq!(select(&offered, &sel), Ok(Mechanism::ScramSha256));
        let plain_only = vec![Mechanism::Plain, Mechanism::Login];
        assert_eq!(select(&plain_only, &sel), Err(SelectError::NoAcceptable));
        sel.forced = Some(&Mechanism::Plain);
        assert_eq!(select(&plain_only, &sel), Err(SelectError::InsecureMechanism(Mechanism::Plain)));
        sel.tls = true;
        assert_eq!(select(&plain_only, &sel), Ok(Mechanism::Plain));
        sel.forced = Some(&Mechanism::XOAuth2);
        assert_eq!(select(&plain_only, &sel), Err(SelectError::NotOffered(Mechanism::XOAuth2)));
        let plus = vec![Mechanism::ScramSha256, Mechanism::ScramSha256Plus];
        let sel = Selection { has_password: true, tls: true, ..Selection::default() };
        assert_eq!(select(&plus, &sel), Ok(Mechanism::ScramSha256));
        let sel = Selection { has_password: true, tls: true, has_channel_binding: true, ..Selection::default() };
        assert_eq!(select(&plus, &sel), Ok(Mechanism::ScramSha256Plus));
    }

    #[test]
    fn identities_with_line_breaks_are_refused() {
        for bad in ["a\rb", "a\nb", "a\0b"] {
            let creds = Credentials::password(bad, "pw");
            let ctx = ClientContext::new("smtp", "localhost");
            let err = client(&Mechanism::Plain, &creds, &ctx, &mut FixedRandom::new(1)).unwrap_err();
            assert!(matches!(err, SaslError::InvalidCredential(_)));
        }
    }
}
