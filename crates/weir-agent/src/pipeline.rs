//! Wiring a checked configuration into running components: a buffer and a
//! delivery scheduler per sink, each source feeding the buffers of the
//! sinks that name it, and the operations endpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::buffer::disk::{DiskBuffer, DiskConfig};
use crate::buffer::memory::{MemoryBuffer, MemoryConfig};
use crate::buffer::{Buffer, BufferError};
use crate::config::{AgentConfig, SinkConfig, SinkKind, SourceConfig};
use crate::delivery::{self, Backoff, DeliveryConfig, SinkFactory};
use crate::metrics::{SinkMetrics, SourceMetrics};
use crate::ops::{self, Registry};
use crate::sink::Sink;
use crate::sink::blackhole::Blackhole;
use crate::sink::console::Console;
use crate::sink::file::FileSink;
use crate::sink::http::{HttpConfig, HttpSink};
use crate::source::file::{self, FileSourceConfig};
use crate::source::{Output, Route};
use crate::transform::{Stage, TransformMetrics};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("sink {sink}: {source}")]
    Buffer {
        sink: String,
        #[source]
        source: BufferError,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// A running agent.
pub struct Running {
    sources_stop: Arc<AtomicBool>,
    sources: Vec<JoinHandle<()>>,
    sinks_stop: Arc<AtomicBool>,
    sinks: Vec<JoinHandle<()>>,
    buffers: BTreeMap<String, Arc<Buffer>>,
    pub registry: Arc<Registry>,
}

/// Starts everything `config` describes.
pub fn start(config: &AgentConfig) -> Result<Running, StartError> {
    let io = |what: String| move |source| StartError::Io { what, source };
    std::fs::create_dir_all(&config.data_dir)
        .map_err(io(format!("data_dir {}", config.data_dir.display())))?;
    let mut buffers = BTreeMap::new();
    for (name, sink) in &config.sinks {
        let buffer = open_buffer(&config.data_dir, name, sink)?;
        buffers.insert(name.clone(), Arc::new(buffer));
    }
    let sources_stop = Arc::new(AtomicBool::new(false));
    let sinks_stop = Arc::new(AtomicBool::new(false));
    let mut registry = Registry {
        stall_after: config
            .api
            .as_ref()
            .map_or(Duration::from_secs(60), |a| a.stall_after),
        ..Registry::default()
    };
    let mut sinks = Vec::new();
    for (name, sink) in &config.sinks {
        let metrics = Arc::new(SinkMetrics::new());
        let buffer = Arc::clone(&buffers[name]);
        registry
            .sinks
            .push((name.clone(), Arc::clone(&metrics), Arc::clone(&buffer)));
        let delivery = DeliveryConfig {
            max_records: sink.max_records,
            max_bytes: sink.max_bytes,
            timeout: sink.batch_timeout,
            concurrency: sink.concurrency,
            backoff: Backoff {
                initial: sink.retry_initial,
                cap: sink.retry_max,
            },
            max_retry_age: sink.max_retry_age,
            dead_letter: config
                .data_dir
                .join("dead-letter")
                .join(format!("{name}.ndjson")),
        };
        let handle = delivery::start(
            name,
            buffer,
            factory(&sink.kind),
            delivery,
            metrics,
            Arc::clone(&sinks_stop),
        )
        .map_err(io(format!("sink {name}")))?;
        sinks.push(handle);
    }
    let transform_metrics: BTreeMap<String, Arc<TransformMetrics>> = config
        .transforms
        .keys()
        .map(|name| (name.clone(), Arc::new(TransformMetrics::default())))
        .collect();
    registry.transforms = transform_metrics
        .iter()
        .map(|(n, m)| (n.clone(), Arc::clone(m)))
        .collect();
    let mut sources = Vec::new();
    for (name, source) in &config.sources {
        // The sinks this source reaches, directly or through transforms.
        let mut reached = Vec::new();
        let routes = routes_from(name, config, &transform_metrics, &mut reached);
        let fed: Vec<Arc<Buffer>> = reached
            .iter()
            .map(|sink| Arc::clone(&buffers[sink]))
            .collect();
        let metrics = Arc::new(SourceMetrics::default());
        registry.sources.push((name.clone(), Arc::clone(&metrics)));
        let SourceConfig::File {
            include,
            exclude,
            format,
            start_at_end,
            max_record,
            poll,
        } = source;
        let file_config = FileSourceConfig {
            include: include.clone(),
            exclude: exclude
                .iter()
                .filter_map(|p| glob::Pattern::new(p).ok())
                .collect(),
            format: *format,
            start_at_end: *start_at_end,
            max_record: *max_record,
            poll: *poll,
            checkpoint_path: config
                .data_dir
                .join("checkpoints")
                .join(format!("{name}.json")),
        };
        let handle = file::start(
            name,
            file_config,
            Output::new(fed, routes),
            metrics,
            Arc::clone(&sources_stop),
        )
        .map_err(io(format!("source {name}")))?;
        sources.push(handle);
    }
    let registry = Arc::new(registry);
    if let Some(api) = &config.api {
        ops::serve(api.address, Arc::clone(&registry))
            .map_err(io("the operations endpoint".to_owned()))?;
    }
    Ok(Running {
        sources_stop,
        sources,
        sinks_stop,
        sinks,
        buffers,
        registry,
    })
}

impl Running {
    /// Stops reading, gives the sinks up to `drain` to deliver what is
    /// buffered, then stops them. What a disk buffer still holds is sent
    /// after the next start; what a memory buffer holds is reported lost.
    pub fn stop(self, drain: Duration) {
        self.sources_stop.store(true, Ordering::Relaxed);
        for handle in self.sources {
            let _ = handle.join();
        }
        for buffer in self.buffers.values() {
            let _ = buffer.close();
        }
        let deadline = Instant::now() + drain;
        while Instant::now() < deadline && self.sinks.iter().any(|h| !h.is_finished()) {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.sinks_stop.store(true, Ordering::Relaxed);
        for handle in self.sinks {
            let _ = handle.join();
        }
        for (name, buffer) in &self.buffers {
            let held = buffer.stats().held;
            if held.records > 0 {
                let fate = if buffer.is_durable() {
                    "kept in its disk buffer for the next start"
                } else {
                    "lost with its memory buffer"
                };
                eprintln!(
                    "weir: sink {name}: {} records ({} bytes) not delivered at exit, {fate}",
                    held.records, held.bytes
                );
            }
        }
    }
}

/// The routes from component `from` on: straight to the sinks that name
/// it, and through the transforms that do. `reached` collects the sinks, in
/// the order their buffers are numbered in the routes.
fn routes_from(
    from: &str,
    config: &AgentConfig,
    metrics: &BTreeMap<String, Arc<TransformMetrics>>,
    reached: &mut Vec<String>,
) -> Vec<Route> {
    let mut routes = Vec::new();
    for (sink, sink_config) in &config.sinks {
        if sink_config.inputs.iter().any(|i| i == from) {
            let index = match reached.iter().position(|s| s == sink) {
                Some(index) => index,
                None => {
                    reached.push(sink.clone());
                    reached.len() - 1
                }
            };
            routes.push(Route::Sink(index));
        }
    }
    for (name, transform) in &config.transforms {
        if transform.inputs.iter().any(|i| i == from) {
            routes.push(Route::Transform {
                stage: Stage::new(transform.transform.clone()),
                metrics: Arc::clone(&metrics[name]),
                next: routes_from(name, config, metrics, reached),
            });
        }
    }
    routes
}

fn open_buffer(data_dir: &Path, name: &str, sink: &SinkConfig) -> Result<Buffer, StartError> {
    let config = &sink.buffer;
    if !config.disk {
        return Ok(Buffer::Memory(MemoryBuffer::new(MemoryConfig {
            max_bytes: config.max_size,
            when_full: config.when_full,
        })));
    }
    let dir: PathBuf = data_dir.join("buffers").join(name);
    let (buffer, recovery) = DiskBuffer::open(
        &dir,
        DiskConfig {
            max_bytes: config.max_size,
            fsync: config.fsync,
            when_full: config.when_full,
            ..DiskConfig::default()
        },
    )
    .map_err(|source| StartError::Buffer {
        sink: name.to_owned(),
        source,
    })?;
    if recovery.mark_lost {
        eprintln!(
            "weir: sink {name}: the buffer's acknowledgement mark was lost; everything in it is sent again"
        );
    }
    for cut in &recovery.cuts {
        eprintln!(
            "weir: sink {name}: cut {} damaged bytes from {} at offset {}: {}",
            cut.bytes,
            cut.path.display(),
            cut.offset,
            cut.reason
        );
    }
    if recovery.pending.records > 0 {
        eprintln!(
            "weir: sink {name}: {} records ({} bytes) from before the restart will be delivered",
            recovery.pending.records, recovery.pending.bytes
        );
    }
    Ok(Buffer::Disk(buffer))
}

fn factory(kind: &SinkKind) -> SinkFactory {
    match kind.clone() {
        SinkKind::Blackhole => Box::new(|| Ok(Box::new(Blackhole) as Box<dyn Sink>)),
        SinkKind::Console { stderr } => {
            Box::new(move || Ok(Box::new(Console::new(stderr)) as Box<dyn Sink>))
        }
        SinkKind::File { path } => {
            Box::new(move || Ok(Box::new(FileSink::new(&path)) as Box<dyn Sink>))
        }
        SinkKind::Http {
            uri,
            headers,
            gzip,
            timeout,
        } => {
            let headers: Vec<_> = headers
                .iter()
                .filter_map(|(n, v)| {
                    Some((
                        hyper::header::HeaderName::from_bytes(n.as_bytes()).ok()?,
                        hyper::header::HeaderValue::from_str(v).ok()?,
                    ))
                })
                .collect();
            Box::new(move || {
                let sink = HttpSink::new(HttpConfig {
                    uri: uri.clone(),
                    headers: headers.clone(),
                    gzip,
                    timeout,
                })?;
                Ok(Box::new(sink) as Box<dyn Sink>)
            })
        }
    }
}
