//! `weir`: capture, budget, ship and collect logs and traces.

mod agent_cmd;
mod bench;
mod buffer_cmd;
mod gate_cmd;
mod run_cmd;
mod units;

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
    /// The node agent: tail, buffer and deliver logs as weir.toml says.
    Agent(agent_cmd::AgentArgs),
    /// Look at, check or repair a sink's disk buffer.
    #[command(subcommand)]
    Buffer(buffer_cmd::BufferCommand),
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
        Command::Agent(args) => agent_cmd::run(args),
        Command::Buffer(command) => buffer_cmd::run(command),
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}
