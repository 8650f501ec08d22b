//! Where each tailed file was read up to, as far as the sinks have
//! acknowledged it. Files are known by device and inode, with a checksum of
//! their first bytes so a reused inode is not taken for the old file.
//!
//! The set is JSON, written in turn to two files (`NAME.0`, `NAME.1`), each
//! ending in a line with a generation number and a CRC-32C of the JSON: a
//! write torn by a crash leaves the other file whole, and loading takes the
//! valid one with the higher generation. Writing in place, rather than
//! renaming a new file over the old, matters: the checkpoints move with every
//! read, and on ext4 a rename over a file forces its data out to the disk.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
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
    /// The generation of the newest file written or loaded.
    generation: u64,
    /// The two files, opened on the first store.
    files: Option<[fs::File; 2]>,
}

/// `NAME.0` or `NAME.1`.
fn slot_path(path: &Path, slot: u64) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{slot}"));
    PathBuf::from(name)
}

/// The JSON of a slot file and its generation, if its trailer checks out.
fn read_slot(path: &Path) -> io::Result<Option<(u64, Vec<u8>)>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let text = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    let Some(split) = text.iter().rposition(|b| *b == b'\n') else {
        return Ok(None);
    };
    let (json, trailer) = (&text[..split], &text[split + 1..]);
    let trailer = String::from_utf8_lossy(trailer);
    let mut generation = None;
    let mut crc = None;
    for field in trailer.trim_start_matches('#').split_whitespace() {
        if let Some(v) = field.strip_prefix("generation=") {
            generation = v.parse::<u64>().ok();
        } else if let Some(v) = field.strip_prefix("crc32c=") {
            crc = u32::from_str_radix(v, 16).ok();
        }
    }
    match (generation, crc) {
        (Some(generation), Some(crc)) if crc == crc32c::crc32c(json) => {
            Ok(Some((generation, json.to_vec())))
        }
        _ => Ok(None),
    }
}

impl Checkpoints {
    /// Loads the checkpoints of a source; a missing file is an empty set, an
    /// unreadable one an error naming it.
    pub fn load(path: &Path) -> io::Result<Checkpoints> {
        let mut newest: Option<(u64, Vec<u8>, PathBuf)> = None;
        for slot in 0..2 {
            let slot_path = slot_path(path, slot);
            if let Some((generation, json)) = read_slot(&slot_path)?
                && newest.as_ref().is_none_or(|(g, _, _)| generation > *g)
            {
                newest = Some((generation, json, slot_path));
            }
        }
        let (generation, entries) = match newest {
            Some((generation, json, slot_path)) => {
                let on_disk: OnDisk = serde_json::from_slice(&json).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("checkpoint file {}: {e}", slot_path.display()),
                    )
                })?;
                let entries = on_disk
                    .files
                    .into_iter()
                    .map(|e| ((e.dev, e.ino), e))
                    .collect();
                (generation, entries)
            }
            None => (0, HashMap::new()),
        };
        Ok(Checkpoints {
            path: path.to_path_buf(),
            entries,
            generation,
            files: None,
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

    /// Whether `path` has checkpoints written (either of its two files).
    pub fn exist(path: &Path) -> bool {
        (0..2).any(|slot| slot_path(path, slot).exists())
    }

    /// Writes the checkpoints stored at `from` to `to`, synced: a reader
    /// that splits off another starts where that one was acknowledged to.
    pub fn copy(from: &Path, to: &Path) -> io::Result<()> {
        let mut copy = Checkpoints::load(from)?;
        copy.path = to.to_path_buf();
        copy.files = None;
        copy.store(true)
    }

    /// Writes `entries` as the checkpoints at `path`, synced.
    pub fn write(path: &Path, entries: Vec<Entry>) -> io::Result<()> {
        Checkpoints {
            path: path.to_path_buf(),
            entries: entries.into_iter().map(|e| ((e.dev, e.ino), e)).collect(),
            generation: 0,
            files: None,
        }
        .store(true)
    }

    /// Deletes the checkpoints at `path`, so a reader started there later
    /// does not resume from a place long past.
    pub fn remove(path: &Path) -> io::Result<()> {
        for slot in 0..2 {
            match fs::remove_file(slot_path(path, slot)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Writes the set over the older of the two files, synced if `sync`
    /// (for a power cut; a crash of the agent alone loses nothing the
    /// kernel has).
    pub fn store(&mut self, sync: bool) -> io::Result<()> {
        if self.files.is_none() {
            if let Some(dir) = self.path.parent() {
                fs::create_dir_all(dir)?;
            }
            let open = |slot| {
                fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(false)
                    .open(slot_path(&self.path, slot))
            };
            self.files = Some([open(0)?, open(1)?]);
        }
        let mut files: Vec<Entry> = self.entries.values().cloned().collect();
        files.sort_by_key(|e| (e.dev, e.ino));
        let mut bytes =
            serde_json::to_vec_pretty(&OnDisk { version: 1, files }).map_err(io::Error::other)?;
        self.generation += 1;
        let trailer = format!(
            "\n# generation={} crc32c={:08x}\n",
            self.generation,
            crc32c::crc32c(&bytes)
        );
        bytes.extend_from_slice(trailer.as_bytes());
        let file = &self.files.as_ref().expect("opened above")[(self.generation % 2) as usize];
        file.write_all_at(&bytes, 0)?;
        // Shorter than before: cut the old tail (never to zero, which ext4
        // would also flush).
        if file.metadata()?.len() > bytes.len() as u64 {
            file.set_len(bytes.len() as u64)?;
        }
        if sync {
            file.sync_data()?;
        }
        Ok(())
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
        // A torn newer file: the older one is used.
        let mut newer = checkpoints_with(&path, 99);
        newer.store(false).unwrap();
        let newer_slot = slot_path(&path, newer.generation % 2);
        let mut torn = fs::read(&newer_slot).unwrap();
        torn.truncate(torn.len() / 2);
        fs::write(&newer_slot, &torn).unwrap();
        assert_eq!(
            Checkpoints::load(&path)
                .unwrap()
                .resume((1, 42), b"first line\n"),
            Some(11)
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    fn checkpoints_with(path: &Path, offset: u64) -> Checkpoints {
        let mut checkpoints = Checkpoints::load(path).unwrap();
        checkpoints.set(Entry {
            dev: 1,
            ino: 42,
            fingerprint: Fingerprint::of(b"first line\n"),
            offset,
            path: "/x/a.log".into(),
        });
        checkpoints
    }
}
