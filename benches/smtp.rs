//! SMTP command and reply parsing: mailwire against smtp-proto 0.2.5 (and lettre's reply
//! parser) on the same inputs in the same run. Ratios are in BENCHMARKS.md.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mailwire::smtp::{Capabilities, CapabilitiesRef, Command, ParsedLine, Reply, ReplyParser};
use mailwire::wire::{LineReader, SMTP_COMMAND_LIMIT, SMTP_REPLY_LIMIT};
use std::hint::black_box;
use std::time::Duration;

/// One of each command of the mix, CRLF-terminated.
const COMMANDS: [(&str, &[u8]); 8] = [
    ("ehlo", b"EHLO client.example.com\r\n"),
    ("auth_plain", b"AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n"),
    ("mail_size_body", b"MAIL FROM:<alice@example.org> SIZE=123456 BODY=8BITMIME\r\n"),
    ("rcpt", b"RCPT TO:<bob@example.net>\r\n"),
    ("rcpt2", b"RCPT TO:<carol.long-name@mail.example.net>\r\n"),
    ("starttls", b"STARTTLS\r\n"),
    ("data", b"DATA\r\n"),
    ("quit", b"QUIT\r\n"),
];

/// 1,000 pipelined commands: the mix above, over and over.
fn pipelined() -> Vec<u8> {
    COMMANDS.iter().cycle().take(1000).flat_map(|(_, c)| c.iter().copied()).collect()
}

/// A realistic 12-line EHLO reply.
const EHLO: &[u8] = b"250-mx.example.com Hello client.example.com [192.0.2.1]\r\n\
250-SIZE 52428800\r\n\
250-8BITMIME\r\n\
250-PIPELINING\r\n\
250-AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256\r\n\
250-AUTH=PLAIN LOGIN\r\n\
250-ENHANCEDSTATUSCODES\r\n\
250-DSN\r\n\
250-CHUNKING\r\n\
250-SMTPUTF8\r\n\
250-STARTTLS\r\n\
250 HELP\r\n";

const REPLY_235: &[u8] = b"235 2.7.0 Authentication successful\r\n";
const REPLY_334: &[u8] = b"334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n";

fn config<'a>(c: &'a mut Criterion, name: &str) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2)).sample_size(50);
    group
}

// --- mailwire ---------------------------------------------------------------------------------

/// Commands as a server reads them: through the bounded line reader (complete lines borrowed
/// from the input, only a partial tail buffered, every line checked against the limit), each
/// line parsed.
fn mailwire_commands(reader: &mut LineReader, input: &[u8]) -> usize {
    let mut n = 0;
    let mut lines = reader.lines(input);
    while let Some(line) = lines.next_line() {
        if let Ok(line) = line {
            if Command::parse(line).is_ok() {
                n += 1;
            }
        }
    }
    n
}

/// The same through `feed` and `next_line`: every byte copied into the reader's buffer.
fn mailwire_commands_copied(reader: &mut LineReader, input: &[u8]) -> usize {
    reader.clear();
    reader.feed(input);
    let mut n = 0;
    while let Some(line) = reader.next_line() {
        if let Ok(line) = line {
            if Command::parse(line).is_ok() {
                n += 1;
            }
        }
    }
    n
}

/// Commands parsed straight from a complete buffer, as smtp-proto's `Request::parse` does:
/// lines split with memchr, no line reader.
fn mailwire_commands_slices(input: &[u8]) -> usize {
    let mut n = 0;
    let mut rest = input;
    while let Some(end) = memchr::memchr(b'\n', rest) {
        let (line, tail) = rest.split_at(end + 1);
        rest = tail;
        if Command::parse(line).is_ok() {
            n += 1;
        }
    }
    n
}

/// A reply as the client reads it: line reader, reply parser, an owned `Reply`.
fn mailwire_reply(reader: &mut LineReader, input: &[u8]) -> Option<Reply> {
    reader.clear();
    reader.feed(input);
    ReplyParser::new().next_reply(reader)?.ok()
}

/// An EHLO reply as the client reads it: the owned reply, then its capabilities.
fn mailwire_ehlo(reader: &mut LineReader, input: &[u8]) -> Option<Capabilities> {
    let reply = mailwire_reply(reader, input)?;
    Some(Capabilities::parse(reply.text_lines()))
}

/// An EHLO reply read in place: flags, SIZE and the known mechanisms gathered without
/// allocating (as smtp-proto's `EhloResponse` holds flags, SIZE and a mechanism bit set).
fn mailwire_ehlo_borrowed(input: &[u8]) -> Option<CapabilitiesRef<'_>> {
    Some(CapabilitiesRef::parse(input)?.ok()?.0)
}

/// An EHLO reply's lines cut borrowing from the input, gathered into the owned `Capabilities`.
fn mailwire_ehlo_lines_owned(input: &[u8]) -> Capabilities {
    let mut start = 0;
    let lines = memchr::memchr_iter(b'\n', input).map(|end| {
        let line = input.get(start..end).unwrap_or_default();
        start = end + 1;
        line.strip_suffix(b"\r").unwrap_or(line)
    });
    Capabilities::parse(lines.filter_map(|l| ParsedLine::parse(l).ok()).map(|p| p.text))
}

// --- smtp-proto -------------------------------------------------------------------------------

fn smtp_proto_commands(input: &[u8]) -> usize {
    let mut iter = input.iter();
    let mut n = 0;
    while iter.len() > 0 {
        if smtp_proto::Request::parse(&mut iter).is_ok() {
            n += 1;
        }
    }
    n
}

fn smtp_proto_reply(input: &[u8]) -> Option<smtp_proto::Response<String>> {
    smtp_proto::response::parser::ResponseReceiver::default().parse(&mut input.iter()).ok()
}

fn smtp_proto_ehlo(input: &[u8]) -> Option<smtp_proto::EhloResponse<String>> {
    smtp_proto::EhloResponse::parse(&mut input.iter()).ok()
}

// --- lettre -----------------------------------------------------------------------------------

fn lettre_reply(input: &str) -> Option<lettre::transport::smtp::response::Response> {
    input.parse().ok()
}

fn lettre_ehlo(input: &str) -> Option<lettre::transport::smtp::extension::ServerInfo> {
    let response = lettre_reply(input)?;
    lettre::transport::smtp::extension::ServerInfo::from_response(&response).ok()
}

fn sanity() {
    let input = pipelined();
    let mut reader = LineReader::new(SMTP_COMMAND_LIMIT);
    assert_eq!(mailwire_commands(&mut reader, &input), 1000);
    assert!(!reader.has_pending());
    assert_eq!(mailwire_commands_copied(&mut reader, &input), 1000);
    assert_eq!(smtp_proto_commands(&input), 1000);
    assert_eq!(mailwire_commands_slices(&input), 1000);
    let mut reader = LineReader::new(SMTP_REPLY_LIMIT);
    let caps = mailwire_ehlo(&mut reader, EHLO).expect("mailwire EHLO");
    assert!(caps.starttls && caps.pipelining && caps.auth.len() == 4 && caps.size == Some(52_428_800));
    assert_eq!(mailwire_ehlo_lines_owned(EHLO), caps);
    let view = mailwire_ehlo_borrowed(EHLO).expect("mailwire EHLO view");
    assert!(view.starttls() && view.pipelining() && view.size() == Some(52_428_800));
    assert_eq!(view.to_capabilities(), caps);
    assert!(smtp_proto_ehlo(EHLO).is_some());
    assert!(lettre_ehlo(std::str::from_utf8(EHLO).unwrap()).is_some());
    for reply in [REPLY_235, REPLY_334] {
        assert!(mailwire_reply(&mut reader, reply).is_some());
        assert!(smtp_proto_reply(reply).is_some());
        assert!(lettre_reply(std::str::from_utf8(reply).unwrap()).is_some());
    }
}

fn commands(c: &mut Criterion) {
    sanity();
    let input = pipelined();
    let mut group = config(c, "smtp_commands");
    group.throughput(Throughput::Elements(1000));
    let mut reader = LineReader::new(SMTP_COMMAND_LIMIT);
    group.bench_function("pipelined_1000/mailwire", |b| {
        b.iter(|| black_box(mailwire_commands(&mut reader, black_box(&input))))
    });
    group.bench_function("pipelined_1000/mailwire_copied", |b| {
        b.iter(|| black_box(mailwire_commands_copied(&mut reader, black_box(&input))))
    });
    group.bench_function("pipelined_1000/mailwire_slices", |b| {
        b.iter(|| black_box(mailwire_commands_slices(black_box(&input))))
    });
    group.bench_function("pipelined_1000/smtp-proto", |b| b.iter(|| black_box(smtp_proto_commands(black_box(&input)))));
    group.throughput(Throughput::Elements(1));
    for (name, line) in COMMANDS {
        let bare = line.strip_suffix(b"\r\n").unwrap_or(line);
        group.bench_with_input(BenchmarkId::new("mailwire", name), &bare, |b, bare| {
            b.iter(|| black_box(Command::parse(black_box(bare)).is_ok()))
        });
        group.bench_with_input(BenchmarkId::new("smtp-proto", name), &line, |b, line| {
            b.iter(|| black_box(smtp_proto::Request::parse(&mut black_box(line).iter()).is_ok()))
        });
    }
    group.finish();
}

fn replies(c: &mut Criterion) {
    let mut group = config(c, "smtp_replies");
    let mut reader = LineReader::new(SMTP_REPLY_LIMIT);
    let ehlo_str = std::str::from_utf8(EHLO).unwrap();
    group.bench_function("ehlo_12_lines/mailwire", |b| {
        b.iter(|| black_box(mailwire_ehlo(&mut reader, black_box(EHLO))))
    });
    group.bench_function("ehlo_12_lines/mailwire_borrowed", |b| {
        b.iter(|| black_box(mailwire_ehlo_borrowed(black_box(EHLO))))
    });
    group.bench_function("ehlo_12_lines/mailwire_lines_owned", |b| {
        b.iter(|| black_box(mailwire_ehlo_lines_owned(black_box(EHLO))))
    });
    group.bench_function("ehlo_12_lines/smtp-proto", |b| b.iter(|| black_box(smtp_proto_ehlo(black_box(EHLO)))));
    group.bench_function("ehlo_12_lines/lettre", |b| b.iter(|| black_box(lettre_ehlo(black_box(ehlo_str)))));
    for (name, reply) in [("235", REPLY_235), ("334", REPLY_334)] {
        let text = std::str::from_utf8(reply).unwrap();
        group.bench_with_input(BenchmarkId::new("mailwire", name), &reply, |b, reply| {
            b.iter(|| black_box(mailwire_reply(&mut reader, black_box(reply))))
        });
        group.bench_with_input(BenchmarkId::new("mailwire_borrowed", name), &reply, |b, reply| {
            b.iter(|| black_box(ParsedLine::parse(black_box(reply).strip_suffix(b"\r\n").unwrap_or(reply)).ok()))
        });
        group.bench_with_input(BenchmarkId::new("smtp-proto", name), &reply, |b, reply| {
            b.iter(|| black_box(smtp_proto_reply(black_box(reply))))
        });
        group.bench_with_input(BenchmarkId::new("lettre", name), &text, |b, text| {
            b.iter(|| black_box(lettre_reply(black_box(text))))
        });
    }
    group.finish();
}

criterion_group!(benches, commands, replies);
criterion_main!(benches);
