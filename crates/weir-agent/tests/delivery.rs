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
use weir_agent::sink::Sink;
use weir_agent::sink::http::{HttpConfig, HttpSink};

fn record(seq: usize) -> Vec<u8> {
    let record = LogRecord {
        body: format!("seq {seq:06}").into_bytes(),
        ..LogRecord::default()
    };
    let mut bytes = Vec::new();
    record.encode(&mut bytes);
    bytes
}

/// The sequence number in an NDJSON line the http sink sent.
fn seq_of(line: &str) -> usize {
    let at = line.find("\"body\":\"seq ").expect("a record line") + 12;
    line[at..at + 6].parse().unwrap()
}

fn deliver_through(receiver: &Receiver, count: usize, concurrency: usize) -> Arc<Buffer> {
    let buffer = Arc::new(Buffer::Memory(MemoryBuffer::new(MemoryConfig {
        max_bytes: 64 << 20,
        when_full: WhenFull::Block,
    })));
    let payloads: Vec<Vec<u8>> = (0..count).map(record).collect();
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    buffer.append(&refs).unwrap();
    buffer.close().unwrap();
    let uri: hyper::Uri = format!("http://{}/ingest", receiver.addr).parse().unwrap();
    let dead_letter = std::env::temp_dir().join(format!("weir-dl-{}.ndjson", std::process::id()));
    let config = DeliveryConfig {
        max_records: 100,
        max_bytes: 1 << 20,
        timeout: Duration::from_millis(10),
        concurrency,
        backoff: Backoff {
            initial: Duration::from_millis(1),
            cap: Duration::from_millis(20),
        },
        max_retry_age: None,
        dead_letter,
    };
    let factory: delivery::SinkFactory = Box::new(move || {
        let sink = HttpSink::new(HttpConfig {
            uri: uri.clone(),
            headers: Vec::new(),
            gzip: false,
            timeout: Duration::from_millis(300),
        })?;
        Ok(Box::new(sink) as Box<dyn Sink>)
    });
    let metrics = Arc::new(SinkMetrics::new());
    let stop = Arc::new(AtomicBool::new(false));
    let handle = delivery::start(
        "test",
        Arc::clone(&buffer),
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
    buffer
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
