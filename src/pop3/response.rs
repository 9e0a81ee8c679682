//! POP3 responses: status lines `+OK` / `-ERR` (RFC 1939 §3) with extended response codes
//! (RFC 2449 §8, RFC 3206), AUTH continuations `+ ` (RFC 5034 §4), and the lines of
//! multi-line responses: dot-unstuffing (RFC 1939 §3), scan listings (RFC 1939 §5) and
//! unique-id listings (RFC 1939 §7).
//!
//! Parsers borrow from the line and allocate nothing. Message bodies (RETR, TOP) are not
//! parsed line by line: they stream through [`crate::wire::DotDecoder`].

use alloc::vec::Vec;
use zeroize::Zeroizing;

use super::command::WriteError;
use crate::wire::{AUTH_LINE_LIMIT, POP3_RESPONSE_LIMIT, PayloadError, decode_base64};

/// Why a response line could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// The line starts with none of `+OK`, `-ERR` or `+` followed by a space or the end of
    /// the line (B19: `+OKAY` is not `+OK`).
    #[error("response does not start with +OK, -ERR or a + continuation")]
    Status,
    /// A scan listing, unique-id listing or STAT answer is malformed.
    #[error("malformed listing: {0}")]
    Listing(&'static str),
    /// A multi-line response has more lines than allowed.
    #[error("multi-line response longer than {0} lines")]
    TooManyLines(usize),
}

/// The status indicator (RFC 1939 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// `+OK`.
    Ok,
    /// `-ERR`.
    Err,
}

impl Status {
    /// The indicator as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "+OK",
            Self::Err => "-ERR",
        }
    }
}

/// What a response code means to a client (RFC 2449 §8, RFC 3206 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CodeKind {
    /// `IN-USE`: the maildrop is locked by another session (RFC 2449 §8.1.1).
    InUse,
    /// `LOGIN-DELAY`: too soon since the last login (RFC 2449 §8.1.2).
    LoginDelay,
    /// `SYS/TEMP`: a temporary system problem; try again later (RFC 3206 §4).
    SysTemp,
    /// `SYS/PERM`: a permanent system problem (RFC 3206 §4).
    SysPerm,
    /// `AUTH`: the credentials were wrong; prompting the user again makes sense (RFC 3206 §5).
    Auth,
    /// Any other code (kept raw in [`ResponseCode::as_str`]).
    Other,
}

/// An extended response code: the text between the brackets, levels separated by `/`
/// (RFC 2449 §8). Unknown detail below a known code is ignored, as §8 requires:
/// `SYS/TEMP/DISK` is [`CodeKind::SysTemp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponseCode<'a> {
    raw: &'a str,
}

impl<'a> ResponseCode<'a> {
    /// Checks a code as it appears between the brackets: one or more non-empty levels of
    /// printable ASCII without `/`, `[`, `]` or space, separated by `/` (RFC 2449 §8 `resp-code`).
    pub fn new(raw: &'a str) -> Option<Self> {
        let valid = !raw.is_empty()
            && raw.split('/').all(|level| {
                !level.is_empty() && level.bytes().all(|b| matches!(b, b'!'..=b'~') && !matches!(b, b'[' | b']'))
            });
        valid.then_some(Self { raw })
    }

    /// The code as sent, without the brackets.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// What the code means, by its known levels (case-insensitive).
    pub fn kind(&self) -> CodeKind {
        let mut levels = self.raw.split('/');
        let first = levels.next().unwrap_or("");
        let is = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        if is(first, "IN-USE") {
            CodeKind::InUse
        } else if is(first, "LOGIN-DELAY") {
            CodeKind::LoginDelay
        } else if is(first, "AUTH") {
            CodeKind::Auth
        } else if is(first, "SYS") {
            match levels.next() {
                Some(level) if is(level, "TEMP") => CodeKind::SysTemp,
                Some(level) if is(level, "PERM") => CodeKind::SysPerm,
                _ => CodeKind::Other,
            }
        } else {
            CodeKind::Other
        }
    }
}

/// A `+OK` or `-ERR` line (RFC 1939 §3): the text after the indicator is optional (B19).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusLine<'a> {
    /// `+OK` or `-ERR`.
    pub status: Status,
    /// The extended response code, if the text starts with a valid one (RFC 2449 §8).
    pub code: Option<ResponseCode<'a>>,
    /// The text after the indicator and code, possibly empty; not necessarily UTF-8.
    pub text: &'a [u8],
}

impl<'a> StatusLine<'a> {
    /// A `+OK` line.
    pub fn ok(text: &'a [u8]) -> Self {
        Self { status: Status::Ok, code: None, text }
    }

    /// A `-ERR` line.
    pub fn err(text: &'a [u8]) -> Self {
        Self { status: Status::Err, code: None, text }
    }

    /// Whether this is `+OK`.
    pub fn is_ok(&self) -> bool {
        self.status == Status::Ok
    }
}

/// An AUTH continuation `+` SP [base64] (RFC 5034 §4). The text is kept raw: a server may
/// send a non-base64 text such as `+ go ahead` (B20), which is a [`decode`](Self::decode)
/// error for the mechanism to judge, never a framing error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Continuation<'a> {
    /// The text after `+ ` (empty for `+ ` and for a bare `+`).
    pub raw: &'a [u8],
}

impl Continuation<'_> {
    /// The challenge decoded as strict base64; the empty text is the empty challenge.
    pub fn decode(&self) -> Result<Zeroizing<Vec<u8>>, PayloadError> {
        decode_base64(self.raw)
    }
}

/// One response line (RFC 1939 §3, RFC 5034 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Response<'a> {
    /// `+OK` or `-ERR`.
    Status(StatusLine<'a>),
    /// `+ ` during an AUTH exchange.
    Continuation(Continuation<'a>),
}

/// After an indicator: the end of the line, or one space and the rest.
fn after_indicator<'a>(line: &'a [u8], indicator: &[u8]) -> Option<&'a [u8]> {
    let head = line.get(..indicator.len())?;
    if !head.eq_ignore_ascii_case(indicator) {
        return None;
    }
    match line.get(indicator.len()..).unwrap_or_default() {
        [] => Some(&[]),
        [b' ', rest @ ..] => Some(rest),
        _ => None,
    }
}

/// Splits `[code] text` (RFC 2449 §8); text that does not start with a valid code is all text.
fn split_code(text: &[u8]) -> (Option<ResponseCode<'_>>, &[u8]) {
    let Some(inner) = text.strip_prefix(b"[") else { return (None, text) };
    let Some(end) = memchr::memchr(b']', inner) else { return (None, text) };
    let (code, after) = (inner.get(..end).unwrap_or_default(), inner.get(end + 1..).unwrap_or_default());
    let rest = match after {
        [] => after,
        [b' ', rest @ ..] => rest,
        _ => return (None, text),
    };
    match core::str::from_utf8(code).ok().and_then(ResponseCode::new) {
        Some(code) => (Some(code), rest),
        None => (None, text),
    }
}

impl<'a> Response<'a> {
    /// Parses one response line without its CRLF (RFC 1939 §3, RFC 2449 §8, RFC 5034 §4).
    /// The indicators are matched case-insensitively and must be followed by a space or the
    /// end of the line.
    pub fn parse(line: &'a [u8]) -> Result<Self, ResponseError> {
        if let Some(rest) = after_indicator(line, b"+OK") {
            let (code, text) = split_code(rest);
            return Ok(Self::Status(StatusLine { status: Status::Ok, code, text }));
        }
        if let Some(rest) = after_indicator(line, b"-ERR") {
            let (code, text) = split_code(rest);
            return Ok(Self::Status(StatusLine { status: Status::Err, code, text }));
        }
        if let Some(raw) = after_indicator(line, b"+") {
            return Ok(Self::Continuation(Continuation { raw }));
        }
        Err(ResponseError::Status)
    }

    /// Appends the line with its CRLF to `out`: status lines up to 512 octets, continuations
    /// up to 12288 (RFC 2449 §4, RFC 4954 §4). Refuses CR, LF and NUL, and anything that would
    /// not parse back the same. On error nothing is written.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), WriteError> {
        let start = out.len();
        let limit = match self {
            Self::Status(line) => {
                if line.text.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n')) {
                    return Err(WriteError::Injection);
                }
                out.extend_from_slice(line.status.as_str().as_bytes());
                if let Some(code) = line.code {
                    out.extend_from_slice(b" [");
                    out.extend_from_slice(code.as_str().as_bytes());
                    out.push(b']');
                }
                if !line.text.is_empty() {
                    out.push(b' ');
                    out.extend_from_slice(line.text);
                }
                POP3_RESPONSE_LIMIT
            }
            Self::Continuation(cont) => {
                if cont.raw.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n')) {
                    return Err(WriteError::Injection);
                }
                out.extend_from_slice(b"+ ");
                out.extend_from_slice(cont.raw);
                AUTH_LINE_LIMIT
            }
        };
        let written = out.get(start..).unwrap_or_default();
        let too_long = written.len() + 2 > limit;
        let same = matches!(Response::parse(written), Ok(parsed) if parsed == *self);
        if too_long {
            out.truncate(start);
            return Err(WriteError::TooLong);
        }
        if !same {
            out.truncate(start);
            return Err(WriteError::Invalid);
        }
        out.extend_from_slice(b"\r\n");
        Ok(())
    }

    /// The line with its CRLF.
    pub fn to_bytes(&self) -> Result<Vec<u8>, WriteError> {
        let mut out = Vec::new();
        self.write(&mut out)?;
        Ok(out)
    }
}

/// One line of a multi-line response (RFC 1939 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultiLine<'a> {
    /// A data line, its stuffed leading dot removed.
    Line(&'a [u8]),
    /// The terminating `.` line.
    End,
}

/// Reads a line of a multi-line response without its CRLF: `.` alone ends the response, a
/// line starting with `.` loses that dot (RFC 1939 §3).
pub fn unstuff(line: &[u8]) -> MultiLine<'_> {
    match line {
        b"." => MultiLine::End,
        [b'.', rest @ ..] => MultiLine::Line(rest),
        _ => MultiLine::Line(line),
    }
}

/// Counts the lines of a line-oriented multi-line response (LIST, UIDL, CAPA) so an endless
/// one ends in a typed error instead of unbounded work and memory.
#[derive(Debug, Clone)]
pub struct MultiLineReader {
    lines: usize,
    max_lines: usize,
}

impl MultiLineReader {
    /// A reader allowing `max_lines` data lines before the terminator.
    pub fn new(max_lines: usize) -> Self {
        Self { lines: 0, max_lines }
    }

    /// Data lines read so far.
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// Unstuffs the next line, failing once more than `max_lines` data lines have come.
    pub fn line<'a>(&mut self, line: &'a [u8]) -> Result<MultiLine<'a>, ResponseError> {
        match unstuff(line) {
            MultiLine::End => Ok(MultiLine::End),
            MultiLine::Line(data) => {
                self.lines += 1;
                if self.lines > self.max_lines {
                    return Err(ResponseError::TooManyLines(self.max_lines));
                }
                Ok(MultiLine::Line(data))
            }
        }
    }
}

/// Splits at runs of spaces or tabs, ignoring leading and trailing ones.
fn fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&b| b == b' ' || b == b'\t').filter(|field| !field.is_empty())
}

fn number<T: TryFrom<u64>>(field: Option<&[u8]>, what: &'static str) -> Result<T, ResponseError> {
    let field = field.ok_or(ResponseError::Listing(what))?;
    if field.is_empty() || field.len() > 20 {
        return Err(ResponseError::Listing(what));
    }
    let mut value: u64 = 0;
    for &byte in field {
        if !byte.is_ascii_digit() {
            return Err(ResponseError::Listing(what));
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(byte - b'0')))
            .ok_or(ResponseError::Listing(what))?;
    }
    T::try_from(value).map_err(|_| ResponseError::Listing(what))
}

/// A scan listing `msg size` (RFC 1939 §5 LIST), from a multi-line LIST line or the text of a
/// `+OK` to `LIST n`. Fields may be separated by runs of spaces or tabs; what follows the size
/// is ignored (§5 allows servers to add information).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScanListing {
    /// The message number.
    pub msg: u32,
    /// The size in octets.
    pub size: u64,
}

impl ScanListing {
    /// Parses `msg size [...]` (RFC 1939 §5).
    pub fn parse(line: &[u8]) -> Result<Self, ResponseError> {
        let mut fields = fields(line);
        let msg = number(fields.next(), "bad message number")?;
        let size = number(fields.next(), "bad message size")?;
        Ok(Self { msg, size })
    }
}

/// The answer to `STAT`: `count size` (RFC 1939 §5, the "drop listing").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DropListing {
    /// Number of messages.
    pub count: u32,
    /// Size of the maildrop in octets.
    pub size: u64,
}

impl DropListing {
    /// Parses the text of `+OK count size [...]` (RFC 1939 §5).
    pub fn parse(text: &[u8]) -> Result<Self, ResponseError> {
        let mut fields = fields(text);
        let count = number(fields.next(), "bad message count")?;
        let size = number(fields.next(), "bad maildrop size")?;
        Ok(Self { count, size })
    }
}

/// A unique-id listing `msg uid` (RFC 1939 §7 UIDL). The uid is 1 to 70 characters in
/// 0x21–0x7E; a longer one is accepted (the line limit bounds it), other characters are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UidListing<'a> {
    /// The message number.
    pub msg: u32,
    /// The unique id.
    pub uid: &'a str,
}

impl<'a> UidListing<'a> {
    /// Parses `msg uid` (RFC 1939 §7); fields may be separated by runs of spaces or tabs.
    pub fn parse(line: &'a [u8]) -> Result<Self, ResponseError> {
        let mut fields = fields(line);
        let msg = number(fields.next(), "bad message number")?;
        let uid = fields.next().ok_or(ResponseError::Listing("missing unique id"))?;
        if fields.next().is_some() {
            return Err(ResponseError::Listing("text after the unique id"));
        }
        if !uid.iter().all(|b| matches!(b, b'!'..=b'~')) {
            return Err(ResponseError::Listing("bad unique id"));
        }
        let uid = core::str::from_utf8(uid).map_err(|_| ResponseError::Listing("bad unique id"))?;
        Ok(Self { msg, uid })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::LineReader;
    use alloc::string::String;
    use alloc::vec;

    fn status(line: &[u8]) -> StatusLine<'_> {
        match Response::parse(line) {
            Ok(Response::Status(status)) => status,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    #[test]
    fn field_b19_ok_without_text() {
        assert_eq!(status(b"+OK"), StatusLine::ok(b""));
        assert_eq!(status(b"+OK "), StatusLine::ok(b""));
        assert_eq!(status(b"-ERR"), StatusLine::err(b""));
        assert_eq!(status(b"-ERR "), StatusLine::err(b""));
        assert_eq!(status(b"+OK Logged in."), StatusLine::ok(b"Logged in."));
        for bad in [&b"+OKAY"[..], b"+OK\tx", b"-ERROR", b"-ERRx", b"OK", b"", b"+-", b"*", b" +OK", b"-"] {
            assert_eq!(Response::parse(bad), Err(ResponseError::Status), "{bad:?}");
        }
        // The kind, not only the bytes: every indicator glued to more text is refused.
        for suffix in [&b"A"[..], b"K", b"\x00", b".", b"OK"] {
            for indicator in [&b"+OK"[..], b"-ERR"] {
                let mut line = indicator.to_vec();
                line.extend_from_slice(suffix);
                assert_eq!(Response::parse(&line), Err(ResponseError::Status), "{line:?}");
            }
        }
    }

    #[test]
    fn field_b20_continuations() {
        let cont = |line| match Response::parse(line) {
            Ok(Response::Continuation(c)) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(cont(b"+ ").raw, b"");
        assert_eq!(cont(b"+ ").decode().unwrap().as_slice(), b"");
        assert_eq!(cont(b"+").raw, b"");
        let go = cont(b"+ go ahead");
        assert_eq!(go.raw, b"go ahead");
        assert_eq!(go.decode(), Err(PayloadError::Whitespace));
        assert_eq!(cont(b"+ gone!").decode(), Err(PayloadError::Invalid));
        assert_eq!(cont(b"+ VXNlcm5hbWU6").decode().unwrap().as_slice(), b"Username:");
    }

    #[test]
    fn response_codes() {
        let line = status(b"-ERR [IN-USE] Do you have another POP session running?");
        assert_eq!(line.code.unwrap().kind(), CodeKind::InUse);
        assert_eq!(line.text, b"Do you have another POP session running?");
        let cases: [(&[u8], CodeKind, &str); 8] = [
            (b"-ERR [LOGIN-DELAY] wait", CodeKind::LoginDelay, "LOGIN-DELAY"),
            (b"-ERR [SYS/TEMP] later", CodeKind::SysTemp, "SYS/TEMP"),
            (b"-ERR [SYS/PERM] never", CodeKind::SysPerm, "SYS/PERM"),
            (b"-ERR [AUTH] Authentication failed.", CodeKind::Auth, "AUTH"),
            (b"-ERR [SYS/TEMP/DISK-FULL] later", CodeKind::SysTemp, "SYS/TEMP/DISK-FULL"),
            (b"-ERR [sys/perm] lower", CodeKind::SysPerm, "sys/perm"),
            (b"-ERR [X-NEW/SUB] what", CodeKind::Other, "X-NEW/SUB"),
            (b"+OK [IN-USE]", CodeKind::InUse, "IN-USE"),
        ];
        for (line, kind, raw) in cases {
            let parsed = status(line);
            assert_eq!(parsed.code.map(|c| c.kind()), Some(kind), "{line:?}");
            assert_eq!(parsed.code.map(|c| c.as_str()), Some(raw));
        }
        for (line, text) in [
            (&b"-ERR [oops"[..], &b"[oops"[..]),
            (b"-ERR []", b"[]"),
            (b"-ERR [A//B] x", b"[A//B] x"),
            (b"-ERR [A B] x", b"[A B] x"),
            (b"-ERR [AUTH]x", b"[AUTH]x"),
            (b"-ERR  [AUTH] x", b" [AUTH] x"),
        ] {
            let parsed = status(line);
            assert_eq!(parsed.code, None, "{line:?}");
            assert_eq!(parsed.text, text);
        }
    }

    #[test]
    fn writes_lines() {
        let with_code = Response::Status(StatusLine {
            status: Status::Err,
            code: ResponseCode::new("AUTH"),
            text: b"Authentication failed.",
        });
        assert_eq!(with_code.to_bytes().unwrap(), b"-ERR [AUTH] Authentication failed.\r\n");
        assert_eq!(Response::Status(StatusLine::ok(b"")).to_bytes().unwrap(), b"+OK\r\n");
        assert_eq!(Response::Continuation(Continuation { raw: b"" }).to_bytes().unwrap(), b"+ \r\n");
        assert_eq!(Response::Status(StatusLine::ok(b"a\r\n+OK")).to_bytes(), Err(WriteError::Injection));
        assert_eq!(Response::Continuation(Continuation { raw: b"a\nb" }).to_bytes(), Err(WriteError::Injection));
        // Text that would read back as a code is refused.
        assert_eq!(Response::Status(StatusLine::ok(b"[IN-USE] x")).to_bytes(), Err(WriteError::Invalid));
        assert_eq!(Response::Status(StatusLine::ok(&[b'x'; 600])).to_bytes(), Err(WriteError::TooLong));
    }

    #[test]
    fn field_b23_multi_line_unstuffing() {
        let lines: [&[u8]; 5] = [b"Subject: t", b"", b"..hidden", b"...", b"."];
        let out: Vec<MultiLine<'_>> = lines.iter().map(|l| unstuff(l)).collect();
        assert_eq!(
            out,
            vec![
                MultiLine::Line(b"Subject: t"),
                MultiLine::Line(b""),
                MultiLine::Line(b".hidden"),
                MultiLine::Line(b".."),
                MultiLine::End
            ]
        );
    }

    #[test]
    fn listings() {
        assert_eq!(ScanListing::parse(b"1 201"), Ok(ScanListing { msg: 1, size: 201 }));
        assert_eq!(ScanListing::parse(b"2  \t 258 extra info"), Ok(ScanListing { msg: 2, size: 258 }));
        assert_eq!(ScanListing::parse(b"\t3\t112153\t"), Ok(ScanListing { msg: 3, size: 112153 }));
        assert_eq!(DropListing::parse(b"3 112612"), Ok(DropListing { count: 3, size: 112612 }));
        assert_eq!(UidListing::parse(b"1 000000016b11b7d2"), Ok(UidListing { msg: 1, uid: "000000016b11b7d2" }));
        assert_eq!(
            UidListing::parse(b"2\t\t  QhdPYR:00WBw1Ph7x7"),
            Ok(UidListing { msg: 2, uid: "QhdPYR:00WBw1Ph7x7" })
        );
        for bad in [&b""[..], b"1", b"a 1", b"-1 2", b"1 -2", b"1 +2", b"4294967296 1", b"1 99999999999999999999999"] {
            assert!(matches!(ScanListing::parse(bad), Err(ResponseError::Listing(_))), "{bad:?}");
        }
        for bad in [&b"1"[..], b"x uid", b"1 uid more", b"1 u\xffid", b"1 u\x01"] {
            assert!(matches!(UidListing::parse(bad), Err(ResponseError::Listing(_))), "{bad:?}");
        }
    }

    #[test]
    fn endless_multi_line_is_bounded() {
        let mut reader = LineReader::new(POP3_RESPONSE_LIMIT);
        let mut lines = MultiLineReader::new(1000);
        let mut result = None;
        'feed: for _ in 0..10_000 {
            reader.feed(b"1 100\r\n2 200\r\n");
            assert!(reader.pending_len() <= 14);
            while let Some(line) = reader.next_line() {
                if let Err(err) = lines.line(line.unwrap()) {
                    result = Some(err);
                    break 'feed;
                }
            }
        }
        assert_eq!(result, Some(ResponseError::TooManyLines(1000)));
        assert_eq!(lines.lines(), 1001);
    }

    #[test]
    fn overlong_response_line_is_a_typed_error() {
        let mut reader = LineReader::new(POP3_RESPONSE_LIMIT);
        let mut input = b"+OK ".to_vec();
        input.extend_from_slice(&[b'x'; 600]);
        input.extend_from_slice(b"\r\n+OK next\r\n");
        reader.feed(&input);
        assert!(matches!(reader.next_line(), Some(Err(crate::wire::LineError { length: 606, limit: 512 }))));
        assert_eq!(
            Response::parse(reader.next_line().unwrap().unwrap()),
            Ok(Response::Status(StatusLine::ok(b"next")))
        );
    }

    /// Parses a stream of response lines at every split point: same lines, same results.
    fn parse_stream(chunks: &[&[u8]]) -> Vec<Result<String, ResponseError>> {
        let mut reader = LineReader::new(POP3_RESPONSE_LIMIT);
        let mut out = Vec::new();
        for chunk in chunks {
            reader.feed(chunk);
            while let Some(line) = reader.next_line() {
                let line = line.unwrap();
                out.push(Response::parse(line).map(|r| alloc::format!("{r:?}")));
            }
        }
        out
    }

    #[test]
    fn split_points_give_the_same_responses() {
        let input: &[u8] = b"+OK\r\n+ \r\n+ go ahead\r\n-ERR [AUTH] no\r\n+OKAY\r\n-ERR\r\n+OK 2 200\r\n";
        let whole = parse_stream(&[input]);
        assert_eq!(whole.len(), 7);
        for cut in 0..=input.len() {
            assert_eq!(parse_stream(&[&input[..cut], &input[cut..]]), whole, "cut {cut}");
        }
        let bytewise: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(parse_stream(&bytewise), whole);
    }

    fn arb_text() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            proptest::num::u8::ANY.prop_filter("no line breaks", |b| !matches!(b, 0 | b'\r' | b'\n')),
            0..100,
        )
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        #[test]
        fn status_round_trip(ok in proptest::bool::ANY, code in proptest::option::of("[A-Z-]{1,10}(/[A-Z]{1,6}){0,2}"), text in arb_text()) {
            let line = StatusLine {
                status: if ok { Status::Ok } else { Status::Err },
                code: code.as_deref().and_then(ResponseCode::new),
                text: &text,
            };
            let response = Response::Status(line);
            match response.to_bytes() {
                Ok(wire) => {
                    proptest::prop_assert_eq!(Response::parse(&wire[..wire.len() - 2]), Ok(response));
                }
                Err(err) => {
                    // Only text that would read back as a code is refused.
                    proptest::prop_assert_eq!(err, WriteError::Invalid);
                    proptest::prop_assert!(line.code.is_none() && text.first() == Some(&b'['));
                }
            }
        }

        #[test]
        fn continuation_round_trip(raw in arb_text()) {
            let response = Response::Continuation(Continuation { raw: &raw });
            let wire = response.to_bytes().unwrap();
            proptest::prop_assert_eq!(Response::parse(&wire[..wire.len() - 2]), Ok(response));
        }

        #[test]
        fn listing_round_trip(msg in proptest::num::u32::ANY, size in proptest::num::u64::ANY, sep in "[ \t]{1,4}") {
            let line = alloc::format!("{msg}{sep}{size}");
            proptest::prop_assert_eq!(ScanListing::parse(line.as_bytes()), Ok(ScanListing { msg, size }));
            let line = alloc::format!("{msg}{sep}uid-{size}");
            let uid = alloc::format!("uid-{size}");
            proptest::prop_assert_eq!(UidListing::parse(line.as_bytes()), Ok(UidListing { msg, uid: &uid }));
        }

        #[test]
        fn parse_never_panics(line in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = Response::parse(&line);
            let _ = ScanListing::parse(&line);
            let _ = UidListing::parse(&line);
            let _ = DropListing::parse(&line);
            let parsed = unstuff(&line);
            proptest::prop_assert!(matches!(parsed, MultiLine::End) == (line == b"."));
        }
    }
}
