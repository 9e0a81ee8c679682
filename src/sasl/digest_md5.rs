//! DIGEST-MD5 (RFC 2831) with the `auth` quality of protection, client and server side.
//!
//! The server challenges with `realm`, `nonce`, `qop="auth"`, `charset=utf-8` and
//! `algorithm=md5-sess`; the client answers with a digest of the password bound to both nonces
//! and to `digest-uri` (`service/host`), and the server proves it knows the secret too with
//! `rspauth`, which the client checks before it sends its final empty response.
//!
//! Character sets (RFC 2831 §2.1.2.1): with `charset=utf-8` the user name, realm and password
//! travel as UTF-8, and each is hashed as ISO-8859-1 when all its characters fit, else as
//! UTF-8; without `charset` they travel and are hashed as ISO-8859-1, and a client whose
//! user name or password does not fit refuses to run. Implementations differ here, measured
//! or read: Cyrus SASL converts user name, realm and password, as this client does; GNU SASL
//! converts only the password; Dovecot converts nothing. All agree on ASCII and on values
//! outside ISO-8859-1 (`pässwörd€`). The server, given the password, accepts each of these
//! forms and answers with the `rspauth` of the one that matched; a stored HA1 fixes one form.
//! No SASLprep: RFC 2831 does not ask for it.
//!
//! Integrity and confidentiality layers (`auth-int`, `auth-conf`) and subsequent
//! authentication (RFC 2831 §2.2) are not implemented.

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use md5::{Digest, Md5};
use zeroize::Zeroizing;

use super::{
    AuthFailure, ClientContext, ClientMechanism, CredentialAnswer, CredentialRequest, Credentials, Identity, Mechanism,
    Random, SaslError, Secret, ServerContext, ServerMechanism, ServerStep, ct_eq, identity_is_clean, nonce,
};

/// Longest challenge a client accepts (RFC 2831 §2.1.1).
pub(crate) const MAX_CHALLENGE: usize = 2048;
/// Longest response a server accepts, and a client sends (RFC 2831 §2.1.2).
pub(crate) const MAX_RESPONSE: usize = 4096;
/// The only nonce count mailwire sends or accepts: no subsequent authentication (RFC 2831 §2.1.2).
const NONCE_COUNT: &[u8] = b"00000001";
/// Characters of the nonces we generate.
const NONCE_LEN: usize = 24;

/// One `name=value` element of a challenge or response (RFC 2831 §7.1 `auth-param`), the
/// name lower-cased and the value unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Directive {
    name: String,
    value: Vec<u8>,
}

/// Skips linear white space (RFC 2616 §2.2 `LWS`, folded lines included).
fn skip_lws(mut rest: &[u8]) -> &[u8] {
    while let Some((b' ' | b'\t' | b'\r' | b'\n', tail)) = rest.split_first() {
        rest = tail;
    }
    rest
}

/// RFC 2616 §2.2 `token` characters: CHAR except CTLs and separators.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)
}

/// Characters accepted in an unquoted value: visible ASCII except `,` and `"`. Wider than
/// `token` because peers send unquoted values such as `digest-uri=smtp/host`.
fn is_bare_value_char(b: u8) -> bool {
    b.is_ascii_graphic() && b != b',' && b != b'"'
}

/// Splits off the longest prefix whose bytes satisfy `pred`.
fn take_while(rest: &[u8], pred: fn(u8) -> bool) -> (&[u8], &[u8]) {
    let end = rest.iter().position(|&b| !pred(b)).unwrap_or(rest.len());
    rest.split_at_checked(end).unwrap_or((rest, &[]))
}

/// Whether `b` may appear in a quoted string: TEXT except CTLs other than HT. CR, LF and NUL
/// are refused even where RFC 2616 would allow a folded line, so no decoded value carries one.
fn is_qdtext(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

/// Parses the rest of a quoted string after its opening quote (RFC 2616 §2.2 `quoted-string`,
/// `\` escapes the next character).
fn parse_quoted(mut rest: &[u8]) -> Result<(Vec<u8>, &[u8]), &'static str> {
    let mut value = Vec::new();
    loop {
        match rest.split_first() {
            None => return Err("unterminated quoted string"),
            Some((b'"', tail)) => return Ok((value, tail)),
            Some((b'\\', tail)) => match tail.split_first() {
                Some((&escaped, tail)) if is_qdtext(escaped) => {
                    value.push(escaped);
                    rest = tail;
                }
                Some(_) => return Err("control character in a quoted string"),
                None => return Err("unterminated quoted string"),
            },
            Some((&b, tail)) if is_qdtext(b) => {
                value.push(b);
                rest = tail;
            }
            Some(_) => return Err("control character in a quoted string"),
        }
    }
}

/// Parses a comma-separated directive list (RFC 2831 §7.1 `#rule`): LWS around `,` and `=`,
/// empty elements skipped, quoted or bare values. Refuses input longer than `limit`.
fn parse_directives(input: &[u8], limit: usize) -> Result<Vec<Directive>, &'static str> {
    if input.len() > limit {
        return Err("directive list too long");
    }
    let mut directives = Vec::new();
    let mut rest = skip_lws(input);
    while let Some((&first, tail)) = rest.split_first() {
        if first == b',' {
            rest = skip_lws(tail);
            continue;
        }
        let (name, tail) = take_while(rest, is_token_char);
        if name.is_empty() {
            return Err("expected a directive name");
        }
        let tail = match skip_lws(tail).split_first() {
            Some((b'=', tail)) => skip_lws(tail),
            _ => return Err("expected '=' after a directive name"),
        };
        let (value, tail) = match tail.split_first() {
            Some((b'"', tail)) => parse_quoted(tail)?,
            _ => {
                let (value, tail) = take_while(tail, is_bare_value_char);
                if value.is_empty() {
                    return Err("empty unquoted value");
                }
                (value.to_vec(), tail)
            }
        };
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        directives.push(Directive { name, value });
        rest = skip_lws(tail);
        match rest.split_first() {
            None => break,
            Some((b',', tail)) => rest = skip_lws(tail),
            Some(_) => return Err("expected ',' between directives"),
        }
    }
    Ok(directives)
}

/// Appends `name="value"` with `"` and `\` escaped (RFC 2831 §7.2 `quoted-string`).
fn push_quoted(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    push_separator(out);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"=\"");
    for &b in value {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Appends `name=value` for a token value.
fn push_bare(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    push_separator(out);
    out.extend_from_slice(name.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
}

fn push_separator(out: &mut Vec<u8>) {
    if !out.is_empty() {
        out.push(b',');
    }
}

/// Records a directive that may appear at most once (RFC 2831 §2.1.1, §2.1.2: duplicates
/// abort the exchange).
fn set_once<'a>(slot: &mut Option<&'a [u8]>, value: &'a [u8]) -> Result<(), &'static str> {
    if slot.replace(value).is_some() { Err("a single-valued directive is repeated") } else { Ok(()) }
}

/// Splits a comma-separated token list such as `qop="auth,auth-int"`, skipping LWS and
/// empty elements, lower-cased (RFC 2831 §2.1.1 `qop-options`).
fn token_list(value: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    value
        .split(|&b| b == b',')
        .map(|item| skip_lws(item).trim_ascii_end().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
}

/// What a client needs from a server's challenge (RFC 2831 §2.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Challenge {
    realms: Vec<Vec<u8>>,
    nonce: Vec<u8>,
    utf8: bool,
}

/// Checks a challenge. Unknown directives are ignored; `nonce` and `algorithm=md5-sess` are
/// required; a missing `qop` means `auth`; an offered `qop` list must contain `auth`.
fn parse_challenge(input: &[u8]) -> Result<Challenge, &'static str> {
    let directives = parse_directives(input, MAX_CHALLENGE)?;
    let mut realms = Vec::new();
    let (mut nonce, mut qop, mut stale, mut maxbuf, mut charset, mut algorithm, mut cipher) =
        (None, None, None, None, None, None, None);
    for directive in &directives {
        let value = directive.value.as_slice();
        match directive.name.as_str() {
            "realm" => {
                if !identity_is_clean(value) {
                    return Err("CR, LF or NUL in a realm");
                }
                realms.push(value.to_vec());
            }
            "nonce" => set_once(&mut nonce, value)?,
            "qop" => set_once(&mut qop, value)?,
            "stale" => set_once(&mut stale, value)?,
            "maxbuf" => set_once(&mut maxbuf, value)?,
            "charset" => set_once(&mut charset, value)?,
            "algorithm" => set_once(&mut algorithm, value)?,
            "cipher" => set_once(&mut cipher, value)?,
            _ => {}
        }
    }
    let nonce = nonce.ok_or("no nonce")?;
    if nonce.is_empty() {
        return Err("empty nonce");
    }
    if !algorithm.is_some_and(|a| a.eq_ignore_ascii_case(b"md5-sess")) {
        return Err("algorithm must be md5-sess");
    }
    if let Some(qop) = qop {
        if !token_list(qop).any(|t| t == b"auth") {
            return Err("qop auth not offered");
        }
    }
    if let Some(maxbuf) = maxbuf {
        parse_maxbuf(maxbuf)?;
    }
    let utf8 = match charset {
        None => false,
        Some(c) if c.eq_ignore_ascii_case(b"utf-8") => true,
        Some(_) => return Err("charset must be utf-8"),
    };
    Ok(Challenge { realms, nonce: nonce.to_vec(), utf8 })
}

/// `maxbuf` is a decimal number of at most 16777215 (RFC 2831 §2.1.1); it only matters for
/// security layers, so it is only checked.
fn parse_maxbuf(value: &[u8]) -> Result<u32, &'static str> {
    let text = core::str::from_utf8(value).map_err(|_| "maxbuf is not a number")?;
    match text.parse::<u32>() {
        Ok(n) if n <= 0xff_ffff && text.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err("maxbuf is not a number up to 16777215"),
    }
}

/// RFC 2831 §2.1.2.1's form of a UTF-8 user name, realm or password for hashing: ISO-8859-1
/// when every character fits, else unchanged (also unchanged when not UTF-8).
fn latin1_form(value: &[u8]) -> Cow<'_, [u8]> {
    if value.is_ascii() {
        return Cow::Borrowed(value);
    }
    match core::str::from_utf8(value) {
        Ok(text) if text.chars().all(|c| u32::from(c) <= 0xff) => {
            Cow::Owned(text.chars().filter_map(|c| u8::try_from(u32::from(c)).ok()).collect())
        }
        _ => Cow::Borrowed(value),
    }
}

/// A string as ISO-8859-1 octets, if every character fits.
fn to_latin1(text: &str) -> Option<Vec<u8>> {
    text.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}

/// ISO-8859-1 octets as a string (every octet is a character).
fn from_latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Wire octets of a value the peer sent, as text: UTF-8 with `charset=utf-8`, else ISO-8859-1.
fn wire_text(bytes: &[u8], utf8: bool) -> Option<String> {
    if utf8 { core::str::from_utf8(bytes).ok().map(ToString::to_string) } else { Some(from_latin1(bytes)) }
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut hasher = Md5::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// Lower-case hex (RFC 2831 §2.1.2.1 `HEX`).
fn hex(bytes: &[u8; 16]) -> [u8; 32] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
        for (slot, nibble) in pair.iter_mut().zip([b >> 4, b & 15]) {
            *slot = DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0');
        }
    }
    out
}

/// The stored secret `H(username ":" realm ":" passwd)`: 16 raw octets (RFC 2831 §2.1.2.1).
fn user_secret(username: &[u8], realm: &[u8], password: &[u8]) -> Zeroizing<[u8; 16]> {
    Zeroizing::new(md5(&[username, b":", realm, b":", password]))
}

/// The values one digest computation binds together (RFC 2831 §2.1.2.1).
struct DigestInput<'a> {
    /// The 16 raw octets of `H(username ":" realm ":" passwd)`: A1 uses them raw, not in hex.
    secret: &'a [u8; 16],
    nonce: &'a [u8],
    cnonce: &'a [u8],
    authzid: Option<&'a [u8]>,
    digest_uri: &'a [u8],
}

impl DigestInput<'_> {
    /// `HEX(H(A1))`, A1 = `secret ":" nonce ":" cnonce [":" authzid]`.
    fn a1_hex(&self) -> Zeroizing<[u8; 32]> {
        let digest = match self.authzid {
            Some(authzid) => md5(&[self.secret, b":", self.nonce, b":", self.cnonce, b":", authzid]),
            None => md5(&[self.secret, b":", self.nonce, b":", self.cnonce]),
        };
        Zeroizing::new(hex(&digest))
    }

    /// `HEX(KD(HEX(H(A1)), nonce ":" nc ":" cnonce ":" qop ":" HEX(H(A2))))` with
    /// A2 = `a2_prefix ":" digest-uri`: `AUTHENTICATE` for the client's response, empty for
    /// the server's `rspauth`.
    fn value(&self, a2_prefix: &[u8]) -> [u8; 32] {
        let a2 = hex(&md5(&[a2_prefix, b":", self.digest_uri]));
        let a1 = self.a1_hex();
        hex(&md5(&[a1.as_slice(), b":", self.nonce, b":", NONCE_COUNT, b":", self.cnonce, b":auth:", &a2]))
    }

    fn response(&self) -> [u8; 32] {
        self.value(b"AUTHENTICATE")
    }

    fn rspauth(&self) -> [u8; 32] {
        self.value(b"")
    }
}

pub(super) fn client(
    credentials: &Credentials,
    context: &ClientContext,
    rng: &mut dyn Random,
) -> Result<Box<dyn ClientMechanism>, SaslError> {
    let cnonce = nonce(rng, NONCE_LEN);
    Ok(Box::new(DigestClient::new(credentials, context, cnonce)?))
}

#[derive(Debug)]
enum ClientState {
    /// Waiting for the digest-challenge.
    Start,
    /// The response went out; `rspauth` must match this.
    Sent { rspauth: Secret },
    /// `rspauth` matched and the empty response went out.
    Verified,
    /// The exchange failed; nothing more is accepted.
    Failed,
}

/// DIGEST-MD5 client: answers the challenge, then verifies `rspauth`.
#[derive(Debug)]
struct DigestClient {
    username: String,
    password: Secret,
    authzid: Option<String>,
    digest_uri: String,
    cnonce: String,
    state: ClientState,
}

impl DigestClient {
    fn new(credentials: &Credentials, context: &ClientContext, cnonce: String) -> Result<Self, SaslError> {
        let password = credentials.password.clone().ok_or(SaslError::MissingCredential("password"))?;
        if password.expose_str().is_none() {
            return Err(SaslError::InvalidCredential("password is not UTF-8"));
        }
        if credentials.authcid.is_empty() {
            return Err(SaslError::InvalidCredential("empty user name"));
        }
        for part in [&context.service, &context.host] {
            if part.is_empty() || part.bytes().any(|b| !b.is_ascii_graphic() || b == b'/') {
                return Err(SaslError::InvalidCredential("service or host unusable in digest-uri"));
            }
        }
        Ok(Self {
            username: credentials.authcid.clone(),
            password,
            authzid: credentials.authzid.clone().filter(|a| !a.is_empty()),
            digest_uri: alloc::format!("{}/{}", context.service, context.host),
            cnonce,
            state: ClientState::Start,
        })
    }

    /// Builds the digest-response (RFC 2831 §2.1.2) and remembers the expected `rspauth`.
    fn respond(&mut self, challenge: &[u8]) -> Result<Secret, SaslError> {
        let challenge = parse_challenge(challenge).map_err(SaslError::MalformedChallenge)?;
        let utf8 = challenge.utf8;
        let password = self.password.expose_str().unwrap_or_default();
        let (username, password) = if utf8 {
            (self.username.as_bytes().to_vec(), Zeroizing::new(password.as_bytes().to_vec()))
        } else {
            let not_latin1 = SaslError::InvalidCredential("server wants ISO-8859-1 and a value does not fit");
            let username = to_latin1(&self.username).ok_or(not_latin1.clone())?;
            (username, Zeroizing::new(to_latin1(password).ok_or(not_latin1)?))
        };
        let realm = challenge.realms.first();
        let realm_value = realm.map(Vec::as_slice).unwrap_or_default();
        let secret = if utf8 {
            let password = Zeroizing::new(latin1_form(&password).into_owned());
            user_secret(&latin1_form(&username), &latin1_form(realm_value), &password)
        } else {
            user_secret(&username, realm_value, &password)
        };
        let input = DigestInput {
            secret: &secret,
            nonce: &challenge.nonce,
            cnonce: self.cnonce.as_bytes(),
            authzid: self.authzid.as_deref().map(str::as_bytes),
            digest_uri: self.digest_uri.as_bytes(),
        };
        let mut out = Vec::new();
        if utf8 {
            push_bare(&mut out, "charset", b"utf-8");
        }
        push_quoted(&mut out, "username", &username);
        if let Some(realm) = realm {
            push_quoted(&mut out, "realm", realm);
        }
        push_quoted(&mut out, "nonce", &challenge.nonce);
        push_bare(&mut out, "nc", NONCE_COUNT);
        push_quoted(&mut out, "cnonce", self.cnonce.as_bytes());
        push_quoted(&mut out, "digest-uri", self.digest_uri.as_bytes());
        push_bare(&mut out, "response", &input.response());
        push_bare(&mut out, "qop", b"auth");
        if let Some(authzid) = &self.authzid {
            push_quoted(&mut out, "authzid", authzid.as_bytes());
        }
        if out.len() > MAX_RESPONSE {
            return Err(SaslError::InvalidCredential("response would exceed 4096 octets"));
        }
        self.state = ClientState::Sent { rspauth: Secret::new(input.rspauth().to_vec()) };
        Ok(Secret::new(out))
    }

    /// Checks `rspauth=...` (RFC 2831 §2.1.3) in constant time.
    fn verify(expected: &Secret, message: &[u8]) -> Result<(), SaslError> {
        let directives = parse_directives(message, MAX_CHALLENGE).map_err(SaslError::MalformedChallenge)?;
        let mut rspauth = None;
        for directive in &directives {
            if directive.name == "rspauth" {
                set_once(&mut rspauth, &directive.value).map_err(SaslError::MalformedChallenge)?;
            }
        }
        let rspauth = rspauth.ok_or(SaslError::ServerNotVerified("no rspauth"))?;
        if ct_eq(&rspauth.to_ascii_lowercase(), expected.expose()) {
            Ok(())
        } else {
            Err(SaslError::ServerNotVerified("wrong rspauth"))
        }
    }
}

impl ClientMechanism for DigestClient {
    fn mechanism(&self) -> Mechanism {
        Mechanism::DigestMd5
    }

    /// DIGEST-MD5 is server-first: no initial response (RFC 2831 §2.1).
    fn initial_response(&mut self) -> Result<Option<Secret>, SaslError> {
        Ok(None)
    }

    fn step(&mut self, challenge: &[u8]) -> Result<Secret, SaslError> {
        match core::mem::replace(&mut self.state, ClientState::Failed) {
            ClientState::Start => self.respond(challenge),
            ClientState::Sent { rspauth } => {
                Self::verify(&rspauth, challenge)?;
                self.state = ClientState::Verified;
                Ok(Secret::default())
            }
            ClientState::Verified | ClientState::Failed => Err(SaslError::UnexpectedChallenge),
        }
    }

    /// Success is only believed after a matching `rspauth`, seen as a challenge or carried
    /// here as additional data with the outcome (RFC 2831 §2.1.3).
    fn finish(&mut self, additional: Option<&[u8]>) -> Result<(), SaslError> {
        match core::mem::replace(&mut self.state, ClientState::Failed) {
            ClientState::Verified => {
                self.state = ClientState::Verified;
                Ok(())
            }
            ClientState::Sent { rspauth } => match additional {
                Some(message) => {
                    Self::verify(&rspauth, message)?;
                    self.state = ClientState::Verified;
                    Ok(())
                }
                None => Err(SaslError::ServerNotVerified("success without rspauth")),
            },
            ClientState::Start | ClientState::Failed => {
                Err(SaslError::ServerNotVerified("success before the exchange completed"))
            }
        }
    }
}

pub(super) fn server(context: &ServerContext, rng: &mut dyn Random) -> Result<Box<dyn ServerMechanism>, SaslError> {
    let nonce = nonce(rng, NONCE_LEN);
    Ok(Box::new(DigestServer::new(context, nonce)?))
}

/// A checked digest-response waiting for the user's secret.
#[derive(Debug)]
struct Pending {
    username: String,
    username_wire: Vec<u8>,
    realm: String,
    realm_wire: Vec<u8>,
    authzid: Option<String>,
    cnonce: Vec<u8>,
    digest_uri: Vec<u8>,
    response: Secret,
    utf8: bool,
}

#[derive(Debug)]
enum ServerState {
    Start,
    WaitingResponse,
    Asking(Box<Pending>),
    /// `rspauth` sent; the client's empty response completes the exchange.
    WaitingEmpty(Identity),
    Authorizing(Identity),
    Done,
}

/// DIGEST-MD5 server: challenges, checks the response, asks for the secret, proves itself.
#[derive(Debug)]
struct DigestServer {
    service: String,
    host: String,
    host_aliases: Vec<String>,
    nonce: String,
    state: ServerState,
}

/// Fields of a digest-response (RFC 2831 §2.1.2) before they are checked.
#[derive(Default)]
struct RawResponse<'a> {
    username: Option<&'a [u8]>,
    realm: Option<&'a [u8]>,
    nonce: Option<&'a [u8]>,
    cnonce: Option<&'a [u8]>,
    nc: Option<&'a [u8]>,
    qop: Option<&'a [u8]>,
    digest_uri: Option<&'a [u8]>,
    response: Option<&'a [u8]>,
    maxbuf: Option<&'a [u8]>,
    charset: Option<&'a [u8]>,
    cipher: Option<&'a [u8]>,
    authzid: Option<&'a [u8]>,
}

impl<'a> RawResponse<'a> {
    fn collect(directives: &'a [Directive]) -> Result<Self, &'static str> {
        let mut raw = Self::default();
        for directive in directives {
            let slot = match directive.name.as_str() {
                "username" => &mut raw.username,
                "realm" => &mut raw.realm,
                "nonce" => &mut raw.nonce,
                "cnonce" => &mut raw.cnonce,
                "nc" => &mut raw.nc,
                "qop" => &mut raw.qop,
                "digest-uri" => &mut raw.digest_uri,
                "response" => &mut raw.response,
                "maxbuf" => &mut raw.maxbuf,
                "charset" => &mut raw.charset,
                "cipher" => &mut raw.cipher,
                "authzid" => &mut raw.authzid,
                _ => continue,
            };
            set_once(slot, &directive.value)?;
        }
        Ok(raw)
    }
}

impl DigestServer {
    fn new(context: &ServerContext, nonce: String) -> Result<Self, SaslError> {
        if !identity_is_clean(context.host.as_bytes()) || !identity_is_clean(context.service.as_bytes()) {
            return Err(SaslError::InvalidCredential("CR, LF or NUL in the service or host"));
        }
        Ok(Self {
            service: context.service.clone(),
            host: context.host.clone(),
            host_aliases: context.host_aliases.clone(),
            nonce,
            state: ServerState::Start,
        })
    }

    /// The digest-challenge (RFC 2831 §2.1.1).
    fn challenge(&self) -> Vec<u8> {
        let mut out = Vec::new();
        push_quoted(&mut out, "realm", self.host.as_bytes());
        push_quoted(&mut out, "nonce", self.nonce.as_bytes());
        push_quoted(&mut out, "qop", b"auth");
        push_bare(&mut out, "charset", b"utf-8");
        push_bare(&mut out, "algorithm", b"md5-sess");
        out
    }

    /// Checks a digest-response against this exchange (RFC 2831 §2.1.2). Never echoes a value.
    fn check(&self, response: &[u8]) -> Result<Pending, &'static str> {
        let directives = parse_directives(response, MAX_RESPONSE)?;
        let raw = RawResponse::collect(&directives)?;
        let utf8 = match raw.charset {
            None => false,
            Some(c) if c.eq_ignore_ascii_case(b"utf-8") => true,
            Some(_) => return Err("charset must be utf-8"),
        };
        let username_wire = raw.username.ok_or("no username")?;
        if username_wire.is_empty() {
            return Err("empty username");
        }
        let realm_wire = raw.realm.unwrap_or_default();
        let authzid_wire = raw.authzid.filter(|a| !a.is_empty());
        for value in [Some(username_wire), Some(realm_wire), authzid_wire].into_iter().flatten() {
            if !identity_is_clean(value) {
                return Err("CR, LF or NUL in an identity");
            }
        }
        if !raw.nonce.is_some_and(|n| ct_eq(n, self.nonce.as_bytes())) {
            return Err("nonce does not match the challenge");
        }
        if raw.nc != Some(NONCE_COUNT) {
            return Err("nc must be 00000001");
        }
        if !raw.qop.is_none_or(|q| q.eq_ignore_ascii_case(b"auth")) {
            return Err("qop must be auth");
        }
        let cnonce = raw.cnonce.filter(|c| !c.is_empty()).ok_or("no cnonce")?;
        if let Some(maxbuf) = raw.maxbuf {
            parse_maxbuf(maxbuf)?;
        }
        let _ = raw.cipher; // only meaningful with auth-conf, which is refused above
        let digest_uri = raw.digest_uri.ok_or("no digest-uri")?;
        self.check_digest_uri(digest_uri)?;
        let response = raw.response.ok_or("no response")?;
        if response.len() != 32 || !response.iter().all(u8::is_ascii_hexdigit) {
            return Err("response is not 32 hex digits");
        }
        let username = wire_text(username_wire, utf8).ok_or("username is not UTF-8")?;
        let realm = wire_text(realm_wire, utf8).ok_or("realm is not UTF-8")?;
        let authzid = match authzid_wire {
            Some(a) => Some(core::str::from_utf8(a).map_err(|_| "authzid is not UTF-8")?.to_string()),
            None => None,
        };
        Ok(Pending {
            username,
            username_wire: username_wire.to_vec(),
            realm,
            realm_wire: realm_wire.to_vec(),
            authzid,
            cnonce: cnonce.to_vec(),
            digest_uri: digest_uri.to_vec(),
            response: Secret::new(response.to_ascii_lowercase()),
            utf8,
        })
    }

    /// `digest-uri = serv-type "/" host [ "/" serv-name ]`: the service must be ours and the
    /// host our name or one of its aliases (RFC 2831 §2.1.2, compared case-insensitively).
    fn check_digest_uri(&self, uri: &[u8]) -> Result<(), &'static str> {
        let mut parts = uri.splitn(3, |&b| b == b'/');
        let (Some(serv_type), Some(host)) = (parts.next(), parts.next()) else {
            return Err("digest-uri is not serv-type/host");
        };
        if !serv_type.eq_ignore_ascii_case(self.service.as_bytes()) {
            return Err("digest-uri names another service");
        }
        let ours = |name: &String| host.eq_ignore_ascii_case(name.as_bytes());
        if !ours(&self.host) && !self.host_aliases.iter().any(ours) {
            return Err("digest-uri names another host");
        }
        Ok(())
    }

    /// Checks the client's response against each candidate secret (all are computed and
    /// compared, in constant time) and answers with the `rspauth` of the one that matched.
    fn verify(&mut self, pending: Pending, secrets: &[Zeroizing<[u8; 16]>]) -> ServerStep {
        let mut matched = None;
        for secret in secrets {
            let input = DigestInput {
                secret,
                nonce: self.nonce.as_bytes(),
                cnonce: &pending.cnonce,
                authzid: pending.authzid.as_deref().map(str::as_bytes),
                digest_uri: &pending.digest_uri,
            };
            if ct_eq(&input.response(), pending.response.expose()) && matched.is_none() {
                matched = Some(input.rspauth());
            }
        }
        let Some(rspauth) = matched else {
            return ServerStep::Failure(AuthFailure::Credentials);
        };
        let mut challenge = b"rspauth=".to_vec();
        challenge.extend_from_slice(&rspauth);
        let authzid = pending.authzid.filter(|a| *a != pending.username);
        self.state = ServerState::WaitingEmpty(Identity { authcid: pending.username, authzid });
        ServerStep::Challenge(challenge)
    }

    /// The secrets a client knowing `password` may have used: without `charset`, the
    /// ISO-8859-1 octets; with `charset=utf-8`, each of user name, realm and password as sent
    /// or in RFC 2831 §2.1.2.1's ISO-8859-1 form (see the module docs), duplicates dropped.
    fn password_secrets(pending: &Pending, password: &str) -> Vec<Zeroizing<[u8; 16]>> {
        let (username, realm) = (pending.username_wire.as_slice(), pending.realm_wire.as_slice());
        if !pending.utf8 {
            // A password outside ISO-8859-1 cannot have been sent without charset.
            return to_latin1(password).map(|p| user_secret(username, realm, &Zeroizing::new(p))).into_iter().collect();
        }
        let forms = |value: &[u8]| -> Vec<Zeroizing<Vec<u8>>> {
            let converted = latin1_form(value);
            let mut forms = alloc::vec![Zeroizing::new(value.to_vec())];
            if let Cow::Owned(converted) = converted {
                forms.push(Zeroizing::new(converted));
            }
            forms
        };
        let (usernames, realms, passwords) = (forms(username), forms(realm), forms(password.as_bytes()));
        let mut secrets = Vec::new();
        for username in &usernames {
            for realm in &realms {
                for password in &passwords {
                    secrets.push(user_secret(username, realm, password));
                }
            }
        }
        secrets
    }
}

impl ServerMechanism for DigestServer {
    fn mechanism(&self) -> Mechanism {
        Mechanism::DigestMd5
    }

    /// Sends the challenge. An initial response is refused: subsequent authentication
    /// (RFC 2831 §2.2) is not supported; an empty one is ignored.
    fn start(&mut self, initial_response: Option<&[u8]>) -> ServerStep {
        if !matches!(self.state, ServerState::Start) {
            self.state = ServerState::Done;
            return ServerStep::Failure(AuthFailure::Misuse("start called twice"));
        }
        if initial_response.is_some_and(|r| !r.is_empty()) {
            self.state = ServerState::Done;
            return ServerStep::Failure(AuthFailure::Malformed("DIGEST-MD5 takes no initial response"));
        }
        self.state = ServerState::WaitingResponse;
        ServerStep::Challenge(self.challenge())
    }

    fn step(&mut self, response: &[u8]) -> ServerStep {
        match core::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::WaitingResponse => match self.check(response) {
                Ok(pending) => {
                    let request = CredentialRequest::DigestSecret {
                        username: pending.username.clone(),
                        realm: pending.realm.clone(),
                    };
                    self.state = ServerState::Asking(Box::new(pending));
                    ServerStep::Ask(request)
                }
                Err(reason) => ServerStep::Failure(AuthFailure::Malformed(reason)),
            },
            ServerState::WaitingEmpty(identity) => {
                if !response.is_empty() {
                    return ServerStep::Failure(AuthFailure::Malformed("the final response must be empty"));
                }
                match identity.authzid.clone() {
                    Some(authzid) => {
                        let request = CredentialRequest::Authorize { authcid: identity.authcid.clone(), authzid };
                        self.state = ServerState::Authorizing(identity);
                        ServerStep::Ask(request)
                    }
                    None => ServerStep::Success { identity, additional: None },
                }
            }
            _ => ServerStep::Failure(AuthFailure::Misuse("no response expected")),
        }
    }

    fn answer(&mut self, answer: CredentialAnswer) -> ServerStep {
        match core::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::Asking(pending) => match answer {
                CredentialAnswer::Password(password) => {
                    let Some(password) = password.expose_str() else {
                        return ServerStep::Failure(AuthFailure::Misuse("password is not UTF-8"));
                    };
                    let secrets = Self::password_secrets(&pending, password);
                    self.verify(*pending, &secrets)
                }
                CredentialAnswer::DigestHa1(ha1) => match <[u8; 16]>::try_from(ha1.expose()) {
                    Ok(secret) => self.verify(*pending, &[Zeroizing::new(secret)]),
                    Err(_) => ServerStep::Failure(AuthFailure::Misuse("DIGEST-MD5 HA1 must be 16 octets")),
                },
                answer => ServerStep::Failure(super::plain::deny(answer)),
            },
            ServerState::Authorizing(identity) => match answer {
                CredentialAnswer::Verified => ServerStep::Success { identity, additional: None },
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
    use alloc::vec;
    use proptest::prelude::*;

    const IMAP_CHALLENGE: &[u8] =
        b"realm=\"elwood.innosoft.com\",nonce=\"OA6MG9tEQGm2hh\",qop=\"auth\",algorithm=md5-sess,charset=utf-8";
    const IMAP_RESPONSE: &[u8] = b"charset=utf-8,username=\"chris\",realm=\"elwood.innosoft.com\",\
nonce=\"OA6MG9tEQGm2hh\",nc=00000001,cnonce=\"OA6MHXh6VqTrRk\",digest-uri=\"imap/elwood.innosoft.com\",\
response=d388dad90d4bbd760a152321f2143af7,qop=auth";
    const IMAP_RSPAUTH: &[u8] = b"rspauth=ea40f60335c427b5527b84dbabcdfffd";

    /// One RFC 2831 §4 example: (service, nonce, cnonce, HEX(H(A1)), response, rspauth,
    /// response with authzid `chris` appended to A1).
    struct Example {
        service: &'static str,
        nonce: &'static str,
        cnonce: &'static str,
        a1_hex: &'static [u8],
        response: &'static [u8],
        rspauth: &'static [u8],
        authzid_response: &'static [u8],
    }

    const EXAMPLES: [Example; 2] = [
        Example {
            service: "imap",
            nonce: "OA6MG9tEQGm2hh",
            cnonce: "OA6MHXh6VqTrRk",
            a1_hex: b"a2549853149b0536f01f0b850c643c57",
            response: b"d388dad90d4bbd760a152321f2143af7",
            rspauth: b"ea40f60335c427b5527b84dbabcdfffd",
            authzid_response: b"b1b19eb65cf78f4fa5b9fc515757b655",
        },
        Example {
            service: "acap",
            nonce: "OA9BSXrbuRhWay",
            cnonce: "OA9BSuZWMSpW8m",
            a1_hex: b"b62e36ab7dd57c82c296186c0f062f9e",
            response: b"6084c6db3fede7352c551284490fd0fc",
            rspauth: b"2f0b3d7c3c2e486600ef710726aa2eae",
            authzid_response: b"aa4e81f1c6656350f7bce05d436665de",
        },
    ];

    const REALM: &str = "elwood.innosoft.com";

    fn example_challenge(example: &Example) -> Vec<u8> {
        alloc::format!("realm=\"{REALM}\",nonce=\"{}\",qop=\"auth\",algorithm=md5-sess,charset=utf-8", example.nonce)
            .into_bytes()
    }

    fn rfc_client(example: &Example, authzid: Option<&str>) -> DigestClient {
        let mut creds = Credentials::password("chris", "secret");
        creds.authzid = authzid.map(String::from);
        let ctx = ClientContext::new(example.service, REALM);
        DigestClient::new(&creds, &ctx, example.cnonce.into()).unwrap()
    }

    fn rfc_server(example: &Example) -> DigestServer {
        DigestServer::new(&ServerContext::new(example.service, REALM), example.nonce.into()).unwrap()
    }

    fn value_of(message: &[u8], name: &str) -> Vec<u8> {
        let directives = parse_directives(message, MAX_RESPONSE).unwrap();
        directives.into_iter().find(|d| d.name == name).map(|d| d.value).unwrap()
    }

    /// RFC 2831 §4: both examples, the digest values themselves.
    #[test]
    fn rfc2831_digest_values() {
        let secret = user_secret(b"chris", REALM.as_bytes(), b"secret");
        for example in &EXAMPLES {
            let digest_uri = alloc::format!("{}/{REALM}", example.service);
            let mut input = DigestInput {
                secret: &secret,
                nonce: example.nonce.as_bytes(),
                cnonce: example.cnonce.as_bytes(),
                authzid: None,
                digest_uri: digest_uri.as_bytes(),
            };
            assert_eq!(input.a1_hex().as_slice(), example.a1_hex);
            assert_eq!(&input.response(), example.response);
            assert_eq!(&input.rspauth(), example.rspauth);
            input.authzid = Some(b"chris");
            assert_eq!(&input.response(), example.authzid_response, "authzid diagnostic");
        }
        // The ACAP example's HEX(H(A1)) with authzid `chris` (a value other suites assert).
        let input = DigestInput {
            secret: &secret,
            nonce: b"OA9BSXrbuRhWay",
            cnonce: b"OA9BSuZWMSpW8m",
            authzid: Some(b"chris"),
            digest_uri: b"acap/elwood.innosoft.com",
        };
        assert_eq!(input.a1_hex().as_slice(), b"7f94ea5b1eb1b0573cca321e2b517b63");
    }

    /// The trap: A1 starts with the raw 16 octets of H(user:realm:pass), not their hex.
    #[test]
    fn rfc2831_a1_uses_raw_secret_not_hex() {
        let secret = user_secret(b"chris", REALM.as_bytes(), b"secret");
        let hex_secret = hex(&secret);
        let wrong = hex(&md5(&[&hex_secret, b":OA6MG9tEQGm2hh:OA6MHXh6VqTrRk"]));
        assert_ne!(&wrong, EXAMPLES[0].a1_hex);
    }

    /// RFC 2831 §4 IMAP example, client side, byte for byte (and the base64 forms).
    #[test]
    fn rfc2831_imap_client_exchange() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        assert_eq!(
            b64.encode(IMAP_CHALLENGE),
            "cmVhbG09ImVsd29vZC5pbm5vc29mdC5jb20iLG5vbmNlPSJPQTZNRzl0RVFHbTJoaCIscW9wPSJhdXRoIixhbGdvcml0aG09bWQ1LXNlc3MsY2hhcnNldD11dGYtOA=="
        );
        let mut client = rfc_client(&EXAMPLES[0], None);
        assert_eq!(client.initial_response().unwrap(), None);
        let response = client.step(IMAP_CHALLENGE).unwrap();
        assert_eq!(response.expose(), IMAP_RESPONSE);
        assert_eq!(
            b64.encode(response.expose()),
            "Y2hhcnNldD11dGYtOCx1c2VybmFtZT0iY2hyaXMiLHJlYWxtPSJlbHdvb2QuaW5ub3NvZnQuY29tIixub25jZT0iT0E2TUc5dEVRR20yaGgiLG5jPTAwMDAwMDAxLGNub25jZT0iT0E2TUhYaDZWcVRyUmsiLGRpZ2VzdC11cmk9ImltYXAvZWx3b29kLmlubm9zb2Z0LmNvbSIscmVzcG9uc2U9ZDM4OGRhZDkwZDRiYmQ3NjBhMTUyMzIxZjIxNDNhZjcscW9wPWF1dGg="
        );
        assert_eq!(b64.encode(IMAP_RSPAUTH), "cnNwYXV0aD1lYTQwZjYwMzM1YzQyN2I1NTI3Yjg0ZGJhYmNkZmZmZA==");
        assert!(client.step(IMAP_RSPAUTH).unwrap().is_empty());
        client.finish(None).unwrap();
        assert_eq!(client.step(b"rspauth=00"), Err(SaslError::UnexpectedChallenge));
    }

    /// RFC 2831 §4 both examples, client side: response, rspauth, and the authzid variant.
    #[test]
    fn rfc2831_examples_client() {
        for example in &EXAMPLES {
            let mut client = rfc_client(example, None);
            let response = client.step(&example_challenge(example)).unwrap();
            assert_eq!(value_of(response.expose(), "response"), example.response);
            let mut rspauth = b"rspauth=".to_vec();
            rspauth.extend_from_slice(example.rspauth);
            assert!(client.step(&rspauth).unwrap().is_empty());
            client.finish(None).unwrap();

            let mut client = rfc_client(example, Some("chris"));
            let response = client.step(&example_challenge(example)).unwrap();
            assert_eq!(value_of(response.expose(), "response"), example.authzid_response);
            assert_eq!(value_of(response.expose(), "authzid"), b"chris");
        }
    }

    /// RFC 2831 §4 both examples, server side: the challenge, the rspauth, with a password
    /// and with the stored HA1.
    #[test]
    fn rfc2831_examples_server() {
        for example in &EXAMPLES {
            for answer in [
                CredentialAnswer::Password(Secret::from("secret")),
                CredentialAnswer::DigestHa1(Secret::new(user_secret(b"chris", REALM.as_bytes(), b"secret").to_vec())),
            ] {
                let mut server = rfc_server(example);
                let ServerStep::Challenge(challenge) = server.start(None) else { panic!("no challenge") };
                let parsed = parse_challenge(&challenge).unwrap();
                assert_eq!(
                    (parsed.nonce.as_slice(), parsed.realms, parsed.utf8),
                    (example.nonce.as_bytes(), vec![REALM.as_bytes().to_vec()], true)
                );
                let response = alloc::format!(
                    "charset=utf-8,username=\"chris\",realm=\"{REALM}\",nonce=\"{}\",nc=00000001,cnonce=\"{}\",digest-uri=\"{}/{REALM}\",response={},qop=auth",
                    example.nonce,
                    example.cnonce,
                    example.service,
                    core::str::from_utf8(example.response).unwrap()
                );
                assert_eq!(
                    server.step(response.as_bytes()),
                    ServerStep::Ask(CredentialRequest::DigestSecret { username: "chris".into(), realm: REALM.into() })
                );
                let mut rspauth = b"rspauth=".to_vec();
                rspauth.extend_from_slice(example.rspauth);
                assert_eq!(server.answer(answer), ServerStep::Challenge(rspauth));
                assert_eq!(
                    server.step(b""),
                    ServerStep::Success {
                        identity: Identity { authcid: "chris".into(), authzid: None },
                        additional: None
                    }
                );
            }
        }
    }

    /// One DIGEST-MD5 exchange from peer-transcripts.md, as the peer computed it; `rspauth`
    /// is `None` where the peer refused (wrong password).
    struct PeerDigest {
        service: &'static str,
        realm: &'static str,
        user: &'static str,
        password: &'static str,
        nonce: &'static str,
        cnonce: &'static str,
        response: &'static [u8],
        rspauth: Option<&'static [u8]>,
    }

    /// §1 Dovecot POP3, §2 Dovecot submission, §3 Exim (Cyrus SASL), in that order.
    const PEER_DIGESTS: [PeerDigest; 9] = [
        PeerDigest {
            service: "pop",
            realm: "",
            user: "alice",
            password: "wonderland",
            nonce: "2wVqfLATrnjcrNZ8ykSkxg==",
            cnonce: "oBRPKTQJ68zxzSHq",
            response: b"cbbcb61ff2f142cbe27aebaeba5be638",
            rspauth: Some(b"f2d24a9e1f8b1eb221fa938e059f2838"),
        },
        PeerDigest {
            service: "pop",
            realm: "",
            user: "odd,user=name",
            password: "p\u{e4}ssw\u{f6}rd\u{20ac}",
            nonce: "CCVSO4LBuF6+DWNlDNoThw==",
            cnonce: "SyiAxyDGOITLt/Wd",
            response: b"dffbcc0578ba93401f8c52209dd0c37a",
            rspauth: Some(b"36d44480d765d1564a903ed5c28521d3"),
        },
        PeerDigest {
            service: "pop",
            realm: "",
            user: "alice",
            password: "wrong-secret",
            nonce: "3eXRsUeaxXqMGqib/PCw9g==",
            cnonce: "VkWRQoR6uG4JU5L4",
            response: b"da2d6ef98ac161b75b556a4c568c416a",
            rspauth: None,
        },
        PeerDigest {
            service: "smtp",
            realm: "",
            user: "alice",
            password: "wonderland",
            nonce: "fUIWOHNqj9mjrimhsFqrwQ==",
            cnonce: "mBwio6Wz/1FV7VmC",
            response: b"3c041cd57c773d503f8dab0d0c347620",
            rspauth: Some(b"98b5303db48b921bb99a53142ae7b371"),
        },
        PeerDigest {
            service: "smtp",
            realm: "",
            user: "odd,user=name",
            password: "p\u{e4}ssw\u{f6}rd\u{20ac}",
            nonce: "YKG/tdWKeNKss0hvtaBaDQ==",
            cnonce: "F921BHK/LIzCZQYa",
            response: b"8a94b6fe1f8115c99c0247a7193d0004",
            rspauth: Some(b"265174fcdcf7e6d4abb6bc4b4e0de664"),
        },
        PeerDigest {
            service: "smtp",
            realm: "",
            user: "alice",
            password: "wrong-secret",
            nonce: "xXtFGBt5la4vhM1yWOsWKQ==",
            cnonce: "PF6XtKP1zOuMaz/O",
            response: b"ba76369625a6fefc6009708179b64327",
            rspauth: None,
        },
        PeerDigest {
            service: "smtp",
            realm: "localhost",
            user: "alice",
            password: "wonderland",
            nonce: "WUIvsZu3mVLUHxfpyG1C/rYfzSXecZca5I97ieHrYKo=",
            cnonce: "n3YOqzk1nIVLUw0t",
            response: b"29ab8914a27b8ed69483ee00d682c214",
            rspauth: Some(b"57c28d28e0a5b90fc7d0fc8c4ffa8dd1"),
        },
        PeerDigest {
            service: "smtp",
            realm: "localhost",
            user: "odd,user=name",
            password: "p\u{e4}ssw\u{f6}rd\u{20ac}",
            nonce: "uRuiwF5FdYT/+32+RaIU7N3d9Y+wAB86PKdm8HDER8M=",
            cnonce: "34vWH1M6T17W2YDK",
            response: b"342c428dec53bad7b9823be9fff17b2a",
            rspauth: Some(b"b400b9f7244caf70f06e624d4480c6f4"),
        },
        PeerDigest {
            service: "smtp",
            realm: "localhost",
            user: "alice",
            password: "wrong-secret",
            nonce: "WVRP9QWiAM9fgOzHpjO7VXvgqmzg7Um5edKXm7z3chg=",
            cnonce: "RqKR+gliM7Qo+Cd7",
            response: b"8466514c326ebc43826d0ce50fb69cd3",
            rspauth: None,
        },
    ];

    /// Peer transcripts, client side: with the transcript's cnonce our client computes the
    /// peer-verified `response` and verifies the peer's `rspauth` (the transport replays
    /// cannot compare this line, since our cnonce differs).
    #[test]
    fn peer_digest_md5_client_known_answers() {
        for peer in &PEER_DIGESTS {
            let challenge = alloc::format!(
                "realm=\"{}\",nonce=\"{}\",qop=\"auth\",charset=\"utf-8\",algorithm=\"md5-sess\"",
                peer.realm,
                peer.nonce
            );
            let mut client = DigestClient::new(
                &Credentials::password(peer.user, peer.password),
                &ClientContext::new(peer.service, "localhost"),
                peer.cnonce.into(),
            )
            .unwrap();
            let message = client.step(challenge.as_bytes()).unwrap();
            assert_eq!(value_of(message.expose(), "response"), peer.response, "{}", peer.nonce);
            assert_eq!(value_of(message.expose(), "username"), peer.user.as_bytes());
            assert_eq!(value_of(message.expose(), "realm"), peer.realm.as_bytes());
            assert_eq!(
                value_of(message.expose(), "digest-uri"),
                alloc::format!("{}/localhost", peer.service).as_bytes()
            );
            if let Some(rspauth) = peer.rspauth {
                let mut line = b"rspauth=".to_vec();
                line.extend_from_slice(rspauth);
                assert!(client.step(&line).unwrap().is_empty());
                client.finish(None).unwrap();
            }
        }
    }

    /// The same exchanges, server side: the peer client's message verified by our server,
    /// which answers the peer's `rspauth`, or fails when the password is wrong.
    #[test]
    fn peer_digest_md5_server_known_answers() {
        for peer in &PEER_DIGESTS {
            let message = alloc::format!(
                "charset=utf-8,username=\"{}\",realm=\"{}\",nonce=\"{}\",cnonce=\"{}\",nc=00000001,qop=auth,digest-uri=\"{}/localhost\",response={}",
                peer.user,
                peer.realm,
                peer.nonce,
                peer.cnonce,
                peer.service,
                core::str::from_utf8(peer.response).unwrap()
            );
            let mut server =
                DigestServer::new(&ServerContext::new(peer.service, "localhost"), peer.nonce.into()).unwrap();
            assert!(matches!(server.start(None), ServerStep::Challenge(_)));
            assert_eq!(
                server.step(message.as_bytes()),
                ServerStep::Ask(CredentialRequest::DigestSecret {
                    username: peer.user.into(),
                    realm: peer.realm.into()
                })
            );
            // The refused sessions were computed with `wrong-secret`; the account has `wonderland`.
            let stored = if peer.rspauth.is_some() { peer.password } else { "wonderland" };
            let step = server.answer(CredentialAnswer::Password(Secret::from(stored)));
            match peer.rspauth {
                Some(rspauth) => {
                    let mut line = b"rspauth=".to_vec();
                    line.extend_from_slice(rspauth);
                    assert_eq!(step, ServerStep::Challenge(line));
                    assert_eq!(
                        server.step(b""),
                        ServerStep::Success {
                            identity: Identity { authcid: peer.user.into(), authzid: None },
                            additional: None
                        }
                    );
                }
                None => assert_eq!(step, ServerStep::Failure(AuthFailure::Credentials)),
            }
        }
    }

    /// The server's challenge is the RFC's, byte for byte, apart from directive order.
    #[test]
    fn rfc2831_server_challenge_shape() {
        let mut server = rfc_server(&EXAMPLES[0]);
        assert_eq!(
            server.start(None),
            ServerStep::Challenge(
                b"realm=\"elwood.innosoft.com\",nonce=\"OA6MG9tEQGm2hh\",qop=\"auth\",charset=utf-8,algorithm=md5-sess"
                    .to_vec()
            )
        );
    }

    #[test]
    fn rfc2831_imap_server_exchange() {
        let mut server = rfc_server(&EXAMPLES[0]);
        assert!(matches!(server.start(Some(b"")), ServerStep::Challenge(_)));
        assert!(matches!(server.step(IMAP_RESPONSE), ServerStep::Ask(_)));
        assert_eq!(
            server.answer(CredentialAnswer::Password(Secret::from("secret"))),
            ServerStep::Challenge(IMAP_RSPAUTH.to_vec())
        );
        assert!(matches!(server.step(b""), ServerStep::Success { .. }));
    }

    /// B29: LWS around commas, commas inside quoted lists, the client picks `auth`.
    #[test]
    fn field_b29_quoted_lists_and_whitespace() {
        let challenge = b"realm=\"example.org\", nonce=\"OA6MG9tEQGm2hh\",qop=\"auth,auth-int,auth-conf\",\
cipher=\"rc4-40,rc4-56,rc4,des,3des\",maxbuf=65536,charset=utf-8,algorithm=md5-sess";
        let directives = parse_directives(challenge, MAX_CHALLENGE).unwrap();
        let names: Vec<&str> = directives.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["realm", "nonce", "qop", "cipher", "maxbuf", "charset", "algorithm"]);
        let qop = &directives[2].value;
        assert_eq!(
            token_list(qop).collect::<Vec<_>>(),
            [b"auth".to_vec(), b"auth-int".to_vec(), b"auth-conf".to_vec()]
        );
        assert_eq!(directives[3].value, b"rc4-40,rc4-56,rc4,des,3des");
        let parsed = parse_challenge(challenge).unwrap();
        assert_eq!(parsed.nonce, b"OA6MG9tEQGm2hh");
        assert_eq!(parsed.realms, [b"example.org".to_vec()]);
        assert!(parsed.utf8);
        let mut client =
            DigestClient::new(&Credentials::password("u", "p"), &ClientContext::new("smtp", "example.org"), "c".into())
                .unwrap();
        let response = client.step(challenge).unwrap();
        assert_eq!(value_of(response.expose(), "qop"), b"auth");
        assert_eq!(value_of(response.expose(), "realm"), b"example.org");
        assert_eq!(value_of(response.expose(), "nonce"), b"OA6MG9tEQGm2hh");
    }

    /// B29 corollaries: whitespace everywhere the #rule allows it, folded lines, empty elements.
    #[test]
    fn field_b29_lws_and_empty_elements() {
        let challenge = b" ,, realm = \"a\" ,\r\n\trealm=\"b\",,nonce =\t\"n\" ,algorithm= md5-sess , ";
        let parsed = parse_challenge(challenge).unwrap();
        assert_eq!(parsed.realms, [b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(parsed.nonce, b"n");
        assert!(!parsed.utf8);
        assert_eq!(parse_directives(b"", 10).unwrap(), []);
        assert_eq!(parse_directives(b" , ,", 10).unwrap(), []);
    }

    #[test]
    fn missing_qop_means_auth_and_unknown_directives_are_ignored() {
        let parsed = parse_challenge(b"nonce=\"n\",algorithm=md5-sess,x-future=\"a,b\",token=y").unwrap();
        assert_eq!(parsed.nonce, b"n");
        assert!(parsed.realms.is_empty());
        assert!(parse_challenge(b"nonce=\"n\",algorithm=md5-sess,qop=\"auth-int\"").is_err());
        assert!(parse_challenge(b"nonce=\"n\",algorithm=MD5-SESS,qop=\"AUTH\"").is_ok());
    }

    /// No realm offered: the client sends none and hashes with the empty realm (RFC 2831
    /// §2.1.2). An empty offered realm (Dovecot) is echoed as `realm=""`.
    #[test]
    fn realm_choice() {
        let ctx = ClientContext::new("smtp", "mail.example");
        let creds = Credentials::password("u", "p");
        let mut client = DigestClient::new(&creds, &ctx, "c".into()).unwrap();
        let response = client.step(b"nonce=\"n\",algorithm=md5-sess").unwrap();
        let directives = parse_directives(response.expose(), MAX_RESPONSE).unwrap();
        assert!(!directives.iter().any(|d| d.name == "realm"));
        assert!(!directives.iter().any(|d| d.name == "charset"));
        let secret = user_secret(b"u", b"", b"p");
        let input =
            DigestInput { secret: &secret, nonce: b"n", cnonce: b"c", authzid: None, digest_uri: b"smtp/mail.example" };
        assert_eq!(value_of(response.expose(), "response"), input.response());

        let mut client = DigestClient::new(&creds, &ctx, "c".into()).unwrap();
        let response =
            client.step(b"realm=\"\",nonce=\"n\",qop=\"auth\",charset=\"utf-8\",algorithm=md5-sess").unwrap();
        assert!(response.expose().windows(9).any(|w| w == b"realm=\"\","));
        assert_eq!(value_of(response.expose(), "response"), input.response());

        let mut client = DigestClient::new(&creds, &ctx, "c".into()).unwrap();
        let response = client.step(b"realm=\"localhost\",realm=\"other\",nonce=\"n\",algorithm=md5-sess").unwrap();
        assert_eq!(value_of(response.expose(), "realm"), b"localhost");
    }

    #[test]
    fn escapes_are_decoded_and_encoded() {
        let parsed = parse_directives(br#"a="x\"y\\z\,w",b="\q""#, 100).unwrap();
        assert_eq!(parsed[0].value, br#"x"y\z,w"#);
        assert_eq!(parsed[1].value, b"q");
        let mut out = Vec::new();
        push_quoted(&mut out, "username", br#"a"b\c"#);
        assert_eq!(out, br#"username="a\"b\\c""#);

        // A user name with quotes, backslashes, commas and `=` survives a whole exchange.
        let (client_ok, step) = run_pair("odd,\"user\"=\\name", "pässwörd€", None, "localhost", true);
        assert!(client_ok);
        assert!(
            matches!(step, ServerStep::Success { identity: Identity { ref authcid, .. }, .. } if authcid == "odd,\"user\"=\\name")
        );
    }

    #[test]
    fn duplicates_of_single_valued_directives_are_refused() {
        for name in ["nonce", "qop", "stale", "maxbuf", "charset", "algorithm", "cipher"] {
            let mut challenge = b"realm=\"r\",nonce=\"n\",algorithm=md5-sess,".to_vec();
            let value: &[u8] = match name {
                "nonce" => b"nonce=\"n\"",
                "qop" => b"qop=auth,qop=auth",
                "stale" => b"stale=true,stale=true",
                "maxbuf" => b"maxbuf=1000,maxbuf=1000",
                "charset" => b"charset=utf-8,charset=utf-8",
                "algorithm" => b"algorithm=md5-sess",
                _ => b"cipher=\"rc4\",cipher=\"rc4\"",
            };
            challenge.extend_from_slice(value);
            assert_eq!(parse_challenge(&challenge), Err("a single-valued directive is repeated"), "{name}");
        }
        for name in [
            "username",
            "realm",
            "nonce",
            "cnonce",
            "nc",
            "qop",
            "digest-uri",
            "response",
            "maxbuf",
            "charset",
            "authzid",
        ] {
            let mut server = rfc_server(&EXAMPLES[0]);
            server.start(None);
            let mut response = IMAP_RESPONSE.to_vec();
            response.extend_from_slice(alloc::format!(",{name}=\"1\",{name}=\"1\"").as_bytes());
            assert_eq!(
                server.step(&response),
                ServerStep::Failure(AuthFailure::Malformed("a single-valued directive is repeated")),
                "{name}"
            );
        }
        let mut client = rfc_client(&EXAMPLES[0], None);
        client.step(IMAP_CHALLENGE).unwrap();
        assert!(matches!(client.step(b"rspauth=a,rspauth=b"), Err(SaslError::MalformedChallenge(_))));
    }

    #[test]
    fn limits_rfc2831_sizes() {
        let mut challenge = IMAP_CHALLENGE.to_vec();
        challenge.extend_from_slice(b",x=\"");
        challenge.resize(MAX_CHALLENGE - 1, b'a');
        challenge.push(b'"');
        assert!(parse_challenge(&challenge).is_ok());
        challenge.insert(challenge.len() - 1, b'a');
        assert_eq!(parse_challenge(&challenge), Err("directive list too long"));

        let mut response = IMAP_RESPONSE.to_vec();
        response.extend_from_slice(b",x=\"");
        response.resize(MAX_RESPONSE - 1, b'a');
        response.push(b'"');
        let mut server = rfc_server(&EXAMPLES[0]);
        server.start(None);
        assert!(matches!(server.step(&response), ServerStep::Ask(_)));
        response.insert(response.len() - 1, b'a');
        let mut server = rfc_server(&EXAMPLES[0]);
        server.start(None);
        assert_eq!(server.step(&response), ServerStep::Failure(AuthFailure::Malformed("directive list too long")));

        // A client refuses to build a response over the limit.
        let long = "u".repeat(MAX_RESPONSE);
        let mut client =
            DigestClient::new(&Credentials::password(long, "p"), &ClientContext::new("smtp", "h"), "c".into()).unwrap();
        assert!(matches!(client.step(b"nonce=\"n\",algorithm=md5-sess"), Err(SaslError::InvalidCredential(_))));
    }

    #[test]
    fn malformed_challenges() {
        for challenge in [
            &b""[..],
            b"nonce=\"n\"",
            b"algorithm=md5-sess",
            b"nonce=\"\",algorithm=md5-sess",
            b"nonce=\"n\",algorithm=md5",
            b"nonce=\"n\",algorithm=md5-sess,charset=latin1",
            b"nonce=\"n\",algorithm=md5-sess,maxbuf=abc",
            b"nonce=\"n\",algorithm=md5-sess,maxbuf=16777216",
            b"nonce=\"n,algorithm=md5-sess",
            b"nonce=\"n\" algorithm=md5-sess",
            b"nonce \"n\",algorithm=md5-sess",
            b"=\"n\",algorithm=md5-sess",
            b"nonce=,algorithm=md5-sess",
            b"nonce=\"n\",algorithm=md5-sess,realm=\"a\rb\"",
            b"nonce=\"n\",algorithm=md5-sess,realm=\"a\\\nb\"",
            b"nonce=\"n\",algorithm=md5-sess,realm=\"a\0b\"",
            b"nonce=\"n\",algorithm=md5-sess,x=\"\\",
            b"rspauth=abc",
            b"\xff\xfe",
        ] {
            let mut client = rfc_client(&EXAMPLES[0], None);
            assert!(matches!(client.step(challenge), Err(SaslError::MalformedChallenge(_))), "{challenge:?}");
            assert!(client.step(IMAP_CHALLENGE).is_err(), "a failed client stays failed");
        }
    }

    #[test]
    fn rspauth_is_verified() {
        let mut client = rfc_client(&EXAMPLES[0], None);
        client.step(IMAP_CHALLENGE).unwrap();
        assert_eq!(
            client.step(b"rspauth=ea40f60335c427b5527b84dbabcdfffe"),
            Err(SaslError::ServerNotVerified("wrong rspauth"))
        );
        assert!(matches!(client.finish(None), Err(SaslError::ServerNotVerified(_))));

        let mut client = rfc_client(&EXAMPLES[0], None);
        client.step(IMAP_CHALLENGE).unwrap();
        assert_eq!(client.finish(None), Err(SaslError::ServerNotVerified("success without rspauth")));

        let mut client = rfc_client(&EXAMPLES[0], None);
        client.step(IMAP_CHALLENGE).unwrap();
        assert_eq!(client.step(b"other=1"), Err(SaslError::ServerNotVerified("no rspauth")));

        // rspauth carried with the success outcome, upper-case hex tolerated.
        let mut client = rfc_client(&EXAMPLES[0], None);
        client.step(IMAP_CHALLENGE).unwrap();
        client.finish(Some(b"rspauth=EA40F60335C427B5527B84DBABCDFFFD")).unwrap();

        let mut client = rfc_client(&EXAMPLES[0], None);
        assert!(matches!(client.finish(None), Err(SaslError::ServerNotVerified(_))));
    }

    fn imap_server_after(response: &[u8]) -> ServerStep {
        let mut server = rfc_server(&EXAMPLES[0]);
        server.start(None);
        server.step(response)
    }

    fn replace(from: &str, to: &str) -> Vec<u8> {
        let text = core::str::from_utf8(IMAP_RESPONSE).unwrap();
        assert!(text.contains(from));
        text.replacen(from, to, 1).into_bytes()
    }

    #[test]
    fn server_checks_the_response() {
        let cases: &[(&str, &str, &str)] = &[
            ("nonce=\"OA6MG9tEQGm2hh\"", "nonce=\"OA6MG9tEQGm2hX\"", "nonce does not match the challenge"),
            ("nonce=\"OA6MG9tEQGm2hh\",", "", "nonce does not match the challenge"),
            ("nc=00000001", "nc=00000002", "nc must be 00000001"),
            ("nc=00000001,", "", "nc must be 00000001"),
            ("qop=auth", "qop=auth-int", "qop must be auth"),
            ("qop=auth", "qop=auth-conf", "qop must be auth"),
            ("digest-uri=\"imap/", "digest-uri=\"smtp/", "digest-uri names another service"),
            ("elwood.innosoft.com\",response", "evil.example\",response", "digest-uri names another host"),
            ("digest-uri=\"imap/elwood.innosoft.com\"", "digest-uri=\"imap\"", "digest-uri is not serv-type/host"),
            ("digest-uri=\"imap/elwood.innosoft.com\",", "", "no digest-uri"),
            ("cnonce=\"OA6MHXh6VqTrRk\"", "cnonce=\"\"", "no cnonce"),
            ("response=d388dad90d4bbd760a152321f2143af7", "response=d388", "response is not 32 hex digits"),
            (
                "response=d388dad90d4bbd760a152321f2143af7",
                "response=z388dad90d4bbd760a152321f2143af7",
                "response is not 32 hex digits",
            ),
            ("response=d388dad90d4bbd760a152321f2143af7,", "", "no response"),
            ("username=\"chris\",", "", "no username"),
            ("username=\"chris\"", "username=\"\"", "empty username"),
            ("charset=utf-8", "charset=latin1", "charset must be utf-8"),
            ("qop=auth", "qop=auth,maxbuf=1x", "maxbuf is not a number up to 16777215"),
        ];
        for (from, to, reason) in cases {
            assert_eq!(
                imap_server_after(&replace(from, to)),
                ServerStep::Failure(AuthFailure::Malformed(reason)),
                "{to}"
            );
        }
        let mut not_utf8 = replace("username=\"chris\"", "username=\"chris?\"");
        let at = not_utf8.iter().position(|&b| b == b'?').unwrap();
        not_utf8[at] = 0xff;
        assert_eq!(imap_server_after(&not_utf8), ServerStep::Failure(AuthFailure::Malformed("username is not UTF-8")));
        // A serv-name part and an upper-case host pass the check (the digest then differs).
        let with_serv_name = replace("elwood.innosoft.com\",response", "ELWOOD.innosoft.com/elwood\",response");
        assert!(matches!(imap_server_after(&with_serv_name), ServerStep::Ask(_)));
        // Accepted variations: no qop (auth), upper-case hex, unknown directives.
        for (from, to) in [
            (",qop=auth", ""),
            ("response=d388dad90d4bbd760a152321f2143af7", "response=D388DAD90D4BBD760A152321F2143AF7"),
            ("qop=auth", "qop=auth,x-unknown=\"1,2\",maxbuf=4096,cipher=rc4"),
        ] {
            let mut server = rfc_server(&EXAMPLES[0]);
            server.start(None);
            assert!(matches!(server.step(&replace(from, to)), ServerStep::Ask(_)), "{to}");
            assert_eq!(
                server.answer(CredentialAnswer::Password(Secret::from("secret"))),
                ServerStep::Challenge(IMAP_RSPAUTH.to_vec())
            );
        }
    }

    #[test]
    fn server_rejects_wrong_secrets_and_handles_answers() {
        let secret_of = |answer: CredentialAnswer| {
            let mut server = rfc_server(&EXAMPLES[0]);
            server.start(None);
            server.step(IMAP_RESPONSE);
            server.answer(answer)
        };
        assert_eq!(
            secret_of(CredentialAnswer::Password(Secret::from("wrong"))),
            ServerStep::Failure(AuthFailure::Credentials)
        );
        assert_eq!(
            secret_of(CredentialAnswer::DigestHa1(Secret::new([0u8; 16].to_vec()))),
            ServerStep::Failure(AuthFailure::Credentials)
        );
        assert!(matches!(
            secret_of(CredentialAnswer::DigestHa1(Secret::new([0u8; 15].to_vec()))),
            ServerStep::Failure(AuthFailure::Misuse(_))
        ));
        assert_eq!(secret_of(CredentialAnswer::UnknownUser), ServerStep::Failure(AuthFailure::Credentials));
        assert_eq!(secret_of(CredentialAnswer::Rejected), ServerStep::Failure(AuthFailure::Credentials));
        assert_eq!(secret_of(CredentialAnswer::TemporaryFailure), ServerStep::Failure(AuthFailure::Temporary));
        assert!(matches!(secret_of(CredentialAnswer::Verified), ServerStep::Failure(AuthFailure::Misuse(_))));
        assert!(matches!(
            secret_of(CredentialAnswer::Password(Secret::new(vec![0xff]))),
            ServerStep::Failure(AuthFailure::Misuse(_))
        ));
    }

    #[test]
    fn server_is_driven_in_order() {
        let mut server = rfc_server(&EXAMPLES[0]);
        assert!(matches!(server.start(Some(b"username=\"x\"")), ServerStep::Failure(AuthFailure::Malformed(_))));
        let mut server = rfc_server(&EXAMPLES[0]);
        assert!(matches!(server.step(IMAP_RESPONSE), ServerStep::Failure(AuthFailure::Misuse(_))));
        let mut server = rfc_server(&EXAMPLES[0]);
        assert!(matches!(server.answer(CredentialAnswer::Verified), ServerStep::Failure(AuthFailure::Misuse(_))));
        let mut server = rfc_server(&EXAMPLES[0]);
        server.start(None);
        assert!(matches!(server.start(None), ServerStep::Failure(AuthFailure::Misuse(_))));
        let mut server = rfc_server(&EXAMPLES[0]);
        server.start(None);
        server.step(IMAP_RESPONSE);
        server.answer(CredentialAnswer::Password(Secret::from("secret")));
        assert_eq!(
            server.step(b"x=1"),
            ServerStep::Failure(AuthFailure::Malformed("the final response must be empty"))
        );
        assert!(matches!(server.step(b""), ServerStep::Failure(AuthFailure::Misuse(_))));
    }

    /// B17 for every identity field of a response: username, realm, authzid, quoted or
    /// escaped. The parser refuses the control characters before anything is decoded.
    #[test]
    fn field_b17_line_breaks_in_every_identity_field() {
        for bad in ["a\r\nb", "a\nb", "a\rb", "a\0b", "a\\\r\\\nb"] {
            for (from, to) in [
                ("username=\"chris\"", alloc::format!("username=\"{bad}\"")),
                ("realm=\"elwood.innosoft.com\"", alloc::format!("realm=\"{bad}\"")),
                ("qop=auth", alloc::format!("qop=auth,authzid=\"{bad}\"")),
            ] {
                let step = imap_server_after(&replace(from, &to));
                assert!(matches!(step, ServerStep::Failure(AuthFailure::Malformed(_))), "{to:?}");
            }
        }
        assert!(!identity_is_clean(b"a\nb"));
    }

    /// Authorization identity: sent by the client, checked by the server after rspauth.
    #[test]
    fn authzid_is_asked_for() {
        let creds = Credentials { authzid: Some("boss".into()), ..Credentials::password("chris", "secret") };
        let ctx = ClientContext::new("smtp", "mx.example");
        let mut client = make_client(&Mechanism::DigestMd5, &creds, &ctx, &mut FixedRandom::new(3)).unwrap();
        let mut server =
            make_server(&Mechanism::DigestMd5, &ServerContext::new("smtp", "mx.example"), &mut FixedRandom::new(4))
                .unwrap();
        let ServerStep::Challenge(challenge) = server.start(None) else { panic!() };
        let response = client.step(&challenge).unwrap();
        assert!(matches!(server.step(response.expose()), ServerStep::Ask(CredentialRequest::DigestSecret { .. })));
        let ServerStep::Challenge(rspauth) = server.answer(CredentialAnswer::Password(Secret::from("secret"))) else {
            panic!()
        };
        let last = client.step(&rspauth).unwrap();
        assert_eq!(
            server.step(last.expose()),
            ServerStep::Ask(CredentialRequest::Authorize { authcid: "chris".into(), authzid: "boss".into() })
        );
        assert_eq!(server.answer(CredentialAnswer::Rejected), ServerStep::Failure(AuthFailure::NotAuthorized));
        client.finish(None).unwrap();
    }

    /// Without charset the client sends and hashes ISO-8859-1, and refuses what does not fit.
    #[test]
    fn charset_handling() {
        assert_eq!(latin1_form("pässwörd".as_bytes()).as_ref(), b"p\xe4ssw\xf6rd");
        assert_eq!(latin1_form("pässwörd€".as_bytes()).as_ref(), "pässwörd€".as_bytes());
        assert_eq!(latin1_form(b"\xff").as_ref(), b"\xff");

        let ctx = ClientContext::new("smtp", "h");
        let mut client = DigestClient::new(&Credentials::password("jürgen", "pässwörd"), &ctx, "c".into()).unwrap();
        let response = client.step(b"nonce=\"n\",algorithm=md5-sess").unwrap();
        assert_eq!(value_of(response.expose(), "username"), b"j\xfcrgen");
        let secret = user_secret(b"j\xfcrgen", b"", b"p\xe4ssw\xf6rd");
        let input = DigestInput { secret: &secret, nonce: b"n", cnonce: b"c", authzid: None, digest_uri: b"smtp/h" };
        assert_eq!(value_of(response.expose(), "response"), input.response());

        let mut client = DigestClient::new(&Credentials::password("u", "€"), &ctx, "c".into()).unwrap();
        assert!(matches!(client.step(b"nonce=\"n\",algorithm=md5-sess"), Err(SaslError::InvalidCredential(_))));

        // Server side: a Latin-1 response (no charset) authenticates against a UTF-8 password.
        let mut server = DigestServer::new(&ServerContext::new("smtp", "h"), "n".into()).unwrap();
        server.start(None);
        let response = alloc::format!(
            "username=\"j\u{fc}rgen\",nonce=\"n\",nc=00000001,cnonce=\"c\",digest-uri=\"smtp/h\",response={}",
            core::str::from_utf8(&input.response()).unwrap()
        );
        let response: Vec<u8> = response.chars().map(|c| u8::try_from(u32::from(c)).unwrap()).collect();
        assert_eq!(
            server.step(&response),
            ServerStep::Ask(CredentialRequest::DigestSecret { username: "jürgen".into(), realm: String::new() })
        );
        assert!(matches!(
            server.answer(CredentialAnswer::Password(Secret::from("pässwörd"))),
            ServerStep::Challenge(_)
        ));
    }

    /// With charset=utf-8 the client hashes each value as ISO-8859-1 where it fits (RFC 2831
    /// §2.1.2.1, Cyrus SASL); the server takes that, the UTF-8 as sent (Dovecot) and GNU
    /// SASL's mix (user name as sent, password converted), each with the matching rspauth.
    #[test]
    fn charset_utf8_forms() {
        let challenge = b"realm=\"r\",nonce=\"n\",charset=utf-8,algorithm=md5-sess";
        let ctx = ClientContext::new("smtp", "h");
        let mut client = DigestClient::new(&Credentials::password("jürgen", "pässwörd"), &ctx, "c".into()).unwrap();
        let response = client.step(challenge).unwrap();
        assert_eq!(value_of(response.expose(), "username"), "jürgen".as_bytes());
        let utf8_secret = user_secret("jürgen".as_bytes(), b"r", "pässwörd".as_bytes());
        let rfc_secret = user_secret(b"j\xfcrgen", b"r", b"p\xe4ssw\xf6rd");
        let gsasl_secret = user_secret("jürgen".as_bytes(), b"r", b"p\xe4ssw\xf6rd");
        let input = |secret| DigestInput { secret, nonce: b"n", cnonce: b"c", authzid: None, digest_uri: b"smtp/h" };
        assert_eq!(value_of(response.expose(), "response"), input(&rfc_secret).response());

        for secret in [&utf8_secret, &rfc_secret, &gsasl_secret] {
            for password in ["pässwörd", "passwörd"] {
                let mut server = DigestServer::new(&ServerContext::new("smtp", "h"), "n".into()).unwrap();
                server.start(None);
                let response = alloc::format!(
                    "charset=utf-8,username=\"jürgen\",realm=\"r\",nonce=\"n\",nc=00000001,cnonce=\"c\",\
                     digest-uri=\"smtp/h\",response={}",
                    core::str::from_utf8(&input(secret).response()).unwrap()
                );
                assert!(matches!(server.step(response.as_bytes()), ServerStep::Ask(_)));
                let step = server.answer(CredentialAnswer::Password(Secret::from(password)));
                if password == "pässwörd" {
                    let mut rspauth = b"rspauth=".to_vec();
                    rspauth.extend_from_slice(&input(secret).rspauth());
                    assert_eq!(step, ServerStep::Challenge(rspauth));
                } else {
                    assert_eq!(step, ServerStep::Failure(AuthFailure::Credentials));
                }
            }
        }
    }

    #[test]
    fn client_needs_usable_credentials() {
        let ctx = ClientContext::new("smtp", "h");
        let mut rng = FixedRandom::new(1);
        let no_password = Credentials { authcid: "u".into(), ..Credentials::default() };
        assert!(matches!(
            make_client(&Mechanism::DigestMd5, &no_password, &ctx, &mut rng),
            Err(SaslError::MissingCredential(_))
        ));
        let bad_password =
            Credentials { authcid: "u".into(), password: Some(Secret::new(vec![0xff])), ..Credentials::default() };
        assert!(matches!(
            make_client(&Mechanism::DigestMd5, &bad_password, &ctx, &mut rng),
            Err(SaslError::InvalidCredential(_))
        ));
        let empty = Credentials::password("", "p");
        assert!(matches!(
            make_client(&Mechanism::DigestMd5, &empty, &ctx, &mut rng),
            Err(SaslError::InvalidCredential(_))
        ));
        let bad_host = ClientContext::new("smtp", "h/x");
        assert!(make_client(&Mechanism::DigestMd5, &Credentials::password("u", "p"), &bad_host, &mut rng).is_err());
        assert!(make_server(&Mechanism::DigestMd5, &ServerContext::new("smtp", "h\r\n"), &mut rng).is_err());
        let client = make_client(&Mechanism::DigestMd5, &Credentials::password("u", "p"), &ctx, &mut rng).unwrap();
        assert_eq!(client.mechanism(), Mechanism::DigestMd5);
        assert!(!alloc::format!("{client:?}").contains("\"p\""));
    }

    /// A client that knows the server by an address (swaks sends `digest-uri="smtp/127.0.0.1"`)
    /// is accepted when that address is one of the server's aliases, and refused otherwise.
    #[test]
    fn server_accepts_digest_uri_host_aliases_only() {
        for (aliases, accepted) in [(&[][..], false), (&["127.0.0.1"][..], true), (&["mx.example"][..], false)] {
            let mut client = make_client(
                &Mechanism::DigestMd5,
                &Credentials::password("alice", "wonderland"),
                &ClientContext::new("smtp", "127.0.0.1"),
                &mut FixedRandom::new(1),
            )
            .unwrap();
            let mut ctx = ServerContext::new("smtp", "localhost");
            ctx.host_aliases = aliases.iter().map(|a| String::from(*a)).collect();
            let mut server = make_server(&Mechanism::DigestMd5, &ctx, &mut FixedRandom::new(2)).unwrap();
            let ServerStep::Challenge(challenge) = server.start(None) else { panic!("no challenge") };
            let response = client.step(&challenge).unwrap();
            let step = server.step(response.expose());
            if accepted {
                assert!(
                    matches!(step, ServerStep::Ask(CredentialRequest::DigestSecret { .. })),
                    "{aliases:?}: {step:?}"
                );
            } else {
                assert_eq!(
                    step,
                    ServerStep::Failure(AuthFailure::Malformed("digest-uri names another host")),
                    "{aliases:?}"
                );
            }
        }
    }

    /// Runs our client against our server; returns whether the client accepted rspauth and
    /// the server's last step.
    fn run_pair(user: &str, password: &str, stored: Option<&str>, host: &str, as_ha1: bool) -> (bool, ServerStep) {
        let ctx = ClientContext::new("smtp", host);
        let mut client =
            make_client(&Mechanism::DigestMd5, &Credentials::password(user, password), &ctx, &mut FixedRandom::new(9))
                .unwrap();
        let mut server =
            make_server(&Mechanism::DigestMd5, &ServerContext::new("smtp", host), &mut FixedRandom::new(10)).unwrap();
        let ServerStep::Challenge(challenge) = server.start(None) else { panic!("no challenge") };
        let response = client.step(&challenge).unwrap();
        let ServerStep::Ask(CredentialRequest::DigestSecret { username, realm }) = server.step(response.expose())
        else {
            panic!("no question")
        };
        assert_eq!((username.as_str(), realm.as_str()), (user, host));
        let stored = stored.unwrap_or(password);
        let answer = if as_ha1 {
            let secret = user_secret(
                &latin1_form(user.as_bytes()),
                &latin1_form(host.as_bytes()),
                &latin1_form(stored.as_bytes()),
            );
            CredentialAnswer::DigestHa1(Secret::new(secret.to_vec()))
        } else {
            CredentialAnswer::Password(Secret::from(stored))
        };
        match server.answer(answer) {
            ServerStep::Challenge(rspauth) => {
                let last = client.step(&rspauth).unwrap();
                let ok = client.finish(None).is_ok();
                (ok, server.step(last.expose()))
            }
            other => (false, other),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn client_and_server_agree(
            user in "[^\\x00-\\x1f\\x7f]{1,20}",
            password in "[^\\x00-\\x1f\\x7f]{0,30}",
            host in "[a-z0-9.-]{1,20}",
            as_ha1 in any::<bool>(),
        ) {
            let (client_ok, step) = run_pair(&user, &password, None, &host, as_ha1);
            prop_assert!(client_ok);
            prop_assert_eq!(step, ServerStep::Success { identity: Identity { authcid: user, authzid: None }, additional: None });
        }

        #[test]
        fn wrong_password_fails(
            user in "[^\\x00-\\x1f\\x7f]{1,20}",
            password in "[^\\x00-\\x1f\\x7f]{1,30}",
            as_ha1 in any::<bool>(),
        ) {
            let wrong = alloc::format!("{password}x");
            let (client_ok, step) = run_pair(&user, &password, Some(&wrong), "h", as_ha1);
            prop_assert!(!client_ok);
            prop_assert_eq!(step, ServerStep::Failure(AuthFailure::Credentials));
        }

        #[test]
        fn directive_lists_round_trip(
            items in proptest::collection::vec(("[a-z][a-z0-9-]{0,10}", proptest::collection::vec(0x20u8..=0xff, 0..40)), 0..8),
        ) {
            let items: Vec<(String, Vec<u8>)> = items.into_iter().map(|(n, v)| (n, v.into_iter().filter(|&b| b != 0x7f).collect())).collect();
            let mut out = Vec::new();
            for (name, value) in &items {
                push_quoted(&mut out, name, value);
            }
            let parsed = parse_directives(&out, usize::MAX).unwrap();
            let expected: Vec<Directive> = items.into_iter().map(|(name, value)| Directive { name, value }).collect();
            prop_assert_eq!(parsed, expected);
        }

        #[test]
        fn hostile_input_never_panics(input in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_directives(&input, MAX_RESPONSE);
            let mut client = rfc_client(&EXAMPLES[0], None);
            let _ = client.step(&input);
            let _ = client.step(&input);
            let _ = client.finish(Some(&input));
            let mut server = rfc_server(&EXAMPLES[0]);
            server.start(None);
            let step = server.step(&input);
            let succeeded = matches!(step, ServerStep::Success { .. });
            prop_assert!(!succeeded);
        }

        #[test]
        fn mutated_rfc_response_never_panics(index in 0usize..226, byte in any::<u8>()) {
            let mut response = IMAP_RESPONSE.to_vec();
            if let Some(slot) = response.get_mut(index) {
                *slot = byte;
            }
            let mut server = rfc_server(&EXAMPLES[0]);
            server.start(None);
            if let ServerStep::Ask(_) = server.step(&response) {
                let _ = server.answer(CredentialAnswer::Password(Secret::from("secret")));
            }
        }
    }
}
