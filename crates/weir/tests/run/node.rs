//! Several `weir run`s under one node budget: fair shares by weight, and a
//! monitor killed with SIGKILL leaves nothing the others have to wait for.

use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// Writes 100-byte lines at full speed for `argv[1]` seconds, or until
/// the file `argv[2]` (if given) appears.
const TIMED_WRITER: &str = r#"
import os, sys, time
end = time.time() + float(sys.argv[1])
stop = sys.argv[2] if len(sys.argv) > 2 else None
chunk = (b"y" * 99 + b"\n") * 655
while time.time() < end and not (stop and os.path.exists(stop)):
    for _ in range(16):
        os.write(1, chunk)
"#;

fn gate_file(dir: &Scratch, node_rate: &str) -> std::path::PathBuf {
    let path = dir.join("gate.toml");
    let state = dir.join("gate.state");
    std::fs::write(
        &path,
        format!(
            "[node]\nrate = \"{node_rate}\"\nstate = \"{}\"\n[container]\npolicy = \"drop\"\n\
             [[weight]]\nname = \"heavy*\"\nweight = 2\n",
            state.display()
        ),
    )
    .unwrap();
    path
}

fn start(
    dir: &Scratch,
    gate: &std::path::Path,
    name: &str,
    seconds: f64,
    stop: Option<&std::path::Path>,
) -> Child {
    let log = dir.join(&format!("{name}.log"));
    let mut command = python(TIMED_WRITER);
    command.push(seconds.to_string());
    command.extend(stop.map(|path| path.to_str().unwrap().to_owned()));
    weir_command(
        &[
            "--name",
            name,
            "--log-path",
            log.to_str().unwrap(),
            "--gate-config",
            gate.to_str().unwrap(),
        ],
        &strs(&command),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

fn status(gate: &std::path::Path) -> Vec<Value> {
    let output = Command::new(WEIR)
        .args([
            "gate",
            "status",
            "--json",
            "--gate-config",
            gate.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("no node state") {
        // No monitor has got as far as joining yet.
        return Vec::new();
    }
    assert!(output.status.success(), "{stderr}");
    let status: Value = serde_json::from_slice(&output.stdout).unwrap();
    status["containers"].as_array().unwrap().clone()
}

fn granted(containers: &[Value], name: &str) -> Option<f64> {
    containers
        .iter()
        .find(|c| c["name"] == name)
        .map(|c| c["granted_bytes_per_second"].as_f64().unwrap())
}

/// Polls `weir gate status` until `check` holds, for up to 10 s.
fn wait_for_status(
    gate: &std::path::Path,
    what: &str,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let containers = status(gate);
        if check(&containers) {
            return containers;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: never happened; last status {containers:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_monitors_split_the_node_budget_and_account_for_every_byte() {
    let dir = Scratch::new("node-two");
    let gate = gate_file(&dir, "2MiB/s");
    let runs: Vec<Child> = ["a", "b"]
        .iter()
        .map(|name| start(&dir, &gate, name, 3.0, None))
        .collect();
    let results: Vec<RunResult> = runs
        .into_iter()
        .map(|r| parse_output(r.wait_with_output().unwrap()))
        .collect();
    let written: Vec<u64> = results
        .iter()
        .map(|r| {
            assert_eq!(r.code, Some(0), "{}", r.stderr);
            r.assert_balanced();
            assert!(
                r.count("stdout", &["dropped", "rate_limit", "bytes"]) > 0,
                "over budget, so some output is dropped"
            );
            r.count("stdout", &["written", "bytes"])
        })
        .collect();
    let total: u64 = written.iter().sum();
    // Together they stay near the node budget: 3 s at 2 MiB/s plus bursts.
    assert!(
        total as f64 <= 3.0 * 2.0 * 1048576.0 * 1.25,
        "{total} bytes passed in 3 s under 2 MiB/s"
    );
    for w in &written {
        let fraction = *w as f64 / total as f64;
        assert!(
            (0.35..=0.65).contains(&fraction),
            "equal weights, unequal split: {written:?}"
        );
    }
}

#[test]
fn four_monitors_share_by_weight_and_survive_one_killed() {
    let dir = Scratch::new("node-four");
    let gate = gate_file(&dir, "4MiB/s");
    let names = ["a", "b", "c", "heavy"];
    // They write until the test has seen all it waits for (a minute at
    // most), however slowly a loaded machine starts them.
    let stop = dir.join("stop");
    let mut runs: Vec<Child> = names
        .iter()
        .map(|name| start(&dir, &gate, name, 60.0, Some(&stop)))
        .collect();
    let node = 4.0 * 1048576.0;
    // Weights 1, 1, 1, 2: everyone wants more, so 1/5, 1/5, 1/5 and 2/5.
    let before = wait_for_status(&gate, "four containers sharing by weight", |containers| {
        containers.len() == 4
            && names
                .iter()
                .zip([1.0, 1.0, 1.0, 2.0])
                .all(|(name, weight)| {
                    granted(containers, name)
                        .is_some_and(|g| (g - node * weight / 5.0).abs() < node * 0.02)
                })
    });
    assert_eq!(before.len(), 4);

    // SIGKILL one monitor: no cleanup runs.
    let killed = runs.remove(1);
    let killed_pid = killed.id();
    kill_hard(killed_pid);
    let mut killed = killed;
    let _ = killed.wait();
    // The others take over its share: 1/4, 1/4 and 2/4.
    wait_for_status(
        &gate,
        "the three left taking over the killed one's share",
        |containers| {
            containers.len() == 3
                && ["a", "c", "heavy"]
                    .iter()
                    .zip([1.0, 1.0, 2.0])
                    .all(|(name, weight)| {
                        granted(containers, name)
                            .is_some_and(|g| (g - node * weight / 4.0).abs() < node * 0.02)
                    })
        },
    );
    // The state recovers: a newcomer gets a slot and its share.
    let newcomer = start(&dir, &gate, "late", 60.0, Some(&stop));
    wait_for_status(&gate, "a newcomer joining", |containers| {
        containers.iter().any(|c| c["name"] == "late")
    });
    std::fs::write(&stop, "").unwrap();
    for run in runs.into_iter().chain([newcomer]) {
        let result = parse_output(run.wait_with_output().unwrap());
        assert_eq!(result.code, Some(0), "{}", result.stderr);
        result.assert_balanced();
    }
}

fn kill_hard(pid: u32) {
    let status = Command::new("kill")
        .arg("-KILL")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}
