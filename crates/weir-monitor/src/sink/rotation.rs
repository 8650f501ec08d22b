//! Rotation by renaming: `ctr.log` → `ctr.log.1` → `ctr.log.2` …, never by
//! truncating the live file in place, so a reader holding the old file open
//! keeps reading whole records. Files beyond `--log-max-files` are deleted and
//! their contents reported; rotated files are gzipped off the capture path.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use serde::Serialize;

use super::compress;
use crate::config::RotationConfig;
use crate::stats::{Counts, PerStream, Stream};

/// A rotated file that weir keeps track of.
#[derive(Debug, Clone)]
pub struct RotatedFile {
    /// Stable identity across renames, for the compressor.
    pub id: u64,
    /// Where the file is now (`ctr.log.N` or `ctr.log.N.gz`).
    pub path: PathBuf,
    pub compressed: bool,
    /// Application bytes in the file, written by this run (zero for files
    /// found at start).
    pub counts: PerStream<Counts>,
    /// The compressor is working on it, or gave up on it.
    pub compress_claimed: bool,
}

/// A file that is gone, with what it held.
#[derive(Debug, Clone, Serialize)]
pub struct DeletedFile {
    pub path: PathBuf,
    pub reason: DeleteReason,
    /// Application bytes and lines of each stream the file held.
    pub stdout: Counts,
    pub stderr: Counts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeleteReason {
    Rotation,
    External,
}

/// The rotated files, newest first, shared with the compressor thread.
#[derive(Debug)]
pub(super) struct RotatedSet {
    pub(super) files: VecDeque<RotatedFile>,
    pub(super) next_id: u64,
    pub(super) stopping: bool,
}

pub(super) type Shared = Arc<(Mutex<RotatedSet>, Condvar)>;

/// Owns the rotated files of one live file.
#[derive(Debug)]
pub struct Rotator {
    live_path: PathBuf,
    config: RotationConfig,
    shared: Shared,
    compressor: Option<JoinHandle<()>>,
}

/// `ctr.log` + `.N`.
pub fn numbered(live: &Path, n: usize) -> PathBuf {
    let mut name = OsString::from(live.as_os_str());
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn gz(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".gz");
    PathBuf::from(name)
}

impl Rotator {
    /// Takes over rotated files left by an earlier run (`ctr.log.1`,
    /// `ctr.log.2.gz`, … up to the first gap) and starts the compressor.
    pub fn new(live_path: &Path, config: RotationConfig) -> Rotator {
        let mut files = VecDeque::new();
        let mut next_id = 0;
        for n in 1.. {
            let plain = numbered(live_path, n);
            let (path, compressed) = if plain.exists() {
                (plain, false)
            } else if gz(&plain).exists() {
                (gz(&plain), true)
            } else {
                break;
            };
            files.push_back(RotatedFile {
                id: next_id,
                path,
                compressed,
                counts: PerStream::default(),
                compress_claimed: false,
            });
            next_id += 1;
        }
        let shared: Shared = Arc::new((
            Mutex::new(RotatedSet {
                files,
                next_id,
                stopping: false,
            }),
            Condvar::new(),
        ));
        let compressor = config
            .compress
            .then(|| compress::start(Arc::clone(&shared), live_path));
        Rotator {
            live_path: live_path.to_path_buf(),
            config,
            shared,
            compressor,
        }
    }

    pub fn max_size(&self) -> Option<u64> {
        self.config.max_size
    }

    /// Moves the live file (holding `live_counts`) aside and deletes what
    /// exceeds the file limit. The caller opens a new live file afterwards.
    /// On error the live file may still be in place; what was deleted so far
    /// is returned either way.
    pub fn rotate(&mut self, live_counts: PerStream<Counts>) -> (Vec<DeletedFile>, io::Result<()>) {
        let (lock, wake) = &*self.shared;
        let mut set = lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut deleted = Vec::new();
        let keep = self.config.max_files.max(1) - 1;
        while set.files.len() > keep.saturating_sub(1) {
            let Some(oldest) = set.files.pop_back() else {
                break;
            };
            // If someone else removed it first, it still is no longer ours.
            let _ = fs::remove_file(&oldest.path);
            deleted.push(deleted_file(
                oldest.path,
                oldest.counts,
                DeleteReason::Rotation,
            ));
        }
        if keep == 0 {
            let result = fs::remove_file(&self.live_path);
            deleted.push(deleted_file(
                self.live_path.clone(),
                live_counts,
                DeleteReason::Rotation,
            ));
            return (deleted, result);
        }
        for index in (0..set.files.len()).rev() {
            let file = &mut set.files[index];
            let mut target = numbered(&self.live_path, index + 2);
            if file.compressed {
                target = gz(&target);
            }
            if let Err(e) = fs::rename(&file.path, &target) {
                return (
                    deleted,
                    Err(io::Error::new(
                        e.kind(),
                        format!("renaming {}: {e}", file.path.display()),
                    )),
                );
            }
            file.path = target;
        }
        let first = numbered(&self.live_path, 1);
        if let Err(e) = fs::rename(&self.live_path, &first) {
            return (
                deleted,
                Err(io::Error::new(
                    e.kind(),
                    format!("renaming {}: {e}", self.live_path.display()),
                )),
            );
        }
        let id = set.next_id;
        set.next_id += 1;
        set.files.push_front(RotatedFile {
            id,
            path: first,
            compressed: false,
            counts: live_counts,
            compress_claimed: false,
        });
        wake.notify_all();
        (deleted, Ok(()))
    }

    /// Forgets rotated files that someone else removed, reporting them.
    pub fn forget_missing(&mut self) -> Vec<DeletedFile> {
        let (lock, _) = &*self.shared;
        let mut set = lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut gone = Vec::new();
        set.files.retain(|file| {
            let exists = file.path.exists();
            if !exists {
                gone.push(deleted_file(
                    file.path.clone(),
                    file.counts,
                    DeleteReason::External,
                ));
            }
            exists
        });
        gone
    }

    /// Waits for pending compression and returns the rotated files, newest first.
    pub fn finish(mut self) -> Vec<RotatedFile> {
        let (lock, wake) = &*self.shared;
        lock.lock().unwrap_or_else(|e| e.into_inner()).stopping = true;
        wake.notify_all();
        if let Some(compressor) = self.compressor.take() {
            let _ = compressor.join();
        }
        let set = lock.lock().unwrap_or_else(|e| e.into_inner());
        set.files.iter().cloned().collect()
    }
}

pub(super) fn deleted_file(
    path: PathBuf,
    counts: PerStream<Counts>,
    reason: DeleteReason,
) -> DeletedFile {
    DeletedFile {
        path,
        reason,
        stdout: *counts.get(Stream::Stdout),
        stderr: *counts.get(Stream::Stderr),
    }
}

pub(super) fn gz_path(path: &Path) -> PathBuf {
    gz(path)
}
