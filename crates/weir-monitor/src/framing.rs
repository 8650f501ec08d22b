//! Cutting a byte stream into log records.
//!
//! A record is a fragment of one line: `F` ends a line, `P` is a piece of a
//! line that continues in the next record. Lines longer than `max_line` are
//! cut into `P` pieces of exactly `max_line` bytes followed by an `F`; a line
//! that stays unterminated while the writer is idle is flushed as `P` so it is
//! not held back; a line still open at end of stream is closed with `F`.
//! Content is never altered: the newline is dropped, every other byte is kept.

use memchr::memchr_iter;

/// The largest record content: record sizes are counted in `u32`, with the
/// newline on top.
pub const MAX_RECORD: usize = 1 << 30;

/// Whether a record ends its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// A fragment; the line continues in the next record.
    Partial,
    /// The last (or only) fragment of a line.
    Full,
}

impl Tag {
    /// The CRI letter for the tag.
    pub fn as_byte(self) -> u8 {
        match self {
            Tag::Partial => b'P',
            Tag::Full => b'F',
        }
    }
}

/// One fragment of a line, borrowed from the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub tag: Tag,
    /// The line's bytes, without the newline.
    pub content: &'a [u8],
    /// How many bytes of the application's output this record stands for:
    /// the content plus the newline it ended with, if any.
    pub app_bytes: u32,
}

impl Record<'_> {
    /// Lines this record completes (0 or 1).
    pub fn lines(&self) -> u64 {
        u64::from(self.tag == Tag::Full)
    }
}

/// Stateful framer for one stream.
#[derive(Debug)]
pub struct Framer {
    max_line: usize,
    /// A `P` record was emitted for the line now being read.
    line_open: bool,
}

impl Framer {
    /// `max_line` is the largest content a single record carries, clamped to
    /// 1 ..= [`MAX_RECORD`].
    pub fn new(max_line: usize) -> Framer {
        Framer {
            max_line: max_line.clamp(1, MAX_RECORD),
            line_open: false,
        }
    }

    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Emits a record for every complete line in `data`, and `P` pieces of
    /// an unterminated tail that is already longer than `max_line`. Returns how
    /// many bytes were consumed; the caller keeps the rest (at most `max_line`
    /// bytes) and passes it again, extended, next time.
    pub fn frame<'a>(&mut self, data: &'a [u8], mut emit: impl FnMut(Record<'a>)) -> usize {
        let mut start = 0;
        for newline in memchr_iter(b'\n', data) {
            self.emit_line(&data[start..newline], &mut emit);
            start = newline + 1;
        }
        while data.len() - start > self.max_line {
            self.emit_partial(&data[start..start + self.max_line], &mut emit);
            start += self.max_line;
        }
        start
    }

    /// Flushes an unterminated tail as a `P` record because the writer went
    /// idle in the middle of a line.
    pub fn flush_idle<'a>(&mut self, rest: &'a [u8], mut emit: impl FnMut(Record<'a>)) {
        debug_assert!(rest.len() <= self.max_line);
        if !rest.is_empty() {
            self.emit_partial(rest, &mut emit);
        }
    }

    /// Closes the stream: an unterminated tail, or a line left open by an
    /// earlier `P`, ends with an `F` record.
    pub fn finish<'a>(&mut self, rest: &'a [u8], mut emit: impl FnMut(Record<'a>)) {
        debug_assert!(rest.len() <= self.max_line);
        if !rest.is_empty() || self.line_open {
            self.line_open = false;
            emit(Record {
                tag: Tag::Full,
                content: rest,
                app_bytes: rest.len() as u32,
            });
        }
    }

    fn emit_line<'a>(&mut self, mut line: &'a [u8], emit: &mut impl FnMut(Record<'a>)) {
        while line.len() > self.max_line {
            self.emit_partial(&line[..self.max_line], emit);
            line = &line[self.max_line..];
        }
        self.line_open = false;
        emit(Record {
            tag: Tag::Full,
            content: line,
            app_bytes: line.len() as u32 + 1,
        });
    }

    fn emit_partial<'a>(&mut self, piece: &'a [u8], emit: &mut impl FnMut(Record<'a>)) {
        self.line_open = true;
        emit(Record {
            tag: Tag::Partial,
            content: piece,
            app_bytes: piece.len() as u32,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `chunks` through a framer the way the reader does and returns the
    /// records as (tag, content, app_bytes).
    fn run(max_line: usize, chunks: &[(Vec<u8>, bool)]) -> Vec<(Tag, Vec<u8>, u32)> {
        let mut framer = Framer::new(max_line);
        let mut records = Vec::new();
        let mut buf = Vec::new();
        let mut push = |r: Record<'_>| records.push((r.tag, r.content.to_vec(), r.app_bytes));
        for (chunk, idle_after) in chunks {
            buf.extend_from_slice(chunk);
            let used = framer.frame(&buf, &mut push);
            buf.drain(..used);
            if *idle_after {
                framer.flush_idle(&buf, &mut push);
                buf.clear();
            }
        }
        framer.finish(&buf, &mut push);
        records
    }

    #[test]
    fn cuts_long_lines_into_exact_pieces() {
        let records = run(4, &[(b"abcdefghij\n\nabcd\nabcde\n".to_vec(), false)]);
        let got: Vec<_> = records
            .iter()
            .map(|(t, c, _)| (t.as_byte(), c.as_slice()))
            .collect();
        assert_eq!(
            got,
            vec![
                (b'P', &b"abcd"[..]),
                (b'P', b"efgh"),
                (b'F', b"ij"),
                (b'F', b""),
                (b'F', b"abcd"),
                (b'P', b"abcd"),
                (b'F', b"e"),
            ]
        );
    }

    #[test]
    fn closes_an_idle_flushed_line_at_eof_with_an_empty_full_record() {
        let records = run(16, &[(b"abc".to_vec(), true)]);
        assert_eq!(
            records,
            vec![
                (Tag::Partial, b"abc".to_vec(), 3),
                (Tag::Full, Vec::new(), 0)
            ]
        );
    }

    proptest! {
        #[test]
        fn reassembles_to_the_input_and_counts_every_byte(
            max_line in 1usize..40,
            chunks in proptest::collection::vec(
                (proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..120), any::<bool>()),
                0..12,
            ),
        ) {
            let input: Vec<u8> = chunks.iter().flat_map(|(c, _)| c.clone()).collect();
            let records = run(max_line, &chunks);
            let mut rebuilt = Vec::new();
            let mut app_bytes = 0u64;
            let mut lines = 0usize;
            for (i, (tag, content, bytes)) in records.iter().enumerate() {
                prop_assert!(content.len() <= max_line);
                prop_assert!(!content.contains(&b'\n'));
                rebuilt.extend_from_slice(content);
                app_bytes += u64::from(*bytes);
                let last = i + 1 == records.len();
                if *tag == Tag::Full {
                    lines += 1;
                    if !last || input.ends_with(b"\n") {
                        rebuilt.push(b'\n');
                    }
                }
            }
            prop_assert_eq!(&rebuilt, &input);
            prop_assert_eq!(app_bytes, input.len() as u64);
            let newlines = input.iter().filter(|b| **b == b'\n').count();
            let unterminated = usize::from(!input.is_empty() && !input.ends_with(b"\n"));
            prop_assert_eq!(lines, newlines + unterminated);
        }
    }
}
