//! POP3 responses: status lines, continuations and multi-line listings never panic; status
//! lines round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailwire::pop3::{MultiLineReader, Response, ScanListing, UidListing};

fuzz_target!(|data: &[u8]| {
    if let Ok(response) = Response::parse(data) {
        if let Ok(bytes) = response.to_bytes() {
            let line = bytes.strip_suffix(b"\r\n").expect("serializer ends lines with CRLF");
            assert_eq!(Response::parse(line), Ok(response));
        }
    }
    let mut reader = MultiLineReader::new(64);
    for line in data.split(|&b| b == b'\n') {
        if reader.line(line).is_err() {
            break;
        }
    }
    let _ = ScanListing::parse(data);
    let _ = UidListing::parse(data);
});
