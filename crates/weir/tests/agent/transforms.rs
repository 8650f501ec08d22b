//! Transforms in the running agent: JSON lines parsed, severity set, only
//! errors kept, a field added; the body sent as it was written.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;

#[test]
fn json_severity_filter_and_fields_shape_what_a_sink_gets() {
    let dir = Scratch::new("transforms");
    let receiver = Receiver::start(Arc::new(|_| Answer::Accept)).unwrap();
    let log = dir.join("app.log");
    let mut lines = String::new();
    for i in 0..300 {
        let level = ["info", "error", "debug"][i % 3];
        lines.push_str(&format!(
            "{{\"level\":\"{level}\",\"n\":{i},\"msg\":\"event {i}\"}}\n"
        ));
    }
    lines.push_str("not json at all\n");
    std::fs::write(&log, &lines).unwrap();
    let transforms = r#"
[transforms.parsed]
type = "json"
inputs = ["app"]
[transforms.leveled]
type = "severity"
inputs = ["parsed"]
from = "level"
[transforms.errors]
type = "filter"
inputs = ["leveled"]
condition = "severity <= 3 && attributes.n >= 100"
[transforms.tagged]
type = "fields"
inputs = ["errors"]
add = { env = "test" }
remove = ["level"]
"#;
    let uri = format!("http://{}/ingest", receiver.addr);
    let config = config(
        &dir.join("data"),
        None,
        &(tail_source(log.to_str().unwrap()) + transforms + &http_sink("tagged", &uri, "")),
    );
    let agent = Agent::start(&dir, &config);
    // Errors are every third line from 1; those with n >= 100: 67 of them.
    wait_for(Duration::from_secs(20), "the errors", || {
        receiver
            .requests()
            .iter()
            .map(|r| r.lines.len())
            .sum::<usize>()
            >= 67
    });
    std::thread::sleep(Duration::from_millis(300));
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
    let got: Vec<serde_json::Value> = receiver
        .requests()
        .iter()
        .flat_map(|r| r.lines.iter().map(|l| serde_json::from_str(l).unwrap()))
        .collect();
    assert_eq!(got.len(), 67);
    for (k, record) in got.iter().enumerate() {
        // The errors are the lines with n % 3 == 1: 100, 103, 106, ...
        let n = 100 + 3 * k;
        assert_eq!(record["severity"], "error");
        assert_eq!(record["attributes"]["n"], n as u64);
        assert_eq!(record["attributes"]["env"], "test");
        assert!(record["attributes"].get("level").is_none(), "removed");
        assert_eq!(
            record["body"],
            format!("{{\"level\":\"error\",\"n\":{n},\"msg\":\"event {n}\"}}"),
            "the body is kept as written"
        );
    }
}
