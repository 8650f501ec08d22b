//! `weir gate status`: the node budget and every active container's share,
//! read from the state the monitors share.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Serialize;
use weir_gate::Policy;
use weir_gate::config::{self, GateFile};
use weir_gate::node::NodeState;
use weir_gate::units::format_rate;

#[derive(Debug, Subcommand)]
pub enum GateCommand {
    /// Show the node budget and each active container's rate, share and drops.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The SRE's gate file [default: /etc/weir/gate.toml].
    #[arg(long, env = "WEIR_GATE_CONFIG")]
    gate_config: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long, conflicts_with = "prometheus")]
    json: bool,
    /// Print metrics in the Prometheus text format (for a textfile collector).
    #[arg(long)]
    prometheus: bool,
}

#[derive(Debug, Serialize)]
struct Status {
    state: PathBuf,
    node_rate_bytes_per_second: Option<f64>,
    containers: Vec<ContainerStatus>,
}

#[derive(Debug, Serialize)]
struct ContainerStatus {
    name: String,
    pid: u32,
    weight: u32,
    policy: &'static str,
    /// Bytes per second wanted over the last period; `null`: more than granted.
    demand_bytes_per_second: Option<u64>,
    granted_bytes_per_second: u64,
    /// Bytes per second passed over about the last second.
    rate_bytes_per_second: u64,
    passed_bytes: u64,
    dropped_bytes: u64,
    heartbeat_age_seconds: f64,
}

pub fn run(command: GateCommand) -> i32 {
    match command {
        GateCommand::Status(args) => match status(&args) {
            Ok(text) => {
                print!("{text}");
                0
            }
            Err(message) => {
                eprintln!("weir gate status: {message}");
                1
            }
        },
    }
}

fn status(args: &StatusArgs) -> Result<String, String> {
    let path = args
        .gate_config
        .clone()
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    let file = GateFile::load(&path).map_err(|e| e.to_string())?;
    let state = open_existing(&file.state_path)?;
    let status = Status {
        state: file.state_path.clone(),
        node_rate_bytes_per_second: file.node.map(|b| b.rate),
        containers: state
            .active()
            .into_iter()
            .map(|view| ContainerStatus {
                name: view.name,
                pid: view.pid,
                weight: view.weight,
                policy: Policy::name_of_code(view.policy),
                demand_bytes_per_second: view.demand,
                granted_bytes_per_second: view.granted,
                rate_bytes_per_second: view.rate,
                passed_bytes: view.passed,
                dropped_bytes: view.dropped,
                heartbeat_age_seconds: view.age,
            })
            .collect(),
    };
    if args.json {
        return serde_json::to_string(&status)
            .map(|j| j + "\n")
            .map_err(|e| e.to_string());
    }
    if args.prometheus {
        return Ok(prometheus(&status));
    }
    let mut out = String::new();
    let node = status
        .node_rate_bytes_per_second
        .map_or("none".into(), format_rate);
    let _ = writeln!(out, "node budget {node}, state {}", status.state.display());
    let _ = writeln!(
        out,
        "{:<20} {:>8} {:>6} {:>6} {:>12} {:>12} {:>12} {:>14} {:>14}",
        "container", "pid", "weight", "policy", "rate", "demand", "granted", "passed", "dropped"
    );
    for c in &status.containers {
        let demand = c
            .demand_bytes_per_second
            .map_or("more".into(), |d| format_rate(d as f64));
        let _ = writeln!(
            out,
            "{:<20} {:>8} {:>6} {:>6} {:>12} {:>12} {:>12} {:>14} {:>14}",
            c.name,
            c.pid,
            c.weight,
            c.policy,
            format_rate(c.rate_bytes_per_second as f64),
            demand,
            format_rate(c.granted_bytes_per_second as f64),
            c.passed_bytes,
            c.dropped_bytes
        );
    }
    Ok(out)
}

/// Opens the state without creating it: status only reads.
fn open_existing(path: &Path) -> Result<NodeState, String> {
    if !path.exists() {
        return Err(format!(
            "no node state at {} (no monitor has joined the node budget yet)",
            path.display()
        ));
    }
    NodeState::open(path).map_err(|e| e.to_string())
}

/// A per-container metric: name, type, help and how to read it.
type Metric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ContainerStatus) -> f64,
);

fn prometheus(status: &Status) -> String {
    let mut out = String::new();
    if let Some(rate) = status.node_rate_bytes_per_second {
        let _ = writeln!(
            out,
            "# HELP weir_gate_node_budget_bytes_per_second The node's logging budget."
        );
        let _ = writeln!(out, "# TYPE weir_gate_node_budget_bytes_per_second gauge");
        let _ = writeln!(out, "weir_gate_node_budget_bytes_per_second {rate}");
    }
    let metrics: [Metric; 5] = [
        (
            "weir_gate_rate_bytes_per_second",
            "gauge",
            "Application bytes per second a container passed over about the last second.",
            |c| c.rate_bytes_per_second as f64,
        ),
        (
            "weir_gate_dropped_bytes_total",
            "counter",
            "Application bytes dropped over budget (drop or ring).",
            |c| c.dropped_bytes as f64,
        ),
        (
            "weir_gate_granted_bytes_per_second",
            "gauge",
            "The rate a container runs at now.",
            |c| c.granted_bytes_per_second as f64,
        ),
        (
            "weir_gate_passed_bytes_total",
            "counter",
            "Application bytes a container's gate let through.",
            |c| c.passed_bytes as f64,
        ),
        (
            "weir_gate_weight",
            "gauge",
            "A container's weight in the node's fair share.",
            |c| f64::from(c.weight),
        ),
    ];
    for (name, kind, help, value) in metrics {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for c in &status.containers {
            let _ = writeln!(
                out,
                "{name}{{container=\"{}\",pid=\"{}\",policy=\"{}\"}} {}",
                escape_label(&c.name),
                c.pid,
                c.policy,
                value(c)
            );
        }
    }
    out
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
