//! `weir`: capture, budget, ship and collect logs and traces.

mod bench;
mod gate_cmd;
mod run_cmd;
mod units;

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "weir",
    version,
    about = "Log capture under a bandwidth budget, shipping and collection"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a command and capture its stdout/stderr into CRI (or json-file) logs.
    Run(run_cmd::RunArgs),
    /// The node agent: tail, buffer and deliver logs as weir.toml says
    /// (run by `weir-agent`; `weir agent --help` there).
    #[command(disable_help_flag = true)]
    Agent {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// The collector: stores logs and spans, serves the query API (Zipkin
    /// v2 too) and the UI; runs on embedded defaults (run by `weir-agent`).
    #[command(disable_help_flag = true)]
    Collector {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Look at, check or repair a sink's disk buffer (run by `weir-agent`).
    #[command(disable_help_flag = true)]
    Buffer {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// The node's logging budget: status of the shared gate.
    #[command(subcommand)]
    Gate(gate_cmd::GateCommand),
    /// Benchmarks that compare weir with its peers on this machine.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run(args) => run_cmd::run(args),
        Command::Gate(command) => gate_cmd::run(command),
        Command::Bench(command) => bench::run(command),
        Command::Agent { args } => hand_over(&["agent"], args),
        Command::Buffer { args } => hand_over(&["buffer"], args),
        Command::Collector { args } => hand_over(&["collector"], args),
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// Runs `weir-agent COMMAND ARGS…`, the executable beside this one, in this
/// process's place. The agent's code lives there so that `weir`, which every
/// container's monitor runs, stays small: memory is per container.
pub fn hand_over(command: &[&str], args: Vec<OsString>) -> i32 {
    let agent = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("weir-agent")))
        .filter(|path| path.exists());
    let Some(agent) = agent else {
        eprintln!(
            "weir: weir-agent is not installed beside weir; it runs `weir {}`",
            command.join(" ")
        );
        return 127;
    };
    let error = std::process::Command::new(&agent)
        .args(command)
        .args(args)
        .exec();
    eprintln!("weir: cannot run {}: {error}", agent.display());
    126
}
