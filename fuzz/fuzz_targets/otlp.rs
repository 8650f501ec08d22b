//! Whatever an OTLP/HTTP client posts to /v1/logs or /v1/traces, read as
//! protobuf and as JSON: no panic, and whatever decodes maps to records and
//! back to a request without loss of the record count (spans without valid
//! ids are counted as rejected instead).
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use weir_agent::otlp::{logs, proto, traces};

fuzz_target!(|input: &[u8]| {
    let decoded = [
        proto::ExportLogsServiceRequest::decode(input).ok(),
        serde_json::from_slice::<proto::ExportLogsServiceRequest>(input).ok(),
    ];
    for request in decoded.into_iter().flatten() {
        let count: usize = request
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum();
        let records = logs::to_records(request, 0);
        assert_eq!(records.len(), count);
        let again = logs::to_request(&records);
        let back: usize = again
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum();
        assert_eq!(back, count);
    }
    let decoded = [
        proto::ExportTraceServiceRequest::decode(input).ok(),
        serde_json::from_slice::<proto::ExportTraceServiceRequest>(input).ok(),
    ];
    for request in decoded.into_iter().flatten() {
        let count: usize = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        let (records, rejected) = traces::to_records(request, 0);
        assert_eq!(records.len() + rejected, count);
        let again = traces::to_request(&records);
        let back: usize = again
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        assert_eq!(back, records.len());
    }
});
