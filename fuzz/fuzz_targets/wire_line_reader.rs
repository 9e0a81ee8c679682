//! The line reader gives the same lines however the input is split, and never stores an
//! overlong line; the borrowing cursor (`LineReader::lines`) gives the same lines as
//! `feed` + `next_line`, with the same bytes left pending. Input: the limit byte, a count `n` (0-7) of cut points, `n` two-byte cut
//! points, then the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailwire::wire::{LineError, LineReader};

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

/// The same through the borrowing cursor, and what is left pending at the end.
fn run_borrowed(chunks: &[&[u8]], limit: usize) -> (Vec<Result<Vec<u8>, LineError>>, usize) {
    let mut reader = LineReader::new(limit);
    let mut out = Vec::new();
    for chunk in chunks {
        let mut lines = reader.lines(chunk);
        while let Some(line) = lines.next_line() {
            out.push(line.map(<[u8]>::to_vec));
        }
    }
    (out, reader.pending_len())
}

fuzz_target!(|input: &[u8]| {
    let Some((&limit, rest)) = input.split_first() else { return };
    let Some((&count, rest)) = rest.split_first() else { return };
    let (header, data) = rest.split_at(rest.len().min(usize::from(count & 7) * 2));
    let limit = usize::from(limit).max(2);
    let whole = run(&[data], limit);
    assert_eq!(run(&mailwire_fuzz::split_at_points(data, header), limit), whole);
    let bytewise: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(run(&bytewise, limit), whole);
    let mut fed = LineReader::new(limit);
    fed.feed(data);
    while fed.next_line().is_some() {}
    let borrowed = run_borrowed(&mailwire_fuzz::split_at_points(data, header), limit);
    assert_eq!(borrowed, (whole, fed.pending_len()), "lines() differs from feed + next_line");
});
