//! The tables of the SQLite store, and how a connection to it is opened.
//!
//! - `sources`: each distinct resource once (tenant, node, container,
//!   service pulled out to filter on); records point at it.
//! - `log_blocks` and `log_records`: log records in blocks of consecutive
//!   ids (see `blocks`), in arrival order; an id is never given again once
//!   retention deleted it (`counters.next_log`), so a live tail resumes by
//!   id. `log_blocks` summarizes each block (ids, time span, streams,
//!   severities, sources, a Bloom filter of its words), indexed by its
//!   newest time; `log_records` holds its records and trace ids.
//! - `log_traces`: which blocks hold records of a trace.
//! - `losses`: the gate's loss records (also among the logs), what was
//!   dropped, why and how much, for the bandwidth view.
//! - `span_blocks`, `span_records` and `span_traces`: spans in blocks,
//!   as logs are; a block's filter holds terms (its spans' names, remote
//!   services, tag keys and key=value pairs, annotations: see `spans`)
//!   instead of words. `span_names`: each source's span and remote service
//!   names, for the name lists.
//! - `usage`: body bytes and records per source and minute, summed as
//!   batches are written, for the bandwidth view.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

static SQLITE_SETTINGS: std::sync::Once = std::sync::Once::new();

/// What the write-ahead log is cut back to after a checkpoint.
pub const WAL_LIMIT: i64 = 16 << 20;

/// The schema's version, in `PRAGMA user_version`. Before the first
/// release: version 1 indexed words with `unicode61`; version 2 could give
/// a deleted record's id to a new one; version 3 had a row per log record
/// and an FTS5 index of words; version 4 a row per span.
const VERSION: i64 = 5;

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS sources (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    node TEXT NOT NULL,
    container TEXT NOT NULL,
    service TEXT NOT NULL,
    resource BLOB NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log_blocks (
    id INTEGER PRIMARY KEY,
    last INTEGER NOT NULL,
    min_time INTEGER NOT NULL,
    max_time INTEGER NOT NULL,
    streams INTEGER NOT NULL,
    severities INTEGER NOT NULL,
    sources BLOB NOT NULL,
    words BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS log_blocks_by_time ON log_blocks (max_time);
CREATE TABLE IF NOT EXISTS log_records (
    block INTEGER PRIMARY KEY,
    traces BLOB NOT NULL,
    records BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS log_traces (
    trace_id BLOB NOT NULL,
    block INTEGER NOT NULL,
    PRIMARY KEY (trace_id, block)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS losses (
    log INTEGER PRIMARY KEY,
    time_ns INTEGER NOT NULL,
    source INTEGER NOT NULL,
    reason TEXT NOT NULL,
    lines INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS losses_by_time ON losses (time_ns);
CREATE TABLE IF NOT EXISTS span_blocks (
    id INTEGER PRIMARY KEY,
    last INTEGER NOT NULL,
    min_time INTEGER NOT NULL,
    max_time INTEGER NOT NULL,
    max_duration INTEGER NOT NULL,
    sources BLOB NOT NULL,
    terms BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS span_blocks_by_time ON span_blocks (max_time);
CREATE TABLE IF NOT EXISTS span_records (
    block INTEGER PRIMARY KEY,
    traces BLOB NOT NULL,
    records BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS span_traces (
    trace_id BLOB NOT NULL,
    block INTEGER NOT NULL,
    PRIMARY KEY (trace_id, block)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS span_names (
    source INTEGER NOT NULL,
    name TEXT NOT NULL,
    remote_service TEXT NOT NULL,
    PRIMARY KEY (source, name, remote_service)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS usage (
    source INTEGER NOT NULL,
    minute INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    records INTEGER NOT NULL,
    PRIMARY KEY (source, minute)
) WITHOUT ROWID;
";

/// Opens (creating if need be) the store at `path`, for writing or reading.
pub fn open(path: &Path, writer: bool) -> rusqlite::Result<Connection> {
    SQLITE_SETTINGS.call_once(|| {
        // SAFETY: sqlite3_config with an int argument, before SQLite is
        // initialized (after, it refuses with SQLITE_MISUSE and nothing
        // changes). Without memory statistics, an allocation takes no
        // global lock.
        unsafe {
            rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0);
        }
    });
    let connection = Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(10))?;
    if writer {
        // Set before the first table exists; freed pages can then be
        // handed back to the file system by retention.
        connection.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "journal_size_limit", WAL_LIMIT)?;
        // Checkpoints are the `checkpoint` thread's, not the commit's.
        connection.pragma_update(None, "wal_autocheckpoint", 0)?;
        let version: i64 = connection.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version != 0 && version != VERSION {
            return Err(rusqlite::Error::InvalidParameterName(format!(
                "the store's schema is version {version}, and this weir reads version {VERSION} only: move {} aside",
                path.display()
            )));
        }
        connection.execute_batch(TABLES)?;
        connection.pragma_update(None, "user_version", VERSION)?;
        connection.pragma_update(None, "cache_size", -32_000)?;
    } else {
        connection.pragma_update(None, "cache_size", -16_000)?;
    }
    // A commit is on disk (the write-ahead log fsynced) before the batch
    // is acknowledged.
    connection.pragma_update(None, "synchronous", "FULL")?;
    Ok(connection)
}
