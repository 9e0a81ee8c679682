//! MAIL/RCPT parameters (RFC 5321 §4.1.2, RFC 1870, RFC 6152, RFC 3461, RFC 4954 §5, RFC 6531):
//! one parameter parses or fails without panic; what parses, written into MAIL and RCPT,
//! parses back equal; a whole parameter list after a path does the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailwire::smtp::{Command, Parameter, Parameters, Path};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = core::str::from_utf8(data) {
        if let Ok(param) = Parameter::parse(text) {
            let list = [param];
            for command in [
                Command::Mail { from: Path::new("a@example.org"), params: Parameters::from_slice(&list) },
                Command::Rcpt { to: Path::new("b@example.org"), params: Parameters::from_slice(&list) },
            ] {
                if let Ok(bytes) = command.to_bytes() {
                    let line = bytes.strip_suffix(b"\r\n").expect("CRLF");
                    assert_eq!(Command::parse(line), Ok(command));
                }
            }
        }
    }
    // The input as the parameter list of a MAIL and a RCPT line.
    for prefix in [&b"MAIL FROM:<a@example.org> "[..], b"RCPT TO:<b@example.org> "] {
        let mut line = prefix.to_vec();
        line.extend_from_slice(data);
        if let Ok(command) = Command::parse(&line) {
            let params = match &command {
                Command::Mail { params, .. } | Command::Rcpt { params, .. } => *params,
                _ => unreachable!("a MAIL or RCPT line"),
            };
            let _ = (params.size(), params.auth(), params.is_empty());
            let collected: Vec<Parameter<'_>> = params.iter().collect();
            assert_eq!(Parameters::from_slice(&collected), params);
            if let Ok(bytes) = command.to_bytes() {
                let again = bytes.strip_suffix(b"\r\n").expect("CRLF");
                assert_eq!(Command::parse(again), Ok(command));
            }
        }
    }
});
