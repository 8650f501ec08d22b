//! The node state every monitor shares: one small file, mapped by each
//! `weir run`, with a slot per running container.
//!
//! There is no daemon and no lock. Each slot is written only by the monitor
//! that claimed it (a compare-and-swap on its owner pid), with plain atomic
//! stores, so a monitor killed at any instant leaves at worst a stale slot:
//! its heartbeat stops, the others stop counting it within
//! [`ACTIVE_WINDOW`], and the next monitor that needs a slot reclaims it once
//! the owner is gone. The owner word holds the process's start time beside
//! its pid, so a slot whose pid the kernel has since given to another
//! process is reclaimed too, and claiming stays one compare-and-swap. Every monitor reads all slots and computes the
//! node's fair shares for itself (see [`crate::fair`]).

use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::bucket::monotonic_ns;
use crate::fair::Claim;

/// "weirgat1" in ASCII: marks a file as weir's node state, layout 1.
const MAGIC: u64 = 0x7765_6972_6761_7431;
/// Containers on one node that the state can hold at once.
pub const SLOTS: usize = 256;
/// A slot whose heartbeat is older than this is not counted in shares.
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(1);
/// Bytes of a container's name kept in its slot.
const NAME_BYTES: usize = 48;

/// One container's entry. All fields are atomics in the shared mapping.
#[repr(C)]
struct RawSlot {
    /// See [`owner_word`]; zero when free.
    owner: AtomicU64,
    heartbeat_ns: AtomicU64,
    weight: AtomicU64,
    /// Bytes per second wanted; `u64::MAX` for more than granted.
    demand: AtomicU64,
    /// Bytes per second this monitor runs at now.
    granted: AtomicU64,
    passed: AtomicU64,
    dropped: AtomicU64,
    policy: AtomicU64,
    name: [AtomicU64; NAME_BYTES / 8],
    /// Bytes per second passed, averaged over about the last second.
    rate: AtomicU64,
    _reserved: [AtomicU64; 1],
}

#[repr(C)]
struct RawState {
    magic: AtomicU64,
    slots: AtomicU64,
    _reserved: [AtomicU64; 6],
    slot: [RawSlot; SLOTS],
}

const STATE_BYTES: usize = std::mem::size_of::<RawState>();

/// The node state file, mapped.
pub struct NodeState {
    path: PathBuf,
    map: *mut RawState,
}

// SAFETY: the mapping is only accessed through atomics.
unsafe impl Send for NodeState {}
// SAFETY: as above.
unsafe impl Sync for NodeState {}

impl std::fmt::Debug for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeState")
            .field("path", &self.path)
            .finish()
    }
}

/// A snapshot of one active container, for shares and `weir gate status`.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotView {
    pub index: usize,
    pub pid: u32,
    pub name: String,
    pub weight: u32,
    /// `None`: wants more than it is granted.
    pub demand: Option<u64>,
    pub granted: u64,
    /// Bytes per second passed over about the last second.
    pub rate: u64,
    pub passed: u64,
    pub dropped: u64,
    pub policy: u64,
    /// Seconds since its last heartbeat.
    pub age: f64,
}

impl SlotView {
    pub fn claim(&self) -> Claim {
        Claim {
            weight: self.weight,
            demand: self.demand.map_or(f64::INFINITY, |d| d as f64),
        }
    }
}

fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// A slot's owner: the pid in the low 32 bits (what older monitors read),
/// the low 32 bits of the process's start time (clock ticks after boot)
/// above it, zero when that cannot be read.
fn owner_word(pid: u32) -> u64 {
    let started = start_ticks(pid).map_or(0, |ticks| ticks as u32);
    u64::from(pid) | u64::from(started) << 32
}

fn owner_pid(owner: u64) -> u32 {
    owner as u32
}

/// Whether the process an owner word names still runs: its pid exists and,
/// where the word holds a start time, started then (the pid was not reused).
fn owner_alive(owner: u64) -> bool {
    let pid = owner_pid(owner);
    if !pid_alive(pid) {
        return false;
    }
    let recorded = (owner >> 32) as u32;
    recorded == 0 || start_ticks(pid).is_none_or(|ticks| ticks as u32 == recorded)
}

/// Field 22 of `/proc/PID/stat`: when the process started.
fn start_ticks(pid: u32) -> Option<u64> {
    parse_start_ticks(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_start_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: the
    // fields after it start past the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

impl NodeState {
    /// Opens (creating if needed) the state file at `path` and maps it.
    pub fn open(path: &Path) -> io::Result<NodeState> {
        let context = |what: &str, e: io::Error| {
            io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| context("creating the directory of", e))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| context("opening node state", e))?;
        let len = file.metadata().map_err(|e| context("reading", e))?.len();
        // Look before touching: a path that holds something else (a typo in
        // the gate file) is refused, never grown or written.
        let mut head = [0u8; 8];
        let head_len = (&file).read(&mut head).map_err(|e| context("reading", e))?;
        let magic = u64::from_ne_bytes(head);
        if head_len > 0 && magic != 0 && magic != MAGIC {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not a weir node state file", path.display()),
            ));
        }
        if len < STATE_BYTES as u64 {
            // Growing is idempotent when several monitors race to do it;
            // new bytes read as zero, a free slot.
            file.set_len(STATE_BYTES as u64)
                .map_err(|e| context("sizing", e))?;
        }
        // SAFETY: a shared mapping of a file at least STATE_BYTES long, kept
        // until drop; the kernel keeps it valid after the descriptor closes.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                STATE_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(context("mapping", io::Error::last_os_error()));
        }
        let state = NodeState {
            path: path.to_path_buf(),
            map: map.cast(),
        };
        let raw = state.raw();
        match raw
            .magic
            .compare_exchange(0, MAGIC, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => raw.slots.store(SLOTS as u64, Ordering::Release),
            Err(MAGIC) => {}
            Err(other) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} is not a weir node state file (magic {other:#x})",
                        path.display()
                    ),
                ));
            }
        }
        Ok(state)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn raw(&self) -> &RawState {
        // SAFETY: the mapping lives as long as self and holds only atomics,
        // for which any bit pattern (zero included) is valid.
        unsafe { &*self.map }
    }

    /// Claims a free (or abandoned) slot for `pid`.
    pub fn claim(
        &self,
        pid: u32,
        name: &str,
        weight: u32,
        policy: u64,
    ) -> io::Result<SlotHandle<'_>> {
        let me = owner_word(pid);
        for (index, slot) in self.raw().slot.iter().enumerate() {
            let owner = slot.owner.load(Ordering::Acquire);
            let free = owner == 0 || !owner_alive(owner);
            if free
                && slot
                    .owner
                    .compare_exchange(owner, me, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                slot.heartbeat_ns.store(monotonic_ns(), Ordering::Release);
                slot.weight
                    .store(u64::from(weight.max(1)), Ordering::Release);
                // Until it has measured itself, a newcomer counts as wanting
                // more, so others do not hand it a quiet container's room.
                slot.demand.store(u64::MAX, Ordering::Release);
                slot.granted.store(0, Ordering::Release);
                slot.rate.store(0, Ordering::Release);
                slot.passed.store(0, Ordering::Release);
                slot.dropped.store(0, Ordering::Release);
                slot.policy.store(policy, Ordering::Release);
                let mut bytes = [0u8; NAME_BYTES];
                let name = name.as_bytes();
                bytes[..name.len().min(NAME_BYTES)]
                    .copy_from_slice(&name[..name.len().min(NAME_BYTES)]);
                for (word, chunk) in slot.name.iter().zip(bytes.chunks(8)) {
                    word.store(
                        u64::from_le_bytes(chunk.try_into().expect("8 bytes")),
                        Ordering::Release,
                    );
                }
                return Ok(SlotHandle {
                    state: self,
                    index,
                    owner: me,
                });
            }
        }
        Err(io::Error::other(format!(
            "all {SLOTS} slots of {} are taken by running monitors",
            self.path.display()
        )))
    }

    /// The containers with a recent heartbeat.
    pub fn active(&self) -> Vec<SlotView> {
        let now = monotonic_ns();
        let window = ACTIVE_WINDOW.as_nanos() as u64;
        let mut views = Vec::new();
        for (index, slot) in self.raw().slot.iter().enumerate() {
            let owner = slot.owner.load(Ordering::Acquire);
            if owner == 0 {
                continue;
            }
            let pid = owner_pid(owner);
            let heartbeat = slot.heartbeat_ns.load(Ordering::Acquire);
            let age = now.saturating_sub(heartbeat);
            if age > window || !pid_alive(pid) {
                continue;
            }
            let name_bytes: Vec<u8> = slot
                .name
                .iter()
                .flat_map(|w| w.load(Ordering::Acquire).to_le_bytes())
                .collect();
            let name_len = name_bytes
                .iter()
                .position(|b| *b == 0)
                .unwrap_or(NAME_BYTES);
            let demand = slot.demand.load(Ordering::Acquire);
            views.push(SlotView {
                index,
                pid,
                name: String::from_utf8_lossy(&name_bytes[..name_len]).into_owned(),
                weight: slot.weight.load(Ordering::Acquire).max(1) as u32,
                demand: (demand != u64::MAX).then_some(demand),
                granted: slot.granted.load(Ordering::Acquire),
                rate: slot.rate.load(Ordering::Acquire),
                passed: slot.passed.load(Ordering::Acquire),
                dropped: slot.dropped.load(Ordering::Acquire),
                policy: slot.policy.load(Ordering::Acquire),
                age: age as f64 / 1e9,
            });
        }
        views
    }
}

impl Drop for NodeState {
    fn drop(&mut self) {
        // SAFETY: unmapping what open() mapped, once.
        unsafe { libc::munmap(self.map.cast(), STATE_BYTES) };
    }
}

/// A claimed slot; released when dropped.
pub struct SlotHandle<'a> {
    state: &'a NodeState,
    index: usize,
    owner: u64,
}

/// What a monitor publishes about itself each period.
#[derive(Debug, Clone, Copy, Default)]
pub struct Report {
    /// `None`: wants more than it is granted.
    pub demand: Option<u64>,
    pub granted: u64,
    /// Bytes per second passed over about the last second.
    pub rate: u64,
    pub passed: u64,
    pub dropped: u64,
}

impl SlotHandle<'_> {
    pub fn index(&self) -> usize {
        self.index
    }

    fn slot(&self) -> &RawSlot {
        &self.state.raw().slot[self.index]
    }

    /// Publishes this period's figures and a heartbeat.
    pub fn publish(&self, report: Report) {
        let slot = self.slot();
        slot.demand
            .store(report.demand.unwrap_or(u64::MAX), Ordering::Release);
        slot.granted.store(report.granted, Ordering::Release);
        slot.rate.store(report.rate, Ordering::Release);
        slot.passed.store(report.passed, Ordering::Release);
        slot.dropped.store(report.dropped, Ordering::Release);
        slot.heartbeat_ns.store(monotonic_ns(), Ordering::Release);
    }
}

impl Drop for SlotHandle<'_> {
    fn drop(&mut self) {
        let _ =
            self.slot()
                .owner
                .compare_exchange(self.owner, 0, Ordering::AcqRel, Ordering::Acquire);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_state(name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("weir-node-{}-{name}", std::process::id()));
        let _ = fs::remove_file(&path);
        path
    }

    #[test]
    fn monitors_see_each_other_and_release_their_slots() {
        let path = temp_state("see");
        let a = NodeState::open(&path).unwrap();
        let b = NodeState::open(&path).unwrap();
        let me = std::process::id();
        let slot_a = a.claim(me, "alpha", 1, 0).unwrap();
        let slot_b = b.claim(me, "beta", 2, 1).unwrap();
        assert_ne!(slot_a.index(), slot_b.index());
        slot_b.publish(Report {
            demand: None,
            granted: 100,
            rate: 90,
            passed: 5,
            dropped: 1,
        });
        let seen = a.active();
        assert_eq!(seen.len(), 2);
        let beta = seen.iter().find(|v| v.name == "beta").unwrap();
        assert_eq!(
            (
                beta.weight,
                beta.demand,
                beta.granted,
                beta.rate,
                beta.dropped
            ),
            (2, None, 100, 90, 1)
        );
        drop(slot_b);
        assert_eq!(a.active().len(), 1);
        let _ = fs::remove_file(&path);
    }

    #[test]
    fn a_slot_of_a_dead_process_is_ignored_and_reclaimed() {
        let path = temp_state("dead");
        let state = NodeState::open(&path).unwrap();
        // A process that has exited: its pid is gone.
        let child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        let mut child = child;
        child.wait().unwrap();
        let ghost = state.claim(dead, "ghost", 1, 0).unwrap();
        std::mem::forget(ghost); // as if killed: the slot is never released
        assert!(state.active().is_empty(), "a dead owner is not counted");
        let mine = state.claim(std::process::id(), "alive", 1, 0).unwrap();
        assert_eq!(mine.index(), 0, "the abandoned slot is reused");
        let _ = fs::remove_file(&path);
    }

    #[test]
    fn a_slot_whose_pid_went_to_another_process_is_reclaimed() {
        let path = temp_state("reused");
        let state = NodeState::open(&path).unwrap();
        let me = std::process::id();
        let mine = owner_word(me);
        assert_ne!(mine >> 32, 0, "this process's start time is known");
        // A monitor that died, its pid now ours: same pid, another start.
        let ghost = mine ^ (1 << 32);
        state.raw().slot[0].owner.store(ghost, Ordering::Release);
        assert!(!owner_alive(ghost));
        assert!(owner_alive(mine));
        let slot = state.claim(me, "alive", 1, 0).unwrap();
        assert_eq!(
            slot.index(),
            0,
            "the slot with the reused pid is taken over"
        );
        // A live owner's slot is not.
        let other = state.claim(me, "second", 1, 0).unwrap();
        assert_eq!(other.index(), 1);
        let _ = fs::remove_file(&path);
    }

    #[test]
    fn reads_the_start_time_past_a_command_name_with_spaces() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    3 1 0 0 20 0 1 0 987654 1000000 100";
        assert_eq!(parse_start_ticks(stat), Some(987654));
        assert_eq!(parse_start_ticks("4242 (cut short) S 1"), None);
        assert!(start_ticks(std::process::id()).is_some());
        assert_eq!(start_ticks(u32::MAX), None);
    }

    #[test]
    fn refuses_a_file_that_is_not_node_state() {
        let path = temp_state("foreign");
        fs::write(&path, b"not ours, and short").unwrap();
        let err = NodeState::open(&path).unwrap_err();
        assert!(
            err.to_string().contains("not a weir node state file"),
            "{err}"
        );
        assert_eq!(
            fs::read(&path).unwrap(),
            b"not ours, and short",
            "a foreign file is left alone"
        );
        let _ = fs::remove_file(&path);
    }
}
