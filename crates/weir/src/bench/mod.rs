//! `weir bench`: benchmarks against peers, measured in one run on one
//! machine, printed as ratios (absolute figures drift between machines).
//!
//! - `capture.rs` runs the capture benchmark: workloads × rounds × peers;
//! - `peers.rs` drives bare `cat` (`cat-cri`: of the lines already written
//!   as weir's CRI records) and `weir run`, `conmon.rs` (with
//!   `bundle.rs`) conmon + runc;
//! - `measure.rs` reads a monitor's own CPU time and peak RSS from `/proc`;
//! - `verify.rs` checks that every line reached the log;
//! - `report.rs` computes medians, ratios and the targets of issue 2;
//! - `writer.c` (built by `writer.rs`) is the application, `workload.rs`
//!   says how it is driven, `machine.rs` describes the machine;
//! - `agent.rs` (in the `weir-agent` executable) runs the agent
//!   benchmark of issue 4 (file tail to blackhole and to http, memory and
//!   disk buffers);
//! - `gate.rs` runs the gate benchmark of issue 3 (accuracy of a budget,
//!   fairness of the node budget, CPU cost of a budget never hit, the
//!   writer's own throughput under drop and ring) and
//!   `gate_report.rs` computes its fair shares, ratios and verdicts.

mod bundle;
mod capture;
mod conmon;
mod gate;
mod gate_report;
mod machine;
mod measure;
mod peers;
mod report;
mod stats;
mod verify;
mod workdir;
mod workload;
mod writer;

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Capture speed and cost: the same writer through bare `cat`, `weir run`
    /// and conmon + runc, with ratios against the targets of issue 2; and
    /// `cat` of the same lines as weir's CRI records, the floor for weir's
    /// bytes.
    Capture(CaptureArgs),
    /// The bandwidth gate: delivered rate against the budget (1, 10 and
    /// 100 MiB/s), each container's share of a node budget against its
    /// max-min fair share, the CPU a budget that is never hit costs, and the
    /// writer's own throughput under drop and ring with a budget of 1 % of
    /// it, with the targets of issue 3.
    Gate(GateArgs),
    /// The node agent: a file of 100-byte lines tailed into a blackhole and
    /// into an http receiver, each with a memory and a disk buffer; lines/s,
    /// CPU and peak RSS, with the targets of issue 4 (run by `weir-agent`;
    /// `weir bench agent --help` there).
    #[command(disable_help_flag = true)]
    Agent {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// The agent receiving syslog/TCP, Forward and OTLP/HTTP at full speed,
    /// against rsyslog for syslog/TCP → file, with the target of issue 5
    /// (run by `weir-agent`; `weir bench receive --help` there).
    #[command(disable_help_flag = true)]
    Receive {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// The collector ingesting logs and spans into its SQLite store, and
    /// the latency of traces by id and full-text searches over a million
    /// records, with the targets of issue 6 (run by `weir-agent`; `weir
    /// bench collector --help` there).
    #[command(disable_help_flag = true)]
    Collector {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// Lines written per workload and run.
    #[arg(long, default_value_t = 2_000_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    lines: u64,
    /// Runs per workload and peer; the report shows medians.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: u32,
    /// Unmeasured rounds per workload before the measured ones (their logs
    /// are still verified).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=100))]
    warmup: u32,
    /// Workloads to run: 1 = 100 B lines in 64 KiB writes, 2 = 100 B lines
    /// with a write per line, 3 = empty lines in 64 KiB writes, 4 = eight
    /// writers with a write per line.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4", value_parser = clap::value_parser!(u8).range(1..=4))]
    workloads: Vec<u8>,
    /// Directory for the writer, the OCI bundle and the logs (kept; the logs
    /// are deleted after each run) [default: a directory under /tmp, removed
    /// afterwards].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Leave conmon out (it needs root, conmon, runc and busybox-static).
    #[arg(long)]
    no_conmon: bool,
    /// Do not touch free memory before each run. By default it is touched
    /// because on VMs with free page reporting (virtio-balloon) memory freed
    /// more than ~2 s earlier is returned to the host, and the run that next
    /// fills the page cache pays 3-6x for faulting it back.
    #[arg(long)]
    no_prefault: bool,
    /// Print the report as one JSON object on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct GateArgs {
    /// How long each writer runs in the accuracy and fairness cases.
    #[arg(long, default_value_t = 10.0, value_parser = parse_seconds)]
    seconds: f64,
    /// Budgets of the accuracy case (one container alone).
    #[arg(long, value_delimiter = ',', default_value = "1MiB/s,10MiB/s,100MiB/s", value_parser = crate::units::parse_rate)]
    budgets: Vec<f64>,
    /// Policies of the accuracy case.
    #[arg(long, value_delimiter = ',', default_value = "drop,block", value_parser = ["block", "drop", "ring"])]
    policies: Vec<String>,
    /// The node budget the four containers of the fairness case share.
    #[arg(long, default_value = "8MiB/s", value_parser = crate::units::parse_rate)]
    node_rate: f64,
    /// What the fairness container below its share (c1) writes.
    #[arg(long, default_value = "512KiB/s", value_parser = crate::units::parse_rate)]
    paced_rate: f64,
    /// Lines per run of the overhead case (100 B each, 64 KiB writes).
    #[arg(long, default_value_t = 2_000_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    overhead_lines: u64,
    /// Measured runs per variant of the overhead case (after one warm-up round).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=1000))]
    overhead_runs: u32,
    /// Policies run under a budget that is never hit in the overhead case.
    #[arg(long, value_delimiter = ',', default_value = "block,drop,ring", value_parser = ["block", "drop", "ring"])]
    overhead_policies: Vec<String>,
    /// Where the overhead case's log goes: `null` (/dev/null) leaves weir's
    /// own work without the page-cache copy, whose cost is most of weir's
    /// CPU and swings with the VM, so the gate's share shows more and more
    /// steadily (the stricter ratio); `file`, a log file as in the other cases.
    #[arg(long, default_value = "null", value_parser = ["null", "file"])]
    overhead_log: String,
    /// Lines per run of the writer case (100 B each, 64 KiB writes).
    #[arg(long, default_value_t = 2_000_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    writer_lines: u64,
    /// Measured runs per variant of the writer case (no budget, drop, ring,
    /// taking turns), after as many calibration runs without a budget that
    /// set the budget to 1 % of the writer's throughput.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    writer_runs: u32,
    /// Cases to run.
    #[arg(long, value_delimiter = ',', default_value = "accuracy,fairness,overhead,writer", value_parser = ["accuracy", "fairness", "overhead", "writer"])]
    cases: Vec<String>,
    /// Directory for the writer, the gate files and the logs (kept; the logs
    /// are deleted after each run) [default: a directory under /tmp, removed
    /// afterwards].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Do not touch free memory before each run of the overhead and writer
    /// cases (see `weir bench capture --help`).
    #[arg(long)]
    no_prefault: bool,
    /// Print the report as one JSON object on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
}

/// Seconds, a positive decimal number of at most a day.
fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if (0.5..=86_400.0).contains(&s) => Ok(s),
        _ => Err(format!(
            "{text:?}: expected a number of seconds from 0.5 to 86400"
        )),
    }
}

/// Prints a benchmark's report and returns the exit code: 0 when every
/// run passed its checks, 1 when one failed, 2 when the benchmark could not
/// run. With `json`, the table goes to stderr for people and one JSON object
/// to stdout for programs.
fn print_report<R: serde::Serialize>(
    name: &str,
    json: bool,
    result: Result<R, String>,
    table_and_ok: impl Fn(&R) -> (String, bool),
) -> i32 {
    let report = match result {
        Ok(report) => report,
        Err(message) => {
            eprintln!("weir bench {name}: {message}");
            return 2;
        }
    };
    let (table, ok) = table_and_ok(&report);
    if json {
        eprint!("{table}");
        match serde_json::to_string(&report) {
            Ok(json) => println!("{json}"),
            Err(e) => eprintln!("weir bench {name}: cannot encode JSON: {e}"),
        }
    } else {
        print!("{table}");
    }
    if ok { 0 } else { 1 }
}

pub fn run(command: BenchCommand) -> i32 {
    match command {
        BenchCommand::Agent { args } => crate::hand_over(&["bench", "agent"], args),
        BenchCommand::Receive { args } => crate::hand_over(&["bench", "receive"], args),
        BenchCommand::Collector { args } => crate::hand_over(&["bench", "collector"], args),
        BenchCommand::Gate(args) => {
            let has = |case: &str| args.cases.iter().any(|c| c == case);
            gate::run(gate::Options {
                seconds: args.seconds,
                accuracy: has("accuracy"),
                fairness: has("fairness"),
                overhead: has("overhead"),
                writer: has("writer"),
                budgets: args.budgets,
                policies: args.policies,
                node_rate: args.node_rate,
                paced_rate: args.paced_rate,
                overhead_lines: args.overhead_lines,
                overhead_runs: args.overhead_runs,
                overhead_policies: args.overhead_policies,
                overhead_to_null: args.overhead_log == "null",
                writer_lines: args.writer_lines,
                writer_runs: args.writer_runs,
                work_dir: args.work_dir,
                prefault: !args.no_prefault,
                json: args.json,
            })
        }
        BenchCommand::Capture(args) => {
            let mut ids = args.workloads;
            ids.sort_unstable();
            ids.dedup();
            let workloads = ids
                .into_iter()
                .filter_map(workload::Workload::by_id)
                .collect();
            capture::run(capture::Options {
                lines: args.lines,
                runs: args.runs,
                warmup: args.warmup,
                workloads,
                work_dir: args.work_dir,
                conmon: !args.no_conmon,
                prefault: !args.no_prefault,
                json: args.json,
            })
        }
    }
}
