//! `pop3::Server` fed arbitrary client bytes in arbitrary chunks, interleaved with arbitrary
//! application answers (right, wrong, twice, at the wrong time): no panic, and split
//! invariance: the same script with every receive delivered whole, in fuzzer-chosen pieces,
//! and byte by byte gives the same events, the same bytes sent and the same results.
//!
//! Input (see `mailwire_fuzz::script`): config byte 0: bit 0 APOP, bit 1 USER/PASS, bit 2
//! plaintext allowed, bit 3 STLS, bit 4 XTND XMIT, bit 5 small limits; byte 1: mechanisms
//! offered (bit i: `Mechanism::KNOWN[i]`, and all of them when 0). Ops: 1 TLS done (arg bit 0
//! channel binding, bit 1 client certificate identity), 2 answer the credential question,
//! 3 maildrop opened (one message a payload byte, its size the byte's value), 4 maildrop
//! locked, 5 message chunk, 6 message end, 7 message failed, 8 commit done (arg bit 0: ok),
//! 9 XMIT accepted, 10 XMIT rejected (payload as text), 11 maildrop failed, 12 login delay,
//! anything else: receive the payload (arg + 1: piece size).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailwire::pop3::server::{Error, Event, MessageInfo};
use mailwire::pop3::{Server, ServerConfig};
use mailwire::sasl::{ChannelBinding, ChannelBindingType, FixedRandom, Mechanism, ScramHash, ScramKeys};
use mailwire::tls::TlsInfo;
use mailwire_fuzz::{Split, answer, drain, receive, script};

type Log = mailwire_fuzz::Log<Event, Error, ()>;

fn run(data: &[u8], split: Split, keys: &ScramKeys) -> Vec<Log> {
    let ([flags, offered], ops) = script(data);
    let mut config = ServerConfig::new("pop.example");
    config.apop = flags & 1 != 0;
    config.user_pass = flags & 2 != 0;
    config.allow_plaintext = flags & 4 != 0;
    config.stls = flags & 8 != 0;
    config.xtnd_xmit = flags & 16 != 0;
    if flags & 32 != 0 {
        config.max_xmit_size = 40;
        config.max_auth_rounds = 2;
        config.max_buffered = 300;
        config.max_output = 200;
    }
    config.scram_iterations = 1;
    config.mechanisms = if offered == 0 {
        Mechanism::KNOWN.to_vec()
    } else {
        Mechanism::KNOWN
            .iter()
            .enumerate()
            .filter(|(i, _)| offered & (1 << (i % 8)) != 0)
            .map(|(_, m)| m.clone())
            .collect()
    };
    let mut server = Server::new(config, FixedRandom::new(5));
    let mut log = Vec::new();
    drain(&mut server, &mut log);
    for op in ops.iter().take(64) {
        let result = match op.kind {
            1 => server.tls_established(TlsInfo {
                channel_binding: (op.arg & 1 != 0)
                    .then(|| ChannelBinding { kind: ChannelBindingType::TlsExporter, data: vec![9; 32] }),
                peer_identity: (op.arg & 2 != 0).then(|| String::from_utf8_lossy(op.payload).into_owned()),
                client_certificate: false,
            }),
            2 => server.answer_credentials(answer(op.arg, op.payload, keys)),
            3 => server.maildrop_opened(
                op.payload
                    .iter()
                    .enumerate()
                    .map(|(i, &size)| MessageInfo::new(u64::from(size), format!("uid{i}")))
                    .collect(),
            ),
            4 => server.maildrop_locked(),
            5 => server.message_chunk(op.payload),
            6 => server.message_end(),
            7 => server.message_failed(),
            8 => server.commit_done(op.arg & 1 != 0),
            9 => server.xmit_accepted(),
            10 => server.xmit_rejected(&String::from_utf8_lossy(op.payload)),
            11 => server.maildrop_failed(),
            12 => server.maildrop_login_delay(),
            _ => receive(&mut server, op.payload, split, op.arg, false),
        };
        log.push(Log::Result(result));
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
