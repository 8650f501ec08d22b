//! Whatever a Forward client sends: read as MessagePack values one after
//! another (as a connection does), each decoded as a message of any mode
//! and, before the first, as a handshake PING. No panic; `skip` and `read`
//! agree on every value's length, and the skipper fed a few bytes at a
//! time finds the same end; no compressed message grows past its bound.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|input: &[u8]| checks::forward(input));
