//! Whatever an OTLP/HTTP client posts to /v1/logs or /v1/traces, read as
//! protobuf and as JSON: no panic, and whatever decodes maps to records and
//! back to a request without loss of the record count (spans without valid
//! ids are counted as rejected instead).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|input: &[u8]| checks::otlp(input));
