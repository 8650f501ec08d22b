//! Turns the measured runs into medians, ratios against the peers and the
//! issue's targets, printed as a table or one JSON object.

use std::fmt::Write as _;

use serde::Serialize;

use super::conmon::Versions;
use super::machine::Machine;
use super::measure::CpuTimes;
use super::peers::{Measured, Peer};
use super::verify::Found;
use super::workload::Workload;

/// How the conmon wall time is taken, printed with every report.
pub const CONMON_WALL_NOTE: &str = "conmon's wall time runs from `runc start` returning to \
     conmon's exit: container creation and `runc start` itself are excluded, although the writer \
     already runs during the end of `runc start`, which flatters conmon slightly. conmon runs \
     with --no-sync-log (weir does not fsync its log either).";

/// What the columns mean, printed under the table.
const COLUMNS_NOTE: &str = "\
cat-cri: cat of the same lines, written by the writer as weir's CRI records (weir's exact bytes).
wall: cat, cat-cri and weir from spawning the writer to the monitor's exit, conmon as noted above.
MB/s: application bytes (10^6 B/s), for cat-cri too. CPU: the monitor's own user+sys from
/proc/PID/stat of its zombie (children excluded; 10 ms ticks). peak RSS: VmHWM sampled every
10 ms. read calls: syscr of /proc/PID/io (includes reaped children: the writer makes none, runc
create a few hundred).
";

/// The peak RSS target, per monitored process.
const RSS_TARGET_KIB: u64 = 6 * 1024;

/// One verified run of one peer.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub workload: u8,
    pub peer: Peer,
    pub run: u32,
    #[serde(flatten)]
    pub measured: Measured,
    pub found: Found,
}

/// Medians over the runs of one peer on one workload.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub workload: u8,
    pub peer: Peer,
    pub runs: usize,
    pub wall_s: f64,
    /// The spread of wall times over the runs, to judge the machine's noise.
    pub wall_min_s: f64,
    pub wall_max_s: f64,
    /// Application bytes per second, in 10^6 bytes.
    pub mb_per_s: f64,
    pub lines_per_s: f64,
    pub cpu_s: f64,
    pub user_s: f64,
    pub sys_s: f64,
    pub peak_rss_kib: u64,
    /// Read system calls of the monitor (its reaped children make next to
    /// none).
    pub read_calls: Option<u64>,
    /// conmon only: the median duration of `runc start`, excluded from wall_s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runc_start_s: Option<f64>,
}

/// weir against the limit (cat), the limit for its bytes (cat-cri) and the
/// incumbent (conmon) on one workload.
#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    pub workload: u8,
    pub weir_wall_over_cat: Option<f64>,
    /// What writing weir's bytes costs without weir: the floor of
    /// `weir_wall_over_cat` on this machine.
    pub cat_cri_wall_over_cat: Option<f64>,
    /// weir against cat of the very bytes weir writes.
    pub weir_wall_over_cat_cri: Option<f64>,
    pub conmon_wall_over_cat: Option<f64>,
    pub weir_throughput_over_conmon: Option<f64>,
    pub weir_cpu_over_conmon: Option<f64>,
    pub weir_peak_rss_kib: Option<u64>,
}

/// One target of issue 2 and whether this run meets it (None: not measured).
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    pub workload: u8,
    pub target: String,
    pub value: Option<f64>,
    pub met: Option<bool>,
}

/// Everything `weir bench capture` found.
#[derive(Debug, Serialize)]
pub struct Report {
    pub lines: u64,
    pub runs: u32,
    pub machine: Machine,
    pub conmon_versions: Option<Versions>,
    pub conmon_skipped: Option<String>,
    pub notes: Vec<&'static str>,
    pub workloads: Vec<Workload>,
    pub summary: Vec<Summary>,
    pub ratios: Vec<Ratios>,
    pub targets: Vec<TargetCheck>,
    pub failures: Vec<String>,
    pub all_runs: Vec<RunRecord>,
}

impl Report {
    /// Computes medians, ratios and target checks from the raw runs.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        lines: u64,
        runs: u32,
        machine: Machine,
        conmon_versions: Option<Versions>,
        conmon_skipped: Option<String>,
        workloads: Vec<Workload>,
        all_runs: Vec<RunRecord>,
        failures: Vec<String>,
    ) -> Report {
        let mut summary = Vec::new();
        for workload in &workloads {
            for peer in [Peer::Cat, Peer::CatCri, Peer::Weir, Peer::Conmon] {
                let runs: Vec<&Measured> = all_runs
                    .iter()
                    .filter(|r| r.workload == workload.id && r.peer == peer)
                    .map(|r| &r.measured)
                    .collect();
                if !runs.is_empty() {
                    summary.push(summarize(workload, peer, lines, &runs));
                }
            }
        }
        let ratios: Vec<Ratios> = workloads.iter().map(|w| ratios(w.id, &summary)).collect();
        let targets = ratios.iter().flat_map(targets_for).collect();
        Report {
            lines,
            runs,
            machine,
            conmon_versions,
            conmon_skipped,
            notes: vec![CONMON_WALL_NOTE],
            workloads,
            summary,
            ratios,
            targets,
            failures,
            all_runs,
        }
    }

    /// The human-readable report.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "weir bench capture: {} lines per workload, median of {} run(s)",
            self.lines, self.runs
        );
        let _ = writeln!(
            out,
            "machine: {} CPUs ({}), Linux {}, logs on {}",
            m.cpus, m.cpu_model, m.kernel, m.log_fs
        );
        let _ = write!(out, "peers: {} | weir {}", m.cat_version, m.weir_version);
        match (&self.conmon_versions, &self.conmon_skipped) {
            (Some(v), _) => {
                let _ = writeln!(out, " | {} + {}", v.conmon, v.runc);
                let _ = writeln!(out, "note: {CONMON_WALL_NOTE}");
                let starts = self.summary.iter().filter_map(|s| s.runc_start_s);
                let _ = writeln!(
                    out,
                    "      `runc start` took {:.1} ms (median over workloads of their medians).",
                    median(starts) * 1e3
                );
            }
            (None, Some(why)) => {
                let _ = writeln!(out, " | conmon skipped: {why}");
            }
            (None, None) => out.push('\n'),
        }

        let _ = writeln!(
            out,
            "\n{:<30} {:<7} {:>7} {:>13} {:>7} {:>8} {:>17} {:>9} {:>15}",
            "workload",
            "peer",
            "wall s",
            "(min-max)",
            "MB/s",
            "Mlines/s",
            "CPU s (usr+sys)",
            "peak RSS",
            "read calls"
        );
        for workload in &self.workloads {
            let mut label = format!("{} {}", workload.id, workload.title);
            for s in self.summary.iter().filter(|s| s.workload == workload.id) {
                let _ = writeln!(
                    out,
                    "{:<30} {:<7} {:>7.3} {:>13} {:>7.1} {:>8.2} {:>17} {:>9} {:>15}",
                    label,
                    s.peer.name(),
                    s.wall_s,
                    format!("({:.3}-{:.3})", s.wall_min_s, s.wall_max_s),
                    s.mb_per_s,
                    s.lines_per_s / 1e6,
                    format!("{:.2} ({:.2}+{:.2})", s.cpu_s, s.user_s, s.sys_s),
                    mib(s.peak_rss_kib),
                    s.read_calls.map_or("-".to_owned(), count),
                );
                label.clear();
            }
        }

        out.push_str(COLUMNS_NOTE);
        let _ = writeln!(
            out,
            "\n{:<9} {:>13} {:>16} {:>17} {:>15} {:>24} {:>17} {:>14}",
            "workload",
            "weir/cat wall",
            "cat-cri/cat wall",
            "weir/cat-cri wall",
            "conmon/cat wall",
            "weir/conmon throughput",
            "weir/conmon CPU",
            "weir peak RSS"
        );
        for r in &self.ratios {
            let _ = writeln!(
                out,
                "{:<9} {:>13} {:>16} {:>17} {:>15} {:>24} {:>17} {:>14}",
                r.workload,
                times(r.weir_wall_over_cat),
                times(r.cat_cri_wall_over_cat),
                times(r.weir_wall_over_cat_cri),
                times(r.conmon_wall_over_cat),
                times(r.weir_throughput_over_conmon),
                times(r.weir_cpu_over_conmon),
                r.weir_peak_rss_kib.map_or("-".to_owned(), mib),
            );
        }

        let _ = writeln!(
            out,
            "\ntargets (issue 2; against plain cat), each workload followed by weir against cat-cri"
        );
        for r in &self.ratios {
            for t in self.targets.iter().filter(|t| t.workload == r.workload) {
                let verdict = match t.met {
                    Some(true) => "met",
                    Some(false) => "MISSED",
                    None => "not measured",
                };
                let value = match t.value {
                    Some(v) if t.target.contains("MiB") => format!("{v:.1} MiB"),
                    Some(v) => format!("{v:.2}×"),
                    None => "-".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "  {verdict:<13} workload {}: {:<38} {value}",
                    t.workload, t.target
                );
            }
            let _ = writeln!(
                out,
                "  {:<13} workload {}: {:<38} {}",
                "info",
                r.workload,
                "weir wall vs cat of the same CRI bytes",
                times(r.weir_wall_over_cat_cri)
            );
        }
        if !self.failures.is_empty() {
            let _ = writeln!(out, "\n{}", failure_banner(&self.failures));
        }
        out
    }
}

/// A message nobody can miss: a monitor lost or mangled lines.
pub fn failure_banner(failures: &[String]) -> String {
    let mut out = String::from(
        "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !!! BENCHMARK FAILED: runs that did not store every line correctly !!!\n",
    );
    for failure in failures {
        let _ = writeln!(out, "!!! {failure}");
    }
    out.push_str("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    out
}

fn summarize(workload: &Workload, peer: Peer, lines: u64, runs: &[&Measured]) -> Summary {
    let walls = || runs.iter().map(|m| m.wall_s);
    let read_calls: Vec<f64> = runs
        .iter()
        .filter_map(|m| m.read_calls.map(|n| n as f64))
        .collect();
    let bytes = workload.app_bytes(lines) as f64;
    let cpu = |f: fn(&CpuTimes) -> f64| median(runs.iter().map(|m| f(&m.cpu)));
    Summary {
        workload: workload.id,
        peer,
        runs: runs.len(),
        wall_s: median(walls()),
        wall_min_s: walls().fold(f64::INFINITY, f64::min),
        wall_max_s: walls().fold(0.0, f64::max),
        mb_per_s: median(runs.iter().map(|m| bytes / m.wall_s / 1e6)),
        lines_per_s: median(runs.iter().map(|m| lines as f64 / m.wall_s)),
        cpu_s: cpu(CpuTimes::total),
        user_s: cpu(|c| c.user_s),
        sys_s: cpu(|c| c.sys_s),
        peak_rss_kib: median(runs.iter().map(|m| m.peak_rss_kib as f64)) as u64,
        read_calls: (read_calls.len() == runs.len()).then(|| median(read_calls.into_iter()) as u64),
        runc_start_s: (peer == Peer::Conmon)
            .then(|| median(runs.iter().filter_map(|m| m.runc_start_s))),
    }
}

fn ratios(workload: u8, summary: &[Summary]) -> Ratios {
    let find = |peer| {
        summary
            .iter()
            .find(|s| s.workload == workload && s.peer == peer)
    };
    let (cat, cat_cri, weir, conmon) = (
        find(Peer::Cat),
        find(Peer::CatCri),
        find(Peer::Weir),
        find(Peer::Conmon),
    );
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    Ratios {
        workload,
        weir_wall_over_cat: ratio(weir.map(|s| s.wall_s), cat.map(|s| s.wall_s)),
        cat_cri_wall_over_cat: ratio(cat_cri.map(|s| s.wall_s), cat.map(|s| s.wall_s)),
        weir_wall_over_cat_cri: ratio(weir.map(|s| s.wall_s), cat_cri.map(|s| s.wall_s)),
        conmon_wall_over_cat: ratio(conmon.map(|s| s.wall_s), cat.map(|s| s.wall_s)),
        weir_throughput_over_conmon: ratio(weir.map(|s| s.mb_per_s), conmon.map(|s| s.mb_per_s)),
        weir_cpu_over_conmon: ratio(weir.map(|s| s.cpu_s), conmon.map(|s| s.cpu_s)),
        weir_peak_rss_kib: weir.map(|s| s.peak_rss_kib),
    }
}

/// The targets of issue 2 that apply to this workload.
fn targets_for(r: &Ratios) -> Vec<TargetCheck> {
    let at_least = |target: &str, value: Option<f64>, bound: f64| TargetCheck {
        workload: r.workload,
        target: target.to_owned(),
        value,
        met: value.map(|v| v >= bound),
    };
    let at_most = |target: &str, value: Option<f64>, bound: f64| TargetCheck {
        met: value.map(|v| v <= bound),
        ..at_least(target, value, 0.0)
    };
    let throughput = r.weir_throughput_over_conmon;
    let mut checks = match r.workload {
        1 => vec![
            at_least("weir throughput >= 1.5x conmon's", throughput, 1.5),
            at_most("weir wall <= 1.2x cat's", r.weir_wall_over_cat, 1.2),
        ],
        2 | 4 => vec![
            at_most("weir wall <= 1.05x cat's", r.weir_wall_over_cat, 1.05),
            at_most("weir CPU <= 0.5x conmon's", r.weir_cpu_over_conmon, 0.5),
        ],
        3 => vec![at_least(
            "weir throughput >= 1.5x conmon's",
            throughput,
            1.5,
        )],
        _ => Vec::new(),
    };
    let rss_mib = r.weir_peak_rss_kib.map(|k| k as f64 / 1024.0);
    checks.push(at_most(
        "weir peak RSS <= 6 MiB",
        rss_mib,
        RSS_TARGET_KIB as f64 / 1024.0,
    ));
    checks
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A syscall count, short: 950, 31.2k, 2.00M.
fn count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.2}M", n as f64 / 1e6),
    }
}

fn times(ratio: Option<f64>) -> String {
    ratio.map_or("-".to_owned(), |r| format!("{r:.2}×"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), 2.5);
    }

    #[test]
    fn targets_follow_the_issue() {
        let r = Ratios {
            workload: 2,
            weir_wall_over_cat: Some(1.04),
            cat_cri_wall_over_cat: Some(1.4),
            weir_wall_over_cat_cri: Some(0.74),
            conmon_wall_over_cat: Some(2.0),
            weir_throughput_over_conmon: Some(1.9),
            weir_cpu_over_conmon: Some(0.6),
            weir_peak_rss_kib: Some(7000),
        };
        let met: Vec<Option<bool>> = targets_for(&r).iter().map(|t| t.met).collect();
        assert_eq!(met, [Some(true), Some(false), Some(false)]);
    }
}
