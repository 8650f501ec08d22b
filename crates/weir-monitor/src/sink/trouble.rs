//! Riding out disk trouble: the period during which the log file could not be
//! written, what was lost in it, and the marker line that records the loss.

use std::io;
use std::time::{Duration, Instant};

use crate::format::Timestamp;
use crate::stats::{Counts, PerStream, Stream};

/// Free space required before writing is tried again, so that a sliver of
/// space freed on a full disk does not produce a string of markers.
pub const RESUME_HEADROOM: u64 = 64 << 10;

/// How often a write is retried while the file system reports enough space
/// but writing keeps failing (EIO, read-only).
pub const RETRY_INTERVAL: Duration = Duration::from_millis(100);

/// An ongoing period of failed writes.
#[derive(Debug)]
pub struct DiskTrouble {
    pub since: Timestamp,
    pub cause: io::ErrorKind,
    pub lost: PerStream<Counts>,
    pub last_attempt: Instant,
}

impl DiskTrouble {
    pub fn new(cause: &io::Error) -> DiskTrouble {
        DiskTrouble {
            since: Timestamp::now(),
            cause: cause.kind(),
            lost: PerStream::default(),
            last_attempt: Instant::now(),
        }
    }

    /// What went wrong, in the words the marker uses.
    pub fn describe(&self) -> &'static str {
        describe(self.cause)
    }

    /// The marker's text for `stream`, or `None` if it lost nothing.
    pub fn marker(&self, stream: Stream, until: Timestamp) -> Option<String> {
        let lost = self.lost.get(stream);
        (!lost.is_zero()).then(|| {
            format!(
                "weir: {} bytes in {} lines lost: {} from {} to {}",
                lost.bytes,
                lost.lines,
                self.describe(),
                self.since,
                until
            )
        })
    }
}

/// A short description of a write error kind.
pub fn describe(kind: io::ErrorKind) -> &'static str {
    match kind {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => "disk full",
        io::ErrorKind::ReadOnlyFilesystem => "read-only file system",
        io::ErrorKind::NotFound => "log directory missing",
        io::ErrorKind::PermissionDenied => "permission denied",
        _ => "disk error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_states_bytes_lines_reason_and_period() {
        let mut trouble = DiskTrouble::new(&io::Error::from_raw_os_error(libc::ENOSPC));
        trouble.since = Timestamp { secs: 0, nanos: 0 };
        trouble.lost.get_mut(Stream::Stderr).add(300, 3);
        let until = Timestamp { secs: 60, nanos: 0 };
        assert_eq!(trouble.marker(Stream::Stdout, until), None);
        assert_eq!(
            trouble.marker(Stream::Stderr, until).unwrap(),
            "weir: 300 bytes in 3 lines lost: disk full from 1970-01-01T00:00:00.000000000Z \
             to 1970-01-01T00:01:00.000000000Z"
        );
    }
}
