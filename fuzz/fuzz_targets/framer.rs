//! The framer sees whatever bytes an application writes, cut at arbitrary
//! read boundaries: records must reassemble to the input and account for
//! every byte, with no record over the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_monitor::framing::{Framer, Tag};

fuzz_target!(|input: (u8, Vec<u16>, &[u8])| {
    let (max_line, cuts, data) = input;
    let max_line = usize::from(max_line).max(1);
    let mut framer = Framer::new(max_line);
    let mut rebuilt = Vec::new();
    let mut app_bytes = 0usize;
    let mut pending: Vec<u8> = Vec::new();
    let mut start = 0;
    let mut emit = |tag: Tag, content: &[u8], bytes: u32| {
        assert!(content.len() <= max_line);
        rebuilt.extend_from_slice(content);
        if tag == Tag::Full && bytes as usize > content.len() {
            rebuilt.push(b'\n');
        }
        app_bytes += bytes as usize;
    };
    for cut in cuts.iter().map(|c| usize::from(*c)).chain([data.len()]) {
        let end = cut.clamp(start, data.len());
        pending.extend_from_slice(&data[start..end]);
        start = end;
        let used = framer.frame(&pending, |r| emit(r.tag, r.content, r.app_bytes));
        pending.drain(..used);
        assert!(pending.len() <= max_line);
        if cut % 7 == 0 {
            framer.flush_idle(&pending, |r| emit(r.tag, r.content, r.app_bytes));
            pending.clear();
        }
    }
    framer.finish(&pending, |r| emit(r.tag, r.content, r.app_bytes));
    assert_eq!(rebuilt, data);
    assert_eq!(app_bytes, data.len());
});
