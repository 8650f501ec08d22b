//! Supervising one run: spawn, read, forward signals, reap, drain, account.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::os::unix::thread::JoinHandleExt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crate::config::RunConfig;
use crate::format::Encoder;
use crate::framing::MAX_RECORD;
use crate::gate::{GateConfig, SharedBucket, StreamGate};
use crate::node_share;
use crate::reader::{self, Destination, ReadReport, ReaderConfig};
use crate::ring::{self, RingConfig, RingOutlets};
use crate::signals::{self, SignalSet};
use crate::sink::{LogSink, OpenError, SinkReport, SinkWriter};
use crate::spawn::{self, SpawnError};
use crate::stats::{Counts, Dropped, PerStream, Stream};
use crate::summary::{
    DrainReport, ExitReport, FilesSummary, MonitorUsage, StreamsSummary, Summary,
};
use crate::sys;
use weir_gate::Policy;
use weir_gate::units::format_size;

/// Why a run could not take place.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot set up signal handling: {0}")]
    Signals(#[source] io::Error),
    #[error(transparent)]
    Log(#[from] OpenError),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("cannot start a reader thread: {0}")]
    Thread(#[source] io::Error),
    #[error("cannot wait for the child: {0}")]
    Wait(#[source] io::Error),
}

impl CaptureError {
    /// The exit code for weir when the run failed before the child ran.
    pub fn exit_code(&self) -> i32 {
        match self {
            CaptureError::Spawn(e) => e.exit_code(),
            _ => 125,
        }
    }
}

/// How often a reader told to stop is interrupted again until it does.
const STOP_RETRY: Duration = Duration::from_millis(5);

/// The budgets of one container: a bucket its streams share, or one bucket
/// per stream when the SRE budgets stdout and stderr apart.
enum Buckets {
    None,
    Shared(SharedBucket),
    PerStream(SharedBucket, SharedBucket),
}

impl Buckets {
    fn new(gate: Option<&GateConfig>) -> Buckets {
        match gate {
            None => Buckets::None,
            Some(GateConfig {
                streams: Some((stdout, stderr)),
                ..
            }) => Buckets::PerStream(
                SharedBucket::new(*stdout, "stdout"),
                SharedBucket::new(*stderr, "stderr"),
            ),
            Some(gate) => Buckets::Shared(SharedBucket::new(gate.budget, "container")),
        }
    }

    fn for_stream(&self, stream: Stream) -> Option<SharedBucket> {
        match (self, stream) {
            (Buckets::None, _) => None,
            (Buckets::Shared(bucket), _) => Some(bucket.clone()),
            (Buckets::PerStream(stdout, _), Stream::Stdout) => Some(stdout.clone()),
            (Buckets::PerStream(_, stderr), Stream::Stderr) => Some(stderr.clone()),
        }
    }

    /// Every bucket, for the node share to scale.
    fn all(&self) -> Vec<SharedBucket> {
        match self {
            Buckets::None => Vec::new(),
            Buckets::Shared(bucket) => vec![bucket.clone()],
            Buckets::PerStream(stdout, stderr) => vec![stdout.clone(), stderr.clone()],
        }
    }
}

/// Runs `config.command` to completion, capturing its output, and returns
/// the account of the run.
///
/// Must be called before the process starts other threads: the supervised
/// signals are blocked here and every thread started afterwards inherits
/// that mask, so they reach the supervisor alone.
pub fn run(config: &RunConfig) -> Result<Summary, CaptureError> {
    let supervised = SignalSet::supervised();
    supervised.block().map_err(CaptureError::Signals)?;
    signals::install_wakeup_handler().map_err(CaptureError::Signals)?;

    let sink = LogSink::open(&config.log_path, config.format, config.rotation.clone())?;
    let spawned = spawn::spawn(config)?;
    if let Some(warning) = &spawned.pipe_warning {
        eprintln!("weir: {warning}");
    }
    let pipe_size = spawned.pipe_capacity;
    let streams = Streams::start(config, sink, spawned.outputs, spawned.pipe_capacity)?;
    let ended = supervise(config, &supervised, spawned.child, &streams)?;
    let (read, gate_dropped, report) = streams.finish(config, ended.drain_deadline);
    let (cpu_seconds, max_rss_kib) = sys::own_usage();
    let stream = |s| Summary::stream_summary(*read.get(s), *gate_dropped.get(s), &report, s);
    Ok(Summary {
        exit: exit_report(ended.status),
        streams: StreamsSummary {
            stdout: stream(Stream::Stdout),
            stderr: stream(Stream::Stderr),
        },
        files: FilesSummary {
            live: report.live_path.clone(),
            rotated: Summary::rotated_paths(&report.rotated),
            deleted: report.deleted.clone(),
        },
        drain: DrainReport {
            timed_out: ended.timed_out,
            timeout_seconds: config.drain_timeout.as_secs_f64(),
        },
        pipe_size,
        monitor: MonitorUsage {
            cpu_seconds,
            max_rss_kib,
        },
        unresolved_disk_trouble: report.unresolved_trouble,
    })
}

/// The threads that carry the child's output to the log: a reader per
/// stream, a ring stage per stream under `ring`, the file writer, and the
/// node share.
struct Streams {
    readers: Vec<thread::JoinHandle<ReadReport>>,
    rings: Vec<(Stream, thread::JoinHandle<Counts>)>,
    sink_writer: SinkWriter,
    /// Readers report here when they reach the end of their stream.
    done: mpsc::Receiver<Stream>,
    stop: Arc<AtomicBool>,
    child_exited: Arc<AtomicBool>,
    _node_share: Option<node_share::NodeShare>,
}

impl Streams {
    fn start(
        config: &RunConfig,
        sink: LogSink,
        outputs: Vec<(Stream, std::os::fd::OwnedFd)>,
        pipe_capacity: usize,
    ) -> Result<Streams, CaptureError> {
        let reader_config = ReaderConfig {
            max_line: config.max_line,
            pipe_capacity,
            max_latency: config.max_latency,
            is_tty: config.tty,
            child_exited: Arc::new(AtomicBool::new(false)),
        };
        let ring_size = match &config.gate {
            Some(GateConfig {
                policy: Policy::Ring { max_bytes },
                ..
            }) => Some(*max_bytes),
            _ => None,
        };
        // A ring stage has an outlet of its own beside its reader's.
        let outlet_streams: Vec<Stream> = outputs
            .iter()
            .flat_map(|(stream, _)| {
                let outlets = if ring_size.is_some() { 2 } else { 1 };
                std::iter::repeat_n(*stream, outlets)
            })
            .collect();
        let batch_capacity = reader::BATCH_LIMIT + config.max_line.min(MAX_RECORD) + 256;
        let (sink_writer, outlets) = SinkWriter::start(sink, &outlet_streams, batch_capacity)
            .map_err(CaptureError::Thread)?;
        let mut outlets = outlets.into_iter();
        let stop = Arc::new(AtomicBool::new(false));
        let buckets = Buckets::new(config.gate.as_ref());
        let (done_tx, done) = mpsc::channel::<Stream>();
        let supervisor = signals::current_thread();
        // Join the node budget: the share thread scales these buckets.
        let node_share = match config.gate.as_ref().and_then(|gate| gate.node.clone()) {
            None => None,
            Some(node) => match node_share::start(node, buckets.all()) {
                Ok(share) => Some(share),
                Err(e) => {
                    eprintln!(
                        "weir: not sharing the node budget ({e}); this container alone is held to it"
                    );
                    None
                }
            },
        };
        let mut readers = Vec::new();
        let mut rings = Vec::new();
        for (stream, fd) in outputs {
            let bucket = buckets.for_stream(stream);
            let outlet = outlets.next().expect("an outlet per stream");
            // Under `ring` the reader feeds the ring stage, which feeds the
            // sink, or passes it by while it is empty.
            let (outlet, gate_config) = match (ring_size, &config.gate, &bucket) {
                (Some(max_bytes), Some(gate), Some(bucket)) => {
                    let ring_config = RingConfig {
                        max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
                        marker_interval: gate.marker_interval,
                        description: format!(
                            "ring {}, {}",
                            format_size(max_bytes),
                            bucket.describe_budget()
                        ),
                    };
                    let outlets = RingOutlets {
                        reader: outlet,
                        stage: outlets.next().expect("a ring stage has its own outlet"),
                    };
                    let (bypass, handle) = ring::start(
                        ring_config,
                        outlets,
                        bucket.clone(),
                        Encoder::new(config.format, stream),
                        batch_capacity,
                        Arc::clone(&stop),
                    )
                    .map_err(CaptureError::Thread)?;
                    rings.push((stream, handle));
                    (Destination::Ring(bypass), None)
                }
                _ => (Destination::Sink(outlet), config.gate.as_ref()),
            };
            let (stop, done_tx) = (Arc::clone(&stop), done_tx.clone());
            let reader_config = reader_config.clone();
            let encoder = Encoder::new(config.format, stream);
            let gate = gate_config
                .zip(bucket.clone())
                .map(|(gate, bucket)| StreamGate::new(gate, bucket));
            let handle = thread::Builder::new()
                .name(format!("weir-{}", stream.as_str()))
                .spawn(move || {
                    let report =
                        reader::read_stream(fd, encoder, outlet, gate, &reader_config, &stop);
                    let _ = done_tx.send(stream);
                    signals::wake_supervisor(supervisor);
                    report
                })
                .map_err(CaptureError::Thread)?;
            readers.push(handle);
        }
        Ok(Streams {
            readers,
            rings,
            sink_writer,
            done,
            stop,
            child_exited: reader_config.child_exited,
            _node_share: node_share,
        })
    }

    /// Joins the readers, lets the ring stages release what they hold
    /// within the drain time, and closes the log: what was read, what the
    /// gate dropped, and what the sink did.
    fn finish(
        self,
        config: &RunConfig,
        drain_deadline: Option<Instant>,
    ) -> (PerStream<Counts>, PerStream<Dropped>, SinkReport) {
        let mut read = PerStream::<Counts>::default();
        let mut gate_dropped = PerStream::<Dropped>::default();
        for handle in self.readers {
            let report: ReadReport = handle.join().expect("reader threads do not panic");
            if let Some(error) = &report.error {
                eprintln!(
                    "weir: reading the child's {}: {error}",
                    report.stream.as_str()
                );
            }
            *read.get_mut(report.stream) = report.read;
            *gate_dropped.get_mut(report.stream) = report.dropped;
        }
        // Ring stages still release what they hold at the budgeted rate,
        // within the drain timeout.
        let ring_deadline = drain_deadline.unwrap_or_else(|| Instant::now() + config.drain_timeout);
        for (stream, handle) in self.rings {
            while !handle.is_finished() {
                if Instant::now() >= ring_deadline && !self.stop.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "weir: the {} ring was not drained within the drain timeout; the rest is dropped (ring_overflow)",
                        stream.as_str()
                    );
                }
                thread::sleep(STOP_RETRY);
            }
            let overflow = handle.join().expect("ring stages do not panic");
            gate_dropped.get_mut(stream).ring_overflow.merge(overflow);
        }
        (read, gate_dropped, self.sink_writer.finish())
    }
}

/// How the child's run ended.
struct Ended {
    status: ExitStatus,
    timed_out: bool,
    /// When the drain timeout runs out (set when the child exits).
    drain_deadline: Option<Instant>,
}

/// Forwards signals to the child until it has exited and its output has
/// been read to the end, or until the drain timeout after its exit.
fn supervise(
    config: &RunConfig,
    supervised: &SignalSet,
    mut child: std::process::Child,
    streams: &Streams,
) -> Result<Ended, CaptureError> {
    let pid = child.id();
    let mut status: Option<ExitStatus> = None;
    let mut running = streams.readers.len();
    let mut drain_deadline = None;
    let mut timed_out = false;
    loop {
        while streams.done.try_recv().is_ok() {
            running -= 1;
        }
        if status.is_some() && running == 0 {
            break;
        }
        if drain_deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            timed_out = true;
            eprintln!(
                "weir: the child exited but its descendants still hold its output open after {:?}; \
                 stopped reading",
                config.drain_timeout
            );
            stop_readers(&streams.readers, &streams.stop, &streams.done, running);
            break;
        }
        // Readers and the child both signal this thread when they finish;
        // the timeout only bounds the drain deadline check.
        let wait = match drain_deadline {
            None => Duration::from_secs(1),
            Some(deadline) => deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(1)),
        };
        if let Some(signal) = supervised.wait(wait)
            && signal != libc::SIGCHLD
            && status.is_none()
            && let Err(e) = signals::send(pid, signal)
        {
            eprintln!(
                "weir: cannot forward {} to {pid}: {e}",
                signals::name(signal)
            );
        }
        if status.is_none()
            && let Some(exit) = child.try_wait().map_err(CaptureError::Wait)?
        {
            status = Some(exit);
            drain_deadline = Some(Instant::now() + config.drain_timeout);
            // Cut short any coalescing pause: the end of the output is
            // near, and nothing should wait for a timer to see it.
            streams.child_exited.store(true, Ordering::Relaxed);
            for handle in streams.readers.iter().filter(|h| !h.is_finished()) {
                signals::wake_thread(handle.as_pthread_t());
            }
        }
    }
    Ok(Ended {
        status: status.expect("the loop ends only after the child exited"),
        timed_out,
        drain_deadline,
    })
}

/// Tells the readers still running to stop and interrupts their blocking
/// reads until each has reported back.
fn stop_readers(
    readers: &[thread::JoinHandle<ReadReport>],
    stop: &AtomicBool,
    done: &mpsc::Receiver<Stream>,
    mut running: usize,
) {
    stop.store(true, Ordering::Relaxed);
    while running > 0 {
        for handle in readers.iter().filter(|h| !h.is_finished()) {
            signals::wake_thread(handle.as_pthread_t());
        }
        if done.recv_timeout(STOP_RETRY).is_ok() {
            running -= 1;
        }
    }
}

fn exit_report(status: ExitStatus) -> ExitReport {
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitReport { code, signal: None },
        (None, Some(signal)) => ExitReport {
            code: 128 + signal,
            signal: Some(signal),
        },
        (None, None) => ExitReport {
            code: 125,
            signal: None,
        },
    }
}
