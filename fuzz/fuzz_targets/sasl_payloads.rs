//! SASL payload parsers fed raw messages: the first byte picks the mechanism, the rest is a
//! list of messages separated by `0xFF 0xFE`. The server side takes them as the initial
//! response and responses (DIGEST-MD5 digest-response, SCRAM client-first/final, OAUTHBEARER
//! and XOAUTH2 payloads, PLAIN, LOGIN, CRAM-MD5, EXTERNAL, ANONYMOUS); the client side takes
//! them as challenges (DIGEST-MD5 challenge, SCRAM server-first/final, OAuth error JSON) and
//! the last as success data. Typed errors, never a panic; the server asks the application
//! before any success (except EXTERNAL on a TLS identity).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailwire::sasl::{
    ChannelBinding, ChannelBindingType, ClientContext, CredentialAnswer, CredentialRequest, Credentials, FixedRandom,
    Mechanism, ScramKeys, Secret, ServerContext, ServerStep, client, server,
};

fn messages(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(2).position(|w| w == [0xFF, 0xFE]) {
        out.push(&rest[..at]);
        rest = &rest[at + 2..];
    }
    out.push(rest);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let mechanism = Mechanism::KNOWN[usize::from(selector) % Mechanism::KNOWN.len()].clone();
    let messages = messages(rest);
    let binding = ChannelBinding { kind: ChannelBindingType::TlsExporter, data: b"binding".to_vec() };

    // Server side.
    let mut ctx = ServerContext::new("smtp", "elwood.innosoft.com");
    ctx.scram_iterations = 4096;
    ctx.channel_binding = Some(binding.clone());
    ctx.offers_plus = selector & 0x80 != 0;
    if selector & 0x40 != 0 {
        ctx.tls_identity = Some("chris".into());
    }
    if let Ok(mut mech) = server(&mechanism, &ctx, &mut FixedRandom::new(3)) {
        let mut responses = messages.iter();
        let first = if mechanism.client_first() { responses.next().copied() } else { None };
        let mut step = mech.start(first);
        let mut asked = false;
        for _ in 0..16 {
            step = match step {
                ServerStep::Challenge(_) => match responses.next() {
                    Some(response) => mech.step(response),
                    None => break,
                },
                ServerStep::Ask(request) => {
                    asked = true;
                    mech.answer(match request {
                        CredentialRequest::ScramCredentials { hash, .. } => {
                            match ScramKeys::derive(hash, "pencil", b"salt", 1) {
                                Ok(keys) => CredentialAnswer::ScramKeys(keys),
                                Err(_) => break,
                            }
                        }
                        CredentialRequest::Password { .. } | CredentialRequest::DigestSecret { .. } => {
                            CredentialAnswer::Password(Secret::from("secret"))
                        }
                        _ => CredentialAnswer::Verified,
                    })
                }
                ServerStep::Success { .. } => {
                    assert!(asked || mechanism == Mechanism::External, "{mechanism}: success without asking");
                    break;
                }
                _ => break,
            };
        }
    }

    // Client side.
    let mut creds = Credentials::password("chris", "secret");
    creds.token = Some(Secret::from("vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="));
    creds.trace = Some("trace".into());
    let mut cctx = ClientContext::new("imap", "elwood.innosoft.com");
    cctx.min_scram_iterations = 1;
    cctx.channel_binding = (selector & 0x80 != 0).then_some(binding);
    cctx.server_offers_plus = selector & 0x40 != 0;
    if let Ok(mut mech) = client(&mechanism, &creds, &cctx, &mut FixedRandom::new(4)) {
        if mech.initial_response().is_err() {
            return;
        }
        let (last, challenges) = messages.split_last().expect("at least one message");
        for challenge in challenges {
            if mech.step(challenge).is_err() {
                return;
            }
        }
        let _ = mech.finish(Some(last));
        let _ = mech.server_error();
    }
});
