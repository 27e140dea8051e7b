//! The report as an SVG chart, written by hand (plain grouped bar charts need no plotting
//! library): a throughput panel — one group of bars per row, one bar per workload and batch
//! size — and a latency panel — p50/p95/p99 of each call type per row.

use crate::report::{rows_label, BenchReport, RowReport, Workload};
use std::fmt::Write as _;

const WIDTH: f64 = 1000.0;
const PANEL_HEIGHT: f64 = 340.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 64.0;
const BOTTOM: f64 = 56.0;
/// Shades per family of series, darkest first: blue (DoGet, GetFlightInfo), orange (DoPut,
/// DoAction), green (DoExchange), grey (anything else).
const FAMILIES: [[&str; 4]; 4] = [
    ["#2f5f8a", "#4e79a7", "#7fa6cf", "#b3cde6"],
    ["#c4661a", "#f28e2b", "#f7b36a", "#fbd5a8"],
    ["#3d7a35", "#59a14f", "#8cd17d", "#bfe5b3"],
    ["#55504d", "#79706e", "#a8a19e", "#d3cecb"],
];

/// The colour of a series: its family (by the series name's first word) and its rank in it.
fn colors(series: &[String]) -> Vec<&'static str> {
    let family = |name: &str| match name.split_whitespace().next() {
        Some("DoGet") | Some("GetFlightInfo") => 0,
        Some("DoPut") | Some("DoAction") => 1,
        Some("DoExchange") => 2,
        _ => 3,
    };
    let mut seen = [0usize; 4];
    series
        .iter()
        .map(|name| {
            let f = family(name);
            let shade = seen[f] % 4;
            seen[f] += 1;
            FAMILIES[f][shade]
        })
        .collect()
}

/// A bar chart's data: group labels, series labels, values (`None`: not measured).
struct Bars {
    title: String,
    unit: String,
    groups: Vec<String>,
    series: Vec<String>,
    /// `values[group][series]`.
    values: Vec<Vec<Option<f64>>>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The smallest 1, 2 or 5 × 10^k at or above `value`.
fn nice_max(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    for step in [1.0, 2.0, 5.0, 10.0] {
        if step * magnitude >= value {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

fn format_value(value: f64) -> String {
    if value == 0.0 {
        "0".to_string()
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn panel(out: &mut String, bars: &Bars, y0: f64) {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = PANEL_HEIGHT - TOP - BOTTOM;
    let base = y0 + TOP + plot_h;
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{}" font-size="15" font-weight="bold">{}</text>"#,
        y0 + 20.0,
        escape(&bars.title)
    );
    // Legend, wrapped to the plot's width.
    let palette = colors(&bars.series);
    let (mut lx, mut ly) = (LEFT, y0 + 38.0);
    for (i, name) in bars.series.iter().enumerate() {
        let w = 18.0 + 7.0 * name.chars().count() as f64 + 16.0;
        if lx + w > WIDTH - RIGHT {
            lx = LEFT;
            ly += 16.0;
        }
        let _ = writeln!(
            out,
            r#"<rect x="{lx}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{}" font-size="12">{}</text>"#,
            ly - 10.0,
            palette[i],
            lx + 16.0,
            ly,
            escape(name)
        );
        lx += w;
    }
    let max = nice_max(
        bars.values
            .iter()
            .flatten()
            .flatten()
            .copied()
            .fold(0.0, f64::max),
    );
    for i in 0..=5 {
        let v = max * i as f64 / 5.0;
        let y = base - plot_h * i as f64 / 5.0;
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            format_value(v)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="16" y="{:.1}" font-size="12" transform="rotate(-90 16 {:.1})" text-anchor="middle">{}</text>"#,
        y0 + TOP + plot_h / 2.0,
        y0 + TOP + plot_h / 2.0,
        escape(&bars.unit)
    );
    let groups = bars.groups.len().max(1) as f64;
    let group_w = plot_w / groups;
    let bar_w = (group_w * 0.8 / bars.series.len().max(1) as f64).min(40.0);
    for (g, name) in bars.groups.iter().enumerate() {
        let used = bar_w * bars.series.len() as f64;
        let gx = LEFT + group_w * g as f64 + (group_w - used) / 2.0;
        for (s, value) in bars.values[g].iter().enumerate() {
            let Some(value) = value else { continue };
            let h = plot_h * (value / max).clamp(0.0, 1.0);
            let x = gx + bar_w * s as f64;
            let _ = writeln!(
                out,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{}: {} {}</title></rect>"#,
                base - h,
                bar_w - 1.0,
                palette[s],
                escape(&format!("{name}, {}", bars.series[s])),
                format_value(*value),
                escape(&bars.unit)
            );
            // Value labels only where they fit: four digits need about 20 px at 8 px type.
            if bar_w >= 14.0 {
                let size = if bar_w >= 26.0 { 9 } else { 7 };
                let _ = writeln!(
                    out,
                    r#"<text x="{:.1}" y="{:.1}" font-size="{size}" text-anchor="middle">{}</text>"#,
                    x + bar_w / 2.0,
                    base - h - 3.0,
                    format_value(*value)
                );
            }
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text>"#,
            LEFT + group_w * (g as f64 + 0.5),
            base + 18.0,
            escape(name)
        );
    }
    let _ = writeln!(
        out,
        r##"<line x1="{LEFT}" x2="{}" y1="{base:.1}" y2="{base:.1}" stroke="#333"/>"##,
        WIDTH - RIGHT
    );
}

fn throughput_bars(report: &BenchReport) -> Bars {
    let columns = report.columns();
    let rows: Vec<&RowReport> = report
        .rows
        .iter()
        .filter(|r| !r.throughput.is_empty())
        .collect();
    let series = columns
        .iter()
        .map(|(w, s)| format!("{} {}", w.as_str(), rows_label(*s)))
        .collect();
    let values = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|(w, s)| {
                    row.find(*w, *s)
                        .or_else(|| {
                            (*w == Workload::DoGet)
                                .then(|| row.find(Workload::Socket, *s))
                                .flatten()
                        })
                        .map(|t| t.mb_per_s)
                })
                .collect()
        })
        .collect();
    Bars {
        title: format!(
            "Throughput by transport and batch size — {} stream(s), {} × {} columns (ceilings: \
             one-way raw socket)",
            report.config.streams, report.config.columns, report.config.kind
        ),
        unit: "MB/s (10^6 Arrow IPC data bytes/s)".into(),
        groups: rows.iter().map(|r| r.name.clone()).collect(),
        series,
        values,
    }
}

fn latency_bars(report: &BenchReport) -> Bars {
    let rows: Vec<&RowReport> = report
        .rows
        .iter()
        .filter(|r| !r.latency.is_empty())
        .collect();
    let mut calls: Vec<String> = Vec::new();
    for l in rows.iter().flat_map(|r| r.latency.iter()) {
        if !calls.contains(&l.call) {
            calls.push(l.call.clone());
        }
    }
    let percentiles = ["p50", "p95", "p99"];
    let series = calls
        .iter()
        .flat_map(|c| percentiles.iter().map(move |p| format!("{c} {p}")))
        .collect();
    let values = rows
        .iter()
        .map(|row| {
            calls
                .iter()
                .flat_map(|c| {
                    let l = row.latency_of(c);
                    [
                        l.map(|l| l.p50_us),
                        l.map(|l| l.p95_us),
                        l.map(|l| l.p99_us),
                    ]
                })
                .collect()
        })
        .collect();
    Bars {
        title: "Round-trip latency of small calls (sequential, one in flight)".into(),
        unit: "µs".into(),
        groups: rows.iter().map(|r| r.name.clone()).collect(),
        series,
        values,
    }
}

/// The chart for `report` as an SVG document.
pub fn render_svg(report: &BenchReport) -> String {
    let mut panels = vec![throughput_bars(report)];
    let latency = latency_bars(report);
    if !latency.groups.is_empty() {
        panels.push(latency);
    }
    let footer = 24.0;
    let height = PANEL_HEIGHT * panels.len() as f64 + footer;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="{WIDTH}" height="{height}" fill="white"/>"#
    );
    for (i, bars) in panels.iter().enumerate() {
        panel(&mut out, bars, PANEL_HEIGHT * i as f64);
    }
    let _ = writeln!(
        out,
        r##"<text x="{LEFT}" y="{:.1}" font-size="11" fill="#555">{}</text>"##,
        height - 8.0,
        escape(&format!(
            "polyflight {} · {} CPUs · {}{} · preset {} · {} stream(s)",
            report.polyflight_version,
            report.machine.cpus,
            report.machine.os,
            report
                .machine
                .load_average
                .map(|l| format!(" · load average {:.2} at start", l[0]))
                .unwrap_or_default(),
            report.config.preset,
            report.config.streams
        ))
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    #[test]
    fn axis_maxima_are_round() {
        assert_eq!(nice_max(830.0), 1000.0);
        assert_eq!(nice_max(1200.0), 2000.0);
        assert_eq!(nice_max(0.3), 0.5);
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(1234.5), "1234");
    }

    #[test]
    fn series_of_a_workload_share_a_hue() {
        let series: Vec<String> = ["DoGet 1", "DoGet 2", "DoPut 2", "DoExchange 2", "socket"]
            .map(String::from)
            .to_vec();
        let c = colors(&series);
        assert_eq!(c[0], FAMILIES[0][0]);
        assert_eq!(c[1], FAMILIES[0][1]);
        assert_eq!(c[2], FAMILIES[1][0]);
        assert_eq!(c[3], FAMILIES[2][0]);
        assert_eq!(c[4], FAMILIES[3][0]);
    }

    #[test]
    fn the_chart_has_a_bar_per_measurement_and_escapes_text() {
        let mut report = sample();
        report.rows[0].name = "a<b&c".into();
        let svg = render_svg(&report);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a&lt;b&amp;c"));
        assert!(!svg.contains("a<b"));
        // grpc: 2 DoGet + 1 DoPut; grpc+unix: 2; two ceilings: 1 each → 7 throughput bars;
        // grpc latency: 2 calls × 3 percentiles → 6.
        assert_eq!(svg.matches("<title>").count(), 13);
        assert!(svg.contains("Round-trip latency"));
        assert!(svg.contains("DoGet 32768 rows"));
    }
}
