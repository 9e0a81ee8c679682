//! EHLO capabilities (RFC 5321 §4.1.1.1, §2.4): parsed from a `250` reply's text lines on the
//! client side, generated from the configuration on the server side.
//!
//! Keywords compare case-insensitively (`starttls` is STARTTLS, field case B04); `AUTH` and the
//! legacy `AUTH=` form are merged; mechanism names are kept whole whatever their length.
//! [`Extension::parse`] reads one line without allocating; [`Capabilities::parse`] gathers a
//! whole reply into an owned value that outlives the reply buffer.

use alloc::string::String;
use alloc::vec::Vec;

use super::reply::{ParsedLine, ReplyError, ReplyParser};
use crate::sasl::Mechanism;
use crate::wire::SMTP_REPLY_LIMIT;

/// Most mechanisms kept from one reply; more are ignored (hostile input stays bounded).
pub const MAX_MECHANISMS: usize = 64;
/// Most unknown extensions kept from one reply; more are ignored.
pub const MAX_OTHER_EXTENSIONS: usize = 64;
/// Longest text line considered, in octets; longer lines are ignored as garbage (a reply line
/// is at most 512 octets, RFC 5321 §4.5.3.1.5; this leaves room for lenient peers).
pub const MAX_LINE: usize = 2048;

/// The longest text [`Capabilities::ehlo_lines`] writes on one line: a reply line is at most
/// 512 octets with `250-` and CRLF (RFC 5321 §4.5.3.1.5).
pub const MAX_EHLO_TEXT: usize = 512 - 4 - 2;

/// One EHLO extension line, borrowed from the reply (RFC 5321 §4.1.1.1 `ehlo-line`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Extension<'a> {
    /// `STARTTLS` (RFC 3207 §4).
    StartTls,
    /// `PIPELINING` (RFC 2920 §3).
    Pipelining,
    /// `8BITMIME` (RFC 6152 §2).
    EightBitMime,
    /// `SMTPUTF8` (RFC 6531 §3.1).
    SmtpUtf8,
    /// `ENHANCEDSTATUSCODES` (RFC 2034 §4).
    EnhancedStatusCodes,
    /// `CHUNKING` (RFC 3030 §2).
    Chunking,
    /// `DSN` (RFC 3461 §4).
    Dsn,
    /// `SIZE` with its limit; `0` when no value or a value that is not a number was given
    /// (RFC 1870 §4: 0 means no fixed limit).
    Size(u64),
    /// `AUTH` or the legacy `AUTH=` form, with its space-separated mechanism names
    /// (RFC 4954 §3). Iterate with [`Extension::mechanisms`].
    Auth(&'a str),
    /// Any other keyword, with its parameters (possibly empty) after the first space.
    Other {
        /// The keyword as sent.
        keyword: &'a str,
        /// The parameters as sent, without the leading space.
        params: &'a str,
    },
}

fn is_keyword(keyword: &[u8]) -> bool {
    matches!(keyword.first(), Some(b) if b.is_ascii_alphanumeric())
        && keyword.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// Whether `name` is a SASL mechanism name (RFC 4422 §3.1 charset; any length kept).
fn is_mechanism_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

/// Whether `params` is valid `ehlo-param`s: printable characters and single spaces
/// (RFC 5321 §4.1.1.1), with UTF-8 allowed for SMTPUTF8 peers.
fn is_params(params: &str) -> bool {
    // Printable ASCII (the usual case) has no control character; else look at each char
    // (C1 controls are two octets in UTF-8).
    params.bytes().all(|b| matches!(b, b' '..=b'~')) || !params.chars().any(char::is_control)
}

impl<'a> Extension<'a> {
    /// Parses one extension line (a reply line's text after `250-`/`250 `). Returns `None` for
    /// lines that are not an extension: empty, a keyword outside `ALPHA / DIGIT / "-"`, control
    /// characters, or longer than 2048 octets.
    pub fn parse(line: &'a [u8]) -> Option<Self> {
        if line.len() > MAX_LINE {
            return None;
        }
        let end = line.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(0, |last| last + 1);
        let line = core::str::from_utf8(line.get(..end)?).ok()?;
        let bytes = line.as_bytes();
        let (keyword, params) = match bytes.iter().position(|&b| b == b' ' || b == b'=') {
            Some(at) => {
                let keyword = line.get(..at)?;
                // `=` only separates in the legacy `AUTH=` form.
                if bytes.get(at) == Some(&b'=') && !keyword.eq_ignore_ascii_case("AUTH") {
                    return None;
                }
                (keyword, line.get(at + 1..)?.trim_start_matches(' '))
            }
            None => (line, ""),
        };
        if !is_keyword(keyword.as_bytes()) || !is_params(params) {
            return None;
        }
        // The length picks the one candidate name.
        let known = match keyword.len() {
            3 => "DSN",
            4 if keyword.as_bytes().first().is_some_and(|b| b.eq_ignore_ascii_case(&b'A')) => "AUTH",
            4 => "SIZE",
            8 => match keyword.as_bytes().get(..2).unwrap_or_default() {
                [b'8', _] => "8BITMIME",
                [_, b't' | b'T'] => "STARTTLS",
                [_, b'm' | b'M'] => "SMTPUTF8",
                _ => "CHUNKING",
            },
            10 => "PIPELINING",
            19 => "ENHANCEDSTATUSCODES",
            _ => "",
        };
        if known.is_empty() || !keyword.eq_ignore_ascii_case(known) {
            return Some(Self::Other { keyword, params });
        }
        Some(match known {
            "AUTH" => Self::Auth(params),
            "SIZE" => Self::Size(params.split(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0)),
            _ if !params.is_empty() => Self::Other { keyword, params },
            "STARTTLS" => Self::StartTls,
            "PIPELINING" => Self::Pipelining,
            "8BITMIME" => Self::EightBitMime,
            "SMTPUTF8" => Self::SmtpUtf8,
            "ENHANCEDSTATUSCODES" => Self::EnhancedStatusCodes,
            "CHUNKING" => Self::Chunking,
            _ => Self::Dsn,
        })
    }

    /// The mechanism names of an `AUTH` line, skipping tokens that are not SASL names; empty
    /// for every other extension.
    pub fn mechanisms(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        let list = match self {
            Self::Auth(list) => *list,
            _ => "",
        };
        list.split(' ').filter(|name| is_mechanism_name(name.as_bytes()))
    }
}

/// An unknown extension, kept with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherExtension {
    /// The keyword as sent (compare case-insensitively).
    pub keyword: String,
    /// The parameters, space separated; empty when there are none.
    pub params: String,
}

/// What a server said it supports in its EHLO reply (RFC 5321 §4.1.1.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// The server's domain: the first word of the first line.
    pub domain: String,
    /// The rest of the first line (a greeting), possibly empty.
    pub greeting: String,
    /// `STARTTLS` (RFC 3207).
    pub starttls: bool,
    /// `PIPELINING` (RFC 2920).
    pub pipelining: bool,
    /// `8BITMIME` (RFC 6152).
    pub eight_bit_mime: bool,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// `ENHANCEDSTATUSCODES` (RFC 2034).
    pub enhanced_status_codes: bool,
    /// `CHUNKING` (RFC 3030).
    pub chunking: bool,
    /// `DSN` (RFC 3461).
    pub dsn: bool,
    /// `SIZE`: `None` when not advertised, `Some(0)` when advertised without a fixed limit
    /// (bare `SIZE` or `SIZE 0`), else the limit in octets (RFC 1870 §4).
    pub size: Option<u64>,
    /// SASL mechanisms from every `AUTH` and `AUTH=` line, in order, without duplicates;
    /// empty when AUTH is not advertised (RFC 4954 §3).
    pub auth: Vec<Mechanism>,
    /// Every other keyword, with its parameters.
    pub other: Vec<OtherExtension>,
}

/// A capability that cannot be written into an EHLO reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapabilityError {
    /// The domain is empty or holds a space or control character.
    #[error("invalid domain in the EHLO reply")]
    Domain,
    /// The greeting holds a control character (CR or LF would inject a reply line).
    #[error("control character in the EHLO greeting")]
    Greeting,
    /// A mechanism name outside the SASL charset (RFC 4422 §3.1).
    #[error("invalid SASL mechanism name")]
    Mechanism,
    /// An unknown extension whose keyword or parameters break the `ehlo-line` grammar.
    #[error("invalid extension keyword or parameters")]
    Extension,
    /// A line would be longer than a reply line may be ([`MAX_EHLO_TEXT`]).
    #[error("EHLO line longer than a reply line may be")]
    LineTooLong,
}

impl Capabilities {
    /// Gathers the text lines of an EHLO reply (without `250-`/`250 `); the first line is the
    /// domain and greeting. Lines that are not extensions are skipped, never an error.
    pub fn parse<I, L>(lines: I) -> Self
    where
        I: IntoIterator<Item = L>,
        L: AsRef<[u8]>,
    {
        let mut caps = Self::default();
        let mut lines = lines.into_iter();
        if let Some(first) = lines.next() {
            let first = first.as_ref();
            let first = first.get(..MAX_LINE.min(first.len())).unwrap_or_default();
            let text = String::from_utf8_lossy(first);
            let text = text.trim_matches([' ', '\t']);
            let (domain, greeting) = text.split_once(' ').unwrap_or((text, ""));
            if text.bytes().all(|b| matches!(b, b' '..=b'~')) {
                // Printable ASCII: nothing to filter.
                caps.domain = String::from(domain);
                caps.greeting = String::from(greeting.trim_matches([' ', '\t']));
            } else {
                caps.domain = domain.chars().filter(|c| !c.is_control()).collect();
                let greeting: String = greeting.chars().filter(|c| !c.is_control()).collect();
                caps.greeting = String::from(greeting.trim_matches([' ', '\t']));
            }
        }
        for line in lines {
            if let Some(extension) = Extension::parse(line.as_ref()) {
                caps.add(extension);
            }
        }
        caps
    }

    /// Adds one parsed extension line.
    pub fn add(&mut self, extension: Extension<'_>) {
        match extension {
            Extension::StartTls => self.starttls = true,
            Extension::Pipelining => self.pipelining = true,
            Extension::EightBitMime => self.eight_bit_mime = true,
            Extension::SmtpUtf8 => self.smtputf8 = true,
            Extension::EnhancedStatusCodes => self.enhanced_status_codes = true,
            Extension::Chunking => self.chunking = true,
            Extension::Dsn => self.dsn = true,
            Extension::Size(limit) => self.size = Some(limit),
            Extension::Auth(_) => {
                for name in extension.mechanisms() {
                    if self.auth.len() >= MAX_MECHANISMS {
                        break;
                    }
                    let mechanism = Mechanism::parse(name);
                    if !self.auth.contains(&mechanism) {
                        self.auth.push(mechanism);
                    }
                }
            }
            Extension::Other { keyword, params } => {
                if self.other.len() < MAX_OTHER_EXTENSIONS {
                    self.other.push(OtherExtension { keyword: keyword.into(), params: params.into() });
                }
            }
        }
    }

    /// Whether `mechanism` is offered.
    pub fn offers(&self, mechanism: &Mechanism) -> bool {
        self.auth.contains(mechanism)
    }

    /// The parameters of an unknown extension, looked up case-insensitively.
    pub fn other(&self, keyword: &str) -> Option<&str> {
        self.other.iter().find(|e| e.keyword.eq_ignore_ascii_case(keyword)).map(|e| e.params.as_str())
    }

    /// The text lines of the server's EHLO reply, first line `domain [greeting]`, then one
    /// line per extension in a fixed order; the reply codec adds `250-`/`250 `. Refuses
    /// anything that would break the grammar or inject a line, and a line longer than
    /// [`MAX_EHLO_TEXT`] octets.
    pub fn ehlo_lines(&self) -> Result<Vec<String>, CapabilityError> {
        let clean = |text: &str| !text.chars().any(char::is_control);
        if self.domain.is_empty() || self.domain.contains(' ') || !clean(&self.domain) {
            return Err(CapabilityError::Domain);
        }
        if !clean(&self.greeting) {
            return Err(CapabilityError::Greeting);
        }
        let mut lines = Vec::with_capacity(12 + self.other.len());
        let mut first = self.domain.clone();
        if !self.greeting.is_empty() {
            first.push(' ');
            first.push_str(&self.greeting);
        }
        lines.push(first);
        let flags = [
            (self.pipelining, "PIPELINING"),
            (self.eight_bit_mime, "8BITMIME"),
            (self.smtputf8, "SMTPUTF8"),
            (self.enhanced_status_codes, "ENHANCEDSTATUSCODES"),
            (self.chunking, "CHUNKING"),
            (self.dsn, "DSN"),
            (self.starttls, "STARTTLS"),
        ];
        if let Some(limit) = self.size {
            lines.push(if limit == 0 { String::from("SIZE") } else { alloc::format!("SIZE {limit}") });
        }
        lines.extend(flags.iter().filter(|(on, _)| *on).map(|(_, name)| String::from(*name)));
        if !self.auth.is_empty() {
            let mut line = String::from("AUTH");
            for mechanism in &self.auth {
                if !is_mechanism_name(mechanism.as_str().as_bytes()) {
                    return Err(CapabilityError::Mechanism);
                }
                line.push(' ');
                line.push_str(mechanism.as_str());
            }
            lines.push(line);
        }
        for extension in &self.other {
            let params_ok = !extension.params.starts_with(' ') && !extension.params.ends_with(' ');
            if !is_keyword(extension.keyword.as_bytes()) || !is_params(&extension.params) || !params_ok {
                return Err(CapabilityError::Extension);
            }
            let mut line = extension.keyword.clone();
            if !extension.params.is_empty() {
                line.push(' ');
                line.push_str(&extension.params);
            }
            lines.push(line);
        }
        if lines.iter().any(|line| line.len() > MAX_EHLO_TEXT) {
            return Err(CapabilityError::LineTooLong);
        }
        Ok(lines)
    }
}

/// Flag bits of [`CapabilitiesRef`].
const STARTTLS: u16 = 1;
const PIPELINING: u16 = 1 << 1;
const EIGHT_BIT_MIME: u16 = 1 << 2;
const SMTPUTF8: u16 = 1 << 3;
const ENHANCED_STATUS_CODES: u16 = 1 << 4;
const CHUNKING: u16 = 1 << 5;
const DSN: u16 = 1 << 6;
const AUTH: u16 = 1 << 7;
/// Some `AUTH` name is not one of [`Mechanism::KNOWN`].
const AUTH_OTHER: u16 = 1 << 8;
const OTHER: u16 = 1 << 9;

/// The bit of a known mechanism in [`CapabilitiesRef`]'s set.
fn mechanism_bit(mechanism: &Mechanism) -> u16 {
    1 << match mechanism {
        Mechanism::Plain => 0,
        Mechanism::Login => 1,
        Mechanism::CramMd5 => 2,
        Mechanism::DigestMd5 => 3,
        Mechanism::ScramSha1 => 4,
        Mechanism::ScramSha1Plus => 5,
        Mechanism::ScramSha256 => 6,
        Mechanism::ScramSha256Plus => 7,
        Mechanism::XOAuth2 => 8,
        Mechanism::OAuthBearer => 9,
        Mechanism::External => 10,
        Mechanism::Anonymous => 11,
        Mechanism::Other(_) => return 0,
    }
}

/// What a server said it supports in its EHLO reply, read in place from the reply's bytes
/// without allocating (RFC 5321 §4.1.1.1): flags for the known extensions, the SIZE limit and
/// the set of known SASL mechanisms are gathered while parsing; AUTH names and unknown
/// extensions are iterated from the borrowed lines. [`to_capabilities`](Self::to_capabilities)
/// gives the owned [`Capabilities`], exactly as [`Capabilities::parse`] would from the same
/// lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapabilitiesRef<'a> {
    /// The text of the first line (domain and greeting) after the codes, untrimmed.
    first: &'a [u8],
    /// Every line after the first, as received (codes and terminators included).
    rest: &'a [u8],
    flags: u16,
    size: Option<u64>,
    /// Known mechanisms offered, one bit each ([`mechanism_bit`]).
    mechanisms: u16,
}

/// The text of each line of a reply already validated by [`CapabilitiesRef::parse`].
fn reply_texts(reply: &[u8]) -> impl Iterator<Item = &[u8]> {
    reply.split_inclusive(|&b| b == b'\n').map(|line| {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        ParsedLine::parse(line).map_or(&[][..], |parsed| parsed.text)
    })
}

/// `SIZE`, in [`keyword_flag`] only.
const SIZE: u16 = 1 << 15;

/// Byte classes of the EHLO fast path: keyword characters (`ALPHA / DIGIT / "-"`), SASL
/// mechanism name characters (RFC 4422 §3.1), printable ASCII with the space.
const KEYWORD_CHAR: u8 = 1;
const MECHANISM_CHAR: u8 = 2;
const PRINTABLE: u8 = 4;

#[allow(clippy::indexing_slicing)] // const evaluation: an out-of-range index fails the build
const CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut class = 0;
        if b.is_ascii_alphanumeric() || b == b'-' {
            class |= KEYWORD_CHAR | MECHANISM_CHAR;
        }
        if b == b'_' {
            class |= MECHANISM_CHAR;
        }
        if b >= b' ' && b <= b'~' {
            class |= PRINTABLE;
        }
        table[i] = class;
        i += 1;
    }
    table
};

fn in_class(class: u8, byte: u8) -> bool {
    CLASS.get(usize::from(byte)).is_some_and(|c| c & class != 0)
}

/// A decimal number as `str::parse::<u64>` reads it (an optional `+`, digits, no overflow).
fn parse_u64(text: &[u8]) -> Option<u64> {
    let digits = text.strip_prefix(b"+").unwrap_or(text);
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Whether `word`, made of `ALPHA / DIGIT / "-" / "_"` only, is `lower` in any case: or-ing
/// 0x20 folds letters and leaves digits and `-` alone, and turns `_` into DEL, which no name
/// holds. No early exit, so short words compile to straight-line code.
fn folded_eq(word: &[u8], lower: &[u8]) -> bool {
    word.len() == lower.len() && word.iter().zip(lower).fold(0, |diff, (a, b)| diff | ((a | 0x20) ^ b)) == 0
}

/// The flag of a known keyword (made of keyword characters; any case), `AUTH`, `SIZE`, or 0
/// for any other.
fn keyword_flag(keyword: &[u8]) -> u16 {
    // The length picks the one candidate name, as in `Extension::parse`.
    let (name, flag): (&[u8], u16) = match keyword.len() {
        3 => (b"dsn", DSN),
        4 if keyword.first().is_some_and(|b| b | 0x20 == b'a') => (b"auth", AUTH),
        4 => (b"size", SIZE),
        8 => match keyword.get(..2).unwrap_or_default() {
            [b'8', _] => (b"8bitmime", EIGHT_BIT_MIME),
            [_, b't' | b'T'] => (b"starttls", STARTTLS),
            [_, b'm' | b'M'] => (b"smtputf8", SMTPUTF8),
            _ => (b"chunking", CHUNKING),
        },
        10 => (b"pipelining", PIPELINING),
        19 => (b"enhancedstatuscodes", ENHANCED_STATUS_CODES),
        _ => return 0,
    };
    if folded_eq(keyword, name) { flag } else { 0 }
}

/// The bit of a known mechanism (see [`mechanism_bit`]) for a name made of SASL name
/// characters, in any case; 0 for any other name. The same names as [`Mechanism::known`].
fn known_mechanism_bit(name: &[u8]) -> u16 {
    let candidates: &[(&[u8], Mechanism)] = match name.len() {
        5 => &[(b"plain", Mechanism::Plain), (b"login", Mechanism::Login)],
        7 => &[(b"xoauth2", Mechanism::XOAuth2)],
        8 => &[(b"cram-md5", Mechanism::CramMd5), (b"external", Mechanism::External)],
        9 => &[(b"anonymous", Mechanism::Anonymous)],
        10 => &[(b"digest-md5", Mechanism::DigestMd5)],
        11 => &[(b"scram-sha-1", Mechanism::ScramSha1), (b"oauthbearer", Mechanism::OAuthBearer)],
        13 => &[(b"scram-sha-256", Mechanism::ScramSha256)],
        16 => &[(b"scram-sha-1-plus", Mechanism::ScramSha1Plus)],
        18 => &[(b"scram-sha-256-plus", Mechanism::ScramSha256Plus)],
        _ => return 0,
    };
    candidates.iter().find(|(lower, _)| folded_eq(name, lower)).map_or(0, |(_, m)| mechanism_bit(m))
}

impl<'a> CapabilitiesRef<'a> {
    /// Parses a `250` reply to EHLO from the start of `input`: lines ending in LF (a CR
    /// before it is removed), at most [`SMTP_REPLY_LIMIT`](crate::wire::SMTP_REPLY_LIMIT)
    /// octets each with the terminator, at most [`ReplyParser::DEFAULT_MAX_LINES`] lines.
    /// Returns the view and the number of octets the reply took, `None` while its last line
    /// has not arrived, or the first error: a bad line as [`ParsedLine::parse`] finds it, a
    /// line too long, too many lines, a code change, or another code than 250
    /// ([`ReplyError::Unexpected`]). Lines that are not extensions are skipped as in
    /// [`Capabilities::parse`].
    ///
    /// [`ReplyParser::DEFAULT_MAX_LINES`]: super::ReplyParser::DEFAULT_MAX_LINES
    /// [`ParsedLine::parse`]: super::ParsedLine::parse
    pub fn parse(input: &'a [u8]) -> Option<Result<(Self, usize), ReplyError>> {
        let mut caps = Self { first: &[], rest: &[], flags: 0, size: None, mechanisms: 0 };
        let mut at = 0;
        let mut count = 0;
        let mut rest_start = 0;
        loop {
            let tail = input.get(at..).unwrap_or_default();
            if count > 0 {
                // The usual extension line takes the one-pass path; anything else the
                // general one.
                if let Some((length, last)) = caps.fast_line(tail) {
                    count += 1;
                    if count > ReplyParser::DEFAULT_MAX_LINES {
                        return Some(Err(ReplyError::TooManyLines(ReplyParser::DEFAULT_MAX_LINES)));
                    }
                    at += length;
                    if last {
                        caps.rest = input.get(rest_start..at).unwrap_or_default();
                        return Some(Ok((caps, at)));
                    }
                    continue;
                }
            }
            let Some(lf) = memchr::memchr(b'\n', tail) else {
                // The last line has not arrived; an overlong or endless partial reply is still
                // refused once it is too long.
                if tail.len() > SMTP_REPLY_LIMIT {
                    return Some(Err(ReplyError::LineTooLong { length: tail.len(), limit: SMTP_REPLY_LIMIT }));
                }
                return None;
            };
            if lf + 1 > SMTP_REPLY_LIMIT {
                return Some(Err(ReplyError::LineTooLong { length: lf + 1, limit: SMTP_REPLY_LIMIT }));
            }
            count += 1;
            if count > ReplyParser::DEFAULT_MAX_LINES {
                return Some(Err(ReplyError::TooManyLines(ReplyParser::DEFAULT_MAX_LINES)));
            }
            let line = tail.get(..lf).unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let parsed = match ParsedLine::parse(line) {
                Ok(parsed) => parsed,
                Err(error) => return Some(Err(error)),
            };
            if parsed.code != 250 {
                let error = if count == 1 { ReplyError::Unexpected(parsed.code) } else { ReplyError::CodeMismatch };
                return Some(Err(error));
            }
            if count == 1 {
                caps.first = parsed.text;
                rest_start = at + lf + 1;
            } else if let Some(extension) = Extension::parse(parsed.text) {
                caps.add(extension);
            }
            let last = parsed.last;
            at += lf + 1;
            if last {
                caps.rest = input.get(rest_start..at).unwrap_or_default();
                return Some(Ok((caps, at)));
            }
        }
    }

    /// Reads a plain extension line from the start of `tail` (`250-KEYWORD` or
    /// `250-KEYWORD SP params`, params printable ASCII without leading or trailing space, CRLF
    /// or LF, within the line limit) in one pass, as the general path ([`ParsedLine::parse`],
    /// [`Extension::parse`], [`add`](Self::add)) would; returns the octets the line took and
    /// whether it is the last line, or `None`, with nothing changed, for any other line.
    ///
    /// [`ParsedLine::parse`]: super::ParsedLine::parse
    fn fast_line(&mut self, tail: &[u8]) -> Option<(usize, bool)> {
        let [b'2', b'5', b'0', sep @ (b'-' | b' '), body @ ..] = tail else {
            return None;
        };
        let k = body.iter().position(|&b| !in_class(KEYWORD_CHAR, b))?;
        let (keyword, rest) = body.split_at(k);
        let flag = keyword_flag(keyword);
        let (params, used) = match rest {
            [b'\r', b'\n', ..] => (&[][..], 2),
            [b'\n', ..] => (&[][..], 1),
            // `=` only separates in the legacy `AUTH=` form.
            [b' ', after @ ..] | [b'=', after @ ..] if rest.first() == Some(&b' ') || flag == AUTH => {
                let p = after.iter().position(|&b| !in_class(PRINTABLE, b))?;
                let (params, end) = after.split_at(p);
                let term = match end {
                    [b'\r', b'\n', ..] => 2,
                    [b'\n', ..] => 1,
                    _ => return None,
                };
                (params, 1 + p + term)
            }
            _ => return None,
        };
        let length = 4 + k + used;
        if keyword.is_empty()
            || length > SMTP_REPLY_LIMIT
            || (used > 2 && (params.is_empty() || params.first() == Some(&b' ') || params.last() == Some(&b' ')))
        {
            return None;
        }
        match flag {
            AUTH => {
                self.flags |= AUTH;
                for name in params.split(|&b| b == b' ') {
                    if name.is_empty() || !name.iter().all(|&b| in_class(MECHANISM_CHAR, b)) {
                        continue;
                    }
                    match known_mechanism_bit(name) {
                        0 => self.flags |= AUTH_OTHER,
                        bit => self.mechanisms |= bit,
                    }
                }
            }
            SIZE => {
                let value = params.split(|&b| b == b' ').next().unwrap_or_default();
                self.size = Some(parse_u64(value).unwrap_or(0));
            }
            0 => self.flags |= OTHER,
            _ if !params.is_empty() => self.flags |= OTHER,
            flag => self.flags |= flag,
        }
        Some((length, *sep == b' '))
    }

    fn add(&mut self, extension: Extension<'a>) {
        self.flags |= match extension {
            Extension::StartTls => STARTTLS,
            Extension::Pipelining => PIPELINING,
            Extension::EightBitMime => EIGHT_BIT_MIME,
            Extension::SmtpUtf8 => SMTPUTF8,
            Extension::EnhancedStatusCodes => ENHANCED_STATUS_CODES,
            Extension::Chunking => CHUNKING,
            Extension::Dsn => DSN,
            Extension::Size(limit) => {
                self.size = Some(limit);
                0
            }
            Extension::Auth(_) => {
                let mut flags = AUTH;
                for name in extension.mechanisms() {
                    match Mechanism::known(name.as_bytes()) {
                        Some(known) => self.mechanisms |= mechanism_bit(&known),
                        None => flags |= AUTH_OTHER,
                    }
                }
                flags
            }
            Extension::Other { .. } => OTHER,
        };
    }

    fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    /// The first line's text, trimmed of spaces and tabs.
    fn first_trimmed(&self) -> &'a [u8] {
        self.first.trim_ascii()
    }

    /// The server's domain: the first word of the first line, as sent.
    pub fn domain(&self) -> &'a [u8] {
        let first = self.first_trimmed();
        first.split(|&b| b == b' ').next().unwrap_or_default()
    }

    /// The rest of the first line (a greeting) without surrounding blanks, possibly empty.
    pub fn greeting(&self) -> &'a [u8] {
        let first = self.first_trimmed();
        match first.iter().position(|&b| b == b' ') {
            Some(space) => first.get(space + 1..).unwrap_or_default().trim_ascii(),
            None => &[],
        }
    }

    /// `STARTTLS` (RFC 3207).
    pub fn starttls(&self) -> bool {
        self.has(STARTTLS)
    }

    /// `PIPELINING` (RFC 2920).
    pub fn pipelining(&self) -> bool {
        self.has(PIPELINING)
    }

    /// `8BITMIME` (RFC 6152).
    pub fn eight_bit_mime(&self) -> bool {
        self.has(EIGHT_BIT_MIME)
    }

    /// `SMTPUTF8` (RFC 6531).
    pub fn smtputf8(&self) -> bool {
        self.has(SMTPUTF8)
    }

    /// `ENHANCEDSTATUSCODES` (RFC 2034).
    pub fn enhanced_status_codes(&self) -> bool {
        self.has(ENHANCED_STATUS_CODES)
    }

    /// `CHUNKING` (RFC 3030).
    pub fn chunking(&self) -> bool {
        self.has(CHUNKING)
    }

    /// `DSN` (RFC 3461).
    pub fn dsn(&self) -> bool {
        self.has(DSN)
    }

    /// `SIZE` as in [`Capabilities::size`] (the last SIZE line wins; RFC 1870 §4).
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// Whether an `AUTH` or `AUTH=` line was sent (RFC 4954 §3), even with no usable name.
    pub fn auth_advertised(&self) -> bool {
        self.has(AUTH)
    }

    /// Whether `mechanism` is offered; a known one is a bit test, another one a walk over the
    /// AUTH lines.
    pub fn offers(&self, mechanism: &Mechanism) -> bool {
        match mechanism {
            Mechanism::Other(name) => {
                self.has(AUTH_OTHER) && self.mechanism_names().any(|n| n.eq_ignore_ascii_case(name))
            }
            known => self.mechanisms & mechanism_bit(known) != 0,
        }
    }

    /// The text of every line of the reply after `250-`/`250 ` (and an enhanced code), the
    /// first included: what [`Reply::text_lines`](super::Reply::text_lines) gives.
    pub fn text_lines(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        core::iter::once(self.first).chain(reply_texts(self.rest))
    }

    /// Every extension line, in order (the first line and lines that are not extensions
    /// left out).
    pub fn extensions(&self) -> impl Iterator<Item = Extension<'a>> + use<'a> {
        reply_texts(self.rest).filter_map(Extension::parse)
    }

    /// The SASL mechanism names of every `AUTH` and `AUTH=` line, in order and as sent
    /// (repeats included; [`Capabilities`] keeps each mechanism once).
    pub fn mechanism_names(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        let auth = self.has(AUTH);
        self.extensions().filter(move |_| auth).flat_map(|e| e.mechanisms())
    }

    /// Every unknown extension: keyword and parameters, as sent.
    pub fn others(&self) -> impl Iterator<Item = (&'a str, &'a str)> + use<'a> {
        let other = self.has(OTHER);
        self.extensions().filter(move |_| other).filter_map(|e| match e {
            Extension::Other { keyword, params } => Some((keyword, params)),
            _ => None,
        })
    }

    /// The parameters of an unknown extension, looked up case-insensitively.
    pub fn other(&self, keyword: &str) -> Option<&'a str> {
        self.others().find(|(k, _)| k.eq_ignore_ascii_case(keyword)).map(|(_, params)| params)
    }

    /// The owned capabilities, as [`Capabilities::parse`] gathers them from the same lines.
    pub fn to_capabilities(&self) -> Capabilities {
        Capabilities::parse(self.text_lines())
    }
}

impl From<CapabilitiesRef<'_>> for Capabilities {
    fn from(caps: CapabilitiesRef<'_>) -> Self {
        caps.to_capabilities()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn mechs(names: &[&str]) -> Vec<Mechanism> {
        names.iter().map(|n| Mechanism::parse(n)).collect()
    }

    #[test]
    fn field_b04_lower_case_keywords() {
        let caps = Capabilities::parse(["mail.example.net", "starttls", "auth plain login"]);
        assert!(caps.starttls);
        assert_eq!(caps.auth, vec![Mechanism::Plain, Mechanism::Login]);
        assert_eq!(caps.domain, "mail.example.net");
        let caps = Capabilities::parse([
            "x",
            "Pipelining",
            "8bitmime",
            "smtputf8",
            "EnhancedStatusCodes",
            "chunking",
            "dsn",
            "size 1000",
        ]);
        assert!(caps.pipelining && caps.eight_bit_mime && caps.smtputf8);
        assert!(caps.enhanced_status_codes && caps.chunking && caps.dsn);
        assert_eq!(caps.size, Some(1000));
    }

    #[test]
    fn auth_and_legacy_auth_merged() {
        let caps = Capabilities::parse(["h", "AUTH=LOGIN PLAIN", "AUTH PLAIN LOGIN CRAM-MD5", "auth=xoauth2"]);
        assert_eq!(caps.auth, mechs(&["LOGIN", "PLAIN", "CRAM-MD5", "XOAUTH2"]));
        assert!(caps.other.is_empty());
    }

    #[test]
    fn long_mechanism_names_kept_whole() {
        let long = "X-A-VERY-LONG-MECHANISM-NAME-BEYOND-SIXTEEN-BYTES";
        let caps = Capabilities::parse(["h".to_string(), alloc::format!("AUTH SCRAM-SHA-256-PLUS {long}")]);
        assert_eq!(caps.auth, vec![Mechanism::ScramSha256Plus, Mechanism::Other(long.into())]);
        // A prefix of a known name is not that name, and vice versa.
        let caps = Capabilities::parse(["h", "AUTH SCRAM-SHA-256-PLUSX SCRAM-SHA"]);
        assert_eq!(caps.auth, mechs(&["SCRAM-SHA-256-PLUSX", "SCRAM-SHA"]));
        assert!(!caps.offers(&Mechanism::ScramSha256Plus));
    }

    #[test]
    fn size_with_and_without_value() {
        assert_eq!(Capabilities::parse(["h", "SIZE"]).size, Some(0));
        assert_eq!(Capabilities::parse(["h", "SIZE 0"]).size, Some(0));
        assert_eq!(Capabilities::parse(["h", "SIZE 52428800"]).size, Some(52_428_800));
        assert_eq!(Capabilities::parse(["h", "SIZE lots"]).size, Some(0));
        assert_eq!(Capabilities::parse(["h"]).size, None);
    }

    #[test]
    fn unknown_keywords_kept_with_params() {
        let caps = Capabilities::parse(["h", "BURL imap", "PIPECONNECT", "X-EXPS GSSAPI NTLM", "HELP"]);
        assert_eq!(caps.other("burl"), Some("imap"));
        assert_eq!(caps.other("PIPECONNECT"), Some(""));
        assert_eq!(caps.other("x-exps"), Some("GSSAPI NTLM"));
        assert_eq!(caps.other("HELP"), Some(""));
        assert_eq!(caps.other("NOPE"), None);
        // A known flag with parameters is not that flag.
        let caps = Capabilities::parse(["h", "STARTTLS now"]);
        assert!(!caps.starttls);
        assert_eq!(caps.other("STARTTLS"), Some("now"));
    }

    #[test]
    fn exim_ehlo_reply() {
        let caps = Capabilities::parse([
            "localhost Hello client.example [127.0.0.1]",
            "SIZE 52428800",
            "8BITMIME",
            "PIPELINING",
            "PIPECONNECT",
            "AUTH PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256",
            "CHUNKING",
            "STARTTLS",
            "SMTPUTF8",
            "HELP",
        ]);
        assert_eq!(caps.domain, "localhost");
        assert_eq!(caps.greeting, "Hello client.example [127.0.0.1]");
        assert_eq!(caps.size, Some(52_428_800));
        assert!(caps.eight_bit_mime && caps.pipelining && caps.chunking && caps.starttls && caps.smtputf8);
        assert!(!caps.enhanced_status_codes && !caps.dsn);
        assert_eq!(caps.auth, mechs(&["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"]));
        assert_eq!(caps.other.len(), 2);
    }

    #[test]
    fn dovecot_ehlo_reply() {
        let caps = Capabilities::parse([
            "localhost",
            "8BITMIME",
            "AUTH PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256 XOAUTH2 OAUTHBEARER",
            "BURL imap",
            "CHUNKING",
            "ENHANCEDSTATUSCODES",
            "SIZE",
            "STARTTLS",
            "PIPELINING",
        ]);
        assert_eq!(caps.domain, "localhost");
        assert_eq!(caps.greeting, "");
        assert_eq!(caps.size, Some(0));
        assert!(caps.starttls && caps.enhanced_status_codes && caps.pipelining);
        assert_eq!(caps.auth.len(), 8);
        assert_eq!(caps.auth[7], Mechanism::OAuthBearer);
        assert_eq!(caps.other("BURL"), Some("imap"));
    }

    #[test]
    fn rfc4954_example_after_tls() {
        let caps = Capabilities::parse(["smtp.example.com Hello client.example.com", "AUTH GSSAPI DIGEST-MD5 PLAIN"]);
        assert_eq!(caps.auth, mechs(&["GSSAPI", "DIGEST-MD5", "PLAIN"]));
        assert!(!caps.starttls);
    }

    #[test]
    fn garbage_lines_skipped() {
        let caps = Capabilities::parse([
            &b"h"[..],
            b"",
            b"   ",
            b"-STARTTLS",
            b"STARTTLS\0",
            b"\xff\xfe",
            b"FOO=BAR",
            b"AUTH PLAIN\rX",
            b"AUTH PL@IN LOGIN",
            b"STARTTLS",
        ]);
        assert!(caps.starttls);
        assert_eq!(caps.auth, vec![Mechanism::Login]);
        assert!(caps.other.is_empty());
        // No lines at all.
        assert_eq!(Capabilities::parse(core::iter::empty::<&[u8]>()), Capabilities::default());
    }

    #[test]
    fn huge_input_stays_bounded() {
        let mut auth = String::from("AUTH");
        for i in 0..5000 {
            auth.push_str(&alloc::format!(" X-M{i}"));
        }
        let huge = "A".repeat(1_000_000);
        let mut lines = vec![String::from("h"), auth.clone(), huge];
        for i in 0..10_000 {
            lines.push(alloc::format!("X-EXT{i} p"));
        }
        let caps = Capabilities::parse(&lines);
        // The 5000-name line is over MAX_LINE: ignored, not truncated.
        assert!(caps.auth.is_empty());
        assert_eq!(caps.other.len(), MAX_OTHER_EXTENSIONS);
        let many: Vec<String> = (0..100).map(|i| alloc::format!("AUTH X-{i} PLAIN")).collect();
        let caps = Capabilities::parse(core::iter::once(String::from("h")).chain(many));
        assert_eq!(caps.auth.len(), MAX_MECHANISMS);
        assert_eq!(caps.auth[1], Mechanism::Plain);
    }

    #[test]
    fn generator_refuses_injection() {
        let base = Capabilities { domain: "mx.example".into(), ..Capabilities::default() };
        assert_eq!(base.ehlo_lines(), Ok(vec![String::from("mx.example")]));
        let bad = Capabilities { domain: "mx\r\n250 x".into(), ..base.clone() };
        assert_eq!(bad.ehlo_lines(), Err(CapabilityError::Domain));
        let bad = Capabilities { domain: String::new(), ..base.clone() };
        assert_eq!(bad.ehlo_lines(), Err(CapabilityError::Domain));
        let bad = Capabilities { greeting: "hi\r\n".into(), ..base.clone() };
        assert_eq!(bad.ehlo_lines(), Err(CapabilityError::Greeting));
        let bad = Capabilities { auth: vec![Mechanism::Other("A B".into())], ..base.clone() };
        assert_eq!(bad.ehlo_lines(), Err(CapabilityError::Mechanism));
        let other = OtherExtension { keyword: "X-A".into(), params: "p\nq".into() };
        let bad = Capabilities { other: vec![other], ..base };
        assert_eq!(bad.ehlo_lines(), Err(CapabilityError::Extension));
    }

    #[test]
    fn generator_output() {
        let caps = Capabilities {
            domain: "mx.example".into(),
            greeting: "at your service".into(),
            starttls: true,
            pipelining: true,
            enhanced_status_codes: true,
            size: Some(1024),
            auth: vec![Mechanism::ScramSha256, Mechanism::Plain],
            other: vec![OtherExtension { keyword: "HELP".into(), params: String::new() }],
            ..Capabilities::default()
        };
        assert_eq!(
            caps.ehlo_lines().unwrap(),
            vec![
                "mx.example at your service",
                "SIZE 1024",
                "PIPELINING",
                "ENHANCEDSTATUSCODES",
                "STARTTLS",
                "AUTH SCRAM-SHA-256 PLAIN",
                "HELP"
            ]
        );
    }

    fn mechanism_strategy() -> impl proptest::strategy::Strategy<Value = Mechanism> {
        use proptest::prelude::*;
        prop_oneof![
            proptest::sample::select(Mechanism::KNOWN.to_vec()),
            "X-[A-Z0-9_-]{1,40}".prop_map(Mechanism::Other),
        ]
    }

    fn capabilities_strategy() -> impl proptest::strategy::Strategy<Value = Capabilities> {
        use proptest::prelude::*;
        let flags = proptest::collection::vec(any::<bool>(), 7);
        let other = proptest::collection::vec(("Y-[A-Za-z0-9-]{0,12}", "([!-~]{1,8}( [!-~]{1,8}){0,3})?"), 0..4);
        (
            "[a-z0-9.-]{1,30}",
            "([ -~]{0,20}[!-~])?",
            flags,
            proptest::option::of(0u64..u64::MAX),
            proptest::collection::vec(mechanism_strategy(), 0..8),
            other,
        )
            .prop_map(|(domain, greeting, flags, size, mut auth, other)| {
                let mut seen = Vec::new();
                auth.retain(|m| {
                    let new = !seen.contains(m);
                    seen.push(m.clone());
                    new
                });
                Capabilities {
                    domain,
                    greeting: greeting.trim_start().into(),
                    starttls: flags[0],
                    pipelining: flags[1],
                    eight_bit_mime: flags[2],
                    smtputf8: flags[3],
                    enhanced_status_codes: flags[4],
                    chunking: flags[5],
                    dsn: flags[6],
                    size,
                    auth,
                    other: other.into_iter().map(|(keyword, params)| OtherExtension { keyword, params }).collect(),
                }
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
        #[test]
        fn round_trip(caps in capabilities_strategy()) {
            let lines = caps.ehlo_lines().unwrap();
            proptest::prop_assert_eq!(Capabilities::parse(&lines), caps);
        }

        #[test]
        fn any_bytes_no_panic(lines in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..64), 0..16)) {
            let caps = Capabilities::parse(&lines);
            proptest::prop_assert!(caps.auth.len() <= MAX_MECHANISMS);
            for line in &lines {
                let _ = Extension::parse(line);
            }
        }
    }

    /// The wire form of text lines: `250-` on all but the last, `250 ` on it, CRLF after each.
    fn wire(lines: &[String]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            out.extend_from_slice(if i + 1 == lines.len() { b"250 " } else { b"250-" });
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// The owned capabilities the client gets for `reply`: line reader, reply parser, parse.
    fn client_path(reply: &[u8]) -> Capabilities {
        let mut reader = crate::wire::LineReader::new(SMTP_REPLY_LIMIT);
        reader.feed(reply);
        let reply = ReplyParser::new().next_reply(&mut reader).unwrap().unwrap();
        Capabilities::parse(reply.text_lines())
    }

    const EHLO_12: &[u8] = b"250-mx.example.com Hello client.example.com [192.0.2.1]\r\n\
250-SIZE 52428800\r\n250-8BITMIME\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256\r\n\
250-AUTH=PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250-CHUNKING\r\n250-SMTPUTF8\r\n\
250-STARTTLS\r\n250 HELP\r\n";

    #[test]
    fn borrowed_ehlo_known_answer() {
        let mut input = EHLO_12.to_vec();
        input.extend_from_slice(b"250 next reply");
        let (caps, used) = CapabilitiesRef::parse(&input).unwrap().unwrap();
        assert_eq!(used, EHLO_12.len());
        assert_eq!(caps.domain(), b"mx.example.com");
        assert_eq!(caps.greeting(), b"Hello client.example.com [192.0.2.1]");
        assert!(caps.starttls() && caps.pipelining() && caps.eight_bit_mime() && caps.smtputf8());
        assert!(caps.enhanced_status_codes() && caps.chunking() && caps.dsn() && caps.auth_advertised());
        assert_eq!(caps.size(), Some(52_428_800));
        let names: Vec<&str> = caps.mechanism_names().collect();
        assert_eq!(names, ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256", "PLAIN", "LOGIN"]);
        for m in [Mechanism::Plain, Mechanism::Login, Mechanism::CramMd5, Mechanism::ScramSha256] {
            assert!(caps.offers(&m), "{m:?}");
        }
        assert!(!caps.offers(&Mechanism::XOAuth2));
        assert!(!caps.offers(&Mechanism::Other("HELP".into())));
        assert_eq!(caps.others().collect::<Vec<_>>(), [("HELP", "")]);
        assert_eq!(caps.other("help"), Some(""));
        let owned = caps.to_capabilities();
        assert_eq!(owned, client_path(EHLO_12));
        assert_eq!(owned.auth, mechs(&["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"]));
        assert_eq!(Capabilities::from(caps), owned);
    }

    #[test]
    fn borrowed_ehlo_other_mechanism_and_bare_lines() {
        let reply = b"250-h\r\n250-AUTH X-CUSTOM plain\r\n250-X-FOO a b\r\n250 SIZE\r\n";
        let (caps, _) = CapabilitiesRef::parse(reply).unwrap().unwrap();
        assert!(caps.offers(&Mechanism::Other("X-CUSTOM".into())) && caps.offers(&Mechanism::Plain));
        assert!(!caps.offers(&Mechanism::Other("X-OTHER".into())));
        assert_eq!(caps.other("x-foo"), Some("a b"));
        assert_eq!(caps.size(), Some(0));
        assert_eq!((caps.domain(), caps.greeting()), (&b"h"[..], &b""[..]));
        let (caps, _) = CapabilitiesRef::parse(b"250 mx.example\n").unwrap().unwrap();
        assert!(!caps.auth_advertised() && caps.size().is_none() && caps.extensions().next().is_none());
        assert_eq!(caps.to_capabilities().domain, "mx.example");
    }

    #[test]
    fn folded_names_same_as_mechanism_known() {
        for m in Mechanism::KNOWN {
            let name = m.as_str();
            for variant in [name.to_string(), name.to_ascii_lowercase(), name.replace('-', "_")] {
                let expected = Mechanism::known(variant.as_bytes()).map_or(0, |k| mechanism_bit(&k));
                assert_eq!(known_mechanism_bit(variant.as_bytes()), expected, "{variant}");
            }
        }
        assert_eq!(known_mechanism_bit(b"X-PLAIN"), 0);
        for keyword in ["DSN", "auth", "Size", "8BITMIME", "STARTTLS", "SMTPUTF8", "CHUNKING", "PIPELINING"] {
            assert_ne!(keyword_flag(keyword.as_bytes()), 0, "{keyword}");
        }
        assert_ne!(keyword_flag(b"EnhancedStatusCodes"), 0);
        assert_eq!(keyword_flag(b"DSM"), 0);
        assert_eq!(keyword_flag(b"SIZE-"), 0);
    }

    #[test]
    fn size_number_as_str_parse() {
        for text in ["0", "52428800", "+5", "+", "", "-1", "18446744073709551615", "18446744073709551616", "1x", " 1"] {
            assert_eq!(parse_u64(text.as_bytes()), text.parse::<u64>().ok(), "{text}");
        }
    }

    #[test]
    fn borrowed_ehlo_errors() {
        assert_eq!(CapabilitiesRef::parse(b"550 5.7.1 no\r\n"), Some(Err(ReplyError::Unexpected(550))));
        assert_eq!(CapabilitiesRef::parse(b"250-a\r\n251 b\r\n"), Some(Err(ReplyError::CodeMismatch)));
        assert_eq!(CapabilitiesRef::parse(b"250-a\r\n25"), None);
        assert_eq!(CapabilitiesRef::parse(b"250-a\0\r\n250 b\r\n"), Some(Err(ReplyError::Binary)));
        assert_eq!(CapabilitiesRef::parse(b"250-a\r\nxyz\r\n"), Some(Err(ReplyError::BadCode)));
        let mut long = b"250-".to_vec();
        long.extend_from_slice(&[b'a'; 600]);
        assert_eq!(CapabilitiesRef::parse(&long), Some(Err(ReplyError::LineTooLong { length: 604, limit: 512 })));
        long.extend_from_slice(b"\r\n250 x\r\n");
        assert_eq!(CapabilitiesRef::parse(&long), Some(Err(ReplyError::LineTooLong { length: 606, limit: 512 })));
        let many = b"250-x\r\n".repeat(ReplyParser::DEFAULT_MAX_LINES + 1);
        assert_eq!(CapabilitiesRef::parse(&many), Some(Err(ReplyError::TooManyLines(ReplyParser::DEFAULT_MAX_LINES))));
    }

    #[test]
    fn borrowed_ehlo_every_prefix_is_incomplete() {
        for at in 0..EHLO_12.len() {
            assert_eq!(CapabilitiesRef::parse(&EHLO_12[..at]), None, "{at}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
        #[test]
        fn borrowed_round_trip(caps in capabilities_strategy()) {
            // Owned -> wire -> borrowed -> owned.
            let reply = wire(&caps.ehlo_lines().unwrap());
            let (view, used) = CapabilitiesRef::parse(&reply).unwrap().unwrap();
            proptest::prop_assert_eq!(used, reply.len());
            proptest::prop_assert_eq!(view.to_capabilities(), caps.clone());
            proptest::prop_assert_eq!(view.starttls(), caps.starttls);
            proptest::prop_assert_eq!(view.pipelining(), caps.pipelining);
            proptest::prop_assert_eq!(view.eight_bit_mime(), caps.eight_bit_mime);
            proptest::prop_assert_eq!(view.smtputf8(), caps.smtputf8);
            proptest::prop_assert_eq!(view.enhanced_status_codes(), caps.enhanced_status_codes);
            proptest::prop_assert_eq!(view.chunking(), caps.chunking);
            proptest::prop_assert_eq!(view.dsn(), caps.dsn);
            proptest::prop_assert_eq!(view.size(), caps.size);
            proptest::prop_assert_eq!(view.auth_advertised(), !caps.auth.is_empty());
            for m in Mechanism::KNOWN.iter().chain(&caps.auth) {
                proptest::prop_assert_eq!(view.offers(m), caps.offers(m), "{:?}", m);
            }
            let others: Vec<(&str, &str)> = view.others().collect();
            let expected: Vec<(&str, &str)> =
                caps.other.iter().map(|o| (o.keyword.as_str(), o.params.as_str())).collect();
            proptest::prop_assert_eq!(others, expected);
            proptest::prop_assert_eq!(view.domain(), caps.domain.as_bytes());
            proptest::prop_assert_eq!(view.greeting(), caps.greeting.as_bytes());
            // Borrowed -> owned is what the client's path builds; no prefix is a reply.
            proptest::prop_assert_eq!(client_path(&reply), caps);
            for at in 0..reply.len() {
                proptest::prop_assert_eq!(CapabilitiesRef::parse(&reply[..at]), None);
            }
        }

        #[test]
        fn borrowed_matches_client_path_on_printable_lines(
            lines in proptest::collection::vec("[ -~]{0,30}", 1..12),
        ) {
            let lines: Vec<String> = lines;
            let reply = wire(&lines);
            let view = CapabilitiesRef::parse(&reply).unwrap().unwrap().0;
            let owned = client_path(&reply);
            proptest::prop_assert_eq!(view.to_capabilities(), owned.clone());
            proptest::prop_assert_eq!((view.starttls(), view.pipelining(), view.dsn(), view.size()),
                (owned.starttls, owned.pipelining, owned.dsn, owned.size));
            for m in Mechanism::KNOWN.iter().chain(&owned.auth) {
                proptest::prop_assert_eq!(view.offers(m), owned.offers(m), "{:?}", m);
            }
        }

        #[test]
        fn borrowed_fast_path_matches_client_path(
            lines in proptest::collection::vec((
                proptest::sample::select(vec![
                    "AUTH", "auth", "AUTH=", "Size", "SIZE", "DSN", "dsn", "8BITMIME", "STARTTLS", "starttls",
                    "SMTPUTF8", "CHUNKING", "PIPELINING", "ENHANCEDSTATUSCODES", "X-FOO", "DSNX", "SIZ", "",
                ]),
                "( {0,2}[0-9A-Za-z_=+.-]{0,8}){0,4} {0,2}",
            ), 0..10),
        ) {
            let mut text = vec![String::from("mx.example Hi")];
            text.extend(lines.iter().map(|(keyword, params)| alloc::format!("{keyword}{params}")));
            let reply = wire(&text);
            let view = CapabilitiesRef::parse(&reply).unwrap().unwrap().0;
            let owned = client_path(&reply);
            proptest::prop_assert_eq!(view.to_capabilities(), owned.clone());
            proptest::prop_assert_eq!(
                (view.starttls(), view.pipelining(), view.eight_bit_mime(), view.smtputf8()),
                (owned.starttls, owned.pipelining, owned.eight_bit_mime, owned.smtputf8));
            proptest::prop_assert_eq!(
                (view.enhanced_status_codes(), view.chunking(), view.dsn(), view.size()),
                (owned.enhanced_status_codes, owned.chunking, owned.dsn, owned.size));
            for m in Mechanism::KNOWN.iter().chain(&owned.auth) {
                proptest::prop_assert_eq!(view.offers(m), owned.offers(m), "{:?}", m);
            }
            let others: Vec<(&str, &str)> = view.others().collect();
            let expected: Vec<(&str, &str)> =
                owned.other.iter().map(|o| (o.keyword.as_str(), o.params.as_str())).collect();
            proptest::prop_assert_eq!(others, expected);
        }

        #[test]
        fn borrowed_any_bytes_no_panic(input in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            if let Some(Ok((view, used))) = CapabilitiesRef::parse(&input) {
                proptest::prop_assert!(used <= input.len());
                let _ = view.to_capabilities();
                let _ = view.mechanism_names().count();
            }
        }
    }
}
