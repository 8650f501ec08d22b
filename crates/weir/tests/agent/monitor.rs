//! The monitor source: `weir run`'s logs arrive with the container's name
//! and labels, and the gate's drop markers as loss records that state
//! exactly what the run's summary counted as dropped.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;

#[test]
fn weir_run_logs_arrive_with_their_owner_and_their_losses() {
    let dir = Scratch::new("monitor");
    let logs = dir.join("logs");
    // 3000 numbered lines as fast as sh can, under a budget that drops most.
    let summary = run_over_budget(&logs, &["--label", "tier=front"], "; echo done >&2");
    let dropped = summary["streams"]["stdout"]["dropped"]["rate_limit"]["lines"]
        .as_u64()
        .unwrap();
    let written = summary["streams"]["stdout"]["written"]["lines"]
        .as_u64()
        .unwrap();
    assert!(dropped > 0, "the budget was hit: {summary}");
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
    // The written lines, the stderr line, and at least one marker.
    let expected = written + 2;
    wait_for(Duration::from_secs(20), "the log", || {
        receiver
            .requests()
            .iter()
            .map(|r| r.lines.len())
            .sum::<usize>() as u64
            >= expected
    });
    std::thread::sleep(Duration::from_millis(200));
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
    let records: Vec<serde_json::Value> = receiver
        .requests()
        .iter()
        .flat_map(|r| r.lines.iter().map(|l| serde_json::from_str(l).unwrap()))
        .collect();
    for record in &records {
        assert_eq!(record["resource"]["container.name"], "web", "{record}");
        assert_eq!(
            record["resource"]["container.label.tier"], "front",
            "{record}"
        );
    }
    assert!(
        records
            .iter()
            .any(|r| r["stream"] == "stderr" && r["body"] == "done")
    );
    let losses: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["attributes"]["weir.loss.reason"] == "rate_limit")
        .collect();
    assert!(!losses.is_empty());
    let lost: u64 = losses
        .iter()
        .map(|r| r["attributes"]["weir.loss.lines"].as_u64().unwrap())
        .sum();
    assert_eq!(
        lost, dropped,
        "the loss records state what the gate dropped"
    );
    assert!(losses.iter().all(|r| r["severity"] == "warning"));
}
