//! Sources: where records come into the pipeline, and the routes that take
//! a source's records through transforms to the buffers of its sinks.

pub mod file;

use std::sync::Arc;

use crate::buffer::Buffer;
use crate::metrics::SourceMetrics;
use crate::record::LogRecord;
use crate::transform::{Stage, TransformMetrics};

/// Where a source's records go next.
#[derive(Debug)]
pub enum Route {
    /// A sink's buffer: index into [`Output`]'s buffers.
    Sink(usize),
    /// A transform, then on to its own routes. Each source has its own
    /// instance of a transform, and so its own throttle windows.
    Transform {
        stage: Stage,
        metrics: Arc<TransformMetrics>,
        next: Vec<Route>,
    },
}

/// A source's routes and the buffers they end in.
#[derive(Debug)]
pub struct Output {
    buffers: Vec<Arc<Buffer>>,
    routes: Vec<Route>,
    payloads: Vec<Vec<u8>>,
}

impl Output {
    pub fn new(buffers: Vec<Arc<Buffer>>, routes: Vec<Route>) -> Output {
        Output {
            buffers,
            routes,
            payloads: Vec::new(),
        }
    }

    /// Sends `records` down every route (waiting where a buffer blocks when
    /// full); returns, per buffer, the sequence number after what it got.
    pub fn emit(&mut self, records: Vec<LogRecord>, metrics: &SourceMetrics) -> Vec<u64> {
        let mut routes = std::mem::take(&mut self.routes);
        self.walk(&mut routes, records, metrics);
        self.routes = routes;
        self.buffers.iter().map(|b| b.next_seq()).collect()
    }

    fn walk(&mut self, routes: &mut [Route], records: Vec<LogRecord>, metrics: &SourceMetrics) {
        let count = routes.len();
        let mut records = Some(records);
        for (i, route) in routes.iter_mut().enumerate() {
            // The last route takes the records; the others get copies.
            let mine = if i + 1 == count {
                records.take().unwrap_or_default()
            } else {
                records.clone().unwrap_or_default()
            };
            match route {
                Route::Sink(index) => self.append(*index, &mine, metrics),
                Route::Transform {
                    stage,
                    metrics: transform_metrics,
                    next,
                } => {
                    let mut mine = mine;
                    stage.apply(&mut mine, transform_metrics);
                    if !mine.is_empty() {
                        self.walk(next, mine, metrics);
                    }
                }
            }
        }
    }

    fn append(&mut self, index: usize, records: &[LogRecord], metrics: &SourceMetrics) {
        if records.is_empty() {
            return;
        }
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
        match self.buffers[index].append(&refs) {
            Ok(appended) if appended.refused > 0 => metrics.refused.add(appended.refused, 0),
            Ok(_) => {}
            Err(e) => {
                metrics.refused.add(refs.len() as u64, 0);
                eprintln!("weir: appending to a buffer: {e}");
            }
        }
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
