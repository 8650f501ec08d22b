//! Whatever arrives on a syslog socket: framed as a TCP stream (split at a
//! point the input chooses) and parsed as messages of both RFCs. No panic;
//! no framed message over the maximum; and a message that does not parse keeps every byte in its body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_agent::record::Value;
use weir_agent::source::syslog::framing::Framer;
use weir_agent::source::syslog::parse::parse;

const MAX: usize = 256;

fuzz_target!(|input: &[u8]| {
    let split = input.first().map_or(0, |b| usize::from(*b)).min(input.len());
    let mut framer = Framer::new(MAX);
    let mut messages = Vec::new();
    for part in [&input[..split], &input[split..]] {
        if framer
            .push(part, |m, _cut| {
                assert!(m.len() <= MAX, "a framed message is at most the maximum");
                messages.push(m.to_vec());
            })
            .is_err()
        {
            break;
        }
    }
    framer.finish(|m, _| messages.push(m.to_vec()));
    messages.push(input.to_vec());
    for message in &messages {
        let record = parse(message, 1_795_287_600_000_000_000);
        let failed = record
            .attributes
            .iter()
            .any(|(k, v)| k == "syslog.parse_error" && matches!(v, Value::Str(_)));
        if failed {
            let trimmed = message
                .iter()
                .rposition(|b| !matches!(b, b'\n' | b'\r' | b'\0'))
                .map_or(&message[..0], |end| &message[..=end]);
            assert_eq!(record.body, trimmed, "a message that does not parse is kept whole");
        }
        assert!(record.severity.is_none_or(|s| s <= 7));
    }
});
