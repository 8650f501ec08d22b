//! Full-text queries: any text parses or is refused with a message, and a
//! parsed query gives an FTS5 expression of quoted words only and matches
//! any body, valid UTF-8 or not, without a panic. A body always matches a
//! query made of its own words: what the index holds, a search finds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_collector::store::text::{IndexWords, TextQuery};

fuzz_target!(|input: (&str, &[u8])| {
    let (text, body) = input;
    if let Ok(query) = TextQuery::parse(text) {
        let expression = query.index_expression();
        // Words are quoted; what is outside the quotes is FTS5 syntax only.
        let mut outside = String::new();
        for (i, part) in expression.split('"').enumerate() {
            if i % 2 == 0 {
                outside.push_str(part);
            } else {
                assert!(!part.is_empty());
            }
        }
        assert!(outside.chars().all(|c| " AND*".contains(c)), "{expression}");
        let _ = query.matches(body);
    }
    let mut index = IndexWords::default();
    index.add(body);
    let words: Vec<&str> = index.as_str().split_whitespace().take(16).collect();
    if !words.is_empty() && words.join(" ").len() <= 1024 {
        let query = TextQuery::parse(&words.join(" ")).expect("a body's own words parse");
        assert!(query.matches(body), "{words:?} not found in {body:?}");
    }
});
