//! Whatever arrives on a syslog socket: framed as a TCP stream (split at a
//! point the input chooses) and parsed as messages of both RFCs. No panic;
//! no framed message over the maximum; and a message that does not parse keeps every byte in its body.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|input: &[u8]| checks::syslog(input));
