//! What happens to output when its budget is exhausted.

use std::fmt;
use std::str::FromStr;

/// An application's choice for when its budget runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Back-pressure: weir stops reading, the writer waits in `write()`,
    /// nothing is lost.
    Block,
    /// The writer never waits; whole lines over budget are discarded and
    /// counted, with a marker in the log when dropping stops.
    Drop,
    /// The writer never waits; up to `max_bytes` wait in memory and leave at
    /// the budgeted rate; on overflow the oldest whole lines are dropped.
    Ring { max_bytes: u64 },
}

/// Policy names by the code the node state stores them under.
const NAMES_BY_CODE: [&str; 3] = ["block", "drop", "ring"];

impl Policy {
    /// The number the node state keeps for this policy.
    pub fn code(&self) -> u64 {
        match self {
            Policy::Block => 0,
            Policy::Drop => 1,
            Policy::Ring { .. } => 2,
        }
    }

    /// The name for a code read from the node state (`?` if unknown).
    pub fn name_of_code(code: u64) -> &'static str {
        usize::try_from(code)
            .ok()
            .and_then(|i| NAMES_BY_CODE.get(i))
            .copied()
            .unwrap_or("?")
    }

    pub fn name(&self) -> &'static str {
        NAMES_BY_CODE[self.code() as usize]
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A policy name without its parameters, as written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    Block,
    Drop,
    Ring,
}

impl FromStr for PolicyKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "block" => Ok(PolicyKind::Block),
            "drop" => Ok(PolicyKind::Drop),
            "ring" => Ok(PolicyKind::Ring),
            other => Err(format!(
                "unknown policy {other:?} (use block, drop or ring)"
            )),
        }
    }
}
