//! `weir bench receive`: the agent receiving at full speed from a load
//! generator in this process, over syslog/TCP (a message per line),
//! Fluent Forward (PackedForward of 1,000 entries, each acknowledged) and
//! OTLP/HTTP logs (protobuf requests of 1,000 records), into a blackhole
//! and into a file; and in the same run, the same syslog/TCP load into
//! rsyslog (Debian's `rsyslogd`, imtcp → omfile), the peer issue 5 names.
//!
//! Each run starts the receiver afresh (the agent pinned to CPU 0
//! unless `--all-cores`; rsyslog likewise), sends every record, and is
//! timed from the first byte sent to the moment the sink has them all: the
//! agent's /metrics says so, or rsyslog's file has every line. It prints
//! records/s, MiB/s (of message bytes sent), the receiver's CPU seconds
//! and peak RSS, and the target: syslog/TCP → file at ≥ 2× rsyslog's
//! throughput at no more CPU per record.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message as _;
use serde::Serialize;
use weir_agent::otlp::proto;

use super::measure::{self, CpuTimes};
use super::stats::median;
use super::workdir::{Setup, WorkDir};

#[derive(Debug, clap::Args)]
pub struct ReceiveArgs {
    /// Records sent per run.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1000..=100_000_000))]
    records: u64,
    /// Measured runs per case (after one warm-up run of the first).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    #[command(flatten)]
    setup: Setup,
    /// Only these protocols [default: all].
    #[arg(long = "protocol", value_enum)]
    protocols: Vec<Protocol>,
}

/// Bytes of each message's text.
const MESSAGE_LEN: usize = 100;
/// Records per Forward message and per OTLP request.
const PER_REQUEST: usize = 1000;
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
enum Protocol {
    SyslogTcp,
    Forward,
    Otlp,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::SyslogTcp => "syslog/TCP",
            Protocol::Forward => "Forward",
            Protocol::Otlp => "OTLP/HTTP",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Receiver {
    Weir,
    Rsyslog,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct Run {
    pub wall_s: f64,
    pub cpu: CpuTimes,
    pub peak_rss_kib: u64,
}

impl Run {
    /// Says on stderr how a run of `records` went (or that it failed,
    /// kept in `failures`); the run, unless it was the warm-up (round 0).
    pub(super) fn noted(
        outcome: Result<Run, String>,
        round: u32,
        label: &str,
        records: u64,
        failures: &mut Vec<String>,
    ) -> Option<Run> {
        match outcome {
            Ok(run) => {
                eprintln!(
                    "{} {label}: {:.3} s, {:.0} records/s, CPU {:.3} s, peak RSS {} KiB",
                    if round == 0 { "warm-up" } else { "run" },
                    run.wall_s,
                    records as f64 / run.wall_s,
                    run.cpu.total(),
                    run.peak_rss_kib
                );
                (round > 0).then_some(run)
            }
            Err(e) => {
                eprintln!("{label}: FAILED: {e}");
                failures.push(format!("{label}: {e}"));
                None
            }
        }
    }

    /// The median wall and CPU seconds of `runs`.
    pub(super) fn medians(runs: &[Run]) -> (f64, f64) {
        let walls: Vec<f64> = runs.iter().map(|r| r.wall_s).collect();
        let cpus: Vec<f64> = runs.iter().map(|r| r.cpu.total()).collect();
        (median(&walls), median(&cpus))
    }
}

#[derive(Debug, Clone, Serialize)]
struct Case {
    receiver: Receiver,
    protocol: Protocol,
    sink: &'static str,
    runs: Vec<Run>,
    records_per_s: f64,
    mib_per_s: f64,
    median_cpu_s: f64,
    cpu_us_per_record: f64,
    max_peak_rss_kib: u64,
}

impl ReceiveArgs {
    pub fn run(self) -> i32 {
        let work = match WorkDir::new(self.setup.work_dir.clone(), "receive", &[]) {
            Ok(work) => work,
            Err(e) => {
                eprintln!("weir bench receive: {e}");
                return 2;
            }
        };
        let rsyslogd = which("rsyslogd");
        if rsyslogd.is_none() {
            eprintln!(
                "weir bench receive: rsyslogd is not installed (./scripts/setup.sh --bench); comparing without it"
            );
        }
        let mut cases: Vec<(Receiver, Protocol, &'static str)> = vec![
            (Receiver::Weir, Protocol::SyslogTcp, "blackhole"),
            (Receiver::Weir, Protocol::SyslogTcp, "file"),
            (Receiver::Weir, Protocol::SyslogTcp, "file-cri"),
            (Receiver::Weir, Protocol::SyslogTcp, "file-cri-nosync"),
            (Receiver::Weir, Protocol::Forward, "blackhole"),
            (Receiver::Weir, Protocol::Forward, "file"),
            (Receiver::Weir, Protocol::Otlp, "blackhole"),
            (Receiver::Weir, Protocol::Otlp, "file"),
        ];
        if rsyslogd.is_some() {
            cases.push((Receiver::Rsyslog, Protocol::SyslogTcp, "file"));
        }
        cases.retain(|(_, protocol, _)| {
            self.protocols.is_empty() || self.protocols.contains(protocol)
        });
        let loads = Loads::build(self.records);
        let mut results: Vec<Case> = Vec::new();
        let mut failures = Vec::new();
        for round in 0..=self.runs {
            for (i, &(receiver, protocol, sink)) in cases.iter().enumerate() {
                if round == 0 && i > 0 {
                    break;
                }
                let outcome = match receiver {
                    Receiver::Weir => self.run_weir(&work.path, &loads, protocol, sink),
                    Receiver::Rsyslog => self.run_rsyslog(
                        &work.path,
                        &loads,
                        rsyslogd.as_deref().expect("checked above"),
                    ),
                };
                let label = format!("{receiver:?} {} → {sink}", protocol.name());
                if let Some(run) = Run::noted(outcome, round, &label, self.records, &mut failures) {
                    push_run(&mut results, receiver, protocol, sink, run);
                }
            }
        }
        for case in &mut results {
            let (wall, cpu) = Run::medians(&case.runs);
            case.median_cpu_s = cpu;
            case.records_per_s = self.records as f64 / wall;
            case.mib_per_s = (self.records as usize * MESSAGE_LEN) as f64 / MIB / wall;
            case.cpu_us_per_record = case.median_cpu_s * 1e6 / self.records as f64;
            case.max_peak_rss_kib = case.runs.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0);
        }
        let table = self.render(&results, &failures);
        if self.setup.json {
            eprint!("{table}");
            let report = serde_json::json!({
                "records": self.records,
                "message_len": MESSAGE_LEN,
                "one_core": !self.setup.all_cores,
                "cases": results,
                "failures": failures,
            });
            println!("{report}");
        } else {
            print!("{table}");
        }
        i32::from(!failures.is_empty())
    }

    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command.stdin(Stdio::null()).stdout(Stdio::null());
        if !self.setup.all_cores {
            measure::pin(&mut command, 0);
        }
        command
    }

    fn run_weir(
        &self,
        work: &Path,
        loads: &Loads,
        protocol: Protocol,
        sink: &str,
    ) -> Result<Run, String> {
        let data = work.join("weir-data");
        let out = work.join("weir-out.ndjson");
        let _ = std::fs::remove_dir_all(&data);
        let _ = std::fs::remove_file(&out);
        let (api, port) = (free_port()?, free_port()?);
        let source = match protocol {
            Protocol::SyslogTcp => "type = \"syslog\"\nmode = \"tcp\"",
            Protocol::Forward => "type = \"forward\"",
            Protocol::Otlp => "type = \"otlp\"",
        };
        let sink_table = match sink {
            "file" => format!("type = \"file\"\npath = \"{}\"", out.display()),
            "file-cri" => format!(
                "type = \"file\"\nformat = \"cri\"\npath = \"{}\"",
                out.display()
            ),
            "file-cri-nosync" => format!(
                "type = \"file\"\nformat = \"cri\"\nsync = false\npath = \"{}\"",
                out.display()
            ),
            _ => "type = \"blackhole\"".to_owned(),
        };
        let config = format!(
            "data_dir = \"{}\"\n[api]\naddress = \"127.0.0.1:{api}\"\n[sources.in]\n{source}\naddress = \"127.0.0.1:{port}\"\n[sinks.out]\ninputs = [\"in\"]\n{sink_table}\nbatch = {{ max_records = 2000, max_bytes = \"2MiB\", timeout = \"50ms\" }}\nbuffer = {{ type = \"memory\", max_size = \"64MiB\" }}\n",
            data.display()
        );
        let config_path = work.join("weir.toml");
        std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut command = self.command(&exe);
        command
            .args(["agent", "-c"])
            .arg(&config_path)
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|e| e.to_string())?;
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let outcome = wait_listening(&mut child, address).and_then(|()| {
            let started = Instant::now();
            loads.send(protocol, address)?;
            wait_until(&mut child, || {
                delivered(api).is_some_and(|n| n >= self.records)
            })?;
            Ok(started.elapsed())
        });
        finish(child, outcome, || {
            let _ = std::fs::remove_dir_all(&data);
            let _ = std::fs::remove_file(&out);
        })
    }

    fn run_rsyslog(&self, work: &Path, loads: &Loads, rsyslogd: &Path) -> Result<Run, String> {
        let state = work.join("rsyslog");
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state).map_err(|e| e.to_string())?;
        let out = state.join("out.log");
        let port = free_port()?;
        // The standard file format (RSYSLOG_FileFormat), written in 64 KiB
        // blocks and flushed at the end of each batch of messages, as
        // weir's file sink writes each batch.
        let config = format!(
            r#"global(workDirectory="{state}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{port}")
action(type="omfile" file="{out}" template="RSYSLOG_FileFormat" ioBufferSize="64k" flushOnTXEnd="on")
"#,
            state = state.display(),
            out = out.display()
        );
        let config_path = state.join("rsyslog.conf");
        std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
        let mut command = self.command(rsyslogd);
        command
            .args(["-n", "-f"])
            .arg(&config_path)
            .arg("-i")
            .arg(state.join("rsyslogd.pid"))
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|e| e.to_string())?;
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let records = self.records;
        let outcome = wait_listening(&mut child, address).and_then(|()| {
            let started = Instant::now();
            loads.send(Protocol::SyslogTcp, address)?;
            wait_until(&mut child, || lines_in(&out) >= records)?;
            Ok(started.elapsed())
        });
        finish(child, outcome, || {
            let _ = std::fs::remove_dir_all(&state);
        })
    }

    fn render(&self, cases: &[Case], failures: &[String]) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nweir bench receive: {} records of {MESSAGE_LEN} B per run, {} runs per case after a warm-up, taking turns; the receivers {}; the load from one connection of this process\n",
            self.records,
            self.runs,
            if self.setup.all_cores {
                "on any CPU"
            } else {
                "pinned to CPU 0"
            }
        );
        let _ = writeln!(
            out,
            "| receiver | protocol | sink | records/s | MiB/s | CPU s, median | CPU µs per record | peak RSS MiB |"
        );
        let _ = writeln!(
            out,
            "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"
        );
        for c in cases {
            let _ = writeln!(
                out,
                "| {:?} | {} | {} | {:.0} | {:.1} | {:.3} | {:.2} | {:.1} |",
                c.receiver,
                c.protocol.name(),
                c.sink,
                c.records_per_s,
                c.mib_per_s,
                c.median_cpu_s,
                c.cpu_us_per_record,
                c.max_peak_rss_kib as f64 / 1024.0
            );
        }
        let find = |receiver, sink| {
            cases.iter().find(|c| {
                c.receiver == receiver && c.protocol == Protocol::SyslogTcp && c.sink == sink
            })
        };
        // weir's CRI lines (time, stream, message) are the nearest in bytes
        // to rsyslog's file format (time, host, tag, message); its NDJSON
        // carries every field and is in the table above. rsyslog's omfile
        // does not fsync, so the target compares weir's file sink with
        // `sync = false`; weir's default, an fsync per batch, is shown too.
        if let (Some(weir), Some(synced), Some(rsyslog)) = (
            find(Receiver::Weir, "file-cri-nosync"),
            find(Receiver::Weir, "file-cri"),
            find(Receiver::Rsyslog, "file"),
        ) {
            let speed = weir.records_per_s / rsyslog.records_per_s;
            let cpu = weir.cpu_us_per_record / rsyslog.cpu_us_per_record;
            let synced_speed = synced.records_per_s / rsyslog.records_per_s;
            let _ = writeln!(
                out,
                "\nTargets (issue 5)\n\n| case | target | this run | verdict |\n| --- | --- | ---: | --- |\n| syslog/TCP → file (weir CRI lines, no fsync, as rsyslog), weir ÷ rsyslog throughput | ≥ 2.0 | {speed:.2} | **{}** |\n| syslog/TCP → file (weir CRI lines, no fsync, as rsyslog), weir ÷ rsyslog CPU per record | ≤ 1.0 | {cpu:.2} | **{}** |\n| syslog/TCP → file (weir CRI lines, fsync per batch), weir ÷ rsyslog throughput | (for reference) | {synced_speed:.2} | |",
                if speed >= 2.0 { "met" } else { "MISSED" },
                if cpu <= 1.0 { "met" } else { "MISSED" },
            );
        }
        for failure in failures {
            let _ = writeln!(out, "FAILED: {failure}");
        }
        out
    }
}

fn push_run(
    results: &mut Vec<Case>,
    receiver: Receiver,
    protocol: Protocol,
    sink: &'static str,
    run: Run,
) {
    match results
        .iter_mut()
        .find(|c| c.receiver == receiver && c.protocol == protocol && c.sink == sink)
    {
        Some(case) => case.runs.push(run),
        None => results.push(Case {
            receiver,
            protocol,
            sink,
            runs: vec![run],
            records_per_s: 0.0,
            mib_per_s: 0.0,
            median_cpu_s: 0.0,
            cpu_us_per_record: 0.0,
            max_peak_rss_kib: 0,
        }),
    }
}

/// Measures the receiver, stops it, cleans up; the run, or why there is none.
pub(super) fn finish(
    mut child: Child,
    outcome: Result<Duration, String>,
    clean: impl FnOnce(),
) -> Result<Run, String> {
    let cpu = measure::cpu_of(child.id());
    let rss = measure::peak_rss_kib(child.id());
    let said = stop(&mut child);
    clean();
    let wall = outcome.map_err(|e| format!("{e}; it said: {}", said.trim()))?;
    Ok(Run {
        wall_s: wall.as_secs_f64(),
        cpu: cpu.ok_or("cannot read the receiver's CPU time")?,
        peak_rss_kib: rss.ok_or("cannot read the receiver's peak RSS")?,
    })
}

/// Every run's load, encoded before the clock starts.
struct Loads {
    syslog: Vec<u8>,
    forward: Vec<(Vec<u8>, String)>,
    otlp: Vec<Vec<u8>>,
}

fn message(i: u64) -> String {
    let text = format!("message {i:012} ");
    format!("{text}{}", "x".repeat(MESSAGE_LEN - text.len()))
}

impl Loads {
    fn build(records: u64) -> Loads {
        let mut syslog = Vec::with_capacity(records as usize * (MESSAGE_LEN + 60));
        for i in 0..records {
            let _ = writeln!(
                syslog,
                "<14>1 2026-11-21T20:00:00.000000Z bench-host app 4242 - - {}",
                message(i)
            );
        }
        let chunks: Vec<std::ops::Range<u64>> = (0..records)
            .step_by(PER_REQUEST)
            .map(|start| start..(start + PER_REQUEST as u64).min(records))
            .collect();
        let forward = chunks
            .iter()
            .enumerate()
            .map(|(n, range)| {
                let mut entries = Vec::new();
                for i in range.clone() {
                    let _ = rmp::encode::write_array_len(&mut entries, 2);
                    let _ = rmp::encode::write_uint(&mut entries, 1_795_000_000);
                    let _ = rmp::encode::write_map_len(&mut entries, 1);
                    let _ = rmp::encode::write_str(&mut entries, "log");
                    let _ = rmp::encode::write_str(&mut entries, &message(i));
                }
                let chunk = format!("chunk-{n}");
                let mut out = Vec::with_capacity(entries.len() + 64);
                let _ = rmp::encode::write_array_len(&mut out, 3);
                let _ = rmp::encode::write_str(&mut out, "bench");
                let _ = rmp::encode::write_bin(&mut out, &entries);
                let _ = rmp::encode::write_map_len(&mut out, 1);
                let _ = rmp::encode::write_str(&mut out, "chunk");
                let _ = rmp::encode::write_str(&mut out, &chunk);
                (out, chunk)
            })
            .collect();
        let otlp = chunks
            .iter()
            .map(|range| {
                let request = proto::ExportLogsServiceRequest {
                    resource_logs: vec![proto::ResourceLogs {
                        scope_logs: vec![proto::ScopeLogs {
                            log_records: range
                                .clone()
                                .map(|i| proto::LogRecord {
                                    time_unix_nano: 1_795_000_000_000_000_000,
                                    body: Some(proto::AnyValue {
                                        value: Some(proto::any_value::Value::StringValue(message(
                                            i,
                                        ))),
                                    }),
                                    ..Default::default()
                                })
                                .collect(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                };
                request.encode_to_vec()
            })
            .collect();
        Loads {
            syslog,
            forward,
            otlp,
        }
    }

    /// Sends the load over one connection to `address`.
    fn send(&self, protocol: Protocol, address: SocketAddr) -> Result<(), String> {
        let mut stream = TcpStream::connect(address).map_err(|e| format!("connecting: {e}"))?;
        let _ = stream.set_nodelay(true);
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let io = |e: std::io::Error| format!("sending: {e}");
        match protocol {
            Protocol::SyslogTcp => stream.write_all(&self.syslog).map_err(io)?,
            Protocol::Forward => {
                let mut answer = Vec::new();
                for (message, chunk) in &self.forward {
                    stream.write_all(message).map_err(io)?;
                    answer.clear();
                    read_until(&mut stream, &mut answer, |a| {
                        a.windows(chunk.len()).any(|w| w == chunk.as_bytes())
                    })?;
                }
            }
            Protocol::Otlp => {
                let mut answer = Vec::new();
                for body in &self.otlp {
                    let head = format!(
                        "POST /v1/logs HTTP/1.1\r\nHost: bench\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    stream.write_all(head.as_bytes()).map_err(io)?;
                    stream.write_all(body).map_err(io)?;
                    answer.clear();
                    read_until(&mut stream, &mut answer, complete_response)?;
                    if !answer.starts_with(b"HTTP/1.1 200") {
                        return Err(format!(
                            "the agent answered {}",
                            String::from_utf8_lossy(&answer[..answer.len().min(80)])
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Stops the receiver (SIGTERM, then waits up to 30 s); what it said on stderr.
pub(super) fn stop(child: &mut Child) -> String {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = measure::wait_with_timeout(child, Duration::from_secs(30));
    let mut said = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut said);
    }
    said
}

/// Reads from `stream` into `buffer` until `done` holds.
pub(super) fn read_until(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    done: impl Fn(&[u8]) -> bool,
) -> Result<(), String> {
    let mut read = [0u8; 4096];
    while !done(buffer) {
        match stream.read(&mut read) {
            Ok(0) => return Err("the receiver closed the connection".into()),
            Ok(n) => buffer.extend_from_slice(&read[..n]),
            Err(e) => return Err(format!("waiting for an answer: {e}")),
        }
    }
    Ok(())
}

/// Whether `answer` holds a whole HTTP response (head and its body).
pub(super) fn complete_response(answer: &[u8]) -> bool {
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    answer.len() >= end + 4 + length
}

pub(super) fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

fn which(program: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.exists())
}

pub(super) fn wait_listening(child: &mut Child, address: SocketAddr) -> Result<(), String> {
    wait_until(child, || TcpStream::connect(address).is_ok())
}

/// Polls `done` until it holds, the receiver dies, or ten minutes pass.
pub(super) fn wait_until(child: &mut Child, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !done() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the receiver exited early ({status})"));
        }
        if Instant::now() > deadline {
            return Err("not every record arrived within ten minutes".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Records the agent's sink has had acknowledged, from its /metrics.
pub(super) fn delivered(port: u16) -> Option<u64> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("weir_sink_records_total{sink=\"out\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

/// Lines in rsyslog's file: all of the same length, so its size over the
/// first line's length.
fn lines_in(path: &Path) -> u64 {
    let Ok(file) = std::fs::File::open(path) else {
        return 0;
    };
    let mut first = Vec::new();
    let _ = std::io::BufReader::new(&file)
        .take(4096)
        .read_to_end(&mut first);
    let Some(line) = first.iter().position(|b| *b == b'\n') else {
        return 0;
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    size / (line as u64 + 1)
}
