//! What a span has beyond a log record (DESIGN.md, "Span"): its name, its
//! parent, its kind, its end, its status, its events and its links. OTLP
//! and Zipkin v2 both map onto it without loss; the numbering of kinds and
//! status codes is OTLP's.

use super::{CompactString, DecodeError, Input, Value, put_attributes, put_bytes, put_len};

/// What role a span plays in its trace (OTLP's `SpanKind` numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpanKind {
    #[default]
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    pub fn from_code(code: i32) -> SpanKind {
        match code {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }

    pub fn code(self) -> i32 {
        match self {
            SpanKind::Unspecified => 0,
            SpanKind::Internal => 1,
            SpanKind::Server => 2,
            SpanKind::Client => 3,
            SpanKind::Producer => 4,
            SpanKind::Consumer => 5,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Unspecified => "unspecified",
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }
}

/// How the span ended: OTLP's codes (0 unset, 1 ok, 2 error) and message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpanStatus {
    pub code: u8,
    pub message: String,
}

/// Something that happened during the span (a Zipkin annotation).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpanEvent {
    pub time_ns: i64,
    pub name: String,
    pub attributes: Vec<(CompactString, Value)>,
}

/// A span of another trace, or another part of this one, that this span
/// relates to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpanLink {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub trace_state: String,
    pub attributes: Vec<(CompactString, Value)>,
}

/// The span-only parts of a record that is a span.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpanFields {
    pub name: String,
    pub parent_span_id: Option<[u8; 8]>,
    pub kind: SpanKind,
    /// When it ended (ns since the epoch).
    pub end_ns: i64,
    pub status: SpanStatus,
    pub trace_state: String,
    /// W3C trace flags (sampled, …).
    pub flags: u32,
    pub events: Vec<SpanEvent>,
    pub links: Vec<SpanLink>,
}

const HAS_PARENT: u8 = 1;

impl SpanFields {
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        out.push(if self.parent_span_id.is_some() {
            HAS_PARENT
        } else {
            0
        });
        if let Some(parent) = &self.parent_span_id {
            out.extend_from_slice(parent);
        }
        put_bytes(out, self.name.as_bytes());
        out.push(self.kind.code() as u8);
        out.extend_from_slice(&self.end_ns.to_le_bytes());
        out.push(self.status.code);
        put_bytes(out, self.status.message.as_bytes());
        put_bytes(out, self.trace_state.as_bytes());
        out.extend_from_slice(&self.flags.to_le_bytes());
        put_len(out, self.events.len());
        for event in &self.events {
            out.extend_from_slice(&event.time_ns.to_le_bytes());
            put_bytes(out, event.name.as_bytes());
            put_attributes(out, &event.attributes);
        }
        put_len(out, self.links.len());
        for link in &self.links {
            out.extend_from_slice(&link.trace_id);
            out.extend_from_slice(&link.span_id);
            put_bytes(out, link.trace_state.as_bytes());
            put_attributes(out, &link.attributes);
        }
    }

    pub(super) fn decode(input: &mut Input<'_>) -> Result<SpanFields, DecodeError> {
        let parent_span_id = match input.byte()? {
            0 => None,
            HAS_PARENT => Some(input.array()?),
            _ => return Err(input.error("unknown span flags")),
        };
        let name = input.string()?;
        let kind = match input.byte()? {
            code @ 0..=5 => SpanKind::from_code(i32::from(code)),
            _ => return Err(input.error("unknown span kind")),
        };
        let end_ns = i64::from_le_bytes(input.array()?);
        let status = SpanStatus {
            code: input.byte()?,
            message: input.string()?.into(),
        };
        let trace_state = input.string()?;
        let flags = u32::from_le_bytes(input.array()?);
        let count = input.len()?;
        let mut events = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            events.push(SpanEvent {
                time_ns: i64::from_le_bytes(input.array()?),
                name: input.string()?.into(),
                attributes: input.attributes()?,
            });
        }
        let count = input.len()?;
        let mut links = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            links.push(SpanLink {
                trace_id: input.array()?,
                span_id: input.array()?,
                trace_state: input.string()?.into(),
                attributes: input.attributes()?,
            });
        }
        Ok(SpanFields {
            name: name.into(),
            parent_span_id,
            kind,
            end_ns,
            status,
            trace_state: trace_state.into(),
            flags,
            events,
            links,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::record::tests::value;

    fn keyed(attributes: Vec<(String, Value)>) -> Vec<(CompactString, Value)> {
        attributes.into_iter().map(|(k, v)| (k.into(), v)).collect()
    }

    pub(crate) fn span_fields() -> impl Strategy<Value = SpanFields> {
        let attributes = || prop::collection::vec((".{0,8}", value()), 0..3);
        (
            (
                ".{0,12}",
                prop::option::of(any::<[u8; 8]>()),
                0i32..6,
                any::<i64>(),
            ),
            ((0u8..3, ".{0,10}"), ".{0,10}", any::<u32>()),
            prop::collection::vec((any::<i64>(), ".{0,8}", attributes()), 0..3),
            prop::collection::vec(
                (any::<[u8; 16]>(), any::<[u8; 8]>(), ".{0,8}", attributes()),
                0..2,
            ),
        )
            .prop_map(
                |(
                    (name, parent, kind, end_ns),
                    ((code, message), trace_state, flags),
                    events,
                    links,
                )| {
                    SpanFields {
                        name,
                        parent_span_id: parent,
                        kind: SpanKind::from_code(kind),
                        end_ns,
                        status: SpanStatus { code, message },
                        trace_state,
                        flags,
                        events: events
                            .into_iter()
                            .map(|(time_ns, name, attributes)| SpanEvent {
                                time_ns,
                                name,
                                attributes: keyed(attributes),
                            })
                            .collect(),
                        links: links
                            .into_iter()
                            .map(|(trace_id, span_id, trace_state, attributes)| SpanLink {
                                trace_id,
                                span_id,
                                trace_state,
                                attributes: keyed(attributes),
                            })
                            .collect(),
                    }
                },
            )
    }
}
