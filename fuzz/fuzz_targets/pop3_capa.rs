//! POP3 CAPA: parsing arbitrary lines never panics; generated lines parse back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailwire::pop3::Capabilities;

fuzz_target!(|data: &[u8]| {
    if let Ok(caps) = Capabilities::parse(data.split(|&b| b == b'\n')) {
        if let Ok(lines) = caps.lines() {
            let again = Capabilities::parse(lines.iter().map(String::as_bytes)).expect("generated CAPA parses");
            assert_eq!(again, caps);
        }
    }
});
