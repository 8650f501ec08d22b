//! A source's lanes: readers of the same files, each with its own read
//! position and checkpoints, so that a sink that holds its source back
//! (`when_full = "block"`) holds back only its own lane and never the
//! other sinks. Each sink that waits has a lane of its own; the sinks that
//! never wait share one. A lane is keyed by what it feeds, so a reload that
//! adds or removes a sink leaves the other lanes reading where they were.

use std::path::{Path, PathBuf};

use crate::buffer::WhenFull;
use crate::config::AgentConfig;

/// Which lane: `Some(sink)` the lane of a sink that waits, `None` the lane
/// the sinks that never wait share.
pub type LaneKey = Option<String>;

/// A lane and the sinks it feeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lane {
    pub key: LaneKey,
    pub sinks: Vec<String>,
}

/// Splits the sinks a source reaches into lanes (a source that reaches
/// none still reads, on one lane, as before it had sinks).
pub fn partition(sinks: &[String], config: &AgentConfig) -> Vec<Lane> {
    let waits = |sink: &String| config.sinks[sink].buffer.when_full == WhenFull::Block;
    let (waiting, never): (Vec<String>, Vec<String>) = sinks.iter().cloned().partition(waits);
    let shared = (!never.is_empty() || waiting.is_empty()).then_some(Lane {
        key: None,
        sinks: never,
    });
    shared
        .into_iter()
        .chain(waiting.into_iter().map(|sink| Lane {
            key: Some(sink.clone()),
            sinks: vec![sink],
        }))
        .collect()
}

/// Where a lane keeps its checkpoints.
pub fn checkpoint_path(data_dir: &Path, source: &str, key: &LaneKey) -> PathBuf {
    let file = match key {
        None => format!("{source}.json"),
        Some(sink) => format!("{source}.for-{sink}.json"),
    };
    data_dir.join("checkpoints").join(file)
}

/// How a lane is named in messages.
pub fn display(source: &str, key: &LaneKey) -> String {
    match key {
        None => source.to_owned(),
        Some(sink) => format!("{source} (for sink {sink})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(sinks: &[(&str, &str)]) -> AgentConfig {
        let mut text = String::from("[sources.app]\ntype = \"file\"\ninclude = [\"/x/*.log\"]\n");
        for (name, when_full) in sinks {
            text += &format!(
                "[sinks.{name}]\ntype = \"blackhole\"\ninputs = [\"app\"]\nbuffer = {{ type = \"memory\", when_full = \"{when_full}\" }}\n"
            );
        }
        AgentConfig::parse(Path::new("weir.toml"), &text).unwrap()
    }

    fn keys(lanes: &[Lane]) -> Vec<(Option<&str>, Vec<&str>)> {
        lanes
            .iter()
            .map(|l| {
                (
                    l.key.as_deref(),
                    l.sinks.iter().map(String::as_str).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn each_sink_that_waits_has_a_lane_and_the_others_share_one() {
        let names = |c: &AgentConfig| c.sinks.keys().cloned().collect::<Vec<_>>();
        let one = config(&[("a", "block")]);
        assert_eq!(
            keys(&partition(&names(&one), &one)),
            [(Some("a"), vec!["a"])]
        );
        assert_eq!(keys(&partition(&[], &one)), [(None, vec![])]);
        let never = config(&[("a", "drop_newest"), ("b", "drop_oldest")]);
        assert_eq!(
            keys(&partition(&names(&never), &never)),
            [(None, vec!["a", "b"])]
        );
        let mixed = config(&[("a", "block"), ("b", "drop_newest"), ("c", "drop_oldest")]);
        assert_eq!(
            keys(&partition(&names(&mixed), &mixed)),
            [(None, vec!["b", "c"]), (Some("a"), vec!["a"])]
        );
        let both = config(&[("a", "block"), ("b", "block")]);
        assert_eq!(
            keys(&partition(&names(&both), &both)),
            [(Some("a"), vec!["a"]), (Some("b"), vec!["b"])]
        );
    }
}
