//! A request's query string, read parameter by parameter; every error
//! names the parameter and says what was expected.

use std::time::Duration;

use weir_monitor::format::timestamp::Timestamp;

/// A 400 answer's message.
pub type BadRequest = String;

/// The decoded `name=value` pairs of a query string.
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(query: Option<&str>) -> Params {
        let pairs = query
            .unwrap_or("")
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(name), decode(value))
            })
            .collect();
        Params { pairs }
    }

    /// The first value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.pairs
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, which must be given (Zipkin's message).
    pub fn required(&self, name: &str) -> Result<&str, BadRequest> {
        self.get(name)
            .ok_or_else(|| format!("Mandatory parameter/header is missing: {name}"))
    }

    /// A non-empty value of `name`, if given: Zipkin treats `""` as absent.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// An integer parameter.
    pub fn integer(&self, name: &str) -> Result<Option<i64>, BadRequest> {
        match self.get(name) {
            None => Ok(None),
            Some(value) => value
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| format!("{name}={value:?}: expected an integer")),
        }
    }

    /// A point in time: epoch milliseconds, or RFC 3339.
    pub fn time_ns(&self, name: &str) -> Result<Option<i64>, BadRequest> {
        let Some(value) = self.text(name) else {
            return Ok(None);
        };
        if let Ok(ms) = value.parse::<i64>() {
            return Ok(Some(ms.saturating_mul(1_000_000)));
        }
        Timestamp::parse_rfc3339(value.as_bytes())
            .map(|t| Some(t.as_nanos().clamp(i64::MIN as i128, i64::MAX as i128) as i64))
            .map_err(|_| {
                format!("{name}={value:?}: expected epoch milliseconds or an RFC 3339 time")
            })
    }

    /// A duration: `1500ms`, `30s`, `5m`, `2h`, `1d`, or plain milliseconds.
    pub fn duration_ns(&self, name: &str) -> Result<Option<i64>, BadRequest> {
        let Some(value) = self.text(name) else {
            return Ok(None);
        };
        let parsed = if value.bytes().all(|b| b.is_ascii_digit()) {
            value.parse().map(Duration::from_millis).ok()
        } else {
            weir_gate::units::parse_duration(value).ok()
        };
        match parsed.map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)) {
            Some(ns) if ns > 0 => Ok(Some(ns)),
            _ => Err(format!(
                "{name}={value:?}: expected a positive duration like 15m, 6h or 1d"
            )),
        }
    }
}

/// Percent-decoding, with `+` as a space (HTML forms send it so).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_decoded_and_errors_name_the_parameter() {
        let params = Params::parse(Some(
            "q=error+%22db%20x%22&limit=ten&lookback=6h&bad=%zz&end=1000",
        ));
        assert_eq!(params.get("q"), Some("error \"db x\""));
        assert_eq!(params.get("bad"), Some("%zz"));
        assert!(
            params
                .integer("limit")
                .unwrap_err()
                .starts_with("limit=\"ten\"")
        );
        assert_eq!(
            params.duration_ns("lookback").unwrap(),
            Some(6 * 3_600_000_000_000)
        );
        assert_eq!(params.time_ns("end").unwrap(), Some(1_000_000_000));
        assert!(
            params
                .required("serviceName")
                .unwrap_err()
                .ends_with("serviceName")
        );
        assert_eq!(Params::parse(Some("a=%4")).get("a"), Some("%4"));
    }
}
