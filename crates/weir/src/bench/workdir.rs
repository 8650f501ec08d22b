//! The scratch directory of one benchmark run.

use std::path::PathBuf;

/// The directory holding a benchmark's writer, bundles, gate files and live
/// logs. One made by the benchmark is removed afterwards; one given with
/// `--work-dir` is kept, less the `scratch` folders of logs inside it.
pub struct WorkDir {
    pub path: PathBuf,
    remove: bool,
    scratch: &'static [&'static str],
}

impl WorkDir {
    /// Uses `given`, or makes `/tmp/weir-bench-<name>-<pid>`.
    pub fn new(
        given: Option<PathBuf>,
        name: &str,
        scratch: &'static [&'static str],
    ) -> Result<WorkDir, String> {
        let (path, remove) = match given {
            Some(path) => (path, false),
            None => (
                std::env::temp_dir().join(format!("weir-bench-{name}-{}", std::process::id())),
                true,
            ),
        };
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let path = path
            .canonicalize()
            .map_err(|e| format!("cannot resolve {}: {e}", path.display()))?;
        Ok(WorkDir {
            path,
            remove,
            scratch,
        })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        for folder in self.scratch {
            let _ = std::fs::remove_dir_all(self.path.join(folder));
        }
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Where a bench of a weir process runs and how it reports: the options
/// `weir bench agent`, `receive` and `collector` share.
#[derive(Debug, clap::Args)]
pub struct Setup {
    /// Let weir use every CPU instead of pinning it to CPU 0 (the figures
    /// are then not per core).
    #[arg(long)]
    pub all_cores: bool,
    /// Directory for the bench's files and weir's data [default: a
    /// directory under /tmp, removed afterwards].
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Print the report as one JSON object on stdout (the table goes to
    /// stderr).
    #[arg(long)]
    pub json: bool,
}
