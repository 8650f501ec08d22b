//! `weir run`: the monitor, conmon's job.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use weir_gate::Budget;
use weir_gate::config::{self, AppRequest, GateFile};
use weir_gate::policy::PolicyKind;
use weir_monitor::config::{GateConfig, RotationConfig};
use weir_monitor::format::timestamp::Timestamp;
use weir_monitor::meta::ContainerMeta;
use weir_monitor::node_share::NodeConfig;
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
    /// The SRE's gate file [default: /etc/weir/gate.toml, if it exists].
    #[arg(long, env = "WEIR_GATE_CONFIG")]
    gate_config: Option<PathBuf>,
    /// A label of this container, `key=value`; the gate file may weight by it.
    #[arg(long = "label", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// Budget for the command's output (both streams together), in application
    /// bytes: `5MiB/s`, `10MB/min`. With a gate file, only a lower budget than
    /// the SRE's may be asked for.
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
    /// Bytes that may pass at once after a quiet period [default: a tenth of a second of --rate].
    #[arg(long, value_parser = parse_size)]
    burst: Option<u64>,
    /// What happens when the budget is exhausted: block (the writer waits),
    /// drop (whole lines are discarded and counted) or ring (the newest output
    /// waits in memory, the oldest is dropped on overflow) [default: the SRE's, else block].
    #[arg(long)]
    policy: Option<PolicyKind>,
    /// Largest output held in memory under --policy ring [default: the SRE's, else 1MiB].
    #[arg(long, value_parser = parse_size)]
    ring_size: Option<u64>,
    /// When the gate file does not allow what was asked for, warn and use the
    /// SRE's default instead of refusing to start.
    #[arg(long)]
    policy_fallback: bool,
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

/// Parses `key=value`.
fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not a label: expected key=value")),
    }
}

impl RunArgs {
    /// Reconciles the budget asked for on the command line with the SRE's
    /// gate file, if there is one.
    fn resolve_gate(&self, name: &str) -> Result<Option<GateConfig>, String> {
        let file = match &self.gate_config {
            Some(path) => Some(GateFile::load(path).map_err(|e| e.to_string())?),
            None if Path::new(config::DEFAULT_PATH).exists() => {
                Some(GateFile::load(Path::new(config::DEFAULT_PATH)).map_err(|e| e.to_string())?)
            }
            None => None,
        };
        let request = AppRequest {
            name: name.to_owned(),
            labels: self.labels.clone(),
            policy: self.policy,
            ring_size: self.ring_size,
            rate: self.rate,
            burst: self.burst,
            fallback: self.policy_fallback,
        };
        if self.burst.is_some() && self.rate.is_none() {
            return Err("--burst needs --rate".into());
        }
        let resolved = config::resolve(file.as_ref(), &request)?;
        for warning in &resolved.warnings {
            eprintln!("weir run: warning: {warning}");
        }
        // Without a budget of its own a container is held to the node's,
        // which the node share then narrows to its fair part.
        let budget = resolved.container.or(resolved.node).or_else(|| {
            resolved
                .streams
                .map(|(out, err)| Budget::new(out.rate + err.rate, Some(out.burst + err.burst)))
        });
        Ok(budget.map(|budget| GateConfig {
            budget,
            streams: resolved.streams,
            policy: resolved.policy,
            marker_interval: self.marker_interval,
            node: resolved
                .node
                .zip(file.as_ref())
                .map(|(budget, file)| NodeConfig {
                    budget,
                    state_path: file.state_path.clone(),
                    name: name.to_owned(),
                    weight: resolved.weight,
                    policy_code: resolved.policy.code(),
                }),
        }))
    }

    fn into_config(self) -> Result<(RunConfig, bool, String), String> {
        if self.max_line == 0 || self.max_line > MAX_LINE_LIMIT {
            return Err(format!(
                "--max-line must be between 1 byte and {MAX_LINE_LIMIT} bytes"
            ));
        }
        let name = match &self.name {
            Some(name) => name.clone(),
            None => Path::new(&self.command[0])
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "weir".to_owned()),
        };
        let gate = self.resolve_gate(&name)?;
        let log_path = self
            .log_path
            .unwrap_or_else(|| Path::new("weir-logs").join(format!("{name}.log")));
        let mut config = RunConfig::new(self.command, log_path);
        config.gate = gate;
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
        config.max_latency = self.max_latency;
        Ok((config, self.summary, name))
    }
}

/// Runs the monitor and returns weir's exit code: the child's.
pub fn run(args: RunArgs) -> i32 {
    let labels = args.labels.iter().cloned().collect();
    let (config, print_summary, name) = match args.into_config() {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("weir run: {message}");
            return 2;
        }
    };
    // Whose log this is, for readers of the log files (the agent).
    let meta = ContainerMeta {
        name,
        labels,
        monitor_pid: std::process::id(),
        started: String::from_utf8_lossy(&Timestamp::now().to_rfc3339()).into_owned(),
        budget: config.gate.as_ref().map(|gate| match gate.streams {
            Some((out, err)) => (out.rate + err.rate) as u64,
            None => gate.budget.rate as u64,
        }),
        policy: config
            .gate
            .as_ref()
            .map(|gate| gate.policy.name().to_owned()),
    };
    if let Err(e) = weir_monitor::meta::write(&config.log_path, &meta) {
        eprintln!(
            "weir run: cannot write {} ({e}); the log is written without it",
            weir_monitor::meta::path_for(&config.log_path).display()
        );
    }
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
