//! The parsers borrow from their input: parsing a command or a reply line allocates nothing.
//! A counting global allocator (per thread, so parallel tests do not disturb each other)
//! proves it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
// thread-local `Cell` with a const initializer and no destructor, so it never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded as is.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
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
