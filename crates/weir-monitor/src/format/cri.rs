//! Parsing the CRI log format: `<RFC 3339 time> <stream> <tags> <content>`.
//!
//! The monitor only writes this format (see [`super::Encoder`]); the parser is
//! here for everything that reads CRI files back: tests, the file-tail source,
//! and tools. Content is returned as bytes, exactly as stored.

use super::timestamp::{Timestamp, TimestampError};
use crate::framing::Tag;

/// One parsed CRI line (without its newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriLine<'a> {
    pub time: Timestamp,
    /// `stdout` or `stderr` as written; other names are kept for the caller to judge.
    pub stream: &'a [u8],
    pub tag: Tag,
    pub content: &'a [u8],
}

/// What is wrong with a CRI line, and at which byte column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CriError {
    #[error("column {column}: {source}")]
    Time {
        column: usize,
        source: TimestampError,
    },
    #[error("column {column}: {what}")]
    Malformed { column: usize, what: &'static str },
}

/// Parses one line of a CRI log file. `line` must not include the trailing
/// newline. A line with no content may omit the space after the tag.
pub fn parse_line(line: &[u8]) -> Result<CriLine<'_>, CriError> {
    let malformed = |column, what| CriError::Malformed { column, what };
    let time_end =
        memchr::memchr(b' ', line).ok_or(malformed(0, "no space after the timestamp"))?;
    let time = Timestamp::parse_rfc3339(&line[..time_end])
        .map_err(|source| CriError::Time { column: 0, source })?;
    let stream_start = time_end + 1;
    let stream_len = memchr::memchr(b' ', &line[stream_start..])
        .ok_or(malformed(stream_start, "no space after the stream name"))?;
    let stream = &line[stream_start..stream_start + stream_len];
    if stream.is_empty() {
        return Err(malformed(stream_start, "empty stream name"));
    }
    let tags_start = stream_start + stream_len + 1;
    let rest = &line[tags_start..];
    let (tags, content) = match memchr::memchr(b' ', rest) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &rest[rest.len()..]),
    };
    // Tags are ':'-separated; the first says whether the line is complete.
    let tag = match tags.split(|b| *b == b':').next() {
        Some(b"F") => Tag::Full,
        Some(b"P") => Tag::Partial,
        _ => return Err(malformed(tags_start, "tag is neither 'F' nor 'P'")),
    };
    Ok(CriLine {
        time,
        stream,
        tag,
        content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_and_partial_lines_with_binary_content() {
        let line = b"2026-11-21T14:32:23.123456789Z stderr P a \x00\xff\r b";
        let parsed = parse_line(line).unwrap();
        assert_eq!(parsed.stream, b"stderr");
        assert_eq!(parsed.tag, Tag::Partial);
        assert_eq!(parsed.content, b"a \x00\xff\r b");
        assert_eq!(parsed.time.nanos, 123_456_789);
        let empty = parse_line(b"2026-11-21T14:32:23Z stdout F").unwrap();
        assert_eq!(empty.content, b"");
        assert_eq!(empty.tag, Tag::Full);
    }

    #[test]
    fn names_the_column_of_the_fault() {
        let err = parse_line(b"2026-11-21T14:32:23Z stdout X hi").unwrap_err();
        assert_eq!(err.to_string(), "column 28: tag is neither 'F' nor 'P'");
        assert!(parse_line(b"garbage").is_err());
        assert!(parse_line(b"2026-11-21T14:32:23Z stdout").is_err());
        assert!(parse_line(b"").is_err());
    }
}
