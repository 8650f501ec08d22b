//! The OCI bundle conmon runs: a rootfs holding a static busybox and the
//! static writer, and the `config.json` that `runc spec` generates with two
//! edits (no terminal, the writer as the process).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// A bundle directory whose process arguments can be changed per workload.
pub struct Bundle {
    pub dir: PathBuf,
    config: Value,
}

impl Bundle {
    /// Lays out `dir/rootfs` and `dir/config.json`.
    pub fn create(
        dir: &Path,
        runc: &Path,
        busybox: &Path,
        writer: &Path,
    ) -> Result<Bundle, String> {
        let bin = dir.join("rootfs/bin");
        std::fs::create_dir_all(&bin)
            .map_err(|e| format!("cannot create {}: {e}", bin.display()))?;
        copy(busybox, &bin.join("busybox"))?;
        std::os::unix::fs::symlink("busybox", bin.join("sh"))
            .map_err(|e| format!("cannot link {}/sh: {e}", bin.display()))?;
        copy(writer, &dir.join("rootfs/writer"))?;

        let output = Command::new(runc)
            .arg("spec")
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {} spec: {e}", runc.display()))?;
        if !output.status.success() {
            return Err(format!(
                "{} spec failed: {}",
                runc.display(),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut config: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
        // conmon without -t hands runc pipes; runc refuses a terminal without
        // a console socket.
        config["process"]["terminal"] = Value::Bool(false);
        Ok(Bundle {
            dir: dir.to_owned(),
            config,
        })
    }

    /// Makes the container run `/writer ARGS…`.
    pub fn set_writer_args(&mut self, args: &[String]) -> Result<(), String> {
        let mut argv = vec![Value::from("/writer")];
        argv.extend(args.iter().map(|a| Value::from(a.as_str())));
        self.config["process"]["args"] = Value::Array(argv);
        let path = self.dir.join("config.json");
        let text = serde_json::to_string_pretty(&self.config).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::copy(from, to)
        .map(drop)
        .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
}

/// Whether `path` is a statically linked 64-bit little-endian ELF executable,
/// i.e. has no `PT_INTERP` program header naming a dynamic loader. A rootfs
/// with nothing but this binary cannot hold a loader or shared libraries.
pub fn is_static_elf(path: &Path) -> Result<bool, String> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(1 << 16).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let not_elf = || format!("{} is not a 64-bit little-endian ELF file", path.display());
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return Err(not_elf());
    }
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize;
    let phoff = u64::from_le_bytes(bytes[32..40].try_into().expect("8 bytes")) as usize;
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let p_type = bytes.get(at..at + 4).ok_or_else(not_elf)?;
        const PT_INTERP: [u8; 4] = 3u32.to_le_bytes();
        if p_type == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_executable_is_not_static() {
        // The test binary itself is dynamically linked on glibc targets.
        let me = std::env::current_exe().unwrap();
        assert_eq!(is_static_elf(&me), Ok(false));
        assert!(is_static_elf(Path::new("/proc/self/status")).is_err());
    }
}
