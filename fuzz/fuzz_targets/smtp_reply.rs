//! SMTP replies: the reply parser gives the same replies however the lines arrive (whole,
//! split at a fuzzer-chosen point, byte by byte through the line reader), stays bounded, and
//! complete replies serialize and parse back equal. Input: two bytes for the cut point, then
//! the server's bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailwire::smtp::{Reply, ReplyError, ReplyParser};
use mailwire::wire::{LineReader, SMTP_REPLY_LIMIT};

#[derive(Debug, PartialEq)]
enum Out {
    Reply(Reply),
    Error(ReplyError),
    TooLong,
}

fn run(chunks: &[&[u8]]) -> Vec<Out> {
    let mut reader = LineReader::new(SMTP_REPLY_LIMIT);
    let mut parser = ReplyParser::new();
    let mut out = Vec::new();
    for chunk in chunks {
        reader.feed(chunk);
        while let Some(line) = reader.next_line() {
            match line {
                Ok(line) => match parser.push_line(line) {
                    Ok(Some(reply)) => out.push(Out::Reply(reply)),
                    Ok(None) => {}
                    Err(err) => {
                        out.push(Out::Error(err));
                        parser.reset();
                    }
                },
                Err(_) => out.push(Out::TooLong),
            }
        }
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let (header, data) = input.split_at(input.len().min(2));
    let whole = run(&[data]);
    assert_eq!(run(&mailwire_fuzz::split_at_points(data, header)), whole);
    let bytewise: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(run(&bytewise), whole);
    for out in &whole {
        if let Out::Reply(reply) = out {
            if let Ok(bytes) = reply.to_bytes() {
                assert_eq!(run(&[&bytes]), vec![Out::Reply(reply.clone())]);
            }
        }
    }
});
