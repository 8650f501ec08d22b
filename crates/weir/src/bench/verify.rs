//! Checks that a peer stored every line the writer wrote: a benchmark of a
//! monitor that loses data measures nothing.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use serde::Serialize;

/// The format a peer writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    /// The writer's bytes as they are (`cat`).
    Plain,
    /// CRI records `<time> <stream> <P|F> <content>\n` (weir, conmon's k8s-file).
    Cri,
}

/// What was found in a log file.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Found {
    /// Complete lines: newlines for plain output, `F` records for CRI.
    pub lines: u64,
    /// `P` records: pieces of a line split by the monitor (conmon cuts lines
    /// at its 8 KiB read boundaries).
    pub partial_records: u64,
    /// Application bytes without the newlines.
    pub content_bytes: u64,
    /// Records on stderr: the writer only writes to stdout, so these are its
    /// error messages.
    pub stderr_records: u64,
    /// Size of the file.
    pub file_bytes: u64,
}

/// Reads `path` and compares it with what the writer was asked to write.
/// Returns what was found, or a description of the mismatch.
pub fn check(path: &Path, kind: LogKind, lines: u64, line_len: u64) -> Result<Found, String> {
    let found = match kind {
        LogKind::Plain => scan_plain(path),
        LogKind::Cri => scan_cri(path),
    }
    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let content = lines * (line_len - 1);
    if found.lines != lines || found.content_bytes != content || found.stderr_records != 0 {
        return Err(format!(
            "{} holds {} complete lines and {} content bytes ({} stderr records); \
             the writer wrote {lines} lines and {content} content bytes",
            path.display(),
            found.lines,
            found.content_bytes,
            found.stderr_records
        ));
    }
    Ok(found)
}

fn scan_plain(path: &Path) -> io::Result<Found> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut bytes, mut newlines) = (0u64, 0u64);
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        newlines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    Ok(Found {
        lines: newlines,
        content_bytes: bytes - newlines,
        file_bytes: bytes,
        ..Found::default()
    })
}

fn scan_cri(path: &Path) -> io::Result<Found> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut record = Vec::with_capacity(1 << 16);
    let mut found = Found::default();
    loop {
        record.clear();
        if reader.read_until(b'\n', &mut record)? == 0 {
            break;
        }
        found.file_bytes += record.len() as u64;
        let Some((stream, tag, content)) = split_cri(&record) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "not a CRI record: {:?}",
                    String::from_utf8_lossy(&record[..record.len().min(200)])
                ),
            ));
        };
        match tag {
            b"F" => found.lines += 1,
            _ => found.partial_records += 1,
        }
        if stream == b"stderr" {
            found.stderr_records += 1;
        }
        found.content_bytes += content.len() as u64;
    }
    Ok(found)
}

/// Checks that a log holds exactly `expected` bytes: the writer's `cri`
/// output and weir's log must be the same size, or comparing their wall times
/// compares different amounts of work.
pub fn check_size(path: &Path, found: &Found, expected: u64) -> Result<(), String> {
    if found.file_bytes == expected {
        return Ok(());
    }
    Err(format!(
        "{} is {} bytes, but {} lines as full CRI records with a 30-byte time are {expected} \
         bytes ({} P records): the comparison with cat-cri would not be of the same bytes",
        path.display(),
        found.file_bytes,
        found.lines,
        found.partial_records
    ))
}

/// Splits `<time> <stream> <P|F> <content>\n` into stream, tag and content
/// (without the newline). None when the record is malformed or unterminated.
fn split_cri(record: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let record = record.strip_suffix(b"\n")?;
    let mut parts = record.splitn(4, |&b| b == b' ');
    let _time = parts.next()?;
    let stream = parts.next()?;
    let tag = parts.next()?;
    let content = parts.next().unwrap_or(b"");
    let stream_ok = stream == b"stdout" || stream == b"stderr";
    (stream_ok && (tag == b"F" || tag == b"P")).then_some((stream, tag, content))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_temp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("weir-verify-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn cri_lines_split_into_p_records_count_once() {
        let path = write_temp(
            "split",
            b"2024-01-01T00:00:00.000000000Z stdout P ab\n\
              2024-01-01T00:00:00.000000001Z stdout F c\n\
              2024-01-01T00:00:00.000000002Z stdout F\n\
              2024-01-01T00:00:00.000000003Z stdout F abc\n",
        );
        // Three lines of 4 bytes would be 9 content bytes; the empty record
        // makes it a mismatch.
        let err = check(&path, LogKind::Cri, 3, 4).unwrap_err();
        assert!(
            err.contains("3 complete lines and 6 content bytes"),
            "{err}"
        );
        let found = scan_cri(&path).unwrap();
        assert_eq!((found.lines, found.partial_records), (3, 1));
        assert_eq!(found.file_bytes, std::fs::metadata(&path).unwrap().len());
        assert!(check_size(&path, &found, found.file_bytes).is_ok());
        assert!(check_size(&path, &found, found.file_bytes + 1).is_err());
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn plain_output_counts_newlines_and_bytes() {
        let path = write_temp("plain", b"abc\nabc\n");
        assert_eq!(check(&path, LogKind::Plain, 2, 4).unwrap().lines, 2);
        assert!(check(&path, LogKind::Plain, 3, 4).is_err());
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn stderr_records_fail_the_check() {
        let path = write_temp("stderr", b"2024-01-01T00:00:00Z stderr F oops\n");
        assert!(check(&path, LogKind::Cri, 1, 5).is_err());
        std::fs::remove_file(path).unwrap();
    }
}
