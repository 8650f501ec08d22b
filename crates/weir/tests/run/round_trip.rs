//! What the application wrote is what the log holds, byte for byte.

use std::fs;

use serde_json::Value;

use crate::common::*;

/// Writes lines of the interesting sizes around `max_line`, and 1 MiB, with
/// random bytes (NUL, `\r`, invalid UTF-8), alternating stdout and stderr,
/// in random pieces with occasional pauses mid-line; saves a copy of each
/// stream as written.
const INTERLEAVED_WRITER: &str = r#"
import os, random, sys, time
out_dir, max_line = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
sizes = [0, 1, max_line - 1, max_line, max_line + 1, 2 * max_line, 2 * max_line + 1, 1 << 20]
written = {1: bytearray(), 2: bytearray()}
def emit(fd, data):
    pos = 0
    while pos < len(data):
        step = rng.choice([1, 7, 100, 4096, 70000])
        piece = data[pos:pos + step]
        while piece:
            n = os.write(fd, piece)
            piece = piece[n:]
        pos += step
        if rng.random() < 0.01:
            time.sleep(0.03)
    written[fd] += data
for rep in range(2):
    for size in sizes:
        for fd in (1, 2):
            line = os.urandom(size).replace(b"\n", b"\x00")
            emit(fd, line + b"\n")
# A line of exactly max_line bytes in one write: no pause of the writer's
# (or of a loaded machine's) can make weir flush half of it as a partial.
whole = b"w" * max_line + b"\n"
while whole:
    n = os.write(1, whole)
    written[1] += whole[:n]
    whole = whole[n:]
emit(1, b"binary \r\x00\xff\xfe end\n")
emit(2, b"mid-line pause")
time.sleep(0.05)
emit(2, b" then the rest\n")
emit(1, b"last line without newline \xc3\x28")
for fd in (1, 2):
    with open(os.path.join(out_dir, "expected.%d" % fd), "wb") as f:
        f.write(written[fd])
"#;

#[test]
fn interleaved_streams_round_trip_byte_exact() {
    let dir = Scratch::new("round-trip");
    let log = dir.join("app.log");
    let dir_arg = dir.path.to_str().unwrap().to_owned();
    let mut command = python(INTERLEAVED_WRITER);
    command.extend([dir_arg, "16384".to_owned()]);
    let result = run_weir(&["--log-path", log.to_str().unwrap()], &strs(&command));
    assert_eq!(result.code, Some(0), "stderr: {}", result.stderr);
    result.assert_balanced();

    let records = read_cri(&log);
    for (stream, fd) in [("stdout", 1), ("stderr", 2)] {
        let expected =
            fs::read(dir.join(&format!("expected.{fd}"))).expect("writer saved its output");
        assert_same_bytes(
            &reassemble(&records, stream),
            &as_reassembled(&expected),
            stream,
        );
        assert_eq!(
            result.count(stream, &["read", "bytes"]),
            expected.len() as u64
        );
        assert_eq!(
            result.count(stream, &["written", "bytes"]),
            expected.len() as u64
        );
        let lines = expected.iter().filter(|b| **b == b'\n').count() as u64
            + u64::from(!expected.ends_with(b"\n"));
        assert_eq!(result.count(stream, &["written", "lines"]), lines);
    }
    for record in &records {
        assert!(record.content.len() <= 16384, "a record exceeds --max-line");
    }
    // Every byte of the file is either the application's or weir's framing.
    let stored: u64 = ["stdout", "stderr"]
        .iter()
        .map(|s| result.count(s, &["written", "bytes"]) + result.count(s, &["overhead_bytes"]))
        .sum();
    assert_eq!(stored, fs::metadata(&log).unwrap().len());
    // A line of exactly max-line bytes, written at once, is one F record.
    let stdout: Vec<_> = records.iter().filter(|r| r.stream == "stdout").collect();
    assert!(
        stdout
            .iter()
            .any(|r| r.content.len() == 16384 && r.tag == weir_monitor::framing::Tag::Full)
    );
}

#[test]
fn small_max_line_splits_every_line_into_fragments() {
    let dir = Scratch::new("max-line");
    let log = dir.join("app.log");
    let script = "import sys\nsys.stdout.write('abcdefghij\\n' * 3 + 'abc\\n')";
    let result = run_weir(
        &["--log-path", log.to_str().unwrap(), "--max-line", "4"],
        &strs(&python(script)),
    );
    result.assert_balanced();
    let records = read_cri(&log);
    let shape: Vec<(char, String)> = records
        .iter()
        .take(4)
        .map(|r| {
            (
                r.tag.as_byte() as char,
                String::from_utf8_lossy(&r.content).into_owned(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [('P', "abcd"), ('P', "efgh"), ('F', "ij"), ('P', "abcd")].map(|(t, c)| (t, c.to_owned()))
    );
    assert_eq!(
        reassemble(&records, "stdout"),
        "abcdefghij\n"
            .repeat(3)
            .into_bytes()
            .into_iter()
            .chain(*b"abc\n")
            .collect::<Vec<_>>()
    );
}

#[test]
fn json_file_format_holds_docker_objects() {
    let dir = Scratch::new("json");
    let log = dir.join("app.log");
    let script = r#"
import sys
sys.stdout.write('plain\n')
sys.stderr.write('quote " backslash \\ tab \t café ✓\n')
sys.stdout.write('unterminated')
"#;
    let result = run_weir(
        &["--log-path", log.to_str().unwrap(), "--log-format", "json"],
        &strs(&python(script)),
    );
    result.assert_balanced();
    let text = fs::read_to_string(&log).unwrap();
    let objects: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let log_of = |stream: &str| -> String {
        objects
            .iter()
            .filter(|o| o["stream"] == stream)
            .map(|o| o["log"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(log_of("stdout"), "plain\nunterminated");
    assert_eq!(log_of("stderr"), "quote \" backslash \\ tab \t café ✓\n");
    for object in &objects {
        let time = object["time"].as_str().unwrap();
        weir_monitor::format::Timestamp::parse_rfc3339(time.as_bytes()).expect("time is RFC 3339");
    }
}
