//! Damaged disk buffers: bytes flipped in a segment and a segment cut
//! short. The agent starts anyway, says what it cut, counts it, and
//! delivers the rest.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;

fn agent_config(dir: &Scratch, log: &std::path::Path, port: u16, api: u16) -> String {
    let uri = format!("http://127.0.0.1:{port}/x");
    config(
        &dir.join("data"),
        Some(api),
        &(tail_source(log.to_str().unwrap())
            + &http_sink(
                "app",
                &uri,
                "buffer = { type = \"disk\", fsync = \"never\", segment_size = \"256KiB\" }",
            )),
    )
}

#[test]
fn a_damaged_disk_buffer_is_cut_counted_and_the_rest_delivered() {
    let dir = Scratch::new("corruption");
    let log = dir.join("app.log");
    let total = 40_000;
    let lines: String = (0..total).map(line).collect();
    std::fs::write(&log, &lines).unwrap();
    // The destination is down: everything stays in the disk buffer.
    let down = HeldPort::new();
    let port = down.port;
    let first_api = free_port();
    let agent = Agent::start(&dir, &agent_config(&dir, &log, port, first_api));
    let buffer = dir.join("data/buffers/out");
    // Every line read into the disk buffer; its checkpoint, stored as soon
    // as it moves, follows within a turn of the source's loop.
    wait_for(
        Duration::from_secs(30),
        "the buffer to hold every line",
        || {
            const READ: &str = "weir_source_records_total{source=\"app\",lane=\"out\"}";
            std::net::TcpStream::connect(("127.0.0.1", first_api)).is_ok()
                && get(first_api, "/metrics")
                    .1
                    .lines()
                    .find_map(|l| l.strip_prefix(READ)?.trim().parse::<f64>().ok())
                    .is_some_and(|read| read >= total as f64)
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    agent.kill();
    let mut segments: Vec<_> = std::fs::read_dir(&buffer)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segments.sort();
    let with_records: Vec<_> = segments
        .iter()
        .filter(|p| std::fs::metadata(p).unwrap().len() > 1000)
        .collect();
    assert!(with_records.len() >= 3, "{} segments", with_records.len());
    // Flip a byte in the middle of a segment that has another after it: the
    // records lost are known from where the next one starts.
    let victim = with_records[0];
    let mut bytes = std::fs::read(victim).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(victim, &bytes).unwrap();
    let verify = std::process::Command::new(WEIR)
        .args(["buffer", "verify"])
        .arg(&buffer)
        .output()
        .unwrap();
    assert_eq!(verify.status.code(), Some(1), "verify finds the damage");
    assert!(String::from_utf8_lossy(&verify.stdout).contains("checksum mismatch"));
    // Now the destination is up.
    let receiver = down.receive(Arc::new(|_| Answer::Accept));
    let api = free_port();
    let agent = Agent::start(&dir, &agent_config(&dir, &log, port, api));
    const CUT: &str = "weir_dropped_records_total{sink=\"out\",reason=\"buffer_damaged\"}";
    let cut_so_far = || metric(&get(api, "/metrics").1, CUT);
    wait_for(Duration::from_secs(30), "the undamaged records", || {
        let got = distinct(&accepted(&receiver)).len() as f64;
        got > 0.0 && got + cut_so_far() >= total as f64
    });
    let cut = cut_so_far();
    let said = agent.said();
    let (code, _) = agent.stop();
    assert_eq!(code, Some(0));
    assert!(
        said.contains("cut ") && said.contains("damaged bytes"),
        "{said}"
    );
    let unique = distinct(&accepted(&receiver));
    assert!(cut > 0.0, "the damage was counted");
    assert_eq!(
        unique.len() as f64 + cut,
        total as f64,
        "delivered + cut = written"
    );
    assert!(unique.windows(2).all(|w| w[0] < w[1]));
}
