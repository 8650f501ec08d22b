//! One sink's outage never stops another: a sink whose buffer waits when
//! full (`when_full = "block"`) holds back only its own reader of the
//! source's files, while the other sinks fed by the same source go on.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;

#[test]
fn a_sink_that_is_down_holds_back_only_itself() {
    let dir = Scratch::new("isolation");
    let log = dir.join("app.log");
    // 6 MB: six times what the down sink's buffer may hold.
    let total = 100_000;
    std::fs::write(&log, (0..total).map(line).collect::<String>()).unwrap();
    let down = HeldPort::new();
    let down_port = down.port;
    let receiver = Receiver::start(Arc::new(|_| Answer::Accept)).unwrap();
    let buffer = "buffer = { type = \"memory\", max_size = \"1MiB\", when_full = \"block\" }";
    let api = free_port();
    let config = config(
        &dir.join("data"),
        Some(api),
        &(tail_source(log.to_str().unwrap())
            + &http_sink("app", &format!("http://{}/ingest", receiver.addr), buffer)
            + &http_sink(
                "app",
                &format!("http://127.0.0.1:{down_port}/ingest"),
                buffer,
            )
            .replacen("[sinks.out]", "[sinks.down]", 1)),
    );
    let agent = Agent::start(&dir, &config);
    // Everything reaches the sink that is up while the other is down.
    wait_for_all(&receiver, total, Duration::from_secs(60), &agent);
    assert_eq!(accepted(&receiver), (0..total).collect::<Vec<_>>());
    // Each sink's reader counts what it read: the down sink's is stuck
    // within what its buffer holds.
    let (_, metrics) = get(api, "/metrics");
    let read = |lane: &str| {
        metric(
            &metrics,
            &format!("weir_source_records_total{{source=\"app\",lane=\"{lane}\"}}"),
        )
    };
    assert_eq!(read("out"), total as f64, "{metrics}");
    assert!(read("down") < total as f64 / 2.0, "{metrics}");
    // The down sink comes back and gets everything, in order, once.
    let late = down.receive(Arc::new(|_| Answer::Accept));
    wait_for_all(&late, total, Duration::from_secs(60), &agent);
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(accepted(&late), (0..total).collect::<Vec<_>>());
}
