//! Helpers shared by the examples: data paths, SVG plots (plotters, SVG backend only, no fonts
//! or system libraries), small tables, and pass/fail checks that set the exit code.
//!
//! Each example does `mod common;` and uses a part of this module.
#![allow(dead_code)]

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Duration;

use plotters::prelude::*;
use symnet::{Dataset, Scalar, Standardizer, Target};

/// The error type of the examples' `main`.
pub type Result<T, E = Box<dyn Error>> = std::result::Result<T, E>;

/// Loads `examples/data/<file>` (independent of the working directory).
pub fn load<T: Scalar>(file: &str, target: Target) -> Result<Dataset<T>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join("data")
        .join(file);
    Ok(Dataset::from_csv(path, target)?)
}

/// `target/<rest>` of the workspace, with its parent directory created.
pub fn target_path(rest: &str) -> Result<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(rest);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    Ok(path)
}

/// `target/plots/<example>_<what>.svg`, with the directory created.
pub fn plot_path(example: &str, what: &str) -> Result<PathBuf> {
    target_path(&format!("plots/{example}_{what}.svg"))
}

/// The path relative to the workspace root, for printing.
pub fn show(path: &Path) -> String {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(path)
        .display()
        .to_string()
}

/// A duration as `1.23 s` or `456 ms`.
pub fn secs(d: Duration) -> String {
    if d.as_secs_f64() >= 1.0 {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        format!("{:.0} ms", d.as_secs_f64() * 1e3)
    }
}

/// Stated thresholds: each is printed as PASS or FAIL; [`Checks::finish`] exits with status 1
/// if any failed.
#[derive(Default)]
pub struct Checks {
    failed: usize,
}

impl Checks {
    /// Records and prints one check.
    pub fn check(&mut self, ok: bool, what: impl std::fmt::Display) {
        println!("{} {what}", if ok { "PASS" } else { "FAIL" });
        self.failed += usize::from(!ok);
    }

    /// Exits with status 1 if a check failed.
    pub fn finish(self) {
        if self.failed > 0 {
            eprintln!("{} check(s) failed", self.failed);
            std::process::exit(1);
        }
    }
}

/// `m[actual][predicted]` counts.
pub fn confusion(actual: &[usize], predicted: &[usize], classes: usize) -> Vec<Vec<usize>> {
    let mut m = vec![vec![0; classes]; classes];
    for (&a, &p) in actual.iter().zip(predicted) {
        m[a][p] += 1;
    }
    m
}

/// Prints a confusion matrix, rows = actual class, columns = predicted class.
pub fn print_confusion(m: &[Vec<usize>], labels: &[&str]) {
    let w = labels.iter().map(|l| l.len()).max().unwrap_or(1).max(4);
    print!("{:>w$}  predicted ->\n{:>w$}", "actual", "");
    for l in labels {
        print!(" {l:>w$}");
    }
    println!();
    for (row, l) in m.iter().zip(labels) {
        print!("{l:>w$}");
        for c in row {
            print!(" {c:>w$}");
        }
        println!();
    }
}

/// Colors for series and classes (Tableau 10).
pub const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The `[min, max]` of `values`, widened by 5% (and made non-empty).
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-9 * lo.abs().max(1.0));
    (lo - pad, hi + pad)
}

/// One named series of `(x, y)` points.
pub struct Series {
    /// The legend entry.
    pub name: String,
    /// The points.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series from `(x, y)` points.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            points,
        }
    }

    /// A loss curve: `values[k]` at epoch `k + 1`.
    pub fn curve(name: impl Into<String>, values: &[f64]) -> Self {
        Self::new(
            name,
            values
                .iter()
                .enumerate()
                .map(|(k, &v)| ((k + 1) as f64, v))
                .collect(),
        )
    }
}

/// Line plot of several series. The y axis is logarithmic if `log_y` and every value is
/// positive.
pub fn line_plot(
    path: &Path,
    title: &str,
    (x_label, y_label): (&str, &str),
    series: &[Series],
    log_y: bool,
) -> Result<()> {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = bounds(all().map(|p| p.0));
    let log_y = log_y && all().all(|p| p.1 > 0.0);
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(75);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .x_label_formatter(&|x| format!("{x}"))
                .draw()?;
            for (i, s) in series.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                chart
                    .draw_series(LineSeries::new(
                        s.points.iter().copied(),
                        color.stroke_width(2),
                    ))?
                    .label(s.name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()?;
        }};
    }
    if log_y {
        let lo = all().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let hi = all().map(|p| p.1).fold(0.0, f64::max);
        draw!(builder.build_cartesian_2d(x0..x1, (lo * 0.8..hi * 1.25).log_scale())?);
    } else {
        let (y0, y1) = bounds(all().map(|p| p.1));
        draw!(builder.build_cartesian_2d(x0..x1, y0..y1)?);
    }
    root.present()?;
    Ok(())
}

/// The loss curve(s) of training, one point per epoch, log-scale when positive.
pub fn loss_plot(path: &Path, title: &str, series: &[Series]) -> Result<()> {
    line_plot(path, title, ("epoch", "mean training loss"), series, true)
}

/// A scatter plot of groups of points (one color each). With `diagonal`, the line `y = x` is
/// drawn (for predicted-vs-actual plots). `ring` points (for example misclassified samples) are
/// drawn as black circles on top.
pub fn scatter_plot(
    path: &Path,
    title: &str,
    (x_label, y_label): (&str, &str),
    groups: &[Series],
    diagonal: bool,
    ring: &[(f64, f64)],
) -> Result<()> {
    let all = || groups.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1) = bounds(all().map(|p| p.0));
    let (mut y0, mut y1) = bounds(all().map(|p| p.1));
    if diagonal {
        (x0, x1) = (x0.min(y0), x1.max(y1));
        (y0, y1) = (x0, x1);
    }
    let root = SVGBackend::new(path, (800, 650)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()?;
    if diagonal {
        chart
            .draw_series(LineSeries::new([(x0, x0), (x1, x1)], BLACK.mix(0.5)))?
            .label("y = x")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5)));
    }
    for (i, g) in groups.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(
                g.points
                    .iter()
                    .map(|&p| Circle::new(p, 3, color.mix(0.75).filled())),
            )?
            .label(g.name.as_str())
            .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
    }
    if !ring.is_empty() {
        chart
            .draw_series(
                ring.iter()
                    .map(|&p| Circle::new(p, 7, BLACK.stroke_width(1))),
            )?
            .label("misclassified")
            .legend(|(x, y)| Circle::new((x + 10, y), 6, BLACK.stroke_width(1)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// A classifier's probability of class 1 at a point of the plane.
pub type Probability<'a> = dyn Fn(f64, f64) -> f64 + 'a;

/// Decision surfaces of binary classifiers side by side: for each `(name, p)`, `p(x1, x2)` (the
/// probability of class 1) shaded from blue (0) through white (0.5) to red (1) over
/// `[lo, hi]^2` (white where it is 0.5, the decision boundary), and the labelled `points` on top
/// (filled for class 1, hollow for class 0).
pub fn decision_surfaces(
    path: &Path,
    title: &str,
    (lo, hi): (f64, f64),
    panels: &[(&str, &Probability)],
    points: &[((f64, f64), bool)],
) -> Result<()> {
    const CELLS: usize = 80;
    let root = SVGBackend::new(path, (420 * panels.len() as u32, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let step = (hi - lo) / CELLS as f64;
    for (area, (name, p)) in root.split_evenly((1, panels.len())).iter().zip(panels) {
        let mut chart = ChartBuilder::on(area)
            .caption(*name, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(40)
            .build_cartesian_2d(lo..hi, lo..hi)?;
        chart.configure_mesh().x_desc("x1").y_desc("x2").draw()?;
        let shade = |v: f64| {
            let v = v.clamp(0.0, 1.0);
            let (a, b) = if v < 0.5 {
                (RGBColor(49, 130, 189), 1.0 - 2.0 * v)
            } else {
                (RGBColor(222, 45, 38), 2.0 * v - 1.0)
            };
            let mix = |c: u8| (255.0 - (255.0 - c as f64) * b) as u8;
            RGBColor(mix(a.0), mix(a.1), mix(a.2))
        };
        chart.draw_series((0..CELLS * CELLS).map(|k| {
            let (i, j) = (k % CELLS, k / CELLS);
            let (x, y) = (lo + i as f64 * step, lo + j as f64 * step);
            let v = p(x + step / 2.0, y + step / 2.0);
            Rectangle::new([(x, y), (x + step, y + step)], shade(v).filled())
        }))?;
        chart.draw_series(points.iter().map(|&(xy, one)| {
            let style = if one {
                BLACK.filled()
            } else {
                BLACK.stroke_width(2)
            };
            Circle::new(xy, 7, style)
        }))?;
    }
    root.present()?;
    Ok(())
}

/// The rows of a data set's features, as f64.
pub fn rows_f64<T: Scalar>(data: &Dataset<T>) -> Vec<Vec<f64>> {
    (0..data.len())
        .map(|i| data.x(i).iter().map(|v| v.to_f64()).collect())
        .collect()
}

/// The class labels of a one-hot (or, for one output, 0/1) target.
pub fn labels<T: Scalar>(data: &Dataset<T>) -> Vec<usize> {
    (0..data.len())
        .map(|i| {
            let y = data.y(i);
            if y.len() == 1 {
                usize::from(y[0].to_f64() >= 0.5)
            } else {
                symnet::argmax(y)
            }
        })
        .collect()
}

/// A regression data set split, with the features *and* the target standardized by the
/// training split's statistics: `(train, test, target mean, target sd)`. Predictions in raw
/// units are `mean + sd * prediction`.
pub fn standardized_regression(
    data: &Dataset<f64>,
    test_fraction: f64,
    seed: u64,
) -> Result<(Dataset<f64>, Dataset<f64>, f64, f64)> {
    let (train_raw, test_raw) = data.split(test_fraction, seed)?;
    // Features and target, both by the training split's statistics.
    let scaler = Standardizer::fit_with_targets(&train_raw);
    let (mean_y, sd_y) = match (scaler.target_mean(), scaler.target_std()) {
        (Some(m), Some(s)) => (m[0], s[0]),
        _ => return Err("the standardizer has no target statistics".into()),
    };
    let standardize = |d: &Dataset<f64>| -> Result<Dataset<f64>> { Ok(scaler.transform(d)) };
    Ok((
        standardize(&train_raw)?,
        standardize(&test_raw)?,
        mean_y,
        sd_y,
    ))
}
