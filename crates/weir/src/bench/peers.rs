//! The monitors compared, and how one run of each is driven and timed.
//! conmon, which needs a container runtime around it, lives in `conmon.rs`.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::measure::{self, CpuTimes};
use super::verify::LogKind;
use super::workload::Workload;

/// A process that reads the writer's output and stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Peer {
    /// `writer | cat > file`: no framing, no timestamps; the physical limit.
    Cat,
    /// `writer … cri | cat > file`: the writer emits every line already as
    /// the CRI record weir stores for it, so cat writes exactly weir's bytes;
    /// the physical limit for any CRI monitor.
    #[serde(rename = "cat-cri")]
    CatCri,
    /// `weir run --log-path FILE -- writer`.
    Weir,
    /// conmon 2.1.6 + runc with a k8s-file log: what Kubernetes nodes run.
    Conmon,
}

impl Peer {
    pub fn name(self) -> &'static str {
        match self {
            Peer::Cat => "cat",
            Peer::CatCri => "cat-cri",
            Peer::Weir => "weir",
            Peer::Conmon => "conmon",
        }
    }

    pub fn log_kind(self) -> LogKind {
        match self {
            Peer::Cat => LogKind::Plain,
            Peer::CatCri | Peer::Weir | Peer::Conmon => LogKind::Cri,
        }
    }
}

/// Everything a peer needs for one run.
pub struct Job<'a> {
    pub writer: &'a Path,
    pub workload: Workload,
    pub lines: u64,
    /// Where the peer stores the output; the caller verifies and deletes it.
    pub log: PathBuf,
    /// Directory for the run's scratch files (monitor stderr…).
    pub scratch: &'a Path,
    pub timeout: Duration,
}

/// One measured run of one monitor.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Measured {
    pub wall_s: f64,
    /// The monitor's own CPU time, its children excluded.
    pub cpu: CpuTimes,
    pub peak_rss_kib: u64,
    /// Read system calls of the monitor (and of the children it reaped).
    pub read_calls: Option<u64>,
    /// conmon only: how long `runc start` itself took. It is left out of the
    /// wall time although the writer already runs during its last part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runc_start_s: Option<f64>,
}

/// The pipe capacity `weir run` asks for by default (`--pipe-size`); cat gets
/// the same, so that the two differ only in the monitor.
pub const PIPE_SIZE: usize = 1 << 20;

/// `writer | cat > log`, timed from spawning the writer to cat's exit. The
/// pipe is enlarged to [`PIPE_SIZE`] as weir enlarges its own: with a 64 KiB
/// pipe, a write-per-line writer blocks far more often and cat would not be
/// the limit it stands for. With `cri`, the writer formats its lines as CRI
/// records itself (peer `cat-cri`).
pub fn run_cat(job: &Job, cri: bool) -> Result<Measured, String> {
    let (name, args) = if cri {
        (Peer::CatCri.name(), job.workload.writer_args_cri(job.lines))
    } else {
        (Peer::Cat.name(), job.workload.writer_args(job.lines))
    };
    let stderr_path = job.scratch.join(format!("{name}.stderr"));
    let (pipe_out, pipe_in) = pipe()?;
    // SAFETY: F_SETPIPE_SZ takes an int and touches no memory of ours.
    let size = unsafe {
        libc::fcntl(
            pipe_in.as_raw_fd(),
            libc::F_SETPIPE_SZ,
            PIPE_SIZE as libc::c_int,
        )
    };
    if size < 0 {
        eprintln!(
            "weir bench capture: cannot enlarge cat's pipe to {PIPE_SIZE} bytes: {}",
            std::io::Error::last_os_error()
        );
    }
    let log = create(&job.log)?;
    let started = Instant::now();
    // Each Command is a temporary dropped at the end of its statement, which
    // closes our copies of the pipe ends so cat sees EOF when the writer exits.
    let mut writer = Command::new(job.writer)
        .args(args)
        .stdin(Stdio::null())
        .stdout(pipe_in)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", job.writer.display()))?;
    let cat = Command::new("cat")
        .stdin(pipe_out)
        .stdout(log)
        .stderr(create(&stderr_path)?)
        .spawn();
    let mut cat = match cat {
        Ok(cat) => cat,
        Err(e) => {
            let _ = writer.kill();
            let _ = writer.wait();
            return Err(format!("cannot start cat: {e}"));
        }
    };
    let watched = measure::watch(&mut cat, job.timeout).map_err(|e| format!("{name}: {e}"))?;
    let writer_status =
        measure::wait_with_timeout(&mut writer, job.timeout).map_err(|e| format!("writer: {e}"))?;
    if !watched.status.success() {
        return Err(failure(name, watched.status, &stderr_path));
    }
    if !writer_status.success() {
        return Err(format!("the writer failed under {name}: {writer_status}"));
    }
    Ok(Measured {
        wall_s: (watched.ended - started).as_secs_f64(),
        cpu: watched.cpu,
        peak_rss_kib: watched.peak_rss_kib,
        read_calls: watched.read_calls,
        runc_start_s: None,
    })
}

/// `weir run --log-path log -- writer …`, timed from spawning weir (which
/// spawns the writer) to weir's exit. weir runs as this very executable.
pub fn run_weir(job: &Job) -> Result<Measured, String> {
    let stderr_path = job.scratch.join("weir.stderr");
    let started = Instant::now();
    let mut weir: Child = Command::new("/proc/self/exe")
        .arg0("weir")
        .arg("run")
        .arg("--log-path")
        .arg(&job.log)
        .arg("--")
        .arg(job.writer)
        .args(job.workload.writer_args(job.lines))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(create(&stderr_path)?)
        .spawn()
        .map_err(|e| format!("cannot start weir run: {e}"))?;
    let watched = measure::watch(&mut weir, job.timeout).map_err(|e| format!("weir: {e}"))?;
    if !watched.status.success() {
        return Err(failure("weir run", watched.status, &stderr_path));
    }
    Ok(Measured {
        wall_s: (watched.ended - started).as_secs_f64(),
        cpu: watched.cpu,
        peak_rss_kib: watched.peak_rss_kib,
        read_calls: watched.read_calls,
        runc_start_s: None,
    })
}

/// A pipe (read end, write end), both close-on-exec: a child gets only the
/// end it is handed as a standard stream.
pub(super) fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors are new and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub(super) fn create(path: &Path) -> Result<File, String> {
    File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// Describes a failed monitor with what it said on stderr.
pub(super) fn failure(who: &str, status: std::process::ExitStatus, stderr: &Path) -> String {
    let said = std::fs::read_to_string(stderr).unwrap_or_default();
    format!("{who} failed ({status}): {}", said.trim())
}
