//! json-file escaping takes arbitrary application bytes: the output must
//! always be a valid JSON string body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_monitor::format::json_file;

fuzz_target!(|data: &[u8]| {
    let mut out = b"\"".to_vec();
    json_file::escape_into(data, &mut out);
    out.push(b'"');
    let text = std::str::from_utf8(&out).expect("escaped output is UTF-8");
    assert!(!text[1..text.len() - 1].chars().any(|c| (c as u32) < 0x20), "raw control character");
    if let Ok(valid) = std::str::from_utf8(data) {
        // Valid UTF-8 survives escaping unchanged once unescaped.
        let unescaped = unescape(&text[1..text.len() - 1]);
        assert_eq!(unescaped, valid);
    }
});

fn unescape(body: &str) -> String {
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next().expect("escape has a second character") {
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16).expect("four hex digits");
                out.push(char::from_u32(code).expect("a scalar value"));
            }
            other => panic!("unknown escape \\{other}"),
        }
    }
    out
}
