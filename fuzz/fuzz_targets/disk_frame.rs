//! A disk buffer segment holds whatever the disk gives back: frames must
//! decode to what was framed, and garbage must come out as a stated
//! corruption, never a panic or an allocation past the record limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_agent::buffer::disk::frame::{self, Next};

const MAX: u32 = 1 << 16;

fuzz_target!(|input: (Vec<Vec<u8>>, &[u8])| {
    let (payloads, garbage) = input;
    // What was framed reads back, then the garbage after it ends the reading
    // one way or another.
    let mut bytes = Vec::new();
    let payloads: Vec<Vec<u8>> = payloads
        .into_iter()
        .filter(|p| p.len() <= MAX as usize)
        .collect();
    for payload in &payloads {
        frame::encode(payload, &mut bytes);
    }
    bytes.extend_from_slice(garbage);
    let mut input = &bytes[..];
    let mut payload = Vec::new();
    for expected in &payloads {
        assert!(matches!(
            frame::read_next(&mut input, MAX, &mut payload).unwrap(),
            Next::Record
        ));
        assert_eq!(&payload, expected);
    }
    loop {
        match frame::read_next(&mut input, MAX, &mut payload).unwrap() {
            Next::Record => assert!(payload.len() <= MAX as usize),
            Next::End | Next::Corrupt(_) => break,
        }
    }
    // Parsing in place agrees with reading, frame by frame.
    let mut rest = &bytes[..];
    let mut streamed = &bytes[..];
    loop {
        let parsed = frame::parse(rest, MAX);
        let read = frame::read_next(&mut streamed, MAX, &mut payload).unwrap();
        match (parsed, read) {
            (frame::Parsed::Record(p, len), Next::Record) => {
                assert_eq!(p, &payload[..]);
                rest = &rest[len..];
            }
            (frame::Parsed::Record(..), other) => panic!("parse found a record, read_next {other:?}"),
            (_, Next::Record) => panic!("read_next found a record, parse did not"),
            _ => break,
        }
    }
});
