//! Failed authentication, remembered per client: a client that gave
//! [`MAX_FAILURES`] wrong credentials within [`WINDOW`] is refused, its
//! credentials not even compared, until that window has passed. Tokens
//! are long, but nothing else stopped a client from trying one after
//! another as fast as the server answered.
//!
//! Only wrong credentials count; a request that presents none is not a
//! guess. A client is an IPv4 address, or the /64 an IPv6 address is in
//! (one host may hold a whole /64). Clients behind one proxy share its
//! address, so one of them guessing shuts out the others for the window:
//! the price of slowing the guesser.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong credentials a client may give within [`WINDOW`].
pub const MAX_FAILURES: u32 = 10;

/// How long failures are remembered, from the first of them.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Clients remembered at once; past it the oldest window is forgotten.
const MAX_CLIENTS: usize = 4096;

/// The clients that failed lately, and how often.
#[derive(Debug, Default)]
pub struct AuthGuard {
    clients: Mutex<HashMap<Client, Failures>>,
}

/// A client as the guard tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Client(u128);

impl From<IpAddr> for Client {
    fn from(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V4(v4) => Client(u32::from(v4).into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client(u32::from(v4).into()),
                None => Client(u128::from(v6) & !u128::from(u64::MAX)),
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

impl AuthGuard {
    /// None if `peer` may present its credentials; otherwise how long until
    /// it may again.
    pub fn shut_out(&self, peer: IpAddr) -> Option<Duration> {
        self.shut_out_at(peer, Instant::now())
    }

    /// Counts wrong credentials from `peer`.
    pub fn failed(&self, peer: IpAddr) {
        self.failed_at(peer, Instant::now());
    }

    fn shut_out_at(&self, peer: IpAddr, now: Instant) -> Option<Duration> {
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let failures = clients.get(&Client::from(peer))?;
        let until = failures.since + WINDOW;
        (failures.count >= MAX_FAILURES && now < until).then(|| until - now)
    }

    fn failed_at(&self, peer: IpAddr, now: Instant) {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let client = Client::from(peer);
        if !clients.contains_key(&client) && clients.len() >= MAX_CLIENTS {
            clients.retain(|_, f| now < f.since + WINDOW);
            if clients.len() >= MAX_CLIENTS
                && let Some(oldest) = clients.iter().min_by_key(|(_, f)| f.since).map(|(c, _)| *c)
            {
                clients.remove(&oldest);
            }
        }
        let failures = clients.entry(client).or_insert(Failures {
            count: 0,
            since: now,
        });
        if now >= failures.since + WINDOW {
            *failures = Failures {
                count: 0,
                since: now,
            };
        }
        failures.count = failures.count.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_client_is_shut_out_after_its_failures_until_the_window_passes() {
        let guard = AuthGuard::default();
        let start = Instant::now();
        let guesser = ip("192.0.2.7");
        for _ in 0..MAX_FAILURES - 1 {
            guard.failed_at(guesser, start);
        }
        assert_eq!(guard.shut_out_at(guesser, start), None);
        guard.failed_at(guesser, start + Duration::from_secs(10));
        assert_eq!(
            guard.shut_out_at(guesser, start + Duration::from_secs(15)),
            Some(Duration::from_secs(45))
        );
        // Others are not.
        assert_eq!(guard.shut_out_at(ip("192.0.2.8"), start), None);
        // The window runs from the first failure, and then all is forgotten.
        assert_eq!(guard.shut_out_at(guesser, start + WINDOW), None);
        guard.failed_at(guesser, start + WINDOW);
        assert_eq!(guard.shut_out_at(guesser, start + WINDOW), None);
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64_and_a_mapped_ipv4_its_address() {
        let guard = AuthGuard::default();
        let start = Instant::now();
        for i in 0..MAX_FAILURES {
            guard.failed_at(ip(&format!("2001:db8:1:2::{i:x}")), start);
        }
        assert!(
            guard
                .shut_out_at(ip("2001:db8:1:2:ffff::1"), start)
                .is_some()
        );
        assert_eq!(guard.shut_out_at(ip("2001:db8:1:3::1"), start), None);
        for _ in 0..MAX_FAILURES {
            guard.failed_at(ip("::ffff:192.0.2.9"), start);
        }
        assert!(guard.shut_out_at(ip("192.0.2.9"), start).is_some());
    }

    #[test]
    fn the_clients_remembered_are_bounded() {
        let guard = AuthGuard::default();
        let start = Instant::now();
        for i in 0..MAX_CLIENTS as u32 + 100 {
            let peer = IpAddr::V4(i.into());
            guard.failed_at(peer, start + Duration::from_millis(i.into()));
        }
        let clients = guard.clients.lock().unwrap();
        assert_eq!(clients.len(), MAX_CLIENTS);
        // The oldest went first.
        assert!(!clients.contains_key(&Client::from(IpAddr::V4(0.into()))));
        assert!(clients.contains_key(&Client::from(IpAddr::V4((MAX_CLIENTS as u32 + 99).into()))));
    }
}
