//! Service dependency links from spans, as Zipkin's `DependencyLinker`
//! draws them: a server (or consumer) span links the service that called
//! it to its own; a client (or producer) span with no instrumented child
//! links its service to the remote one it names. A span counts as an error
//! if it has an `error` tag (or an OpenTelemetry error status).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use weir_agent::record::{LogRecord, SpanKind, Value};

/// Calls from one service to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    pub parent: String,
    pub child: String,
    pub call_count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub error_count: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Calls and errors, by caller and then callee: looked up by name, so a
/// span that adds to a link known already copies no string.
pub type Links = BTreeMap<String, BTreeMap<String, (u64, u64)>>;

/// What linking needs of a span.
struct Node {
    id: [u8; 8],
    parent: Option<[u8; 8]>,
    kind: Option<SpanKind>,
    shared: bool,
    local: String,
    remote: String,
    error: bool,
}

/// Adds the links of each trace in `traces` to `links` (parent, child).
pub fn link(traces: &[Vec<LogRecord>], links: &mut Links) {
    for trace in traces {
        let nodes: Vec<Node> = trace.iter().filter_map(node).collect();
        // A span's parent: a shared server span's is the client span of
        // the same id; the others' their parent id's (the unshared one).
        let by_id: HashMap<[u8; 8], &Node> = nodes
            .iter()
            .filter(|n| !n.shared)
            .map(|n| (n.id, n))
            .collect();
        // A span has a child if a span names it as parent, or if another
        // (shared) span has its id. Looked up, not scanned: a trace may
        // have many thousands of spans.
        let parents: HashSet<[u8; 8]> = nodes.iter().filter_map(|n| n.parent).collect();
        let mut shared: HashMap<[u8; 8], usize> = HashMap::new();
        for n in nodes.iter().filter(|n| n.shared) {
            *shared.entry(n.id).or_default() += 1;
        }
        let has_children = |node: &Node| {
            parents.contains(&node.id)
                || shared.get(&node.id).copied().unwrap_or(0) > usize::from(node.shared)
        };
        let parent_of = |node: &Node| -> Option<&Node> {
            if node.shared {
                return by_id.get(&node.id).copied();
            }
            node.parent.and_then(|p| by_id.get(&p).copied())
        };
        // The nearest ancestor that is an RPC (has a kind); none past 64
        // local spans up (or round a loop of parents).
        let remote_ancestor = |node: &Node| {
            let mut current = parent_of(node);
            for _ in 0..64 {
                let ancestor = current?;
                if ancestor.kind.is_some() {
                    return Some(ancestor);
                }
                current = parent_of(ancestor);
            }
            None
        };
        for node in &nodes {
            let mut add = |parent: &str, child: &str, error: bool| {
                if parent.is_empty() || child.is_empty() {
                    return;
                }
                let callees = match links.get_mut(parent) {
                    Some(callees) => callees,
                    None => links.entry(parent.to_owned()).or_default(),
                };
                let entry = match callees.get_mut(child) {
                    Some(entry) => entry,
                    None => callees.entry(child.to_owned()).or_default(),
                };
                entry.0 += 1;
                entry.1 += u64::from(error);
            };
            let kind = match node.kind {
                Some(kind) => kind,
                // A local span with a remote service is a client call.
                None if !node.local.is_empty() && !node.remote.is_empty() => SpanKind::Client,
                None => continue,
            };
            match kind {
                SpanKind::Producer => add(&node.local, &node.remote, node.error),
                SpanKind::Consumer => add(&node.remote, &node.local, node.error),
                SpanKind::Server => {
                    let ancestor = remote_ancestor(node);
                    let caller = ancestor
                        .map(|a| a.local.to_owned())
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| node.remote.clone());
                    // A server span that is a client span's child (not
                    // shared with it) carries the client's error too.
                    let error = node.error
                        || ancestor.is_some_and(|a| {
                            a.kind == Some(SpanKind::Client)
                                && !node.shared
                                && node.parent == Some(a.id)
                                && a.error
                        });
                    add(&caller, &node.local, error);
                }
                SpanKind::Client => {
                    if has_children(node) {
                        continue;
                    }
                    if let Some(ancestor) = remote_ancestor(node)
                        && !ancestor.local.is_empty()
                        && ancestor.local != node.local
                    {
                        add(&ancestor.local, &node.local, false);
                    }
                    add(&node.local, &node.remote, node.error);
                }
                SpanKind::Unspecified | SpanKind::Internal => {}
            }
        }
    }
}

/// The links as Zipkin lists them.
pub fn list(links: Links) -> Vec<Link> {
    links
        .into_iter()
        .flat_map(|(parent, callees)| {
            callees
                .into_iter()
                .map(move |(child, (calls, errors))| Link {
                    parent: parent.clone(),
                    child,
                    call_count: calls,
                    error_count: errors,
                })
        })
        .collect()
}

fn node(record: &LogRecord) -> Option<Node> {
    let span = record.span.as_ref()?;
    Some(Node {
        id: record.span_id?,
        parent: span.parent_span_id,
        kind: match span.kind {
            SpanKind::Unspecified | SpanKind::Internal => None,
            kind => Some(kind),
        },
        shared: record
            .attributes
            .iter()
            .any(|(k, v)| k == "zipkin.shared" && *v == Value::Bool(true)),
        local: record.resource("service.name").unwrap_or("").to_lowercase(),
        remote: super::remote_service(record).to_lowercase(),
        error: super::is_error(record),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_agent::zipkin;

    fn trace(json: &str) -> Vec<LogRecord> {
        let spans: Vec<zipkin::Span> = serde_json::from_str(json).unwrap();
        spans
            .into_iter()
            .map(|s| zipkin::to_record(s, 1).unwrap())
            .collect()
    }

    fn links(traces: &[Vec<LogRecord>]) -> Vec<Link> {
        let mut links = BTreeMap::new();
        link(traces, &mut links);
        list(links)
    }

    #[test]
    fn a_caller_is_never_taken_from_a_local_span_too_far_up() {
        // A server span under 70 local spans of service a, called by c.
        let mut spans: Vec<String> = (1..=70u64)
            .map(|i| {
                let parent = if i == 1 {
                    String::new()
                } else {
                    format!(r#""parentId":"{:016x}","#, i - 1)
                };
                format!(
                    r#"{{"traceId":"aaaaaaaaaaaaaaaa",{parent}"id":"{i:016x}","localEndpoint":{{"serviceName":"a"}}}}"#
                )
            })
            .collect();
        spans.push(
            r#"{"traceId":"aaaaaaaaaaaaaaaa","parentId":"0000000000000046","id":"00000000000000ff","kind":"SERVER","localEndpoint":{"serviceName":"b"},"remoteEndpoint":{"serviceName":"c"}}"#.into(),
        );
        let deep = trace(&format!("[{}]", spans.join(",")));
        assert_eq!(
            links(&[deep]),
            [Link {
                parent: "c".into(),
                child: "b".into(),
                call_count: 1,
                error_count: 0
            }]
        );
    }

    #[test]
    fn a_split_rpc_links_once_and_takes_the_client_error() {
        let split = trace(
            r#"[{"traceId":"aaaaaaaaaaaaaaaa","id":"0000000000000001","kind":"SERVER","localEndpoint":{"serviceName":"web"}},
                {"traceId":"aaaaaaaaaaaaaaaa","parentId":"0000000000000001","id":"0000000000000002","kind":"CLIENT","localEndpoint":{"serviceName":"web"},"tags":{"error":""}},
                {"traceId":"aaaaaaaaaaaaaaaa","parentId":"0000000000000002","id":"0000000000000003","kind":"SERVER","localEndpoint":{"serviceName":"DB"}}]"#,
        );
        assert_eq!(
            links(&[split]),
            [Link {
                parent: "web".into(),
                child: "db".into(),
                call_count: 1,
                error_count: 1
            }]
        );
    }

    #[test]
    fn an_uninstrumented_callee_is_linked_from_the_client_and_messaging_through_the_broker() {
        let calls = trace(
            r#"[{"traceId":"bbbbbbbbbbbbbbbb","id":"0000000000000001","kind":"SERVER","localEndpoint":{"serviceName":"web"},"remoteEndpoint":{"serviceName":"browser"}},
                {"traceId":"bbbbbbbbbbbbbbbb","parentId":"0000000000000001","id":"0000000000000002","kind":"CLIENT","localEndpoint":{"serviceName":"web"},"remoteEndpoint":{"serviceName":"redis"}},
                {"traceId":"bbbbbbbbbbbbbbbb","parentId":"0000000000000001","id":"0000000000000004","kind":"PRODUCER","localEndpoint":{"serviceName":"web"},"remoteEndpoint":{"serviceName":"kafka"}},
                {"traceId":"bbbbbbbbbbbbbbbb","parentId":"0000000000000004","id":"0000000000000005","kind":"CONSUMER","localEndpoint":{"serviceName":"worker"},"remoteEndpoint":{"serviceName":"kafka"}}]"#,
        );
        let got: Vec<(String, String)> = links(&[calls])
            .into_iter()
            .map(|l| (l.parent, l.child))
            .collect();
        let want = [
            ("browser", "web"),
            ("kafka", "worker"),
            ("web", "kafka"),
            ("web", "redis"),
        ];
        assert_eq!(got, want.map(|(p, c)| (p.to_owned(), c.to_owned())));
    }
}
