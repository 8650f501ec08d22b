//! The monitor source: `weir run`'s logs arrive with the container's name
//! and labels, and the gate's drop markers as loss records that state
//! exactly what the run's summary counted as dropped.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;

/// What the run's summary says one stream wrote and dropped, in lines.
fn stream_lines(summary: &serde_json::Value, stream: &str) -> (u64, u64) {
    let counts = &summary["streams"][stream];
    let lines = |counter: &serde_json::Value| counter["lines"].as_u64().unwrap();
    (
        lines(&counts["written"]),
        lines(&counts["dropped"]["rate_limit"]),
    )
}

#[test]
fn weir_run_logs_arrive_with_their_owner_and_their_losses() {
    let dir = Scratch::new("monitor");
    let logs = dir.join("logs");
    // 3000 numbered lines as fast as sh can, under a budget that drops most.
    // The budget is the container's, so whether the stderr line after them
    // passes depends on when it comes: the summary says which it was.
    let summary = run_over_budget(&logs, &["--label", "tier=front"], "; echo done >&2");
    let (stdout_written, stdout_dropped) = stream_lines(&summary, "stdout");
    let (stderr_written, stderr_dropped) = stream_lines(&summary, "stderr");
    assert!(stdout_dropped > 0, "the budget was hit: {summary}");
    assert_eq!(stderr_written + stderr_dropped, 1, "{summary}");
    let receiver = Receiver::start(Arc::new(|_| Answer::Accept)).unwrap();
    let config = format!(
        r#"
data_dir = "{data}"
[api]
enabled = false
[sources.pods]
type = "monitor"
dir = "{logs}"
poll = "50ms"
[sinks.out]
type = "http"
inputs = ["pods"]
uri = "http://{addr}/x"
batch = {{ timeout = "20ms" }}
"#,
        data = dir.join("data").display(),
        logs = logs.display(),
        addr = receiver.addr,
    );
    let agent = Agent::start(&dir, &config);
    let records = || -> Vec<serde_json::Value> {
        receiver
            .requests()
            .iter()
            .flat_map(|r| r.lines.iter().map(|l| serde_json::from_str(l).unwrap()))
            .collect()
    };
    let is_loss = |r: &serde_json::Value| r["attributes"]["weir.loss.reason"] == "rate_limit";
    let lost_lines = |records: &[serde_json::Value], stream: &str| -> u64 {
        records
            .iter()
            .filter(|r| is_loss(r) && r["stream"] == stream)
            .map(|r| r["attributes"]["weir.loss.lines"].as_u64().unwrap())
            .sum()
    };
    let logged = |records: &[serde_json::Value], stream: &str| -> u64 {
        records
            .iter()
            .filter(|r| !is_loss(r) && r["stream"] == stream)
            .count() as u64
    };
    // Every written line and markers for every dropped one; the streams are
    // read apart, so neither is known to come last.
    wait_for(Duration::from_secs(20), "the log and its losses", || {
        let records = records();
        logged(&records, "stdout") >= stdout_written
            && logged(&records, "stderr") >= stderr_written
            && lost_lines(&records, "stdout") >= stdout_dropped
            && lost_lines(&records, "stderr") >= stderr_dropped
    });
    std::thread::sleep(Duration::from_millis(200));
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
    let records = records();
    for record in &records {
        assert_eq!(record["resource"]["container.name"], "web", "{record}");
        assert_eq!(
            record["resource"]["container.label.tier"], "front",
            "{record}"
        );
    }
    assert_eq!(logged(&records, "stdout"), stdout_written);
    assert_eq!(logged(&records, "stderr"), stderr_written);
    if stderr_written == 1 {
        assert!(
            records
                .iter()
                .any(|r| r["stream"] == "stderr" && r["body"] == "done")
        );
    }
    assert_eq!(
        lost_lines(&records, "stdout"),
        stdout_dropped,
        "the loss records state what the gate dropped"
    );
    assert_eq!(lost_lines(&records, "stderr"), stderr_dropped);
    assert!(
        records
            .iter()
            .filter(|r| is_loss(r))
            .all(|r| r["severity"] == "warning")
    );
}
