//! Base64 payload rules: decoding never panics, and what decodes re-encodes to the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailwire::wire::{Payload, decode_response, encode_initial, encode_payload};

fuzz_target!(|data: &[u8]| {
    if let Ok(Payload::Data(bytes)) = decode_response(data) {
        assert_eq!(encode_payload(&bytes).as_bytes(), data);
        assert_eq!(decode_response(encode_initial(&bytes).as_bytes()), Ok(Payload::Data(bytes)));
    }
});
