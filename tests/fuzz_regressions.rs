//! Inputs found by the fuzz targets in `fuzz/`, kept as regression tests.

use mailwire::smtp::Capabilities;

/// `smtp_capabilities`: a control character between spaces in the EHLO greeting left a
/// leading space after filtering, so generated lines did not parse back equal.
#[test]
fn fuzz_smtp_capabilities_control_char_in_greeting() {
    let caps = Capabilities::parse([&[255u8, 32, 17, 32, 255, 188][..]]);
    let lines = caps.ehlo_lines().unwrap();
    assert_eq!(Capabilities::parse(lines.iter().map(String::as_bytes)), caps);
    assert!(!caps.greeting.starts_with(' '));
}
