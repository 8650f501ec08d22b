//! The destination is down for a minute while lines keep coming: when it
//! returns everything arrives, in order, and the agent's memory stayed
//! within its bound all along (the memory buffer blocks the source).

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;

/// Peak resident memory of a process, from /proc.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_minute_long_outage_loses_nothing_and_memory_stays_bounded() {
    let dir = Scratch::new("outage");
    // The destination is down: its port is held, and refuses.
    let down = HeldPort::new();
    let port = down.port;
    let log = dir.join("app.log");
    std::fs::write(&log, "").unwrap();
    let uri = format!("http://127.0.0.1:{port}/ingest");
    let config = config(
        &dir.join("data"),
        None,
        &(tail_source(log.to_str().unwrap())
            + &http_sink(
                "app",
                &uri,
                "buffer = { type = \"memory\", max_size = \"4MiB\", when_full = \"block\" }",
            )),
    );
    let agent = Agent::start(&dir, &config);
    // 24 MB of lines over the minute: six times what the buffer may hold.
    let total = 400_000;
    let started = Instant::now();
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let per_round = total / 60;
    let mut written = 0;
    while written < total {
        let end = (written + per_round).min(total);
        let chunk: String = (written..end).map(line).collect();
        file.write_all(chunk.as_bytes()).unwrap();
        written = end;
        std::thread::sleep(Duration::from_secs(1).saturating_sub(Duration::from_millis(50)));
    }
    let outage = Duration::from_secs(60);
    std::thread::sleep(outage.saturating_sub(started.elapsed()));
    let rss_during = peak_rss_kib(agent.child.id());
    let receiver = down.receive(Arc::new(|_| Answer::Accept));
    wait_for_all(&receiver, total, Duration::from_secs(120), &agent);
    let rss_after = peak_rss_kib(agent.child.id());
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(
        accepted(&receiver),
        (0..total).collect::<Vec<_>>(),
        "everything, in order, once"
    );
    // The buffer holds at most 4 MiB; the rest of the agent, about 10 MiB.
    eprintln!("peak RSS {rss_during} KiB during the outage, {rss_after} KiB by the end");
    assert!(
        rss_during < 32 << 10,
        "peak RSS {rss_during} KiB during the outage"
    );
}
