//! `smtp::Server` fed arbitrary client bytes in arbitrary chunks, interleaved with arbitrary
//! application answers (right, wrong, twice, at the wrong time): no panic, and split
//! invariance: the same script with every receive delivered whole, in fuzzer-chosen pieces,
//! and byte by byte gives the same events, the same bytes sent and the same results.
//!
//! Input (see `mailwire_fuzz::script`): config byte 0: bit 0 TLS available, bit 1 TLS required
//! for AUTH, bit 2 TLS required for MAIL, bit 3 small limits, bit 4 PIPELINING, bit 5 CHUNKING,
//! bit 6 enhanced codes; byte 1: mechanisms offered before TLS (bit i: `Mechanism::KNOWN[i]`).
//! Ops: 1 TLS done (arg bit 0 channel binding, bit 1 client certificate identity), 2 answer the
//! credential question (arg picks the answer), 3 accept, 4 reject (arg picks the code),
//! 5 accept with the payload as reply text, 6 close, anything else: receive the payload
//! (arg + 1: piece size).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailwire::sasl::{ChannelBinding, ChannelBindingType, FixedRandom, Mechanism, ScramHash, ScramKeys};
use mailwire::smtp::server::{Error, Event};
use mailwire::smtp::{Reply, Server, ServerConfig};
use mailwire::tls::TlsInfo;
use mailwire_fuzz::{Split, answer, drain, receive, script};

type Log = mailwire_fuzz::Log<Event, Error, ()>;

fn run(data: &[u8], split: Split, keys: &ScramKeys) -> Vec<Log> {
    let ([flags, before], ops) = script(data);
    let mut config = ServerConfig::new("mx.example");
    config.tls_available = flags & 1 != 0;
    config.require_tls_for_auth = flags & 2 != 0;
    config.require_tls_for_mail = flags & 4 != 0;
    if flags & 8 != 0 {
        config.max_message_size = Some(64);
        config.max_recipients = 2;
        config.max_data_chunk = 7;
        config.max_buffered = 300;
        config.max_auth_rounds = 2;
        config.max_errors = 3;
    }
    config.pipelining = flags & 16 != 0;
    config.chunking = flags & 32 != 0;
    config.enhanced_status_codes = flags & 64 != 0;
    config.scram_iterations = 1;
    config.mechanisms_after_tls = Mechanism::KNOWN.to_vec();
    config.mechanisms_before_tls = Mechanism::KNOWN
        .iter()
        .enumerate()
        .filter(|(i, _)| before & (1 << (i % 8)) != 0)
        .map(|(_, m)| m.clone())
        .collect();
    let mut server = Server::new(config, Box::new(FixedRandom::new(3)));
    let mut log = Vec::new();
    drain(&mut server, &mut log);
    for op in ops.iter().take(64) {
        match op.kind {
            1 => {
                let info = TlsInfo {
                    channel_binding: (op.arg & 1 != 0)
                        .then(|| ChannelBinding { kind: ChannelBindingType::TlsExporter, data: vec![9; 32] }),
                    peer_identity: (op.arg & 2 != 0).then(|| String::from_utf8_lossy(op.payload).into_owned()),
                    client_certificate: false,
                };
                log.push(Log::Result(server.tls_established(info)));
            }
            2 => log.push(Log::Result(server.answer_credentials(answer(op.arg, op.payload, keys)))),
            3 => log.push(Log::Result(server.accept())),
            4 => {
                let code = [250, 421, 450, 451, 452, 550, 552, 554, 999, 0][usize::from(op.arg) % 10];
                log.push(Log::Result(server.reject(Reply::new(code, String::from_utf8_lossy(op.payload)))));
            }
            5 => log.push(Log::Result(server.accept_with(Reply::new(250, String::from_utf8_lossy(op.payload))))),
            6 => log.push(Log::Result(server.close(&String::from_utf8_lossy(op.payload)))),
            _ => log.push(Log::Result(receive(&mut server, op.payload, split, op.arg, false))),
        }
        drain(&mut server, &mut log);
    }
    log
}

fuzz_target!(|data: &[u8]| {
    let keys = ScramKeys::derive(ScramHash::Sha256, "pencil", b"salt", 1).unwrap();
    let whole = run(data, Split::Whole, &keys);
    if std::env::var_os("MAILWIRE_FUZZ_DEBUG").is_some() {
        eprintln!("{whole:#?}");
    }
    assert_eq!(run(data, Split::Stride(1), &keys), whole, "split at fuzzer-chosen points");
    assert_eq!(run(data, Split::Bytes, &keys), whole, "byte by byte");
});
