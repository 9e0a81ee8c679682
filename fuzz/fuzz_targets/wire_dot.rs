//! Dot codec: decoding is split-invariant and never ends at a bare-LF/CR terminator; encoding
//! then decoding gives back the CRLF-normalized body. Input: two bytes for the cut point, then
//! the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailwire::wire::{DotDecoder, DotEncoder};

fn decode(chunks: &[&[u8]]) -> (Vec<u8>, Option<usize>) {
    let mut decoder = DotDecoder::new();
    let mut out = Vec::new();
    let mut offset = 0;
    for chunk in chunks {
        let step = decoder.decode(chunk, &mut out);
        if step.done {
            return (out, Some(offset + step.consumed));
        }
        assert_eq!(step.consumed, chunk.len());
        offset += chunk.len();
    }
    (out, None)
}

fuzz_target!(|input: &[u8]| {
    let (header, data) = input.split_at(input.len().min(2));
    let whole = decode(&[data]);
    assert_eq!(decode(&mailwire_fuzz::split_at_points(data, header)), whole);
    let bytewise: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(decode(&bytewise), whole);
    if let Some(end) = whole.1 {
        // Only CRLF "." CRLF (or "." CRLF at the very start) ends a body.
        let head = &data[..end];
        assert!(head == b".\r\n" || head.ends_with(b"\r\n.\r\n"));
    }
    // Encode arbitrary bytes, decode, compare with the normalized input.
    let wire = DotEncoder::encode_all(data);
    let (body, end) = decode(&[&wire]);
    assert_eq!(end, Some(wire.len()));
    let mut normalized = Vec::new();
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'\r' if data.get(i + 1) == Some(&b'\n') => {
                normalized.extend_from_slice(b"\r\n");
                i += 1;
            }
            b'\r' | b'\n' => normalized.extend_from_slice(b"\r\n"),
            b => normalized.push(b),
        }
        i += 1;
    }
    if !normalized.is_empty() && !normalized.ends_with(b"\r\n") {
        normalized.extend_from_slice(b"\r\n");
    }
    assert_eq!(body, normalized);
});
