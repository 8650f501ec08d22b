//! `weir bench capture`: pushes the same writer through bare `cat`,
//! `weir run` and conmon, workload by workload, verifies every log and
//! reports medians and ratios. A fourth peer, `cat-cri`, is `cat` of the
//! writer's lines already formatted as weir's CRI records: the same bytes as
//! weir's log, and so the floor for any CRI monitor on this machine.
//!
//! Peers take turns within each round (cat, cat-cri, weir, conmon, then the
//! next round) so that slow drift of the machine (page cache, writeback, other
//! tenants) spreads over all of them instead of penalising one. Each
//! workload starts with unmeasured warm-up rounds: on the machine this was
//! written on, the first run after a quiet spell was regularly 2-5x slower
//! for every peer. Before each run, free memory is touched so that no run
//! pays for the hypervisor refilling memory the guest had handed back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::conmon::Conmon;
use super::machine::{self, Machine};
use super::peers::{self, Job, Measured, Peer};
use super::report::{Report, RunRecord, failure_banner};
use super::verify::{self, Found};
use super::workdir::WorkDir;
use super::workload::Workload;
use super::writer;

/// What to run, from the command line.
pub struct Options {
    pub lines: u64,
    pub runs: u32,
    /// Unmeasured (but verified) rounds before the measured ones.
    pub warmup: u32,
    pub workloads: Vec<Workload>,
    pub work_dir: Option<PathBuf>,
    pub conmon: bool,
    /// Touch free memory before each run (see `machine::prefault_free_memory`).
    pub prefault: bool,
    pub json: bool,
}

/// Space kept free on top of the largest log, so the benchmark never fills
/// the disk it measures.
const SPARE_BYTES: u64 = 256 << 20;

pub fn run(options: Options) -> i32 {
    let work = match WorkDir::new(
        options.work_dir.clone(),
        "capture",
        &["logs", "conmon-runs"],
    ) {
        Ok(work) => work,
        Err(message) => {
            eprintln!("weir bench capture: {message}");
            return 2;
        }
    };
    let result = run_in(&options, &work.path);
    super::print_report("capture", options.json, result, |r| {
        (r.table(), r.failures.is_empty())
    })
}

fn run_in(options: &Options, work: &Path) -> Result<Report, String> {
    let writer = writer::build(work)?;
    check_free_space(work, options)?;
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
    let (mut conmon, conmon_skipped) = prepare_conmon(options, work, &writer);
    let mut peers = vec![Peer::Cat, Peer::CatCri, Peer::Weir];
    if conmon.is_some() {
        peers.push(Peer::Conmon);
    }

    let timeout = Duration::from_secs(60) + Duration::from_micros(options.lines.saturating_mul(20));
    let mut records = Vec::new();
    let mut failures = Vec::new();
    for workload in &options.workloads {
        for round in 0..options.warmup + options.runs {
            // Rounds before `warmup` are verified but not recorded.
            let run = round.checked_sub(options.warmup).map(|r| r + 1);
            for &peer in &peers {
                let job = Job {
                    writer: &writer,
                    workload: *workload,
                    lines: options.lines,
                    log: logs.join(format!("{}.log", peer.name())),
                    scratch: &logs,
                    timeout,
                };
                if options.prefault {
                    machine::prefault_free_memory(2 * estimated_log_bytes(workload, options.lines));
                }
                let outcome = run_and_check(peer, &job, conmon.as_mut());
                let what = match run {
                    Some(run) => format!("workload {} run {run}/{}", workload.id, options.runs),
                    None => format!("workload {} warm-up {}", workload.id, round + 1),
                };
                let what = format!("{what} {}", peer.name());
                match outcome {
                    Ok((measured, found)) => {
                        eprintln!(
                            "{what}: {:.3} s, CPU {:.2} s, peak RSS {} KiB, {} lines ok ({} bytes)",
                            measured.wall_s,
                            measured.cpu.total(),
                            measured.peak_rss_kib,
                            found.lines,
                            found.file_bytes
                        );
                        if let Some(run) = run {
                            records.push(RunRecord {
                                workload: workload.id,
                                peer,
                                run,
                                measured,
                                found,
                            });
                        }
                    }
                    Err(message) => {
                        let failure = format!("{what}: {message}");
                        eprintln!("{}", failure_banner(std::slice::from_ref(&failure)));
                        failures.push(failure);
                    }
                }
            }
        }
    }
    Ok(Report::build(
        options.lines,
        options.runs,
        Machine::describe(work),
        conmon.map(|c| c.versions),
        conmon_skipped,
        options.workloads.clone(),
        records,
        failures,
    ))
}

/// Finds conmon and builds its bundle, or says why it is left out.
fn prepare_conmon(
    options: &Options,
    work: &Path,
    writer: &Path,
) -> (Option<Conmon>, Option<String>) {
    if !options.conmon {
        return (None, Some("--no-conmon".to_owned()));
    }
    match Conmon::prepare(work, writer) {
        Ok(conmon) => (Some(conmon), None),
        Err(why) => {
            eprintln!("weir bench capture: conmon skipped: {why}");
            (None, Some(why))
        }
    }
}

/// Runs one peer, verifies its log and deletes it: at ~290 MB a log, never
/// more than one stays on disk.
fn run_and_check(
    peer: Peer,
    job: &Job,
    conmon: Option<&mut Conmon>,
) -> Result<(Measured, Found), String> {
    let measured = match (peer, conmon) {
        (Peer::Cat, _) => peers::run_cat(job, false),
        (Peer::CatCri, _) => peers::run_cat(job, true),
        (Peer::Weir, _) => peers::run_weir(job),
        (Peer::Conmon, Some(conmon)) => conmon.run(job),
        (Peer::Conmon, None) => Err("conmon is not prepared".to_owned()),
    };
    let checked = measured.and_then(|m| {
        let found = verify::check(&job.log, peer.log_kind(), job.lines, job.workload.line_len)?;
        // cat-cri stands for "weir's bytes without weir": both must hold one
        // full record per line, byte for byte as long.
        if matches!(peer, Peer::CatCri | Peer::Weir) {
            let expected = job.workload.cri_log_bytes(job.lines);
            verify::check_size(&job.log, &found, expected)?;
        }
        Ok((m, found))
    });
    let _ = std::fs::remove_file(&job.log);
    // Let the deleted log's journal and any writeback finish before the next
    // run is timed.
    // SAFETY: sync has no memory effects.
    unsafe { libc::sync() };
    checked
}

/// The size of a CRI log of `lines` lines: content plus a prefix of about
/// 45 bytes per record (more with conmon's split records).
fn estimated_log_bytes(workload: &Workload, lines: u64) -> u64 {
    lines * (workload.line_len + 48)
}

/// Refuses to start when the largest log (a CRI file: about 48 bytes of
/// prefix per line, more with conmon's split records) would not fit.
fn check_free_space(work: &Path, options: &Options) -> Result<(), String> {
    let longest = options
        .workloads
        .iter()
        .map(|w| w.line_len)
        .max()
        .unwrap_or(0);
    let need = options.lines * (longest + 60) + SPARE_BYTES;
    match machine::statfs(work) {
        Some(fs) if fs.free_bytes < need => Err(format!(
            "{} has {} MiB free; the logs need about {} MiB (use --work-dir or fewer --lines)",
            work.display(),
            fs.free_bytes >> 20,
            need >> 20
        )),
        _ => Ok(()),
    }
}
