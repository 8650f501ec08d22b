//! The readers' copy of the `sources` table. There are few sources (one
//! per container or service and node), so filters on them are decided
//! here and reach SQL as a list of ids.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rusqlite::Connection;
use weir_agent::record::CompactString;

use super::write::decode_resource;
use crate::store::{Scope, SourceFilter};

/// One row of `sources`.
#[derive(Debug)]
pub struct Source {
    pub tenant: String,
    pub node: String,
    pub container: String,
    pub service: String,
    pub resource: Vec<(CompactString, CompactString)>,
}

#[derive(Default)]
pub struct Sources {
    known: RwLock<Known>,
}

#[derive(Default)]
struct Known {
    rows: HashMap<i64, Arc<Source>>,
    newest: i64,
    /// How many times the writer had forgotten sources when these rows
    /// were read (`counters.sources_forgotten`).
    generation: i64,
}

/// Which sources a query may read.
pub enum Allowed {
    All,
    Only(Vec<i64>),
}

impl Allowed {
    /// `AND column IN (…)`, or nothing.
    pub fn sql(&self, column: &str) -> String {
        match self {
            Allowed::All => String::new(),
            Allowed::Only(ids) => {
                let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
                format!(" AND {column} IN ({})", ids.join(","))
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Allowed::Only(ids) if ids.is_empty())
    }

    /// Whether records of source `id` may be read.
    pub fn contains(&self, id: i64) -> bool {
        match self {
            Allowed::All => true,
            Allowed::Only(ids) => ids.binary_search(&id).is_ok(),
        }
    }
}

impl Sources {
    /// Reads the sources added since the last look, or all of them again
    /// once the writer has forgotten some since (it never gives an id
    /// again). A reader on an older snapshot than the copy's neither takes
    /// it back nor adds to it.
    pub fn refresh(&self, connection: &Connection) -> rusqlite::Result<()> {
        let generation: i64 = connection
            .prepare_cached(
                "SELECT coalesce((SELECT value FROM counters WHERE name = 'sources_forgotten'), 0)",
            )?
            .query_row([], |row| row.get(0))?;
        let (newest, known_generation) = {
            let known = self.known.read().unwrap_or_else(|e| e.into_inner());
            (known.newest, known.generation)
        };
        if generation > known_generation {
            // Read whole outside the lock, then put in place at once: the
            // copy is never empty or partial for another reader.
            let rows = read_rows(connection, 0)?;
            let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
            if generation > known.generation {
                *known = Known {
                    newest: rows.iter().map(|(id, _)| *id).max().unwrap_or(0),
                    rows: rows.into_iter().map(|(id, s)| (id, Arc::new(s))).collect(),
                    generation,
                };
            }
            return Ok(());
        }
        let rows = read_rows(connection, newest)?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        if known.generation != generation {
            // Read again whole since, from a newer snapshot: these rows
            // may be gone from it.
            return Ok(());
        }
        for (id, source) in rows {
            known.newest = known.newest.max(id);
            known.rows.insert(id, Arc::new(source));
        }
        Ok(())
    }

    pub fn get(&self, id: i64) -> Option<Arc<Source>> {
        self.known
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .rows
            .get(&id)
            .cloned()
    }

    /// The sources `filter` lets through.
    pub fn allowed(&self, filter: &SourceFilter) -> Allowed {
        let unfiltered =
            filter.node.is_none() && filter.container.is_none() && filter.labels.is_empty();
        if unfiltered && filter.scope == Scope::All {
            return Allowed::All;
        }
        self.select(|source| {
            filter.scope.allows(&source.tenant)
                && filter.node.as_ref().is_none_or(|n| *n == source.node)
                && filter
                    .container
                    .as_ref()
                    .is_none_or(|c| *c == source.container)
                && filter.labels.iter().all(|(k, v)| {
                    source
                        .resource
                        .iter()
                        .any(|(rk, rv)| rk == k.as_str() && rv == v.as_str())
                })
        })
    }

    /// The sources of `scope` that are (lowercased) `service`, or all of
    /// the scope's.
    pub fn of_service(&self, scope: &Scope, service: Option<&str>) -> Allowed {
        if service.is_none() && *scope == Scope::All {
            return Allowed::All;
        }
        self.select(|source| {
            scope.allows(&source.tenant) && service.is_none_or(|s| s == source.service)
        })
    }

    fn select(&self, wanted: impl Fn(&Source) -> bool) -> Allowed {
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        let mut ids: Vec<i64> = known
            .rows
            .iter()
            .filter(|(_, source)| wanted(source))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        Allowed::Only(ids)
    }

    /// Every known source, for listings.
    pub fn all(&self) -> Vec<(i64, Arc<Source>)> {
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = known
            .rows
            .iter()
            .map(|(id, s)| (*id, Arc::clone(s)))
            .collect();
        all.sort_unstable_by_key(|(id, _)| *id);
        all
    }
}

/// The rows of `sources` with an id past `after`.
fn read_rows(connection: &Connection, after: i64) -> rusqlite::Result<Vec<(i64, Source)>> {
    let mut statement = connection.prepare_cached(
        "SELECT id, tenant, node, container, service, resource FROM sources WHERE id > ?1",
    )?;
    let rows = statement.query_map([after], |row| {
        let resource: Vec<u8> = row.get(5)?;
        Ok((
            row.get::<_, i64>(0)?,
            Source {
                tenant: row.get(1)?,
                node: row.get(2)?,
                container: row.get(3)?,
                service: row.get(4)?,
                resource: decode_resource(&resource).unwrap_or_default(),
            },
        ))
    })?;
    rows.collect()
}
