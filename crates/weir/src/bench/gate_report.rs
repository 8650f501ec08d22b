//! The figures of `weir bench gate`: what each case delivered against its
//! budget or fair share, the CPU the gate costs, how fast the writer goes
//! under drop and ring, the targets with verdicts, printed as a
//! table or one JSON object.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::machine::Machine;

/// Delivered rate ÷ budget must lie within 1 ± this.
pub const ACCURACY_TOLERANCE: f64 = 0.02;
/// Every container must get at least this fraction of its fair share.
pub const FAIR_SHARE_FLOOR: f64 = 0.95;
/// weir's CPU with a budget that is never hit ÷ without a budget, at most.
pub const OVERHEAD_CEILING: f64 = 1.05;
/// The writer's own throughput under drop and ring ÷ without a budget, at
/// least ("within 10 % of an unbudgeted run").
pub const WRITER_THROUGHPUT_FLOOR: f64 = 0.90;
/// The budget of the writer case as a fraction of the writer's throughput
/// without a budget ("while the budget is 1 % of it").
pub const WRITER_BUDGET_FRACTION: f64 = 0.01;

const MIB: f64 = (1u64 << 20) as f64;
/// The writer case is in MB (10^6 B), as the capture benchmark is.
const MB: f64 = 1e6;

/// The resolution of [`RunFigures::per_tick`], seconds.
pub const TICK_S: f64 = 0.1;

/// The part of a run of `seconds` whose rate is called steady: from 1 s
/// after the start (past the first burst and the node share settling) to
/// 1 s before the writer stops (shorter runs: their middle half).
pub fn steady_window(seconds: f64) -> (f64, f64) {
    let margin = (seconds / 4.0).min(1.0);
    (margin, seconds - margin)
}

/// Bytes and lines, as `weir run --summary` counts them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub bytes: u64,
    pub lines: u64,
}

impl Counts {
    pub fn plus(self, other: Counts) -> Counts {
        Counts {
            bytes: self.bytes + other.bytes,
            lines: self.lines + other.lines,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Met,
    Missed,
}

impl Verdict {
    pub fn from(met: bool) -> Verdict {
        if met { Verdict::Met } else { Verdict::Missed }
    }

    fn word(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "MISSED",
        }
    }
}

/// One `weir run` of the benchmark, as it accounted for itself (stdout and
/// stderr together) and as its log was found.
#[derive(Debug, Clone, Serialize)]
pub struct RunFigures {
    /// From spawning `weir run` to its exit.
    pub wall_s: f64,
    /// `monitor.cpu_seconds` of the summary (getrusage of weir itself).
    pub cpu_s: f64,
    pub peak_rss_kib: u64,
    pub read: Counts,
    /// Application bytes and lines stored (markers excluded); the log file
    /// was scanned and holds exactly these.
    pub written: Counts,
    pub dropped_rate_limit: Counts,
    pub dropped_ring_overflow: Counts,
    pub dropped_disk: Counts,
    /// Drop markers weir wrote into the log.
    pub markers: u64,
    pub log_file_bytes: u64,
    /// Application bytes stored, by the time weir stamped on each record, in
    /// ticks of [`TICK_S`] from spawning `weir run`.
    pub per_tick: Vec<u64>,
}

impl RunFigures {
    pub fn dropped(&self) -> Counts {
        self.dropped_rate_limit
            .plus(self.dropped_ring_overflow)
            .plus(self.dropped_disk)
    }

    /// Application bytes stored per second of the run.
    pub fn delivered_bytes_per_s(&self) -> f64 {
        self.written.bytes as f64 / self.wall_s
    }

    /// Application bytes stamped from `from_s` to `to_s` after the start.
    pub fn bytes_between(&self, from_s: f64, to_s: f64) -> u64 {
        let (from, to) = (tick(from_s), tick(to_s).min(self.per_tick.len()));
        self.per_tick.get(from..to).map_or(0, |t| t.iter().sum())
    }

    /// Application bytes per second stamped within `window`.
    pub fn rate_within(&self, (from_s, to_s): (f64, f64)) -> f64 {
        let seconds = (tick(to_s) - tick(from_s)) as f64 * TICK_S;
        self.bytes_between(from_s, to_s) as f64 / seconds
    }
}

fn tick(seconds: f64) -> usize {
    (seconds / TICK_S).round() as usize
}

/// One container alone under its own budget, its writer at full speed.
#[derive(Debug, Clone, Serialize)]
pub struct AccuracyCase {
    pub policy: String,
    pub budget_bytes_per_s: f64,
    pub run: RunFigures,
    pub delivered_bytes_per_s: f64,
    pub delivered_over_budget: f64,
    pub verdict: Verdict,
    /// The rate within the steady window (the first burst left out).
    pub steady_bytes_per_s: f64,
    pub steady_over_budget: f64,
}

impl AccuracyCase {
    pub fn new(policy: &str, budget: f64, seconds: f64, run: RunFigures) -> AccuracyCase {
        let delivered = run.delivered_bytes_per_s();
        let ratio = delivered / budget;
        let steady = run.rate_within(steady_window(seconds));
        AccuracyCase {
            policy: policy.to_owned(),
            budget_bytes_per_s: budget,
            steady_bytes_per_s: steady,
            steady_over_budget: steady / budget,
            run,
            delivered_bytes_per_s: delivered,
            delivered_over_budget: ratio,
            verdict: Verdict::from((ratio - 1.0).abs() <= ACCURACY_TOLERANCE),
        }
    }
}

/// One container of the fairness case.
#[derive(Debug, Clone, Serialize)]
pub struct FairContainer {
    pub name: String,
    pub weight: u32,
    /// What its writer asks for; `None`: full speed.
    pub demand_bytes_per_s: Option<f64>,
    /// Its max-min fair share of the node budget by weight.
    pub fair_share_bytes_per_s: f64,
    /// The mean of what `weir gate status` said the gate granted it, sampled
    /// once a second while all ran.
    pub granted_mean_bytes_per_s: Option<f64>,
    pub run: RunFigures,
    pub delivered_bytes_per_s: f64,
    pub delivered_over_fair_share: f64,
    pub verdict: Verdict,
    /// Application bytes stamped in the first half second.
    pub first_half_second_bytes: u64,
    /// The rate within the steady window.
    pub steady_bytes_per_s: f64,
    pub steady_over_fair_share: f64,
}

/// What one fairness container was and did, before it is judged.
#[derive(Debug, Clone)]
pub struct FairRun {
    pub name: String,
    pub weight: u32,
    /// What its writer asks for; `None`: full speed.
    pub demand: Option<f64>,
    pub run: RunFigures,
    /// The mean of what `weir gate status` showed the gate granting it.
    pub granted: Option<f64>,
}

/// Four containers under one node budget.
#[derive(Debug, Clone, Serialize)]
pub struct Fairness {
    pub node_rate_bytes_per_s: f64,
    pub policy: String,
    pub containers: Vec<FairContainer>,
    pub total_delivered_bytes_per_s: f64,
    pub total_over_node_rate: f64,
    pub total_first_half_second_bytes: u64,
    pub total_steady_bytes_per_s: f64,
    pub total_steady_over_node_rate: f64,
    /// `weir gate status` samples taken while all containers ran.
    pub status_samples: usize,
}

impl Fairness {
    pub fn new(
        node_rate: f64,
        policy: &str,
        seconds: f64,
        containers: Vec<FairRun>,
        status_samples: usize,
    ) -> Fairness {
        let claims: Vec<(u32, Option<f64>)> =
            containers.iter().map(|c| (c.weight, c.demand)).collect();
        let shares = fair_shares(node_rate, &claims);
        let containers: Vec<FairContainer> = containers
            .into_iter()
            .zip(shares)
            .map(|(c, share)| {
                let delivered = c.run.delivered_bytes_per_s();
                let ratio = delivered / share;
                let steady = c.run.rate_within(steady_window(seconds));
                FairContainer {
                    first_half_second_bytes: c.run.bytes_between(0.0, 0.5),
                    steady_bytes_per_s: steady,
                    steady_over_fair_share: steady / share,
                    name: c.name,
                    weight: c.weight,
                    demand_bytes_per_s: c.demand,
                    fair_share_bytes_per_s: share,
                    granted_mean_bytes_per_s: c.granted,
                    run: c.run,
                    delivered_bytes_per_s: delivered,
                    delivered_over_fair_share: ratio,
                    verdict: Verdict::from(ratio >= FAIR_SHARE_FLOOR),
                }
            })
            .collect();
        let total: f64 = containers.iter().map(|c| c.delivered_bytes_per_s).sum();
        let steady: f64 = containers.iter().map(|c| c.steady_bytes_per_s).sum();
        Fairness {
            total_first_half_second_bytes: containers
                .iter()
                .map(|c| c.first_half_second_bytes)
                .sum(),
            total_steady_bytes_per_s: steady,
            total_steady_over_node_rate: steady / node_rate,
            node_rate_bytes_per_s: node_rate,
            policy: policy.to_owned(),
            containers,
            total_delivered_bytes_per_s: total,
            total_over_node_rate: total / node_rate,
            status_samples,
        }
    }
}

/// Max-min fair shares of `capacity` among claims of (weight, demand); a
/// demand of `None` wants everything. A claim that wants less than its
/// weighted part of what is left gets its demand, and what it leaves is
/// shared again among the others by weight.
pub fn fair_shares(capacity: f64, claims: &[(u32, Option<f64>)]) -> Vec<f64> {
    let mut shares = vec![0.0; claims.len()];
    let mut open: Vec<usize> = (0..claims.len()).collect();
    let mut left = capacity;
    while !open.is_empty() {
        let weights: f64 = open.iter().map(|&i| f64::from(claims[i].0)).sum();
        let per_weight = left / weights;
        let satisfied: Vec<usize> = open
            .iter()
            .copied()
            .filter(|&i| {
                claims[i]
                    .1
                    .is_some_and(|d| d <= per_weight * f64::from(claims[i].0))
            })
            .collect();
        if satisfied.is_empty() {
            for &i in &open {
                shares[i] = per_weight * f64::from(claims[i].0);
            }
            break;
        }
        for &i in &satisfied {
            let demand = claims[i].1.unwrap_or(0.0);
            shares[i] = demand;
            left -= demand;
        }
        open.retain(|i| !satisfied.contains(i));
    }
    shares
}

/// One variant of `weir run` in the overhead case.
#[derive(Debug, Clone, Serialize)]
pub struct OverheadVariant {
    /// `no budget`, or the policy under a budget that is never hit.
    pub name: String,
    /// The extra `weir run` arguments.
    pub args: Vec<String>,
    pub runs: Vec<RunFigures>,
    pub median_cpu_s: f64,
    pub min_cpu_s: f64,
    pub max_cpu_s: f64,
    pub median_wall_s: f64,
    /// Median CPU ÷ the median CPU without a budget (None for that one).
    pub cpu_over_no_budget: Option<f64>,
    pub verdict: Option<Verdict>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Overhead {
    pub lines: u64,
    pub line_len: u64,
    pub runs: u32,
    /// Where the log went: `/dev/null` or `a file`.
    pub log: String,
    pub variants: Vec<OverheadVariant>,
}

impl Overhead {
    /// `variants` holds (name, args, runs); the first is the one without a
    /// budget.
    pub fn new(
        lines: u64,
        line_len: u64,
        runs: u32,
        log: String,
        variants: Vec<(String, Vec<String>, Vec<RunFigures>)>,
    ) -> Overhead {
        let mut out: Vec<OverheadVariant> = variants
            .into_iter()
            .map(|(name, args, runs)| {
                let cpu: Vec<f64> = runs.iter().map(|r| r.cpu_s).collect();
                let wall: Vec<f64> = runs.iter().map(|r| r.wall_s).collect();
                OverheadVariant {
                    name,
                    args,
                    median_cpu_s: median(&cpu),
                    min_cpu_s: cpu.iter().copied().fold(f64::INFINITY, f64::min),
                    max_cpu_s: cpu.iter().copied().fold(0.0, f64::max),
                    median_wall_s: median(&wall),
                    runs,
                    cpu_over_no_budget: None,
                    verdict: None,
                }
            })
            .collect();
        if let Some(base) = out.first().map(|v| v.median_cpu_s) {
            for variant in out.iter_mut().skip(1) {
                let ratio = variant.median_cpu_s / base;
                variant.cpu_over_no_budget = Some(ratio);
                variant.verdict = Some(Verdict::from(ratio <= OVERHEAD_CEILING));
            }
        }
        Overhead {
            lines,
            line_len,
            runs,
            log,
            variants: out,
        }
    }
}

/// One run of the writer case: `weir run` as it accounted for itself, and
/// the writer as it timed itself (`WEIR_WRITER_REPORT`).
#[derive(Debug, Clone, Serialize)]
pub struct WriterRun {
    pub run: RunFigures,
    /// From just before the writer's first write() to just after its last
    /// one returned (CLOCK_MONOTONIC, measured by the writer).
    pub writer_s: f64,
    /// What the writer says it wrote.
    pub writer_bytes: u64,
    pub writer_bytes_per_s: f64,
}

impl WriterRun {
    pub fn new(run: RunFigures, writer_s: f64, writer_bytes: u64) -> WriterRun {
        WriterRun {
            run,
            writer_s,
            writer_bytes,
            writer_bytes_per_s: writer_bytes as f64 / writer_s,
        }
    }
}

/// The budget of the writer case: [`WRITER_BUDGET_FRACTION`] of the
/// writer's throughput without a budget, rounded down to whole KiB/s.
pub fn writer_budget_kib_per_s(no_budget_bytes_per_s: f64) -> u64 {
    (no_budget_bytes_per_s * WRITER_BUDGET_FRACTION / 1024.0).floor() as u64
}

/// One variant of `weir run` in the writer case.
#[derive(Debug, Clone, Serialize)]
pub struct WriterVariant {
    /// `no budget`, or the policy under the budget of the case.
    pub name: String,
    /// The extra `weir run` arguments.
    pub args: Vec<String>,
    pub runs: Vec<WriterRun>,
    pub median_writer_bytes_per_s: f64,
    pub min_writer_bytes_per_s: f64,
    pub max_writer_bytes_per_s: f64,
    pub median_writer_s: f64,
    /// `weir run` from spawn to exit, drain included.
    pub median_wall_s: f64,
    pub median_stored_bytes: f64,
    pub median_dropped_rate_limit_bytes: f64,
    pub median_dropped_ring_overflow_bytes: f64,
    pub median_markers: f64,
    /// Median writer throughput ÷ the median without a budget (None for
    /// that one).
    pub writer_over_no_budget: Option<f64>,
    pub verdict: Option<Verdict>,
}

/// The writer's own throughput under drop and ring with a budget of 1 % of
/// it, against no budget.
#[derive(Debug, Clone, Serialize)]
pub struct WriterCase {
    pub lines: u64,
    pub line_len: u64,
    /// Measured runs per variant (and calibration runs).
    pub runs: u32,
    /// The runs without a budget that set the budget, before the variants
    /// take turns.
    pub calibration: Vec<WriterRun>,
    pub calibration_median_bytes_per_s: f64,
    /// [`writer_budget_kib_per_s`] of the calibration median, in bytes/s.
    pub budget_bytes_per_s: f64,
    /// The budget ÷ the median without a budget of the runs taking turns.
    pub budget_over_no_budget: f64,
    pub variants: Vec<WriterVariant>,
}

impl WriterCase {
    /// `variants` holds (name, args, runs); the first is the one without a
    /// budget.
    pub fn new(
        lines: u64,
        line_len: u64,
        runs: u32,
        calibration: Vec<WriterRun>,
        budget_bytes_per_s: f64,
        variants: Vec<(String, Vec<String>, Vec<WriterRun>)>,
    ) -> WriterCase {
        let of = |runs: &[WriterRun], f: fn(&WriterRun) -> f64| -> Vec<f64> {
            runs.iter().map(f).collect()
        };
        let mut out: Vec<WriterVariant> = variants
            .into_iter()
            .map(|(name, args, runs)| {
                let speed = of(&runs, |r| r.writer_bytes_per_s);
                WriterVariant {
                    name,
                    args,
                    median_writer_bytes_per_s: median(&speed),
                    min_writer_bytes_per_s: speed.iter().copied().fold(f64::INFINITY, f64::min),
                    max_writer_bytes_per_s: speed.iter().copied().fold(0.0, f64::max),
                    median_writer_s: median(&of(&runs, |r| r.writer_s)),
                    median_wall_s: median(&of(&runs, |r| r.run.wall_s)),
                    median_stored_bytes: median(&of(&runs, |r| r.run.written.bytes as f64)),
                    median_dropped_rate_limit_bytes: median(&of(&runs, |r| {
                        r.run.dropped_rate_limit.bytes as f64
                    })),
                    median_dropped_ring_overflow_bytes: median(&of(&runs, |r| {
                        r.run.dropped_ring_overflow.bytes as f64
                    })),
                    median_markers: median(&of(&runs, |r| r.run.markers as f64)),
                    runs,
                    writer_over_no_budget: None,
                    verdict: None,
                }
            })
            .collect();
        let base = out
            .first()
            .map_or(f64::NAN, |v| v.median_writer_bytes_per_s);
        for variant in out.iter_mut().skip(1) {
            let ratio = variant.median_writer_bytes_per_s / base;
            variant.writer_over_no_budget = Some(ratio);
            variant.verdict = Some(Verdict::from(ratio >= WRITER_THROUGHPUT_FLOOR));
        }
        WriterCase {
            lines,
            line_len,
            runs,
            calibration_median_bytes_per_s: median(&of(&calibration, |r| r.writer_bytes_per_s)),
            calibration,
            budget_bytes_per_s,
            budget_over_no_budget: budget_bytes_per_s / base,
            variants: out,
        }
    }
}

pub use super::stats::median;

/// One of the targets, checked against this run.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub case: String,
    pub target: String,
    pub value: String,
    pub verdict: Verdict,
}

/// What the cases measured, before the report is built (a case that did
/// not run, or whose runs failed, is empty).
#[derive(Debug, Clone, Default)]
pub struct Cases {
    pub accuracy: Vec<AccuracyCase>,
    pub fairness: Option<Fairness>,
    pub overhead: Option<Overhead>,
    pub writer: Option<WriterCase>,
}

/// Everything `weir bench gate` measured.
#[derive(Debug, Clone, Serialize)]
pub struct GateReport {
    pub machine: Machine,
    /// How long each writer ran in the accuracy and fairness cases.
    pub seconds: f64,
    pub line_len: u64,
    pub accuracy: Vec<AccuracyCase>,
    pub fairness: Option<Fairness>,
    pub overhead: Option<Overhead>,
    pub writer: Option<WriterCase>,
    pub targets: Vec<Target>,
    /// Runs that failed or broke the accounting identity; their figures are
    /// left out.
    pub failures: Vec<String>,
}

impl GateReport {
    pub fn build(
        machine: Machine,
        seconds: f64,
        line_len: u64,
        cases: Cases,
        failures: Vec<String>,
    ) -> GateReport {
        let Cases {
            accuracy,
            fairness,
            overhead,
            writer,
        } = cases;
        let mut targets = Vec::new();
        let tolerance = format!("within ±{:.0} %", ACCURACY_TOLERANCE * 100.0);
        for case in &accuracy {
            targets.push(Target {
                case: format!("accuracy {} {}", case.policy, rate(case.budget_bytes_per_s)),
                target: format!("delivered ÷ budget {tolerance}"),
                value: format!("{:.4}", case.delivered_over_budget),
                verdict: case.verdict,
            });
        }
        if let Some(fairness) = &fairness {
            for c in &fairness.containers {
                targets.push(Target {
                    case: format!("fairness {} (weight {})", c.name, c.weight),
                    target: format!("delivered ÷ fair share ≥ {:.2}", FAIR_SHARE_FLOOR),
                    value: format!("{:.4}", c.delivered_over_fair_share),
                    verdict: c.verdict,
                });
            }
            for c in fairness
                .containers
                .iter()
                .filter(|c| c.demand_bytes_per_s.is_some())
            {
                let dropped = c.run.dropped();
                targets.push(Target {
                    case: format!("fairness {} below its share", c.name),
                    target: "never throttled: nothing dropped".to_owned(),
                    value: format!("{} lines dropped", dropped.lines),
                    verdict: Verdict::from(dropped.bytes == 0),
                });
            }
            targets.push(Target {
                case: "fairness node total".to_owned(),
                target: format!("delivered ÷ node budget {tolerance}"),
                value: format!("{:.4}", fairness.total_over_node_rate),
                verdict: Verdict::from(
                    (fairness.total_over_node_rate - 1.0).abs() <= ACCURACY_TOLERANCE,
                ),
            });
        }
        if let Some(overhead) = &overhead {
            for v in overhead.variants.iter().skip(1) {
                if let (Some(ratio), Some(verdict)) = (v.cpu_over_no_budget, v.verdict) {
                    targets.push(Target {
                        case: format!("overhead {}", v.name),
                        target: format!("CPU ÷ no budget ≤ {OVERHEAD_CEILING:.2}"),
                        value: format!("{ratio:.3}"),
                        verdict,
                    });
                }
            }
        }
        if let Some(writer) = &writer {
            for v in writer.variants.iter().skip(1) {
                if let (Some(ratio), Some(verdict)) = (v.writer_over_no_budget, v.verdict) {
                    targets.push(Target {
                        case: format!(
                            "writer {} at {:.0} % ({})",
                            v.name,
                            WRITER_BUDGET_FRACTION * 100.0,
                            kib_per_s(writer.budget_bytes_per_s)
                        ),
                        target: format!(
                            "writer's throughput ÷ no budget ≥ {WRITER_THROUGHPUT_FLOOR:.2}"
                        ),
                        value: format!("{ratio:.3}"),
                        verdict,
                    });
                }
            }
        }
        GateReport {
            machine,
            seconds,
            line_len,
            accuracy,
            fairness,
            overhead,
            writer,
            targets,
            failures,
        }
    }

    /// The report for people: Markdown tables.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "\nweir bench gate: {} CPUs ({}), kernel {}, logs on {}, weir {}",
            m.cpus, m.cpu_model, m.kernel, m.log_fs, m.weir_version
        );
        let _ = writeln!(
            out,
            "Writer: {} B lines (newline included), 64 KiB writes; MiB/s = 2^20 application \
             bytes per second; delivered = application bytes stored in the log ÷ wall time of \
             `weir run` (spawn to exit).",
            self.line_len
        );
        self.accuracy_table(&mut out);
        self.fairness_table(&mut out);
        self.overhead_table(&mut out);
        self.writer_table(&mut out);
        if !self.targets.is_empty() {
            let _ = writeln!(out, "\nTargets (issue 3)\n");
            let _ = writeln!(out, "| case | target | this run | verdict |");
            let _ = writeln!(out, "| --- | --- | ---: | --- |");
            for t in &self.targets {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | **{}** |",
                    t.case,
                    t.target,
                    t.value,
                    t.verdict.word()
                );
            }
            let missed = self
                .targets
                .iter()
                .filter(|t| t.verdict == Verdict::Missed)
                .count();
            let _ = writeln!(
                out,
                "\n{} of {} targets met{}",
                self.targets.len() - missed,
                self.targets.len(),
                if missed == 0 {
                    ".".to_owned()
                } else {
                    format!("; {missed} MISSED.")
                }
            );
        }
        if !self.failures.is_empty() {
            out.push_str(&failure_banner(&self.failures));
            out.push('\n');
        }
        out
    }

    fn accuracy_table(&self, out: &mut String) {
        if self.accuracy.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\nAccuracy: one container, its own budget, the writer at full speed for {} s\n",
            self.seconds
        );
        let _ = writeln!(
            out,
            "| policy | budget | wall s | read MiB | stored MiB | dropped MiB | markers | \
             delivered MiB/s | delivered ÷ budget | verdict | steady ÷ budget | weir CPU s |"
        );
        let _ = writeln!(
            out,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"
        );
        for c in &self.accuracy {
            let r = &c.run;
            let _ = writeln!(
                out,
                "| {} | {} | {:.3} | {:.1} | {:.2} | {:.1} | {} | {:.3} | {:.4} | **{}** | {:.4} | {:.2} |",
                c.policy,
                rate(c.budget_bytes_per_s),
                r.wall_s,
                r.read.bytes as f64 / MIB,
                r.written.bytes as f64 / MIB,
                r.dropped().bytes as f64 / MIB,
                r.markers,
                c.delivered_bytes_per_s / MIB,
                c.delivered_over_budget,
                c.verdict.word(),
                c.steady_over_budget,
                r.cpu_s
            );
        }
        let (from, to) = steady_window(self.seconds);
        let _ = writeln!(
            out,
            "\nsteady: the rate of the records weir stamped from {from} s to {to} s after the \
             start, without the first burst (a tenth of a second of budget by default)."
        );
    }

    fn fairness_table(&self, out: &mut String) {
        let Some(f) = &self.fairness else { return };
        let _ = writeln!(
            out,
            "\nFairness: {} containers under one node budget of {}, policy {}, started together \
             for {} s\n",
            f.containers.len(),
            rate(f.node_rate_bytes_per_s),
            f.policy,
            self.seconds
        );
        let _ = writeln!(
            out,
            "| container | weight | writer | fair share MiB/s | granted MiB/s (gate status, mean) \
             | wall s | stored MiB | dropped MiB | delivered MiB/s | delivered ÷ fair share | verdict \
             | first 0.5 s MiB | steady MiB/s | steady ÷ fair share |"
        );
        let _ = writeln!(
            out,
            "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |"
        );
        for c in &f.containers {
            let writer = match c.demand_bytes_per_s {
                Some(d) => format!("paced, {}", rate(d)),
                None => "full speed".to_owned(),
            };
            let granted = c
                .granted_mean_bytes_per_s
                .map_or("–".to_owned(), |g| format!("{:.3}", g / MIB));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.3} | {} | {:.3} | {:.2} | {:.1} | {:.3} | {:.4} | **{}** | {:.2} | {:.3} | {:.4} |",
                c.name,
                c.weight,
                writer,
                c.fair_share_bytes_per_s / MIB,
                granted,
                c.run.wall_s,
                c.run.written.bytes as f64 / MIB,
                c.run.dropped().bytes as f64 / MIB,
                c.delivered_bytes_per_s / MIB,
                c.delivered_over_fair_share,
                c.verdict.word(),
                c.first_half_second_bytes as f64 / MIB,
                c.steady_bytes_per_s / MIB,
                c.steady_over_fair_share
            );
        }
        let _ = writeln!(
            out,
            "| all | | | {:.3} (node budget) | | | | | {:.3} | {:.4} of the node budget | | \
             {:.2} ({:.2} allowed) | {:.3} | {:.4} of the node budget |",
            f.node_rate_bytes_per_s / MIB,
            f.total_delivered_bytes_per_s / MIB,
            f.total_over_node_rate,
            f.total_first_half_second_bytes as f64 / MIB,
            f.node_rate_bytes_per_s * 0.6 / MIB,
            f.total_steady_bytes_per_s / MIB,
            f.total_steady_over_node_rate
        );
        let (from, to) = steady_window(self.seconds);
        let _ = writeln!(
            out,
            "\ngranted: the mean of {} `weir gate status` samples, one a second. first 0.5 s: \
             application bytes weir stamped in the first half second; a node budget allows \
             0.5 s of rate plus its burst (0.1 s of rate by default). steady: the rate from \
             {from} s to {to} s.",
            f.status_samples
        );
    }

    fn overhead_table(&self, out: &mut String) {
        let Some(o) = &self.overhead else { return };
        let _ = writeln!(
            out,
            "\nOverhead: {} lines of {} B in 64 KiB writes (capture workload 1), {} runs per \
             variant, taking turns; the log to {}; weir's own CPU from its --summary \
             (getrusage)\n",
            o.lines, o.line_len, o.runs, o.log
        );
        let _ = writeln!(
            out,
            "| variant | weir run arguments | CPU s, median (min–max) | wall s, median | \
             CPU ÷ no budget | verdict |"
        );
        let _ = writeln!(out, "| --- | --- | --- | ---: | ---: | --- |");
        for v in &o.variants {
            let _ = writeln!(
                out,
                "| {} | {} | {:.3} ({:.3}–{:.3}) | {:.3} | {} | {} |",
                v.name,
                if v.args.is_empty() {
                    "–".to_owned()
                } else {
                    format!("`{}`", v.args.join(" "))
                },
                v.median_cpu_s,
                v.min_cpu_s,
                v.max_cpu_s,
                v.median_wall_s,
                v.cpu_over_no_budget
                    .map_or("–".to_owned(), |r| format!("{r:.3}")),
                v.verdict
                    .map_or("–".to_owned(), |v| format!("**{}**", v.word()))
            );
        }
    }

    fn writer_table(&self, out: &mut String) {
        let Some(w) = &self.writer else { return };
        let _ = writeln!(
            out,
            "\nWriter throughput: {} lines of {} B in 64 KiB writes ({:.0} MB, capture workload 1), {} runs \
             per variant, taking turns; the writer's own throughput, timed by itself \
             (WEIR_WRITER_REPORT: CLOCK_MONOTONIC from its first write() to its last); \
             MB = 10^6 B\n",
            w.lines,
            w.line_len,
            (w.lines * w.line_len) as f64 / MB,
            w.runs
        );
        let _ = writeln!(
            out,
            "Budget: {:.0} % of the median of {} calibration runs without a budget ({:.1} MB/s), \
             rounded down to whole KiB/s: {} ({}), {:.4} of the median without a budget of the \
             runs below.\n",
            WRITER_BUDGET_FRACTION * 100.0,
            w.calibration.len(),
            w.calibration_median_bytes_per_s / MB,
            kib_per_s(w.budget_bytes_per_s),
            rate(w.budget_bytes_per_s),
            w.budget_over_no_budget
        );
        let _ = writeln!(
            out,
            "| variant | weir run arguments | writer MB/s, median (min–max) | each run, MB/s | \
             writer ÷ no budget | verdict | writer s, median | weir wall s, median | \
             stored MB, median | dropped MB rate_limit / ring_overflow, median | markers, median |"
        );
        let _ = writeln!(
            out,
            "| --- | --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"
        );
        for v in &w.variants {
            let each: Vec<String> = v
                .runs
                .iter()
                .map(|r| format!("{:.0}", r.writer_bytes_per_s / MB))
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} ({:.1}–{:.1}) | {} | {} | {} | {:.3} | {:.3} | {:.2} | \
                 {:.1} / {:.1} | {} |",
                v.name,
                if v.args.is_empty() {
                    "–".to_owned()
                } else {
                    format!("`{}`", v.args.join(" "))
                },
                v.median_writer_bytes_per_s / MB,
                v.min_writer_bytes_per_s / MB,
                v.max_writer_bytes_per_s / MB,
                each.join(", "),
                v.writer_over_no_budget
                    .map_or("–".to_owned(), |r| format!("{r:.3}")),
                v.verdict
                    .map_or("–".to_owned(), |v| format!("**{}**", v.word())),
                v.median_writer_s,
                v.median_wall_s,
                v.median_stored_bytes / MB,
                v.median_dropped_rate_limit_bytes / MB,
                v.median_dropped_ring_overflow_bytes / MB,
                v.median_markers
            );
        }
        let _ = writeln!(
            out,
            "\nEvery run: weir read all {} bytes the writer wrote, its summary balances, and \
             the budgeted runs dropped (drop: rate_limit, ring: ring_overflow) — a run where \
             nothing was dropped never hit its budget and fails. weir wall: ring drains what \
             its ring holds at the budget after the writer exits.",
            w.lines * w.line_len
        );
    }
}

/// A rate in whole KiB/s, as the writer case passes its budget: `9876KiB/s`.
fn kib_per_s(bytes_per_s: f64) -> String {
    format!("{:.0}KiB/s", bytes_per_s / 1024.0)
}

/// A rate as the gate's units write it: `10MiB/s`, `512KiB/s`.
pub fn rate(bytes_per_s: f64) -> String {
    weir_gate::units::format_rate(bytes_per_s)
}

/// A banner that cannot be missed in the middle of the progress lines.
pub fn failure_banner(failures: &[String]) -> String {
    let mut out = String::from(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !! weir bench gate: FAILED: a run failed or its account did not balance\n",
    );
    for failure in failures {
        let _ = writeln!(out, "!! {failure}");
    }
    out.push_str("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn a_quiet_container_gets_its_demand_and_the_rest_is_split_by_weight() {
        let shares = fair_shares(8.0, &[(1, Some(0.5)), (1, None), (1, None), (2, None)]);
        assert!(close(shares[0], 0.5), "{shares:?}");
        assert!(close(shares[1], 1.875), "{shares:?}");
        assert!(close(shares[2], 1.875), "{shares:?}");
        assert!(close(shares[3], 3.75), "{shares:?}");
    }

    #[test]
    fn freed_capacity_can_satisfy_a_second_round() {
        // Equal weights: 3 each at first; a wants 2, leaving 4 for two, and
        // then b's 2.5 fits too, leaving 4.5 for c.
        let shares = fair_shares(9.0, &[(1, Some(2.0)), (1, Some(2.5)), (1, None)]);
        assert!(close(shares[0], 2.0) && close(shares[1], 2.5) && close(shares[2], 4.5));
    }

    #[test]
    fn when_everyone_wants_more_the_capacity_is_split_by_weight() {
        let shares = fair_shares(6.0, &[(1, None), (2, None), (3, Some(100.0))]);
        assert!(close(shares[0], 1.0) && close(shares[1], 2.0) && close(shares[2], 3.0));
        let shares = fair_shares(6.0, &[(1, Some(1.0)), (1, Some(1.0))]);
        assert!(close(shares[0], 1.0) && close(shares[1], 1.0));
    }

    #[test]
    fn steady_rates_leave_the_start_and_the_end_out() {
        let run = RunFigures {
            wall_s: 3.0,
            cpu_s: 0.0,
            peak_rss_kib: 0,
            read: Counts::default(),
            written: Counts::default(),
            dropped_rate_limit: Counts::default(),
            dropped_ring_overflow: Counts::default(),
            dropped_disk: Counts::default(),
            markers: 0,
            log_file_bytes: 0,
            // A burst of 1000 in the first tick, then 10 a tick for 3 s.
            per_tick: std::iter::once(1000).chain([10; 29]).collect(),
        };
        assert_eq!(steady_window(10.0), (1.0, 9.0));
        assert_eq!(steady_window(2.0), (0.5, 1.5));
        assert_eq!(run.bytes_between(0.0, 0.5), 1040);
        assert!(close(run.rate_within(steady_window(3.0)), 100.0));
        // Past the last record nothing more is counted.
        assert_eq!(run.bytes_between(2.5, 5.0), 50);
    }

    fn figures(written: u64) -> RunFigures {
        RunFigures {
            wall_s: 1.0,
            cpu_s: 0.0,
            peak_rss_kib: 0,
            read: Counts::default(),
            written: Counts {
                bytes: written,
                lines: written / 100,
            },
            dropped_rate_limit: Counts::default(),
            dropped_ring_overflow: Counts::default(),
            dropped_disk: Counts::default(),
            markers: 0,
            log_file_bytes: 0,
            per_tick: Vec::new(),
        }
    }

    #[test]
    fn the_writer_budget_is_one_percent_rounded_down_to_kib() {
        // 1104.9 MB/s: 11.049 MB/s = 10790.04 KiB/s.
        assert_eq!(writer_budget_kib_per_s(1_104_900_000.0), 10790);
        assert_eq!(writer_budget_kib_per_s(102_399.0), 0);
        assert_eq!(writer_budget_kib_per_s(102_400.0), 1);
    }

    #[test]
    fn the_writer_case_compares_medians_with_no_budget() {
        let runs = |seconds: &[f64]| -> Vec<WriterRun> {
            seconds
                .iter()
                .map(|&s| WriterRun::new(figures(1000), s, 1_000_000_000))
                .collect()
        };
        let case = WriterCase::new(
            10,
            100,
            3,
            runs(&[1.0, 1.0, 1.0]),
            10_000_000.0,
            vec![
                ("no budget".to_owned(), Vec::new(), runs(&[1.0, 2.0, 0.5])),
                (
                    "drop".to_owned(),
                    vec!["--policy".into()],
                    runs(&[1.0, 1.1, 0.9]),
                ),
                (
                    "ring".to_owned(),
                    vec!["--policy".into()],
                    runs(&[1.0, 1.2, 4.0]),
                ),
            ],
        );
        assert!(close(case.calibration_median_bytes_per_s, 1e9));
        assert!(close(case.budget_over_no_budget, 0.01));
        let [base, drop, ring] = &case.variants[..] else {
            panic!("three variants")
        };
        assert!(close(base.median_writer_bytes_per_s, 1e9));
        assert!(close(base.min_writer_bytes_per_s, 5e8));
        assert!(close(base.max_writer_bytes_per_s, 2e9));
        assert_eq!(base.verdict, None);
        assert!(close(drop.writer_over_no_budget.unwrap(), 1.0));
        assert_eq!(drop.verdict, Some(Verdict::Met));
        // Median 1.2 s: 833 MB/s.
        assert!(close(ring.writer_over_no_budget.unwrap(), 1.0 / 1.2));
        assert_eq!(ring.verdict, Some(Verdict::Missed));
        let report = GateReport::build(
            crate::bench::machine::Machine::describe(std::path::Path::new("/tmp")),
            10.0,
            100,
            Cases {
                writer: Some(case),
                ..Cases::default()
            },
            Vec::new(),
        );
        assert_eq!(report.targets.len(), 2);
        let table = report.table();
        assert!(
            table.contains(
                "| drop | `--policy` | 1000.0 (909.1–1111.1) | 1000, 909, 1111 | 1.000 | **met** |"
            ),
            "{table}"
        );
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
