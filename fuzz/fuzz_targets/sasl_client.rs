//! Every SASL client mechanism fed arbitrary challenges: typed errors, no panic, and a server
//! that never proved itself is never reported as verified.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mailwire::sasl::{
    ChannelBinding, ChannelBindingType, ClientContext, Credentials, FixedRandom, Mechanism, Secret, client,
};

#[derive(Debug, Arbitrary)]
struct Input {
    mechanism: u8,
    challenges: Vec<Vec<u8>>,
    finish_data: Option<Vec<u8>>,
}

fuzz_target!(|input: Input| {
    let mechanism = Mechanism::KNOWN[usize::from(input.mechanism) % Mechanism::KNOWN.len()].clone();
    let mut creds = Credentials::password("odd,user=name", "pässwörd€");
    creds.token = Some(Secret::from("token"));
    creds.trace = Some("trace".into());
    let mut ctx = ClientContext::new("smtp", "mx.example");
    ctx.channel_binding = Some(ChannelBinding { kind: ChannelBindingType::TlsExporter, data: vec![7; 32] });
    ctx.min_scram_iterations = 1;
    let Ok(mut mech) = client(&mechanism, &creds, &ctx, &mut FixedRandom::new(1)) else { return };
    let _ = mech.initial_response();
    for challenge in input.challenges.iter().take(8) {
        if mech.step(challenge).is_err() {
            return;
        }
    }
    let verified = mech.finish(input.finish_data.as_deref()).is_ok();
    if matches!(
        mechanism,
        Mechanism::ScramSha1
            | Mechanism::ScramSha256
            | Mechanism::ScramSha1Plus
            | Mechanism::ScramSha256Plus
            | Mechanism::DigestMd5
    ) {
        // A random challenge sequence cannot carry a valid server signature / rspauth.
        assert!(!verified || input.challenges.len() >= 2);
    }
});
