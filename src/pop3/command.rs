//! POP3 commands (RFC 1939 §3–§7), with CAPA (RFC 2449 §5), STLS (RFC 2595 §4), AUTH
//! (RFC 5034 §4) and XTND (draft-hansen-pop3-xtndext).
//!
//! [`Command::parse`] borrows from the line and allocates nothing; keywords are
//! case-insensitive. [`Command::write`] refuses any argument holding CR, LF or NUL (command
//! injection), anything that would not parse back, and lines over the RFC 2449 limit.

use alloc::vec::Vec;
use core::fmt::Write as _;

use crate::wire::POP3_COMMAND_LIMIT;

/// Longest argument of RFC 1939 §3, applied to numbers, mechanism names, APOP digests and XTND
/// subcommands. User names, the `PASS` string and an AUTH initial response are only bound by
/// the 255-octet command of RFC 2449 §4, which lifted the 40-character rule (mailbox names
/// such as long e-mail addresses exceed it).
pub const ARG_LIMIT: usize = 40;

/// Why a command line could not be parsed (RFC 1939 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The keyword is not a command this codec knows (a server answers `-ERR`).
    #[error("unrecognized command")]
    Unrecognized,
    /// The keyword is known but its arguments are malformed.
    #[error("syntax error in arguments: {0}")]
    Syntax(&'static str),
    /// The line is longer than 255 octets with CRLF (RFC 2449 §4), or an argument is longer
    /// than 40 characters (RFC 1939 §3).
    #[error("command or argument too long")]
    TooLong,
}

/// Why a command could not be serialized. Nothing is written in either case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// An argument holds CR, LF or NUL, which would end the line or inject a command
    /// (RFC 1939 §3).
    #[error("CR, LF or NUL in a command argument")]
    Injection,
    /// An argument breaks the command's syntax (empty, a space inside a single-word argument),
    /// so the line would not parse back.
    #[error("argument does not fit the command syntax")]
    Invalid,
    /// The line would be longer than 255 octets with CRLF (RFC 2449 §4).
    #[error("command longer than 255 octets")]
    TooLong,
}

/// A POP3 command (RFC 1939 §9 summary, RFC 2449, RFC 2595, RFC 5034).
///
/// `Debug` redacts the `PASS` string and the AUTH initial response.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Command<'a> {
    /// `USER name` (RFC 1939 §7).
    User(&'a str),
    /// `PASS string` (RFC 1939 §7): the rest of the line after one space, spaces included.
    Pass(&'a str),
    /// `APOP name digest` (RFC 1939 §7).
    Apop {
        /// The mailbox name.
        name: &'a str,
        /// The MD5 digest in hex.
        digest: &'a str,
    },
    /// `STAT` (RFC 1939 §5).
    Stat,
    /// `LIST [msg]` (RFC 1939 §5).
    List(Option<u32>),
    /// `RETR msg` (RFC 1939 §5).
    Retr(u32),
    /// `DELE msg` (RFC 1939 §5).
    Dele(u32),
    /// `NOOP` (RFC 1939 §5).
    Noop,
    /// `RSET` (RFC 1939 §5).
    Rset,
    /// `QUIT` (RFC 1939 §4, §6).
    Quit,
    /// `TOP msg n` (RFC 1939 §7).
    Top {
        /// The message number.
        msg: u32,
        /// How many body lines to send after the headers.
        lines: u32,
    },
    /// `UIDL [msg]` (RFC 1939 §7).
    Uidl(Option<u32>),
    /// `CAPA` (RFC 2449 §5).
    Capa,
    /// `STLS` (RFC 2595 §4).
    Stls,
    /// `AUTH [mechanism [initial-response]]` (RFC 5034 §4). Without a mechanism some servers
    /// list their mechanisms.
    Auth {
        /// The mechanism name as sent (compare case-insensitively, see
        /// [`crate::sasl::Mechanism::parse`]).
        mechanism: Option<&'a str>,
        /// The initial response, still base64 (`=` is an empty one): decode with
        /// [`crate::wire::decode_response`].
        initial_response: Option<&'a str>,
    },
    /// `XTND XMIT`: send a message through the POP3 server (draft-hansen-pop3-xtndext).
    XtndXmit,
    /// Any other `XTND` subcommand, with its arguments, as sent (e.g. `XLST Message-Id`).
    Xtnd(&'a str),
}

impl core::fmt::Debug for Command<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::User(name) => f.debug_tuple("User").field(name).finish(),
            Self::Pass(_) => f.write_str("Pass(<redacted>)"),
            Self::Apop { name, digest } => f.debug_struct("Apop").field("name", name).field("digest", digest).finish(),
            Self::Stat => f.write_str("Stat"),
            Self::List(msg) => f.debug_tuple("List").field(msg).finish(),
            Self::Retr(msg) => f.debug_tuple("Retr").field(msg).finish(),
            Self::Dele(msg) => f.debug_tuple("Dele").field(msg).finish(),
            Self::Noop => f.write_str("Noop"),
            Self::Rset => f.write_str("Rset"),
            Self::Quit => f.write_str("Quit"),
            Self::Top { msg, lines } => f.debug_struct("Top").field("msg", msg).field("lines", lines).finish(),
            Self::Uidl(msg) => f.debug_tuple("Uidl").field(msg).finish(),
            Self::Capa => f.write_str("Capa"),
            Self::Stls => f.write_str("Stls"),
            Self::Auth { mechanism, initial_response } => f
                .debug_struct("Auth")
                .field("mechanism", mechanism)
                .field("initial_response", &initial_response.map(|_| "<redacted>"))
                .finish(),
            Self::XtndXmit => f.write_str("XtndXmit"),
            Self::Xtnd(sub) => f.debug_tuple("Xtnd").field(sub).finish(),
        }
    }
}

/// Parses a message number or line count: ASCII digits only, at most 40 of them, no sign, no
/// overflow (RFC 1939 §3).
pub fn parse_number(text: &str) -> Result<u32, ParseError> {
    if text.is_empty() {
        return Err(ParseError::Syntax("empty number"));
    }
    if text.len() > ARG_LIMIT {
        return Err(ParseError::TooLong);
    }
    let mut value: u32 = 0;
    for byte in text.bytes() {
        let digit = match byte {
            b'0'..=b'9' => u32::from(byte - b'0'),
            _ => return Err(ParseError::Syntax("not a number")),
        };
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(digit))
            .ok_or(ParseError::Syntax("number out of range"))?;
    }
    Ok(value)
}

/// Splits the arguments of a line: one or more spaces between them, none kept.
fn words(rest: &str) -> impl Iterator<Item = &str> {
    rest.split(' ').filter(|w| !w.is_empty())
}

fn word(text: &str) -> Result<&str, ParseError> {
    if text.len() > ARG_LIMIT { Err(ParseError::TooLong) } else { Ok(text) }
}

impl<'a> Command<'a> {
    /// Parses one command line without its CRLF (RFC 1939 §3). The keyword is
    /// case-insensitive; arguments are separated by spaces; single-word arguments and numbers
    /// are at most 40 characters; the whole line must fit 255 octets with CRLF (RFC 2449 §4).
    pub fn parse(line: &'a [u8]) -> Result<Self, ParseError> {
        if line.len() + 2 > POP3_COMMAND_LIMIT {
            return Err(ParseError::TooLong);
        }
        if line.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n')) {
            return Err(ParseError::Syntax("CR, LF or NUL in a command"));
        }
        let line = core::str::from_utf8(line).map_err(|_| ParseError::Syntax("command is not UTF-8"))?;
        let (keyword, rest) = match line.split_once(' ') {
            Some((keyword, rest)) => (keyword, Some(rest)),
            None => (line, None),
        };
        let is = |name: &str| keyword.eq_ignore_ascii_case(name);
        let mut parts = words(rest.unwrap_or(""));
        let first = parts.next();
        let second = parts.next();
        let more = parts.next().is_some();
        let none = |cmd: Command<'a>| -> Result<Command<'a>, ParseError> {
            if first.is_some() { Err(ParseError::Syntax("command takes no argument")) } else { Ok(cmd) }
        };
        let one = || -> Result<&'a str, ParseError> {
            match (first, second) {
                (Some(arg), None) => word(arg),
                (None, _) => Err(ParseError::Syntax("missing argument")),
                (Some(_), Some(_)) => Err(ParseError::Syntax("too many arguments")),
            }
        };
        let optional_number = || -> Result<Option<u32>, ParseError> {
            match (first, second) {
                (None, _) => Ok(None),
                (Some(arg), None) => parse_number(arg).map(Some),
                (Some(_), Some(_)) => Err(ParseError::Syntax("too many arguments")),
            }
        };
        if is("USER") {
            match (first, second) {
                (Some(name), None) => Ok(Command::User(name)),
                (None, _) => Err(ParseError::Syntax("missing argument")),
                (Some(_), Some(_)) => Err(ParseError::Syntax("too many arguments")),
            }
        } else if is("PASS") {
            match rest {
                Some(pass) if !pass.is_empty() => Ok(Command::Pass(pass)),
                _ => Err(ParseError::Syntax("missing argument")),
            }
        } else if is("APOP") {
            match (first, second, more) {
                (Some(name), Some(digest), false) => Ok(Command::Apop { name, digest: word(digest)? }),
                (_, _, true) => Err(ParseError::Syntax("too many arguments")),
                _ => Err(ParseError::Syntax("missing argument")),
            }
        } else if is("STAT") {
            none(Command::Stat)
        } else if is("LIST") {
            optional_number().map(Command::List)
        } else if is("RETR") {
            parse_number(one()?).map(Command::Retr)
        } else if is("DELE") {
            parse_number(one()?).map(Command::Dele)
        } else if is("NOOP") {
            none(Command::Noop)
        } else if is("RSET") {
            none(Command::Rset)
        } else if is("QUIT") {
            none(Command::Quit)
        } else if is("TOP") {
            match (first, second, more) {
                (Some(msg), Some(lines), false) => {
                    Ok(Command::Top { msg: parse_number(msg)?, lines: parse_number(lines)? })
                }
                (_, _, true) => Err(ParseError::Syntax("too many arguments")),
                _ => Err(ParseError::Syntax("missing argument")),
            }
        } else if is("UIDL") {
            optional_number().map(Command::Uidl)
        } else if is("CAPA") {
            none(Command::Capa)
        } else if is("STLS") {
            none(Command::Stls)
        } else if is("AUTH") {
            if more {
                return Err(ParseError::Syntax("too many arguments"));
            }
            let mechanism = first.map(word).transpose()?;
            Ok(Command::Auth { mechanism, initial_response: second })
        } else if is("XTND") {
            let sub = first.ok_or(ParseError::Syntax("missing XTND subcommand"))?;
            word(sub)?;
            if sub.eq_ignore_ascii_case("XMIT") {
                if second.is_some() {
                    return Err(ParseError::Syntax("XTND XMIT takes no argument"));
                }
                Ok(Command::XtndXmit)
            } else {
                // Keep the subcommand and its arguments as sent, without the leading spaces.
                Ok(Command::Xtnd(rest.unwrap_or("").trim_start_matches(' ')))
            }
        } else {
            Err(ParseError::Unrecognized)
        }
    }

    /// Appends the command line with its CRLF to `out` (RFC 1939 §3). On error nothing is
    /// written.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), WriteError> {
        let start = out.len();
        let result = self.write_inner(out);
        if result.is_ok() && out.len() - start > POP3_COMMAND_LIMIT {
            out.truncate(start);
            return Err(WriteError::TooLong);
        }
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// The command line with its CRLF.
    pub fn to_bytes(&self) -> Result<Vec<u8>, WriteError> {
        let mut out = Vec::new();
        self.write(&mut out)?;
        Ok(out)
    }

    fn write_inner(&self, out: &mut Vec<u8>) -> Result<(), WriteError> {
        let mut line = LineWriter(out);
        match *self {
            Self::User(name) => write!(line, "USER {}", long_token(name)?),
            Self::Pass(pass) => write!(line, "PASS {}", rest(pass)?),
            Self::Apop { name, digest } => write!(line, "APOP {} {}", long_token(name)?, token(digest)?),
            Self::Stat => write!(line, "STAT"),
            Self::List(None) => write!(line, "LIST"),
            Self::List(Some(msg)) => write!(line, "LIST {msg}"),
            Self::Retr(msg) => write!(line, "RETR {msg}"),
            Self::Dele(msg) => write!(line, "DELE {msg}"),
            Self::Noop => write!(line, "NOOP"),
            Self::Rset => write!(line, "RSET"),
            Self::Quit => write!(line, "QUIT"),
            Self::Top { msg, lines } => write!(line, "TOP {msg} {lines}"),
            Self::Uidl(None) => write!(line, "UIDL"),
            Self::Uidl(Some(msg)) => write!(line, "UIDL {msg}"),
            Self::Capa => write!(line, "CAPA"),
            Self::Stls => write!(line, "STLS"),
            Self::Auth { mechanism: None, initial_response: None } => write!(line, "AUTH"),
            Self::Auth { mechanism: None, initial_response: Some(_) } => return Err(WriteError::Invalid),
            Self::Auth { mechanism: Some(mechanism), initial_response: None } => {
                write!(line, "AUTH {}", token(mechanism)?)
            }
            Self::Auth { mechanism: Some(mechanism), initial_response: Some(initial) } => {
                write!(line, "AUTH {} {}", token(mechanism)?, long_token(initial)?)
            }
            Self::XtndXmit => write!(line, "XTND XMIT"),
            Self::Xtnd(sub) => {
                let text = rest(sub)?;
                let name = sub.split(' ').next().unwrap_or("");
                if name.is_empty() || name.len() > ARG_LIMIT || name.eq_ignore_ascii_case("XMIT") {
                    return Err(WriteError::Invalid);
                }
                write!(line, "XTND {text}")
            }
        }
        .map_err(|_| WriteError::Invalid)?;
        out.extend_from_slice(b"\r\n");
        Ok(())
    }
}

/// Writes formatted text into a byte vector.
struct LineWriter<'v>(&'v mut Vec<u8>);

impl core::fmt::Write for LineWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn check_injection(text: &str) -> Result<(), WriteError> {
    if text.bytes().any(|b| matches!(b, 0 | b'\r' | b'\n')) { Err(WriteError::Injection) } else { Ok(()) }
}

/// A single-word argument of at most 40 characters.
fn token(text: &str) -> Result<&str, WriteError> {
    long_token(text)?;
    if text.len() > ARG_LIMIT {
        return Err(WriteError::TooLong);
    }
    Ok(text)
}

/// A single-word argument bound only by the line limit.
fn long_token(text: &str) -> Result<&str, WriteError> {
    check_injection(text)?;
    if text.is_empty() || text.contains(' ') {
        return Err(WriteError::Invalid);
    }
    Ok(text)
}

/// The rest of the line (`PASS`): spaces allowed, not empty.
fn rest(text: &str) -> Result<&str, WriteError> {
    check_injection(text)?;
    if text.is_empty() {
        return Err(WriteError::Invalid);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::String;
    use alloc::vec;

    #[test]
    fn rfc1939_examples() {
        let cases: [(&[u8], Command<'_>); 17] = [
            (b"USER mrose", Command::User("mrose")),
            (b"PASS secret", Command::Pass("secret")),
            (
                b"APOP mrose c4c9334bac560ecc979e58001b3e22fb",
                Command::Apop { name: "mrose", digest: "c4c9334bac560ecc979e58001b3e22fb" },
            ),
            (b"STAT", Command::Stat),
            (b"LIST", Command::List(None)),
            (b"LIST 2", Command::List(Some(2))),
            (b"RETR 1", Command::Retr(1)),
            (b"DELE 1", Command::Dele(1)),
            (b"NOOP", Command::Noop),
            (b"RSET", Command::Rset),
            (b"QUIT", Command::Quit),
            (b"TOP 1 10", Command::Top { msg: 1, lines: 10 }),
            (b"UIDL", Command::Uidl(None)),
            (b"UIDL 2", Command::Uidl(Some(2))),
            (b"CAPA", Command::Capa),
            (b"STLS", Command::Stls),
            (b"XTND XMIT", Command::XtndXmit),
        ];
        for (line, expected) in cases {
            assert_eq!(Command::parse(line), Ok(expected), "{line:?}");
            let mut wire = line.to_vec();
            wire.extend_from_slice(b"\r\n");
            assert_eq!(expected.to_bytes().unwrap(), wire);
        }
    }

    #[test]
    fn rfc5034_auth_forms() {
        assert_eq!(Command::parse(b"AUTH"), Ok(Command::Auth { mechanism: None, initial_response: None }));
        assert_eq!(
            Command::parse(b"AUTH PLAIN"),
            Ok(Command::Auth { mechanism: Some("PLAIN"), initial_response: None })
        );
        assert_eq!(
            Command::parse(b"auth plain dGVzdAB0ZXN0AHRlc3Q="),
            Ok(Command::Auth { mechanism: Some("plain"), initial_response: Some("dGVzdAB0ZXN0AHRlc3Q=") })
        );
        assert_eq!(
            Command::parse(b"AUTH EXTERNAL ="),
            Ok(Command::Auth { mechanism: Some("EXTERNAL"), initial_response: Some("=") })
        );
        assert_eq!(Command::parse(b"AUTH PLAIN a b"), Err(ParseError::Syntax("too many arguments")));
    }

    #[test]
    fn keywords_are_case_insensitive() {
        assert_eq!(Command::parse(b"stat"), Ok(Command::Stat));
        assert_eq!(Command::parse(b"Retr 7"), Ok(Command::Retr(7)));
        assert_eq!(Command::parse(b"xtnd xmit"), Ok(Command::XtndXmit));
        assert_eq!(Command::parse(b"StLs"), Ok(Command::Stls));
        assert_eq!(Command::parse(b"XTND XLST Message-Id 3"), Ok(Command::Xtnd("XLST Message-Id 3")));
    }

    #[test]
    fn pass_keeps_spaces() {
        assert_eq!(Command::parse(b"PASS my secret  phrase"), Ok(Command::Pass("my secret  phrase")));
        assert_eq!(Command::parse(b"PASS  lead"), Ok(Command::Pass(" lead")));
        assert_eq!(Command::parse(b"PASS"), Err(ParseError::Syntax("missing argument")));
        assert_eq!(Command::parse(b"PASS "), Err(ParseError::Syntax("missing argument")));
    }

    #[test]
    fn strict_numbers() {
        for bad in [&b"RETR -1"[..], b"RETR +1", b"RETR 1a", b"RETR a1", b"RETR 0x10", b"RETR 1.0", b"RETR \xd9\xa1"] {
            assert!(matches!(Command::parse(bad), Err(ParseError::Syntax(_))), "{bad:?}");
        }
        assert_eq!(Command::parse(b"RETR 4294967295"), Ok(Command::Retr(u32::MAX)));
        assert_eq!(Command::parse(b"RETR 4294967296"), Err(ParseError::Syntax("number out of range")));
        assert_eq!(Command::parse(b"TOP 1 99999999999999999999"), Err(ParseError::Syntax("number out of range")));
        let long = format!("RETR {}", "1".repeat(41));
        assert_eq!(Command::parse(long.as_bytes()), Err(ParseError::TooLong));
        assert_eq!(Command::parse(b"RETR 007"), Ok(Command::Retr(7)));
    }

    #[test]
    fn argument_counts() {
        assert_eq!(Command::parse(b"STAT 1"), Err(ParseError::Syntax("command takes no argument")));
        assert_eq!(Command::parse(b"RETR"), Err(ParseError::Syntax("missing argument")));
        assert_eq!(Command::parse(b"RETR 1 2"), Err(ParseError::Syntax("too many arguments")));
        assert_eq!(Command::parse(b"TOP 1"), Err(ParseError::Syntax("missing argument")));
        assert_eq!(Command::parse(b"TOP 1 2 3"), Err(ParseError::Syntax("too many arguments")));
        assert_eq!(Command::parse(b"APOP a"), Err(ParseError::Syntax("missing argument")));
        assert_eq!(Command::parse(b"XTND"), Err(ParseError::Syntax("missing XTND subcommand")));
        assert_eq!(Command::parse(b"XTND XMIT now"), Err(ParseError::Syntax("XTND XMIT takes no argument")));
        assert_eq!(Command::parse(b"LIST  3"), Ok(Command::List(Some(3))));
        assert_eq!(Command::parse(b"NOOP "), Ok(Command::Noop));
    }

    #[test]
    fn unknown_and_garbage() {
        for bad in [&b""[..], b"HELO x", b"STATS", b"ST", b" STAT", b"\xff\xfe", b"RETRIEVE 1"] {
            assert!(Command::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Command::parse(b"FOO"), Err(ParseError::Unrecognized));
        assert!(Command::parse(b"USER a\0b").is_err());
        assert!(Command::parse(b"USER a\rb").is_err());
    }

    #[test]
    fn limits() {
        let name = "a".repeat(41);
        assert_eq!(Command::parse(format!("AUTH {name}").as_bytes()), Err(ParseError::TooLong));
        assert_eq!(Command::parse(format!("XTND {name}").as_bytes()), Err(ParseError::TooLong));
        assert_eq!(Command::parse(format!("APOP a {name}").as_bytes()), Err(ParseError::TooLong));
        let long_user = "u".repeat(200);
        assert_eq!(Command::parse(format!("USER {long_user}").as_bytes()), Ok(Command::User(&long_user)));
        let pass = "p".repeat(248);
        assert_eq!(Command::parse(format!("PASS {pass}").as_bytes()), Ok(Command::Pass(&pass)));
        let pass = "p".repeat(249);
        assert_eq!(Command::parse(format!("PASS {pass}").as_bytes()), Err(ParseError::TooLong));
        assert_eq!(Command::Pass(&pass).to_bytes(), Err(WriteError::TooLong));
        assert_eq!(
            Command::Auth { mechanism: Some(&name), initial_response: None }.to_bytes(),
            Err(WriteError::TooLong)
        );
        assert_eq!(Command::User(&"u".repeat(250)).to_bytes(), Err(WriteError::TooLong));
    }

    #[test]
    fn field_b16_writer_refuses_injection() {
        let mut out = b"before".to_vec();
        for cmd in [
            Command::User("alice\r\nDELE 1"),
            Command::Pass("pw\nQUIT"),
            Command::Pass("pw\0"),
            Command::Apop { name: "a\r", digest: "d" },
            Command::Auth { mechanism: Some("PLAIN"), initial_response: Some("AA\r\nQUIT") },
            Command::Xtnd("XLST\r\nDELE 1"),
        ] {
            assert_eq!(cmd.write(&mut out), Err(WriteError::Injection), "{cmd:?}");
        }
        for cmd in [
            Command::User(""),
            Command::User("a b"),
            Command::Pass(""),
            Command::Auth { mechanism: None, initial_response: Some("=") },
            Command::Auth { mechanism: Some("PLAIN"), initial_response: Some("") },
            Command::Xtnd(""),
            Command::Xtnd("xmit"),
        ] {
            assert_eq!(cmd.write(&mut out), Err(WriteError::Invalid), "{cmd:?}");
        }
        assert_eq!(out, b"before");
    }

    #[test]
    fn debug_redacts_secrets() {
        let text = format!(
            "{:?} {:?}",
            Command::Pass("hunter2"),
            Command::Auth { mechanism: Some("PLAIN"), initial_response: Some("c2VjcmV0") }
        );
        assert!(!text.contains("hunter2") && !text.contains("c2VjcmV0"), "{text}");
    }

    fn arb_word() -> impl proptest::strategy::Strategy<Value = String> {
        "[!-~]{1,40}"
    }

    fn arb_command() -> impl proptest::strategy::Strategy<Value = (u8, String, String, u32, u32)> {
        (0u8..19, arb_word(), "[ -~]{1,200}", proptest::num::u32::ANY, proptest::num::u32::ANY)
    }

    fn build<'a>(kind: u8, a: &'a str, rest: &'a str, n: u32, m: u32) -> Command<'a> {
        match kind {
            0 => Command::User(a),
            1 => Command::Pass(rest),
            2 => Command::Apop { name: a, digest: a },
            3 => Command::Stat,
            4 => Command::List(None),
            5 => Command::List(Some(n)),
            6 => Command::Retr(n),
            7 => Command::Dele(n),
            8 => Command::Noop,
            9 => Command::Rset,
            10 => Command::Quit,
            11 => Command::Top { msg: n, lines: m },
            12 => Command::Uidl(Some(m)),
            13 => Command::Capa,
            14 => Command::Stls,
            15 => Command::Auth { mechanism: Some(a), initial_response: None },
            16 => Command::Auth { mechanism: Some(a), initial_response: Some(a) },
            17 => Command::XtndXmit,
            _ => Command::Xtnd(a),
        }
    }

    proptest::proptest! {
        #[test]
        fn round_trip((kind, a, rest, n, m) in arb_command()) {
            let cmd = build(kind, &a, &rest, n, m);
            match cmd.to_bytes() {
                Ok(wire) => {
                    proptest::prop_assert!(wire.ends_with(b"\r\n") && wire.len() <= POP3_COMMAND_LIMIT);
                    let line = &wire[..wire.len() - 2];
                    proptest::prop_assert_eq!(Command::parse(line), Ok(cmd));
                }
                Err(err) => {
                    // Only an XTND XMIT look-alike is refused.
                    proptest::prop_assert!(
                        err == WriteError::Invalid && kind == 18,
                        "{:?} {:?}", cmd, err
                    );
                }
            }
        }

        #[test]
        fn parse_never_panics(line in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            if let Ok(cmd) = Command::parse(&line) {
                // Whatever parses writes back to a line that parses to the same command.
                if let Ok(wire) = cmd.to_bytes() {
                    proptest::prop_assert_eq!(Command::parse(&wire[..wire.len() - 2]), Ok(cmd));
                }
            }
        }

        #[test]
        fn keyword_case_does_not_matter(flips in proptest::collection::vec(proptest::bool::ANY, 4)) {
            for keyword in ["STAT", "LIST", "NOOP", "RSET", "QUIT", "UIDL", "CAPA", "STLS", "AUTH"] {
                let mixed: String = keyword.chars().zip(&flips)
                    .map(|(c, &lower)| if lower { c.to_ascii_lowercase() } else { c }).collect();
                let expected = Command::parse(keyword.as_bytes());
                proptest::prop_assert_eq!(Command::parse(mixed.as_bytes()), expected);
            }
        }
    }

    #[test]
    fn every_keyword_parses() {
        let lines = vec![&b"user x"[..], b"pass x", b"apop x y", b"list", b"uidl", b"top 1 0", b"dele 1", b"retr 1"];
        for line in lines {
            assert!(Command::parse(line).is_ok(), "{line:?}");
        }
    }
}
