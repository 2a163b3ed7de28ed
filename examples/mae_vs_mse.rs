//! Three maximum-likelihood losses for the same linear model on the diabetes data: mean absolute
//! error (Laplace errors: the fit follows the conditional median), mean squared error (Gaussian
//! errors: the conditional mean) and the full Gaussian negative log-likelihood with a fixed sigma
//! (the same minimizer as mse: the NLL is `const + sum (y - yhat)^2 / (2 sigma^2)`).
//!
//! Features are standardized on the training split; the target is standardized too for training
//! (so one step size suits every loss) and the fitted weights are mapped back to raw units
//! (`w_raw = sd_y w`, `b_raw = mean_y + sd_y b`) for the table. sigma = 0.7 is in standardized
//! units, about the residual spread of a linear fit.
//!
//! Run with `cargo run --release --example mae_vs_mse`.

mod common;

use std::time::Instant;

use common::{Checks, Result, Series};
use symnet::{network, train, Adam, Dataset, Network, Target, TrainConfig};

network! {
    /// Mean absolute error.
    pub struct Mae<f64> { input: 10, out: dense(1), loss: mae }
}
network! {
    /// Mean squared error.
    pub struct Mse<f64> { input: 10, out: dense(1), loss: mse }
}
network! {
    /// Gaussian negative log-likelihood with a fixed sigma (standardized target units).
    pub struct Nll<f64> { input: 10, out: dense(1), loss: gaussian_nll(sigma = 0.7) }
}

/// Full-batch Adam with the step size divided by 10 at each stage: a constant step leaves MAE's
/// subgradient method oscillating around the optimum.
fn fit<N: Network<Scalar = f64> + Send + Sync>(data: &Dataset<f64>) -> Result<(N, Vec<f64>)> {
    let mut net = N::zeros();
    let mut losses = Vec::new();
    let mut opt = Adam::default();
    for lr in [3e-2, 3e-3, 3e-4, 3e-5] {
        opt.lr = lr;
        let config = TrainConfig {
            epochs: 1500,
            ..Default::default()
        };
        losses.extend(train(&mut net, data, &mut opt, &config)?.losses);
    }
    Ok((net, losses))
}

/// The fitted weights and bias in raw target units.
fn raw_params<N: Network<Scalar = f64>>(net: &N, mean_y: f64, sd_y: f64) -> Vec<f64> {
    let p = net.params(); // 10 weights, then the bias
    let mut raw: Vec<f64> = p[..10].iter().map(|w| w * sd_y).collect();
    raw.push(mean_y + sd_y * p[10]);
    raw
}

/// Test MAE and RMSE in raw units.
fn errors<N: Network<Scalar = f64>>(
    net: &N,
    test: &Dataset<f64>,
    mean_y: f64,
    sd_y: f64,
) -> (f64, f64) {
    let (mut abs, mut sq) = (0.0, 0.0);
    let mut out = [0.0];
    for i in 0..test.len() {
        net.forward_slice(test.x(i), &mut out);
        let e = (mean_y + sd_y * out[0]) - (mean_y + sd_y * test.y(i)[0]);
        abs += e.abs();
        sq += e * e;
    }
    let n = test.len() as f64;
    (abs / n, (sq / n).sqrt())
}

/// `(actual, predicted)` in raw units.
fn predictions<N: Network<Scalar = f64>>(
    net: &N,
    test: &Dataset<f64>,
    mean_y: f64,
    sd_y: f64,
) -> Vec<(f64, f64)> {
    let mut out = [0.0];
    (0..test.len())
        .map(|i| {
            net.forward_slice(test.x(i), &mut out);
            (mean_y + sd_y * test.y(i)[0], mean_y + sd_y * out[0])
        })
        .collect()
}

fn main() -> Result<()> {
    let data = common::load::<f64>("diabetes.csv", Target::Regression)?;
    // Features and target standardized with the training split's statistics.
    let (train_set, test_set, mean_y, sd_y) = common::standardized_regression(&data, 0.2, 42)?;
    println!(
        "diabetes: {} training and {} test samples; features and target standardized on the training split (target mean {mean_y:.1}, sd {sd_y:.1})",
        train_set.len(),
        test_set.len()
    );

    let start = Instant::now();
    let (mae, mae_losses) = fit::<Mae>(&train_set)?;
    let (mse, mse_losses) = fit::<Mse>(&train_set)?;
    let (nll, nll_losses) = fit::<Nll>(&train_set)?;
    println!(
        "three fits, {} full-batch Adam epochs each, in {}\n",
        mae_losses.len(),
        common::secs(start.elapsed())
    );

    let fits = [
        raw_params(&mae, mean_y, sd_y),
        raw_params(&mse, mean_y, sd_y),
        raw_params(&nll, mean_y, sd_y),
    ];
    println!(
        "{:>10} {:>12} {:>12} {:>20}",
        "", "MAE", "MSE", "Gaussian NLL (s=0.7)"
    );
    let names = data
        .feature_names()
        .iter()
        .map(String::as_str)
        .chain(["bias"]);
    for (k, name) in names.enumerate() {
        println!(
            "{name:>10} {:>12.3} {:>12.3} {:>20.3}",
            fits[0][k], fits[1][k], fits[2][k]
        );
    }
    let errs = [
        errors(&mae, &test_set, mean_y, sd_y),
        errors(&mse, &test_set, mean_y, sd_y),
        errors(&nll, &test_set, mean_y, sd_y),
    ];
    let train_errs = [
        errors(&mae, &train_set, mean_y, sd_y),
        errors(&mse, &train_set, mean_y, sd_y),
        errors(&nll, &train_set, mean_y, sd_y),
    ];
    for (what, e) in [("train MAE", &train_errs), ("test MAE", &errs)] {
        println!(
            "{what:>10} {:>12.2} {:>12.2} {:>20.2}",
            e[0].0, e[1].0, e[2].0
        );
    }
    for (what, e) in [("train RMSE", &train_errs), ("test RMSE", &errs)] {
        println!(
            "{what:>10} {:>12.2} {:>12.2} {:>20.2}",
            e[0].1, e[1].1, e[2].1
        );
    }

    // The maximum-likelihood sigma given the MSE fit (standardized units), for comparison with
    // the fixed 0.7.
    let mut out = [0.0];
    let mut sq = 0.0;
    for i in 0..train_set.len() {
        mse.forward_slice(train_set.x(i), &mut out);
        sq += (out[0] - train_set.y(i)[0]).powi(2);
    }
    println!(
        "\nmaximum-likelihood sigma of the residuals (training, standardized units): {:.3}",
        (sq / train_set.len() as f64).sqrt()
    );
    let gap = fits[1]
        .iter()
        .zip(&fits[2])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    println!("largest |MSE - NLL| parameter difference (raw units): {gap:.2e}");

    let loss_svg = common::plot_path("mae_vs_mse", "loss")?;
    let relative = |l: &[f64]| l.iter().map(|v| v / l[0]).collect::<Vec<_>>();
    common::line_plot(
        &loss_svg,
        "Diabetes: training loss relative to its first epoch",
        ("epoch", "loss / initial loss"),
        &[
            Series::curve("MAE", &relative(&mae_losses)),
            Series::curve("MSE", &relative(&mse_losses)),
            Series::curve("Gaussian NLL", &relative(&nll_losses)),
        ],
        true,
    )?;
    let pred_svg = common::plot_path("mae_vs_mse", "predictions")?;
    common::scatter_plot(
        &pred_svg,
        "Diabetes, test split: MAE fit vs MSE fit",
        ("actual disease progression", "predicted"),
        &[
            Series::new("MAE fit", predictions(&mae, &test_set, mean_y, sd_y)),
            Series::new("MSE fit", predictions(&mse, &test_set, mean_y, sd_y)),
        ],
        true,
        &[],
    )?;
    println!(
        "plots: {}, {}",
        common::show(&loss_svg),
        common::show(&pred_svg)
    );

    let mut checks = Checks::default();
    checks.check(
        gap <= 1e-3 * fits[1].iter().map(|v| v.abs()).fold(0.0, f64::max),
        "MSE and Gaussian NLL (fixed sigma) reach the same fit, within 1e-3 of the largest parameter",
    );
    checks.check(
        train_errs[0].0 <= train_errs[1].0 && train_errs[1].1 <= train_errs[0].1,
        "each fit is best at its own training loss: the MAE fit has the lower training MAE, the MSE fit the lower training RMSE",
    );
    checks.finish();
    Ok(())
}
