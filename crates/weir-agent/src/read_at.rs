//! Positioned reads that fill the buffer unless the file ends first.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Reads from `offset` until `buf` is full or the file ends; returns how
/// much was read.
pub fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
