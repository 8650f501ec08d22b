//! Sinks: where a pipeline's records end up. Each runs on its own delivery
//! thread (see [`crate::delivery`]), which hands it one batch at a time and
//! takes its word on whether the batch arrived.

pub mod blackhole;
pub mod console;
pub mod file;
pub mod forward;
pub mod http;
pub mod ndjson;
pub mod store;

use std::time::Duration;

use crate::record::LogRecord;

/// Why a batch did not arrive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again: the destination is down, slow or busy.
    #[error("{reason}")]
    Retryable {
        reason: String,
        /// The destination asked to wait this long (`Retry-After`).
        retry_after: Option<Duration>,
    },
    /// Trying again cannot help: the destination refused the batch itself.
    #[error("{reason}")]
    Permanent { reason: String },
    /// The destination took the batch but refused `refused` of its records
    /// (OTLP's `partial_success`), without saying which: the batch counts
    /// as delivered, and the refused records as dropped by the destination.
    #[error("refused {refused} records: {reason}")]
    PartlyRefused { refused: u64, reason: String },
}

impl SendError {
    pub fn retryable(reason: impl Into<String>) -> SendError {
        SendError::Retryable {
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> SendError {
        SendError::Permanent {
            reason: reason.into(),
        }
    }
}

/// How much of each record a sink reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// Every field.
    Whole,
    /// Times, stream, severity, ids, the partial flag and the body: the
    /// scheduler decodes no resource, attributes or span fields for it
    /// (nor does its dead-letter file get them).
    Core,
}

/// A destination for batches of records.
pub trait Sink: Send {
    /// Delivers `records`, in order; `Ok` once the destination has them.
    fn send(&mut self, records: &[LogRecord]) -> Result<(), SendError>;

    /// What the sink reads of a record, so that nothing more is decoded.
    fn reads(&self) -> Reads {
        Reads::Whole
    }

    /// Says that the next [`Sink::send`] is a new batch's first attempt,
    /// not a retry: a sink that sends a batch in parts forgets which parts
    /// went.
    fn new_batch(&mut self) {}

    /// What of the batch being sent arrived, once the scheduler stops
    /// trying it (refused for good, or given up on): a sink that sends a
    /// batch in parts says which parts went, so that only the rest goes to
    /// the dead-letter file. By default, nothing did.
    fn arrived(&self, _records: &[LogRecord]) -> Arrived {
        Arrived::default()
    }
}

/// The part of a batch that arrived although the batch as a whole failed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Arrived {
    /// Whether each record of the batch arrived; empty when none did.
    pub records: Vec<bool>,
    /// How many of those the destination then refused (OTLP's
    /// `partial_success`).
    pub refused: u64,
}
