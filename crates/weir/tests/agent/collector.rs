//! `weir collector`: what OTLP and Zipkin clients send is stored and comes
//! back through the Zipkin v2 query API and weir's log API, with Zipkin's
//! answers to bad queries; it survives a restart; and with no
//! configuration at all it runs on its embedded defaults.

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

fn now_us() -> i64 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        / 1000) as i64
}

/// A collector with its query API on `port` (shared with the zipkin
/// intake) and OTLP on `otlp`.
fn collector(dir: &Scratch, port: u16, otlp: u16, query: &str) -> Agent {
    let data = dir.join("data");
    let config = format!(
        "data_dir = \"{}\"\n[api]\nenabled = false\n\
         [sources.zipkin]\ntype = \"zipkin\"\naddress = \"127.0.0.1:{port}\"\n\
         [sources.otlp]\ntype = \"otlp\"\naddress = \"127.0.0.1:{otlp}\"\n\
         [sinks.store]\ntype = \"store\"\ninputs = [\"zipkin\", \"otlp\"]\n\
         batch = {{ timeout = \"20ms\" }}\nbuffer = {{ type = \"disk\" }}\n\
         [query]\naddress = \"127.0.0.1:{port}\"\n{query}\n",
        data.display()
    );
    let collector = Agent::start_as("collector", dir, &config);
    wait_for(Duration::from_secs(20), "the collector's listeners", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && std::net::TcpStream::connect(("127.0.0.1", otlp)).is_ok()
    });
    collector
}

fn json(port: u16, path: &str) -> Value {
    let (status, body) = get(port, path);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// Zipkin's documented example trace: a server span, a client call to the
/// backend with its shared server span, and an error.
fn spans(start: i64) -> String {
    format!(
        r#"[
  {{"traceId":"5982fe77008310cc80f1da5e10147517","id":"bd7a977555f6b982","name":"get /api",
   "timestamp":{start},"duration":2000,"kind":"SERVER","localEndpoint":{{"serviceName":"Frontend"}},
   "tags":{{"http.method":"GET","http.path":"/api"}}}},
  {{"traceId":"5982fe77008310cc80f1da5e10147517","parentId":"bd7a977555f6b982","id":"be2d01e33cc78d97",
   "name":"get","timestamp":{t1},"duration":1000,"kind":"CLIENT","localEndpoint":{{"serviceName":"frontend"}},
   "remoteEndpoint":{{"serviceName":"backend"}},"tags":{{"error":"timeout"}},
   "annotations":[{{"timestamp":{t2},"value":"wire send"}}]}},
  {{"traceId":"5982fe77008310cc80f1da5e10147517","parentId":"bd7a977555f6b982","id":"be2d01e33cc78d97",
   "name":"get","timestamp":{t1},"duration":900,"kind":"SERVER","shared":true,"localEndpoint":{{"serviceName":"backend"}}}},
  {{"traceId":"00000000000000aa","id":"00000000000000ab","name":"cron","timestamp":{start},"duration":50,
   "localEndpoint":{{"serviceName":"batch"}}}}
]"#,
        t1 = start + 100,
        t2 = start + 150
    )
}

#[test]
fn zipkin_clients_find_their_traces_through_the_v2_api() {
    let dir = Scratch::new("collector-zipkin");
    let (port, otlp) = (free_port(), free_port());
    let _collector = collector(&dir, port, otlp, "autocomplete_keys = [\"http.method\"]");
    let start = now_us() - 5_000_000;
    let (status, body) = post(
        port,
        "/api/v2/spans",
        "application/json",
        spans(start).as_bytes(),
    );
    assert_eq!(status, 202, "{body}");
    wait_for(Duration::from_secs(10), "the spans in the store", || {
        json(port, "/api/v2/services") == serde_json::json!(["backend", "batch", "frontend"])
    });
    assert_eq!(
        json(port, "/api/v2/spans?serviceName=FRONTEND"),
        serde_json::json!(["get", "get /api"])
    );
    assert_eq!(
        json(port, "/api/v2/remoteServices?serviceName=frontend"),
        serde_json::json!(["backend"])
    );
    assert_eq!(
        json(port, "/api/v2/spans?serviceName="),
        serde_json::json!([])
    );

    // A trace comes back as stored: every span, the shared one apart.
    let trace = json(port, "/api/v2/trace/5982fe77008310cc80f1da5e10147517");
    let trace = trace.as_array().unwrap();
    assert_eq!(trace.len(), 3);
    let client = trace.iter().find(|s| s["kind"] == "CLIENT").unwrap();
    assert_eq!(client["parentId"], "bd7a977555f6b982");
    assert_eq!(client["tags"]["error"], "timeout");
    assert_eq!(client["annotations"][0]["value"], "wire send");
    assert_eq!(client["remoteEndpoint"]["serviceName"], "backend");
    assert!(trace.iter().any(|s| s["shared"] == true));
    // A 64-bit id, given short: left-padded, found.
    assert_eq!(json(port, "/api/v2/trace/aa").as_array().unwrap().len(), 1);
    assert_eq!(
        get(port, "/api/v2/trace/5982fe77008310cc80f1da5e10147518"),
        (404, "5982fe77008310cc80f1da5e10147518 not found\n".into())
    );
    assert_eq!(get(port, "/api/v2/trace/ABC").0, 400);

    // Searches, the way Grafana and the Zipkin UI ask.
    let count = |path: &str| json(port, path).as_array().unwrap().len();
    assert_eq!(count("/api/v2/traces"), 2);
    assert_eq!(
        count("/api/v2/traces?serviceName=frontend&spanName=get+%2Fapi"),
        1
    );
    assert_eq!(count("/api/v2/traces?serviceName=frontend&spanName=all"), 1);
    assert_eq!(count("/api/v2/traces?annotationQuery=error"), 1);
    assert_eq!(
        count("/api/v2/traces?annotationQuery=http.method%3DGET%20and%20http.path%3D%2Fapi"),
        1
    );
    assert_eq!(
        count("/api/v2/traces?annotationQuery=http.method%3DPOST"),
        0
    );
    assert_eq!(count("/api/v2/traces?minDuration=1500"), 1);
    assert_eq!(count("/api/v2/traces?minDuration=10&maxDuration=100"), 1);
    assert_eq!(count("/api/v2/traces?remoteServiceName=backend"), 1);
    assert_eq!(count("/api/v2/traces?limit=1"), 1);
    let long_ago = format!(
        "/api/v2/traces?endTs={}&lookback=1000",
        start / 1000 - 60_000
    );
    assert_eq!(count(&long_ago), 0);
    assert_eq!(
        count("/api/v2/traceMany?traceIds=5982fe77008310cc80f1da5e10147517,aa,bb"),
        2
    );

    // Dependencies: frontend called backend once. The error is the
    // client's; the shared server span has none, so (as in Zipkin) the
    // link counts no error.
    let now_ms = now_us() / 1000;
    assert_eq!(
        json(port, &format!("/api/v2/dependencies?endTs={now_ms}")),
        serde_json::json!([{"parent": "frontend", "child": "backend", "callCount": 1}])
    );
    assert_eq!(
        json(port, "/api/v2/autocompleteKeys"),
        serde_json::json!(["http.method"])
    );
    assert_eq!(
        json(port, "/api/v2/autocompleteValues?key=http.method"),
        serde_json::json!(["GET"])
    );
    assert_eq!(
        json(port, "/api/v2/autocompleteValues?key=http.path"),
        serde_json::json!([])
    );

    // Bad queries: 400, naming what is wrong, as Zipkin words it.
    for (path, message) in [
        (
            "/api/v2/traces?maxDuration=5",
            "maxDuration is only valid with minDuration",
        ),
        ("/api/v2/traces?limit=0", "limit <= 0"),
        ("/api/v2/traces?limit=x", "limit=\"x\": expected an integer"),
        (
            "/api/v2/traces?lookback=999999999999",
            "lookback=999999999999: at most",
        ),
        (
            "/api/v2/spans",
            "Mandatory parameter/header is missing: serviceName",
        ),
        (
            "/api/v2/dependencies",
            "Mandatory parameter/header is missing: endTs",
        ),
        (
            "/api/v2/traceMany?traceIds=aa",
            "Use /api/v2/trace/{traceId} endpoint",
        ),
        ("/api/v2/autocompleteValues?key=", "key was empty"),
    ] {
        let (status, body) = get(port, path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.starts_with(message), "{path}: {body}");
    }
}

/// An OTLP/JSON request with `n` log records of containers web and db.
fn otlp_logs(start_ns: i64, n: usize) -> String {
    let records = |container: &str, parity: usize| -> String {
        (0..n)
            .filter(|i| i % 2 == parity)
            .map(|i| {
                let trace = if i == 7 {
                    r#","traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331""#
                } else {
                    ""
                };
                let (severity, text) = if i % 10 == 0 {
                    (17, format!("ERROR payment {i} declined by {container}"))
                } else {
                    (9, format!("request {i} served by {container}"))
                };
                format!(
                    r#"{{"timeUnixNano":"{}","severityNumber":{severity},"body":{{"stringValue":"{text}"}}{trace}}}"#,
                    start_ns + i as i64 * 1000
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let resource = |container: &str, parity: usize| {
        format!(
            r#"{{"resource":{{"attributes":[{{"key":"host.name","value":{{"stringValue":"node-a"}}}},{{"key":"container.name","value":{{"stringValue":"{container}"}}}}]}},"scopeLogs":[{{"logRecords":[{}]}}]}}"#,
            records(container, parity)
        )
    };
    format!(
        r#"{{"resourceLogs":[{},{}]}}"#,
        resource("web", 0),
        resource("db", 1)
    )
}

#[test]
fn logs_are_searched_paged_and_tailed_and_survive_a_restart() {
    let dir = Scratch::new("collector-logs");
    let (port, otlp) = (free_port(), free_port());
    let collector = collector(&dir, port, otlp, "");
    let start_ns = now_us() * 1000 - 60_000_000_000;
    let (status, body) = post(
        otlp,
        "/v1/logs",
        "application/json",
        otlp_logs(start_ns, 500).as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    let records =
        |path: &str| -> Vec<Value> { json(port, path)["records"].as_array().unwrap().clone() };
    wait_for(Duration::from_secs(10), "the records in the store", || {
        records("/api/v1/logs?limit=1000").len() == 500
    });
    // Without tokens, only requests addressed to loopback are answered
    // (a page on another name pointed at 127.0.0.1 reads nothing).
    let mut rebound = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    rebound
        .write_all(b"GET /api/v1/logs HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut rebound, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let newest = records("/api/v1/logs?limit=1");
    assert_eq!(newest[0]["body"], "request 499 served by db");
    assert_eq!(newest[0]["resource"]["container.name"], "db");
    assert_eq!(records("/api/v1/logs?limit=1000&container=web").len(), 250);
    assert_eq!(records("/api/v1/logs?limit=1000&node=node-b").len(), 0);
    assert_eq!(records("/api/v1/logs?limit=1000&severity=error").len(), 50);
    // Every tenth record is an error, and all of them are web's.
    let declined = records("/api/v1/logs?limit=1000&q=declined+web");
    assert_eq!(declined.len(), 50);
    assert_eq!(records("/api/v1/logs?limit=1000&q=declined+db").len(), 0);
    assert!(
        declined
            .iter()
            .all(|r| r["body"].as_str().unwrap().contains("declined by web"))
    );
    assert_eq!(records("/api/v1/logs?q=%22payment+40+declined%22").len(), 1);
    let traced = records("/api/v1/logs?trace_id=0af7651916cd43dd8448eb211c80319c");
    assert_eq!(traced.len(), 1);
    assert_eq!(traced[0]["span_id"], "b7ad6b7169203331");

    // Pages join up: every record once, newest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/logs?limit=64&cursor={c}"),
            None => "/api/v1/logs?limit=64".to_owned(),
        };
        let page = json(port, &path);
        seen.extend(
            page["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap()),
        );
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    // Every record once: no page repeats or skips one.
    assert_eq!(seen.len(), 500);
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 500, "a record came on two pages");

    let histogram = json(port, "/api/v1/logs/histogram?buckets=10&q=declined");
    let total: u64 = histogram["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(total, 50);
    let usage = json(port, "/api/v1/usage?lookback=1h");
    let web = usage["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["container"] == "web")
        .unwrap();
    let records_of_web: u64 = web["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(records_of_web, 250);

    for (path, message) in [
        ("/api/v1/logs?limit=0", "limit=0: expected 1 to 1000"),
        (
            "/api/v1/logs?stream=out",
            "stream=\"out\": expected stdout, stderr or other",
        ),
        ("/api/v1/logs?q=%22open", "q=\"\\\"open\": a quote"),
        (
            "/api/v1/logs?start=yesterday",
            "start=\"yesterday\": expected epoch milliseconds",
        ),
        (
            "/api/v1/logs?lookback=400d",
            "start: the range is longer than 31 days",
        ),
        ("/api/v1/logs?cursor=zz", "cursor=\"zz\": not a cursor"),
    ] {
        let (status, body) = get(port, path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.starts_with(message), "{path}: {body}");
    }

    // A live tail: what arrives after it starts, as Server-Sent Events.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET /api/v1/logs/tail?container=web HTTP/1.1\r\nHost: localhost\r\n\r\n"
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut events = BufReader::new(stream);
    let mut line = String::new();
    // `ready` names where the tail starts: the newest record's id.
    // A closed stream ends the test, not a loop that reads nothing forever.
    let mut next_line = |line: &mut String| {
        line.clear();
        assert!(events.read_line(line).unwrap() > 0, "the tail closed");
    };
    while !line.starts_with("event: ready") {
        next_line(&mut line);
    }
    next_line(&mut line);
    let start: i64 = line
        .trim_end()
        .strip_prefix("data: ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(start > 0, "{line}");
    let later = now_us() * 1000;
    let (status, body) = post(
        otlp,
        "/v1/logs",
        "application/json",
        otlp_logs(later, 4).as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    let mut data = Vec::new();
    while data.len() < 2 {
        next_line(&mut line);
        if let Some(event) = line.trim_end().strip_prefix("data: ") {
            data.push(serde_json::from_str::<Value>(event).unwrap()["body"].clone());
        }
    }
    assert_eq!(
        data,
        [
            serde_json::json!("ERROR payment 0 declined by web"),
            serde_json::json!("request 2 served by web")
        ]
    );

    // Stopped and started again: everything is still there.
    let (code, said) = collector.stop();
    assert_eq!(code, Some(0), "{said}");
    let _collector = self::collector(&dir, port, otlp, "");
    assert_eq!(records("/api/v1/logs?limit=1000").len(), 504);
}

#[test]
fn query_tokens_guard_the_api() {
    let dir = Scratch::new("collector-tokens");
    let (port, otlp) = (free_port(), free_port());
    let _collector = collector(
        &dir,
        port,
        otlp,
        "tokens = [{ token = \"0123456789abcdef-reader\" }]",
    );
    assert_eq!(get(port, "/api/v2/services").0, 401);
    let (status, body) = request(
        port,
        "GET",
        "/api/v2/services",
        &[("authorization", "Bearer 0123456789abcdef-reader")],
        b"",
    );
    assert_eq!((status, body.as_str()), (200, "[]"));
    let wrong = request(
        port,
        "GET",
        "/api/v2/services",
        &[("authorization", "Bearer 0123456789abcdef-readex")],
        b"",
    );
    assert_eq!(wrong.0, 401);

    // A browser: the UI asks it to sign in (its stylesheet comes anyway),
    // the form sets the token as a cookie, and a wrong token or a foreign
    // place to go next are refused.
    let (status, form) = get(port, "/logs?q=error");
    assert_eq!(status, 401);
    assert!(
        form.contains("name=\"then\" value=\"/logs?q=error\""),
        "{form}"
    );
    assert_eq!(get(port, "/ui/weir.css").0, 200);
    // The whole answer, headers too, to `method path` with `headers`.
    let exchange = |method: &str, path: &str, headers: &str, body: &str| {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer.to_ascii_lowercase()
    };
    let sign_in = |body: &str| {
        let form = "content-type: application/x-www-form-urlencoded\r\n";
        exchange("POST", "/ui/sign-in", form, body)
    };
    let answer = sign_in("token=0123456789abcdef-reader&then=%2Flogs%3Fq%3Derror");
    assert!(answer.starts_with("http/1.1 303"), "{answer}");
    assert!(answer.contains("location: /logs?q=error"), "{answer}");
    assert!(
        answer.contains(
            "set-cookie: weir_token=0123456789abcdef-reader; path=/; max-age=43200; httponly; samesite=strict\r\n"
        ),
        "{answer}"
    );
    // Pages load nothing but their own script and style, and are never
    // framed.
    let page = exchange(
        "GET",
        "/",
        "cookie: weir_token=0123456789abcdef-reader\r\n",
        "",
    );
    assert!(page.starts_with("http/1.1 200"), "{page}");
    assert!(
        page.contains("content-security-policy: default-src 'none'; script-src 'self';"),
        "{page}"
    );
    assert!(page.contains("frame-ancestors 'none'"), "{page}");
    // Another origin's page may read the Zipkin API with a token: its
    // browser asks first (a preflight), without the token.
    let preflight = exchange(
        "OPTIONS",
        "/api/v2/services",
        "origin: https://grafana.example\r\naccess-control-request-method: GET\r\n\
         access-control-request-headers: authorization\r\n",
        "",
    );
    assert!(preflight.starts_with("http/1.1 204"), "{preflight}");
    assert!(
        preflight.contains("access-control-allow-origin: *"),
        "{preflight}"
    );
    assert!(
        preflight.contains("access-control-allow-headers: authorization"),
        "{preflight}"
    );
    let (status, page) = request(
        port,
        "GET",
        "/logs?q=error",
        &[("cookie", "weir_token=0123456789abcdef-reader")],
        b"",
    );
    assert_eq!(status, 200, "{page}");
    let foreign = sign_in("token=0123456789abcdef-reader&then=%2F%5Cevil.example");
    assert!(foreign.contains("location: /\r\n"), "{foreign}");
    assert!(sign_in("token=not-the-token-at-all").starts_with("http/1.1 401"));

    // A form another site's page sent is refused, and is no guess.
    let form = "content-type: application/x-www-form-urlencoded\r\n\
                origin: https://evil.example\r\n";
    let cross = exchange("POST", "/ui/sign-in", form, "token=0123456789abcdef-guess");
    assert!(cross.starts_with("http/1.1 403"), "{cross}");

    // A client that keeps guessing is shut out, the right token and all,
    // for the rest of a minute: two different wrong tokens so far (the
    // same one again counts once), and the API and the form count together.
    let bearer = |token: &str| {
        let header = format!("authorization: Bearer {token}\r\n");
        exchange("GET", "/api/v2/services", &header, "")
    };
    for _ in 0..20 {
        assert!(bearer("0123456789abcdef-readex").starts_with("http/1.1 401"));
    }
    for guess in 2..10 {
        let answer = bearer(&format!("0123456789abcdef-guess{guess}"));
        assert!(
            answer.starts_with("http/1.1 401"),
            "guess {guess}: {answer}"
        );
    }
    let shut_out = bearer("0123456789abcdef-reader");
    assert!(shut_out.starts_with("http/1.1 429"), "{shut_out}");
    assert!(shut_out.contains("retry-after: 60"), "{shut_out}");
    assert!(shut_out.contains("too many wrong tokens"), "{shut_out}");
    let form = sign_in("token=0123456789abcdef-reader");
    assert!(form.starts_with("http/1.1 429"), "{form}");
    // Asking without a token is no guess: still the form.
    assert_eq!(get(port, "/logs").0, 401);
}

#[test]
fn the_collector_runs_on_its_embedded_defaults() {
    // Zipkin's, OTLP's and Forward's own ports: skip if something else
    // holds them here.
    for port in [9411, 4318, 24224, 9596] {
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            eprintln!("skipped: port {port} is in use on this machine");
            return;
        }
    }
    let dir = Scratch::new("collector-defaults");
    let stderr = dir.join("collector.stderr");
    let child = std::process::Command::new(WEIR)
        .arg("collector")
        .current_dir(&dir.path)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let collector = Agent { child, stderr };
    wait_for(Duration::from_secs(20), "the default listeners", || {
        [9411, 4318, 24224]
            .iter()
            .all(|port| std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok())
    });
    let start = now_us();
    let (status, body) = post(
        9411,
        "/api/v2/spans",
        "application/json",
        spans(start).as_bytes(),
    );
    assert_eq!(status, 202, "{body}");
    wait_for(Duration::from_secs(10), "the spans", || {
        get(9411, "/api/v2/services").1 == r#"["backend","batch","frontend"]"#
    });
    assert!(dir.join("weir-data/weir.db").exists());
    let (code, said) = collector.stop();
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("API and UI at http://127.0.0.1:9411/"),
        "{said}"
    );
    assert!(said.contains("listens on loopback only"), "{said}");
}

#[test]
fn ingest_tokens_put_records_in_their_tenant_whatever_the_sender_says() {
    let dir = Scratch::new("collector-ingest-tokens");
    let (port, otlp, open) = (free_port(), free_port(), free_port());
    let config = format!(
        "data_dir = \"{}\"\n[api]\nenabled = false\n\
         [sources.open]\ntype = \"otlp\"\naddress = \"127.0.0.1:{open}\"\n\
         [sources.zipkin]\ntype = \"zipkin\"\naddress = \"127.0.0.1:{port}\"\ntenant = \"team-z\"\n\
         [sources.otlp]\ntype = \"otlp\"\naddress = \"127.0.0.1:{otlp}\"\n\
         tokens = [{{ token = \"team-a-sends-0123456789\", tenant = \"team-a\" }},\n\
                   {{ token = \"trusted-agent-0123456789\" }}]\n\
         [sinks.store]\ntype = \"store\"\ninputs = [\"zipkin\", \"otlp\", \"open\"]\n\
         batch = {{ timeout = \"20ms\" }}\n\
         [query]\naddress = \"127.0.0.1:{port}\"\n\
         tokens = [{{ token = \"team-a-reads-0123456789\", tenant = \"team-a\" }},\n\
                   {{ token = \"team-b-reads-0123456789\", tenant = \"team-b\" }},\n\
                   {{ token = \"admin-reads-0123456789\" }}]\n",
        dir.join("data").display()
    );
    let _collector = Agent::start_as("collector", &dir, &config);
    wait_for(Duration::from_secs(20), "the collector's listeners", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && std::net::TcpStream::connect(("127.0.0.1", otlp)).is_ok()
            && std::net::TcpStream::connect(("127.0.0.1", open)).is_ok()
    });
    // Every sender claims team-b in its resource.
    let start_ns = now_us() * 1000 - 60_000_000_000;
    let claiming_b = |first: usize| {
        otlp_logs(start_ns + first as i64 * 1_000_000, 10).replace(
            r#"{"key":"host.name""#,
            r#"{"key":"weir.tenant","value":{"stringValue":"team-b"}},{"key":"host.name""#,
        )
    };
    let send_to = |port: u16, token: Option<&str>, body: &str| {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(bearer) = &bearer {
            headers.push(("authorization", bearer.as_str()));
        }
        request(port, "POST", "/v1/logs", &headers, body.as_bytes()).0
    };
    let send = |token: Option<&str>, body: &str| send_to(otlp, token, body);
    assert_eq!(send(None, &claiming_b(0)), 401);
    assert_eq!(send(Some("team-b-reads-0123456789"), &claiming_b(0)), 401);
    assert_eq!(send(Some("team-a-sends-0123456789"), &claiming_b(0)), 200);
    assert_eq!(send(Some("trusted-agent-0123456789"), &claiming_b(1)), 200);
    // A source without tokens takes anyone's records, but not their word
    // on whose they are.
    assert_eq!(send_to(open, None, &claiming_b(2)), 200);
    let (status, body) = post(
        port,
        "/api/v2/spans",
        "application/json",
        spans(now_us() - 5_000_000).as_bytes(),
    );
    assert!(status == 202, "{status} {body}");

    let as_reader = |token: &str, path: &str| -> Value {
        let (status, body) = request(
            port,
            "GET",
            path,
            &[("authorization", &format!("Bearer {token}"))],
            b"",
        );
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    };
    let tenants = |token: &str| -> Vec<String> {
        as_reader(token, "/api/v1/logs?limit=1000")["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r["resource"]["weir.tenant"]
                    .as_str()
                    .unwrap_or("none")
                    .to_owned()
            })
            .collect()
    };
    wait_for(Duration::from_secs(10), "every record in the store", || {
        tenants("admin-reads-0123456789").len() == 30
            && as_reader("admin-reads-0123456789", "/api/v2/services")
                .as_array()
                .is_some_and(|s| !s.is_empty())
    });
    // The team-a token's records are team-a's, whatever they said; the
    // trusted token's keep what the sender said.
    assert_eq!(tenants("team-a-reads-0123456789"), vec!["team-a"; 10]);
    assert_eq!(tenants("team-b-reads-0123456789"), vec!["team-b"; 10]);
    let mut all = tenants("admin-reads-0123456789");
    all.sort();
    assert_eq!(all[..10], vec!["none"; 10], "the open source's");
    // The spans are the zipkin source's tenant's: no one else's services.
    assert_eq!(
        as_reader("team-a-reads-0123456789", "/api/v2/services"),
        serde_json::json!([])
    );
    assert_eq!(
        as_reader("admin-reads-0123456789", "/api/v2/services"),
        serde_json::json!(["backend", "batch", "frontend"])
    );
}

#[test]
fn live_tails_are_capped_and_a_closed_one_frees_its_place() {
    let dir = Scratch::new("collector-tails");
    let (port, otlp) = (free_port(), free_port());
    let _collector = collector(&dir, port, otlp, "");
    let open_tail = || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(b"GET /api/v1/logs/tail HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        (status, reader)
    };
    let mut open = Vec::new();
    for _ in 0..32 {
        let (status, reader) = open_tail();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        open.push(reader);
    }
    let (status, _) = open_tail();
    assert!(status.starts_with("HTTP/1.1 503"), "{status}");
    drop(open.pop());
    wait_for(
        Duration::from_secs(10),
        "a place freed by a closed tail",
        || open_tail().0.starts_with("HTTP/1.1 200"),
    );
}
