//! Where the collector keeps what it receives, behind one trait: the API
//! and the UI ask [`Store`] and know nothing of SQL. SQLite (one file,
//! [`sqlite::SqliteStore`]) is the embedded default; a ClickHouse cluster
//! is the next implementation, for those who outgrow one machine.
//!
//! Every query is bounded: a time range (at most [`MAX_RANGE_NS`]), a
//! result size (at most [`MAX_LIMIT`] records or traces) and a time
//! budget, past which the store answers [`StoreError::TooSlow`].

pub mod sqlite;
pub mod text;

use std::time::Duration;

use weir_agent::record::{LogRecord, Stream};

pub use self::text::TextQuery;

/// The widest time range a query may cover.
pub const MAX_RANGE_NS: i64 = 31 * 24 * 3600 * 1_000_000_000;

/// The most records (or traces) one query returns.
pub const MAX_LIMIT: usize = 1000;

/// The most spans of one trace a query returns (the first by start): a
/// sender can put any number of spans under one trace id.
pub const MAX_TRACE_SPANS: usize = 20_000;

/// How long one query may run.
pub const QUERY_BUDGET: Duration = Duration::from_secs(5);

/// Why the store could not answer or write.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the query took longer than {0:?}: narrow it (time range, filters)")]
    TooSlow(Duration),
    #[error("{what}: {message}")]
    Failed { what: String, message: String },
}

impl StoreError {
    pub fn failed(what: impl Into<String>, error: impl std::fmt::Display) -> StoreError {
        StoreError::Failed {
            what: what.into(),
            message: error.to_string(),
        }
    }
}

/// Whose records a query may see: everyone's, or one tenant's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scope {
    #[default]
    All,
    Tenant(String),
}

impl Scope {
    pub fn allows(&self, tenant: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Tenant(own) => own == tenant,
        }
    }
}

/// Which records a query is about: whose, and from when.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceFilter {
    pub scope: Scope,
    /// `host.name` (or `node`) of the resource.
    pub node: Option<String>,
    /// `container.name` (or `k8s.container.name`) of the resource.
    pub container: Option<String>,
    /// Resource pairs that must all be present (`container.label.app=web`).
    pub labels: Vec<(String, String)>,
}

/// A search for log records, newest first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogQuery {
    pub sources: SourceFilter,
    /// Records with `from_ns <= time < to_ns`.
    pub from_ns: i64,
    pub to_ns: i64,
    pub stream: Option<Stream>,
    /// Records at least this severe (RFC 5424: 0 is the most severe).
    pub severity_at_most: Option<u8>,
    pub text: Option<TextQuery>,
    pub trace_id: Option<[u8; 16]>,
    /// Only records older than this one (the previous page's last).
    pub before: Option<Cursor>,
    pub limit: usize,
}

/// A place in the newest-first order of log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub time_ns: i64,
    pub id: i64,
}

impl Cursor {
    /// The opaque text a client hands back: `TIME-ID`.
    pub fn to_text(self) -> String {
        format!("{}-{}", self.time_ns, self.id)
    }

    pub fn parse(text: &str) -> Option<Cursor> {
        let (time, id) = text.rsplit_once('-')?;
        Some(Cursor {
            time_ns: time.parse().ok()?,
            id: id.parse().ok()?,
        })
    }
}

/// A log record as stored, with its place.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLog {
    pub id: i64,
    pub tenant: String,
    pub record: LogRecord,
}

/// A step of a live tail.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TailStep {
    pub records: Vec<StoredLog>,
    /// The last record looked at, matching or not: the next step starts
    /// after it, so records a filter skips are not read again.
    pub read_to: i64,
    /// The step stopped at its limit: more may be waiting.
    pub more: bool,
}

/// One page of a log search.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogPage {
    pub records: Vec<StoredLog>,
    /// Where the next page starts, if there may be one.
    pub next: Option<Cursor>,
}

/// A search for traces (Zipkin's `/api/v2/traces`). Names are compared
/// lowercased, as Zipkin stores them; every condition must hold for one
/// span of the trace, of `service` if one is named.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TraceQuery {
    pub scope: Scope,
    pub service: Option<String>,
    pub remote_service: Option<String>,
    pub span_name: Option<String>,
    /// `error` (an annotation or a tag of that name) or `key=value` (a tag).
    pub annotations: Vec<(String, Option<String>)>,
    pub min_duration_us: Option<u64>,
    pub max_duration_us: Option<u64>,
    /// Spans that start within `[from_ns, to_ns]`.
    pub from_ns: i64,
    pub to_ns: i64,
    /// The most traces, the newest first.
    pub limit: usize,
}

/// The spans of one trace, as stored.
pub type Spans = Vec<LogRecord>;

/// A bucket of a histogram: records from `start_ns` on, for `step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub start_ns: i64,
    pub count: u64,
}

/// One source's logging over time: what was stored and what was lost.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceUsage {
    pub node: String,
    pub container: String,
    /// The container's budget (bytes per second) and policy, as its
    /// monitor states them (`weir.budget`, `weir.policy`).
    pub budget: Option<f64>,
    pub policy: Option<String>,
    /// Body bytes stored per bucket.
    pub bytes: Vec<u64>,
    /// Records stored per bucket.
    pub records: Vec<u64>,
    /// Bytes lost per reason, per bucket (from the gate's loss records).
    pub dropped: Vec<(String, Vec<u64>)>,
}

/// Stored and lost bytes per source, in buckets of `step_ns` from `from_ns`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Usage {
    pub from_ns: i64,
    pub step_ns: i64,
    pub sources: Vec<SourceUsage>,
}

/// What a store holds, for the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    pub logs: u64,
    pub spans: u64,
    /// Bytes in use (the file less its free pages).
    pub bytes: u64,
    /// Distinct resources the records come from.
    pub sources: u64,
    /// Records deleted since the store was opened for being older than
    /// `max_age`, and younger ones evicted to keep the size bound.
    pub aged: u64,
    pub evicted: u64,
}

/// The collector's store: written by the `store` sink, read by the API.
pub trait Store: Send + Sync {
    /// Writes a batch (logs, spans and loss records) in one commit.
    fn append(&self, records: &[LogRecord]) -> Result<(), StoreError>;

    /// Log records matching `query`, newest first, one page.
    fn logs(&self, query: &LogQuery) -> Result<LogPage, StoreError>;

    /// Log records matching `query` stored after the record `after` (by
    /// arrival), oldest first: a step of a live tail. At most
    /// `query.limit` records are looked at; `query.before` is ignored.
    fn logs_after(&self, query: &LogQuery, after: i64) -> Result<TailStep, StoreError>;

    /// The newest record's id, where a live tail starts.
    fn last_log_id(&self) -> Result<i64, StoreError>;

    /// How many records match `query` per bucket of `step_ns`.
    fn log_histogram(&self, query: &LogQuery, step_ns: i64) -> Result<Vec<Bucket>, StoreError>;

    /// Local service names (lowercased), sorted.
    fn services(&self, scope: &Scope) -> Result<Vec<String>, StoreError>;

    /// Span names of `service`, sorted.
    fn span_names(&self, scope: &Scope, service: &str) -> Result<Vec<String>, StoreError>;

    /// Remote service names `service` calls, sorted.
    fn remote_services(&self, scope: &Scope, service: &str) -> Result<Vec<String>, StoreError>;

    /// Traces matching `query`, the newest first, each its stored spans.
    fn traces(&self, query: &TraceQuery) -> Result<Vec<Spans>, StoreError>;

    /// The spans of each trace in `ids` that has any (128-bit ids; a
    /// 64-bit id is the low half with a zero high half), at most
    /// [`MAX_TRACE_SPANS`] of each.
    fn traces_by_id(&self, scope: &Scope, ids: &[[u8; 16]]) -> Result<Vec<Spans>, StoreError>;

    /// Every span starting within `[from_ns, to_ns]`, grouped by trace, at
    /// most `max_spans` of them: what dependency links are drawn from.
    fn spans_between(
        &self,
        scope: &Scope,
        from_ns: i64,
        to_ns: i64,
        max_spans: usize,
    ) -> Result<Vec<Spans>, StoreError>;

    /// The distinct values of span tag `key`, sorted, at most `limit`.
    fn tag_values(&self, scope: &Scope, key: &str, limit: usize)
    -> Result<Vec<String>, StoreError>;

    /// Stored and lost bytes per node and container over time.
    fn usage(
        &self,
        sources: &SourceFilter,
        from_ns: i64,
        to_ns: i64,
        step_ns: i64,
    ) -> Result<Usage, StoreError>;

    /// What the store holds now.
    fn stats(&self) -> Result<StoreStats, StoreError>;
}

/// The node a resource names.
pub fn node_of(record: &LogRecord) -> &str {
    ["host.name", "node", "k8s.node.name"]
        .iter()
        .find_map(|k| record.resource(k))
        .unwrap_or("")
}

/// The container a resource names.
pub fn container_of(record: &LogRecord) -> &str {
    ["container.name", "k8s.container.name"]
        .iter()
        .find_map(|k| record.resource(k))
        .unwrap_or("")
}

/// The tenant a record belongs to (set at ingest from the token).
pub fn tenant_of(record: &LogRecord) -> &str {
    record.resource(TENANT).unwrap_or("")
}

/// The resource key that carries a record's tenant.
pub const TENANT: &str = weir_agent::record::TENANT;
