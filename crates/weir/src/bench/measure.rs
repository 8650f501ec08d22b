//! Measuring a monitor process from the outside, the same way for every peer.
//!
//! `wait4()` rusage cannot be used: conmon is a child subreaper, so the
//! rusage of conmon includes `runc create` and the writer it reaped (the
//! writer's CPU and runc's 14 MB RSS). Instead the process is left a zombie
//! (`waitid(WNOWAIT)`), its own user and system time are read from
//! `/proc/PID/stat` (fields 14 and 15; the reaped children are in 16 and 17),
//! and only then is it reaped. Peak RSS is `VmHWM` from `/proc/PID/status`,
//! sampled while the process lives because a zombie has no memory map.
//! Read system calls come from the zombie's `/proc/PID/io` (`syscr`): fewer
//! reads per byte is what coalescing buys. The count includes the children
//! the process reaped, which is harmless here: the static writer makes no
//! read call at all, and conmon's `runc create` a few hundred. (`syscw` is
//! useless for the same reason: it would include the writer's writes.)

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use serde::Serialize;

/// How often `VmHWM` is sampled (it only grows, so the last sample is close
/// to the peak).
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// CPU time a process spent itself, children excluded.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuTimes {
    pub user_s: f64,
    pub sys_s: f64,
}

impl CpuTimes {
    pub fn total(&self) -> f64 {
        self.user_s + self.sys_s
    }
}

/// What [`watch`] learnt about a process that has exited.
#[derive(Debug)]
pub struct Watched {
    /// When the exit was noticed (within a poll wakeup, not a 10 ms tick).
    pub ended: Instant,
    pub cpu: CpuTimes,
    pub peak_rss_kib: u64,
    /// Read-family system calls (see the module comment); None where the
    /// kernel has no I/O accounting.
    pub read_calls: Option<u64>,
    pub status: ExitStatus,
}

/// Waits for `child` to exit while sampling its peak RSS, reads its own CPU
/// time from the zombie, then reaps it. Kills it after `timeout`.
pub fn watch(child: &mut Child, timeout: Duration) -> io::Result<Watched> {
    let pid = child.id() as libc::pid_t;
    let deadline = Instant::now() + timeout;
    // A pidfd becomes readable the moment the process exits, so the end time
    // is exact even though memory is only sampled every 10 ms.
    let pidfd = open_pidfd(pid).ok();
    let mut peak_rss_kib = 0;
    loop {
        if has_exited(pid)? {
            break;
        }
        if let Some(kib) = read_vm_hwm(pid) {
            peak_rss_kib = peak_rss_kib.max(kib);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("pid {pid} still running after {timeout:?}; killed"),
            ));
        }
        pause(pidfd.as_ref(), SAMPLE_EVERY)?;
    }
    let ended = Instant::now();
    let cpu = read_self_cpu(pid)?;
    let read_calls = read_calls(pid);
    let status = child.wait()?;
    Ok(Watched {
        ended,
        cpu,
        peak_rss_kib,
        read_calls,
        status,
    })
}

/// Waits for a helper process (not measured) with a time limit, noticing its
/// exit at once so that timestamps taken after it are exact.
pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> io::Result<ExitStatus> {
    let deadline = Instant::now() + timeout;
    let pidfd = open_pidfd(child.id() as libc::pid_t).ok();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("pid {} still running after {timeout:?}; killed", child.id()),
            ));
        }
        pause(pidfd.as_ref(), Duration::from_millis(100))?;
    }
}

/// Sleeps until the process behind `pidfd` exits or `most` has passed;
/// without a pidfd (kernels before 5.3), sleeps 1 ms.
fn pause(pidfd: Option<&OwnedFd>, most: Duration) -> io::Result<()> {
    match pidfd {
        Some(fd) => readable_within(fd.as_raw_fd(), most).map(drop),
        None => {
            std::thread::sleep(Duration::from_millis(1));
            Ok(())
        }
    }
}

/// Whether `pid` (our child) has exited, without reaping it.
fn has_exited(pid: libc::pid_t) -> io::Result<bool> {
    // SAFETY: siginfo_t is plain data; waitid only writes into it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: `info` is a valid, writable siginfo_t.
    let rc = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // With WNOHANG, si_pid stays 0 while the child is still running.
    // SAFETY: waitid filled `info` (or left it zeroed).
    Ok(unsafe { info.si_pid() } != 0)
}

fn open_pidfd(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just handed us this descriptor; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Whether `fd` becomes readable within `timeout`.
pub fn readable_within(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let rc = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as libc::c_int) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    Ok(rc > 0)
}

/// Makes `command`'s process run on CPU `cpu` only (for `weir-agent`'s
/// benchmarks).
#[allow(dead_code)]
pub fn pin(command: &mut std::process::Command, cpu: usize) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            pin_current(cpu);
            Ok(())
        });
    }
}

/// Makes the calling thread run on CPU `cpu` only (when the machine has it).
#[allow(dead_code)]
pub fn pin_current(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; the call only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// A live process's own CPU time so far (for `weir-agent`'s benchmark).
#[allow(dead_code)]
pub fn cpu_of(pid: u32) -> Option<CpuTimes> {
    read_self_cpu(pid as libc::pid_t).ok()
}

/// A live process's peak resident set so far, in KiB (for `weir-agent`'s
/// benchmark).
#[allow(dead_code)]
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    read_vm_hwm(pid as libc::pid_t)
}

/// `VmHWM` (peak resident set) in KiB, or None once the process is a zombie.
fn read_vm_hwm(pid: libc::pid_t) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `syscr` from `/proc/PID/io`.
fn read_calls(pid: libc::pid_t) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let value = io.lines().find_map(|l| l.strip_prefix("syscr:"))?;
    value.trim().parse().ok()
}

/// The process's own utime and stime from `/proc/PID/stat`.
fn read_self_cpu(pid: libc::pid_t) -> io::Result<CpuTimes> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_self_cpu(&stat, clock_ticks_per_second()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected /proc/{pid}/stat: {stat:?}"),
        )
    })
}

/// Parses fields 14 (utime) and 15 (stime). The command name in field 2 may
/// hold spaces and parentheses, so fields are counted after the last `)`.
fn parse_self_cpu(stat: &str, ticks_per_second: f64) -> Option<CpuTimes> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11); // field 3 is index 0
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(CpuTimes {
        user_s: utime as f64 / ticks_per_second,
        sys_s: stime as f64 / ticks_per_second,
    })
}

/// The unit of `/proc/PID/stat` times, usually 100 per second.
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_cpu_is_read_after_the_last_parenthesis() {
        let stat = "42 (we ird) x) Z 1 42 42 0 -1 4194564 100 0 0 0 137 4 25 3 20 0 1 0";
        let cpu = parse_self_cpu(stat, 100.0).unwrap();
        assert_eq!(cpu.user_s, 1.37);
        assert_eq!(cpu.sys_s, 0.04);
    }

    #[test]
    fn watch_reads_the_zombie_and_reaps_it() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"])
            .spawn()
            .unwrap();
        let watched = watch(&mut child, Duration::from_secs(30)).unwrap();
        assert!(watched.status.success());
        assert!(watched.peak_rss_kib > 0);
        assert!(watched.read_calls.is_some_and(|n| n > 0));
        assert!(child.try_wait().unwrap().is_some());
    }
}
