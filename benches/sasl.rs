//! Full client+server exchanges of every SASL mechanism; SCRAM-SHA-256 (server holding stored
//! keys) against one raw PBKDF2-HMAC-SHA-256 of 4096 rounds and against rsasl's exchange, in
//! the same run. Ratios are in BENCHMARKS.md.

use criterion::{Criterion, criterion_group, criterion_main};
use mailwire::sasl::{
    ChannelBinding, ChannelBindingType, ClientContext, CredentialAnswer, CredentialRequest, Credentials, FixedRandom,
    Identity, Mechanism, ScramHash, ScramKeys, Secret, ServerContext, ServerStep, client, server,
};
use std::hint::black_box;
use std::io::Cursor;
use std::time::Duration;

const USER: &str = "user";
const PASSWORD: &str = "pencil";
const SALT: &[u8] = b"W22ZaJ0SNY7soEsU";
const ITERATIONS: u32 = 4096;

/// What the server's application holds.
struct Store {
    sha1: ScramKeys,
    sha256: ScramKeys,
}

/// One full exchange; panics unless both sides succeed.
fn exchange(mechanism: &Mechanism, store: &Store, seed: u64) -> Identity {
    let binding = ChannelBinding { kind: ChannelBindingType::TlsExporter, data: vec![7; 32] };
    let mut creds = Credentials::password(USER, PASSWORD);
    creds.token = Some(Secret::from("vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="));
    let mut cctx = ClientContext::new("smtp", "mx.example");
    cctx.channel_binding = Some(binding.clone());
    cctx.server_offers_plus = true;
    let mut sctx = ServerContext::new("smtp", "mx.example");
    sctx.channel_binding = Some(binding);
    sctx.offers_plus = true;
    sctx.scram_iterations = ITERATIONS;
    sctx.tls_identity = Some(USER.into());
    let mut rng = FixedRandom::new(seed);
    let mut c = client(mechanism, &creds, &cctx, &mut rng).expect("client");
    let mut s = server(mechanism, &sctx, &mut rng).expect("server");
    let initial = c.initial_response().expect("initial response");
    let mut step = s.start(initial.as_ref().map(Secret::expose));
    loop {
        step = match step {
            ServerStep::Challenge(challenge) => s.step(c.step(&challenge).expect("client step").expose()),
            ServerStep::Ask(request) => s.answer(match request {
                CredentialRequest::VerifyPassword { password, .. } => {
                    assert_eq!(password.expose(), PASSWORD.as_bytes());
                    CredentialAnswer::Verified
                }
                CredentialRequest::ScramCredentials { hash: ScramHash::Sha1, .. } => {
                    CredentialAnswer::ScramKeys(store.sha1.clone())
                }
                CredentialRequest::ScramCredentials { .. } => CredentialAnswer::ScramKeys(store.sha256.clone()),
                CredentialRequest::Password { .. } | CredentialRequest::DigestSecret { .. } => {
                    CredentialAnswer::Password(Secret::from(PASSWORD))
                }
                _ => CredentialAnswer::Verified,
            }),
            ServerStep::Success { identity, additional } => {
                c.finish(additional.as_deref()).expect("client verifies the server");
                return identity;
            }
            other => panic!("{mechanism}: {other:?}"),
        };
    }
}

/// One raw PBKDF2-HMAC-SHA-256, 4096 rounds: the floor of a SCRAM-SHA-256 exchange.
fn raw_pbkdf2() -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(PASSWORD.as_bytes(), SALT, ITERATIONS, &mut out);
    out
}

mod rsasl_scram {
    use super::*;
    use rsasl::callback::{Context, Request, SessionCallback, SessionData};
    use rsasl::mechanisms::scram::properties::ScramStoredPassword;
    use rsasl::prelude::{Mechname, SASLClient, SASLConfig, SASLServer, SessionError};
    use rsasl::validate::NoValidation;
    use std::sync::Arc;

    pub struct Keys {
        pub stored: Vec<u8>,
        pub server: Vec<u8>,
    }

    impl SessionCallback for Keys {
        fn callback(&self, _: &SessionData, _: &Context, request: &mut Request) -> Result<(), SessionError> {
            request.satisfy::<ScramStoredPassword>(&ScramStoredPassword::new(
                ITERATIONS,
                SALT,
                &self.stored,
                &self.server,
            ))?;
            Ok(())
        }
    }

    pub struct Setup {
        server: Arc<SASLConfig>,
        client: Arc<SASLConfig>,
    }

    pub fn setup(keys: &ScramKeys) -> Setup {
        let keys = Keys { stored: keys.stored_key.expose().to_vec(), server: keys.server_key.expose().to_vec() };
        let server = SASLConfig::builder().with_defaults().with_callback(keys).expect("rsasl server config");
        let client = SASLConfig::with_credentials(None, USER.into(), PASSWORD.into()).expect("rsasl client config");
        Setup { server, client }
    }

    /// One SCRAM-SHA-256 exchange through rsasl, client and server.
    pub fn exchange(setup: &Setup) -> bool {
        let name = Mechname::parse(b"SCRAM-SHA-256").expect("name");
        let mut server =
            SASLServer::<NoValidation>::new(setup.server.clone()).start_suggested(name).expect("rsasl server");
        let mut client = SASLClient::new(setup.client.clone()).start_suggested(&[name]).expect("rsasl client");
        let mut to_server = Cursor::new(Vec::new());
        client.step(None, &mut to_server).expect("client first");
        loop {
            let mut to_client = Cursor::new(Vec::new());
            let state = server.step(Some(to_server.get_ref()), &mut to_client).expect("server step");
            if !state.is_running() {
                let mut rest = Cursor::new(Vec::new());
                client.step(Some(to_client.get_ref()), &mut rest).expect("client verifies");
                return true;
            }
            to_server = Cursor::new(Vec::new());
            client.step(Some(to_client.get_ref()), &mut to_server).expect("client step");
        }
    }
}

fn sasl(c: &mut Criterion) {
    let store = Store {
        sha1: ScramKeys::derive(ScramHash::Sha1, PASSWORD, SALT, ITERATIONS).unwrap(),
        sha256: ScramKeys::derive(ScramHash::Sha256, PASSWORD, SALT, ITERATIONS).unwrap(),
    };
    for mechanism in Mechanism::KNOWN {
        let identity = exchange(&mechanism, &store, 1);
        let expected = if mechanism == Mechanism::Anonymous { "anonymous" } else { USER };
        assert_eq!(identity.authcid, expected, "{mechanism}");
    }
    let rsasl_setup = rsasl_scram::setup(&store.sha256);
    assert!(rsasl_scram::exchange(&rsasl_setup));

    let mut group = c.benchmark_group("sasl_exchange");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2)).sample_size(20);
    for mechanism in Mechanism::KNOWN {
        let mut seed = 0;
        group.bench_function(mechanism.as_str(), |b| {
            b.iter(|| {
                seed += 1;
                black_box(exchange(&mechanism, &store, seed))
            })
        });
    }
    group.bench_function("PBKDF2-HMAC-SHA-256x4096 (raw)", |b| b.iter(|| black_box(raw_pbkdf2())));
    group.bench_function("SCRAM-SHA-256 (rsasl)", |b| b.iter(|| black_box(rsasl_scram::exchange(&rsasl_setup))));
    group.finish();
}

criterion_group!(benches, sasl);
criterion_main!(benches);
