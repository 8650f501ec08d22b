//! `weir bench gate`: how exactly weir's gate holds a budget, how fairly it
//! splits a node budget, and what it costs when no budget is hit (issue 3).
//!
//! - Accuracy: one `weir run` under `--rate R` per budget and policy, its
//!   writer (`writer timed`) at full speed for N seconds; delivered rate =
//!   application bytes stored ÷ wall time of the run, against R.
//! - Fairness: four `weir run`s, started together, sharing one node budget
//!   through a gate file (weights 1, 1, 1, 2; policy drop); the first writes
//!   below its share (`writer paced`), the others at full speed. Each one's
//!   delivered rate is compared with its max-min fair share, computed here
//!   independently of the gate's own arithmetic.
//! - Overhead: capture workload 1 (2 M lines of 100 B in 64 KiB writes)
//!   through `weir run` without a budget and with one that is never hit,
//!   taking turns; weir's own CPU seconds, budget ÷ no budget.
//! - Writer: the same workload without a budget, then under drop and ring
//!   with a budget of 1 % of the writer's throughput without one, taking
//!   turns; the writer times itself (`WEIR_WRITER_REPORT`), and its
//!   throughput under a budget ÷ without one shows whether the policy made
//!   it wait. Every budgeted run must have dropped something.
//!
//! Every run is checked: the summary's identity read = written + dropped
//! must hold to the byte and to the line for both streams, and the log file
//! must hold exactly the application bytes and lines the summary says were
//! written (drop markers aside). A run that fails either check is reported
//! as a failure, loudly, and the command exits with 1.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use weir_monitor::format::Timestamp;

use super::gate_report::{
    AccuracyCase, Cases, Counts, FairRun, Fairness, GateReport, Overhead, RunFigures, TICK_S,
    WriterCase, WriterRun, failure_banner, median, rate, writer_budget_kib_per_s,
};
use super::machine::{self, Machine};
use super::measure;
use super::workdir::WorkDir;
use super::workload;
use super::writer;

/// Bytes per line of every writer, the newline included.
const LINE_LEN: u64 = 100;

/// What to run, from the command line.
pub struct Options {
    pub seconds: f64,
    /// Budgets of the accuracy case, bytes per second.
    pub budgets: Vec<f64>,
    /// Policies of the accuracy case.
    pub policies: Vec<String>,
    pub node_rate: f64,
    /// What the container below its share writes, bytes per second.
    pub paced_rate: f64,
    pub overhead_lines: u64,
    pub overhead_runs: u32,
    /// Policies run under the never-hit budget in the overhead case.
    pub overhead_policies: Vec<String>,
    /// The overhead case logs to /dev/null, not to a file.
    pub overhead_to_null: bool,
    /// Lines per run of the writer case (100 B each, 64 KiB writes).
    pub writer_lines: u64,
    /// Measured runs per variant of the writer case.
    pub writer_runs: u32,
    pub accuracy: bool,
    pub fairness: bool,
    pub overhead: bool,
    pub writer: bool,
    pub work_dir: Option<PathBuf>,
    pub prefault: bool,
    pub json: bool,
}

/// The budget of the overhead case: far above anything the machine writes.
const NEVER_HIT: &str = "100GiB/s";

const DEV_NULL: &str = "/dev/null";

/// The environment variable that makes the writer time itself and write
/// its report to the file it names (`writer.c`).
const WRITER_REPORT_ENV: &str = "WEIR_WRITER_REPORT";

/// How long `weir run --policy ring` of the writer case may go on writing
/// out its ring at the budget after the writer exits: the runs stay short,
/// and the writer's time does not depend on it.
const RING_DRAIN_TIMEOUT: &str = "1s";

/// The fairness containers: name, weight, and whether the writer is paced.
const CONTAINERS: [(&str, u32, bool); 4] = [
    ("c1", 1, true),
    ("c2", 1, false),
    ("c3", 1, false),
    ("c4", 2, false),
];

pub fn run(options: Options) -> i32 {
    let work = match WorkDir::new(options.work_dir.clone(), "gate", &["logs"]) {
        Ok(work) => work,
        Err(message) => {
            eprintln!("weir bench gate: {message}");
            return 2;
        }
    };
    let result = run_in(&options, &work.path);
    super::print_report("gate", options.json, result, |r| {
        (r.table(), r.failures.is_empty())
    })
}

/// Where the runs of one case keep their files.
struct Bench<'a> {
    writer: PathBuf,
    logs: PathBuf,
    /// A gate file with no budget that allows every policy, so that no
    /// gate file of the machine (`/etc/weir/gate.toml`) changes the runs.
    open_gate: PathBuf,
    work: &'a Path,
    options: &'a Options,
    failures: Vec<String>,
}

fn run_in(options: &Options, work: &Path) -> Result<GateReport, String> {
    let writer = writer::build(work)?;
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
    let open_gate = work.join("open-gate.toml");
    std::fs::write(
        &open_gate,
        "[container]\npolicy = \"block\"\nallow = [\"block\", \"drop\", \"ring\"]\n",
    )
    .map_err(|e| format!("cannot write {}: {e}", open_gate.display()))?;
    let mut bench = Bench {
        writer,
        logs,
        open_gate,
        work,
        options,
        failures: Vec::new(),
    };
    let accuracy = if options.accuracy {
        bench.accuracy()
    } else {
        Vec::new()
    };
    let fairness = if options.fairness {
        bench.fairness()?
    } else {
        None
    };
    let overhead = if options.overhead {
        bench.overhead()
    } else {
        None
    };
    let writer = if options.writer {
        bench.writer_case()
    } else {
        None
    };
    Ok(GateReport::build(
        Machine::describe(work),
        options.seconds,
        LINE_LEN,
        Cases {
            accuracy,
            fairness,
            overhead,
            writer,
        },
        bench.failures,
    ))
}

impl Bench<'_> {
    fn accuracy(&mut self) -> Vec<AccuracyCase> {
        let seconds = self.options.seconds;
        let mut cases = Vec::new();
        for policy in &self.options.policies {
            for &budget in &self.options.budgets {
                let what = format!("accuracy {policy} {}", rate(budget));
                let log = self.logs.join("accuracy.log");
                let mut args = self.weir_args(&log);
                args.extend(
                    [
                        "--rate",
                        &format!("{}B/s", budget.round() as u64),
                        "--policy",
                        policy,
                    ]
                    .map(OsString::from),
                );
                args.push("--".into());
                args.push(self.writer.clone().into());
                args.extend(
                    ["timed", &seconds.to_string(), &LINE_LEN.to_string()].map(OsString::from),
                );
                let outcome = spawn_weir(&args, &self.logs, "accuracy")
                    .and_then(|running| running.finish(self.timeout(), &log))
                    .and_then(|run| {
                        if policy == "block" && run.dropped().bytes != 0 {
                            return Err(format!(
                                "block dropped {} bytes: block must lose nothing",
                                run.dropped().bytes
                            ));
                        }
                        Ok(run)
                    });
                remove_and_sync(&log);
                match outcome {
                    Ok(run) => {
                        let case = AccuracyCase::new(policy, budget, seconds, run);
                        eprintln!(
                            "{what}: {:.3} s, stored {} of {} bytes read, delivered {:.3} MiB/s = \
                             {:.4} x budget",
                            case.run.wall_s,
                            case.run.written.bytes,
                            case.run.read.bytes,
                            case.delivered_bytes_per_s / (1u64 << 20) as f64,
                            case.delivered_over_budget
                        );
                        cases.push(case);
                    }
                    Err(message) => self.fail(&what, message),
                }
            }
        }
        cases
    }

    fn fairness(&mut self) -> Result<Option<Fairness>, String> {
        let options = self.options;
        let state = self.work.join("fairness-gate.state");
        let _ = std::fs::remove_file(&state);
        let gate = self.work.join("fairness-gate.toml");
        let mut toml = format!(
            "[node]\nrate = \"{}B/s\"\nstate = {:?}\n\n[container]\npolicy = \"drop\"\n\
             allow = [\"block\", \"drop\", \"ring\"]\n",
            options.node_rate.round() as u64,
            state.display().to_string()
        );
        for (name, weight, _) in CONTAINERS.iter().filter(|(_, w, _)| *w != 1) {
            toml.push_str(&format!(
                "\n[[weight]]\nname = \"{name}\"\nweight = {weight}\n"
            ));
        }
        std::fs::write(&gate, toml).map_err(|e| format!("cannot write {}: {e}", gate.display()))?;

        let seconds = options.seconds.to_string();
        let mut running = Vec::new();
        for (name, _, paced) in CONTAINERS {
            let log = self.logs.join(format!("fair-{name}.log"));
            let mut args: Vec<OsString> =
                vec!["run".into(), "--log-path".into(), log.clone().into()];
            args.extend(
                [
                    "--summary",
                    "--name",
                    name,
                    "--policy",
                    "drop",
                    "--gate-config",
                ]
                .map(OsString::from),
            );
            args.push(gate.clone().into());
            args.push("--".into());
            args.push(self.writer.clone().into());
            if paced {
                args.extend(
                    [
                        "paced",
                        &seconds,
                        &LINE_LEN.to_string(),
                        &options.paced_rate.round().to_string(),
                    ]
                    .map(OsString::from),
                );
            } else {
                args.extend(["timed", &seconds, &LINE_LEN.to_string()].map(OsString::from));
            }
            match spawn_weir(&args, &self.logs, &format!("fair-{name}")) {
                Ok(r) => running.push((name, log, r)),
                Err(message) => {
                    for (_, log, mut r) in running {
                        let _ = r.child.kill();
                        let _ = r.child.wait();
                        remove_and_sync(&log);
                    }
                    self.fail("fairness", message);
                    return Ok(None);
                }
            }
        }

        // While they run, ask the gate what it grants each container.
        let granted = std::thread::scope(|scope| {
            let timeout = self.timeout();
            let handles: Vec<_> = running
                .into_iter()
                .map(|(name, log, r)| {
                    scope.spawn(move || {
                        let outcome = r.finish(timeout, &log);
                        remove_and_sync(&log);
                        (name, outcome)
                    })
                })
                .collect();
            let samples = sample_status(&gate, options.seconds);
            let outcomes: Vec<_> = handles
                .into_iter()
                .map(|h| h.join().expect("a fairness run panicked"))
                .collect();
            (samples, outcomes)
        });
        let (samples, outcomes) = granted;
        let _ = std::fs::remove_file(&state);

        let mut containers = Vec::new();
        for ((name, outcome), (_, weight, paced)) in outcomes.into_iter().zip(CONTAINERS) {
            match outcome {
                Ok(run) => {
                    eprintln!(
                        "fairness {name}: {:.3} s, stored {} of {} bytes read, delivered {:.3} MiB/s",
                        run.wall_s,
                        run.written.bytes,
                        run.read.bytes,
                        run.delivered_bytes_per_s() / (1u64 << 20) as f64
                    );
                    containers.push(FairRun {
                        name: name.to_owned(),
                        weight,
                        demand: paced.then_some(options.paced_rate),
                        run,
                        granted: mean_granted(&samples, name),
                    });
                }
                Err(message) => self.fail(&format!("fairness {name}"), message),
            }
        }
        if containers.len() != CONTAINERS.len() {
            return Ok(None);
        }
        Ok(Some(Fairness::new(
            options.node_rate,
            "drop",
            options.seconds,
            containers,
            samples.len(),
        )))
    }

    fn overhead(&mut self) -> Option<Overhead> {
        let options = self.options;
        let w1 = workload::Workload::by_id(1).expect("workload 1 exists");
        let mut variants: Vec<(String, Vec<String>, Vec<RunFigures>)> =
            vec![("no budget".to_owned(), Vec::new(), Vec::new())];
        for policy in &options.overhead_policies {
            variants.push((
                format!("{NEVER_HIT} {policy}"),
                ["--rate", NEVER_HIT, "--policy", policy]
                    .map(str::to_owned)
                    .to_vec(),
                Vec::new(),
            ));
        }
        let expected = Counts {
            bytes: w1.app_bytes(options.overhead_lines),
            lines: options.overhead_lines,
        };
        // One unmeasured round first: the first run after a quiet spell is
        // regularly slower for everyone.
        for round in 0..=options.overhead_runs {
            for (name, extra, runs) in &mut variants {
                let what = if round == 0 {
                    format!("overhead {name} warm-up")
                } else {
                    format!("overhead {name} run {round}/{}", options.overhead_runs)
                };
                let log = if options.overhead_to_null {
                    PathBuf::from(DEV_NULL)
                } else {
                    self.logs.join("overhead.log")
                };
                let mut args = self.weir_args(&log);
                args.extend(extra.iter().map(OsString::from));
                args.push("--".into());
                args.push(self.writer.clone().into());
                args.extend(
                    w1.writer_args(options.overhead_lines)
                        .into_iter()
                        .map(OsString::from),
                );
                if options.prefault && !options.overhead_to_null {
                    machine::prefault_free_memory(2 * w1.cri_log_bytes(options.overhead_lines));
                }
                let outcome = spawn_weir(&args, &self.logs, "overhead")
                    .and_then(|running| running.finish(self.timeout(), &log))
                    .and_then(|run| {
                        if run.written != expected || run.dropped().bytes != 0 {
                            return Err(format!(
                                "stored {} bytes / {} lines and dropped {} bytes of {} bytes / {} \
                                 lines: the budget was hit or output was lost",
                                run.written.bytes,
                                run.written.lines,
                                run.dropped().bytes,
                                expected.bytes,
                                expected.lines
                            ));
                        }
                        Ok(run)
                    });
                if !options.overhead_to_null {
                    remove_and_sync(&log);
                }
                match outcome {
                    Ok(run) => {
                        eprintln!(
                            "{what}: {:.3} s, weir CPU {:.3} s (summary), peak RSS {} KiB",
                            run.wall_s, run.cpu_s, run.peak_rss_kib
                        );
                        if round > 0 {
                            runs.push(run);
                        }
                    }
                    Err(message) => self.fail(&what, message),
                }
            }
        }
        if variants.iter().any(|(_, _, runs)| runs.is_empty()) {
            return None;
        }
        Some(Overhead::new(
            options.overhead_lines,
            w1.line_len,
            options.overhead_runs,
            if options.overhead_to_null {
                DEV_NULL.to_owned()
            } else {
                "a file".to_owned()
            },
            variants,
        ))
    }

    /// The writer case: calibration runs without a budget set the budget
    /// (1 % of the writer's median throughput), then no budget, drop and
    /// ring take turns.
    fn writer_case(&mut self) -> Option<WriterCase> {
        let options = self.options;
        let w1 = workload::Workload::by_id(1).expect("workload 1 exists");
        let runs = options.writer_runs;

        // One unmeasured run first, as in the overhead case.
        let mut calibration = Vec::new();
        for round in 0..=runs {
            let what = if round == 0 {
                "writer calibration warm-up".to_owned()
            } else {
                format!("writer calibration run {round}/{runs}")
            };
            match self.writer_run(&what, &[], None) {
                Ok(run) if round > 0 => calibration.push(run),
                Ok(_) => {}
                Err(message) => self.fail(&what, message),
            }
        }
        if calibration.len() != runs as usize {
            return None;
        }
        let base = median(
            &calibration
                .iter()
                .map(|r| r.writer_bytes_per_s)
                .collect::<Vec<_>>(),
        );
        let budget_kib = writer_budget_kib_per_s(base);
        if budget_kib == 0 {
            self.fail(
                "writer",
                format!(
                    "the writer's throughput without a budget ({base:.0} B/s) is too low for a \
                     budget of 1 % of it in whole KiB/s"
                ),
            );
            return None;
        }
        let budget = format!("{budget_kib}KiB/s");
        eprintln!(
            "writer: median {:.1} MB/s without a budget; budget {budget}",
            base / 1e6
        );

        let budgeted = |policy: &str| -> Vec<String> {
            let mut args = ["--rate", budget.as_str(), "--policy", policy]
                .map(str::to_owned)
                .to_vec();
            if policy == "ring" {
                args.extend(["--drain-timeout", RING_DRAIN_TIMEOUT].map(str::to_owned));
            }
            args
        };
        let mut variants: Vec<(String, Vec<String>, Vec<WriterRun>)> = vec![
            ("no budget".to_owned(), Vec::new(), Vec::new()),
            ("drop".to_owned(), budgeted("drop"), Vec::new()),
            ("ring".to_owned(), budgeted("ring"), Vec::new()),
        ];
        for round in 1..=runs {
            for (name, extra, measured) in &mut variants {
                let what = format!("writer {name} run {round}/{runs}");
                let policy = (!extra.is_empty()).then_some(name.as_str());
                match self.writer_run(&what, extra, policy) {
                    Ok(run) => measured.push(run),
                    Err(message) => self.fail(&what, message),
                }
            }
        }
        if variants
            .iter()
            .any(|(_, _, measured)| measured.len() != runs as usize)
        {
            return None;
        }
        Some(WriterCase::new(
            options.writer_lines,
            w1.line_len,
            runs,
            calibration,
            (budget_kib * 1024) as f64,
            variants,
        ))
    }

    /// One run of the writer case: `weir run EXTRA -- writer buffered LINES
    /// 100 1` with the writer timing itself. `policy` (drop or ring, None
    /// without a budget) says what must have been dropped.
    fn writer_run(
        &self,
        what: &str,
        extra: &[String],
        policy: Option<&str>,
    ) -> Result<WriterRun, String> {
        let options = self.options;
        let w1 = workload::Workload::by_id(1).expect("workload 1 exists");
        let expected = Counts {
            bytes: w1.app_bytes(options.writer_lines),
            lines: options.writer_lines,
        };
        let log = self.logs.join("writer.log");
        let report = self.logs.join("writer.report.json");
        let _ = std::fs::remove_file(&report);
        let mut args = self.weir_args(&log);
        args.extend(extra.iter().map(OsString::from));
        args.push("--".into());
        args.push(self.writer.clone().into());
        args.extend(
            w1.writer_args(options.writer_lines)
                .into_iter()
                .map(OsString::from),
        );
        if options.prefault {
            machine::prefault_free_memory(2 * w1.cri_log_bytes(options.writer_lines));
        }
        let outcome = spawn_weir_with_report(&args, &self.logs, "writer", Some(&report))
            .and_then(|running| running.finish(self.timeout(), &log))
            .and_then(|run| {
                let said = read_writer_report(&report)?;
                check_writer_run(&run, &said, expected, policy)?;
                Ok(WriterRun::new(run, said.elapsed_seconds, said.bytes))
            });
        remove_and_sync(&log);
        let _ = std::fs::remove_file(&report);
        if let Ok(r) = &outcome {
            eprintln!(
                "{what}: writer {:.1} MB/s ({:.3} s), weir {:.3} s, stored {} of {} bytes, \
                 dropped rate_limit {} / ring_overflow {} bytes",
                r.writer_bytes_per_s / 1e6,
                r.writer_s,
                r.run.wall_s,
                r.run.written.bytes,
                r.run.read.bytes,
                r.run.dropped_rate_limit.bytes,
                r.run.dropped_ring_overflow.bytes
            );
        }
        outcome
    }

    /// `run --log-path LOG --summary --gate-config OPEN_GATE`.
    fn weir_args(&self, log: &Path) -> Vec<OsString> {
        vec![
            "run".into(),
            "--log-path".into(),
            log.into(),
            "--summary".into(),
            "--gate-config".into(),
            self.open_gate.clone().into(),
        ]
    }

    /// Longest a run may take: the writer's time, the slowest drain, and
    /// a generous margin.
    fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.options.seconds * 2.0 + 120.0)
    }

    fn fail(&mut self, what: &str, message: String) {
        let failure = format!("{what}: {message}");
        eprintln!("{}", failure_banner(std::slice::from_ref(&failure)));
        self.failures.push(failure);
    }
}

/// A `weir run` started by the benchmark.
struct Running {
    child: Child,
    started: Instant,
    /// The same moment on the clock of the log's timestamps, in ns.
    origin_ns: i128,
    summary: PathBuf,
    stderr: PathBuf,
    tag: String,
}

/// What the writer says about itself (`WEIR_WRITER_REPORT`).
#[derive(Debug, Deserialize)]
struct WriterReport {
    elapsed_seconds: f64,
    bytes: u64,
}

fn read_writer_report(path: &Path) -> Result<WriterReport, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "the writer left no report in {} ({e}): was {WRITER_REPORT_ENV} passed on to it?",
            path.display()
        )
    })?;
    serde_json::from_str(&text)
        .map_err(|e| format!("cannot read the writer's report ({e}): {:?}", text.trim()))
}

/// The checks of a writer run beyond the summary's identity and the log
/// scan: the writer wrote everything and weir read all of it; without a
/// budget, all of it was stored; under a budget, the policy's own drop
/// counter moved, since a budget never hit would show nothing.
fn check_writer_run(
    run: &RunFigures,
    said: &WriterReport,
    expected: Counts,
    policy: Option<&str>,
) -> Result<(), String> {
    if said.bytes != expected.bytes || said.elapsed_seconds.is_nan() || said.elapsed_seconds <= 0.0
    {
        return Err(format!(
            "the writer reports {} bytes in {} s, expected {} bytes in a positive time",
            said.bytes, said.elapsed_seconds, expected.bytes
        ));
    }
    if run.read != expected {
        return Err(format!(
            "weir read {} bytes / {} lines of the writer's {} bytes / {} lines",
            run.read.bytes, run.read.lines, expected.bytes, expected.lines
        ));
    }
    match policy {
        None => {
            if run.written != expected || run.dropped().bytes != 0 {
                return Err(format!(
                    "without a budget, stored {} bytes / {} lines and dropped {} bytes of {} \
                     bytes / {} lines",
                    run.written.bytes,
                    run.written.lines,
                    run.dropped().bytes,
                    expected.bytes,
                    expected.lines
                ));
            }
        }
        Some(policy) => {
            let (counter, dropped) = if policy == "ring" {
                ("ring_overflow", run.dropped_ring_overflow)
            } else {
                ("rate_limit", run.dropped_rate_limit)
            };
            if dropped.bytes == 0 {
                return Err(format!(
                    "NOTHING DROPPED under {policy} (dropped.{counter} = 0; stored {} of {} \
                     bytes): the budget was never hit, so this run cannot show that {policy} \
                     keeps the writer from waiting",
                    run.written.bytes, run.read.bytes
                ));
            }
        }
    }
    Ok(())
}

/// Starts `weir ARGS` (this very executable) with its summary going to
/// `DIR/TAG.summary.json`.
fn spawn_weir(args: &[OsString], dir: &Path, tag: &str) -> Result<Running, String> {
    spawn_weir_with_report(args, dir, tag, None)
}

/// [`spawn_weir`], with the writer asked to report on itself to `report`
/// (`WEIR_WRITER_REPORT`; without one, an inherited setting is removed).
fn spawn_weir_with_report(
    args: &[OsString],
    dir: &Path,
    tag: &str,
    report: Option<&Path>,
) -> Result<Running, String> {
    let summary = dir.join(format!("{tag}.summary.json"));
    let stderr = dir.join(format!("{tag}.stderr"));
    let create = |path: &Path| {
        File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
    };
    let (summary_file, stderr_file) = (create(&summary)?, create(&stderr)?);
    let origin_ns = Timestamp::now().as_nanos();
    let started = Instant::now();
    let mut command = Command::new("/proc/self/exe");
    command
        .arg0("weir")
        .args(args)
        .env_remove("WEIR_GATE_CONFIG")
        .env_remove(WRITER_REPORT_ENV)
        .stdin(Stdio::null())
        .stdout(summary_file)
        .stderr(stderr_file);
    if let Some(report) = report {
        command.env(WRITER_REPORT_ENV, report);
    }
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start weir run: {e}"))?;
    Ok(Running {
        child,
        started,
        origin_ns,
        summary,
        stderr,
        tag: tag.to_owned(),
    })
}

impl Running {
    /// Waits for the run, then checks its account and its log.
    fn finish(mut self, timeout: Duration, log: &Path) -> Result<RunFigures, String> {
        let watched = measure::watch(&mut self.child, timeout).map_err(|e| format!("weir: {e}"))?;
        let wall_s = (watched.ended - self.started).as_secs_f64();
        let said = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let _ = std::fs::remove_file(&self.stderr);
        let text = std::fs::read_to_string(&self.summary).unwrap_or_default();
        let _ = std::fs::remove_file(&self.summary);
        if !watched.status.success() {
            return Err(format!(
                "weir run ({}) failed ({}): {}",
                self.tag,
                watched.status,
                said.trim()
            ));
        }
        let summary: RunSummary = serde_json::from_str(&text).map_err(|e| {
            format!(
                "cannot read the --summary of weir run ({e}): {:?}",
                text.trim()
            )
        })?;
        summary.check_identity()?;
        // What went to /dev/null is known from the summary alone.
        let found = if log == Path::new(DEV_NULL) {
            LogScan::default()
        } else {
            let found = scan_log(log, self.origin_ns)
                .map_err(|e| format!("cannot read {}: {e}", log.display()))?;
            summary.check_log(&found)?;
            found
        };
        let s = &summary.streams;
        let both = |f: fn(&StreamAccount) -> Counts| f(&s.stdout).plus(f(&s.stderr));
        Ok(RunFigures {
            wall_s,
            cpu_s: summary.monitor.cpu_seconds,
            peak_rss_kib: watched.peak_rss_kib,
            read: both(|a| a.read),
            written: both(|a| a.written),
            dropped_rate_limit: both(|a| a.dropped.rate_limit),
            dropped_ring_overflow: both(|a| a.dropped.ring_overflow),
            dropped_disk: both(|a| a.dropped.disk),
            markers: found.markers,
            log_file_bytes: found.file_bytes,
            per_tick: found.per_tick,
        })
    }
}

/// The parts of `weir run --summary` the benchmark reads.
#[derive(Debug, Deserialize)]
struct RunSummary {
    streams: Streams,
    monitor: Monitor,
}

#[derive(Debug, Deserialize)]
struct Streams {
    stdout: StreamAccount,
    stderr: StreamAccount,
}

#[derive(Debug, Deserialize)]
struct StreamAccount {
    read: Counts,
    written: Counts,
    dropped: DroppedAccount,
}

#[derive(Debug, Deserialize)]
struct DroppedAccount {
    rate_limit: Counts,
    ring_overflow: Counts,
    disk: Counts,
}

#[derive(Debug, Deserialize)]
struct Monitor {
    cpu_seconds: f64,
}

impl RunSummary {
    fn streams(&self) -> [(&'static str, &StreamAccount); 2] {
        [
            ("stdout", &self.streams.stdout),
            ("stderr", &self.streams.stderr),
        ]
    }

    /// read = written + dropped{rate_limit, ring_overflow, disk}, to the byte
    /// and to the line, on each stream.
    fn check_identity(&self) -> Result<(), String> {
        for (name, a) in self.streams() {
            let d = &a.dropped;
            let accounted = a
                .written
                .plus(d.rate_limit)
                .plus(d.ring_overflow)
                .plus(d.disk);
            if accounted != a.read {
                return Err(format!(
                    "ACCOUNTING IDENTITY BROKEN on {name}: read {} B / {} lines, but written \
                     {} B / {} lines + dropped rate_limit {} B / {} lines, ring_overflow {} B / \
                     {} lines, disk {} B / {} lines = {} B / {} lines",
                    a.read.bytes,
                    a.read.lines,
                    a.written.bytes,
                    a.written.lines,
                    d.rate_limit.bytes,
                    d.rate_limit.lines,
                    d.ring_overflow.bytes,
                    d.ring_overflow.lines,
                    d.disk.bytes,
                    d.disk.lines,
                    accounted.bytes,
                    accounted.lines
                ));
            }
        }
        Ok(())
    }

    /// The log holds exactly what the summary says was written.
    fn check_log(&self, found: &LogScan) -> Result<(), String> {
        for ((name, a), in_log) in self.streams().into_iter().zip([found.stdout, found.stderr]) {
            if a.written != in_log {
                return Err(format!(
                    "the log holds {} application bytes / {} lines on {name}, but the summary \
                     says {} bytes / {} lines were written",
                    in_log.bytes, in_log.lines, a.written.bytes, a.written.lines
                ));
            }
        }
        Ok(())
    }
}

/// What a CRI log holds: application bytes (content plus the newline of
/// each `F` record) and lines per stream, and weir's own drop markers.
#[derive(Debug, Default, PartialEq, Eq)]
struct LogScan {
    stdout: Counts,
    stderr: Counts,
    markers: u64,
    file_bytes: u64,
    /// Application bytes by the time weir stamped on their records, in
    /// ticks of [`TICK_S`] from the origin given to the scan.
    per_tick: Vec<u64>,
}

/// Marker records start with this (`weir: dropped N lines ...`); the
/// writer's lines are letters only.
const MARKER_PREFIX: &[u8] = b"weir: ";

/// Reads a CRI log; `origin_ns` (the run's start on the realtime clock)
/// anchors the ticks of [`LogScan::per_tick`].
fn scan_log(path: &Path, origin_ns: i128) -> std::io::Result<LogScan> {
    let mut found = LogScan::default();
    let file = match File::open(path) {
        Ok(file) => file,
        // Nothing was ever written (a budget that let nothing through).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut record = Vec::with_capacity(1 << 16);
    loop {
        record.clear();
        if reader.read_until(b'\n', &mut record)? == 0 {
            break;
        }
        found.file_bytes += record.len() as u64;
        let malformed = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "not a CRI record: {:?}",
                    String::from_utf8_lossy(&record[..record.len().min(200)])
                ),
            )
        };
        let body = record.strip_suffix(b"\n").ok_or_else(malformed)?;
        let mut parts = body.splitn(4, |&b| b == b' ');
        let (time, stream, tag) = (parts.next(), parts.next(), parts.next());
        let content = parts.next().unwrap_or(b"");
        let counts = match stream {
            Some(b"stdout") => &mut found.stdout,
            Some(b"stderr") => &mut found.stderr,
            _ => return Err(malformed()),
        };
        let full = match tag {
            Some(b"F") => true,
            Some(b"P") => false,
            _ => return Err(malformed()),
        };
        if content.starts_with(MARKER_PREFIX) {
            found.markers += 1;
            continue;
        }
        let bytes = content.len() as u64 + u64::from(full);
        counts.bytes += bytes;
        counts.lines += u64::from(full);
        let time = time
            .and_then(|t| Timestamp::parse_rfc3339(t).ok())
            .ok_or_else(malformed)?;
        let tick = ((time.as_nanos() - origin_ns).max(0) as f64 / 1e9 / TICK_S) as usize;
        if found.per_tick.len() <= tick {
            found.per_tick.resize(tick + 1, 0);
        }
        found.per_tick[tick] += bytes;
    }
    Ok(found)
}

/// One `weir gate status --json` reading: (container, granted bytes/s).
type StatusSample = Vec<(String, f64)>;

/// Reads `weir gate status --json` once a second while the fairness
/// containers run, leaving out the first and the last second (start-up and
/// exit).
fn sample_status(gate: &Path, seconds: f64) -> Vec<StatusSample> {
    #[derive(Deserialize)]
    struct Status {
        containers: Vec<ContainerStatus>,
    }
    #[derive(Deserialize)]
    struct ContainerStatus {
        name: String,
        granted_bytes_per_second: f64,
    }
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut at = 1.0;
    while at < seconds - 1.0 + 1e-9 {
        let wait = Duration::from_secs_f64(at).saturating_sub(start.elapsed());
        std::thread::sleep(wait);
        at += 1.0;
        let output = Command::new("/proc/self/exe")
            .arg0("weir")
            .args(["gate", "status", "--json", "--gate-config"])
            .arg(gate)
            .env_remove("WEIR_GATE_CONFIG")
            .stdin(Stdio::null())
            .output();
        let Ok(output) = output else { continue };
        let Ok(status) = serde_json::from_slice::<Status>(&output.stdout) else {
            eprintln!(
                "weir bench gate: cannot read weir gate status: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            continue;
        };
        samples.push(
            status
                .containers
                .into_iter()
                .map(|c| (c.name, c.granted_bytes_per_second))
                .collect(),
        );
    }
    samples
}

/// The mean of what the gate granted `name` over the samples that show it.
fn mean_granted(samples: &[StatusSample], name: &str) -> Option<f64> {
    let seen: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.iter().find(|(n, _)| n == name).map(|(_, g)| *g))
        .collect();
    (!seen.is_empty()).then(|| seen.iter().sum::<f64>() / seen.len() as f64)
}

/// Deletes a log (a 100 MiB/s case leaves more than a GB) and lets the
/// journal and writeback finish before the next run.
fn remove_and_sync(log: &Path) {
    let _ = std::fs::remove_file(log);
    // SAFETY: sync has no memory effects.
    unsafe { libc::sync() };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_scan_counts_application_bytes_and_leaves_markers_out() {
        let path = std::env::temp_dir().join(format!("weir-gate-scan-{}", std::process::id()));
        std::fs::write(
            &path,
            b"2026-01-01T00:00:00.000000000Z stdout P abc\n\
              2026-01-01T00:00:00.000000001Z stdout F de\n\
              2026-01-01T00:00:00.000000002Z stdout F weir: dropped 3 lines (300 bytes) from a to b\n\
              2026-01-01T00:00:00.000000003Z stderr F\n",
        )
        .unwrap();
        let origin = Timestamp::parse_rfc3339(b"2025-12-31T23:59:59.950000000Z")
            .unwrap()
            .as_nanos();
        let found = scan_log(&path, origin).unwrap();
        assert_eq!(found.stdout, Counts { bytes: 6, lines: 1 });
        assert_eq!(found.stderr, Counts { bytes: 1, lines: 1 });
        assert_eq!(found.markers, 1);
        // 50 ms after the origin: the first tick; markers are not counted.
        assert_eq!(found.per_tick, [7]);
        assert_eq!(found.file_bytes, std::fs::metadata(&path).unwrap().len());
        std::fs::write(&path, b"no record\n").unwrap();
        assert!(scan_log(&path, origin).is_err());
        std::fs::remove_file(&path).unwrap();
        assert_eq!(scan_log(&path, origin).unwrap(), LogScan::default());
    }

    #[test]
    fn a_budgeted_writer_run_that_dropped_nothing_fails() {
        let all = Counts {
            bytes: 1000,
            lines: 10,
        };
        let run = |written: Counts, rate_limit: Counts, ring_overflow: Counts| RunFigures {
            wall_s: 1.0,
            cpu_s: 0.0,
            peak_rss_kib: 0,
            read: all,
            written,
            dropped_rate_limit: rate_limit,
            dropped_ring_overflow: ring_overflow,
            dropped_disk: Counts::default(),
            markers: 0,
            log_file_bytes: 0,
            per_tick: Vec::new(),
        };
        let said = WriterReport {
            elapsed_seconds: 0.5,
            bytes: 1000,
        };
        let none = Counts::default();
        let stored = run(all, none, none);
        assert!(check_writer_run(&stored, &said, all, None).is_ok());
        let err = check_writer_run(&stored, &said, all, Some("drop")).unwrap_err();
        assert!(err.contains("NOTHING DROPPED under drop"), "{err}");
        let dropped = run(none, all, none);
        assert!(check_writer_run(&dropped, &said, all, Some("drop")).is_ok());
        assert!(check_writer_run(&dropped, &said, all, None).is_err());
        // ring must count its drops as ring_overflow.
        assert!(check_writer_run(&dropped, &said, all, Some("ring")).is_err());
        let overflowed = run(none, none, all);
        assert!(check_writer_run(&overflowed, &said, all, Some("ring")).is_ok());
        // The writer must have written everything, and weir read it.
        let short = WriterReport {
            elapsed_seconds: 0.5,
            bytes: 999,
        };
        assert!(check_writer_run(&stored, &short, all, None).is_err());
        let mut unread = run(all, none, none);
        unread.read.bytes = 999;
        assert!(check_writer_run(&unread, &said, all, None).is_err());
    }

    #[test]
    fn a_summary_that_does_not_balance_is_refused() {
        let summary = |written: u64| -> RunSummary {
            let text = format!(
                r#"{{"streams": {{
                    "stdout": {{"read": {{"bytes": 300, "lines": 3}},
                                "written": {{"bytes": {written}, "lines": 1}},
                                "dropped": {{"rate_limit": {{"bytes": 200, "lines": 2}},
                                             "ring_overflow": {{"bytes": 0, "lines": 0}},
                                             "disk": {{"bytes": 0, "lines": 0}}}}}},
                    "stderr": {{"read": {{"bytes": 0, "lines": 0}},
                                "written": {{"bytes": 0, "lines": 0}},
                                "dropped": {{"rate_limit": {{"bytes": 0, "lines": 0}},
                                             "ring_overflow": {{"bytes": 0, "lines": 0}},
                                             "disk": {{"bytes": 0, "lines": 0}}}}}}}},
                    "monitor": {{"cpu_seconds": 0.5, "max_rss_kib": 1}}, "exit": {{"code": 0}}}}"#
            );
            serde_json::from_str(&text).unwrap()
        };
        assert!(summary(100).check_identity().is_ok());
        let err = summary(99).check_identity().unwrap_err();
        assert!(err.contains("IDENTITY BROKEN on stdout"), "{err}");
        let found = LogScan {
            stdout: Counts {
                bytes: 100,
                lines: 1,
            },
            ..LogScan::default()
        };
        assert!(summary(100).check_log(&found).is_ok());
        assert!(summary(100).check_log(&LogScan::default()).is_err());
    }
}
