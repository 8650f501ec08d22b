//! Writing HTML: escaping, the frame every page shares, times, sizes and
//! durations as people read them.

use std::fmt::{self, Write as _};

/// Text made safe for HTML content and quoted attribute values.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['<', '>', '&', '"', '\'']) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'&' => "&amp;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

/// Shorthand for [`Escaped`].
pub fn esc(text: &str) -> Escaped<'_> {
    Escaped(text)
}

/// Text made safe for a URL's query string.
pub fn url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The pages in the navigation bar: path and label.
const PAGES: [(&str, &str); 4] = [
    ("/", "Overview"),
    ("/logs", "Logs"),
    ("/traces", "Traces"),
    ("/dependencies", "Dependencies"),
];

/// A whole page: `body` inside the frame, `active` marked in the bar.
pub fn page(title: &str, active: &str, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 1024);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · weir</title><link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/ui/weir.css\"></head>\
         <body><header><a class=\"brand\" href=\"/\">weir</a><nav>",
        esc(title)
    );
    for (path, label) in PAGES {
        let class = if path == active { " class=\"on\"" } else { "" };
        let _ = write!(out, "<a href=\"{path}\"{class}>{label}</a>");
    }
    out.push_str("</nav></header><main>");
    out.push_str(body);
    out.push_str("</main><script src=\"/ui/weir.js\" defer></script></body></html>");
    out
}

/// `2026-11-22 01:23:45.678` (UTC): the RFC 3339 form the API gives, cut
/// to milliseconds and read more easily.
pub fn time(ns: i64) -> String {
    let text = weir_agent::sink::ndjson::rfc3339(ns);
    let mut out = String::from_utf8_lossy(&text[..23]).into_owned();
    out.replace_range(10..11, " ");
    out
}

/// `1.5 MiB`, `820 B`.
pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `1.234 s`, `12.3 ms`, `450 µs`.
pub fn duration_us(us: i64) -> String {
    if us >= 1_000_000 {
        format!("{:.3} s", us as f64 / 1e6)
    } else if us >= 1000 {
        format!("{:.1} ms", us as f64 / 1e3)
    } else {
        format!("{us} µs")
    }
}

/// Lower-case hex.
pub use weir_agent::source::forward::auth::hex;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_content_attributes_and_urls() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#).to_string(),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(url("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn times_sizes_and_durations_read_as_people_write_them() {
        assert_eq!(time(1_795_000_000_123_000_000), "2026-11-18 11:06:40.123");
        assert_eq!(bytes(820.0), "820 B");
        assert_eq!(bytes(1536.0 * 1024.0), "1.5 MiB");
        assert_eq!(duration_us(450), "450 µs");
        assert_eq!(duration_us(12_345), "12.3 ms");
        assert_eq!(duration_us(1_234_567), "1.235 s");
    }
}
