//! The embedded store: one SQLite file in write-ahead-log mode. One
//! connection writes (the `store` sink's batches, then retention); a few
//! others read at the same time, each query under a time budget.

mod blocks;
mod checkpoint;
mod logs;
mod read;
mod retention;
mod schema;
mod sources;
mod spans;
mod write;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use weir_agent::record::LogRecord;

use self::checkpoint::Checkpointer;
pub use self::retention::{Deleted, Retention};
use self::sources::Sources;
use self::write::Writer;
use super::{
    Bucket, LogPage, LogQuery, QUERY_BUDGET, Scope, SourceFilter, Spans, Store, StoreError,
    StoreStats, TailStep, TraceQuery, Usage,
};

/// Reading connections kept open between queries.
const IDLE_READERS: usize = 4;

/// The SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<WriteSide>,
    checkpointer: Checkpointer,
    readers: Mutex<Vec<Connection>>,
    sources: Sources,
}

struct WriteSide {
    writer: Writer,
    retention: Retention,
    /// When sources no record refers to were last looked for.
    sources_forgotten: Option<Instant>,
}

/// How often, at most, sources no record refers to are looked for: it
/// reads every block's summary.
const FORGET_SOURCES_EVERY: Duration = Duration::from_secs(60);

impl WriteSide {
    /// Enforces retention; after it deleted records, deletes the sources
    /// left without any, now and then.
    fn enforce(&mut self, path: &Path) -> rusqlite::Result<Deleted> {
        let done = self.retention.enforce(&self.writer.connection, path)?;
        let due = self
            .sources_forgotten
            .is_none_or(|last| last.elapsed() >= FORGET_SOURCES_EVERY);
        if done.aged + done.evicted > 0 && due {
            self.sources_forgotten = Some(Instant::now());
            self.writer.forget_unused_sources()?;
        }
        Ok(done)
    }
}

impl SqliteStore {
    /// Opens the store at `path` (creating it and its directory), keeping
    /// what `retention` allows.
    pub fn open(path: &Path, retention: Retention) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::failed(format!("creating {}", dir.display()), e))?;
        }
        let connection = schema::open(path, true)
            .map_err(|e| StoreError::failed(format!("opening {}", path.display()), e))?;
        let checkpointer = Checkpointer::start(path)
            .map_err(|e| StoreError::failed(format!("checkpointing {}", path.display()), e))?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            checkpointer,
            writer: Mutex::new(WriteSide {
                writer: Writer::new(connection),
                retention,
                sources_forgotten: None,
            }),
            readers: Mutex::new(Vec::new()),
            sources: Sources::default(),
        })
    }

    /// Deletes what retention no longer allows, a step at a time; says
    /// how many records went. The writer calls it after its batches.
    pub fn enforce_retention(&self) -> Result<Deleted, StoreError> {
        let mut side = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let done = side
            .enforce(&self.path)
            .map_err(|e| StoreError::failed("retention", e));
        // What retention deleted and gave back reaches the database file
        // (and the disk) at a checkpoint.
        self.checkpointer.committed();
        done
    }

    /// Enforces retention if it is due: after each batch, and from
    /// [`SqliteStore::keep_retaining`] when no batch comes.
    fn retain(&self, side: &mut WriteSide) {
        if !side.retention.due() {
            return;
        }
        let done = side.enforce(&self.path);
        self.checkpointer.committed();
        match done {
            Ok(done) if done.evicted > 0 => eprintln!(
                "weir: store {}: over its size bound or short of free disk: deleted the {} oldest records before their max_age",
                self.path.display(),
                done.evicted
            ),
            Ok(_) => {}
            Err(e) => eprintln!("weir: store {}: retention: {e}", self.path.display()),
        }
    }

    /// Starts a thread that enforces retention while nothing is written,
    /// so an idle store still lets old records go and frees the disk.
    pub fn keep_retaining(self: &Arc<Self>) -> std::io::Result<()> {
        let store = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("weir-retention".into())
            .spawn(move || {
                while let Some(store) = store.upgrade() {
                    let mut side = store.writer.lock().unwrap_or_else(|e| e.into_inner());
                    store.retain(&mut side);
                    drop(side);
                    drop(store);
                    std::thread::sleep(retention::INTERVAL);
                }
            })
            .map(drop)
    }

    /// Runs `query` on a reading connection, interrupted past the budget.
    fn read<T>(
        &self,
        query: impl FnOnce(&Connection, &Sources) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let connection = self.reader()?;
        let deadline = Instant::now() + QUERY_BUDGET;
        connection.progress_handler(10_000, Some(move || Instant::now() > deadline));
        // One read transaction, so the sources and the records are of the
        // same moment: a record never arrives before its source is known.
        let result = connection.execute_batch("BEGIN").and_then(|()| {
            let answer = self
                .sources
                .refresh(&connection)
                .and_then(|()| query(&connection, &self.sources));
            connection.execute_batch("ROLLBACK").and(answer)
        });
        connection.progress_handler(0, None::<fn() -> bool>);
        let mut idle = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(connection);
        }
        result.map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::OperationInterrupted =>
            {
                StoreError::TooSlow(QUERY_BUDGET)
            }
            e => StoreError::failed("query", e),
        })
    }

    fn reader(&self) -> Result<Connection, StoreError> {
        if let Some(connection) = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(connection);
        }
        schema::open(&self.path, false)
            .map_err(|e| StoreError::failed(format!("opening {}", self.path.display()), e))
    }
}

impl Store for SqliteStore {
    fn append(&self, records: &[LogRecord]) -> Result<(), StoreError> {
        let mut side = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        side.writer
            .append(records)
            .map_err(|e| StoreError::failed(format!("writing to {}", self.path.display()), e))?;
        self.checkpointer.committed();
        // Retention failing must not refuse the batch just committed.
        self.retain(&mut side);
        Ok(())
    }

    fn logs(&self, query: &LogQuery) -> Result<LogPage, StoreError> {
        self.read(|c, sources| logs::logs(c, sources, query))
    }

    fn logs_after(&self, query: &LogQuery, after: i64) -> Result<TailStep, StoreError> {
        self.read(|c, sources| logs::logs_after(c, sources, query, after))
    }

    fn last_log_id(&self) -> Result<i64, StoreError> {
        self.read(|c, _| logs::last_id(c))
    }

    fn log_histogram(&self, query: &LogQuery, step_ns: i64) -> Result<Vec<Bucket>, StoreError> {
        self.read(|c, sources| logs::log_histogram(c, sources, query, step_ns))
    }

    fn services(&self, scope: &Scope) -> Result<Vec<String>, StoreError> {
        self.read(|c, sources| read::services(c, sources, scope))
    }

    fn span_names(&self, scope: &Scope, service: &str) -> Result<Vec<String>, StoreError> {
        self.read(|c, sources| read::span_column(c, sources, scope, service, "name"))
    }

    fn remote_services(&self, scope: &Scope, service: &str) -> Result<Vec<String>, StoreError> {
        self.read(|c, sources| read::span_column(c, sources, scope, service, "remote_service"))
    }

    fn traces(&self, query: &TraceQuery) -> Result<Vec<Spans>, StoreError> {
        self.read(|c, sources| spans::traces(c, sources, query))
    }

    fn traces_by_id(&self, scope: &Scope, ids: &[[u8; 16]]) -> Result<Vec<Spans>, StoreError> {
        self.read(|c, sources| spans::traces_by_id(c, sources, scope, ids))
    }

    fn spans_between(
        &self,
        scope: &Scope,
        from_ns: i64,
        to_ns: i64,
        max_spans: usize,
    ) -> Result<Vec<Spans>, StoreError> {
        self.read(|c, sources| spans::spans_between(c, sources, scope, from_ns, to_ns, max_spans))
    }

    fn tag_values(
        &self,
        scope: &Scope,
        key: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.read(|c, sources| spans::tag_values(c, sources, scope, key, limit))
    }

    fn usage(
        &self,
        filter: &SourceFilter,
        from_ns: i64,
        to_ns: i64,
        step_ns: i64,
    ) -> Result<Usage, StoreError> {
        self.read(|c, sources| read::usage(c, sources, filter, from_ns, to_ns, step_ns))
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let deleted = self
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retention
            .total;
        self.read(|c, _| {
            Ok(StoreStats {
                logs: blocks::count(c, blocks::Kind::Logs)?,
                spans: blocks::count(c, blocks::Kind::Spans)?,
                bytes: retention::used_bytes(c)?,
                sources: c.query_row("SELECT count(*) FROM sources", [], |r| r.get(0))?,
                aged: deleted.aged,
                evicted: deleted.evicted,
            })
        })
    }
}
