//! A bounded MessagePack reader for what Forward clients send: values
//! borrow from the input (no copy of strings or binaries), nesting is
//! limited, and no length a client claims is trusted for an allocation
//! beyond the bytes actually there. An input that ends too soon says so
//! apart from one that is broken, so a stream reader knows to wait.

use rmp::Marker;

/// Deepest nesting of arrays and maps.
const MAX_DEPTH: usize = 32;

/// A MessagePack value, borrowing its bytes from the input.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    /// A positive integer beyond `i64`.
    UInt(u64),
    Float(f64),
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Array(Vec<Value<'a>>),
    Map(Vec<(Value<'a>, Value<'a>)>),
    Ext(i8, &'a [u8]),
}

impl<'a> Value<'a> {
    /// The bytes of a string or binary.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Value::Str(b) | Value::Bin(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.as_bytes()?).ok()
    }

    /// The value under string key `key`, if this is a map.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_bytes() == Some(key.as_bytes()))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Why bytes are not a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// The input ends inside a value: wait for more.
    Incomplete,
    /// The bytes are not MessagePack (or nest too deep), at this offset.
    Invalid { at: usize, what: &'static str },
}

/// Reads one value from the start of `input`; returns it and its length.
pub fn read(input: &[u8]) -> Result<(Value<'_>, usize), ReadError> {
    let mut reader = Reader { input, at: 0 };
    let value = reader.value(0)?;
    Ok((value, reader.at))
}

/// The length of the value at the start of `input`, without building it:
/// a cheap test of whether a whole message has arrived.
pub fn skip(input: &[u8]) -> Result<usize, ReadError> {
    Skipper::default().skip(input)
}

/// Finds where a value ends as its bytes arrive, remembering how far it
/// got: a message that arrives in many reads is walked once, not once a
/// read (which is quadratic in its size).
#[derive(Debug, Default)]
pub struct Skipper {
    /// Within a value: where its next item starts.
    at: usize,
    /// Items left at the current depth, and at each depth above.
    pending: u64,
    depth_left: Vec<u64>,
    started: bool,
    /// Values passed in the value being walked, or in the last one whole.
    values: u64,
}

impl Skipper {
    /// The length of the value at the start of `input`, once it is whole;
    /// [`ReadError::Incomplete`] until then. `input` must start where it
    /// did at the previous call and hold at least what it held then. After
    /// a whole value or an error, the next call starts a new value.
    pub fn skip(&mut self, input: &[u8]) -> Result<usize, ReadError> {
        if !self.started {
            self.at = 0;
            self.pending = 1;
            self.depth_left.clear();
            self.started = true;
            self.values = 0;
        }
        let mut reader = Reader { input, at: self.at };
        while self.pending > 0 {
            let before = reader.at;
            let children = match reader.skip_one() {
                Ok(children) => children,
                Err(ReadError::Incomplete) => {
                    // Taken again from this item's start when more comes.
                    self.at = before;
                    return Err(ReadError::Incomplete);
                }
                Err(e) => {
                    self.started = false;
                    return Err(e);
                }
            };
            self.pending -= 1;
            self.values += 1;
            if children > 0 {
                if self.depth_left.len() >= MAX_DEPTH {
                    self.started = false;
                    return Err(reader.invalid("nested deeper than 32"));
                }
                self.depth_left.push(self.pending);
                self.pending = children;
            }
            while self.pending == 0 {
                match self.depth_left.pop() {
                    Some(outer) => self.pending = outer,
                    None => break,
                }
            }
        }
        self.started = false;
        Ok(reader.at)
    }

    /// How many values (scalars, strings, arrays, maps, and each key and
    /// value of a map) the last whole value held: [`read`] makes a
    /// [`Value`] of each, so this says what reading it takes before it is
    /// read.
    pub fn values(&self) -> u64 {
        self.values
    }

    /// What [`read`] allocates for the last whole value: a [`Value`] for
    /// each of [`Skipper::values`].
    pub fn tree_bytes(&self) -> usize {
        usize::try_from(self.values)
            .unwrap_or(usize::MAX)
            .saturating_mul(std::mem::size_of::<Value<'_>>())
    }
}

struct Reader<'a> {
    input: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn invalid(&self, what: &'static str) -> ReadError {
        ReadError::Invalid { at: self.at, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        let end = self.at.checked_add(n).ok_or(ReadError::Incomplete)?;
        let bytes = self.input.get(self.at..end).ok_or(ReadError::Incomplete)?;
        self.at = end;
        Ok(bytes)
    }

    fn uint(&mut self, n: usize) -> Result<u64, ReadError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// The marker and what follows it up to the contents: the kind of
    /// value and its length or scalar.
    fn head(&mut self) -> Result<Head<'a>, ReadError> {
        let start = self.at;
        let marker = Marker::from_u8(self.take(1)?[0]);
        Ok(match marker {
            Marker::FixPos(n) => Head::Scalar(Value::Int(i64::from(n))),
            Marker::FixNeg(n) => Head::Scalar(Value::Int(i64::from(n))),
            Marker::Null => Head::Scalar(Value::Nil),
            Marker::True => Head::Scalar(Value::Bool(true)),
            Marker::False => Head::Scalar(Value::Bool(false)),
            Marker::U8 => Head::Scalar(Value::Int(self.uint(1)? as i64)),
            Marker::U16 => Head::Scalar(Value::Int(self.uint(2)? as i64)),
            Marker::U32 => Head::Scalar(Value::Int(self.uint(4)? as i64)),
            Marker::U64 => {
                let n = self.uint(8)?;
                Head::Scalar(i64::try_from(n).map_or(Value::UInt(n), Value::Int))
            }
            Marker::I8 => Head::Scalar(Value::Int(i64::from(self.uint(1)? as u8 as i8))),
            Marker::I16 => Head::Scalar(Value::Int(i64::from(self.uint(2)? as u16 as i16))),
            Marker::I32 => Head::Scalar(Value::Int(i64::from(self.uint(4)? as u32 as i32))),
            Marker::I64 => Head::Scalar(Value::Int(self.uint(8)? as i64)),
            Marker::F32 => Head::Scalar(Value::Float(f64::from(f32::from_bits(
                self.uint(4)? as u32
            )))),
            Marker::F64 => Head::Scalar(Value::Float(f64::from_bits(self.uint(8)?))),
            Marker::FixStr(n) => Head::Str(usize::from(n)),
            Marker::Str8 => Head::Str(self.uint(1)? as usize),
            Marker::Str16 => Head::Str(self.uint(2)? as usize),
            Marker::Str32 => Head::Str(self.uint(4)? as usize),
            Marker::Bin8 => Head::Bin(self.uint(1)? as usize),
            Marker::Bin16 => Head::Bin(self.uint(2)? as usize),
            Marker::Bin32 => Head::Bin(self.uint(4)? as usize),
            Marker::FixArray(n) => Head::Array(u64::from(n)),
            Marker::Array16 => Head::Array(self.uint(2)?),
            Marker::Array32 => Head::Array(self.uint(4)?),
            Marker::FixMap(n) => Head::Map(u64::from(n)),
            Marker::Map16 => Head::Map(self.uint(2)?),
            Marker::Map32 => Head::Map(self.uint(4)?),
            Marker::FixExt1 => Head::Ext(1),
            Marker::FixExt2 => Head::Ext(2),
            Marker::FixExt4 => Head::Ext(4),
            Marker::FixExt8 => Head::Ext(8),
            Marker::FixExt16 => Head::Ext(16),
            Marker::Ext8 => Head::Ext(self.uint(1)? as usize),
            Marker::Ext16 => Head::Ext(self.uint(2)? as usize),
            Marker::Ext32 => Head::Ext(self.uint(4)? as usize),
            Marker::Reserved => {
                return Err(ReadError::Invalid {
                    at: start,
                    what: "byte 0xc1 is never used in MessagePack",
                });
            }
        })
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, ReadError> {
        if depth > MAX_DEPTH {
            return Err(self.invalid("nested deeper than 32"));
        }
        Ok(match self.head()? {
            Head::Scalar(value) => value,
            Head::Str(n) => Value::Str(self.take(n)?),
            Head::Bin(n) => Value::Bin(self.take(n)?),
            Head::Ext(n) => {
                let kind = self.take(1)?[0] as i8;
                Value::Ext(kind, self.take(n)?)
            }
            Head::Array(n) => {
                let mut items = Vec::with_capacity(self.room(n));
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            Head::Map(n) => {
                // Each entry takes at least two bytes.
                let left = self.input.len() - self.at;
                let mut entries = Vec::with_capacity((n as usize).min(left / 2));
                for _ in 0..n {
                    let key = self.value(depth + 1)?;
                    entries.push((key, self.value(depth + 1)?));
                }
                Value::Map(entries)
            }
        })
    }

    /// What a claimed count of items may reserve: no more than one item a
    /// byte left.
    fn room(&self, claimed: u64) -> usize {
        (claimed as usize).min(self.input.len() - self.at)
    }

    /// Passes one value's head and contents, returning how many child
    /// values follow it.
    fn skip_one(&mut self) -> Result<u64, ReadError> {
        Ok(match self.head()? {
            Head::Scalar(_) => 0,
            Head::Str(n) | Head::Bin(n) => {
                self.take(n)?;
                0
            }
            Head::Ext(n) => {
                self.take(n + 1)?;
                0
            }
            Head::Array(n) => n,
            Head::Map(n) => n * 2,
        })
    }
}

enum Head<'a> {
    Scalar(Value<'a>),
    Str(usize),
    Bin(usize),
    Ext(usize),
    Array(u64),
    Map(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        write(&mut out);
        out
    }

    #[test]
    fn values_round_trip_from_rmp_and_ends_are_found() {
        let bytes = encode(|out| {
            rmp::encode::write_array_len(out, 4).unwrap();
            rmp::encode::write_str(out, "app.web").unwrap();
            rmp::encode::write_sint(out, -70_000).unwrap();
            rmp::encode::write_map_len(out, 2).unwrap();
            rmp::encode::write_str(out, "log").unwrap();
            rmp::encode::write_bin(out, b"hello").unwrap();
            rmp::encode::write_str(out, "n").unwrap();
            rmp::encode::write_f64(out, 1.5).unwrap();
            rmp::encode::write_ext_meta(out, 8, 0).unwrap();
            out.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]);
        });
        let (value, len) = read(&bytes).unwrap();
        assert_eq!(len, bytes.len());
        assert_eq!(skip(&bytes), Ok(bytes.len()));
        let Value::Array(items) = value else { panic!() };
        assert_eq!(items[0].as_str(), Some("app.web"));
        assert_eq!(items[1], Value::Int(-70_000));
        assert_eq!(
            items[2].get("log").and_then(Value::as_bytes),
            Some(&b"hello"[..])
        );
        assert_eq!(items[2].get("n"), Some(&Value::Float(1.5)));
        assert_eq!(items[3], Value::Ext(0, &[0, 0, 0, 1, 0, 0, 0, 2]));
        for cut in 0..bytes.len() {
            assert_eq!(read(&bytes[..cut]).unwrap_err(), ReadError::Incomplete);
            assert_eq!(skip(&bytes[..cut]).unwrap_err(), ReadError::Incomplete);
        }
    }

    #[test]
    fn the_skipper_counts_the_values_read_would_make() {
        // [tag, [[time, {"log": "x"}], [time, {"log": "y"}]]]: the tag, the
        // entries, two entries of a time and a map with a key and value.
        let bytes = encode(|out| {
            rmp::encode::write_array_len(out, 2).unwrap();
            rmp::encode::write_str(out, "tag").unwrap();
            rmp::encode::write_array_len(out, 2).unwrap();
            for body in ["x", "y"] {
                rmp::encode::write_array_len(out, 2).unwrap();
                rmp::encode::write_uint(out, 1).unwrap();
                rmp::encode::write_map_len(out, 1).unwrap();
                rmp::encode::write_str(out, "log").unwrap();
                rmp::encode::write_str(out, body).unwrap();
            }
        });
        let mut skipper = Skipper::default();
        // Arriving a byte at a time counts each value once.
        for cut in 1..bytes.len() {
            assert_eq!(skipper.skip(&bytes[..cut]), Err(ReadError::Incomplete));
        }
        assert_eq!(skipper.skip(&bytes), Ok(bytes.len()));
        assert_eq!(skipper.values(), 1 + 1 + 1 + 2 * (1 + 1 + 1 + 2));
        assert_eq!(
            skipper.tree_bytes(),
            skipper.values() as usize * std::mem::size_of::<Value<'_>>()
        );
    }

    #[test]
    fn claimed_lengths_and_depth_are_bounded() {
        // An array claiming four billion items, in five bytes.
        assert_eq!(
            read(&[0xdd, 0xff, 0xff, 0xff, 0xff]).unwrap_err(),
            ReadError::Incomplete
        );
        for arrays in 28..36 {
            let mut nested = vec![0x91; arrays];
            nested.push(0x01);
            assert_eq!(
                read(&nested).is_ok(),
                skip(&nested).is_ok(),
                "read and skip agree on depth {arrays}"
            );
            assert_eq!(read(&nested).is_ok(), arrays <= 32);
        }
        let deep = vec![0x91; 100];
        assert!(matches!(read(&deep), Err(ReadError::Invalid { .. })));
        assert!(matches!(skip(&deep), Err(ReadError::Invalid { .. })));
        assert_eq!(
            read(&[0x92, 0x01, 0xc1]).unwrap_err(),
            ReadError::Invalid {
                at: 2,
                what: "byte 0xc1 is never used in MessagePack"
            }
        );
    }

    #[test]
    fn a_value_arriving_byte_by_byte_ends_where_it_ends_whole() {
        let bytes = encode(|out| {
            rmp::encode::write_array_len(out, 3).unwrap();
            rmp::encode::write_str(out, "tag").unwrap();
            rmp::encode::write_array_len(out, 2).unwrap();
            for i in 0..2 {
                rmp::encode::write_array_len(out, 2).unwrap();
                rmp::encode::write_uint(out, i).unwrap();
                rmp::encode::write_map_len(out, 1).unwrap();
                rmp::encode::write_str(out, "log").unwrap();
                rmp::encode::write_str(out, &"x".repeat(300)).unwrap();
            }
            rmp::encode::write_map_len(out, 0).unwrap();
            rmp::encode::write_uint(out, 7).unwrap();
        });
        let whole = skip(&bytes).unwrap();
        let mut skipper = Skipper::default();
        let mut found = None;
        for end in 0..=bytes.len() {
            match skipper.skip(&bytes[..end]) {
                Ok(len) => {
                    found = Some((end, len));
                    break;
                }
                Err(ReadError::Incomplete) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(found, Some((whole, whole)));
        // The next value starts afresh.
        assert_eq!(skipper.skip(&bytes[whole..]).unwrap(), 1);
    }
}
