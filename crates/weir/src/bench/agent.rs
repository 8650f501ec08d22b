//! `weir bench agent`: file tail → blackhole and file tail → http (to a
//! counting receiver in this process), each with a memory and a disk buffer,
//! over the same file of 100-byte lines. It prints lines/s, MiB/s, the
//! agent's CPU seconds and peak RSS, and the targets of issue 4: tail →
//! blackhole at ≥ 1 M lines/s on one core, the disk buffer at ≥ 0.7× the
//! memory buffer's throughput, peak RSS under 64 MiB.
//!
//! It is part of the `weir-agent` executable (`weir bench agent` hands over
//! to it). The agent runs as its own process (`weir-agent agent -c`), pinned to CPU 0
//! with `--one-core` (the default), and is timed from its start to the
//! moment its /metrics says the sink has had every line acknowledged.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::measure;
use super::receive::{Run, delivered};
use super::stats::median;
use super::workdir::{Setup, WorkDir};

#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// Lines of 100 B in the file.
    #[arg(long, default_value_t = 2_000_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    lines: u64,
    /// Measured runs per variant (after one warm-up run).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    #[command(flatten)]
    setup: Setup,
}

impl AgentArgs {
    pub fn run(self) -> i32 {
        run(Options {
            lines: self.lines,
            runs: self.runs,
            one_core: !self.setup.all_cores,
            work_dir: self.setup.work_dir,
            json: self.setup.json,
        })
    }
}

pub struct Options {
    pub lines: u64,
    pub runs: u32,
    pub one_core: bool,
    pub work_dir: Option<PathBuf>,
    pub json: bool,
}

const LINE_LEN: u64 = 100;
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Debug, Clone, Serialize)]
struct Variant {
    sink: &'static str,
    buffer: &'static str,
    runs: Vec<Run>,
    median_wall_s: f64,
    lines_per_s: f64,
    mib_per_s: f64,
    median_cpu_s: f64,
    lines_per_cpu_s: f64,
    max_peak_rss_kib: u64,
}

#[derive(Debug, Serialize)]
struct Target {
    case: String,
    target: String,
    value: String,
    met: bool,
}

pub fn run(options: Options) -> i32 {
    let work = match WorkDir::new(options.work_dir.clone(), "agent", &[]) {
        Ok(work) => work,
        Err(e) => {
            eprintln!("weir bench agent: {e}");
            return 2;
        }
    };
    let input = work.path.join("input.log");
    if let Err(e) = write_input(&input, options.lines) {
        eprintln!("weir bench agent: writing {}: {e}", input.display());
        return 2;
    }
    let receiver = match weir_agent::receiver::Receiver::counting() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("weir bench agent: starting the receiver: {e}");
            return 2;
        }
    };
    let cases: [(&'static str, &'static str); 4] = [
        ("blackhole", "memory"),
        ("blackhole", "disk"),
        ("http", "memory"),
        ("http", "disk"),
    ];
    let mut variants: Vec<Variant> = Vec::new();
    let mut failures = Vec::new();
    // One warm-up, then the cases take turns.
    for round in 0..=options.runs {
        for (i, (sink, buffer)) in cases.iter().enumerate() {
            if round == 0 && i > 0 {
                break;
            }
            let before = receiver.lines();
            let outcome = run_once(&work.path, &input, sink, buffer, &options, &receiver.addr);
            match outcome {
                Ok(run) => {
                    if *sink == "http" && receiver.lines() - before != options.lines {
                        failures.push(format!(
                            "{sink}/{buffer}: the receiver got {} lines of {}",
                            receiver.lines() - before,
                            options.lines
                        ));
                    }
                    eprintln!(
                        "{} {sink} {buffer}: {:.3} s, {:.0} lines/s, CPU {:.3} s, peak RSS {} KiB",
                        if round == 0 { "warm-up" } else { "run" },
                        run.wall_s,
                        options.lines as f64 / run.wall_s,
                        run.cpu.total(),
                        run.peak_rss_kib
                    );
                    if round > 0 {
                        match variants
                            .iter_mut()
                            .find(|v| v.sink == *sink && v.buffer == *buffer)
                        {
                            Some(v) => v.runs.push(run),
                            None => variants.push(Variant {
                                sink,
                                buffer,
                                runs: vec![run],
                                median_wall_s: 0.0,
                                lines_per_s: 0.0,
                                mib_per_s: 0.0,
                                median_cpu_s: 0.0,
                                lines_per_cpu_s: 0.0,
                                max_peak_rss_kib: 0,
                            }),
                        }
                    }
                }
                Err(e) => {
                    eprintln!("{sink} {buffer}: FAILED: {e}");
                    failures.push(format!("{sink}/{buffer}: {e}"));
                }
            }
        }
    }
    for v in &mut variants {
        let walls: Vec<f64> = v.runs.iter().map(|r| r.wall_s).collect();
        let cpus: Vec<f64> = v.runs.iter().map(|r| r.cpu.total()).collect();
        v.median_wall_s = median(&walls);
        v.median_cpu_s = median(&cpus);
        v.lines_per_s = options.lines as f64 / v.median_wall_s;
        v.mib_per_s = (options.lines * LINE_LEN) as f64 / MIB / v.median_wall_s;
        v.lines_per_cpu_s = options.lines as f64 / v.median_cpu_s;
        v.max_peak_rss_kib = v.runs.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0);
    }
    let targets = targets(&variants, options.one_core);
    let table = render(&variants, &targets, &failures, &options);
    if options.json {
        eprint!("{table}");
        let report = serde_json::json!({
            "lines": options.lines,
            "line_len": LINE_LEN,
            "one_core": options.one_core,
            "variants": variants,
            "targets": targets,
            "failures": failures,
        });
        println!("{report}");
    } else {
        print!("{table}");
    }
    i32::from(!failures.is_empty())
}

fn write_input(path: &Path, lines: u64) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let filler = "x".repeat((LINE_LEN - 16) as usize);
    for i in 0..lines {
        // 5 + 9 + 1 + 84 + 1 = 100 bytes.
        writeln!(out, "line {i:09} {filler}")?;
    }
    out.flush()
}

fn config(
    data_dir: &Path,
    input: &Path,
    sink: &str,
    buffer: &str,
    port: u16,
    receiver: &std::net::SocketAddr,
) -> String {
    let sink_table = match sink {
        "http" => format!("type = \"http\"\nuri = \"http://{receiver}/ingest\""),
        _ => "type = \"blackhole\"".to_owned(),
    };
    let buffer_table = match buffer {
        "disk" => "{ type = \"disk\", max_size = \"1GiB\", fsync = \"never\" }",
        _ => "{ type = \"memory\", max_size = \"16MiB\" }",
    };
    format!(
        r#"data_dir = "{data}"
[api]
address = "127.0.0.1:{port}"
[sources.input]
type = "file"
include = ["{input}"]
format = "plain"
[sinks.out]
inputs = ["input"]
{sink_table}
batch = {{ max_records = 2000, max_bytes = "2MiB", timeout = "50ms" }}
buffer = {buffer_table}
"#,
        data = data_dir.display(),
        input = input.display(),
    )
}

fn run_once(
    work: &Path,
    input: &Path,
    sink: &str,
    buffer: &str,
    options: &Options,
    receiver: &std::net::SocketAddr,
) -> Result<Run, String> {
    let data_dir = work.join(format!("data-{sink}-{buffer}"));
    let _ = std::fs::remove_dir_all(&data_dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let config_path = work.join(format!("{sink}-{buffer}.toml"));
    std::fs::write(
        &config_path,
        config(&data_dir, input, sink, buffer, port, receiver),
    )
    .map_err(|e| e.to_string())?;
    let mut command = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    command
        .args(["agent", "-c"])
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if options.one_core {
        measure::pin(&mut command, 0);
    }
    let started = Instant::now();
    let mut child = command.spawn().map_err(|e| e.to_string())?;
    let outcome = wait_delivered(&mut child, port, options.lines, started);
    let done = Instant::now();
    let cpu = measure::cpu_of(child.id());
    let rss = measure::peak_rss_kib(child.id());
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut said = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut said);
    }
    let _ = measure::wait_with_timeout(&mut child, Duration::from_secs(30));
    let _ = std::fs::remove_dir_all(&data_dir);
    outcome.map_err(|e| format!("{e}; the agent said: {}", said.trim()))?;
    Ok(Run {
        wall_s: (done - started).as_secs_f64(),
        cpu: cpu.ok_or("cannot read the agent's CPU time")?,
        peak_rss_kib: rss.ok_or("cannot read the agent's peak RSS")?,
    })
}

/// Polls the agent's /metrics until the sink has had `lines` acknowledged.
fn wait_delivered(
    child: &mut Child,
    port: u16,
    lines: u64,
    started: Instant,
) -> Result<(), String> {
    let limit = Duration::from_secs(600);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the agent exited early ({status})"));
        }
        if started.elapsed() > limit {
            return Err(format!("not every line delivered within {limit:?}"));
        }
        if let Some(done) = delivered(port)
            && done >= lines
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn targets(variants: &[Variant], one_core: bool) -> Vec<Target> {
    let find = |sink: &str, buffer: &str| {
        variants
            .iter()
            .find(|v| v.sink == sink && v.buffer == buffer)
    };
    let mut targets = Vec::new();
    if let Some(v) = find("blackhole", "memory") {
        targets.push(Target {
            case: format!(
                "tail → blackhole, memory buffer{}",
                if one_core { ", on one core" } else { "" }
            ),
            target: "≥ 1,000,000 lines/s".into(),
            value: format!("{:.0}", v.lines_per_s),
            met: one_core && v.lines_per_s >= 1e6,
        });
    }
    for sink in ["blackhole", "http"] {
        if let (Some(memory), Some(disk)) = (find(sink, "memory"), find(sink, "disk")) {
            let ratio = disk.lines_per_s / memory.lines_per_s;
            targets.push(Target {
                case: format!("tail → {sink}: disk buffer ÷ memory buffer"),
                target: "≥ 0.70".into(),
                value: format!("{ratio:.3}"),
                met: ratio >= 0.7,
            });
        }
    }
    for v in variants {
        targets.push(Target {
            case: format!("peak RSS, tail → {} with a {} buffer", v.sink, v.buffer),
            target: "< 64 MiB".into(),
            value: format!("{:.1} MiB", v.max_peak_rss_kib as f64 / 1024.0),
            met: v.max_peak_rss_kib < 64 * 1024,
        });
    }
    targets
}

fn render(
    variants: &[Variant],
    targets: &[Target],
    failures: &[String],
    options: &Options,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nweir bench agent: {} lines of {LINE_LEN} B ({:.0} MiB) from one file, {} runs per variant after a warm-up, taking turns; the agent {}; http goes to a counting receiver on loopback in the bench process\n",
        options.lines,
        (options.lines * LINE_LEN) as f64 / MIB,
        options.runs,
        if options.one_core {
            "pinned to CPU 0"
        } else {
            "on any CPU"
        }
    );
    let _ = writeln!(
        out,
        "| sink | buffer | wall s, median | lines/s | MiB/s | agent CPU s, median | lines per CPU s | peak RSS MiB (max) |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for v in variants {
        let _ = writeln!(
            out,
            "| {} | {} | {:.3} | {:.0} | {:.1} | {:.3} | {:.0} | {:.1} |",
            v.sink,
            v.buffer,
            v.median_wall_s,
            v.lines_per_s,
            v.mib_per_s,
            v.median_cpu_s,
            v.lines_per_cpu_s,
            v.max_peak_rss_kib as f64 / 1024.0
        );
    }
    let _ = writeln!(
        out,
        "\nTargets (issue 4)\n\n| case | target | this run | verdict |\n| --- | --- | ---: | --- |"
    );
    for t in targets {
        let _ = writeln!(
            out,
            "| {} | {} | {} | **{}** |",
            t.case,
            t.target,
            t.value,
            if t.met { "met" } else { "MISSED" }
        );
    }
    let met = targets.iter().filter(|t| t.met).count();
    let _ = writeln!(out, "\n{met} of {} targets met.", targets.len());
    for failure in failures {
        let _ = writeln!(out, "FAILED: {failure}");
    }
    out
}
