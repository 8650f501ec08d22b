//! A sink's place in the files it is fed from, across reloads and restarts
//! that change whether it waits: a sink that waits reads on a lane of its
//! own, the others share one, and moving between them must neither skip
//! nor (beyond what a crash re-reads) repeat a record for it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;

/// Source `app` on `log`, sink `out` into `up` (never waiting, so on the
/// shared lane), and sink `down` towards a port nobody listens on yet,
/// with `down_buffer`.
fn two_sinks(
    dir: &Scratch,
    log: &Path,
    up: &Receiver,
    down_port: u16,
    down_buffer: &str,
) -> String {
    let down = http_sink(
        "app",
        &format!("http://127.0.0.1:{down_port}/ingest"),
        &format!("buffer = {{ type = \"memory\", {down_buffer} }}"),
    )
    .replacen("[sinks.out]", "[sinks.down]", 1);
    config(
        &dir.join("data"),
        None,
        &(tail_source(log.to_str().unwrap())
            + &http_sink(
                "app",
                &format!("http://{}/ingest", up.addr),
                &format!("buffer = {{ type = \"memory\", {DROPS} }}"),
            )
            + &down),
    )
}

fn reload(dir: &Scratch, agent: &Agent, config: &str) {
    let applied = agent.said().matches("reload: applied").count();
    std::fs::write(dir.join("weir.toml"), config).unwrap();
    agent.hup();
    wait_for(Duration::from_secs(10), "the reload", || {
        agent.said().matches("reload: applied").count() > applied
    });
}

const DROPS: &str = "when_full = \"drop_newest\", max_size = \"64MiB\"";
const WAITS_SMALL: &str = "when_full = \"block\", max_size = \"1MiB\"";

#[test]
fn a_sink_that_starts_waiting_keeps_what_it_was_not_acknowledged_across_a_crash() {
    let dir = Scratch::new("lanes-split");
    let log = dir.join("app.log");
    std::fs::write(&log, (0..5000).map(line).collect::<String>()).unwrap();
    let up = Receiver::start(Arc::new(|_| Answer::Accept)).unwrap();
    let down = HeldPort::new();
    let down_port = down.port;
    // Both sinks drop when full: one lane reads for both, and `down`'s
    // buffer holds all it read, unacknowledged.
    let agent = Agent::start(&dir, &two_sinks(&dir, &log, &up, down_port, DROPS));
    wait_for_all(&up, 5000, Duration::from_secs(30), &agent);
    // `down` now waits: it splits off onto a lane of its own, which reads
    // on from where the shared lane was, and more lines come.
    let waits = "when_full = \"block\", max_size = \"64MiB\"";
    reload(&dir, &agent, &two_sinks(&dir, &log, &up, down_port, waits));
    append_lines(&log, 5000..6000);
    wait_for_all(&up, 6000, Duration::from_secs(30), &agent);
    // A crash loses `down`'s memory buffer: none of it was acknowledged,
    // so its lane must read all of it again.
    agent.kill();
    let late = down.receive(Arc::new(|_| Answer::Accept));
    let agent = Agent::start(&dir, &two_sinks(&dir, &log, &up, down_port, waits));
    wait_for_all(&late, 6000, Duration::from_secs(30), &agent);
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(distinct(&accepted(&late)), (0..6000).collect::<Vec<_>>());
    assert_eq!(distinct(&accepted(&up)), (0..6000).collect::<Vec<_>>());
}

/// 6 MB of lines: six times what `down`'s buffer may hold while it waits.
const TOTAL: usize = 100_000;

/// An agent whose `out` has had every line of `dir`'s log, and whose
/// `down` waits (in a lane of its own, stuck within its first MiB) for a
/// destination on the port returned.
fn down_and_stuck(dir: &Scratch) -> (std::path::PathBuf, Receiver, HeldPort, Agent) {
    let log = dir.join("app.log");
    std::fs::write(&log, (0..TOTAL).map(line).collect::<String>()).unwrap();
    let up = Receiver::start(Arc::new(|_| Answer::Accept)).unwrap();
    let down = HeldPort::new();
    let down_port = down.port;
    let agent = Agent::start(dir, &two_sinks(dir, &log, &up, down_port, WAITS_SMALL));
    wait_for_all(&up, TOTAL, Duration::from_secs(60), &agent);
    (log, up, down, agent)
}

#[test]
fn a_sink_that_stops_waiting_on_a_reload_goes_on_from_its_own_place() {
    let dir = Scratch::new("lanes-merge");
    let (log, up, down, agent) = down_and_stuck(&dir);
    let down_port = down.port;
    let total = TOTAL;
    // `down` stops waiting. The shared lane is at the end of the file:
    // were `down` to join it, it would never get the rest.
    reload(&dir, &agent, &two_sinks(&dir, &log, &up, down_port, DROPS));
    let late = down.receive(Arc::new(|_| Answer::Accept));
    wait_for_all(&late, total, Duration::from_secs(60), &agent);
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(
        accepted(&late),
        (0..total).collect::<Vec<_>>(),
        "once each, in order"
    );
}

#[test]
fn a_sink_that_stops_waiting_across_a_restart_goes_on_from_its_own_place() {
    let dir = Scratch::new("lanes-restart");
    let (log, up, down, agent) = down_and_stuck(&dir);
    let down_port = down.port;
    let total = TOTAL;
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
    // Started again with `down` no longer waiting: its checkpoints, not the
    // shared lane's, say where it goes on from.
    let late = down.receive(Arc::new(|_| Answer::Accept));
    let agent = Agent::start(&dir, &two_sinks(&dir, &log, &up, down_port, DROPS));
    wait_for_all(&late, total, Duration::from_secs(60), &agent);
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(distinct(&accepted(&late)), (0..total).collect::<Vec<_>>());
    assert_eq!(
        accepted(&up).len(),
        total,
        "nothing again for the sink that was done"
    );
}

#[test]
fn a_reload_that_fails_leaves_the_sources_reading_and_the_agent_stoppable() {
    let dir = Scratch::new("lanes-failed-reload");
    let log = dir.join("app.log");
    std::fs::write(&log, (0..1000).map(line).collect::<String>()).unwrap();
    let up = Receiver::start(Arc::new(|_| Answer::Accept)).unwrap();
    let data = dir.join("data");
    let one_sink = config(
        &data,
        None,
        &(tail_source(log.to_str().unwrap())
            + &http_sink("app", &format!("http://{}/ingest", up.addr), "")),
    );
    let agent = Agent::start(&dir, &one_sink);
    wait_for_all(&up, 1000, Duration::from_secs(30), &agent);
    // A new sink whose disk buffer cannot be made: its directory is a file.
    std::fs::create_dir_all(data.join("buffers")).unwrap();
    std::fs::write(data.join("buffers/broken"), "not a directory").unwrap();
    let broken = format!(
        "{one_sink}[sinks.broken]\ntype = \"blackhole\"\ninputs = [\"app\"]\nbuffer = {{ type = \"disk\" }}\n"
    );
    std::fs::write(dir.join("weir.toml"), broken).unwrap();
    agent.hup();
    wait_for(Duration::from_secs(10), "the failed reload", || {
        agent.said().contains("keep the old configuration")
    });
    // The source still reads for the sink that was there.
    append_lines(&log, 1000..2000);
    wait_for_all(&up, 2000, Duration::from_secs(30), &agent);
    // That sink asked to move to a disk buffer that cannot be made: it
    // goes on with its memory buffer, delivered as before; and the rest of
    // the file (a new file sink) is applied all the same.
    std::fs::write(data.join("buffers/out"), "not a directory").unwrap();
    let copy = dir.join("copy.ndjson");
    let to_disk = config(
        &data,
        None,
        &(tail_source(log.to_str().unwrap())
            + &http_sink(
                "app",
                &format!("http://{}/ingest", up.addr),
                "buffer = { type = \"disk\" }",
            )
            + &file_sink("app", &copy).replacen("[sinks.out]", "[sinks.copy]", 1)),
    );
    std::fs::write(dir.join("weir.toml"), to_disk).unwrap();
    agent.hup();
    wait_for(Duration::from_secs(10), "the second failed reload", || {
        agent.said().matches("keep the old configuration").count() == 2
    });
    append_lines(&log, 2000..3000);
    wait_for_all(&up, 3000, Duration::from_secs(30), &agent);
    wait_for(Duration::from_secs(10), "the new file sink", || {
        std::fs::read_to_string(&copy).is_ok_and(|t| t.lines().count() == 1000)
    });
    // And stopping does not wait on a lane left parked.
    let mut agent = agent;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.child.id() as i32, libc::SIGTERM) };
    wait_for(Duration::from_secs(20), "the agent to stop", || {
        agent.child.try_wait().unwrap().is_some()
    });
}
