//! Where each tailed file was read up to, as far as the sinks have
//! acknowledged it. Files are known by device and inode, with a checksum of
//! their first bytes so a reused inode is not taken for the old file. The
//! whole set is written to a temporary file and renamed over the old one, so
//! a crash leaves the old set or the new one, never a mix.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Device and inode.
pub type FileId = (u64, u64);

/// The first bytes of a file, checksummed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub len: u32,
    pub crc: u32,
}

/// Bytes a fingerprint covers, at most.
pub const FINGERPRINT_BYTES: usize = 256;

impl Fingerprint {
    pub fn of(first_bytes: &[u8]) -> Fingerprint {
        let bytes = &first_bytes[..first_bytes.len().min(FINGERPRINT_BYTES)];
        Fingerprint {
            len: bytes.len() as u32,
            crc: crc32c::crc32c(bytes),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub dev: u64,
    pub ino: u64,
    pub fingerprint: Fingerprint,
    /// Everything before this offset was acknowledged.
    pub offset: u64,
    /// Where the file was last seen, for people reading the file.
    pub path: PathBuf,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    files: Vec<Entry>,
}

#[derive(Debug)]
pub struct Checkpoints {
    path: PathBuf,
    entries: HashMap<FileId, Entry>,
}

impl Checkpoints {
    /// Loads the checkpoints of a source; a missing file is an empty set, an
    /// unreadable one an error naming it.
    pub fn load(path: &Path) -> io::Result<Checkpoints> {
        let entries = match fs::read(path) {
            Ok(bytes) => {
                let on_disk: OnDisk = serde_json::from_slice(&bytes).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("checkpoint file {}: {e}", path.display()),
                    )
                })?;
                on_disk
                    .files
                    .into_iter()
                    .map(|e| ((e.dev, e.ino), e))
                    .collect()
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Checkpoints {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// The offset to resume `id` from, if it is the file checkpointed: its
    /// first bytes still match.
    pub fn resume(&self, id: FileId, first_bytes: &[u8]) -> Option<u64> {
        let entry = self.entries.get(&id)?;
        let now =
            Fingerprint::of(&first_bytes[..first_bytes.len().min(entry.fingerprint.len as usize)]);
        (now == entry.fingerprint).then_some(entry.offset)
    }

    pub fn set(&mut self, entry: Entry) {
        self.entries.insert((entry.dev, entry.ino), entry);
    }

    /// Keeps only the files `keep` says are still around.
    pub fn retain(&mut self, mut keep: impl FnMut(FileId) -> bool) {
        self.entries.retain(|id, _| keep(*id));
    }

    pub fn get(&self, id: FileId) -> Option<&Entry> {
        self.entries.get(&id)
    }

    /// Writes the set: a temporary file renamed over the old one, synced
    /// first if `sync` (for a power cut; a crash of the agent alone loses
    /// nothing the kernel has).
    pub fn store(&self, sync: bool) -> io::Result<()> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut files: Vec<Entry> = self.entries.values().cloned().collect();
        files.sort_by_key(|e| (e.dev, e.ino));
        let bytes =
            serde_json::to_vec_pretty(&OnDisk { version: 1, files }).map_err(io::Error::other)?;
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        if sync {
            file.sync_data()?;
        }
        fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_resumes_only_the_same_file() {
        let dir = std::env::temp_dir().join(format!("weir-ckpt-{}", std::process::id()));
        let path = dir.join("source.json");
        let mut checkpoints = Checkpoints::load(&path).unwrap();
        checkpoints.set(Entry {
            dev: 1,
            ino: 42,
            fingerprint: Fingerprint::of(b"first line\n"),
            offset: 11,
            path: "/x/a.log".into(),
        });
        checkpoints.store(true).unwrap();
        let loaded = Checkpoints::load(&path).unwrap();
        assert_eq!(
            loaded.resume((1, 42), b"first line\nsecond line\n"),
            Some(11)
        );
        assert_eq!(
            loaded.resume((1, 42), b"other file\n"),
            None,
            "inode reused"
        );
        assert_eq!(loaded.resume((1, 43), b"first line\n"), None);
        fs::write(&path, b"{not json").unwrap();
        let err = Checkpoints::load(&path).unwrap_err();
        assert!(err.to_string().contains("source.json"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
