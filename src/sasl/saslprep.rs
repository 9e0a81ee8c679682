//! SASLprep (RFC 4013): the stringprep profile for user names and passwords.

use alloc::borrow::Cow;

use super::SaslError;

/// Prepares a user name or password (RFC 4013 §2): maps non-ASCII spaces to SPACE, removes
/// "commonly mapped to nothing" characters, applies NFKC, and refuses prohibited and
/// unassigned code points and bad bidirectional strings.
///
/// Printable ASCII is its own SASLprep form and needs no tables. Other strings need the
/// Unicode tables of the `std` feature; without it they are refused with
/// [`SaslError::Saslprep`] (never passed on unprepared).
pub fn saslprep(value: &str) -> Result<Cow<'_, str>, SaslError> {
    if value.is_ascii() && value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Ok(Cow::Borrowed(value));
    }
    #[cfg(feature = "std")]
    {
        stringprep::saslprep(value).map_err(|_| SaslError::Saslprep("prohibited or invalid character"))
    }
    #[cfg(not(feature = "std"))]
    {
        // RFC 3454 C.2.1: ASCII control characters are prohibited whatever the tables say.
        if value.is_ascii() {
            return Err(SaslError::Saslprep("prohibited or invalid character"));
        }
        Err(SaslError::Saslprep("non-ASCII needs the std feature's SASLprep tables"))
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    /// RFC 4013 §3 examples.
    #[test]
    fn rfc4013_examples() {
        assert_eq!(saslprep("I\u{00AD}X").unwrap(), "IX");
        assert_eq!(saslprep("user").unwrap(), "user");
        assert_eq!(saslprep("USER").unwrap(), "USER");
        assert_eq!(saslprep("\u{00AA}").unwrap(), "a");
        assert_eq!(saslprep("\u{2168}").unwrap(), "IX");
        assert!(saslprep("\u{0007}").is_err());
        assert!(saslprep("\u{0627}\u{0031}").is_err());
    }

    #[test]
    fn extra_cases() {
        assert_eq!(saslprep("pass\u{00A0}word").unwrap(), "pass word");
        assert_eq!(saslprep("\u{0627}\u{0628}").unwrap(), "\u{0627}\u{0628}");
        assert!(saslprep("\u{0627}a\u{0628}").is_err());
        assert_eq!(saslprep("\u{FF21}\u{FF22}\u{FF23}").unwrap(), "ABC");
        assert_eq!(saslprep("\u{FB01}").unwrap(), "fi");
        assert_eq!(saslprep("pässwörd€").unwrap(), "pässwörd€");
    }
}

#[cfg(all(test, not(feature = "std")))]
mod no_std_tests {
    use super::*;

    /// Without the tables: printable ASCII passes as it is, ASCII controls are prohibited, and
    /// anything else is refused rather than passed on unprepared.
    #[test]
    fn ascii_only_without_std() {
        assert_eq!(saslprep("user name").unwrap(), "user name");
        assert!(saslprep("a\u{0007}b").is_err());
        assert!(saslprep("\u{2168}").is_err());
        assert!(saslprep("pässwörd€").is_err());
    }
}
