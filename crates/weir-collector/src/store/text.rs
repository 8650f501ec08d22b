//! Full-text search on log bodies. A body's words are its runs of letters
//! and digits, once lowercased. A query is words, `"quoted phrases"` and
//! `prefix*` words, all of which a body must hold: a phrase as consecutive
//! text, case aside.
//!
//! The index is a Bloom filter of the words of each block of records
//! ([`WordFilter`]): it only narrows a search to the blocks that may hold
//! every word; [`TextQuery::matches`] then decides for each record. An
//! inverted index (SQLite's FTS5) found fewer blocks, but building it took
//! a third of the store's ingest time, most of it on words that occur once
//! (ids, numbers); the filter costs a hash a word, and a search reads a few
//! bytes of each block's filter.

/// A parsed full-text query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextQuery {
    terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Word(String),
    Prefix(String),
    /// Lowercased text, and its words.
    Phrase(String, Vec<String>),
}

/// The longest query accepted, in bytes.
pub const MAX_QUERY: usize = 1024;

/// The most terms in one query.
const MAX_TERMS: usize = 16;

impl TextQuery {
    /// Parses `text`; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<TextQuery, String> {
        if text.len() > MAX_QUERY {
            return Err(format!("longer than {MAX_QUERY} bytes"));
        }
        let mut terms = Vec::new();
        let mut rest = text.trim_start();
        while !rest.is_empty() {
            if let Some(quoted) = rest.strip_prefix('"') {
                let end = quoted.find('"').ok_or("a quote (\") is not closed")?;
                let phrase = quoted[..end].to_lowercase();
                let words: Vec<String> = words(&phrase).map(str::to_owned).collect();
                if !words.is_empty() {
                    terms.push(Term::Phrase(phrase, words));
                }
                rest = quoted[end + 1..].trim_start();
                continue;
            }
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let token = rest[..end].to_lowercase();
            rest = rest[end..].trim_start();
            match token.strip_suffix('*') {
                Some(prefix) if is_word(prefix) => terms.push(Term::Prefix(prefix.to_owned())),
                _ if is_word(&token) => terms.push(Term::Word(token)),
                // `user-42` or `a.b`: the words in it, side by side.
                _ => {
                    let inner: Vec<String> = words(&token).map(str::to_owned).collect();
                    match inner.len() {
                        0 => {}
                        1 => terms.push(Term::Word(inner.into_iter().next().unwrap_or_default())),
                        _ => terms.push(Term::Phrase(token, inner)),
                    }
                }
            }
        }
        if terms.is_empty() {
            return Err("no word to search for (words are letters and digits)".into());
        }
        if terms.len() > MAX_TERMS {
            return Err(format!("more than {MAX_TERMS} terms"));
        }
        Ok(TextQuery { terms })
    }

    /// The hashes of the words a body must hold for this query to match
    /// it, for [`may_contain`]: every word, those of phrases too. A
    /// prefix narrows nothing: the filter holds whole words only.
    pub fn word_hashes(&self) -> Vec<u64> {
        let mut hashes = Vec::new();
        for term in &self.terms {
            match term {
                Term::Word(w) => hashes.push(word_hash(w)),
                Term::Prefix(_) => {}
                Term::Phrase(_, words) => hashes.extend(words.iter().map(|w| word_hash(w))),
            }
        }
        hashes
    }

    /// Whether `body` matches every term.
    pub fn matches(&self, body: &[u8]) -> bool {
        let body = String::from_utf8_lossy(body).to_lowercase();
        self.terms.iter().all(|term| match term {
            Term::Word(w) => words(&body).any(|b| b == w),
            Term::Prefix(p) => words(&body).any(|b| b.starts_with(p.as_str())),
            Term::Phrase(phrase, _) => holds_phrase(&body, phrase),
        })
    }
}

/// Bits of a [`WordFilter`] while its block is written; it is folded down
/// to its words' count when the block closes. 2^17 bits (16 KiB) stay in
/// the first-level cache, and hold a full block's words at a low
/// false-positive rate.
const BUILD_BITS: usize = 1 << 17;

/// Bits set per word.
const PROBES: u64 = 4;

/// Bits a closed filter keeps per distinct word (at least): with 4 probes,
/// about 1 % false positives at 10 bits, 0.1 % at 20.
const BITS_PER_WORD: f64 = 10.0;

/// The smallest filter kept, in bits.
const MIN_BITS: usize = 64;

/// Whether `body` holds `phrase` as consecutive text that does not start
/// or end inside a word: where the phrase begins (ends) with a letter or
/// digit, the body may not have one just before (after) it. So each word
/// of the phrase is a whole word of the body, which the block's filter
/// holds: `"b query"` does not find `db query`, `user-42` not
/// `superuser-420`.
fn holds_phrase(body: &str, phrase: &str) -> bool {
    let starts_word = phrase.chars().next().is_some_and(char::is_alphanumeric);
    let ends_word = phrase
        .chars()
        .next_back()
        .is_some_and(char::is_alphanumeric);
    body.match_indices(phrase).any(|(at, _)| {
        let before = body[..at].chars().next_back();
        let after = body[at + phrase.len()..].chars().next();
        let cuts_in_before = starts_word && before.is_some_and(char::is_alphanumeric);
        let cuts_in_after = ends_word && after.is_some_and(char::is_alphanumeric);
        !cuts_in_before && !cuts_in_after
    })
}

/// A Bloom filter of the words of a block of records: a search reads only
/// the blocks whose filter may hold every word it looks for (ClickHouse's
/// `tokenbf_v1` skipping index does the same per granule). Building one is
/// a hash and four bit sets per word, with no deduplication and no
/// allocation: words repeat freely, since setting a bit again changes
/// nothing. When the block closes, the number of distinct words is read
/// from how many bits are set, and the filter is folded (its halves ORed
/// together, which keeps every probe's bit for a power-of-two size) down to
/// [`BITS_PER_WORD`] bits a word.
///
/// The hash ([`word_hash`]) and the probe positions are part of the
/// store's format: changing either needs a new schema version.
pub struct WordFilter {
    bits: Box<[u64]>,
    set_any: bool,
    lowered: String,
    term: Vec<u8>,
}

impl Default for WordFilter {
    fn default() -> WordFilter {
        WordFilter {
            bits: vec![0; BUILD_BITS / 64].into_boxed_slice(),
            set_any: false,
            lowered: String::new(),
            term: Vec::new(),
        }
    }
}

impl WordFilter {
    /// Adds the words of `body` (not UTF-8 where invalid, as
    /// [`TextQuery::matches`] reads it), lowercased.
    pub fn add(&mut self, body: &[u8]) {
        if body.is_ascii() {
            // `word_bytes_hash` lowercases ASCII letters itself.
            for word in body
                .split(|b| !b.is_ascii_alphanumeric())
                .filter(|w| !w.is_empty())
            {
                self.add_hash(word_bytes_hash(word));
            }
            return;
        }
        let mut lowered = std::mem::take(&mut self.lowered);
        lowered.clear();
        lowered.push_str(&String::from_utf8_lossy(body).to_lowercase());
        for word in words(&lowered) {
            self.add_hash(word_hash(word));
        }
        self.lowered = lowered;
    }

    /// Adds a term other than a word (a span's name, a tag), made of
    /// `parts`: see [`term_hash`].
    pub fn add_term(&mut self, parts: &[&[u8]]) {
        let mut term = std::mem::take(&mut self.term);
        join_term(parts, &mut term);
        self.add_hash(word_bytes_hash(&term));
        self.term = term;
    }

    fn add_hash(&mut self, hash: u64) {
        self.set_any = true;
        for bit in probes(hash) {
            let bit = bit as usize & (BUILD_BITS - 1);
            self.bits[bit / 64] |= 1 << (bit % 64);
        }
    }

    /// Appends the filter of the words added since the last call to `out`
    /// (nothing if there were none), and empties it.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.set_any {
            return;
        }
        let set: u32 = self.bits.iter().map(|w| w.count_ones()).sum();
        let full = BUILD_BITS as f64;
        // The expected number of bits set by n distinct words is
        // m (1 - e^(-kn/m)); read n back from it.
        let fraction = f64::from(set) / full;
        let distinct = if fraction >= 1.0 {
            f64::INFINITY
        } else {
            -(full / PROBES as f64) * (1.0 - fraction).ln()
        };
        let wanted = (distinct * BITS_PER_WORD).clamp(MIN_BITS as f64, full) as usize;
        let mut len = BUILD_BITS / 64;
        while len * 64 / 2 >= wanted && len * 64 / 2 >= MIN_BITS {
            let half = len / 2;
            for i in 0..half {
                self.bits[i] |= self.bits[i + half];
            }
            len = half;
        }
        for word in &self.bits[..len] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        self.bits.fill(0);
        self.set_any = false;
    }
}

/// Whether a filter that [`WordFilter::finish`] wrote may hold the word of
/// `hash`. An empty filter holds nothing; one of a size no filter has (a
/// damaged store) may hold anything, so that nothing is missed.
pub fn may_contain(filter: &[u8], hash: u64) -> bool {
    if filter.is_empty() {
        return false;
    }
    let bits = filter.len() * 8;
    if !bits.is_power_of_two() || bits < MIN_BITS {
        return true;
    }
    probes(hash).all(|bit| {
        let bit = bit as usize & (bits - 1);
        filter[bit / 8] & (1 << (bit % 8)) != 0
    })
}

/// The hash of a term of `parts` in a [`WordFilter`]: the parts joined by
/// NUL bytes, so that no two lists of parts make the same term.
pub fn term_hash(parts: &[&[u8]]) -> u64 {
    let mut term = Vec::new();
    join_term(parts, &mut term);
    word_bytes_hash(&term)
}

fn join_term(parts: &[&[u8]], out: &mut Vec<u8>) {
    out.clear();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(part);
    }
}

/// The hash of a (lowercased) word in a [`WordFilter`].
pub fn word_hash(word: &str) -> u64 {
    word_bytes_hash(word.as_bytes())
}

/// The hash of a word's bytes, each with bit 5 (0x20) set first: an ASCII
/// letter's lowercase form, and no change to a digit, so an ASCII word
/// needs no lowercasing. (Other bytes collide more, harmlessly: the hash
/// is the same on both sides.) Eight bytes at a time.
fn word_bytes_hash(word: &[u8]) -> u64 {
    const LOWER: u64 = 0x2020_2020_2020_2020;
    let mut hash = 0x9e37_79b9_7f4a_7c15 ^ word.len() as u64;
    let mut chunks = word.chunks_exact(8);
    for chunk in &mut chunks {
        let mut eight = [0; 8];
        eight.copy_from_slice(chunk);
        hash = (hash ^ (u64::from_le_bytes(eight) | LOWER)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        hash = hash.rotate_left(29);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut eight = [0; 8];
        eight[..rest.len()].copy_from_slice(rest);
        let lower = LOWER >> (8 * (8 - rest.len()));
        hash = (hash ^ (u64::from_le_bytes(eight) | lower)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    }
    mix(hash)
}

/// The bits a word of `hash` sets (modulo the filter's size): double
/// hashing, from the two halves of the hash.
fn probes(hash: u64) -> impl Iterator<Item = u64> {
    let (first, step) = (hash & 0xffff_ffff, (hash >> 32) | 1);
    (0..PROBES).map(move |i| first.wrapping_add(i.wrapping_mul(step)))
}

/// The finalizer of SplitMix64: spreads the bits over the whole word, so
/// that both halves used by [`probes`] are well mixed.
fn mix(mut hash: u64) -> u64 {
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// The words of `text`: runs of letters and digits.
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

fn is_word(text: &str) -> bool {
    !text.is_empty() && text.chars().all(char::is_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter_of(bodies: &[&[u8]]) -> Vec<u8> {
        let mut filter = WordFilter::default();
        for body in bodies {
            filter.add(body);
        }
        let mut out = Vec::new();
        filter.finish(&mut out);
        out
    }

    fn may_match(filter: &[u8], query: &str) -> bool {
        let query = TextQuery::parse(query).unwrap();
        query.word_hashes().iter().all(|&h| may_contain(filter, h))
    }

    #[test]
    fn words_phrases_and_prefixes_must_all_be_found() {
        let query = TextQuery::parse(r#"Timeout "db query" user*"#).unwrap();
        assert_eq!(
            query.word_hashes(),
            ["timeout", "db", "query"].map(word_hash).to_vec()
        );
        assert!(query.matches(b"TIMEOUT after db query by username=x"));
        assert!(!query.matches(b"timeout after query db by user"));
        assert!(!query.matches(b"timeouts after db query by user"));
        assert!(!query.matches(b"timeout after db query"));
    }

    #[test]
    fn words_joined_by_punctuation_are_a_phrase() {
        let query = TextQuery::parse("user-42").unwrap();
        assert_eq!(query.word_hashes(), ["user", "42"].map(word_hash).to_vec());
        assert!(query.matches(b"login by user-42 ok"));
        assert!(query.matches(b"superuser-420 then user-42."));
        assert!(!query.matches(b"42 user"));
    }

    #[test]
    fn a_phrase_starts_and_ends_on_word_boundaries() {
        let matches =
            |query: &str, body: &str| TextQuery::parse(query).unwrap().matches(body.as_bytes());
        assert!(!matches("user-42", "superuser-420"));
        assert!(!matches("\"b query\"", "db query"));
        assert!(matches("\"db query\"", "the db query ran"));
        // Punctuation at an end of the phrase does not ask for a boundary.
        assert!(matches("\"error:\"", "error:x"));
        assert!(matches("\":42\"", "port:42"));
        // Whatever a phrase matches, the block's filter holds its words.
        for (query, body) in [("\"error:\"", "error:x"), ("user-42", "a user-42 b")] {
            let query = TextQuery::parse(query).unwrap();
            let filter = filter_of(&[body.as_bytes()]);
            assert!(query.word_hashes().iter().all(|&h| may_contain(&filter, h)));
        }
    }

    #[test]
    fn a_filter_holds_every_word_of_its_block_whatever_the_case() {
        let bodies: [&[u8]; 4] = [
            b"GET /api/users/42 took 12ms",
            b"get /API/orders user=42",
            "ÉCOLE Ünïcode user".as_bytes(),
            b"bad \xff\xfe utf8",
        ];
        let filter = filter_of(&bodies);
        for query in [
            "get",
            "API",
            "users",
            "42",
            "12MS",
            "orders",
            "user",
            "école",
            "ünïcode",
            "bad",
            "utf8",
            "\"took 12ms\"",
        ] {
            assert!(may_match(&filter, query), "{query}");
        }
        // A few words; the filter is folded down to its smallest size.
        assert_eq!(filter.len() * 8, MIN_BITS * 2);
    }

    #[test]
    fn a_filter_rejects_nearly_every_word_it_does_not_hold() {
        let mut filter = WordFilter::default();
        let mut body = String::new();
        for i in 0..256 {
            body.clear();
            body.push_str(&format!(
                "GET /api/orders/{i} user-{} took {}ms ok",
                i * 7,
                i % 50
            ));
            filter.add(body.as_bytes());
        }
        let mut out = Vec::new();
        filter.finish(&mut out);
        // ~570 distinct words: 10 bits a word or more, a power of two.
        let bits = out.len() * 8;
        assert!(
            bits.is_power_of_two() && (5_700..=16_384).contains(&bits),
            "{bits}"
        );
        assert!(may_match(&out, "orders 255 1785 49ms"));
        let false_positives = (0..10_000)
            .filter(|i| may_contain(&out, word_hash(&format!("absent{i}"))))
            .count();
        assert!(false_positives < 300, "{false_positives} in 10,000");
        // Finishing empties it: the next block starts from nothing.
        out.clear();
        filter.finish(&mut out);
        assert!(out.is_empty());
        assert!(!may_contain(&out, word_hash("orders")));
    }

    #[test]
    fn a_filter_of_an_unknown_size_may_hold_anything() {
        assert!(may_contain(&[0; 12], word_hash("x")));
        assert!(may_contain(&[0; 4], word_hash("x")));
    }

    #[test]
    fn bad_queries_say_what_is_wrong() {
        assert!(
            TextQuery::parse("\"open")
                .unwrap_err()
                .contains("not closed")
        );
        assert!(TextQuery::parse("  -- ").unwrap_err().contains("no word"));
        assert!(
            TextQuery::parse(&"a ".repeat(20))
                .unwrap_err()
                .contains("terms")
        );
    }
}
