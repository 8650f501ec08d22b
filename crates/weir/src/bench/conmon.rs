//! conmon as a peer: the same writer in an OCI bundle under conmon + runc,
//! logging to a k8s-file, as CRI-O runs containers.
//!
//! Sequence per run (conmon 2.1.6, api version 1):
//! 1. spawn `conmon --sync …` as our child. `--sync` keeps conmon from
//!    daemonizing, so the child is the monitor itself. It runs
//!    `runc create` and reports `{"data": PID}` (or -1 and a message) on the
//!    pipe named by `_OCI_SYNCPIPE`;
//! 2. `runc start` (conmon never starts the container itself);
//! 3. conmon exits after the container exited and the pipes are drained;
//! 4. `runc delete -f`.
//!
//! Wall time runs from `runc start` returning to conmon's exit: container
//! creation and `runc start` itself are left out. The writer already runs
//! during the end of `runc start`, so this flatters conmon slightly, which
//! keeps a "faster than conmon" verdict honest. conmon is passed `--no-sync-log` because weir does not fsync its
//! log either; the two then do the same work.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::bundle::{self, Bundle};
use super::measure;
use super::peers::{Job, Measured, create, failure, pipe};

/// The Debian packages that provide this peer.
pub const PACKAGES: &str = "conmon runc busybox-static";

/// Versions printed with the figures.
#[derive(Debug, Clone, Serialize)]
pub struct Versions {
    pub conmon: String,
    pub runc: String,
}

/// conmon and runc found, and a bundle ready to run the writer.
pub struct Conmon {
    conmon: PathBuf,
    runc: PathBuf,
    bundle: Bundle,
    pub versions: Versions,
    runs_dir: PathBuf,
    /// Distinguishes container ids within this benchmark.
    next_id: u32,
}

impl Conmon {
    /// Finds the tools and builds the bundle under `work_dir`. `Err` explains
    /// why conmon cannot be measured here (the caller skips it).
    pub fn prepare(work_dir: &Path, writer: &Path) -> Result<Conmon, String> {
        let mut missing = Vec::new();
        let conmon = find_tool("conmon")
            .ok_or("conmon")
            .map_err(|m| missing.push(m));
        let runc = find_tool("runc").ok_or("runc").map_err(|m| missing.push(m));
        let busybox = find_tool("busybox")
            .ok_or("busybox")
            .map_err(|m| missing.push(m));
        let (Ok(conmon), Ok(runc), Ok(busybox)) = (conmon, runc, busybox) else {
            return Err(format!(
                "{} not found; install the Debian packages: apt-get install {PACKAGES}",
                missing.join(", ")
            ));
        };
        if !bundle::is_static_elf(&busybox)? {
            return Err(format!(
                "{} is dynamically linked and cannot run alone in a rootfs; \
                 install the Debian package busybox-static",
                busybox.display()
            ));
        }
        // SAFETY: geteuid has no memory effects.
        if unsafe { libc::geteuid() } != 0 {
            return Err(
                "runc needs root to create containers here; run the benchmark as root".into(),
            );
        }
        let bundle = Bundle::create(&work_dir.join("bundle"), &runc, &busybox, writer)?;
        let runs_dir = work_dir.join("conmon-runs");
        std::fs::create_dir_all(&runs_dir)
            .map_err(|e| format!("cannot create {}: {e}", runs_dir.display()))?;
        Ok(Conmon {
            versions: Versions {
                conmon: super::machine::tool_version(&conmon),
                runc: super::machine::tool_version(&runc),
            },
            conmon,
            runc,
            bundle,
            runs_dir,
            next_id: 0,
        })
    }

    /// Runs the job's writer in a container under conmon.
    pub fn run(&mut self, job: &Job) -> Result<Measured, String> {
        self.bundle
            .set_writer_args(&job.workload.writer_args(job.lines))?;
        self.next_id += 1;
        let cid = format!("weir-bench-{}-{}", std::process::id(), self.next_id);
        let run_dir = self.runs_dir.join(&cid);
        for sub in ["exit", "sock"] {
            std::fs::create_dir_all(run_dir.join(sub))
                .map_err(|e| format!("cannot create {}: {e}", run_dir.display()))?;
        }
        let container = Container {
            runc: &self.runc,
            id: &cid,
        };
        container.delete(); // a stale container of the same id, should one exist
        let result = self.run_container(job, &container, &run_dir);
        container.delete();
        let _ = std::fs::remove_dir_all(&run_dir);
        result
    }

    fn run_container(
        &self,
        job: &Job,
        container: &Container,
        run_dir: &Path,
    ) -> Result<Measured, String> {
        let (sync_read, sync_fd) = pipe()?;
        let mut sync_read = File::from(sync_read);
        let sync_raw = sync_fd.as_raw_fd();
        let out_path = run_dir.join("conmon.out");
        let out = create(&out_path)?;
        let mut log_arg = std::ffi::OsString::from("k8s-file:");
        log_arg.push(&job.log);
        let mut command = Command::new(&self.conmon);
        command
            .args(["--api-version", "1", "--sync"])
            .args(["-c", container.id, "-u", container.id, "-n", container.id])
            .arg("-r")
            .arg(&self.runc)
            .arg("-b")
            .arg(&self.bundle.dir)
            .arg("-p")
            .arg(run_dir.join("ctr.pid"))
            .arg("-l")
            .arg(log_arg)
            .arg("--exit-dir")
            .arg(run_dir.join("exit"))
            .arg("--socket-dir-path")
            .arg(run_dir.join("sock"))
            .args(["--log-level", "error", "--no-sync-log"])
            .env("_OCI_SYNCPIPE", sync_raw.to_string())
            .env_remove("_OCI_STARTPIPE")
            .env_remove("_OCI_ATTACHPIPE")
            .stdin(Stdio::null())
            .stdout(out.try_clone().map_err(|e| format!("dup: {e}"))?)
            .stderr(out);
        // SAFETY: only fcntl, which is async-signal-safe, runs between fork
        // and exec. It lets conmon inherit the sync pipe under its own number.
        unsafe {
            command.pre_exec(move || {
                if libc::fcntl(sync_raw, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut conmon = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.conmon.display()))?;
        drop(command); // closes our stdout/stderr copies
        drop(sync_fd); // conmon holds the only write end now

        // Until conmon is watched, any failure must not leave it waiting
        // forever for a `runc start` that will not come.
        let started = wait_created(&mut sync_read, job.timeout)
            .and_then(|()| self.start(container, run_dir, job.timeout));
        let (start_began, started) = match started {
            Ok(times) => times,
            Err(message) => {
                let _ = conmon.kill();
                let _ = conmon.wait();
                return Err(message);
            }
        };

        let watched =
            measure::watch(&mut conmon, job.timeout).map_err(|e| format!("conmon: {e}"))?;
        if !watched.status.success() {
            return Err(failure(
                "conmon (its exit code is the writer's)",
                watched.status,
                &out_path,
            ));
        }
        Ok(Measured {
            wall_s: (watched.ended - started).as_secs_f64(),
            cpu: watched.cpu,
            peak_rss_kib: watched.peak_rss_kib,
            read_calls: watched.read_calls,
            runc_start_s: Some((started - start_began).as_secs_f64()),
        })
    }

    /// Runs `runc start`; returns when it was launched and when it returned.
    fn start(
        &self,
        container: &Container,
        run_dir: &Path,
        timeout: Duration,
    ) -> Result<(Instant, Instant), String> {
        let stderr = run_dir.join("runc-start.stderr");
        let began = Instant::now();
        let mut start = Command::new(&self.runc)
            .arg("start")
            .arg(container.id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(create(&stderr)?)
            .spawn()
            .map_err(|e| format!("cannot run runc start: {e}"))?;
        let status = measure::wait_with_timeout(&mut start, timeout)
            .map_err(|e| format!("runc start: {e}"))?;
        let returned = Instant::now();
        if !status.success() {
            return Err(failure("runc start", status, &stderr));
        }
        Ok((began, returned))
    }
}

/// A container id to remove with `runc delete -f`.
struct Container<'a> {
    runc: &'a Path,
    id: &'a str,
}

impl Container<'_> {
    fn delete(&self) {
        let child = Command::new(self.runc)
            .args(["delete", "-f", self.id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Ok(mut child) = child {
            let _ = measure::wait_with_timeout(&mut child, Duration::from_secs(30));
        }
    }
}

/// Waits for conmon's `{"data": PID}` on the sync pipe: the container exists.
fn wait_created(sync: &mut File, timeout: Duration) -> Result<(), String> {
    let reply = read_line(sync, timeout)
        .map_err(|e| format!("no reply from conmon on the sync pipe: {e}"))?;
    parse_sync_reply(&reply)
        .map(drop)
        .map_err(|message| format!("conmon could not create the container: {message}"))
}

/// Reads one `\n`-terminated line. conmon keeps the write end open until it
/// exits, so reading to EOF would wait for the whole run.
fn read_line(pipe: &mut File, timeout: Duration) -> std::io::Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut line = Vec::new();
    let mut chunk = [0u8; 4096];
    while !line.ends_with(b"\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !measure::readable_within(pipe.as_raw_fd(), left)? {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "timed out",
            ));
        }
        let n = pipe.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed without a reply (conmon exited)",
            ));
        }
        line.extend_from_slice(&chunk[..n]);
    }
    Ok(line)
}

/// `{"data": PID}` → Ok(PID); `{"data": -1, "message": "…"}` → Err(message).
fn parse_sync_reply(line: &[u8]) -> Result<i64, String> {
    let reply: serde_json::Value = serde_json::from_slice(line)
        .map_err(|e| format!("{e}: {:?}", String::from_utf8_lossy(line)))?;
    match reply["data"].as_i64() {
        Some(pid) if pid > 0 => Ok(pid),
        _ => Err(reply["message"]
            .as_str()
            .unwrap_or("no message")
            .trim()
            .to_owned()),
    }
}

/// Looks a tool up on PATH, then in the sbin directories that a non-login
/// root shell may lack.
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_replies_carry_the_pid_or_runc_error() {
        assert_eq!(parse_sync_reply(b"{\"data\": 4242}\n"), Ok(4242));
        assert_eq!(
            parse_sync_reply(b"{\"data\": -1, \"message\": \"runc create failed\\n\"}\n"),
            Err("runc create failed".to_owned())
        );
        assert!(parse_sync_reply(b"garbage").is_err());
    }
}
