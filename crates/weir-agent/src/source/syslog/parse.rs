//! Syslog messages into log records: RFC 5424 (`<PRI>1 TIMESTAMP HOST APP
//! PROCID MSGID [SD] MSG`) and the older BSD form of RFC 3164 (`<PRI>Mmm dd
//! hh:mm:ss HOST TAG[PID]: MSG`).
//!
//! Facility and severity become record fields, the header fields and
//! structured data become attributes. A message that is neither is kept
//! whole as the body, with a `syslog.parse_error` attribute saying what was
//! wrong and at which byte: nothing a client sends is dropped silently.

use weir_monitor::format::timestamp::{Timestamp, civil_from_days, days_from_civil};

use compact_str::format_compact;

use crate::record::{CompactString, LogRecord, Stream, Value};

/// The facility keywords of RFC 5424, table 1, by code.
const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

/// Where a message could not be read.
struct ParseError {
    at: usize,
    what: &'static str,
}

/// Turns one syslog message into a record observed at `observed_ns`.
pub fn parse(message: &[u8], observed_ns: i64) -> LogRecord {
    let mut record = LogRecord {
        // The facility and the four header fields, in one allocation.
        attributes: Vec::with_capacity(5),
        ..LogRecord::default()
    };
    parse_into(&mut record, message, observed_ns);
    record
}

/// [`parse`] into `record`, whatever it held, reusing its allocations.
pub fn parse_into(record: &mut LogRecord, message: &[u8], observed_ns: i64) {
    record.reset();
    record.time_ns = observed_ns;
    record.observed_ns = observed_ns;
    record.stream = Stream::Other;
    let message = trim_trailer(message);
    let outcome = match priority(message) {
        Ok((pri, rest_at)) => {
            record.severity = Some((pri & 7) as u8);
            record.attributes.push((
                "syslog.facility".into(),
                Value::Str(FACILITIES[(pri >> 3) as usize].into()),
            ));
            let rest = &message[rest_at..];
            if rest.starts_with(b"1 ") {
                rfc5424(rest, rest_at, record)
            } else {
                rfc3164(rest, rest_at, observed_ns, record)
            }
        }
        Err(e) => Err(e),
    };
    if let Err(e) = outcome {
        // Only what the priority gave survives; the rest is the raw message.
        record.attributes.truncate(1.min(record.attributes.len()));
        record.time_ns = observed_ns;
        record.body.clear();
        record.body.extend_from_slice(message);
        record.attributes.push((
            "syslog.parse_error".into(),
            Value::Str(format!("byte {}: {}", e.at, e.what).into()),
        ));
    }
}

/// Drops the line ending and NULs some senders leave at the end.
fn trim_trailer(mut message: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r' | b'\0'] = message {
        message = rest;
    }
    message
}

/// `<PRI>`: the priority (facility × 8 + severity) and where the rest starts.
fn priority(message: &[u8]) -> Result<(u32, usize), ParseError> {
    if message.first() != Some(&b'<') {
        return Err(ParseError {
            at: 0,
            what: "expected '<' and a priority",
        });
    }
    let digits = message[1..]
        .iter()
        .take(4)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 || message.get(1 + digits) != Some(&b'>') {
        return Err(ParseError {
            at: 1 + digits,
            what: "expected a priority of 1 to 3 digits and '>'",
        });
    }
    let pri: u32 = std::str::from_utf8(&message[1..1 + digits])
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(u32::MAX);
    if digits > 3 || pri > 191 {
        return Err(ParseError {
            at: 1,
            what: "priority above 191",
        });
    }
    Ok((pri, 2 + digits))
}

/// A cursor over a message, for errors that name the byte.
struct Fields<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Where `bytes` starts in the whole message.
    base: usize,
}

impl<'a> Fields<'a> {
    fn error(&self, what: &'static str) -> ParseError {
        ParseError {
            at: self.base + self.at,
            what,
        }
    }

    /// The next field up to a space (which is consumed).
    fn field(&mut self, what: &'static str) -> Result<&'a [u8], ParseError> {
        let rest = &self.bytes[self.at..];
        let len = rest.iter().position(|b| *b == b' ').unwrap_or(rest.len());
        if len == 0 {
            return Err(self.error(what));
        }
        self.at += len;
        if self.bytes.get(self.at) == Some(&b' ') {
            self.at += 1;
        } else if self.at < self.bytes.len() {
            return Err(self.error(what));
        }
        Ok(&rest[..len])
    }

    fn rest(&self) -> &'a [u8] {
        &self.bytes[self.at.min(self.bytes.len())..]
    }
}

fn rfc5424(bytes: &[u8], base: usize, record: &mut LogRecord) -> Result<(), ParseError> {
    let mut fields = Fields { bytes, at: 2, base };
    let timestamp = fields.field("expected a timestamp")?;
    if timestamp != b"-" {
        let at = fields.base + fields.at - timestamp.len() - 1;
        let time = Timestamp::parse_rfc3339(timestamp).map_err(|_| ParseError {
            at,
            what: "timestamp is not RFC 3339",
        })?;
        record.time_ns = time.as_nanos().clamp(0, i64::MAX as i128) as i64;
    }
    for (key, what) in [
        ("syslog.hostname", "expected a hostname"),
        ("syslog.appname", "expected an app name"),
        ("syslog.procid", "expected a process id"),
        ("syslog.msgid", "expected a message id"),
    ] {
        let value = fields.field(what)?;
        if value != b"-" {
            record
                .attributes
                .push((key.into(), Value::Str(lossy(value))));
        }
    }
    let rest = fields.rest();
    let after_sd = if rest.first() == Some(&b'-') {
        1
    } else if rest.first() == Some(&b'[') {
        structured_data(rest, fields.base + fields.at, record)?
    } else {
        return Err(fields.error("expected structured data or '-'"));
    };
    let message = match &rest[after_sd..] {
        [] => &[][..],
        [b' ', message @ ..] => message,
        _ => {
            return Err(ParseError {
                at: fields.base + fields.at + after_sd,
                what: "expected a space after the structured data",
            });
        }
    };
    let message = message.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(message);
    record.body.clear();
    record.body.extend_from_slice(message);
    Ok(())
}

/// `[id name="value" …]…`: each parameter becomes `syslog.sd.ID.NAME`.
/// Returns the length read.
fn structured_data(bytes: &[u8], base: usize, record: &mut LogRecord) -> Result<usize, ParseError> {
    let error = |at: usize, what| ParseError {
        at: base + at,
        what,
    };
    let name_end = |from: usize| {
        bytes[from..]
            .iter()
            .position(|b| matches!(b, b' ' | b'=' | b']' | b'"'))
            .map(|n| from + n)
    };
    let mut at = 0;
    while bytes.get(at) == Some(&b'[') {
        let id_end = name_end(at + 1).ok_or_else(|| error(at, "unterminated structured data"))?;
        if id_end == at + 1 {
            return Err(error(at + 1, "expected an SD-ID"));
        }
        let id = lossy(&bytes[at + 1..id_end]);
        at = id_end;
        loop {
            match bytes.get(at) {
                Some(b']') => {
                    at += 1;
                    break;
                }
                Some(b' ') => at += 1,
                _ => return Err(error(at, "expected ' ' or ']' in structured data")),
            }
            let param_end =
                name_end(at).ok_or_else(|| error(at, "unterminated structured data"))?;
            if param_end == at || bytes.get(param_end) != Some(&b'=') {
                return Err(error(at, "expected PARAM=\"VALUE\""));
            }
            let param = lossy(&bytes[at..param_end]);
            at = param_end + 1;
            if bytes.get(at) != Some(&b'"') {
                return Err(error(at, "expected '\"' to open a parameter value"));
            }
            at += 1;
            let value_at = at;
            let mut value = Vec::new();
            loop {
                match bytes.get(at) {
                    None => return Err(error(value_at, "unterminated parameter value")),
                    Some(b'"') => {
                        at += 1;
                        break;
                    }
                    // The three escapes RFC 5424 defines; a backslash before
                    // anything else is kept.
                    Some(b'\\') if matches!(bytes.get(at + 1), Some(b'"' | b'\\' | b']')) => {
                        value.push(bytes[at + 1]);
                        at += 2;
                    }
                    Some(b) => {
                        value.push(*b);
                        at += 1;
                    }
                }
            }
            record.attributes.push((
                format_compact!("syslog.sd.{id}.{param}"),
                Value::Str(lossy(&value)),
            ));
        }
    }
    Ok(at)
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// `Mmm dd hh:mm:ss [HOST] TAG[PID]: MSG`. The timestamp has no year and
/// no zone: it is read as UTC in the year that puts it nearest before the
/// time observed (a message a day or more "in the future" is last year's).
fn rfc3164(
    bytes: &[u8],
    base: usize,
    observed_ns: i64,
    record: &mut LogRecord,
) -> Result<(), ParseError> {
    let mut fields = Fields { bytes, at: 0, base };
    let Some(stamp) = bytes.get(..15) else {
        return Err(fields.error("expected a timestamp like \"Nov 21 19:05:03\""));
    };
    let time = bsd_timestamp(stamp, observed_ns)
        .ok_or_else(|| fields.error("expected a timestamp like \"Nov 21 19:05:03\""))?;
    record.time_ns = time;
    fields.at = 15;
    if bytes.get(15).is_some_and(|b| *b != b' ') {
        return Err(fields.error("expected a space after the timestamp"));
    }
    fields.at = 16.min(bytes.len());
    // A hostname, unless the next word is already the tag (local senders
    // leave the hostname out).
    let word_end = |from: usize| {
        bytes[from..]
            .iter()
            .position(|b| *b == b' ')
            .map_or(bytes.len(), |n| from + n)
    };
    let first_end = word_end(fields.at);
    let first = &bytes[fields.at..first_end];
    let is_tag = first.ends_with(b":") || first.contains(&b'[');
    if !first.is_empty() && !is_tag && first_end < bytes.len() {
        record
            .attributes
            .push(("syslog.hostname".into(), Value::Str(lossy(first))));
        fields.at = first_end + 1;
    }
    // TAG[PID]: up to 48 characters of tag; what does not look like one is
    // the message.
    let rest = fields.rest();
    let tag_end = rest
        .iter()
        .take(64)
        .position(|b| matches!(b, b':' | b'[' | b' '));
    let mut message = rest;
    if let Some(end) = tag_end
        && end > 0
    {
        let tag = &rest[..end];
        let mut after = end;
        let mut pid = None;
        if rest[end] == b'['
            && let Some(close) = rest[end..].iter().take(24).position(|b| *b == b']')
        {
            pid = Some(&rest[end + 1..end + close]);
            after = end + close + 1;
        }
        if rest.get(after) == Some(&b':') {
            record
                .attributes
                .push(("syslog.appname".into(), Value::Str(lossy(tag))));
            if let Some(pid) = pid {
                record
                    .attributes
                    .push(("syslog.procid".into(), Value::Str(lossy(pid))));
            }
            after += 1;
            if rest.get(after) == Some(&b' ') {
                after += 1;
            }
            message = &rest[after..];
        }
    }
    record.body.clear();
    record.body.extend_from_slice(message);
    Ok(())
}

/// `Mmm dd hh:mm:ss` (the day space-padded) in ns since the epoch.
fn bsd_timestamp(stamp: &[u8], observed_ns: i64) -> Option<i64> {
    let month = MONTHS.iter().position(|m| stamp[..3] == m[..])? as u32 + 1;
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let text = std::str::from_utf8(&stamp[range]).ok()?;
        text.trim_start().parse().ok()
    };
    if stamp[3] != b' ' || stamp[6] != b' ' || stamp[9] != b':' || stamp[12] != b':' {
        return None;
    }
    let day = digits(4..6)?;
    let (hour, minute, second) = (digits(7..9)?, digits(10..12)?, digits(13..15)?);
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let observed_secs = observed_ns.div_euclid(1_000_000_000);
    let (year, _, _) = civil_from_days(observed_secs.div_euclid(86_400));
    let at = |year: i64| {
        days_from_civil(year, month, day) * 86_400 + i64::from(hour * 3600 + minute * 60 + second)
    };
    let mut secs = at(year);
    if secs > observed_secs + 86_400 {
        secs = at(year - 1);
    }
    secs.checked_mul(1_000_000_000)
}

/// Text as sent, invalid UTF-8 replaced; up to 24 bytes without an allocation.
fn lossy(bytes: &[u8]) -> CompactString {
    CompactString::from_utf8_lossy(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-21T19:00:00Z.
    const NOW: i64 = 1_795_287_600 * 1_000_000_000;

    fn attribute<'a>(record: &'a LogRecord, key: &str) -> Option<&'a str> {
        record.attributes.iter().find_map(|(k, v)| match v {
            Value::Str(s) if k == key => Some(s.as_str()),
            _ => None,
        })
    }

    #[test]
    fn rfc5424_fields_structured_data_and_message() {
        let record = parse(
            br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 [exampleSDID@32473 iut="3" eventSource="Appli\"cation\]" eventID="1011"][examplePriority@32473 class="high"] An application event log entry..."#,
            NOW,
        );
        assert_eq!(record.severity, Some(5));
        assert_eq!(attribute(&record, "syslog.facility"), Some("local4"));
        assert_eq!(record.time_ns, 1_065_910_455_003_000_000);
        assert_eq!(
            attribute(&record, "syslog.hostname"),
            Some("mymachine.example.com")
        );
        assert_eq!(attribute(&record, "syslog.appname"), Some("evntslog"));
        assert_eq!(attribute(&record, "syslog.procid"), Some("1234"));
        assert_eq!(attribute(&record, "syslog.msgid"), Some("ID47"));
        assert_eq!(
            attribute(&record, "syslog.sd.exampleSDID@32473.eventSource"),
            Some("Appli\"cation]")
        );
        assert_eq!(
            attribute(&record, "syslog.sd.examplePriority@32473.class"),
            Some("high")
        );
        assert_eq!(record.body, b"An application event log entry...");
        assert_eq!(attribute(&record, "syslog.parse_error"), None);
    }

    #[test]
    fn parsing_into_a_used_record_leaves_nothing_of_it() {
        let messages: [&[u8]; 4] = [
            br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3"] a long message body"#,
            b"<13>1 - - - - - -",
            b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed",
            b"not syslog at all",
        ];
        let mut used = LogRecord::default();
        for _ in 0..2 {
            for message in messages {
                parse_into(&mut used, message, NOW);
                assert_eq!(used, parse(message, NOW));
            }
        }
    }

    #[test]
    fn rfc5424_nil_values_a_bom_and_no_message() {
        let record = parse(b"<13>1 - - - - - -", NOW);
        assert_eq!(record.time_ns, NOW, "no timestamp: the time observed");
        assert_eq!(record.body, b"");
        assert_eq!(attribute(&record, "syslog.hostname"), None);
        let record = parse(
            b"<13>1 2026-11-21T20:00:00+01:00 h a - - - \xEF\xBB\xBFhello\n",
            NOW,
        );
        assert_eq!(record.time_ns, NOW);
        assert_eq!(record.body, b"hello");
    }

    #[test]
    fn rfc3164_with_and_without_a_hostname() {
        let record = parse(
            b"<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed",
            NOW,
        );
        assert_eq!(record.severity, Some(2));
        assert_eq!(attribute(&record, "syslog.facility"), Some("auth"));
        assert_eq!(attribute(&record, "syslog.hostname"), Some("mymachine"));
        assert_eq!(attribute(&record, "syslog.appname"), Some("su"));
        assert_eq!(attribute(&record, "syslog.procid"), Some("230"));
        assert_eq!(record.body, b"'su root' failed");
        // 2026-10-11T22:14:15Z
        assert_eq!(record.time_ns, 1_791_756_855 * 1_000_000_000);
        let local = parse(b"<13>Nov 21 18:59:59 root: hello there", NOW);
        assert_eq!(attribute(&local, "syslog.hostname"), None);
        assert_eq!(attribute(&local, "syslog.appname"), Some("root"));
        assert_eq!(local.body, b"hello there");
        assert_eq!(local.time_ns, NOW - 1_000_000_000);
        // December seen in January is last year's.
        let late = parse(b"<13>Dec 31 23:59:59 h t: x", 1_767_225_600 * 1_000_000_000);
        assert_eq!(late.time_ns, (1_767_225_600 - 1) * 1_000_000_000);
    }

    #[test]
    fn a_malformed_message_is_kept_whole_with_the_reason() {
        for (message, error) in [
            (&b"no priority"[..], "byte 0: expected '<' and a priority"),
            (b"<999>1 - - - - - -", "byte 1: priority above 191"),
            (
                b"<13>1 yesterday h a - - - x",
                "byte 6: timestamp is not RFC 3339",
            ),
            (
                b"<13>1 - h a - - [x a=\"1] x",
                "byte 22: unterminated parameter value",
            ),
            (
                b"<13>Nov 99 18:59:59 h t: x",
                "byte 4: expected a timestamp like \"Nov 21 19:05:03\"",
            ),
        ] {
            let record = parse(message, NOW);
            assert_eq!(
                attribute(&record, "syslog.parse_error"),
                Some(error),
                "{message:?}"
            );
            assert_eq!(record.body, message, "kept whole");
        }
    }
}
