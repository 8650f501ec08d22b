//! Rotation loses nothing within `--log-max-files` and reports exactly what
//! it deletes.

use std::path::PathBuf;

use crate::common::*;

/// Writes numbered 100-byte lines as fast as Python can, with no pause.
const NUMBERED_WRITER: &str = r#"
import os, sys
count = int(sys.argv[1])
buf = bytearray()
for i in range(count):
    buf += b"line %09d " % i + b"x" * 84 + b"\n"
    if len(buf) >= 65536:
        os.write(1, buf); buf = bytearray()
os.write(1, buf)
"#;

fn numbered(count: usize) -> Vec<u8> {
    (0..count)
        .flat_map(|i| {
            let mut line = format!("line {i:09} ").into_bytes();
            line.extend([b'x'; 84]);
            line.push(b'\n');
            line
        })
        .collect()
}

fn check_rotation(compress: bool) {
    let dir = Scratch::new(if compress { "rotate-gz" } else { "rotate" });
    let log = dir.join("ctr.log");
    let lines = 60_000; // 6 MB of application output, ~8.4 MB of CRI
    let mut args = vec![
        "--log-path",
        log.to_str().unwrap(),
        "--log-max-size",
        "512KiB",
        "--log-max-files",
        "4",
    ];
    if compress {
        args.push("--log-compress");
    }
    let mut command = python(NUMBERED_WRITER);
    command.push(lines.to_string());
    let result = run_weir(&args, &strs(&command));
    assert_eq!(result.code, Some(0), "stderr: {}", result.stderr);
    result.assert_balanced();
    let expected = numbered(lines);
    assert_eq!(
        result.count("stdout", &["written", "bytes"]),
        expected.len() as u64
    );

    // The files kept, oldest first.
    let mut kept: Vec<PathBuf> = result.summary["files"]["rotated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| PathBuf::from(p.as_str().unwrap()))
        .collect();
    assert_eq!(
        kept.len(),
        3,
        "--log-max-files 4 keeps 3 rotated files besides the live one"
    );
    kept.reverse();
    kept.push(log.clone());
    let mut tail = Vec::new();
    for path in &kept {
        assert!(path.exists(), "{} is listed but missing", path.display());
        assert_eq!(
            path.extension().is_some_and(|e| e == "gz"),
            compress && *path != log,
            "{}",
            path.display()
        );
        if !compress || *path == log {
            let size = std::fs::metadata(path).unwrap().len();
            assert!(
                size <= 512 << 10,
                "{} holds {size} bytes, over --log-max-size",
                path.display()
            );
        }
        tail.extend(reassemble(&read_cri(path), "stdout"));
    }
    // What is kept is exactly the end of what was written...
    assert!(
        tail.len() < expected.len(),
        "something must have been rotated away"
    );
    assert_same_bytes(
        &tail,
        &expected[expected.len() - tail.len()..],
        "kept files",
    );
    // ...and what is gone is exactly what rotation reports as deleted.
    let deleted = result.count("stdout", &["deleted", "rotation", "bytes"]);
    assert_eq!(deleted + tail.len() as u64, expected.len() as u64);
    let deleted_files = result.summary["files"]["deleted"].as_array().unwrap();
    let listed: u64 = deleted_files
        .iter()
        .map(|f| f["stdout"]["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(listed, deleted);
    assert!(deleted_files.iter().all(|f| f["reason"] == "rotation"));
    // No compressor leftovers.
    for entry in std::fs::read_dir(&dir.path).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            !name.contains("gz-tmp"),
            "temporary file {name} left behind"
        );
    }
}

#[test]
fn rotation_under_load_keeps_a_contiguous_tail_and_reports_deletions() {
    check_rotation(false);
}

#[test]
fn compressed_rotation_keeps_a_contiguous_tail_and_reports_deletions() {
    check_rotation(true);
}

#[test]
fn a_log_path_that_is_not_a_regular_file_is_never_rotated() {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;
    let dir = Scratch::new("rotate-fifo");
    let fifo = dir.join("ctr.log");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("running mkfifo");
    assert!(made.success());
    // The other end of the FIFO: everything weir writes into it.
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            std::fs::File::open(&fifo)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .expect("reading the FIFO");
            bytes
        })
    };
    let lines = 20_000;
    let result = run_weir(
        &[
            "--log-path",
            fifo.to_str().unwrap(),
            "--log-max-size",
            "4KiB",
        ],
        &strs(&python_lines(lines)),
    );
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    result.assert_balanced();
    assert!(
        result.stderr.contains("is not a regular file"),
        "{}",
        result.stderr
    );
    let meta = std::fs::symlink_metadata(&fifo).expect("the FIFO is still there");
    assert!(meta.file_type().is_fifo(), "the FIFO was not renamed away");
    assert!(!numbered_path(&fifo, 1).exists(), "nothing was rotated");
    let received = reader.join().expect("the FIFO reader");
    let records = received.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    assert_eq!(records.count(), lines, "every line went into the FIFO");
}

fn python_lines(count: usize) -> Vec<String> {
    let mut command = python(NUMBERED_WRITER);
    command.push(count.to_string());
    command
}

fn numbered_path(live: &std::path::Path, n: usize) -> PathBuf {
    let mut name = live.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}
