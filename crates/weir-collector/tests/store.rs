//! The SQLite store: what goes in comes back out, searches find what they
//! should and only that, pages join up, retention keeps its bounds, and a
//! reopened store has everything committed before.

use std::path::PathBuf;
use std::time::Duration;

use weir_agent::record::{LogRecord, Stream, Value};
use weir_agent::zipkin;
use weir_collector::store::sqlite::{Retention, SqliteStore};
use weir_collector::store::{Cursor, LogQuery, Scope, SourceFilter, Store, TextQuery, TraceQuery};

const SECOND: i64 = 1_000_000_000;

fn now_ns() -> i64 {
    weir_monitor::format::timestamp::Timestamp::now().as_nanos() as i64
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn keep_all() -> Retention {
    Retention::new(Duration::from_secs(365 * 24 * 3600), 1 << 40, 0)
}

/// The store at `path`, opened to keep records for a minute.
fn keeping_a_minute(path: &std::path::Path) -> SqliteStore {
    SqliteStore::open(path, Retention::new(Duration::from_secs(60), 1 << 40, 0)).unwrap()
}

/// The records of `container` from the last two hours before `t`.
fn of_container(
    store: &SqliteStore,
    container: &str,
    t: i64,
) -> Vec<weir_collector::store::StoredLog> {
    store
        .logs(&LogQuery {
            sources: SourceFilter {
                container: Some(container.into()),
                ..SourceFilter::default()
            },
            ..everything(t - 7200 * SECOND, t + SECOND)
        })
        .unwrap()
        .records
}

fn log(time_ns: i64, container: &str, body: &str) -> LogRecord {
    LogRecord {
        time_ns,
        observed_ns: time_ns + 5,
        stream: Stream::Stdout,
        body: body.as_bytes().to_vec(),
        resource: vec![
            ("host.name".into(), "node-1".into()),
            ("container.name".into(), container.into()),
            (
                "container.label.app".into(),
                format!("{container}-app").into(),
            ),
        ],
        ..LogRecord::default()
    }
}

/// `n` records of `container` saying `body`, a nanosecond apart from
/// `first_ns` on.
fn logs_from(first_ns: i64, n: i64, container: &str, body: &str) -> Vec<LogRecord> {
    (0..n).map(|i| log(first_ns + i, container, body)).collect()
}

/// Appends `records` in batches of the sizes `cuts` gives in turn, so
/// that batches end anywhere within the store's blocks.
fn append_in_cuts(store: &SqliteStore, records: &[LogRecord], cuts: &[usize]) {
    let mut rest = records;
    for n in cuts.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (batch, after) = rest.split_at((*n).min(rest.len()));
        store.append(batch).unwrap();
        rest = after;
    }
}

fn everything(from_ns: i64, to_ns: i64) -> LogQuery {
    LogQuery {
        from_ns,
        to_ns,
        limit: 1000,
        ..LogQuery::default()
    }
}

#[test]
fn log_records_come_back_exactly_as_written() {
    let dir = temp_dir("roundtrip");
    let store = SqliteStore::open(&dir.join("weir.db"), keep_all()).unwrap();
    let t = now_ns();
    let mut odd = log(t, "web", "");
    odd.body = vec![0, 0xff, b'\r', b'\n', 0xc3];
    odd.stream = Stream::Stderr;
    odd.severity = Some(3);
    odd.partial = true;
    odd.trace_id = Some([7; 16]);
    odd.span_id = Some([8; 8]);
    odd.attributes = vec![
        ("code".into(), Value::Int(507)),
        ("ratio".into(), Value::Float(0.5)),
        ("ok".into(), Value::Bool(false)),
        ("user".into(), Value::Str("ann".into())),
    ];
    let written = vec![log(t - 2, "web", "first"), log(t - 1, "db", "second"), odd];
    store.append(&written).unwrap();
    let page = store.logs(&everything(t - SECOND, t + SECOND)).unwrap();
    let read: Vec<LogRecord> = page.records.into_iter().map(|r| r.record).rev().collect();
    assert_eq!(read, written);
}

#[test]
fn filters_select_by_source_stream_severity_trace_and_text() {
    let dir = temp_dir("filters");
    let store = SqliteStore::open(&dir.join("weir.db"), keep_all()).unwrap();
    let t = now_ns();
    let mut records = Vec::new();
    for i in 0..2000i64 {
        let container = ["web", "db", "cache"][(i % 3) as usize];
        let mut record = log(
            t - 10_000 + i,
            container,
            &format!("request {i} took {}ms", i % 7),
        );
        if i % 10 == 0 {
            record.body = format!("ERROR timeout talking to db-{i}").into_bytes();
            record.severity = Some(3);
            record.stream = Stream::Stderr;
        }
        if i == 1234 {
            record.trace_id = Some([0x42; 16]);
        }
        records.push(record);
    }
    for batch in records.chunks(300) {
        store.append(batch).unwrap();
    }
    let base = everything(t - SECOND, t + SECOND);
    let count = |query: LogQuery| store.logs(&query).unwrap().records.len();
    let web = SourceFilter {
        container: Some("web".into()),
        ..SourceFilter::default()
    };
    assert_eq!(
        count(LogQuery {
            sources: web,
            ..base.clone()
        }),
        667
    );
    let label = SourceFilter {
        labels: vec![("container.label.app".into(), "db-app".into())],
        ..SourceFilter::default()
    };
    assert_eq!(
        count(LogQuery {
            sources: label,
            ..base.clone()
        }),
        667
    );
    let nowhere = SourceFilter {
        node: Some("node-2".into()),
        ..SourceFilter::default()
    };
    assert_eq!(
        count(LogQuery {
            sources: nowhere,
            ..base.clone()
        }),
        0
    );
    assert_eq!(
        count(LogQuery {
            stream: Some(Stream::Stderr),
            ..base.clone()
        }),
        200
    );
    assert_eq!(
        count(LogQuery {
            severity_at_most: Some(4),
            ..base.clone()
        }),
        200
    );
    let traced = store
        .logs(&LogQuery {
            trace_id: Some([0x42; 16]),
            ..base.clone()
        })
        .unwrap();
    assert_eq!(traced.records.len(), 1);
    assert_eq!(traced.records[0].record.body, b"request 1234 took 2ms");
    // Full text: words, case aside, and phrases.
    let text = |q: &str| LogQuery {
        text: Some(TextQuery::parse(q).unwrap()),
        ..base.clone()
    };
    assert_eq!(count(text("timeout")), 200);
    assert_eq!(count(text("TIMEOUT db")), 200);
    assert_eq!(count(text("\"took 3ms\"")), 257);
    assert_eq!(count(text("db-1230")), 1);
    assert_eq!(count(text("nothing-like-this")), 0);
    let found = store.logs(&text("request 1999")).unwrap();
    assert_eq!(found.records.len(), 1);
    assert_eq!(found.records[0].record.body, b"request 1999 took 4ms");
}

#[test]
fn pages_join_up_newest_first_without_gap_or_repeat() {
    let dir = temp_dir("pages");
    let store = SqliteStore::open(&dir.join("weir.db"), keep_all()).unwrap();
    let t = now_ns();
    // Out of time order, and several records sharing a time.
    let records: Vec<LogRecord> = (0..1000i64)
        .map(|i| log(t - ((i * 7919) % 500), "web", &format!("line {i} ok")))
        .collect();
    store.append(&records).unwrap();
    for text in [None, Some("ok")] {
        let mut seen = Vec::new();
        let mut before: Option<Cursor> = None;
        loop {
            let page = store
                .logs(&LogQuery {
                    before,
                    limit: 64,
                    text: text.map(|t| TextQuery::parse(t).unwrap()),
                    ..everything(t - SECOND, t + SECOND)
                })
                .unwrap();
            seen.extend(page.records.iter().map(|r| (r.record.time_ns, r.id)));
            match page.next {
                Some(next) => before = Some(next),
                None => break,
            }
        }
        assert_eq!(seen.len(), 1000, "text {text:?}");
        assert!(
            seen.windows(2).all(|w| w[0] > w[1]),
            "newest first, text {text:?}"
        );
    }
}

/// The Zipkin v2 example spans, with a 128-bit and a 64-bit trace id, a
/// shared server span, annotations and tags.
const SPANS: &str = r#"[
  {"traceId":"5982fe77008310cc80f1da5e10147517","id":"bd7a977555f6b982","name":"get /api",
   "timestamp":TS0,"duration":1431,"kind":"SERVER",
   "localEndpoint":{"serviceName":"Frontend","ipv4":"192.168.99.1","port":3306},
   "tags":{"http.method":"GET","http.path":"/api"}},
  {"traceId":"5982fe77008310cc80f1da5e10147517","parentId":"bd7a977555f6b982","id":"be2d01e33cc78d97",
   "name":"get","timestamp":TS1,"duration":1000,"kind":"CLIENT",
   "localEndpoint":{"serviceName":"frontend"},
   "remoteEndpoint":{"serviceName":"backend","ipv6":"2001:db8::c001","port":9000},
   "annotations":[{"timestamp":TS2,"value":"wire send"}],"tags":{"error":"timeout"}},
  {"traceId":"5982fe77008310cc80f1da5e10147517","parentId":"bd7a977555f6b982","id":"be2d01e33cc78d97",
   "name":"get","timestamp":TS1,"duration":900,"kind":"SERVER","shared":true,"debug":true,
   "localEndpoint":{"serviceName":"backend"}},
  {"traceId":"80f1da5e10147517","id":"0000000000000001","name":"cron",
   "timestamp":TS0,"duration":50,"localEndpoint":{"serviceName":"batch"}}
]"#;

fn example_spans(start_us: u64) -> Vec<zipkin::Span> {
    let text = SPANS
        .replace("TS0", &start_us.to_string())
        .replace("TS1", &(start_us + 100).to_string())
        .replace("TS2", &(start_us + 150).to_string());
    serde_json::from_str(&text).unwrap()
}

#[test]
fn spans_come_back_with_every_zipkin_field() {
    let dir = temp_dir("spans");
    let path = dir.join("weir.db");
    let store = SqliteStore::open(&path, keep_all()).unwrap();
    let start_us = (now_ns() / 1000) as u64;
    let spans = example_spans(start_us);
    let records: Vec<LogRecord> = spans
        .iter()
        .map(|s| zipkin::to_record(s.clone(), 1).unwrap())
        .collect();
    store.append(&records).unwrap();
    let id = |hex: &str| {
        let mut id = [0u8; 16];
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        id[16 - bytes.len()..].copy_from_slice(&bytes);
        id
    };
    let traces = store
        .traces_by_id(
            &Scope::All,
            &[
                id("5982fe77008310cc80f1da5e10147517"),
                id("80f1da5e10147517"),
            ],
        )
        .unwrap();
    let back: Vec<zipkin::Span> = traces
        .iter()
        .flatten()
        .map(|r| zipkin::from_record(r).unwrap())
        .collect();
    assert_eq!(back, spans);
    assert_eq!(
        store.services(&Scope::All).unwrap(),
        ["backend", "batch", "frontend"]
    );
    assert_eq!(
        store.span_names(&Scope::All, "FRONTEND").unwrap(),
        ["get", "get /api"]
    );
    assert_eq!(
        store.remote_services(&Scope::All, "frontend").unwrap(),
        ["backend"]
    );
    assert_eq!(
        store.tag_values(&Scope::All, "http.method", 10).unwrap(),
        ["GET"]
    );

    let window = |query: TraceQuery| TraceQuery {
        from_ns: (start_us as i64 - 1000) * 1000,
        to_ns: (start_us as i64 + 1000) * 1000,
        limit: 10,
        ..query
    };
    let found = |query: TraceQuery| -> Vec<usize> {
        store
            .traces(&window(query))
            .unwrap()
            .iter()
            .map(Vec::len)
            .collect()
    };
    assert_eq!(found(TraceQuery::default()).len(), 2);
    let frontend = || TraceQuery {
        service: Some("frontend".into()),
        ..TraceQuery::default()
    };
    assert_eq!(found(frontend()), [3]);
    let tagged = |annotations: Vec<(&str, Option<&str>)>| TraceQuery {
        annotations: annotations
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.map(str::to_owned)))
            .collect(),
        ..frontend()
    };
    assert_eq!(found(tagged(vec![("error", None)])), [3]);
    assert_eq!(found(tagged(vec![("wire send", None)])), [3]);
    assert_eq!(found(tagged(vec![("http.method", Some("GET"))])), [3]);
    assert_eq!(
        found(tagged(vec![("http.method", Some("POST"))])),
        Vec::<usize>::new()
    );
    let slow = TraceQuery {
        min_duration_us: Some(1200),
        ..frontend()
    };
    assert_eq!(found(slow), [3]);
    let slower = TraceQuery {
        min_duration_us: Some(1500),
        ..frontend()
    };
    assert_eq!(found(slower), Vec::<usize>::new());
    let named = TraceQuery {
        span_name: Some("Cron".into()),
        ..TraceQuery::default()
    };
    assert_eq!(found(named), [1]);

    // Reopened, the store has everything committed before.
    drop(store);
    let store = SqliteStore::open(&path, keep_all()).unwrap();
    assert_eq!(store.stats().unwrap().spans, 4);
    assert_eq!(store.services(&Scope::All).unwrap().len(), 3);
}

#[test]
fn a_tenant_sees_only_its_own_records() {
    let dir = temp_dir("tenants");
    let store = SqliteStore::open(&dir.join("weir.db"), keep_all()).unwrap();
    let t = now_ns();
    let mut theirs = log(t, "web", "secret of b");
    theirs.resource.push(("weir.tenant".into(), "b".into()));
    let mut ours = log(t, "web", "note of a");
    ours.resource.push(("weir.tenant".into(), "a".into()));
    store.append(&[theirs, ours]).unwrap();
    let scoped = LogQuery {
        sources: SourceFilter {
            scope: Scope::Tenant("a".into()),
            ..SourceFilter::default()
        },
        ..everything(t - SECOND, t + SECOND)
    };
    let page = store.logs(&scoped).unwrap();
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0].record.body, b"note of a");
    assert_eq!(page.records[0].tenant, "a");
}

#[test]
fn retention_deletes_what_is_too_old_and_keeps_the_size_bound() {
    let dir = temp_dir("retention");
    let path = dir.join("weir.db");
    let t = now_ns();
    {
        let store = SqliteStore::open(&path, keep_all()).unwrap();
        let old = logs_from(t - 3600 * SECOND, 1000, "web", "old");
        let new = logs_from(t - 999, 1000, "web", "new");
        store.append(&old).unwrap();
        store.append(&new).unwrap();
    }
    let store = keeping_a_minute(&path);
    let deleted = store.enforce_retention().unwrap();
    assert_eq!((deleted.aged, deleted.evicted), (1000, 0));
    let left = store
        .logs(&everything(t - 7200 * SECOND, t + SECOND))
        .unwrap();
    assert_eq!(left.records.len(), 1000);
    assert!(left.records.iter().all(|r| r.record.body == b"new"));
    // The old hour is empty, and the store holds only what is left.
    assert!(
        store
            .logs(&everything(t - 7200 * SECOND, t - 60 * SECOND))
            .unwrap()
            .records
            .is_empty()
    );
    assert_eq!(store.stats().unwrap().logs, 1000);

    // Size: 20 MiB of records into a store bounded at 4 MiB.
    let max_size = 4 << 20;
    let store = SqliteStore::open(
        &dir.join("small.db"),
        Retention::new(Duration::from_secs(3600), max_size, 0),
    )
    .unwrap();
    let body = "x".repeat(1000);
    for batch in 0..200i64 {
        let records: Vec<LogRecord> = (0..100)
            .map(|i| log(t - 100_000 + batch * 100 + i, "web", &body))
            .collect();
        store.append(&records).unwrap();
        store.enforce_retention().unwrap();
    }
    let stats = store.stats().unwrap();
    assert!(
        stats.bytes <= max_size + (1 << 20),
        "{} bytes in use",
        stats.bytes
    );
    assert!(
        stats.logs > 0 && stats.logs < 20_000,
        "{} logs kept",
        stats.logs
    );
    // What is kept is the newest.
    let newest = store
        .logs(&LogQuery {
            limit: 1,
            ..everything(t - SECOND, t + SECOND)
        })
        .unwrap();
    assert_eq!(
        newest.records[0].record.time_ns,
        t - 100_000 + 199 * 100 + 99
    );
}

#[test]
fn retention_forgets_the_sources_it_left_without_records() {
    let dir = temp_dir("forget-sources");
    let path = dir.join("weir.db");
    let t = now_ns();
    let spans_of = |service: &str, start_ns: i64| -> Vec<LogRecord> {
        example_spans((start_ns / 1000) as u64)
            .into_iter()
            .map(|mut span| {
                span.local_endpoint.as_mut().unwrap().service_name = Some(service.into());
                zipkin::to_record(span, 1).unwrap()
            })
            .collect()
    };
    let (old, all) = {
        let store = SqliteStore::open(&path, keep_all()).unwrap();
        store
            .append(&logs_from(t - 3600 * SECOND, 10, "gone", "old"))
            .unwrap();
        store
            .append(&spans_of("old-service", t - 3600 * SECOND))
            .unwrap();
        let old = store.stats().unwrap().sources;
        store
            .append(&logs_from(t - SECOND, 10, "web", "new"))
            .unwrap();
        store.append(&spans_of("new-service", t - SECOND)).unwrap();
        (old, store.stats().unwrap().sources)
    };
    let store = keeping_a_minute(&path);
    // A reader knows every source before retention runs.
    assert_eq!(
        store.services(&Scope::All).unwrap(),
        ["new-service", "old-service"]
    );
    store.enforce_retention().unwrap();
    assert!(old > 1 && all > old);
    assert_eq!(
        store.stats().unwrap().sources,
        all - old,
        "gone and old-service"
    );
    assert_eq!(store.services(&Scope::All).unwrap(), ["new-service"]);
    assert!(
        store
            .span_names(&Scope::All, "old-service")
            .unwrap()
            .is_empty()
    );
    // A source that comes back is a source again.
    store.append(&logs_from(t, 10, "gone", "back")).unwrap();
    let back = of_container(&store, "gone", t);
    assert_eq!(back.len(), 10);
    assert!(back.iter().all(|r| r.record.body == b"back"));
    assert_eq!(store.stats().unwrap().sources, all - old + 1);
}

#[test]
fn the_newest_source_is_kept_so_its_id_is_never_given_again() {
    let dir = temp_dir("newest-source");
    let path = dir.join("weir.db");
    let t = now_ns();
    {
        let store = SqliteStore::open(&path, keep_all()).unwrap();
        store
            .append(&logs_from(t - SECOND, 10, "web", "new"))
            .unwrap();
        // The newest source, whose records are all too old.
        store
            .append(&logs_from(t - 3600 * SECOND, 10, "late", "old"))
            .unwrap();
    }
    let store = keeping_a_minute(&path);
    store.enforce_retention().unwrap();
    assert_eq!(store.stats().unwrap().logs, 10);
    assert_eq!(
        store.stats().unwrap().sources,
        2,
        "late is kept: its id is the highest"
    );
    // A new source gets a new id: its records are its own.
    store.append(&logs_from(t, 5, "fresh", "fresh")).unwrap();
    assert_eq!(of_container(&store, "fresh", t).len(), 5);
    assert_eq!(store.stats().unwrap().sources, 3);
}

#[test]
fn a_filtered_tail_steps_past_records_that_do_not_match() {
    let dir = temp_dir("tail");
    let store = SqliteStore::open(&dir.join("weir.db"), keep_all()).unwrap();
    let t = now_ns();
    let mut records = logs_from(t, 250, "web", "noise");
    records.push(log(t + 250, "web", "the needle"));
    store.append(&records).unwrap();
    let query = LogQuery {
        text: Some(TextQuery::parse("needle").unwrap()),
        limit: 100,
        ..everything(i64::MIN, i64::MAX)
    };
    let mut after = 0;
    let mut found = Vec::new();
    for _ in 0..5 {
        let step = store.logs_after(&query, after).unwrap();
        found.extend(step.records.into_iter().map(|r| r.record.body));
        after = step.read_to;
        if !step.more {
            break;
        }
    }
    assert_eq!(found, [b"the needle".to_vec()]);
}

#[test]
fn a_tail_of_one_container_moves_past_the_others_records_at_once() {
    let dir = temp_dir("tail-source");
    let store = SqliteStore::open(&dir.join("weir.db"), keep_all()).unwrap();
    let t = now_ns();
    let mut query = everything(i64::MIN, i64::MAX);
    query.sources.container = Some("db".into());
    query.limit = 100;
    let start = store.last_log_id().unwrap();
    // 500 records of web, which SQL filters out: one step reads past them
    // all, so the next does not scan them again.
    let noise = logs_from(t, 500, "web", "noise");
    store.append(&noise).unwrap();
    let step = store.logs_after(&query, start).unwrap();
    assert!(step.records.is_empty() && !step.more);
    assert_eq!(step.read_to, store.last_log_id().unwrap());
    store.append(&[log(t + 600, "db", "wanted")]).unwrap();
    let next = store.logs_after(&query, step.read_to).unwrap();
    let bodies: Vec<Vec<u8>> = next.records.into_iter().map(|r| r.record.body).collect();
    assert_eq!(bodies, [b"wanted".to_vec()]);
}

#[test]
fn a_deleted_record_s_id_is_never_given_again() {
    let dir = temp_dir("ids");
    let path = dir.join("weir.db");
    let t = now_ns();
    let store = SqliteStore::open(&path, keep_all()).unwrap();
    // A batch that fills its last block of 256 exactly.
    let old = logs_from(t - 7200 * SECOND, 512, "web", "old");
    store.append(&old).unwrap();
    let old_id = store.last_log_id().unwrap();
    drop(store);
    let store = keeping_a_minute(&path);
    assert_eq!(store.enforce_retention().unwrap().aged, 512);
    assert_eq!(store.last_log_id().unwrap(), 0, "nothing left");
    store.append(&[log(t, "web", "new")]).unwrap();
    // A tail that had read the old record still sees the new one.
    let step = store
        .logs_after(&everything(i64::MIN, i64::MAX), old_id)
        .unwrap();
    assert_eq!(step.records.len(), 1);
    assert!(step.records[0].id > old_id);
}

mod against_a_model {
    //! Log searches over blocks, checked against the plainest model: the
    //! records as a list, filtered and sorted. Records arrive out of time
    //! order in batches that cut blocks anywhere; every query is walked
    //! through all its pages, counted in a histogram and tailed.

    use proptest::prelude::*;

    use super::*;

    const WORDS: [&str; 8] = [
        "alpha", "beta", "gamma", "error", "timeout", "x1", "x2", "x3",
    ];
    const CONTAINERS: [&str; 3] = ["web", "db", "api"];
    const STREAMS: [Stream; 3] = [Stream::Stdout, Stream::Stderr, Stream::Other];
    const BASE: i64 = 1_800_000_000 * SECOND;
    const MS: i64 = 1_000_000;

    #[derive(Debug, Clone)]
    struct Spec {
        time_ms: i64,
        container: usize,
        stream: usize,
        severity: Option<u8>,
        words: Vec<usize>,
        trace: Option<u8>,
    }

    fn spec() -> impl Strategy<Value = Spec> {
        (
            0..2_000i64,
            0..3usize,
            0..3usize,
            proptest::option::of(0..9u8),
            proptest::collection::vec(0..WORDS.len(), 1..4),
            proptest::option::weighted(0.2, 0..3u8),
        )
            .prop_map(
                |(time_ms, container, stream, severity, words, trace)| Spec {
                    time_ms,
                    container,
                    stream,
                    severity,
                    words,
                    trace,
                },
            )
    }

    fn record(spec: &Spec) -> LogRecord {
        let body: Vec<&str> = spec.words.iter().map(|&w| WORDS[w]).collect();
        let mut record = log(
            BASE + spec.time_ms * MS,
            CONTAINERS[spec.container],
            &body.join(" "),
        );
        record.stream = STREAMS[spec.stream];
        record.severity = spec.severity;
        record.trace_id = spec.trace.map(|t| [t + 1; 16]);
        record
    }

    #[derive(Debug, Clone)]
    struct Ask {
        from_ms: i64,
        span_ms: i64,
        stream: Option<usize>,
        severity: Option<u8>,
        text: Option<String>,
        trace: Option<u8>,
        container: Option<usize>,
        limit: usize,
    }

    fn ask() -> impl Strategy<Value = Ask> {
        let text = prop_oneof![
            (0..WORDS.len()).prop_map(|w| WORDS[w].to_owned()),
            (0..WORDS.len(), 0..WORDS.len())
                .prop_map(|(a, b)| format!("{} {}", WORDS[a], WORDS[b])),
            (0..WORDS.len(), 0..WORDS.len())
                .prop_map(|(a, b)| format!("\"{} {}\"", WORDS[a], WORDS[b])),
            Just("nosuchword".to_owned()),
            Just("ga*".to_owned()),
        ];
        (
            -100..2_000i64,
            1..2_200i64,
            proptest::option::weighted(0.3, 0..3usize),
            proptest::option::weighted(0.3, 0..8u8),
            proptest::option::weighted(0.5, text),
            proptest::option::weighted(0.2, 0..3u8),
            proptest::option::weighted(0.3, 0..3usize),
            1..60usize,
        )
            .prop_map(
                |(from_ms, span_ms, stream, severity, text, trace, container, limit)| Ask {
                    from_ms,
                    span_ms,
                    stream,
                    severity,
                    text,
                    trace,
                    container,
                    limit,
                },
            )
    }

    fn query(ask: &Ask) -> LogQuery {
        LogQuery {
            sources: SourceFilter {
                container: ask.container.map(|c| CONTAINERS[c].to_owned()),
                ..SourceFilter::default()
            },
            from_ns: BASE + ask.from_ms * MS,
            to_ns: BASE + (ask.from_ms + ask.span_ms) * MS,
            stream: ask.stream.map(|s| STREAMS[s]),
            severity_at_most: ask.severity,
            text: ask.text.as_deref().map(|t| TextQuery::parse(t).unwrap()),
            trace_id: ask.trace.map(|t| [t + 1; 16]),
            limit: ask.limit,
            ..LogQuery::default()
        }
    }

    /// Whether a body of [`WORDS`] joined by spaces holds the words of
    /// `text` (as [`ask`] writes it): each of them (or, ending in `*`, a
    /// word it begins) anywhere, or, quoted, side by side in order.
    /// Written apart from the store's matching, so that it checks it.
    fn model_matches(text: &str, body: &[u8]) -> bool {
        let body: Vec<&str> = std::str::from_utf8(body).unwrap().split(' ').collect();
        match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            Some(phrase) => {
                let phrase: Vec<&str> = phrase.split(' ').collect();
                body.windows(phrase.len()).any(|w| w == phrase.as_slice())
            }
            None => text.split(' ').all(|term| match term.strip_suffix('*') {
                Some(prefix) => body.iter().any(|word| word.starts_with(prefix)),
                None => body.contains(&term),
            }),
        }
    }

    /// What the query should find: (id, time), newest first.
    fn model(records: &[LogRecord], query: &LogQuery, text: Option<&str>) -> Vec<(i64, i64)> {
        let mut found: Vec<(i64, i64)> = records
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                (query.from_ns..query.to_ns).contains(&r.time_ns)
                    && query
                        .sources
                        .container
                        .as_deref()
                        .is_none_or(|c| r.resource("container.name") == Some(c))
                    && query.stream.is_none_or(|s| s == r.stream)
                    && query
                        .severity_at_most
                        .is_none_or(|most| r.severity.is_some_and(|s| s <= most))
                    && query.trace_id.is_none_or(|t| r.trace_id == Some(t))
                    && text.is_none_or(|t| model_matches(t, &r.body))
            })
            .map(|(i, r)| (i as i64 + 1, r.time_ns))
            .collect();
        found.sort_unstable_by_key(|&(id, time)| std::cmp::Reverse((time, id)));
        found
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

        #[test]
        fn searches_pages_histograms_and_tails_find_what_the_model_finds(
            specs in proptest::collection::vec(spec(), 1..1_500),
            cuts in proptest::collection::vec(1..400usize, 1..20),
            asks in proptest::collection::vec(ask(), 6),
            after_share in 0..100i64,
        ) {
            let dir = temp_dir("model");
            let store = SqliteStore::open(&dir.join("weir.db"), keep_all()).unwrap();
            let records: Vec<LogRecord> = specs.iter().map(record).collect();
            append_in_cuts(&store, &records, &cuts);
            for ask in &asks {
                let query = query(ask);
                let expected = model(&records, &query, ask.text.as_deref());

                // Every page, joined: the model's list.
                let mut got = Vec::new();
                let mut page_query = query.clone();
                loop {
                    let page = store.logs(&page_query).unwrap();
                    prop_assert!(page.records.len() <= query.limit);
                    got.extend(page.records.iter().map(|r| (r.id, r.record.time_ns)));
                    match page.next {
                        Some(cursor) => page_query.before = Some(cursor),
                        None => break,
                    }
                }
                prop_assert_eq!(&got, &expected, "{:?}", ask);

                // The histogram counts the same records.
                let step = 97 * MS;
                let buckets = store.log_histogram(&query, step).unwrap();
                let mut counts = vec![0u64; buckets.len()];
                for &(_, time) in &expected {
                    counts[((time - query.from_ns) / step) as usize] += 1;
                }
                let got_counts: Vec<u64> = buckets.iter().map(|b| b.count).collect();
                prop_assert_eq!(got_counts, counts, "{:?}", ask);

                // A tail from somewhere finds the newer ones, in id order.
                let after = records.len() as i64 * after_share / 100;
                let mut tailed = Vec::new();
                let mut from = after;
                loop {
                    let step = store.logs_after(&query, from).unwrap();
                    tailed.extend(step.records.iter().map(|r| r.id));
                    prop_assert!(step.read_to >= from);
                    from = step.read_to;
                    if !step.more {
                        break;
                    }
                }
                let mut newer: Vec<i64> =
                    expected.iter().map(|&(id, _)| id).filter(|&id| id > after).collect();
                newer.sort_unstable();
                prop_assert_eq!(tailed, newer, "{:?}", ask);
            }
            drop(store);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

mod traces_against_a_model {
    //! Trace searches over span blocks, checked against a model: every
    //! condition must hold for one span (of the service, if named), traces
    //! come newest first by their newest matching span, ties by id.

    use proptest::prelude::*;
    use weir_agent::record::{SpanEvent, SpanFields};

    use super::*;

    const SERVICES: [&str; 3] = ["front", "back", "db"];
    const NAMES: [&str; 3] = ["get", "Put", "query"];
    const METHODS: [&str; 2] = ["GET", "POST"];
    const BASE: i64 = 1_800_000_000 * SECOND;
    const MS: i64 = 1_000_000;

    #[derive(Debug, Clone)]
    struct Spec {
        trace: u8,
        service: usize,
        name: usize,
        start_ms: i64,
        duration_ms: i64,
        method: Option<usize>,
        remote: Option<usize>,
        error_event: bool,
    }

    fn spec() -> impl Strategy<Value = Spec> {
        (
            0..40u8,
            0..3usize,
            0..3usize,
            0..2_000i64,
            0..300i64,
            proptest::option::of(0..2usize),
            proptest::option::weighted(0.3, 0..3usize),
            proptest::bool::weighted(0.1),
        )
            .prop_map(
                |(trace, service, name, start_ms, duration_ms, method, remote, error_event)| Spec {
                    trace,
                    service,
                    name,
                    start_ms,
                    duration_ms,
                    method,
                    remote,
                    error_event,
                },
            )
    }

    fn span(spec: &Spec, index: usize) -> LogRecord {
        let start = BASE + spec.start_ms * MS;
        let mut attributes = Vec::new();
        if let Some(m) = spec.method {
            attributes.push(("http.method".into(), Value::Str(METHODS[m].into())));
        }
        if let Some(r) = spec.remote {
            attributes.push(("peer.service".into(), Value::Str(SERVICES[r].into())));
        }
        let mut span_id = [0u8; 8];
        span_id[..8].copy_from_slice(&(index as u64 + 1).to_be_bytes());
        LogRecord {
            time_ns: start,
            resource: vec![("service.name".into(), SERVICES[spec.service].into())],
            attributes,
            trace_id: Some([spec.trace + 1; 16]),
            span_id: Some(span_id),
            span: Some(Box::new(SpanFields {
                name: NAMES[spec.name].into(),
                end_ns: start + spec.duration_ms * MS,
                events: if spec.error_event {
                    vec![SpanEvent {
                        time_ns: start,
                        name: "error".into(),
                        attributes: Vec::new(),
                    }]
                } else {
                    Vec::new()
                },
                ..SpanFields::default()
            })),
            ..LogRecord::default()
        }
    }

    #[derive(Debug, Clone)]
    struct Ask {
        service: Option<usize>,
        name: Option<usize>,
        remote: Option<usize>,
        method: Option<usize>,
        error: bool,
        min_ms: Option<i64>,
        max_ms: Option<i64>,
        from_ms: i64,
        span_ms: i64,
        limit: usize,
    }

    fn ask() -> impl Strategy<Value = Ask> {
        (
            proptest::option::of(0..3usize),
            proptest::option::weighted(0.3, 0..3usize),
            proptest::option::weighted(0.2, 0..3usize),
            proptest::option::weighted(0.3, 0..2usize),
            proptest::bool::weighted(0.2),
            proptest::option::weighted(0.3, 0..300i64),
            proptest::option::weighted(0.2, 0..300i64),
            (-50..2_000i64, 1..2_200i64, 1..15usize),
        )
            .prop_map(
                |(
                    service,
                    name,
                    remote,
                    method,
                    error,
                    min_ms,
                    max_ms,
                    (from_ms, span_ms, limit),
                )| {
                    Ask {
                        service,
                        name,
                        remote,
                        method,
                        error,
                        min_ms,
                        max_ms,
                        from_ms,
                        span_ms,
                        limit,
                    }
                },
            )
    }

    fn query(ask: &Ask) -> TraceQuery {
        let mut annotations = Vec::new();
        if let Some(m) = ask.method {
            annotations.push(("http.method".to_owned(), Some(METHODS[m].to_owned())));
        }
        if ask.error {
            annotations.push(("error".to_owned(), None));
        }
        TraceQuery {
            scope: Scope::All,
            service: ask.service.map(|s| SERVICES[s].to_uppercase()),
            remote_service: ask.remote.map(|r| SERVICES[r].to_owned()),
            span_name: ask.name.map(|n| NAMES[n].to_uppercase()),
            annotations,
            min_duration_us: ask.min_ms.map(|d| d as u64 * 1000),
            max_duration_us: ask.max_ms.map(|d| d as u64 * 1000),
            from_ns: BASE + ask.from_ms * MS,
            to_ns: BASE + (ask.from_ms + ask.span_ms) * MS,
            limit: ask.limit,
        }
    }

    fn model(specs: &[Spec], ask: &Ask) -> Vec<u8> {
        let query = query(ask);
        let mut newest: std::collections::BTreeMap<u8, i64> = Default::default();
        for s in specs {
            let start = BASE + s.start_ms * MS;
            let duration_us = s.duration_ms * 1000;
            let holds = (query.from_ns..=query.to_ns).contains(&start)
                && ask.service.is_none_or(|v| v == s.service)
                && ask.name.is_none_or(|n| n == s.name)
                && ask.remote.is_none_or(|r| Some(r) == s.remote)
                && ask.method.is_none_or(|m| Some(m) == s.method)
                && (!ask.error || s.error_event)
                && ask.min_ms.is_none_or(|d| duration_us >= d * 1000)
                && ask.max_ms.is_none_or(|d| duration_us <= d * 1000);
            if holds {
                let at = newest.entry(s.trace).or_insert(i64::MIN);
                *at = (*at).max(start);
            }
        }
        let mut traces: Vec<(u8, i64)> = newest.into_iter().collect();
        traces.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        traces.truncate(ask.limit);
        traces.into_iter().map(|(t, _)| t).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

        #[test]
        fn trace_searches_find_what_the_model_finds(
            specs in proptest::collection::vec(spec(), 1..1_200),
            cuts in proptest::collection::vec(1..400usize, 1..10),
            asks in proptest::collection::vec(ask(), 8),
        ) {
            let dir = temp_dir("trace-model");
            let store = SqliteStore::open(&dir.join("weir.db"), keep_all()).unwrap();
            let spans: Vec<LogRecord> = specs.iter().enumerate().map(|(i, s)| span(s, i)).collect();
            append_in_cuts(&store, &spans, &cuts);
            for ask in &asks {
                let found = store.traces(&query(ask)).unwrap();
                let got: Vec<u8> = found
                    .iter()
                    .map(|t| t[0].trace_id.unwrap()[0] - 1)
                    .collect();
                prop_assert_eq!(got, model(&specs, ask), "{:?}", ask);
                // Each trace comes whole, in start order.
                for trace in &found {
                    let id = trace[0].trace_id.unwrap()[0] - 1;
                    let whole = specs.iter().filter(|s| s.trace == id).count();
                    prop_assert_eq!(trace.len(), whole);
                    prop_assert!(trace.windows(2).all(|w| w[0].time_ns <= w[1].time_ns));
                }
            }
            drop(store);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

#[test]
fn traces_that_tie_on_their_newest_start_go_by_id_across_blocks() {
    use weir_agent::record::SpanFields;
    let dir = temp_dir("trace-ties");
    let store = SqliteStore::open(&dir.join("weir.db"), keep_all()).unwrap();
    let t = now_ns();
    let span = |trace: u8, start: i64| LogRecord {
        time_ns: start,
        resource: vec![("service.name".into(), "svc".into())],
        trace_id: Some([trace; 16]),
        span_id: Some([trace; 8]),
        span: Some(Box::new(SpanFields {
            name: "op".into(),
            end_ns: start + 1000,
            ..SpanFields::default()
        })),
        ..LogRecord::default()
    };
    // Three batches, so three blocks: visited newest first, the one with
    // trace 5 (and 9) before the one with trace 2, which ties with 5.
    store.append(&[span(5, t - 100), span(9, t - 50)]).unwrap();
    store.append(&[span(2, t - 100)]).unwrap();
    store.append(&[span(7, t)]).unwrap();
    let found = store
        .traces(&TraceQuery {
            scope: Scope::All,
            from_ns: t - SECOND,
            to_ns: t + SECOND,
            limit: 3,
            ..TraceQuery::default()
        })
        .unwrap();
    let ids: Vec<u8> = found.iter().map(|t| t[0].trace_id.unwrap()[0]).collect();
    assert_eq!(ids, [7, 9, 2]);
}
