//! xtext (RFC 3461 §4, used by AUTH=): decoding never panics; encode then decode is identity.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailwire::smtp::xtext;

fuzz_target!(|data: &[u8]| {
    if let Ok(decoded) = xtext::decode(data) {
        assert!(xtext::validate(data).is_ok());
        let _ = decoded;
    }
    let encoded = xtext::encode(data);
    assert!(xtext::validate(encoded.as_bytes()).is_ok());
    assert_eq!(xtext::decode(encoded.as_bytes()).expect("encoded xtext decodes"), data);
});
