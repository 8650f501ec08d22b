//! Copying the write-ahead log into the database file, on a thread of its
//! own. SQLite's automatic checkpoint runs inside the commit that crosses
//! its threshold: the writer copies pages and waits for the database
//! file's fsync while batches queue behind it. Here the writer only
//! commits (one fsync of the log); the copy and its fsync overlap the next
//! batches. A passive checkpoint never blocks the writer or a reader; but
//! the log only starts over from its beginning when a write begins with
//! every frame copied, which under steady writing never happens. So once
//! the log passes [`RESTART_PAST`], a restarting checkpoint waits for the
//! writer's current batch, copies the rest and lets the next batch start
//! the log over (cut back to `WAL_LIMIT`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

/// The longest a commit waits to be copied into the database file.
const EVERY: Duration = Duration::from_millis(200);

/// How large the write-ahead log may grow before it is started over.
const RESTART_PAST: u64 = 8 * super::schema::WAL_LIMIT as u64;

/// The checkpointing thread; stopped (after a last checkpoint) when dropped.
pub struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// Commits since the last checkpoint.
    commits: u64,
    stop: bool,
}

impl Checkpointer {
    /// Starts checkpointing the store at `path` with a connection of its
    /// own.
    pub fn start(path: &Path) -> std::io::Result<Checkpointer> {
        let shared = Arc::new(Shared::default());
        let connection = super::schema::open(path, false).map_err(std::io::Error::other)?;
        let thread = {
            let shared = Arc::clone(&shared);
            let path = path.to_path_buf();
            std::thread::Builder::new()
                .name("weir-checkpoint".into())
                .spawn(move || run(&connection, &shared, &path))?
        };
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    /// Says a batch was committed.
    pub fn committed(&self) {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.commits += 1;
        self.shared.wake.notify_one();
    }
}

/// Checkpoints after commits, at most every [`EVERY`], until told to stop.
fn run(connection: &Connection, shared: &Shared, path: &Path) {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if state.commits == 0 && !state.stop {
            state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            continue;
        }
        let stop = state.stop;
        state.commits = 0;
        drop(state);
        let large = std::fs::metadata(&wal).is_ok_and(|m| m.len() > RESTART_PAST);
        let sql = if large {
            "PRAGMA wal_checkpoint(RESTART)"
        } else {
            "PRAGMA wal_checkpoint(PASSIVE)"
        };
        if let Err(e) = connection.query_row(sql, [], |_| Ok(())) {
            eprintln!("weir: store {}: checkpoint: {e}", path.display());
        }
        if stop {
            return;
        }
        std::thread::sleep(EVERY);
        state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
