//! Test helpers shared by the protocol tests: transcript files and split-input invariance.
//!
//! Transcript files (`tests/data/*.txt`) hold sessions:
//! ```text
//! === name
//! key: value              directives for the driver
//! S: b'...'               bytes from the server (a Python bytes literal)
//! C: b'...'               bytes the client must send
//! C: *                    one client line, not compared
//! --TLS--                 the TLS handshake: later bytes come through TLS
//! ```
//! Anything after the closing quote of a literal (such as `(added)`) is a comment.
#![allow(dead_code)]

use std::collections::BTreeMap;

/// One step of a transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Bytes from the server.
    Server(Vec<u8>),
    /// Bytes from the client; `None` for one line that is not compared.
    Client(Option<Vec<u8>>),
    /// The TLS handshake.
    Tls,
}

/// A session of a transcript file.
#[derive(Debug, Clone)]
pub struct Session {
    /// The name after `===`.
    pub name: String,
    /// The `key: value` lines.
    pub directives: BTreeMap<String, String>,
    /// The wire steps.
    pub steps: Vec<Step>,
}

impl Session {
    /// A directive's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.directives.get(key).map(String::as_str)
    }

    /// Whether a directive is `yes`.
    pub fn yes(&self, key: &str) -> bool {
        self.get(key) == Some("yes")
    }

    /// The server bytes, one entry per TLS segment (before the handshake, after it).
    pub fn server_segments(&self) -> Vec<Vec<u8>> {
        let mut segments = vec![Vec::new()];
        for step in &self.steps {
            match step {
                Step::Server(bytes) => segments.last_mut().unwrap().extend_from_slice(bytes),
                Step::Tls => segments.push(Vec::new()),
                Step::Client(_) => {}
            }
        }
        segments
    }

    /// The client lines expected, in order; `None` for a line not compared.
    pub fn client_lines(&self) -> Vec<Option<Vec<u8>>> {
        let mut lines = Vec::new();
        for step in &self.steps {
            match step {
                Step::Client(Some(bytes)) => lines.extend(split_lines(bytes).into_iter().map(Some)),
                Step::Client(None) => lines.push(None),
                _ => {}
            }
        }
        lines
    }
}

/// Splits bytes after every LF, keeping the terminators.
pub fn split_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes.split_inclusive(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
}

/// Checks `actual` (client output) against `expected` lines, `None` matching any one line.
pub fn assert_lines(actual: &[u8], expected: &[Option<Vec<u8>>], context: &str) {
    let actual = split_lines(actual);
    let show = |l: &[u8]| String::from_utf8_lossy(l).into_owned();
    assert_eq!(
        actual.len(),
        expected.len(),
        "{context}: line count\nactual: {:#?}\nexpected: {:#?}",
        actual.iter().map(|l| show(l)).collect::<Vec<_>>(),
        expected.iter().map(|l| l.as_deref().map(show)).collect::<Vec<_>>()
    );
    for (i, (got, want)) in actual.iter().zip(expected).enumerate() {
        if let Some(want) = want {
            assert_eq!(show(got), show(want), "{context}: line {i}");
        }
    }
}

/// Decodes a Python bytes literal (`b'...'` or `b"..."`); returns it and the rest of the line.
pub fn parse_py_bytes(text: &str) -> (Vec<u8>, &str) {
    let text = text.trim_start();
    let rest = text.strip_prefix('b').unwrap_or_else(|| panic!("not a bytes literal: {text}"));
    let quote = rest.chars().next().unwrap();
    assert!(quote == '\'' || quote == '"', "not a bytes literal: {text}");
    let mut out = Vec::new();
    let mut chars = rest[1..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == quote => return (out, &rest[1 + i + 1..]),
            '\\' => {
                let (_, e) = chars.next().unwrap();
                match e {
                    'r' => out.push(b'\r'),
                    'n' => out.push(b'\n'),
                    't' => out.push(b'\t'),
                    '0' => out.push(0),
                    '\\' => out.push(b'\\'),
                    '\'' => out.push(b'\''),
                    '"' => out.push(b'"'),
                    'x' => {
                        let hi = chars.next().unwrap().1.to_digit(16).unwrap();
                        let lo = chars.next().unwrap().1.to_digit(16).unwrap();
                        out.push(u8::try_from(hi * 16 + lo).unwrap());
                    }
                    other => panic!("unknown escape \\{other}"),
                }
            }
            c => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    panic!("unterminated bytes literal: {text}")
}

/// Reads the sessions of a transcript file under `tests/data/`.
pub fn load(file: &str) -> Vec<Session> {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut sessions: Vec<Session> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix("=== ") {
            sessions.push(Session { name: name.into(), directives: BTreeMap::new(), steps: Vec::new() });
            continue;
        }
        let session = sessions.last_mut().unwrap_or_else(|| panic!("{path}: text before the first session"));
        if line == "--TLS--" {
            session.steps.push(Step::Tls);
        } else if let Some(literal) = line.strip_prefix("S: ") {
            session.steps.push(Step::Server(parse_py_bytes(literal).0));
        } else if line == "C: *" {
            session.steps.push(Step::Client(None));
        } else if let Some(literal) = line.strip_prefix("C: ") {
            session.steps.push(Step::Client(Some(parse_py_bytes(literal).0)));
        } else if let Some((key, value)) = line.split_once(':') {
            session.directives.insert(key.trim().into(), value.trim().into());
        } else {
            panic!("{path}: cannot read {line:?}");
        }
    }
    sessions
}

/// Every way the tests cut `input`: whole, in two at every point, and byte by byte.
pub fn chunkings(input: &[u8]) -> Vec<Vec<&[u8]>> {
    let mut all = vec![vec![input]];
    for cut in 1..input.len() {
        all.push(vec![&input[..cut], &input[cut..]]);
    }
    all.push(input.chunks(1).collect());
    all
}

/// Runs `run` on the whole input and on every other chunking of it, and checks that every
/// result equals the first.
pub fn assert_split_invariant<R: PartialEq + std::fmt::Debug>(
    input: &[u8],
    context: &str,
    mut run: impl FnMut(&[&[u8]]) -> R,
) -> R {
    let whole = run(&[input]);
    for chunks in chunkings(input).into_iter().skip(1) {
        let result = run(&chunks);
        assert_eq!(
            result,
            whole,
            "{context}: chunks of sizes {:?}",
            chunks.iter().map(|c| c.len()).collect::<Vec<_>>()
        );
    }
    whole
}
