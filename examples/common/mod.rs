//! Code shared by the blocking examples: sockets, TLS and a transcript. No SMTP or POP3 logic
//! lives here: the machines decide what bytes mean; this only moves them.
//!
//! The driving loop ([`Conn::next_event`]) is the one the crate documents:
//! write out everything the machine wants to send, hand the application the next event, and
//! only when there is none read from the socket and feed the machine. On the machine's
//! "start TLS now" event the application calls [`Conn::start_tls_client`] or
//! [`Conn::start_tls_server`]: the handshake runs on the same socket, and no plaintext byte is
//! read in between (everything read before was already given to the machine, which rejects
//! bytes injected after the `220`/`+OK`).
#![allow(dead_code)]

pub mod cli;
pub mod tls;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use mailwire::tls::TlsInfo;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, StreamOwned};

/// How long a socket read or write may block before the session is given up.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The part of a mailwire machine the driver needs. The four machines share this shape;
/// [`impl_machine!`] implements it for one of them.
pub trait Machine {
    /// What the machine reports to the application.
    type Event;
    /// What `receive` fails with.
    type Error: fmt::Display;
    /// Feeds bytes from the peer.
    fn receive(&mut self, bytes: &[u8]) -> Result<(), Self::Error>;
    /// The next event, if any.
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// The next bytes to send, if any.
    fn poll_transmit(&mut self) -> Option<Vec<u8>>;
    /// Whether the session is over.
    fn is_closed(&self) -> bool;
}

/// Implements [`Machine`] for a mailwire machine type by forwarding to its methods.
#[macro_export]
macro_rules! impl_machine {
    ($ty:ty, $event:ty, $error:ty) => {
        impl $crate::common::Machine for $ty {
            type Event = $event;
            type Error = $error;
            fn receive(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
                <$ty>::receive(self, bytes)
            }
            fn poll_event(&mut self) -> Option<Self::Event> {
                <$ty>::poll_event(self)
            }
            fn poll_transmit(&mut self) -> Option<Vec<u8>> {
                <$ty>::poll_transmit(self).map(|b| b.to_vec())
            }
            fn is_closed(&self) -> bool {
                <$ty>::is_closed(self)
            }
        }
    };
}

/// What went wrong while driving a machine.
#[derive(Debug)]
pub enum DriveError<E> {
    /// The socket failed, timed out or TLS failed.
    Io(io::Error),
    /// The machine rejected what the peer sent.
    Machine(E),
}

impl<E: fmt::Display> fmt::Display for DriveError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriveError::Io(e) => write!(f, "connection: {e}"),
            DriveError::Machine(e) => write!(f, "protocol: {e}"),
        }
    }
}

impl<E> From<io::Error> for DriveError<E> {
    fn from(e: io::Error) -> Self {
        DriveError::Io(e)
    }
}

/// A TCP connection, in plaintext or after a TLS handshake.
enum Stream {
    Plain(TcpStream),
    Client(Box<StreamOwned<ClientConnection, TcpStream>>),
    Server(Box<StreamOwned<ServerConnection, TcpStream>>),
    /// Only while a handshake is being set up; never observed outside.
    Gone,
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Client(s) => s.read(buf),
            Stream::Server(s) => s.read(buf),
            Stream::Gone => Err(io::Error::new(io::ErrorKind::NotConnected, "connection gone")),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Client(s) => s.write(buf),
            Stream::Server(s) => s.write(buf),
            Stream::Gone => Err(io::Error::new(io::ErrorKind::NotConnected, "connection gone")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Client(s) => s.flush(),
            Stream::Server(s) => s.flush(),
            Stream::Gone => Ok(()),
        }
    }
}

/// Which side of the conversation this process is: decides which transcript lines are the
/// client's (and so may carry secrets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// We are the client: what we write is `C:`.
    Client,
    /// We are the server: what we read is `C:`.
    Server,
}

/// Where a transcript goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// Nowhere.
    Off,
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Prints the bytes of a session line by line, secrets redacted: SASL responses (every client
/// line answering a `334 ` or `+ ` continuation), initial responses on `AUTH` lines, `PASS`
/// arguments and `APOP` digests. Long bodies are cut after [`Transcript::MAX_LINES`] lines a chunk.
#[derive(Debug, Clone)]
pub struct Transcript {
    sink: Sink,
    side: Side,
    prefix: String,
    in_sasl: bool,
    partial: [Vec<u8>; 2],
}

impl Transcript {
    /// Lines shown from one chunk of bytes before the rest is summarised.
    pub const MAX_LINES: usize = 24;

    /// A transcript for `side`, each line starting with `prefix`.
    pub fn new(sink: Sink, side: Side, prefix: impl Into<String>) -> Self {
        Transcript { sink, side, prefix: prefix.into(), in_sasl: false, partial: [Vec::new(), Vec::new()] }
    }

    /// A transcript that prints nothing.
    pub fn off() -> Self {
        Transcript::new(Sink::Off, Side::Client, "")
    }

    /// Prints a note (`--` line), e.g. that TLS is up.
    pub fn note(&self, text: &str) {
        self.emit(&format!("{}-- {text}", self.prefix));
    }

    fn emit(&self, line: &str) {
        match self.sink {
            Sink::Off => {}
            Sink::Stdout => println!("{line}"),
            Sink::Stderr => eprintln!("{line}"),
        }
    }

    /// Records bytes we sent.
    pub fn outgoing(&mut self, bytes: &[u8]) {
        let from_client = self.side == Side::Client;
        self.record(bytes, from_client);
    }

    /// Records bytes we received.
    pub fn incoming(&mut self, bytes: &[u8]) {
        let from_client = self.side == Side::Server;
        self.record(bytes, from_client);
    }

    fn record(&mut self, bytes: &[u8], from_client: bool) {
        if self.sink == Sink::Off {
            return;
        }
        let slot = usize::from(from_client);
        let mut buf = std::mem::take(&mut self.partial[slot]);
        buf.extend_from_slice(bytes);
        let mut shown = 0;
        let mut hidden = 0;
        let mut rest: &[u8] = &buf;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(end + 1);
            rest = tail;
            let text = String::from_utf8_lossy(line).trim_end_matches(['\r', '\n']).to_string();
            let text = if from_client { self.redact_client(&text) } else { self.track_server(text) };
            if shown < Self::MAX_LINES {
                let tag = if from_client { "C:" } else { "S:" };
                self.emit(&format!("{}{tag} {text}", self.prefix));
                shown += 1;
            } else {
                hidden += 1;
            }
        }
        if hidden > 0 {
            self.emit(&format!("{}   ... {hidden} more lines", self.prefix));
        }
        self.partial[slot] = rest.to_vec();
    }

    /// For tests: what a client line looks like in the transcript.
    pub fn redact_line_for_test(&mut self, line: &str) -> String {
        self.redact_client(line)
    }

    /// For tests: a server line as the transcript sees it.
    pub fn server_line_for_test(&mut self, line: &str) {
        self.track_server(line.to_string());
    }

    fn track_server(&mut self, line: String) -> String {
        self.in_sasl = line.starts_with("334 ") || line == "334" || line.starts_with("+ ") || line == "+";
        line
    }

    fn redact_client(&mut self, line: &str) -> String {
        if self.in_sasl {
            self.in_sasl = false;
            return if line == "*" { line.to_string() } else { "[SASL response redacted]".to_string() };
        }
        let mut words = line.splitn(3, ' ');
        let verb = words.next().unwrap_or("").to_ascii_uppercase();
        let arg1 = words.next();
        let arg2 = words.next();
        match (verb.as_str(), arg1, arg2) {
            ("AUTH", Some(mech), Some(_)) => format!("{} {mech} [initial response redacted]", &line[..4]),
            ("PASS", Some(_), _) => format!("{} [redacted]", &line[..4]),
            ("APOP", Some(user), Some(_)) => format!("{} {user} [digest redacted]", &line[..4]),
            _ => line.to_string(),
        }
    }
}

/// A connection driven by the examples: bytes in and out, the TLS switch, a transcript.
pub struct Conn {
    stream: Stream,
    /// What was said, secrets redacted.
    pub transcript: Transcript,
    buf: Vec<u8>,
    eof: bool,
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
}

impl Conn {
    /// Wraps a connected socket (timeouts set to [`IO_TIMEOUT`]).
    pub fn new(tcp: TcpStream, transcript: Transcript) -> io::Result<Self> {
        tcp.set_read_timeout(Some(IO_TIMEOUT))?;
        tcp.set_write_timeout(Some(IO_TIMEOUT))?;
        tcp.set_nodelay(true)?;
        let peer = tcp.peer_addr().ok();
        let local = tcp.local_addr().ok();
        Ok(Conn { stream: Stream::Plain(tcp), transcript, buf: vec![0; 16 * 1024], eof: false, peer, local })
    }

    /// Connects to `addr` (`host:port`), trying each address it resolves to.
    pub fn connect(addr: &str, transcript: Transcript) -> io::Result<Self> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{addr}: no address"));
        for a in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&a, IO_TIMEOUT) {
                Ok(tcp) => return Conn::new(tcp, transcript),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The peer's address.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// Our own address on this connection.
    pub fn local(&self) -> Option<SocketAddr> {
        self.local
    }

    /// Whether TLS is up.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Client(_) | Stream::Server(_))
    }

    /// Whether the peer closed the connection.
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// Sends bytes.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.transcript.outgoing(bytes);
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Reads what the peer sent next; `None` at the end of the stream.
    pub fn recv(&mut self) -> io::Result<Option<&[u8]>> {
        if self.eof {
            return Ok(None);
        }
        let n = match self.stream.read(&mut self.buf) {
            Ok(n) => n,
            // A peer that closes without TLS close_notify: for these protocols the
            // conversation itself says where it ends, so this is just the end.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            self.eof = true;
            return Ok(None);
        }
        let data = &self.buf[..n];
        self.transcript.incoming(data);
        Ok(Some(data))
    }

    /// Writes out everything `machine` wants to send.
    pub fn flush_machine<M: Machine>(&mut self, machine: &mut M) -> io::Result<()> {
        while let Some(out) = machine.poll_transmit() {
            self.send(&out)?;
        }
        Ok(())
    }

    /// Runs the machine until it has an event for the application: sends its output, and reads
    /// from the socket only when it has nothing to report. `None` when the session is over
    /// (the machine closed, or the peer closed the connection).
    pub fn next_event<M: Machine>(&mut self, machine: &mut M) -> Result<Option<M::Event>, DriveError<M::Error>> {
        loop {
            self.flush_machine(machine)?;
            if let Some(event) = machine.poll_event() {
                return Ok(Some(event));
            }
            if machine.is_closed() {
                return Ok(None);
            }
            let Some(data) = self.recv()? else {
                return Ok(None);
            };
            let data = data.to_vec();
            machine.receive(&data).map_err(DriveError::Machine)?;
        }
    }

    /// Client side of STARTTLS/STLS or implicit TLS: the handshake on this socket, checking
    /// the server's certificate for `server_name`. Returns what the machine needs to know.
    pub fn start_tls_client(
        &mut self,
        config: Arc<ClientConfig>,
        server_name: ServerName<'static>,
    ) -> io::Result<TlsInfo> {
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(io::Error::other("TLS is already active"));
        };
        let client_certificate = config.client_auth_cert_resolver.has_certs();
        let conn = ClientConnection::new(config, server_name).map_err(io::Error::other)?;
        let mut tls = StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        let info =
            TlsInfo { channel_binding: tls::channel_binding(&tls.conn), peer_identity: None, client_certificate };
        self.transcript.note(&format!("TLS established ({})", tls::describe(&tls.conn)));
        self.stream = Stream::Client(Box::new(tls));
        Ok(info)
    }

    /// Server side of STARTTLS/STLS or implicit TLS. A client certificate that the
    /// configuration's verifier accepted becomes `peer_identity` (see
    /// [`tls::certificate_identity`]).
    pub fn start_tls_server(&mut self, config: Arc<ServerConfig>) -> io::Result<TlsInfo> {
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(io::Error::other("TLS is already active"));
        };
        let conn = ServerConnection::new(config).map_err(io::Error::other)?;
        let mut tls = StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        let peer_identity =
            tls.conn.peer_certificates().and_then(|chain| chain.first()).and_then(tls::certificate_identity);
        let info =
            TlsInfo { channel_binding: tls::channel_binding(&tls.conn), peer_identity, client_certificate: false };
        self.transcript.note(&format!(
            "TLS established ({}{})",
            tls::describe(&tls.conn),
            info.peer_identity.as_deref().map(|id| format!(", client certificate for {id}")).unwrap_or_default()
        ));
        self.stream = Stream::Server(Box::new(tls));
        Ok(info)
    }

    /// Ends the session: TLS close_notify if TLS is up, then the socket is shut down.
    pub fn close(mut self) {
        match &mut self.stream {
            Stream::Client(s) => {
                s.conn.send_close_notify();
                let _ = s.conn.complete_io(&mut s.sock);
                let _ = s.sock.shutdown(std::net::Shutdown::Both);
            }
            Stream::Server(s) => {
                s.conn.send_close_notify();
                let _ = s.conn.complete_io(&mut s.sock);
                let _ = s.sock.shutdown(std::net::Shutdown::Both);
            }
            Stream::Plain(s) => {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
            Stream::Gone => {}
        }
    }
}

/// A tiny command-line reader: `--name value`, `--flag`, `-v`. Unknown options are usage errors.
pub struct Args {
    args: std::vec::IntoIter<String>,
}

impl Args {
    /// The process's arguments, without the program name.
    pub fn from_env() -> Self {
        Args { args: std::env::args().skip(1).collect::<Vec<_>>().into_iter() }
    }

    /// The next option name, if any.
    pub fn next_option(&mut self) -> Option<String> {
        self.args.next()
    }

    /// The value of option `name`, or a usage error.
    pub fn value(&mut self, name: &str) -> Result<String, String> {
        self.args.next().ok_or_else(|| format!("{name} needs a value"))
    }

    /// A value parsed as `T`, or a usage error.
    pub fn parsed<T: std::str::FromStr>(&mut self, name: &str) -> Result<T, String> {
        let v = self.value(name)?;
        v.parse().map_err(|_| format!("{name}: cannot use {v:?}"))
    }
}

/// Splits `host:port` (or `[v6]:port`) into the host, for TLS server names.
pub fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
    host.trim_start_matches('[').trim_end_matches(']')
}
