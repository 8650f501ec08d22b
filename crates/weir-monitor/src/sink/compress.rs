//! The background gzip of rotated files.
//!
//! The compressor works from an open descriptor, so the rotator may rename
//! the file meanwhile; it writes to a temporary name and, under the lock,
//! puts the `.gz` where the file is *now*, or discards its work if rotation
//! deleted the file in the meantime. Level 1: rotation exists to bound disk
//! use on a busy node, and the faster level leaves the CPU to the workload.

use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::thread::{self, JoinHandle};

use flate2::Compression;
use flate2::write::GzEncoder;

use super::rotation::{Shared, gz_path};

pub(super) fn start(shared: Shared, live_path: &Path) -> JoinHandle<()> {
    let live_path = live_path.to_path_buf();
    thread::Builder::new()
        .name("weir-gzip".into())
        .spawn(move || run(shared, live_path))
        .expect("spawning the compressor thread")
}

fn run(shared: Shared, live_path: PathBuf) {
    let (lock, wake) = &*shared;
    loop {
        let job = {
            let mut set = lock.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(file) = set
                    .files
                    .iter_mut()
                    .rev()
                    .find(|f| !f.compressed && !f.compress_claimed)
                {
                    file.compress_claimed = true;
                    // Opened under the lock, so the path is the file's current one.
                    break Some((file.id, File::open(&file.path), file.path.clone()));
                }
                if set.stopping {
                    break None;
                }
                set = wake.wait(set).unwrap_or_else(|e| e.into_inner());
            }
        };
        let Some((id, source, path)) = job else {
            return;
        };
        let temp = temp_path(&live_path, id);
        let result = source.and_then(|mut source| gzip(&mut source, &temp));
        let mut set = lock.lock().unwrap_or_else(|e| e.into_inner());
        match (result, set.files.iter_mut().find(|f| f.id == id)) {
            (Ok(()), Some(file)) => {
                let target = gz_path(&file.path);
                match fs::rename(&temp, &target) {
                    Ok(()) => {
                        let _ = fs::remove_file(&file.path);
                        file.path = target;
                        file.compressed = true;
                    }
                    Err(e) => {
                        let _ = fs::remove_file(&temp);
                        eprintln!(
                            "weir: cannot compress {}: {e}; kept uncompressed",
                            file.path.display()
                        );
                    }
                }
            }
            (Ok(()), None) => {
                // Rotation deleted the file while it was being compressed.
                let _ = fs::remove_file(&temp);
            }
            (Err(e), _) => {
                let _ = fs::remove_file(&temp);
                eprintln!(
                    "weir: cannot compress {}: {e}; kept uncompressed",
                    path.display()
                );
            }
        }
    }
}

fn temp_path(live_path: &Path, id: u64) -> PathBuf {
    let mut name = live_path.as_os_str().to_owned();
    name.push(format!(".gz-tmp.{id}"));
    PathBuf::from(name)
}

fn gzip(source: &mut File, target: &Path) -> io::Result<()> {
    let out = File::create(target)?;
    let mut encoder = GzEncoder::new(BufWriter::with_capacity(64 << 10, out), Compression::fast());
    io::copy(source, &mut encoder)?;
    let out = encoder.finish()?.into_inner().map_err(|e| e.into_error())?;
    out.sync_all()
}
