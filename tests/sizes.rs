//! How big the machines and the main values are, reported by
//! `cargo test --test sizes -- --nocapture` and kept under generous bounds so that a
//! regression (a large array inlined by mistake) shows up. Figures are in BENCHMARKS.md.

use std::mem::size_of;

fn report(name: &str, size: usize, bound: usize) {
    println!("{name:<28} {size:>5} bytes");
    assert!(size <= bound, "{name} is {size} bytes, over {bound}");
}

#[test]
fn machine_sizes() {
    report("smtp::Client", size_of::<mailwire::smtp::Client>(), 2048);
    report("pop3::Client", size_of::<mailwire::pop3::Client>(), 2048);
    report("smtp::Server", size_of::<mailwire::smtp::Server>(), 2048);
    report("pop3::Server", size_of::<mailwire::pop3::Server>(), 2048);
    report("smtp::ClientConfig", size_of::<mailwire::smtp::ClientConfig>(), 512);
    report("pop3::ClientConfig", size_of::<mailwire::pop3::ClientConfig>(), 512);
}

#[test]
fn value_sizes() {
    report("smtp::Command", size_of::<mailwire::smtp::Command<'_>>(), 128);
    report("smtp::Reply", size_of::<mailwire::smtp::Reply>(), 64);
    report("smtp::ParsedLine", size_of::<mailwire::smtp::ParsedLine<'_>>(), 64);
    report("smtp::Capabilities", size_of::<mailwire::smtp::Capabilities>(), 256);
    report("smtp::CapabilitiesRef", size_of::<mailwire::smtp::CapabilitiesRef<'_>>(), 64);
    report("smtp::client::Event", size_of::<mailwire::smtp::client::Event>(), 256);
    report("pop3::Command", size_of::<mailwire::pop3::Command<'_>>(), 128);
    report("pop3::client::Event", size_of::<mailwire::pop3::client::Event>(), 256);
    report("wire::LineReader", size_of::<mailwire::wire::LineReader>(), 128);
    report("wire::Lines", size_of::<mailwire::wire::Lines<'_, '_>>(), 32);
    report("sasl::Mechanism", size_of::<mailwire::sasl::Mechanism>(), 32);
}
