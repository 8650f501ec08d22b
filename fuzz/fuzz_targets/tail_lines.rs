//! Whatever a tailed file holds: each line parsed as CRI, Docker json-file
//! and plain, then through the json and logfmt transforms. No panic; no
//! record over the size limit; and for plain lines, every byte is kept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_agent::record::LogRecord;
use weir_agent::source::file::Format;
use weir_agent::source::file::format::LineParser;
use weir_agent::transform::{Stage, Transform, TransformMetrics};

const MAX: usize = 64;

fuzz_target!(|input: &[u8]| {
    for format in [Format::Cri, Format::Docker, Format::Plain] {
        let mut parser = LineParser::new(format, MAX);
        let mut records: Vec<LogRecord> = Vec::new();
        for line in input.split(|b| *b == b'\n') {
            parser.parse(line, 0, &mut records);
        }
        records.extend(parser.take_open());
        assert!(records.iter().all(|r| r.body.len() <= MAX));
        if format == Format::Plain {
            let kept: usize = records.iter().map(|r| r.body.len()).sum();
            let lines: usize = input.split(|b| *b == b'\n').map(<[u8]>::len).sum();
            assert_eq!(kept, lines, "plain lines are kept byte for byte");
        }
        let metrics = TransformMetrics::default();
        for transform in [
            Transform::Json { body_from: Some("msg".into()) },
            Transform::Logfmt { body_from: Some("msg".into()) },
        ] {
            let mut batch = records.clone();
            Stage::new(transform).apply(&mut batch, &metrics);
        }
    }
});
