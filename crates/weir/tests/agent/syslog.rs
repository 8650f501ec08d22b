//! The syslog source against util-linux `logger`, a client nobody here
//! wrote: RFC 5424 and RFC 3164 over TCP (octet counting and a message per
//! line), UDP and a Unix datagram socket; and its limits against raw
//! sockets: a malformed message is kept with the reason, an oversized one
//! cut without costing the next, connections past the maximum refused.

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// Runs `logger` with `args`, which must succeed.
fn logger(args: &[&str]) {
    let status = Command::new("logger")
        .args(args)
        .status()
        .expect("util-linux logger");
    assert!(status.success(), "logger {args:?}");
}

/// The NDJSON records the file sink wrote, once there are `count`.
fn records(path: &std::path::Path, count: usize, agent: &Agent) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while lines.len() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {count} records; the agent said:\n{}",
            lines.len(),
            agent.said()
        );
        std::thread::sleep(Duration::from_millis(50));
        lines = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    }
    lines
}

fn with_body<'a>(records: &'a [serde_json::Value], body: &str) -> &'a serde_json::Value {
    records
        .iter()
        .find(|r| r["body"] == body)
        .unwrap_or_else(|| panic!("no record {body:?} in {records:#?}"))
}

#[test]
fn logger_over_tcp_udp_and_a_unix_socket() {
    let dir = Scratch::new("syslog");
    let (tcp, udp) = (free_port(), free_udp_port());
    let socket = dir.join("log.sock");
    let out = dir.join("out.ndjson");
    let config = config(
        &dir.join("data"),
        None,
        &format!(
            r#"[sources.tcp]
type = "syslog"
address = "127.0.0.1:{tcp}"
[sources.udp]
type = "syslog"
mode = "udp"
address = "127.0.0.1:{udp}"
[sources.local]
type = "syslog"
mode = "unix"
path = "{}"
[sinks.out]
type = "file"
inputs = ["tcp", "udp", "local"]
path = "{}"
batch = {{ timeout = "20ms" }}
"#,
            socket.display(),
            out.display()
        ),
    );
    let agent = Agent::start(&dir, &config);
    wait_for(Duration::from_secs(10), "the listeners", || {
        TcpStream::connect(("127.0.0.1", tcp)).is_ok() && socket.exists()
    });
    let (tcp, udp) = (tcp.to_string(), udp.to_string());
    let remote = ["-n", "127.0.0.1", "-P"];
    logger(
        &[
            &remote[..],
            &[
                &tcp,
                "-T",
                "--octet-count",
                "--rfc5424",
                "-t",
                "billing",
                "-p",
                "local3.warning",
                "--msgid",
                "M1",
                "--sd-id",
                "order@32473",
                "--sd-param",
                "id=\"42\"",
                "5424 over tcp, counted",
            ],
        ]
        .concat(),
    );
    logger(
        &[
            &remote[..],
            &[
                &tcp,
                "-T",
                "--rfc3164",
                "-t",
                "cron",
                "-p",
                "cron.info",
                "3164 over tcp, a line",
            ],
        ]
        .concat(),
    );
    logger(
        &[
            &remote[..],
            &[
                &udp,
                "-d",
                "--rfc5424",
                "-t",
                "web",
                "-p",
                "user.err",
                "5424 over udp",
            ],
        ]
        .concat(),
    );
    logger(
        &[
            &remote[..],
            &[
                &udp,
                "-d",
                "--rfc3164",
                "-t",
                "web",
                "-p",
                "auth.notice",
                "3164 over udp",
            ],
        ]
        .concat(),
    );
    logger(&[
        "-u",
        socket.to_str().unwrap(),
        "-t",
        "sshd",
        "-p",
        "authpriv.crit",
        "over the unix socket",
    ]);
    let records = records(&out, 5, &agent);
    let counted = with_body(&records, "5424 over tcp, counted");
    assert_eq!(counted["severity"], "warning");
    assert_eq!(counted["attributes"]["syslog.facility"], "local3");
    assert_eq!(counted["attributes"]["syslog.appname"], "billing");
    assert_eq!(counted["attributes"]["syslog.msgid"], "M1");
    assert_eq!(counted["attributes"]["syslog.sd.order@32473.id"], "42");
    let line = with_body(&records, "3164 over tcp, a line");
    assert_eq!(line["severity"], "info");
    assert_eq!(line["attributes"]["syslog.facility"], "cron");
    assert_eq!(line["attributes"]["syslog.appname"], "cron");
    let udp5424 = with_body(&records, "5424 over udp");
    assert_eq!(udp5424["severity"], "error");
    assert_eq!(udp5424["attributes"]["syslog.appname"], "web");
    assert_eq!(
        with_body(&records, "3164 over udp")["attributes"]["syslog.facility"],
        "auth"
    );
    let local = with_body(&records, "over the unix socket");
    assert_eq!(local["severity"], "critical");
    assert_eq!(local["attributes"]["syslog.facility"], "authpriv");
    assert_eq!(local["attributes"]["syslog.appname"], "sshd");
    for record in &records {
        assert!(
            record["attributes"].get("syslog.parse_error").is_none(),
            "{record}"
        );
        // logger stamps each message: its time, not the arrival's, is kept.
        assert_ne!(record["time"], record["observed_time"], "{record}");
    }
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
}

#[test]
fn malformed_oversized_and_excess_connections_are_counted_and_cost_nothing_else() {
    let dir = Scratch::new("syslog-limits");
    let (tcp, api) = (free_port(), free_port());
    let out = dir.join("out.ndjson");
    let config = config(
        &dir.join("data"),
        Some(api),
        &format!(
            r#"[sources.tcp]
type = "syslog"
address = "127.0.0.1:{tcp}"
max_message = "1KiB"
max_connections = 2
[sinks.out]
type = "file"
inputs = ["tcp"]
path = "{}"
batch = {{ timeout = "20ms" }}
"#,
            out.display()
        ),
    );
    let agent = Agent::start(&dir, &config);
    wait_for(Duration::from_secs(10), "the listener", || {
        TcpStream::connect(("127.0.0.1", tcp)).is_ok()
    });
    let mut first = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    let long = "x".repeat(3000);
    let oversized = format!("<13>1 - h app - - - {long}");
    write!(
        first,
        "not syslog at all\n{} {oversized}<14>1 - h app - - - after the long one\n",
        oversized.len()
    )
    .unwrap();
    first.flush().unwrap();
    // A second connection fits; a third is one too many.
    let _second = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut third = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(
        std::io::Read::read(&mut third, &mut byte).unwrap_or(0),
        0,
        "closed at once"
    );
    let records = records(&out, 3, &agent);
    let malformed = with_body(&records, "not syslog at all");
    assert_eq!(
        malformed["attributes"]["syslog.parse_error"],
        "byte 0: expected '<' and a priority"
    );
    let cut = records
        .iter()
        .find(|r| r["partial"] == true)
        .expect("the oversized message, cut");
    assert_eq!(
        cut["body"].as_str().unwrap().len(),
        1024 - "<13>1 - h app - - - ".len()
    );
    with_body(&records, "after the long one");
    let (_, metrics) = get(api, "/metrics");
    assert_eq!(
        metric(&metrics, "weir_source_records_total{source=\"tcp\"}"),
        3.0
    );
    assert_eq!(
        metric(
            &metrics,
            "weir_source_malformed_records_total{source=\"tcp\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&metrics, "weir_source_cut_records_total{source=\"tcp\"}"),
        1.0
    );
    // Every byte of the stream is counted: what the cut message kept is
    // read, the rest of it passed by.
    assert_eq!(
        metric(&metrics, "weir_source_cut_bytes_total{source=\"tcp\"}"),
        (oversized.len() - 1024) as f64
    );
    assert_eq!(
        metric(
            &metrics,
            "weir_source_connections_closed_total{source=\"tcp\",reason=\"max_connections\"}"
        ),
        1.0
    );
    drop(first);
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
}

/// Syslog over TLS (RFC 5425: octet-counted messages in a TLS stream)
/// from `openssl s_client`, a TLS client nobody here wrote; a client that
/// speaks plain TCP to the TLS port is closed and counted, and costs the
/// others nothing.
#[test]
fn syslog_over_tls_from_openssl_s_client() {
    let dir = Scratch::new("syslog-tls");
    let (tls_port, api) = (free_port(), free_port());
    let out = dir.join("out.ndjson");
    let Certificate { ca, cert, key } = certificate(&dir);
    let config = config(
        &dir.join("data"),
        Some(api),
        &format!(
            r#"[sources.tls]
type = "syslog"
address = "127.0.0.1:{tls_port}"
tls = {{ cert = "{}", key = "{}" }}
{}"#,
            cert.display(),
            key.display(),
            file_sink("tls", &out)
        ),
    );
    let agent = Agent::start(&dir, &config);
    wait_for(Duration::from_secs(10), "the listener", || {
        TcpStream::connect(("127.0.0.1", tls_port)).is_ok()
    });
    // Plain syslog to the TLS port: not a handshake.
    let mut plain = TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
    plain
        .write_all(b"<14>1 - host app - - - in the clear\n")
        .unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut byte = [0u8; 1];
    let _ = std::io::Read::read(&mut plain, &mut byte);
    let messages: Vec<String> = (0..3)
        .map(|i| format!("<165>1 2026-11-21T20:00:00.000001Z host app 7 M{i} - over tls {i}"))
        .collect();
    let framed: String = messages
        .iter()
        .map(|m| format!("{} {m}", m.len()))
        .collect();
    let mut client = Command::new("openssl")
        .args(["s_client", "-quiet", "-verify_return_error", "-connect"])
        .arg(format!("127.0.0.1:{tls_port}"))
        .arg("-CAfile")
        .arg(&ca)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl s_client");
    client
        .stdin
        .take()
        .unwrap()
        .write_all(framed.as_bytes())
        .unwrap();
    let records = records(&out, 3, &agent);
    let _ = client.kill();
    let _ = client.wait();
    for i in 0..3 {
        let record = with_body(&records, &format!("over tls {i}"));
        assert_eq!(record["attributes"]["syslog.msgid"], format!("M{i}"));
        assert_eq!(record["attributes"]["syslog.facility"], "local4");
        assert_eq!(record["severity"], "notice");
    }
    assert!(
        !records.iter().any(|r| r["body"] == "in the clear"),
        "nothing from the plain connection"
    );
    let (_, metrics) = get(api, "/metrics");
    assert_eq!(
        metric(
            &metrics,
            "weir_source_connections_closed_total{source=\"tls\",reason=\"broken_framing\"}"
        ),
        2.0,
        "the plain client, and the probe that waited for the port (no handshake at all): {metrics}"
    );
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("TLS handshake"), "{said}");
}
