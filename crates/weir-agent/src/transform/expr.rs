//! Filter conditions: a small expression language over a record's fields.
//!
//! ```text
//! severity <= 3 && attributes.app == "web"
//! !(body contains "healthz") || stream == "stderr"
//! resource.container.name != "noisy" && attributes.status >= 500
//! ```
//!
//! Fields: `body`, `stream`, `severity` (0-7, or compared with a name such
//! as "error"), `partial`, `attributes.KEY`, `resource.KEY` (keys may hold
//! dots). Literals: "strings" (with \" and \\), numbers, true, false.
//! Operators: == != < <= > >= contains, && || !, parentheses. A missing
//! field equals nothing and compares false (so `!=` is true).

use std::fmt;

use crate::record::{LogRecord, Stream, Value};

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare(Operand, Op, Operand),
    /// A lone operand: true when it is `true`, or a non-empty value.
    Truthy(Operand),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Field(Field),
    Str(String),
    Num(f64),
    Bool(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Body,
    Stream,
    Severity,
    Partial,
    Attribute(String),
    Resource(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
}

/// What is wrong with an expression, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {what}")]
pub struct ParseError {
    pub column: usize,
    pub what: String,
}

/// Severity names, by RFC 5424 number, with the spellings logs use.
pub const SEVERITY_NAMES: [&[&str]; 8] = [
    &["emergency", "emerg", "panic"],
    &["alert"],
    &["critical", "crit", "fatal"],
    &["error", "err"],
    &["warning", "warn"],
    &["notice"],
    &["info", "informational"],
    &["debug", "trace"],
];

/// The RFC 5424 number of a severity name (any case).
pub fn severity_of(name: &str) -> Option<u8> {
    let name = name.trim().to_ascii_lowercase();
    if let Ok(n) = name.parse::<u8>() {
        return (n <= 7).then_some(n);
    }
    SEVERITY_NAMES
        .iter()
        .position(|names| names.contains(&name.as_str()))
        .map(|n| n as u8)
}

impl Expr {
    pub fn parse(text: &str) -> Result<Expr, ParseError> {
        let mut parser = Parser {
            text,
            at: 0,
            depth: 0,
        };
        let expr = parser.or()?;
        parser.skip_space();
        if parser.at < text.len() {
            return Err(parser.error("unexpected text after the expression"));
        }
        Ok(expr)
    }

    /// Whether `record` satisfies the condition.
    pub fn matches(&self, record: &LogRecord) -> bool {
        match self {
            Expr::Or(a, b) => a.matches(record) || b.matches(record),
            Expr::And(a, b) => a.matches(record) && b.matches(record),
            Expr::Not(e) => !e.matches(record),
            Expr::Truthy(operand) => match resolve(operand, record) {
                Resolved::Bool(b) => b,
                Resolved::Str(s) => !s.is_empty(),
                Resolved::Num(n) => n != 0.0,
                Resolved::Missing => false,
            },
            Expr::Compare(left, op, right) => {
                compare(&resolve(left, record), *op, &resolve(right, record))
            }
        }
    }
}

/// A value looked up in a record.
#[derive(Debug, Clone, PartialEq)]
enum Resolved {
    Str(String),
    Num(f64),
    Bool(bool),
    Missing,
}

fn resolve(operand: &Operand, record: &LogRecord) -> Resolved {
    match operand {
        Operand::Str(s) => Resolved::Str(s.clone()),
        Operand::Num(n) => Resolved::Num(*n),
        Operand::Bool(b) => Resolved::Bool(*b),
        Operand::Field(field) => match field {
            Field::Body => Resolved::Str(String::from_utf8_lossy(&record.body).into_owned()),
            Field::Stream => Resolved::Str(
                match record.stream {
                    Stream::Stdout => "stdout",
                    Stream::Stderr => "stderr",
                    Stream::Other => "other",
                }
                .to_owned(),
            ),
            Field::Severity => record
                .severity
                .map_or(Resolved::Missing, |s| Resolved::Num(f64::from(s))),
            Field::Partial => Resolved::Bool(record.partial),
            Field::Attribute(key) => record.attributes.iter().find(|(k, _)| k == key).map_or(
                Resolved::Missing,
                |(_, v)| match v {
                    Value::Str(s) => Resolved::Str(s.to_string()),
                    Value::Int(i) => Resolved::Num(*i as f64),
                    Value::Float(x) => Resolved::Num(*x),
                    Value::Bool(b) => Resolved::Bool(*b),
                },
            ),
            Field::Resource(key) => record
                .resource(key)
                .map_or(Resolved::Missing, |v| Resolved::Str(v.to_owned())),
        },
    }
}

fn compare(left: &Resolved, op: Op, right: &Resolved) -> bool {
    use Resolved::*;
    if matches!(left, Missing) || matches!(right, Missing) {
        return op == Op::Ne;
    }
    if op == Op::Contains {
        return match (left, right) {
            (Str(l), Str(r)) => l.contains(r.as_str()),
            _ => false,
        };
    }
    let ordering = match (left, right) {
        (Num(l), Num(r)) => l.partial_cmp(r),
        (Str(l), Str(r)) => Some(l.cmp(r)),
        (Bool(l), Bool(r)) => Some(l.cmp(r)),
        // A number against a string: the string as a number, or a severity
        // name (`severity == "error"`).
        (Num(n), Str(s)) => number_of(s).and_then(|s| n.partial_cmp(&s)),
        (Str(s), Num(n)) => number_of(s).and_then(|s| s.partial_cmp(n)),
        _ => None,
    };
    let Some(ordering) = ordering else {
        return op == Op::Ne;
    };
    use std::cmp::Ordering::*;
    match op {
        Op::Eq => ordering == Equal,
        Op::Ne => ordering != Equal,
        Op::Lt => ordering == Less,
        Op::Le => ordering != Greater,
        Op::Gt => ordering == Greater,
        Op::Ge => ordering != Less,
        Op::Contains => unreachable!("handled above"),
    }
}

fn number_of(text: &str) -> Option<f64> {
    text.trim()
        .parse()
        .ok()
        .or_else(|| severity_of(text).map(f64::from))
}

/// Deeper nesting than this is refused, so a hostile expression cannot
/// exhaust the stack.
const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    text: &'a str,
    at: usize,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, what: impl Into<String>) -> ParseError {
        ParseError {
            column: self.at + 1,
            what: what.into(),
        }
    }

    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn skip_space(&mut self) {
        let trimmed = self.rest().trim_start();
        self.at = self.text.len() - trimmed.len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        if self.rest().starts_with(token) {
            self.at += token.len();
            true
        } else {
            false
        }
    }

    fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!("nested more than {MAX_DEPTH} deep")));
        }
        let result = f(self);
        self.depth -= 1;
        result
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.eat("||") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.not()?;
        while self.eat("&&") {
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        self.skip_space();
        if self.rest().starts_with('!') && !self.rest().starts_with("!=") {
            self.at += 1;
            return self.nested(|p| Ok(Expr::Not(Box::new(p.not()?))));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        self.skip_space();
        if self.eat("(") {
            let inner = self.nested(|p| p.or())?;
            if !self.eat(")") {
                return Err(self.error("expected ')'"));
            }
            return Ok(inner);
        }
        let left = self.operand()?;
        let ops = [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
            ("contains", Op::Contains),
        ];
        for (token, op) in ops {
            if self.eat(token) {
                let right = self.operand()?;
                return Ok(Expr::Compare(left, op, right));
            }
        }
        Ok(Expr::Truthy(left))
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        self.skip_space();
        let rest = self.rest();
        let Some(first) = rest.chars().next() else {
            return Err(self.error("expected a field or a value, found the end"));
        };
        if first == '"' {
            return self.string().map(Operand::Str);
        }
        if first.is_ascii_digit() || first == '-' {
            let len = rest
                .find(|c: char| !(c.is_ascii_digit() || matches!(c, '-' | '.' | 'e' | 'E' | '+')))
                .unwrap_or(rest.len());
            let number = rest[..len]
                .parse()
                .map_err(|_| self.error(format!("{:?} is not a number", &rest[..len])))?;
            self.at += len;
            return Ok(Operand::Num(number));
        }
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/')))
            .unwrap_or(rest.len());
        let word = &rest[..len];
        let operand = match word {
            "" => return Err(self.error(format!("unexpected {first:?}"))),
            "true" => Operand::Bool(true),
            "false" => Operand::Bool(false),
            "body" => Operand::Field(Field::Body),
            "stream" => Operand::Field(Field::Stream),
            "severity" => Operand::Field(Field::Severity),
            "partial" => Operand::Field(Field::Partial),
            _ => {
                if let Some(key) = word.strip_prefix("attributes.").filter(|k| !k.is_empty()) {
                    Operand::Field(Field::Attribute(key.to_owned()))
                } else if let Some(key) = word.strip_prefix("resource.").filter(|k| !k.is_empty()) {
                    Operand::Field(Field::Resource(key.to_owned()))
                } else {
                    return Err(self.error(format!(
                        "unknown field {word:?}: expected body, stream, severity, partial, \
                         attributes.KEY or resource.KEY"
                    )));
                }
            }
        };
        self.at += len;
        Ok(operand)
    }

    fn string(&mut self) -> Result<String, ParseError> {
        let start = self.at;
        self.at += 1;
        let mut out = String::new();
        let mut chars = self.text[self.at..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.at += i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, c @ ('"' | '\\'))) => out.push(c),
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    _ => {
                        self.at += i;
                        return Err(self.error("unknown escape: use \\\", \\\\, \\n or \\t"));
                    }
                },
                c => out.push(c),
            }
        }
        self.at = start;
        Err(self.error("a string without its closing '\"'"))
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Contains => "contains",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> LogRecord {
        LogRecord {
            stream: Stream::Stderr,
            severity: Some(3),
            body: b"GET /healthz 200".to_vec(),
            resource: vec![("container.name".into(), "web".into())],
            attributes: vec![
                ("status".into(), Value::Int(503)),
                ("app".into(), Value::Str("shop".into())),
            ],
            ..LogRecord::default()
        }
    }

    fn check(text: &str) -> bool {
        Expr::parse(text).unwrap().matches(&record())
    }

    #[test]
    fn conditions_read_as_written() {
        assert!(check("severity <= 3 && attributes.app == \"shop\""));
        assert!(check("severity == \"error\""));
        assert!(!check("severity > \"warning\""));
        assert!(check("body contains \"healthz\" && stream == \"stderr\""));
        assert!(check("!(body contains \"nope\") || false"));
        assert!(check("attributes.status >= 500"));
        assert!(check("resource.container.name != \"noisy\""));
        assert!(!check("attributes.missing == \"x\""));
        assert!(check("attributes.missing != \"x\""));
        assert!(!check("partial"));
        assert!(check("true && (false || severity < 4)"));
    }

    #[test]
    fn errors_say_where_and_what() {
        let err = |text: &str| Expr::parse(text).unwrap_err().to_string();
        assert_eq!(
            err("severity <= 3 &&"),
            "column 17: expected a field or a value, found the end"
        );
        assert!(err("level == 3").starts_with("column 1: unknown field \"level\""));
        assert_eq!(err("(body contains \"x\""), "column 19: expected ')'");
        assert_eq!(
            err("body == \"open"),
            "column 9: a string without its closing '\"'"
        );
        assert!(err(&"!".repeat(200)).contains("nested more than 64 deep"));
        assert_eq!(
            err("body == 1 2"),
            "column 11: unexpected text after the expression"
        );
    }
}
