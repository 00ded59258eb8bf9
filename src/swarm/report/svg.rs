//! The report as an SVG (960 × 540), written by hand: two panels over one time axis, the
//! timeline's latency (p50, p99, max per interval, log scale) above, messages per interval
//! (sent, received) below. An interval with no point sent and received nothing: its throughput
//! is drawn as 0 and its latency as a gap, so an outage shows as one.

use std::fmt::Write;

use super::{Point, Report};

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 540.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
/// Each panel's top and height.
const TOP: (f64, f64) = (50.0, 190.0);
const BOTTOM: (f64, f64) = (300.0, 190.0);

/// The most intervals drawn (a day of seconds); a longer timeline is not plotted.
const MAX_INTERVALS: u64 = 86_400;

/// (label, colour, value in an interval, None for no value) for each line of a panel.
type Series<'a> = [(&'a str, &'a str, fn(Option<&Point>) -> Option<f64>)];

/// An interval's x and its point, if it has one.
type Slot<'a> = (f64, Option<&'a Point>);

pub fn render(report: &Report) -> String {
    let points = &report.timeline.points;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let p = &report.parameters;
    let title = format!(
        "lampi swarm {}: {} lamps, {} apps, {:.0} msgs/s asked, QoS {}, lost {}",
        p.run_id, p.lamps, p.apps, p.rate_per_s, p.qos, report.loss.lost
    );
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="24" font-size="15">{}</text>"#,
        escape(&title)
    );
    if points.is_empty() {
        let _ = writeln!(
            svg,
            r#"<text x="{LEFT}" y="{}">no timeline points</text>"#,
            TOP.0 + 20.0
        );
        svg.push_str("</svg>\n");
        return svg;
    }
    let interval = report.timeline.interval_ms;
    let t0 = points[0].unix_ms;
    let intervals = (points[points.len() - 1].unix_ms - t0) / interval + 1;
    if intervals > MAX_INTERVALS {
        let _ = writeln!(
            svg,
            r#"<text x="{LEFT}" y="{}">the timeline spans {intervals} intervals, too many to plot</text>"#,
            TOP.0 + 20.0
        );
        svg.push_str("</svg>\n");
        return svg;
    }
    let span_s = ((intervals - 1) * interval) as f64 / 1000.0;
    let mut slots: Vec<Slot> = (0..intervals)
        .map(|i| (LEFT + i as f64 / (intervals - 1).max(1) as f64 * PLOT_W, None))
        .collect();
    for point in points {
        slots[((point.unix_ms - t0) / interval) as usize].1 = Some(point);
    }

    fn quantile(point: Option<&Point>, q: f64) -> Option<f64> {
        let latency = &point?.latency_us;
        (latency.count() > 0).then(|| latency.quantile(q) as f64)
    }
    let latency: &Series = &[
        ("p50", "#1f77b4", |p| quantile(p, 0.5)),
        ("p99", "#ff7f0e", |p| quantile(p, 0.99)),
        ("max", "#d62728", |p| quantile(p, 1.0)),
    ];
    let top_label = format!("{} (ms, log)", report.timeline.latency);
    panel(&mut svg, &slots, TOP, &top_label, latency, Scale::log);
    let throughput: &Series = &[
        ("sent", "#2ca02c", |p| Some(p.map_or(0, |p| p.sent) as f64)),
        ("received", "#9467bd", |p| Some(p.map_or(0, |p| p.received) as f64)),
    ];
    let bottom_label = format!("messages per {} s", interval as f64 / 1000.0);
    panel(&mut svg, &slots, BOTTOM, &bottom_label, throughput, Scale::linear);

    let axis_y = BOTTOM.0 + BOTTOM.1;
    for i in 0..=5 {
        let fraction = f64::from(i) / 5.0;
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{:.1} s</text>"#,
            LEFT + fraction * PLOT_W,
            axis_y + 18.0,
            fraction * span_s
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// A panel's y axis: where a value goes (0 at the bottom, 1 at the top), and its ticks.
enum Scale {
    Linear {
        max: f64,
    },
    /// Of µs, labelled in ms; decades from 10 µs to `10^high`.
    Log {
        high: f64,
    },
}

const LOG_LOW: f64 = 1.0; // log10(10 µs)

impl Scale {
    fn linear(highest: f64) -> Self {
        Self::Linear { max: highest.max(1.0) }
    }

    fn log(highest: f64) -> Self {
        Self::Log {
            high: highest.max(100.0).log10().ceil(),
        }
    }

    fn fraction(&self, value: f64) -> f64 {
        match *self {
            Self::Linear { max } => value / max,
            Self::Log { high } => (value.max(10.0).log10() - LOG_LOW) / (high - LOG_LOW),
        }
    }

    /// (value, label) of each gridline.
    fn ticks(&self) -> Vec<(f64, String)> {
        match *self {
            Self::Linear { max } => (0..=4)
                .map(|i| {
                    let v = max * f64::from(i) / 4.0;
                    (v, format!("{v:.0}"))
                })
                .collect(),
            Self::Log { high } => (LOG_LOW as i32..=high as i32)
                .map(|e| {
                    let us = 10.0_f64.powi(e);
                    (us, format!("{}", us / 1000.0))
                })
                .collect(),
        }
    }
}

fn panel(
    svg: &mut String,
    slots: &[Slot],
    (top, height): (f64, f64),
    label: &str,
    series: &Series,
    scale: fn(f64) -> Scale,
) {
    let bottom = top + height;
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{top}" width="{PLOT_W}" height="{height}" fill="none" stroke="#888"/>"##
    );
    let _ = writeln!(svg, r#"<text x="{LEFT}" y="{}">{}</text>"#, top - 6.0, escape(label));
    let highest = slots
        .iter()
        .flat_map(|&(_, p)| series.iter().filter_map(move |(_, _, value)| value(p)))
        .fold(0.0, f64::max);
    let scale = scale(highest);
    let y = |value: f64| bottom - scale.fraction(value) * height;
    let ticks = scale.ticks();
    for (value, text) in ticks {
        let ty = y(value);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{text}</text>"##,
            LEFT + PLOT_W,
            LEFT - 6.0,
            ty + 4.0
        );
    }
    for (i, (name, colour, value)) in series.iter().enumerate() {
        // One polyline per run of intervals with a value.
        for run in slots.split(|&(_, p)| value(p).is_none()).filter(|run| !run.is_empty()) {
            let coordinates: Vec<String> = run
                .iter()
                .filter_map(|&(x, p)| value(p).map(|v| format!("{x:.1},{:.1}", y(v))))
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"><title>{name}</title></polyline>"#,
                coordinates.join(" ")
            );
        }
        let legend_x = LEFT + PLOT_W - 120.0 * (series.len() - i) as f64;
        let _ = writeln!(
            svg,
            r#"<text x="{legend_x:.1}" y="{}" fill="{colour}">{name}</text>"#,
            top - 6.0
        );
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
