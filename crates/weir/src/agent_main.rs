//! `weir-agent`: the node agent, the disk buffer tools and the agent's
//! benchmark. `weir agent`, `weir buffer` and `weir bench agent` run this
//! executable in their place, so that `weir` itself, which every monitored
//! container runs, does not carry the agent's code.

mod agent_cmd;
// Shared with `weir`: not every item of these is used here.
#[allow(dead_code)]
#[path = "bench/agent_bench.rs"]
mod bench;
mod buffer_cmd;
mod collector_cmd;
#[allow(unused_imports)]
mod units;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "weir-agent",
    version,
    about = "The weir node agent (also run as `weir agent`, `weir collector`, `weir buffer`, `weir bench agent`)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The node agent: tail, buffer and deliver logs as weir.toml says.
    Agent(agent_cmd::AgentArgs),
    /// Look at, check or repair a sink's disk buffer.
    #[command(subcommand)]
    Buffer(buffer_cmd::BufferCommand),
    /// The collector: stores what agents and OTLP, Zipkin and Fluent
    /// clients send, and serves the query API and UI.
    Collector(collector_cmd::CollectorArgs),
    /// The agent's benchmark.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// A file of 100-byte lines tailed into a blackhole and into an http
    /// receiver, each with a memory and a disk buffer; lines/s, CPU and
    /// peak RSS, with the targets of issue 4.
    Agent(bench::agent::AgentArgs),
    /// The agent receiving syslog/TCP, Forward and OTLP/HTTP at full speed
    /// into a blackhole and a file, against rsyslog for syslog/TCP → file;
    /// records/s, CPU and peak RSS, with the target of issue 5.
    Receive(bench::receive::ReceiveArgs),
    /// The collector ingesting OTLP logs and spans into its SQLite store,
    /// against a blackhole sink, and the latency of traces by id and
    /// full-text searches over a million records, with the targets of
    /// issue 6.
    Collector(bench::collector::CollectorArgs),
}

fn main() -> ExitCode {
    let code = match Cli::parse().command {
        Command::Agent(args) => agent_cmd::run(args),
        Command::Buffer(command) => buffer_cmd::run(command),
        Command::Collector(args) => collector_cmd::run(args),
        Command::Bench(BenchCommand::Agent(args)) => args.run(),
        Command::Bench(BenchCommand::Receive(args)) => args.run(),
        Command::Bench(BenchCommand::Collector(args)) => args.run(),
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}
