//! SMTP EHLO capabilities: parsing arbitrary lines never panics; generated lines parse back
//! equal; the borrowing `CapabilitiesRef` never panics on arbitrary bytes and reads a generated
//! EHLO reply to the same capabilities as the client's path (reply parser, then
//! `Capabilities::parse` of its text lines, which takes a leading `x.y.z` as an enhanced code).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailwire::smtp::{Capabilities, CapabilitiesRef, ReplyParser};
use mailwire::wire::{LineReader, SMTP_REPLY_LIMIT};

fuzz_target!(|data: &[u8]| {
    let caps = Capabilities::parse(data.split(|&b| b == b'\n'));
    if let Ok(lines) = caps.ehlo_lines() {
        let again = Capabilities::parse(lines.iter().map(String::as_bytes));
        assert_eq!(again, caps);
        let mut reply = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            reply.extend_from_slice(if i + 1 == lines.len() { b"250 " } else { b"250-" });
            reply.extend_from_slice(line.as_bytes());
            reply.extend_from_slice(b"\r\n");
        }
        let mut reader = LineReader::new(SMTP_REPLY_LIMIT);
        reader.feed(&reply);
        let client = ReplyParser::new().next_reply(&mut reader).and_then(Result::ok);
        if let (Some(Ok((borrowed, used))), Some(client)) = (CapabilitiesRef::parse(&reply), client) {
            assert_eq!(used, reply.len());
            let client = Capabilities::parse(client.text_lines());
            assert_eq!(borrowed.to_capabilities(), client, "CapabilitiesRef differs from the client's path");
        }
    }
    let _ = CapabilitiesRef::parse(data);
});
