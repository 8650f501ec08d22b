//! Syslog messages out of a TCP or Unix stream (RFC 6587): octet counting
//! (`LEN SP MSG`) when a frame starts with a digit, otherwise
//! non-transparent framing, a message per line. A message longer than the
//! maximum is cut there (the caller marks it) and the rest of it passed by,
//! so one oversized message neither grows memory nor costs the messages
//! after it.

/// Why a stream cannot be read on: its framing is lost.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syslog stream, byte {at}: {what}")]
pub struct FramingError {
    pub at: u64,
    pub what: &'static str,
}

/// The longest octet count: 9 digits (up to 999,999,999 bytes).
const MAX_COUNT_DIGITS: usize = 9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    Nothing,
    /// The rest of an octet-counted message that was cut.
    Bytes(u64),
    /// The rest of a line that was cut.
    ToNewline,
}

/// Splits a stream into messages as its bytes come.
#[derive(Debug)]
pub struct Framer {
    buffer: Vec<u8>,
    /// Stream offset of `buffer[0]`.
    offset: u64,
    max: usize,
    skip: Skip,
    /// Bytes of cut messages passed by since [`Framer::take_passed_by`].
    passed_by: u64,
    /// Where the room [`Framer::spare`] gave starts.
    spare_from: Option<usize>,
}

impl Framer {
    pub fn new(max_message: usize) -> Framer {
        Framer {
            buffer: Vec::new(),
            offset: 0,
            max: max_message.max(1),
            skip: Skip::Nothing,
            passed_by: 0,
            spare_from: None,
        }
    }

    /// The bytes of cut messages passed by (past `max_message`) since the
    /// last call: what a cut cost, for the operator's count.
    pub fn take_passed_by(&mut self) -> u64 {
        std::mem::take(&mut self.passed_by)
    }

    /// Takes the next bytes of the stream and calls `each` with every
    /// message they complete, and whether it was cut at the maximum.
    pub fn push(&mut self, data: &[u8], each: impl FnMut(&[u8], bool)) -> Result<(), FramingError> {
        self.drop_spare();
        self.buffer.extend_from_slice(data);
        self.frame(each)
    }

    /// Room for `len` more bytes of the stream, to read into directly;
    /// [`Framer::commit`] then says how many came. Saves copying each
    /// read into the framer.
    pub fn spare(&mut self, len: usize) -> &mut [u8] {
        let held = self.buffer.len();
        self.buffer.resize(held + len, 0);
        self.spare_from = Some(held);
        &mut self.buffer[held..]
    }

    /// Takes `n` bytes read into [`Framer::spare`], as [`Framer::push`].
    pub fn commit(&mut self, n: usize, each: impl FnMut(&[u8], bool)) -> Result<(), FramingError> {
        let held = self.spare_from.take().unwrap_or(self.buffer.len());
        self.buffer.truncate(held + n.min(self.buffer.len() - held));
        self.frame(each)
    }

    /// Calls `each` with every message the held bytes complete, keeping
    /// what is left of the last.
    fn frame(&mut self, mut each: impl FnMut(&[u8], bool)) -> Result<(), FramingError> {
        let buffer = std::mem::take(&mut self.buffer);
        let mut at = 0;
        let result = self.frames(&buffer, &mut at, &mut each);
        self.buffer = buffer;
        self.buffer.drain(..at);
        self.offset += at as u64;
        result
    }

    fn frames(
        &mut self,
        buffer: &[u8],
        at: &mut usize,
        each: &mut impl FnMut(&[u8], bool),
    ) -> Result<(), FramingError> {
        loop {
            let available = &buffer[*at..];
            match self.skip {
                Skip::Bytes(n) => {
                    let passed = n.min(available.len() as u64);
                    *at += passed as usize;
                    self.passed_by += passed;
                    if passed < n {
                        self.skip = Skip::Bytes(n - passed);
                        return Ok(());
                    }
                    self.skip = Skip::Nothing;
                    continue;
                }
                Skip::ToNewline => match memchr::memchr(b'\n', available) {
                    Some(newline) => {
                        *at += newline + 1;
                        self.passed_by += newline as u64;
                        self.skip = Skip::Nothing;
                        continue;
                    }
                    None => {
                        *at += available.len();
                        self.passed_by += available.len() as u64;
                        return Ok(());
                    }
                },
                Skip::Nothing => {}
            }
            let Some(&first) = available.first() else {
                return Ok(());
            };
            if matches!(first, b'\n' | b'\r' | b'\0' | b' ') {
                // Between frames: what some senders put after a counted one.
                *at += 1;
                continue;
            }
            if first.is_ascii_digit() {
                let Some(space) = available
                    .iter()
                    .take(MAX_COUNT_DIGITS + 1)
                    .position(|b| !b.is_ascii_digit())
                else {
                    if available.len() > MAX_COUNT_DIGITS {
                        return Err(self.error(*at, "octet count longer than 9 digits"));
                    }
                    return Ok(());
                };
                if available[space] != b' ' {
                    return Err(self.error(*at + space, "expected a space after the octet count"));
                }
                let len: u64 = std::str::from_utf8(&available[..space])
                    .ok()
                    .and_then(|d| d.parse().ok())
                    .ok_or_else(|| self.error(*at, "octet count is not a number"))?;
                let body = &available[space + 1..];
                let keep = len.min(self.max as u64) as usize;
                if body.len() < keep {
                    return Ok(());
                }
                each(&body[..keep], keep as u64 != len);
                *at += space + 1 + keep;
                self.skip = match len - keep as u64 {
                    0 => Skip::Nothing,
                    rest => Skip::Bytes(rest),
                };
                continue;
            }
            let window = &available[..available.len().min(self.max + 1)];
            match memchr::memchr(b'\n', window) {
                Some(newline) => {
                    each(&available[..newline], false);
                    *at += newline + 1;
                }
                None if available.len() > self.max => {
                    each(&available[..self.max], true);
                    *at += self.max;
                    self.skip = Skip::ToNewline;
                }
                None => return Ok(()),
            }
        }
    }

    fn error(&self, at: usize, what: &'static str) -> FramingError {
        FramingError {
            at: self.offset + at as u64,
            what,
        }
    }

    /// Bytes held that no message has taken: what is lost when the stream
    /// is given up on.
    pub fn pending(&self) -> usize {
        self.spare_from.unwrap_or(self.buffer.len())
    }

    /// Gives back room [`Framer::spare`] gave that no read filled.
    fn drop_spare(&mut self) {
        if let Some(held) = self.spare_from.take() {
            self.buffer.truncate(held);
        }
    }

    /// A message left without its ending when the stream closed.
    pub fn finish(&mut self, mut each: impl FnMut(&[u8], bool)) {
        self.drop_spare();
        if self.skip == Skip::Nothing && !self.buffer.is_empty() {
            let rest = std::mem::take(&mut self.buffer);
            // An octet-counted frame cut short is kept as the bytes it has.
            each(&rest, false);
        }
        self.buffer.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(framer: &mut Framer, data: &[u8]) -> Result<Vec<(Vec<u8>, bool)>, FramingError> {
        let mut out = Vec::new();
        framer.push(data, |m, cut| out.push((m.to_vec(), cut)))?;
        Ok(out)
    }

    #[test]
    fn octet_counted_and_newline_framed_messages_mix() {
        let mut framer = Framer::new(100);
        let out = frames(&mut framer, b"5 <1>ab<2>cd\n11 <3>1 - - -\n<4>x").unwrap();
        assert_eq!(
            out,
            [
                (b"<1>ab".to_vec(), false),
                (b"<2>cd".to_vec(), false),
                (b"<3>1 - - -\n".to_vec(), false)
            ]
        );
        let out = frames(&mut framer, b"y\n").unwrap();
        assert_eq!(out, [(b"<4>xy".to_vec(), false)]);
    }

    #[test]
    fn an_oversized_message_is_cut_and_the_next_one_survives() {
        let mut framer = Framer::new(4);
        let out = frames(&mut framer, b"10 0123456789<1>a\n<1>3456\n<2>b\n").unwrap();
        assert_eq!(
            out,
            [
                (b"0123".to_vec(), true),
                (b"<1>a".to_vec(), false),
                (b"<1>3".to_vec(), true),
                (b"<2>b".to_vec(), false)
            ]
        );
        // What was passed by: "456789" of the counted one, "456" of the line.
        assert_eq!(framer.take_passed_by(), 9);
        assert_eq!(framer.take_passed_by(), 0);
    }

    #[test]
    fn a_broken_count_names_the_byte() {
        let mut framer = Framer::new(100);
        assert_eq!(
            frames(&mut framer, b"3 <1>3x <1>").unwrap_err(),
            FramingError {
                at: 6,
                what: "expected a space after the octet count"
            }
        );
        let mut framer = Framer::new(100);
        assert_eq!(
            frames(&mut framer, b"1234567890 ").unwrap_err().what,
            "octet count longer than 9 digits"
        );
    }

    proptest! {
        /// However the stream is split into reads, the same messages come
        /// out, and memory stays within the maximum and one read.
        #[test]
        fn splitting_the_stream_never_changes_the_messages(
            messages in proptest::collection::vec(proptest::collection::vec(b'a'..=b'z', 0..40), 1..20),
            counted in proptest::collection::vec(any::<bool>(), 20),
            cuts in proptest::collection::vec(1usize..50, 1..10),
        ) {
            let max = 30;
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for (i, m) in messages.iter().enumerate() {
                let mut message = b"<1>".to_vec();
                message.extend_from_slice(m);
                if counted[i] {
                    stream.extend_from_slice(format!("{} ", message.len()).as_bytes());
                    stream.extend_from_slice(&message);
                } else {
                    stream.extend_from_slice(&message);
                    stream.push(b'\n');
                }
                let cut = message.len() > max;
                message.truncate(max);
                expected.push((message, cut));
            }
            let mut framer = Framer::new(max);
            let mut got = Vec::new();
            let mut rest = &stream[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = cuts[i % cuts.len()].min(rest.len());
                let each = |m: &[u8], cut| got.push((m.to_vec(), cut));
                // Half the reads as a socket's are taken, into the room the
                // framer gives (more than the read fills).
                if i % 2 == 0 {
                    framer.push(&rest[..n], each).unwrap();
                } else {
                    framer.spare(n + 7)[..n].copy_from_slice(&rest[..n]);
                    framer.commit(n, each).unwrap();
                }
                prop_assert!(framer.buffer.len() <= max + 11 + 50);
                rest = &rest[n..];
                i += 1;
            }
            prop_assert_eq!(got, expected);
        }
    }
}
