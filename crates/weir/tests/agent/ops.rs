//! The operations endpoint: /metrics counts what went through, and /health
//! turns 503, naming the sink, when a sink makes no progress while records
//! wait: a hang is visible.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::*;

#[test]
fn metrics_count_the_records_and_health_names_a_stalled_sink() {
    let dir = Scratch::new("ops");
    // Accepts until told to refuse, then fails everything: the sink stalls.
    let refuse = Arc::new(AtomicBool::new(false));
    let refusing = Arc::clone(&refuse);
    let receiver = Receiver::start(Arc::new(move |_| {
        if refusing.load(Ordering::Relaxed) {
            Answer::Fail
        } else {
            Answer::Accept
        }
    }))
    .unwrap();
    let log = dir.join("app.log");
    let lines: String = (0..1000).map(line).collect();
    std::fs::write(&log, &lines).unwrap();
    let port = free_port();
    let uri = format!("http://{}/ingest", receiver.addr);
    let tables = tail_source(log.to_str().unwrap()) + &http_sink("app", &uri, "");
    // /health calls a sink stalled after a second without progress.
    let config = config(&dir.join("data"), Some(port), &tables)
        .replace("[api]\n", "[api]\nstall_after = \"1s\"\n");
    let agent = Agent::start(&dir, &config);
    // The receiver holds a batch before its answer reaches the agent, which
    // counts it only then: wait for the count.
    wait_for(Duration::from_secs(20), "the first batches", || {
        accepted(&receiver).len() >= 1000
            && metric(
                &get(port, "/metrics").1,
                "weir_sink_records_total{sink=\"out\"}",
            ) >= 1000.0
    });
    let (status, body) = get(port, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        metric(
            &body,
            "weir_source_records_total{source=\"app\",lane=\"out\"}"
        ),
        1000.0
    );
    assert_eq!(
        metric(&body, "weir_sink_records_total{sink=\"out\"}"),
        1000.0
    );
    assert_eq!(get(port, "/health").0, 200, "healthy while it delivers");
    // More lines, which the receiver now refuses with 503: retried, stalled.
    refuse.store(true, Ordering::Relaxed);
    let more: String = (1000..1100).map(line).collect();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(more.as_bytes())
        .unwrap();
    wait_for(
        Duration::from_secs(20),
        "/health to report the stall",
        || get(port, "/health").0 == 503,
    );
    let (_, said) = get(port, "/health");
    assert!(said.contains("out: no progress"), "{said}");
    let (_, body) = get(port, "/metrics");
    assert!(metric(&body, "weir_sink_retries_total{sink=\"out\"}") > 0.0);
    assert_eq!(metric(&body, "weir_buffer_records{sink=\"out\"}"), 100.0);
    assert_eq!(
        metric(&body, "weir_sink_received_records_total{sink=\"out\"}"),
        1100.0
    );
    assert_eq!(
        metric(
            &body,
            "weir_source_refused_records_total{source=\"app\",lane=\"out\"}"
        ),
        0.0
    );
    // Every record read is delivered, waiting, or dropped with a reason.
    let dropped: f64 = [
        "buffer_full_newest",
        "buffer_full_oldest",
        "buffer_damaged",
        "undecodable",
        "sink_rejected",
    ]
    .iter()
    .map(|reason| {
        metric(
            &body,
            &format!("weir_dropped_records_total{{sink=\"out\",reason=\"{reason}\"}}"),
        )
    })
    .sum();
    assert_eq!(
        metric(
            &body,
            "weir_source_records_total{source=\"app\",lane=\"out\"}"
        ),
        metric(&body, "weir_sink_records_total{sink=\"out\"}")
            + metric(&body, "weir_buffer_records{sink=\"out\"}")
            + dropped,
        "read = delivered + waiting + dropped"
    );
    assert!(metric(&body, "weir_buffer_oldest_record_age_seconds{sink=\"out\"}") > 0.0);
    assert_eq!(get(port, "/nope").0, 404);
    agent.kill();
}
