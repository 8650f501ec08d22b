//! The four capture workloads of issue 2, and how each one drives the writer.

use serde::Serialize;

/// Bytes the writer puts before each line in its `cri` mode, and weir before
/// each record: a 30-byte RFC 3339 UTC time with nanoseconds, then
/// ` stdout F ` (`writer.c`'s `CRI_HEAD`).
pub const CRI_HEAD_LEN: u64 = 30 + " stdout F ".len() as u64;

/// How the writer hands its lines to `write()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteMode {
    /// Whole lines packed into 64 KiB per `write()`: the cheapest writer.
    Buffered,
    /// One `write()` per line: the most wakeups per byte for the monitor.
    Perline,
}

impl WriteMode {
    fn as_arg(self) -> &'static str {
        match self {
            WriteMode::Buffered => "buffered",
            WriteMode::Perline => "perline",
        }
    }
}

/// One load pattern pushed through every peer.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Workload {
    pub id: u8,
    pub title: &'static str,
    pub mode: WriteMode,
    /// Bytes per line, the newline included.
    pub line_len: u64,
    /// Writer processes sharing one stdout.
    pub procs: u32,
}

/// All workloads, in the order of the issue.
pub const ALL: [Workload; 4] = [
    Workload {
        id: 1,
        title: "100 B lines, 64 KiB writes",
        mode: WriteMode::Buffered,
        line_len: 100,
        procs: 1,
    },
    Workload {
        id: 2,
        title: "100 B lines, write per line",
        mode: WriteMode::Perline,
        line_len: 100,
        procs: 1,
    },
    Workload {
        id: 3,
        title: "empty lines, 64 KiB writes",
        mode: WriteMode::Buffered,
        line_len: 1,
        procs: 1,
    },
    Workload {
        id: 4,
        title: "8 writers, write per line",
        mode: WriteMode::Perline,
        line_len: 100,
        procs: 8,
    },
];

impl Workload {
    /// Looks a workload up by its number in the issue.
    pub fn by_id(id: u8) -> Option<Workload> {
        ALL.iter().copied().find(|w| w.id == id)
    }

    /// The writer's arguments after its path: `MODE LINES LINE_LEN PROCS`.
    pub fn writer_args(&self, lines: u64) -> Vec<String> {
        vec![
            self.mode.as_arg().to_owned(),
            lines.to_string(),
            self.line_len.to_string(),
            self.procs.to_string(),
        ]
    }

    /// The same, with the writer's `cri` option: every line comes out as
    /// the CRI record weir would store for it, in the same write pattern.
    pub fn writer_args_cri(&self, lines: u64) -> Vec<String> {
        let mut args = self.writer_args(lines);
        args.push("cri".to_owned());
        args
    }

    /// The exact size of weir's CRI log of `lines` lines, and of the
    /// writer's output in `cri` mode: one full record per line.
    pub fn cri_log_bytes(&self, lines: u64) -> u64 {
        lines * (CRI_HEAD_LEN + self.line_len)
    }

    /// Bytes the application writes in total.
    pub fn app_bytes(&self, lines: u64) -> u64 {
        lines * self.line_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_records_add_forty_bytes_to_each_line() {
        // "<30-byte time> stdout F " + 99 bytes + "\n", and "... F \n" for an
        // empty line.
        assert_eq!(ALL[0].cri_log_bytes(1), 140);
        assert_eq!(ALL[2].cri_log_bytes(2), 82);
        assert_eq!(
            ALL[3].writer_args_cri(10),
            ["perline", "10", "100", "8", "cri"]
        );
    }
}
