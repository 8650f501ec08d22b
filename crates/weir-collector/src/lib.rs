//! weir's collector (DESIGN.md, component 4): the agent's pipeline with a
//! store at its end, the query API (weir's own and Zipkin's v2) and the
//! web UI, served from one process.

pub mod api;
pub mod run;
pub mod store;
pub mod traces;
pub mod ui;
