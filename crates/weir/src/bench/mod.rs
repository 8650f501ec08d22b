//! `weir bench`: benchmarks against peers, measured in one run.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {}

pub fn run(command: BenchCommand) -> i32 {
    match command {}
}
