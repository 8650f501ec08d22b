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
    let config = match AgentConfig::load(&args.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("weir: {e}");
            return 2;
        }
    };
    let stores = config
        .sinks
        .values()
        .any(|sink| matches!(sink.kind, weir_agent::config::SinkKind::Store));
    if config.store.is_some() || config.query.is_some() || stores {
        eprintln!(
            "weir: {}: [store], [query] and store sinks are read by `weir collector`, not `weir agent`",
            args.config.display()
        );
        return 2;
    }
    if args.check {
        println!(
            "{}: valid ({} sources, {} sinks)",
            args.config.display(),
            config.sources.len(),
            config.sinks.len()
        );
        return 0;
    }
    let Some(handled) = take_signals() else {
        return 1;
    };
    let running = match pipeline::start(&config) {
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
    supervise(running, config, &handled, args.drain_timeout, || {
        AgentConfig::load(&args.config).map_err(|e| e.to_string())
    })
}

/// Blocks SIGTERM, SIGINT and SIGHUP for this thread and every thread it
/// starts after, so that this one alone takes them.
pub fn take_signals() -> Option<SignalSet> {
    let handled = SignalSet::new(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP]);
    match handled.block() {
        Ok(()) => Some(handled),
        Err(e) => {
            eprintln!("weir: cannot block signals: {e}");
            None
        }
    }
}

/// Runs `running` until SIGTERM or SIGINT (then drains and returns 0); on
/// SIGHUP reads the configuration again with `load` and applies it if it
/// changed and is valid.
pub fn supervise(
    mut running: pipeline::Running,
    mut config: AgentConfig,
    handled: &SignalSet,
    drain_timeout: Duration,
    load: impl Fn() -> Result<AgentConfig, String>,
) -> i32 {
    loop {
        let Some(signal) = handled.wait(Duration::from_secs(3600)) else {
            continue;
        };
        if signal != libc::SIGHUP {
            eprintln!("weir: {}: stopping", signals::name(signal));
            running.stop(drain_timeout);
            return 0;
        }
        match load() {
            Err(e) => eprintln!("weir: reload refused, still running the old configuration: {e}"),
            Ok(new) if new == config => eprintln!("weir: reload: nothing changed"),
            Ok(new) => match running.reload(&new, drain_timeout) {
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
