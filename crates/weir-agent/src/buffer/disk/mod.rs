//! The disk buffer: a segmented write-ahead log of the records waiting for
//! one sink.
//!
//! Records are appended to the newest segment with one `write(2)` per batch,
//! each framed with its length and a CRC-32C; they are numbered by sequence
//! and read back in order. The sink acknowledges ranges of them; the mark
//! below which every record is acknowledged is kept in the `ack` file, and a
//! segment is deleted once the mark has passed its last record.
//!
//! Durability, stated plainly:
//! - A record [`DiskBuffer::append`] has returned for is in the kernel: it
//!   survives `kill -9` of the agent whatever the fsync policy.
//! - It survives a power cut once synced: at once with [`Fsync::Always`],
//!   within the interval with [`Fsync::Every`], when the kernel gets to it
//!   with [`Fsync::Never`].
//! - After a restart everything past the mark is delivered again: at most
//!   the batches that were in flight are delivered twice.
//!
//! On open every segment is checked; a torn or damaged tail is cut off and a
//! segment whose header is damaged is set aside (`NAME.damaged`), both
//! counted in [`BufferStats::cut`] and listed in [`Recovery`]; the rest is
//! delivered. Nothing makes opening fail but I/O errors and another process
//! holding the buffer.

mod ack;
pub mod frame;
mod segment;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Appended, BufferError, BufferStats, Counts, Entry, WhenFull};

use self::ack::AckFile;
use self::frame::Next;
use self::segment::Damage;
use super::acks::{self, Acks};
use crate::read_at::read_full_at;

/// One segment as [`inspect`] found it.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentReport {
    pub path: PathBuf,
    pub first_seq: u64,
    pub records: u64,
    pub bytes: u64,
    /// What is wrong with it: where the valid part ends and why.
    pub damage: Option<(u64, String)>,
}

/// What a buffer directory holds, read without changing anything.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The acknowledgement mark, if the mark file is readable.
    pub mark: Option<u64>,
    pub segments: Vec<SegmentReport>,
    /// Files set aside as damaged by an earlier open.
    pub set_aside: Vec<PathBuf>,
}

/// Reads a buffer directory through and checks every record, changing
/// nothing (it may be done while the agent runs).
pub fn inspect(dir: &Path, max_record: u32) -> io::Result<Inspection> {
    let mut names: Vec<(u64, PathBuf)> = Vec::new();
    let mut set_aside = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(first) = segment::parse_name(&name) {
            names.push((first, entry.path()));
        } else if name.ends_with(".damaged") {
            set_aside.push(entry.path());
        }
    }
    names.sort();
    let mut segments = Vec::new();
    for (first_seq, path) in names {
        let scan = segment::scan(&path, first_seq, max_record, |_, _| {})?;
        segments.push(SegmentReport {
            path,
            first_seq,
            records: scan.records,
            bytes: scan.file_len,
            damage: scan.damage.map(|d| (scan.valid_len, d.to_string())),
        });
    }
    let mark = match fs::metadata(dir.join("ack")) {
        Ok(_) => ack::read_mark(&dir.join("ack"))?,
        Err(_) => None,
    };
    Ok(Inspection {
        mark,
        segments,
        set_aside,
    })
}

/// When appended records and the acknowledgement mark are forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// After every append and every acknowledgement.
    Always,
    /// At most this long after a write (checked on each append and ack, and
    /// by [`DiskBuffer::sync_if_due`], which the owner calls on a timer).
    Every(Duration),
    /// Never: the kernel writes back in its own time.
    Never,
}

#[derive(Debug, Clone, Copy)]
pub struct DiskConfig {
    /// Bytes on disk the segments may take, all together.
    pub max_bytes: u64,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// Largest payload of one record.
    pub max_record: u32,
    pub fsync: Fsync,
    pub when_full: WhenFull,
}

impl Default for DiskConfig {
    fn default() -> Self {
        DiskConfig {
            max_bytes: 1 << 30,
            segment_bytes: 32 << 20,
            max_record: 16 << 20,
            fsync: Fsync::Every(Duration::from_millis(100)),
            when_full: WhenFull::Block,
        }
    }
}

/// Damage found and cut at open.
#[derive(Debug, Clone, Serialize)]
pub struct Cut {
    pub path: PathBuf,
    pub offset: u64,
    pub bytes: u64,
    pub reason: String,
}

/// What opening the buffer found.
#[derive(Debug, Clone, Serialize)]
pub struct Recovery {
    pub segments: usize,
    /// Records to deliver (past the acknowledgement mark).
    pub pending: Counts,
    pub cuts: Vec<Cut>,
    /// The acknowledgement mark was missing or unreadable: everything on
    /// disk is delivered again.
    pub mark_lost: bool,
}

#[derive(Debug)]
struct SegmentMeta {
    first_seq: u64,
    /// One past the last record.
    end_seq: u64,
    /// Bytes in the file (header included) that hold whole records.
    len: u64,
    path: PathBuf,
}

#[derive(Debug)]
struct State {
    /// Oldest first; the last one is being appended to.
    segments: VecDeque<SegmentMeta>,
    writer: File,
    next_seq: u64,
    /// What the sink has acknowledged (or was dropped).
    acks: Acks,
    disk_bytes: u64,
    ack_file: AckFile,
    /// Written since the last sync.
    dirty: bool,
    last_sync: Instant,
    stats: BufferStats,
    closed: bool,
    /// The newest appends, as written: a reader that keeps up with the
    /// writer takes them from here rather than reading the file back.
    recent: VecDeque<Recent>,
    recent_bytes: usize,
}

/// One append's frames, kept after writing them.
#[derive(Debug)]
struct Recent {
    segment: u64,
    offset: u64,
    frames: Arc<Vec<u8>>,
}

/// Bytes of recent appends kept for the reader.
const RECENT_BYTES: usize = 4 << 20;

/// Bytes read from a segment at a time, at least.
const CHUNK: usize = 256 << 10;

/// The reader's place.
#[derive(Debug)]
struct Cursor {
    /// The next record to read.
    seq: u64,
    /// The segment being read and the offset of record `seq` in it.
    at: Option<(u64, u64)>,
    /// The segment being read, open.
    file: Option<(u64, File)>,
    /// Bytes read ahead from that segment, and the offset they start at: a
    /// batch smaller than a chunk leaves the rest here for the next.
    chunk: Vec<u8>,
    chunk_start: u64,
}

/// A durable buffer of records for one sink. One producer appends, one
/// consumer reads and acknowledges; both may be on different threads.
#[derive(Debug)]
pub struct DiskBuffer {
    dir: PathBuf,
    /// Changed in place by [`DiskBuffer::reconfigure`].
    config: Mutex<DiskConfig>,
    state: Mutex<State>,
    /// Signalled when records are appended, room is made, or on close.
    changed: Condvar,
    cursor: Mutex<Cursor>,
    /// Holds the `flock` that keeps a second process out.
    _lock: File,
}

impl DiskBuffer {
    /// Opens (creating if needed) the buffer in `dir`, checking what is on
    /// disk and cutting off what is damaged.
    pub fn open(dir: &Path, mut config: DiskConfig) -> Result<(DiskBuffer, Recovery), BufferError> {
        // Room is made a segment at a time: several must fit.
        config.segment_bytes = config
            .segment_bytes
            .min(config.max_bytes / 4)
            .max(segment::HEADER_LEN + 1);
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BufferError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(BufferError::InUse {
                dir: dir.to_path_buf(),
            });
        }
        let ack_path = dir.join("ack");
        let (ack_file, stored_mark) = AckFile::open(&ack_path).map_err(io_err(&ack_path))?;
        let mut found: Vec<(u64, PathBuf)> = fs::read_dir(dir)
            .map_err(io_err(dir))?
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let first = segment::parse_name(entry.file_name().to_str()?)?;
                Some((first, entry.path()))
            })
            .collect();
        found.sort();
        let mark_lost = stored_mark.is_none() && !found.is_empty();
        let mark_from = stored_mark.unwrap_or(0);
        let mut stats = BufferStats::default();
        let mut cuts = Vec::new();
        let mut segments = VecDeque::new();
        let mut disk_bytes = 0;
        for (first_seq, path) in found {
            let mut pending_bytes = 0;
            let scan = segment::scan(&path, first_seq, config.max_record, |seq, len| {
                if seq >= mark_from {
                    pending_bytes += len as u64;
                }
            })
            .map_err(io_err(&path))?;
            match &scan.damage {
                Some(Damage::Header) => {
                    let aside = segment::set_aside(&path).map_err(io_err(&path))?;
                    stats.cut_at_open.add(0, scan.file_len);
                    cuts.push(Cut {
                        path: aside,
                        offset: 0,
                        bytes: scan.file_len,
                        reason: Damage::Header.to_string(),
                    });
                    continue;
                }
                Some(damage) => {
                    segment::truncate(&path, scan.valid_len).map_err(io_err(&path))?;
                    stats.cut_at_open.add(0, scan.file_len - scan.valid_len);
                    cuts.push(Cut {
                        path: path.clone(),
                        offset: scan.valid_len,
                        bytes: scan.file_len - scan.valid_len,
                        reason: damage.to_string(),
                    });
                }
                None => {}
            }
            let end_seq = first_seq + scan.records;
            if end_seq <= mark_from {
                // Every record in it was acknowledged before the restart.
                let _ = fs::remove_file(&path);
                continue;
            }
            let pending = end_seq - first_seq.max(mark_from);
            stats.recovered.add(pending, pending_bytes);
            disk_bytes += scan.valid_len;
            segments.push_back(SegmentMeta {
                first_seq,
                end_seq,
                len: scan.valid_len,
                path,
            });
        }
        // Records missing between segments went with the damage.
        let mut previous_end = None;
        for meta in &segments {
            if let Some(end) = previous_end
                && meta.first_seq > end
            {
                stats.cut_at_open.add(meta.first_seq - end, 0);
            }
            previous_end = Some(meta.end_seq);
        }
        let mark = segments
            .front()
            .map_or(mark_from, |first| first.first_seq.max(mark_from));
        let next_seq = segments.back().map_or(mark, |last| last.end_seq);
        stats.held = stats.recovered;
        let (path, writer) = segment::create(dir, next_seq)
            .or_else(|e| {
                // A segment for `next_seq` exists only if it holds nothing
                // (the last one was empty): start it again.
                if e.kind() == io::ErrorKind::AlreadyExists {
                    segments.retain(|s| s.first_seq != next_seq);
                    fs::remove_file(dir.join(segment::file_name(next_seq)))?;
                    segment::create(dir, next_seq)
                } else {
                    Err(e)
                }
            })
            .map_err(io_err(dir))?;
        disk_bytes += segment::HEADER_LEN;
        segments.push_back(SegmentMeta {
            first_seq: next_seq,
            end_seq: next_seq,
            len: segment::HEADER_LEN,
            path,
        });
        let recovery = Recovery {
            segments: segments.len(),
            pending: stats.recovered,
            cuts,
            mark_lost,
        };
        let buffer = DiskBuffer {
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                segments,
                writer,
                next_seq,
                acks: Acks::new(mark),
                disk_bytes,
                ack_file,
                dirty: true,
                last_sync: Instant::now(),
                stats,
                closed: false,
                recent: VecDeque::new(),
                recent_bytes: 0,
            }),
            changed: Condvar::new(),
            cursor: Mutex::new(Cursor {
                seq: mark,
                at: None,
                file: None,
                chunk: Vec::new(),
                chunk_start: 0,
            }),
            config: Mutex::new(config),
            _lock: lock,
        };
        Ok((buffer, recovery))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn config(&self) -> DiskConfig {
        *self.config.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes new limits, policies and fsync, keeping every record: a reload
    /// that changes only the buffer's settings loses nothing. The segment
    /// size applies to segments started from now on.
    pub fn reconfigure(
        &self,
        max_bytes: u64,
        segment_bytes: u64,
        when_full: WhenFull,
        fsync: Fsync,
    ) {
        let mut config = self.config.lock().unwrap_or_else(|e| e.into_inner());
        config.max_bytes = max_bytes;
        config.segment_bytes = segment_bytes
            .min(max_bytes / 4)
            .max(segment::HEADER_LEN + 1);
        config.when_full = when_full;
        config.fsync = fsync;
        drop(config);
        // Room may have been made.
        self.changed.notify_all();
    }

    pub fn stats(&self) -> BufferStats {
        self.lock_state().stats
    }

    /// Appends `payloads` in one write, as the policy for a full buffer
    /// allows. Under [`WhenFull::Block`] it waits for room.
    pub fn append(&self, payloads: &[&[u8]]) -> Result<Appended, BufferError> {
        self.append_unless(payloads, &AtomicBool::new(false))
    }

    /// [`DiskBuffer::append`], giving up a wait for room once `stopping`
    /// is set.
    pub fn append_unless(
        &self,
        payloads: &[&[u8]],
        stopping: &AtomicBool,
    ) -> Result<Appended, BufferError> {
        if let Some(big) = payloads
            .iter()
            .find(|p| p.len() > self.config().max_record as usize)
        {
            return Err(BufferError::TooLarge {
                len: big.len(),
                max: self.config().max_record,
            });
        }
        let mut state = self.lock_state();
        let mut outcome = Appended::default();
        let mut rest = payloads;
        while !rest.is_empty() {
            if state.closed {
                return Err(BufferError::Closed);
            }
            let room = self.config().max_bytes.saturating_sub(state.disk_bytes);
            let fitting = count_fitting(rest, room);
            if fitting == 0 {
                // The newest segment, all acknowledged, is freed by moving on.
                let active = state.segments.back().expect("an active segment");
                if active.end_seq > active.first_seq && active.end_seq <= state.acks.mark() {
                    self.roll(&mut state)?;
                    self.delete_acknowledged(&mut state);
                    continue;
                }
                if state.segments.len() > 1 || active.end_seq > active.first_seq {
                    match self.config().when_full {
                        WhenFull::Block if stopping.load(Ordering::Relaxed) => {
                            outcome.given_up = rest.len() as u64;
                            break;
                        }
                        WhenFull::Block => {
                            state = self.wait(state);
                            continue;
                        }
                        WhenFull::DropOldest => {
                            if self.drop_oldest_segment(&mut state) {
                                continue;
                            }
                        }
                        WhenFull::DropNewest => {}
                    }
                }
                // No room can be made (or it is not to be made): refuse the
                // next record. A record larger than the whole buffer ends here too.
                state.stats.dropped_newest.add(1, rest[0].len() as u64);
                outcome.refused += 1;
                rest = &rest[1..];
                continue;
            }
            let (now, later) = rest.split_at(fitting);
            self.write_records(&mut state, now)?;
            outcome.accepted += now.len() as u64;
            rest = later;
            // The reader may be waiting for these while this waits for room.
            self.changed.notify_all();
        }
        drop(state);
        self.changed.notify_all();
        Ok(outcome)
    }

    /// Writes `payloads` (which fit the buffer) to the newest segments, one
    /// write per segment, starting a new segment when one is full.
    fn write_records(&self, state: &mut State, payloads: &[&[u8]]) -> Result<(), BufferError> {
        let mut rest = payloads;
        while !rest.is_empty() {
            let active = state
                .segments
                .back()
                .expect("there is always an active segment");
            let room = self.config().segment_bytes.saturating_sub(active.len);
            let mut fitting = count_fitting(rest, room);
            if fitting == 0 {
                if active.len > segment::HEADER_LEN {
                    self.roll(state)?;
                    continue;
                }
                // A record larger than a segment gets one of its own.
                fitting = 1;
            }
            let (now, later) = rest.split_at(fitting);
            self.write_to_active(state, now)?;
            rest = later;
        }
        self.sync_per_policy(state)
    }

    fn write_to_active(&self, state: &mut State, payloads: &[&[u8]]) -> Result<(), BufferError> {
        let mut frames = Vec::with_capacity(
            payloads
                .iter()
                .map(|p| frame::framed_len(p.len()) as usize)
                .sum(),
        );
        for payload in payloads {
            frame::encode(payload, &mut frames);
        }
        let active = state.segments.back_mut().expect("an active segment");
        if let Err(source) = state.writer.write_all(&frames) {
            // What part of the write landed is not a whole record: cut it
            // back so the next write starts on a boundary.
            let _ = state.writer.set_len(active.len);
            return Err(BufferError::Io {
                path: active.path.clone(),
                source,
            });
        }
        let count = payloads.len() as u64;
        let bytes: u64 = payloads.iter().map(|p| p.len() as u64).sum();
        let (segment, offset) = (active.first_seq, active.len);
        active.len += frames.len() as u64;
        active.end_seq += count;
        state.next_seq += count;
        state.disk_bytes += frames.len() as u64;
        state.stats.appended.add(count, bytes);
        state.stats.held.add(count, bytes);
        state.dirty = true;
        state.recent_bytes += frames.len();
        state.recent.push_back(Recent {
            segment,
            offset,
            frames: Arc::new(frames),
        });
        while state.recent_bytes > RECENT_BYTES && state.recent.len() > 1 {
            let old = state.recent.pop_front().expect("more than one");
            state.recent_bytes -= old.frames.len();
        }
        Ok(())
    }

    /// Closes the newest segment and starts the next.
    fn roll(&self, state: &mut State) -> Result<(), BufferError> {
        if self.config().fsync != Fsync::Never {
            self.sync_state(state)?;
        }
        let (path, file) =
            segment::create(&self.dir, state.next_seq).map_err(|source| BufferError::Io {
                path: self.dir.clone(),
                source,
            })?;
        state.writer = file;
        state.disk_bytes += segment::HEADER_LEN;
        state.segments.push_back(SegmentMeta {
            first_seq: state.next_seq,
            end_seq: state.next_seq,
            len: segment::HEADER_LEN,
            path,
        });
        if self.config().fsync != Fsync::Never {
            sync_dir(&self.dir);
        }
        Ok(())
    }

    /// Under `drop_oldest`: deletes the oldest segment, not the one being
    /// written, moving the mark past it. Its records not yet acknowledged
    /// count as dropped; any of them in flight that are acknowledged later
    /// move back to acknowledged (see [`DiskBuffer::ack`]).
    fn drop_oldest_segment(&self, state: &mut State) -> bool {
        if state.segments.len() < 2 {
            return false;
        }
        let oldest = state.segments.pop_front().expect("two segments");
        let mark = state.acks.mark();
        let acks = &state.acks;
        let mut dropped = Counts::default();
        let scanned = segment::scan(
            &oldest.path,
            oldest.first_seq,
            self.config().max_record,
            |seq, len| {
                if seq >= mark && !acks.is_acked(seq) {
                    dropped.add(1, len as u64);
                }
            },
        );
        if scanned.is_err() {
            // The file is gone from under us: count by number, bytes unknown.
            dropped = Counts {
                records: (mark.max(oldest.first_seq)..oldest.end_seq)
                    .filter(|seq| !acks.is_acked(*seq))
                    .count() as u64,
                bytes: 0,
            };
        }
        state
            .stats
            .dropped_oldest
            .add(dropped.records, dropped.bytes);
        state.stats.held.sub(dropped.records, dropped.bytes);
        state.disk_bytes -= oldest.len;
        let _ = fs::remove_file(&oldest.path);
        state.acks.advance_to(oldest.end_seq);
        self.delete_acknowledged(state);
        if let Err(e) = self.store_mark(state) {
            eprintln!("weir: {e}");
        }
        true
    }

    /// Waits for a change (records, room, close), releasing the lock.
    fn wait<'a>(&self, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed
            .wait_timeout(state, Duration::from_millis(100))
            .map(|(guard, _)| guard)
            .unwrap_or_else(|e| e.into_inner().0)
    }

    /// Reads up to `max_records` records (and about `max_bytes` of payload,
    /// at least one record) from where the last read stopped, waiting up to
    /// `wait` for the first. An empty result: nothing arrived in time, or the
    /// buffer is closed and read through.
    pub fn read(
        &self,
        max_records: usize,
        max_bytes: usize,
        wait: Duration,
    ) -> Result<Vec<Entry>, BufferError> {
        let mut cursor = self.cursor.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = Instant::now() + wait;
        let mut entries = Vec::new();
        let mut bytes = 0;
        loop {
            // Where to read: the segment holding the cursor, as far as written.
            let target = {
                let mut state = self.lock_state();
                loop {
                    // Records below the mark were dropped meanwhile.
                    if cursor.seq < state.acks.mark() {
                        cursor.seq = state.acks.mark();
                        cursor.at = None;
                    }
                    if cursor.seq < state.next_seq || !entries.is_empty() || state.closed {
                        break;
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    state = self
                        .changed
                        .wait_timeout(state, deadline - now)
                        .map(|(guard, _)| guard)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
                if cursor.seq >= state.next_seq {
                    return Ok(entries);
                }
                let segment = state
                    .segments
                    .iter()
                    .find(|s| s.end_seq > cursor.seq)
                    .expect("a segment holds every record below next_seq");
                (
                    segment.first_seq,
                    segment.end_seq,
                    segment.len,
                    segment.path.clone(),
                )
            };
            let (first_seq, end_seq, len, path) = target;
            if cursor.seq < first_seq {
                // Records lost with damage cut at open: skip the gap.
                cursor.seq = first_seq;
                cursor.at = None;
            }
            let offset = match cursor.at {
                Some((segment_first, offset)) if segment_first == first_seq => offset,
                _ => self.locate(&path, first_seq, cursor.seq)?,
            };
            let read = self.read_segment(
                &mut cursor,
                &path,
                (first_seq, end_seq),
                offset..len,
                (max_records - entries.len(), max_bytes.saturating_sub(bytes)),
                &mut entries,
            )?;
            bytes += read;
            // A batch never spans segments (see drop_oldest_segment).
            if !entries.is_empty() {
                return Ok(entries);
            }
        }
    }

    /// The offset of record `seq` in a segment, found by walking its frames.
    fn locate(&self, path: &Path, first_seq: u64, seq: u64) -> Result<u64, BufferError> {
        let io_err = |source| BufferError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut input =
            io::BufReader::new(segment::open_at(path, segment::HEADER_LEN).map_err(io_err)?);
        let mut offset = segment::HEADER_LEN;
        let mut payload = Vec::new();
        for _ in first_seq..seq {
            match frame::read_next(&mut input, self.config().max_record, &mut payload)
                .map_err(io_err)?
            {
                Next::Record => offset += frame::framed_len(payload.len()),
                // Checked at open or written since: reading will find it.
                Next::End | Next::Corrupt(_) => break,
            }
        }
        Ok(offset)
    }

    /// Reads records of one segment from `range.start` (record
    /// `cursor.seq`) up to `range.end`, within `limits` (records, bytes);
    /// returns the payload bytes read.
    fn read_segment(
        &self,
        cursor: &mut Cursor,
        path: &Path,
        (first_seq, end_seq): (u64, u64),
        range: Range<u64>,
        (max_records, max_bytes): (usize, usize),
        entries: &mut Vec<Entry>,
    ) -> Result<usize, BufferError> {
        let io_err = |source| BufferError::Io {
            path: path.to_path_buf(),
            source,
        };
        if cursor
            .file
            .as_ref()
            .is_none_or(|(first, _)| *first != first_seq)
        {
            cursor.file = Some((first_seq, File::open(path).map_err(io_err)?));
            cursor.chunk.clear();
        }
        let available = range.end - range.start;
        let mut chunk = std::mem::take(&mut cursor.chunk);
        // The newest appends are still in memory: no need to read them back.
        let recent = {
            let state = self.lock_state();
            state
                .recent
                .iter()
                .find(|r| {
                    r.segment == first_seq
                        && r.offset <= range.start
                        && range.start < r.offset + r.frames.len() as u64
                })
                .map(|r| (r.offset, Arc::clone(&r.frames)))
        };
        let (view, whole_range): (&[u8], bool) = match &recent {
            Some((block_offset, frames)) => {
                let from = (range.start - block_offset) as usize;
                let to = frames.len().min((range.end - block_offset) as usize);
                (&frames[from..to], (to - from) as u64 == available)
            }
            None => {
                // What was read ahead serves if it holds a whole record at the start.
                let cached = range.start >= cursor.chunk_start
                    && range.start < cursor.chunk_start + chunk.len() as u64
                    && record_len_at(&chunk[(range.start - cursor.chunk_start) as usize..])
                        .is_some_and(|len| {
                            range.start + len <= cursor.chunk_start + chunk.len() as u64
                        });
                if !cached {
                    let file = &cursor.file.as_ref().expect("opened above").1;
                    let mut want = available.min(max_bytes.max(CHUNK) as u64) as usize;
                    loop {
                        chunk.resize(want, 0);
                        let got = read_full_at(file, &mut chunk, range.start).map_err(io_err)?;
                        chunk.truncate(got);
                        // A first record longer than the chunk is read whole.
                        match record_len_at(&chunk) {
                            Some(len)
                                if len > chunk.len() as u64
                                    && len <= available
                                    && len
                                        <= frame::framed_len(self.config().max_record as usize) =>
                            {
                                want = len as usize;
                            }
                            _ => break,
                        }
                    }
                    cursor.chunk_start = range.start;
                }
                let from = (range.start - cursor.chunk_start) as usize;
                let to = chunk.len().min((range.end - cursor.chunk_start) as usize);
                (&chunk[from..to], (to - from) as u64 == available)
            }
        };
        let mut at = 0;
        let mut offset = range.start;
        let mut bytes = 0;
        // Where each payload read lies in `view`: they are copied out
        // together, into one allocation they share.
        let mut payloads: Vec<(u64, Range<usize>)> = Vec::new();
        while entries.len() + payloads.len() < max_records
            && bytes < max_bytes
            && cursor.seq < end_seq
        {
            let damage = match frame::parse(&view[at..], self.config().max_record) {
                frame::Parsed::Record(payload, len) => {
                    let start = at + frame::HEADER_LEN;
                    payloads.push((cursor.seq, start..start + payload.len()));
                    at += len;
                    offset += len as u64;
                    bytes += payload.len();
                    cursor.seq += 1;
                    continue;
                }
                // The rest is past this chunk: the next read goes on.
                frame::Parsed::Incomplete if !whole_range => break,
                frame::Parsed::Incomplete => frame::Corruption::Torn {
                    missing: range.end - offset,
                },
                frame::Parsed::Corrupt(damage) => damage,
            };
            // Damaged since it was written or checked: the rest of this
            // segment is cut, counted by number (its bytes cannot be trusted).
            let skipped = end_seq - cursor.seq;
            let mut state = self.lock_state();
            state.stats.cut_read.add(skipped, 0);
            state.stats.held.records -= skipped;
            drop(state);
            eprintln!(
                "weir: disk buffer {}: damaged record at offset {offset} ({damage}); \
                 {skipped} records skipped",
                path.display()
            );
            cursor.seq = end_seq;
            break;
        }
        if let (Some((_, first)), Some((_, last))) = (payloads.first(), payloads.last()) {
            let base = first.start;
            let shared = bytes::Bytes::copy_from_slice(&view[base..last.end]);
            entries.extend(payloads.into_iter().map(|(seq, within)| Entry {
                seq,
                payload: shared.slice(within.start - base..within.end - base),
            }));
        }
        // Kept at the segment's end too: the newest segment grows, and the
        // next read goes on from here rather than walking it from the start.
        cursor.at = Some((first_seq, offset));
        cursor.chunk = chunk;
        Ok(bytes)
    }

    /// Acknowledges the records `range` (read earlier) holding
    /// `payload_bytes`: the sink has them. Ranges may come in any order.
    pub fn ack(&self, range: Range<u64>, payload_bytes: u64) -> Result<(), BufferError> {
        if range.is_empty() {
            return Ok(());
        }
        let mut state = self.lock_state();
        let moved = {
            let state = &mut *state;
            acks::account(&mut state.acks, &mut state.stats, range, payload_bytes)
        };
        if !moved {
            return Ok(());
        }
        self.delete_acknowledged(&mut state);
        self.store_mark(&mut state)?;
        drop(state);
        self.changed.notify_all();
        Ok(())
    }

    /// Deletes the segments wholly below the mark, all but the newest.
    fn delete_acknowledged(&self, state: &mut State) {
        while state.segments.len() > 1 && state.segments[0].end_seq <= state.acks.mark() {
            let done = state.segments.pop_front().expect("checked");
            state.disk_bytes -= done.len;
            let _ = fs::remove_file(&done.path);
        }
    }

    fn store_mark(&self, state: &mut State) -> Result<(), BufferError> {
        let sync = self.config().fsync == Fsync::Always;
        let mark = state.acks.mark();
        state
            .ack_file
            .store(mark, sync)
            .map_err(|source| BufferError::Io {
                path: self.dir.join("ack"),
                source,
            })?;
        state.dirty |= !sync;
        self.sync_per_policy(state)
    }

    /// Syncs if the policy's interval has passed since the last sync.
    pub fn sync_if_due(&self) -> Result<(), BufferError> {
        let mut state = self.lock_state();
        self.sync_per_policy(&mut state)
    }

    fn sync_per_policy(&self, state: &mut State) -> Result<(), BufferError> {
        let due = match self.config().fsync {
            Fsync::Always => true,
            Fsync::Every(interval) => state.last_sync.elapsed() >= interval,
            Fsync::Never => false,
        };
        if due && state.dirty {
            self.sync_state(state)?;
        }
        Ok(())
    }

    fn sync_state(&self, state: &mut State) -> Result<(), BufferError> {
        let path = &state.segments.back().expect("an active segment").path;
        state.writer.sync_data().map_err(|source| BufferError::Io {
            path: path.clone(),
            source,
        })?;
        state.ack_file.sync().map_err(|source| BufferError::Io {
            path: self.dir.join("ack"),
            source,
        })?;
        state.dirty = false;
        state.last_sync = Instant::now();
        Ok(())
    }

    pub fn next_seq(&self) -> u64 {
        self.lock_state().next_seq
    }

    pub fn acked_below(&self) -> u64 {
        self.lock_state().acks.mark()
    }

    pub fn rewind(&self) {
        let mark = self.lock_state().acks.mark();
        let mut cursor = self.cursor.lock().unwrap_or_else(|e| e.into_inner());
        cursor.seq = mark;
        cursor.at = None;
    }

    pub fn is_closed(&self) -> bool {
        self.lock_state().closed
    }

    /// Ends appends: readers get what is left, then empty reads.
    /// Syncs unless the policy is never to.
    pub fn close(&self) -> Result<(), BufferError> {
        let mut state = self.lock_state();
        state.closed = true;
        if self.config().fsync != Fsync::Never && state.dirty {
            self.sync_state(&mut state)?;
        }
        drop(state);
        self.changed.notify_all();
        Ok(())
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How many of `payloads`, from the first, fit in `room` bytes framed.
fn count_fitting(payloads: &[&[u8]], room: u64) -> usize {
    let mut used = 0;
    payloads
        .iter()
        .take_while(|p| {
            used += frame::framed_len(p.len());
            used <= room
        })
        .count()
}

/// The framed length of the record starting at `bytes`, from its header.
fn record_len_at(bytes: &[u8]) -> Option<u64> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
    Some(frame::framed_len(len as usize))
}

/// Makes a new or deleted segment's name durable.
fn sync_dir(dir: &Path) {
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
}

#[cfg(test)]
mod tests;
