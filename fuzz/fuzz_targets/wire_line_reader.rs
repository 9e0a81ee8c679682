//! The line reader gives the same lines however the input is split, and never stores an
//! overlong line.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mailwire::wire::{LineError, LineReader};

#[derive(Debug, Arbitrary)]
struct Input {
    limit: u8,
    cuts: Vec<u16>,
    data: Vec<u8>,
}

fn run(chunks: &[&[u8]], limit: usize) -> Vec<Result<Vec<u8>, LineError>> {
    let mut reader = LineReader::new(limit);
    let mut out = Vec::new();
    for chunk in chunks {
        reader.feed(chunk);
        while let Some(line) = reader.next_line() {
            let line = line.map(<[u8]>::to_vec);
            if let Ok(line) = &line {
                assert!(line.len() + 1 <= limit, "a line over the limit came out");
            }
            out.push(line);
        }
        assert!(reader.pending_len() <= limit + chunk.len());
    }
    out
}

fuzz_target!(|input: Input| {
    let limit = usize::from(input.limit).max(2);
    let whole = run(&[&input.data], limit);
    let mut cuts: Vec<usize> = input.cuts.iter().map(|&c| usize::from(c) % (input.data.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut last = 0;
    for cut in cuts {
        chunks.push(&input.data[last..cut]);
        last = cut;
    }
    chunks.push(&input.data[last..]);
    assert_eq!(run(&chunks, limit), whole);
});
