//! Whatever a Zipkin reporter posts to /api/v2/spans, as JSON and as
//! proto3: no panic; every span that maps to a record maps back to a span
//! with the same ids.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use weir_agent::zipkin::{self, Span, proto};

fuzz_target!(|input: &[u8]| {
    let mut spans: Vec<Span> = serde_json::from_slice(input).unwrap_or_default();
    if let Ok(list) = proto::ListOfSpans::decode(input) {
        spans.extend(list.spans.into_iter().map(Span::from));
    }
    for span in spans {
        if let Ok(record) = zipkin::to_record(span.clone(), 0) {
            let back = zipkin::from_record(&record).expect("a span record");
            assert_eq!(back.id, span.id.to_lowercase());
        }
    }
});
