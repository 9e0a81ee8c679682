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

/// What a machine did during a script: compared between the whole, split and byte-by-byte runs.
/// `C` is what an application call that chooses something returned (a mechanism, a method).
#[derive(Debug, PartialEq)]
pub enum Log<Ev, Er, C = ()> {
    /// An event the machine reported.
    Event(Ev),
    /// The bytes it had to send after one step.
    Sent(Vec<u8>),
    /// The result of a call.
    Result(Result<(), Er>),
    /// The result of a call that chooses.
    Chosen(Result<C, Er>),
}

/// The part of mailwire's four machines the harnesses drive.
pub trait Machine {
    /// Its events.
    type Event;
    /// Its errors.
    type Error;
    /// Feeds peer bytes.
    fn receive(&mut self, data: &[u8]) -> Result<(), Self::Error>;
    /// The next event.
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// The next bytes to send.
    fn poll_transmit(&mut self) -> Option<Vec<u8>>;
    /// Whether the session is over.
    fn is_closed(&self) -> bool;
}

macro_rules! machine {
    ($ty:ty, $event:ty, $error:ty) => {
        impl Machine for $ty {
            type Event = $event;
            type Error = $error;
            fn receive(&mut self, data: &[u8]) -> Result<(), Self::Error> {
                <$ty>::receive(self, data)
            }
            fn poll_event(&mut self) -> Option<Self::Event> {
                <$ty>::poll_event(self)
            }
            fn poll_transmit(&mut self) -> Option<Vec<u8>> {
                <$ty>::poll_transmit(self)
            }
            fn is_closed(&self) -> bool {
                <$ty>::is_closed(self)
            }
        }
    };
}

machine!(mailwire::smtp::Client, mailwire::smtp::client::Event, mailwire::smtp::client::Error);
machine!(mailwire::smtp::Server, mailwire::smtp::server::Event, mailwire::smtp::server::Error);
machine!(mailwire::pop3::Client, mailwire::pop3::client::Event, mailwire::pop3::client::Error);
machine!(mailwire::pop3::Server, mailwire::pop3::server::Event, mailwire::pop3::server::Error);

/// Logs every event the machine has, then everything it has to send (as one entry).
pub fn drain<M: Machine, C>(machine: &mut M, log: &mut Vec<Log<M::Event, M::Error, C>>) {
    while let Some(event) = machine.poll_event() {
        log.push(Log::Event(event));
    }
    let mut sent = Vec::new();
    while let Some(bytes) = machine.poll_transmit() {
        sent.extend_from_slice(&bytes);
    }
    if !sent.is_empty() {
        log.push(Log::Sent(sent));
    }
}

/// One receive step of a script: `payload` delivered as `split` says (a stride of `arg + 1`
/// bytes for [`Split::Stride`]), stopping at the first error, and, when `stop_when_closed`
/// (an application that hangs up), once the machine is closed.
pub fn receive<M: Machine>(
    machine: &mut M,
    payload: &[u8],
    split: Split,
    arg: u8,
    stop_when_closed: bool,
) -> Result<(), M::Error> {
    let split = match split {
        Split::Stride(_) => Split::Stride(usize::from(arg) + 1),
        other => other,
    };
    for chunk in split.chunks(payload) {
        machine.receive(chunk)?;
        if stop_when_closed && machine.is_closed() {
            break;
        }
    }
    Ok(())
}
