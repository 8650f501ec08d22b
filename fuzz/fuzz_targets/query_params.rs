//! The collector's query strings: any text decodes into parameters, and
//! every typed reading of them (integers, times, durations) answers a value
//! or a message naming the parameter, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_collector::api::params::Params;

fuzz_target!(|query: &str| {
    let params = Params::parse(Some(query));
    for name in ["limit", "start", "end", "lookback", "q", "endTs", ""] {
        let _ = params.get(name);
        let _ = params.all(name).count();
        if let Err(message) = params.integer(name) {
            assert!(message.contains(name));
        }
        if let Err(message) = params.time_ns(name) {
            assert!(message.contains(name));
        }
        if let Err(message) = params.duration_ns(name) {
            assert!(message.contains(name));
        }
    }
});
