//! SMTP replies (RFC 5321 §4.2): single and multi-line, a bare code with or without its
//! trailing space, and enhanced status codes (RFC 3463, RFC 2034) on every line.
//!
//! [`ReplyParser`] assembles replies from lines (taken from a [`LineReader`]), bounded in line
//! count; the reader bounds the line length. Text is kept line by line: join it only for
//! display (field case B14).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use crate::wire::{LineError, LineReader, SMTP_REPLY_LIMIT};

/// A reply the peer sent that is not a valid SMTP reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// A reply line longer than the limit (RFC 5321 §4.5.3.1.5).
    #[error("reply line of {length} octets exceeds the limit of {limit}")]
    LineTooLong {
        /// Length of the line, terminator included.
        length: usize,
        /// The limit in force.
        limit: usize,
    },
    /// More lines in one reply than the parser accepts.
    #[error("reply has more than {0} lines")]
    TooManyLines(usize),
    /// The line does not start with a reply code `2yz`..`5yz` (digits 0-5 in the middle)
    /// followed by SP, `-` or the end of the line (RFC 5321 §4.2).
    #[error("malformed reply code")]
    BadCode,
    /// A line of a multi-line reply carries a different code than the first (RFC 5321 §4.2.1).
    #[error("reply code changed inside a multi-line reply")]
    CodeMismatch,
    /// Control characters (NUL, bare CR, ...) in the text.
    #[error("binary data in reply text")]
    Binary,
    /// A reply with another code than the one expected (for example not `250` to EHLO).
    #[error("reply code {0} where another was expected")]
    Unexpected(u16),
}

impl From<LineError> for ReplyError {
    fn from(error: LineError) -> Self {
        Self::LineTooLong { length: error.length, limit: error.limit }
    }
}

/// Why a reply could not be serialized. Nothing is written in either case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplyWriteError {
    /// Text holds CR, LF or NUL, which would forge further reply lines.
    #[error("CR, LF or NUL in reply text")]
    Injection,
    /// The code is not `2yz`..`5yz`, there is no line, the enhanced code's class does not
    /// match, the text holds control characters, it would parse back differently (text
    /// starting with something that reads as an enhanced code), or a line would be longer
    /// than 512 octets with its CRLF (RFC 5321 §4.5.3.1.5), which no reader has to accept.
    #[error("reply would not parse back as written")]
    Invalid,
}

/// An enhanced mail system status code `class.subject.detail` (RFC 3463 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    /// 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    pub class: u8,
    /// 0 to 999.
    pub subject: u16,
    /// 0 to 999.
    pub detail: u16,
}

impl EnhancedCode {
    /// An enhanced code (RFC 3463 §2).
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        Self { class, subject, detail }
    }

    fn is_valid(&self) -> bool {
        matches!(self.class, 2 | 4 | 5) && self.subject < 1000 && self.detail < 1000
    }

    /// Reads an enhanced code at the start of `text`, followed by SP or the end, with the
    /// class `class`; returns it and the rest after the SP.
    fn split(text: &[u8], class: u8) -> Option<(Self, &[u8])> {
        let (first, rest) = text.split_first()?;
        if *first != b'0' + class || !matches!(class, 2 | 4 | 5) {
            return None;
        }
        let rest = rest.strip_prefix(b".")?;
        let (subject, rest) = number(rest)?;
        let rest = rest.strip_prefix(b".")?;
        let (detail, rest) = number(rest)?;
        let rest = match rest.split_first() {
            None => rest,
            Some((b' ', tail)) => tail,
            Some(_) => return None,
        };
        Some((Self { class, subject, detail }, rest))
    }
}

/// One to three digits.
fn number(text: &[u8]) -> Option<(u16, &[u8])> {
    let digits = text.iter().take(4).take_while(|b| b.is_ascii_digit()).count();
    if !(1..=3).contains(&digits) {
        return None;
    }
    let (head, rest) = text.split_at_checked(digits)?;
    Some((head.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0')), rest))
}

impl core::fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One reply line, parsed without allocating (RFC 5321 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedLine<'a> {
    /// The three-digit code.
    pub code: u16,
    /// Whether this is the last line (`code SP` or a bare code, not `code -`).
    pub last: bool,
    /// The enhanced code at the start of the text, if any.
    pub enhanced: Option<EnhancedCode>,
    /// The text after the code (and after the enhanced code and its space).
    pub text: &'a [u8],
}

impl<'a> ParsedLine<'a> {
    /// Parses a reply line without its CRLF. A bare code, with or without trailing space,
    /// has empty text (RFC 5321 §4.2, field case B01).
    pub fn parse(line: &'a [u8]) -> Result<Self, ReplyError> {
        let (code, rest) = match line {
            [a @ b'2'..=b'5', b @ b'0'..=b'5', c @ b'0'..=b'9', rest @ ..] => {
                (u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'), rest)
            }
            _ => return Err(ReplyError::BadCode),
        };
        let (last, text) = match rest.split_first() {
            None => (true, rest),
            Some((b' ', text)) => (true, text),
            Some((b'-', text)) => (false, text),
            Some(_) => return Err(ReplyError::BadCode),
        };
        // Without an early exit the check compiles to a vectorized loop.
        if text.iter().fold(false, |bad, &b| bad | (b < 0x20 && b != b'\t' || b == 0x7f)) {
            return Err(ReplyError::Binary);
        }
        let class = u8::try_from(code / 100).unwrap_or(0);
        Ok(match EnhancedCode::split(text, class) {
            Some((enhanced, text)) => Self { code, last, enhanced: Some(enhanced), text },
            None => Self { code, last, enhanced: None, text },
        })
    }
}

/// One line of a reply's text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReplyLine {
    /// The enhanced status code of this line (RFC 2034 §4 repeats it on every line).
    pub enhanced: Option<EnhancedCode>,
    /// The text after the codes; bytes that are not UTF-8 are replaced.
    pub text: String,
}

/// A complete SMTP reply (RFC 5321 §4.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// The lines, at least one.
    pub lines: Vec<ReplyLine>,
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: u16, text: impl Into<String>) -> Self {
        Self { code, lines: alloc::vec![ReplyLine { enhanced: None, text: text.into() }] }
    }

    /// A one-line reply with an enhanced status code (RFC 3463).
    pub fn enhanced(code: u16, enhanced: EnhancedCode, text: impl Into<String>) -> Self {
        Self { code, lines: alloc::vec![ReplyLine { enhanced: Some(enhanced), text: text.into() }] }
    }

    /// The enhanced code of the first line, if any.
    pub fn enhanced_code(&self) -> Option<EnhancedCode> {
        self.lines.first().and_then(|line| line.enhanced)
    }

    /// The first digit: 2 positive completion, 3 intermediate, 4 transient, 5 permanent
    /// (RFC 5321 §4.2.1).
    pub fn class(&self) -> u8 {
        u8::try_from(self.code / 100).unwrap_or(0)
    }

    /// 2yz.
    pub fn is_positive(&self) -> bool {
        self.class() == 2
    }

    /// 3yz.
    pub fn is_intermediate(&self) -> bool {
        self.class() == 3
    }

    /// 4yz or 5yz.
    pub fn is_negative(&self) -> bool {
        matches!(self.class(), 4 | 5)
    }

    /// The text lines, each without codes.
    pub fn text_lines(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(|line| line.text.as_str())
    }

    /// The text lines joined with a space, for display (field case B14).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (i, line) in self.text_lines().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(line);
        }
        out
    }

    /// Appends the reply with CRLF line ends to `out` (RFC 5321 §4.2.1). An empty text is
    /// written with the space (`334 \r\n`, field case B01). Refuses text that could forge
    /// another line or would not parse back; `out` is then left as it was.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), ReplyWriteError> {
        let start = out.len();
        let result = self.write_unchecked(out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// The reply as it travels.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ReplyWriteError> {
        let mut out = Vec::new();
        self.write(&mut out)?;
        Ok(out)
    }

    fn write_unchecked(&self, out: &mut Vec<u8>) -> Result<(), ReplyWriteError> {
        if !(200..600).contains(&self.code) || (self.code / 10) % 10 > 5 || self.lines.is_empty() {
            return Err(ReplyWriteError::Invalid);
        }
        let count = self.lines.len();
        for (i, line) in self.lines.iter().enumerate() {
            let text = line.text.as_bytes();
            if text.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n')) {
                return Err(ReplyWriteError::Injection);
            }
            if text.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
                return Err(ReplyWriteError::Invalid);
            }
            let mut head = String::new();
            let separator = if i + 1 == count { ' ' } else { '-' };
            let _ = write!(head, "{}{separator}", self.code);
            match line.enhanced {
                Some(enhanced) => {
                    if !enhanced.is_valid() || u16::from(enhanced.class) != self.code / 100 {
                        return Err(ReplyWriteError::Invalid);
                    }
                    let _ = write!(head, "{enhanced}");
                    if !text.is_empty() {
                        head.push(' ');
                    }
                }
                None => {
                    if EnhancedCode::split(text, self.class()).is_some() {
                        return Err(ReplyWriteError::Invalid);
                    }
                }
            }
            if head.len() + text.len() + 2 > SMTP_REPLY_LIMIT {
                return Err(ReplyWriteError::Invalid);
            }
            out.extend_from_slice(head.as_bytes());
            out.extend_from_slice(text);
            out.extend_from_slice(b"\r\n");
        }
        Ok(())
    }
}

impl core::fmt::Display for Reply {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(enhanced) = self.enhanced_code() {
            write!(f, " {enhanced}")?;
        }
        for line in self.text_lines() {
            write!(f, " {line}")?;
        }
        Ok(())
    }
}

/// Assembles replies from lines (RFC 5321 §4.2.1), at most `max_lines` lines per reply.
///
/// After an error the partial reply is dropped; the next line starts a new reply.
#[derive(Debug, Clone)]
pub struct ReplyParser {
    max_lines: usize,
    partial: Option<Reply>,
}

impl Default for ReplyParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplyParser {
    /// Lines per reply accepted by [`new`](Self::new): enough for any EHLO reply seen.
    pub const DEFAULT_MAX_LINES: usize = 100;

    /// A parser with the default line count limit.
    pub fn new() -> Self {
        Self::with_max_lines(Self::DEFAULT_MAX_LINES)
    }

    /// A parser accepting at most `max_lines` lines per reply.
    pub fn with_max_lines(max_lines: usize) -> Self {
        Self { max_lines: max_lines.max(1), partial: None }
    }

    /// Whether some lines of a reply have been read but not its last line.
    pub fn is_partial(&self) -> bool {
        self.partial.is_some()
    }

    /// Forgets a partial reply.
    pub fn reset(&mut self) {
        self.partial = None;
    }

    /// Takes one line without its CRLF; returns the reply once its last line is in.
    pub fn push_line(&mut self, line: &[u8]) -> Result<Option<Reply>, ReplyError> {
        let parsed = match ParsedLine::parse(line) {
            Ok(parsed) => parsed,
            Err(error) => {
                self.partial = None;
                return Err(error);
            }
        };
        let text = String::from_utf8_lossy(parsed.text).into_owned();
        let line = ReplyLine { enhanced: parsed.enhanced, text };
        let mut reply = match self.partial.take() {
            Some(reply) if reply.code != parsed.code => return Err(ReplyError::CodeMismatch),
            Some(reply) if reply.lines.len() >= self.max_lines => {
                return Err(ReplyError::TooManyLines(self.max_lines));
            }
            Some(reply) => reply,
            None => Reply { code: parsed.code, lines: Vec::new() },
        };
        reply.lines.push(line);
        if parsed.last {
            Ok(Some(reply))
        } else {
            self.partial = Some(reply);
            Ok(None)
        }
    }

    /// Reads lines from `reader` until a reply is complete; `None` when more bytes are needed.
    pub fn next_reply(&mut self, reader: &mut LineReader) -> Option<Result<Reply, ReplyError>> {
        loop {
            let line = match reader.next_line()? {
                Ok(line) => line,
                Err(error) => {
                    self.partial = None;
                    return Some(Err(error.into()));
                }
            };
            match self.push_line(line) {
                Ok(Some(reply)) => return Some(Ok(reply)),
                Ok(None) => {}
                Err(error) => return Some(Err(error)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::SMTP_REPLY_LIMIT;
    use alloc::vec;

    fn parse_all(chunks: &[&[u8]]) -> Vec<Result<Reply, ReplyError>> {
        let mut reader = LineReader::new(SMTP_REPLY_LIMIT);
        let mut parser = ReplyParser::new();
        let mut out = Vec::new();
        for chunk in chunks {
            reader.feed(chunk);
            while let Some(reply) = parser.next_reply(&mut reader) {
                out.push(reply);
            }
        }
        out
    }

    fn one(input: &[u8]) -> Reply {
        let mut replies = parse_all(&[input]);
        assert_eq!(replies.len(), 1, "{input:?}");
        replies.remove(0).unwrap()
    }

    fn line(enhanced: Option<EnhancedCode>, text: &str) -> ReplyLine {
        ReplyLine { enhanced, text: text.into() }
    }

    #[test]
    fn field_b01_bare_code() {
        assert_eq!(one(b"334\r\n"), Reply { code: 334, lines: vec![line(None, "")] });
        assert_eq!(one(b"334 \r\n"), Reply { code: 334, lines: vec![line(None, "")] });
        assert_eq!(Reply::new(334, "").to_bytes().unwrap(), b"334 \r\n");
        // The class: any code, bare or with a lone space, alone or as lines of a multi-line reply.
        for code in [220u16, 235, 250, 354, 421, 454, 535] {
            let text = alloc::format!("{code}\r\n");
            assert_eq!(one(text.as_bytes()), Reply { code, lines: vec![line(None, "")] }, "{code}");
            let text = alloc::format!("{code}-\r\n{code} \r\n");
            assert_eq!(one(text.as_bytes()), Reply { code, lines: vec![line(None, ""), line(None, "")] }, "{code}");
            let text = alloc::format!("{code}-first\r\n{code}\r\n");
            assert_eq!(
                one(text.as_bytes()),
                Reply { code, lines: vec![line(None, "first"), line(None, "")] },
                "{code}"
            );
        }
    }

    #[test]
    fn field_b14_enhanced_codes_per_line() {
        let reply = one(b"550-5.7.25 [192.0.2.1] The IP address sending this message does not have a\r\n550-5.7.25 PTR record setup, or the corresponding forward DNS entry does not\r\n550 5.7.25 match the sending IP.\r\n");
        let code = Some(EnhancedCode::new(5, 7, 25));
        assert_eq!(reply.code, 550);
        assert_eq!(
            reply.lines,
            vec![
                line(code, "[192.0.2.1] The IP address sending this message does not have a"),
                line(code, "PTR record setup, or the corresponding forward DNS entry does not"),
                line(code, "match the sending IP."),
            ]
        );
        assert!(reply.text().contains("have a PTR"));
        assert_eq!(one(b"250 message processed\r\n"), Reply::new(250, "message processed"));
        assert_eq!(one(b"250 2.0.0\r\n"), Reply::enhanced(250, EnhancedCode::new(2, 0, 0), ""));
        // A class that disagrees with the code is text, not an enhanced code.
        assert_eq!(one(b"250 5.0.0 odd\r\n"), Reply::new(250, "5.0.0 odd"));
        assert_eq!(one(b"250 2.0.0000 x\r\n"), Reply::new(250, "2.0.0000 x"));
        assert_eq!(one(b"235 2.7.0 Authentication successful\r\n").enhanced_code(), Some(EnhancedCode::new(2, 7, 0)));
    }

    #[test]
    fn garbage_codes() {
        for bad in [
            &b"2x0 ok\r\n"[..],
            b"99\r\n",
            b"99 ok\r\n",
            b"1000\r\n",
            b"1000 ok\r\n",
            b"199 x\r\n",
            b"260 x\r\n",
            b"650 x\r\n",
            b"250x\r\n",
            b"\r\n",
            b"ok\r\n",
            b"\xff\xfe\r\n",
        ] {
            assert_eq!(parse_all(&[bad]), vec![Err(ReplyError::BadCode)], "{bad:?}");
        }
        assert_eq!(parse_all(&[b"250 a\0b\r\n"]), vec![Err(ReplyError::Binary)]);
        assert_eq!(parse_all(&[b"250 a\rb\r\n"]), vec![Err(ReplyError::Binary)]);
        assert_eq!(parse_all(&[b"250-a\r\n251 b\r\n"]), vec![Err(ReplyError::CodeMismatch)]);
        // 8-bit text is kept, replaced where not UTF-8.
        assert_eq!(one(b"220 caf\xc3\xa9 \xe9\r\n").lines[0].text, "café \u{fffd}");
    }

    #[test]
    fn hostile_endless_continuation_is_bounded() {
        let mut reader = LineReader::new(SMTP_REPLY_LIMIT);
        let mut parser = ReplyParser::new();
        let mut errors = 0;
        for _ in 0..10_000 {
            reader.feed(b"250-AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256 and some more padding text\r\n");
            while let Some(reply) = parser.next_reply(&mut reader) {
                assert_eq!(reply, Err(ReplyError::TooManyLines(100)));
                errors += 1;
            }
            assert!(parser.partial.as_ref().is_none_or(|r| r.lines.len() <= 100));
            assert!(reader.pending_len() < 200);
        }
        assert_eq!(errors, 10_000 / 101);
    }

    #[test]
    fn hostile_megabyte_line() {
        let mut reader = LineReader::new(SMTP_REPLY_LIMIT);
        let mut parser = ReplyParser::new();
        reader.feed(b"250-");
        for _ in 0..1024 {
            reader.feed(&[b'x'; 1024]);
            assert!(parser.next_reply(&mut reader).is_none());
            assert!(reader.pending_len() <= 1024);
        }
        reader.feed(b"\r\n250 ok\r\n");
        assert_eq!(
            parser.next_reply(&mut reader),
            Some(Err(ReplyError::LineTooLong { length: 1024 * 1024 + 6, limit: 512 }))
        );
        assert_eq!(parser.next_reply(&mut reader), Some(Ok(Reply::new(250, "ok"))));
    }

    #[test]
    fn split_points_give_the_same_replies() {
        let input: &[u8] = b"220-mail.example.net ESMTP\r\n220 ready\r\n250-mail.example.net\r\n250-STARTTLS\r\n250 2.0.0 AUTH PLAIN\r\n334\r\n2x0 bad\r\n535 5.7.8 no\r\n";
        let whole = parse_all(&[input]);
        assert_eq!(whole.len(), 5);
        assert_eq!(whole[4], Ok(Reply::enhanced(535, EnhancedCode::new(5, 7, 8), "no")));
        for cut in 0..=input.len() {
            assert_eq!(parse_all(&[&input[..cut], &input[cut..]]), whole, "cut at {cut}");
        }
        let bytewise: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(parse_all(&bytewise), whole);
    }

    #[test]
    fn writer_refuses_forgery() {
        assert_eq!(Reply::new(250, "ok\r\n235 forged").to_bytes(), Err(ReplyWriteError::Injection));
        assert_eq!(Reply::new(250, "2.0.0 looks enhanced").to_bytes(), Err(ReplyWriteError::Invalid));
        assert_eq!(Reply::new(199, "x").to_bytes(), Err(ReplyWriteError::Invalid));
        assert_eq!(Reply::new(260, "x").to_bytes(), Err(ReplyWriteError::Invalid));
        assert_eq!(Reply::enhanced(250, EnhancedCode::new(5, 0, 0), "x").to_bytes(), Err(ReplyWriteError::Invalid));
        assert_eq!(Reply { code: 250, lines: vec![] }.to_bytes(), Err(ReplyWriteError::Invalid));
        let mut out = b"kept".to_vec();
        let reply = Reply { code: 250, lines: vec![line(None, "fine"), line(None, "bad\n")] };
        assert_eq!(reply.write(&mut out), Err(ReplyWriteError::Injection));
        assert_eq!(out, b"kept");
        let reply = Reply {
            code: 250,
            lines: vec![
                line(None, "mail.example"),
                line(None, "PIPELINING"),
                line(Some(EnhancedCode::new(2, 0, 0)), ""),
            ],
        };
        assert_eq!(reply.to_bytes().unwrap(), b"250-mail.example\r\n250-PIPELINING\r\n250 2.0.0\r\n");
    }

    fn arb_reply() -> impl proptest::strategy::Strategy<Value = Reply> {
        use proptest::strategy::Strategy as _;
        (proptest::sample::select(vec![211u16, 220, 221, 235, 250, 334, 354, 421, 454, 500, 535, 554]), 1usize..5)
            .prop_flat_map(|(code, n)| {
                let class = u8::try_from(code / 100).unwrap();
                let line = (
                    proptest::option::of(
                        (0u16..1000, 0u16..1000).prop_map(move |(s, d)| EnhancedCode::new(class, s, d)),
                    ),
                    "[ -~\t]{0,30}|[a-zé€ ]{0,10}",
                )
                    .prop_map(|(enhanced, text)| ReplyLine { enhanced: enhanced.filter(|e| e.class != 3), text });
                proptest::collection::vec(line, n).prop_map(move |lines| Reply { code, lines })
            })
    }

    proptest::proptest! {
        #[test]
        fn round_trip(reply in arb_reply(), cut in 0usize..1000) {
            match reply.to_bytes() {
                Ok(bytes) => {
                    proptest::prop_assert_eq!(parse_all(&[&bytes]), vec![Ok(reply.clone())]);
                    let cut = cut % (bytes.len() + 1);
                    proptest::prop_assert_eq!(parse_all(&[&bytes[..cut], &bytes[cut..]]), vec![Ok(reply)]);
                }
                Err(error) => {
                    // Only text that reads as an enhanced code is refused here.
                    proptest::prop_assert_eq!(error, ReplyWriteError::Invalid);
                    proptest::prop_assert!(reply.lines.iter().any(|l| l.enhanced.is_none()
                        && EnhancedCode::split(l.text.as_bytes(), reply.class()).is_some()));
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let replies = parse_all(&[&input]);
            for reply in replies.into_iter().flatten() {
                proptest::prop_assert!(!reply.lines.is_empty() && reply.lines.len() <= 100);
            }
        }
    }
}
