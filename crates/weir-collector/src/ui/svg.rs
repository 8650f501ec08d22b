//! Charts as inline SVG, drawn on the server: they need no script and
//! scale with the page.

use std::fmt::Write as _;

use super::html::{self, esc};

/// Colours of a chart's series, in turn.
pub const PALETTE: [&str; 8] = [
    "#2f6fdf", "#2a9d8f", "#e9a23b", "#8e5cd9", "#3aa0c8", "#c2527a", "#6b8e23", "#8a6d3b",
];

/// The colour of what was dropped.
pub const DROPPED: &str = "#d7263d";

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 70.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 10.0;

/// One line of a chart.
pub struct Series<'a> {
    pub label: &'a str,
    pub colour: &'a str,
    pub values: &'a [f64],
    /// Drawn as a dashed line (a budget, a limit).
    pub dashed: bool,
}

/// A line chart over time: `series` of equal length, bucket `i` starting at
/// `from_ns + i * step_ns`; `unit` formats the values on the axis.
pub fn lines(series: &[Series<'_>], from_ns: i64, step_ns: i64, unit: fn(f64) -> String) -> String {
    let buckets = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
    let top = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let mut out = frame(from_ns, step_ns, buckets, top, unit);
    let x = |i: usize| LEFT + (WIDTH - LEFT) * i as f64 / (buckets.max(2) - 1) as f64;
    let y = |v: f64| TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - v / top);
    for s in series {
        let mut points = String::new();
        for (i, v) in s.values.iter().enumerate() {
            let _ = write!(points, "{:.1},{:.1} ", x(i), y(*v));
        }
        let dash = if s.dashed {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{dash} points=\"{points}\"><title>{}</title></polyline>",
            s.colour,
            esc(s.label)
        );
    }
    out.push_str("</svg>");
    out
}

/// A bar chart of counts over time; each bar's title says its time and
/// count, and `link(i)`, when given, makes bar `i` a link.
pub fn bars(
    counts: &[u64],
    from_ns: i64,
    step_ns: i64,
    link: Option<&dyn Fn(usize) -> String>,
) -> String {
    let top = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let mut out = frame(from_ns, step_ns, counts.len() + 1, top, |v| {
        format!("{v:.0}")
    });
    let width = (WIDTH - LEFT) / counts.len().max(1) as f64;
    for (i, count) in counts.iter().enumerate() {
        let h = (HEIGHT - TOP - BOTTOM) * *count as f64 / top;
        let rect = format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {count}</title></rect>",
            LEFT + width * i as f64 + 0.5,
            HEIGHT - BOTTOM - h,
            (width - 1.0).max(0.5),
            h,
            PALETTE[0],
            html::time(from_ns + step_ns * i as i64),
        );
        match link {
            Some(link) if *count > 0 => {
                let _ = write!(out, "<a href=\"{}\">{rect}</a>", esc(&link(i)));
            }
            _ => out.push_str(&rect),
        }
    }
    out.push_str("</svg>");
    out
}

/// A small chart for a table row: stored (a line) and dropped (red bars),
/// and the budget as a dashed line when there is one.
pub fn sparkline(stored: &[f64], dropped: &[f64], budget: Option<f64>) -> String {
    const W: f64 = 180.0;
    const H: f64 = 32.0;
    let top = stored
        .iter()
        .chain(dropped)
        .copied()
        .chain(budget)
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let n = stored.len().max(dropped.len()).max(2);
    let x = |i: usize| W * i as f64 / (n - 1) as f64;
    let y = |v: f64| H - 1.0 - (H - 2.0) * v / top;
    let mut out = format!(
        "<svg class=\"spark\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\">"
    );
    for (i, v) in dropped.iter().enumerate().filter(|(_, v)| **v > 0.0) {
        let _ = write!(
            out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{DROPPED}\"/>",
            x(i),
            y(*v),
            (W / n as f64).max(1.0),
            H - 1.0 - y(*v)
        );
    }
    let mut points = String::new();
    for (i, v) in stored.iter().enumerate() {
        let _ = write!(points, "{:.1},{:.1} ", x(i), y(*v));
    }
    let _ = write!(
        out,
        "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{points}\"/>",
        PALETTE[0]
    );
    if let Some(budget) = budget {
        let _ = write!(
            out,
            "<line x1=\"0\" x2=\"{W}\" y1=\"{0:.1}\" y2=\"{0:.1}\" stroke=\"#555\" stroke-dasharray=\"3 3\"/>",
            y(budget)
        );
    }
    out.push_str("</svg>");
    out
}

/// The opening of a chart: its axes, three value lines and the times of
/// its start, middle and end.
fn frame(from_ns: i64, step_ns: i64, buckets: usize, top: f64, unit: fn(f64) -> String) -> String {
    let mut out = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" preserveAspectRatio=\"none\" role=\"img\">"
    );
    for fraction in [0.0, 0.5, 1.0] {
        let y = TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - fraction);
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{WIDTH}\" y1=\"{y:.1}\" y2=\"{y:.1}\" class=\"grid\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            y + 4.0,
            esc(&unit(top * fraction))
        );
    }
    let span = step_ns * buckets.saturating_sub(1) as i64;
    for (fraction, anchor) in [(0.0, "start"), (0.5, "middle"), (1.0, "end")] {
        let at = from_ns + (span as f64 * fraction) as i64;
        let label = html::time(at);
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"{anchor}\">{}</text>",
            LEFT + (WIDTH - LEFT) * fraction,
            HEIGHT - 6.0,
            esc(&label[..19])
        );
    }
    out
}
