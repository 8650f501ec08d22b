//! A record payload read back from a disk buffer may be damaged in ways the
//! frame checksum did not catch (or written by another version): decoding
//! must fail with an error, never panic or allocate past the input, and what
//! decodes must encode to a form that decodes to the same record (compared
//! by its bytes: a NaN attribute is not equal to itself).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_agent::record::LogRecord;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(record) = LogRecord::decode(bytes) {
        let mut canonical = Vec::new();
        record.encode(&mut canonical);
        let again = LogRecord::decode(&canonical).expect("an encoded record decodes");
        let mut twice = Vec::new();
        again.encode(&mut twice);
        assert_eq!(canonical, twice);
    }
});
