//! OTLP, the OpenTelemetry protocol: its messages ([`proto`], binary and
//! JSON), and the mapping between its log records and weir's ([`logs`]).

pub mod json;
pub mod logs;
pub mod proto;
