//! Builds the benchmark's writer from the C source embedded in weir.
//!
//! The writer is C, compiled statically at bench time, because one and the
//! same binary must run directly under `cat` and `weir run` and inside an
//! OCI rootfs under conmon, and must cost the same everywhere.

use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCE: &str = include_str!("writer.c");

/// Writes `writer.c` into `dir` and compiles it to `dir/writer` with
/// `cc -O2 -static`.
pub fn build(dir: &Path) -> Result<PathBuf, String> {
    let source = dir.join("writer.c");
    let binary = dir.join("writer");
    std::fs::write(&source, SOURCE)
        .map_err(|e| format!("cannot write {}: {e}", source.display()))?;
    let output = Command::new("cc")
        .args(["-O2", "-static", "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .map_err(|e| {
            format!("cannot run cc ({e}); install a C compiler: apt-get install gcc libc6-dev")
        })?;
    if !output.status.success() {
        return Err(format!(
            "cc -O2 -static failed (a static libc is needed: apt-get install gcc libc6-dev):\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(binary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::workload::CRI_HEAD_LEN;

    #[test]
    fn the_c_cri_head_is_as_long_as_weirs_record_head() {
        let start = SOURCE.find("#define CRI_HEAD \"").unwrap() + "#define CRI_HEAD \"".len();
        let head = &SOURCE[start..start + SOURCE[start..].find('"').unwrap()];
        assert_eq!(head.len() as u64, CRI_HEAD_LEN, "{head:?}");
        assert!(head.ends_with(" stdout F "), "{head:?}");
    }
}
