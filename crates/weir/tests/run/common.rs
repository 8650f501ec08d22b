//! Shared helpers: scratch directories, running weir, reading logs back.

#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use weir_monitor::format::cri;
use weir_monitor::framing::Tag;

pub const WEIR: &str = env!("CARGO_BIN_EXE_weir");

#[path = "../shared/scratch.rs"]
mod scratch;
pub use scratch::Scratch;

/// What a `weir run --summary` returned.
pub struct RunResult {
    pub code: Option<i32>,
    pub summary: Value,
    pub stderr: String,
}

impl RunResult {
    pub fn stream(&self, name: &str) -> &Value {
        &self.summary["streams"][name]
    }

    pub fn count(&self, stream: &str, path: &[&str]) -> u64 {
        let mut value = self.stream(stream);
        for key in path {
            value = &value[*key];
        }
        value
            .as_u64()
            .unwrap_or_else(|| panic!("{stream}.{path:?} missing in {}", self.summary))
    }

    /// Asserts read = written + dropped, to the byte and the line, per stream.
    pub fn assert_balanced(&self) {
        for stream in ["stdout", "stderr"] {
            for unit in ["bytes", "lines"] {
                let read = self.count(stream, &["read", unit]);
                let written = self.count(stream, &["written", unit]);
                let dropped: u64 = ["rate_limit", "ring_overflow", "disk"]
                    .iter()
                    .map(|reason| self.count(stream, &["dropped", reason, unit]))
                    .sum();
                assert_eq!(
                    read,
                    written + dropped,
                    "{stream} {unit}: read != written + dropped in {}",
                    self.summary
                );
            }
        }
    }
}

/// Runs `weir run --summary ARGS -- COMMAND` and parses the summary.
pub fn run_weir(args: &[&str], command: &[&str]) -> RunResult {
    let output = weir_command(args, command).output().expect("running weir");
    parse_output(output)
}

pub fn weir_command(args: &[&str], command: &[&str]) -> Command {
    let mut cmd = Command::new(WEIR);
    cmd.arg("run")
        .arg("--summary")
        .args(args)
        .arg("--")
        .args(command);
    cmd.stdin(Stdio::null());
    cmd
}

pub fn parse_output(output: Output) -> RunResult {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let summary: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("summary is not JSON ({e}): {stdout:?}; stderr: {stderr}"));
    RunResult {
        code: output.status.code(),
        summary,
        stderr,
    }
}

/// One record read back from a CRI file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub stream: String,
    pub tag: Tag,
    pub content: Vec<u8>,
}

/// Reads every record of a CRI file (gzip-compressed if its name ends in `.gz`).
pub fn read_cri(path: &Path) -> Vec<Parsed> {
    let mut bytes = Vec::new();
    let file = fs::File::open(path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::GzDecoder::new(file)
            .read_to_end(&mut bytes)
            .expect("gunzip");
    } else {
        { file }.read_to_end(&mut bytes).expect("reading the log");
    }
    assert!(
        bytes.is_empty() || bytes.ends_with(b"\n"),
        "{} ends with a torn record",
        path.display()
    );
    // Every CRI line has at least a prefix, so only the piece after the
    // last newline is empty.
    bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(i, line)| {
            let record = cri::parse_line(line).unwrap_or_else(|e| {
                panic!(
                    "{} line {}: {e}: {:?}",
                    path.display(),
                    i + 1,
                    String::from_utf8_lossy(line)
                )
            });
            Parsed {
                stream: String::from_utf8(record.stream.to_vec()).expect("stream name"),
                tag: record.tag,
                content: record.content.to_vec(),
            }
        })
        .collect()
}

/// Reassembles the bytes of `stream` from records: content, plus a newline
/// after every `F`.
pub fn reassemble(records: &[Parsed], stream: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for record in records.iter().filter(|r| r.stream == stream) {
        out.extend_from_slice(&record.content);
        if record.tag == Tag::Full {
            out.push(b'\n');
        }
    }
    out
}

/// What [`reassemble`] yields for a stream that wrote `written`: an
/// unterminated last line is closed by its `F`.
pub fn as_reassembled(written: &[u8]) -> Vec<u8> {
    let mut expected = written.to_vec();
    if !expected.is_empty() && !expected.ends_with(b"\n") {
        expected.push(b'\n');
    }
    expected
}

/// A Python program run as the captured command.
pub fn python(script: &str) -> Vec<String> {
    vec!["python3".into(), "-c".into(), script.into()]
}

pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Where a byte-compare first differs, for readable failures.
pub fn assert_same_bytes(got: &[u8], expected: &[u8], what: &str) {
    if got != expected {
        let at = got
            .iter()
            .zip(expected)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(expected.len()));
        panic!(
            "{what}: {} bytes read back, {} expected; first difference at byte {at}: got {:?}, expected {:?}",
            got.len(),
            expected.len(),
            &got[at..(at + 40).min(got.len())],
            &expected[at..(at + 40).min(expected.len())]
        );
    }
}
