//! Starting the child with output descriptors that weir owns.
//!
//! With pipes, stdout and stderr are separate streams and each pipe is grown
//! to the requested capacity so a fast writer is not throttled by a 64 KiB
//! buffer. With `--tty` the child gets a pseudo-terminal as stdout and stderr
//! (one stream) and becomes the leader of a new session on it.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use crate::config::{RunConfig, StdinMode};
use crate::signals;
use crate::stats::Stream;
use crate::sys;

/// A running child and the read ends of its output.
#[derive(Debug)]
pub struct Spawned {
    pub child: Child,
    /// One descriptor per stream to read.
    pub outputs: Vec<(Stream, OwnedFd)>,
    /// The capacity each pipe actually has (the terminal's for `--tty`).
    pub pipe_capacity: usize,
    /// Said when the kernel granted less than asked.
    pub pipe_warning: Option<String>,
}

/// Why the child could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("no command given")]
    NoCommand,
    #[error("cannot set up the child's {what}: {source}")]
    Setup {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot execute {program:?}: {source}")]
    Exec {
        program: String,
        #[source]
        source: io::Error,
    },
}

impl SpawnError {
    /// The exit code a shell would give: 127 not found, 126 not executable.
    pub fn exit_code(&self) -> i32 {
        match self {
            SpawnError::Exec { source, .. } if source.kind() == io::ErrorKind::NotFound => 127,
            SpawnError::Exec { .. } => 126,
            _ => 125,
        }
    }
}

fn setup(what: &'static str) -> impl FnOnce(io::Error) -> SpawnError {
    move |source| SpawnError::Setup { what, source }
}

/// Starts `config.command` with its output connected to new pipes or a pty.
pub fn spawn(config: &RunConfig) -> Result<Spawned, SpawnError> {
    let (program, args) = config.command.split_first().ok_or(SpawnError::NoCommand)?;
    let mut command = Command::new(program);
    command.args(args);
    command.stdin(match config.stdin {
        StdinMode::Null => Stdio::null(),
        StdinMode::Inherit => Stdio::inherit(),
    });

    let spawned_outputs;
    let pipe_capacity;
    let mut pipe_warning = None;
    if config.tty {
        let (master, slave) = open_pty().map_err(setup("pseudo-terminal"))?;
        let slave_err = slave.try_clone().map_err(setup("pseudo-terminal"))?;
        command
            .stdout(Stdio::from(slave))
            .stderr(Stdio::from(slave_err));
        // SAFETY: setsid and ioctl are async-signal-safe; no allocation.
        unsafe {
            command.pre_exec(|| {
                signals::unblock_all()?;
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::ioctl(libc::STDOUT_FILENO, libc::TIOCSCTTY, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        spawned_outputs = vec![(Stream::Stdout, master)];
        pipe_capacity = 4096;
    } else {
        let (out_read, out_write) = sys::pipe().map_err(setup("stdout pipe"))?;
        let (err_read, err_write) = sys::pipe().map_err(setup("stderr pipe"))?;
        let mut granted = usize::MAX;
        for fd in [&out_read, &err_read] {
            let (size, warning) = grow_pipe(fd, config.pipe_size);
            granted = granted.min(size);
            pipe_warning = pipe_warning.or(warning);
        }
        pipe_capacity = granted;
        command
            .stdout(Stdio::from(out_write))
            .stderr(Stdio::from(err_write));
        // SAFETY: only an async-signal-safe sigmask change between fork and exec.
        unsafe { command.pre_exec(signals::unblock_all) };
        spawned_outputs = vec![(Stream::Stdout, out_read), (Stream::Stderr, err_read)];
    }

    let child = command.spawn().map_err(|source| SpawnError::Exec {
        program: program.to_string_lossy().into_owned(),
        source,
    })?;
    // `command` still holds the child's ends of the pipes; drop them so that
    // EOF arrives when the child and its descendants close theirs.
    drop(command);
    Ok(Spawned {
        child,
        outputs: spawned_outputs,
        pipe_capacity,
        pipe_warning,
    })
}

/// Grows a pipe to `wanted` bytes, falling back to the system's maximum for
/// unprivileged users. Returns the capacity and a warning if it is short.
fn grow_pipe(fd: &OwnedFd, wanted: usize) -> (usize, Option<String>) {
    let current = sys::pipe_size(fd).unwrap_or(64 << 10);
    if wanted <= current {
        return (current, None);
    }
    match sys::set_pipe_size(fd, wanted) {
        Ok(size) => (size, None),
        Err(first) => {
            let system_max = fs::read_to_string("/proc/sys/fs/pipe-max-size")
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .unwrap_or(current);
            let size = sys::set_pipe_size(fd, system_max.min(wanted)).unwrap_or(current);
            let warning = format!(
                "pipe size {wanted} refused ({first}); using {size} bytes (fs.pipe-max-size is {system_max})"
            );
            (size, Some(warning))
        }
    }
}

/// Opens a pseudo-terminal pair with output post-processing off, so the
/// child's bytes reach the log unchanged (no `\n` → `\r\n`).
fn open_pty() -> io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: plain libc calls on descriptors we own; ptsname_r writes into
    // the buffer we pass with its length.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if master < 0 {
            return Err(io::Error::last_os_error());
        }
        let master = OwnedFd::from_raw_fd(master);
        if libc::grantpt(master.as_raw_fd()) != 0 || libc::unlockpt(master.as_raw_fd()) != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut name = [0 as libc::c_char; 128];
        let rc = libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        let slave = libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if slave < 0 {
            return Err(io::Error::last_os_error());
        }
        let slave = OwnedFd::from_raw_fd(slave);
        let mut termios: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(slave.as_raw_fd(), &mut termios) == 0 {
            termios.c_oflag &= !libc::OPOST;
            libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &termios);
        }
        Ok((master, slave))
    }
}
