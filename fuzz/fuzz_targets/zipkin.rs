//! Whatever a Zipkin reporter posts to /api/v2/spans, as JSON and as
//! proto3: no panic; every span that maps to a record maps back to a span
//! with the same ids.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|input: &[u8]| checks::zipkin(input));
