//! Linear regression on the diabetes data: a one-layer `network!` with mse loss, fitted by
//! full-batch gradient descent, against the closed-form least-squares solution of the normal
//! equations `(A^T A) theta = A^T y` (A = [X 1]), solved here by Cholesky in f64.
//!
//! The 10 features are standardized with the training split's statistics; the target (disease
//! progression, 25..346) is kept in its raw units, so each weight reads as "progression points
//! per standard deviation of the feature" and the bias is the mean training target.
//!
//! Run with `cargo run --release --example linear_regression`.

mod common;

use std::time::Instant;

use common::{Checks, Result, Series};
use symnet::{network, train, GradientDescent, Standardizer, StopReason, Target, TrainConfig};

network! {
    /// yhat = W x + b, fitted by mean squared error.
    pub struct Linear<f64> {
        input: 10,
        out: dense(1),
        loss: mse,
    }
}

const N: usize = 11; // 10 weights and the bias

/// Solves `M theta = r` for a symmetric positive definite `M` by Cholesky, `M = L L^T`.
fn cholesky_solve(m: &[[f64; N]; N], r: &[f64; N]) -> [f64; N] {
    let mut l = [[0.0; N]; N];
    for i in 0..N {
        for j in 0..=i {
            let s: f64 = m[i][j] - (0..j).map(|k| l[i][k] * l[j][k]).sum::<f64>();
            l[i][j] = if i == j { s.sqrt() } else { s / l[j][j] };
        }
    }
    let mut z = [0.0; N]; // L z = r
    for i in 0..N {
        z[i] = (r[i] - (0..i).map(|k| l[i][k] * z[k]).sum::<f64>()) / l[i][i];
    }
    let mut theta = [0.0; N]; // L^T theta = z
    for i in (0..N).rev() {
        theta[i] = (z[i] - (i + 1..N).map(|k| l[k][i] * theta[k]).sum::<f64>()) / l[i][i];
    }
    theta
}

/// The largest eigenvalue of a symmetric matrix `m` by power iteration, or of `m^-1` if
/// `inverse` (then each step solves a system instead of multiplying).
fn extreme_eigenvalue(m: &[[f64; N]; N], inverse: bool) -> f64 {
    let mut v = [1.0; N];
    let mut lambda = 0.0;
    for _ in 0..2000 {
        let w = if inverse {
            cholesky_solve(m, &v)
        } else {
            std::array::from_fn(|i| (0..N).map(|j| m[i][j] * v[j]).sum())
        };
        let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        let next = w.iter().zip(&v).map(|(a, b)| a * b).sum::<f64>(); // Rayleigh quotient
        v = w.map(|x| x / norm);
        if (next - lambda).abs() <= 1e-13 * next.abs() {
            lambda = next;
            break;
        }
        lambda = next;
    }
    if inverse {
        1.0 / lambda
    } else {
        lambda
    }
}

fn main() -> Result<()> {
    let data = common::load::<f64>("diabetes.csv", Target::Regression)?;
    let (train_raw, test_raw) = data.split(0.2, 42)?;
    let scaler = Standardizer::fit(&train_raw);
    let (train_set, test_set) = (scaler.transform(&train_raw), scaler.transform(&test_raw));
    let names = data.feature_names();
    let n = train_set.len();
    println!(
        "diabetes: {} training and {} test samples, 10 features standardized on the training split, target in raw units",
        n,
        test_set.len()
    );

    // The Hessian of the mean squared error, H = (2/n) A^T A, and the normal equations.
    let mut ata = [[0.0; N]; N];
    let mut aty = [0.0; N];
    for i in 0..n {
        let mut a = [1.0; N];
        a[..10].copy_from_slice(train_set.x(i));
        for r in 0..N {
            for c in 0..N {
                ata[r][c] += a[r] * a[c];
            }
            aty[r] += a[r] * train_set.y(i)[0];
        }
    }
    let exact = cholesky_solve(&ata, &aty);
    let hessian = ata.map(|row| row.map(|v| 2.0 * v / n as f64));
    let l_max = extreme_eigenvalue(&hessian, false);
    let l_min = extreme_eigenvalue(&hessian, true);
    let lr = 1.0 / l_max;
    println!(
        "Hessian of the loss: largest eigenvalue {l_max:.3}, smallest {l_min:.3e}, condition number {:.0}; step size 1/L = {lr:.4}",
        l_max / l_min
    );

    // Full-batch gradient descent: theta <- theta - lr * grad, until the gradient vanishes.
    let mut net = Linear::zeros();
    let config = TrainConfig {
        epochs: 1_000_000,
        grad_tolerance: Some(1e-9),
        ..Default::default()
    };
    let start = Instant::now();
    let history = train(&mut net, &train_set, &mut GradientDescent { lr }, &config)?;
    let elapsed = start.elapsed();
    println!(
        "gradient descent: {} epochs in {} (stopped: {:?}), final training MSE {:.3}",
        history.epochs(),
        common::secs(elapsed),
        history.stop,
        history.final_loss()
    );

    // Side by side. The relative difference of each component is |gd - exact| / |exact|.
    let mut gd = [0.0; N];
    gd[..10].copy_from_slice(&net.out.w[0]);
    gd[10] = net.out.b[0];
    println!(
        "\n{:>10} {:>14} {:>14} {:>10}",
        "parameter", "grad. descent", "least squares", "rel. diff"
    );
    let mut worst: f64 = 0.0;
    for (k, (g, e)) in gd.iter().zip(&exact).enumerate() {
        let rel = (g - e).abs() / e.abs();
        worst = worst.max(rel);
        let name = if k < 10 { names[k].as_str() } else { "bias" };
        println!("{name:>10} {g:>14.6} {e:>14.6} {rel:>10.2e}");
    }

    let mut actual_vs_pred = Vec::new();
    let (mut sse, mut sst) = (0.0, 0.0);
    let mean_test =
        (0..test_set.len()).map(|i| test_set.y(i)[0]).sum::<f64>() / test_set.len() as f64;
    for i in 0..test_set.len() {
        let x: &[f64; 10] = test_set.x(i).try_into()?;
        let (p, y) = (net.forward(x)[0], test_set.y(i)[0]);
        sse += (p - y) * (p - y);
        sst += (y - mean_test) * (y - mean_test);
        actual_vs_pred.push((y, p));
    }
    let test_mse = sse / test_set.len() as f64;
    println!(
        "\ntest split: MSE {test_mse:.1} (RMSE {:.1}), R^2 {:.3}",
        test_mse.sqrt(),
        1.0 - sse / sst
    );

    let loss_svg = common::plot_path("linear_regression", "loss")?;
    common::loss_plot(
        &loss_svg,
        "Linear regression on diabetes: full-batch gradient descent",
        &[Series::curve("training MSE", &history.losses)],
    )?;
    let pred_svg = common::plot_path("linear_regression", "predictions")?;
    common::scatter_plot(
        &pred_svg,
        "Linear regression on diabetes: test split",
        ("actual disease progression", "predicted"),
        &[Series::new("test samples", actual_vs_pred)],
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
        history.stop == StopReason::GradTolerance,
        format_args!("gradient descent converged (gradient norm <= 1e-9)"),
    );
    checks.check(
        worst <= 1e-3,
        format_args!("largest relative difference to least squares {worst:.2e} <= 1e-3"),
    );
    checks.finish();
    Ok(())
}
