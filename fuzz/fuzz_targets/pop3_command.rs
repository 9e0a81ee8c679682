//! POP3 commands: parsing never panics; what parses serializes and parses back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailwire::pop3::Command;

fuzz_target!(|data: &[u8]| {
    if let Ok(command) = Command::parse(data) {
        if let Ok(bytes) = command.to_bytes() {
            let line = bytes.strip_suffix(b"\r\n").expect("serializer ends lines with CRLF");
            assert_eq!(Command::parse(line), Ok(command));
        }
    }
});
