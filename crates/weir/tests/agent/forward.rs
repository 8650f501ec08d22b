//! The forward source against clients nobody here wrote: Python's
//! fluent-logger (Message mode with EventTime), and every other mode built
//! with the msgpack package as the protocol specifies it, each with a
//! chunk whose ack must come back, over a connection that passed the
//! shared_key handshake; a wrong key is refused and counted.

use std::time::Duration;

use crate::common::*;

#[test]
fn fluent_clients_in_every_mode_with_acks_and_a_shared_key() {
    let dir = Scratch::new("forward");
    let (open, keyed, api) = (free_port(), free_port(), free_port());
    let out = dir.join("out.ndjson");
    let config = config(
        &dir.join("data"),
        Some(api),
        &format!(
            r#"[sources.open]
type = "forward"
address = "127.0.0.1:{open}"
[sources.keyed]
type = "forward"
address = "127.0.0.1:{keyed}"
shared_key = "s3cret"
self_hostname = "weir-test"
[sinks.out]
type = "file"
inputs = ["open", "keyed"]
path = "{}"
batch = {{ timeout = "20ms" }}
"#,
            out.display()
        ),
    );
    let agent = Agent::start(&dir, &config);
    wait_for(Duration::from_secs(10), "the listeners", || {
        std::net::TcpStream::connect(("127.0.0.1", keyed)).is_ok()
    });
    let (open, keyed) = (open.to_string(), keyed.to_string());
    assert_eq!(
        client("forward_client.py", &["message", "127.0.0.1", &open]),
        "sent 3\n"
    );
    assert_eq!(
        client(
            "forward_client.py",
            &["modes", "127.0.0.1", &keyed, "s3cret"]
        ),
        "acked 9\n"
    );
    assert_eq!(
        client(
            "forward_client.py",
            &["badkey", "127.0.0.1", &keyed, "guess"]
        ),
        "refused\n"
    );
    wait_for(Duration::from_secs(10), "12 records", || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.lines().count() >= 12)
    });
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 12, "{records:#?}");
    for (mode, tag) in [
        ("message", "app.message"),
        ("forward", "app.forward"),
        ("packed", "app.packed"),
        ("compressed", "app.compressed"),
    ] {
        let of_mode: Vec<&serde_json::Value> = records
            .iter()
            .filter(|r| r["resource"]["fluent.tag"] == tag)
            .collect();
        let bodies: Vec<&str> = of_mode
            .iter()
            .map(|r| r["body"].as_str().unwrap())
            .collect();
        assert_eq!(
            bodies,
            (0..3).map(|i| format!("{mode} {i}")).collect::<Vec<_>>(),
            "in order"
        );
        for (i, record) in of_mode.iter().enumerate() {
            assert_eq!(record["attributes"]["i"], i);
            // EventTime keeps the nanoseconds.
            let nanos = if mode == "message" {
                "500000000"
            } else {
                "123456789"
            };
            assert_eq!(
                record["time"],
                format!("2023-11-14T22:13:{:02}.{nanos}Z", 20 + i),
                "{record}"
            );
        }
    }
    let (_, metrics) = get(api, "/metrics");
    assert_eq!(
        metric(
            &metrics,
            "weir_source_connections_closed_total{source=\"keyed\",reason=\"failed_auth\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&metrics, "weir_source_records_total{source=\"keyed\"}"),
        9.0
    );
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
}

/// Agent to agent: one weir's forward sink (gzip, acks, a shared key, and
/// a first server that is down) into another weir's forward source; every
/// line arrives once, in order, with the record's own fields.
#[test]
fn a_weir_agent_forwards_to_another_through_failover() {
    let dir = Scratch::new("forward-hop");
    let collector_port = free_port();
    let out = dir.join("collector.ndjson");
    let collector_dir = Scratch::new("forward-hop-collector");
    let collector = Agent::start(
        &collector_dir,
        &config(
            &collector_dir.join("data"),
            None,
            &format!(
                r#"[sources.agents]
type = "forward"
address = "127.0.0.1:{collector_port}"
shared_key = "hop-key"
[sinks.out]
type = "file"
inputs = ["agents"]
path = "{}"
batch = {{ timeout = "20ms" }}
"#,
                out.display()
            ),
        ),
    );
    wait_for(Duration::from_secs(10), "the collector", || {
        std::net::TcpStream::connect(("127.0.0.1", collector_port)).is_ok()
    });
    let log = dir.join("app.log");
    let total = 20_000;
    std::fs::write(&log, (0..total).map(line).collect::<String>()).unwrap();
    let down = HeldPort::new();
    let agent = Agent::start(
        &dir,
        &config(
            &dir.join("data"),
            None,
            &(tail_source(log.to_str().unwrap())
                + &format!(
                    r#"[sinks.out]
type = "forward"
inputs = ["app"]
servers = ["127.0.0.1:{}", "127.0.0.1:{collector_port}"]
shared_key = "hop-key"
gzip = true
tag = "node.app"
timeout = "2s"
batch = {{ max_records = 700, timeout = "20ms" }}
retry = {{ initial = "5ms", max = "50ms" }}
"#,
                    down.port
                )),
        ),
    );
    wait_for(
        Duration::from_secs(60),
        "every line at the collector",
        || std::fs::read_to_string(&out).is_ok_and(|t| t.lines().count() >= total),
    );
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
    let (code, said) = collector.stop();
    assert_eq!(code, Some(0), "{said}");
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let bodies: Vec<String> = records
        .iter()
        .map(|r| format!("{}\n", r["body"].as_str().unwrap()))
        .collect();
    assert_eq!(
        bodies,
        (0..total).map(line).collect::<Vec<_>>(),
        "once each, in order"
    );
    let first = &records[0];
    assert_eq!(first["resource"]["fluent.tag"], "node.app");
    assert!(
        first["resource"]["log.file.path"]
            .as_str()
            .is_some_and(|p| p.ends_with("app.log")),
        "the tail source's resource crossed the hop: {first}"
    );
}

/// The same hop over TLS: the collector serves a certificate, the agent
/// trusts it; a client that speaks plain Forward to the TLS port gets
/// nothing through.
#[test]
fn a_weir_agent_forwards_to_another_over_tls() {
    let dir = Scratch::new("forward-tls");
    let Certificate { ca, cert, key } = certificate(&dir);
    let (port, api) = (free_port(), free_port());
    let out = dir.join("collector.ndjson");
    let collector_dir = Scratch::new("forward-tls-collector");
    let collector = Agent::start(
        &collector_dir,
        &config(
            &collector_dir.join("data"),
            Some(api),
            &format!(
                "[sources.agents]\ntype = \"forward\"\naddress = \"127.0.0.1:{port}\"\nshared_key = \"k\"\ntls = {{ cert = \"{}\", key = \"{}\" }}\n[sinks.out]\ntype = \"file\"\ninputs = [\"agents\"]\npath = \"{}\"\nbatch = {{ timeout = \"20ms\" }}\n",
                cert.display(),
                key.display(),
                out.display()
            ),
        ),
    );
    wait_for(Duration::from_secs(10), "the collector", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    // Plain Forward to the TLS port: refused, nothing taken.
    let said = std::process::Command::new(python())
        .arg(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/agent/clients/forward_client.py"),
        )
        .args(["modes", "127.0.0.1", &port.to_string(), "k"])
        .output()
        .unwrap();
    assert!(
        !said.status.success(),
        "plain Forward got through a TLS port"
    );
    let log = dir.join("app.log");
    let total = 5_000;
    std::fs::write(&log, (0..total).map(line).collect::<String>()).unwrap();
    let agent = Agent::start(
        &dir,
        &config(
            &dir.join("data"),
            None,
            &(tail_source(log.to_str().unwrap())
                + &format!(
                    "[sinks.out]\ntype = \"forward\"\ninputs = [\"app\"]\nservers = [\"127.0.0.1:{port}\"]\nshared_key = \"k\"\ntls = {{ ca = \"{}\" }}\ntimeout = \"2s\"\nbatch = {{ max_records = 700, timeout = \"20ms\" }}\nretry = {{ initial = \"5ms\", max = \"50ms\" }}\n",
                    ca.display()
                )),
        ),
    );
    wait_for(
        Duration::from_secs(60),
        "every line at the collector",
        || std::fs::read_to_string(&out).is_ok_and(|t| t.lines().count() >= total),
    );
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
    let (_, metrics) = get(api, "/metrics");
    assert!(
        metric(
            &metrics,
            "weir_source_connections_closed_total{source=\"agents\",reason=\"broken_framing\"}"
        ) >= 1.0,
        "{metrics}"
    );
    let (code, said) = collector.stop();
    assert_eq!(code, Some(0), "{said}");
    let bodies: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| {
            let record: serde_json::Value = serde_json::from_str(l).unwrap();
            format!("{}\n", record["body"].as_str().unwrap())
        })
        .collect();
    assert_eq!(bodies, (0..total).map(line).collect::<Vec<_>>());
}

/// A Forward-mode message of `entries` records `{"log": "x"}` asking for an
/// acknowledgement of chunk `chunk`.
fn forward_message(entries: u32, chunk: &str) -> Vec<u8> {
    let mut out = Vec::new();
    rmp::encode::write_array_len(&mut out, 3).unwrap();
    rmp::encode::write_str(&mut out, "app").unwrap();
    rmp::encode::write_array_len(&mut out, entries).unwrap();
    for _ in 0..entries {
        rmp::encode::write_array_len(&mut out, 2).unwrap();
        rmp::encode::write_uint(&mut out, 1_700_000_000).unwrap();
        rmp::encode::write_map_len(&mut out, 1).unwrap();
        rmp::encode::write_str(&mut out, "log").unwrap();
        rmp::encode::write_str(&mut out, "x").unwrap();
    }
    rmp::encode::write_map_len(&mut out, 1).unwrap();
    rmp::encode::write_str(&mut out, "chunk").unwrap();
    rmp::encode::write_str(&mut out, chunk).unwrap();
    out
}

/// Sends `message` on a connection of its own; whether it was acknowledged
/// before the source closed the connection.
fn acknowledged(port: u16, message: &[u8]) -> bool {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(message).unwrap();
    let mut answer = [0u8; 64];
    matches!(stream.read(&mut answer), Ok(n) if n > 0 && answer[..n].windows(3).any(|w| w == b"ack"))
}

#[test]
fn connections_share_max_memory_and_a_message_too_large_to_decode_is_refused() {
    use std::io::Write;
    let dir = Scratch::new("forward-memory");
    let (port, api) = (free_port(), free_port());
    // The least max_memory there may be: 16 messages of max_message.
    let agent = Agent::start(
        &dir,
        &config(
            &dir.join("data"),
            Some(api),
            &format!(
                "[sources.fluent]\ntype = \"forward\"\naddress = \"127.0.0.1:{port}\"\n\
                 max_message = \"64KiB\"\nmax_memory = \"1MiB\"\n\
                 [sinks.out]\ntype = \"blackhole\"\ninputs = [\"fluent\"]\n"
            ),
        ),
    );
    wait_for(Duration::from_secs(10), "the listener", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && std::net::TcpStream::connect(("127.0.0.1", api)).is_ok()
    });
    let metrics = || get(api, "/metrics").1;
    let count = |name: &str| metric(&metrics(), &format!("{name}{{source=\"fluent\"}}"));
    let held = || count("weir_source_memory_held_bytes");
    // Reading a message makes a value of each of its items, and decoding
    // about as much again: 5 values an entry here.
    let per_entry = 5 * 2 * std::mem::size_of::<weir_agent::source::forward::msgpack::Value>();
    let entries = (800_000 / per_entry) as u32;
    let message = forward_message(entries, "first");
    assert!(message.len() < 64 << 10);
    assert!(acknowledged(port, &message), "a message that fits is taken");
    assert_eq!(count("weir_source_records_total"), f64::from(entries));
    wait_for(Duration::from_secs(10), "the memory given back", || {
        held() == 0.0
    });

    // 60,000 nils in 60 KB: read, they would take some 2 MB, more than
    // max_memory on its own. The connection is closed and its bytes counted.
    let mut nils = Vec::new();
    rmp::encode::write_array_len(&mut nils, 2).unwrap();
    rmp::encode::write_str(&mut nils, "app").unwrap();
    rmp::encode::write_array_len(&mut nils, 60_000).unwrap();
    nils.extend(std::iter::repeat_n(0xc0, 60_000));
    assert!(!acknowledged(port, &nils));
    let malformed = || {
        metric(
            &metrics(),
            "weir_source_malformed_bytes_total{source=\"fluent\"}",
        )
    };
    wait_for(Duration::from_secs(10), "the refusal counted", || {
        count("weir_source_oversized_total") == 1.0 && malformed() > 0.0
    });
    assert_eq!(malformed(), nils.len() as f64, "its bytes counted as lost");

    // Eight slow clients each send 50 KB of a message and stop: together
    // they hold 400 KB or more, and the first message no longer fits
    // beside them. It waits for room, then its connection is closed
    // unacknowledged (deferred), for the client to send again.
    let slow: Vec<std::net::TcpStream> = (0..8)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            let mut partial = Vec::new();
            rmp::encode::write_array_len(&mut partial, 2).unwrap();
            rmp::encode::write_str(&mut partial, "app").unwrap();
            rmp::encode::write_bin_len(&mut partial, 60_000).unwrap();
            partial.extend(std::iter::repeat_n(b'z', 50_000));
            stream.write_all(&partial).unwrap();
            stream
        })
        .collect();
    wait_for(Duration::from_secs(20), "the slow clients held", || {
        held() >= 400_000.0
    });
    assert!(!acknowledged(port, &message), "no room: closed");
    assert_eq!(count("weir_source_deferred_requests_total"), 1.0);
    assert_eq!(count("weir_source_records_total"), f64::from(entries));
    drop(slow);
    wait_for(Duration::from_secs(10), "the slow clients gone", || {
        held() == 0.0
    });
    assert!(acknowledged(port, &message), "sent again, taken");
    assert_eq!(count("weir_source_records_total"), f64::from(2 * entries));
    agent.kill();
}
