//! Exit status, signals, descendants holding the pipes, stdin, tty, and a log
//! directory deleted under weir's feet.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;

fn log_text(path: &Path) -> String {
    read_cri(path)
        .iter()
        .map(|r| {
            format!(
                "{} {} {}\n",
                r.stream,
                r.tag.as_byte() as char,
                String::from_utf8_lossy(&r.content)
            )
        })
        .collect()
}

fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn exits_with_the_childs_code() {
    let dir = Scratch::new("exit");
    let log = dir.join("x.log");
    let result = run_weir(
        &["--log-path", log.to_str().unwrap()],
        &["sh", "-c", "echo bye; exit 42"],
    );
    assert_eq!(result.code, Some(42));
    assert_eq!(result.summary["exit"]["code"], 42);
    assert_eq!(log_text(&log), "stdout F bye\n");
}

#[test]
fn death_by_signal_exits_128_plus_the_signal() {
    let dir = Scratch::new("killed");
    let log = dir.join("x.log");
    let result = run_weir(
        &["--log-path", log.to_str().unwrap()],
        &["sh", "-c", "echo before; kill -KILL $$"],
    );
    assert_eq!(result.code, Some(128 + 9));
    assert_eq!(result.summary["exit"]["signal"], 9);
    result.assert_balanced();
    assert_eq!(log_text(&log), "stdout F before\n");
}

#[test]
fn a_command_that_cannot_run_gives_127_or_126() {
    let dir = Scratch::new("noexec");
    let log = dir.join("x.log");
    let missing = weir_command(
        &["--log-path", log.to_str().unwrap()],
        &["/nonexistent/program"],
    )
    .output()
    .unwrap();
    assert_eq!(missing.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/program"));
    let not_executable = dir.join("plain.txt");
    fs::write(&not_executable, "just text").unwrap();
    let denied = weir_command(
        &["--log-path", log.to_str().unwrap()],
        &[not_executable.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_eq!(denied.status.code(), Some(126));
}

/// Installs handlers for the six forwarded signals, says it is ready, prints
/// each signal it receives and exits after the last one.
const SIGNAL_RECORDER: &str = r#"
import signal, sys, os, time
names = ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"]
seen = []
def handler(num, frame):
    name = signal.Signals(num).name
    seen.append(name)
    print("got", name, flush=True)
for name in names:
    signal.signal(getattr(signal, name), handler)
open(sys.argv[1], "w").close()
deadline = time.time() + 30
while len(seen) < len(names) and time.time() < deadline:
    time.sleep(0.01)
sys.exit(0 if len(seen) == len(names) else 1)
"#;

#[test]
fn forwards_all_six_signals_to_the_child() {
    let dir = Scratch::new("signals");
    let log = dir.join("x.log");
    let ready = dir.join("ready");
    let mut command = python(SIGNAL_RECORDER);
    command.push(ready.to_str().unwrap().to_owned());
    let weir = weir_command(&["--log-path", log.to_str().unwrap()], &strs(&command))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_file(&ready);
    let names = ["TERM", "INT", "HUP", "QUIT", "USR1", "USR2"];
    for name in names {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(weir.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        // Wait until the child has logged it, so the next one is distinct.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(&format!("got SIG{name}"))
        {
            assert!(Instant::now() < deadline, "SIG{name} was not forwarded");
            thread::sleep(Duration::from_millis(10));
        }
    }
    let result = parse_output(weir.wait_with_output().unwrap());
    assert_eq!(result.code, Some(0), "stderr: {}", result.stderr);
    let expected: String = names
        .iter()
        .map(|n| format!("stdout F got SIG{n}\n"))
        .collect();
    assert_eq!(log_text(&log), expected);
}

#[test]
fn drains_output_of_grandchildren_that_outlive_the_child() {
    let dir = Scratch::new("grandchild");
    let log = dir.join("x.log");
    let result = run_weir(
        &[
            "--log-path",
            log.to_str().unwrap(),
            "--drain-timeout",
            "10s",
        ],
        &["sh", "-c", "(sleep 0.3; echo late) & echo early"],
    );
    assert_eq!(result.code, Some(0));
    assert_eq!(result.summary["drain"]["timed_out"], false);
    assert_eq!(log_text(&log), "stdout F early\nstdout F late\n");
}

#[test]
fn stops_after_the_drain_timeout_and_says_so() {
    let dir = Scratch::new("drain-timeout");
    let log = dir.join("x.log");
    let started = Instant::now();
    let result = run_weir(
        &["--log-path", log.to_str().unwrap(), "--drain-timeout", "2s"],
        // The grandchild has the drain timeout to write its line: long
        // enough for a loaded machine to start it.
        &["sh", "-c", "(echo grandchild; sleep 60) & echo child"],
    );
    // Bounded well below the grandchild's 60 s: weir did not wait for it.
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(result.code, Some(0));
    assert_eq!(result.summary["drain"]["timed_out"], true);
    assert!(
        result
            .stderr
            .contains("descendants still hold its output open"),
        "{}",
        result.stderr
    );
    result.assert_balanced();
    let text = log_text(&log);
    assert!(
        text.contains("F child\n") && text.contains("F grandchild\n"),
        "{text}"
    );
    let _ = std::process::Command::new("pkill")
        .args(["-f", "sleep 60"])
        .status();
}

#[test]
fn stdin_is_dev_null_unless_passed_through() {
    let dir = Scratch::new("stdin");
    let log = dir.join("x.log");
    let result = run_weir(
        &["--log-path", log.to_str().unwrap()],
        &["sh", "-c", "cat; echo done"],
    );
    assert_eq!(result.code, Some(0));
    assert_eq!(log_text(&log), "stdout F done\n");

    let log2 = dir.join("y.log");
    let mut weir = weir_command(&["--log-path", log2.to_str().unwrap(), "--stdin"], &["cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    weir.stdin.take().unwrap().write_all(b"typed in\n").unwrap();
    let result = parse_output(weir.wait_with_output().unwrap());
    assert_eq!(result.code, Some(0));
    assert_eq!(log_text(&log2), "stdout F typed in\n");
}

#[test]
fn tty_gives_the_child_a_terminal_and_keeps_bytes() {
    let dir = Scratch::new("tty");
    let log = dir.join("x.log");
    let result = run_weir(
        &["--log-path", log.to_str().unwrap(), "--tty"],
        &[
            "sh",
            "-c",
            "test -t 1 && test -t 2 && echo on a tty; echo to stderr >&2",
        ],
    );
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    result.assert_balanced();
    assert_eq!(log_text(&log), "stdout F on a tty\nstdout F to stderr\n");
}

#[test]
fn a_deleted_log_directory_is_recreated_and_reported() {
    let dir = Scratch::new("deleted-dir");
    let logs = dir.join("logs");
    let log = logs.join("x.log");
    let ready = dir.join("ready");
    let go_on = dir.join("go-on");
    let script = format!(
        "import os, time\nprint('before', flush=True)\nopen('{ready}', 'w').close()\n\
         while not os.path.exists('{go_on}'): time.sleep(0.01)\nprint('after', flush=True)\n",
        ready = ready.display(),
        go_on = go_on.display()
    );
    let weir = weir_command(
        &["--log-path", log.to_str().unwrap()],
        &strs(&python(&script)),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_for_file(&ready);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("before")
    {
        assert!(Instant::now() < deadline, "'before' never reached the log");
        thread::sleep(Duration::from_millis(10));
    }
    fs::remove_dir_all(&logs).unwrap();
    // Let weir notice the deletion before more output arrives.
    thread::sleep(Duration::from_millis(300));
    fs::write(&go_on, "").unwrap();
    let result = parse_output(weir.wait_with_output().unwrap());
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    result.assert_balanced();
    assert_eq!(log_text(&log), "stdout F after\n");
    assert_eq!(
        result.count("stdout", &["deleted", "external", "bytes"]),
        "before\n".len() as u64
    );
    assert!(result.stderr.contains("was deleted"), "{}", result.stderr);
}
