//! What decoding a request would allocate, counted before it is decoded.
//! A message of two bytes on the wire (an empty log record, an empty
//! attribute, `{}` in JSON) becomes a struct of a hundred bytes or more,
//! so a body within `max_message` could otherwise ask for a hundred times
//! as much memory as it is long. The protobuf walk knows which fields hold
//! messages from a table per protocol ([`MessageType`]); JSON is counted
//! by its objects and arrays.

/// Nesting deeper than this is refused (prost's own limit is 100).
const MAX_DEPTH: usize = 64;

/// A protobuf message type: what one takes decoded, and which of its
/// fields hold messages, of which type.
#[derive(Debug)]
pub struct MessageType {
    pub name: &'static str,
    /// Bytes one decoded takes, besides its strings and byte fields (which
    /// the body's own length covers).
    pub size: usize,
    pub fields: &'static [Field],
}

/// A field that holds messages: its number, their type, and how many.
#[derive(Debug)]
pub struct Field(pub u32, pub &'static MessageType, pub Count);

/// How many messages a field holds, and so what each costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// One, inside its parent (whose size counts it); it costs nothing
    /// more, however often it comes (prost merges them).
    One,
    /// Any number, each in a vector that may keep as much room again.
    Repeated,
}

impl MessageType {
    fn field(&self, number: u32) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.0 == number)
    }
}

/// Bytes decoding `body`, a `root` message, would take: the body itself
/// and each message in it, twice over for the room a growing vector
/// keeps. An error says what in the wire format is wrong, and where.
pub fn protobuf(body: &[u8], root: &MessageType) -> Result<usize, String> {
    Ok(body.len().saturating_add(walk(body, root, 0)?))
}

/// What the objects of a protocol's JSON decode into, by how deep they
/// are: the outer ones (requests, resources, records, spans) are the large
/// structs, the deeper ones (attributes, values, events) small ones.
#[derive(Debug, Clone, Copy)]
pub struct JsonObjects {
    /// Objects nested this deep or less (the outermost is 1)…
    pub outer_depth: usize,
    /// …take at most this many bytes each,
    pub outer_size: usize,
    /// and the deeper ones at most this many,
    pub inner_size: usize,
    /// and each member of a deeper one this many more (a map's entry; 0
    /// where members are fields of a struct).
    pub inner_member_size: usize,
}

/// Nesting tracked this deep; deeper objects count as array elements.
const MAX_JSON_DEPTH: usize = 256;

/// Bytes decoding a JSON `body` would take: each object as the largest
/// struct it can be at its depth, twice that as an array's element (the
/// room a growing vector keeps), each member of a deep object as a map
/// entry where the protocol has maps, and each array as a vector.
pub fn json(body: &[u8], objects: JsonObjects) -> usize {
    let mut in_string = false;
    let mut escaped = false;
    // Whether each open container is an array, outermost first.
    let mut open: Vec<bool> = Vec::new();
    let mut depth = 0usize;
    let mut structs = 0usize;
    for &byte in body {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' => {
                depth += 1;
                let size = if depth <= objects.outer_depth {
                    objects.outer_size
                } else {
                    objects.inner_size
                };
                let in_array =
                    open.last().copied().unwrap_or(false) || open.len() >= MAX_JSON_DEPTH;
                structs = structs.saturating_add(if in_array { 2 * size } else { size });
                if open.len() < MAX_JSON_DEPTH {
                    open.push(false);
                }
            }
            b'[' => {
                structs = structs.saturating_add(size_of::<Vec<u8>>());
                if open.len() < MAX_JSON_DEPTH {
                    open.push(true);
                }
            }
            b'}' => {
                depth = depth.saturating_sub(1);
                open.pop();
            }
            b']' => {
                open.pop();
            }
            b':' if depth > objects.outer_depth => {
                structs = structs.saturating_add(objects.inner_member_size);
            }
            _ => {}
        }
    }
    body.len().saturating_add(structs)
}

fn walk(bytes: &[u8], message: &MessageType, depth: usize) -> Result<usize, String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "messages nested more than {MAX_DEPTH} deep (a {})",
            message.name
        ));
    }
    let name = message.name;
    let mut cost = 0usize;
    let mut at = 0;
    while at < bytes.len() {
        let start = at;
        let key = varint(bytes, &mut at)
            .ok_or_else(|| format!("a {name}: a field key cut short at byte {start}"))?;
        let (field, wire_type) = ((key >> 3) as u32, key & 7);
        let skip = match wire_type {
            0 => {
                varint(bytes, &mut at).ok_or_else(|| {
                    format!("a {name}: field {field}'s number cut short at byte {start}")
                })?;
                0
            }
            1 => 8,
            5 => 4,
            2 => {
                let len = varint(bytes, &mut at).ok_or_else(|| {
                    format!("a {name}: field {field}'s length cut short at byte {start}")
                })?;
                usize::try_from(len).unwrap_or(usize::MAX)
            }
            other => {
                return Err(format!(
                    "a {name}: field {field} at byte {start} has wire type {other}, which is not used here"
                ));
            }
        };
        let end = at
            .checked_add(skip)
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| format!("a {name}: field {field} at byte {start} runs past its end"))?;
        if wire_type == 2
            && let Some(Field(_, child, count)) = message.field(field)
        {
            let own = match count {
                Count::One => 0,
                Count::Repeated => 2 * child.size,
            };
            let inner = walk(&bytes[at..end], child, depth + 1)?;
            cost = cost.saturating_add(own).saturating_add(inner);
        }
        at = end;
    }
    Ok(cost)
}

fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut rest = bytes.get(*at..)?;
    let before = rest.len();
    let value = prost::encoding::decode_varint(&mut rest).ok()?;
    *at += before - rest.len();
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    static LEAF: MessageType = MessageType {
        name: "Leaf",
        size: 100,
        fields: &[],
    };
    static NODE: MessageType = MessageType {
        name: "Node",
        size: 10,
        fields: &[
            Field(1, &LEAF, Count::Repeated),
            Field(2, &NODE, Count::Repeated),
            Field(4, &LEAF, Count::One),
        ],
    };

    #[test]
    fn each_message_on_the_wire_costs_its_decoded_size() {
        // Node { leaf {}, leaf {}, note: "hi" (field 3, not a message),
        // node { leaf {} }, one {} twice (field 4: inline, merged) }
        let body = [
            0x0a, 0x00, 0x0a, 0x00, 0x1a, 0x02, b'h', b'i', 0x12, 0x02, 0x0a, 0x00, 0x22, 0x00,
            0x22, 0x00,
        ];
        assert_eq!(
            protobuf(&body, &NODE),
            Ok(body.len() + 2 * (100 + 100 + 10 + 100))
        );
        // Varints and fixed fields cost nothing more than their bytes.
        let scalars = [
            0x08, 0x96, 0x01, 0x11, 1, 2, 3, 4, 5, 6, 7, 8, 0x1d, 1, 2, 3, 4,
        ];
        assert_eq!(protobuf(&scalars, &LEAF), Ok(scalars.len()));
    }

    #[test]
    fn a_broken_wire_format_is_said_with_where() {
        let cases: [(&[u8], &str); 4] = [
            (
                &[0x0a, 0x05, 0x00],
                "a Node: field 1 at byte 0 runs past its end",
            ),
            (
                &[0x08, 0x80],
                "a Node: field 1's number cut short at byte 0",
            ),
            (
                &[0x0b],
                "a Node: field 1 at byte 0 has wire type 3, which is not used here",
            ),
            (
                &[0x0a, 0x02, 0x0a, 0x05],
                "a Leaf: field 1 at byte 0 runs past its end",
            ),
        ];
        for (body, error) in cases {
            assert_eq!(protobuf(body, &NODE).unwrap_err(), error);
        }
        let deep: Vec<u8> = (0..100).fold(Vec::new(), |inner, _| {
            let mut outer = vec![0x12];
            let mut len = inner.len();
            while len >= 0x80 {
                outer.push(len as u8 | 0x80);
                len >>= 7;
            }
            outer.push(len as u8);
            outer.extend(inner);
            outer
        });
        assert!(protobuf(&deep, &NODE).is_err_and(|e| e.contains("nested")));
    }

    #[test]
    fn json_counts_objects_by_depth_and_arrays_outside_strings() {
        let objects = JsonObjects {
            outer_depth: 1,
            outer_size: 100,
            inner_size: 10,
            inner_member_size: 1,
        };
        // Two outer objects in an array (twice each); an inner one in an
        // array (twice) with a member, holding one that is not (once); two
        // arrays.
        let body = br#"[{"a":"{[\"}"},{"b":[1,{"c":{}}]}]"#;
        assert_eq!(
            json(body, objects),
            body.len() + 2 * 2 * 100 + 2 * 10 + 10 + 1 + 2 * 24
        );
    }
}
