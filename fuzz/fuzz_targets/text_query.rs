//! Full-text queries: any text parses or is refused with a message, and a
//! parsed query matches any body, valid UTF-8 or not, without a panic.
//! Whatever body a query matches, the word filter of a block holding the
//! body may hold every word the query asks the filter for (a search never
//! skips a block with a match); and a body always matches a query made of
//! its own words.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_collector::store::text::{TextQuery, WordFilter, may_contain, words};

fuzz_target!(|input: (&str, &[u8], &[u8])| {
    let (text, body, other) = input;
    let mut filter = WordFilter::default();
    filter.add(other);
    filter.add(body);
    let mut bits = Vec::new();
    filter.finish(&mut bits);
    if let Ok(query) = TextQuery::parse(text)
        && query.matches(body)
    {
        // What a search matches, the filter of its block may hold.
        for hash in query.word_hashes() {
            assert!(may_contain(&bits, hash), "{text:?} matches {body:?}, lost by the filter");
        }
    }
    let lowered = String::from_utf8_lossy(body).to_lowercase();
    let own: Vec<&str> = words(&lowered).take(16).collect();
    if !own.is_empty() && own.join(" ").len() <= 1024 {
        let query = TextQuery::parse(&own.join(" ")).expect("a body's own words parse");
        assert!(query.matches(body), "{own:?} not found in {body:?}");
        for hash in query.word_hashes() {
            assert!(may_contain(&bits, hash), "{own:?}: the filter lost a word");
        }
    }
});
