//! What a capture run is asked to do.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::format::LogFormat;
pub use crate::gate::GateConfig;

/// Where the child's standard input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StdinMode {
    /// `/dev/null`: the child never waits on input nobody will type.
    #[default]
    Null,
    /// weir's own standard input, passed through.
    Inherit,
}

/// When the live file is rotated and how many files are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationConfig {
    /// Rotate before a write would take the live file past this many bytes.
    /// `None`: never rotate.
    pub max_size: Option<u64>,
    /// Files kept, the live one included (at least 1).
    pub max_files: usize,
    /// Gzip rotated files in the background.
    pub compress: bool,
}

impl Default for RotationConfig {
    fn default() -> Self {
        RotationConfig {
            max_size: None,
            max_files: 5,
            compress: false,
        }
    }
}

/// One `weir run`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The program and its arguments.
    pub command: Vec<OsString>,
    /// The live log file.
    pub log_path: PathBuf,
    pub format: LogFormat,
    /// Give the child a pseudo-terminal (one stream, `stdout`) instead of pipes.
    pub tty: bool,
    pub stdin: StdinMode,
    /// Requested pipe capacity; the kernel may grant less.
    pub pipe_size: usize,
    /// Largest content of one record; longer lines are cut into `P` pieces.
    pub max_line: usize,
    pub rotation: RotationConfig,
    /// How long to keep reading after the child exited while grandchildren
    /// still hold its pipes open.
    pub drain_timeout: Duration,
    /// Longest time a record waits in weir before it is written: the bound
    /// on both read coalescing and holding back an unterminated line.
    pub max_latency: Duration,
    /// The budget and policy; `None`: output is not limited.
    pub gate: Option<GateConfig>,
}

impl RunConfig {
    /// A configuration with the documented defaults.
    pub fn new(command: Vec<OsString>, log_path: PathBuf) -> RunConfig {
        RunConfig {
            command,
            log_path,
            format: LogFormat::Cri,
            tty: false,
            stdin: StdinMode::Null,
            pipe_size: 1 << 20,
            max_line: 16 << 10,
            rotation: RotationConfig::default(),
            drain_timeout: Duration::from_secs(5),
            max_latency: Duration::from_millis(10),
            gate: None,
        }
    }
}
