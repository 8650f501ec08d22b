//! `weir collector [-c weir.toml]`: receives OTLP/HTTP (4318), Forward
//! (24224) and Zipkin (9411), stores everything in one SQLite file under
//! `./weir-data`, and serves the query API and UI on 127.0.0.1:9411 —
//! with no configuration at all. A configuration file is an agent's with
//! a `store` sink and the `[store]` and `[query]` sections.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use weir_agent::config::AgentConfig;
use weir_collector::run::{self, DEFAULT_CONFIG};

use crate::agent_cmd::{supervise, take_signals};

#[derive(Debug, Args)]
pub struct CollectorArgs {
    /// The configuration file (default: the embedded one).
    #[arg(short = 'c', long = "config", env = "WEIR_COLLECTOR_CONFIG")]
    config: Option<PathBuf>,
    /// Check the configuration and exit: 0 if it is valid.
    #[arg(long)]
    check: bool,
    /// Print the embedded configuration, to start a file of your own from.
    #[arg(long)]
    print_default: bool,
    /// How long the store may take to take in what is buffered at exit.
    #[arg(long, default_value = "5s", value_parser = crate::units::parse_duration)]
    drain_timeout: Duration,
}

fn load(path: Option<&Path>) -> Result<AgentConfig, String> {
    match path {
        Some(path) => AgentConfig::load(path).map_err(|e| e.to_string()),
        None => AgentConfig::parse(Path::new("(embedded configuration)"), DEFAULT_CONFIG)
            .map_err(|e| e.to_string()),
    }
}

pub fn run(args: CollectorArgs) -> i32 {
    if args.print_default {
        print!("{}", DEFAULT_CONFIG.trim_start());
        return 0;
    }
    let config = match load(args.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("weir: {e}");
            return 2;
        }
    };
    if args.check {
        println!(
            "configuration valid ({} sources, {} sinks)",
            config.sources.len(),
            config.sinks.len()
        );
        return 0;
    }
    let Some(handled) = take_signals() else {
        return 1;
    };
    let collector = match run::start(&config) {
        Ok(collector) => collector,
        Err(e) => {
            eprintln!("weir: {e}");
            return 1;
        }
    };
    let receiving: Vec<String> = config
        .sources
        .iter()
        .map(|(name, source)| format!("{name} ({})", source_address(source)))
        .collect();
    eprintln!(
        "weir: collector storing into {}; receiving {}; API and UI at http://{}/",
        collector.store_config.path.display(),
        receiving.join(", "),
        collector.query.address
    );
    if collector.query.tokens.is_empty() {
        eprintln!("weir: no query token configured: the API listens on loopback only");
    }
    let started = config.clone();
    supervise(
        collector.running,
        config,
        &handled,
        args.drain_timeout,
        || {
            let new = load(args.config.as_deref())?;
            match run::needs_restart(&started, &new) {
                Some(why) => Err(why),
                None => Ok(new),
            }
        },
    )
}

fn source_address(source: &weir_agent::config::SourceConfig) -> String {
    use weir_agent::config::SourceConfig;
    match source {
        SourceConfig::Otlp(c) | SourceConfig::Zipkin(c) => c.address.to_string(),
        SourceConfig::Forward(c) => c.address.to_string(),
        SourceConfig::Syslog(_) => "syslog".into(),
        SourceConfig::File { .. } | SourceConfig::Monitor { .. } => "files".into(),
    }
}
