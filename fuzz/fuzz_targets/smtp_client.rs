//! `smtp::Client` fed arbitrary server bytes in arbitrary chunks, interleaved with arbitrary
//! application calls: no panic, and split invariance: the same script with every receive
//! delivered whole, in fuzzer-chosen pieces, and byte by byte gives the same events, the same
//! bytes to send and the same results.
//!
//! Input (see `mailwire_fuzz::script`): config byte 0: bits 0-1 TLS policy, bit 2 allow
//! plaintext, bit 3 send initial responses, bit 4 allow ANONYMOUS, bit 5 small limits; byte 1:
//! 0 = choose the mechanism, else `Mechanism::KNOWN[(n - 1) % 12]`. Ops: 1 TLS done (arg bit 0
//! channel binding, bit 1 client certificate), 2 AUTH, 3 cancel AUTH, 4 MAIL (arg bits 0-1:
//! recipients - 1, bit 2 SIZE, bit 3 BODY=8BITMIME; payload: the sender), 5 body chunk,
//! 6 end of body, 7 RSET, 8 QUIT, anything else: receive the payload (arg + 1: piece size).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailwire::sasl::{ChannelBinding, ChannelBindingType, Credentials, FixedRandom, Mechanism, Secret};
use mailwire::smtp::client::{Error, Event};
use mailwire::smtp::{Body, Client, ClientConfig, Parameter};
use mailwire::tls::{TlsInfo, TlsPolicy};
use mailwire_fuzz::{Split, drain, receive, script};

type Log = mailwire_fuzz::Log<Event, Error, Mechanism>;

fn run(data: &[u8], split: Split) -> Vec<Log> {
    let ([flags, mechanism], ops) = script(data);
    let mut config = ClientConfig::new("client.example", "mx.example");
    config.tls = match flags & 3 {
        0 => TlsPolicy::Required,
        1 => TlsPolicy::Opportunistic,
        _ => TlsPolicy::Disabled,
    };
    config.allow_plaintext = flags & 4 != 0;
    config.send_initial_response = flags & 8 != 0;
    config.allow_anonymous = flags & 16 != 0;
    if mechanism != 0 {
        config.mechanism = Some(Mechanism::KNOWN[usize::from(mechanism - 1) % Mechanism::KNOWN.len()].clone());
    }
    config.min_scram_iterations = 1;
    if flags & 32 != 0 {
        config.max_reply_lines = 4;
        config.max_buffered = 300;
        config.max_auth_rounds = 2;
    }
    let mut credentials = Credentials::password("user", "pencil");
    credentials.token = Some(Secret::from("vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="));
    let mut client = Client::new(config, Box::new(FixedRandom::new(7)));
    let mut log = Vec::new();
    drain(&mut client, &mut log);
    for op in ops.iter().take(64) {
        match op.kind {
            1 => {
                let info = TlsInfo {
                    channel_binding: (op.arg & 1 != 0)
                        .then(|| ChannelBinding { kind: ChannelBindingType::TlsExporter, data: vec![9; 32] }),
                    peer_identity: None,
                    client_certificate: op.arg & 2 != 0,
                };
                log.push(Log::Result(client.tls_established(info)));
            }
            2 => log.push(Log::Chosen(client.authenticate(&credentials))),
            3 => log.push(Log::Result(client.cancel_auth())),
            4 => {
                let from = String::from_utf8_lossy(op.payload);
                let recipients = ["a@example.org", "b@example.org", "c@example.org", "d@example.org"];
                let recipients = &recipients[..usize::from(op.arg & 3) + 1];
                let mut params = Vec::new();
                if op.arg & 4 != 0 {
                    params.push(Parameter::Size(op.payload.len() as u64 * 1000));
                }
                if op.arg & 8 != 0 {
                    params.push(Parameter::Body(Body::EightBitMime));
                }
                log.push(Log::Result(client.send_mail_with(&from, &params, recipients, &[])));
            }
            5 => log.push(Log::Result(client.send_body_chunk(op.payload))),
            6 => log.push(Log::Result(client.finish_body())),
            7 => log.push(Log::Result(client.rset())),
            8 => log.push(Log::Result(client.quit())),
            _ => log.push(Log::Result(receive(&mut client, op.payload, split, op.arg, true))),
        }
        drain(&mut client, &mut log);
    }
    log
}

fuzz_target!(|data: &[u8]| {
    let whole = run(data, Split::Whole);
    if std::env::var_os("MAILWIRE_FUZZ_DEBUG").is_some() {
        eprintln!("{whole:#?}");
    }
    assert_eq!(run(data, Split::Stride(1)), whole, "split at fuzzer-chosen points");
    assert_eq!(run(data, Split::Bytes), whole, "byte by byte");
});
