//! The agent's configuration file: any text must be accepted or refused with
//! an error naming a line and column inside the text, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_agent::config::{AgentConfig, ConfigError};

fuzz_target!(|text: &str| {
    match AgentConfig::parse(std::path::Path::new("weir.toml"), text) {
        Ok(_) => {}
        Err(ConfigError::Invalid { line, column, .. }) => {
            assert!(line >= 1 && line <= text.lines().count().max(1) + 1);
            assert!(column >= 1);
        }
        Err(ConfigError::Read { .. }) => unreachable!("parse reads nothing"),
    }
});
