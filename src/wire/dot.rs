//! Dot-stuffing for multi-line bodies: SMTP `DATA` (RFC 5321 §4.5.2), POP3 `RETR`/`TOP`
//! (RFC 1939 §3) and `XTND XMIT`.
//!
//! Only `CRLF . CRLF` ends a body (the first CRLF may be the start of the body). The bare
//! forms `LF . LF`, `CR . CR LF` and `LF . CRLF` are data, never an end: taking them as one is
//! the SMTP smuggling bug.

use alloc::vec::Vec;

/// What one [`DotDecoder::decode`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Input bytes consumed; when `done`, the bytes after them belong to what follows the body.
    pub consumed: usize,
    /// The terminating `.` line has been read.
    pub done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecodeState {
    /// At the start of a line (after CRLF, or at the very start of the body).
    LineStart,
    /// A line that began with `.`: the dot is held back.
    Dot,
    /// `.` CR at the start of a line.
    DotCr,
    /// Inside a line.
    Middle,
    /// Inside a line, just after CR.
    Cr,
    /// The terminator has been read.
    Done,
}

/// Streaming dot-unstuffer: stuffed bytes in, the original body out, in pieces.
///
/// Never holds more than the current call's output; a terminator split across calls is found.
#[derive(Debug, Clone)]
pub struct DotDecoder {
    state: DecodeState,
}

impl Default for DotDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl DotDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        Self { state: DecodeState::LineStart }
    }

    /// Whether the terminator has been read.
    pub fn is_done(&self) -> bool {
        self.state == DecodeState::Done
    }

    /// Unstuffs `input` into `out`, stopping right after the terminator.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Decoded {
        use DecodeState::*;
        let mut i = 0;
        while i < input.len() {
            if self.state == Middle {
                // Copy the run up to the next CR in one go.
                let rest = input.get(i..).unwrap_or_default();
                match memchr::memchr(b'\r', rest) {
                    Some(n) => {
                        out.extend_from_slice(rest.get(..=n).unwrap_or_default());
                        i += n + 1;
                        self.state = Cr;
                        continue;
                    }
                    None => {
                        out.extend_from_slice(rest);
                        return Decoded { consumed: input.len(), done: false };
                    }
                }
            }
            let Some(&byte) = input.get(i) else { break };
            i += 1;
            self.state = match (self.state, byte) {
                (Done, _) => {
                    i -= 1;
                    break;
                }
                (LineStart, b'.') => Dot,
                (Dot, b'\r') => DotCr,
                (DotCr, b'\n') => {
                    self.state = Done;
                    return Decoded { consumed: i, done: true };
                }
                // `.` CR x: not the terminator; the first dot goes, CR stays.
                (DotCr, _) => {
                    out.push(b'\r');
                    i -= 1;
                    Cr
                }
                (Cr, b'\n') => {
                    out.push(b'\n');
                    LineStart
                }
                (LineStart | Cr, b'\r') => {
                    out.push(b'\r');
                    Cr
                }
                (LineStart | Dot | Cr | Middle, _) => {
                    out.push(byte);
                    Middle
                }
            };
        }
        Decoded { consumed: i, done: self.state == Done }
    }
}

/// Streaming dot-stuffer: a message in, wire bytes out.
///
/// Bare CR and bare LF become CRLF, every line starting with `.` gets another one, and
/// [`finish`](Self::finish) ends the body with CRLF (if missing) and `.` CRLF.
#[derive(Debug, Clone)]
pub struct DotEncoder {
    line_start: bool,
    pending_cr: bool,
}

impl Default for DotEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl DotEncoder {
    /// An encoder at the start of a body.
    pub fn new() -> Self {
        Self { line_start: true, pending_cr: false }
    }

    /// Stuffs `input` into `out`.
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 32 + 4);
        let mut rest = input;
        while !rest.is_empty() {
            if self.pending_cr {
                self.pending_cr = false;
                out.extend_from_slice(b"\r\n");
                self.line_start = true;
                if rest.first() == Some(&b'\n') {
                    rest = rest.get(1..).unwrap_or_default();
                    continue;
                }
            }
            if self.line_start && rest.first() == Some(&b'.') {
                out.push(b'.');
            }
            match memchr::memchr2(b'\r', b'\n', rest) {
                Some(n) => {
                    out.extend_from_slice(rest.get(..n).unwrap_or_default());
                    if rest.get(n) == Some(&b'\r') {
                        self.pending_cr = true;
                        self.line_start = false;
                    } else {
                        out.extend_from_slice(b"\r\n");
                        self.line_start = true;
                    }
                    rest = rest.get(n + 1..).unwrap_or_default();
                }
                None => {
                    out.extend_from_slice(rest);
                    self.line_start = false;
                    rest = &[];
                }
            }
        }
    }

    /// Ends the body: CRLF if the last line lacks one, then `.` CRLF. The encoder can then be
    /// reused for the next body.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr || !self.line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        *self = Self::new();
    }

    /// Stuffs a whole body in one go.
    pub fn encode_all(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(body.len() + 8);
        let mut encoder = Self::new();
        encoder.encode(body, &mut out);
        encoder.finish(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn decode_chunks(chunks: &[&[u8]]) -> (Vec<u8>, Option<Vec<u8>>) {
        let mut decoder = DotDecoder::new();
        let mut out = Vec::new();
        for (k, chunk) in chunks.iter().enumerate() {
            let step = decoder.decode(chunk, &mut out);
            if step.done {
                let mut rest = chunk[step.consumed..].to_vec();
                for later in &chunks[k + 1..] {
                    rest.extend_from_slice(later);
                }
                return (out, Some(rest));
            }
            assert_eq!(step.consumed, chunk.len());
        }
        (out, None)
    }

    #[test]
    fn field_b23_unstuffs_client_side() {
        let (body, rest) = decode_chunks(&[b"Subject: t\r\n\r\n..hidden\r\n...\r\n.\r\n"]);
        assert_eq!(body, b"Subject: t\r\n\r\n.hidden\r\n..\r\n");
        assert_eq!(rest, Some(Vec::new()));
    }

    #[test]
    fn terminator_as_first_line() {
        let (body, rest) = decode_chunks(&[b".\r\nQUIT\r\n"]);
        assert!(body.is_empty());
        assert_eq!(rest, Some(b"QUIT\r\n".to_vec()));
    }

    #[test]
    fn smuggling_forms_are_data() {
        for form in [&b"a\n.\nb"[..], b"a\r.\r\nb", b"a\n.\r\nb", b"a\r\n.\nb", b"a\r\n.\rb"] {
            let mut input = form.to_vec();
            input.extend_from_slice(b"\r\n.\r\n");
            let (body, rest) = decode_chunks(&[&input]);
            assert_eq!(rest, Some(Vec::new()), "{form:?}");
            let mut expected = form.to_vec();
            expected.extend_from_slice(b"\r\n");
            // `.` at a real line start is unstuffed, bare forms are kept byte for byte.
            if form == b"a\r\n.\nb" {
                expected = b"a\r\n\nb\r\n".to_vec();
            } else if form == b"a\r\n.\rb" {
                expected = b"a\r\n\rb\r\n".to_vec();
            }
            assert_eq!(body, expected, "{form:?}");
        }
    }

    #[test]
    fn field_b24_stuffs_every_dot_line_and_normalizes() {
        assert_eq!(DotEncoder::encode_all(b"first\r\n.\r\n.dot\r\nlast\r\n"), b"first\r\n..\r\n..dot\r\nlast\r\n.\r\n");
        assert_eq!(DotEncoder::encode_all(b"a\r\n.\nb"), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(DotEncoder::encode_all(b"a\rb\n"), b"a\r\nb\r\n.\r\n");
        assert_eq!(DotEncoder::encode_all(b""), b".\r\n");
        assert_eq!(DotEncoder::encode_all(b".\r"), b"..\r\n.\r\n");
    }

    fn normalize(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < body.len() {
            match body[i] {
                b'\r' if body.get(i + 1) == Some(&b'\n') => {
                    out.extend_from_slice(b"\r\n");
                    i += 1;
                }
                b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
                b => out.push(b),
            }
            i += 1;
        }
        if !out.is_empty() && !out.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn round_trip_at_every_split(
            body in proptest::collection::vec(proptest::sample::select(vec![b'.', b'\r', b'\n', b'a', b' ']), 0..64),
            cut_a in 0usize..200, cut_b in 0usize..200,
        ) {
            let mut wire = Vec::new();
            let mut encoder = DotEncoder::new();
            let a = cut_a % (body.len() + 1);
            encoder.encode(&body[..a], &mut wire);
            encoder.encode(&body[a..], &mut wire);
            encoder.finish(&mut wire);
            proptest::prop_assert_eq!(&wire, &DotEncoder::encode_all(&body));
            wire.extend_from_slice(b"NEXT");
            let (whole, rest) = decode_chunks(&[&wire]);
            proptest::prop_assert_eq!(&whole, &normalize(&body));
            proptest::prop_assert_eq!(rest, Some(b"NEXT".to_vec()));
            let b = cut_b % (wire.len() + 1);
            let (split, _) = decode_chunks(&[&wire[..b], &wire[b..]]);
            proptest::prop_assert_eq!(&split, &whole);
            let bytewise: Vec<&[u8]> = wire.chunks(1).collect();
            proptest::prop_assert_eq!(decode_chunks(&bytewise).0, whole);
        }
    }
}
