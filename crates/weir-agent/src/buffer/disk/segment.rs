//! Segment files: `{first sequence number:020}.wal`, a 16-byte header (a
//! magic and the first sequence number, which must match the name), then
//! frames. A segment is appended to until it reaches its size, and deleted
//! once every record in it is acknowledged.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::frame::{self, Corruption, Next};

const MAGIC: &[u8; 8] = b"weirwal1";
pub const HEADER_LEN: u64 = 16;
const SUFFIX: &str = ".wal";

pub fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SUFFIX}")
}

/// The first sequence number a segment's file name states.
pub fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Creates the segment starting at `first_seq`, header written, open for
/// appending.
pub fn create(dir: &Path, first_seq: u64) -> io::Result<(PathBuf, File)> {
    let path = dir.join(file_name(first_seq));
    let mut file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    let mut header = [0u8; HEADER_LEN as usize];
    header[..8].copy_from_slice(MAGIC);
    header[8..].copy_from_slice(&first_seq.to_le_bytes());
    io::Write::write_all(&mut file, &header)?;
    Ok((path, file))
}

/// Why a segment is not wholly readable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    #[error("the header is not a weir buffer segment's, or names another first record")]
    Header,
    #[error("{0}")]
    Record(#[from] Corruption),
}

/// What a scan of one segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Whole, valid records from the start.
    pub records: u64,
    /// Where the valid part ends.
    pub valid_len: u64,
    pub file_len: u64,
    /// What stopped the scan before the end of the file.
    pub damage: Option<Damage>,
}

/// Reads a segment through, checking every record and telling `each` the
/// sequence number and payload length of every valid one.
pub fn scan(
    path: &Path,
    first_seq: u64,
    max_record: u32,
    mut each: impl FnMut(u64, usize),
) -> io::Result<Scan> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut input = BufReader::with_capacity(256 << 10, file);
    let mut scan = Scan {
        records: 0,
        valid_len: 0,
        file_len,
        damage: None,
    };
    let mut header = [0u8; HEADER_LEN as usize];
    let header_ok = input.read_exact(&mut header).is_ok()
        && &header[..8] == MAGIC
        && header[8..] == first_seq.to_le_bytes();
    if !header_ok {
        scan.damage = Some(Damage::Header);
        return Ok(scan);
    }
    scan.valid_len = HEADER_LEN;
    let mut payload = Vec::new();
    loop {
        match frame::read_next(&mut input, max_record, &mut payload)? {
            Next::Record => {
                each(first_seq + scan.records, payload.len());
                scan.records += 1;
                scan.valid_len += frame::framed_len(payload.len());
            }
            Next::End => return Ok(scan),
            Next::Corrupt(corruption) => {
                scan.damage = Some(corruption.into());
                return Ok(scan);
            }
        }
    }
}

/// Opens a segment for reading at `offset`.
pub fn open_at(path: &Path, offset: u64) -> io::Result<File> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    Ok(file)
}

/// Cuts a segment back to its valid part.
pub fn truncate(path: &Path, len: u64) -> io::Result<()> {
    OpenOptions::new().write(true).open(path)?.set_len(len)
}

/// Moves a segment whose header is damaged out of the way, keeping it for
/// an operator to look at: `NAME.damaged`.
pub fn set_aside(path: &Path) -> io::Result<PathBuf> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".damaged");
    let aside = PathBuf::from(aside);
    fs::rename(path, &aside)?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_strangers_are_ignored() {
        assert_eq!(file_name(42), "00000000000000000042.wal");
        assert_eq!(parse_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_name("00000000000000000042.wal.damaged"), None);
        assert_eq!(parse_name("0000000000000000042.wal"), None);
        assert_eq!(parse_name("ack"), None);
    }
}
