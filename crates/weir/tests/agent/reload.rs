//! SIGHUP: a bad file is refused and the agent runs on; a changed sink keeps
//! what its buffer holds (nothing buffered is lost by a reload), the source
//! keeps reading, and a new sink starts.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;

fn agent_config(
    dir: &Scratch,
    log: &std::path::Path,
    uri: &str,
    buffer: &str,
    extra_sink: &str,
) -> String {
    config(
        &dir.join("data"),
        None,
        &(tail_source(log.to_str().unwrap()) + &http_sink("app", uri, buffer) + extra_sink),
    )
}

#[test]
fn a_reload_keeps_what_is_buffered_and_the_source_reading() {
    let dir = Scratch::new("reload");
    // The first destination refuses everything: records wait in the buffer.
    let down = Receiver::start(Arc::new(|_| Answer::Fail)).unwrap();
    let up = Receiver::start(Arc::new(|_| Answer::Accept)).unwrap();
    let log = dir.join("app.log");
    let first: String = (0..5000).map(line).collect();
    std::fs::write(&log, &first).unwrap();
    let agent = Agent::start(
        &dir,
        &agent_config(&dir, &log, &format!("http://{}/x", down.addr), "", ""),
    );
    wait_for(
        Duration::from_secs(20),
        "retries against the refusing destination",
        || down.requests().len() >= 3,
    );
    // A broken file is refused; the agent runs on.
    std::fs::write(dir.join("weir.toml"), "[sinks.out]\ntype = \"nope\"\n").unwrap();
    agent.hup();
    wait_for(Duration::from_secs(10), "the refusal", || {
        agent.said().contains("reload refused")
    });
    // The sink now points at a destination that accepts, with a disk
    // buffer instead of memory, and a file sink is added: what the memory
    // buffer held moves to the disk buffer and is delivered, nothing lost.
    let copy = dir.join("copy.ndjson");
    let extra = format!(
        "[sinks.copy]\ntype = \"file\"\ninputs = [\"app\"]\npath = \"{}\"\n",
        copy.display()
    );
    std::fs::write(
        dir.join("weir.toml"),
        agent_config(
            &dir,
            &log,
            &format!("http://{}/x", up.addr),
            "buffer = { type = \"disk\" }",
            &extra,
        ),
    )
    .unwrap();
    agent.hup();
    wait_for(Duration::from_secs(10), "the reload", || {
        agent.said().contains("reload: applied")
    });
    // The source kept running: lines written after the reload arrive too.
    append_lines(&log, 5000..6000);
    wait_for_all(&up, 6000, Duration::from_secs(30), &agent);
    wait_for(Duration::from_secs(10), "the new file sink", || {
        std::fs::read_to_string(&copy).is_ok_and(|t| t.lines().count() == 1000)
    });
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("records moved to its disk buffer"), "{said}");
    assert_eq!(
        distinct(&accepted(&up)),
        (0..6000).collect::<Vec<_>>(),
        "nothing lost by the reload"
    );
    // The new sink only sees what was read after it started.
    let copied: Vec<usize> = std::fs::read_to_string(&copy)
        .unwrap()
        .lines()
        .map(seq_of)
        .collect();
    assert_eq!(copied, (5000..6000).collect::<Vec<_>>());
}
