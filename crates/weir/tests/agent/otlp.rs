//! The otlp source against the OpenTelemetry Python SDK's OTLP/HTTP
//! exporter: what weir writes equals what the SDK exported (ids,
//! timestamps, attributes, severity, body, resource, scope). OTLP/JSON, the
//! bearer token, and the 503 with Retry-After that makes a client back off
//! while a sink's buffer is full are checked with plain requests.

use std::io::{Read, Write};
use std::time::Duration;

use crate::common::*;

/// POSTs `body` to `path` on `port`; the status, the headers and the body.
fn post(port: u16, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request += &format!("{name}: {value}\r\n");
    }
    request += "\r\n";
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    if stream.read_to_end(&mut response).is_err() && response.is_empty() {
        return (0, String::new(), String::new());
    }
    if !response.starts_with(b"HTTP/") {
        // Not HTTP at all (a TLS alert, say): no status.
        return (0, String::new(), String::new());
    }
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head[9..12].parse().unwrap(),
        head.to_owned(),
        body.to_owned(),
    )
}

fn otlp_config(dir: &Scratch, port: u16, api: u16, sink: &str) -> String {
    config(
        &dir.join("data"),
        Some(api),
        &format!(
            "[sources.otel]\ntype = \"otlp\"\naddress = \"127.0.0.1:{port}\"\ntoken = \"t0k\"\n{sink}"
        ),
    )
}

#[test]
fn the_opentelemetry_sdk_exports_logs_that_arrive_as_sent() {
    let dir = Scratch::new("otlp");
    let (port, api) = (free_port(), free_port());
    let out = dir.join("out.ndjson");
    let sink = file_sink("otel", &out);
    let agent = Agent::start(&dir, &otlp_config(&dir, port, api, &sink));
    wait_for(Duration::from_secs(10), "the listener", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let endpoint = format!("http://127.0.0.1:{port}/v1/logs");
    let sent: Vec<serde_json::Value> = client("otlp_client.py", &["logs", &endpoint, "t0k"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(sent.len(), 3);
    // OTLP/JSON, as the specification writes it.
    let json = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"1700000000000000009","body":{"stringValue":"from json"},"spanId":"eee19b7ec3c1b174"}]}]}]}"#;
    let auth = ("Authorization", "Bearer t0k");
    let (status, head, body) = post(
        port,
        "/v1/logs",
        &[("Content-Type", "application/json"), auth],
        json.as_bytes(),
    );
    assert_eq!(status, 200, "{head}{body}");
    assert!(
        head.to_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    // No token, no entry.
    let (status, _, _) = post(
        port,
        "/v1/logs",
        &[("Content-Type", "application/json")],
        json.as_bytes(),
    );
    assert_eq!(status, 401);
    let (status, _, body) = post(
        port,
        "/v1/logs",
        &[("Content-Type", "application/json"), auth],
        b"{\"resourceLogs\":7}",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not an ExportLogsServiceRequest"), "{body}");
    wait_for(Duration::from_secs(10), "4 records", || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.lines().count() >= 4)
    });
    let written: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for sent in &sent {
        let got = written
            .iter()
            .find(|w| w["body"] == sent["body"])
            .unwrap_or_else(|| panic!("{} not written: {written:#?}", sent["body"]));
        let ns = sent["time_unix_nano"].as_i64().unwrap();
        let time = format!("2023-11-14T22:13:20.{:09}Z", ns - 1_700_000_000_000_000_000);
        assert_eq!(got["time"], time);
        assert_eq!(got["trace_id"], sent["trace_id"]);
        assert_eq!(got["span_id"], sent["span_id"]);
        assert_eq!(
            got["attributes"]["otel.severity_number"],
            sent["severity_number"]
        );
        assert_eq!(
            got["attributes"]["otel.severity_text"],
            sent["severity_text"]
        );
        assert_eq!(got["attributes"]["otel.scope.name"], sent["scope"][0]);
        assert_eq!(got["attributes"]["otel.scope.version"], sent["scope"][1]);
        for (key, value) in sent["attributes"].as_object().unwrap() {
            assert_eq!(&got["attributes"][key], value, "attribute {key}");
        }
        for (key, value) in sent["resource"].as_object().unwrap() {
            assert_eq!(&got["resource"][key], value, "resource {key}");
        }
    }
    let severities: Vec<&str> = sent
        .iter()
        .map(|s| {
            let got = written.iter().find(|w| w["body"] == s["body"]).unwrap();
            got["severity"].as_str().unwrap()
        })
        .collect();
    assert_eq!(severities, ["info", "warning", "error"]);
    let from_json = written.iter().find(|w| w["body"] == "from json").unwrap();
    assert_eq!(from_json["span_id"], "eee19b7ec3c1b174");
    assert_eq!(from_json["time"], "2023-11-14T22:13:20.000000009Z");
    let (_, metrics) = get(api, "/metrics");
    assert_eq!(
        metric(&metrics, "weir_source_records_total{source=\"otel\"}"),
        4.0
    );
    assert_eq!(
        metric(
            &metrics,
            "weir_source_malformed_records_total{source=\"otel\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "weir_source_connections_closed_total{source=\"otel\",reason=\"failed_auth\"}"
        ),
        1.0
    );
    // A client that guesses ten tokens is shut out, the right one and all:
    // 429, for up to a minute, nothing taken.
    for guess in 0..10 {
        let wrong = format!("Bearer guess-{guess}");
        let headers = [
            ("Content-Type", "application/json"),
            ("Authorization", &wrong),
        ];
        let (status, _, _) = post(port, "/v1/logs", &headers, json.as_bytes());
        assert_eq!(status, 401, "guess {guess}");
    }
    let (status, head, body) = post(
        port,
        "/v1/logs",
        &[("Content-Type", "application/json"), auth],
        json.as_bytes(),
    );
    assert_eq!(status, 429, "{head}{body}");
    assert!(head.to_lowercase().contains("retry-after: 60"), "{head}");
    let (_, metrics) = get(api, "/metrics");
    assert_eq!(
        metric(&metrics, "weir_source_records_total{source=\"otel\"}"),
        4.0
    );
    assert_eq!(
        metric(
            &metrics,
            "weir_source_connections_closed_total{source=\"otel\",reason=\"failed_auth\"}"
        ),
        12.0
    );
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
}

#[test]
fn a_full_buffer_answers_503_with_retry_after_and_takes_nothing() {
    let dir = Scratch::new("otlp-full");
    let (port, api, down) = (free_port(), free_port(), HeldPort::new());
    let sink = format!(
        "[sinks.out]\ntype = \"http\"\ninputs = [\"otel\"]\nuri = \"http://127.0.0.1:{}/x\"\nbuffer = {{ type = \"memory\", max_size = \"64KiB\", when_full = \"block\" }}\n",
        down.port
    );
    let agent = Agent::start(&dir, &otlp_config(&dir, port, api, &sink));
    wait_for(Duration::from_secs(10), "the listener", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    // Each request: 200 records of about 100 bytes.
    let records: Vec<String> = (0..200)
        .map(|i| {
            format!(
                r#"{{"body":{{"stringValue":"record {i:04} {}"}}}}"#,
                "x".repeat(80)
            )
        })
        .collect();
    let body = format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{}]}}]}}]}}"#,
        records.join(",")
    );
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", "Bearer t0k"),
    ];
    let mut taken = 0;
    let mut refused = None;
    for _ in 0..40 {
        let (status, head, _) = post(port, "/v1/logs", &headers, body.as_bytes());
        match status {
            200 => taken += 1,
            503 => {
                refused = Some(head);
                break;
            }
            // A request whose records the emitter waits to append: the
            // client gives up on it (and would send it again).
            _ => std::thread::sleep(Duration::from_millis(1200)),
        }
    }
    let head = refused.expect("a 503 once the buffer is full");
    assert!(head.to_lowercase().contains("retry-after: 1"), "{head}");
    assert!(taken >= 1, "the buffer took something first");
    let read = || {
        let (_, metrics) = get(api, "/metrics");
        metric(&metrics, "weir_source_records_total{source=\"otel\"}")
    };
    let before = read();
    assert!(
        before >= taken as f64 * 200.0,
        "{before} records read, {taken} requests taken"
    );
    // Refused again, and nothing of it taken.
    let (status, _, _) = post(port, "/v1/logs", &headers, body.as_bytes());
    assert_eq!(status, 503);
    assert_eq!(read(), before);
    agent.kill();
}

/// An OTLP/JSON logs request of `records` records with `text` as body.
fn logs_body(records: usize, text: &str) -> String {
    let records: Vec<String> = (0..records)
        .map(|i| format!(r#"{{"body":{{"stringValue":"{i:05} {text}"}}}}"#))
        .collect();
    format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{}]}}]}}]}}"#,
        records.join(",")
    )
}

#[test]
fn requests_under_way_share_max_memory_and_one_that_does_not_fit_is_deferred() {
    let dir = Scratch::new("otlp-memory");
    let (port, api) = (free_port(), free_port());
    // The least max_memory there may be: 16 bodies of max_message.
    let config = config(
        &dir.join("data"),
        Some(api),
        &format!(
            "[sources.otel]\ntype = \"otlp\"\naddress = \"127.0.0.1:{port}\"\n\
             max_message = \"64KiB\"\nmax_memory = \"1MiB\"\n\
             [sinks.out]\ntype = \"blackhole\"\ninputs = [\"otel\"]\n"
        ),
    );
    let agent = Agent::start(&dir, &config);
    wait_for(Duration::from_secs(10), "the listener", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let metrics = || get(api, "/metrics").1;
    let held = || metric(&metrics(), "weir_source_memory_held_bytes{source=\"otel\"}");
    let read = || metric(&metrics(), "weir_source_records_total{source=\"otel\"}");
    let deferred = || {
        metric(
            &metrics(),
            "weir_source_deferred_requests_total{source=\"otel\"}",
        )
    };
    let json = [("Content-Type", "application/json")];
    // Sixteen slow clients each say their body is 64 KiB and send none of
    // it yet: together they hold all of max_memory.
    let mut slow: Vec<std::net::TcpStream> = (0..16)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream
                .write_all(
                    b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 65536\r\n\r\n",
                )
                .unwrap();
            stream
        })
        .collect();
    wait_for(Duration::from_secs(20), "the slow bodies held", || {
        held() == f64::from(1 << 20)
    });
    // Any other request is deferred, not lost: 503 with Retry-After, and
    // nothing of it taken.
    // The refusal comes before the body is read: the client sends only its
    // head, so no unread body turns the close into a reset.
    let refused = |framing: &str| {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "POST /v1/logs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: application/json\r\n{framing}\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    let body = logs_body(3, "a record");
    let answer = refused(&format!("Content-Length: {}\r\n", body.len()));
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_lowercase().contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("max_memory"), "{answer}");
    assert_eq!(deferred(), 1.0);
    assert_eq!(read(), 0.0);
    // One slow client goes away: what it held is given back, and the same
    // request is taken whole; it gives back what it held once answered.
    drop(slow.pop());
    wait_for(Duration::from_secs(10), "one slow body given back", || {
        held() == f64::from(15 << 16)
    });
    let (status, head, said) = post(port, "/v1/logs", &json, body.as_bytes());
    assert_eq!(status, 200, "{head}\n{said}");
    assert_eq!(read(), 3.0);
    assert_eq!(held(), f64::from(15 << 16));
    // A body without a length may be up to max_message: that is held until
    // it is read, so it too waits for room, and then takes only its size.
    let chunked = |body: &str| {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "POST /v1/logs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    let mut slow_again = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow_again
        .write_all(b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 65536\r\n\r\n")
        .unwrap();
    wait_for(
        Duration::from_secs(10),
        "the slow bodies held again",
        || held() == f64::from(1 << 20),
    );
    let answer = refused("Transfer-Encoding: chunked\r\n");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("without a length"), "{answer}");
    assert_eq!(deferred(), 2.0);
    drop(slow);
    drop(slow_again);
    wait_for(
        Duration::from_secs(10),
        "every slow body given back",
        || held() == 0.0,
    );
    let answer = chunked(&body);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Gzipped, unpacked step by step.
    let gzipped = {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder
            .write_all(logs_body(100, "a record").as_bytes())
            .unwrap();
        encoder.finish().unwrap()
    };
    let (status, head, said) = post(
        port,
        "/v1/logs",
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        &gzipped,
    );
    assert_eq!(status, 200, "{head}\n{said}");
    assert_eq!(read(), 106.0);
    assert_eq!(held(), 0.0, "every request gives back what it held");
    assert_eq!(deferred(), 2.0);
    agent.kill();
}

#[test]
fn a_body_trickled_past_read_timeout_is_cut_off_and_counted() {
    let dir = Scratch::new("otlp-slow-body");
    let (port, api) = (free_port(), free_port());
    let config = config(
        &dir.join("data"),
        Some(api),
        &format!(
            "[sources.otel]\ntype = \"otlp\"\naddress = \"127.0.0.1:{port}\"\nread_timeout = \"1s\"\n{}",
            "[sinks.out]\ntype = \"blackhole\"\ninputs = [\"otel\"]\n"
        ),
    );
    let agent = Agent::start(&dir, &config);
    wait_for(Duration::from_secs(10), "the listener", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    // A byte every 200 ms for 6 s, never the whole body: the connection is
    // never idle, so only a deadline on the whole body (read_timeout, 1 s)
    // answers while the bytes still come.
    let trickle_for = Duration::from_secs(6);
    let mut writer = stream.try_clone().unwrap();
    let trickler = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        while started.elapsed() < trickle_for && writer.write_all(b" ").is_ok() {
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let started = std::time::Instant::now();
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).unwrap();
    let answered_after = started.elapsed();
    assert_eq!(&answer, b"HTTP/1.1 408");
    assert!(
        answered_after < trickle_for - Duration::from_secs(2),
        "answered after {answered_after:?}, when the bytes had stopped: an idle timeout"
    );
    let _ = stream.shutdown(std::net::Shutdown::Both);
    trickler.join().unwrap();
    let (_, metrics) = get(api, "/metrics");
    assert_eq!(
        metric(
            &metrics,
            "weir_source_connections_closed_total{source=\"otel\",reason=\"read_timeout\"}"
        ),
        1.0,
        "{metrics}"
    );
    agent.kill();
}

/// weir's otlp sink into Rotel, a third-party OTLP collector, which sends
/// on to weir's otlp source: every line arrives, with its resource.
#[test]
fn the_otlp_sink_delivers_through_rotel() {
    let dir = Scratch::new("otlp-rotel");
    let (rotel_http, rotel_grpc, weir_in) = (free_port(), free_port(), free_port());
    let out = dir.join("out.ndjson");
    let receiving = Scratch::new("otlp-rotel-in");
    let receiver = Agent::start(
        &receiving,
        &config(
            &receiving.join("data"),
            None,
            &format!(
                "[sources.otel]\ntype = \"otlp\"\naddress = \"127.0.0.1:{weir_in}\"\n[sinks.out]\ntype = \"file\"\ninputs = [\"otel\"]\npath = \"{}\"\nbatch = {{ timeout = \"20ms\" }}\n",
                out.display()
            ),
        ),
    );
    let mut rotel = start_rotel(&dir, rotel_http, rotel_grpc, weir_in);
    wait_for(Duration::from_secs(20), "rotel and weir listening", || {
        std::net::TcpStream::connect(("127.0.0.1", rotel_http)).is_ok()
            && std::net::TcpStream::connect(("127.0.0.1", weir_in)).is_ok()
    });
    let log = dir.join("app.log");
    let total = 2_000;
    std::fs::write(&log, (0..total).map(line).collect::<String>()).unwrap();
    let sender = Agent::start(
        &dir,
        &config(
            &dir.join("data"),
            None,
            &(tail_source(log.to_str().unwrap())
                + &format!(
                    "[sinks.out]\ntype = \"otlp\"\ninputs = [\"app\"]\nuri = \"http://127.0.0.1:{rotel_http}\"\ngzip = true\nbatch = {{ max_records = 300, timeout = \"20ms\" }}\n"
                )),
        ),
    );
    let arrived = || {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while arrived().len() < total && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = rotel.kill();
    let _ = rotel.wait();
    let records = arrived();
    let mut bodies: Vec<String> = records
        .iter()
        .map(|r| format!("{}\n", r["body"].as_str().unwrap()))
        .collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(
        bodies,
        (0..total).map(line).collect::<Vec<_>>(),
        "every line, through rotel; rotel said:\n{}\nthe sender said:\n{}",
        std::fs::read_to_string(dir.join("rotel.stderr")).unwrap_or_default(),
        sender.said()
    );
    assert!(
        records[0]["resource"]["log.file.path"]
            .as_str()
            .is_some_and(|p| p.ends_with("app.log")),
        "{}",
        records[0]
    );
    let (code, said) = sender.stop();
    assert_eq!(code, Some(0), "{said}");
    drop(receiver);
}

/// Spans from the OpenTelemetry SDK arrive with every field it exported:
/// ids and parent, kind, start and end, attributes, events, links, status.
#[test]
fn the_opentelemetry_sdk_exports_spans_that_arrive_as_sent() {
    let dir = Scratch::new("otlp-traces");
    let (port, api) = (free_port(), free_port());
    let out = dir.join("out.ndjson");
    let sink = file_sink("otel", &out);
    let agent = Agent::start(&dir, &otlp_config(&dir, port, api, &sink));
    wait_for(Duration::from_secs(10), "the listener", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let endpoint = format!("http://127.0.0.1:{port}/v1/traces");
    let sent: Vec<serde_json::Value> = client("otlp_client.py", &["traces", &endpoint, "t0k"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(sent.len(), 2);
    wait_for(Duration::from_secs(10), "2 spans", || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.lines().count() >= 2)
    });
    let written: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let rfc3339 =
        |ns: i64| String::from_utf8(weir_agent::sink::ndjson::rfc3339(ns).to_vec()).unwrap();
    for sent in &sent {
        let got = written
            .iter()
            .find(|w| w["span"]["name"] == sent["name"])
            .unwrap_or_else(|| panic!("{} not written: {written:#?}", sent["name"]));
        let span = &got["span"];
        assert_eq!(got["trace_id"], sent["trace_id"]);
        assert_eq!(got["span_id"], sent["span_id"]);
        match sent["parent_span_id"].as_str() {
            Some(parent) => assert_eq!(span["parent_span_id"], parent),
            None => assert!(span.get("parent_span_id").is_none()),
        }
        assert_eq!(span["kind"], sent["kind"]);
        assert_eq!(got["time"], rfc3339(sent["start"].as_i64().unwrap()));
        assert_eq!(span["end_time"], rfc3339(sent["end"].as_i64().unwrap()));
        for (key, value) in sent["attributes"].as_object().unwrap() {
            assert_eq!(&got["attributes"][key], value, "attribute {key}");
        }
        assert_eq!(got["resource"]["service.name"], "checkout");
        assert_eq!(got["attributes"]["otel.scope.name"], "weir.test.tracer");
        let events = sent["events"].as_array().unwrap();
        for (i, event) in events.iter().enumerate() {
            assert_eq!(span["events"][i]["name"], event[0]);
            assert_eq!(
                span["events"][i]["time"],
                rfc3339(event[1].as_i64().unwrap())
            );
            assert_eq!(span["events"][i]["attributes"], event[2]);
        }
        for (i, link) in sent["links"].as_array().unwrap().iter().enumerate() {
            assert_eq!(span["links"][i]["trace_id"], link[0]);
            assert_eq!(span["links"][i]["span_id"], link[1]);
        }
        // The SDK's StatusCode: 0 unset, 1 ok, 2 error, as OTLP numbers them.
        assert_eq!(span["status"]["code"], sent["status"][0]);
        if sent["status"][1] != "" {
            assert_eq!(span["status"]["message"], sent["status"][1]);
        }
    }
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
}

/// OTLP over HTTPS: the SDK's exporter, given the CA that signed weir's
/// certificate, verifies it and its logs arrive.
#[test]
fn the_opentelemetry_sdk_exports_over_https() {
    let dir = Scratch::new("otlp-tls");
    let Certificate { ca, cert, key } = certificate(&dir);
    let (port, api) = (free_port(), free_port());
    let out = dir.join("out.ndjson");
    let agent = Agent::start(
        &dir,
        &config(
            &dir.join("data"),
            Some(api),
            &format!(
                "[sources.otel]\ntype = \"otlp\"\naddress = \"127.0.0.1:{port}\"\ntls = {{ cert = \"{}\", key = \"{}\" }}\n[sinks.out]\ntype = \"file\"\ninputs = [\"otel\"]\npath = \"{}\"\nbatch = {{ timeout = \"20ms\" }}\n",
                cert.display(),
                key.display(),
                out.display()
            ),
        ),
    );
    wait_for(Duration::from_secs(10), "the listener", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let endpoint = format!("https://127.0.0.1:{port}/v1/logs");
    let sent = client_with(
        "otlp_client.py",
        &["logs", &endpoint],
        &[("WEIR_TEST_CA", ca.to_str().unwrap())],
    );
    assert_eq!(sent.lines().count(), 3);
    wait_for(Duration::from_secs(10), "3 records", || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.lines().count() >= 3)
    });
    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let (status, _, _) = post(
        port,
        "/v1/logs",
        &[("Content-Type", "application/json")],
        b"{}",
    );
    assert_eq!(status, 0);
    // The server counts a connection once its TLS handshake has failed,
    // which may be just after the client gave up.
    let broken = || {
        let (_, metrics) = get(api, "/metrics");
        metric(
            &metrics,
            "weir_source_connections_closed_total{source=\"otel\",reason=\"broken_framing\"}",
        )
    };
    wait_for(
        Duration::from_secs(10),
        "the plain request and the probe that waited for the port counted as broken framing",
        || broken() >= 2.0,
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(broken(), 2.0, "nothing else counted");
    // weir's own otlp sink over https: one agent trusting the CA delivers
    // a tailed file; one trusting only the system's CAs refuses the
    // certificate, says why, and delivers nothing.
    let sending = |name: &str, tls: &str| {
        let scratch = Scratch::new(name);
        let log = scratch.join("app.log");
        std::fs::write(&log, format!("{name} 1\n{name} 2\n")).unwrap();
        let sender = Agent::start(
            &scratch,
            &config(
                &scratch.join("data"),
                None,
                &format!(
                    "{}[sinks.out]\ntype = \"otlp\"\ninputs = [\"app\"]\nuri = \"https://127.0.0.1:{port}\"\n{tls}\nbatch = {{ timeout = \"20ms\" }}\nretry = {{ initial = \"50ms\", max = \"200ms\" }}\n",
                    tail_source(log.to_str().unwrap())
                ),
            ),
        );
        (scratch, sender)
    };
    let (_trusting_dir, trusting) = sending(
        "otlp-tls-trusting",
        &format!(
            "tls = {{ ca = \"{}\", server_name = \"localhost\" }}",
            ca.display()
        ),
    );
    let (_untrusting_dir, untrusting) = sending("otlp-tls-untrusting", "");
    wait_for(
        Duration::from_secs(20),
        "the tailed lines over https",
        || {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            text.contains("otlp-tls-trusting 1") && text.contains("otlp-tls-trusting 2")
        },
    );
    wait_for(Duration::from_secs(20), "the refusal", || {
        untrusting.said().contains("UnknownIssuer")
    });
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(!text.contains("otlp-tls-untrusting"), "{text}");
    assert!(
        untrusting.said().contains("UnknownIssuer"),
        "{}",
        untrusting.said()
    );
    let (code, said) = trusting.stop();
    assert_eq!(code, Some(0), "{said}");
    untrusting.kill();
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
}

/// Spans through Rotel too: the SDK exports to one weir, whose otlp sink
/// sends them through Rotel to another weir, which writes them with their
/// names, ids and parents.
#[test]
fn spans_go_through_rotel_to_another_weir() {
    let dir = Scratch::new("otlp-rotel-spans");
    let (rotel_http, rotel_grpc, weir_in, weir_front) =
        (free_port(), free_port(), free_port(), free_port());
    let out = dir.join("out.ndjson");
    let receiving = Scratch::new("otlp-rotel-spans-in");
    let receiver = Agent::start(
        &receiving,
        &config(
            &receiving.join("data"),
            None,
            &format!(
                "[sources.otel]\ntype = \"otlp\"\naddress = \"127.0.0.1:{weir_in}\"\n[sinks.out]\ntype = \"file\"\ninputs = [\"otel\"]\npath = \"{}\"\nbatch = {{ timeout = \"20ms\" }}\n",
                out.display()
            ),
        ),
    );
    let mut rotel = start_rotel(&dir, rotel_http, rotel_grpc, weir_in);
    let front = Agent::start(
        &dir,
        &config(
            &dir.join("data"),
            None,
            &format!(
                "[sources.otel]\ntype = \"otlp\"\naddress = \"127.0.0.1:{weir_front}\"\n[sinks.out]\ntype = \"otlp\"\ninputs = [\"otel\"]\nuri = \"http://127.0.0.1:{rotel_http}\"\nbatch = {{ timeout = \"20ms\" }}\n"
            ),
        ),
    );
    wait_for(
        Duration::from_secs(20),
        "rotel and both weirs listening",
        || {
            [rotel_http, weir_in, weir_front]
                .iter()
                .all(|port| std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok())
        },
    );
    let endpoint = format!("http://127.0.0.1:{weir_front}/v1/traces");
    let sent: Vec<serde_json::Value> = client("otlp_client.py", &["traces", &endpoint])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let arrived = || {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    while arrived().len() < sent.len() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = rotel.kill();
    let _ = rotel.wait();
    let written = arrived();
    assert_eq!(written.len(), sent.len(), "{written:#?}");
    for sent in &sent {
        let got = written
            .iter()
            .find(|w| w["span_id"] == sent["span_id"])
            .unwrap_or_else(|| panic!("{} not through rotel: {written:#?}", sent["name"]));
        assert_eq!(got["span"]["name"], sent["name"]);
        assert_eq!(got["trace_id"], sent["trace_id"]);
        match sent["parent_span_id"].as_str() {
            Some(parent) => assert_eq!(got["span"]["parent_span_id"], parent),
            None => assert!(got["span"].get("parent_span_id").is_none()),
        }
    }
    let (code, said) = front.stop();
    assert_eq!(code, Some(0), "{said}");
    drop(receiver);
}
