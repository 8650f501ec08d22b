//! The sections only `weir collector` reads: `[store]`, where and for how
//! long records are kept, and `[query]`, who may read them and where.
//!
//! ```toml
//! [store]
//! path = "./weir-data/weir.db"   # default: data_dir/weir.db
//! max_age = "7d"                  # older records are deleted
//! max_size = "4GiB"               # past this, the oldest records go
//! min_free = "1GiB"               # and while the disk has less than this free
//!
//! [query]
//! address = "127.0.0.1:9411"      # the API and UI (and Zipkin intake, when a
//!                                 # zipkin source listens here too)
//! tokens = [{ token = "…", tenant = "team-a" }]
//! autocomplete_keys = ["http.method", "http.status_code", "error"]
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{Checker, ConfigError, RawToken, S, Token};

/// Where the collector keeps records, and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    pub path: PathBuf,
    pub max_age: Duration,
    pub max_size: u64,
    pub min_free: u64,
}

/// The query API: where it listens and who may read.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryConfig {
    pub address: SocketAddr,
    /// Bearer tokens that may query; none: anyone who can connect.
    /// Each may query, limited to one tenant's records if it names one.
    pub tokens: Vec<Token>,
    /// The tag keys `/api/v2/autocompleteKeys` offers.
    pub autocomplete_keys: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    path: Option<String>,
    max_age: Option<S<String>>,
    max_size: Option<S<String>>,
    min_free: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQuery {
    address: Option<S<String>>,
    tokens: Option<Vec<RawToken>>,
    autocomplete_keys: Option<Vec<String>>,
}

/// The default store: a file under the data directory.
pub fn default_store(data_dir: &Path) -> StoreConfig {
    StoreConfig {
        path: data_dir.join("weir.db"),
        max_age: Duration::from_secs(7 * 24 * 3600),
        max_size: 4 << 30,
        min_free: 1 << 30,
    }
}

/// The default query API: loopback, Zipkin's port, no token.
pub fn default_query() -> QueryConfig {
    QueryConfig {
        address: SocketAddr::from(([127, 0, 0, 1], 9411)),
        tokens: Vec::new(),
        autocomplete_keys: ["error", "http.method", "http.route", "http.status_code"]
            .map(String::from)
            .to_vec(),
    }
}

pub(super) fn check_store(
    checker: &Checker<'_>,
    raw: RawStore,
    data_dir: &Path,
) -> Result<StoreConfig, ConfigError> {
    let defaults = default_store(data_dir);
    Ok(StoreConfig {
        path: raw.path.map_or(defaults.path, PathBuf::from),
        max_age: match &raw.max_age {
            Some(d) => checker.duration("store.max_age", d)?,
            None => defaults.max_age,
        },
        max_size: match &raw.max_size {
            Some(s) => checker.size("store.max_size", s)?.max(1 << 20),
            None => defaults.max_size,
        },
        min_free: match &raw.min_free {
            Some(s) => checker.size("store.min_free", s)?,
            None => defaults.min_free,
        },
    })
}

pub(super) fn check_query(
    checker: &Checker<'_>,
    raw: RawQuery,
) -> Result<QueryConfig, ConfigError> {
    let defaults = default_query();
    let address = match &raw.address {
        Some(a) => a.get_ref().parse().map_err(|_| {
            checker.error(
                a.span().start,
                format!(
                    "query.address = {:?}: expected an address and port, like \"127.0.0.1:9411\"",
                    a.get_ref()
                ),
            )
        })?,
        None => defaults.address,
    };
    let tokens = checker.tokens("query.tokens", raw.tokens.as_deref().unwrap_or_default())?;
    if tokens.is_empty() && !address.ip().is_loopback() {
        let at = raw.address.as_ref().map_or(0, |a| a.span().start);
        return Err(checker.error(
            at,
            format!(
                "query.address = \"{address}\" is reachable from other machines: set query.tokens, or listen on loopback"
            ),
        ));
    }
    Ok(QueryConfig {
        address,
        tokens,
        autocomplete_keys: raw.autocomplete_keys.unwrap_or(defaults.autocomplete_keys),
    })
}
