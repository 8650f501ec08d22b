//! Ordered delivery to a real HTTP receiver that fails and stalls: the
//! records arrive in the order sent, with no gap, and a record arrives twice
//! only in a retry of the batch that failed.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use weir_agent::buffer::Buffer;
use weir_agent::buffer::WhenFull;
use weir_agent::buffer::memory::{MemoryBuffer, MemoryConfig};
use weir_agent::delivery::{self, Backoff, DeliveryConfig};
use weir_agent::metrics::SinkMetrics;
use weir_agent::receiver::{Answer, Receiver};
use weir_agent::record::LogRecord;
use weir_agent::sink::http::{BodyFormat, HttpConfig, HttpSink};
use weir_agent::sink::{Arrived, SendError, Sink};

/// Record `seq`, of stream key a, b or c.
fn record(seq: usize) -> Vec<u8> {
    let record = LogRecord {
        body: format!("seq {seq:06}").into_bytes(),
        resource: vec![("key".into(), key_of_seq(seq).into())],
        ..LogRecord::default()
    };
    let mut bytes = Vec::new();
    record.encode(&mut bytes);
    bytes
}

fn key_of_seq(seq: usize) -> &'static str {
    ["a", "b", "c"][seq % 3]
}

/// The stream key in an NDJSON line the http sink sent.
fn key_of_line(line: &str) -> &str {
    let at = line.find("\"key\":\"").expect("a keyed record") + 7;
    &line[at..at + 1]
}

/// The sequence number in an NDJSON line the http sink sent.
fn seq_of(line: &str) -> usize {
    let at = line.find("\"body\":\"seq ").expect("a record line") + 12;
    line[at..at + 6].parse().unwrap()
}

/// How the http sink is set up in a test.
#[derive(Default)]
struct Setup {
    gzip: bool,
    max_retry_age: Option<Duration>,
    headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
    order_key: Option<weir_agent::transform::expr::Field>,
}

fn dead_letter_path(test: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("weir-dl-{}-{test}.ndjson", std::process::id()))
}

fn deliver_through(receiver: &Receiver, count: usize, concurrency: usize) -> Arc<Buffer> {
    deliver_with(receiver, count, concurrency, "default", Setup::default())
}

fn deliver_with(
    receiver: &Receiver,
    count: usize,
    concurrency: usize,
    test: &str,
    setup: Setup,
) -> Arc<Buffer> {
    let buffer = Arc::new(Buffer::Memory(MemoryBuffer::new(MemoryConfig {
        max_bytes: 64 << 20,
        when_full: WhenFull::Block,
    })));
    let payloads: Vec<bytes::Bytes> = (0..count).map(|i| record(i).into()).collect();
    buffer.append(&payloads).unwrap();
    buffer.close().unwrap();
    let uri: hyper::Uri = format!("http://{}/ingest", receiver.addr).parse().unwrap();
    let factory: delivery::SinkFactory = Box::new(move || {
        let sink = HttpSink::new(HttpConfig {
            uri: uri.clone(),
            format: BodyFormat::Ndjson,
            headers: setup.headers.clone(),
            tls: None,
            gzip: setup.gzip,
            timeout: Duration::from_millis(300),
        })?;
        Ok(Box::new(sink) as Box<dyn Sink>)
    });
    run_delivery(
        &buffer,
        factory,
        test,
        concurrency,
        setup.max_retry_age,
        setup.order_key,
    );
    buffer
}

/// Runs delivery of what `buffer` holds (closed) to the sinks `factory`
/// makes, until it is all acknowledged; returns the sink's counters.
fn run_delivery(
    buffer: &Arc<Buffer>,
    factory: delivery::SinkFactory,
    test: &str,
    concurrency: usize,
    max_retry_age: Option<Duration>,
    order_key: Option<weir_agent::transform::expr::Field>,
) -> Arc<SinkMetrics> {
    let dead_letter = dead_letter_path(test);
    let config = DeliveryConfig {
        max_records: 100,
        max_bytes: 1 << 20,
        timeout: Duration::from_millis(10),
        concurrency,
        backoff: Backoff {
            initial: Duration::from_millis(1),
            cap: Duration::from_millis(20),
        },
        max_retry_age,
        dead_letter,
        order_key,
    };
    let metrics = Arc::new(SinkMetrics::new());
    let stop = Arc::new(AtomicBool::new(false));
    let handle = delivery::start(
        "test",
        Arc::clone(buffer),
        factory,
        config,
        Arc::clone(&metrics),
        stop,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !handle.is_finished() {
        assert!(Instant::now() < deadline, "delivery did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    handle.join().unwrap();
    metrics
}

#[test]
fn ordered_delivery_keeps_order_through_failures_and_timeouts() {
    // Every 5th request fails with 503; every 7th stalls past the sink's
    // timeout (the receiver has the batch, the sink does not know it).
    let receiver = Receiver::start(Arc::new(|n| {
        if n % 5 == 4 {
            Answer::Fail
        } else if n % 7 == 6 {
            Answer::Stall(Duration::from_millis(600))
        } else {
            Answer::Accept
        }
    }))
    .unwrap();
    let count = 5000;
    let buffer = deliver_through(&receiver, count, 1);
    let stats = buffer.stats();
    assert_eq!(stats.acked.records, count as u64);
    assert_eq!(stats.held.records, 0);
    let requests = receiver.requests();
    assert!(requests.iter().any(|r| r.answer == Answer::Fail));
    assert!(
        requests
            .iter()
            .any(|r| matches!(r.answer, Answer::Stall(_)))
    );
    // What the receiver accepted in time is exactly what was sent, in order.
    let accepted: Vec<usize> = requests
        .iter()
        .filter(|r| r.answer == Answer::Accept)
        .flat_map(|r| r.lines.iter().map(|l| seq_of(l)))
        .collect();
    assert_eq!(accepted, (0..count).collect::<Vec<_>>());
    // Every other request was the very batch that came next: a retry, before
    // anything newer.
    for (i, request) in requests.iter().enumerate() {
        if request.answer != Answer::Accept {
            let retried = requests[i + 1..]
                .iter()
                .find(|r| r.answer == Answer::Accept)
                .expect("a failed batch is retried until accepted");
            assert_eq!(request.lines, retried.lines, "request {i}");
        }
    }
}

#[test]
fn ordered_per_key_keeps_each_keys_order_and_retries_first() {
    let receiver = Receiver::start(Arc::new(|n| {
        if n % 5 == 4 {
            Answer::Fail
        } else if n % 11 == 10 {
            Answer::Stall(Duration::from_millis(600))
        } else {
            Answer::Accept
        }
    }))
    .unwrap();
    let count = 4000;
    let setup = Setup {
        order_key: Some(weir_agent::transform::expr::Field::Resource("key".into())),
        ..Setup::default()
    };
    let buffer = deliver_with(&receiver, count, 3, "keyed", setup);
    assert_eq!(buffer.stats().acked.records, count as u64);
    let requests = receiver.requests();
    assert!(requests.iter().any(|r| r.answer == Answer::Fail));
    for request in &requests {
        let key = key_of_line(&request.lines[0]);
        assert!(
            request.lines.iter().all(|l| key_of_line(l) == key),
            "a request carries one key"
        );
    }
    for key in ["a", "b", "c"] {
        let of_key = |r: &&weir_agent::receiver::Received| key_of_line(&r.lines[0]) == key;
        let accepted: Vec<usize> = requests
            .iter()
            .filter(of_key)
            .filter(|r| r.answer == Answer::Accept)
            .flat_map(|r| r.lines.iter().map(|l| seq_of(l)))
            .collect();
        let expected: Vec<usize> = (0..count).filter(|s| key_of_seq(*s) == key).collect();
        assert_eq!(accepted, expected, "key {key}: everything, in order");
        // A failed part of a key is retried before anything newer of it.
        let mine: Vec<&weir_agent::receiver::Received> = requests.iter().filter(of_key).collect();
        for (i, request) in mine.iter().enumerate() {
            if request.answer != Answer::Accept {
                let retried = mine[i + 1..]
                    .iter()
                    .find(|r| r.answer == Answer::Accept)
                    .expect("retried until accepted");
                assert_eq!(request.lines, retried.lines, "key {key}, request {i}");
            }
        }
    }
}

#[test]
fn concurrent_delivery_delivers_everything_once_acknowledged() {
    let receiver = Receiver::start(Arc::new(|n| {
        if n % 4 == 3 {
            Answer::Fail
        } else {
            Answer::Accept
        }
    }))
    .unwrap();
    let count = 3000;
    let buffer = deliver_through(&receiver, count, 4);
    assert_eq!(buffer.stats().acked.records, count as u64);
    let mut accepted: Vec<usize> = receiver
        .requests()
        .iter()
        .filter(|r| r.answer == Answer::Accept)
        .flat_map(|r| r.lines.iter().map(|l| seq_of(l)))
        .collect();
    accepted.sort_unstable();
    assert_eq!(
        accepted,
        (0..count).collect::<Vec<_>>(),
        "each once, none missing"
    );
}

#[test]
fn a_refused_batch_goes_to_the_dead_letter_file_with_the_reason() {
    // The second request is refused for good (400); the rest are accepted.
    let receiver = Receiver::start(Arc::new(|n| {
        if n == 1 {
            Answer::Reject
        } else {
            Answer::Accept
        }
    }))
    .unwrap();
    let dead_letter = dead_letter_path("refused");
    let _ = std::fs::remove_file(&dead_letter);
    let buffer = deliver_with(&receiver, 300, 1, "refused", Setup::default());
    assert_eq!(
        buffer.stats().acked.records,
        300,
        "a dead-lettered batch is acknowledged too"
    );
    let refused = &receiver.requests()[1];
    assert_eq!(refused.answer, Answer::Reject);
    let text = std::fs::read_to_string(&dead_letter).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        refused.lines.len(),
        "every refused record, once"
    );
    for (dead, sent) in lines.iter().zip(&refused.lines) {
        assert_eq!(seq_of(dead), seq_of(sent));
        assert!(
            dead.contains("\"weir_dead_letter\":{\"sink\":\"test\",\"reason\":\"http://"),
            "{dead}"
        );
        assert!(dead.contains("400 Bad Request"), "{dead}");
    }
    let accepted: usize = receiver
        .requests()
        .iter()
        .filter(|r| r.answer == Answer::Accept)
        .map(|r| r.lines.len())
        .sum();
    assert_eq!(
        accepted + lines.len(),
        300,
        "delivered + dead-lettered = sent"
    );
    let _ = std::fs::remove_file(&dead_letter);
}

/// Takes the even records of every batch and refuses the odd ones for
/// good, as an OTLP sink whose logs went and whose spans were refused.
struct TakesTheEvenOnes;

impl Sink for TakesTheEvenOnes {
    fn send(&mut self, _records: &[LogRecord]) -> Result<(), SendError> {
        Err(SendError::permanent("the odd ones are refused"))
    }

    fn arrived(&self, records: &[LogRecord]) -> Arrived {
        Arrived {
            records: records
                .iter()
                .map(|r| seq_of_body(&r.body) % 2 == 0)
                .collect(),
            refused: 1,
        }
    }
}

fn seq_of_body(body: &[u8]) -> usize {
    std::str::from_utf8(&body[4..]).unwrap().parse().unwrap()
}

#[test]
fn only_what_did_not_arrive_of_a_batch_sent_in_parts_is_dead_lettered() {
    let buffer = Arc::new(Buffer::Memory(MemoryBuffer::new(MemoryConfig {
        max_bytes: 64 << 20,
        when_full: WhenFull::Block,
    })));
    let payloads: Vec<bytes::Bytes> = (0..300).map(|i| record(i).into()).collect();
    buffer.append(&payloads).unwrap();
    buffer.close().unwrap();
    let dead_letter = dead_letter_path("in-parts");
    let _ = std::fs::remove_file(&dead_letter);
    let factory: delivery::SinkFactory =
        Box::new(|| Ok(Box::new(TakesTheEvenOnes) as Box<dyn Sink>));
    let metrics = run_delivery(&buffer, factory, "in-parts", 1, None, None);
    assert_eq!(buffer.stats().acked.records, 300);
    let dead: Vec<usize> = std::fs::read_to_string(&dead_letter)
        .unwrap()
        .lines()
        .map(seq_of)
        .collect();
    assert_eq!(dead, (0..300).filter(|i| i % 2 == 1).collect::<Vec<_>>());
    // Three batches of 100: 50 arrived of each, one of which the
    // destination then refused; each byte is counted once.
    let body_bytes = |seqs: &mut dyn Iterator<Item = usize>| -> u64 {
        seqs.map(|i| format!("seq {i:06}").len() as u64).sum()
    };
    assert_eq!(metrics.dead_lettered.get().0, 150);
    assert_eq!(metrics.delivered.get().0, 147);
    assert_eq!(metrics.refused_by_destination.get().0, 3);
    let (_, delivered) = metrics.delivered.get();
    let (_, refused) = metrics.refused_by_destination.get();
    let (_, dead_bytes) = metrics.dead_lettered.get();
    assert_eq!(delivered + refused + dead_bytes, body_bytes(&mut (0..300)));
    let _ = std::fs::remove_file(&dead_letter);
}

#[test]
fn gzip_and_headers_reach_the_destination() {
    let receiver = Receiver::start(Arc::new(|_| Answer::Accept)).unwrap();
    let setup = Setup {
        gzip: true,
        headers: vec![(
            hyper::header::AUTHORIZATION,
            hyper::header::HeaderValue::from_static("Bearer s3cret"),
        )],
        ..Setup::default()
    };
    deliver_with(&receiver, 500, 1, "gzip", setup);
    let requests = receiver.requests();
    let lines: Vec<usize> = requests
        .iter()
        .flat_map(|r| r.lines.iter().map(|l| seq_of(l)))
        .collect();
    assert_eq!(lines, (0..500).collect::<Vec<_>>(), "gunzipped, every line");
    for request in &requests {
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("content-encoding"), Some("gzip"));
        assert_eq!(header("authorization"), Some("Bearer s3cret"));
        assert_eq!(header("content-type"), Some("application/x-ndjson"));
    }
}

#[test]
fn a_batch_retried_past_its_maximum_age_is_given_up_to_the_dead_letter_file() {
    // The destination refuses everything with 503, which is worth retrying.
    let receiver = Receiver::start(Arc::new(|_| Answer::Fail)).unwrap();
    let dead_letter = dead_letter_path("max-age");
    let _ = std::fs::remove_file(&dead_letter);
    let buffer = deliver_with(
        &receiver,
        50,
        1,
        "max-age",
        Setup {
            max_retry_age: Some(Duration::from_millis(200)),
            ..Setup::default()
        },
    );
    assert_eq!(buffer.stats().acked.records, 50);
    assert!(receiver.requests().len() > 2, "retried before giving up");
    let text = std::fs::read_to_string(&dead_letter).unwrap();
    assert_eq!(text.lines().count(), 50);
    assert!(text.contains("gave up after"), "{text}");
    assert!(text.contains("503 Service Unavailable"), "{text}");
    let _ = std::fs::remove_file(&dead_letter);
}
