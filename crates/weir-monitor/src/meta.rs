//! The sidecar beside each live log, `<log>.meta.json`: whose log it is
//! (the container's name and labels, the monitor's pid), so a reader of the
//! log files, such as the agent's `monitor` source, can say where each
//! record came from. The log itself stays the CRI the kubelet reads.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Who writes a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerMeta {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The `weir run` writing the log.
    pub monitor_pid: u32,
    /// RFC 3339, when the monitor started.
    pub started: String,
    /// The container's budget in bytes per second, both streams together,
    /// when its gate has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<u64>,
    /// What happens when the budget runs out: `block`, `drop` or `ring`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// `<log>.meta.json`.
pub fn path_for(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".meta.json");
    PathBuf::from(name)
}

/// The live log a rotated file came from: `ctr.log.3` and `ctr.log.3.gz`
/// belong to `ctr.log`.
pub fn live_log_of(path: &Path) -> PathBuf {
    let text = path.to_string_lossy();
    let text = text.strip_suffix(".gz").unwrap_or(&text);
    match text.rsplit_once('.') {
        Some((live, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            PathBuf::from(live)
        }
        _ => PathBuf::from(text),
    }
}

/// Writes the sidecar of `log` (a temporary file renamed into place, so a
/// reader never sees half of it).
pub fn write(log: &Path, meta: &ContainerMeta) -> io::Result<()> {
    let path = path_for(log);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = fs::File::create(&tmp)?;
    file.write_all(&serde_json::to_vec_pretty(meta).map_err(io::Error::other)?)?;
    fs::rename(&tmp, &path)
}

/// Reads the sidecar of `log`; `None` if there is none.
pub fn read(log: &Path) -> io::Result<Option<ContainerMeta>> {
    use std::io::Read;
    let path = path_for(log);
    let mut bytes = Vec::new();
    // A sidecar is a few hundred bytes: read no more than 64 KiB of one.
    let read = fs::File::open(&path).and_then(|f| f.take(64 << 10).read_to_end(&mut bytes));
    match read.map(|_| bytes) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_files_belong_to_their_live_log() {
        assert_eq!(
            live_log_of(Path::new("/l/web.log")),
            Path::new("/l/web.log")
        );
        assert_eq!(
            live_log_of(Path::new("/l/web.log.3")),
            Path::new("/l/web.log")
        );
        assert_eq!(
            live_log_of(Path::new("/l/web.log.12.gz")),
            Path::new("/l/web.log")
        );
        assert_eq!(
            path_for(Path::new("/l/web.log")),
            Path::new("/l/web.log.meta.json")
        );
    }
}
