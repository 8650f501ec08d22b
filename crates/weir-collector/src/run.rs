//! Starting a collector: the store opened, the API made, and the agent's
//! pipeline started with both, the API served beside the Zipkin intake
//! when a zipkin source listens on its address, on a listener of its own
//! otherwise.

use std::sync::Arc;

use weir_agent::config::{AgentConfig, QueryConfig, StoreConfig, default_query, default_store};
use weir_agent::pipeline::{self, Extensions, Running};
use weir_agent::record::LogRecord;
use weir_agent::sink::store::RecordStore;

use crate::api::Api;
use crate::store::Store;
use crate::store::sqlite::{Retention, SqliteStore};

/// The embedded configuration `weir collector` runs without `-c`.
pub const DEFAULT_CONFIG: &str = r#"
data_dir = "./weir-data"

[api]
address = "127.0.0.1:9596"

[sources.otlp]
type = "otlp"
address = "127.0.0.1:4318"

[sources.forward]
type = "forward"
address = "127.0.0.1:24224"

[sources.zipkin]
type = "zipkin"
address = "127.0.0.1:9411"

[sinks.store]
type = "store"
inputs = ["otlp", "forward", "zipkin"]
buffer = { type = "disk", max_size = "1GiB" }
"#;

/// A running collector.
pub struct Collector {
    pub running: Running,
    pub store_config: StoreConfig,
    pub query: QueryConfig,
}

/// The store as the pipeline's `store` sinks see it.
struct Writer(Arc<SqliteStore>);

impl RecordStore for Writer {
    fn append(&self, records: &[LogRecord]) -> Result<(), String> {
        self.0.append(records).map_err(|e| e.to_string())
    }
}

/// Starts what `config` describes, with the store and the API.
pub fn start(config: &AgentConfig) -> Result<Collector, String> {
    let store_config = config
        .store
        .clone()
        .unwrap_or_else(|| default_store(&config.data_dir));
    let query = config.query.clone().unwrap_or_else(default_query);
    let retention = Retention::new(
        store_config.max_age,
        store_config.max_size,
        store_config.min_free,
    );
    let store =
        Arc::new(SqliteStore::open(&store_config.path, retention).map_err(|e| e.to_string())?);
    store
        .keep_retaining()
        .map_err(|e| format!("starting the store's retention: {e}"))?;
    let api = Arc::new(Api {
        store: Arc::clone(&store) as Arc<dyn Store>,
        tokens: query.tokens.clone(),
        autocomplete_keys: query.autocomplete_keys.clone(),
        secure: query_zipkin_source(config, &query).is_some_and(|z| z.tls.is_some()),
    });
    let handler = api.handler();
    if query_zipkin_source(config, &query).is_none() {
        let listener = std::net::TcpListener::bind(query.address)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| format!("query.address {}: {e}", query.address))?;
        let serve = Arc::clone(&handler);
        weir_agent::http_server::serve(listener, "weir-query", 256, move |request| serve(request))
            .map_err(|e| format!("the query API: {e}"))?;
    }
    let extensions = Extensions {
        store: Some(Arc::new(Writer(Arc::clone(&store)))),
        api: Some((query.address, handler)),
    };
    let running = pipeline::start_with(config, extensions).map_err(|e| e.to_string())?;
    Ok(Collector {
        running,
        store_config,
        query,
    })
}

/// The zipkin source that listens on the query API's address, if one does
/// (it then serves the API beside its intake, over TLS if it has it).
fn query_zipkin_source<'c>(
    config: &'c AgentConfig,
    query: &QueryConfig,
) -> Option<&'c weir_agent::source::zipkin::ZipkinConfig> {
    config.sources.values().find_map(|source| match source {
        weir_agent::config::SourceConfig::Zipkin(z) if z.address == query.address => Some(z),
        _ => None,
    })
}

/// Why `new` cannot be applied to a collector started with `old` without
/// a restart, if it cannot: the store, the query tokens, where the API
/// listens and whether it is served over TLS are fixed when the collector
/// starts.
pub fn needs_restart(old: &AgentConfig, new: &AgentConfig) -> Option<String> {
    let query_of = |c: &AgentConfig| c.query.clone().unwrap_or_else(default_query);
    if old.store != new.store {
        return Some("[store] changed: restart the collector to apply it".into());
    }
    if old.query != new.query {
        return Some("[query] changed: restart the collector to apply it".into());
    }
    let (old_query, new_query) = (query_of(old), query_of(new));
    let sharing = |config, query| query_zipkin_source(config, query).map(|z| z.tls.is_some());
    if sharing(old, &old_query) != sharing(new, &new_query) {
        return Some(format!(
            "a zipkin source would start or stop sharing {} with the API, or serving it over TLS: restart the collector to apply it",
            new_query.address
        ));
    }
    None
}
