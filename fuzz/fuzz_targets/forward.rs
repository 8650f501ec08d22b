//! Whatever a Forward client sends: read as MessagePack values one after
//! another (as a connection does), each decoded as a message of any mode
//! and, before the first, as a handshake PING. No panic; `skip` and `read`
//! agree on every value's length; no compressed message grows past its
//! bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_agent::source::forward::auth::Handshake;
use weir_agent::source::forward::message::decode;
use weir_agent::source::forward::msgpack::{read, skip};

fuzz_target!(|input: &[u8]| {
    let handshake = Handshake::new("key", "host");
    let mut rest = input;
    let mut first = true;
    while let Ok(len) = skip(rest) {
        let (value, read_len) = read(&rest[..len]).expect("skip found a whole value");
        assert_eq!(read_len, len);
        if first {
            let _ = handshake.answer(&value);
            first = false;
        }
        if let Ok(decoded) = decode(&value, 1 << 16) {
            let body: usize = decoded.records.iter().map(|r| r.body.len()).sum();
            assert!(body <= (1 << 16) + input.len() * 64);
        }
        rest = &rest[len..];
    }
});
