//! SMTP commands (MAIL/RCPT parameters and AUTH= xtext included): parsing never panics, and
//! what parses serializes and parses back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailwire::smtp::Command;

fuzz_target!(|data: &[u8]| {
    if let Ok(command) = Command::parse(data) {
        if let Ok(bytes) = command.to_bytes() {
            let line = bytes.strip_suffix(b"\r\n").expect("serializer ends lines with CRLF");
            assert!(!line.contains(&b'\n') && !line.contains(&b'\r'), "one line only");
            assert_eq!(Command::parse(line), Ok(command));
        }
    }
});
