//! The `file` source: tails the files its globs match, following rotation
//! by rename (the file is known by its inode, not its name) and by
//! copy-truncate (a file shorter than the offset read, or no longer starting
//! with the bytes it started with, starts over, and a new
//! file that begins as a file already read does is its copy: it is read on
//! from the offset the original was acknowledged to), picking up new files, and
//! reading a deleted file to its end before letting go.
//!
//! Each file's checkpoint moves only past records every sink downstream has
//! acknowledged, or that a disk buffer holds (end-to-end acknowledgement):
//! after a crash, reading resumes there, so nothing acknowledged is read
//! twice and nothing unacknowledged is skipped.

pub mod checkpoint;
pub mod format;
mod monitor;

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use self::checkpoint::{Checkpoints, Entry, FileId, Fingerprint};
pub use self::format::Format;
use self::format::LineParser;
use super::{Control, Handed, Output, Position, Wiring};
use crate::metrics::SourceMetrics;
use crate::read_at::read_full_at;
use crate::record::{CompactString, LogRecord};

#[derive(Debug, Clone)]
pub struct FileSourceConfig {
    pub include: Vec<String>,
    pub exclude: Vec<glob::Pattern>,
    pub format: Format,
    /// Files found at the first start without a checkpoint: read from the
    /// beginning, or only what is written from now on.
    pub start_at_end: bool,
    /// Largest record; longer lines go out in partial pieces.
    pub max_record: usize,
    /// How often idle files are looked at again.
    pub poll: Duration,
    pub checkpoint_path: PathBuf,
    /// The files are `weir run`'s logs: say whose they are, and turn its
    /// loss markers into loss records.
    pub monitor: bool,
    /// Set when this reader splits off a running one: where that one was.
    pub handover: Option<Handover>,
}

/// What a reader that splits off a running one takes over, so that its
/// sink neither misses nor gets twice what the other read for it. It
/// reads on from where the other had read to, while its checkpoints stay
/// where the other's were acknowledged until the sink's buffer has
/// acknowledged `behind`: the records the other handed it.
#[derive(Debug, Clone)]
pub struct Handover {
    pub positions: Vec<Position>,
    pub behind: Handed,
}

/// Bytes read from one file before the others get their turn, and handed
/// to the buffers at once: after a crash at most this much is read again.
const READ_CHUNK: usize = 64 << 10;
/// How long a stopping source waits for what it handed over to be
/// acknowledged, at most, before it writes its last checkpoints.
const ACKNOWLEDGED_AT_STOP: Duration = Duration::from_secs(1);
/// How often the checkpoints are synced to disk while they move.
const CHECKPOINT_SYNC_EVERY: Duration = Duration::from_secs(1);
/// Bytes two files must share at their start for one to count as the
/// other's copy (fewer could be a common header line).
const MIN_COPY_MATCH: u32 = 64;
/// How long a truncated file's place is remembered for its copy.
const REMEMBER_TRUNCATED: Duration = Duration::from_secs(60);

/// A file at its end that no glob matches any more (rotated away, or
/// deleted) is let go after it has been quiet this long.
const LET_GO_AFTER: Duration = Duration::from_secs(5);

/// A file being read.
struct Tailed {
    id: FileId,
    path: PathBuf,
    file: File,
    fingerprint: Fingerprint,
    /// Bytes read and turned into records (or into the open fragment).
    offset: u64,
    /// The offset where the current line starts; bytes after it wait for
    /// their newline.
    partial: Vec<u8>,
    parser: LineParser,
    /// Offsets handed to the buffers, oldest first, waiting for
    /// acknowledgement: (offset after, each buffer with the sequence number
    /// after what it got).
    pending: VecDeque<(u64, Handed)>,
    /// The offset acknowledged: what the checkpoint says.
    committed: u64,
    last_data: Instant,
    /// A glob matched it at the last look.
    matched: bool,
}

/// Starts the source on its own thread; it runs until `stop` is set.
/// A reload parks the source and hands it new routes through `control`,
/// between two reads.
pub fn start(name: &str, config: FileSourceConfig, wiring: Wiring) -> io::Result<JoinHandle<()>> {
    let Wiring {
        output,
        control,
        metrics,
        stop,
    } = wiring;
    // `start_at = "end"` is for the files there at the source's very first
    // start: a reader with checkpoints (its own, or those it was seeded
    // with) reads a file new to them from its start.
    let first_start = !Checkpoints::exist(&config.checkpoint_path);
    let checkpoints = Checkpoints::load(&config.checkpoint_path)?;
    let handover = config.handover.clone();
    let name = name.to_owned();
    thread::Builder::new()
        .name(format!("weir-src-{name}"))
        .spawn(move || {
            let mut tail = Tail {
                name,
                config,
                output,
                control,
                metrics,
                checkpoints,
                handover,
                files: HashMap::new(),
                owners: monitor::Owners::default(),
                truncated: Vec::new(),
                first_start_scan: first_start,
                records: Vec::new(),
            };
            tail.run(&stop);
        })
}

struct Tail {
    name: String,
    config: FileSourceConfig,
    output: Output,
    control: Arc<Control>,
    metrics: Arc<SourceMetrics>,
    checkpoints: Checkpoints,
    /// Where the reader this one split off was, until the first scan.
    handover: Option<Handover>,
    files: HashMap<FileId, Tailed>,
    owners: monitor::Owners,
    /// Files found truncated: their start and where they had been read to,
    /// so the copy copy-truncate made can go on from there.
    truncated: Vec<(Fingerprint, u64, Instant)>,
    /// The first scan of the source's first start.
    first_start_scan: bool,
    records: Vec<LogRecord>,
}

impl Tail {
    fn run(&mut self, stop: &AtomicBool) {
        let mut last_scan = None::<Instant>;
        let mut last_checkpoint = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let files = &self.files;
            self.control
                .between_reads(&mut self.output, || positions(files));
            // Stopped while parked (a reload that retires this lane): not
            // one more read on the old routes, which a lane split off this
            // one reads on from.
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let first_scan = last_scan.is_none();
            if first_scan || last_scan.is_some_and(|t| t.elapsed() >= self.config.poll) {
                self.scan();
                last_scan = Some(Instant::now());
                if first_scan {
                    // Written at once, so that a lane split off this one
                    // before it moved finds where it starts.
                    self.commit_acknowledged();
                    self.store_checkpoints(false);
                }
            }
            let mut progressed = false;
            let ids: Vec<FileId> = self.files.keys().copied().collect();
            for id in ids {
                progressed |= self.read_some(id);
            }
            let moved = self.commit_acknowledged();
            // Stored as soon as they move, so a crash re-reads little; synced
            // once a second, for a power cut.
            let sync_due = last_checkpoint.elapsed() >= CHECKPOINT_SYNC_EVERY;
            if moved || sync_due {
                self.store_checkpoints(sync_due);
                if sync_due {
                    last_checkpoint = Instant::now();
                }
            }
            self.let_go_of_finished_files();
            if !progressed {
                thread::sleep(self.config.poll.min(Duration::from_millis(100)));
            }
        }
        // What was handed over is being delivered still: the checkpoints
        // follow its acknowledgements a little longer, so that the next
        // start sends again as little as it can.
        let deadline = Instant::now() + ACKNOWLEDGED_AT_STOP;
        self.commit_acknowledged();
        while self.files.values().any(|t| !t.pending.is_empty()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
            self.commit_acknowledged();
        }
        self.store_checkpoints(true);
    }

    /// Looks for files the globs match, opening the new ones.
    fn scan(&mut self) {
        for tailed in self.files.values_mut() {
            tailed.matched = false;
        }
        for pattern in &self.config.include.clone() {
            let paths = match glob::glob(pattern) {
                Ok(paths) => paths,
                Err(e) => {
                    eprintln!("weir: source {}: pattern {pattern}: {e}", self.name);
                    continue;
                }
            };
            for path in paths.flatten() {
                if self.config.exclude.iter().any(|p| p.matches_path(&path)) {
                    continue;
                }
                if let Err(e) = self.track(&path) {
                    eprintln!("weir: source {}: {}: {e}", self.name, path.display());
                }
            }
        }
        self.first_start_scan = false;
        self.handover = None;
    }

    fn track(&mut self, path: &Path) -> io::Result<()> {
        let meta = std::fs::metadata(path)?;
        if !meta.is_file() {
            return Ok(());
        }
        let id = (meta.dev(), meta.ino());
        if let Some(tailed) = self.files.get_mut(&id) {
            tailed.matched = true;
            // Renamed (rotated): the same file under its new name.
            tailed.path = path.to_path_buf();
            return Ok(());
        }
        let Some((file, meta)) = open_as_seen(path, id)? else {
            // Renamed and replaced between the look and the open: the next
            // scan finds both files under their new names.
            return Ok(());
        };
        if self.config.monitor {
            self.owners.forget(path);
        }
        let mut head = vec![0u8; checkpoint::FINGERPRINT_BYTES];
        let got = read_full_at(&file, &mut head, 0)?;
        head.truncate(got);
        let offset = match self.checkpoints.resume(id, &head) {
            Some(offset) if offset <= meta.len() => offset,
            // Truncated since the checkpoint: start over.
            Some(_) => 0,
            None => match self.copied_from(&head) {
                Some(offset) => offset.min(meta.len()),
                None if self.first_start_scan && self.config.start_at_end => meta.len(),
                None => 0,
            },
        };
        let (read, pending) = match self.taken_over(id, &head, offset, meta.len()) {
            Some((read, behind)) => (read, VecDeque::from([(read, behind)])),
            None => (offset, VecDeque::new()),
        };
        self.files.insert(
            id,
            Tailed {
                id,
                path: path.to_path_buf(),
                file,
                fingerprint: Fingerprint::of(&head),
                offset: read,
                partial: Vec::new(),
                parser: LineParser::new(self.config.format, self.config.max_record),
                pending,
                committed: offset,
                last_data: Instant::now(),
                matched: true,
            },
        );
        Ok(())
    }

    /// Where the reader this one split off had read `id` to, past the
    /// `acknowledged` offset this one resumes from, with what its sink's
    /// buffer must acknowledge before the checkpoint may move there.
    fn taken_over(
        &self,
        id: FileId,
        head: &[u8],
        acknowledged: u64,
        len: u64,
    ) -> Option<(u64, Handed)> {
        let handover = self.handover.as_ref()?;
        let position = handover
            .positions
            .iter()
            .find(|p| (p.acknowledged.dev, p.acknowledged.ino) == id)?;
        let fingerprint = position.acknowledged.fingerprint;
        let same_file =
            Fingerprint::of(&head[..head.len().min(fingerprint.len as usize)]) == fingerprint;
        (same_file && acknowledged < position.read && position.read <= len)
            .then(|| (position.read, handover.behind.clone()))
    }

    /// Where to start a new file that is the copy of one read already (it
    /// begins with the same bytes): where the original was acknowledged to.
    fn copied_from(&mut self, head: &[u8]) -> Option<u64> {
        self.truncated
            .retain(|(_, _, when)| when.elapsed() < REMEMBER_TRUNCATED);
        let same_start = |fingerprint: &Fingerprint| {
            fingerprint.len >= MIN_COPY_MATCH
                && head.len() >= fingerprint.len as usize
                && Fingerprint::of(&head[..fingerprint.len as usize]) == *fingerprint
        };
        self.files
            .values()
            .filter(|t| same_start(&t.fingerprint))
            .map(|t| t.committed)
            .chain(
                self.truncated
                    .iter()
                    .filter(|(f, _, _)| same_start(f))
                    .map(|(_, offset, _)| *offset),
            )
            .max()
    }

    /// Reads what one file has beyond its offset, up to a chunk; returns
    /// whether anything was read.
    fn read_some(&mut self, id: FileId) -> bool {
        let Some(tailed) = self.files.get_mut(&id) else {
            return false;
        };
        let size = match tailed.file.metadata() {
            Ok(meta) => meta.len(),
            Err(_) => return false,
        };
        let read_to = tailed.offset + tailed.partial.len() as u64;
        if size < read_to || !starts_as_before(tailed) {
            self.start_over(id);
            return true;
        }
        if size == read_to {
            return false;
        }
        let want = ((size - read_to) as usize).min(READ_CHUNK);
        let start = tailed.partial.len();
        tailed.partial.resize(start + want, 0);
        let got = match read_full_at(&tailed.file, &mut tailed.partial[start..], read_to) {
            Ok(got) => got,
            Err(e) => {
                tailed.partial.truncate(start);
                eprintln!("weir: source {}: {}: {e}", self.name, tailed.path.display());
                return false;
            }
        };
        tailed.partial.truncate(start + got);
        if !starts_as_before(tailed) {
            // Truncated and written again between the look above and the
            // read: what was read is new content at the old offset. It is
            // dropped and read again from the start, and the copy goes on
            // from the offset reached before it.
            tailed.partial.truncate(start);
            self.start_over(id);
            return true;
        }
        tailed.last_data = Instant::now();
        if (tailed.fingerprint.len as usize) < checkpoint::FINGERPRINT_BYTES {
            // The file was shorter than a fingerprint: take it again now.
            let mut head = vec![0u8; checkpoint::FINGERPRINT_BYTES];
            if let Ok(got) = read_full_at(&tailed.file, &mut head, 0) {
                tailed.fingerprint = Fingerprint::of(&head[..got]);
            }
        }
        let observed = now_ns();
        // Whole lines go to the parser; a line without its newline waits,
        // unless it is already longer than a record can be.
        let mut consumed = 0;
        let mut malformed = 0u64;
        let mut malformed_bytes = 0u64;
        let mut line_bytes = 0u64;
        let mut lines = 0u64;
        while let Some(end) = memchr_newline(&tailed.partial[consumed..]) {
            let line = &tailed.partial[consumed..consumed + end];
            if !tailed.parser.parse(line, observed, &mut self.records) {
                malformed += 1;
                malformed_bytes += line.len() as u64;
            }
            lines += 1;
            line_bytes += line.len() as u64 + 1;
            consumed += end + 1;
        }
        let rest = tailed.partial.len() - consumed;
        if rest > self.config.max_record + 1024 {
            // A line longer than any record: what there is goes out (as
            // partial pieces of a plain record) rather than growing forever.
            let line = &tailed.partial[consumed..];
            let mut piece = LineParser::new(format::Format::Plain, self.config.max_record);
            piece.parse(line, observed, &mut self.records);
            if let Some(last) = self.records.last_mut() {
                last.partial = true;
            }
            line_bytes += line.len() as u64;
            consumed = tailed.partial.len();
        }
        tailed.partial.drain(..consumed);
        tailed.offset += consumed as u64;
        self.metrics.read.add(lines, line_bytes);
        if malformed > 0 {
            self.metrics.malformed.add(malformed, malformed_bytes);
        }
        let path = CompactString::from(tailed.path.to_string_lossy());
        let owner = self
            .config
            .monitor
            .then(|| self.owners.resource_of(&tailed.path));
        for record in &mut self.records {
            if let Some(owner) = &owner {
                record.resource.extend(owner.iter().cloned());
                monitor::mark_loss(record);
            }
            record.resource.push(("log.file.path".into(), path.clone()));
        }
        let records = std::mem::take(&mut self.records);
        // Left out of a full buffer because the source stops: the read
        // never becomes pending, so the checkpoint stays before it and it
        // is read again after the next start.
        if let Some(ends) = self.output.emit(records, &self.metrics) {
            let tailed = self.files.get_mut(&id).expect("still tracked");
            tailed.pending.push_back((tailed.offset, ends));
        }
        true
    }

    /// Copy-truncate: the file was emptied under us. Its place is
    /// remembered for its copy, and it is read again from the start.
    fn start_over(&mut self, id: FileId) {
        let Some(tailed) = self.files.get_mut(&id) else {
            return;
        };
        eprintln!(
            "weir: source {}: {} was truncated; reading it from the start",
            self.name,
            tailed.path.display()
        );
        // The copy goes on from what was acknowledged, not from what was
        // read: what was in flight may come twice, but a crash before it is
        // acknowledged cannot lose it.
        self.truncated
            .push((tailed.fingerprint, tailed.committed, Instant::now()));
        tailed.fingerprint = Fingerprint::of(&[]);
        tailed.offset = 0;
        tailed.partial.clear();
        tailed.pending.clear();
        tailed.committed = 0;
        tailed.parser = LineParser::new(self.config.format, self.config.max_record);
    }

    /// Moves each file's committed offset past what every buffer has
    /// acknowledged (or holds durably).
    /// Returns whether any moved.
    fn commit_acknowledged(&mut self) -> bool {
        let mut moved = false;
        for tailed in self.files.values_mut() {
            while let Some((offset, ends)) = tailed.pending.front() {
                if ends.iter().all(|(buffer, end)| Output::holds(buffer, *end)) {
                    moved |= tailed.committed != *offset;
                    tailed.committed = *offset;
                    tailed.pending.pop_front();
                } else {
                    break;
                }
            }
            self.checkpoints.set(Entry {
                dev: tailed.id.0,
                ino: tailed.id.1,
                fingerprint: tailed.fingerprint,
                offset: tailed.committed,
                path: tailed.path.clone(),
            });
        }
        moved
    }

    fn store_checkpoints(&mut self, sync: bool) {
        // Files no longer on disk need no checkpoint.
        let files = &self.files;
        self.checkpoints.retain(|id| files.contains_key(&id));
        if let Err(e) = self.checkpoints.store(sync) {
            eprintln!("weir: source {}: writing checkpoints: {e}", self.name);
        }
    }

    /// Closes files that no glob matches any more, once read to their end,
    /// quiet, and acknowledged.
    fn let_go_of_finished_files(&mut self) {
        self.files.retain(|_, tailed| {
            let at_end = tailed
                .file
                .metadata()
                .is_ok_and(|m| m.len() == tailed.offset + tailed.partial.len() as u64);
            tailed.matched
                || !at_end
                || !tailed.pending.is_empty()
                || tailed.last_data.elapsed() < LET_GO_AFTER
        });
    }
}

/// Where each file has been acknowledged to, and read to: past the last
/// read handed to the buffers, acknowledged or not.
fn positions(files: &HashMap<FileId, Tailed>) -> Vec<Position> {
    files
        .values()
        .map(|tailed| Position {
            acknowledged: Entry {
                dev: tailed.id.0,
                ino: tailed.id.1,
                fingerprint: tailed.fingerprint,
                offset: tailed.committed,
                path: tailed.path.clone(),
            },
            read: tailed
                .pending
                .back()
                .map_or(tailed.committed, |(end, _)| *end),
        })
        .collect()
}

/// Whether the file still begins with the bytes it began with: a file
/// truncated and written again past the offset read is caught here.
fn starts_as_before(tailed: &Tailed) -> bool {
    let len = tailed.fingerprint.len as usize;
    if len == 0 {
        return true;
    }
    let mut head = [0u8; checkpoint::FINGERPRINT_BYTES];
    match read_full_at(&tailed.file, &mut head[..len], 0) {
        Ok(got) => got == len && Fingerprint::of(&head[..len]) == tailed.fingerprint,
        Err(_) => true,
    }
}

/// Opens `path` if it is still the file `id` that was looked at, with its
/// size as of the open. A rotation can rename the file and put a new one
/// in its place between the look and the open: the open file would then be
/// tracked under the old file's id, and the old file, found later under
/// its new name with that id, would never be read.
fn open_as_seen(path: &Path, id: FileId) -> io::Result<Option<(File, std::fs::Metadata)>> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    Ok(((meta.dev(), meta.ino()) == id && meta.is_file()).then_some((file, meta)))
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|b| *b == b'\n')
}

fn now_ns() -> i64 {
    weir_monitor::format::timestamp::Timestamp::now()
        .as_nanos()
        .clamp(0, i64::MAX as i128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_replaced_between_the_look_and_the_open_is_not_taken_for_it() {
        let dir = std::env::temp_dir().join(format!("weir-open-as-seen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("app.log");
        std::fs::write(&log, "first file\n").unwrap();
        let meta = std::fs::metadata(&log).unwrap();
        let id = (meta.dev(), meta.ino());
        assert!(open_as_seen(&log, id).unwrap().is_some());
        // Rotated: renamed away, a new file in its place.
        std::fs::rename(&log, dir.join("app.log.1")).unwrap();
        std::fs::write(&log, "second file\n").unwrap();
        assert!(open_as_seen(&log, id).unwrap().is_none());
        let (_, meta) = open_as_seen(&dir.join("app.log.1"), id).unwrap().unwrap();
        assert_eq!(meta.len(), 11);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
