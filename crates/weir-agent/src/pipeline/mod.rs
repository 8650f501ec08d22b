//! Wiring a checked configuration into running components: a buffer and a
//! delivery scheduler per sink, each source feeding the buffers of the
//! sinks that name it, and the operations endpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod lanes;

use self::lanes::{Lane, LaneKey};
use crate::buffer::disk::{DiskBuffer, DiskConfig};
use crate::buffer::memory::{MemoryBuffer, MemoryConfig};
use crate::buffer::{Buffer, BufferError};
use crate::config::{AgentConfig, SinkConfig, SinkKind, SourceConfig};
use crate::delivery::{self, Backoff, DeliveryConfig, SinkFactory};
use crate::http_server::Handler;
use crate::metrics::{SinkMetrics, SourceMetrics};
use crate::ops::{self, Registry, SharedRegistry};
use crate::sink::Sink;
use crate::sink::blackhole::Blackhole;
use crate::sink::console::Console;
use crate::sink::file::{FileOptions, FileSink};
use crate::sink::forward::ForwardSink;
use crate::sink::http::{HttpConfig, HttpSink};
use crate::sink::store::{RecordStore, StoreSink};
use crate::source::file::checkpoint::{Checkpoints, Entry};
use crate::source::file::{self, FileSourceConfig, Handover};
use crate::source::{Control, Output, Position, Route, Wiring};
use crate::source::{forward, otlp, syslog, zipkin};
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

/// A sink at work: its buffer and the delivery scheduler draining it.
struct SinkRuntime {
    config: SinkConfig,
    buffer: Arc<Buffer>,
    metrics: Arc<SinkMetrics>,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

/// A source at work: a reader for each of its lanes.
struct SourceRuntime {
    config: SourceConfig,
    lanes: BTreeMap<LaneKey, LaneRuntime>,
}

/// One lane of a source: its reader, what it feeds, and the slot through
/// which a reload hands it new routes without stopping it.
struct LaneRuntime {
    sinks: Vec<String>,
    metrics: Arc<SourceMetrics>,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
    control: Arc<Control>,
}

impl LaneRuntime {
    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.control.resume(None);
        let _ = self.handle.join();
    }
}

/// What the process running a pipeline adds to it: `weir collector` its
/// store, for `store` sinks, and its query API, which a zipkin source on
/// the API's address serves beside its intake.
#[derive(Clone, Default)]
pub struct Extensions {
    pub store: Option<Arc<dyn RecordStore>>,
    pub api: Option<(std::net::SocketAddr, Handler)>,
}

/// A running agent.
pub struct Running {
    config: AgentConfig,
    extensions: Extensions,
    sinks: BTreeMap<String, SinkRuntime>,
    sources: BTreeMap<String, SourceRuntime>,
    transform_metrics: BTreeMap<String, Arc<TransformMetrics>>,
    registry: SharedRegistry,
}

/// Starts everything `config` describes.
pub fn start(config: &AgentConfig) -> Result<Running, StartError> {
    start_with(config, Extensions::default())
}

/// Starts everything `config` describes, with what the process adds.
pub fn start_with(config: &AgentConfig, extensions: Extensions) -> Result<Running, StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::Io {
        what: format!("data_dir {}", config.data_dir.display()),
        source,
    })?;
    let mut running = Running {
        config: AgentConfig {
            sources: BTreeMap::new(),
            transforms: BTreeMap::new(),
            sinks: BTreeMap::new(),
            ..config.clone()
        },
        extensions,
        sinks: BTreeMap::new(),
        sources: BTreeMap::new(),
        transform_metrics: BTreeMap::new(),
        registry: Arc::new(Mutex::new(Arc::new(Registry::default()))),
    };
    running.apply(config, Duration::ZERO)?;
    if let Some(api) = &config.api {
        ops::serve(api.address, Arc::clone(&running.registry)).map_err(|source| {
            StartError::Io {
                what: "the operations endpoint".to_owned(),
                source,
            }
        })?;
    }
    Ok(running)
}

impl Running {
    /// What /metrics and /health report on now.
    pub fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.registry.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Moves to `new`: components whose configuration is the same keep
    /// running; a changed sink keeps its buffer (taking new limits in place,
    /// or moving its records into a buffer of the other kind) and starts
    /// delivering again from the oldest record not acknowledged; a source
    /// that stays gets its new routes between two reads. A sink that goes
    /// away is given `drain` to deliver what it holds. The data directory and the
    /// operations endpoint stay as they were started.
    pub fn reload(&mut self, new: &AgentConfig, drain: Duration) -> Result<(), StartError> {
        let applied = self.apply(new, drain);
        if applied.is_err() {
            // Lanes the failure left parked read on, with the routes they had.
            for lane in self.sources.values().flat_map(|s| s.lanes.values()) {
                lane.control.resume(None);
            }
        }
        applied
    }

    fn apply(&mut self, new: &AgentConfig, drain: Duration) -> Result<(), StartError> {
        let data_dir = self.config.data_dir.clone();
        let extensions = self.extensions.clone();
        // Every lane parks between two reads while the sinks change, so no
        // record goes to a buffer being retired or replaced.
        for (name, source) in &self.sources {
            for (key, lane) in &source.lanes {
                if !lane.control.pause(drain.max(Duration::from_secs(1))) {
                    eprintln!(
                        "weir: reload: source {} is waiting on a full buffer; it takes the new routes after that",
                        lanes::display(name, key)
                    );
                }
            }
        }
        // Sources that go or change stop.
        let leaving: Vec<String> = self
            .sources
            .iter()
            .filter(|(name, source)| new.sources.get(*name) != Some(&source.config))
            .map(|(name, _)| name.clone())
            .collect();
        for name in leaving {
            let source = self.sources.remove(&name).expect("listed above");
            for lane in source.lanes.into_values() {
                lane.stop();
            }
        }
        // Sinks. What cannot be changed is said, and the rest goes on: a
        // sink that fails keeps what it had, or is left out.
        let mut failure = None;
        let names: Vec<String> = self.sinks.keys().cloned().collect();
        for name in names {
            let Some(wanted) = new.sinks.get(&name) else {
                let old = self.sinks.remove(&name).expect("listed above");
                retire(&name, old, drain);
                continue;
            };
            if *wanted == self.sinks[&name].config {
                continue;
            }
            if let Err(e) = self.change_sink(&data_dir, &name, wanted, &extensions, drain) {
                failure.get_or_insert(e);
            }
        }
        for (name, wanted) in &new.sinks {
            if !self.sinks.contains_key(name) {
                let started = open_buffer(&data_dir, name, wanted).and_then(|buffer| {
                    start_sink(&data_dir, name, wanted, Arc::new(buffer), &extensions)
                });
                match started {
                    Ok(runtime) => {
                        self.sinks.insert(name.clone(), runtime);
                    }
                    Err(e) => {
                        failure.get_or_insert(e);
                    }
                }
            }
        }
        // Transforms keep their counters across a reload.
        self.transform_metrics
            .retain(|name, _| new.transforms.contains_key(name));
        for name in new.transforms.keys() {
            self.transform_metrics
                .entry(name.clone())
                .or_insert_with(|| Arc::new(TransformMetrics::default()));
        }
        // Sources: new routes for the lanes that stay, a start for the
        // others.
        for (name, wanted) in &new.sources {
            if let Err(e) = self.apply_lanes(&data_dir, name, wanted, new) {
                failure.get_or_insert(e);
            }
        }
        self.config = AgentConfig {
            data_dir,
            api: self.config.api.clone(),
            ..new.clone()
        };
        *self.registry.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(self.build_registry());
        failure.map_or(Ok(()), Err)
    }

    /// Moves running sink `name` to `wanted`: its buffer takes the new
    /// limits in place, or its records move to a buffer of the other kind
    /// (or stay on disk). Should that fail, the sink starts again as it
    /// was, with its buffer; should that fail too, it is left out and what
    /// its buffer holds is said.
    fn change_sink(
        &mut self,
        data_dir: &Path,
        name: &str,
        wanted: &SinkConfig,
        extensions: &Extensions,
        drain: Duration,
    ) -> Result<(), StartError> {
        let old = self.sinks.remove(name).expect("a running sink");
        // Stop delivering; what was in flight is sent again.
        old.stop.store(true, Ordering::Relaxed);
        let _ = old.handle.join();
        old.buffer.rewind();
        let changed = if old.buffer.reconfigure(&wanted.buffer) {
            start_sink(data_dir, name, wanted, Arc::clone(&old.buffer), extensions)
                .map(|runtime| (runtime, None))
        } else {
            // Memory ↔ disk. The new buffer's delivery starts first, so
            // moving records into it cannot wait on a full buffer forever.
            open_buffer(data_dir, name, wanted).and_then(|buffer| {
                let buffer = Arc::new(buffer);
                start_sink(data_dir, name, wanted, Arc::clone(&buffer), extensions)
                    .map(|runtime| (runtime, Some(buffer)))
            })
        };
        let (runtime, new_buffer) = match changed {
            Ok(changed) => changed,
            Err(e) => {
                match start_sink(
                    data_dir,
                    name,
                    &old.config,
                    Arc::clone(&old.buffer),
                    extensions,
                ) {
                    Ok(again) => {
                        self.sinks.insert(name.to_owned(), again);
                    }
                    Err(again) => {
                        eprintln!("weir: sink {name}: could not start again as it was: {again}");
                        let _ = old.buffer.close();
                        report_undelivered(name, &old.buffer, "when it could not start again");
                    }
                }
                return Err(e);
            }
        };
        if let Some(new_buffer) = new_buffer {
            if old.buffer.is_durable() {
                // Disk to memory: what waits stays on disk, in its
                // directory, for when the sink has a disk buffer again.
                let held = old.buffer.stats().held;
                if held.records > 0 {
                    eprintln!(
                        "weir: sink {name}: {} records stay in its disk buffer, sent when it has a disk buffer again",
                        held.records
                    );
                }
            } else {
                let moved = old
                    .buffer
                    .move_to_disk(&new_buffer, drain.max(Duration::from_secs(1)));
                if moved > 0 {
                    eprintln!("weir: sink {name}: {moved} records moved to its disk buffer");
                }
                let _ = old.buffer.close();
                report_undelivered(name, &old.buffer, "when its buffer was replaced");
                let left = old.buffer.stats().held;
                runtime.metrics.left_by_reload.add(left.records, left.bytes);
            }
        }
        self.sinks.insert(name.to_owned(), runtime);
        Ok(())
    }

    /// Brings source `name`'s lanes to what `config` asks: a lane that
    /// stays takes its new routes, a new lane starts (reading on from where
    /// the lane that fed its sink before was acknowledged to), and a lane
    /// no longer wanted stops and forgets its checkpoints.
    fn apply_lanes(
        &mut self,
        data_dir: &Path,
        name: &str,
        wanted: &SourceConfig,
        config: &AgentConfig,
    ) -> Result<(), StartError> {
        // The sinks it feeds that run: one a failed reload left out has no
        // lane, lest its checkpoints move past what it never got.
        let mut reached = Vec::new();
        routes_from(
            name,
            config,
            &self.transform_metrics,
            &mut reached,
            &|sink| self.sinks.contains_key(sink),
        );
        let mut running = match self.sources.remove(name) {
            Some(source) => source.lanes,
            None => BTreeMap::new(),
        };
        // Only a source that can read again what it read has lanes; a
        // listener has one reader, and a sink that waits holds back its
        // senders.
        let lanes = if wanted.rereads() {
            let on_disk = lanes::own_lanes_on_disk(data_dir, name);
            let has_own_lane = |sink: &str| {
                running.contains_key(&Some(sink.to_owned())) || on_disk.iter().any(|s| s == sink)
            };
            lanes::partition(&reached, config, &has_own_lane)
        } else {
            vec![Lane {
                key: None,
                sinks: reached,
            }]
        };
        // A lane that cannot be placed or started is left out, the others
        // go on, and the first failure is said: a reload of the same file
        // tries it again.
        let mut failure = None;
        // New lanes are placed while the running ones are still parked.
        let mut handovers = BTreeMap::new();
        let mut unplaced = Vec::new();
        for lane in lanes.iter().filter(|l| !running.contains_key(&l.key)) {
            let checkpoints = lanes::checkpoint_path(data_dir, name, &lane.key);
            if Checkpoints::exist(&checkpoints) {
                continue;
            }
            let Some(seed) = seed_for(data_dir, name, lane, &running, &self.sinks) else {
                continue;
            };
            match seed.place(&checkpoints) {
                Ok(Some(handover)) => {
                    handovers.insert(lane.key.clone(), handover);
                }
                Ok(None) => {}
                Err(source) => {
                    unplaced.push(lane.key.clone());
                    failure.get_or_insert(StartError::Io {
                        what: format!("checkpoints of source {}", lanes::display(name, &lane.key)),
                        source,
                    });
                }
            }
        }
        // The lanes of sinks gone from the source while the agent was down
        // (after the new lanes were seeded, maybe from them): a sink of
        // that name added later starts afresh.
        for sink in lanes::own_lanes_on_disk(data_dir, name) {
            let key = Some(sink);
            if !lanes.iter().any(|l| l.key == key) && !running.contains_key(&key) {
                forget_checkpoints(data_dir, name, &key);
            }
        }
        let mut started = BTreeMap::new();
        for lane in lanes.iter().filter(|l| !unplaced.contains(&l.key)) {
            let output = self.output_for(name, config, &lane.sinks);
            if let Some(mut runtime) = running.remove(&lane.key) {
                let output = output.stopping_with(Arc::clone(&runtime.stop));
                runtime.control.resume(Some(output));
                runtime.sinks = lane.sinks.clone();
                started.insert(lane.key.clone(), runtime);
                continue;
            }
            let checkpoints = lanes::checkpoint_path(data_dir, name, &lane.key);
            match start_lane(
                name,
                &lane.key,
                wanted,
                checkpoints,
                handovers.remove(&lane.key),
                output,
                &self.extensions,
            ) {
                Ok(mut runtime) => {
                    runtime.sinks = lane.sinks.clone();
                    started.insert(lane.key.clone(), runtime);
                }
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        for (key, lane) in running {
            lane.stop();
            forget_checkpoints(data_dir, name, &key);
        }
        if !lanes.iter().any(|lane| lane.key.is_none()) {
            // Left from when one lane read for every sink.
            forget_checkpoints(data_dir, name, &None);
        }
        self.sources.insert(
            name.to_owned(),
            SourceRuntime {
                config: wanted.clone(),
                lanes: started,
            },
        );
        failure.map_or(Ok(()), Err)
    }

    /// The routes from source `name` through the transforms of `config` to
    /// the buffers of the running sinks among `sinks`.
    fn output_for(&self, name: &str, config: &AgentConfig, sinks: &[String]) -> Output {
        let mut reached = Vec::new();
        // A sink a failed reload left out is not fed.
        let routes = routes_from(
            name,
            config,
            &self.transform_metrics,
            &mut reached,
            &|sink| sinks.iter().any(|s| s == sink) && self.sinks.contains_key(sink),
        );
        let fed = reached
            .iter()
            .map(|sink| Arc::clone(&self.sinks[sink].buffer))
            .collect();
        Output::new(fed, routes)
    }

    fn build_registry(&self) -> Registry {
        Registry {
            sources: self
                .sources
                .iter()
                .flat_map(|(name, source)| {
                    source.lanes.iter().map(move |(key, lane)| {
                        let labels = match key {
                            None => format!("source=\"{name}\""),
                            Some(sink) => format!("source=\"{name}\",lane=\"{sink}\""),
                        };
                        (labels, Arc::clone(&lane.metrics))
                    })
                })
                .collect(),
            transforms: self
                .transform_metrics
                .iter()
                .map(|(n, m)| (n.clone(), Arc::clone(m)))
                .collect(),
            sinks: self
                .sinks
                .iter()
                .map(|(n, s)| (n.clone(), Arc::clone(&s.metrics), Arc::clone(&s.buffer)))
                .collect(),
            stall_after: self
                .config
                .api
                .as_ref()
                .map_or(Duration::from_secs(60), |a| a.stall_after),
        }
    }

    /// Stops reading, gives the sinks up to `drain` to deliver what is
    /// buffered, then stops them. What a disk buffer still holds is sent
    /// after the next start; what a memory buffer holds is reported lost.
    pub fn stop(self, drain: Duration) {
        for lane in self.sources.values().flat_map(|s| s.lanes.values()) {
            lane.stop.store(true, Ordering::Relaxed);
            lane.control.resume(None);
        }
        for lane in self
            .sources
            .into_values()
            .flat_map(|s| s.lanes.into_values())
        {
            let _ = lane.handle.join();
        }
        for sink in self.sinks.values() {
            let _ = sink.buffer.close();
        }
        let deadline = Instant::now() + drain;
        while Instant::now() < deadline && self.sinks.values().any(|s| !s.handle.is_finished()) {
            std::thread::sleep(Duration::from_millis(20));
        }
        for (name, sink) in self.sinks {
            sink.stop.store(true, Ordering::Relaxed);
            let _ = sink.handle.join();
            report_undelivered(&name, &sink.buffer, "at exit");
        }
    }
}

/// Closes a sink's buffer, gives its delivery `drain` to empty it, stops it.
fn retire(name: &str, sink: SinkRuntime, drain: Duration) {
    let _ = sink.buffer.close();
    let deadline = Instant::now() + drain;
    while Instant::now() < deadline && !sink.handle.is_finished() {
        std::thread::sleep(Duration::from_millis(20));
    }
    sink.stop.store(true, Ordering::Relaxed);
    let _ = sink.handle.join();
    report_undelivered(name, &sink.buffer, "when it was reconfigured");
}

fn report_undelivered(name: &str, buffer: &Buffer, when: &str) {
    let held = buffer.stats().held;
    if held.records > 0 {
        let fate = if buffer.is_durable() {
            "kept in its disk buffer for the next start"
        } else {
            "lost with its memory buffer"
        };
        eprintln!(
            "weir: sink {name}: {} records ({} bytes) not delivered {when}, {fate}",
            held.records, held.bytes
        );
    }
}

fn start_sink(
    data_dir: &Path,
    name: &str,
    sink: &SinkConfig,
    buffer: Arc<Buffer>,
    extensions: &Extensions,
) -> Result<SinkRuntime, StartError> {
    let metrics = Arc::new(SinkMetrics::new());
    let stop = Arc::new(AtomicBool::new(false));
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
        dead_letter: data_dir.join("dead-letter").join(format!("{name}.ndjson")),
        order_key: sink.order_key.clone(),
    };
    let handle = delivery::start(
        name,
        Arc::clone(&buffer),
        factory(name, &sink.kind, extensions)?,
        delivery,
        Arc::clone(&metrics),
        Arc::clone(&stop),
    )
    .map_err(|source| StartError::Io {
        what: format!("sink {name}"),
        source,
    })?;
    Ok(SinkRuntime {
        config: sink.clone(),
        buffer,
        metrics,
        stop,
        handle,
    })
}

/// Where a new lane starts reading.
enum Seed {
    /// For a sink new to the source: from where a parked lane had read to,
    /// so it gets what is read from now on.
    Read(Vec<Entry>),
    /// For a sink leaving a parked lane for one of its own: on from where
    /// that lane had read to (the sink's buffer has the rest), acknowledged
    /// where that lane was until the sink acknowledges what it got.
    Split(Handover),
    /// Where a lane's sinks had acknowledged (what was in flight comes
    /// twice): the checkpoints at this path.
    Acknowledged(PathBuf),
}

impl Seed {
    /// Writes the lane's first checkpoints at `path`; returns what the
    /// lane's reader takes over.
    fn place(self, path: &Path) -> std::io::Result<Option<Handover>> {
        match self {
            Seed::Read(entries) => Checkpoints::write(path, entries).map(|()| None),
            Seed::Split(handover) => {
                let acknowledged = handover.positions.iter().map(|p| p.acknowledged.clone());
                Checkpoints::write(path, acknowledged.collect()).map(|()| Some(handover))
            }
            Seed::Acknowledged(from) => Checkpoints::copy(from.as_path(), path).map(|()| None),
        }
    }
}

/// Where a new lane of a running source starts. A sink the source fed
/// before, on the shared lane, splits off it (see [`Seed::Split`]); a sink
/// new to the source gets what is read from now on. A lane that did not
/// park (it waits on a full buffer) gives its acknowledged place instead.
/// A source that starts goes on from the checkpoints of its shared lane or
/// else of any lane it had: a sink that gets a lane of its own while the
/// agent was down gets again what the shared lane had not acknowledged.
/// With none, the lane starts as `start_at` says.
fn seed_for(
    data_dir: &Path,
    name: &str,
    lane: &Lane,
    running: &BTreeMap<LaneKey, LaneRuntime>,
    sinks: &BTreeMap<String, SinkRuntime>,
) -> Option<Seed> {
    let fed_before = running
        .iter()
        .find(|(_, l)| l.sinks.iter().any(|s| lane.sinks.contains(s)));
    if let Some((key, other)) = fed_before.or_else(|| running.iter().next()) {
        let Some(positions) = other.control.positions() else {
            // It has stored checkpoints unless it has not scanned yet: then
            // it has read nothing either, and the new lane starts afresh.
            let path = lanes::checkpoint_path(data_dir, name, key);
            return Checkpoints::exist(&path).then_some(Seed::Acknowledged(path));
        };
        if fed_before.is_none() {
            return Some(Seed::Read(
                positions.iter().map(Position::read_entry).collect(),
            ));
        }
        let behind = lane
            .sinks
            .iter()
            .map(|sink| {
                let buffer = Arc::clone(&sinks[sink].buffer);
                let end = buffer.next_seq();
                (buffer, end)
            })
            .collect();
        return Some(Seed::Split(Handover { positions, behind }));
    }
    std::iter::once(None)
        .chain(
            lanes::own_lanes_on_disk(data_dir, name)
                .into_iter()
                .map(Some),
        )
        .map(|key| lanes::checkpoint_path(data_dir, name, &key))
        .find(|path| Checkpoints::exist(path))
        .map(Seed::Acknowledged)
}

fn forget_checkpoints(data_dir: &Path, name: &str, key: &LaneKey) {
    let path = lanes::checkpoint_path(data_dir, name, key);
    if let Err(e) = Checkpoints::remove(&path) {
        eprintln!("weir: removing {}: {e}", path.display());
    }
}

fn start_lane(
    name: &str,
    key: &LaneKey,
    source: &SourceConfig,
    checkpoint_path: PathBuf,
    handover: Option<Handover>,
    output: Output,
    extensions: &Extensions,
) -> Result<LaneRuntime, StartError> {
    let metrics = Arc::new(SourceMetrics::default());
    let stop = Arc::new(AtomicBool::new(false));
    let control = Arc::new(Control::default());
    let display = lanes::display(name, key);
    let wiring = Wiring {
        output: output.stopping_with(Arc::clone(&stop)),
        control: Arc::clone(&control),
        metrics: Arc::clone(&metrics),
        stop: Arc::clone(&stop),
    };
    let started = match (
        source,
        file_source_config(source, checkpoint_path, handover),
    ) {
        (SourceConfig::Forward(config), _) => forward::start(&display, config.clone(), wiring),
        (SourceConfig::Otlp(config), _) => otlp::start(&display, config.clone(), wiring),
        (SourceConfig::Zipkin(config), _) => {
            // The collector's API shares the port of a zipkin source on its address.
            let api = extensions
                .api
                .as_ref()
                .filter(|(address, _)| *address == config.address)
                .map(|(_, handler)| Arc::clone(handler));
            zipkin::start(&display, config.clone(), wiring, api)
        }
        (SourceConfig::Syslog(config), _) => syslog::start(&display, config.clone(), wiring),
        (_, Some(config)) => file::start(&display, config, wiring),
        (SourceConfig::File { .. } | SourceConfig::Monitor { .. }, None) => {
            unreachable!("a file source has a file configuration")
        }
    };
    let handle = started.map_err(|source| StartError::Io {
        what: format!("source {display}"),
        source,
    })?;
    Ok(LaneRuntime {
        sinks: Vec::new(),
        metrics,
        stop,
        handle,
        control,
    })
}

/// How a source that reads files reads them; None for the others.
fn file_source_config(
    source: &SourceConfig,
    checkpoint_path: PathBuf,
    handover: Option<Handover>,
) -> Option<FileSourceConfig> {
    let config = match source {
        SourceConfig::File {
            include,
            exclude,
            format,
            start_at_end,
            max_record,
            poll,
        } => FileSourceConfig {
            include: include.clone(),
            exclude: exclude
                .iter()
                .filter_map(|p| glob::Pattern::new(p).ok())
                .collect(),
            format: *format,
            start_at_end: *start_at_end,
            max_record: *max_record,
            poll: *poll,
            checkpoint_path,
            monitor: false,
            handover,
        },
        // weir run's logs: CRI, rotated by rename to NAME.log.N, gzipped
        // ones skipped (their lines were read before they were compressed).
        SourceConfig::Monitor { dir, poll } => {
            let dir = glob::Pattern::escape(&dir.to_string_lossy());
            FileSourceConfig {
                include: vec![format!("{dir}/*.log"), format!("{dir}/*.log.[0-9]*")],
                exclude: vec![glob::Pattern::new("*.gz").expect("a valid pattern")],
                format: crate::source::file::Format::Cri,
                start_at_end: false,
                max_record: 1 << 20,
                poll: *poll,
                checkpoint_path,
                monitor: true,
                handover,
            }
        }
        SourceConfig::Syslog(_)
        | SourceConfig::Forward(_)
        | SourceConfig::Otlp(_)
        | SourceConfig::Zipkin(_) => {
            return None;
        }
    };
    Some(config)
}

/// The routes from component `from` on: straight to the sinks that name
/// it, and through the transforms that do. `reached` collects the sinks, in
/// the order their buffers are numbered in the routes.
fn routes_from(
    from: &str,
    config: &AgentConfig,
    metrics: &BTreeMap<String, Arc<TransformMetrics>>,
    reached: &mut Vec<String>,
    wanted: &dyn Fn(&str) -> bool,
) -> Vec<Route> {
    let mut routes = Vec::new();
    for (sink, sink_config) in &config.sinks {
        if sink_config.inputs.iter().any(|i| i == from) && wanted(sink) {
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
            let next = routes_from(name, config, metrics, reached, wanted);
            // A transform that leads to none of the wanted sinks is left out.
            if !next.is_empty() {
                routes.push(Route::Transform {
                    stage: Stage::new(transform.transform.clone()),
                    metrics: Arc::clone(&metrics[name]),
                    next,
                });
            }
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
            segment_bytes: config.segment_size,
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

fn factory(
    name: &str,
    kind: &SinkKind,
    extensions: &Extensions,
) -> Result<SinkFactory, StartError> {
    Ok(match kind.clone() {
        SinkKind::Store => {
            let Some(store) = extensions.store.clone() else {
                return Err(StartError::Io {
                    what: format!("sink {name}"),
                    source: std::io::Error::other(
                        "type = \"store\" writes into the collector's store: run it with `weir collector`",
                    ),
                });
            };
            Box::new(move || Ok(Box::new(StoreSink::new(Arc::clone(&store))) as Box<dyn Sink>))
        }
        SinkKind::Blackhole => Box::new(|| Ok(Box::new(Blackhole) as Box<dyn Sink>)),
        SinkKind::Console { stderr } => {
            Box::new(move || Ok(Box::new(Console::new(stderr)) as Box<dyn Sink>))
        }
        SinkKind::File {
            path,
            cri,
            max_size,
            max_files,
            sync,
        } => Box::new(move || {
            let sink = FileSink::new(
                &path,
                FileOptions {
                    cri,
                    max_size,
                    max_files,
                    sync,
                },
            );
            Ok(Box::new(sink) as Box<dyn Sink>)
        }),
        SinkKind::Forward(config) => Box::new(move || {
            let sink = ForwardSink::new(config.clone()).map_err(std::io::Error::other)?;
            Ok(Box::new(sink) as Box<dyn Sink>)
        }),
        SinkKind::Http {
            uri,
            format,
            headers,
            tls,
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
                    format,
                    headers: headers.clone(),
                    tls: tls.clone(),
                    gzip,
                    timeout,
                })?;
                Ok(Box::new(sink) as Box<dyn Sink>)
            })
        }
    })
}
