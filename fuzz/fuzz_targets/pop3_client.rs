//! `pop3::Client` fed arbitrary server bytes in arbitrary chunks, interleaved with arbitrary
//! application calls: no panic, and split invariance: the same script with every receive
//! delivered whole, in fuzzer-chosen pieces, and byte by byte gives the same events (message
//! data joined), the same bytes to send and the same results.
//!
//! Input (see `mailwire_fuzz::script`): config byte 0: bits 0-1 TLS policy, bit 2 allow
//! plaintext, bit 3 send initial responses, bit 4 allow ANONYMOUS, bit 5 small limits. Ops:
//! 0 receive the payload (arg + 1: piece size), 1 TLS done (arg bit 0 channel binding, bit 1
//! client certificate), 2 log in (method chosen), 3 AUTH `Mechanism::KNOWN[arg % 12]`, 4 APOP,
//! 5 USER/PASS, 6 STAT, 7 LIST, 8 UIDL (arg 0: all, else that message), 9 RETR arg, 10 TOP arg
//! (payload length: lines), 11 DELE arg, 12 RSET (arg odd: NOOP), 13 XTND XMIT, 14 body chunk
//! (arg odd: end of body), 15 QUIT.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailwire::pop3::client::{AuthMethod, Error, Event};
use mailwire::pop3::{Client, ClientConfig};
use mailwire::sasl::{ChannelBinding, ChannelBindingType, Credentials, FixedRandom, Mechanism, Secret};
use mailwire::tls::{TlsInfo, TlsPolicy};
use mailwire_fuzz::{Split, drain, receive, script};

type Log = mailwire_fuzz::Log<Event, Error, AuthMethod>;

/// Message data comes in pieces that follow the input's chunks: consecutive pieces are joined
/// (empty ones dropped) before runs are compared.
fn join_message_data(log: Vec<Log>) -> Vec<Log> {
    let mut out: Vec<Log> = Vec::with_capacity(log.len());
    for entry in log {
        if let Log::Event(Event::MessageData(data)) = &entry {
            if let Some(Log::Event(Event::MessageData(last))) = out.last_mut() {
                last.extend_from_slice(data);
                continue;
            }
            if data.is_empty() {
                continue;
            }
        }
        out.push(entry);
    }
    out
}

fn run(data: &[u8], split: Split) -> Vec<Log> {
    let ([flags, _], ops) = script(data);
    let mut config = ClientConfig::new("pop.example");
    config.tls = match flags & 3 {
        0 => TlsPolicy::Required,
        1 => TlsPolicy::Opportunistic,
        _ => TlsPolicy::Disabled,
    };
    config.allow_plaintext = flags & 4 != 0;
    config.send_initial_response = flags & 8 != 0;
    config.allow_anonymous = flags & 16 != 0;
    config.min_scram_iterations = 1;
    if flags & 32 != 0 {
        config.max_lines = 4;
        config.max_buffered = 300;
        config.max_auth_rounds = 2;
    }
    let mut credentials = Credentials::password("mrose", "tanstaaf");
    credentials.token = Some(Secret::from("vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="));
    let mut client = Client::new(config);
    let mut rng = FixedRandom::new(7);
    let mut log = Vec::new();
    drain(&mut client, &mut log);
    for op in ops.iter().take(64) {
        let msg = u32::from(op.arg);
        let result = match op.kind {
            0 => receive(&mut client, op.payload, split, op.arg, true),
            1 => client.tls_established(TlsInfo {
                channel_binding: (op.arg & 1 != 0)
                    .then(|| ChannelBinding { kind: ChannelBindingType::TlsExporter, data: vec![9; 32] }),
                peer_identity: None,
                client_certificate: op.arg & 2 != 0,
            }),
            2 => {
                log.push(Log::Chosen(client.authenticate(&credentials, &mut rng)));
                drain(&mut client, &mut log);
                continue;
            }
            3 => {
                let mechanism = Mechanism::KNOWN[usize::from(op.arg) % Mechanism::KNOWN.len()].clone();
                client.authenticate_with(&credentials, AuthMethod::Sasl(mechanism), &mut rng)
            }
            4 => client.authenticate_with(&credentials, AuthMethod::Apop, &mut rng),
            5 => client.authenticate_with(&credentials, AuthMethod::UserPass, &mut rng),
            6 => client.stat(),
            7 => client.list((msg != 0).then_some(msg)),
            8 => client.uidl((msg != 0).then_some(msg)),
            9 => client.retr(msg),
            10 => client.top(msg, op.payload.len() as u32),
            11 => client.dele(msg),
            12 if op.arg & 1 == 0 => client.rset(),
            12 => client.noop(),
            13 => client.xtnd_xmit(),
            14 if op.arg & 1 == 0 => client.send_body_chunk(op.payload),
            14 => client.finish_body(),
            _ => client.quit(),
        };
        log.push(Log::Result(result));
        drain(&mut client, &mut log);
    }
    join_message_data(log)
}

fuzz_target!(|data: &[u8]| {
    let whole = run(data, Split::Whole);
    if std::env::var_os("MAILWIRE_FUZZ_DEBUG").is_some() {
        eprintln!("{whole:#?}");
    }
    assert_eq!(run(data, Split::Stride(1)), whole, "split at fuzzer-chosen points");
    assert_eq!(run(data, Split::Bytes), whole, "byte by byte");
});
