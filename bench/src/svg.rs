//! Small hand-written SVG line charts for the report.

use std::fmt::Write as _;

/// One line: a name for the legend, a colour, and (x, y) points in data units.
pub struct Series<'a> {
    pub name: &'a str,
    pub colour: &'a str,
    pub points: Vec<(f64, f64)>,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 400.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const TICKS: usize = 5;

fn max_of(series: &[Series<'_>], pick: impl Fn(&(f64, f64)) -> f64) -> f64 {
    series
        .iter()
        .flat_map(|s| s.points.iter().map(&pick))
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE)
}

/// A step chart: each series is drawn as a line holding its value until the next point.
pub fn step_chart(title: &str, x_label: &str, y_label: &str, series: &[Series<'_>]) -> String {
    let (x_max, y_max) = (max_of(series, |p| p.0), max_of(series, |p| p.1));
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |v: f64| LEFT + v / x_max * plot_w;
    let y = |v: f64| TOP + plot_h - v / y_max * plot_h;
    let mut svg = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="20" text-anchor="middle" font-size="14">{title}</text>"#,
        WIDTH / 2.0
    );
    for i in 0..=TICKS {
        let fraction = i as f64 / TICKS as f64;
        let (xv, yv) = (fraction * x_max, fraction * y_max);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y(yv) + 4.0,
            tick(yv),
            y = y(yv)
        );
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 16.0,
            tick(xv),
            x = x(xv)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{x_label}</text><text transform="translate(14 {}) rotate(-90)" text-anchor="middle">{y_label}</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 10.0,
        TOP + plot_h / 2.0
    );
    for (n, s) in series.iter().enumerate() {
        let mut path = format!("M{:.1},{:.1}", x(0.0), y(0.0));
        let mut last_y = 0.0;
        for &(px, py) in &s.points {
            let _ = write!(
                path,
                " L{:.1},{:.1} L{:.1},{:.1}",
                x(px),
                y(last_y),
                x(px),
                y(py)
            );
            last_y = py;
        }
        let legend_y = TOP + 16.0 * n as f64 + 10.0;
        let _ = writeln!(
            svg,
            r#"<path d="{path}" fill="none" stroke="{c}" stroke-width="2"/><rect x="{lx}" y="{ry}" width="12" height="4" fill="{c}"/><text x="{tx}" y="{ty}">{name}</text>"#,
            c = s.colour,
            lx = LEFT + 12.0,
            ry = legend_y - 4.0,
            tx = LEFT + 30.0,
            ty = legend_y + 2.0,
            name = s.name
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn tick(value: f64) -> String {
    if value >= 10.0 || value == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// Points of a cumulative count: the i-th of the sorted `times` (seconds) reaches i+1.
pub fn cumulative(times: &[f64]) -> Vec<(f64, f64)> {
    times
        .iter()
        .enumerate()
        .map(|(i, t)| (*t, (i + 1) as f64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{Series, cumulative, step_chart};

    #[test]
    fn a_chart_has_one_path_per_series() {
        let svg = step_chart(
            "t",
            "x",
            "y",
            &[
                Series {
                    name: "a",
                    colour: "red",
                    points: cumulative(&[0.5, 1.0, 2.0]),
                },
                Series {
                    name: "b",
                    colour: "blue",
                    points: vec![],
                },
            ],
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<path").count(), 2);
    }
}
