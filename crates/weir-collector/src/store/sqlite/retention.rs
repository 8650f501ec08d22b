//! Keeping the store within its bounds: records older than `max_age` go,
//! and while the store is larger than `max_size` or its disk has less than
//! `min_free` free, the oldest records go, a step at a time, so that the
//! store never fills the disk. Each call does a bounded amount of work, so
//! the writer it runs on is never held up for long.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, Transaction, params};

use super::blocks::{Kind, MAX_RECORDS};

/// How often the writer enforces retention.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// The most log records or spans deleted by one step.
const STEP_ROWS: i64 = 20_000;

/// Steps one call may take.
const MAX_STEPS: usize = 8;

/// What one enforcement deleted: records past `max_age`, and records
/// evicted younger to keep the size bound or the free disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deleted {
    pub aged: u64,
    pub evicted: u64,
}

/// What the store may keep.
#[derive(Debug, Clone)]
pub struct Retention {
    pub max_age: Duration,
    pub max_size: u64,
    pub min_free: u64,
    last: Option<Instant>,
    /// Everything deleted since the store was opened.
    pub total: Deleted,
}

impl Retention {
    pub fn new(max_age: Duration, max_size: u64, min_free: u64) -> Retention {
        Retention {
            max_age,
            max_size,
            min_free,
            last: None,
            total: Deleted::default(),
        }
    }

    /// Whether it is time to look again.
    pub fn due(&self) -> bool {
        self.last.is_none_or(|last| last.elapsed() >= INTERVAL)
    }

    /// Deletes what is too old, then the oldest while the store is too
    /// large or the disk too full; says how many records went, and why.
    pub fn enforce(&mut self, connection: &Connection, path: &Path) -> rusqlite::Result<Deleted> {
        self.last = Some(Instant::now());
        let now = weir_monitor::format::timestamp::Timestamp::now().as_nanos() as i64;
        let cutoff = now.saturating_sub(self.max_age.as_nanos().min(i64::MAX as u128) as i64);
        let mut deleted = Deleted {
            aged: delete_step(connection, Step::Before(cutoff))?,
            evicted: 0,
        };
        for _ in 0..MAX_STEPS {
            if !self.over(connection, path)? {
                break;
            }
            let evicted = delete_step(connection, Step::Oldest)?;
            if evicted == 0 {
                break;
            }
            deleted.evicted += evicted;
        }
        give_back_free_pages(connection)?;
        self.total.aged += deleted.aged;
        self.total.evicted += deleted.evicted;
        Ok(deleted)
    }

    fn over(&self, connection: &Connection, path: &Path) -> rusqlite::Result<bool> {
        if used_bytes(connection)? > self.max_size {
            return Ok(true);
        }
        Ok(free_bytes(path).is_some_and(|free| free < self.min_free))
    }
}

/// Bytes the store's data takes: the file less its free pages. (The
/// write-ahead log beside it is checkpointed within a fraction of a second
/// of each commit, and cut back to [`super::schema::WAL_LIMIT`] after.)
pub fn used_bytes(connection: &Connection) -> rusqlite::Result<u64> {
    let pragma = |name: &str| -> rusqlite::Result<u64> {
        connection.pragma_query_value(None, name, |r| r.get::<_, i64>(0).map(|v| v.max(0) as u64))
    };
    let pages = pragma("page_count")?.saturating_sub(pragma("freelist_count")?);
    Ok(pages * pragma("page_size")?)
}

/// Bytes free to unprivileged users on the file system of `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|dir| weir_monitor::free_bytes(&dir))
        .ok()
}

/// What one step deletes.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// The blocks of logs and spans wholly before the time and the usage
    /// of before it: what `max_age` no longer allows.
    Before(i64),
    /// The oldest 2 % of the log blocks and of the span blocks (by
    /// start), to make room. By position, not by time, so that a record
    /// stamped far in the future cannot make a step take everything.
    Oldest,
}

/// Deletes one step's worth (a bounded amount) in one transaction; says
/// how many log records and spans went.
fn delete_step(connection: &Connection, step: Step) -> rusqlite::Result<u64> {
    let transaction = connection.unchecked_transaction()?;
    let mut deleted = 0;
    for kind in [Kind::Logs, Kind::Spans] {
        deleted += delete_blocks(&transaction, kind, step)?;
    }
    if let Step::Before(time) = step {
        transaction
            .prepare_cached("DELETE FROM usage WHERE minute < ?1")?
            .execute([time.div_euclid(60_000_000_000)])?;
    }
    transaction.commit()?;
    Ok(deleted)
}

/// Deletes the blocks of `kind` that `step` selects (at most
/// [`STEP_ROWS`] records' worth) and what refers to them; says how many
/// records went.
fn delete_blocks(transaction: &Transaction<'_>, kind: Kind, step: Step) -> rusqlite::Result<u64> {
    let table = kind.table();
    let most = (STEP_ROWS / MAX_RECORDS as i64).max(1);
    let blocks = match step {
        Step::Before(time) => block_ranges(
            transaction,
            &format!(
                "SELECT id, last FROM {table}_blocks WHERE max_time < ?1 ORDER BY id LIMIT ?2"
            ),
            params![time, most],
        )?,
        Step::Oldest => {
            let count: i64 = transaction.query_row(
                &format!("SELECT count(*) FROM {table}_blocks"),
                [],
                |r| r.get(0),
            )?;
            block_ranges(
                transaction,
                &format!("SELECT id, last FROM {table}_blocks ORDER BY id LIMIT ?1"),
                params![(count / 50).max(1).min(most)],
            )?
        }
    };
    let mut deleted = 0u64;
    for (first, last) in blocks {
        let traces: Vec<u8> = transaction
            .prepare_cached(&format!(
                "SELECT traces FROM {table}_records WHERE block = ?1"
            ))?
            .query_row([first], |r| r.get(0))?;
        let mut unindex = transaction.prepare_cached(&format!(
            "DELETE FROM {table}_traces WHERE trace_id = ?1 AND block = ?2"
        ))?;
        for trace in traces.chunks_exact(16) {
            unindex.execute(params![trace, first])?;
        }
        for rows in ["records WHERE block", "blocks WHERE id"] {
            transaction
                .prepare_cached(&format!("DELETE FROM {table}_{rows} = ?1"))?
                .execute([first])?;
        }
        if kind == Kind::Logs {
            transaction
                .prepare_cached("DELETE FROM losses WHERE log BETWEEN ?1 AND ?2")?
                .execute([first, last])?;
        }
        deleted += (last - first + 1) as u64;
    }
    Ok(deleted)
}

/// The first and last record of each block `sql` selects.
fn block_ranges(
    transaction: &Transaction<'_>,
    sql: &str,
    values: impl rusqlite::Params,
) -> rusqlite::Result<Vec<(i64, i64)>> {
    let mut statement = transaction.prepare_cached(sql)?;
    let rows = statement.query_map(values, |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Hands free pages back to the file system once they are a tenth of
/// the file, and keeps the write-ahead log from growing.
fn give_back_free_pages(connection: &Connection) -> rusqlite::Result<()> {
    let pragma = |name: &str| -> rusqlite::Result<i64> {
        connection.pragma_query_value(None, name, |r| r.get(0))
    };
    let (pages, free) = (pragma("page_count")?, pragma("freelist_count")?);
    if free > 0 && free * 10 >= pages {
        connection.execute_batch(&format!("PRAGMA incremental_vacuum({free})"))?;
    }
    Ok(())
}
