//! Tailing: every line arrives once and in order, through rotation by
//! rename and by copy-truncate at a high rate, and a restart resumes from
//! the acknowledged checkpoint.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;

#[test]
fn a_restart_resumes_from_the_acknowledged_checkpoint() {
    let dir = Scratch::new("resume");
    let receiver = Receiver::start(Arc::new(|_| Answer::Accept)).unwrap();
    let log = dir.join("app.log");
    let first: String = (0..20_000).map(line).collect();
    fs::write(&log, &first).unwrap();
    let config = http_config(&dir.join("data"), log.to_str().unwrap(), &receiver, "");
    let agent = Agent::start(&dir, &config);
    wait_for(Duration::from_secs(30), "the first 20000 lines", || {
        accepted(&receiver).len() >= 20_000
    });
    // The checkpoint follows the acknowledgements, written at least once a
    // second; stopping writes it too.
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
    let checkpoint = newest_checkpoint(&dir.join("data/checkpoints/app.for-out.json"));
    assert!(
        checkpoint.contains(&format!("\"offset\": {}", first.len())),
        "{checkpoint}"
    );
    // Written while the agent was down: only these come after the restart.
    let mut file = OpenOptions::new().append(true).open(&log).unwrap();
    let more: String = (20_000..20_010).map(line).collect();
    file.write_all(more.as_bytes()).unwrap();
    let agent = Agent::start(&dir, &config);
    wait_for(Duration::from_secs(30), "the 10 new lines", || {
        accepted(&receiver).len() >= 20_010
    });
    std::thread::sleep(Duration::from_millis(300));
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(accepted(&receiver), (0..20_010).collect::<Vec<_>>());
}

#[test]
fn start_at_end_skips_only_what_was_there_at_the_very_first_start() {
    let dir = Scratch::new("start-at-end");
    let receiver = Receiver::start(Arc::new(|_| Answer::Accept)).unwrap();
    let old = dir.join("old.log");
    fs::write(&old, (0..100).map(line).collect::<String>()).unwrap();
    let pattern = dir.join("*.log");
    let config = http_config(&dir.join("data"), pattern.to_str().unwrap(), &receiver, "")
        .replace("poll = \"50ms\"\n", "poll = \"50ms\"\nstart_at = \"end\"\n");
    let agent = Agent::start(&dir, &config);
    // The first scan placed the file at its end: only what comes after it
    // arrives. (Appended until it does, as the scan's moment is unknown.)
    let mut next = 100;
    wait_for(
        Duration::from_secs(30),
        "lines written after the start",
        || {
            append_lines(&old, next..next + 1);
            next += 1;
            !accepted(&receiver).is_empty()
        },
    );
    let first = accepted(&receiver)[0];
    assert!(first >= 100, "line {first} was there before the start");
    wait_for_all_from(&receiver, first, next);
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
    // While the agent is down, a new file appears and the old one grows:
    // a restart with checkpoints reads both, the new one from its start.
    fs::write(
        dir.join("new.log"),
        (1000..1050).map(line).collect::<String>(),
    )
    .unwrap();
    append_lines(&old, next..next + 10);
    let agent = Agent::start(&dir, &config);
    wait_for_all_from(&receiver, 1000, 1050);
    wait_for_all_from(&receiver, first, next + 10);
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
}

/// Waits until the receiver has accepted each line of `from..to`.
fn wait_for_all_from(receiver: &Receiver, from: usize, to: usize) {
    wait_for(
        Duration::from_secs(30),
        &format!("lines {from}..{to}"),
        || {
            let seen = distinct(&accepted(receiver));
            (from..to).all(|i| seen.binary_search(&i).is_ok())
        },
    );
}

/// The newer of a source's two checkpoint files (`NAME.0`, `NAME.1`), by the
/// generation in their last line.
fn newest_checkpoint(base: &std::path::Path) -> String {
    (0..2)
        .filter_map(|slot| fs::read_to_string(format!("{}.{slot}", base.display())).ok())
        .max_by_key(|text| {
            text.rsplit("generation=")
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .expect("a checkpoint file")
}

/// Writes `total` lines to `log`, rotating every `every` lines with
/// `rotate`, as fast as it can.
fn write_rotating(
    log: &std::path::Path,
    total: usize,
    every: usize,
    rotate: fn(&std::path::Path, usize),
) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut batch = String::new();
    for i in 0..total {
        batch.push_str(&line(i));
        if batch.len() > 16 << 10 {
            file.write_all(batch.as_bytes()).unwrap();
            batch.clear();
        }
        if (i + 1) % every == 0 {
            file.write_all(batch.as_bytes()).unwrap();
            batch.clear();
            rotate(log, (i + 1) / every);
            file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap();
        }
    }
    file.write_all(batch.as_bytes()).unwrap();
}

fn rotated_name(log: &std::path::Path, n: usize) -> std::path::PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(format!(".{n}"));
    name.into()
}

fn check_rotation(
    name: &str,
    pattern_suffix: &str,
    rotate: fn(&std::path::Path, usize),
    duplicates_allowed: bool,
) {
    let dir = Scratch::new(name);
    let receiver = Receiver::start(Arc::new(|_| Answer::Accept)).unwrap();
    let log = dir.join("app.log");
    fs::write(&log, "").unwrap();
    let pattern = format!("{}{pattern_suffix}", log.display());
    let agent = Agent::start(
        &dir,
        &http_config(&dir.join("data"), &pattern, &receiver, ""),
    );
    std::thread::sleep(Duration::from_millis(300));
    let total = 200_000;
    write_rotating(&log, total, 20_000, rotate);
    wait_for_all(&receiver, total, Duration::from_secs(90), &agent);
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
    let got = accepted(&receiver);
    let unique = distinct(&got);
    assert_eq!(unique, (0..total).collect::<Vec<_>>(), "no line lost");
    if !duplicates_allowed {
        assert_eq!(got.len(), total, "no line twice");
    }
}

#[test]
fn rotation_by_rename_at_a_high_rate_loses_no_line() {
    // The glob matches the rotated names too, as with any poller: a file
    // written and renamed away between two looks is found under its new name.
    check_rotation(
        "rename",
        "*",
        |log, n| fs::rename(log, rotated_name(log, n)).unwrap(),
        false,
    );
}

#[test]
fn rotation_by_copy_truncate_at_a_high_rate_loses_no_line() {
    // The copy matches the glob too: it is read on from where the original
    // was read to, so the lines not yet read when it was truncated are not
    // lost. What the original was read to after the copy was made and before
    // it was truncated is read twice (once from each), so lines may repeat.
    check_rotation(
        "copytruncate",
        "*",
        |log, n| {
            fs::copy(log, rotated_name(log, n)).unwrap();
            OpenOptions::new()
                .write(true)
                .open(log)
                .unwrap()
                .set_len(0)
                .unwrap();
        },
        true,
    );
}
