//! Turning the lines of a tailed file into records, by the file's format:
//! CRI (the kubelet's, and `weir run`'s), Docker's json-file, or plain lines.
//! CRI `P` fragments and Docker's split lines are joined into one record up
//! to the maximum size; past it the record goes out marked partial. A line
//! that is not in the format is kept whole as a plain record and counted.

use serde::Deserialize;
use weir_monitor::format::cri;
use weir_monitor::format::timestamp::Timestamp;
use weir_monitor::framing::Tag;

use crate::record::{LogRecord, Stream};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Cri,
    Docker,
    Plain,
}

/// Parses one file's lines, keeping the fragments of a line not yet whole.
#[derive(Debug)]
pub struct LineParser {
    format: Format,
    max_record: usize,
    /// A line being joined from fragments: its record so far.
    open: Option<LogRecord>,
}

#[derive(Deserialize)]
struct DockerLine {
    log: String,
    #[serde(default)]
    stream: String,
    #[serde(default)]
    time: String,
}

impl LineParser {
    pub fn new(format: Format, max_record: usize) -> LineParser {
        LineParser {
            format,
            max_record: max_record.max(1),
            open: None,
        }
    }

    /// Parses `line` (without its newline), seen at `observed_ns`, adding
    /// the records it completes to `out`. Returns false if the line was not
    /// in the format (it is kept as a plain record).
    pub fn parse(&mut self, line: &[u8], observed_ns: i64, out: &mut Vec<LogRecord>) -> bool {
        match self.format {
            Format::Plain => {
                self.join(None, Stream::Other, line, false, observed_ns, out);
                true
            }
            Format::Cri => match cri::parse_line(line) {
                Ok(parsed) => {
                    self.join(
                        Some(parsed.time),
                        stream(parsed.stream),
                        parsed.content,
                        parsed.tag == Tag::Partial,
                        observed_ns,
                        out,
                    );
                    true
                }
                Err(_) => {
                    self.join(None, Stream::Other, line, false, observed_ns, out);
                    false
                }
            },
            Format::Docker => match serde_json::from_slice::<DockerLine>(line) {
                Ok(parsed) => {
                    let time = Timestamp::parse_rfc3339(parsed.time.as_bytes()).ok();
                    let (content, whole) = match parsed.log.strip_suffix('\n') {
                        Some(content) => (content, true),
                        None => (parsed.log.as_str(), false),
                    };
                    let stream = stream(parsed.stream.as_bytes());
                    self.join(time, stream, content.as_bytes(), !whole, observed_ns, out);
                    true
                }
                Err(_) => {
                    self.join(None, Stream::Other, line, false, observed_ns, out);
                    false
                }
            },
        }
    }

    /// Adds a fragment to the line being joined (`more`: another follows),
    /// sending out records as they are whole or reach the size limit.
    fn join(
        &mut self,
        time: Option<Timestamp>,
        stream: Stream,
        mut content: &[u8],
        more: bool,
        observed_ns: i64,
        out: &mut Vec<LogRecord>,
    ) {
        let time_ns = time.map_or(observed_ns, |t| {
            t.as_nanos().clamp(i64::MIN as i128, i64::MAX as i128) as i64
        });
        loop {
            let record = self.open.get_or_insert_with(|| LogRecord {
                time_ns,
                observed_ns,
                stream,
                ..LogRecord::default()
            });
            let room = self.max_record - record.body.len();
            if content.len() <= room {
                record.body.extend_from_slice(content);
                break;
            }
            // Past the limit: what fits goes out marked partial, the rest
            // starts the next record.
            record.body.extend_from_slice(&content[..room]);
            record.partial = true;
            content = &content[room..];
            out.push(self.open.take().expect("opened above"));
        }
        if !more {
            out.push(self.open.take().expect("opened above"));
        }
    }

    /// The fragments of a line never finished (the file ended or went away).
    pub fn take_open(&mut self) -> Option<LogRecord> {
        self.open.take().map(|mut record| {
            record.partial = true;
            record
        })
    }
}

fn stream(name: &[u8]) -> Stream {
    match name {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => Stream::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(parser: &mut LineParser, line: &[u8]) -> (bool, Vec<LogRecord>) {
        let mut out = Vec::new();
        let ok = parser.parse(line, 7, &mut out);
        (ok, out)
    }

    #[test]
    fn cri_fragments_join_into_one_record() {
        let mut parser = LineParser::new(Format::Cri, 1024);
        let (ok, out) = parse(
            &mut parser,
            b"2026-01-02T03:04:05.000000001Z stdout P hello ",
        );
        assert!(ok && out.is_empty());
        let (_, out) = parse(
            &mut parser,
            b"2026-01-02T03:04:05.000000002Z stdout F world",
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].body, b"hello world");
        assert_eq!(out[0].stream, Stream::Stdout);
        assert_eq!(
            out[0].time_ns % 1_000_000_000,
            1,
            "the first fragment's time"
        );
        assert!(!out[0].partial);
        let (ok, out) = parse(&mut parser, b"garbage");
        assert!(!ok);
        assert_eq!(out[0].body, b"garbage");
    }

    #[test]
    fn a_line_past_the_limit_goes_out_in_partial_pieces() {
        let mut parser = LineParser::new(Format::Cri, 4);
        let (_, out) = parse(&mut parser, b"2026-01-02T03:04:05Z stderr F 0123456789");
        let bodies: Vec<&[u8]> = out.iter().map(|r| r.body.as_slice()).collect();
        assert_eq!(bodies, [&b"0123"[..], b"4567", b"89"]);
        assert_eq!(
            out.iter().map(|r| r.partial).collect::<Vec<_>>(),
            [true, true, false]
        );
        assert!(parser.take_open().is_none());
    }

    #[test]
    fn docker_split_lines_join_and_the_newline_is_dropped() {
        let mut parser = LineParser::new(Format::Docker, 1024);
        let (_, out) = parse(
            &mut parser,
            br#"{"log":"part one, ","stream":"stderr","time":"2026-01-02T03:04:05.5Z"}"#,
        );
        assert!(out.is_empty());
        let (_, out) = parse(
            &mut parser,
            br#"{"log":"part two\n","stream":"stderr","time":"2026-01-02T03:04:05.6Z"}"#,
        );
        assert_eq!(out[0].body, b"part one, part two");
        assert_eq!(out[0].stream, Stream::Stderr);
    }
}
