//! Rendering records as log-file lines.
//!
//! Two formats: the CRI format the kubelet reads, and Docker's json-file for
//! users coming from Docker. A batch of records shares one timestamp (the time
//! of the read that produced them), so the constant head of every line is
//! built once per batch and each record costs a couple of copies.

pub mod cri;
pub mod json_file;
pub mod timestamp;

use timestamp::RFC3339_NANO_LEN;
pub use timestamp::Timestamp;

use crate::framing::{Record, Tag};
use crate::stats::Stream;

/// The on-disk format of the log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `<time> <stream> <P|F> <content>` per line (Kubernetes CRI).
    #[default]
    Cri,
    /// `{"log":"…","stream":"…","time":"…"}` per line (Docker json-file).
    JsonFile,
}

/// Encodes records of one stream, one timestamp at a time.
#[derive(Debug, Clone)]
pub struct Encoder {
    format: LogFormat,
    stream: Stream,
    head_full: Vec<u8>,
    head_partial: Vec<u8>,
    tail: Vec<u8>,
    /// The second the heads were written for: a time within it changes
    /// only their nanoseconds.
    head_secs: Option<i64>,
}

impl Encoder {
    pub fn new(format: LogFormat, stream: Stream) -> Encoder {
        let mut encoder = Encoder {
            format,
            stream,
            head_full: Vec::with_capacity(64),
            head_partial: Vec::with_capacity(64),
            tail: Vec::with_capacity(64),
            head_secs: None,
        };
        encoder.set_time(Timestamp::now());
        encoder
    }

    pub fn stream(&self) -> Stream {
        self.stream
    }

    /// Sets the timestamp of the records encoded from now on.
    pub fn set_time(&mut self, time: Timestamp) {
        if self.format == LogFormat::Cri && self.head_secs == Some(time.secs) {
            for head in [&mut self.head_full, &mut self.head_partial] {
                let text = (&mut head[..RFC3339_NANO_LEN]).try_into();
                time.put_rfc3339_nanos(text.expect("a CRI head starts with the time"));
            }
            return;
        }
        self.head_secs = Some(time.secs);
        let time = time.to_rfc3339();
        self.head_full.clear();
        self.head_partial.clear();
        self.tail.clear();
        match self.format {
            LogFormat::Cri => {
                for (head, tag) in [
                    (&mut self.head_full, Tag::Full),
                    (&mut self.head_partial, Tag::Partial),
                ] {
                    head.extend_from_slice(&time);
                    head.push(b' ');
                    head.extend_from_slice(self.stream.as_str().as_bytes());
                    head.push(b' ');
                    head.push(tag.as_byte());
                    head.push(b' ');
                }
            }
            LogFormat::JsonFile => {
                self.head_full.extend_from_slice(b"{\"log\":\"");
                self.tail.extend_from_slice(b"\",\"stream\":\"");
                self.tail.extend_from_slice(self.stream.as_str().as_bytes());
                self.tail.extend_from_slice(b"\",\"time\":\"");
                self.tail.extend_from_slice(&time);
                self.tail.extend_from_slice(b"\"}\n");
            }
        }
    }

    /// Appends a line of weir's own (a loss marker): a whole record that
    /// stands for no application bytes.
    pub fn encode_marker(&self, text: &str, out: &mut Vec<u8>) {
        let marker = Record {
            tag: Tag::Full,
            content: text.as_bytes(),
            app_bytes: 0,
        };
        self.encode(&marker, out);
    }

    /// Appends one line for `record` to `out`.
    #[inline]
    pub fn encode(&self, record: &Record<'_>, out: &mut Vec<u8>) {
        match self.format {
            LogFormat::Cri => {
                let head = match record.tag {
                    Tag::Full => &self.head_full,
                    Tag::Partial => &self.head_partial,
                };
                out.reserve(head.len() + record.content.len() + 1);
                out.extend_from_slice(head);
                out.extend_from_slice(record.content);
                out.push(b'\n');
            }
            LogFormat::JsonFile => {
                out.extend_from_slice(&self.head_full);
                json_file::escape_into(record.content, out);
                if record.app_bytes as usize > record.content.len() {
                    out.extend_from_slice(b"\\n");
                }
                out.extend_from_slice(&self.tail);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the encoder writes, the CRI parser reads back unchanged.
        #[test]
        fn cri_lines_parse_back_to_the_record(
            content in proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..200),
            partial in any::<bool>(),
            stderr in any::<bool>(),
            secs in 0i64..4_000_000_000,
            nanos in 0u32..1_000_000_000,
        ) {
            let stream = if stderr { Stream::Stderr } else { Stream::Stdout };
            let tag = if partial { Tag::Partial } else { Tag::Full };
            let mut encoder = Encoder::new(LogFormat::Cri, stream);
            let time = Timestamp { secs, nanos };
            encoder.set_time(time);
            let mut out = Vec::new();
            let record = Record { tag, content: &content, app_bytes: content.len() as u32 + 1 };
            encoder.encode(&record, &mut out);
            prop_assert_eq!(out.last(), Some(&b'\n'));
            let parsed = cri::parse_line(&out[..out.len() - 1]).unwrap();
            prop_assert_eq!(parsed.time, time);
            prop_assert_eq!(parsed.stream, stream.as_str().as_bytes());
            prop_assert_eq!(parsed.tag, tag);
            prop_assert_eq!(parsed.content, &content[..]);
        }

        /// Times set one after another, in the same second or not, each
        /// reach the line written after it (within a second only the
        /// nanoseconds are rewritten).
        #[test]
        fn each_time_set_is_the_time_written(
            secs in 0i64..4_000_000_000,
            steps in proptest::collection::vec((0i64..2, 0u32..1_000_000_000), 1..8),
        ) {
            let mut encoder = Encoder::new(LogFormat::Cri, Stream::Stdout);
            for (i, (later, nanos)) in steps.into_iter().enumerate() {
                let time = Timestamp { secs: secs + later, nanos };
                encoder.set_time(time);
                let mut out = Vec::new();
                let tag = if i % 2 == 0 { Tag::Full } else { Tag::Partial };
                encoder.encode(&Record { tag, content: b"x", app_bytes: 2 }, &mut out);
                let parsed = cri::parse_line(&out[..out.len() - 1]).unwrap();
                prop_assert_eq!(parsed.time, time);
                prop_assert_eq!(parsed.tag, tag);
            }
        }
    }

    #[test]
    fn json_file_lines_end_with_a_newline_only_for_terminated_lines() {
        let mut encoder = Encoder::new(LogFormat::JsonFile, Stream::Stderr);
        encoder.set_time(Timestamp { secs: 0, nanos: 1 });
        let mut out = Vec::new();
        encoder.encode(
            &Record {
                tag: Tag::Full,
                content: b"a\"b",
                app_bytes: 4,
            },
            &mut out,
        );
        encoder.encode(
            &Record {
                tag: Tag::Partial,
                content: b"c",
                app_bytes: 1,
            },
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"log\":\"a\\\"b\\n\",\"stream\":\"stderr\",\"time\":\"1970-01-01T00:00:00.000000001Z\"}\n\
             {\"log\":\"c\",\"stream\":\"stderr\",\"time\":\"1970-01-01T00:00:00.000000001Z\"}\n"
        );
    }
}
