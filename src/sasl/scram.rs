//! SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677), with the `-PLUS` variants that bind the
//! exchange to the TLS channel (RFC 5056; `tls-unique` and `tls-server-end-point` from RFC 5929,
//! `tls-exporter` from RFC 9266).
//!
//! One implementation serves both hashes: the machines hold a [`ScramHash`] and the primitives
//! dispatch to HMAC, hash and PBKDF2 code written once, generic over the digest.
//!
//! Parsing splits a message on `,` and reads the attributes in the order of the RFC 5802 §7
//! grammar, so a nonce holding `s=` or `=` (field case B26) is never taken for another attribute.
//! Unknown optional extensions are tolerated; since the AuthMessage is built from the messages
//! exactly as received, they stay in it verbatim. A mandatory extension (`m=`) is refused.
//!
//! Client: refuses iteration counts below [`ClientContext::min_scram_iterations`] and above
//! [`MAX_ITERATIONS`] (a hostile server could otherwise keep the client hashing for hours),
//! surfaces a server's `e=` as [`SaslError::ServerError`], verifies the server signature in
//! constant time, and fails [`ClientMechanism::finish`] unless it did.
//!
//! Server: asks for [`CredentialRequest::ScramCredentials`] and takes stored keys or a password
//! (then salted with bytes drawn from the caller's [`Random`] when the mechanism was built, and
//! [`ServerContext::scram_iterations`]), verifies the client proof in constant time, checks the
//! channel binding and the `y` downgrade flag, and asks [`CredentialRequest::Authorize`] when the
//! authzid differs from the authcid. Failures are reported as a typed [`AuthFailure`] only:
//! [`ServerStep::Failure`] carries no data, so the `e=` server-final message of RFC 5802 §7 is
//! not produced; the protocol's failure reply (SMTP 535, POP3 `-ERR`) tells the client instead.
//! A channel binding mismatch or downgrade (`e=channel-bindings-dont-match`) is
//! [`AuthFailure::ChannelBinding`]; an unknown user fails like a wrong password, right away.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::digest::Digest;
use hmac::{EagerHash, Hmac, KeyInit, Mac};
use zeroize::Zeroizing;

use super::plain::deny;
use super::saslprep::saslprep;
use super::{
    AuthFailure, ChannelBinding, ChannelBindingType, ClientContext, ClientMechanism, CredentialAnswer,
    CredentialRequest, Credentials, Identity, Mechanism, Random, SaslError, ScramHash, ScramKeys, Secret,
    ServerContext, ServerMechanism, ServerStep, ct_eq, identity_is_clean, nonce,
};
use crate::wire::decode_base64;

/// The highest iteration count a client accepts from a server. PBKDF2 at this count takes well
/// under a second; anything above is refused as malformed rather than run.
pub(crate) const MAX_ITERATIONS: u32 = 1_000_000;

/// Characters of nonce each side contributes.
const NONCE_LEN: usize = 24;

/// Octets of salt drawn for a user whose password the application hands over.
const SALT_LEN: usize = 16;

/// Longest SCRAM message accepted or built (an AUTH line of 12288 base64 characters carries at
/// most 9216 octets).
const MAX_MESSAGE: usize = 9216;

// ---------------------------------------------------------------------------------------------
// Primitives (RFC 5802 §2.2), generic over the hash, dispatched on `ScramHash`.
// ---------------------------------------------------------------------------------------------

/// The primitives failed; cannot happen with HMAC (it takes keys of any length).
const CRYPTO_FAILED: &str = "HMAC refused a key";

fn hmac_with<D: EagerHash>(key: &[u8], data: &[u8]) -> Option<Secret> {
    let mut mac = <Hmac<D> as KeyInit>::new_from_slice(key).ok()?;
    Mac::update(&mut mac, data);
    Some(Secret::new(mac.finalize().into_bytes().to_vec()))
}

fn hash_with<D: EagerHash>(data: &[u8]) -> Secret {
    Secret::new(D::digest(data).to_vec())
}

fn hi_with<D: EagerHash>(password: &[u8], salt: &[u8], iterations: u32) -> Option<Secret> {
    let mut out = vec![0u8; <D as Digest>::output_size()];
    pbkdf2::pbkdf2::<Hmac<D>>(password, salt, iterations, &mut out).ok()?;
    Some(Secret::new(out))
}

/// `HMAC(key, data)`.
fn hmac(hash: ScramHash, key: &[u8], data: &[u8]) -> Option<Secret> {
    match hash {
        ScramHash::Sha1 => hmac_with::<sha1::Sha1>(key, data),
        ScramHash::Sha256 => hmac_with::<sha2::Sha256>(key, data),
    }
}

/// `H(data)`.
fn h(hash: ScramHash, data: &[u8]) -> Secret {
    match hash {
        ScramHash::Sha1 => hash_with::<sha1::Sha1>(data),
        ScramHash::Sha256 => hash_with::<sha2::Sha256>(data),
    }
}

/// `Hi(password, salt, i)`: PBKDF2 with HMAC and one output block.
fn hi(hash: ScramHash, password: &[u8], salt: &[u8], iterations: u32) -> Option<Secret> {
    match hash {
        ScramHash::Sha1 => hi_with::<sha1::Sha1>(password, salt, iterations),
        ScramHash::Sha256 => hi_with::<sha2::Sha256>(password, salt, iterations),
    }
}

/// Output length of the hash in octets.
fn output_len(hash: ScramHash) -> usize {
    match hash {
        ScramHash::Sha1 => <sha1::Sha1 as Digest>::output_size(),
        ScramHash::Sha256 => <sha2::Sha256 as Digest>::output_size(),
    }
}

fn xor(a: &[u8], b: &[u8]) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(a.iter().zip(b).map(|(x, y)| x ^ y).collect())
}

/// The keys derived from a SaltedPassword (RFC 5802 §3).
struct KeySchedule {
    client_key: Secret,
    stored_key: Secret,
    server_key: Secret,
}

fn key_schedule(hash: ScramHash, salted_password: &[u8]) -> Option<KeySchedule> {
    let client_key = hmac(hash, salted_password, b"Client Key")?;
    let stored_key = h(hash, client_key.expose());
    let server_key = hmac(hash, salted_password, b"Server Key")?;
    Some(KeySchedule { client_key, stored_key, server_key })
}

/// `SaltedPassword` of an already SASLprep'd password.
fn salted_password(hash: ScramHash, prepared: &str, salt: &[u8], iterations: u32) -> Result<Secret, SaslError> {
    hi(hash, prepared.as_bytes(), salt, iterations).ok_or(SaslError::InvalidCredential(CRYPTO_FAILED))
}

impl ScramKeys {
    /// Derives what a server stores for `password` instead of the password itself: the salt,
    /// the iteration count, `StoredKey = H(HMAC(SaltedPassword, "Client Key"))` and
    /// `ServerKey = HMAC(SaltedPassword, "Server Key")`, where
    /// `SaltedPassword = Hi(SASLprep(password), salt, iterations)`. Draw the salt at random
    /// (16 octets or more) once per user; RFC 7677 §4 asks for at least 4096 iterations, and
    /// mailwire's client refuses more than 1 000 000. Fails on a zero iteration count, an empty
    /// salt, or a password SASLprep refuses (RFC 5802 §3).
    pub fn derive(hash: ScramHash, password: &str, salt: &[u8], iterations: u32) -> Result<ScramKeys, SaslError> {
        if iterations == 0 {
            return Err(SaslError::IterationsTooLow(0));
        }
        if salt.is_empty() {
            return Err(SaslError::InvalidCredential("empty SCRAM salt"));
        }
        let prepared = Zeroizing::new(saslprep(password)?.into_owned());
        let salted = salted_password(hash, &prepared, salt, iterations)?;
        let keys = key_schedule(hash, salted.expose()).ok_or(SaslError::InvalidCredential(CRYPTO_FAILED))?;
        Ok(ScramKeys { salt: salt.to_vec(), iterations, stored_key: keys.stored_key, server_key: keys.server_key })
    }
}

// ---------------------------------------------------------------------------------------------
// Syntax (RFC 5802 §7).
// ---------------------------------------------------------------------------------------------

/// `saslname`: `,` becomes `=2C` and `=` becomes `=3D` (RFC 5802 §5.1).
fn escape_saslname(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            ',' => out.push_str("=2C"),
            '=' => out.push_str("=3D"),
            c => out.push(c),
        }
    }
    out
}

/// Reverses [`escape_saslname`]; `None` for an empty name, a NUL, a `,`, or any `=` not
/// starting `=2C` or `=3D` (RFC 5802 §5.1: the server MUST fail the authentication).
fn unescape_saslname(field: &str) -> Option<String> {
    if field.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(position) = rest.find(['=', ',', '\0']) {
        let (head, tail) = rest.split_at_checked(position)?;
        out.push_str(head);
        if let Some(after) = tail.strip_prefix("=2C") {
            out.push(',');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("=3D") {
            out.push('=');
            rest = after;
        } else {
            return None;
        }
    }
    out.push_str(rest);
    Some(out)
}

/// `printable`: ASCII 0x21-0x7E except `,`, at least one (the nonce alphabet).
fn is_printable(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// `attr-val`: one letter, `=`, then at least one character other than NUL (and `,`, which
/// the split already removed).
fn is_extension(field: &str) -> bool {
    let bytes = field.as_bytes();
    matches!(bytes, [letter, b'=', value @ ..] if letter.is_ascii_alphabetic() && !value.is_empty() && !value.contains(&0))
}

/// `posit-number` as a `u32`: no sign, no leading zero, at most ten digits.
fn parse_iterations(value: &str) -> Option<u32> {
    let bytes = value.as_bytes();
    if !matches!(bytes.first(), Some(b'1'..=b'9')) || bytes.len() > 10 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.parse().ok()
}

fn mechanism_of(hash: ScramHash, plus: bool) -> Mechanism {
    match (hash, plus) {
        (ScramHash::Sha1, false) => Mechanism::ScramSha1,
        (ScramHash::Sha1, true) => Mechanism::ScramSha1Plus,
        (ScramHash::Sha256, false) => Mechanism::ScramSha256,
        (ScramHash::Sha256, true) => Mechanism::ScramSha256Plus,
    }
}

fn variant(mechanism: &Mechanism) -> Result<(ScramHash, bool), SaslError> {
    match mechanism {
        Mechanism::ScramSha1 => Ok((ScramHash::Sha1, false)),
        Mechanism::ScramSha1Plus => Ok((ScramHash::Sha1, true)),
        Mechanism::ScramSha256 => Ok((ScramHash::Sha256, false)),
        Mechanism::ScramSha256Plus => Ok((ScramHash::Sha256, true)),
        other => Err(SaslError::Unsupported(other.to_string())),
    }
}

// ---------------------------------------------------------------------------------------------
// Client.
// ---------------------------------------------------------------------------------------------

pub(super) fn client(
    mechanism: &Mechanism,
    credentials: &Credentials,
    context: &ClientContext,
    rng: &mut dyn Random,
) -> Result<Box<dyn ClientMechanism>, SaslError> {
    let (hash, plus) = variant(mechanism)?;
    let client_nonce = nonce(rng, NONCE_LEN);
    Ok(Box::new(ScramClient::new(hash, plus, credentials, context, client_nonce)?))
}

#[derive(Debug)]
enum ClientState {
    /// client-first not sent yet.
    Initial,
    /// Waiting for server-first.
    SentFirst,
    /// Waiting for server-final, which must carry this signature.
    SentFinal { server_signature: Secret },
    /// The server proved it knows the keys.
    Verified,
    /// Something went wrong; every further call fails.
    Failed,
}

/// SCRAM client: client-first, then client-final, then the server signature check.
#[derive(Debug)]
struct ScramClient {
    hash: ScramHash,
    plus: bool,
    min_iterations: u32,
    client_nonce: String,
    /// The SASLprep'd password, until client-final is computed.
    password: Option<Secret>,
    /// `gs2-header` followed by the channel binding data: what `c=` carries, base64-encoded.
    cbind_input: Vec<u8>,
    /// `gs2-header` + `client-first-message-bare`.
    client_first: String,
    /// Offset of `client-first-message-bare` in `client_first`.
    bare_start: usize,
    state: ClientState,
    server_error: Option<String>,
}

impl ScramClient {
    /// A client with a given nonce (random in [`client`], fixed in known-answer tests).
    fn new(
        hash: ScramHash,
        plus: bool,
        credentials: &Credentials,
        context: &ClientContext,
        client_nonce: String,
    ) -> Result<Self, SaslError> {
        let password = credentials.password.as_ref().ok_or(SaslError::MissingCredential("password"))?;
        let password = password.expose_str().ok_or(SaslError::InvalidCredential("password is not UTF-8"))?;
        let password = Secret::from(Zeroizing::new(saslprep(password)?.into_owned()).as_str());
        let authcid = saslprep(&credentials.authcid)?;
        if authcid.is_empty() {
            return Err(SaslError::InvalidCredential("empty user name"));
        }
        if !is_printable(&client_nonce) {
            return Err(SaslError::InvalidCredential("client nonce is not printable"));
        }
        let (flag, binding_data): (String, &[u8]) = if plus {
            let binding =
                context.channel_binding.as_ref().ok_or(SaslError::MissingCredential("channel binding data"))?;
            (format!("p={}", binding.kind.as_str()), &binding.data)
        } else if context.channel_binding.is_some() && !context.server_offers_plus {
            // We could bind but the server did not offer -PLUS: say so, for downgrade detection.
            (String::from("y"), &[])
        } else {
            (String::from("n"), &[])
        };
        let authzid = match credentials.authzid.as_deref() {
            Some(authzid) if !authzid.is_empty() => format!("a={}", escape_saslname(authzid)),
            _ => String::new(),
        };
        let gs2_header = format!("{flag},{authzid},");
        let client_first = format!("{gs2_header}n={},r={client_nonce}", escape_saslname(&authcid));
        if client_first.len() > MAX_MESSAGE / 2 {
            return Err(SaslError::InvalidCredential("identity too long for SCRAM"));
        }
        let mut cbind_input = gs2_header.clone().into_bytes();
        cbind_input.extend_from_slice(binding_data);
        Ok(Self {
            hash,
            plus,
            min_iterations: context.min_scram_iterations,
            client_nonce,
            password: Some(password),
            cbind_input,
            client_first,
            bare_start: gs2_header.len(),
            state: ClientState::Initial,
            server_error: None,
        })
    }

    fn send_first(&mut self) -> Result<Secret, SaslError> {
        if !matches!(self.state, ClientState::Initial) {
            return Err(SaslError::UnexpectedChallenge);
        }
        self.state = ClientState::SentFirst;
        Ok(Secret::from(self.client_first.as_str()))
    }

    /// Records a server's `e=` report and returns it as an error.
    fn server_failed(&mut self, value: &str) -> SaslError {
        let value: String = value.chars().map(|c| if c.is_control() { '\u{FFFD}' } else { c }).collect();
        self.server_error = Some(value.clone());
        SaslError::ServerError(value)
    }

    /// Answers server-first with client-final (RFC 5802 §3, §5.1).
    fn handle_server_first(&mut self, challenge: &[u8]) -> Result<Secret, SaslError> {
        let message = challenge_text(challenge)?;
        if let Some(error) = message.strip_prefix("e=") {
            return Err(self.server_failed(error));
        }
        let first = parse_server_first(message, &self.client_nonce)?;
        if first.iterations < self.min_iterations {
            return Err(SaslError::IterationsTooLow(first.iterations));
        }
        let password = self.password.take().ok_or(SaslError::UnexpectedChallenge)?;
        let password = password.expose_str().ok_or(SaslError::InvalidCredential("password is not UTF-8"))?;
        let salted = salted_password(self.hash, password, &first.salt, first.iterations)?;
        let keys = key_schedule(self.hash, salted.expose()).ok_or(SaslError::InvalidCredential(CRYPTO_FAILED))?;
        let without_proof = format!("c={},r={}", STANDARD.encode(&self.cbind_input), first.nonce);
        let bare = self.client_first.get(self.bare_start..).unwrap_or_default();
        let auth_message = format!("{bare},{message},{without_proof}");
        let signature = hmac(self.hash, keys.stored_key.expose(), auth_message.as_bytes())
            .ok_or(SaslError::InvalidCredential(CRYPTO_FAILED))?;
        let proof = xor(keys.client_key.expose(), signature.expose());
        let server_signature = hmac(self.hash, keys.server_key.expose(), auth_message.as_bytes())
            .ok_or(SaslError::InvalidCredential(CRYPTO_FAILED))?;
        self.state = ClientState::SentFinal { server_signature };
        Ok(Secret::from(format!("{without_proof},p={}", STANDARD.encode(&*proof))))
    }

    /// Checks server-final (RFC 5802 §5.1): `e=` is surfaced, `v=` must match in constant time.
    fn handle_server_final(&mut self, message: &[u8]) -> Result<(), SaslError> {
        let ClientState::SentFinal { server_signature } = core::mem::replace(&mut self.state, ClientState::Failed)
        else {
            return Err(SaslError::UnexpectedChallenge);
        };
        let message = challenge_text(message)?;
        let mut fields = message.split(',');
        let first = fields.next().unwrap_or_default();
        if let Some(error) = first.strip_prefix("e=") {
            return Err(self.server_failed(error));
        }
        let verifier = first.strip_prefix("v=").ok_or(SaslError::MalformedChallenge("server-final lacks v= and e="))?;
        if !fields.all(is_extension) {
            return Err(SaslError::MalformedChallenge("malformed extension in server-final"));
        }
        let verifier = decode_base64(verifier.as_bytes())
            .map_err(|_| SaslError::MalformedChallenge("server signature is not base64"))?;
        if !ct_eq(&verifier, server_signature.expose()) {
            return Err(SaslError::ServerNotVerified("wrong SCRAM server signature"));
        }
        self.state = ClientState::Verified;
        Ok(())
    }
}

/// A server message as text, bounded.
fn challenge_text(challenge: &[u8]) -> Result<&str, SaslError> {
    if challenge.len() > MAX_MESSAGE {
        return Err(SaslError::MalformedChallenge("SCRAM message too long"));
    }
    core::str::from_utf8(challenge).map_err(|_| SaslError::MalformedChallenge("SCRAM message is not UTF-8"))
}

/// The parts of server-first a client uses.
#[derive(Debug)]
struct ServerFirst<'a> {
    nonce: &'a str,
    salt: Zeroizing<Vec<u8>>,
    iterations: u32,
}

/// `server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions]`
/// (RFC 5802 §7), read field by field in that order (B26).
fn parse_server_first<'a>(message: &'a str, client_nonce: &str) -> Result<ServerFirst<'a>, SaslError> {
    let mut fields = message.split(',');
    let first = fields.next().unwrap_or_default();
    if first.starts_with("m=") {
        return Err(SaslError::MalformedChallenge("unsupported mandatory extension (m=)"));
    }
    let nonce = first.strip_prefix("r=").ok_or(SaslError::MalformedChallenge("server-first lacks r="))?;
    if !is_printable(nonce) {
        return Err(SaslError::MalformedChallenge("nonce is not printable ASCII"));
    }
    if !nonce.starts_with(client_nonce) || nonce.len() <= client_nonce.len() {
        return Err(SaslError::MalformedChallenge("server nonce does not extend the client nonce"));
    }
    let salt = fields
        .next()
        .and_then(|f| f.strip_prefix("s="))
        .ok_or(SaslError::MalformedChallenge("server-first lacks s="))?;
    let salt =
        decode_base64(salt.as_bytes()).map_err(|_| SaslError::MalformedChallenge("salt is not strict base64"))?;
    if salt.is_empty() {
        return Err(SaslError::MalformedChallenge("empty salt"));
    }
    let iterations = fields
        .next()
        .and_then(|f| f.strip_prefix("i="))
        .ok_or(SaslError::MalformedChallenge("server-first lacks i="))?;
    let iterations = parse_iterations(iterations)
        .ok_or(SaslError::MalformedChallenge("iteration count is not a positive 32-bit number"))?;
    if iterations > MAX_ITERATIONS {
        return Err(SaslError::MalformedChallenge("iteration count above the client's limit of 1000000"));
    }
    if !fields.all(is_extension) {
        return Err(SaslError::MalformedChallenge("malformed extension in server-first"));
    }
    Ok(ServerFirst { nonce, salt, iterations })
}

impl ClientMechanism for ScramClient {
    fn mechanism(&self) -> Mechanism {
        mechanism_of(self.hash, self.plus)
    }

    fn initial_response(&mut self) -> Result<Option<Secret>, SaslError> {
        self.send_first().map(Some)
    }

    /// An empty challenge before anything was sent asks for client-first; then server-first
    /// gets client-final, and server-final (`v=`) gets the empty response once verified.
    fn step(&mut self, challenge: &[u8]) -> Result<Secret, SaslError> {
        let result = match self.state {
            ClientState::Initial if challenge.is_empty() => self.send_first(),
            ClientState::SentFirst => self.handle_server_first(challenge),
            ClientState::SentFinal { .. } => self.handle_server_final(challenge).map(|()| Secret::default()),
            ClientState::Initial | ClientState::Verified | ClientState::Failed => Err(SaslError::UnexpectedChallenge),
        };
        if result.is_err() {
            self.state = ClientState::Failed;
        }
        result
    }

    /// Succeeds only once the server signature was verified, either from a server-final
    /// challenge or from `additional` (RFC 5802 §5.1: the client MUST verify it).
    fn finish(&mut self, additional: Option<&[u8]>) -> Result<(), SaslError> {
        match (&self.state, additional) {
            (ClientState::Verified, _) => Ok(()),
            (ClientState::SentFinal { .. }, Some(data)) if !data.is_empty() => self.handle_server_final(data),
            _ => {
                self.state = ClientState::Failed;
                Err(SaslError::ServerNotVerified("success without a verified SCRAM server signature"))
            }
        }
    }

    fn server_error(&self) -> Option<&str> {
        self.server_error.as_deref()
    }
}

// ---------------------------------------------------------------------------------------------
// Server.
// ---------------------------------------------------------------------------------------------

pub(super) fn server(
    mechanism: &Mechanism,
    context: &ServerContext,
    rng: &mut dyn Random,
) -> Result<Box<dyn ServerMechanism>, SaslError> {
    let (hash, plus) = variant(mechanism)?;
    let server_nonce = nonce(rng, NONCE_LEN);
    let mut salt = vec![0u8; SALT_LEN];
    rng.fill(&mut salt);
    Ok(Box::new(ScramServer::new(hash, plus, context, server_nonce, salt)))
}

/// What the server keeps from client-first.
#[derive(Debug)]
struct ClientFirst {
    authcid: String,
    authzid: Option<String>,
    /// The client's nonce.
    nonce: String,
    /// `client-first-message-bare`, verbatim.
    bare: String,
    /// What `c=` must decode to: the gs2-header, then the channel binding data for `p=`.
    cbind_input: Vec<u8>,
}

#[derive(Debug)]
enum ServerState {
    Start,
    WaitingFirst,
    Lookup(ClientFirst),
    WaitingFinal { first: ClientFirst, keys: ScramKeys, server_first: String },
    Authorizing { identity: Identity, server_final: Vec<u8> },
    Done,
}

/// SCRAM server: client-first, credential lookup, server-first, client-final, authorization.
#[derive(Debug)]
struct ScramServer {
    hash: ScramHash,
    plus: bool,
    channel_binding: Option<ChannelBinding>,
    offers_plus: bool,
    iterations: u32,
    server_nonce: String,
    /// Salt for a password answer.
    salt: Vec<u8>,
    state: ServerState,
}

/// A client message as text, bounded.
fn response_text(response: &[u8]) -> Result<&str, AuthFailure> {
    if response.len() > MAX_MESSAGE {
        return Err(AuthFailure::Malformed("SCRAM message too long"));
    }
    core::str::from_utf8(response).map_err(|_| AuthFailure::Malformed("SCRAM message is not UTF-8"))
}

impl ScramServer {
    /// A server with a given nonce and salt (random in [`server`], fixed in known-answer tests).
    fn new(hash: ScramHash, plus: bool, context: &ServerContext, server_nonce: String, salt: Vec<u8>) -> Self {
        Self {
            hash,
            plus,
            channel_binding: context.channel_binding.clone(),
            offers_plus: context.offers_plus,
            iterations: context.scram_iterations,
            server_nonce,
            salt,
            state: ServerState::Start,
        }
    }

    /// The channel binding data that goes with `flag`, or why the flag is refused (RFC 5802 §6).
    fn binding_for(&self, flag: &str) -> Result<&[u8], AuthFailure> {
        match flag {
            // `n` on a -PLUS mechanism, or `y` when we offer -PLUS: a downgrade.
            "n" if !self.plus => Ok(&[]),
            "y" if !self.plus && !self.offers_plus => Ok(&[]),
            "n" | "y" => Err(AuthFailure::ChannelBinding),
            _ => {
                let name = flag.strip_prefix("p=").ok_or(AuthFailure::Malformed("bad gs2-cbind-flag"))?;
                if !self.plus {
                    return Err(AuthFailure::ChannelBinding);
                }
                let binding = self
                    .channel_binding
                    .as_ref()
                    .ok_or(AuthFailure::Unavailable("-PLUS without channel binding data"))?;
                if ChannelBindingType::parse(name) != Some(binding.kind) {
                    return Err(AuthFailure::ChannelBinding);
                }
                Ok(&binding.data)
            }
        }
    }

    /// `client-first-message = gs2-header client-first-message-bare` (RFC 5802 §7).
    fn parse_client_first(&self, message: &[u8]) -> Result<ClientFirst, AuthFailure> {
        if self.plus && self.channel_binding.is_none() {
            return Err(AuthFailure::Unavailable("-PLUS without channel binding data"));
        }
        let message = response_text(message)?;
        let mut parts = message.splitn(3, ',');
        let (Some(flag), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(AuthFailure::Malformed("client-first lacks the GS2 header"));
        };
        let gs2_header = message.get(..flag.len() + authzid.len() + 2).unwrap_or_default();
        let binding_data = self.binding_for(flag)?;
        let authzid = match authzid {
            "" => None,
            field => {
                let name = field.strip_prefix("a=").ok_or(AuthFailure::Malformed("bad authzid in GS2 header"))?;
                let name = unescape_saslname(name).ok_or(AuthFailure::Malformed("bad saslname in authzid"))?;
                if !identity_is_clean(name.as_bytes()) {
                    return Err(AuthFailure::Malformed("CR or LF in the authzid"));
                }
                Some(name)
            }
        };
        let mut fields = bare.split(',');
        let first = fields.next().unwrap_or_default();
        if first.starts_with("m=") {
            return Err(AuthFailure::Malformed("unsupported mandatory extension (m=)"));
        }
        let username = first.strip_prefix("n=").ok_or(AuthFailure::Malformed("client-first lacks n="))?;
        let username = unescape_saslname(username).ok_or(AuthFailure::Malformed("bad saslname in user name"))?;
        if !identity_is_clean(username.as_bytes()) {
            return Err(AuthFailure::Malformed("CR or LF in the user name"));
        }
        let authcid = saslprep(&username).map_err(|_| AuthFailure::Malformed("user name fails SASLprep"))?;
        if authcid.is_empty() {
            return Err(AuthFailure::Malformed("empty user name"));
        }
        let nonce =
            fields.next().and_then(|f| f.strip_prefix("r=")).ok_or(AuthFailure::Malformed("client-first lacks r="))?;
        if !is_printable(nonce) {
            return Err(AuthFailure::Malformed("nonce is not printable ASCII"));
        }
        if !fields.all(is_extension) {
            return Err(AuthFailure::Malformed("malformed extension in client-first"));
        }
        let mut cbind_input = gs2_header.as_bytes().to_vec();
        cbind_input.extend_from_slice(binding_data);
        Ok(ClientFirst {
            authcid: authcid.into_owned(),
            authzid,
            nonce: nonce.to_string(),
            bare: bare.to_string(),
            cbind_input,
        })
    }

    fn handle_first(&mut self, message: &[u8]) -> ServerStep {
        match self.parse_client_first(message) {
            Ok(first) => {
                let request = CredentialRequest::ScramCredentials { authcid: first.authcid.clone(), hash: self.hash };
                self.state = ServerState::Lookup(first);
                ServerStep::Ask(request)
            }
            Err(failure) => ServerStep::Failure(failure),
        }
    }

    /// The keys to check the client against, from the application's answer.
    fn keys_from(&self, answer: CredentialAnswer) -> Result<ScramKeys, AuthFailure> {
        match answer {
            CredentialAnswer::ScramKeys(keys) => {
                let len = output_len(self.hash);
                if keys.iterations == 0
                    || keys.salt.is_empty()
                    || keys.stored_key.len() != len
                    || keys.server_key.len() != len
                {
                    return Err(AuthFailure::Misuse("stored SCRAM keys do not fit the hash"));
                }
                Ok(keys)
            }
            CredentialAnswer::Password(password) => {
                let password = password.expose_str().ok_or(AuthFailure::Misuse("stored password is not UTF-8"))?;
                ScramKeys::derive(self.hash, password, &self.salt, self.iterations)
                    .map_err(|_| AuthFailure::Misuse("cannot derive SCRAM keys (SASLprep, salt or iterations)"))
            }
            other => Err(deny(other)),
        }
    }

    /// Checks client-final and builds server-final (RFC 5802 §3, §5.1).
    fn handle_final(
        &mut self,
        first: ClientFirst,
        keys: &ScramKeys,
        server_first: &str,
        response: &[u8],
    ) -> Result<ServerStep, AuthFailure> {
        let message = response_text(response)?;
        let (without_proof, proof) = message.rsplit_once(',').ok_or(AuthFailure::Malformed("client-final lacks p="))?;
        let proof = proof.strip_prefix("p=").ok_or(AuthFailure::Malformed("client-final must end with p="))?;
        let mut fields = without_proof.split(',');
        let cbind =
            fields.next().and_then(|f| f.strip_prefix("c=")).ok_or(AuthFailure::Malformed("client-final lacks c="))?;
        let nonce =
            fields.next().and_then(|f| f.strip_prefix("r=")).ok_or(AuthFailure::Malformed("client-final lacks r="))?;
        if !fields.all(is_extension) {
            return Err(AuthFailure::Malformed("malformed extension in client-final"));
        }
        let cbind = decode_base64(cbind.as_bytes()).map_err(|_| AuthFailure::Malformed("c= is not base64"))?;
        if !ct_eq(&cbind, &first.cbind_input) {
            return Err(AuthFailure::ChannelBinding);
        }
        if nonce.strip_prefix(first.nonce.as_str()) != Some(self.server_nonce.as_str()) {
            return Err(AuthFailure::Malformed("nonce in client-final does not match"));
        }
        let proof = decode_base64(proof.as_bytes()).map_err(|_| AuthFailure::Malformed("proof is not base64"))?;
        if proof.len() != output_len(self.hash) {
            return Err(AuthFailure::Malformed("proof has the wrong length"));
        }
        let auth_message = format!("{},{server_first},{without_proof}", first.bare);
        let crypto = AuthFailure::Misuse(CRYPTO_FAILED);
        let client_signature =
            hmac(self.hash, keys.stored_key.expose(), auth_message.as_bytes()).ok_or(crypto.clone())?;
        let client_key = xor(&proof, client_signature.expose());
        if !ct_eq(h(self.hash, &client_key).expose(), keys.stored_key.expose()) {
            return Err(AuthFailure::Credentials);
        }
        let server_signature = hmac(self.hash, keys.server_key.expose(), auth_message.as_bytes()).ok_or(crypto)?;
        let server_final = format!("v={}", STANDARD.encode(server_signature.expose())).into_bytes();
        match first.authzid {
            Some(authzid) if authzid != first.authcid => {
                let request = CredentialRequest::Authorize { authcid: first.authcid.clone(), authzid: authzid.clone() };
                let identity = Identity { authcid: first.authcid, authzid: Some(authzid) };
                self.state = ServerState::Authorizing { identity, server_final };
                Ok(ServerStep::Ask(request))
            }
            _ => Ok(ServerStep::Success {
                identity: Identity { authcid: first.authcid, authzid: None },
                additional: Some(server_final),
            }),
        }
    }
}

impl ServerMechanism for ScramServer {
    fn mechanism(&self) -> Mechanism {
        mechanism_of(self.hash, self.plus)
    }

    fn start(&mut self, initial_response: Option<&[u8]>) -> ServerStep {
        if !matches!(self.state, ServerState::Start) {
            self.state = ServerState::Done;
            return ServerStep::Failure(AuthFailure::Misuse("start called twice"));
        }
        self.state = ServerState::Done;
        match initial_response {
            Some(message) => self.handle_first(message),
            None => {
                self.state = ServerState::WaitingFirst;
                ServerStep::Challenge(Vec::new())
            }
        }
    }

    fn step(&mut self, response: &[u8]) -> ServerStep {
        match core::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::WaitingFirst => self.handle_first(response),
            ServerState::WaitingFinal { first, keys, server_first } => {
                self.handle_final(first, &keys, &server_first, response).unwrap_or_else(ServerStep::Failure)
            }
            _ => ServerStep::Failure(AuthFailure::Misuse("no response expected")),
        }
    }

    fn answer(&mut self, answer: CredentialAnswer) -> ServerStep {
        match core::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::Lookup(first) => match self.keys_from(answer) {
                Ok(keys) => {
                    let server_first = format!(
                        "r={}{},s={},i={}",
                        first.nonce,
                        self.server_nonce,
                        STANDARD.encode(&keys.salt),
                        keys.iterations
                    );
                    let challenge = server_first.clone().into_bytes();
                    self.state = ServerState::WaitingFinal { first, keys, server_first };
                    ServerStep::Challenge(challenge)
                }
                Err(failure) => ServerStep::Failure(failure),
            },
            ServerState::Authorizing { identity, server_final } => match answer {
                CredentialAnswer::Verified => ServerStep::Success { identity, additional: Some(server_final) },
                CredentialAnswer::TemporaryFailure => ServerStep::Failure(AuthFailure::Temporary),
                _ => ServerStep::Failure(AuthFailure::NotAuthorized),
            },
            _ => ServerStep::Failure(AuthFailure::Misuse("no question pending")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::{FixedRandom, client as make_client, server as make_server};
    use proptest::prelude::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    fn unbase64(text: &str) -> Vec<u8> {
        STANDARD.decode(text).unwrap()
    }

    fn client_ctx() -> ClientContext {
        ClientContext::new("smtp", "mail.example.org")
    }

    fn server_ctx() -> ServerContext {
        ServerContext::new("smtp", "mail.example.org")
    }

    fn binding(kind: ChannelBindingType, data: &[u8]) -> ChannelBinding {
        ChannelBinding { kind, data: data.to_vec() }
    }

    /// A complete exchange from RFC 5802, RFC 7677 or a recorded Dovecot session.
    struct Vector {
        hash: ScramHash,
        user: &'static str,
        password: &'static str,
        client_nonce: &'static str,
        salt: &'static str,
        client_first: &'static str,
        server_first: &'static str,
        client_final: &'static str,
        server_final: &'static str,
    }

    impl Vector {
        fn server_nonce(&self) -> String {
            let nonce = self.server_first.strip_prefix("r=").unwrap().split(',').next().unwrap();
            nonce.strip_prefix(self.client_nonce).unwrap().to_string()
        }

        fn client(&self) -> ScramClient {
            let creds = Credentials::password(self.user, self.password);
            ScramClient::new(self.hash, false, &creds, &client_ctx(), self.client_nonce.into()).unwrap()
        }

        fn server(&self) -> ScramServer {
            ScramServer::new(self.hash, false, &server_ctx(), self.server_nonce(), unbase64(self.salt))
        }
    }

    /// RFC 5802 §5 (vectors §6).
    const RFC5802: Vector = Vector {
        hash: ScramHash::Sha1,
        user: "user",
        password: "pencil",
        client_nonce: "fyko+d2lbbFgONRv9qkxdawL",
        salt: "QSXCR+Q6sek8bf92",
        client_first: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
        server_first: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
        client_final: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        server_final: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
    };

    /// RFC 7677 §3 (vectors §7): the server nonce holds `%`, `)` and `$`.
    const RFC7677: Vector = Vector {
        hash: ScramHash::Sha256,
        user: "user",
        password: "pencil",
        client_nonce: "rOprNGfwEbeRWgbNEkqO",
        salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
        client_first: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
        server_first: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        client_final: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        server_final: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    };

    /// Dovecot, SCRAM-SHA-1, alice / wonderland (peer transcripts).
    const DOVECOT_SHA1_ALICE: Vector = Vector {
        hash: ScramHash::Sha1,
        user: "alice",
        password: "wonderland",
        client_nonce: "7l0lSRkKhRuknITk8npVGeM8",
        salt: "uPcz6iMzkdkN3FszQD3S0w==",
        client_first: "n,,n=alice,r=7l0lSRkKhRuknITk8npVGeM8",
        server_first: "r=7l0lSRkKhRuknITk8npVGeM8HH$#BcNW00C:/{:AzfY~8c2;%V|Emat.e]Gf;ccmKc#+8=]^QB1&6ZNm_6\"Z`GhC,s=uPcz6iMzkdkN3FszQD3S0w==,i=4096",
        client_final: "c=biws,r=7l0lSRkKhRuknITk8npVGeM8HH$#BcNW00C:/{:AzfY~8c2;%V|Emat.e]Gf;ccmKc#+8=]^QB1&6ZNm_6\"Z`GhC,p=CigkIZCnm66CSvg2MWeAAcp1AbE=",
        server_final: "v=fTe9QBP/QN6HEq2wnOKu8fPDIKg=",
    };

    /// Dovecot, SCRAM-SHA-1, `odd,user=name` / `pässwörd€`.
    const DOVECOT_SHA1_ODD: Vector = Vector {
        hash: ScramHash::Sha1,
        user: "odd,user=name",
        password: "pässwörd€",
        client_nonce: "Oig7OcjbPJeEvNmUqKpw654j",
        salt: "+Me7UgRpVCEajXoNX7pbAg==",
        client_first: "n,,n=odd=2Cuser=3Dname,r=Oig7OcjbPJeEvNmUqKpw654j",
        server_first: "r=Oig7OcjbPJeEvNmUqKpw654jCwaf.%Zp(M.t<TXdb6ue.-o<kl-SbCV^RBX^4&{jeJ2TGH/K:0{I$CoQ<PK^j/GA,s=+Me7UgRpVCEajXoNX7pbAg==,i=4096",
        client_final: "c=biws,r=Oig7OcjbPJeEvNmUqKpw654jCwaf.%Zp(M.t<TXdb6ue.-o<kl-SbCV^RBX^4&{jeJ2TGH/K:0{I$CoQ<PK^j/GA,p=GNikjIPjd82C+UuiN4ztoI/TZA8=",
        server_final: "v=gy6jqQ5s6GjweopXhaiWf75BuFg=",
    };

    /// Dovecot, SCRAM-SHA-256, alice / wonderland.
    const DOVECOT_SHA256_ALICE: Vector = Vector {
        hash: ScramHash::Sha256,
        user: "alice",
        password: "wonderland",
        client_nonce: "BESdrJWp9GcffbQ6QiOiRR8G",
        salt: "1Fr6tUD5r10wZGLy+Rvc7w==",
        client_first: "n,,n=alice,r=BESdrJWp9GcffbQ6QiOiRR8G",
        server_first: "r=BESdrJWp9GcffbQ6QiOiRR8G0sF$Nyt:\\I(Q%Ga78&.S?-YK@\\sj(6Q*kD/~;lcR<K2ad$N!V*:6wNqbO*UocBF<,s=1Fr6tUD5r10wZGLy+Rvc7w==,i=4096",
        client_final: "c=biws,r=BESdrJWp9GcffbQ6QiOiRR8G0sF$Nyt:\\I(Q%Ga78&.S?-YK@\\sj(6Q*kD/~;lcR<K2ad$N!V*:6wNqbO*UocBF<,p=IsEbMgiFl20N0ImiGSZkwzLg8+bvWfute4yaVYKXZhg=",
        server_final: "v=c9pKpwPiXSxi/jNixBLuS2IQRUaUawGx5EYpwgAPvVM=",
    };

    /// Dovecot, SCRAM-SHA-256, `odd,user=name` / `pässwörd€`.
    const DOVECOT_SHA256_ODD: Vector = Vector {
        hash: ScramHash::Sha256,
        user: "odd,user=name",
        password: "pässwörd€",
        client_nonce: "MQSAGb5cUfpB5h1DJAyxdRkG",
        salt: "NHNWhLjvDX6kHwE4icAUdQ==",
        client_first: "n,,n=odd=2Cuser=3Dname,r=MQSAGb5cUfpB5h1DJAyxdRkG",
        server_first: "r=MQSAGb5cUfpB5h1DJAyxdRkG]Q.0>.JqVos$f{_.$;LT!eVW/\\8~!LpV]Q3#V*=ESE\\.WxYKe$Rh._}a'vx6PmbZ,s=NHNWhLjvDX6kHwE4icAUdQ==,i=4096",
        client_final: "c=biws,r=MQSAGb5cUfpB5h1DJAyxdRkG]Q.0>.JqVos$f{_.$;LT!eVW/\\8~!LpV]Q3#V*=ESE\\.WxYKe$Rh._}a'vx6PmbZ,p=BB3PHY+pn7bBJ6uunQ6wk2YqDdeFlYvnPNJABCDiKZY=",
        server_final: "v=erMNKdeNCDuX5dTzuxqFABiQbT0mIMWCph4TkBc78L4=",
    };

    const VECTORS: [&Vector; 6] =
        [&RFC5802, &RFC7677, &DOVECOT_SHA1_ALICE, &DOVECOT_SHA1_ODD, &DOVECOT_SHA256_ALICE, &DOVECOT_SHA256_ODD];

    fn client_known_answer(v: &Vector) {
        let mut client = v.client();
        assert_eq!(client.initial_response().unwrap().unwrap().expose(), v.client_first.as_bytes());
        assert_eq!(client.step(v.server_first.as_bytes()).unwrap().expose(), v.client_final.as_bytes());
        assert!(client.step(v.server_final.as_bytes()).unwrap().is_empty());
        client.finish(None).unwrap();
        assert_eq!(client.server_error(), None);
        // The same, with the server-final carried as additional data on success.
        let mut client = v.client();
        client.initial_response().unwrap();
        client.step(v.server_first.as_bytes()).unwrap();
        client.finish(Some(v.server_final.as_bytes())).unwrap();
        // And with no initial response: the empty challenge asks for client-first.
        let mut client = v.client();
        assert_eq!(client.step(b"").unwrap().expose(), v.client_first.as_bytes());
    }

    fn server_known_answer(v: &Vector, answer: CredentialAnswer) {
        let mut server = v.server();
        assert_eq!(
            server.start(Some(v.client_first.as_bytes())),
            ServerStep::Ask(CredentialRequest::ScramCredentials { authcid: v.user.into(), hash: v.hash })
        );
        assert_eq!(server.answer(answer), ServerStep::Challenge(v.server_first.as_bytes().to_vec()));
        assert_eq!(
            server.step(v.client_final.as_bytes()),
            ServerStep::Success {
                identity: Identity { authcid: v.user.into(), authzid: None },
                additional: Some(v.server_final.as_bytes().to_vec()),
            }
        );
        assert_eq!(server.step(b""), ServerStep::Failure(AuthFailure::Misuse("no response expected")));
    }

    #[test]
    fn rfc5802_rfc7677_and_dovecot_client_known_answers() {
        for v in VECTORS {
            client_known_answer(v);
        }
    }

    #[test]
    fn rfc5802_rfc7677_and_dovecot_server_known_answers_with_password() {
        for v in VECTORS {
            server_known_answer(v, CredentialAnswer::Password(Secret::from(v.password)));
        }
    }

    #[test]
    fn rfc5802_rfc7677_and_dovecot_server_known_answers_with_stored_keys() {
        for v in VECTORS {
            let keys = ScramKeys::derive(v.hash, v.password, &unbase64(v.salt), 4096).unwrap();
            server_known_answer(v, CredentialAnswer::ScramKeys(keys));
        }
    }

    /// The SaltedPassword, ClientKey, StoredKey and ServerKey of RFC 5802 §5 and RFC 7677 §3.
    #[test]
    fn rfc5802_rfc7677_intermediates() {
        let cases = [
            (
                &RFC5802,
                "1d96ee3a529b5a5f9e47c01f229a2cb8a6e15f7d",
                "e234c47bf6c36696dd6d852b99aaa2ba26555728",
                "e9d94660c39d65c38fbad91c358f14da0eef2bd6",
                "0fe09258b3ac852ba502cc62ba903eaacdbf7d31",
            ),
            (
                &RFC7677,
                "c4a49510323ab4f952cac1fa99441939e78ea74d6be81ddf7096e87513dc615d",
                "a60fc923d67e8644a92d16b96eda5ef4656b0c725c484374be25535576996e8b",
                "586e5df283e6dceb5c3e791d8b8528ec191e664045ce971792e2e6b5bb13e2a6",
                "c1f3cbc1c13a9d35a14c0990eed97629ea225863e566a4314ab99f3f00e5d9d5",
            ),
        ];
        for (v, salted, client_key, stored_key, server_key) in cases {
            let salt = unbase64(v.salt);
            let salted_password = salted_password(v.hash, "pencil", &salt, 4096).unwrap();
            assert_eq!(salted_password.expose(), hex(salted));
            let keys = key_schedule(v.hash, salted_password.expose()).unwrap();
            assert_eq!(keys.client_key.expose(), hex(client_key));
            assert_eq!(keys.stored_key.expose(), hex(stored_key));
            assert_eq!(keys.server_key.expose(), hex(server_key));
            let stored = ScramKeys::derive(v.hash, "pencil", &salt, 4096).unwrap();
            assert_eq!(stored.stored_key.expose(), hex(stored_key));
            assert_eq!(stored.server_key.expose(), hex(server_key));
            assert_eq!((stored.salt, stored.iterations), (salt, 4096));
        }
        // The AuthMessage of RFC 5802 §5: the client signature over it gives the RFC's proof.
        let auth_message = "n=user,r=fyko+d2lbbFgONRv9qkxdawL,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,\
                            s=QSXCR+Q6sek8bf92,i=4096,c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j";
        let signature =
            hmac(ScramHash::Sha1, &hex("e9d94660c39d65c38fbad91c358f14da0eef2bd6"), auth_message.as_bytes());
        let proof = xor(&hex("e234c47bf6c36696dd6d852b99aaa2ba26555728"), signature.unwrap().expose());
        assert_eq!(STANDARD.encode(&*proof), "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
    }

    #[test]
    fn derive_refuses_bad_parameters() {
        assert_eq!(ScramKeys::derive(ScramHash::Sha1, "pencil", b"salt", 0), Err(SaslError::IterationsTooLow(0)));
        assert!(matches!(ScramKeys::derive(ScramHash::Sha1, "pencil", b"", 1), Err(SaslError::InvalidCredential(_))));
        assert!(matches!(ScramKeys::derive(ScramHash::Sha256, "a\u{7}b", b"salt", 1), Err(SaslError::Saslprep(_))));
        // SASLprep maps U+00A0 to a space and drops U+00AD.
        assert_eq!(
            ScramKeys::derive(ScramHash::Sha256, "pen\u{00A0}cil\u{00AD}", b"salt", 2).unwrap(),
            ScramKeys::derive(ScramHash::Sha256, "pen cil", b"salt", 2).unwrap()
        );
    }

    /// Dovecot refused this client-final (wrong secret): our client builds the same bytes and our
    /// server refuses them too.
    #[test]
    fn wrong_password_fails_dovecot_transcript() {
        let v = Vector {
            password: "wrong-secret",
            client_nonce: "L4UXBfGVDZm8moucnzh7pUYb",
            client_first: "n,,n=alice,r=L4UXBfGVDZm8moucnzh7pUYb",
            server_first: "r=L4UXBfGVDZm8moucnzh7pUYb}eU622x?;bLo7<Xi^Jp0o=\\eGPXW=&RtxErb_7fUSD9U5H-[fBr2{NOI[#*PNfZ$,s=yrgegQxQqlNf/ZxXLH6x0w==,i=4096",
            client_final: "c=biws,r=L4UXBfGVDZm8moucnzh7pUYb}eU622x?;bLo7<Xi^Jp0o=\\eGPXW=&RtxErb_7fUSD9U5H-[fBr2{NOI[#*PNfZ$,p=sivgPxnOzvL0ccwT6Yb+qNm3aAxjp0XLw0uNZRHvmEg=",
            salt: "yrgegQxQqlNf/ZxXLH6x0w==",
            ..DOVECOT_SHA256_ALICE
        };
        let mut client = v.client();
        client.initial_response().unwrap();
        assert_eq!(client.step(v.server_first.as_bytes()).unwrap().expose(), v.client_final.as_bytes());
        let mut server = v.server();
        assert!(matches!(server.start(Some(v.client_first.as_bytes())), ServerStep::Ask(_)));
        let step = server.answer(CredentialAnswer::Password(Secret::from("wonderland")));
        assert_eq!(step, ServerStep::Challenge(v.server_first.as_bytes().to_vec()));
        assert_eq!(server.step(v.client_final.as_bytes()), ServerStep::Failure(AuthFailure::Credentials));
    }

    #[test]
    fn wrong_password_fails_both_hashes() {
        for mechanism in [Mechanism::ScramSha1, Mechanism::ScramSha256] {
            let (client, server) = exchange(
                &mechanism,
                &Credentials::password("user", "pencil!"),
                &client_ctx(),
                &server_ctx(),
                CredentialAnswer::Password(Secret::from("pencil")),
            );
            assert_eq!(server, ServerStep::Failure(AuthFailure::Credentials));
            assert!(client.is_err());
        }
    }

    #[test]
    fn unknown_user_and_temporary_failure() {
        for (answer, failure) in [
            (CredentialAnswer::UnknownUser, AuthFailure::Credentials),
            (CredentialAnswer::Rejected, AuthFailure::Credentials),
            (CredentialAnswer::TemporaryFailure, AuthFailure::Temporary),
            (CredentialAnswer::Verified, AuthFailure::Misuse("wrong kind of answer")),
        ] {
            let mut server = RFC5802.server();
            assert!(matches!(server.start(Some(RFC5802.client_first.as_bytes())), ServerStep::Ask(_)));
            assert_eq!(server.answer(answer), ServerStep::Failure(failure));
        }
    }

    #[test]
    fn stored_keys_of_the_wrong_hash_are_misuse() {
        let keys = ScramKeys::derive(ScramHash::Sha256, "pencil", b"salt", 2).unwrap();
        let mut server = RFC5802.server();
        server.start(Some(RFC5802.client_first.as_bytes()));
        assert!(matches!(
            server.answer(CredentialAnswer::ScramKeys(keys)),
            ServerStep::Failure(AuthFailure::Misuse(_))
        ));
    }

    #[test]
    fn out_of_order_calls() {
        let mut server = RFC5802.server();
        assert_eq!(
            server.answer(CredentialAnswer::Verified),
            ServerStep::Failure(AuthFailure::Misuse("no question pending"))
        );
        let mut server = RFC5802.server();
        assert_eq!(server.start(None), ServerStep::Challenge(Vec::new()));
        assert!(matches!(server.start(None), ServerStep::Failure(AuthFailure::Misuse(_))));
        let mut server = RFC5802.server();
        assert_eq!(server.start(None), ServerStep::Challenge(Vec::new()));
        assert!(matches!(server.step(RFC5802.client_first.as_bytes()), ServerStep::Ask(_)));
        assert!(matches!(server.step(b"again"), ServerStep::Failure(AuthFailure::Misuse(_))));

        let mut client = RFC5802.client();
        assert_eq!(client.step(b"not empty"), Err(SaslError::UnexpectedChallenge));
        let mut client = RFC5802.client();
        client.initial_response().unwrap();
        assert_eq!(client.initial_response(), Err(SaslError::UnexpectedChallenge));
    }

    /// Runs our client against our server; returns the client's verdict and the server's last step.
    fn exchange(
        mechanism: &Mechanism,
        credentials: &Credentials,
        client_context: &ClientContext,
        server_context: &ServerContext,
        answer: CredentialAnswer,
    ) -> (Result<(), SaslError>, ServerStep) {
        let mut client = make_client(mechanism, credentials, client_context, &mut FixedRandom::new(1)).unwrap();
        let mut server = make_server(mechanism, server_context, &mut FixedRandom::new(2)).unwrap();
        let first = client.initial_response().unwrap().unwrap();
        let step = server.start(Some(first.expose()));
        let ServerStep::Ask(CredentialRequest::ScramCredentials { .. }) = step else {
            return (Err(SaslError::UnexpectedChallenge), step);
        };
        let ServerStep::Challenge(server_first) = server.answer(answer) else { panic!("no server-first") };
        let client_final = match client.step(&server_first) {
            Ok(message) => message,
            Err(err) => return (Err(err), ServerStep::Challenge(server_first)),
        };
        let mut step = server.step(client_final.expose());
        if let ServerStep::Ask(CredentialRequest::Authorize { .. }) = step {
            step = server.answer(CredentialAnswer::Verified);
        }
        let verdict = match &step {
            ServerStep::Success { additional: Some(server_final), .. } => {
                client.step(server_final).map(|empty| assert!(empty.is_empty())).and_then(|()| client.finish(None))
            }
            _ => Err(SaslError::UnexpectedChallenge),
        };
        (verdict, step)
    }

    // -- channel binding (vectors §7 "SCRAM channel binding") --------------------------------

    fn plus_client(mechanism: Mechanism, binding: Option<ChannelBinding>, offers_plus: bool) -> ScramClient {
        let mut ctx = client_ctx();
        ctx.channel_binding = binding;
        ctx.server_offers_plus = offers_plus;
        let (hash, plus) = variant(&mechanism).unwrap();
        ScramClient::new(hash, plus, &Credentials::password("user", "pencil"), &ctx, RFC5802.client_nonce.into())
            .unwrap()
    }

    fn client_final_of(mut client: ScramClient) -> String {
        let first = client.initial_response().unwrap().unwrap();
        assert!(first.expose().ends_with(b"n=user,r=fyko+d2lbbFgONRv9qkxdawL"));
        let client_final = client.step(RFC5802.server_first.as_bytes()).unwrap();
        String::from_utf8(client_final.expose().to_vec()).unwrap()
    }

    #[test]
    fn channel_binding_c_biws_without_binding() {
        let client = plus_client(Mechanism::ScramSha1, None, true);
        assert!(client_final_of(client).starts_with("c=biws,r="));
        // Binding data present and -PLUS offered, but the plain mechanism chosen: `n`.
        let exporter = binding(ChannelBindingType::TlsExporter, &[0; 32]);
        let client = plus_client(Mechanism::ScramSha1, Some(exporter), true);
        assert!(client.client_first.starts_with("n,,"));
        assert!(client_final_of(client).starts_with("c=biws,r="));
    }

    #[test]
    fn channel_binding_c_esws_when_server_lacks_plus() {
        let exporter = binding(ChannelBindingType::TlsExporter, &[0; 32]);
        let client = plus_client(Mechanism::ScramSha1, Some(exporter), false);
        assert!(client.client_first.starts_with("y,,n=user,"));
        assert!(client_final_of(client).starts_with("c=eSws,r="));
    }

    #[test]
    fn channel_binding_tls_unique_encoding() {
        let unique = binding(ChannelBindingType::TlsUnique, &(0u8..12).collect::<Vec<_>>());
        let client = plus_client(Mechanism::ScramSha1Plus, Some(unique), true);
        assert_eq!(client.mechanism(), Mechanism::ScramSha1Plus);
        assert!(client.client_first.starts_with("p=tls-unique,,n=user,"));
        assert!(client_final_of(client).starts_with("c=cD10bHMtdW5pcXVlLCwAAQIDBAUGBwgJCgs=,r="));
    }

    #[test]
    fn channel_binding_tls_exporter_encoding() {
        let exporter = binding(ChannelBindingType::TlsExporter, &[0; 32]);
        let client = plus_client(Mechanism::ScramSha256Plus, Some(exporter), false);
        assert!(client.client_first.starts_with("p=tls-exporter,,n=user,"));
        assert!(
            client_final_of(client)
                .starts_with("c=cD10bHMtZXhwb3J0ZXIsLAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,r=")
        );
        let end_point = binding(ChannelBindingType::TlsServerEndPoint, b"hash");
        let client = plus_client(Mechanism::ScramSha256Plus, Some(end_point), true);
        assert!(client.client_first.starts_with("p=tls-server-end-point,,n=user,"));
        let expected = format!("c={},r=", STANDARD.encode(b"p=tls-server-end-point,,hash"));
        assert!(client_final_of(client).starts_with(&expected));
    }

    #[test]
    fn plus_client_without_binding_data_is_refused() {
        for mechanism in [Mechanism::ScramSha1Plus, Mechanism::ScramSha256Plus] {
            let err =
                make_client(&mechanism, &Credentials::password("u", "p"), &client_ctx(), &mut FixedRandom::new(0))
                    .unwrap_err();
            assert_eq!(err, SaslError::MissingCredential("channel binding data"));
        }
    }

    fn plus_contexts(kind: ChannelBindingType, data: &[u8]) -> (ClientContext, ServerContext) {
        let mut client = client_ctx();
        client.channel_binding = Some(binding(kind, data));
        client.server_offers_plus = true;
        let mut server = server_ctx();
        server.channel_binding = Some(binding(kind, data));
        server.offers_plus = true;
        (client, server)
    }

    #[test]
    fn plus_exchange_with_authzid_succeeds_both_hashes() {
        for mechanism in [Mechanism::ScramSha1Plus, Mechanism::ScramSha256Plus] {
            let (cctx, sctx) = plus_contexts(ChannelBindingType::TlsExporter, &[7; 32]);
            let mut creds = Credentials::password("user", "pencil");
            creds.authzid = Some("ad,m=in".into());
            let (verdict, step) =
                exchange(&mechanism, &creds, &cctx, &sctx, CredentialAnswer::Password(Secret::from("pencil")));
            verdict.unwrap();
            assert!(matches!(
                step,
                ServerStep::Success { identity: Identity { ref authcid, authzid: Some(ref z) }, .. }
                    if authcid == "user" && z == "ad,m=in"
            ));
        }
    }

    #[test]
    fn plus_mismatched_binding_data_fails() {
        let (cctx, mut sctx) = plus_contexts(ChannelBindingType::TlsExporter, &[7; 32]);
        sctx.channel_binding = Some(binding(ChannelBindingType::TlsExporter, &[8; 32]));
        let creds = Credentials::password("user", "pencil");
        let (verdict, step) = exchange(
            &Mechanism::ScramSha256Plus,
            &creds,
            &cctx,
            &sctx,
            CredentialAnswer::Password(Secret::from("pencil")),
        );
        assert_eq!(step, ServerStep::Failure(AuthFailure::ChannelBinding));
        assert!(verdict.is_err());
    }

    fn server_start(mechanism: Mechanism, context: &ServerContext, message: &str) -> ServerStep {
        let (hash, plus) = variant(&mechanism).unwrap();
        let mut server = ScramServer::new(hash, plus, context, "snonce".into(), b"salt".to_vec());
        server.start(Some(message.as_bytes()))
    }

    #[test]
    fn server_channel_binding_policy() {
        let (_, plus_ctx) = plus_contexts(ChannelBindingType::TlsExporter, &[7; 32]);
        let cb = ServerStep::Failure(AuthFailure::ChannelBinding);
        // Downgrade: the client could bind but thought we do not offer -PLUS.
        assert_eq!(server_start(Mechanism::ScramSha256, &plus_ctx, "y,,n=user,r=abc"), cb);
        // No -PLUS offered: `y` is fine.
        assert!(matches!(server_start(Mechanism::ScramSha256, &server_ctx(), "y,,n=user,r=abc"), ServerStep::Ask(_)));
        // `p=` on a plain mechanism, `n` or `y` on a -PLUS one.
        assert_eq!(server_start(Mechanism::ScramSha256, &plus_ctx, "p=tls-exporter,,n=user,r=abc"), cb);
        assert_eq!(server_start(Mechanism::ScramSha256Plus, &plus_ctx, "n,,n=user,r=abc"), cb);
        assert_eq!(server_start(Mechanism::ScramSha256Plus, &plus_ctx, "y,,n=user,r=abc"), cb);
        // Another binding type than the one we have, or an unknown one.
        assert_eq!(server_start(Mechanism::ScramSha256Plus, &plus_ctx, "p=tls-unique,,n=user,r=abc"), cb);
        assert_eq!(server_start(Mechanism::ScramSha256Plus, &plus_ctx, "p=tls-foo,,n=user,r=abc"), cb);
        assert!(matches!(
            server_start(Mechanism::ScramSha256Plus, &plus_ctx, "p=tls-exporter,,n=user,r=abc"),
            ServerStep::Ask(_)
        ));
        // -PLUS on a server without binding data.
        assert_eq!(
            server_start(Mechanism::ScramSha1Plus, &server_ctx(), "p=tls-exporter,,n=user,r=abc"),
            ServerStep::Failure(AuthFailure::Unavailable("-PLUS without channel binding data"))
        );
    }

    /// c= must repeat the gs2-header exactly (and the binding data for `p=`).
    #[test]
    fn server_checks_c_against_gs2_header() {
        let keys = ScramKeys::derive(ScramHash::Sha1, "pencil", b"salt", 1).unwrap();
        for (first, cbind) in [("n,,n=user,r=abc", "y,,"), ("y,,n=user,r=abc", "n,,"), ("n,a=x,n=user,r=abc", "n,,")] {
            let mut server = ScramServer::new(ScramHash::Sha1, false, &server_ctx(), "snonce".into(), b"s".to_vec());
            assert!(matches!(server.start(Some(first.as_bytes())), ServerStep::Ask(_)));
            assert!(matches!(server.answer(CredentialAnswer::ScramKeys(keys.clone())), ServerStep::Challenge(_)));
            let client_final = format!("c={},r=abcsnonce,p={}", STANDARD.encode(cbind), STANDARD.encode([0; 20]));
            assert_eq!(server.step(client_final.as_bytes()), ServerStep::Failure(AuthFailure::ChannelBinding));
        }
    }

    // -- identities and escaping --------------------------------------------------------------

    #[test]
    fn odd_user_name_is_escaped_and_authzid_too() {
        let mut creds = Credentials::password("odd,user=name", "pässwörd€");
        creds.authzid = Some("=admin,".into());
        let client = ScramClient::new(ScramHash::Sha256, false, &creds, &client_ctx(), "abc".into()).unwrap();
        assert_eq!(client.client_first, "n,a==3Dadmin=2C,n=odd=2Cuser=3Dname,r=abc");
        let mut server = ScramServer::new(ScramHash::Sha256, false, &server_ctx(), "x".into(), b"s".to_vec());
        assert_eq!(
            server.start(Some(client.client_first.as_bytes())),
            ServerStep::Ask(CredentialRequest::ScramCredentials {
                authcid: "odd,user=name".into(),
                hash: ScramHash::Sha256
            })
        );
    }

    #[test]
    fn authzid_asks_authorization_then_refuses() {
        let mut creds = Credentials::password("user", "pencil");
        creds.authzid = Some("admin".into());
        let (hash, _) = variant(&Mechanism::ScramSha1).unwrap();
        let mut client = ScramClient::new(hash, false, &creds, &client_ctx(), "cn".into()).unwrap();
        let mut server = ScramServer::new(hash, false, &server_ctx(), "sn".into(), b"salt".to_vec());
        server.start(Some(client.initial_response().unwrap().unwrap().expose()));
        let ServerStep::Challenge(server_first) = server.answer(CredentialAnswer::Password(Secret::from("pencil")))
        else {
            panic!()
        };
        let client_final = client.step(&server_first).unwrap();
        assert_eq!(
            server.step(client_final.expose()),
            ServerStep::Ask(CredentialRequest::Authorize { authcid: "user".into(), authzid: "admin".into() })
        );
        assert_eq!(server.answer(CredentialAnswer::Rejected), ServerStep::Failure(AuthFailure::NotAuthorized));
    }

    #[test]
    fn authzid_equal_to_authcid_needs_no_authorization() {
        let mut creds = Credentials::password("user", "pencil");
        creds.authzid = Some("user".into());
        let (verdict, step) = exchange(
            &Mechanism::ScramSha256,
            &creds,
            &client_ctx(),
            &server_ctx(),
            CredentialAnswer::Password(Secret::from("pencil")),
        );
        verdict.unwrap();
        assert!(matches!(step, ServerStep::Success { identity: Identity { authzid: None, .. }, .. }));
    }

    #[test]
    fn saslname_escaping() {
        assert_eq!(escape_saslname("odd,user=name"), "odd=2Cuser=3Dname");
        assert_eq!(unescape_saslname("odd=2Cuser=3Dname").as_deref(), Some("odd,user=name"));
        for bad in ["", "=", "=2", "=2c", "=3d", "a=b", "a,b", "a\0b", "=41", "x=3"] {
            assert_eq!(unescape_saslname(bad), None, "{bad:?}");
        }
    }

    /// B17 (and malformed saslnames): every identity field, every line-break form.
    #[test]
    fn field_b17_bad_identities_in_client_first_every_field() {
        for first in [
            "n,,n=user\r,r=abc",
            "n,,n=user\0,r=abc",
            "n,a=ad\rmin,n=user,r=abc",
            "n,a=ad\0min,n=user,r=abc",
            "n,,n=us=er,r=abc",
            "n,,n=,r=abc",
            "n,,n=user\r\n,r=abc",
            "n,,n=user\n,r=abc",
            "n,,n=us\u{7}er,r=abc",
            "n,,n=\u{00AD},r=abc",
            "n,a=,n=user,r=abc",
            "n,a=ad=min,n=user,r=abc",
            "n,a=ad\r\nmin,n=user,r=abc",
            "n,a=ad\nmin,n=user,r=abc",
            "n,b=admin,n=user,r=abc",
        ] {
            assert!(
                matches!(
                    server_start(Mechanism::ScramSha1, &server_ctx(), first),
                    ServerStep::Failure(AuthFailure::Malformed(_))
                ),
                "{first:?}"
            );
        }
    }

    // -- parsing: B26, extensions, m=, e=, iterations -----------------------------------------

    #[test]
    fn field_b26_nonce_containing_s_equals() {
        let first =
            parse_server_first("r=rOprNGfwEbeRWgbNEkqOys==4,s=c2FsdA==,i=4096", "rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(first.nonce, "rOprNGfwEbeRWgbNEkqOys==4");
        assert_eq!(&first.salt[..], b"salt");
        assert_eq!(first.iterations, 4096);
        // Attributes are read in order, never searched for: an `s=`/`i=` inside the nonce, or a
        // nonce that does not extend the client's, is never taken for the real attribute.
        for (message, ok) in [
            ("r=rOprNGfwEbeRWgbNEkqOs=x;i=1,s=c2FsdA==,i=4096", true),
            ("r=rOprNGfwEbeRWgbNEkqO=,s=c2FsdA==,i=4096", true),
            ("r=XrOprNGfwEbeRWgbNEkqOys==4,s=c2FsdA==,i=4096", false),
            ("r=rOprNGfwEbeRWgbNEkqO,s=c2FsdA==,i=4096", false),
            ("s=c2FsdA==,r=rOprNGfwEbeRWgbNEkqOys==4,i=4096", false),
            ("r=rOprNGfwEbeRWgbNEkqOys==4,i=4096,s=c2FsdA==", false),
        ] {
            let parsed = parse_server_first(message, "rOprNGfwEbeRWgbNEkqO");
            assert_eq!(parsed.is_ok(), ok, "{message}");
            if let Ok(first) = parsed {
                assert_eq!((&first.salt[..], first.iterations), (&b"salt"[..], 4096), "{message}");
            }
        }
        // The whole class: any printable but `,` in a nonce, on every side of the exchange.
        let nonce = "s=i=r=p=c=v=e=m=%)$";
        let mut client = RFC5802.client();
        client.client_nonce = "rOprNGfwEbeRWgbNEkqO".into();
        client.state = ClientState::SentFirst;
        let client_final = client.step(b"r=rOprNGfwEbeRWgbNEkqOys==4,s=c2FsdA==,i=4096").unwrap();
        assert!(client_final.expose().starts_with(b"c=biws,r=rOprNGfwEbeRWgbNEkqOys==4,p="));

        let creds = Credentials::password("user", "pencil");
        let mut client = ScramClient::new(ScramHash::Sha256, false, &creds, &client_ctx(), nonce.into()).unwrap();
        let mut server = ScramServer::new(ScramHash::Sha256, false, &server_ctx(), "p=s=!".into(), b"salt".to_vec());
        assert!(matches!(server.start(Some(client.initial_response().unwrap().unwrap().expose())), ServerStep::Ask(_)));
        let ServerStep::Challenge(server_first) = server.answer(CredentialAnswer::Password(Secret::from("pencil")))
        else {
            panic!()
        };
        assert!(server_first.starts_with(b"r=s=i=r=p=c=v=e=m=%)$p=s=!,s="));
        let client_final = client.step(&server_first).unwrap();
        let ServerStep::Success { additional: Some(server_final), .. } = server.step(client_final.expose()) else {
            panic!()
        };
        client.step(&server_final).unwrap();
        client.finish(None).unwrap();
    }

    /// Unknown optional attributes are accepted and kept verbatim in the AuthMessage.
    #[test]
    fn unknown_extensions_are_kept_in_the_auth_message() {
        let server_first = format!("{},x=unknown=ext,y=more", RFC5802.server_first);
        let mut client = RFC5802.client();
        client.initial_response().unwrap();
        let client_final = client.step(server_first.as_bytes()).unwrap();
        let without_proof = "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j";
        let auth_message = format!("n=user,r=fyko+d2lbbFgONRv9qkxdawL,{server_first},{without_proof}");
        let salted = salted_password(ScramHash::Sha1, "pencil", &unbase64(RFC5802.salt), 4096).unwrap();
        let keys = key_schedule(ScramHash::Sha1, salted.expose()).unwrap();
        let signature = hmac(ScramHash::Sha1, keys.stored_key.expose(), auth_message.as_bytes()).unwrap();
        let proof = xor(keys.client_key.expose(), signature.expose());
        let expected = format!("{without_proof},p={}", STANDARD.encode(&*proof));
        assert_eq!(client_final.expose(), expected.as_bytes());
        let server_signature = hmac(ScramHash::Sha1, keys.server_key.expose(), auth_message.as_bytes()).unwrap();
        let server_final = format!("v={},z=ignored", STANDARD.encode(server_signature.expose()));
        client.step(server_final.as_bytes()).unwrap();
        client.finish(None).unwrap();

        // Server side: extensions in client-first and client-final.
        let mut server = ScramServer::new(ScramHash::Sha1, false, &server_ctx(), "sn".into(), b"salt".to_vec());
        let client_first_bare = "n=user,r=cn,x=ext=1";
        assert!(matches!(server.start(Some(format!("n,,{client_first_bare}").as_bytes())), ServerStep::Ask(_)));
        let ServerStep::Challenge(server_first) = server.answer(CredentialAnswer::Password(Secret::from("pencil")))
        else {
            panic!()
        };
        let server_first = String::from_utf8(server_first).unwrap();
        let without_proof = "c=biws,r=cnsn,q=ext";
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let salted = salted_password(ScramHash::Sha1, "pencil", b"salt", 4096).unwrap();
        let keys = key_schedule(ScramHash::Sha1, salted.expose()).unwrap();
        let signature = hmac(ScramHash::Sha1, keys.stored_key.expose(), auth_message.as_bytes()).unwrap();
        let proof = xor(keys.client_key.expose(), signature.expose());
        let client_final = format!("{without_proof},p={}", STANDARD.encode(&*proof));
        assert!(matches!(server.step(client_final.as_bytes()), ServerStep::Success { .. }));
    }

    #[test]
    fn mandatory_extension_is_refused() {
        let mut client = RFC5802.client();
        client.initial_response().unwrap();
        let err = client.step(format!("m=must,{}", RFC5802.server_first).as_bytes()).unwrap_err();
        assert_eq!(err, SaslError::MalformedChallenge("unsupported mandatory extension (m=)"));
        assert_eq!(
            server_start(Mechanism::ScramSha1, &server_ctx(), "n,,m=must,n=user,r=abc"),
            ServerStep::Failure(AuthFailure::Malformed("unsupported mandatory extension (m=)"))
        );
    }

    #[test]
    fn server_error_is_surfaced() {
        let mut client = RFC5802.client();
        client.initial_response().unwrap();
        client.step(RFC5802.server_first.as_bytes()).unwrap();
        assert_eq!(client.step(b"e=invalid-proof"), Err(SaslError::ServerError("invalid-proof".into())));
        assert_eq!(client.server_error(), Some("invalid-proof"));
        assert!(matches!(client.finish(None), Err(SaslError::ServerNotVerified(_))));
        // At server-first too (some servers report an unknown user there).
        let mut client = RFC5802.client();
        client.initial_response().unwrap();
        assert_eq!(client.step(b"e=unknown-user"), Err(SaslError::ServerError("unknown-user".into())));
        assert_eq!(client.server_error(), Some("unknown-user"));
        // As additional data with success.
        let mut client = RFC5802.client();
        client.initial_response().unwrap();
        client.step(RFC5802.server_first.as_bytes()).unwrap();
        assert_eq!(client.finish(Some(b"e=other-error")), Err(SaslError::ServerError("other-error".into())));
    }

    #[test]
    fn low_iteration_count_is_refused() {
        let mut client = RFC5802.client();
        client.initial_response().unwrap();
        let server_first = RFC5802.server_first.replace("i=4096", "i=4095");
        assert_eq!(client.step(server_first.as_bytes()), Err(SaslError::IterationsTooLow(4095)));
        assert_eq!(client.step(RFC5802.server_first.as_bytes()), Err(SaslError::UnexpectedChallenge));
        // The minimum is the caller's.
        let mut ctx = client_ctx();
        ctx.min_scram_iterations = 10_000;
        let creds = Credentials::password("user", "pencil");
        let mut client = ScramClient::new(ScramHash::Sha1, false, &creds, &ctx, RFC5802.client_nonce.into()).unwrap();
        client.initial_response().unwrap();
        assert_eq!(client.step(RFC5802.server_first.as_bytes()), Err(SaslError::IterationsTooLow(4096)));
    }

    #[test]
    fn wrong_server_signature_is_refused() {
        let mut client = RFC5802.client();
        client.initial_response().unwrap();
        client.step(RFC5802.server_first.as_bytes()).unwrap();
        assert_eq!(
            client.step(b"v=smF9pqV8S7suAoZWja4dJRkFsKQ="),
            Err(SaslError::ServerNotVerified("wrong SCRAM server signature"))
        );
        assert!(matches!(client.finish(None), Err(SaslError::ServerNotVerified(_))));
        // Wrong signature given as additional data with success.
        let mut client = RFC7677.client();
        client.initial_response().unwrap();
        client.step(RFC7677.server_first.as_bytes()).unwrap();
        assert!(matches!(client.finish(Some(RFC5802.server_final.as_bytes())), Err(SaslError::ServerNotVerified(_))));
    }

    /// A `235` (or `+OK`) before the server-final was seen must not pass.
    #[test]
    fn success_without_server_signature_is_refused() {
        let mut client = RFC5802.client();
        assert!(matches!(client.finish(None), Err(SaslError::ServerNotVerified(_))));
        let mut client = RFC5802.client();
        client.initial_response().unwrap();
        assert!(matches!(client.finish(None), Err(SaslError::ServerNotVerified(_))));
        let mut client = RFC5802.client();
        client.initial_response().unwrap();
        client.step(RFC5802.server_first.as_bytes()).unwrap();
        assert!(matches!(client.finish(None), Err(SaslError::ServerNotVerified(_))));
        let mut client = RFC5802.client();
        client.initial_response().unwrap();
        client.step(RFC5802.server_first.as_bytes()).unwrap();
        assert!(matches!(client.finish(Some(b"")), Err(SaslError::ServerNotVerified(_))));
    }

    // -- malformed input ----------------------------------------------------------------------

    fn client_after_first() -> ScramClient {
        let mut client = RFC5802.client();
        client.initial_response().unwrap();
        client
    }

    #[test]
    fn malformed_server_first() {
        let n = RFC5802.client_nonce;
        let cases: Vec<Vec<u8>> = [
            String::new(),
            ",".into(),
            format!("r={n}"),
            format!("r={n}3rfc"),
            format!("r={n}3rfc,s=QSXCR+Q6sek8bf92"),
            format!("r={n}3rfc,i=4096"),
            format!("r={n}3rfc,i=4096,s=QSXCR+Q6sek8bf92"),
            format!("s=QSXCR+Q6sek8bf92,r={n}3rfc,i=4096"),
            format!("r={n},s=QSXCR+Q6sek8bf92,i=4096"),
            format!("r=other{n},s=QSXCR+Q6sek8bf92,i=4096"),
            format!("r={n}3 rfc,s=QSXCR+Q6sek8bf92,i=4096"),
            format!("r={n}3é,s=QSXCR+Q6sek8bf92,i=4096"),
            format!("r={n}3\x7f,s=QSXCR+Q6sek8bf92,i=4096"),
            format!("r={n}3rfc,s=QSXCR+Q6sek8bf9,i=4096"),
            format!("r={n}3rfc,s=QSXCR+Q6sek8bf92=,i=4096"),
            format!("r={n}3rfc,s=QSXC R+Q6sek8bf92,i=4096"),
            format!("r={n}3rfc,s=QSXC!+Q6sek8bf92,i=4096"),
            format!("r={n}3rfc,s=,i=4096"),
            format!("r={n}3rfc,s=QSXCR+Q6sek8bf92,i="),
            format!("r={n}3rfc,s=QSXCR+Q6sek8bf92,i=0"),
            format!("r={n}3rfc,s=QSXCR+Q6sek8bf92,i=04096"),
            format!("r={n}3rfc,s=QSXCR+Q6sek8bf92,i=-4096"),
            format!("r={n}3rfc,s=QSXCR+Q6sek8bf92,i=+4096"),
            format!("r={n}3rfc,s=QSXCR+Q6sek8bf92,i=4096x"),
            format!("r={n}3rfc,s=QSXCR+Q6sek8bf92,i=99999999999"),
            format!("r={n}3rfc,s=QSXCR+Q6sek8bf92,i=4294967295"),
            format!("r={n}3rfc,s=QSXCR+Q6sek8bf92,i=4294967296"),
            format!("r={n}3rfc,s=QSXCR+Q6sek8bf92,i=1000001"),
            format!("r={n}3rfc,s=QSXCR+Q6sek8bf92,i=4096,"),
            format!("r={n}3rfc,s=QSXCR+Q6sek8bf92,i=4096,x"),
            format!("r={n}3rfc,s=QSXCR+Q6sek8bf92,i=4096,x="),
            format!("r={n}3rfc,s=QSXCR+Q6sek8bf92,i=4096,xy=1"),
            format!("r={n}3rfc,s=QSXCR+Q6sek8bf92,i=4096,1=1"),
            format!("r={n}3rfc,s=QSXCR+Q6sek8bf92,i=4096,x=a\0b"),
            format!("R={n}3rfc,s=QSXCR+Q6sek8bf92,i=4096"),
            format!("r={n}3rfc,s=QSXCR+Q6sek8bf92,i=4096{}", "x".repeat(MAX_MESSAGE)),
        ]
        .into_iter()
        .map(String::into_bytes)
        .chain([format!("r={n}\u{ff}").into_bytes(), [b"r=" as &[u8], n.as_bytes(), b"\xff,s=QSXC,i=1"].concat()])
        .collect();
        for case in cases {
            let err = client_after_first().step(&case).unwrap_err();
            assert!(matches!(err, SaslError::MalformedChallenge(_)), "{:?}: {err:?}", String::from_utf8_lossy(&case));
        }
        let huge = client_after_first().step(format!("r={n}3rfc,s=QSXCR+Q6sek8bf92,i=99999999999").as_bytes());
        assert_eq!(huge, Err(SaslError::MalformedChallenge("iteration count is not a positive 32-bit number")));
        let capped = client_after_first().step(format!("r={n}3rfc,s=QSXCR+Q6sek8bf92,i=4294967295").as_bytes());
        assert_eq!(capped, Err(SaslError::MalformedChallenge("iteration count above the client's limit of 1000000")));
    }

    #[test]
    fn truncated_messages_to_the_client() {
        for end in 0..RFC5802.server_first.len() {
            let result = client_after_first().step(&RFC5802.server_first.as_bytes()[..end]);
            assert!(result.is_err(), "prefix {end}");
        }
        for end in 0..RFC5802.server_final.len() {
            let mut client = client_after_first();
            client.step(RFC5802.server_first.as_bytes()).unwrap();
            assert!(client.step(&RFC5802.server_final.as_bytes()[..end]).is_err(), "prefix {end}");
            assert!(matches!(client.finish(None), Err(SaslError::ServerNotVerified(_))));
        }
    }

    #[test]
    fn malformed_server_final() {
        for case in [
            &b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ"[..],
            b"v=",
            b"x=1",
            b"",
            b"v=rmF9 pqV8S7suAoZWja4dJRkFsKQ=",
            b"\xff",
            b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=,",
        ] {
            let mut client = client_after_first();
            client.step(RFC5802.server_first.as_bytes()).unwrap();
            let err = client.step(case).unwrap_err();
            assert!(matches!(err, SaslError::MalformedChallenge(_) | SaslError::ServerNotVerified(_)), "{case:?}");
            assert!(client.finish(None).is_err());
        }
        // A signature of the right form but another length.
        let mut client = client_after_first();
        client.step(RFC5802.server_first.as_bytes()).unwrap();
        assert!(matches!(client.step(b"v=AAAA"), Err(SaslError::ServerNotVerified(_))));
    }

    #[test]
    fn malformed_client_first() {
        for case in [
            &b""[..],
            b"n",
            b"n,",
            b"n,,",
            b"n,,n=user",
            b"n,,n=user,",
            b"n,,n=user,r=",
            b"n,,r=abc",
            b"n,,r=abc,n=user",
            b"x,,n=user,r=abc",
            b"p,,n=user,r=abc",
            b"N,,n=user,r=abc",
            b"n,,n=user,r=a b",
            b"n,,n=user,r=ab\x7f",
            b"n,,n=user,r=abc,x",
            b"n,,n=user,r=abc,xx=1",
            b"n,,n=user,r=abc,=",
            b"n,,n=us\xffer,r=abc",
            b"\xff,,n=user,r=abc",
        ] {
            let step = server_start(Mechanism::ScramSha1, &server_ctx(), &String::from_utf8_lossy(case));
            assert!(matches!(step, ServerStep::Failure(AuthFailure::Malformed(_))), "{case:?}: {step:?}");
            let mut server = ScramServer::new(ScramHash::Sha1, false, &server_ctx(), "sn".into(), b"s".to_vec());
            assert!(matches!(server.start(Some(case)), ServerStep::Failure(AuthFailure::Malformed(_))), "{case:?}");
        }
        let long = format!("n,,n=user,r={}", "a".repeat(MAX_MESSAGE));
        assert_eq!(
            server_start(Mechanism::ScramSha1, &server_ctx(), &long),
            ServerStep::Failure(AuthFailure::Malformed("SCRAM message too long"))
        );
    }

    #[test]
    fn truncated_client_first() {
        let message = RFC5802.client_first.as_bytes();
        let shortest_valid = "n,,n=user,r=f".len();
        for end in 0..message.len() {
            let mut server = RFC5802.server();
            let step = server.start(Some(&message[..end]));
            if end < shortest_valid {
                assert!(matches!(step, ServerStep::Failure(AuthFailure::Malformed(_))), "prefix {end}");
            } else {
                assert!(matches!(step, ServerStep::Ask(_)), "prefix {end}");
            }
        }
    }

    fn server_waiting_final() -> ScramServer {
        let mut server = RFC5802.server();
        server.start(Some(RFC5802.client_first.as_bytes()));
        let keys = ScramKeys::derive(ScramHash::Sha1, "pencil", &unbase64(RFC5802.salt), 4096).unwrap();
        assert!(matches!(server.answer(CredentialAnswer::ScramKeys(keys)), ServerStep::Challenge(_)));
        server
    }

    #[test]
    fn malformed_client_final() {
        let nonce = "fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j";
        let proof = "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
        let cases: Vec<(Vec<u8>, AuthFailure)> = [
            (String::new(), "client-final lacks p="),
            ("c=biws".into(), "client-final lacks p="),
            (format!("c=biws,r={nonce}"), "client-final must end with p="),
            (format!("c=biws,r={nonce},p={proof},x=1"), "client-final must end with p="),
            (format!("r={nonce},c=biws,p={proof}"), "client-final lacks c="),
            (format!("c=biws,p={proof}"), "client-final lacks r="),
            (format!("c=biws,r={nonce},x,p={proof}"), "malformed extension in client-final"),
            (format!("c=biw,r={nonce},p={proof}"), "c= is not base64"),
            (format!("c=biws,r={nonce}x,p={proof}"), "nonce in client-final does not match"),
            (format!("c=biws,r=fyko,p={proof}"), "nonce in client-final does not match"),
            (format!("c=biws,r={nonce},p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts"), "proof is not base64"),
            (format!("c=biws,r={nonce},p="), "proof has the wrong length"),
            (format!("c=biws,r={nonce},p=AAAA"), "proof has the wrong length"),
            (format!("c=biws,r={nonce},p={proof}{}", "A".repeat(MAX_MESSAGE)), "SCRAM message too long"),
        ]
        .into_iter()
        .map(|(message, why)| (message.into_bytes(), AuthFailure::Malformed(why)))
        .chain([
            (format!("c=eSws,r={nonce},p={proof}").into_bytes(), AuthFailure::ChannelBinding),
            (format!("c=biws,r={nonce},p=w0X8v3Bz2T0CJGbJQyF0X+HI4Ts=").into_bytes(), AuthFailure::Credentials),
            (b"c=biws,r=\xff,p=AAAA".to_vec(), AuthFailure::Malformed("SCRAM message is not UTF-8")),
        ])
        .collect();
        for (case, failure) in cases {
            let mut server = server_waiting_final();
            assert_eq!(server.step(&case), ServerStep::Failure(failure), "{:?}", String::from_utf8_lossy(&case));
            assert!(matches!(
                server.step(RFC5802.client_final.as_bytes()),
                ServerStep::Failure(AuthFailure::Misuse(_))
            ));
        }
        for end in 0..RFC5802.client_final.len() {
            let mut server = server_waiting_final();
            assert!(matches!(server.step(&RFC5802.client_final.as_bytes()[..end]), ServerStep::Failure(_)), "{end}");
        }
    }

    // -- properties ---------------------------------------------------------------------------

    proptest! {
        #[test]
        fn saslname_escaping_round_trips(name in "[^\\x00]{1,40}") {
            let escaped = escape_saslname(&name);
            prop_assert!(!escaped.contains(','));
            prop_assert_eq!(escaped.matches('=').count(), escaped.matches("=2C").count() + escaped.matches("=3D").count());
            prop_assert_eq!(unescape_saslname(&escaped), Some(name));
        }

        /// Hostile server messages: a typed error (or a valid exchange), never a panic or a hang.
        #[test]
        fn client_survives_any_server_message(
            body in "(r=|s=|i=|m=|e=|v=|,|=|[a-zA-Z0-9+/]|[0-9]{1,12}|\u{0}|\u{ff}){0,40}",
            prefix in proptest::bool::ANY,
        ) {
            let mut ctx = client_ctx();
            ctx.min_scram_iterations = MAX_ITERATIONS;
            let creds = Credentials::password("user", "pencil");
            let mut client = ScramClient::new(ScramHash::Sha1, false, &creds, &ctx, "cn".into()).unwrap();
            client.initial_response().unwrap();
            let message = if prefix { format!("r=cn{body}") } else { body.clone() };
            let _ = client.step(message.as_bytes());
            let _ = client.step(body.as_bytes());
            prop_assert!(client.finish(None).is_err());
        }

        #[test]
        fn server_survives_any_client_message(
            first in "(n|y|p=|a=|n=|r=|m=|c=|,|=|=2C|[a-zA-Z0-9+/]|\u{0}|\r|\n){0,40}",
            last in "(c=|r=|p=|biws|,|=|[a-zA-Z0-9+/]){0,60}",
        ) {
            let mut server = ScramServer::new(ScramHash::Sha256, false, &server_ctx(), "sn".into(), b"s".to_vec());
            match server.start(Some(first.as_bytes())) {
                ServerStep::Ask(CredentialRequest::ScramCredentials { authcid, .. }) => {
                    prop_assert!(identity_is_clean(authcid.as_bytes()));
                    let keys = ScramKeys::derive(ScramHash::Sha256, "pw", b"salt", 1).unwrap();
                    prop_assert!(matches!(server.answer(CredentialAnswer::ScramKeys(keys)), ServerStep::Challenge(_)));
                    prop_assert!(matches!(server.step(last.as_bytes()), ServerStep::Failure(_)));
                }
                step => prop_assert!(matches!(step, ServerStep::Failure(AuthFailure::Malformed(_) | AuthFailure::ChannelBinding)), "{:?}", step),
            }
        }
    }

    proptest! {
        // PBKDF2 runs on both sides: few cases, low iteration counts.
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn client_and_server_agree(
            sha256 in proptest::bool::ANY,
            plus in proptest::bool::ANY,
            kind in 0usize..3,
            data in proptest::collection::vec(proptest::num::u8::ANY, 1..48),
            authcid in "[a-zA-Z0-9,=@.é€ä]{1,16}",
            password in "[ -~é€äß\u{00A0}]{0,24}",
            authzid in proptest::option::of("[a-zA-Z0-9,=@.é]{1,16}"),
            stored in proptest::bool::ANY,
            wrong in proptest::bool::ANY,
            seed in proptest::num::u64::ANY,
        ) {
            let mechanism = mechanism_of(if sha256 { ScramHash::Sha256 } else { ScramHash::Sha1 }, plus);
            let kind = [ChannelBindingType::TlsExporter, ChannelBindingType::TlsServerEndPoint, ChannelBindingType::TlsUnique][kind];
            let (mut cctx, mut sctx) = plus_contexts(kind, &data);
            cctx.min_scram_iterations = 1;
            sctx.scram_iterations = 3;
            if !plus {
                cctx.channel_binding = None;
                sctx.offers_plus = false;
            }
            let mut creds = Credentials::password(authcid.clone(), password.as_str());
            creds.authzid = authzid.clone();
            let server_password = if wrong { format!("{password}x") } else { password.clone() };
            let (hash, _) = variant(&mechanism).unwrap();
            let answer = if stored {
                let mut salt = vec![0u8; 8];
                FixedRandom::new(seed).fill(&mut salt);
                CredentialAnswer::ScramKeys(ScramKeys::derive(hash, &server_password, &salt, 2).unwrap())
            } else {
                CredentialAnswer::Password(Secret::from(server_password.as_str()))
            };
            let (verdict, step) = exchange(&mechanism, &creds, &cctx, &sctx, answer);
            if wrong {
                prop_assert_eq!(step, ServerStep::Failure(AuthFailure::Credentials));
                prop_assert!(verdict.is_err());
            } else {
                prop_assert_eq!(verdict, Ok(()));
                let authcid = saslprep(&authcid).unwrap().into_owned();
                let authzid = authzid.filter(|z| *z != authcid);
                let ServerStep::Success { identity, additional: Some(_) } = step else {
                    return Err(TestCaseError::fail(format!("{step:?}")));
                };
                prop_assert_eq!(identity, Identity { authcid, authzid });
            }
        }
    }
}
