//! Inputs found by the fuzz targets in `fuzz/`, kept as regression tests.

use mailwire::smtp::Capabilities;

/// `smtp_capabilities`: a control character between spaces in the EHLO greeting left a
/// leading space after filtering, so generated lines did not parse back equal.
#[test]
fn fuzz_smtp_capabilities_control_char_in_greeting() {
    let caps = Capabilities::parse([&[255u8, 32, 17, 32, 255, 188][..]]);
    let lines = caps.ehlo_lines().unwrap();
    assert_eq!(Capabilities::parse(lines.iter().map(String::as_bytes)), caps);
    assert!(!caps.greeting.starts_with(' '));
}

/// `smtp_client`: with `max_buffered` below the reply line limit, a partial line that was
/// still arriving counted as buffered data, so one chunk gave `BadCode` and two chunks gave
/// `BufferFull`: the outcome depended on how the bytes were split.
#[test]
fn fuzz_smtp_client_partial_line_is_not_buffered_data() {
    use mailwire::sasl::FixedRandom;
    use mailwire::smtp::{Client, ClientConfig, client::Error};
    let mut line = vec![0xb1u8; 450];
    line.extend_from_slice(b"\r\n");
    let run = |chunks: &[&[u8]]| {
        let mut config = ClientConfig::new("client.example", "mx.example");
        config.max_buffered = 300;
        let mut client = Client::new(config, Box::new(FixedRandom::new(1)));
        let mut result = Ok(());
        for chunk in chunks {
            result = client.receive(chunk);
            if result.is_err() {
                break;
            }
        }
        result
    };
    let whole = run(&[&line]);
    assert!(matches!(whole, Err(Error::Reply(_))), "{whole:?}");
    for cut in 0..=line.len() {
        assert_eq!(run(&[&line[..cut], &line[cut..]]), whole, "cut at {cut}");
    }
}

/// `smtp_reply`: a reply line with invalid UTF-8 grew past 512 octets when its replacement
/// characters were written back, so `Reply::to_bytes` made a line no reader has to accept.
/// The writer now refuses lines over 512 octets with their CRLF (RFC 5321 §4.5.3.1.5).
#[test]
fn fuzz_smtp_reply_writer_keeps_lines_within_512() {
    use mailwire::smtp::{Reply, ReplyWriteError};
    let mut raw = b"250 ".to_vec();
    raw.extend(std::iter::repeat_n(0xffu8, 240));
    let mut reader = mailwire::wire::LineReader::new(mailwire::wire::SMTP_REPLY_LIMIT);
    let mut parser = mailwire::smtp::ReplyParser::new();
    raw.extend_from_slice(b"\r\n");
    reader.feed(&raw);
    let reply = parser.next_reply(&mut reader).unwrap().unwrap();
    assert_eq!(reply.to_bytes(), Err(ReplyWriteError::Invalid));
    // At the limit exactly it is written: "250 " + 506 + CRLF = 512.
    let fits = Reply::new(250, "a".repeat(506));
    assert_eq!(fits.to_bytes().unwrap().len(), 512);
    assert_eq!(Reply::new(250, "a".repeat(507)).to_bytes(), Err(ReplyWriteError::Invalid));
}

/// `smtp_client` / `pop3_client`: bytes injected after the `220` to STARTTLS (`+OK` to
/// STLS) close the machine; when the reply came in an earlier read, a `StartTls` event was
/// still queued on the closed machine, telling the application to run a handshake. Now the
/// events are the same however the bytes were split: no `StartTls`.
#[test]
fn fuzz_starttls_injection_leaves_no_starttls_event() {
    use mailwire::sasl::FixedRandom;
    use mailwire::smtp::client::{Error, Event};
    use mailwire::smtp::{Client, ClientConfig};
    let server: &[u8] = b"220 mx ready\r\n250-mx\r\n250 STARTTLS\r\n220 go ahead\r\n250 injected\r\n";
    let split_at = server.len() - b"250 injected\r\n".len();
    for cut in [server.len(), split_at] {
        let mut client = Client::new(ClientConfig::new("client.example", "mx.example"), Box::new(FixedRandom::new(1)));
        let mut result = Ok(());
        for chunk in [&server[..cut], &server[cut..]] {
            result = client.receive(chunk);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(Error::StartTlsInjection), "cut at {cut}");
        let events: Vec<Event> = std::iter::from_fn(|| client.poll_event()).collect();
        assert!(!events.contains(&Event::StartTls), "cut at {cut}: {events:?}");
    }
}

/// The POP3 side of the case above (`+OK` to STLS, then injected bytes).
#[test]
fn fuzz_stls_injection_leaves_no_starttls_event() {
    use mailwire::pop3::client::{Error, Event};
    use mailwire::pop3::{Client, ClientConfig};
    let server: &[u8] = b"+OK ready\r\n+OK\r\nSTLS\r\n.\r\n+OK Begin TLS\r\n+OK injected\r\n";
    let split_at = server.len() - b"+OK injected\r\n".len();
    for cut in [server.len(), split_at] {
        let mut client = Client::new(ClientConfig::new("pop.example"));
        let mut result = Ok(());
        for chunk in [&server[..cut], &server[cut..]] {
            result = client.receive(chunk);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(Error::StartTlsInjection), "cut at {cut}");
        let events: Vec<Event> = std::iter::from_fn(|| client.poll_event()).collect();
        assert!(!events.contains(&Event::StartTls), "cut at {cut}: {events:?}");
    }
}

/// `smtp_capabilities`: a greeting holding invalid UTF-8 grew when read (each bad byte became
/// a 3-octet U+FFFD), and `ehlo_lines` wrote it back as a first line longer than any reply
/// line may be, which read back cut short. Lines over `MAX_EHLO_TEXT` are now refused.
#[test]
fn fuzz_smtp_capabilities_lines_fit_a_reply_line() {
    use mailwire::smtp::{CapabilityError, MAX_EHLO_TEXT};
    let mut first = b"mx.example ".to_vec();
    first.extend(std::iter::repeat_n(0xffu8, 200));
    let caps = Capabilities::parse([&first[..]]);
    assert!(caps.greeting.len() > MAX_EHLO_TEXT);
    assert_eq!(caps.ehlo_lines(), Err(CapabilityError::LineTooLong));
    // At the limit the line is written and reads back equal.
    let mut caps = Capabilities::parse([&b"mx.example"[..]]);
    caps.greeting = "g".repeat(MAX_EHLO_TEXT - "mx.example ".len());
    let lines = caps.ehlo_lines().unwrap();
    assert_eq!(lines[0].len(), MAX_EHLO_TEXT);
    assert_eq!(Capabilities::parse(lines.iter().map(String::as_bytes)), caps);
    caps.greeting.push('g');
    assert_eq!(caps.ehlo_lines(), Err(CapabilityError::LineTooLong));
}

/// Found by pop3_client: bytes after the answer to QUIT in the same read were an
/// "unsolicited data" error, while the same bytes in a later read were never read (the
/// session is over either way); they are now dropped in both cases.
#[test]
fn fuzz_pop3_bytes_after_the_quit_answer_are_dropped() {
    use mailwire::pop3::client::{Client, ClientConfig, Event, QuitOutcome};
    use mailwire::tls::TlsPolicy;
    for split in [false, true] {
        let mut config = ClientConfig::new("pop.example");
        config.tls = TlsPolicy::Disabled;
        let mut client = Client::new(config);
        client.receive(b"+OK ready\r\n").unwrap();
        client.receive(b"-ERR no CAPA\r\n").unwrap();
        while client.poll_event().is_some() {}
        client.quit().unwrap();
        while client.poll_transmit().is_some() {}
        let input: &[u8] = b"+OK bye\r\n+OK injected\r\ngarbage";
        if split {
            client.receive(&input[..9]).unwrap();
            assert!(client.is_closed());
        } else {
            assert_eq!(client.receive(input), Ok(()));
        }
        let events: Vec<_> = std::iter::from_fn(|| client.poll_event()).collect();
        assert_eq!(events, vec![Event::Quit(QuitOutcome::NoUpdate("bye".into()))], "split {split}");
        assert!(client.is_closed());
    }
}
