//! One record on disk: `crc: u32 LE | length: u32 LE | payload`. The CRC-32C
//! covers the length bytes and the payload, which lie side by side so one
//! pass checks both: a torn write, a flipped bit or a length read from
//! garbage is caught before the payload is used.

use std::io::{self, Read};

pub const HEADER_LEN: usize = 8;

/// Appends the frame of `payload` to `out`.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len())
        .expect("callers bound payloads by the maximum record size")
        .to_le_bytes();
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&len);
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// What [`parse`] found at the start of some bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A valid record, and the bytes its frame takes.
    Record(&'a [u8], usize),
    /// The bytes end before the frame does.
    Incomplete,
    Corrupt(Corruption),
}

/// Reads the frame at the start of `bytes` in place: the fast path of a
/// reader that has a whole chunk in memory.
pub fn parse(bytes: &[u8], max_len: u32) -> Parsed<'_> {
    if bytes.len() < HEADER_LEN {
        return Parsed::Incomplete;
    }
    let stored = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
    let len = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if len > max_len {
        return Parsed::Corrupt(Corruption::TooLong { len, max: max_len });
    }
    let end = HEADER_LEN + len as usize;
    if bytes.len() < end {
        return Parsed::Incomplete;
    }
    let computed = crc32c::crc32c(&bytes[4..end]);
    if computed != stored {
        return Parsed::Corrupt(Corruption::Checksum { stored, computed });
    }
    Parsed::Record(&bytes[HEADER_LEN..end], end)
}

/// Bytes a frame of `payload_len` bytes takes.
pub fn framed_len(payload_len: usize) -> u64 {
    (HEADER_LEN + payload_len) as u64
}

fn checksum(len: [u8; 4], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&len), payload)
}

/// Why the bytes at some offset are not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    #[error("the file ends {missing} bytes short of the record that starts there (a torn write)")]
    Torn { missing: u64 },
    #[error("a record length of {len} bytes, over the limit of {max}")]
    TooLong { len: u32, max: u32 },
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { stored: u32, computed: u32 },
}

/// What reading the next frame found.
#[derive(Debug)]
pub enum Next {
    /// A whole, valid record: its payload is in the buffer given.
    Record,
    /// The end of the data, on a record boundary.
    End,
    Corrupt(Corruption),
}

/// Reads the next frame from `input` into `payload` (replacing what it
/// held). Payloads over `max_len` are refused before anything is allocated.
pub fn read_next(input: &mut impl Read, max_len: u32, payload: &mut Vec<u8>) -> io::Result<Next> {
    let mut header = [0u8; HEADER_LEN];
    let got = read_up_to(input, &mut header)?;
    if got == 0 {
        return Ok(Next::End);
    }
    if got < HEADER_LEN {
        return Ok(Next::Corrupt(Corruption::Torn {
            missing: (HEADER_LEN - got) as u64,
        }));
    }
    let stored = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
    let len_bytes: [u8; 4] = header[4..].try_into().expect("4 bytes");
    let len = u32::from_le_bytes(len_bytes);
    if len > max_len {
        return Ok(Next::Corrupt(Corruption::TooLong { len, max: max_len }));
    }
    payload.clear();
    payload.resize(len as usize, 0);
    let got = read_up_to(input, payload)?;
    if got < payload.len() {
        return Ok(Next::Corrupt(Corruption::Torn {
            missing: (payload.len() - got) as u64,
        }));
    }
    let computed = checksum(len_bytes, payload);
    if computed != stored {
        return Ok(Next::Corrupt(Corruption::Checksum { stored, computed }));
    }
    Ok(Next::Record)
}

/// Fills `buf` as far as `input` goes; returns how much was read.
fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            encode(p, &mut out);
        }
        out
    }

    #[test]
    fn reads_back_what_was_framed() {
        let bytes = frames(&[b"one", b"", b"three\n\0\xff"]);
        let mut input = &bytes[..];
        let mut payload = Vec::new();
        for expected in [&b"one"[..], b"", b"three\n\0\xff"] {
            assert!(matches!(
                read_next(&mut input, 1024, &mut payload).unwrap(),
                Next::Record
            ));
            assert_eq!(payload, expected);
        }
        assert!(matches!(
            read_next(&mut input, 1024, &mut payload).unwrap(),
            Next::End
        ));
    }

    #[test]
    fn a_flipped_bit_a_torn_tail_and_a_wild_length_are_caught() {
        let good = frames(&[b"hello world"]);
        let mut payload = Vec::new();
        let mut flipped = good.clone();
        flipped[12] ^= 0x10;
        assert!(matches!(
            read_next(&mut &flipped[..], 1024, &mut payload).unwrap(),
            Next::Corrupt(Corruption::Checksum { .. })
        ));
        for cut in [3, 8, good.len() - 1] {
            assert!(
                matches!(
                    read_next(&mut &good[..cut], 1024, &mut payload).unwrap(),
                    Next::Corrupt(Corruption::Torn { .. })
                ),
                "cut at {cut}"
            );
        }
        let mut wild = good.clone();
        wild[7] = 0x7f;
        assert!(matches!(
            read_next(&mut &wild[..], 1024, &mut payload).unwrap(),
            Next::Corrupt(Corruption::TooLong { .. })
        ));
        // A length changed to another plausible value fails the checksum.
        let mut shorter = good;
        shorter[4] -= 1;
        assert!(matches!(
            read_next(&mut &shorter[..], 1024, &mut payload).unwrap(),
            Next::Corrupt(Corruption::Checksum { .. })
        ));
    }

    #[test]
    fn parsing_in_place_agrees_with_reading() {
        let bytes = frames(&[b"one", b"two!"]);
        assert_eq!(parse(&bytes, 1024), Parsed::Record(b"one", 11));
        assert_eq!(parse(&bytes[11..], 1024), Parsed::Record(b"two!", 12));
        assert_eq!(parse(&bytes[11..20], 1024), Parsed::Incomplete);
        let mut flipped = bytes.clone();
        flipped[9] ^= 1;
        assert!(matches!(
            parse(&flipped, 1024),
            Parsed::Corrupt(Corruption::Checksum { .. })
        ));
    }
}
