//! The parsers borrow from their input: parsing a command or a reply line allocates nothing.
//! A counting global allocator (per thread, so parallel tests do not disturb each other)
//! proves it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    /// Heap bytes allocated and not yet freed by this thread.
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn live(delta: isize) {
    LIVE.with(|n| n.set(n.get() + delta));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
// thread-local `Cell` with a const initializer and no destructor, so it never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        live(layout.size() as isize);
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        live(layout.size() as isize);
        // SAFETY: forwarded as is.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        live(new_size as isize - layout.size() as isize);
        // SAFETY: forwarded as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        live(-(layout.size() as isize));
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns its result with the number of allocations it made on this thread.
fn allocations<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = ALLOCATIONS.with(Cell::get);
    let result = f();
    (result, ALLOCATIONS.with(Cell::get) - before)
}

#[test]
fn the_counter_counts() {
    let (v, n) = allocations(|| vec![1u8; 10]);
    assert_eq!((v.len(), n), (10, 1));
}

#[test]
fn smtp_commands_parse_without_allocating() {
    use mailwire::smtp::{Command, Parameter};
    let lines: [&[u8]; 12] = [
        b"EHLO client.example.com\r\n",
        b"HELO client.example.com",
        b"MAIL FROM:<alice@example.org> SIZE=123456 BODY=8BITMIME AUTH=<> RET=HDRS ENVID=QQ314159",
        b"RCPT TO:<bob@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.net",
        b"RCPT TO:<Postmaster>",
        b"AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=",
        b"AUTH SCRAM-SHA-256",
        b"STARTTLS",
        b"DATA",
        b"BDAT 1000 LAST",
        b"QUIT",
        b"NOOP hello",
    ];
    for line in lines {
        let (ok, n) = allocations(|| {
            let command = Command::parse(line);
            // Walking the parameters borrows too.
            if let Ok(Command::Mail { params, .. } | Command::Rcpt { params, .. }) = &command {
                assert!(params.iter().all(|p| !matches!(p, Parameter::Other { .. })));
            }
            command.is_ok()
        });
        assert!(ok, "{}", String::from_utf8_lossy(line));
        assert_eq!(n, 0, "{} allocated {n} times", String::from_utf8_lossy(line));
    }
}

#[test]
fn smtp_reply_lines_and_extensions_parse_without_allocating() {
    use mailwire::smtp::{Extension, ParsedLine};
    let lines: [&[u8]; 6] = [
        b"235 2.7.0 Authentication successful",
        b"334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+",
        b"334",
        b"250-mx.example.com Hello client.example.com [192.0.2.1]",
        b"250-AUTH PLAIN LOGIN SCRAM-SHA-256",
        b"550 5.7.1 Relaying denied",
    ];
    for line in lines {
        let (parsed, n) = allocations(|| ParsedLine::parse(line).map(|p| (p.code, p.text.len())));
        assert!(parsed.is_ok());
        assert_eq!(n, 0, "{}", String::from_utf8_lossy(line));
    }
    for text in [&b"SIZE 52428800"[..], b"AUTH PLAIN LOGIN", b"AUTH=LOGIN", b"STARTTLS", b"X-CUSTOM a b"] {
        let (count, n) = allocations(|| Extension::parse(text).map(|e| e.mechanisms().count()));
        assert!(count.is_some());
        assert_eq!(n, 0, "{}", String::from_utf8_lossy(text));
    }
}

#[test]
fn pop3_commands_and_responses_parse_without_allocating() {
    use mailwire::pop3::{Command, Response};
    for line in [&b"USER mrose"[..], b"APOP mrose c4c9334bac560ecc979e58001b3e22fb", b"RETR 1", b"TOP 1 10", b"CAPA"] {
        let (ok, n) = allocations(|| Command::parse(line).is_ok());
        assert!(ok);
        assert_eq!(n, 0, "{}", String::from_utf8_lossy(line));
    }
    for line in [&b"+OK 2 320"[..], b"-ERR [AUTH] Authentication failed", b"+ ", b"+OK"] {
        let (ok, n) = allocations(|| Response::parse(line).is_ok());
        assert!(ok);
        assert_eq!(n, 0, "{}", String::from_utf8_lossy(line));
    }
}

#[test]
fn line_reader_hands_out_lines_without_allocating() {
    use mailwire::wire::{LineReader, SMTP_COMMAND_LIMIT};
    let mut reader = LineReader::new(SMTP_COMMAND_LIMIT);
    let input = b"EHLO a.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n";
    reader.feed(input);
    let (count, n) = allocations(|| {
        let mut count = 0;
        while let Some(Ok(_)) = reader.next_line() {
            count += 1;
        }
        count
    });
    assert_eq!((count, n), (4, 0));
}

#[test]
fn line_reader_borrowed_lines_do_not_allocate_or_buffer() {
    use mailwire::wire::{LineReader, SMTP_COMMAND_LIMIT};
    let mut reader = LineReader::new(SMTP_COMMAND_LIMIT);
    let input = b"EHLO a.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n";
    // The reader's buffer was never used: complete lines come straight from the input.
    let (count, n) = allocations(|| {
        let mut count = 0;
        let mut lines = reader.lines(input);
        while let Some(Ok(_)) = lines.next_line() {
            count += 1;
        }
        count
    });
    assert_eq!((count, n), (4, 0));
    assert_eq!(reader.pending_len(), 0);
}

#[test]
fn ehlo_reply_read_in_place_without_allocating() {
    use mailwire::sasl::Mechanism;
    use mailwire::smtp::CapabilitiesRef;
    let reply: &[u8] = b"250-mx.example.com Hello client.example.com [192.0.2.1]\r\n250-SIZE 52428800\r\n\
250-8BITMIME\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256 X-CUSTOM\r\n250-AUTH=PLAIN LOGIN\r\n\
250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250-CHUNKING\r\n250-SMTPUTF8\r\n250-X-FOO bar\r\n250-STARTTLS\r\n250 HELP\r\n";
    let (summary, n) = allocations(|| {
        let (caps, used) = CapabilitiesRef::parse(reply)?.ok()?;
        let mechanisms = caps.mechanism_names().count();
        let others = caps.others().count();
        let offers = caps.offers(&Mechanism::ScramSha256) && !caps.offers(&Mechanism::XOAuth2);
        Some((used, caps.starttls() && caps.dsn(), caps.size(), mechanisms, others, offers, caps.other("x-foo")))
    });
    assert_eq!(summary, Some((reply.len(), true, Some(52_428_800), 7, 2, true, Some("bar"))));
    assert_eq!(n, 0);
}

/// Heap bytes that `make` leaves allocated on this thread, with the value it made.
fn retained<R>(make: impl FnOnce() -> R) -> (R, isize) {
    let before = LIVE.with(Cell::get);
    let value = make();
    (value, LIVE.with(Cell::get) - before)
}

/// An idle server session (greeting sent, waiting for the client) costs at most 2 KiB: the
/// machine itself plus everything it keeps on the heap (its configuration, buffers). Run with
/// `--nocapture` to see the figures (BENCHMARKS.md).
#[test]
fn idle_server_sessions_fit_in_2_kib() {
    use mailwire::sasl::FixedRandom;
    let (mut smtp, heap) = retained(|| {
        let mut server = mailwire::smtp::Server::new(
            mailwire::smtp::ServerConfig::new("mx.example.org"),
            Box::new(FixedRandom::new(1)),
        );
        while server.poll_transmit().is_some() {}
        server
    });
    let smtp_total = std::mem::size_of::<mailwire::smtp::Server>() as isize + heap;
    println!(
        "idle smtp::Server: {} inline + {heap} heap = {smtp_total} bytes",
        std::mem::size_of::<mailwire::smtp::Server>()
    );
    let (mut pop3, heap) = retained(|| {
        let mut server =
            mailwire::pop3::Server::new(mailwire::pop3::ServerConfig::new("pop.example.org"), FixedRandom::new(1));
        while server.poll_transmit().is_some() {}
        server
    });
    let pop3_total = std::mem::size_of::<mailwire::pop3::Server>() as isize + heap;
    println!(
        "idle pop3::Server: {} inline + {heap} heap = {pop3_total} bytes",
        std::mem::size_of::<mailwire::pop3::Server>()
    );
    assert!(smtp_total <= 2048, "idle smtp::Server takes {smtp_total} bytes");
    assert!(pop3_total <= 2048, "idle pop3::Server takes {pop3_total} bytes");
    // Still usable: they were not measured half-built.
    smtp.receive(b"NOOP\r\n").unwrap();
    pop3.receive(b"NOOP\r\n").unwrap();
    assert!(smtp.poll_transmit().is_some() && pop3.poll_transmit().is_some());
}
