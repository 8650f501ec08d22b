//! The command line around the agent: `weir agent --check` validates only,
//! naming what is wrong and where; `weir buffer inspect` and `repair` work
//! on a damaged buffer as the operator expects.

use std::process::Command;

use crate::common::*;

#[test]
fn check_validates_only_and_names_file_line_key_and_what_is_expected() {
    let dir = Scratch::new("check");
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        config(
            &dir.join("data"),
            None,
            &(tail_source("/nonexistent/*.log") + &http_sink("app", "http://127.0.0.1:9/x", "")),
        ),
    )
    .unwrap();
    let out = Command::new(WEIR)
        .args(["agent", "--check", "-c"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid (1 sources, 1 sinks)"));
    assert!(!dir.join("data").exists(), "--check starts nothing");
    let bad = dir.join("bad.toml");
    let text = std::fs::read_to_string(&good)
        .unwrap()
        .replace("timeout = \"2s\"", "timeout = \"soon\"");
    std::fs::write(&bad, text).unwrap();
    let out = Command::new(WEIR)
        .args(["agent", "--check", "-c"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!(
            "{}:13:11: sinks.out.timeout = \"soon\": \"soon\" is not a duration",
            bad.display()
        )),
        "{said}"
    );
}

#[test]
fn inspect_shows_the_damage_and_repair_cuts_it() {
    let dir = Scratch::new("repair");
    let buffer = dir.join("buffer");
    // A buffer of two segments, written by the agent's own code.
    {
        use weir_agent::buffer::disk::{DiskBuffer, DiskConfig, Fsync};
        let (disk, _) = DiskBuffer::open(
            &buffer,
            DiskConfig {
                segment_bytes: 4096,
                fsync: Fsync::Never,
                ..DiskConfig::default()
            },
        )
        .unwrap();
        let payloads: Vec<Vec<u8>> = (0..200)
            .map(|i| format!("record {i:05}").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        disk.append(&refs).unwrap();
        disk.close().unwrap();
    }
    let first = buffer.join("00000000000000000000.wal");
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&first, &bytes).unwrap();
    let inspect = Command::new(WEIR)
        .args(["buffer", "inspect"])
        .arg(&buffer)
        .output()
        .unwrap();
    assert!(inspect.status.success());
    let report: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let damaged = &report["segments"][0]["damage"];
    assert!(
        damaged[1].as_str().unwrap().contains("checksum"),
        "{report}"
    );
    assert!(report["segments"][1]["damage"].is_null());
    let repair = Command::new(WEIR)
        .args(["buffer", "repair"])
        .arg(&buffer)
        .output()
        .unwrap();
    assert!(
        repair.status.success(),
        "{}",
        String::from_utf8_lossy(&repair.stderr)
    );
    let said = String::from_utf8_lossy(&repair.stdout);
    assert!(said.contains("cut ") && said.contains("checksum"), "{said}");
    let verify = Command::new(WEIR)
        .args(["buffer", "verify"])
        .arg(&buffer)
        .output()
        .unwrap();
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
