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
//!   says how it is driven, `machine.rs` describes the machine.

mod bundle;
mod capture;
mod conmon;
mod machine;
mod measure;
mod peers;
mod report;
mod verify;
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

pub fn run(command: BenchCommand) -> i32 {
    match command {
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
