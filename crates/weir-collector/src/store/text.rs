//! Full-text search on log bodies. A body's words are its runs of letters
//! and digits, once lowercased. weir finds them itself, both for the index
//! ([`IndexWords`]) and for queries, and hands the index each distinct word
//! of a chunk once, spaces between: SQLite's `ascii` tokenizer then only
//! splits on the spaces, which is far cheaper than its `unicode61`
//! tokenizer finding and folding every word of every record.
//! A query is words, `"quoted phrases"` and `prefix*` words, all of which
//! a body must hold: a phrase as consecutive text, case aside.
//!
//! The index only narrows the search to groups of records that hold every
//! word somewhere; [`TextQuery::matches`] then decides for each record.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

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

    /// The FTS5 `MATCH` expression that finds the groups of records that
    /// may match: every word, each quoted.
    pub fn index_expression(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        for term in &self.terms {
            match term {
                Term::Word(w) => parts.push(format!("\"{w}\"")),
                Term::Prefix(p) => parts.push(format!("\"{p}\" *")),
                Term::Phrase(_, words) => parts.extend(words.iter().map(|w| format!("\"{w}\""))),
            }
        }
        parts.join(" AND ")
    }

    /// Whether `body` matches every term.
    pub fn matches(&self, body: &[u8]) -> bool {
        let body = String::from_utf8_lossy(body).to_lowercase();
        self.terms.iter().all(|term| match term {
            Term::Word(w) => words(&body).any(|b| b == w),
            Term::Prefix(p) => words(&body).any(|b| b.starts_with(p.as_str())),
            Term::Phrase(phrase, _) => body.contains(phrase.as_str()),
        })
    }
}

/// The text the full-text index gets for a chunk of records: each
/// distinct word once, lowercased, a space after each.
#[derive(Default)]
pub struct IndexWords {
    text: String,
    /// Where each word written starts in `text`, by its hash. A second word
    /// of the same hash is written again: FTS5 ignores the repeat.
    seen: HashMap<u64, (u32, u32), BuildHasherDefault<KnownHash>>,
    lowered: String,
}

impl IndexWords {
    /// Adds the words of `body` (not UTF-8 where invalid, as
    /// [`TextQuery::matches`] reads it).
    pub fn add(&mut self, body: &[u8]) {
        if body.is_ascii() {
            for word in body
                .split(|b| !b.is_ascii_alphanumeric())
                .filter(|w| !w.is_empty())
            {
                self.lowered.clear();
                self.lowered
                    .extend(word.iter().map(|b| b.to_ascii_lowercase() as char));
                self.add_word_lowered();
            }
            return;
        }
        let lower = String::from_utf8_lossy(body).to_lowercase();
        for word in words(&lower) {
            self.lowered.clear();
            self.lowered.push_str(word);
            self.add_word_lowered();
        }
    }

    fn add_word_lowered(&mut self) {
        let word = self.lowered.as_str();
        let hash = fnv1a(word.as_bytes());
        if let Some(&(start, len)) = self.seen.get(&hash) {
            let (start, len) = (start as usize, len as usize);
            if self.text.as_bytes()[start..start + len] == *word.as_bytes() {
                return;
            }
        } else {
            self.seen
                .insert(hash, (self.text.len() as u32, word.len() as u32));
        }
        self.text.push_str(word);
        self.text.push(' ');
    }

    /// The words added since the last [`IndexWords::clear`].
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.seen.clear();
    }
}

/// FNV-1a, 64 bits: a word's hash for [`IndexWords`].
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A hasher for keys that are hashes already.
#[derive(Default)]
struct KnownHash(u64);

impl Hasher for KnownHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
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

    #[test]
    fn words_phrases_and_prefixes_must_all_be_found() {
        let query = TextQuery::parse(r#"Timeout "db query" user*"#).unwrap();
        assert_eq!(
            query.index_expression(),
            r#""timeout" AND "db" AND "query" AND "user" *"#
        );
        assert!(query.matches(b"TIMEOUT after db query by username=x"));
        assert!(!query.matches(b"timeout after query db by user"));
        assert!(!query.matches(b"timeouts after db query by user"));
        assert!(!query.matches(b"timeout after db query"));
    }

    #[test]
    fn words_joined_by_punctuation_are_a_phrase() {
        let query = TextQuery::parse("user-42").unwrap();
        assert_eq!(query.index_expression(), r#""user" AND "42""#);
        assert!(query.matches(b"login by user-42 ok"));
        assert!(!query.matches(b"42 user"));
    }

    #[test]
    fn the_index_gets_each_word_of_a_chunk_once_lowercased() {
        let mut index = IndexWords::default();
        index.add(b"GET /api/users/42 took 12ms");
        index.add(b"get /API/orders user=42");
        index.add("ÉCOLE Ünïcode user".as_bytes());
        index.add(b"bad \xff\xfe utf8");
        assert_eq!(
            index.as_str(),
            "get api users 42 took 12ms orders user école ünïcode bad utf8 "
        );
        // Whatever the index holds, a query for it finds.
        for word in index.as_str().split_whitespace() {
            let query = TextQuery::parse(&word.to_uppercase()).unwrap();
            assert_eq!(query.index_expression(), format!("\"{word}\""));
        }
        index.clear();
        index.add(b"again");
        assert_eq!(index.as_str(), "again ");
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
