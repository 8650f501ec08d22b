//! Docker's json-file format: `{"log":"…","stream":"stdout","time":"…"}`.
//!
//! JSON strings are Unicode, so unlike CRI this format cannot keep arbitrary
//! bytes: like Docker, invalid UTF-8 becomes U+FFFD. Control characters are
//! escaped; everything else is copied as it is.

/// Appends `bytes` to `out` as the inside of a JSON string.
pub fn escape_into(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(bytes.len() + 2);
    for chunk in bytes.utf8_chunks() {
        escape_str(chunk.valid(), out);
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
}

fn escape_str(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f | 0x7f => {
                out.extend_from_slice(&bytes[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(bytes: &[u8]) -> String {
        let mut out = Vec::new();
        escape_into(bytes, &mut out);
        String::from_utf8(out).expect("escaping yields UTF-8")
    }

    #[test]
    fn escapes_quotes_controls_and_replaces_invalid_utf8() {
        assert_eq!(escaped(b"a\"b\\c"), r#"a\"b\\c"#);
        assert_eq!(escaped(b"\x00\x01\r\t\x7f"), r"\u0000\u0001\r\t\u007f");
        assert_eq!(escaped(b"caf\xc3\xa9 \xff!"), "café \u{fffd}!");
    }
}
