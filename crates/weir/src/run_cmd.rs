//! `weir run`: the monitor, conmon's job.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use weir_gate::policy::PolicyKind;
use weir_gate::{Budget, Policy};
use weir_monitor::config::{GateConfig, RotationConfig};
use weir_monitor::{LogFormat, RunConfig, StdinMode};

use crate::units::{parse_duration, parse_rate, parse_size};

/// The largest `--max-line`: a record's byte count must fit the accounting.
const MAX_LINE_LIMIT: u64 = 64 << 20;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    /// `<time> <stream> <P|F> <content>` (Kubernetes CRI)
    Cri,
    /// Docker's json-file: `{"log":…,"stream":…,"time":…}`
    Json,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Name of the log, used for the default log path [default: the command's base name].
    #[arg(long)]
    name: Option<String>,
    /// The live log file [default: ./weir-logs/<name>.log]. Parent directories are created.
    #[arg(long)]
    log_path: Option<PathBuf>,
    /// Log file format.
    #[arg(long, value_enum, default_value = "cri")]
    log_format: FormatArg,
    /// Give the command a pseudo-terminal (stdout and stderr become one stream).
    #[arg(long)]
    tty: bool,
    /// Pass weir's standard input to the command (default: /dev/null).
    #[arg(long)]
    stdin: bool,
    /// Capacity requested for each output pipe.
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    pipe_size: u64,
    /// Longest record content; longer lines are split into P fragments ending with F.
    #[arg(long, default_value = "16KiB", value_parser = parse_size)]
    max_line: u64,
    /// Rotate the live file before it would grow past this size.
    #[arg(long, value_parser = parse_size)]
    log_max_size: Option<u64>,
    /// Files kept when rotating, the live file included.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    log_max_files: u32,
    /// Gzip rotated files in the background.
    #[arg(long)]
    log_compress: bool,
    /// After the command exits, how long to keep reading output its descendants still write.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// Longest time output may wait in weir before it is written.
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    max_latency: Duration,
    /// Budget for the command's output (both streams together), in application
    /// bytes: `5MiB/s`, `10MB/min`. Without it the output is not limited.
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
    /// Bytes that may pass at once after a quiet period [default: one second of --rate].
    #[arg(long, value_parser = parse_size, requires = "rate")]
    burst: Option<u64>,
    /// What happens when the budget is exhausted: block (the writer waits),
    /// drop (whole lines are discarded and counted) or ring (the newest output
    /// waits in memory, the oldest is dropped on overflow).
    #[arg(long, default_value = "block", requires = "rate")]
    policy: PolicyKind,
    /// Largest output held in memory under --policy ring.
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    ring_size: u64,
    /// While output is being dropped, state the loss in the log at least this often.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    marker_interval: Duration,
    /// Print a JSON account of the run on stdout at exit.
    #[arg(long)]
    summary: bool,
    /// The command to run and its arguments.
    #[arg(last = true, required = true, num_args = 1..)]
    command: Vec<OsString>,
}

impl RunArgs {
    fn into_config(self) -> Result<(RunConfig, bool), String> {
        if self.max_line == 0 || self.max_line > MAX_LINE_LIMIT {
            return Err(format!(
                "--max-line must be between 1 byte and {MAX_LINE_LIMIT} bytes"
            ));
        }
        let name = match self.name {
            Some(name) => name,
            None => Path::new(&self.command[0])
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "weir".to_owned()),
        };
        let log_path = self
            .log_path
            .unwrap_or_else(|| Path::new("weir-logs").join(format!("{name}.log")));
        let mut config = RunConfig::new(self.command, log_path);
        config.format = match self.log_format {
            FormatArg::Cri => LogFormat::Cri,
            FormatArg::Json => LogFormat::JsonFile,
        };
        config.tty = self.tty;
        config.stdin = if self.stdin {
            StdinMode::Inherit
        } else {
            StdinMode::Null
        };
        config.pipe_size = usize::try_from(self.pipe_size).unwrap_or(usize::MAX);
        config.max_line = self.max_line as usize;
        config.rotation = RotationConfig {
            max_size: self.log_max_size,
            max_files: self.log_max_files as usize,
            compress: self.log_compress,
        };
        config.drain_timeout = self.drain_timeout;
        config.gate = self.rate.map(|rate| GateConfig {
            budget: Budget::new(rate, self.burst),
            policy: match self.policy {
                PolicyKind::Block => Policy::Block,
                PolicyKind::Drop => Policy::Drop,
                PolicyKind::Ring => Policy::Ring {
                    max_bytes: self.ring_size,
                },
            },
            marker_interval: self.marker_interval,
        });
        config.max_latency = self.max_latency;
        Ok((config, self.summary))
    }
}

/// Runs the monitor and returns weir's exit code: the child's.
pub fn run(args: RunArgs) -> i32 {
    let (config, print_summary) = match args.into_config() {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("weir run: {message}");
            return 2;
        }
    };
    match weir_monitor::run(&config) {
        Ok(summary) => {
            if print_summary {
                let printed = serde_json::to_string(&summary)
                    .map_err(io::Error::other)
                    .and_then(|json| writeln!(io::stdout(), "{json}"));
                if let Err(e) = printed {
                    eprintln!("weir run: cannot print the summary: {e}");
                }
            }
            summary.exit.code
        }
        Err(error) => {
            eprintln!("weir run: {error}");
            error.exit_code()
        }
    }
}
