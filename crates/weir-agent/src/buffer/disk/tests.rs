use std::collections::{BTreeMap, VecDeque};

use proptest::prelude::*;

use super::*;

/// A fresh directory under the system's temporary directory.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "weir-disk-{}-{name}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn small(when_full: WhenFull, max_bytes: u64) -> DiskConfig {
    DiskConfig {
        max_bytes,
        segment_bytes: 512,
        max_record: 4096,
        fsync: Fsync::Never,
        when_full,
    }
}

fn payload(seq: u64, len: usize) -> Vec<u8> {
    let mut bytes = format!("record {seq} ").into_bytes();
    bytes.resize(len.max(bytes.len()), b'0' + (seq % 10) as u8);
    bytes
}

fn append_all(buffer: &DiskBuffer, payloads: &[Vec<u8>]) -> Appended {
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    buffer.append(&refs).unwrap()
}

fn read_all(buffer: &DiskBuffer) -> Vec<Entry> {
    let mut all = Vec::new();
    loop {
        let batch = buffer.read(1000, usize::MAX, Duration::ZERO).unwrap();
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

fn assert_balanced(stats: &BufferStats) {
    for (what, pick) in [
        ("records", (|c: Counts| c.records) as fn(Counts) -> u64),
        ("bytes", |c: Counts| c.bytes),
    ] {
        assert_eq!(
            pick(stats.recovered) + pick(stats.appended),
            pick(stats.acked)
                + pick(stats.dropped_oldest)
                + pick(stats.cut_read)
                + pick(stats.held),
            "{what}: {stats:?}"
        );
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<usize>),
    Read(usize),
    /// Acknowledges the oldest batch in flight (ordered delivery)…
    AckOldest,
    /// …or the newest (concurrent delivery).
    AckNewest,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec(0usize..200, 1..8).prop_map(Op::Append),
        3 => (1usize..10).prop_map(Op::Read),
        3 => Just(Op::AckOldest),
        1 => Just(Op::AckNewest),
        1 => Just(Op::Restart),
    ]
}

/// What the buffer should hold: the records at or past the mark, which of
/// them were acknowledged above it, and where reading has got to.
#[derive(Default)]
struct Model {
    records: BTreeMap<u64, Vec<u8>>,
    acked: std::collections::BTreeSet<u64>,
    next_read: u64,
    in_flight: VecDeque<(Range<u64>, u64)>,
    next_seq: u64,
}

impl Model {
    fn unread(&self) -> impl Iterator<Item = (&u64, &Vec<u8>)> {
        self.records.range(self.next_read..)
    }

    fn ack(&mut self, range: Range<u64>) {
        self.acked.extend(range);
        while let Some((&first, _)) = self.records.first_key_value() {
            if !self.acked.remove(&first) {
                break;
            }
            self.records.remove(&first);
        }
    }

    fn held(&self) -> u64 {
        (self.records.len() - self.acked.len()) as u64
    }

    fn restart(&mut self) {
        // Acknowledgements above the mark are not kept: those records come again.
        self.acked.clear();
        self.in_flight.clear();
        self.next_read = self.records.keys().next().copied().unwrap_or(self.next_seq);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The buffer behaves as a queue: records come out in order, once each,
    /// until acknowledged; after a restart everything past the mark comes out
    /// again, and nothing below it does.
    #[test]
    fn behaves_as_a_queue_across_restarts(ops in prop::collection::vec(op(), 1..60)) {
        let dir = Scratch::new("model");
        let config = small(WhenFull::Block, u64::MAX);
        let mut buffer = DiskBuffer::open(&dir.0, config).unwrap().0;
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Append(lens) => {
                    let payloads: Vec<Vec<u8>> = lens
                        .iter()
                        .enumerate()
                        .map(|(i, len)| payload(model.next_seq + i as u64, *len))
                        .collect();
                    let appended = append_all(&buffer, &payloads);
                    prop_assert_eq!(appended.accepted, payloads.len() as u64);
                    for p in payloads {
                        model.records.insert(model.next_seq, p);
                        model.next_seq += 1;
                    }
                }
                Op::Read(n) => {
                    let batch = buffer.read(n, usize::MAX, Duration::ZERO).unwrap();
                    let unread = model.unread().count();
                    prop_assert!(batch.len() <= n);
                    prop_assert_eq!(batch.is_empty(), unread == 0, "read {:?} with {} unread", batch, unread);
                    for (got, (seq, payload)) in batch.iter().zip(model.unread()) {
                        prop_assert_eq!((got.seq, &got.payload[..]), (*seq, &payload[..]));
                    }
                    if let (Some(first), Some(last)) = (batch.first(), batch.last()) {
                        let bytes = batch.iter().map(|e| e.payload.len() as u64).sum();
                        model.in_flight.push_back((first.seq..last.seq + 1, bytes));
                        model.next_read = last.seq + 1;
                    }
                }
                Op::AckOldest | Op::AckNewest => {
                    let batch = if matches!(op, Op::AckOldest) {
                        model.in_flight.pop_front()
                    } else {
                        model.in_flight.pop_back()
                    };
                    if let Some((range, bytes)) = batch {
                        buffer.ack(range.clone(), bytes).unwrap();
                        model.ack(range);
                    }
                }
                Op::Restart => {
                    drop(buffer);
                    let (reopened, recovery) = DiskBuffer::open(&dir.0, config).unwrap();
                    buffer = reopened;
                    model.restart();
                    prop_assert!(recovery.cuts.is_empty());
                    prop_assert_eq!(recovery.pending.records, model.records.len() as u64);
                    prop_assert_eq!(
                        recovery.pending.bytes,
                        model.records.values().map(|p| p.len() as u64).sum::<u64>()
                    );
                }
            }
            let stats = buffer.stats();
            assert_balanced(&stats);
            prop_assert_eq!(stats.held.records, model.held());
        }
        // Whatever is left comes out, in order.
        let rest: Vec<(u64, Vec<u8>)> = read_all(&buffer).into_iter().map(|e| (e.seq, e.payload.to_vec())).collect();
        let expected: Vec<(u64, Vec<u8>)> = model.unread().map(|(s, p)| (*s, p.clone())).collect();
        prop_assert_eq!(rest, expected);
    }
}

#[test]
fn acknowledged_segments_are_deleted_and_stay_acknowledged() {
    let dir = Scratch::new("ack");
    let config = small(WhenFull::Block, u64::MAX);
    let (buffer, _) = DiskBuffer::open(&dir.0, config).unwrap();
    let payloads: Vec<Vec<u8>> = (0..100).map(|i| payload(i, 60)).collect();
    append_all(&buffer, &payloads);
    let segments = |dir: &Path| {
        fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".wal")
            })
            .count()
    };
    let before = segments(&dir.0);
    assert!(before > 5, "records spread over segments: {before}");
    let all = read_all(&buffer);
    assert_eq!(all.len(), 100);
    let bytes: u64 = all[..90].iter().map(|e| e.payload.len() as u64).sum();
    buffer.ack(0..90, bytes).unwrap();
    assert!(
        segments(&dir.0) < before,
        "segments below the mark are gone"
    );
    drop(buffer);
    let (buffer, recovery) = DiskBuffer::open(&dir.0, config).unwrap();
    assert_eq!(recovery.pending.records, 10);
    let rest = read_all(&buffer);
    assert_eq!(rest.first().map(|e| e.seq), Some(90));
    assert_eq!(rest.len(), 10);
}

#[test]
fn acknowledgements_out_of_order_move_the_mark_when_they_join_up() {
    let dir = Scratch::new("concurrent");
    let config = small(WhenFull::Block, u64::MAX);
    let (buffer, _) = DiskBuffer::open(&dir.0, config).unwrap();
    let payloads: Vec<Vec<u8>> = (0..30).map(|i| payload(i, 10)).collect();
    append_all(&buffer, &payloads);
    let all = read_all(&buffer);
    let bytes = |r: Range<u64>| -> u64 {
        all[r.start as usize..r.end as usize]
            .iter()
            .map(|e| e.payload.len() as u64)
            .sum()
    };
    buffer.ack(10..20, bytes(10..20)).unwrap();
    drop(buffer);
    // 0..10 was not acknowledged: all of 0..30 comes again.
    let (buffer, recovery) = DiskBuffer::open(&dir.0, config).unwrap();
    assert_eq!(recovery.pending.records, 30);
    let all = read_all(&buffer);
    buffer.ack(20..30, bytes(20..30)).unwrap();
    buffer.ack(10..20, bytes(10..20)).unwrap();
    buffer.ack(0..10, bytes(0..10)).unwrap();
    assert_eq!(buffer.stats().held, Counts::default());
    drop(buffer);
    let (_, recovery) = DiskBuffer::open(&dir.0, config).unwrap();
    assert_eq!(recovery.pending.records, 0);
    drop(all);
}

/// Writes `count` records of 40 bytes over several segments and closes.
fn filled(dir: &Path, count: u64) -> Vec<PathBuf> {
    let (buffer, _) = DiskBuffer::open(dir, small(WhenFull::Block, u64::MAX)).unwrap();
    let payloads: Vec<Vec<u8>> = (0..count).map(|i| payload(i, 40)).collect();
    append_all(&buffer, &payloads);
    buffer.close().unwrap();
    let mut segments: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    segments
}

#[test]
fn a_flipped_byte_cuts_the_rest_of_its_segment_and_the_others_are_delivered() {
    let dir = Scratch::new("flip");
    let segments = filled(&dir.0, 100);
    // 512-byte segments of 48-byte frames: 10 records each.
    let victim = &segments[3];
    let mut bytes = fs::read(victim).unwrap();
    let at = segment::HEADER_LEN as usize + 4 * 48 + 20;
    bytes[at] ^= 0x55;
    fs::write(victim, &bytes).unwrap();
    let (buffer, recovery) = DiskBuffer::open(&dir.0, small(WhenFull::Block, u64::MAX)).unwrap();
    assert_eq!(recovery.cuts.len(), 1, "{recovery:?}");
    assert!(recovery.cuts[0].reason.contains("checksum"), "{recovery:?}");
    assert_eq!(recovery.cuts[0].bytes, 6 * 48);
    let stats = buffer.stats();
    assert_eq!(
        stats.cut_at_open,
        Counts {
            records: 6,
            bytes: 6 * 48
        }
    );
    let seqs: Vec<u64> = read_all(&buffer).iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (0..100).filter(|s| !(34..40).contains(s)).collect();
    assert_eq!(seqs, expected);
}

#[test]
fn a_torn_tail_and_a_damaged_header_are_cut_and_counted() {
    let dir = Scratch::new("torn");
    let segments = filled(&dir.0, 100);
    // The last segment holding records loses its last 30 bytes; the first
    // gets a damaged header.
    let last = segments
        .iter()
        .rev()
        .find(|p| fs::metadata(p).unwrap().len() > segment::HEADER_LEN)
        .unwrap();
    let len = fs::metadata(last).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(len - 30)
        .unwrap();
    let mut head = fs::read(&segments[0]).unwrap();
    head[0] = b'X';
    fs::write(&segments[0], &head).unwrap();
    let (buffer, recovery) = DiskBuffer::open(&dir.0, small(WhenFull::Block, u64::MAX)).unwrap();
    assert_eq!(recovery.cuts.len(), 2, "{recovery:?}");
    assert!(recovery.cuts.iter().any(|c| c.reason.contains("torn")));
    let aside = recovery.cuts.iter().find(|c| c.offset == 0).unwrap();
    assert!(aside.path.to_string_lossy().ends_with(".wal.damaged"));
    assert!(
        aside.path.exists(),
        "a damaged segment is kept for an operator"
    );
    let seqs: Vec<u64> = read_all(&buffer).iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (10..99).collect::<Vec<u64>>(),
        "the rest is delivered"
    );
    // Opening again finds nothing more to cut.
    drop(buffer);
    let (_, again) = DiskBuffer::open(&dir.0, small(WhenFull::Block, u64::MAX)).unwrap();
    assert!(again.cuts.is_empty(), "{again:?}");
}

#[test]
fn a_second_process_is_kept_out() {
    let dir = Scratch::new("lock");
    let (_first, _) = DiskBuffer::open(&dir.0, DiskConfig::default()).unwrap();
    // flock locks belong to the open file description, so a second open in
    // this process conflicts as another process would.
    let err = DiskBuffer::open(&dir.0, DiskConfig::default()).unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
}

#[test]
fn drop_newest_refuses_what_does_not_fit_and_counts_it() {
    let dir = Scratch::new("newest");
    let (buffer, _) = DiskBuffer::open(&dir.0, small(WhenFull::DropNewest, 2048)).unwrap();
    let payloads: Vec<Vec<u8>> = (0..100).map(|i| payload(i, 40)).collect();
    let appended = append_all(&buffer, &payloads);
    assert!(appended.accepted > 0 && appended.refused > 0);
    assert_eq!(appended.accepted + appended.refused, 100);
    let stats = buffer.stats();
    assert_eq!(stats.dropped_newest.records, appended.refused);
    assert_eq!(stats.dropped_newest.bytes, appended.refused * 40);
    let seqs: Vec<u64> = read_all(&buffer).iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (0..appended.accepted).collect::<Vec<u64>>(),
        "the oldest are kept"
    );
    assert_balanced(&stats);
}

#[test]
fn drop_oldest_deletes_old_segments_and_counts_them() {
    let dir = Scratch::new("oldest");
    let (buffer, _) = DiskBuffer::open(&dir.0, small(WhenFull::DropOldest, 2048)).unwrap();
    // Read a batch first: it is in flight when its segment is dropped.
    append_all(&buffer, &(0..5).map(|i| payload(i, 40)).collect::<Vec<_>>());
    let in_flight = buffer.read(5, usize::MAX, Duration::ZERO).unwrap();
    assert_eq!(in_flight.len(), 5);
    let payloads: Vec<Vec<u8>> = (5..100).map(|i| payload(i, 40)).collect();
    let appended = append_all(&buffer, &payloads);
    assert_eq!(appended.accepted, 95, "room is made for every new record");
    let stats = buffer.stats();
    assert!(stats.dropped_oldest.records > 0);
    assert_balanced(&stats);
    let rest = read_all(&buffer);
    assert_eq!(rest.last().map(|e| e.seq), Some(99), "the newest are kept");
    assert_eq!(
        rest.len() as u64 + stats.dropped_oldest.records,
        100,
        "what was not delivered was dropped, the batch in flight included"
    );
    // The batch in flight is delivered after all: it moves to acknowledged.
    buffer.ack(0..5, 5 * 40).unwrap();
    let after = buffer.stats();
    assert_eq!(
        after.dropped_oldest.records,
        stats.dropped_oldest.records - 5
    );
    assert_eq!(after.acked.records, 5);
    assert_balanced(&after);
}

#[test]
fn block_waits_for_acknowledgements() {
    let dir = Scratch::new("block");
    let (buffer, _) = DiskBuffer::open(&dir.0, small(WhenFull::Block, 2048)).unwrap();
    let buffer = std::sync::Arc::new(buffer);
    let writer = {
        let buffer = std::sync::Arc::clone(&buffer);
        std::thread::spawn(move || {
            let payloads: Vec<Vec<u8>> = (0..200).map(|i| payload(i, 40)).collect();
            append_all(&buffer, &payloads)
        })
    };
    let mut received = Vec::new();
    while received.len() < 200 {
        let batch = buffer.read(16, usize::MAX, Duration::from_secs(5)).unwrap();
        assert!(
            !batch.is_empty(),
            "the writer stalled at {}",
            received.len()
        );
        let bytes = batch.iter().map(|e| e.payload.len() as u64).sum();
        buffer
            .ack(batch[0].seq..batch[batch.len() - 1].seq + 1, bytes)
            .unwrap();
        received.extend(batch.into_iter().map(|e| e.seq));
    }
    assert_eq!(writer.join().unwrap().accepted, 200);
    assert_eq!(received, (0..200).collect::<Vec<u64>>());
    let stats = buffer.stats();
    assert_eq!(stats.dropped_newest, Counts::default());
    assert_balanced(&stats);
}

#[test]
fn a_wait_for_room_ends_when_the_appender_stops() {
    let dir = Scratch::new("give-up");
    let (buffer, _) = DiskBuffer::open(&dir.0, small(WhenFull::Block, 2048)).unwrap();
    let buffer = std::sync::Arc::new(buffer);
    let stopping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (buffer, stopping) = (buffer.clone(), stopping.clone());
        std::thread::spawn(move || {
            let payloads: Vec<Vec<u8>> = (0..200).map(|i| payload(i, 40)).collect();
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            buffer.append_unless(&refs, &stopping).unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    assert!(!writer.is_finished(), "it waits for room");
    stopping.store(true, std::sync::atomic::Ordering::Relaxed);
    let appended = writer.join().unwrap();
    assert!(
        appended.accepted > 0 && appended.given_up > 0,
        "{appended:?}"
    );
    assert_eq!(appended.accepted + appended.given_up, 200);
    assert_eq!(read_all(&buffer).len() as u64, appended.accepted);
    assert_eq!(buffer.stats().dropped_newest, Counts::default());
}

#[test]
fn a_record_over_the_limit_is_refused_with_its_size() {
    let dir = Scratch::new("big");
    let (buffer, _) = DiskBuffer::open(&dir.0, small(WhenFull::Block, u64::MAX)).unwrap();
    let err = buffer.append(&[&[0u8; 5000][..]]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "a record of 5000 bytes is over the buffer's limit of 4096 bytes"
    );
}

#[test]
fn a_record_larger_than_the_read_chunk_is_read_whole() {
    let dir = Scratch::new("chunk");
    let config = DiskConfig {
        max_record: 1 << 20,
        segment_bytes: 4 << 20,
        ..small(WhenFull::Block, u64::MAX)
    };
    let (buffer, _) = DiskBuffer::open(&dir.0, config).unwrap();
    let big = payload(1, 600 << 10);
    append_all(&buffer, &[payload(0, 10), big.clone(), payload(2, 10)]);
    let entries = read_all(&buffer);
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[1].payload, big);
}
