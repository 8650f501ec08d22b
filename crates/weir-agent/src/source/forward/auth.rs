//! The Forward protocol's `shared_key` handshake: the server greets with
//! `["HELO", {"nonce", "auth", "keepalive"}]`, the client proves it knows
//! the key with `["PING", hostname, salt, hex(sha512(salt + hostname +
//! nonce + key)), username, password digest]`, and the server answers
//! `["PONG", ok, reason, its hostname, hex(sha512(salt + its hostname +
//! nonce + key))]`, proving it knows the key too.

use sha2::{Digest, Sha512};

use super::msgpack::Value;

/// The server's side of one connection's handshake.
pub struct Handshake {
    nonce: [u8; 16],
    shared_key: String,
    hostname: String,
}

impl Handshake {
    pub fn new(shared_key: &str, hostname: &str) -> Handshake {
        Handshake {
            nonce: random_bytes(),
            shared_key: shared_key.to_owned(),
            hostname: hostname.to_owned(),
        }
    }

    /// The greeting sent as the connection opens.
    pub fn helo(&self) -> Vec<u8> {
        let mut out = Vec::new();
        rmp::encode::write_array_len(&mut out, 2).expect("writing to a Vec");
        rmp::encode::write_str(&mut out, "HELO").expect("writing to a Vec");
        rmp::encode::write_map_len(&mut out, 3).expect("writing to a Vec");
        rmp::encode::write_str(&mut out, "nonce").expect("writing to a Vec");
        rmp::encode::write_bin(&mut out, &self.nonce).expect("writing to a Vec");
        rmp::encode::write_str(&mut out, "auth").expect("writing to a Vec");
        rmp::encode::write_bin(&mut out, b"").expect("writing to a Vec");
        rmp::encode::write_str(&mut out, "keepalive").expect("writing to a Vec");
        rmp::encode::write_bool(&mut out, true).expect("writing to a Vec");
        out
    }

    /// Checks the client's PING; returns the PONG to send and whether the
    /// client may go on.
    pub fn answer(&self, ping: &Value<'_>) -> (Vec<u8>, bool) {
        match self.check(ping) {
            Ok(salt) => {
                let digest = self.digest(salt, self.hostname.as_bytes());
                (pong(true, "", &self.hostname, &digest), true)
            }
            Err(reason) => (pong(false, reason, "", ""), false),
        }
    }

    fn check<'a>(&self, ping: &Value<'a>) -> Result<&'a [u8], &'static str> {
        let Value::Array(items) = ping else {
            return Err("expected [\"PING\", …]");
        };
        if items.first().and_then(Value::as_str) != Some("PING") || items.len() < 4 {
            return Err("expected [\"PING\", hostname, salt, digest, …]");
        }
        let (Some(hostname), Some(salt), Some(digest)) = (
            items[1].as_bytes(),
            items[2].as_bytes(),
            items[3].as_bytes(),
        ) else {
            return Err("expected hostname, salt and digest as strings");
        };
        let expected = self.digest(salt, hostname);
        if !constant_time_eq(expected.as_bytes(), digest) {
            return Err("shared_key mismatch");
        }
        Ok(salt)
    }

    /// hex(sha512(salt + hostname + nonce + shared_key)).
    fn digest(&self, salt: &[u8], hostname: &[u8]) -> String {
        let mut hasher = Sha512::new();
        hasher.update(salt);
        hasher.update(hostname);
        hasher.update(self.nonce);
        hasher.update(self.shared_key.as_bytes());
        hex(&hasher.finalize())
    }
}

fn pong(ok: bool, reason: &str, hostname: &str, digest: &str) -> Vec<u8> {
    let mut out = Vec::new();
    rmp::encode::write_array_len(&mut out, 5).expect("writing to a Vec");
    rmp::encode::write_str(&mut out, "PONG").expect("writing to a Vec");
    rmp::encode::write_bool(&mut out, ok).expect("writing to a Vec");
    rmp::encode::write_str(&mut out, reason).expect("writing to a Vec");
    rmp::encode::write_str(&mut out, hostname).expect("writing to a Vec");
    rmp::encode::write_str(&mut out, digest).expect("writing to a Vec");
    out
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}

/// Compares two secrets in a time that does not tell where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 16 bytes from the kernel's random source: nonces, salts, chunk ids.
pub fn random_bytes() -> [u8; 16] {
    let mut nonce = [0u8; 16];
    // SAFETY: `nonce` is a valid, writable buffer of its length.
    let got = unsafe { libc::getrandom(nonce.as_mut_ptr().cast(), nonce.len(), 0) };
    if got != nonce.len() as isize {
        // getrandom cannot fail for 16 bytes once the pool is ready; if it
        // did, a nonce from the clock still differs per connection.
        let now = weir_gate::bucket::monotonic_ns().to_le_bytes();
        nonce[..8].copy_from_slice(&now);
    }
    nonce
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::forward::msgpack;

    fn ping(handshake: &Handshake, key: &str) -> Vec<u8> {
        let mut hasher = Sha512::new();
        hasher.update(b"salt");
        hasher.update(b"client");
        hasher.update(handshake.nonce);
        hasher.update(key.as_bytes());
        let mut out = Vec::new();
        rmp::encode::write_array_len(&mut out, 6).unwrap();
        for field in ["PING", "client", "salt", &hex(&hasher.finalize()), "", ""] {
            rmp::encode::write_str(&mut out, field).unwrap();
        }
        out
    }

    #[test]
    fn the_right_key_passes_and_the_server_proves_it_knows_it() {
        let handshake = Handshake::new("s3cret", "weir-host");
        let helo = handshake.helo();
        let (helo, _) = msgpack::read(&helo).unwrap();
        let Value::Array(items) = &helo else { panic!() };
        assert_eq!(
            items[1].get("nonce").and_then(Value::as_bytes),
            Some(&handshake.nonce[..])
        );
        let ping_bytes = ping(&handshake, "s3cret");
        let (pong_bytes, ok) = handshake.answer(&msgpack::read(&ping_bytes).unwrap().0);
        assert!(ok);
        let (pong, _) = msgpack::read(&pong_bytes).unwrap();
        let Value::Array(items) = pong else { panic!() };
        assert_eq!(items[1], Value::Bool(true));
        let mut hasher = Sha512::new();
        hasher.update(b"salt");
        hasher.update(b"weir-host");
        hasher.update(handshake.nonce);
        hasher.update(b"s3cret");
        assert_eq!(items[4].as_str(), Some(hex(&hasher.finalize()).as_str()));
        let wrong = ping(&handshake, "guess");
        let (pong_bytes, ok) = handshake.answer(&msgpack::read(&wrong).unwrap().0);
        assert!(!ok);
        let (pong, _) = msgpack::read(&pong_bytes).unwrap();
        let Value::Array(items) = pong else { panic!() };
        assert_eq!(items[2].as_str(), Some("shared_key mismatch"));
    }
}
