//! The agent's configuration file (`weir agent -c weir.toml`): named sources
//! and sinks wired by name, checked whole before anything starts. Every
//! error names the file, the line and column, the key, and what is expected.
//!
//! ```toml
//! data_dir = "/var/lib/weir/agent"     # buffers, checkpoints, dead letters
//!
//! [api]
//! address = "127.0.0.1:9595"          # /metrics and /health
//! stall_after = "60s"                 # unhealthy: no progress while data waits
//!
//! [sources.pods]
//! type = "file"
//! include = ["/var/log/pods/**/*.log"]
//! format = "cri"                      # cri | docker | plain
//! start_at = "beginning"              # or "end", for files found at first start
//!
//! [transforms.parsed]
//! type = "json"                       # json | logfmt | severity | fields | filter | throttle
//! inputs = ["pods"]
//!
//! [sinks.collector]
//! type = "http"                       # http | file | console | blackhole
//! inputs = ["parsed"]
//! uri = "http://127.0.0.1:8080/ingest"
//! ordering = "ordered"                # or "concurrent", with concurrency = N
//! buffer = { type = "disk", max_size = "1GiB", when_full = "block", fsync = "100ms" }
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod collector;
mod listen;

pub use self::collector::{QueryConfig, StoreConfig, default_query, default_store};

use serde::Deserialize;
use toml::Spanned;
use weir_gate::units::{parse_duration, parse_size};

use crate::buffer::WhenFull;
use crate::buffer::disk::Fsync;
use crate::sink::forward::ForwardSinkConfig;
use crate::sink::http::BodyFormat;
use crate::source::file::Format;
use crate::source::forward::ForwardConfig;
use crate::source::otlp::OtlpConfig;
use crate::source::syslog::SyslogConfig;
use crate::source::zipkin::ZipkinConfig;
use crate::tls::ClientFiles;
use crate::transform::expr::{Expr, Operand};
use crate::transform::{SeveritySource, Transform};

/// Largest configuration file read.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// The checked configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub path: PathBuf,
    pub data_dir: PathBuf,
    pub api: Option<ApiConfig>,
    pub sources: BTreeMap<String, SourceConfig>,
    pub transforms: BTreeMap<String, TransformConfig>,
    pub sinks: BTreeMap<String, SinkConfig>,
    /// `[store]`, for `weir collector`.
    pub store: Option<StoreConfig>,
    /// `[query]`, for `weir collector`.
    pub query: Option<QueryConfig>,
}

/// A transform and the components it reads from.
#[derive(Debug, Clone)]
pub struct TransformConfig {
    pub inputs: Vec<String>,
    pub transform: Transform,
    /// The table as written, to tell a changed transform on reload.
    pub text: String,
}

impl PartialEq for TransformConfig {
    fn eq(&self, other: &Self) -> bool {
        self.inputs == other.inputs && self.text == other.text
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    pub address: SocketAddr,
    pub stall_after: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SourceConfig {
    File {
        include: Vec<String>,
        exclude: Vec<String>,
        format: Format,
        start_at_end: bool,
        max_record: usize,
        poll: Duration,
    },
    /// The logs `weir run` writes into `dir`, with whose they are (from
    /// their `.meta.json` sidecars) and the gate's loss markers as records
    /// of their own.
    Monitor { dir: PathBuf, poll: Duration },
    /// Syslog messages from the network or a Unix socket.
    Syslog(SyslogConfig),
    /// The Fluent Forward protocol.
    Forward(ForwardConfig),
    /// OTLP/HTTP.
    Otlp(OtlpConfig),
    /// Zipkin v2 spans over HTTP.
    Zipkin(ZipkinConfig),
}

impl SourceConfig {
    /// Whether the source reads files, which it can read again from a
    /// checkpoint (and so give each sink a reader of its own).
    pub fn rereads(&self) -> bool {
        matches!(
            self,
            SourceConfig::File { .. } | SourceConfig::Monitor { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SinkConfig {
    pub inputs: Vec<String>,
    pub kind: SinkKind,
    pub max_records: usize,
    pub max_bytes: usize,
    pub batch_timeout: Duration,
    pub concurrency: usize,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub max_retry_age: Option<Duration>,
    pub buffer: BufferConfig,
    /// Ordered per value of this field, keys in parallel.
    pub order_key: Option<crate::transform::expr::Field>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SinkKind {
    Blackhole,
    Console {
        stderr: bool,
    },
    File {
        path: PathBuf,
        /// CRI lines (as the kubelet reads) instead of NDJSON.
        cri: bool,
        /// Rotate by renaming past this size (None: never).
        max_size: Option<u64>,
        /// Files kept, the live one included.
        max_files: usize,
        /// fsync each batch before it is acknowledged (the default).
        sync: bool,
    },
    Http {
        uri: hyper::Uri,
        format: BodyFormat,
        headers: Vec<(String, String)>,
        /// For an https uri: the CAs to trust and the name to check.
        tls: Option<ClientFiles>,
        gzip: bool,
        timeout: Duration,
    },
    Forward(ForwardSinkConfig),
    /// The collector's store (`weir collector` only).
    Store,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BufferConfig {
    pub disk: bool,
    pub max_size: u64,
    /// Disk only: a segment is closed past this size.
    pub segment_size: u64,
    pub when_full: WhenFull,
    pub fsync: Fsync,
}

// What the file says, with where it says it.

type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    data_dir: Option<S<String>>,
    api: Option<RawApi>,
    #[serde(default)]
    sources: BTreeMap<S<String>, RawSource>,
    #[serde(default)]
    transforms: BTreeMap<S<String>, RawTransform>,
    #[serde(default)]
    sinks: BTreeMap<S<String>, RawSink>,
    store: Option<collector::RawStore>,
    query: Option<collector::RawQuery>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransform {
    r#type: S<String>,
    inputs: Option<S<Vec<S<String>>>>,
    body_from: Option<String>,
    from: Option<String>,
    pattern: Option<S<String>>,
    add: Option<BTreeMap<String, String>>,
    remove: Option<Vec<String>>,
    condition: Option<S<String>>,
    key: Option<S<String>>,
    limit: Option<S<i64>>,
    window: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    enabled: Option<bool>,
    address: Option<S<String>>,
    stall_after: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    r#type: S<String>,
    dir: Option<S<String>>,
    include: Option<S<Vec<String>>>,
    exclude: Option<Vec<String>>,
    format: Option<S<String>>,
    start_at: Option<S<String>>,
    max_record: Option<S<String>>,
    poll: Option<S<String>>,
    // listeners
    mode: Option<S<String>>,
    address: Option<S<String>>,
    path: Option<S<String>>,
    max_message: Option<S<String>>,
    max_memory: Option<S<String>>,
    max_connections: Option<S<i64>>,
    read_timeout: Option<S<String>>,
    shared_key: Option<S<String>>,
    self_hostname: Option<S<String>>,
    token: Option<S<String>>,
    tokens: Option<S<Vec<RawToken>>>,
    tenant: Option<S<String>>,
    tls: Option<S<RawTls>>,
}

/// `tokens = [{ token = "…", tenant = "team-a" }]`, of an HTTP source or
/// of `[query]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    token: S<String>,
    tenant: Option<S<String>>,
}

/// A bearer token, and the tenant it is bound to if it names one: the
/// records a query token may read, or those an ingest token files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub token: String,
    pub tenant: Option<String>,
}

impl Token {
    /// The token of `tokens` that `given` is, if any: every one is
    /// compared, so the time taken says nothing of which came close.
    pub fn find<'t>(tokens: &'t [Token], given: &str) -> Option<&'t Token> {
        tokens.iter().fold(None, |found, token| {
            let same = crate::source::forward::auth::constant_time_eq(
                token.token.as_bytes(),
                given.as_bytes(),
            );
            if same { Some(token) } else { found }
        })
    }
}

/// `tls = { cert = "PEM", key = "PEM" }` for a listener, `tls = { ca =
/// "PEM", server_name = "NAME" }` (both optional) for a sink.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<String>,
    key: Option<String>,
    ca: Option<String>,
    server_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSink {
    r#type: S<String>,
    inputs: Option<S<Vec<S<String>>>>,
    // file
    path: Option<S<String>>,
    format: Option<S<String>>,
    max_size: Option<S<String>>,
    max_files: Option<S<i64>>,
    sync: Option<bool>,
    // console
    stream: Option<S<String>>,
    // http
    uri: Option<S<String>>,
    headers: Option<BTreeMap<String, String>>,
    gzip: Option<bool>,
    timeout: Option<S<String>>,
    auth: Option<RawAuth>,
    // forward
    servers: Option<S<Vec<S<String>>>>,
    balance: Option<S<String>>,
    tag: Option<S<String>>,
    require_ack: Option<bool>,
    shared_key: Option<S<String>>,
    self_hostname: Option<S<String>>,
    tls: Option<S<RawTls>>,
    // delivery
    ordering: Option<S<String>>,
    order_key: Option<S<String>>,
    concurrency: Option<S<i64>>,
    batch: Option<RawBatch>,
    retry: Option<RawRetry>,
    buffer: Option<RawBuffer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    bearer: Option<String>,
    user: Option<String>,
    password: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBatch {
    max_records: Option<S<i64>>,
    max_bytes: Option<S<String>>,
    timeout: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    initial: Option<S<String>>,
    max: Option<S<String>>,
    max_age: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuffer {
    r#type: Option<S<String>>,
    max_size: Option<S<String>>,
    segment_size: Option<S<String>>,
    when_full: Option<S<String>>,
    fsync: Option<S<String>>,
}

/// Turns spans into `file:line:column` errors.
struct Checker<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Checker<'_> {
    fn error(&self, at: usize, message: String) -> ConfigError {
        let before = &self.text[..at.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line,
            column,
            message,
        }
    }

    fn duration(&self, key: &str, value: &S<String>) -> Result<Duration, ConfigError> {
        parse_duration(value.get_ref()).map_err(|e| {
            self.error(
                value.span().start,
                format!("{key} = {:?}: {e}", value.get_ref()),
            )
        })
    }

    /// `key = [{ token, tenant }]`: each token long enough to guess at
    /// no better than chance, none twice, and no tenant empty.
    fn tokens(&self, key: &str, raw: &[RawToken]) -> Result<Vec<Token>, ConfigError> {
        let mut tokens: Vec<Token> = Vec::with_capacity(raw.len());
        for RawToken { token, tenant } in raw {
            let at = token.span().start;
            if token.get_ref().len() < 16 {
                return Err(self.error(at, format!("{key}: a token needs at least 16 characters")));
            }
            if tokens.iter().any(|t| t.token == *token.get_ref()) {
                return Err(self.error(at, format!("{key}: the same token twice")));
            }
            if let Some(tenant) = tenant.as_ref().filter(|t| t.get_ref().is_empty()) {
                return Err(self.error(
                    tenant.span().start,
                    format!("{key}: a tenant may not be empty; leave it out for none"),
                ));
            }
            tokens.push(Token {
                token: token.get_ref().clone(),
                tenant: tenant.as_ref().map(|t| t.get_ref().clone()),
            });
        }
        Ok(tokens)
    }

    fn size(&self, key: &str, value: &S<String>) -> Result<u64, ConfigError> {
        parse_size(value.get_ref()).map_err(|e| {
            self.error(
                value.span().start,
                format!("{key} = {:?}: {e}", value.get_ref()),
            )
        })
    }

    fn choice<T: Copy>(
        &self,
        key: &str,
        value: &S<String>,
        choices: &[(&str, T)],
    ) -> Result<T, ConfigError> {
        choices
            .iter()
            .find(|(name, _)| name == value.get_ref())
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let names: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
                self.error(
                    value.span().start,
                    format!(
                        "{key} = {:?}: expected one of {}",
                        value.get_ref(),
                        names.join(", ")
                    ),
                )
            })
    }

    /// Source and sink names name files and directories under `data_dir`
    /// (checkpoints, buffers, dead letters): letters, digits, `_` and `-`.
    fn file_name(&self, key: &str, name: &S<String>) -> Result<(), ConfigError> {
        let text = name.get_ref();
        let fits = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if text.is_empty() || text.len() > 64 || !text.chars().all(fits) {
            return Err(self.error(
                name.span().start,
                format!(
                    "{key}: expected a name of 1 to 64 letters, digits, '_' or '-' (it names files under data_dir)"
                ),
            ));
        }
        Ok(())
    }

    fn positive(&self, key: &str, value: &S<i64>, max: i64) -> Result<usize, ConfigError> {
        let n = *value.get_ref();
        if n < 1 || n > max {
            return Err(self.error(
                value.span().start,
                format!("{key} = {n}: expected a whole number from 1 to {max}"),
            ));
        }
        Ok(n as usize)
    }
}

impl AgentConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        use std::io::Read;
        let read_error = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_string(&mut text))
            .map_err(read_error)?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source: std::io::Error::other(format!("larger than {MAX_FILE_BYTES} bytes")),
            });
        }
        AgentConfig::parse(path, &text)
    }

    /// Checks the text of a configuration read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<AgentConfig, ConfigError> {
        let checker = Checker { path, text };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            checker.error(at, e.message().trim().to_owned())
        })?;
        let data_dir = raw.data_dir.map_or_else(
            || PathBuf::from("/var/lib/weir/agent"),
            |d| d.into_inner().into(),
        );
        let api = match raw.api {
            Some(RawApi {
                enabled: Some(false),
                ..
            }) => None,
            api => {
                let api = api.unwrap_or(RawApi {
                    enabled: None,
                    address: None,
                    stall_after: None,
                });
                let address = match &api.address {
                    Some(a) => a.get_ref().parse().map_err(|_| {
                        checker.error(
                            a.span().start,
                            format!(
                                "api.address = {:?}: expected an address and port, like \"127.0.0.1:9595\"",
                                a.get_ref()
                            ),
                        )
                    })?,
                    None => SocketAddr::from(([127, 0, 0, 1], 9595)),
                };
                let stall_after = match &api.stall_after {
                    Some(d) => checker.duration("api.stall_after", d)?,
                    None => Duration::from_secs(60),
                };
                Some(ApiConfig {
                    address,
                    stall_after,
                })
            }
        };
        let mut sources = BTreeMap::new();
        for (name, source) in raw.sources {
            let key = format!("sources.{}", name.get_ref());
            checker.file_name(&key, &name)?;
            let config = check_source(&checker, &key, source, name.span().start)?;
            sources.insert(name.into_inner(), config);
        }
        let mut names: BTreeMap<String, &'static str> =
            sources.keys().map(|n| (n.clone(), "source")).collect();
        for name in raw.transforms.keys() {
            if names.insert(name.get_ref().clone(), "transform").is_some() {
                return Err(checker.error(
                    name.span().start,
                    format!(
                        "transforms.{0}: a source is named {0:?} too",
                        name.get_ref()
                    ),
                ));
            }
        }
        let mut transforms = BTreeMap::new();
        for (name, transform) in raw.transforms {
            let key = format!("transforms.{}", name.get_ref());
            let at = name.span().start;
            let config = check_transform(&checker, &key, transform, at, &names)?;
            transforms.insert(name.into_inner(), config);
        }
        check_acyclic(&checker, &transforms)?;
        let mut sinks = BTreeMap::new();
        for (name, sink) in raw.sinks {
            let key = format!("sinks.{}", name.get_ref());
            checker.file_name(&key, &name)?;
            let config = check_sink(&checker, &key, sink, name.span().start, &names)?;
            sinks.insert(name.into_inner(), config);
        }
        if sinks.is_empty() {
            return Err(checker.error(0, "no [sinks.NAME]: records would go nowhere".into()));
        }
        let store = raw
            .store
            .map(|raw| collector::check_store(&checker, raw, &data_dir))
            .transpose()?;
        let query = raw
            .query
            .map(|raw| collector::check_query(&checker, raw))
            .transpose()?;
        Ok(AgentConfig {
            path: path.to_path_buf(),
            data_dir,
            api,
            sources,
            transforms,
            sinks,
            store,
            query,
        })
    }
}

fn check_source(
    checker: &Checker<'_>,
    key: &str,
    raw: RawSource,
    at: usize,
) -> Result<SourceConfig, ConfigError> {
    let monitor = match raw.r#type.get_ref().as_str() {
        "syslog" => return listen::check_syslog(checker, key, &raw),
        "forward" => return listen::check_forward(checker, key, &raw),
        "otlp" => return listen::check_otlp(checker, key, &raw),
        "zipkin" => return listen::check_zipkin(checker, key, &raw),
        _ => checker.choice(
            &format!("{key}.type"),
            &raw.r#type,
            &[
                ("file", false),
                ("monitor", true),
                ("syslog", false),
                ("forward", false),
                ("otlp", false),
                ("zipkin", false),
            ],
        )?,
    };
    listen::refuse_listener_keys(checker, key, &raw)?;
    let poll = match &raw.poll {
        Some(d) => checker.duration(&format!("{key}.poll"), d)?,
        None => Duration::from_millis(250),
    };
    if monitor {
        let dir = raw.dir.ok_or_else(|| {
            checker.error(
                at,
                format!("{key}: a monitor source needs dir = \"DIRECTORY\" (where weir run writes its logs)"),
            )
        })?;
        return Ok(SourceConfig::Monitor {
            dir: PathBuf::from(dir.into_inner()),
            poll,
        });
    }
    if let Some(dir) = &raw.dir {
        return Err(checker.error(
            dir.span().start,
            format!("{key}.dir: only for type = \"monitor\"; a file source takes include = [...]"),
        ));
    }
    let include = raw.include.ok_or_else(|| {
        checker.error(
            at,
            format!("{key}: a file source needs include = [\"GLOB\", ...]"),
        )
    })?;
    if include.get_ref().is_empty() {
        return Err(checker.error(
            include.span().start,
            format!("{key}.include: expected at least one glob"),
        ));
    }
    for pattern in include.get_ref() {
        glob::Pattern::new(pattern).map_err(|e| {
            checker.error(
                include.span().start,
                format!("{key}.include: {pattern:?} is not a glob: {e}"),
            )
        })?;
    }
    let format = match &raw.format {
        Some(f) => checker.choice(
            &format!("{key}.format"),
            f,
            &[
                ("cri", Format::Cri),
                ("docker", Format::Docker),
                ("plain", Format::Plain),
            ],
        )?,
        None => Format::Cri,
    };
    let start_at_end = match &raw.start_at {
        Some(s) => checker.choice(
            &format!("{key}.start_at"),
            s,
            &[("beginning", false), ("end", true)],
        )?,
        None => false,
    };
    let max_record = match &raw.max_record {
        Some(s) => checker.size(&format!("{key}.max_record"), s)?,
        None => 1 << 20,
    };
    Ok(SourceConfig::File {
        include: include.into_inner(),
        exclude: raw.exclude.unwrap_or_default(),
        format,
        start_at_end,
        max_record: max_record.clamp(1, 64 << 20) as usize,
        poll,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Blackhole,
    Console,
    File,
    Http,
    Otlp,
    Forward,
    Store,
}

/// Refuses a key that only sinks of other types read (a `sync` on an
/// http sink, a `uri` on a file sink), instead of ignoring it: the user
/// meant something by it.
fn refuse_keys_of_other_sinks(
    checker: &Checker<'_>,
    key: &str,
    raw: &RawSink,
    kind: Kind,
    at: usize,
) -> Result<(), ConfigError> {
    use Kind::{Console, File, Forward, Http, Otlp};
    fn place<T>(value: &Option<S<T>>) -> Option<usize> {
        value.as_ref().map(|v| v.span().start)
    }
    let given = |present: bool| present.then_some(at);
    let keys: [(&str, Option<usize>, &[Kind]); 18] = [
        ("path", place(&raw.path), &[File]),
        ("format", place(&raw.format), &[File]),
        ("max_size", place(&raw.max_size), &[File]),
        ("max_files", place(&raw.max_files), &[File]),
        ("sync", given(raw.sync.is_some()), &[File]),
        ("stream", place(&raw.stream), &[Console]),
        ("uri", place(&raw.uri), &[Http, Otlp]),
        ("headers", given(raw.headers.is_some()), &[Http, Otlp]),
        ("auth", given(raw.auth.is_some()), &[Http, Otlp]),
        ("gzip", given(raw.gzip.is_some()), &[Http, Otlp, Forward]),
        ("timeout", place(&raw.timeout), &[Http, Otlp, Forward]),
        ("tls", place(&raw.tls), &[Http, Otlp, Forward]),
        ("servers", place(&raw.servers), &[Forward]),
        ("balance", place(&raw.balance), &[Forward]),
        ("tag", place(&raw.tag), &[Forward]),
        ("require_ack", given(raw.require_ack.is_some()), &[Forward]),
        ("shared_key", place(&raw.shared_key), &[Forward]),
        ("self_hostname", place(&raw.self_hostname), &[Forward]),
    ];
    for (name, present, kinds) in keys {
        if let Some(place) = present
            && !kinds.contains(&kind)
        {
            return Err(checker.error(
                place,
                format!("{key}.{name}: not a key of a {} sink", raw.r#type.get_ref()),
            ));
        }
    }
    Ok(())
}

fn check_sink(
    checker: &Checker<'_>,
    key: &str,
    raw: RawSink,
    at: usize,
    names: &BTreeMap<String, &'static str>,
) -> Result<SinkConfig, ConfigError> {
    let kind = checker.choice(
        &format!("{key}.type"),
        &raw.r#type,
        &[
            ("blackhole", Kind::Blackhole),
            ("console", Kind::Console),
            ("file", Kind::File),
            ("http", Kind::Http),
            ("forward", Kind::Forward),
            ("otlp", Kind::Otlp),
            ("store", Kind::Store),
        ],
    )?;
    let inputs = check_inputs(checker, key, raw.inputs.clone(), at, names)?;
    refuse_keys_of_other_sinks(checker, key, &raw, kind, at)?;
    let needs = |value: &Option<S<String>>, what: &str| {
        value.clone().ok_or_else(|| {
            checker.error(
                at,
                format!("{key}: a {} sink needs {what}", raw.r#type.get_ref()),
            )
        })
    };
    let kind = match kind {
        Kind::Blackhole => SinkKind::Blackhole,
        Kind::Console => SinkKind::Console {
            stderr: match &raw.stream {
                Some(s) => checker.choice(
                    &format!("{key}.stream"),
                    s,
                    &[("stdout", false), ("stderr", true)],
                )?,
                None => false,
            },
        },
        Kind::File => SinkKind::File {
            path: needs(&raw.path, "path = \"FILE\"")?.into_inner().into(),
            cri: match &raw.format {
                Some(f) => checker.choice(
                    &format!("{key}.format"),
                    f,
                    &[("ndjson", false), ("cri", true)],
                )?,
                None => false,
            },
            max_size: raw
                .max_size
                .as_ref()
                .map(|s| checker.size(&format!("{key}.max_size"), s))
                .transpose()?,
            max_files: match &raw.max_files {
                Some(n) => checker.positive(&format!("{key}.max_files"), n, 1000)?,
                None => 5,
            },
            sync: raw.sync.unwrap_or(true),
        },
        Kind::Http | Kind::Otlp => {
            let uri_text = needs(&raw.uri, "uri = \"http://HOST:PORT/PATH\"")?;
            let uri: hyper::Uri = uri_text.get_ref().parse().map_err(|e| {
                checker.error(
                    uri_text.span().start,
                    format!("{key}.uri = {:?}: {e}", uri_text.get_ref()),
                )
            })?;
            let https = match uri.scheme_str() {
                Some("http") if uri.host().is_some() => false,
                Some("https") if uri.host().is_some() => true,
                _ => {
                    return Err(checker.error(
                        uri_text.span().start,
                        format!(
                            "{key}.uri = {:?}: expected http[s]://HOST[:PORT]/PATH",
                            uri_text.get_ref()
                        ),
                    ));
                }
            };
            // https trusts the system's CAs unless `tls` names others.
            let tls = match (listen::client_tls(checker, key, &raw)?, https) {
                (Some(_), false) => {
                    let at = raw.tls.as_ref().map_or(at, |t| t.span().start);
                    return Err(checker.error(at, format!("{key}.tls: only for an https:// uri")));
                }
                (files, true) => Some(files.unwrap_or(ClientFiles {
                    ca: None,
                    server_name: None,
                })),
                (None, false) => None,
            };
            let mut headers: Vec<(String, String)> = raw
                .headers
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect();
            if let Some(auth) = &raw.auth {
                headers.push((
                    "authorization".into(),
                    match (&auth.bearer, &auth.user, &auth.password) {
                        (Some(token), None, None) => format!("Bearer {token}"),
                        (None, Some(user), password) => {
                            let pair = format!("{user}:{}", password.as_deref().unwrap_or(""));
                            let mut encoded = Vec::new();
                            crate::sink::ndjson::base64_into(pair.as_bytes(), &mut encoded);
                            format!("Basic {}", String::from_utf8_lossy(&encoded))
                        }
                        _ => {
                            return Err(checker.error(
                                at,
                                format!("{key}.auth: expected {{ bearer = \"TOKEN\" }} or {{ user = \"U\", password = \"P\" }}"),
                            ));
                        }
                    },
                ));
            }
            for (name, value) in &headers {
                if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                    || hyper::header::HeaderValue::from_str(value).is_err()
                {
                    return Err(checker.error(
                        at,
                        format!("{key}.headers: {name:?} is not a valid HTTP header"),
                    ));
                }
            }
            let format = match kind {
                Kind::Otlp => BodyFormat::Otlp,
                _ => BodyFormat::Ndjson,
            };
            SinkKind::Http {
                uri,
                format,
                headers,
                tls,
                gzip: raw.gzip.unwrap_or(false),
                timeout: match &raw.timeout {
                    Some(d) => checker.duration(&format!("{key}.timeout"), d)?,
                    None => Duration::from_secs(30),
                },
            }
        }
        Kind::Forward => SinkKind::Forward(listen::check_forward_sink(checker, key, &raw, at)?),
        Kind::Store => SinkKind::Store,
    };
    let order_key = match &raw.order_key {
        Some(field) => match Expr::parse(field.get_ref()) {
            Ok(Expr::Truthy(Operand::Field(f))) => Some(f),
            _ => {
                return Err(checker.error(
                    field.span().start,
                    format!(
                        "{key}.order_key = {:?}: expected a field (stream, severity, attributes.KEY, resource.KEY)",
                        field.get_ref()
                    ),
                ));
            }
        },
        None => None,
    };
    let concurrency = match (&raw.ordering, &raw.concurrency) {
        (Some(o), c) => {
            let concurrent = checker.choice(
                &format!("{key}.ordering"),
                o,
                &[("ordered", false), ("concurrent", true)],
            )?;
            if concurrent && let Some(field) = &raw.order_key {
                return Err(checker.error(
                    field.span().start,
                    format!("{key}.order_key: only for ordering = \"ordered\""),
                ));
            }
            match (concurrent, c) {
                // Ordered per key: the keys go out on this many workers.
                (false, Some(c)) if order_key.is_some() => {
                    checker.positive(&format!("{key}.concurrency"), c, 64)?
                }
                (false, Some(c)) => {
                    return Err(checker.error(
                        c.span().start,
                        format!(
                            "{key}.concurrency: only for ordering = \"concurrent\", or \"ordered\" with an order_key"
                        ),
                    ));
                }
                (false, None) if order_key.is_some() => 4,
                (false, None) => 1,
                (true, Some(c)) => checker.positive(&format!("{key}.concurrency"), c, 64)?,
                (true, None) => 4,
            }
        }
        (None, Some(c)) => {
            return Err(checker.error(
                c.span().start,
                format!("{key}.concurrency: set ordering = \"concurrent\" too"),
            ));
        }
        (None, None) if order_key.is_some() => 4,
        (None, None) => 1,
    };
    let batch = raw.batch.unwrap_or(RawBatch {
        max_records: None,
        max_bytes: None,
        timeout: None,
    });
    let retry = raw.retry.unwrap_or(RawRetry {
        initial: None,
        max: None,
        max_age: None,
    });
    let buffer = raw.buffer.unwrap_or(RawBuffer {
        r#type: None,
        max_size: None,
        segment_size: None,
        when_full: None,
        fsync: None,
    });
    let disk = match &buffer.r#type {
        Some(t) => checker.choice(
            &format!("{key}.buffer.type"),
            t,
            &[("memory", false), ("disk", true)],
        )?,
        None => false,
    };
    let fsync = match (&buffer.fsync, disk) {
        (Some(f), false) => {
            return Err(checker.error(
                f.span().start,
                format!("{key}.buffer.fsync: only for type = \"disk\""),
            ));
        }
        (Some(f), true) => match f.get_ref().as_str() {
            "always" => Fsync::Always,
            "never" => Fsync::Never,
            _ => Fsync::Every(checker.duration(&format!("{key}.buffer.fsync"), f).map_err(|_| {
                checker.error(
                    f.span().start,
                    format!(
                        "{key}.buffer.fsync = {:?}: expected \"always\", \"never\" or an interval like \"100ms\"",
                        f.get_ref()
                    ),
                )
            })?),
        },
        (None, _) => Fsync::Every(Duration::from_millis(100)),
    };
    let is_store = matches!(kind, SinkKind::Store);
    Ok(SinkConfig {
        inputs,
        kind,
        // A store commits (and fsyncs) once a batch: it takes bigger ones.
        max_records: match &batch.max_records {
            Some(n) => checker.positive(&format!("{key}.batch.max_records"), n, 1_000_000)?,
            None if is_store => 30_000,
            None => 1000,
        },
        max_bytes: match &batch.max_bytes {
            Some(s) => checker.size(&format!("{key}.batch.max_bytes"), s)?.max(1) as usize,
            None if is_store => 32 << 20,
            None => 1 << 20,
        },
        batch_timeout: match &batch.timeout {
            Some(d) => checker.duration(&format!("{key}.batch.timeout"), d)?,
            None => Duration::from_secs(1),
        },
        concurrency,
        order_key,
        retry_initial: match &retry.initial {
            Some(d) => checker.duration(&format!("{key}.retry.initial"), d)?,
            None => Duration::from_millis(100),
        },
        retry_max: match &retry.max {
            Some(d) => checker.duration(&format!("{key}.retry.max"), d)?,
            None => Duration::from_secs(30),
        },
        max_retry_age: retry
            .max_age
            .as_ref()
            .map(|d| checker.duration(&format!("{key}.retry.max_age"), d))
            .transpose()?,
        buffer: BufferConfig {
            disk,
            max_size: match &buffer.max_size {
                Some(s) => checker.size(&format!("{key}.buffer.max_size"), s)?,
                None if disk => 1 << 30,
                None => 16 << 20,
            },
            when_full: match &buffer.when_full {
                Some(w) => checker.choice(
                    &format!("{key}.buffer.when_full"),
                    w,
                    &[
                        ("block", WhenFull::Block),
                        ("drop_newest", WhenFull::DropNewest),
                        ("drop_oldest", WhenFull::DropOldest),
                    ],
                )?,
                None => WhenFull::Block,
            },
            segment_size: match (&buffer.segment_size, disk) {
                (Some(size), true) => checker
                    .size(&format!("{key}.buffer.segment_size"), size)?
                    .max(4096),
                (Some(size), false) => {
                    return Err(checker.error(
                        size.span().start,
                        format!("{key}.buffer.segment_size: only for type = \"disk\""),
                    ));
                }
                (None, _) => 32 << 20,
            },
            fsync,
        },
    })
}

/// Checks that `inputs` is present and names sources or transforms.
fn check_inputs(
    checker: &Checker<'_>,
    key: &str,
    inputs: Option<S<Vec<S<String>>>>,
    at: usize,
    names: &BTreeMap<String, &'static str>,
) -> Result<Vec<String>, ConfigError> {
    let inputs = inputs.ok_or_else(|| {
        checker.error(
            at,
            format!("{key}: needs inputs = [\"SOURCE or TRANSFORM\", ...]"),
        )
    })?;
    if inputs.get_ref().is_empty() {
        return Err(checker.error(
            inputs.span().start,
            format!("{key}.inputs: expected at least one source or transform name"),
        ));
    }
    for input in inputs.get_ref() {
        if !names.contains_key(input.get_ref()) {
            let known: Vec<&str> = names.keys().map(String::as_str).collect();
            return Err(checker.error(
                input.span().start,
                format!(
                    "{key}.inputs: no source or transform named {:?} (there are: {})",
                    input.get_ref(),
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
    }
    Ok(inputs.into_inner().into_iter().map(S::into_inner).collect())
}

fn check_transform(
    checker: &Checker<'_>,
    key: &str,
    raw: RawTransform,
    at: usize,
    names: &BTreeMap<String, &'static str>,
) -> Result<TransformConfig, ConfigError> {
    #[derive(Clone, Copy)]
    enum Kind {
        Json,
        Logfmt,
        Severity,
        Fields,
        Filter,
        Throttle,
    }
    let kind = checker.choice(
        &format!("{key}.type"),
        &raw.r#type,
        &[
            ("json", Kind::Json),
            ("logfmt", Kind::Logfmt),
            ("severity", Kind::Severity),
            ("fields", Kind::Fields),
            ("filter", Kind::Filter),
            ("throttle", Kind::Throttle),
        ],
    )?;
    let inputs = check_inputs(checker, key, raw.inputs.clone(), at, names)?;
    let text = format!(
        "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
        raw.r#type.get_ref(),
        raw.body_from,
        raw.from,
        raw.pattern.as_ref().map(|p| p.get_ref()),
        raw.add,
        raw.remove,
        raw.condition.as_ref().map(|c| c.get_ref()),
        raw.key.as_ref().map(|k| k.get_ref()),
        raw.limit.as_ref().map(|l| *l.get_ref()),
        raw.window.as_ref().map(|w| w.get_ref()),
    );
    let transform = match kind {
        Kind::Json => Transform::Json {
            body_from: raw.body_from,
        },
        Kind::Logfmt => Transform::Logfmt {
            body_from: raw.body_from,
        },
        Kind::Severity => match (raw.from, raw.pattern) {
            (Some(from), None) => Transform::Severity(SeveritySource::Attribute(from)),
            (None, Some(pattern)) => {
                let regex = regex::Regex::new(pattern.get_ref()).map_err(|e| {
                    checker.error(
                        pattern.span().start,
                        format!("{key}.pattern: not a regular expression: {e}"),
                    )
                })?;
                Transform::Severity(SeveritySource::Pattern(regex))
            }
            _ => {
                return Err(checker.error(
                    at,
                    format!(
                        "{key}: a severity transform needs from = \"ATTRIBUTE\" or pattern = \"REGEX\" (one of them)"
                    ),
                ));
            }
        },
        Kind::Fields => Transform::Fields {
            add: raw.add.unwrap_or_default().into_iter().collect(),
            remove: raw.remove.unwrap_or_default(),
        },
        Kind::Filter => {
            let condition = raw.condition.ok_or_else(|| {
                checker.error(
                    at,
                    format!("{key}: a filter needs condition = \"EXPRESSION\""),
                )
            })?;
            let expr = Expr::parse(condition.get_ref()).map_err(|e| {
                // The column inside the expression, counted from its opening quote.
                checker.error(
                    condition.span().start + e.column,
                    format!("{key}.condition: {}", e.what),
                )
            })?;
            Transform::Filter(expr)
        }
        Kind::Throttle => {
            let field = raw.key.ok_or_else(|| {
                checker.error(at, format!("{key}: a throttle needs key = \"FIELD\""))
            })?;
            let key_field = match Expr::parse(field.get_ref()) {
                Ok(Expr::Truthy(Operand::Field(f))) => f,
                _ => {
                    return Err(checker.error(
                        field.span().start,
                        format!(
                            "{key}.key = {:?}: expected a field (body, stream, severity, attributes.KEY, resource.KEY)",
                            field.get_ref()
                        ),
                    ));
                }
            };
            let limit = raw.limit.ok_or_else(|| {
                checker.error(at, format!("{key}: a throttle needs limit = RECORDS"))
            })?;
            Transform::Throttle {
                key: key_field,
                limit: checker.positive(&format!("{key}.limit"), &limit, i64::MAX)? as u64,
                window: match &raw.window {
                    Some(w) => checker.duration(&format!("{key}.window"), w)?,
                    None => Duration::from_secs(1),
                },
            }
        }
    };
    Ok(TransformConfig {
        inputs,
        transform,
        text,
    })
}

/// Refuses transforms that read, through others, from themselves.
fn check_acyclic(
    checker: &Checker<'_>,
    transforms: &BTreeMap<String, TransformConfig>,
) -> Result<(), ConfigError> {
    fn visit<'a>(
        name: &'a str,
        transforms: &'a BTreeMap<String, TransformConfig>,
        path: &mut Vec<&'a str>,
    ) -> Option<String> {
        if let Some(start) = path.iter().position(|p| *p == name) {
            let mut cycle: Vec<&str> = path[start..].to_vec();
            cycle.push(name);
            return Some(cycle.join(" -> "));
        }
        let transform = transforms.get(name)?;
        path.push(name);
        for input in &transform.inputs {
            if let Some(cycle) = visit(input, transforms, path) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    for name in transforms.keys() {
        if let Some(cycle) = visit(name, transforms, &mut Vec::new()) {
            return Err(checker.error(0, format!("transforms read from themselves: {cycle}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AgentConfig, String> {
        AgentConfig::parse(Path::new("weir.toml"), text).map_err(|e| e.to_string())
    }

    const GOOD: &str = r#"
data_dir = "/tmp/weir"

[sources.pods]
type = "file"
include = ["/var/log/pods/**/*.log"]

[sinks.out]
type = "http"
inputs = ["pods"]
uri = "http://127.0.0.1:8080/ingest"
ordering = "concurrent"
concurrency = 2
auth = { bearer = "s3cret" }
buffer = { type = "disk", max_size = "10MiB", fsync = "always" }
"#;

    #[test]
    fn the_store_section_reads_as_readme_shows_it() {
        let store = "[store]\npath = \"./weir-data/weir.db\"\nmax_age = \"7d\"\n\
                     max_size = \"4GiB\"\nmin_free = \"1GiB\"\n";
        let config = parse(&format!("{GOOD}{store}")).unwrap();
        let store = config.store.unwrap();
        assert_eq!(store.max_age, Duration::from_secs(7 * 86400));
        assert_eq!(store.max_size, 4 << 30);
    }

    #[test]
    fn a_good_file_is_read_with_its_defaults() {
        let config = parse(GOOD).unwrap();
        let sink = &config.sinks["out"];
        assert_eq!(sink.concurrency, 2);
        assert_eq!(sink.max_records, 1000);
        assert_eq!(sink.buffer.fsync, Fsync::Always);
        assert_eq!(sink.buffer.max_size, 10 << 20);
        let SinkKind::Http { headers, .. } = &sink.kind else {
            panic!()
        };
        assert_eq!(headers[0], ("authorization".into(), "Bearer s3cret".into()));
        assert_eq!(
            config.api.unwrap().address,
            "127.0.0.1:9595".parse().unwrap(),
            "only loopback by default"
        );
    }

    #[test]
    fn a_file_sink_syncs_each_batch_unless_told_not_to() {
        let file_sink = |extra: &str| {
            let text = format!(
                "[sources.in]\ntype = \"syslog\"\n[sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"/tmp/out.log\"\n{extra}"
            );
            match parse(&text).unwrap().sinks["out"].kind {
                SinkKind::File { sync, .. } => sync,
                ref other => panic!("{other:?}"),
            }
        };
        assert!(file_sink(""));
        assert!(!file_sink("sync = false"));
    }

    #[test]
    fn errors_name_the_line_the_key_and_what_is_expected() {
        let cases = [
            (
                GOOD.replace("inputs = [\"pods\"]", "inputs = [\"podz\"]"),
                "weir.toml:10:11: sinks.out.inputs: no source or transform named \"podz\" (there are: pods)",
            ),
            (
                GOOD.replace("ordering = \"concurrent\"", "ordering = \"sometimes\""),
                "weir.toml:12:12: sinks.out.ordering = \"sometimes\": expected one of \"ordered\", \"concurrent\"",
            ),
            (
                GOOD.replace("max_size = \"10MiB\"", "max_size = \"ten\""),
                "weir.toml:15:38: sinks.out.buffer.max_size = \"ten\": \"ten\" is not a size",
            ),
            (
                GOOD.replace("uri =", "url ="),
                "weir.toml:11:1: unknown field `url`",
            ),
            (
                GOOD.replace("http://127.0.0.1:8080/ingest", "ftp://x/y"),
                "weir.toml:11:7: sinks.out.uri = \"ftp://x/y\": expected http[s]://",
            ),
            (
                GOOD.replace("[sinks.out]", "[sinks.\"../out\"]"),
                "weir.toml:8:8: sinks.../out: expected a name of 1 to 64 letters, digits, '_' or '-'",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(&text).unwrap_err();
            assert!(err.starts_with(expected), "{err}\n expected: {expected}");
        }
    }

    #[test]
    fn listeners_and_their_keys_are_checked() {
        let with = |source: &str, sink_extra: &str| {
            format!(
                "[sources.in]\n{source}\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\n{sink_extra}\n"
            )
        };
        let good = parse(&with(
            "type = \"forward\"\nshared_key = \"k\"\ntls = { cert = \"c.pem\", key = \"k.pem\" }",
            "order_key = \"resource.fluent.tag\"",
        ))
        .unwrap();
        let SourceConfig::Forward(forward) = &good.sources["in"] else {
            panic!()
        };
        assert_eq!(
            forward.address,
            "127.0.0.1:24224".parse().unwrap(),
            "loopback by default"
        );
        assert_eq!(good.sinks["out"].concurrency, 4, "keys in parallel");
        let SourceConfig::Otlp(otlp) = &parse(&with("type = \"otlp\"", "")).unwrap().sources["in"]
        else {
            panic!()
        };
        assert_eq!(otlp.address, "127.0.0.1:4318".parse().unwrap());
        let SourceConfig::Zipkin(zipkin) = &parse(&with(
            "type = \"zipkin\"\ntoken = \"any\"\ntenant = \"z\"\ntokens = [{ token = \"0123456789abcdef\", tenant = \"a\" }]",
            "",
        ))
        .unwrap()
        .sources["in"]
        else {
            panic!()
        };
        assert_eq!(zipkin.tenant.as_deref(), Some("z"));
        assert_eq!(
            zipkin
                .tokens
                .iter()
                .map(|t| (t.token.as_str(), t.tenant.as_deref()))
                .collect::<Vec<_>>(),
            [("any", None), ("0123456789abcdef", Some("a"))]
        );
        let cases = [
            (
                with("type = \"otlp\"\ntokens = [{ token = \"short\" }]", ""),
                "weir.toml:3:21: sources.in.tokens: a token needs at least 16 characters",
            ),
            (
                with(
                    "type = \"otlp\"\ntokens = [{ token = \"0123456789abcdef\" }, { token = \"0123456789abcdef\", tenant = \"a\" }]",
                    "",
                ),
                "weir.toml:3:53: sources.in.tokens: the same token twice",
            ),
            (
                with(
                    "type = \"otlp\"\ntokens = [{ token = \"0123456789abcdef\", tenant = \"\" }]",
                    "",
                ),
                "weir.toml:3:50: sources.in.tokens: a tenant may not be empty; leave it out for none",
            ),
            (
                with("type = \"forward\"\ntenant = \"\"", ""),
                "weir.toml:3:10: sources.in.tenant: empty; leave it out for none",
            ),
            (
                with("type = \"syslog\"\ntenant = \"a\"", ""),
                "weir.toml:3:10: sources.in.tenant: not a key of a syslog source",
            ),
            (
                with("type = \"forward\"\ntokens = [{ token = \"0123456789abcdef\" }]", ""),
                "weir.toml:3:10: sources.in.tokens: not a key of a forward source",
            ),
            (
                with("type = \"syslog\"\nmode = \"unix\"", ""),
                "weir.toml:2:8: sources.in: mode = \"unix\" needs path = \"SOCKET\"",
            ),
            (
                with(
                    "type = \"syslog\"\nmode = \"udp\"\ntls = { cert = \"c.pem\", key = \"k.pem\" }",
                    "",
                ),
                "weir.toml:4:7: sources.in.tls: only for mode = \"tcp\" (syslog over TLS, RFC 5425)",
            ),
            (
                with("type = \"syslog\"\nshared_key = \"k\"", ""),
                "weir.toml:3:14: sources.in.shared_key: not a key of a syslog source",
            ),
            (
                with("type = \"syslog\"\nmax_memory = \"1GiB\"", ""),
                "weir.toml:3:14: sources.in.max_memory: not a key of a syslog source",
            ),
            (
                with("type = \"zipkin\"\nmax_memory = \"1MiB\"", ""),
                "weir.toml:3:14: sources.in.max_memory = \"1MiB\": less than 134217728 bytes, what a body of max_message (8388608 bytes) may take decoded (16 times)",
            ),
            (
                with(
                    "type = \"file\"\ninclude = [\"/x\"]\naddress = \"127.0.0.1:1\"",
                    "",
                ),
                "weir.toml:4:11: sources.in.address: not a key of a file source",
            ),
            (
                with("type = \"otlp\"\ntls = { ca = \"c.pem\" }", ""),
                "weir.toml:3:7: sources.in.tls: expected { cert = \"PEM FILE\", key = \"PEM FILE\" }",
            ),
            (
                with("type = \"zipkin\"\naddress = \"everywhere\"", ""),
                "weir.toml:3:11: sources.in.address = \"everywhere\": expected an address and port",
            ),
            (
                "[sources.in]\ntype = \"otlp\"\n[sinks.out]\ntype = \"otlp\"\ninputs = [\"in\"]\nuri = \"http://127.0.0.1:1\"\ntls = { ca = \"ca.pem\" }\n".to_owned(),
                "weir.toml:7:7: sinks.out.tls: only for an https:// uri",
            ),
            (
                with("type = \"otlp\"", "sync = false"),
                "weir.toml:3:8: sinks.out.sync: not a key of a blackhole sink",
            ),
            (
                "[sources.in]\ntype = \"otlp\"\n[sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"x\"\nuri = \"http://127.0.0.1:1\"\n".to_owned(),
                "weir.toml:7:7: sinks.out.uri: not a key of a file sink",
            ),
            (
                with("type = \"otlp\"", "order_key = \"a ==\""),
                "weir.toml:6:13: sinks.out.order_key = \"a ==\": expected a field",
            ),
            (
                with(
                    "type = \"otlp\"",
                    "ordering = \"concurrent\"\norder_key = \"stream\"",
                ),
                "weir.toml:7:13: sinks.out.order_key: only for ordering = \"ordered\"",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(&text).unwrap_err();
            assert!(err.starts_with(expected), "{err}\n expected: {expected}");
        }
    }

    #[test]
    fn transforms_are_checked_and_may_not_read_from_themselves() {
        let base = r#"
[sources.pods]
type = "file"
include = ["/x/*.log"]

[transforms.parsed]
type = "json"
inputs = ["pods"]

[transforms.errors]
type = "filter"
inputs = ["parsed"]
condition = "severity <= 3 &&"

[sinks.out]
type = "console"
inputs = ["errors"]
"#;
        let err = parse(base).unwrap_err();
        assert!(
            err.starts_with(
                "weir.toml:13:30: transforms.errors.condition: expected a field or a value"
            ),
            "{err}"
        );
        let fixed = base.replace("severity <= 3 &&", "severity <= 3");
        let config = parse(&fixed).unwrap();
        assert_eq!(config.transforms["errors"].inputs, ["parsed"]);
        let cyclic = fixed.replace(
            "inputs = [\"pods\"]\n\n[transforms.errors]",
            "inputs = [\"errors\"]\n\n[transforms.errors]",
        );
        let err = parse(&cyclic).unwrap_err();
        assert!(
            err.contains("transforms read from themselves: errors -> parsed -> errors"),
            "{err}"
        );
    }
}
