//! Randomness for nonces, CRAM-MD5 challenges, SCRAM salts and APOP timestamps, always given
//! by the caller so that tests are deterministic.

use alloc::string::String;
use alloc::vec;

/// A source of unpredictable bytes.
pub trait Random {
    /// Fills `dest` with random bytes.
    fn fill(&mut self, dest: &mut [u8]);
}

impl<F: FnMut(&mut [u8])> Random for F {
    fn fill(&mut self, dest: &mut [u8]) {
        self(dest)
    }
}

/// The operating system's random source (`std` feature).
#[cfg(feature = "std")]
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

#[cfg(feature = "std")]
impl Random for OsRandom {
    fn fill(&mut self, dest: &mut [u8]) {
        // The OS source failing is not recoverable and not caused by input.
        #[allow(clippy::panic)]
        if let Err(err) = getrandom::fill(dest) {
            panic!("the operating system's random source failed: {err}");
        }
    }
}

/// A deterministic source for tests: repeats `seed` forever, mixing in a counter.
#[derive(Debug, Clone)]
pub struct FixedRandom {
    seed: u64,
}

impl FixedRandom {
    /// A source that yields the same bytes for the same seed.
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }
}

impl Random for FixedRandom {
    fn fill(&mut self, dest: &mut [u8]) {
        for byte in dest {
            // xorshift64*
            self.seed ^= self.seed >> 12;
            self.seed ^= self.seed << 25;
            self.seed ^= self.seed >> 27;
            self.seed = self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            *byte = (self.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8;
        }
    }
}

/// A printable nonce of `len` characters from the base64 alphabet (no `,`, safe in SCRAM,
/// DIGEST-MD5 and angle-bracketed timestamps).
pub fn nonce(rng: &mut dyn Random, len: usize) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes);
    bytes.iter().map(|b| char::from(ALPHABET.get(usize::from(b & 63)).copied().unwrap_or(b'A'))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_random_is_deterministic() {
        assert_eq!(nonce(&mut FixedRandom::new(7), 24), nonce(&mut FixedRandom::new(7), 24));
        assert_ne!(nonce(&mut FixedRandom::new(7), 24), nonce(&mut FixedRandom::new(8), 24));
        assert_eq!(nonce(&mut FixedRandom::new(1), 10).len(), 10);
    }
}
