//! The plots, each as SVG and PNG: `latency` (every operation's latency at
//! its invocation time, coloured by outcome, shaped by function, log
//! scale), `latency-quantiles` (p50, p95, p99 and max per time window) and
//! `rate` (completions per second by outcome), and, for runs with clock
//! faults, `clock` (each node's offset as its db read it at every
//! `clock-check`). Fault windows are shaded and labelled on every plot.
//!
//! plotters draws with the DejaVu Sans font shipped in `assets/fonts/`
//! (licence beside it): no system font is looked up.

use super::data::{Data, Ending, FaultWindow};
use super::Made;
use crate::history::{History, Process};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const SIZE: (u32, u32) = (1200, 560);
/// Most ok points the latency plot draws (about 80 bytes each in SVG).
const MAX_POINTS: usize = 100_000;

fn register_font() -> Result<(), String> {
    // plotters keeps fonts in a global table; registering once is enough.
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *OK.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err("the bundled font does not load".into())
    }
}

fn rgb(e: Ending) -> RGBColor {
    let (r, g, b) = e.rgb();
    RGBColor(r, g, b)
}

fn secs(_: &Data, t: u64) -> f64 {
    t as f64 / 1e9
}

/// The window width for quantiles and rates: about 80 windows over the
/// run, rounded to 1, 2 or 5 times a power of ten seconds.
fn window_secs(duration: f64) -> f64 {
    let raw = (duration / 80.0).max(1e-3);
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    p * if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    }
}

/// Draws `$chart` (a function generic over the backend) into
/// `<stem>.svg` and `<stem>.png`.
macro_rules! both {
    ($dir:expr, $stem:expr, $chart:ident, $d:expr) => {{
        register_font()?;
        let svg = $dir.join(format!("{}.svg", $stem));
        let png = $dir.join(format!("{}.png", $stem));
        $chart(SVGBackend::new(&svg, SIZE).into_drawing_area(), $d)?;
        $chart(BitMapBackend::new(&png, SIZE).into_drawing_area(), $d)?;
        Ok(Made::Files(vec![svg, png]))
    }};
}

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("drawing failed: {e:?}")
}

fn no_times(d: &Data) -> Option<Made> {
    if !d.timed {
        return Some(Made::Skipped(
            "the history has no times: latency and rate cannot be drawn".into(),
        ));
    }
    if d.spans.iter().all(|s| s.t1.is_none()) {
        return Some(Made::Skipped("no operation completed".into()));
    }
    None
}

/// Shades and labels the fault windows over a chart whose y range is `ys`.
fn shade<DB: DrawingBackend, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    faults: &[FaultWindow],
    d: &Data,
    ys: (f64, f64),
) -> Result<(), String> {
    let fill = RGBAColor(90, 90, 200, 0.13);
    let label = ("sans-serif", 12).into_font().color(&RGBColor(60, 60, 170));
    for (i, w) in faults.iter().enumerate() {
        let (x0, x1) = (secs(d, w.t0), secs(d, w.t1).max(secs(d, w.t0)));
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x0, ys.0), (x1, ys.1)],
                fill.filled(),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(x0, ys.0), (x0, ys.1)],
                RGBColor(60, 60, 170).stroke_width(1),
            )))
            .map_err(err)?;
        // Labels alternate between two rows so neighbours overlap less.
        let row = (i % 2) as i32 * 14;
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((x0, ys.1))
                    + Text::new(w.label.clone(), (3, 3 + row), label.clone()),
            ))
            .map_err(err)?;
    }
    Ok(())
}

fn latency_chart<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, d: &Data) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    // Functions in order of first completion: index = marker shape.
    let mut fs: Vec<&str> = Vec::new();
    for s in &d.spans {
        if s.t1.is_some() && !fs.contains(&s.f.as_str()) {
            fs.push(&s.f);
        }
    }
    // Past MAX_POINTS, every k-th ok point is drawn (fail and info always):
    // the shape stays, the files stay small.
    let oks = d
        .spans
        .iter()
        .filter(|s| s.t1.is_some() && s.ending == Ending::Ok)
        .count();
    let stride = oks.div_ceil(MAX_POINTS).max(1);
    let mut nth_ok = 0usize;
    let pts: Vec<(f64, f64, Ending, usize)> = d
        .spans
        .iter()
        .filter_map(|s| {
            let lat = s.latency()? as f64 / 1e6;
            if s.ending == Ending::Ok {
                nth_ok += 1;
                if (nth_ok - 1) % stride != 0 {
                    return None;
                }
            }
            let fi = fs.iter().position(|f| *f == s.f).unwrap_or(0);
            Some((secs(d, s.t0), lat.max(1e-3), s.ending, fi))
        })
        .collect();
    let caption = if stride > 1 {
        format!("Latency (invocation to completion); 1 in {stride} ok operations drawn")
    } else {
        "Latency (invocation to completion)".to_string()
    };
    let x_max = secs(d, d.t_end).max(1e-3);
    let y_min = pts.iter().map(|p| p.1).fold(f64::MAX, f64::min).max(1e-3) / 1.5;
    let y_max = pts
        .iter()
        .map(|p| p.1)
        .fold(0f64, f64::max)
        .max(y_min * 10.0)
        * 1.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("latency (ms)")
        .light_line_style(RGBColor(240, 240, 240))
        .draw()
        .map_err(err)?;
    shade(&mut chart, &d.faults, d, (y_min, y_max))?;
    for (fi, f) in fs.iter().enumerate() {
        for e in Ending::ALL {
            let c = rgb(e);
            let series: Vec<(f64, f64)> = pts
                .iter()
                .filter(|p| p.2 == e && p.3 == fi)
                .map(|p| (p.0, p.1))
                .collect();
            if series.is_empty() {
                continue;
            }
            let name = format!("{f} {}", e.name());
            // One marker shape per function (four shapes, then repeat).
            match fi % 4 {
                0 => chart
                    .draw_series(series.iter().map(|&p| Circle::new(p, 2, c.filled())))
                    .map_err(err)?
                    .label(name)
                    .legend(move |(x, y)| Circle::new((x, y), 3, c.filled())),
                1 => chart
                    .draw_series(
                        series
                            .iter()
                            .map(|&p| TriangleMarker::new(p, 3, c.filled())),
                    )
                    .map_err(err)?
                    .label(name)
                    .legend(move |(x, y)| TriangleMarker::new((x, y), 4, c.filled())),
                2 => chart
                    .draw_series(series.iter().map(|&p| Cross::new(p, 3, c.stroke_width(1))))
                    .map_err(err)?
                    .label(name)
                    .legend(move |(x, y)| Cross::new((x, y), 4, c.stroke_width(1))),
                _ => chart
                    .draw_series(series.iter().map(|&p| {
                        EmptyElement::at(p) + Rectangle::new([(-2, -2), (2, 2)], c.filled())
                    }))
                    .map_err(err)?
                    .label(name)
                    .legend(move |(x, y)| {
                        Rectangle::new([(x - 3, y - 3), (x + 3, y + 3)], c.filled())
                    }),
            };
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// `latency.svg` and `latency.png`.
pub fn write_latency(dir: &Path, d: &Data) -> Result<Made, String> {
    if let Some(m) = no_times(d) {
        return Ok(m);
    }
    both!(dir, "latency", latency_chart, d)
}

/// Per window: (window start in s, p50, p95, p99, max) of latencies in ms.
pub fn quantiles(d: &Data) -> Vec<(f64, [f64; 4])> {
    let w = window_secs(secs(d, d.t_end));
    let mut buckets: std::collections::BTreeMap<u64, Vec<f64>> = Default::default();
    for s in &d.spans {
        if let Some(l) = s.latency() {
            let b = (secs(d, s.t0) / w).floor() as u64;
            buckets.entry(b).or_default().push(l as f64 / 1e6);
        }
    }
    buckets
        .into_iter()
        .map(|(b, mut v)| {
            v.sort_by(f64::total_cmp);
            let q = |p: f64| v[(((v.len() - 1) as f64) * p).round() as usize];
            (b as f64 * w, [q(0.5), q(0.95), q(0.99), v[v.len() - 1]])
        })
        .collect()
}

fn quantile_chart<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    d: &Data,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let qs = quantiles(d);
    let w = window_secs(secs(d, d.t_end));
    let y_min = qs.iter().map(|q| q.1[0]).fold(f64::MAX, f64::min).max(1e-3) / 1.5;
    let y_max = qs
        .iter()
        .map(|q| q.1[3])
        .fold(0f64, f64::max)
        .max(y_min * 10.0)
        * 1.5;
    let x_max = secs(d, d.t_end).max(1e-3);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Latency quantiles per {w} s window"),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("latency (ms)")
        .light_line_style(RGBColor(240, 240, 240))
        .draw()
        .map_err(err)?;
    shade(&mut chart, &d.faults, d, (y_min, y_max))?;
    let lines = [
        ("p50", RGBColor(0x1f, 0x77, 0xb4)),
        ("p95", RGBColor(0x2c, 0xa0, 0x2c)),
        ("p99", RGBColor(0xff, 0x7f, 0x0e)),
        ("max", RGBColor(0xd6, 0x27, 0x28)),
    ];
    for (i, (name, c)) in lines.iter().enumerate() {
        let c = *c;
        chart
            .draw_series(LineSeries::new(
                qs.iter().map(|q| (q.0 + w / 2.0, q.1[i].max(y_min))),
                c.stroke_width(2),
            ))
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x - 8, y), (x + 8, y)], c.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// `latency-quantiles.svg` and `latency-quantiles.png`.
pub fn write_quantiles(dir: &Path, d: &Data) -> Result<Made, String> {
    if let Some(m) = no_times(d) {
        return Ok(m);
    }
    both!(dir, "latency-quantiles", quantile_chart, d)
}

/// Completions per second, per window and outcome: (window start, [ok, fail, info]).
pub fn rates(d: &Data) -> Vec<(f64, [f64; 3])> {
    let w = window_secs(secs(d, d.t_end));
    // Whole nanoseconds, so a completion at the very end falls in the last
    // window rather than in an empty one after it.
    let w_ns = ((w * 1e9).round() as u64).max(1);
    let n = d.t_end.div_ceil(w_ns).max(1) as usize;
    let mut r = vec![[0f64; 3]; n];
    for s in &d.spans {
        if let Some(t1) = s.t1 {
            let b = ((t1 / w_ns) as usize).min(n - 1);
            r[b][s.ending.code() as usize] += 1.0;
        }
    }
    r.into_iter()
        .enumerate()
        .map(|(i, x)| {
            // The last window is cut short by the end of the run.
            let start = i as u64 * w_ns;
            let width = d.t_end.saturating_sub(start).clamp(1, w_ns) as f64 / 1e9;
            (start as f64 / 1e9, x.map(|c| c / width))
        })
        .collect()
}

fn rate_chart<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, d: &Data) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let rs = rates(d);
    let w = window_secs(secs(d, d.t_end));
    let y_max = rs.iter().flat_map(|r| r.1).fold(0f64, f64::max).max(1.0) * 1.15;
    let x_max = secs(d, d.t_end).max(1e-3);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Throughput: completions per second ({w} s windows)"),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("operations / s")
        .light_line_style(RGBColor(240, 240, 240))
        .draw()
        .map_err(err)?;
    shade(&mut chart, &d.faults, d, (0.0, y_max))?;
    for e in Ending::ALL {
        let c = rgb(e);
        chart
            .draw_series(LineSeries::new(
                rs.iter().map(|r| (r.0 + w / 2.0, r.1[e.code() as usize])),
                c.stroke_width(2),
            ))
            .map_err(err)?
            .label(e.name())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x - 8, y), (x + 8, y)], c.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// `rate.svg` and `rate.png`.
pub fn write_rate(dir: &Path, d: &Data) -> Result<Made, String> {
    if let Some(m) = no_times(d) {
        return Ok(m);
    }
    both!(dir, "rate", rate_chart, d)
}

/// Each node's clock offsets (seconds since the start, ms) from the
/// completions of the history's `clock-check` ops, by node name.
pub fn clock_offsets(history: &History) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut by_node: std::collections::BTreeMap<String, Vec<(f64, f64)>> = Default::default();
    for op in history
        .ops
        .iter()
        .filter(|o| o.process == Process::Nemesis && o.f == "clock-check")
    {
        let (Some(t), Some(offsets)) = (
            op.time,
            op.value
                .get("offsets-ms")
                .and_then(serde_json::Value::as_object),
        ) else {
            continue;
        };
        for (node, ms) in offsets {
            if let Some(ms) = ms.as_f64() {
                by_node
                    .entry(node.clone())
                    .or_default()
                    .push((t as f64 / 1e9, ms));
            }
        }
    }
    by_node.into_iter().collect()
}

/// The colour of the `i`th node's line.
fn node_colour(i: usize) -> RGBColor {
    const COLOURS: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(23, 190, 207),
    ];
    COLOURS[i % COLOURS.len()]
}

type Offsets = [(String, Vec<(f64, f64)>)];

fn clock_chart<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    (d, offsets): (&Data, &Offsets),
) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let all = offsets.iter().flat_map(|(_, pts)| pts.iter().map(|p| p.1));
    let (lo, hi) = all.fold((0f64, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let pad = ((hi - lo) * 0.15).max(10.0);
    let ys = (lo - pad, hi + pad);
    let x_max = secs(d, d.t_end).max(1e-3);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Clock offsets from the controller, as each node's db read them",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, ys.0..ys.1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("offset (ms)")
        .light_line_style(RGBColor(240, 240, 240))
        .draw()
        .map_err(err)?;
    shade(&mut chart, &d.faults, d, ys)?;
    for (i, (node, pts)) in offsets.iter().enumerate() {
        let c = node_colour(i);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
            .map_err(err)?
            .label(node.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x - 8, y), (x + 8, y)], c.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().map(|p| Circle::new(*p, 3, c.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// `clock.svg` and `clock.png`, when the history has clock checks.
pub fn write_clock(dir: &Path, d: &Data, history: &History) -> Result<Made, String> {
    let offsets = clock_offsets(history);
    if offsets.is_empty() {
        return Ok(Made::Skipped("no clock-check in the history".into()));
    }
    if !d.timed {
        return Ok(Made::Skipped("the history has no times".into()));
    }
    both!(dir, "clock", clock_chart, (d, offsets.as_slice()))
}
