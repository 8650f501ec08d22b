//! RFC 3339 timestamps with nanoseconds in UTC, as CRI and json-file use them:
//! `2026-11-21T14:32:23.123456789Z`, always 30 bytes.
//!
//! Formatting is hand-rolled because it sits on the capture path (once per
//! read), and parsing is needed to read CRI files back.

use std::fmt;

/// Length of a formatted timestamp.
pub const RFC3339_NANO_LEN: usize = 30;

/// A wall-clock instant: seconds and nanoseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Timestamp {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_REALTIME always exists.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
        Timestamp {
            secs: ts.tv_sec,
            nanos: ts.tv_nsec as u32,
        }
    }

    /// Nanoseconds since the epoch.
    pub fn as_nanos(&self) -> i128 {
        self.secs as i128 * 1_000_000_000 + self.nanos as i128
    }

    /// Renders `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
    pub fn to_rfc3339(&self) -> [u8; RFC3339_NANO_LEN] {
        let mut out = *b"0000-00-00T00:00:00.000000000Z";
        let days = self.secs.div_euclid(86_400);
        let secs_of_day = self.secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        put_digits(&mut out[0..4], year.clamp(0, 9999) as u32);
        put_digits(&mut out[5..7], month);
        put_digits(&mut out[8..10], day);
        put_digits(&mut out[11..13], secs_of_day / 3600);
        put_digits(&mut out[14..16], secs_of_day / 60 % 60);
        put_digits(&mut out[17..19], secs_of_day % 60);
        put_digits(&mut out[20..29], self.nanos.min(999_999_999));
        out
    }

    /// Rewrites the nanoseconds of a timestamp `to_rfc3339` wrote: within
    /// one second, the calendar need not be worked out again.
    pub fn put_rfc3339_nanos(&self, text: &mut [u8; RFC3339_NANO_LEN]) {
        put_digits(&mut text[20..29], self.nanos.min(999_999_999));
    }

    /// Parses an RFC 3339 timestamp in UTC (`Z`) or with a numeric offset, with
    /// 0 to 9 fractional digits.
    pub fn parse_rfc3339(text: &[u8]) -> Result<Timestamp, TimestampError> {
        let err = |what| TimestampError { what };
        if text.len() < 20 {
            return Err(err("too short for YYYY-MM-DDTHH:MM:SSZ"));
        }
        let num = |range: std::ops::Range<usize>, what| {
            let digits = &text[range];
            if !digits.iter().all(u8::is_ascii_digit) {
                return Err(err(what));
            }
            Ok(digits
                .iter()
                .fold(0u32, |acc, d| acc * 10 + (d - b'0') as u32))
        };
        let year = num(0..4, "year is not 4 digits")?;
        let month = num(5..7, "month is not 2 digits")?;
        let day = num(8..10, "day is not 2 digits")?;
        let hour = num(11..13, "hour is not 2 digits")?;
        let minute = num(14..16, "minute is not 2 digits")?;
        let second = num(17..19, "second is not 2 digits")?;
        if text[4] != b'-' || text[7] != b'-' || !matches!(text[10], b'T' | b't') {
            return Err(err("date separators are not '-' and 'T'"));
        }
        if text[13] != b':' || text[16] != b':' {
            return Err(err("time separators are not ':'"));
        }
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return Err(err("month or day out of range"));
        }
        if hour > 23 || minute > 59 || second > 60 {
            return Err(err("hour, minute or second out of range"));
        }
        let mut rest = &text[19..];
        let mut nanos = 0u32;
        if let Some(frac) = rest.strip_prefix(b".") {
            let digits = frac.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 || digits > 9 {
                return Err(err("fraction must have 1 to 9 digits"));
            }
            for (i, d) in frac[..digits].iter().enumerate() {
                nanos += (d - b'0') as u32 * 10u32.pow(8 - i as u32);
            }
            rest = &frac[digits..];
        }
        let offset_secs: i64 = match rest {
            b"Z" | b"z" => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2]
                if [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit()) =>
            {
                let hours = ((h1 - b'0') * 10 + (h2 - b'0')) as i64;
                let minutes = ((m1 - b'0') * 10 + (m2 - b'0')) as i64;
                let magnitude = hours * 3600 + minutes * 60;
                if *sign == b'+' { magnitude } else { -magnitude }
            }
            _ => return Err(err("zone is not 'Z' or '+HH:MM'")),
        };
        let days = days_from_civil(year as i64, month, day);
        let secs = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64 - offset_secs;
        Ok(Timestamp { secs, nanos })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.to_rfc3339();
        // The buffer holds only ASCII digits and separators.
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

/// A timestamp that is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC 3339 timestamp: {what}")]
pub struct TimestampError {
    what: &'static str,
}

fn put_digits(slot: &mut [u8], mut value: u32) {
    for byte in slot.iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The inverse of [`civil_from_days`].
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        let ts = Timestamp { secs: 0, nanos: 0 };
        assert_eq!(&ts.to_rfc3339(), b"1970-01-01T00:00:00.000000000Z");
        let ts = Timestamp {
            secs: 1_795_271_543,
            nanos: 123_456_789,
        };
        assert_eq!(ts.to_string(), "2026-11-21T14:32:23.123456789Z");
        let leap_day = Timestamp {
            secs: 951_782_400,
            nanos: 5,
        };
        assert_eq!(leap_day.to_string(), "2000-02-29T00:00:00.000000005Z");
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        for secs in [0, 951_782_400, 1_795_271_543, 4_102_444_799] {
            let ts = Timestamp {
                secs,
                nanos: 987_654_321,
            };
            assert_eq!(Timestamp::parse_rfc3339(&ts.to_rfc3339()), Ok(ts));
        }
        let with_offset = Timestamp::parse_rfc3339(b"2026-11-21T16:32:23.5+02:00").unwrap();
        assert_eq!(
            with_offset,
            Timestamp {
                secs: 1_795_271_543,
                nanos: 500_000_000
            }
        );
    }

    #[test]
    fn rejects_malformed_text_with_a_reason() {
        for bad in [
            &b"2026-11-21"[..],
            b"2026-13-21T14:32:23Z",
            b"2026-11-21T14:32:23.Z",
            b"2026-11-21T14:32:23.1234567890Z",
            b"2026-11-21T14:32:23",
            b"2026/11/21T14:32:23Z",
        ] {
            assert!(Timestamp::parse_rfc3339(bad).is_err(), "{bad:?}");
        }
    }
}
