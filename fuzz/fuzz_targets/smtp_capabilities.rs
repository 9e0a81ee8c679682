//! SMTP EHLO capabilities: parsing arbitrary lines never panics; generated lines parse back
//! equal; the borrowing `CapabilitiesRef` never panics on arbitrary bytes and reads a generated
//! EHLO reply to the same capabilities.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailwire::smtp::{Capabilities, CapabilitiesRef};

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
        if let Some(Ok((borrowed, used))) = CapabilitiesRef::parse(&reply) {
            assert_eq!(used, reply.len());
            assert_eq!(borrowed.to_capabilities(), caps, "CapabilitiesRef differs from Capabilities");
        }
    }
    let _ = CapabilitiesRef::parse(data);
});
