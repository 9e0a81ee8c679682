//! The POP3 `CAPA` list (RFC 2449 §5, §6): parsed from the lines of the multi-line response,
//! and generated from a server's configuration.
//!
//! Capability names compare case-insensitively; unknown capabilities are kept with their
//! arguments, in the order received. Arguments that break a known capability's grammar (an
//! `EXPIRE` that is neither a number nor `NEVER`) are kept as unknown rather than failing the
//! whole list, so one odd line from a real server does not lose the rest.
//!
//! ```
//! use mailwire::pop3::Capabilities;
//! use mailwire::sasl::Mechanism;
//!
//! let caps = Capabilities::parse([&b"TOP"[..], b"sasl plain XOAUTH2", b"EXPIRE 0"]).unwrap();
//! assert!(caps.top);
//! assert_eq!(caps.sasl, [Mechanism::Plain, Mechanism::XOAuth2]);
//! assert_eq!(Capabilities::parse(caps.lines().unwrap().iter().map(|l| l.as_bytes())).unwrap(), caps);
//! ```

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::sasl::Mechanism;

/// Most SASL mechanisms kept from one `CAPA` list.
pub const MAX_MECHANISMS: usize = 64;
/// Most unknown capabilities kept from one `CAPA` list.
pub const MAX_OTHER: usize = 64;
/// Most arguments kept for one unknown capability.
pub const MAX_ARGS: usize = 32;

/// A `CAPA` list that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapabilityError {
    /// More mechanisms, unknown capabilities or arguments than the limits allow (a hostile
    /// or broken server); the list is refused rather than grown without bound.
    #[error("too many capabilities or arguments in the CAPA list")]
    TooMany,
    /// A value to generate holds a character that cannot appear in a capability line (CR, LF,
    /// NUL, or a space inside a name or argument), or a name is empty.
    #[error("invalid character or empty name in a capability: {0}")]
    InvalidValue(&'static str),
}

/// The `EXPIRE` policy (RFC 2449 §6.7): how long the server keeps retrieved messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpirePolicy {
    /// `NEVER`: messages are kept until deleted.
    Never,
    /// Messages may be removed this many days after retrieval (`0`: right after the session).
    Days(u32),
}

/// The `EXPIRE` capability (RFC 2449 §6.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Expire {
    /// The policy.
    pub policy: ExpirePolicy,
    /// `USER`: the value varies per user (only before login).
    pub per_user: bool,
}

/// The `LOGIN-DELAY` capability (RFC 2449 §6.5): the least number of seconds between logins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LoginDelay {
    /// Seconds between logins.
    pub seconds: u32,
    /// `USER`: the value varies per user (only before login).
    pub per_user: bool,
}

/// A capability mailwire does not interpret, kept with its arguments (RFC 2449 §5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OtherCapability {
    /// The name as the server wrote it.
    pub name: String,
    /// The arguments, split on spaces.
    pub args: Vec<String>,
}

/// A POP3 server's capabilities (RFC 2449 §6, RFC 2595 §4, RFC 5034 §3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// `TOP` (RFC 2449 §6.1).
    pub top: bool,
    /// `USER`: USER/PASS accepted (RFC 2449 §6.2).
    pub user: bool,
    /// `SASL` mechanisms offered for `AUTH` (RFC 2449 §6.3, RFC 5034); empty when none.
    pub sasl: Vec<Mechanism>,
    /// `RESP-CODES`: extended response codes (RFC 2449 §6.4).
    pub resp_codes: bool,
    /// `AUTH-RESP-CODE`: the `[AUTH]` code (RFC 3206 §5).
    pub auth_resp_code: bool,
    /// `LOGIN-DELAY` (RFC 2449 §6.5).
    pub login_delay: Option<LoginDelay>,
    /// `PIPELINING` (RFC 2449 §6.6).
    pub pipelining: bool,
    /// `EXPIRE` (RFC 2449 §6.7).
    pub expire: Option<Expire>,
    /// `UIDL` (RFC 2449 §6.8).
    pub uidl: bool,
    /// `IMPLEMENTATION` text (RFC 2449 §6.9).
    pub implementation: Option<String>,
    /// `STLS` (RFC 2595 §4).
    pub stls: bool,
    /// Capabilities mailwire does not interpret, in the order received.
    pub other: Vec<OtherCapability>,
}

fn utf8_lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Splits on runs of spaces and tabs.
fn words(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&b| b == b' ' || b == b'\t').filter(|w| !w.is_empty())
}

fn parse_u32(word: &[u8]) -> Option<u32> {
    if word.is_empty() || word.len() > 10 || !word.iter().all(u8::is_ascii_digit) {
        return None;
    }
    core::str::from_utf8(word).ok()?.parse().ok()
}

/// `[USER]` after a value: `Some(per_user)` when the rest is empty or exactly `USER`.
fn user_suffix(rest: &[&[u8]]) -> Option<bool> {
    match rest {
        [] => Some(false),
        [word] if word.eq_ignore_ascii_case(b"USER") => Some(true),
        _ => None,
    }
}

impl Capabilities {
    /// Parses the lines of a `CAPA` response (already dot-unstuffed, without the status line
    /// and the terminator) (RFC 2449 §5).
    pub fn parse<'a, I>(lines: I) -> Result<Self, CapabilityError>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let mut caps = Self::default();
        for line in lines {
            caps.parse_line(line)?;
        }
        Ok(caps)
    }

    /// Adds one capability line (RFC 2449 §5); an empty line is ignored.
    pub fn parse_line(&mut self, line: &[u8]) -> Result<(), CapabilityError> {
        let trimmed = line.strip_suffix(b"\r").unwrap_or(line);
        let mut all = words(trimmed);
        let Some(name) = all.next() else { return Ok(()) };
        let args: Vec<&[u8]> = all.take(MAX_MECHANISMS.max(MAX_ARGS) + 1).collect();
        let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
        if is("TOP") {
            self.top = true;
        } else if is("USER") {
            self.user = true;
        } else if is("SASL") {
            if self.sasl.len() + args.len() > MAX_MECHANISMS {
                return Err(CapabilityError::TooMany);
            }
            for arg in args {
                let mechanism = Mechanism::from_bytes(arg);
                if !self.sasl.contains(&mechanism) {
                    self.sasl.push(mechanism);
                }
            }
        } else if is("RESP-CODES") {
            self.resp_codes = true;
        } else if is("AUTH-RESP-CODE") {
            self.auth_resp_code = true;
        } else if is("PIPELINING") {
            self.pipelining = true;
        } else if is("UIDL") {
            self.uidl = true;
        } else if is("STLS") {
            self.stls = true;
        } else if is("IMPLEMENTATION") {
            // The text is everything after the name, as written.
            let text = trimmed.get(name.len()..).unwrap_or_default();
            let text = text.strip_prefix(b" ").or_else(|| text.strip_prefix(b"\t")).unwrap_or(text);
            self.implementation = Some(utf8_lossy(text));
        } else if let (true, Some((first, rest))) = (is("EXPIRE"), args.split_first()) {
            let policy = if first.eq_ignore_ascii_case(b"NEVER") {
                Some(ExpirePolicy::Never)
            } else {
                parse_u32(first).map(ExpirePolicy::Days)
            };
            match (policy, user_suffix(rest)) {
                (Some(policy), Some(per_user)) => self.expire = Some(Expire { policy, per_user }),
                _ => self.push_other(name, &args)?,
            }
        } else if let (true, Some((first, rest))) = (is("LOGIN-DELAY"), args.split_first()) {
            match (parse_u32(first), user_suffix(rest)) {
                (Some(seconds), Some(per_user)) => self.login_delay = Some(LoginDelay { seconds, per_user }),
                _ => self.push_other(name, &args)?,
            }
        } else {
            self.push_other(name, &args)?;
        }
        Ok(())
    }

    fn push_other(&mut self, name: &[u8], args: &[&[u8]]) -> Result<(), CapabilityError> {
        if self.other.len() >= MAX_OTHER || args.len() > MAX_ARGS {
            return Err(CapabilityError::TooMany);
        }
        self.other
            .push(OtherCapability { name: utf8_lossy(name), args: args.iter().map(|arg| utf8_lossy(arg)).collect() });
        Ok(())
    }

    /// Whether `mechanism` is offered for `AUTH`.
    pub fn offers(&self, mechanism: &Mechanism) -> bool {
        self.sasl.contains(mechanism)
    }

    /// The unknown capability called `name` (case-insensitive), if present.
    pub fn other(&self, name: &str) -> Option<&OtherCapability> {
        self.other.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// The capability lines, without CRLF, in a fixed order followed by the unknown ones
    /// (RFC 2449 §5). Fails on values that cannot be written on a line.
    pub fn lines(&self) -> Result<Vec<String>, CapabilityError> {
        let mut lines = Vec::new();
        let mut flag = |on: bool, name: &str| {
            if on {
                lines.push(name.to_string());
            }
        };
        flag(self.top, "TOP");
        flag(self.user, "USER");
        flag(self.resp_codes, "RESP-CODES");
        flag(self.auth_resp_code, "AUTH-RESP-CODE");
        flag(self.pipelining, "PIPELINING");
        flag(self.uidl, "UIDL");
        flag(self.stls, "STLS");
        if !self.sasl.is_empty() {
            let mut line = String::from("SASL");
            for mechanism in &self.sasl {
                check_word(mechanism.as_str())?;
                line.push(' ');
                line.push_str(mechanism.as_str());
            }
            lines.push(line);
        }
        if let Some(delay) = self.login_delay {
            let user = if delay.per_user { " USER" } else { "" };
            lines.push(alloc::format!("LOGIN-DELAY {}{user}", delay.seconds));
        }
        if let Some(expire) = self.expire {
            let user = if expire.per_user { " USER" } else { "" };
            match expire.policy {
                ExpirePolicy::Never => lines.push(alloc::format!("EXPIRE NEVER{user}")),
                ExpirePolicy::Days(days) => lines.push(alloc::format!("EXPIRE {days}{user}")),
            }
        }
        if let Some(text) = &self.implementation {
            if text.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
                return Err(CapabilityError::InvalidValue("IMPLEMENTATION text"));
            }
            lines.push(alloc::format!("IMPLEMENTATION {text}"));
        }
        for other in &self.other {
            check_word(&other.name)?;
            let mut line = other.name.clone();
            for arg in &other.args {
                check_word(arg)?;
                line.push(' ');
                line.push_str(arg);
            }
            lines.push(line);
        }
        Ok(lines)
    }

    /// The whole multi-line `CAPA` response: `+OK` status, the lines (dot-stuffed) and the
    /// terminator (RFC 2449 §5).
    pub fn encode_response(&self) -> Result<Vec<u8>, CapabilityError> {
        let mut out = Vec::from(&b"+OK Capability list follows\r\n"[..]);
        for line in self.lines()? {
            if line.starts_with('.') {
                out.push(b'.');
            }
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        Ok(out)
    }
}

/// A name or argument: non-empty, no space, tab, CR, LF or NUL.
fn check_word(word: &str) -> Result<(), CapabilityError> {
    if word.is_empty() || word.bytes().any(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0)) {
        return Err(CapabilityError::InvalidValue("capability name or argument"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    fn parse_text(text: &str) -> Capabilities {
        Capabilities::parse(text.split("\r\n").map(str::as_bytes)).unwrap()
    }

    /// RFC 2449 §5 example (rfc-vectors.md §10).
    #[test]
    fn rfc2449_example() {
        let caps = parse_text(
            "TOP\r\nUSER\r\nSASL CRAM-MD5 KERBEROS_V4\r\nRESP-CODES\r\nLOGIN-DELAY 900\r\nPIPELINING\r\nEXPIRE 60\r\nUIDL\r\nIMPLEMENTATION Shlemazle-Plotz-v302",
        );
        assert_eq!(
            caps,
            Capabilities {
                top: true,
                user: true,
                sasl: vec![Mechanism::CramMd5, Mechanism::Other("KERBEROS_V4".into())],
                resp_codes: true,
                login_delay: Some(LoginDelay { seconds: 900, per_user: false }),
                pipelining: true,
                expire: Some(Expire { policy: ExpirePolicy::Days(60), per_user: false }),
                uidl: true,
                implementation: Some("Shlemazle-Plotz-v302".into()),
                ..Capabilities::default()
            }
        );
        assert!(!caps.stls);
    }

    /// B20: Gmail's CAPA list, unknown X-GOOGLE-RICO kept.
    #[test]
    fn field_b20_gmail_capa() {
        let caps = parse_text(
            "USER\r\nRESP-CODES\r\nEXPIRE 0\r\nLOGIN-DELAY 300\r\nTOP\r\nUIDL\r\nX-GOOGLE-RICO\r\nSASL PLAIN XOAUTH2 OAUTHBEARER",
        );
        assert_eq!(caps.sasl, vec![Mechanism::Plain, Mechanism::XOAuth2, Mechanism::OAuthBearer]);
        assert_eq!(caps.expire, Some(Expire { policy: ExpirePolicy::Days(0), per_user: false }));
        assert_eq!(caps.login_delay, Some(LoginDelay { seconds: 300, per_user: false }));
        assert_eq!(caps.other, vec![OtherCapability { name: "X-GOOGLE-RICO".into(), args: vec![] }]);
        assert!(caps.other("x-google-rico").is_some());
        assert!(caps.user && caps.resp_codes && caps.top && caps.uidl && !caps.pipelining);
    }

    #[test]
    fn case_insensitive_and_user_suffix() {
        let caps = parse_text(
            "stls\r\nSasl scram-sha-256 plain\r\nexpire never user\r\nLogin-Delay 60 USER\r\nauth-resp-code",
        );
        assert!(caps.stls && caps.auth_resp_code);
        assert_eq!(caps.sasl, vec![Mechanism::ScramSha256, Mechanism::Plain]);
        assert_eq!(caps.expire, Some(Expire { policy: ExpirePolicy::Never, per_user: true }));
        assert_eq!(caps.login_delay, Some(LoginDelay { seconds: 60, per_user: true }));
        assert!(caps.offers(&Mechanism::Plain));
    }

    #[test]
    fn malformed_known_values_are_kept_as_unknown() {
        let caps =
            parse_text("EXPIRE soon\r\nLOGIN-DELAY -1\r\nLOGIN-DELAY 99999999999\r\nEXPIRE 5 USER extra\r\nEXPIRE");
        assert_eq!(caps.expire, None);
        assert_eq!(caps.login_delay, None);
        assert_eq!(caps.other.len(), 5);
        assert_eq!(caps.other[0], OtherCapability { name: "EXPIRE".into(), args: vec!["soon".into()] });
    }

    #[test]
    fn tabs_runs_of_spaces_and_empty_lines() {
        let caps = parse_text("SASL\t PLAIN  LOGIN \r\n\r\n   \r\nIMPLEMENTATION  two  spaces");
        assert_eq!(caps.sasl, vec![Mechanism::Plain, Mechanism::Login]);
        assert_eq!(caps.implementation.as_deref(), Some(" two  spaces"));
    }

    #[test]
    fn limits() {
        let many: String = (0..100).map(|i| alloc::format!(" M{i}")).collect();
        let line = alloc::format!("SASL{many}");
        assert_eq!(Capabilities::parse([line.as_bytes()]), Err(CapabilityError::TooMany));
        let lines: Vec<String> = (0..100).map(|i| alloc::format!("X-{i}")).collect();
        assert_eq!(Capabilities::parse(lines.iter().map(|l| l.as_bytes())), Err(CapabilityError::TooMany));
        // Binary junk never panics.
        let mut caps = Capabilities::default();
        caps.parse_line(&[0xff, 0xfe, b' ', 0x00, b'\r']).unwrap();
        assert_eq!(caps.other.len(), 1);
    }

    #[test]
    fn generator_refuses_line_breaks() {
        let caps = Capabilities { implementation: Some("x\r\n+OK".into()), ..Capabilities::default() };
        assert!(matches!(caps.lines(), Err(CapabilityError::InvalidValue(_))));
        let caps = Capabilities {
            other: vec![OtherCapability { name: "X".into(), args: vec!["a b".into()] }],
            ..Capabilities::default()
        };
        assert!(caps.lines().is_err());
        let caps = Capabilities { sasl: vec![Mechanism::Other("A\r\nB".into())], ..Capabilities::default() };
        assert!(caps.lines().is_err());
    }

    #[test]
    fn encode_response_frames_and_stuffs() {
        let caps = Capabilities {
            top: true,
            stls: true,
            sasl: vec![Mechanism::ScramSha256, Mechanism::Plain],
            other: vec![OtherCapability { name: ".ODD".into(), args: vec![] }],
            ..Capabilities::default()
        };
        assert_eq!(
            caps.encode_response().unwrap(),
            b"+OK Capability list follows\r\nTOP\r\nSTLS\r\nSASL SCRAM-SHA-256 PLAIN\r\n..ODD\r\n.\r\n"
        );
    }

    fn arb_word() -> impl Strategy<Value = String> {
        "[A-Za-z0-9._-]{1,12}"
    }

    fn arb_caps() -> impl Strategy<Value = Capabilities> {
        let mech = prop_oneof![
            proptest::sample::select(Mechanism::KNOWN.to_vec()),
            "X-[A-Z0-9]{1,8}".prop_map(Mechanism::Other)
        ];
        let expire = proptest::option::of(
            (prop_oneof![Just(ExpirePolicy::Never), any::<u32>().prop_map(ExpirePolicy::Days)], any::<bool>())
                .prop_map(|(policy, per_user)| Expire { policy, per_user }),
        );
        let delay = proptest::option::of(
            (any::<u32>(), any::<bool>()).prop_map(|(seconds, per_user)| LoginDelay { seconds, per_user }),
        );
        let other = proptest::collection::vec(
            ("X-[A-Za-z0-9-]{1,10}", proptest::collection::vec(arb_word(), 0..4))
                .prop_map(|(name, args)| OtherCapability { name, args }),
            0..4,
        );
        (
            proptest::array::uniform8(any::<bool>()),
            proptest::collection::vec(mech, 0..6),
            expire,
            delay,
            proptest::option::of("[!-~][ -~]{0,30}"),
            other,
        )
            .prop_map(|(flags, mut sasl, expire, login_delay, implementation, other)| {
                let mut seen = Vec::new();
                sasl.retain(|m| {
                    let fresh = !seen.contains(m);
                    seen.push(m.clone());
                    fresh
                });
                Capabilities {
                    top: flags[0],
                    user: flags[1],
                    sasl,
                    resp_codes: flags[2],
                    auth_resp_code: flags[3],
                    login_delay,
                    pipelining: flags[4],
                    expire,
                    uidl: flags[5],
                    implementation,
                    stls: flags[6],
                    other,
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn round_trip(caps in arb_caps()) {
            let lines = caps.lines().unwrap();
            let parsed = Capabilities::parse(lines.iter().map(|l| l.as_bytes())).unwrap();
            prop_assert_eq!(parsed, caps);
        }

        #[test]
        fn never_panics(lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..10)) {
            let _ = Capabilities::parse(lines.iter().map(Vec::as_slice));
        }
    }
}
