//! The zipkin source against py_zipkin, a Zipkin reporter nobody here
//! wrote, in both of its v2 encodings: every span arrives with the fields
//! it reported.

use std::time::Duration;

use crate::common::*;

fn rfc3339_micros(us: i64) -> String {
    String::from_utf8(weir_agent::sink::ndjson::rfc3339(us * 1000).to_vec()).unwrap()
}

#[test]
fn py_zipkin_reports_spans_in_json_and_proto3() {
    let dir = Scratch::new("zipkin");
    let port = free_port();
    let out = dir.join("out.ndjson");
    let agent = Agent::start(
        &dir,
        &config(
            &dir.join("data"),
            None,
            &format!(
                "[sources.zipkin]\ntype = \"zipkin\"\naddress = \"127.0.0.1:{port}\"\n[sinks.out]\ntype = \"file\"\ninputs = [\"zipkin\"]\npath = \"{}\"\nbatch = {{ timeout = \"20ms\" }}\n",
                out.display()
            ),
        ),
    );
    wait_for(Duration::from_secs(10), "the listener", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let port = port.to_string();
    let printed = client("zipkin_client.py", &["spans", "127.0.0.1", &port, "json"]);
    let sent: Vec<serde_json::Value> = printed
        .lines()
        .flat_map(|l| serde_json::from_str::<Vec<serde_json::Value>>(l).unwrap())
        .collect();
    assert_eq!(sent.len(), 2, "{printed}");
    client("zipkin_client.py", &["spans", "127.0.0.1", &port, "proto3"]);
    wait_for(Duration::from_secs(10), "4 spans", || {
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
            .find(|w| w["span_id"] == sent["id"])
            .unwrap_or_else(|| panic!("{} not written: {written:#?}", sent["id"]));
        let span = &got["span"];
        assert_eq!(got["trace_id"], sent["traceId"]);
        assert_eq!(span["name"], sent["name"]);
        assert_eq!(
            span["kind"],
            sent["kind"].as_str().unwrap().to_lowercase(),
            "{got}"
        );
        match sent["parentId"].as_str() {
            Some(parent) => assert_eq!(span["parent_span_id"], parent),
            None => assert!(span.get("parent_span_id").is_none()),
        }
        let start = sent["timestamp"].as_i64().unwrap();
        assert_eq!(got["time"], rfc3339_micros(start));
        assert_eq!(
            span["end_time"],
            rfc3339_micros(start + sent["duration"].as_i64().unwrap())
        );
        assert_eq!(
            got["resource"]["service.name"],
            sent["localEndpoint"]["serviceName"]
        );
        for (key, value) in sent["tags"].as_object().into_iter().flatten() {
            assert_eq!(&got["attributes"][key], value, "tag {key}");
        }
        for (i, annotation) in sent["annotations"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            assert_eq!(span["events"][i]["name"], annotation["value"]);
            assert_eq!(
                span["events"][i]["time"],
                rfc3339_micros(annotation["timestamp"].as_i64().unwrap())
            );
        }
        if let Some(remote) = sent.get("remoteEndpoint") {
            let attributes = &got["attributes"];
            assert_eq!(
                attributes["zipkin.remote_endpoint.service_name"],
                remote["serviceName"]
            );
            assert_eq!(attributes["zipkin.remote_endpoint.ipv4"], remote["ipv4"]);
            assert_eq!(
                attributes["zipkin.remote_endpoint.port"],
                remote["port"].to_string()
            );
        }
    }
    // The proto3 report: the same spans of another trace.
    let names = |trace: &serde_json::Value| {
        let mut names: Vec<String> = written
            .iter()
            .filter(|w| w["trace_id"] == *trace)
            .map(|w| format!("{} {}", w["span"]["name"], w["span"]["kind"]))
            .collect();
        names.sort();
        names
    };
    let other = written
        .iter()
        .map(|w| &w["trace_id"])
        .find(|t| **t != sent[0]["traceId"])
        .expect("the proto3 trace");
    assert_eq!(names(other), names(&sent[0]["traceId"]));
    let (code, said) = agent.stop();
    assert_eq!(code, Some(0), "{said}");
}
