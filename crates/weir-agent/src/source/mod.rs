//! Sources: where records come into the pipeline.

pub mod file;

use std::sync::Arc;

use crate::buffer::Buffer;
use crate::metrics::SourceMetrics;
use crate::record::LogRecord;

/// Where a source's records go: the buffer of every sink it feeds.
#[derive(Debug, Clone)]
pub struct Output {
    buffers: Vec<Arc<Buffer>>,
    payloads: Vec<Vec<u8>>,
}

impl Output {
    pub fn new(buffers: Vec<Arc<Buffer>>) -> Output {
        Output {
            buffers,
            payloads: Vec::new(),
        }
    }

    /// Appends `records` to every buffer (waiting where a buffer blocks when
    /// full); returns, per buffer, the sequence number after them.
    pub fn emit(&mut self, records: &[LogRecord], metrics: &SourceMetrics) -> Vec<u64> {
        if self.payloads.len() < records.len() {
            self.payloads.resize_with(records.len(), Vec::new);
        }
        for (payload, record) in self.payloads.iter_mut().zip(records) {
            payload.clear();
            record.encode(payload);
        }
        let refs: Vec<&[u8]> = self.payloads[..records.len()]
            .iter()
            .map(Vec::as_slice)
            .collect();
        self.buffers
            .iter()
            .map(|buffer| {
                match buffer.append(&refs) {
                    Ok(appended) if appended.refused > 0 => {
                        metrics.refused.add(appended.refused, 0);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        metrics.refused.add(refs.len() as u64, 0);
                        eprintln!("weir: appending to a buffer: {e}");
                    }
                }
                buffer.next_seq()
            })
            .collect()
    }

    /// Per buffer, the sequence number below which everything was
    /// acknowledged by the sink, or is held durably (a disk buffer).
    pub fn acknowledged(&self) -> Vec<u64> {
        self.buffers
            .iter()
            .map(|b| {
                if b.is_durable() {
                    u64::MAX
                } else {
                    b.acked_below()
                }
            })
            .collect()
    }
}
