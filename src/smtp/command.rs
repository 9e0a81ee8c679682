//! SMTP commands (RFC 5321 §4.1), with AUTH (RFC 4954 §4), STARTTLS (RFC 3207 §4), BDAT
//! (RFC 3030 §2) and the MAIL/RCPT parameters of SIZE (RFC 1870), BODY (RFC 6152, RFC 3030),
//! SMTPUTF8 (RFC 6531), DSN (RFC 3461) and `AUTH=` (RFC 4954 §5).
//!
//! [`Command::parse`] borrows from the line and allocates nothing. [`Command::write`] refuses
//! any argument holding CR, LF or NUL (command injection) and anything it could not parse
//! back.

use alloc::vec::Vec;
use core::fmt::Write as _;

use super::xtext;

/// Why a command line could not be parsed (RFC 5321 §4.2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The verb is not a command this codec knows (a server answers 500).
    #[error("unrecognized command")]
    Unrecognized,
    /// The verb is known but its arguments are malformed (a server answers 501).
    #[error("syntax error in arguments: {0}")]
    Syntax(&'static str),
}

/// Why a command could not be serialized. Nothing is written in either case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// An argument holds CR, LF or NUL, which would end the line or inject a command
    /// (RFC 5321 §2.3.8).
    #[error("CR, LF or NUL in a command argument")]
    Injection,
    /// An argument breaks the command's syntax, so the line would not parse back.
    #[error("argument does not fit the command syntax")]
    Invalid,
}

/// A reverse-path or forward-path (RFC 5321 §4.1.2). The null path `<>` has an empty
/// mailbox; a source route is kept (and ignored, RFC 5321 §4.1.1.3 and appendix C).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Path<'a> {
    /// The source route without its final `:` (`@a.example,@b.example`), if any.
    pub route: Option<&'a str>,
    /// `local-part@domain`, `Postmaster`, or empty for the null path.
    pub mailbox: &'a str,
}

impl<'a> Path<'a> {
    /// The null reverse-path `<>` (RFC 5321 §4.5.5).
    pub const NULL: Path<'static> = Path { route: None, mailbox: "" };

    /// A path to or from `mailbox`.
    pub fn new(mailbox: &'a str) -> Self {
        Self { route: None, mailbox }
    }

    /// Whether this is the null path `<>`.
    pub fn is_null(&self) -> bool {
        self.mailbox.is_empty()
    }
}

/// `BODY=` (RFC 6152 §2, RFC 3030 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Body {
    /// `7BIT`.
    SevenBit,
    /// `8BITMIME`.
    EightBitMime,
    /// `BINARYMIME` (needs BDAT).
    BinaryMime,
}

impl Body {
    /// The parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SevenBit => "7BIT",
            Self::EightBitMime => "8BITMIME",
            Self::BinaryMime => "BINARYMIME",
        }
    }
}

/// `RET=` (RFC 3461 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ret {
    /// `FULL`: return the whole message in a DSN.
    Full,
    /// `HDRS`: return the headers only.
    Hdrs,
}

impl Ret {
    /// The parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Hdrs => "HDRS",
        }
    }
}

/// `NOTIFY=` (RFC 3461 §4.1): all three flags false means `NEVER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Notify {
    /// `SUCCESS`.
    pub success: bool,
    /// `FAILURE`.
    pub failure: bool,
    /// `DELAY`.
    pub delay: bool,
}

impl Notify {
    /// `NOTIFY=NEVER`.
    pub const NEVER: Notify = Notify { success: false, failure: false, delay: false };
}

/// One MAIL or RCPT parameter (RFC 5321 §4.1.2 `esmtp-param`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Parameter<'a> {
    /// `SIZE=n` (RFC 1870 §6).
    Size(u64),
    /// `BODY=` (RFC 6152 §2).
    Body(Body),
    /// `SMTPUTF8` (RFC 6531 §3.4).
    SmtpUtf8,
    /// `RET=` (RFC 3461 §4.3).
    Ret(Ret),
    /// `ENVID=`, still xtext-encoded (RFC 3461 §4.4); decode with [`xtext::decode`].
    EnvId(&'a str),
    /// `NOTIFY=` (RFC 3461 §4.1).
    Notify(Notify),
    /// `ORCPT=addr-type;xtext` (RFC 3461 §4.2), the address still xtext-encoded.
    Orcpt {
        /// The address type, e.g. `rfc822`.
        addr_type: &'a str,
        /// The original recipient, xtext-encoded.
        address: &'a str,
    },
    /// `AUTH=` (RFC 4954 §5): `None` for `AUTH=<>`, else the xtext-encoded mailbox
    /// (make one with [`xtext::encode`]).
    Auth(Option<&'a str>),
    /// Any other parameter, kept as sent.
    Other {
        /// The keyword.
        keyword: &'a str,
        /// The value after `=`, if any.
        value: Option<&'a str>,
    },
}

impl<'a> Parameter<'a> {
    /// Parses one `keyword[=value]` (RFC 5321 §4.1.2); keywords and enumerated values are
    /// case-insensitive.
    pub fn parse(text: &'a str) -> Result<Self, ParseError> {
        let (keyword, value) = match text.as_bytes().iter().position(|&b| b == b'=') {
            Some(at) => (text.get(..at).unwrap_or_default(), text.get(at + 1..)),
            None => (text, None),
        };
        let mut chars = keyword.bytes();
        if !chars.next().is_some_and(|b| b.is_ascii_alphanumeric()) || !chars.all(|b| in_class(KEYWORD, b)) {
            return Err(ParseError::Syntax("bad parameter keyword"));
        }
        if let Some(value) = value {
            if value.is_empty() || !value.bytes().all(|b| in_class(VALUE, b)) {
                return Err(ParseError::Syntax("bad parameter value"));
            }
        }
        let is = |name: &str| keyword.len() == name.len() && keyword.eq_ignore_ascii_case(name);
        let need = |value: Option<&'a str>| value.ok_or(ParseError::Syntax("parameter needs a value"));
        Ok(if is("SIZE") {
            let value = need(value)?;
            if value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseError::Syntax("bad SIZE value"));
            }
            Self::Size(value.parse().map_err(|_| ParseError::Syntax("bad SIZE value"))?)
        } else if is("BODY") {
            let value = need(value)?;
            Self::Body(
                [Body::SevenBit, Body::EightBitMime, Body::BinaryMime]
                    .into_iter()
                    .find(|body| value.eq_ignore_ascii_case(body.as_str()))
                    .ok_or(ParseError::Syntax("bad BODY value"))?,
            )
        } else if is("SMTPUTF8") {
            if value.is_some() {
                return Err(ParseError::Syntax("SMTPUTF8 takes no value"));
            }
            Self::SmtpUtf8
        } else if is("RET") {
            let value = need(value)?;
            Self::Ret(
                [Ret::Full, Ret::Hdrs]
                    .into_iter()
                    .find(|ret| value.eq_ignore_ascii_case(ret.as_str()))
                    .ok_or(ParseError::Syntax("bad RET value"))?,
            )
        } else if is("ENVID") {
            let value = need(value)?;
            xtext::validate(value.as_bytes()).map_err(|_| ParseError::Syntax("ENVID is not xtext"))?;
            Self::EnvId(value)
        } else if is("NOTIFY") {
            Self::Notify(parse_notify(need(value)?)?)
        } else if is("ORCPT") {
            let (addr_type, address) =
                need(value)?.split_once(';').ok_or(ParseError::Syntax("ORCPT needs addr-type;address"))?;
            let mut type_chars = addr_type.bytes();
            if !type_chars.next().is_some_and(|b| b.is_ascii_alphanumeric())
                || !type_chars.all(|b| b.is_ascii_alphanumeric() || b == b'-')
                || address.is_empty()
                || xtext::validate(address.as_bytes()).is_err()
            {
                return Err(ParseError::Syntax("bad ORCPT value"));
            }
            Self::Orcpt { addr_type, address }
        } else if is("AUTH") {
            let value = need(value)?;
            if value == "<>" {
                Self::Auth(None)
            } else {
                xtext::validate(value.as_bytes()).map_err(|_| ParseError::Syntax("AUTH= is not xtext"))?;
                Self::Auth(Some(value))
            }
        } else {
            Self::Other { keyword, value }
        })
    }

    /// Writes the parameter as it travels (keywords upper case).
    fn write(&self, out: &mut Vec<u8>) {
        let mut put = |text: &str| out.extend_from_slice(text.as_bytes());
        match self {
            Self::Size(size) => {
                put("SIZE=");
                let mut digits = alloc::string::String::new();
                let _ = write!(digits, "{size}");
                put(&digits);
            }
            Self::Body(body) => {
                put("BODY=");
                put(body.as_str());
            }
            Self::SmtpUtf8 => put("SMTPUTF8"),
            Self::Ret(ret) => {
                put("RET=");
                put(ret.as_str());
            }
            Self::EnvId(id) => {
                put("ENVID=");
                put(id);
            }
            Self::Notify(notify) => {
                put("NOTIFY=");
                if *notify == Notify::NEVER {
                    put("NEVER");
                } else {
                    let mut first = true;
                    for (on, name) in
                        [(notify.success, "SUCCESS"), (notify.failure, "FAILURE"), (notify.delay, "DELAY")]
                    {
                        if on {
                            if !first {
                                put(",");
                            }
                            put(name);
                            first = false;
                        }
                    }
                }
            }
            Self::Orcpt { addr_type, address } => {
                put("ORCPT=");
                put(addr_type);
                put(";");
                put(address);
            }
            Self::Auth(mailbox) => {
                put("AUTH=");
                put(mailbox.unwrap_or("<>"));
            }
            Self::Other { keyword, value } => {
                put(keyword);
                if let Some(value) = value {
                    put("=");
                    put(value);
                }
            }
        }
    }
}

fn parse_notify(value: &str) -> Result<Notify, ParseError> {
    if value.eq_ignore_ascii_case("NEVER") {
        return Ok(Notify::NEVER);
    }
    let mut notify = Notify::NEVER;
    for item in value.split(',') {
        if item.eq_ignore_ascii_case("SUCCESS") {
            notify.success = true;
        } else if item.eq_ignore_ascii_case("FAILURE") {
            notify.failure = true;
        } else if item.eq_ignore_ascii_case("DELAY") {
            notify.delay = true;
        } else {
            return Err(ParseError::Syntax("bad NOTIFY value"));
        }
    }
    Ok(notify)
}

/// The parameters of a MAIL or RCPT command: either borrowed from a parsed line (validated
/// when parsed) or from a caller's slice. Compare and iterate them with [`iter`](Self::iter).
#[derive(Debug, Clone, Copy)]
pub struct Parameters<'a>(Repr<'a>);

#[derive(Debug, Clone, Copy)]
enum Repr<'a> {
    Wire(&'a str),
    List(&'a [Parameter<'a>]),
}

impl<'a> Parameters<'a> {
    /// No parameters.
    pub const EMPTY: Parameters<'static> = Parameters(Repr::List(&[]));

    /// Parameters given by the caller.
    pub fn from_slice(list: &'a [Parameter<'a>]) -> Self {
        Self(Repr::List(list))
    }

    /// Validates the space-separated parameters of a command line.
    fn parse(text: &'a str) -> Result<Self, ParseError> {
        for item in words(text) {
            Parameter::parse(item)?;
        }
        Ok(Self(Repr::Wire(text)))
    }

    /// The parameter text as it came on a parsed command line (already validated), if the
    /// parameters were parsed rather than given as a list.
    pub(crate) fn wire_text(&self) -> Option<&'a str> {
        match self.0 {
            Repr::Wire(text) => Some(text),
            Repr::List(_) => None,
        }
    }

    /// The parameters, in order.
    pub fn iter(&self) -> impl Iterator<Item = Parameter<'a>> + 'a {
        let (wire, list) = match self.0 {
            Repr::Wire(text) => (Some(text), &[][..]),
            Repr::List(list) => (None, list),
        };
        wire.into_iter()
            .flat_map(|text| words(text).filter_map(|p| Parameter::parse(p).ok()))
            .chain(list.iter().copied())
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The `AUTH=` parameter, if present: `Some(None)` for `AUTH=<>` (RFC 4954 §5).
    pub fn auth(&self) -> Option<Option<&'a str>> {
        self.iter().find_map(|p| match p {
            Parameter::Auth(mailbox) => Some(mailbox),
            _ => None,
        })
    }

    /// The `SIZE=` parameter, if present (RFC 1870 §6).
    pub fn size(&self) -> Option<u64> {
        self.iter().find_map(|p| match p {
            Parameter::Size(size) => Some(size),
            _ => None,
        })
    }
}

impl PartialEq for Parameters<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Parameters<'_> {}

impl Default for Parameters<'_> {
    fn default() -> Self {
        Parameters(Repr::List(&[]))
    }
}

/// An SMTP command (RFC 5321 §4.1.1), borrowing its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command<'a> {
    /// `EHLO domain` (RFC 5321 §4.1.1.1).
    Ehlo(&'a str),
    /// `HELO domain` (RFC 5321 §4.1.1.1).
    Helo(&'a str),
    /// `MAIL FROM:<path> [params]` (RFC 5321 §4.1.1.2).
    Mail {
        /// The reverse-path.
        from: Path<'a>,
        /// The parameters.
        params: Parameters<'a>,
    },
    /// `RCPT TO:<path> [params]` (RFC 5321 §4.1.1.3).
    Rcpt {
        /// The forward-path.
        to: Path<'a>,
        /// The parameters.
        params: Parameters<'a>,
    },
    /// `DATA` (RFC 5321 §4.1.1.4).
    Data,
    /// `BDAT size [LAST]` (RFC 3030 §2).
    Bdat {
        /// Octets in the chunk that follows the line.
        size: u64,
        /// Whether this is the last chunk.
        last: bool,
    },
    /// `RSET` (RFC 5321 §4.1.1.5).
    Rset,
    /// `NOOP [string]` (RFC 5321 §4.1.1.9).
    Noop(Option<&'a str>),
    /// `QUIT` (RFC 5321 §4.1.1.10).
    Quit,
    /// `VRFY string` (RFC 5321 §4.1.1.6).
    Vrfy(&'a str),
    /// `EXPN string` (RFC 5321 §4.1.1.7).
    Expn(&'a str),
    /// `HELP [string]` (RFC 5321 §4.1.1.8).
    Help(Option<&'a str>),
    /// `STARTTLS` (RFC 3207 §4).
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954 §4).
    Auth {
        /// The mechanism name as sent (compare case-insensitively, e.g. with
        /// [`crate::sasl::Mechanism::parse`]).
        mechanism: &'a str,
        /// The initial response, base64 or `=` for an empty one; decode with
        /// [`crate::wire::decode_response`].
        initial: Option<&'a str>,
    },
}

impl<'a> Command<'a> {
    /// Parses a command line without its CRLF (RFC 5321 §4.1). Verbs and the `FROM:` / `TO:`
    /// prefixes are case-insensitive; nothing but parameters may follow a path.
    pub fn parse(line: &'a [u8]) -> Result<Self, ParseError> {
        let line = line.strip_suffix(b"\r\n").unwrap_or(line);
        // A bare verb (a third of a pipelined session's lines) is letters only: nothing to
        // scan or validate.
        if matches!(line.len(), 4 | 8) {
            match Verb::of(line) {
                Verb::Data => return Ok(Self::Data),
                Verb::Quit => return Ok(Self::Quit),
                Verb::Rset => return Ok(Self::Rset),
                Verb::StartTls => return Ok(Self::StartTls),
                Verb::Noop => return Ok(Self::Noop(None)),
                Verb::Help => return Ok(Self::Help(None)),
                _ => {}
            }
        }
        // Short lines are scanned in place; memchr pays off on longer ones.
        let bad = if line.len() <= 64 { has_cr_lf_nul(line) } else { memchr::memchr3(0, b'\r', b'\n', line).is_some() };
        if bad {
            return Err(ParseError::Syntax("CR, LF or NUL in a command line"));
        }
        let line = core::str::from_utf8(line).map_err(|_| ParseError::Syntax("command line is not UTF-8"))?;
        // Every verb has at most 8 letters: the space, if any, is among the first 9 bytes.
        let (verb, args) = match line.as_bytes().iter().take(9).position(|&b| b == b' ') {
            Some(space) => (line.get(..space).unwrap_or(""), line.get(space + 1..)),
            None if line.len() > 8 => return Err(ParseError::Unrecognized),
            None => (line, None),
        };
        let text = args.map(trim_spaces).filter(|a| !a.is_empty());
        let blank = text.is_none();
        let verb = Verb::of(verb.as_bytes());
        let is = |name: Verb| verb == name;
        let no_args = |command: Command<'a>| {
            if blank { Ok(command) } else { Err(ParseError::Syntax("command takes no arguments")) }
        };
        match verb {
            Verb::Ehlo | Verb::Helo => {
                let domain = text.ok_or(ParseError::Syntax("EHLO/HELO needs a domain"))?;
                if domain.bytes().fold(false, |bad, b| bad | (b <= b' ' || b == 0x7f)) {
                    return Err(ParseError::Syntax("bad EHLO/HELO domain"));
                }
                Ok(if is(Verb::Ehlo) { Self::Ehlo(domain) } else { Self::Helo(domain) })
            }
            Verb::Mail => {
                let rest = strip_from(args.unwrap_or("")).ok_or(ParseError::Syntax("expected FROM:"))?;
                let (from, params) = parse_path_and_params(rest, true, false)?;
                Ok(Self::Mail { from, params })
            }
            Verb::Rcpt => {
                let rest = strip_to(args.unwrap_or("")).ok_or(ParseError::Syntax("expected TO:"))?;
                let (to, params) = parse_path_and_params(rest, false, true)?;
                Ok(Self::Rcpt { to, params })
            }
            Verb::Data => no_args(Self::Data),
            Verb::Bdat => {
                let mut words = words(text.unwrap_or(""));
                let size = words.next().ok_or(ParseError::Syntax("BDAT needs a size"))?;
                if size.len() > 20 || !size.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ParseError::Syntax("bad BDAT size"));
                }
                let size = size.parse().map_err(|_| ParseError::Syntax("bad BDAT size"))?;
                let last = match words.next() {
                    None => false,
                    Some(word) if word.eq_ignore_ascii_case("LAST") => true,
                    Some(_) => return Err(ParseError::Syntax("expected LAST")),
                };
                if words.next().is_some() {
                    return Err(ParseError::Syntax("too many BDAT arguments"));
                }
                Ok(Self::Bdat { size, last })
            }
            Verb::Rset => no_args(Self::Rset),
            Verb::Noop => Ok(Self::Noop(text)),
            Verb::Quit => no_args(Self::Quit),
            Verb::Vrfy => Ok(Self::Vrfy(text.ok_or(ParseError::Syntax("VRFY needs an argument"))?)),
            Verb::Expn => Ok(Self::Expn(text.ok_or(ParseError::Syntax("EXPN needs an argument"))?)),
            Verb::Help => Ok(Self::Help(text)),
            Verb::StartTls => no_args(Self::StartTls),
            Verb::Auth => {
                let mut words = words(text.unwrap_or(""));
                let mechanism = words.next().ok_or(ParseError::Syntax("AUTH needs a mechanism"))?;
                if !mechanism.bytes().all(|b| in_class(MECHANISM, b)) {
                    return Err(ParseError::Syntax("bad mechanism name"));
                }
                let initial = words.next();
                if let Some(initial) = initial {
                    if initial != "=" && !initial.bytes().all(|b| in_class(BASE64, b)) {
                        return Err(ParseError::Syntax("initial response is not base64"));
                    }
                }
                if words.next().is_some() {
                    return Err(ParseError::Syntax("too many AUTH arguments"));
                }
                Ok(Self::Auth { mechanism, initial })
            }
            _ => Err(ParseError::Unrecognized),
        }
    }

    /// Appends the command line with its CRLF to `out` (RFC 5321 §4.1.1). Refuses CR, LF or
    /// NUL anywhere in an argument, and any argument that would not parse back as the same
    /// command; `out` is then left as it was.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), WriteError> {
        let start = out.len();
        self.write_unchecked(out);
        let line = out.get(start..).unwrap_or_default();
        let result = if line.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n')) {
            Err(WriteError::Injection)
        } else {
            match Command::parse(line) {
                Ok(parsed) if parsed == *self => Ok(()),
                _ => Err(WriteError::Invalid),
            }
        };
        match result {
            Ok(()) => out.extend_from_slice(b"\r\n"),
            Err(_) => out.truncate(start),
        }
        result
    }

    /// The command line with its CRLF, or why it cannot be sent.
    pub fn to_bytes(&self) -> Result<Vec<u8>, WriteError> {
        let mut out = Vec::new();
        self.write(&mut out)?;
        Ok(out)
    }

    fn write_unchecked(&self, out: &mut Vec<u8>) {
        let mut put = |text: &str| out.extend_from_slice(text.as_bytes());
        match self {
            Self::Ehlo(domain) => {
                put("EHLO ");
                put(domain);
            }
            Self::Helo(domain) => {
                put("HELO ");
                put(domain);
            }
            Self::Mail { from, params } => {
                put("MAIL FROM:");
                write_path_and_params(out, from, params);
            }
            Self::Rcpt { to, params } => {
                put("RCPT TO:");
                write_path_and_params(out, to, params);
            }
            Self::Data => put("DATA"),
            Self::Bdat { size, last } => {
                let mut line = alloc::string::String::new();
                let _ = write!(line, "BDAT {size}{}", if *last { " LAST" } else { "" });
                put(&line);
            }
            Self::Rset => put("RSET"),
            Self::Noop(text) | Self::Help(text) => {
                put(if matches!(self, Self::Noop(_)) { "NOOP" } else { "HELP" });
                if let Some(text) = text {
                    put(" ");
                    put(text);
                }
            }
            Self::Quit => put("QUIT"),
            Self::Vrfy(text) => {
                put("VRFY ");
                put(text);
            }
            Self::Expn(text) => {
                put("EXPN ");
                put(text);
            }
            Self::StartTls => put("STARTTLS"),
            Self::Auth { mechanism, initial } => {
                put("AUTH ");
                put(mechanism);
                if let Some(initial) = initial {
                    put(" ");
                    put(initial);
                }
            }
        }
    }
}

fn write_path_and_params(out: &mut Vec<u8>, path: &Path<'_>, params: &Parameters<'_>) {
    out.push(b'<');
    if let Some(route) = path.route {
        out.extend_from_slice(route.as_bytes());
        out.push(b':');
    }
    out.extend_from_slice(path.mailbox.as_bytes());
    out.push(b'>');
    for param in params.iter() {
        out.push(b' ');
        param.write(out);
    }
}

/// `FROM:` (any case) at the start of `text`, by masking one word (see [`Verb::word`]).
fn strip_from(text: &str) -> Option<&str> {
    match *text.as_bytes() {
        [a, b, c, d, b':', ..] if Verb::word([a, b, c, d]) == Verb::word(*b"FROM") => text.get(5..),
        _ => None,
    }
}

/// `TO:` (any case) at the start of `text`.
fn strip_to(text: &str) -> Option<&str> {
    match *text.as_bytes() {
        [a, b, b':', ..] if Verb::word([a, b, b'@', b'@']) == Verb::word(*b"TO@@") => text.get(3..),
        _ => None,
    }
}

/// Parses `<path>` and what follows it. A space after the colon is tolerated (many clients
/// send one); after `>` only ` param...` may follow.
fn parse_path_and_params(
    text: &str,
    allow_null: bool,
    allow_postmaster: bool,
) -> Result<(Path<'_>, Parameters<'_>), ParseError> {
    let spaces = text.bytes().take_while(|&b| b == b' ').count();
    let text = text.get(spaces..).unwrap_or_default();
    let inner = text.strip_prefix('<').ok_or(ParseError::Syntax("path must start with <"))?;
    let bytes = inner.as_bytes();
    let mut route = None;
    let mut at = 0;
    if bytes.first() == Some(&b'@') {
        // A-d-l ":" (RFC 5321 §4.1.2): `@domain` separated by commas.
        loop {
            if bytes.get(at) != Some(&b'@') {
                return Err(ParseError::Syntax("bad source route"));
            }
            at = scan_domain(bytes, at + 1).ok_or(ParseError::Syntax("bad source route"))?;
            match bytes.get(at) {
                Some(b',') => at += 1,
                Some(b':') => break,
                _ => return Err(ParseError::Syntax("bad source route")),
            }
        }
        route = inner.get(..at);
        at += 1;
    }
    let mailbox_start = at;
    let mailbox_end = if bytes.get(at) == Some(&b'>') {
        if route.is_some() || !allow_null {
            return Err(ParseError::Syntax("null path not allowed here"));
        }
        at
    } else {
        let local_end = scan_local_part(bytes, at).ok_or(ParseError::Syntax("bad local part"))?;
        match bytes.get(local_end) {
            Some(b'@') => scan_domain(bytes, local_end + 1).ok_or(ParseError::Syntax("bad domain"))?,
            Some(b'>')
                if allow_postmaster
                    && route.is_none()
                    && inner.get(at..local_end).is_some_and(|l| l.eq_ignore_ascii_case("postmaster")) =>
            {
                local_end
            }
            _ => return Err(ParseError::Syntax("mailbox needs @domain")),
        }
    };
    if bytes.get(mailbox_end) != Some(&b'>') {
        return Err(ParseError::Syntax("path must end with >"));
    }
    let mailbox = inner.get(mailbox_start..mailbox_end).ok_or(ParseError::Syntax("bad path"))?;
    let rest = inner.get(mailbox_end + 1..).unwrap_or("");
    let params = if rest.is_empty() {
        Parameters::default()
    } else {
        let params = rest.strip_prefix(' ').ok_or(ParseError::Syntax("junk after path"))?;
        Parameters::parse(params)?
    };
    Ok((Path { route, mailbox }, params))
}

/// A command verb, recognized case-insensitively (RFC 5321 §2.4).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verb {
    Ehlo,
    Helo,
    Mail,
    Rcpt,
    Data,
    Bdat,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    StartTls,
    Auth,
    Unknown,
}

impl Verb {
    /// Upper-cases ASCII letters by clearing bit 5; only letters map onto letters, so the
    /// comparison with an upper-case name is an exact case-insensitive match.
    const fn word(bytes: [u8; 4]) -> u32 {
        u32::from_le_bytes(bytes) & 0xDFDF_DFDF
    }

    fn of(verb: &[u8]) -> Self {
        const EHLO: u32 = Verb::word(*b"EHLO");
        const HELO: u32 = Verb::word(*b"HELO");
        const MAIL: u32 = Verb::word(*b"MAIL");
        const RCPT: u32 = Verb::word(*b"RCPT");
        const DATA: u32 = Verb::word(*b"DATA");
        const BDAT: u32 = Verb::word(*b"BDAT");
        const RSET: u32 = Verb::word(*b"RSET");
        const NOOP: u32 = Verb::word(*b"NOOP");
        const QUIT: u32 = Verb::word(*b"QUIT");
        const VRFY: u32 = Verb::word(*b"VRFY");
        const EXPN: u32 = Verb::word(*b"EXPN");
        const HELP: u32 = Verb::word(*b"HELP");
        const AUTH: u32 = Verb::word(*b"AUTH");
        match *verb {
            [a, b, c, d] => match Self::word([a, b, c, d]) {
                EHLO => Self::Ehlo,
                HELO => Self::Helo,
                MAIL => Self::Mail,
                RCPT => Self::Rcpt,
                DATA => Self::Data,
                BDAT => Self::Bdat,
                RSET => Self::Rset,
                NOOP => Self::Noop,
                QUIT => Self::Quit,
                VRFY => Self::Vrfy,
                EXPN => Self::Expn,
                HELP => Self::Help,
                AUTH => Self::Auth,
                _ => Self::Unknown,
            },
            [a, b, c, d, e, f, g, h]
                if u64::from_le_bytes([a, b, c, d, e, f, g, h]) & 0xDFDF_DFDF_DFDF_DFDF
                    == u64::from_le_bytes(*b"STARTTLS") =>
            {
                Self::StartTls
            }
            _ => Self::Unknown,
        }
    }
}

/// `text` without leading and trailing spaces.
/// Whether a short line holds CR, LF or NUL, eight octets at a time in a word (a zero byte
/// of `word`, `word ^ CR..` or `word ^ LF..` is one of them); memchr3's setup costs more.
fn has_cr_lf_nul(line: &[u8]) -> bool {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(LOW) & !x & HIGH;
    let chunks = line.chunks_exact(8);
    let tail = chunks.remainder();
    let mut found = 0;
    for chunk in chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        found |= zero(x) | zero(x ^ (LOW * u64::from(b'\r'))) | zero(x ^ (LOW * u64::from(b'\n')));
    }
    found != 0 || tail.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n'))
}

/// The space-separated words of `text`, empty ones skipped. Byte-based: `str::split(' ')`
/// goes through a char searcher and memchr, slow on words this short.
fn words(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut at = 0;
    core::iter::from_fn(move || {
        while bytes.get(at) == Some(&b' ') {
            at += 1;
        }
        let start = at;
        while bytes.get(at).is_some_and(|&b| b != b' ') {
            at += 1;
        }
        if start == at { None } else { text.get(start..at) }
    })
}

fn trim_spaces(text: &str) -> &str {
    let bytes = text.as_bytes();
    let start = bytes.iter().position(|&b| b != b' ').unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|&b| b != b' ').map_or(start, |last| last + 1);
    text.get(start..end).unwrap_or_default()
}

/// Byte classes, one bit each, looked up in [`CLASS`].
const ATEXT: u8 = 1; // atext (RFC 5322 §3.2.3) plus UTF-8 (RFC 6531 §3.3)
const LABEL: u8 = 2; // domain label: letter, digit, `-`, `_` (field leniency), UTF-8
const KEYWORD: u8 = 4; // esmtp-keyword after the first character: letter, digit, `-`
const VALUE: u8 = 8; // esmtp-value (RFC 5321 §4.1.2) plus UTF-8
const BASE64: u8 = 16; // base64 alphabet and padding (RFC 4648 §4)
const MECHANISM: u8 = 32; // SASL mechanism name characters (RFC 4422 §3.1)

#[allow(clippy::indexing_slicing)] // const evaluation: an out-of-range index fails the build
const CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut class = 0;
        if b.is_ascii_alphanumeric() || b >= 0x80 {
            class |= ATEXT | LABEL;
        }
        if b.is_ascii_alphanumeric() || b == b'-' {
            class |= KEYWORD;
        }
        if b == b'-' || b == b'_' {
            class |= LABEL;
        }
        if matches!(b, b'!'..=b'<' | b'>'..=b'~' | 0x80..) {
            class |= VALUE;
        }
        if b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=' {
            class |= BASE64;
        }
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            class |= MECHANISM;
        }
        table[i] = class;
        i += 1;
    }
    let specials = b"!#$%&'*+-/=?^_`{|}~";
    let mut j = 0;
    while j < specials.len() {
        table[specials[j] as usize] |= ATEXT;
        j += 1;
    }
    table
};

fn in_class(class: u8, byte: u8) -> bool {
    CLASS.get(usize::from(byte)).is_some_and(|c| c & class != 0)
}

fn is_atext(byte: u8) -> bool {
    in_class(ATEXT, byte)
}

/// Scans a Dot-string or Quoted-string local part (RFC 5321 §4.1.2) from `at`; returns its end.
fn scan_local_part(bytes: &[u8], mut at: usize) -> Option<usize> {
    if bytes.get(at) == Some(&b'"') {
        at += 1;
        loop {
            match *bytes.get(at)? {
                b'"' => return (at > 0).then_some(at + 1),
                b'\\' => {
                    if !matches!(bytes.get(at + 1), Some(b' '..=b'~')) {
                        return None;
                    }
                    at += 2;
                }
                b' ' | b'!' | b'#'..=b'[' | b']'..=b'~' | 0x80.. => at += 1,
                _ => return None,
            }
        }
    }
    let start = at;
    let mut atom = 0;
    for &byte in bytes.get(at..).unwrap_or_default() {
        if is_atext(byte) {
            atom += 1;
        } else if byte == b'.' && atom > 0 {
            atom = 0;
        } else {
            break;
        }
        at += 1;
    }
    (at > start && atom > 0).then_some(at)
}

/// Scans a domain or address literal (RFC 5321 §4.1.2) from `at`; returns its end. Labels
/// may hold `_` and UTF-8 (leniency seen in the field, RFC 6531).
fn scan_domain(bytes: &[u8], mut at: usize) -> Option<usize> {
    if bytes.get(at) == Some(&b'[') {
        let start = at + 1;
        at = start;
        while let Some(&byte) = bytes.get(at) {
            match byte {
                b']' => return (at > start).then_some(at + 1),
                b'!'..=b'Z' | b'^'..=b'~' => at += 1,
                _ => return None,
            }
        }
        return None;
    }
    let mut label = 0;
    let start = at;
    for &byte in bytes.get(at..).unwrap_or_default() {
        if in_class(LABEL, byte) {
            label += 1;
        } else if byte == b'.' && label > 0 {
            label = 0;
        } else {
            break;
        }
        at += 1;
    }
    (at > start && label > 0).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec;

    fn parse(line: &str) -> Result<Command<'_>, ParseError> {
        Command::parse(line.as_bytes())
    }

    #[test]
    fn cr_lf_nul_found_anywhere() {
        for len in 0..70 {
            for at in 0..len {
                for bad in [0u8, b'\r', b'\n'] {
                    let mut line = vec![b'a'; len];
                    line[at] = bad;
                    assert!(has_cr_lf_nul(&line), "{len} {at} {bad}");
                }
                let mut line = vec![b'a'; len];
                line[at] = 0x0b;
                assert!(!has_cr_lf_nul(&line), "{len} {at}");
            }
        }
        assert!(!has_cr_lf_nul(b"\x01\x0c\x0e\x8d\x8a\x80\xff\x09 MAIL FROM:<a@b>"));
    }

    #[test]
    fn bare_verbs_any_case() {
        for (line, expected) in [
            (&b"data"[..], Command::Data),
            (b"QuIt\r\n", Command::Quit),
            (b"RSET", Command::Rset),
            (b"StartTLS", Command::StartTls),
            (b"noop", Command::Noop(None)),
            (b"HELP\r\n", Command::Help(None)),
        ] {
            assert_eq!(Command::parse(line), Ok(expected), "{line:?}");
        }
        assert_eq!(Command::parse(b"EHLO"), Err(ParseError::Syntax("EHLO/HELO needs a domain")));
        assert_eq!(Command::parse(b"DAT\0"), Err(ParseError::Syntax("CR, LF or NUL in a command line")));
        assert_eq!(Command::parse(b"DATA\x01"), Err(ParseError::Unrecognized));
    }

    #[test]
    fn verb_words_match_letters_only() {
        // Clearing bit 5 upper-cases letters; nothing else may land on a verb.
        for verb in ["EHLO", "QUIT", "DATA", "AUTH", "MAIL", "RCPT"] {
            for (i, _) in verb.char_indices() {
                for byte in 0u8..=255 {
                    let mut bytes = verb.as_bytes().to_vec();
                    let original = bytes[i];
                    bytes[i] = byte;
                    let same = byte.eq_ignore_ascii_case(&original);
                    assert_eq!(Verb::of(&bytes) == Verb::of(verb.as_bytes()), same, "{bytes:?}");
                }
            }
        }
        assert!(Verb::of(b"STARTTLS") == Verb::StartTls && Verb::of(b"sTaRtTlS") == Verb::StartTls);
        assert!(Verb::of(b"STARTTL") == Verb::Unknown && Verb::of(b"QUITS") == Verb::Unknown);
    }

    #[test]
    fn short_and_long_lines_are_checked_alike() {
        // Up to 32 octets the line is scanned in place, beyond with memchr.
        for len in [4usize, 20, 31, 32, 33, 64, 200] {
            let domain = "d".repeat(len);
            for bad in [b'\0', b'\r', b'\n'] {
                let mut line = format!("EHLO {domain}").into_bytes();
                let at = line.len() - 1;
                line[at] = bad;
                assert!(matches!(Command::parse(&line), Err(ParseError::Syntax(_))), "{len} {bad}");
            }
            assert_eq!(Command::parse(format!("EHLO {domain}").as_bytes()), Ok(Command::Ehlo(&domain)));
        }
        assert_eq!(parse("VERYLONGVERB x"), Err(ParseError::Unrecognized));
        assert_eq!(parse("STARTTLSX"), Err(ParseError::Unrecognized));
        assert_eq!(parse("  "), Err(ParseError::Unrecognized));
        assert_eq!(parse("EHLO   a.example   "), Ok(Command::Ehlo("a.example")));
    }

    #[test]
    fn verbs_are_case_insensitive() {
        assert_eq!(parse("ehlo client.example.com"), Ok(Command::Ehlo("client.example.com")));
        assert_eq!(parse("QuIt"), Ok(Command::Quit));
        assert_eq!(parse("starttls"), Ok(Command::StartTls));
        assert_eq!(parse("data"), Ok(Command::Data));
        assert_eq!(parse("rset "), Ok(Command::Rset));
        assert_eq!(parse("noop"), Ok(Command::Noop(None)));
        assert_eq!(parse("help mail"), Ok(Command::Help(Some("mail"))));
        assert_eq!(parse("vrfy bob"), Ok(Command::Vrfy("bob")));
        assert_eq!(parse("expn list"), Ok(Command::Expn("list")));
        assert_eq!(parse("bdat 100 last"), Ok(Command::Bdat { size: 100, last: true }));
        assert_eq!(parse("BDAT 0"), Ok(Command::Bdat { size: 0, last: false }));
        assert_eq!(
            parse("mail from:<a@b.c>"),
            Ok(Command::Mail { from: Path::new("a@b.c"), params: Parameters::EMPTY })
        );
        assert_eq!(
            parse("Rcpt To:<postmaster>"),
            Ok(Command::Rcpt { to: Path::new("postmaster"), params: Parameters::EMPTY })
        );
    }

    #[test]
    fn bad_commands() {
        assert_eq!(parse("FOO bar"), Err(ParseError::Unrecognized));
        assert_eq!(parse(""), Err(ParseError::Unrecognized));
        for bad in [
            "STARTTLS foo",
            "DATA x",
            "QUIT now",
            "EHLO",
            "MAIL <a@b>",
            "MAIL FROM:a@b",
            "MAIL FROM:<a@b",
            "RCPT TO:<>",
            "MAIL FROM:<a>",
            "MAIL FROM:<a@b> SIZE=x",
            "MAIL FROM:<a@b> SIZE",
            "MAIL FROM:<a@b> BODY=9BIT",
            "MAIL FROM:<a@b> SMTPUTF8=yes",
            "MAIL FROM:<a@b> AUTH=a=b",
            "MAIL FROM:<a@b> =x",
            "RCPT TO:<a@b> NOTIFY=SOMETIMES",
            "RCPT TO:<a@b> ORCPT=rfc822",
            "BDAT",
            "BDAT x",
            "BDAT 1 FIRST",
            "AUTH",
            "AUTH PLAIN a b",
            "AUTH PLAIN !!",
            "AUTH PL@IN",
            "VRFY",
        ] {
            assert!(matches!(parse(bad), Err(ParseError::Syntax(_))), "{bad}");
        }
    }

    #[test]
    fn strict_after_the_path() {
        for bad in
            ["MAIL FROM:<>>>>>", "MAIL FROM:<a@b>>", "MAIL FROM:<a@b>x", "RCPT TO:<a@b>,<c@d>", "MAIL FROM:<<a@b>>"]
        {
            assert!(matches!(parse(bad), Err(ParseError::Syntax(_))), "{bad}");
        }
        assert_eq!(parse("MAIL FROM:<>"), Ok(Command::Mail { from: Path::NULL, params: Parameters::EMPTY }));
        assert_eq!(parse("MAIL FROM: <a@b>"), Ok(Command::Mail { from: Path::new("a@b"), params: Parameters::EMPTY }));
    }

    #[test]
    fn mailboxes() {
        for good in ["\"a b>c\"@example.org", "a.b+c@[192.0.2.1]", "用户@例子.广告", "x@a_b.example"] {
            let line = alloc::format!("RCPT TO:<{good}>");
            assert_eq!(parse(&line), Ok(Command::Rcpt { to: Path::new(good), params: Parameters::EMPTY }), "{good}");
        }
        for bad in ["a..b@c", ".a@c", "a@", "a@b..c", "a b@c", "\"x@c", "a@[]"] {
            let line = alloc::format!("RCPT TO:<{bad}>");
            assert!(parse(&line).is_err(), "{bad}");
        }
        assert_eq!(
            parse("RCPT TO:<@a.example,@b.example:x@c.example>"),
            Ok(Command::Rcpt {
                to: Path { route: Some("@a.example,@b.example"), mailbox: "x@c.example" },
                params: Parameters::EMPTY
            })
        );
    }

    #[test]
    fn parameters() {
        let Ok(Command::Mail { params, .. }) = parse(
            "MAIL FROM:<a@b> size=1000 body=8bitmime SMTPUTF8 RET=HDRS ENVID=QQ314159 AUTH=e+3Dmc2@example.com X-FOO=bar X-BAZ",
        ) else {
            panic!()
        };
        let list: Vec<_> = params.iter().collect();
        assert_eq!(
            list,
            vec![
                Parameter::Size(1000),
                Parameter::Body(Body::EightBitMime),
                Parameter::SmtpUtf8,
                Parameter::Ret(Ret::Hdrs),
                Parameter::EnvId("QQ314159"),
                Parameter::Auth(Some("e+3Dmc2@example.com")),
                Parameter::Other { keyword: "X-FOO", value: Some("bar") },
                Parameter::Other { keyword: "X-BAZ", value: None },
            ]
        );
        assert_eq!(params.size(), Some(1000));
        let Ok(Command::Rcpt { params, .. }) = parse("RCPT TO:<a@b> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a+2Bb@c") else {
            panic!()
        };
        let list: Vec<_> = params.iter().collect();
        assert_eq!(
            list,
            vec![
                Parameter::Notify(Notify { success: true, failure: false, delay: true }),
                Parameter::Orcpt { addr_type: "rfc822", address: "a+2Bb@c" },
            ]
        );
    }

    /// RFC 4954 §5.1, verbatim.
    #[test]
    fn rfc4954_auth_parameter_examples() {
        let Ok(Command::Mail { from, params }) = parse("MAIL FROM:<e=mc2@example.com> AUTH=e+3Dmc2@example.com") else {
            panic!()
        };
        assert_eq!(from.mailbox, "e=mc2@example.com");
        let auth = params.auth().unwrap().unwrap();
        assert_eq!(xtext::decode(auth.as_bytes()).unwrap(), b"e=mc2@example.com");
        let Ok(Command::Mail { from, params }) = parse("MAIL FROM:<john+@example.org> AUTH=<>") else { panic!() };
        assert_eq!(from.mailbox, "john+@example.org");
        assert_eq!(params.auth(), Some(None));
        // And what we write for them.
        let encoded = xtext::encode(b"e=mc2@example.com");
        let list = [Parameter::Auth(Some(&encoded))];
        let command = Command::Mail { from: Path::new("e=mc2@example.com"), params: Parameters::from_slice(&list) };
        assert_eq!(command.to_bytes().unwrap(), b"MAIL FROM:<e=mc2@example.com> AUTH=e+3Dmc2@example.com\r\n");
        let list = [Parameter::Auth(None)];
        let command = Command::Mail { from: Path::new("john+@example.org"), params: Parameters::from_slice(&list) };
        assert_eq!(command.to_bytes().unwrap(), b"MAIL FROM:<john+@example.org> AUTH=<>\r\n");
    }

    #[test]
    fn auth_command() {
        assert_eq!(
            parse("auth login dXNlckBleGFtcGxlLm9yZw=="),
            Ok(Command::Auth { mechanism: "login", initial: Some("dXNlckBleGFtcGxlLm9yZw==") })
        );
        assert_eq!(parse("AUTH EXTERNAL ="), Ok(Command::Auth { mechanism: "EXTERNAL", initial: Some("=") }));
        assert_eq!(parse("AUTH CRAM-MD5"), Ok(Command::Auth { mechanism: "CRAM-MD5", initial: None }));
        assert_eq!(
            Command::Auth { mechanism: "EXTERNAL", initial: Some("=") }.to_bytes().unwrap(),
            b"AUTH EXTERNAL =\r\n"
        );
    }

    #[test]
    fn field_b16_injection_refused_and_nothing_written() {
        let mut out = b"previous".to_vec();
        let from = Command::Mail {
            from: Path::new("user@example.org>\r\nRCPT TO:<other@example.net"),
            params: Parameters::EMPTY,
        };
        assert_eq!(from.write(&mut out), Err(WriteError::Injection));
        let list = [Parameter::Other { keyword: "X-OPT\nRSET", value: None }];
        let opt = Command::Mail { from: Path::new("a@b"), params: Parameters::from_slice(&list) };
        assert_eq!(opt.write(&mut out), Err(WriteError::Injection));
        let list = [Parameter::Other { keyword: "X-OPT", value: Some("a\0b") }];
        let opt = Command::Rcpt { to: Path::new("a@b"), params: Parameters::from_slice(&list) };
        assert_eq!(opt.write(&mut out), Err(WriteError::Injection));
        for command in [
            Command::Ehlo("host\r\nRSET"),
            Command::Helo("a\nb"),
            Command::Vrfy("x\ry"),
            Command::Noop(Some("\0")),
            Command::Auth { mechanism: "PLAIN", initial: Some("AAAA\r\nQUIT") },
            Command::Auth { mechanism: "PLAIN\r\nQUIT", initial: None },
        ] {
            assert_eq!(command.write(&mut out), Err(WriteError::Injection), "{command:?}");
        }
        assert_eq!(out, b"previous");
        // Arguments that would parse as something else are refused too.
        for command in [
            Command::Mail { from: Path::new("a@b> SIZE=1"), params: Parameters::EMPTY },
            Command::Ehlo("two words"),
            Command::Ehlo(""),
            Command::Vrfy(""),
            Command::Rcpt { to: Path::NULL, params: Parameters::EMPTY },
        ] {
            assert_eq!(command.write(&mut out), Err(WriteError::Invalid), "{command:?}");
        }
        assert_eq!(out, b"previous");
    }

    fn arb_mailbox() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::prop_oneof![
            "[a-z0-9!#$%&'*+/=?^_`{|}~-]{1,8}(\\.[a-z0-9+-]{1,5}){0,2}@[a-z0-9-]{1,8}(\\.[a-z]{1,5}){0,2}",
            "\"[ a-z@>.]{0,8}\"@[a-z]{1,8}\\.example",
            "[a-z]{1,5}@\\[[0-9.]{1,15}\\]",
            proptest::strategy::Just(String::new()),
        ]
    }

    fn arb_param() -> impl proptest::strategy::Strategy<Value = (String, Option<String>)> {
        proptest::prop_oneof![
            (0u64..u64::MAX).prop_map(|n| ("SIZE".into(), Some(alloc::format!("{n}")))),
            "(7BIT|8bitmime|BinaryMIME)".prop_map(|v| ("BODY".into(), Some(v))),
            proptest::strategy::Just(("SMTPUTF8".into(), None)),
            "(FULL|hdrs)".prop_map(|v| ("RET".into(), Some(v))),
            proptest::collection::vec(proptest::num::u8::ANY, 1..12)
                .prop_map(|v| ("ENVID".into(), Some(xtext::encode(&v)))),
            "(NEVER|SUCCESS|SUCCESS,FAILURE|DELAY,SUCCESS|FAILURE,DELAY,SUCCESS)"
                .prop_map(|v| ("NOTIFY".into(), Some(v))),
            proptest::collection::vec(proptest::num::u8::ANY, 1..12)
                .prop_map(|v| ("ORCPT".into(), Some(alloc::format!("rfc822;{}", xtext::encode(&v))))),
            proptest::collection::vec(proptest::num::u8::ANY, 0..12)
                .prop_map(|v| ("AUTH".into(), Some(if v.is_empty() { "<>".into() } else { xtext::encode(&v) }))),
            ("X-[A-Z0-9]{1,6}", proptest::option::of("[!-<>-~]{1,8}")),
        ]
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        /// Parsed parameters write back to a line that parses to the same command.
        #[test]
        fn mail_and_rcpt_round_trip(
            mailbox in arb_mailbox(),
            params in proptest::collection::vec(arb_param(), 0..5),
            rcpt in proptest::bool::ANY,
        ) {
            let mut line = String::from(if rcpt { "RCPT TO:<" } else { "MAIL FROM:<" });
            line.push_str(&mailbox);
            line.push('>');
            for (keyword, value) in &params {
                line.push(' ');
                line.push_str(keyword);
                if let Some(value) = value {
                    line.push('=');
                    line.push_str(value);
                }
            }
            let parsed = Command::parse(line.as_bytes());
            if rcpt && mailbox.is_empty() {
                proptest::prop_assert!(parsed.is_err());
                return Ok(());
            }
            let parsed = parsed.unwrap();
            let written = parsed.to_bytes().unwrap();
            proptest::prop_assert_eq!(Command::parse(&written), Ok(parsed));
            // Typed parameters given by a caller round-trip too.
            let (path, list) = match parsed {
                Command::Mail { from, params } | Command::Rcpt { to: from, params } => (from, params.iter().collect::<Vec<_>>()),
                _ => unreachable!(),
            };
            let built = if rcpt { Command::Rcpt { to: path, params: Parameters::from_slice(&list) } }
                else { Command::Mail { from: path, params: Parameters::from_slice(&list) } };
            let bytes = built.to_bytes().unwrap();
            proptest::prop_assert_eq!(Command::parse(&bytes), Ok(built));
        }

        /// Every command the writer accepts parses back as itself; the rest is refused.
        #[test]
        fn simple_commands_round_trip(
            verb in proptest::sample::select(vec!["EHLO", "HELO", "NOOP", "HELP", "VRFY", "EXPN", "AUTH"]),
            arg in "[ -~\\r\\n\\x00]{0,12}",
            initial in proptest::option::of("[A-Za-z0-9+/=]{1,16}"),
        ) {
            let command = match verb {
                "EHLO" => Command::Ehlo(&arg),
                "HELO" => Command::Helo(&arg),
                "NOOP" => Command::Noop(Some(&arg)),
                "HELP" => Command::Help(Some(&arg)),
                "VRFY" => Command::Vrfy(&arg),
                "EXPN" => Command::Expn(&arg),
                _ => Command::Auth { mechanism: &arg, initial: initial.as_deref() },
            };
            match command.to_bytes() {
                Ok(bytes) => {
                    proptest::prop_assert!(bytes.ends_with(b"\r\n"));
                    proptest::prop_assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1);
                    proptest::prop_assert_eq!(Command::parse(&bytes), Ok(command));
                }
                Err(WriteError::Injection) => proptest::prop_assert!(arg.contains(['\r', '\n', '\0'])),
                Err(WriteError::Invalid) => proptest::prop_assert!(!arg.contains(['\r', '\n', '\0'])),
            }
        }

        /// Arbitrary bytes never panic the parser.
        #[test]
        fn parse_never_panics(line in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
            let _ = Command::parse(&line);
        }
    }
}
