//! The acknowledgement mark: every record below it was acknowledged by the
//! sink. Two 32-byte slots written in turn, each with a generation number and
//! a CRC-32C, so a write torn by a power cut leaves the other slot intact;
//! the valid slot with the higher generation is the mark.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

const MAGIC: &[u8; 8] = b"weirack1";
const SLOT_LEN: usize = 32;

/// The mark file of one buffer, open for writing.
#[derive(Debug)]
pub struct AckFile {
    file: File,
    generation: u64,
}

impl AckFile {
    /// Opens (creating if needed) the mark file; returns it with the mark it
    /// holds, `None` if it holds no valid slot (new, or both slots damaged).
    pub fn open(path: &Path) -> io::Result<(AckFile, Option<u64>)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut bytes = [0u8; 2 * SLOT_LEN];
        let got = crate::read_at::read_full_at(&file, &mut bytes, 0)?;
        let best = bytes[..got]
            .chunks_exact(SLOT_LEN)
            .filter_map(decode_slot)
            .max_by_key(|(generation, _)| *generation);
        let generation = best.map_or(0, |(g, _)| g);
        Ok((AckFile { file, generation }, best.map(|(_, mark)| mark)))
    }

    /// Records `mark` in the slot not holding the latest one.
    pub fn store(&mut self, mark: u64, sync: bool) -> io::Result<()> {
        self.generation += 1;
        let slot = encode_slot(self.generation, mark);
        let offset = (self.generation % 2) * SLOT_LEN as u64;
        self.file.write_all_at(&slot, offset)?;
        if sync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// The mark a file holds, read without opening it for writing.
pub fn read_mark(path: &Path) -> io::Result<Option<u64>> {
    let file = File::open(path)?;
    let mut bytes = [0u8; 2 * SLOT_LEN];
    let got = crate::read_at::read_full_at(&file, &mut bytes, 0)?;
    Ok(bytes[..got]
        .chunks_exact(SLOT_LEN)
        .filter_map(decode_slot)
        .max_by_key(|(generation, _)| *generation)
        .map(|(_, mark)| mark))
}

fn encode_slot(generation: u64, mark: u64) -> [u8; SLOT_LEN] {
    let mut slot = [0u8; SLOT_LEN];
    slot[..8].copy_from_slice(MAGIC);
    slot[8..16].copy_from_slice(&generation.to_le_bytes());
    slot[16..24].copy_from_slice(&mark.to_le_bytes());
    let crc = crc32c::crc32c(&slot[..24]);
    slot[24..28].copy_from_slice(&crc.to_le_bytes());
    slot
}

fn decode_slot(slot: &[u8]) -> Option<(u64, u64)> {
    if &slot[..8] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(slot[24..28].try_into().ok()?);
    if crc != crc32c::crc32c(&slot[..24]) {
        return None;
    }
    let generation = u64::from_le_bytes(slot[8..16].try_into().ok()?);
    let mark = u64::from_le_bytes(slot[16..24].try_into().ok()?);
    Some((generation, mark))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_mark_survives_a_torn_slot() {
        let dir = std::env::temp_dir().join(format!("weir-ack-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ack");
        let _ = std::fs::remove_file(&path);
        let (mut ack, mark) = AckFile::open(&path).unwrap();
        assert_eq!(mark, None);
        ack.store(10, false).unwrap();
        ack.store(25, false).unwrap();
        drop(ack);
        assert_eq!(AckFile::open(&path).unwrap().1, Some(25));
        // Damage the newer slot (generation 2 sits in slot 0): the older mark
        // is what is left.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let (mut ack, mark) = AckFile::open(&path).unwrap();
        assert_eq!(mark, Some(10));
        // Writing goes on above the generation found.
        ack.store(30, true).unwrap();
        assert_eq!(AckFile::open(&path).unwrap().1, Some(30));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
