//! Every SASL mechanism, client against server, with fuzzer-chosen identities, passwords and
//! channel bindings, and optionally one message of the exchange mutated in flight (which
//! reaches the DIGEST-MD5 challenge/response, SCRAM client/server message and OAuth payload
//! parsers deep inside a valid exchange).
//!
//! Round trip: an unmutated exchange with matching secrets succeeds on both sides and the
//! server reports the identity the client sent. Safety: the server never succeeds when the
//! passwords (or channel bindings) differ, mutated or not.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mailwire::sasl::saslprep::saslprep;
use mailwire::sasl::{
    ChannelBinding, ChannelBindingType, ClientContext, CredentialAnswer, CredentialRequest, Credentials, FixedRandom,
    Mechanism, ScramKeys, Secret, ServerContext, ServerStep, client, ct_eq, server,
};

#[derive(Debug, Arbitrary)]
enum Mutation {
    /// Replace the message with these bytes.
    Replace(Vec<u8>),
    /// Overwrite one byte.
    Set { at: u16, byte: u8 },
    /// Insert bytes.
    Insert { at: u16, bytes: Vec<u8> },
    /// Cut the message short.
    Truncate(u16),
}

#[derive(Debug, Arbitrary)]
struct Input {
    mechanism: u8,
    authcid: String,
    authzid: Option<String>,
    password: String,
    /// The password the server holds; `None`: the same as the client's.
    server_password: Option<String>,
    stored_keys: bool,
    server_binding: Option<[u8; 4]>,
    client_binding: Option<[u8; 4]>,
    /// Index of the message to mutate (client and server messages counted together).
    target: u8,
    mutation: Option<Mutation>,
}

fn mutate(message: &mut Vec<u8>, mutation: &Mutation) {
    match mutation {
        Mutation::Replace(bytes) => *message = bytes.clone(),
        Mutation::Set { at, byte } => {
            let len = message.len();
            if let Some(b) = message.get_mut(usize::from(*at) % len.max(1)) {
                *b = *byte;
            }
        }
        Mutation::Insert { at, bytes } => {
            let at = usize::from(*at) % (message.len() + 1);
            message.splice(at..at, bytes.iter().copied());
        }
        Mutation::Truncate(len) => message.truncate(usize::from(*len) % (message.len() + 1)),
    }
}

fn binding(data: Option<[u8; 4]>) -> Option<ChannelBinding> {
    data.map(|d| ChannelBinding { kind: ChannelBindingType::TlsExporter, data: d.to_vec() })
}

fn same_password(a: &str, b: &str) -> bool {
    // HMAC pads short keys with zeros (RFC 2104 §2), so CRAM-MD5 cannot tell "x" from "x\0".
    let hmac_key = |s: &str| if s.len() <= 64 { s.trim_end_matches('\0').to_owned() } else { s.to_owned() };
    a == b || hmac_key(a) == hmac_key(b) || matches!((saslprep(a), saslprep(b)), (Ok(x), Ok(y)) if x == y)
}

fuzz_target!(|input: Input| {
    let mechanism = Mechanism::KNOWN[usize::from(input.mechanism) % Mechanism::KNOWN.len()].clone();
    let mut credentials = Credentials::password(input.authcid.clone(), input.password.as_str());
    credentials.authzid = input.authzid.clone();
    credentials.token = Some(Secret::from(input.password.as_str()));
    credentials.trace = Some(input.authcid.clone());
    let mut client_ctx = ClientContext::new("smtp", "mx.example");
    client_ctx.min_scram_iterations = 1;
    client_ctx.channel_binding = binding(input.client_binding);
    client_ctx.server_offers_plus = input.server_binding.is_some();
    let mut server_ctx = ServerContext::new("smtp", "mx.example");
    server_ctx.scram_iterations = 2;
    server_ctx.channel_binding = binding(input.server_binding);
    server_ctx.offers_plus = input.server_binding.is_some();
    server_ctx.tls_identity = Some(input.authcid.clone());
    let server_password = input.server_password.clone().unwrap_or_else(|| input.password.clone());
    let passwords_match = same_password(&input.password, &server_password);
    let bindings_match = input.client_binding == input.server_binding;

    // A clean exchange may still fail on identities a mechanism refuses (empty, odd
    // characters an old mechanism cannot carry); with plain ones it must not.
    let clean = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '@' || c == '.');
    // (The password doubles as the OAuth token, which the server wants as a b64token.)
    let clean_password = !input.password.is_empty() && input.password.chars().all(|c| c.is_ascii_alphanumeric());
    let clean_ids = clean(&input.authcid) && input.authzid.as_deref().is_none_or(clean) && clean_password;

    let Ok(mut client_mech) = client(&mechanism, &credentials, &client_ctx, &mut FixedRandom::new(1)) else { return };
    let Ok(mut server_mech) = server(&mechanism, &server_ctx, &mut FixedRandom::new(2)) else { return };

    let mut index = 0u8;
    let mutated = core::cell::Cell::new(false);
    let mut message = |mut bytes: Vec<u8>| {
        if index == input.target {
            if let Some(mutation) = &input.mutation {
                mutate(&mut bytes, mutation);
                mutated.set(true);
            }
        }
        index = index.wrapping_add(1);
        bytes
    };

    let initial = match client_mech.initial_response() {
        Ok(initial) => initial.map(|s| message(s.expose().to_vec())),
        Err(_) => return,
    };
    let mut step = server_mech.start(initial.as_deref());
    let mut asked_password = false;
    for _ in 0..12 {
        step = match step {
            ServerStep::Challenge(challenge) => {
                let challenge = message(challenge);
                match client_mech.step(&challenge) {
                    Ok(response) => {
                        let response = message(response.expose().to_vec());
                        server_mech.step(&response)
                    }
                    Err(_) => {
                        let expected = mutated.get() || !bindings_match || !passwords_match || !clean_ids;
                        assert!(expected, "{mechanism}: client refused a clean exchange");
                        return;
                    }
                }
            }
            ServerStep::Ask(request) => {
                let answer = match request {
                    CredentialRequest::VerifyPassword { password, .. } => {
                        asked_password = true;
                        if ct_eq(password.expose(), server_password.as_bytes()) {
                            CredentialAnswer::Verified
                        } else {
                            CredentialAnswer::Rejected
                        }
                    }
                    CredentialRequest::VerifyToken { token, .. } => {
                        asked_password = true;
                        if ct_eq(token.expose(), server_password.as_bytes()) {
                            CredentialAnswer::Verified
                        } else {
                            CredentialAnswer::Rejected
                        }
                    }
                    CredentialRequest::Password { .. } | CredentialRequest::DigestSecret { .. } => {
                        asked_password = true;
                        CredentialAnswer::Password(Secret::from(server_password.as_str()))
                    }
                    CredentialRequest::ScramCredentials { hash, .. } => {
                        asked_password = true;
                        if input.stored_keys {
                            match ScramKeys::derive(hash, &server_password, b"salt", 2) {
                                Ok(keys) => CredentialAnswer::ScramKeys(keys),
                                Err(_) => return,
                            }
                        } else {
                            CredentialAnswer::Password(Secret::from(server_password.as_str()))
                        }
                    }
                    CredentialRequest::Anonymous { .. } | CredentialRequest::Authorize { .. } => {
                        CredentialAnswer::Verified
                    }
                    _ => CredentialAnswer::Rejected,
                };
                server_mech.answer(answer)
            }
            ServerStep::Success { identity, additional } => {
                if asked_password {
                    assert!(passwords_match, "{mechanism}: success with a wrong password");
                }
                if mechanism.is_plus() {
                    assert!(bindings_match, "{mechanism}: success with another channel binding");
                }
                let additional = additional.map(message);
                let verified = client_mech.finish(additional.as_deref());
                if !mutated.get() && !matches!(mechanism, Mechanism::External | Mechanism::Anonymous) {
                    assert!(verified.is_ok(), "{mechanism}: client did not verify the server: {verified:?}");
                    if matches!(mechanism, Mechanism::XOAuth2 | Mechanism::OAuthBearer) {
                        // The token stands for one user: the one named in the payload.
                        let expected = input.authzid.as_deref().unwrap_or(&input.authcid);
                        assert_eq!(identity.acting_as(), expected, "{mechanism}");
                    } else {
                        let authcid = saslprep(&input.authcid).map(|c| c.into_owned()).unwrap_or_default();
                        assert!(
                            identity.authcid == input.authcid || identity.authcid == authcid,
                            "{mechanism}: identity {identity:?} for {:?}",
                            input.authcid
                        );
                    }
                }
                return;
            }
            ServerStep::Failure(_) => {
                if !mutated.get() && passwords_match && bindings_match && !matches!(mechanism, Mechanism::External) {
                    assert!(!clean_ids, "{mechanism}: a clean exchange failed");
                }
                return;
            }
            _ => return,
        };
    }
});
