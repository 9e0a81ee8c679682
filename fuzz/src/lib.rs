//! Helpers shared by the fuzz targets: raw input formats that seeds can be written in by
//! `make-seeds.py` and that libFuzzer's dictionaries work on directly.

/// Splits `data` at the points given by `header` (two bytes each, little endian, taken modulo
/// `data.len() + 1`, sorted).
pub fn split_at_points<'a>(data: &'a [u8], header: &[u8]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> =
        header.chunks_exact(2).map(|p| usize::from(u16::from_le_bytes([p[0], p[1]])) % (data.len() + 1)).collect();
    points.sort_unstable();
    let mut out = Vec::with_capacity(points.len() + 1);
    let mut last = 0;
    for p in points {
        out.push(&data[last..p]);
        last = p;
    }
    out.push(&data[last..]);
    out
}

/// How a stream input is delivered in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// In one piece.
    Whole,
    /// In pieces of `n` bytes (`n` chosen by the fuzzer).
    Stride(usize),
    /// One byte at a time.
    Bytes,
}

impl Split {
    /// The pieces of `data`.
    pub fn chunks<'a>(self, data: &'a [u8]) -> Vec<&'a [u8]> {
        if data.is_empty() {
            return vec![data];
        }
        match self {
            Split::Whole => vec![data],
            Split::Stride(n) => data.chunks(n.max(1)).collect(),
            Split::Bytes => data.chunks(1).collect(),
        }
    }
}

/// One step of a client script.
#[derive(Debug, Clone, Copy)]
pub struct Op<'a> {
    /// What to do (the target decides what the low 4 bits mean).
    pub kind: u8,
    /// A small argument (the high 4 bits of the op byte).
    pub arg: u8,
    /// Bytes that go with it.
    pub payload: &'a [u8],
}

/// A client script: two `config` bytes, then ops `[op][len lo][len hi][payload]` to the end.
/// A truncated last op takes what is left.
pub fn script(data: &[u8]) -> ([u8; 2], Vec<Op<'_>>) {
    let (config, mut rest) = match data {
        [a, b, rest @ ..] => ([*a, *b], rest),
        _ => return ([0, 0], Vec::new()),
    };
    let mut ops = Vec::new();
    while let Some((&op, after)) = rest.split_first() {
        let len = match after {
            [lo, hi, ..] => usize::from(u16::from_le_bytes([*lo, *hi])),
            _ => 0,
        };
        let after = after.get(2..).unwrap_or(&[]);
        let len = len.min(after.len());
        ops.push(Op { kind: op & 0x0F, arg: op >> 4, payload: &after[..len] });
        rest = &after[len..];
    }
    (config, ops)
}

/// An application's answer to a server machine's credential question, right or wrong: `arg`
/// picks the kind, `payload` gives the secret where one is needed.
pub fn answer(arg: u8, payload: &[u8], keys: &mailwire::sasl::ScramKeys) -> mailwire::sasl::CredentialAnswer {
    use mailwire::sasl::{CredentialAnswer, Secret};
    match arg % 8 {
        0 => CredentialAnswer::Verified,
        1 => CredentialAnswer::Rejected,
        2 => CredentialAnswer::UnknownUser,
        3 => CredentialAnswer::TemporaryFailure,
        4 => CredentialAnswer::Password(Secret::from("pencil")),
        5 => CredentialAnswer::Password(Secret::new(payload.to_vec())),
        6 => CredentialAnswer::DigestHa1(Secret::new(payload.to_vec())),
        _ => CredentialAnswer::ScramKeys(keys.clone()),
    }
}
