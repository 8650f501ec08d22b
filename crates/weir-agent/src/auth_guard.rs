//! Failed authentication, remembered per client: a client that gave
//! [`MAX_FAILURES`] different wrong credentials within [`WINDOW`] is
//! refused, its credentials not even compared, until that window has
//! passed. Tokens are long, but nothing else stopped a client from trying
//! one after another as fast as the server answered.
//!
//! One guard serves the whole process ([`shared`]): the query API, its
//! sign-in form, and every source that takes tokens or a shared key, so a
//! token used in several places gives no more guesses.
//!
//! Only wrong credentials count, and the same wrong one only once in a
//! window: an exporter left with an old token, or a browser with a stale
//! cookie, does not shut out the others at its address; a guesser must
//! try different ones. A request that presents none is not a guess. A
//! client is an IPv4 address, or the /64 an IPv6 address is in (one host
//! may hold a whole /64). Clients behind one proxy share its address, so
//! one of them guessing shuts out the others for the window: the price of
//! slowing the guesser.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// Different wrong credentials a client may give within [`WINDOW`].
pub const MAX_FAILURES: usize = 10;

/// How long failures are remembered, from the first of them.
pub const WINDOW: Duration = Duration::from_secs(60);

/// `Retry-After` for a client shut out: the most it waits, [`WINDOW`].
pub const RETRY_AFTER: &str = "60";

/// Clients remembered at once. Past it, one that is not shut out is
/// forgotten; if every one is, new clients share one count, so a guesser
/// with many addresses cannot make the guard forget it.
const MAX_CLIENTS: usize = 4096;

/// The guard every listener of this process shares.
pub fn shared() -> &'static AuthGuard {
    static SHARED: LazyLock<AuthGuard> = LazyLock::new(AuthGuard::default);
    &SHARED
}

/// The clients that failed lately, and with what.
#[derive(Debug, Default)]
pub struct AuthGuard {
    clients: Mutex<HashMap<Client, Failures>>,
    /// Whether any client is remembered: most requests then take no lock.
    any: AtomicBool,
    /// Hashes the wrong credentials, with keys of this process's own.
    hasher: std::collections::hash_map::RandomState,
}

/// A client as the guard tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Client(u128);

impl Client {
    /// Requests whose address is not known: they share one count.
    const UNKNOWN: Client = Client(u128::MAX);
    /// New clients while every remembered one is shut out.
    const OVERFLOW: Client = Client(u128::MAX - 1);

    fn of(peer: Option<IpAddr>) -> Client {
        match peer {
            None => Client::UNKNOWN,
            Some(IpAddr::V4(v4)) => Client(u32::from(v4).into()),
            Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => Client(u32::from(v4).into()),
                None => Client(u128::from(v6) & !u128::from(u64::MAX)),
            },
        }
    }
}

#[derive(Debug, Clone)]
struct Failures {
    since: Instant,
    /// Hashes of the different wrong credentials given since then.
    wrong: Vec<u64>,
}

impl Failures {
    fn shut_out_at(&self, now: Instant) -> Option<Duration> {
        let until = self.since + WINDOW;
        (self.wrong.len() >= MAX_FAILURES && now < until).then(|| until - now)
    }
}

impl AuthGuard {
    /// None if `peer` may present its credentials; otherwise how long until
    /// it may again. Check it right before comparing, not before a wait.
    pub fn shut_out(&self, peer: Option<IpAddr>) -> Option<Duration> {
        self.shut_out_at(peer, Instant::now())
    }

    /// Counts `credential`, found wrong, against `peer`.
    pub fn failed(&self, peer: Option<IpAddr>, credential: &[u8]) {
        self.failed_at(peer, credential, Instant::now());
    }

    fn shut_out_at(&self, peer: Option<IpAddr>, now: Instant) -> Option<Duration> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let mine = clients
            .get(&Client::of(peer))
            .and_then(|f| f.shut_out_at(now));
        // A new client counts with the others that found the guard full.
        mine.or_else(|| {
            let full = clients.len() >= MAX_CLIENTS && !clients.contains_key(&Client::of(peer));
            full.then(|| clients.get(&Client::OVERFLOW)?.shut_out_at(now))
                .flatten()
        })
    }

    fn failed_at(&self, peer: Option<IpAddr>, credential: &[u8], now: Instant) {
        let hash = self.hasher.hash_one(credential);
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let mut client = Client::of(peer);
        if !clients.contains_key(&client) && clients.len() >= MAX_CLIENTS {
            clients.retain(|_, f| now < f.since + WINDOW);
            if clients.len() >= MAX_CLIENTS {
                // Forget the one closest to nothing that is not shut out.
                let forgettable = clients
                    .iter()
                    .filter(|(c, f)| **c != Client::OVERFLOW && f.shut_out_at(now).is_none())
                    .min_by_key(|(_, f)| f.wrong.len())
                    .map(|(c, _)| *c);
                match forgettable {
                    Some(forgotten) => {
                        clients.remove(&forgotten);
                    }
                    None => client = Client::OVERFLOW,
                }
            }
        }
        let failures = clients.entry(client).or_insert(Failures {
            since: now,
            wrong: Vec::new(),
        });
        if now >= failures.since + WINDOW {
            *failures = Failures {
                since: now,
                wrong: Vec::new(),
            };
        }
        if !failures.wrong.contains(&hash) && failures.wrong.len() < MAX_FAILURES {
            failures.wrong.push(hash);
        }
        self.any.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_the_window() {
        assert_eq!(RETRY_AFTER.parse::<u64>(), Ok(WINDOW.as_secs()));
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    fn guess(n: usize) -> Vec<u8> {
        format!("guess-{n}").into_bytes()
    }

    #[test]
    fn a_client_is_shut_out_after_its_failures_until_the_window_passes() {
        let guard = AuthGuard::default();
        let start = Instant::now();
        let guesser = ip("192.0.2.7");
        assert_eq!(guard.shut_out_at(guesser, start), None);
        for n in 0..MAX_FAILURES - 1 {
            guard.failed_at(guesser, &guess(n), start);
        }
        assert_eq!(guard.shut_out_at(guesser, start), None);
        guard.failed_at(guesser, &guess(99), start + Duration::from_secs(10));
        assert_eq!(
            guard.shut_out_at(guesser, start + Duration::from_secs(15)),
            Some(Duration::from_secs(45))
        );
        // Others are not.
        assert_eq!(guard.shut_out_at(ip("192.0.2.8"), start), None);
        // The window runs from the first failure, and then all is forgotten.
        assert_eq!(guard.shut_out_at(guesser, start + WINDOW), None);
        guard.failed_at(guesser, &guess(0), start + WINDOW);
        assert_eq!(guard.shut_out_at(guesser, start + WINDOW), None);
    }

    #[test]
    fn the_same_wrong_credential_counts_once() {
        let guard = AuthGuard::default();
        let start = Instant::now();
        let exporter = ip("192.0.2.20");
        for _ in 0..100 {
            guard.failed_at(exporter, b"an old token", start);
        }
        assert_eq!(guard.shut_out_at(exporter, start), None);
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64_a_mapped_ipv4_its_address_and_unknown_ones_one() {
        let guard = AuthGuard::default();
        let start = Instant::now();
        for n in 0..MAX_FAILURES {
            guard.failed_at(ip(&format!("2001:db8:1:2::{n:x}")), &guess(n), start);
        }
        assert!(
            guard
                .shut_out_at(ip("2001:db8:1:2:ffff::1"), start)
                .is_some()
        );
        assert_eq!(guard.shut_out_at(ip("2001:db8:1:3::1"), start), None);
        for n in 0..MAX_FAILURES {
            guard.failed_at(ip("::ffff:192.0.2.9"), &guess(n), start);
        }
        assert!(guard.shut_out_at(ip("192.0.2.9"), start).is_some());
        for n in 0..MAX_FAILURES {
            guard.failed_at(None, &guess(n), start);
        }
        assert!(guard.shut_out_at(None, start).is_some());
    }

    #[test]
    fn a_full_guard_never_forgets_a_client_it_shut_out() {
        let guard = AuthGuard::default();
        let start = Instant::now();
        let guesser = ip("198.51.100.1");
        for n in 0..MAX_FAILURES {
            guard.failed_at(guesser, &guess(n), start);
        }
        // Thousands of other addresses, each with one failure, then more.
        for i in 0..MAX_CLIENTS as u32 * 2 {
            let peer = Some(IpAddr::V4((0x0a00_0000 + i).into()));
            guard.failed_at(peer, &guess(0), start);
        }
        assert!(guard.shut_out_at(guesser, start).is_some());
        assert!(guard.clients.lock().unwrap().len() <= MAX_CLIENTS);
        // When every client remembered is shut out, new ones share a count.
        let guard = AuthGuard::default();
        for i in 0..MAX_CLIENTS as u32 {
            let peer = Some(IpAddr::V4((0x0a00_0000 + i).into()));
            for n in 0..MAX_FAILURES {
                guard.failed_at(peer, &guess(n), start);
            }
        }
        for n in 0..MAX_FAILURES {
            guard.failed_at(ip(&format!("203.0.113.{n}")), &guess(n), start);
        }
        assert!(guard.shut_out_at(ip("203.0.113.200"), start).is_some());
        assert!(guard.clients.lock().unwrap().len() <= MAX_CLIENTS + 1);
    }
}
