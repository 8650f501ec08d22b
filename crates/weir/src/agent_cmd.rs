//! `weir agent -c weir.toml`: runs the node pipeline until SIGTERM or
//! SIGINT; SIGHUP reads the file again and, if it changed and is valid,
//! applies it: components whose configuration did not change keep running,
//! a changed sink keeps its buffer, and a source that stays takes its new
//! routes between two reads.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use weir_agent::config::AgentConfig;
use weir_agent::pipeline;
use weir_monitor::signals::{self, SignalSet};

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The configuration file.
    #[arg(short = 'c', long = "config", env = "WEIR_AGENT_CONFIG")]
    config: PathBuf,
    /// Check the configuration and exit: 0 if it is valid.
    #[arg(long)]
    check: bool,
    /// How long sinks may take to deliver what is buffered at exit or reload.
    #[arg(long, default_value = "5s", value_parser = crate::units::parse_duration)]
    drain_timeout: Duration,
}

pub fn run(args: AgentArgs) -> i32 {
    let mut config = match AgentConfig::load(&args.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("weir: {e}");
            return 2;
        }
    };
    if args.check {
        println!(
            "{}: valid ({} sources, {} sinks)",
            args.config.display(),
            config.sources.len(),
            config.sinks.len()
        );
        return 0;
    }
    // Signals are taken by this thread alone: block them before any other
    // thread starts, so every thread inherits the mask.
    let handled = SignalSet::new(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP]);
    if let Err(e) = handled.block() {
        eprintln!("weir: cannot block signals: {e}");
        return 1;
    }
    let mut running = match pipeline::start(&config) {
        Ok(running) => running,
        Err(e) => {
            eprintln!("weir: {e}");
            return 1;
        }
    };
    eprintln!(
        "weir: agent running ({} sources, {} sinks){}",
        config.sources.len(),
        config.sinks.len(),
        config
            .api
            .as_ref()
            .map(|a| format!("; metrics at http://{}/metrics", a.address))
            .unwrap_or_default()
    );
    loop {
        let Some(signal) = handled.wait(Duration::from_secs(3600)) else {
            continue;
        };
        if signal != libc::SIGHUP {
            eprintln!("weir: {}: stopping", signals::name(signal));
            running.stop(args.drain_timeout);
            return 0;
        }
        match AgentConfig::load(&args.config) {
            Err(e) => eprintln!("weir: reload refused, still running the old configuration: {e}"),
            Ok(new) if new == config => eprintln!("weir: reload: nothing changed"),
            Ok(new) => match running.reload(&new, args.drain_timeout) {
                Ok(()) => {
                    eprintln!("weir: reload: applied; unchanged components kept running");
                    config = new;
                }
                Err(e) => eprintln!(
                    "weir: reload: {e}; the components not yet changed keep the old configuration"
                ),
            },
        }
    }
}
