//! Signals: the ones weir forwards to the child, and the one it uses to wake
//! its own reader threads.
//!
//! The forwarded signals and SIGCHLD are blocked in every weir thread and
//! taken synchronously by the supervisor with `sigtimedwait`, so no handler
//! runs at an arbitrary point and nothing is lost between checks.

use std::io;
use std::mem::MaybeUninit;
use std::time::Duration;

/// Signals that weir passes on to the child, as conmon does.
pub const FORWARDED: [libc::c_int; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// A set of signals.
#[derive(Clone, Copy)]
pub struct SignalSet(libc::sigset_t);

impl SignalSet {
    pub fn new(signals: &[libc::c_int]) -> SignalSet {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the set; sigaddset only sets bits.
        unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            for &signal in signals {
                libc::sigaddset(set.as_mut_ptr(), signal);
            }
            SignalSet(set.assume_init())
        }
    }

    /// The forwarded signals plus SIGCHLD: everything the supervisor waits for.
    pub fn supervised() -> SignalSet {
        let mut signals = FORWARDED.to_vec();
        signals.push(libc::SIGCHLD);
        SignalSet::new(&signals)
    }

    /// Blocks the set in the calling thread; threads spawned afterwards
    /// inherit the mask.
    pub fn block(&self) -> io::Result<()> {
        // SAFETY: the set is initialised; the old mask is not requested.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &self.0, std::ptr::null_mut()) };
        if rc != 0 {
            Err(io::Error::from_raw_os_error(rc))
        } else {
            Ok(())
        }
    }

    /// Waits up to `timeout` for a signal of the set; `None` on timeout.
    pub fn wait(&self, timeout: Duration) -> Option<libc::c_int> {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: the set and timespec are valid; siginfo is not requested.
        let signal = unsafe { libc::sigtimedwait(&self.0, std::ptr::null_mut(), &ts) };
        (signal > 0).then_some(signal)
    }
}

/// Restores the default, empty signal mask. Called in the child between fork
/// and exec so the program starts with no signal blocked.
pub fn unblock_all() -> io::Result<()> {
    let empty = SignalSet::new(&[]);
    // SAFETY: async-signal-safe; the set is initialised.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &empty.0, std::ptr::null_mut()) };
    if rc != 0 {
        Err(io::Error::from_raw_os_error(rc))
    } else {
        Ok(())
    }
}

/// The signal used to interrupt a reader blocked in `read(2)`.
pub fn wakeup_signal() -> libc::c_int {
    libc::SIGRTMIN()
}

extern "C" fn ignore_wakeup(_: libc::c_int) {}

/// Installs a do-nothing handler for [`wakeup_signal`] without `SA_RESTART`,
/// so a blocked `read(2)` returns EINTR when the thread is signalled.
pub fn install_wakeup_handler() -> io::Result<()> {
    // SAFETY: an all-zero sigaction is valid; we fill handler and mask.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = ignore_wakeup as *const () as usize;
    action.sa_flags = 0;
    // SAFETY: the mask is ours to initialise; the action is fully set.
    let rc = unsafe {
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(wakeup_signal(), &action, std::ptr::null_mut())
    };
    if rc != 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Interrupts `thread` with [`wakeup_signal`].
pub fn wake_thread(thread: libc::pthread_t) {
    // SAFETY: the caller keeps the thread joinable (not yet joined), so the
    // handle is valid.
    unsafe { libc::pthread_kill(thread, wakeup_signal()) };
}

/// The calling thread, to be woken later with [`wake_supervisor`].
pub fn current_thread() -> libc::pthread_t {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() }
}

/// Wakes the supervisor thread from `sigtimedwait` with a SIGCHLD, which it
/// treats as "look at the child and the readers again".
pub fn wake_supervisor(thread: libc::pthread_t) {
    // SAFETY: the supervisor joins every reader before it exits, so the
    // handle is valid while a reader can call this.
    unsafe { libc::pthread_kill(thread, libc::SIGCHLD) };
}

/// Sends `signal` to process `pid`.
pub fn send(pid: u32, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill has no memory effects.
    let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
    if rc != 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The conventional name of a signal, for messages.
pub fn name(signal: libc::c_int) -> String {
    let known = [
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGCHLD, "SIGCHLD"),
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGABRT, "SIGABRT"),
        (libc::SIGPIPE, "SIGPIPE"),
    ];
    known
        .iter()
        .find(|(n, _)| *n == signal)
        .map(|(_, name)| name.to_string())
        .unwrap_or_else(|| format!("signal {signal}"))
}
