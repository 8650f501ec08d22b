//! A source's lanes: readers of the same files, each with its own read
//! position and checkpoints, so that a sink that holds its source back
//! (`when_full = "block"`) holds back only its own lane and never the
//! other sinks. Each sink that waits has a lane of its own; the sinks that
//! never wait share one. A lane is keyed by what it feeds, so a reload that
//! adds or removes a sink leaves the other lanes reading where they were.
//!
//! A sink keeps its own lane once it has one, even when it stops waiting:
//! its lane and the shared one are at different places in the files, so
//! joining the shared lane would skip or repeat records for it. A sink
//! that starts waiting splits off the shared lane where that lane is.

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

/// Splits the sinks a source reaches into lanes: a lane of its own for
/// each sink that waits or `has_own_lane` already (a source that reaches
/// none still reads, on one lane, as before it had sinks).
pub fn partition(
    sinks: &[String],
    config: &AgentConfig,
    has_own_lane: &dyn Fn(&str) -> bool,
) -> Vec<Lane> {
    let own = |sink: &String| {
        config.sinks[sink].buffer.when_full == WhenFull::Block || has_own_lane(sink)
    };
    let (waiting, never): (Vec<String>, Vec<String>) = sinks.iter().cloned().partition(own);
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

/// The sinks that have a lane of their own of source `source` in
/// `data_dir`'s checkpoints: `SOURCE.for-SINK.json.0` and `.1`. (Names are
/// letters, digits, `_` and `-`, so the dots are unambiguous.)
pub fn own_lanes_on_disk(data_dir: &Path, source: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("checkpoints")) else {
        return Vec::new();
    };
    let prefix = format!("{source}.for-");
    let mut sinks: Vec<String> = entries
        .flatten()
        .filter_map(|entry| {
            let file = entry.file_name().into_string().ok()?;
            let rest = file.strip_prefix(&prefix)?;
            let sink = rest
                .strip_suffix(".json.0")
                .or_else(|| rest.strip_suffix(".json.1"))?;
            Some(sink.to_owned())
        })
        .collect();
    sinks.sort();
    sinks.dedup();
    sinks
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

    fn partition_afresh(sinks: &[String], config: &AgentConfig) -> Vec<Lane> {
        partition(sinks, config, &|_| false)
    }

    #[test]
    fn each_sink_that_waits_has_a_lane_and_the_others_share_one() {
        let names = |c: &AgentConfig| c.sinks.keys().cloned().collect::<Vec<_>>();
        let partition = partition_afresh;
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

    #[test]
    fn a_sink_keeps_its_own_lane_when_it_stops_waiting() {
        let never = config(&[
            ("a", "drop_newest"),
            ("b", "drop_oldest"),
            ("c", "drop_newest"),
        ]);
        let names: Vec<String> = never.sinks.keys().cloned().collect();
        assert_eq!(
            keys(&partition(&names, &never, &|sink| sink == "b")),
            [(None, vec!["a", "c"]), (Some("b"), vec!["b"])]
        );
    }

    #[test]
    fn the_lanes_on_disk_are_read_from_the_checkpoint_file_names() {
        let dir = std::env::temp_dir().join(format!("weir-lanes-{}", std::process::id()));
        let checkpoints = dir.join("checkpoints");
        std::fs::create_dir_all(&checkpoints).unwrap();
        for file in [
            "app.json.0",
            "app.for-out.json.0",
            "app.for-out.json.1",
            "app.for-b_2.json.1",
            "app2.for-x.json.0",
            "other.for-y.json.0",
        ] {
            std::fs::write(checkpoints.join(file), "").unwrap();
        }
        assert_eq!(own_lanes_on_disk(&dir, "app"), ["b_2", "out"]);
        assert_eq!(own_lanes_on_disk(&dir, "nothing"), Vec::<String>::new());
        assert_eq!(
            checkpoint_path(&dir, "app", &Some("out".into())),
            checkpoints.join("app.for-out.json")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
