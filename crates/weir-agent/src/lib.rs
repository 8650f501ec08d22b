//! weir's node agent (DESIGN.md, component 3): what the monitors wrote and
//! what the host sends goes through sources, transforms and a buffer per
//! sink to the sinks, delivered in order and acknowledged end to end.

pub mod auth_guard;
pub mod buffer;
pub mod config;
pub mod delivery;
pub mod http_server;
pub mod metrics;
pub mod ops;
pub mod otlp;
pub mod pipeline;
mod read_at;
pub mod receiver;
pub mod record;
pub mod sink;
pub mod source;
pub mod tls;
pub mod transform;
pub mod zipkin;
