//! The node gate file the SRE owns, and how an application's request on
//! `weir run` is reconciled with it.
//!
//! ```toml
//! [node]
//! rate = "50MiB/s"          # all monitors on the node together
//! burst = "8MiB"
//!
//! [container]
//! rate = "5MiB/s"           # default budget of each container
//! burst = "1MiB"
//! policy = "block"          # default policy
//! allow = ["drop", "ring"]  # what applications may choose instead
//! max_ring_size = "16MiB"
//!
//! [stream]                  # optional: separate stdout/stderr budgets
//! stdout = "4MiB/s"
//! stderr = "1MiB/s"
//!
//! [[weight]]
//! name = "db-*"             # or: label = "tier=critical"
//! weight = 2
//! ```
//!
//! Every value is checked when the file is read; an error names the file,
//! the key, the value and what is accepted.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::bucket::Budget;
use crate::policy::{Policy, PolicyKind};
use crate::units::{format_rate, format_size, parse_rate, parse_size};

/// Where the gate file is looked for when neither `--gate-config` nor
/// `WEIR_GATE_CONFIG` names one.
pub const DEFAULT_PATH: &str = "/etc/weir/gate.toml";

/// Largest gate file read; anything bigger is a mistake, not a config.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Ring size used when neither the application nor the SRE says.
pub const DEFAULT_RING_SIZE: u64 = 1 << 20;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    node: RawNode,
    #[serde(default)]
    container: RawContainer,
    stream: Option<RawStreams>,
    #[serde(default)]
    weight: Vec<RawWeight>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNode {
    rate: Option<String>,
    burst: Option<String>,
    state: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawContainer {
    rate: Option<String>,
    burst: Option<String>,
    policy: Option<String>,
    allow: Option<Vec<String>>,
    max_ring_size: Option<String>,
    ring_size: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStreams {
    stdout: String,
    stderr: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeight {
    name: Option<String>,
    label: Option<String>,
    weight: u32,
}

/// Which containers a weight applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// A container name, `*` matching any run of characters.
    Name(String),
    /// A label `key=value` the container carries.
    Label(String, String),
}

/// The SRE's gate file, checked.
#[derive(Debug, Clone)]
pub struct GateFile {
    pub path: PathBuf,
    /// The node budget shared by every monitor; `None`: no node limit.
    pub node: Option<Budget>,
    /// Where monitors keep the shared node state.
    pub state_path: PathBuf,
    /// The default budget of a container; `None`: containers are limited
    /// only by the node budget.
    pub container: Option<Budget>,
    /// Separate budgets for stdout and stderr, replacing the container's.
    pub streams: Option<(Budget, Budget)>,
    pub default_policy: PolicyKind,
    /// Policies applications may choose besides the default.
    pub allow: Vec<PolicyKind>,
    pub max_ring_size: Option<u64>,
    pub default_ring_size: u64,
    pub weights: Vec<(Selector, u32)>,
}

/// A gate file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read gate config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("gate config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Where the state shared by the monitors of a node lives by default.
pub const DEFAULT_STATE_PATH: &str = "/run/weir/gate.state";

impl GateFile {
    /// Reads and checks a gate file.
    pub fn load(path: &Path) -> Result<GateFile, ConfigError> {
        let read_error = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut text = String::new();
        fs::File::open(path)
            .and_then(|file| file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text))
            .map_err(read_error)?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: format!("larger than {MAX_FILE_BYTES} bytes; a gate file is a few lines"),
            });
        }
        GateFile::parse(path, &text)
    }

    /// Checks the text of a gate file read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<GateFile, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let rate = |key: &str, value: &Option<String>| -> Result<Option<f64>, ConfigError> {
            value
                .as_deref()
                .map(|v| parse_rate(v).map_err(|e| invalid(format!("{key} = {v:?}: {e}"))))
                .transpose()
        };
        let size = |key: &str, value: &Option<String>| -> Result<Option<u64>, ConfigError> {
            value
                .as_deref()
                .map(|v| parse_size(v).map_err(|e| invalid(format!("{key} = {v:?}: {e}"))))
                .transpose()
        };
        let policy = |key: &str, value: &str| -> Result<PolicyKind, ConfigError> {
            value
                .parse()
                .map_err(|e| invalid(format!("{key} = {value:?}: {e}")))
        };

        let node_rate = rate("node.rate", &raw.node.rate)?;
        let node_burst = size("node.burst", &raw.node.burst)?;
        if node_burst.is_some() && node_rate.is_none() {
            return Err(invalid("node.burst is set without node.rate".into()));
        }
        let container_rate = rate("container.rate", &raw.container.rate)?;
        let container_burst = size("container.burst", &raw.container.burst)?;
        if container_burst.is_some() && container_rate.is_none() {
            return Err(invalid(
                "container.burst is set without container.rate".into(),
            ));
        }
        let default_policy = match &raw.container.policy {
            Some(p) => policy("container.policy", p)?,
            None => PolicyKind::Block,
        };
        let allow = raw
            .container
            .allow
            .iter()
            .flatten()
            .map(|p| policy("container.allow", p))
            .collect::<Result<Vec<_>, _>>()?;
        let streams = match &raw.stream {
            None => None,
            Some(s) => {
                let stdout = rate("stream.stdout", &Some(s.stdout.clone()))?.expect("given");
                let stderr = rate("stream.stderr", &Some(s.stderr.clone()))?.expect("given");
                Some((Budget::new(stdout, None), Budget::new(stderr, None)))
            }
        };
        let mut weights = Vec::new();
        for (i, rule) in raw.weight.iter().enumerate() {
            let key = format!("weight[{i}]");
            if rule.weight == 0 {
                return Err(invalid(format!(
                    "{key}.weight = 0: a weight must be at least 1"
                )));
            }
            let selector = match (&rule.name, &rule.label) {
                (Some(name), None) => Selector::Name(name.clone()),
                (None, Some(label)) => match label.split_once('=') {
                    Some((k, v)) if !k.is_empty() => Selector::Label(k.to_owned(), v.to_owned()),
                    _ => {
                        return Err(invalid(format!(
                            "{key}.label = {label:?}: expected key=value"
                        )));
                    }
                },
                _ => return Err(invalid(format!("{key}: give exactly one of name or label"))),
            };
            weights.push((selector, rule.weight));
        }
        Ok(GateFile {
            path: path.to_path_buf(),
            node: node_rate.map(|r| Budget::new(r, node_burst)),
            state_path: raw
                .node
                .state
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_PATH)),
            container: container_rate.map(|r| Budget::new(r, container_burst)),
            streams,
            default_policy,
            allow,
            max_ring_size: size("container.max_ring_size", &raw.container.max_ring_size)?,
            default_ring_size: size("container.ring_size", &raw.container.ring_size)?
                .unwrap_or(DEFAULT_RING_SIZE),
            weights,
        })
    }

    /// The weight of a container: the first rule that matches, else 1.
    pub fn weight_of(&self, name: &str, labels: &[(String, String)]) -> u32 {
        self.weights
            .iter()
            .find(|(selector, _)| match selector {
                Selector::Name(pattern) => glob_match(pattern, name),
                Selector::Label(k, v) => labels.iter().any(|(lk, lv)| lk == k && lv == v),
            })
            .map_or(1, |(_, weight)| *weight)
    }
}

/// What an application asks for on `weir run`.
#[derive(Debug, Clone, Default)]
pub struct AppRequest {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub policy: Option<PolicyKind>,
    pub ring_size: Option<u64>,
    pub rate: Option<f64>,
    pub burst: Option<u64>,
    /// Fall back to the SRE's defaults, with a warning, instead of refusing.
    pub fallback: bool,
}

/// The budget a container runs under, after reconciling its request with
/// the gate file.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The container's own budget (both streams together), if any.
    pub container: Option<Budget>,
    /// Separate stdout and stderr budgets, if the SRE set them.
    pub streams: Option<(Budget, Budget)>,
    /// The node budget this container shares with the others.
    pub node: Option<Budget>,
    pub policy: Policy,
    pub weight: u32,
    /// What fell back to the SRE's defaults, to say on stderr.
    pub warnings: Vec<String>,
}

impl Resolved {
    /// Whether any budget applies at all.
    pub fn is_limited(&self) -> bool {
        self.container.is_some() || self.streams.is_some() || self.node.is_some()
    }
}

/// Reconciles `request` with the SRE's `file` (if there is one). A request
/// the file does not allow is an error naming the rule, unless the request
/// asks to fall back.
pub fn resolve(file: Option<&GateFile>, request: &AppRequest) -> Result<Resolved, String> {
    let Some(file) = file else {
        let kind = request.policy.unwrap_or(PolicyKind::Block);
        return Ok(Resolved {
            container: request.rate.map(|rate| Budget::new(rate, request.burst)),
            streams: None,
            node: None,
            policy: policy_of(kind, request.ring_size.unwrap_or(DEFAULT_RING_SIZE)),
            weight: 1,
            warnings: Vec::new(),
        });
    };
    let path = file.path.display();
    let mut warnings = Vec::new();
    let mut refuse_or_warn = |message: String| -> Result<(), String> {
        if request.fallback {
            warnings.push(format!(
                "{message}; falling back to the SRE's default (--policy-fallback)"
            ));
            Ok(())
        } else {
            Err(message)
        }
    };

    let mut kind = file.default_policy;
    if let Some(wanted) = request.policy {
        if wanted == file.default_policy || file.allow.contains(&wanted) {
            kind = wanted;
        } else {
            refuse_or_warn(format!(
                "policy {} is not allowed by container.allow = {:?} in {path} (the default is {})",
                kind_name(wanted),
                file.allow.iter().map(|k| kind_name(*k)).collect::<Vec<_>>(),
                kind_name(file.default_policy)
            ))?;
        }
    }
    let mut ring_size = request.ring_size.unwrap_or(file.default_ring_size);
    if let Some(max) = file.max_ring_size {
        if ring_size > max {
            refuse_or_warn(format!(
                "ring size {} is above container.max_ring_size = {} in {path}",
                format_size(ring_size),
                format_size(max)
            ))?;
            ring_size = max;
        }
    }
    let mut container = file.container;
    if let Some(rate) = request.rate {
        match file.container {
            Some(sre) if rate > sre.rate => refuse_or_warn(format!(
                "--rate {} is above container.rate = {} in {path}; an application may only ask for less",
                format_rate(rate),
                format_rate(sre.rate)
            ))?,
            _ => {
                container = Some(Budget::new(
                    rate,
                    request.burst.or(file.container.map(|c| c.burst)),
                ))
            }
        }
    }
    Ok(Resolved {
        container,
        streams: file.streams,
        node: file.node,
        policy: policy_of(kind, ring_size),
        weight: file.weight_of(&request.name, &request.labels),
        warnings,
    })
}

fn policy_of(kind: PolicyKind, ring_size: u64) -> Policy {
    match kind {
        PolicyKind::Block => Policy::Block,
        PolicyKind::Drop => Policy::Drop,
        PolicyKind::Ring => Policy::Ring {
            max_bytes: ring_size,
        },
    }
}

fn kind_name(kind: PolicyKind) -> &'static str {
    policy_of(kind, 0).name()
}

/// Matches `text` against `pattern`, where `*` stands for any run of
/// characters.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[node]
rate = "50MiB/s"
burst = "8MiB"

[container]
rate = "5MiB/s"
policy = "block"
allow = ["drop"]
max_ring_size = "4MiB"

[[weight]]
name = "db-*"
weight = 2

[[weight]]
label = "tier=critical"
weight = 4
"#;

    fn file() -> GateFile {
        GateFile::parse(Path::new("/etc/weir/gate.toml"), FILE).unwrap()
    }

    #[test]
    fn reads_budgets_policies_and_weights() {
        let file = file();
        assert_eq!(
            file.node,
            Some(Budget::new(50.0 * 1048576.0, Some(8 << 20)))
        );
        assert_eq!(file.container.unwrap().rate, 5.0 * 1048576.0);
        assert_eq!(file.allow, vec![PolicyKind::Drop]);
        assert_eq!(file.weight_of("db-main", &[]), 2);
        assert_eq!(
            file.weight_of("web", &[("tier".into(), "critical".into())]),
            4
        );
        assert_eq!(file.weight_of("web", &[]), 1);
    }

    #[test]
    fn a_bad_value_names_the_key_the_value_and_what_is_accepted() {
        let err =
            GateFile::parse(Path::new("g.toml"), "[container]\nrate = \"fast\"\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("g.toml") && text.contains("container.rate") && text.contains("\"fast\""),
            "{text}"
        );
        let err =
            GateFile::parse(Path::new("g.toml"), "[container]\npolicy = \"maybe\"\n").unwrap_err();
        assert!(err.to_string().contains("use block, drop or ring"), "{err}");
        let err =
            GateFile::parse(Path::new("g.toml"), "[container]\nrat = \"1MiB/s\"\n").unwrap_err();
        assert!(err.to_string().contains("rat"), "{err}");
    }

    #[test]
    fn requests_within_the_rules_are_granted() {
        let request = AppRequest {
            name: "db-1".into(),
            policy: Some(PolicyKind::Drop),
            rate: Some(1048576.0),
            ..AppRequest::default()
        };
        let resolved = resolve(Some(&file()), &request).unwrap();
        assert_eq!(resolved.policy, Policy::Drop);
        assert_eq!(resolved.container.unwrap().rate, 1048576.0);
        assert_eq!(resolved.weight, 2);
        assert!(resolved.warnings.is_empty());
    }

    #[test]
    fn requests_beyond_the_rules_are_refused_naming_the_rule_or_fall_back() {
        let ring = AppRequest {
            policy: Some(PolicyKind::Ring),
            ..AppRequest::default()
        };
        let err = resolve(Some(&file()), &ring).unwrap_err();
        assert!(
            err.contains("container.allow") && err.contains("ring"),
            "{err}"
        );
        let faster = AppRequest {
            rate: Some(100.0 * 1048576.0),
            ..AppRequest::default()
        };
        let err = resolve(Some(&file()), &faster).unwrap_err();
        assert!(err.contains("container.rate = 5MiB/s"), "{err}");
        let fallback = AppRequest {
            fallback: true,
            ..ring
        };
        let resolved = resolve(Some(&file()), &fallback).unwrap();
        assert_eq!(resolved.policy, Policy::Block);
        assert_eq!(resolved.warnings.len(), 1);
    }

    #[test]
    fn globs_match_stars_anywhere() {
        assert!(glob_match("db-*", "db-main"));
        assert!(glob_match("*-cache", "redis-cache"));
        assert!(glob_match("a*b*c", "a-x-b-y-c"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(!glob_match("db-*", "web"));
        assert!(!glob_match("a*bc", "abc-bc-x"));
    }
}
