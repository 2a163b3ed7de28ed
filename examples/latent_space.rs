//! The latent space of the digits MLP: the 32 hidden activations are the input of the last
//! layer, and the network is a softmax-regression model on them. This example trains the
//! 64-32-10 net, projects the 32-d latent vectors of the test images to 2-D by PCA (the top two
//! eigenvectors of the training latents' covariance, by power iteration with deflation), plots
//! them colored by digit, and reads feature importance from the last layer's weights.
//!
//! Run with `cargo run --release --example latent_space`.

mod common;

use std::time::Instant;

use common::{Checks, Result, Series};
use symnet::{accuracy, network, train, Adam, Dataset, Standardizer, Target, TrainConfig};

network! {
    /// 64-32-10 digit classifier.
    pub struct Digits<f32> {
        input: 64,
        hidden: dense(32) -> relu,
        out: dense(10) -> softmax,
        loss: cross_entropy,
    }
}

const LATENT: usize = 32;
const THRESHOLD: f64 = 0.95;

type Matrix = [[f64; LATENT]; LATENT];

fn latents(net: &Digits, data: &Dataset<f32>) -> Result<Vec<[f64; LATENT]>> {
    (0..data.len())
        .map(|i| Ok(net.latent(data.x(i).try_into()?).map(f64::from)))
        .collect()
}

/// The top eigenpair of a symmetric positive semi-definite matrix by power iteration, stopped
/// when the vector moves by less than 1e-12.
fn top_eigen(c: &Matrix) -> (f64, [f64; LATENT]) {
    // A fixed, generic start vector (not orthogonal to the top eigenvector in practice).
    let mut v: [f64; LATENT] = std::array::from_fn(|i| 1.0 + 0.1 * i as f64);
    let mut lambda = 0.0;
    for _ in 0..200_000 {
        let w: [f64; LATENT] = std::array::from_fn(|i| (0..LATENT).map(|j| c[i][j] * v[j]).sum());
        lambda = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        let next = w.map(|x| x / lambda);
        let moved = next
            .iter()
            .zip(&v)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        v = next;
        if moved <= 1e-12 {
            break;
        }
    }
    (lambda, v)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn main() -> Result<()> {
    let data = common::load::<f32>("digits.csv", Target::Classes(10))?;
    let (train_raw, test_raw) = data.split(0.2, 42)?;
    let scaler = Standardizer::fit(&train_raw);
    let (train_set, test_set) = (scaler.transform(&train_raw), scaler.transform(&test_raw));

    let start = Instant::now();
    let mut net = Digits::init(1);
    let config = TrainConfig {
        epochs: 40,
        batch_size: Some(32),
        seed: 7,
        ..Default::default()
    };
    let mut opt = Adam {
        lr: 2e-3,
        ..Default::default()
    };
    let history = train(&mut net, &train_set, &mut opt, &config)?;
    let test_acc = accuracy(&net, &test_set)?;
    println!(
        "digits 64-32-10 (relu): {} train / {} test images, {} epochs of minibatch Adam in {}, test accuracy {:.2}%",
        train_set.len(),
        test_set.len(),
        history.epochs(),
        common::secs(start.elapsed()),
        100.0 * test_acc
    );

    // PCA of the training latents.
    let train_z = latents(&net, &train_set)?;
    let mut mean = [0.0; LATENT];
    for z in &train_z {
        for (m, v) in mean.iter_mut().zip(z) {
            *m += v / train_z.len() as f64;
        }
    }
    let mut cov: Matrix = [[0.0; LATENT]; LATENT];
    for z in &train_z {
        for i in 0..LATENT {
            for j in 0..LATENT {
                cov[i][j] += (z[i] - mean[i]) * (z[j] - mean[j]) / train_z.len() as f64;
            }
        }
    }
    let total: f64 = (0..LATENT).map(|i| cov[i][i]).sum();
    let (l1, v1) = top_eigen(&cov);
    let mut deflated = cov;
    for i in 0..LATENT {
        for j in 0..LATENT {
            deflated[i][j] -= l1 * v1[i] * v1[j];
        }
    }
    let (l2, v2) = top_eigen(&deflated);
    let orthogonality = dot(&v1, &v2).abs();
    println!(
        "PCA of the 32-d latent space: PC1 explains {:.1}%, PC2 {:.1}% of the variance (|v1 . v2| = {orthogonality:.1e})",
        100.0 * l1 / total,
        100.0 * l2 / total
    );

    let test_labels = common::labels(&test_set);
    let mut groups: Vec<Series> = (0..10)
        .map(|d| Series::new(d.to_string(), vec![]))
        .collect();
    for (z, &d) in latents(&net, &test_set)?.iter().zip(&test_labels) {
        let c: Vec<f64> = z.iter().zip(&mean).map(|(a, m)| a - m).collect();
        groups[d].points.push((dot(&c, &v1), dot(&c, &v2)));
    }

    // Feature importance from the last layer: logit_d = sum_u w[d][u] z_u + b[d].
    let dead: Vec<usize> = (0..LATENT)
        .filter(|&u| train_z.iter().all(|z| z[u] == 0.0))
        .collect();
    println!("\nlast layer: the three latent units with the largest |weight| per class");
    for (d, row) in net.out.w.iter().enumerate() {
        let mut units: Vec<usize> = (0..LATENT).collect();
        units.sort_by(|&a, &b| row[b].abs().total_cmp(&row[a].abs()));
        let top: Vec<String> = units[..3]
            .iter()
            .map(|&u| format!("h{u:<2} {:+.2}", row[u]))
            .collect();
        println!("  digit {d}: {}", top.join("   "));
    }
    let mut importance: Vec<(usize, f64)> = (0..LATENT)
        .map(|u| {
            let m = net
                .out
                .w
                .iter()
                .map(|row| f64::from(row[u].abs()))
                .sum::<f64>()
                / 10.0;
            (u, m)
        })
        .collect();
    importance.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("overall, mean |weight| over the 10 classes per latent unit (largest first):");
    for chunk in importance.chunks(8) {
        let line: Vec<String> = chunk
            .iter()
            .map(|(u, m)| format!("h{u:<2} {m:.2}"))
            .collect();
        println!("  {}", line.join("  "));
    }
    println!(
        "dead units (never active on the training images; their weights do not matter): {}",
        if dead.is_empty() {
            "none".to_string()
        } else {
            format!("{dead:?}")
        }
    );

    let loss_svg = common::plot_path("latent_space", "loss")?;
    common::loss_plot(
        &loss_svg,
        "Digits MLP 64-32-10: minibatch Adam",
        &[Series::curve("training cross-entropy", &history.losses)],
    )?;
    let pca_svg = common::plot_path("latent_space", "pca")?;
    common::scatter_plot(
        &pca_svg,
        "Test digits in the latent space, first two principal components",
        ("PC1", "PC2"),
        &groups,
        false,
        &[],
    )?;
    println!(
        "\nplots: {}, {}",
        common::show(&loss_svg),
        common::show(&pca_svg)
    );

    let mut checks = Checks::default();
    checks.check(
        test_acc >= THRESHOLD,
        format_args!(
            "test accuracy {:.2}% >= {:.0}%",
            100.0 * test_acc,
            100.0 * THRESHOLD
        ),
    );
    checks.check(
        orthogonality <= 1e-6 && l1 >= l2 && l2 > 0.0,
        "principal components orthonormal and ordered (|v1 . v2| <= 1e-6, lambda1 >= lambda2 > 0)",
    );
    checks.finish();
    Ok(())
}
