//! End-to-end tests of `weir agent`: the real binary tailing real files into
//! a real HTTP receiver on loopback.

mod cli;
mod collector;
mod common;
mod corruption;
mod crash;
mod forward;
mod isolation;
mod lanes;
mod monitor;
mod ops;
mod otlp;
mod outage;
mod reload;
mod syslog;
mod tail;
mod transforms;
mod ui;
mod zipkin;
