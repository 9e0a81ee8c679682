//! Bounded CRLF line reader (RFC 5321 §2.3.8, RFC 1939 §3).

use alloc::vec::Vec;

/// A line did not fit its limit; the reader skipped it up to and including its LF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("line of {length} octets exceeds the limit of {limit}")]
pub struct LineError {
    /// Length of the offending line, terminator included.
    pub length: usize,
    /// The limit in force, terminator included.
    pub limit: usize,
}

/// Splits a byte stream into lines, whatever the read boundaries.
///
/// Bytes go in with [`feed`](Self::feed); complete lines come out of
/// [`next_line`](Self::next_line) without their terminator. A line ends at LF; a CR just before
/// it is removed. A line longer than the limit (terminator included) comes out as a
/// [`LineError`] once its LF arrives; its bytes are dropped as soon as they exceed the limit,
/// so memory stays bounded by the limit plus what was fed since the last call.
///
/// Bytes are only interpreted when a line is asked for, so a protocol that switches framing
/// (SMTP `DATA`, `BDAT`, STARTTLS) can take the raw rest with [`take_pending`](Self::take_pending).
#[derive(Debug, Clone)]
pub struct LineReader {
    buf: Vec<u8>,
    start: usize,
    /// Bytes from `start` already known to hold no LF.
    scanned: usize,
    limit: usize,
    /// Length of an overlong line whose bytes are being dropped.
    skipping: Option<usize>,
}

impl LineReader {
    /// A reader whose lines may be `limit` octets long, CRLF included.
    pub fn new(limit: usize) -> Self {
        Self { buf: Vec::new(), start: 0, scanned: 0, limit, skipping: None }
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Changes the limit for the lines not yet returned (for example 12288 during SMTP AUTH).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Appends bytes received from the peer.
    pub fn feed(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 4096 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete line, without its terminator, or `None` until more bytes arrive.
    pub fn next_line(&mut self) -> Option<Result<&[u8], LineError>> {
        match self.advance()? {
            Ok((begin, end)) => {
                let line = self.buf.get(begin..end).unwrap_or_default();
                Some(Ok(line.strip_suffix(b"\r").unwrap_or(line)))
            }
            Err(error) => Some(Err(error)),
        }
    }

    /// Cuts the next buffered line: its range in `buf` without the LF, or `None` (after
    /// counting and dropping an overlong partial line) until more bytes arrive.
    fn advance(&mut self) -> Option<Result<(usize, usize), LineError>> {
        let pending = self.buf.get(self.start..).unwrap_or_default();
        let search = pending.get(self.scanned..).unwrap_or_default();
        match memchr::memchr(b'\n', search) {
            Some(i) => {
                let end = self.scanned + i + 1;
                let begin = self.start;
                self.start += end;
                self.scanned = 0;
                if let Some(skipped) = self.skipping.take() {
                    let length = skipped + end;
                    return Some(Err(LineError { length, limit: self.limit }));
                }
                if end > self.limit {
                    return Some(Err(LineError { length: end, limit: self.limit }));
                }
                Some(Ok((begin, begin + end - 1)))
            }
            None => {
                let len = pending.len();
                if self.skipping.is_some() || len > self.limit {
                    // Too long already: count the bytes and drop them.
                    self.skipping = Some(self.skipping.unwrap_or(0) + len);
                    self.buf.truncate(self.start);
                    self.scanned = 0;
                } else {
                    self.scanned = len;
                }
                None
            }
        }
    }

    /// Reads `input` as if it were [`fed`](Self::feed) and its lines taken with
    /// [`next_line`](Self::next_line), without copying complete lines: they are returned
    /// borrowed from `input`. Only a line split across calls goes through the buffer: the
    /// partial line left from earlier calls first, and what is left of `input` after the last
    /// LF (bounded by the limit as with `feed`), kept when the returned [`Lines`] is dropped.
    /// Stopping early (say at `DATA`) is allowed: the unread rest of `input` is then buffered
    /// as `feed` would have, for [`take_pending`](Self::take_pending) or later lines.
    pub fn lines<'r, 'a>(&'r mut self, input: &'a [u8]) -> Lines<'r, 'a> {
        Lines { reader: self, input }
    }

    /// Whether any byte has been received but not yet returned as a line.
    #[inline]
    pub fn has_pending(&self) -> bool {
        self.start < self.buf.len() || self.skipping.is_some()
    }

    /// Number of buffered bytes not yet returned.
    pub fn pending_len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Removes and returns every buffered byte not yet returned as a line, and forgets any
    /// overlong line in progress (its dropped bytes are gone).
    pub fn take_pending(&mut self) -> Vec<u8> {
        let rest = self.buf.split_off(self.start);
        self.clear();
        rest
    }

    /// Forgets everything buffered (RFC 3207 §4.2: nothing read before TLS survives it).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
        self.skipping = None;
    }
}

/// The lines of one input slice, from [`LineReader::lines`]; a lending cursor (each line
/// borrows the cursor), so it is read with [`next_line`](Self::next_line), not `Iterator`.
#[derive(Debug)]
pub struct Lines<'r, 'a> {
    reader: &'r mut LineReader,
    /// The part of the input not yet read.
    input: &'a [u8],
}

impl Lines<'_, '_> {
    /// The next complete line, without its terminator, or `None` once the input is used up
    /// (its incomplete last line is then buffered in the reader).
    #[inline]
    pub fn next_line(&mut self) -> Option<Result<&[u8], LineError>> {
        if self.reader.has_pending() {
            return self.next_buffered();
        }
        // Nothing buffered: cut the line straight from the input.
        let Some(i) = find_lf(self.input) else {
            return self.next_buffered();
        };
        let (line, rest) = self.input.split_at(i + 1);
        self.input = rest;
        if line.len() > self.reader.limit {
            return Some(Err(LineError { length: line.len(), limit: self.reader.limit }));
        }
        let line = line.get(..i).unwrap_or_default();
        Some(Ok(line.strip_suffix(b"\r").unwrap_or(line)))
    }

    /// The slow path: a line that starts in the reader's buffer (or none is left in the input):
    /// the input up to its first LF joins the buffer, and the reader cuts the line.
    fn next_buffered(&mut self) -> Option<Result<&[u8], LineError>> {
        loop {
            match self.reader.advance() {
                Some(Ok((begin, end))) => {
                    let line = self.reader.buf.get(begin..end).unwrap_or_default();
                    return Some(Ok(line.strip_suffix(b"\r").unwrap_or(line)));
                }
                Some(Err(error)) => return Some(Err(error)),
                None if self.input.is_empty() => return None,
                None => {
                    let take = memchr::memchr(b'\n', self.input).map_or(self.input.len(), |i| i + 1);
                    let (head, rest) = self.input.split_at(take);
                    self.reader.feed(head);
                    self.input = rest;
                }
            }
        }
    }
}

/// The first LF in `input`. Command lines are short, so the first 64 octets are searched
/// eight at a time in a word (a zero byte of `word ^ 0x0a0a..` is an LF), before memchr,
/// whose setup costs more than such a line.
#[inline]
fn find_lf(input: &[u8]) -> Option<usize> {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    for chunk in input.chunks_exact(8).take(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ (LOW * u64::from(b'\n'));
        let found = x.wrapping_sub(LOW) & !x & HIGH;
        if found != 0 {
            // The lowest flagged byte is the first LF (borrows only run upwards).
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    memchr::memchr(b'\n', input.get(at..).unwrap_or_default()).map(|i| i + at)
}

impl Drop for Lines<'_, '_> {
    fn drop(&mut self) {
        // Whatever was not read is buffered, as `feed` would have.
        if !self.input.is_empty() {
            self.reader.feed(self.input);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn collect(reader: &mut LineReader, out: &mut Vec<Result<Vec<u8>, LineError>>) {
        while let Some(line) = reader.next_line() {
            out.push(line.map(<[u8]>::to_vec));
        }
    }

    fn run(chunks: &[&[u8]], limit: usize) -> Vec<Result<Vec<u8>, LineError>> {
        let mut reader = LineReader::new(limit);
        let mut out = Vec::new();
        for chunk in chunks {
            reader.feed(chunk);
            collect(&mut reader, &mut out);
        }
        out
    }

    #[test]
    fn lines_without_terminators() {
        let out = run(&[b"EHLO x\r\nQUIT\r\npartial"], 512);
        assert_eq!(out, vec![Ok(b"EHLO x".to_vec()), Ok(b"QUIT".to_vec())]);
    }

    #[test]
    fn overlong_line_is_an_error_and_resyncs() {
        let mut input = vec![b'a'; 1000];
        input.extend_from_slice(b"\r\nNOOP\r\n");
        let out = run(&[&input], 512);
        assert_eq!(out, vec![Err(LineError { length: 1002, limit: 512 }), Ok(b"NOOP".to_vec())]);
    }

    #[test]
    fn overlong_line_is_not_stored() {
        let mut reader = LineReader::new(16);
        for _ in 0..1000 {
            reader.feed(&[b'x'; 1024]);
            assert!(reader.next_line().is_none());
            assert!(reader.pending_len() <= 1024);
        }
        reader.feed(b"\r\nok\r\n");
        assert_eq!(reader.next_line(), Some(Err(LineError { length: 1_024_002, limit: 16 })));
        assert_eq!(reader.next_line(), Some(Ok(&b"ok"[..])));
    }

    #[test]
    fn exact_limit_is_accepted() {
        let out = run(&[b"abc\r\nabcd\r\n"], 5);
        assert_eq!(out, vec![Ok(b"abc".to_vec()), Err(LineError { length: 6, limit: 5 })]);
    }

    #[test]
    fn take_pending_returns_raw_rest() {
        let mut reader = LineReader::new(512);
        reader.feed(b"DATA\r\nbody\r\n.\r\n");
        assert_eq!(reader.next_line(), Some(Ok(&b"DATA"[..])));
        assert_eq!(reader.take_pending(), b"body\r\n.\r\n".to_vec());
        assert!(!reader.has_pending());
    }

    /// The same as `run`, through [`LineReader::lines`].
    fn run_borrowed(chunks: &[&[u8]], limit: usize) -> Vec<Result<Vec<u8>, LineError>> {
        let mut reader = LineReader::new(limit);
        let mut out = Vec::new();
        for chunk in chunks {
            let mut lines = reader.lines(chunk);
            while let Some(line) = lines.next_line() {
                out.push(line.map(<[u8]>::to_vec));
            }
        }
        out
    }

    /// Splits `input` at the sorted cut points.
    fn split_at_cuts<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut chunks = Vec::new();
        let mut last = 0;
        for &c in cuts {
            chunks.push(&input[last..c]);
            last = c;
        }
        chunks.push(&input[last..]);
        chunks
    }

    #[test]
    fn find_lf_same_as_position() {
        for len in 0..140 {
            for lf in 0..=len {
                let mut input = vec![b'a'; len];
                if lf < len {
                    input[lf] = b'\n';
                }
                // Bytes next to LF in value must not be taken for it.
                if lf + 1 < len {
                    input[lf + 1] = 0x0b;
                }
                let expected = input.iter().position(|&b| b == b'\n');
                assert_eq!(find_lf(&input), expected, "{len} {lf}");
            }
        }
        assert_eq!(find_lf(b"\x0b\x09\x8a\x0a"), Some(3));
    }

    #[test]
    fn borrowed_lines_known_answers() {
        let out = run_borrowed(&[b"EHLO x\r\nQUIT\r\nNO", b"OP\nbare\rcr\r\npartial"], 512);
        let expected: Vec<Result<Vec<u8>, LineError>> =
            vec![Ok(b"EHLO x".to_vec()), Ok(b"QUIT".to_vec()), Ok(b"NOOP".to_vec()), Ok(b"bare\rcr".to_vec())];
        assert_eq!(out, expected);
        let out = run_borrowed(&[b"abc\r\nabcd\r\n"], 5);
        assert_eq!(out, vec![Ok(b"abc".to_vec()), Err(LineError { length: 6, limit: 5 })]);
    }

    #[test]
    fn borrowed_lines_come_from_the_input() {
        let input = b"EHLO x\r\nQUIT\r\n";
        let mut reader = LineReader::new(512);
        let mut lines = reader.lines(input);
        let first = lines.next_line().unwrap().unwrap();
        assert_eq!(first.as_ptr(), input.as_ptr());
        drop(lines);
        assert_eq!(reader.pending_len(), b"QUIT\r\n".len());
    }

    #[test]
    fn borrowed_overlong_line_is_not_stored_and_resyncs() {
        let mut reader = LineReader::new(16);
        for _ in 0..1000 {
            assert!(reader.lines(&[b'x'; 1024]).next_line().is_none());
            assert!(reader.pending_len() <= 1024);
        }
        let mut lines = reader.lines(b"\r\nok\r\n");
        assert_eq!(lines.next_line(), Some(Err(LineError { length: 1_024_002, limit: 16 })));
        assert_eq!(lines.next_line(), Some(Ok(&b"ok"[..])));
        assert_eq!(lines.next_line(), None);
    }

    #[test]
    fn borrowed_lines_stopped_early_buffer_the_rest() {
        let mut reader = LineReader::new(512);
        reader.feed(b"MAIL FROM:<a@b>\r\nDA");
        let mut lines = reader.lines(b"TA\r\nbody\r\n.\r\n");
        assert_eq!(lines.next_line(), Some(Ok(&b"MAIL FROM:<a@b>"[..])));
        assert_eq!(lines.next_line(), Some(Ok(&b"DATA"[..])));
        drop(lines);
        assert_eq!(reader.take_pending(), b"body\r\n.\r\n".to_vec());
    }

    proptest::proptest! {
        #[test]
        fn same_lines_at_every_split(
            lines in proptest::collection::vec("[ -~]{0,40}", 0..8),
            limit in 4usize..48,
            cuts in proptest::collection::vec(0usize..400, 0..6),
        ) {
            let input: Vec<u8> = lines.iter().flat_map(|l| {
                let mut v = l.clone().into_bytes();
                v.extend_from_slice(b"\r\n");
                v
            }).collect();
            let whole = run(&[&input], limit);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (input.len() + 1)).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for c in cuts { chunks.push(&input[last..c]); last = c; }
            chunks.push(&input[last..]);
            proptest::prop_assert_eq!(&run(&chunks, limit), &whole);
            let bytewise: Vec<&[u8]> = input.chunks(1).collect();
            proptest::prop_assert_eq!(&run(&bytewise, limit), &whole);
            // Every line within the limit comes back as it was sent.
            let expected: Vec<Result<Vec<u8>, LineError>> = lines.iter().map(|l| {
                if l.len() + 2 <= limit { Ok(l.clone().into_bytes()) }
                else { Err(LineError { length: l.len() + 2, limit }) }
            }).collect();
            proptest::prop_assert_eq!(whole, expected);
        }

        #[test]
        fn borrowed_lines_same_as_feed_at_every_split(
            input in proptest::collection::vec(proptest::sample::select(b"ab \r\n".to_vec()), 0..120),
            limit in 2usize..24,
            cuts in proptest::collection::vec(0usize..200, 0..6),
            stop in 0usize..6,
        ) {
            let whole = run(&[&input], limit);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (input.len() + 1)).collect();
            cuts.sort_unstable();
            let chunks = split_at_cuts(&input, &cuts);
            proptest::prop_assert_eq!(&run_borrowed(&chunks, limit), &whole);
            let bytewise: Vec<&[u8]> = input.chunks(1).collect();
            proptest::prop_assert_eq!(&run_borrowed(&bytewise, limit), &whole);
            // Every split point, in two pieces.
            for at in 0..=input.len() {
                proptest::prop_assert_eq!(&run_borrowed(&[&input[..at], &input[at..]], limit), &whole);
            }
            // Stopping after `stop` lines leaves the reader as feed + next_line would.
            let mut fed = LineReader::new(limit);
            let mut borrowed = LineReader::new(limit);
            let mut a = Vec::new();
            let mut b = Vec::new();
            for chunk in &chunks {
                fed.feed(chunk);
                for _ in 0..stop {
                    match fed.next_line() { Some(l) => a.push(l.map(<[u8]>::to_vec)), None => break }
                }
                let mut lines = borrowed.lines(chunk);
                for _ in 0..stop {
                    match lines.next_line() { Some(l) => b.push(l.map(<[u8]>::to_vec)), None => break }
                }
            }
            proptest::prop_assert_eq!(&a, &b);
            collect(&mut fed, &mut a);
            collect(&mut borrowed, &mut b);
            proptest::prop_assert_eq!(&a, &b);
            proptest::prop_assert_eq!(fed.take_pending(), borrowed.take_pending());
        }
    }
}
