//! OTLP, the OpenTelemetry protocol: its messages ([`proto`], binary and
//! JSON), and the mapping of its log records ([`logs`]) and spans
//! ([`traces`]) to weir's records and back.

mod common;
pub mod decode_cost;
pub mod json;
pub mod logs;
pub mod proto;
pub mod traces;
