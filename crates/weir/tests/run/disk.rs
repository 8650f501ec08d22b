//! A disk that fills up mid-run: the writer is never blocked, every byte is
//! accounted for, the loss is marked in the log and capture resumes when
//! space returns. Needs root for a small tmpfs; skips with a reason otherwise.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not running as root, cannot mount a tmpfs".into());
        }
        fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Phase 1 writes far more than the disk holds, then waits until space is
/// freed and writes phase 2. An alarm kills the writer if a write ever blocks
/// for long, which would fail the run.
const FILLING_WRITER: &str = r#"
import os, signal, sys, time
phase1_done, space_freed = sys.argv[1], sys.argv[2]
signal.alarm(60)
for i in range(30000):
    os.write(1, b"phase1 %06d " % i + b"y" * 85 + b"\n")
os.write(2, b"stderr during the outage\n")
open(phase1_done, "w").close()
while not os.path.exists(space_freed):
    time.sleep(0.01)
for i in range(1000):
    os.write(1, b"phase2 %06d\n" % i)
"#;

#[test]
fn disk_full_never_blocks_the_writer_and_resumes_with_a_marker() {
    let dir = Scratch::new("disk-full");
    let mount_point = dir.join("mnt");
    let tmpfs = match Tmpfs::mount(&mount_point, "2m") {
        Ok(tmpfs) => tmpfs,
        Err(reason) => {
            eprintln!(
                "SKIPPED disk_full_never_blocks_the_writer_and_resumes_with_a_marker: {reason}"
            );
            return;
        }
    };
    let ballast = tmpfs.path.join("ballast");
    fs::write(&ballast, vec![0u8; 1 << 20]).unwrap();
    let log = tmpfs.path.join("logs/app.log");
    let (phase1_done, space_freed) = (dir.join("phase1-done"), dir.join("space-freed"));
    let mut command = python(FILLING_WRITER);
    command.extend([
        phase1_done.display().to_string(),
        space_freed.display().to_string(),
    ]);
    let weir = weir_command(&["--log-path", log.to_str().unwrap()], &strs(&command))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    while !phase1_done.exists() {
        assert!(
            Instant::now() < deadline,
            "the writer did not finish phase 1: was it blocked?"
        );
        thread::sleep(Duration::from_millis(10));
    }
    // Give weir time to drain phase 1 into the full disk, then free space.
    thread::sleep(Duration::from_millis(500));
    fs::remove_file(&ballast).unwrap();
    fs::write(&space_freed, "").unwrap();
    let result = parse_output(weir.wait_with_output().unwrap());
    assert_eq!(result.code, Some(0), "the writer failed: {}", result.stderr);
    result.assert_balanced();

    let dropped_bytes = result.count("stdout", &["dropped", "disk", "bytes"]);
    let dropped_lines = result.count("stdout", &["dropped", "disk", "lines"]);
    assert!(
        dropped_bytes > 0,
        "the disk never filled: {}",
        result.summary
    );
    assert!(
        result.stderr.contains("cannot write"),
        "the operator was not told: {}",
        result.stderr
    );
    assert!(
        result.stderr.contains("writing") && result.stderr.contains("again"),
        "{}",
        result.stderr
    );

    let records = read_cri(&log);
    let stdout: Vec<&Parsed> = records.iter().filter(|r| r.stream == "stdout").collect();
    let marker_at = stdout
        .iter()
        .position(|r| r.content.starts_with(b"weir: "))
        .expect("a marker line states the loss");
    let marker = String::from_utf8_lossy(&stdout[marker_at].content).into_owned();
    assert!(
        marker.starts_with(&format!(
            "weir: {dropped_bytes} bytes in {dropped_lines} lines lost: disk full from "
        )),
        "{marker}"
    );
    // Phase 1 kept a whole-line prefix; after the marker comes all of phase 2.
    let before: Vec<&[u8]> = stdout[..marker_at]
        .iter()
        .map(|r| r.content.as_slice())
        .collect();
    for (i, line) in before.iter().enumerate() {
        assert!(
            line.starts_with(format!("phase1 {i:06} ").as_bytes()),
            "line {i}: {:?}",
            String::from_utf8_lossy(line)
        );
    }
    let after: Vec<String> = stdout[marker_at + 1..]
        .iter()
        .map(|r| String::from_utf8_lossy(&r.content).into_owned())
        .collect();
    let phase2: Vec<String> = (0..1000).map(|i| format!("phase2 {i:06}")).collect();
    assert_eq!(after, phase2);
    assert_eq!(
        result.count("stdout", &["written", "lines"]),
        (before.len() + after.len()) as u64
    );
    // Every byte of the file is the application's or weir's: framing and markers.
    let stored: u64 = ["stdout", "stderr"]
        .iter()
        .map(|s| result.count(s, &["written", "bytes"]) + result.count(s, &["overhead_bytes"]))
        .sum();
    assert_eq!(stored, fs::metadata(&log).unwrap().len());
    // Bytes: written + dropped = everything phase 1 and 2 wrote.
    let total = 30_000 * 100 + 1000 * 14;
    assert_eq!(result.count("stdout", &["read", "bytes"]), total);
}
