//! The budget and the policies, end to end: `block` loses nothing and holds
//! the writer back; `drop` never holds it back, drops whole lines, counts
//! them and marks them in the log.

use std::time::{Duration, Instant};

use crate::common::*;

/// Writes `count` numbered 100-byte lines as fast as it can, in 64 KiB
/// writes; an alarm fails it if it is held back for a minute.
const FAST_WRITER: &str = r#"
import os, signal, sys
signal.alarm(60)
count = int(sys.argv[1])
buf = bytearray()
for i in range(count):
    buf += b"seq %09d " % i + b"z" * 85 + b"\n"
    if len(buf) >= 65536:
        os.write(1, buf); buf = bytearray()
os.write(1, buf)
"#;

fn expected_line(i: usize) -> Vec<u8> {
    let mut line = format!("seq {i:09} ").into_bytes();
    line.extend([b'z'; 85]);
    line
}

fn fast_writer(count: usize) -> Vec<String> {
    let mut command = python(FAST_WRITER);
    command.push(count.to_string());
    command
}

#[test]
fn block_policy_loses_nothing_keeps_order_and_holds_the_writer_to_the_budget() {
    let dir = Scratch::new("gate-block");
    let log = dir.join("app.log");
    let lines = 6000; // 600 KB at 200 KiB/s with a 64 KiB burst: about 2.6 s
    let started = Instant::now();
    let result = run_weir(
        &[
            "--log-path",
            log.to_str().unwrap(),
            "--rate",
            "200KiB/s",
            "--burst",
            "64KiB",
            "--policy",
            "block",
        ],
        &strs(&fast_writer(lines)),
    );
    let elapsed = started.elapsed();
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    result.assert_balanced();
    assert_eq!(result.count("stdout", &["written", "lines"]), lines as u64);
    let records = read_cri(&log);
    let expected: Vec<u8> = (0..lines)
        .flat_map(|i| [expected_line(i), b"\n".to_vec()].concat())
        .collect();
    assert_same_bytes(&reassemble(&records, "stdout"), &expected, "blocked output");
    // The budget held the writer back: no faster than burst + rate × time.
    let floor = Duration::from_secs_f64((600_000.0 - 65536.0) / 204_800.0);
    assert!(
        elapsed >= floor.mul_f64(0.95),
        "600 KB passed in {elapsed:?}, faster than the budget allows ({floor:?})"
    );
}

#[test]
fn drop_policy_never_holds_the_writer_and_accounts_for_every_dropped_line() {
    let dir = Scratch::new("gate-drop");
    let log = dir.join("app.log");
    // 20 MB against 100 KiB/s: held to the budget this would take over three
    // minutes, beyond the writer's one-minute alarm.
    let lines = 200_000;
    let result = run_weir(
        &[
            "--log-path",
            log.to_str().unwrap(),
            "--rate",
            "100KiB/s",
            "--policy",
            "drop",
        ],
        &strs(&fast_writer(lines)),
    );
    assert_eq!(
        result.code,
        Some(0),
        "the writer was held back: {}",
        result.stderr
    );
    result.assert_balanced();
    let kept = check_whole_line_drops(
        &result,
        &log,
        "rate_limit",
        "rate limit (container 100KiB/s)",
        lines,
    );
    assert_eq!(
        kept.len() as u64,
        result.count("stdout", &["written", "lines"])
    );
}

/// For a fast writer of `lines` numbered lines under drop or ring: checks
/// that something was dropped for `reason`, only whole lines, that markers
/// ending in `marker_end` state every drop, and that kept and dropped lines
/// add up. Returns the sequence numbers kept.
fn check_whole_line_drops(
    result: &RunResult,
    log: &std::path::Path,
    reason: &str,
    marker_end: &str,
    lines: usize,
) -> Vec<usize> {
    let dropped_lines = result.count("stdout", &["dropped", reason, "lines"]);
    let dropped_bytes = result.count("stdout", &["dropped", reason, "bytes"]);
    assert!(dropped_lines > 0, "{}", result.summary);
    assert_eq!(
        dropped_bytes,
        dropped_lines * 100,
        "only whole lines are dropped"
    );
    let kept = check_kept_lines_and_markers(log, marker_end, (dropped_lines, dropped_bytes));
    assert_eq!(kept.len() as u64 + dropped_lines, lines as u64);
    kept
}

/// Checks that the log holds whole lines in the order written, and markers
/// ending in `reason` that state exactly `dropped` (lines, bytes). Returns the
/// sequence numbers kept.
fn check_kept_lines_and_markers(
    log: &std::path::Path,
    reason: &str,
    dropped: (u64, u64),
) -> Vec<usize> {
    let mut kept = Vec::new();
    let (mut marked_lines, mut marked_bytes) = (0u64, 0u64);
    for record in read_cri(log) {
        assert_eq!(
            record.tag,
            weir_monitor::framing::Tag::Full,
            "no line is cut"
        );
        let text = String::from_utf8(record.content).unwrap();
        if let Some(rest) = text.strip_prefix("weir: dropped ") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            marked_lines += words[0].parse::<u64>().unwrap();
            marked_bytes += words[2].trim_start_matches('(').parse::<u64>().unwrap();
            assert!(text.ends_with(reason), "{text}");
            continue;
        }
        let seq: usize = text[4..13].parse().unwrap();
        assert!(
            kept.last().is_none_or(|last| seq > *last),
            "line {seq} came out of order"
        );
        assert_eq!(text.as_bytes(), expected_line(seq).as_slice());
        kept.push(seq);
    }
    assert_eq!(
        (marked_lines, marked_bytes),
        dropped,
        "markers state every drop"
    );
    kept
}

#[test]
fn ring_policy_never_holds_the_writer_and_keeps_the_newest_output() {
    let dir = Scratch::new("gate-ring");
    let log = dir.join("app.log");
    let lines = 200_000;
    let result = run_weir(
        &[
            "--log-path",
            log.to_str().unwrap(),
            "--rate",
            "100KiB/s",
            "--policy",
            "ring",
            "--ring-size",
            "64KiB",
        ],
        &strs(&fast_writer(lines)),
    );
    assert_eq!(
        result.code,
        Some(0),
        "the writer was held back: {}",
        result.stderr
    );
    result.assert_balanced();
    let kept = check_whole_line_drops(
        &result,
        &log,
        "ring_overflow",
        "ring overflow (ring 64KiB, container 100KiB/s)",
        lines,
    );
    // The ring drops the oldest: the newest lines were drained at exit.
    assert_eq!(
        kept.last(),
        Some(&(lines - 1)),
        "the last line written is in the log"
    );
    let tail = &kept[kept.len() - 100..];
    assert!(
        tail.windows(2).all(|w| w[1] == w[0] + 1),
        "the newest lines are kept contiguous"
    );
}

/// Writes `bursts` bursts of `per_burst` numbered 100-byte lines in 64 KiB
/// writes, pausing `pause` seconds after each.
const BURSTY_WRITER: &str = r#"
import os, sys, time
bursts, per_burst, pause = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
i = 0
for _ in range(bursts):
    buf = bytearray()
    for _ in range(per_burst):
        buf += b"seq %09d " % i + b"z" * 85 + b"\n"
        i += 1
        if len(buf) >= 65536:
            os.write(1, buf); buf = bytearray()
    os.write(1, buf)
    time.sleep(pause)
"#;

#[test]
fn ring_passes_and_holds_in_turn_keeping_every_line_in_order() {
    // Each burst of 300 KB starts within the budget's 100 KiB burst and so
    // goes straight to the file; the rest waits in the ring and drains in the
    // pause, after which the next burst goes straight through again.
    let dir = Scratch::new("gate-ring-bursts");
    let log = dir.join("app.log");
    let (bursts, per_burst) = (4, 3000);
    let mut command = python(BURSTY_WRITER);
    command.extend([bursts.to_string(), per_burst.to_string(), "0.4".into()]);
    let result = run_weir(
        &[
            "--log-path",
            log.to_str().unwrap(),
            "--rate",
            "1MiB/s",
            "--policy",
            "ring",
            "--ring-size",
            "4MiB",
        ],
        &strs(&command),
    );
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    result.assert_balanced();
    assert_eq!(
        result.count("stdout", &["dropped", "ring_overflow", "lines"]),
        0,
        "the ring is large enough for a burst: {}",
        result.summary
    );
    let kept = check_kept_lines_and_markers(&log, "", (0, 0));
    assert_eq!(
        kept,
        (0..bursts * per_burst).collect::<Vec<_>>(),
        "every line, in order"
    );
}

#[test]
fn a_writer_within_its_budget_loses_nothing_under_drop() {
    let dir = Scratch::new("gate-within");
    let log = dir.join("app.log");
    let result = run_weir(
        &[
            "--log-path",
            log.to_str().unwrap(),
            "--rate",
            "10MiB/s",
            "--policy",
            "drop",
        ],
        &strs(&fast_writer(5000)),
    );
    result.assert_balanced();
    assert_eq!(
        result.count("stdout", &["dropped", "rate_limit", "lines"]),
        0
    );
    assert_eq!(result.count("stdout", &["written", "lines"]), 5000);
}

#[test]
fn the_gate_file_refuses_what_it_does_not_allow_naming_the_rule() {
    let dir = Scratch::new("gate-file");
    let gate = dir.join("gate.toml");
    std::fs::write(
        &gate,
        "[container]\nrate = \"1MiB/s\"\npolicy = \"block\"\nallow = [\"drop\"]\n",
    )
    .unwrap();
    let log = dir.join("app.log");
    let refused = weir_command(
        &[
            "--log-path",
            log.to_str().unwrap(),
            "--gate-config",
            gate.to_str().unwrap(),
            "--policy",
            "ring",
        ],
        &["true"],
    )
    .output()
    .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("container.allow") && stderr.contains(gate.to_str().unwrap()),
        "{stderr}"
    );

    // The same request with --policy-fallback runs under the SRE's default, with a warning.
    let fallback = run_weir(
        &[
            "--log-path",
            log.to_str().unwrap(),
            "--gate-config",
            gate.to_str().unwrap(),
            "--policy",
            "ring",
            "--policy-fallback",
        ],
        &["sh", "-c", "echo fine"],
    );
    assert_eq!(fallback.code, Some(0));
    assert!(
        fallback.stderr.contains("falling back"),
        "{}",
        fallback.stderr
    );

    // A bad value names the key and the value.
    std::fs::write(&gate, "[container]\nrate = \"quick\"\n").unwrap();
    let bad = weir_command(&["--log-path", log.to_str().unwrap()], &["true"])
        .env("WEIR_GATE_CONFIG", &gate)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("container.rate = \"quick\""), "{stderr}");
}

#[test]
fn per_stream_budgets_limit_each_stream_separately() {
    let dir = Scratch::new("gate-streams");
    let gate = dir.join("gate.toml");
    std::fs::write(
        &gate,
        "[container]\npolicy = \"drop\"\n[stream]\nstdout = \"100MiB/s\"\nstderr = \"10KiB/s\"\n",
    )
    .unwrap();
    let log = dir.join("app.log");
    let script = "import os\nfor i in range(2000):\n    os.write(1, b'o' * 99 + b'\\n')\n    os.write(2, b'e' * 99 + b'\\n')\n";
    let result = run_weir(
        &[
            "--log-path",
            log.to_str().unwrap(),
            "--gate-config",
            gate.to_str().unwrap(),
        ],
        &strs(&python(script)),
    );
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    result.assert_balanced();
    assert_eq!(
        result.count("stdout", &["dropped", "rate_limit", "lines"]),
        0,
        "{}",
        result.summary
    );
    assert!(
        result.count("stderr", &["dropped", "rate_limit", "lines"]) > 0,
        "{}",
        result.summary
    );
    let markers = read_cri(&log)
        .into_iter()
        .filter(|r| r.content.starts_with(b"weir: dropped"))
        .map(|r| (r.stream, String::from_utf8(r.content).unwrap()))
        .collect::<Vec<_>>();
    assert!(
        !markers.is_empty()
            && markers
                .iter()
                .all(|(s, m)| s == "stderr" && m.ends_with("(stderr 10KiB/s)")),
        "{markers:?}"
    );
}

#[test]
fn ring_keeps_what_follows_a_line_larger_than_the_ring() {
    let dir = Scratch::new("gate-ring-big-line");
    let log = dir.join("app.log");
    // A 64 KB line, arriving in pieces, cannot fit an 8 KiB ring and goes
    // whole, its end included; the short lines after it, each in a read of
    // its own, must all be kept.
    let script = "import os, time\nfor _ in range(8):\n    os.write(1, b'x' * 8192)\n    time.sleep(0.03)\n\
                  os.write(1, b'\\n')\ntime.sleep(0.3)\n\
                  for i in range(5):\n    os.write(1, b'after %d\\n' % i)\n    time.sleep(0.05)\n";
    let result = run_weir(
        &[
            "--log-path",
            log.to_str().unwrap(),
            "--rate",
            "1KiB/s",
            "--policy",
            "ring",
            "--ring-size",
            "8KiB",
        ],
        &strs(&python(script)),
    );
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    result.assert_balanced();
    assert_eq!(
        result.count("stdout", &["dropped", "ring_overflow", "lines"]),
        1,
        "{}",
        result.summary
    );
    assert_eq!(
        result.count("stdout", &["dropped", "ring_overflow", "bytes"]),
        65537
    );
    let kept: Vec<String> = read_cri(&log)
        .into_iter()
        .map(|r| String::from_utf8(r.content).unwrap())
        .filter(|c| !c.starts_with("weir: "))
        .collect();
    assert_eq!(
        kept,
        (0..5).map(|i| format!("after {i}")).collect::<Vec<_>>()
    );
}

#[test]
fn block_at_the_drain_timeout_counts_what_is_left_in_the_pipe() {
    let dir = Scratch::new("gate-block-drain");
    let log = dir.join("app.log");
    // 200 KB fit in the pipe at once, so the writer exits at once; at
    // 10 KiB/s the budget lets a fraction through before the drain timeout.
    let result = run_weir(
        &[
            "--log-path",
            log.to_str().unwrap(),
            "--rate",
            "10KiB/s",
            "--policy",
            "block",
            "--drain-timeout",
            "500ms",
        ],
        &strs(&fast_writer(2000)),
    );
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    assert_eq!(result.summary["drain"]["timed_out"], true);
    result.assert_balanced();
    // Every byte the writer wrote is accounted for: stored or dropped.
    assert_eq!(
        result.count("stdout", &["read", "bytes"]),
        200_000,
        "{}",
        result.summary
    );
    let dropped = result.count("stdout", &["dropped", "rate_limit", "bytes"]);
    assert!(
        dropped > 0 && dropped % 100 == 0,
        "whole lines dropped: {}",
        result.summary
    );
}

#[test]
fn drop_marks_the_drops_when_the_writer_goes_quiet() {
    let dir = Scratch::new("gate-drop-quiet");
    let log = dir.join("app.log");
    // The burst in one write, far over the budget however slowly it runs;
    // then a quiet spell well past the second the marker waits for.
    let script = "import os, time\n\
                  os.write(1, b''.join(b'burst %05d\\n' % i for i in range(300)))\n\
                  time.sleep(4)\nos.write(1, b'late\\n')\n";
    let result = run_weir(
        &[
            "--log-path",
            log.to_str().unwrap(),
            "--rate",
            "1KiB/s",
            "--burst",
            "1KiB",
            "--policy",
            "drop",
        ],
        &strs(&python(script)),
    );
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    result.assert_balanced();
    assert!(
        result.count("stdout", &["dropped", "rate_limit", "lines"]) > 0,
        "{}",
        result.summary
    );
    let text = std::fs::read(&log).unwrap();
    let mut marker_time = None;
    let mut late_time = None;
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let record = weir_monitor::format::cri::parse_line(line).unwrap();
        if record.content.starts_with(b"weir: dropped") {
            marker_time = Some(record.time);
        } else if record.content == b"late" {
            late_time = Some(record.time);
        }
    }
    let (marker, late) = (
        marker_time.expect("a marker"),
        late_time.expect("the late line"),
    );
    // The marker was written during the quiet spell, not with the late line.
    assert!(
        late.as_nanos() - marker.as_nanos() > 1_000_000_000,
        "marker {marker}, late line {late}"
    );
}
