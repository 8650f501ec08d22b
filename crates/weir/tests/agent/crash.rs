//! kill -9 under load with a disk buffer: after each restart everything
//! acknowledged into the buffer is delivered, with no gap, and what is sent
//! twice is bounded by what was in flight at each kill.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;

#[test]
fn kill_9_with_a_disk_buffer_loses_nothing_and_duplicates_little() {
    let dir = Scratch::new("crash");
    // A slow receiver keeps records waiting in the buffer when the agent dies.
    let receiver = Receiver::start(Arc::new(|n| {
        if n % 3 == 0 {
            Answer::Stall(Duration::from_millis(30))
        } else {
            Answer::Accept
        }
    }))
    .unwrap();
    let log = dir.join("app.log");
    let config = http_config(
        &dir.join("data"),
        log.to_str().unwrap(),
        &receiver,
        "buffer = { type = \"disk\", fsync = \"never\" }",
    );
    let total = 60_000;
    let restarts = 6;
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let mut written = 0;
    for round in 0..restarts {
        let agent = Agent::start(&dir, &config);
        // Write a share of the lines while it runs, then kill it mid-flight.
        let until = total * (round + 1) / restarts;
        while written < until {
            let chunk: String = (written..(written + 1000).min(until)).map(line).collect();
            file.write_all(chunk.as_bytes()).unwrap();
            written = (written + 1000).min(until);
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(100 + 37 * round as u64));
        agent.kill();
    }
    let agent = Agent::start(&dir, &config);
    wait_for_all(&receiver, total, Duration::from_secs(60), &agent);
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
    let got = accepted(&receiver);
    let unique = distinct(&got);
    assert_eq!(unique, (0..total).collect::<Vec<_>>(), "no gap");
    // Sent twice: the batch in flight at each kill (at most 500 records),
    // and, should a kill fall between a source's append to the buffer and
    // its checkpoint, what it had just read (a 64 KiB chunk, ~1100 lines).
    let duplicates = got.len() - total;
    eprintln!("{duplicates} duplicates over {restarts} restarts");
    assert!(
        duplicates <= restarts * (500 + 1100),
        "{duplicates} duplicates for {restarts} restarts"
    );
    let _ = fs::remove_file(&log);
}
