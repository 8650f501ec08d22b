//! What the figures were measured on: they are only comparable within one
//! run on one machine, so the report says which.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
    /// File system holding the log files (page cache and journaling costs
    /// differ between, say, ext4 and tmpfs).
    pub log_fs: String,
    pub weir_version: &'static str,
    pub cat_version: String,
}

impl Machine {
    pub fn describe(work_dir: &Path) -> Machine {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, model)| model.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|k| k.trim().to_owned())
                .unwrap_or_else(|_| "unknown".to_owned()),
            log_fs: statfs(work_dir).map_or_else(|| "unknown".to_owned(), |s| s.fs_name()),
            weir_version: env!("CARGO_PKG_VERSION"),
            cat_version: tool_version(Path::new("cat")),
        }
    }
}

/// The first line of `TOOL --version`.
pub fn tool_version(tool: &Path) -> String {
    Command::new(tool)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Free space and type of the file system holding `path`.
pub struct FsInfo {
    pub free_bytes: u64,
    magic: i64,
}

impl FsInfo {
    fn fs_name(&self) -> String {
        match self.magic {
            0xEF53 => "ext2/3/4".to_owned(),
            0x0102_1994 => "tmpfs".to_owned(),
            0x5846_5342 => "xfs".to_owned(),
            0x9123_683E => "btrfs".to_owned(),
            0x794C_7630 => "overlayfs".to_owned(),
            other => format!("fs magic {other:#x}"),
        }
    }
}

pub fn statfs(path: &Path) -> Option<FsInfo> {
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs is plain data, filled in by the call.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a writable statfs.
    if unsafe { libc::statfs(c_path.as_ptr(), &mut buf) } != 0 {
        return None;
    }
    Some(FsInfo {
        free_bytes: buf.f_bavail as u64 * buf.f_bsize as u64,
        magic: buf.f_type as i64,
    })
}

/// Maps, touches and unmaps `bytes` of anonymous memory (at most half of
/// what is available), leaving that much freshly freed, host-backed memory
/// for the page cache of the next run.
///
/// Why: a guest with free page reporting (virtio-balloon, as on Firecracker
/// VMs) reports memory that stayed free for ~2 s to the hypervisor, which
/// drops it. The next run that allocates a few hundred MB of page cache then
/// faults it back page by page: measured here, writing a 290 MB file in
/// 256 KiB blocks took 0.5-0.7 s after 3 s idle and 0.10-0.15 s right after
/// touching 600 MB. Which peer happened to run after a pause would otherwise
/// decide the ranking. This narrows the noise (bare cat went from 0.07-0.63 s
/// to 0.07-0.09 s) but does not remove it for every write pattern.
pub fn prefault_free_memory(bytes: u64) {
    let available = mem_available_bytes().unwrap_or(0);
    let len = bytes.min(available / 2) as usize;
    if len == 0 {
        return;
    }
    // SAFETY: a fresh private anonymous mapping, used only here; MAP_POPULATE
    // makes the kernel fault every page in without touching it from user space.
    unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        );
        if addr != libc::MAP_FAILED {
            libc::munmap(addr, len);
        }
    }
}

fn mem_available_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
