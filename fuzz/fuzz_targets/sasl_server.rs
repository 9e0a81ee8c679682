//! Every SASL server mechanism fed arbitrary responses and arbitrary application answers:
//! no panic, and success only after the application said yes.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mailwire::sasl::{
    ChannelBinding, ChannelBindingType, CredentialAnswer, FixedRandom, Mechanism, ScramHash, ScramKeys, Secret,
    ServerContext, ServerStep, server,
};

#[derive(Debug, Arbitrary)]
enum Answer {
    Verified,
    Rejected,
    UnknownUser,
    Temporary,
    Password(String),
    Ha1([u8; 16]),
    Keys { salt: Vec<u8>, stored: Vec<u8>, server: Vec<u8> },
}

#[derive(Debug, Arbitrary)]
struct Input {
    mechanism: u8,
    initial: Option<Vec<u8>>,
    responses: Vec<Vec<u8>>,
    answers: Vec<Answer>,
    tls_identity: bool,
}

fn answer(answer: Answer) -> CredentialAnswer {
    match answer {
        Answer::Verified => CredentialAnswer::Verified,
        Answer::Rejected => CredentialAnswer::Rejected,
        Answer::UnknownUser => CredentialAnswer::UnknownUser,
        Answer::Temporary => CredentialAnswer::TemporaryFailure,
        Answer::Password(p) => CredentialAnswer::Password(Secret::from(p)),
        Answer::Ha1(h) => CredentialAnswer::DigestHa1(Secret::new(h.to_vec())),
        Answer::Keys { salt, stored, server } => CredentialAnswer::ScramKeys(ScramKeys {
            salt,
            iterations: 1,
            stored_key: Secret::new(stored),
            server_key: Secret::new(server),
        }),
    }
}

fuzz_target!(|input: Input| {
    let mechanism = Mechanism::KNOWN[usize::from(input.mechanism) % Mechanism::KNOWN.len()].clone();
    let mut ctx = ServerContext::new("smtp", "mx.example");
    ctx.scram_iterations = 1;
    ctx.channel_binding = Some(ChannelBinding { kind: ChannelBindingType::TlsExporter, data: vec![7; 32] });
    ctx.offers_plus = true;
    if input.tls_identity {
        ctx.tls_identity = Some("cert-user".into());
    }
    let _ = ScramHash::Sha1;
    let Ok(mut mech) = server(&mechanism, &ctx, &mut FixedRandom::new(1)) else { return };
    let mut step = mech.start(input.initial.as_deref());
    let mut responses = input.responses.into_iter();
    let mut answers = input.answers.into_iter();
    let mut said_yes = false;
    for _ in 0..16 {
        step = match step {
            ServerStep::Challenge(_) => match responses.next() {
                Some(r) => mech.step(&r),
                None => return,
            },
            ServerStep::Ask(_) => match answers.next() {
                Some(a) => {
                    let a = answer(a);
                    said_yes |= !matches!(
                        a,
                        CredentialAnswer::Rejected | CredentialAnswer::UnknownUser | CredentialAnswer::TemporaryFailure
                    );
                    mech.step_answer(a)
                }
                None => return,
            },
            ServerStep::Success { .. } => {
                // EXTERNAL may succeed on the TLS identity alone; everything else needs a yes.
                assert!(said_yes || mechanism == Mechanism::External, "{mechanism} succeeded without a yes");
                return;
            }
            _ => return,
        };
    }
});

trait StepAnswer {
    fn step_answer(&mut self, answer: CredentialAnswer) -> ServerStep;
}

impl StepAnswer for Box<dyn mailwire::sasl::ServerMechanism> {
    fn step_answer(&mut self, answer: CredentialAnswer) -> ServerStep {
        self.answer(answer)
    }
}
