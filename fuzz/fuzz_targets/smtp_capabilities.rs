//! SMTP EHLO capabilities: parsing arbitrary lines never panics; generated lines parse back
//! equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailwire::smtp::Capabilities;

fuzz_target!(|data: &[u8]| {
    let caps = Capabilities::parse(data.split(|&b| b == b'\n'));
    if let Ok(lines) = caps.ehlo_lines() {
        let again = Capabilities::parse(lines.iter().map(String::as_bytes));
        assert_eq!(again, caps);
    }
});
