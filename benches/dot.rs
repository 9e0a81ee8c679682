//! POP3 RETR body (1 MiB, 5 % dot lines) through mailwire's dot codec, against a memchr
//! line-visiting baseline on the same input in the same run.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mailwire::wire::{DotDecoder, DotEncoder};
use std::hint::black_box;
use std::time::Duration;

/// A 1 MiB body of 72-octet lines, every 20th starting with a dot.
fn body() -> Vec<u8> {
    let mut out = Vec::with_capacity(1 << 20);
    let mut n = 0usize;
    while out.len() < (1 << 20) {
        if n % 20 == 0 {
            out.push(b'.');
        }
        out.extend(std::iter::repeat_n(b'a' + (n % 26) as u8, 70 - usize::from(n % 20 == 0)));
        out.extend_from_slice(b"\r\n");
        n += 1;
    }
    out
}

/// Baseline decoder: visit lines with memchr, drop one leading dot, stop at ".".
fn baseline_decode(input: &[u8], out: &mut Vec<u8>) -> usize {
    let mut pos = 0;
    while let Some(nl) = memchr::memchr(b'\n', &input[pos..]) {
        let line = &input[pos..pos + nl + 1];
        pos += nl + 1;
        if line == b".\r\n" {
            return pos;
        }
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    pos
}

/// Baseline encoder: visit lines with memchr, double a leading dot.
fn baseline_encode(input: &[u8], out: &mut Vec<u8>) {
    for line in input.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out.extend_from_slice(b".\r\n");
}

fn dot(c: &mut Criterion) {
    let body = body();
    let wire = DotEncoder::encode_all(&body);
    let mut group = c.benchmark_group("pop3_retr_1mib");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2)).sample_size(30);
    group.throughput(Throughput::Bytes(wire.len() as u64));
    let mut out = Vec::with_capacity(wire.len());
    group.bench_function("decode/mailwire", |b| {
        b.iter(|| {
            out.clear();
            let mut decoder = DotDecoder::new();
            black_box(decoder.decode(black_box(&wire), &mut out));
        })
    });
    group.bench_function("decode/memchr_baseline", |b| {
        b.iter(|| {
            out.clear();
            black_box(baseline_decode(black_box(&wire), &mut out));
        })
    });
    group.bench_function("encode/mailwire", |b| {
        b.iter(|| {
            out.clear();
            let mut encoder = DotEncoder::new();
            encoder.encode(black_box(&body), &mut out);
            encoder.finish(&mut out);
        })
    });
    group.bench_function("encode/memchr_baseline", |b| {
        b.iter(|| {
            out.clear();
            baseline_encode(black_box(&body), &mut out);
        })
    });
    group.finish();
}

criterion_group!(benches, dot);
criterion_main!(benches);
