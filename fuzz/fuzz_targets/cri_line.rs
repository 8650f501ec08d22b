//! The CRI parser reads files written by anyone: it must never panic, and
//! whatever it accepts must re-encode to a line it parses the same way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_monitor::format::cri;

fuzz_target!(|line: &[u8]| {
    if line.contains(&b'\n') {
        return;
    }
    if let Ok(parsed) = cri::parse_line(line) {
        let mut again = parsed.time.to_rfc3339().to_vec();
        again.push(b' ');
        again.extend_from_slice(parsed.stream);
        again.push(b' ');
        again.push(parsed.tag.as_byte());
        again.push(b' ');
        again.extend_from_slice(parsed.content);
        let reparsed = cri::parse_line(&again).expect("a re-encoded line parses");
        assert_eq!(reparsed.content, parsed.content);
        assert_eq!(reparsed.tag, parsed.tag);
        assert_eq!(reparsed.stream, parsed.stream);
    }
});
