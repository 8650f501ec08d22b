//! The bandwidth gate: how many bytes of application output may pass per
//! second, and what happens to the rest.
//!
//! - [`units`] parses the human units budgets are written in (`5MiB/s`);
//! - [`bucket`] is the token bucket every budget is made of;
//! - [`config`] reads the SRE's gate file and reconciles an application's
//!   request with it;
//! - [`fair`] splits the node budget max-min fairly by weight;
//! - [`node`] is the state all monitors of a node share, without a daemon;
//! - [`policy`] names what an application chose for when its budget runs
//!   out: block, drop or ring.
//!
//! A budget counts the bytes the application wrote, never weir's own framing,
//! so it means the same whatever the log format.

pub mod bucket;
pub mod config;
pub mod fair;
pub mod node;
pub mod policy;
pub mod units;

pub use bucket::{Budget, TokenBucket};
pub use policy::Policy;
