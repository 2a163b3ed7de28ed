//! Losses and activations as formulas. Part 1 fits the diabetes data with one network shape,
//! 10 -> 16 tanh -> 1, declared three times with the catalog's new robust and quantile losses:
//! `huber` (quadratic within 1 standardized unit, linear beyond), `log_cosh` (a smooth huber,
//! computed without overflow) and `quantile(0.9)` (the pinball loss, whose minimizer is the
//! conditional 90% quantile: about 90% of the targets should fall below its prediction). Part 2
//! classifies the 8x8 digits with hidden activations written in the declaration itself,
//! `|x| x * sigmoid(1.702 * x)` (the sigmoid approximation of gelu) and
//! `|x| if x > 0.0 { x } else { 0.1 * (exp(x) - 1.0) }` (an elu with alpha 0.1, also trained
//! side by side with the catalog's `elu(0.1)` from the same starting weights).
//!
//! `network!` differentiates every formula symbolically at compile time, like the built-ins
//! (which are formulas in the same language, in `runtime/src/catalog.rs`).
//!
//! Run with `cargo run --release --example custom_formulas`; the plots go to
//! `target/plots/custom_formulas_*.svg`.

mod common;

use std::time::Instant;

use common::{Checks, Result, Series};
use symnet::train::Schedule;
use symnet::{accuracy, catalog, network, train, Adam, Dataset, Network, Target, TrainConfig};

// Part 1: the diabetes regression, one shape, three losses (in standardized target units).

network! {
    /// Huber loss, `delta` left at its default of 1.
    pub struct Huber<f64> {
        input: 10,
        hidden: dense(16) -> tanh,
        out: dense(1),
        loss: huber,
    }
}

network! {
    /// The log of the hyperbolic cosine of the error.
    pub struct LogCosh<f64> {
        input: 10,
        hidden: dense(16) -> tanh,
        out: dense(1),
        loss: log_cosh,
    }
}

network! {
    /// The pinball loss of the 0.9 quantile.
    pub struct Quantile90<f64> {
        input: 10,
        hidden: dense(16) -> tanh,
        out: dense(1),
        loss: quantile(0.9),
    }
}

// Part 2: the digits, with activations written as formulas. The strings below repeat the
// formulas for printing (the macro consumes the tokens).

/// The activation of [`FastGelu`], as declared.
const FAST_GELU: &str = "|x| x * sigmoid(1.702 * x)";
/// The activation of [`SoftElu`], as declared.
const SOFT_ELU: &str = "|x| if x > 0.0 { x } else { 0.1 * (exp(x) - 1.0) }";

network! {
    /// gelu's sigmoid approximation, written out.
    pub struct FastGelu<f32> {
        input: 64,
        hidden: dense(32) -> |x| x * sigmoid(1.702 * x),
        out: dense(10) -> softmax,
        loss: cross_entropy,
    }
}

network! {
    /// An elu with alpha 0.1, written out.
    pub struct SoftElu<f32> {
        input: 64,
        hidden: dense(32) -> |x| if x > 0.0 { x } else { 0.1 * (exp(x) - 1.0) },
        out: dense(10) -> softmax,
        loss: cross_entropy,
    }
}

network! {
    /// The same activation from the catalog.
    pub struct CatalogElu<f32> {
        input: 64,
        hidden: dense(32) -> elu(0.1),
        out: dense(10) -> softmax,
        loss: cross_entropy,
    }
}

const REG_EPOCHS: usize = 300;
const REG_BATCH: usize = 32;
const REG_LR: f64 = 3e-3;
const DIGITS_EPOCHS: usize = 40;
const DIGITS_BATCH: usize = 32;
const DIGITS_LR: f64 = 2e-3;
const DIGITS_THRESHOLD: f64 = 0.93;
/// The range the quantile model's test coverage must fall in.
const COVERAGE: (f64, f64) = (0.80, 0.97);

/// Minibatch Adam with a cosine schedule from the given starting parameters; the per-epoch
/// training losses.
fn fit<N: Network + Send + Sync>(
    net: &mut N,
    data: &Dataset<N::Scalar>,
    (epochs, batch, lr): (usize, usize, f64),
) -> Result<Vec<f64>> {
    let config = TrainConfig {
        epochs,
        batch_size: Some(batch),
        seed: 7,
        schedule: Schedule::Cosine {
            epochs,
            min_lr: lr / 30.0,
        },
        ..Default::default()
    };
    let mut opt = Adam {
        lr,
        ..Default::default()
    };
    Ok(train(net, data, &mut opt, &config)?.losses)
}

/// `(actual, predicted)` on `data`, in raw units.
fn predictions<N: Network<Scalar = f64>>(
    net: &N,
    data: &Dataset<f64>,
    (mean_y, sd_y): (f64, f64),
) -> Vec<(f64, f64)> {
    let mut out = [0.0];
    (0..data.len())
        .map(|i| {
            net.forward_slice(data.x(i), &mut out);
            (mean_y + sd_y * data.y(i)[0], mean_y + sd_y * out[0])
        })
        .collect()
}

/// RMSE, MAE and the fraction of targets below the prediction, from `(actual, predicted)`.
fn scores(pairs: &[(f64, f64)]) -> (f64, f64, f64) {
    let n = pairs.len() as f64;
    let rmse = (pairs.iter().map(|(a, p)| (p - a).powi(2)).sum::<f64>() / n).sqrt();
    let mae = pairs.iter().map(|(a, p)| (p - a).abs()).sum::<f64>() / n;
    let below = pairs.iter().filter(|(a, p)| a < p).count() as f64 / n;
    (rmse, mae, below)
}

/// The rest of the first line of a network's `EXPLANATION` that starts with `prefix` (after
/// leading spaces), or `"?"`.
fn explained<'a>(explanation: &'a str, prefix: &str) -> &'a str {
    explanation
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(prefix))
        .map_or("?", str::trim)
}

/// What the compiler made of a network, from its `EXPLANATION`: the FLOPs of one call of the
/// simplified forward and backward passes, and the rewrites that fired on the forward pass and
/// loss.
fn print_explanation(name: &str, explanation: &str) {
    let simplified = |line: &str| {
        let part = line.split(", ").nth(1).unwrap_or(line);
        part.split(" per call").next().unwrap_or(part).to_string()
    };
    println!(
        "   {name:<11} FLOPs per call (simplified): forward {}, backward {}",
        simplified(explained(explanation, "forward: ")),
        simplified(explained(explanation, "backward: "))
    );
    let rewrites = explained(explanation, "rewrites fired, forward ");
    println!(
        "   {:<11} rewrites fired on the forward pass and loss: {}",
        "",
        rewrites.split_once("): ").map_or(rewrites, |(_, r)| r)
    );
}

fn regression(checks: &mut Checks) -> Result<()> {
    let data = common::load::<f64>("diabetes.csv", Target::Regression)?;
    let (train_set, test_set, mean_y, sd_y) = common::standardized_regression(&data, 0.2, 42)?;
    println!(
        "== diabetes: {} train / {} test, features and target standardized on train (target mean {mean_y:.1}, sd {sd_y:.1})",
        train_set.len(),
        test_set.len()
    );
    println!(
        "   network: 10 -> 16 tanh -> 1, f64, {} parameters, declared three times:",
        Huber::PARAMS
    );
    for (declared, name) in [
        ("loss: huber", "huber"),
        ("loss: log_cosh", "log_cosh"),
        ("loss: quantile(0.9)", "quantile"),
    ] {
        let entry = catalog::loss(name).ok_or("not in the catalog")?;
        let defaults: Vec<String> = entry
            .params
            .iter()
            .map(|p| match p.default {
                Some(d) => format!("{} = {d} by default", p.name),
                None => format!("{} required", p.name),
            })
            .collect();
        println!(
            "   {declared:<20} the catalog's {}{}",
            entry.formula,
            if defaults.is_empty() {
                String::new()
            } else {
                format!(" ({})", defaults.join(", "))
            }
        );
    }
    print_explanation("Huber", Huber::EXPLANATION);
    print_explanation("LogCosh", LogCosh::EXPLANATION);
    print_explanation("Quantile90", Quantile90::EXPLANATION);

    let schedule = (REG_EPOCHS, REG_BATCH, REG_LR);
    let start = Instant::now();
    let mut huber = Huber::init(1);
    let huber_losses = fit(&mut huber, &train_set, schedule)?;
    let mut log_cosh = LogCosh::init(1);
    let log_cosh_losses = fit(&mut log_cosh, &train_set, schedule)?;
    let mut quantile = Quantile90::init(1);
    let quantile_losses = fit(&mut quantile, &train_set, schedule)?;
    println!(
        "   training: Adam (lr {REG_LR}, cosine), minibatches of {REG_BATCH}, {REG_EPOCHS} epochs each; three fits in {}",
        common::secs(start.elapsed())
    );

    let scale = (mean_y, sd_y);
    let test = [
        predictions(&huber, &test_set, scale),
        predictions(&log_cosh, &test_set, scale),
        predictions(&quantile, &test_set, scale),
    ];
    let train_pred = [
        predictions(&huber, &train_set, scale),
        predictions(&log_cosh, &train_set, scale),
        predictions(&quantile, &train_set, scale),
    ];
    // The baseline: the training mean for every test sample.
    let baseline = scores(
        &test[0]
            .iter()
            .map(|&(actual, _)| (actual, mean_y))
            .collect::<Vec<_>>(),
    );
    println!(
        "   {:<15} {:>10} {:>10} {:>10} {:>24}",
        "loss", "test RMSE", "test MAE", "train MAE", "test below prediction"
    );
    let names = ["huber", "log_cosh", "quantile(0.9)"];
    for k in 0..3 {
        let (rmse, mae, below) = scores(&test[k]);
        let (_, train_mae, _) = scores(&train_pred[k]);
        println!(
            "   {:<15} {rmse:>10.2} {mae:>10.2} {train_mae:>10.2} {:>23.1}%",
            names[k],
            100.0 * below
        );
    }
    println!(
        "   {:<15} {:>10.2} {:>10.2}",
        "(training mean)", baseline.0, baseline.1
    );
    let (_, _, coverage) = scores(&test[2]);
    let (_, _, train_coverage) = scores(&train_pred[2]);
    println!(
        "   quantile(0.9) predicts the conditional 90th percentile, not the center (hence its larger\n   errors): {:.1}% of the training targets and {:.1}% of the test targets are below it",
        100.0 * train_coverage,
        100.0 * coverage
    );

    let pred_svg = common::plot_path("custom_formulas", "diabetes_predictions")?;
    common::scatter_plot(
        &pred_svg,
        "Diabetes, test split: 10-16-1 tanh fitted with three losses",
        ("actual disease progression", "predicted"),
        &[
            Series::new("huber", test[0].clone()),
            Series::new("log_cosh", test[1].clone()),
            Series::new("quantile(0.9)", test[2].clone()),
        ],
        true,
        &[],
    )?;
    let loss_svg = common::plot_path("custom_formulas", "diabetes_loss")?;
    common::line_plot(
        &loss_svg,
        "Diabetes: training loss per epoch (standardized units)",
        ("epoch", "mean training loss"),
        &[
            Series::curve("huber", &huber_losses),
            Series::curve("log_cosh", &log_cosh_losses),
            Series::curve("quantile(0.9)", &quantile_losses),
        ],
        // Linear: the losses span less than a decade.
        false,
    )?;
    println!(
        "   plots: {}, {}",
        common::show(&pred_svg),
        common::show(&loss_svg)
    );

    for (k, name) in names.iter().enumerate().take(2) {
        let (rmse, _, _) = scores(&test[k]);
        checks.check(
            rmse <= 0.8 * baseline.0,
            format_args!(
                "{name}: test RMSE {rmse:.2} <= 0.8 x that of the training mean ({:.2})",
                baseline.0
            ),
        );
    }
    checks.check(
        (COVERAGE.0..=COVERAGE.1).contains(&coverage),
        format_args!(
            "quantile(0.9): {:.1}% of the test targets below the prediction, within [{:.0}%, {:.0}%]",
            100.0 * coverage,
            100.0 * COVERAGE.0,
            100.0 * COVERAGE.1
        ),
    );
    Ok(())
}

fn digits(checks: &mut Checks) -> Result<()> {
    let data = common::load::<f32>("digits.csv", Target::Classes(10))?;
    let (train_raw, test_raw) = data.split(0.2, 42)?;
    let scaler = symnet::Standardizer::fit(&train_raw);
    let (train_set, test_set) = (scaler.transform(&train_raw), scaler.transform(&test_raw));
    println!(
        "\n== digits: {} train / {} test 8x8 images, pixels standardized on train",
        train_set.len(),
        test_set.len()
    );
    println!(
        "   network: 64 -> 32 (formula) -> 10 softmax, cross_entropy, f32, {} parameters",
        FastGelu::PARAMS
    );
    let elu = catalog::activation("elu").ok_or("not in the catalog")?;
    println!("   FastGelu:   hidden: dense(32) -> {FAST_GELU}");
    println!("   SoftElu:    hidden: dense(32) -> {SOFT_ELU}");
    println!(
        "   CatalogElu: hidden: dense(32) -> elu(0.1), the catalog's {}",
        elu.formula
    );
    print_explanation("FastGelu", FastGelu::EXPLANATION);
    print_explanation("SoftElu", SoftElu::EXPLANATION);
    print_explanation("CatalogElu", CatalogElu::EXPLANATION);

    let schedule = (DIGITS_EPOCHS, DIGITS_BATCH, DIGITS_LR);
    let start = Instant::now();
    let mut gelu = FastGelu::init(1);
    let gelu_losses = fit(&mut gelu, &train_set, schedule)?;
    let mut soft_elu = SoftElu::init(1);
    // The catalog twin starts from the same weights (user formulas are initialized Glorot,
    // the catalog's elu He), so that any difference after training is the code's.
    let mut catalog_elu = CatalogElu::zeros();
    catalog_elu.params_mut().copy_from_slice(soft_elu.params());
    let soft_elu_losses = fit(&mut soft_elu, &train_set, schedule)?;
    let catalog_elu_losses = fit(&mut catalog_elu, &train_set, schedule)?;
    println!(
        "   training: Adam (lr {DIGITS_LR}, cosine), minibatches of {DIGITS_BATCH}, {DIGITS_EPOCHS} epochs each; three fits in {}",
        common::secs(start.elapsed())
    );

    let accs = [
        (
            "FastGelu",
            accuracy(&gelu, &train_set)?,
            accuracy(&gelu, &test_set)?,
        ),
        (
            "SoftElu",
            accuracy(&soft_elu, &train_set)?,
            accuracy(&soft_elu, &test_set)?,
        ),
        (
            "CatalogElu",
            accuracy(&catalog_elu, &train_set)?,
            accuracy(&catalog_elu, &test_set)?,
        ),
    ];
    for (name, train_acc, test_acc) in accs {
        println!(
            "   {name:<11} train {:.2}%, test {:.2}%",
            100.0 * train_acc,
            100.0 * test_acc
        );
    }
    let gap = soft_elu
        .params()
        .iter()
        .zip(catalog_elu.params())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let largest = soft_elu
        .params()
        .iter()
        .map(|p| p.abs())
        .fold(0.0f32, f32::max);
    if gap == 0.0 {
        println!("   SoftElu and CatalogElu, from the same weights: bit-identical parameters after training");
    } else {
        println!(
            "   SoftElu vs CatalogElu, from the same weights: largest parameter difference {gap:.2e} after training (largest parameter {largest:.2})"
        );
    }

    let loss_svg = common::plot_path("custom_formulas", "digits_loss")?;
    common::line_plot(
        &loss_svg,
        "Digits 64-32-10: training cross-entropy with formula activations",
        ("epoch", "mean training cross-entropy"),
        &[
            Series::curve("x sigmoid(1.702 x)", &gelu_losses),
            Series::curve("formula elu, alpha 0.1", &soft_elu_losses),
            Series::curve(
                "catalog elu(0.1), same start (covers the formula elu)",
                &catalog_elu_losses,
            ),
        ],
        true,
    )?;
    println!("   plot: {}", common::show(&loss_svg));

    for (name, _, test_acc) in accs {
        checks.check(
            test_acc >= DIGITS_THRESHOLD,
            format_args!(
                "{name}: test accuracy {:.2}% >= {:.0}%",
                100.0 * test_acc,
                100.0 * DIGITS_THRESHOLD
            ),
        );
    }
    checks.check(
        gap <= 1e-3 * largest.max(1.0),
        "the written-out elu and the catalog's elu(0.1) train to the same parameters (within 1e-3 of the largest)",
    );
    Ok(())
}

fn main() -> Result<()> {
    let mut checks = Checks::default();
    regression(&mut checks)?;
    digits(&mut checks)?;
    println!();
    checks.finish();
    Ok(())
}
