//! Logistic regression on the Wisconsin breast cancer data: one affine layer with a sigmoid link
//! and binary cross-entropy (the Bernoulli likelihood), fitted by full-batch gradient descent.
//! The 30 features are standardized on the training split. Target: 1 = benign, 0 = malignant.
//!
//! Run with `cargo run --release --example logistic_regression`.

mod common;

use std::time::Instant;

use common::{Checks, Result, Series};
use symnet::{accuracy, network, train, GradientDescent, Standardizer, Target, TrainConfig};

network! {
    /// p(benign | x) = sigmoid(w . x + b).
    pub struct Logistic<f64> {
        input: 30,
        out: dense(1) -> sigmoid,
        loss: binary_cross_entropy,
    }
}

const THRESHOLD: f64 = 0.95;

fn main() -> Result<()> {
    let data = common::load::<f64>("breast_cancer.csv", Target::Binary)?;
    let (train_raw, test_raw) = data.split(0.2, 42)?;
    let scaler = Standardizer::fit(&train_raw);
    let (train_set, test_set) = (scaler.transform(&train_raw), scaler.transform(&test_raw));
    println!(
        "breast cancer: {} training and {} test samples, 30 standardized features",
        train_set.len(),
        test_set.len()
    );

    let mut net = Logistic::zeros();
    let config = TrainConfig {
        epochs: 3000,
        ..Default::default()
    };
    let start = Instant::now();
    let history = train(
        &mut net,
        &train_set,
        &mut GradientDescent { lr: 0.5 },
        &config,
    )?;
    println!(
        "full-batch gradient descent (lr 0.5): {} epochs in {}, training loss {:.4} -> {:.4}",
        history.epochs(),
        common::secs(start.elapsed()),
        history.losses[0],
        history.final_loss()
    );

    let train_acc = accuracy(&net, &train_set)?;
    let test_acc = accuracy(&net, &test_set)?;
    println!(
        "accuracy: training {:.2}%, test {:.2}%",
        100.0 * train_acc,
        100.0 * test_acc
    );

    // Test-split confusion matrix and the decision plot: each test sample at its logit.
    let mut actual = Vec::new();
    let mut predicted = Vec::new();
    let mut by_class = [Vec::new(), Vec::new()];
    let mut wrong = Vec::new();
    for i in 0..test_set.len() {
        let x: &[f64; 30] = test_set.x(i).try_into()?;
        let z = net.out.apply(x)[0];
        let p = net.forward(x)[0];
        let (a, q) = (test_set.y(i)[0] as usize, usize::from(p >= 0.5));
        actual.push(a);
        predicted.push(q);
        by_class[a].push((z, p));
        if a != q {
            wrong.push((z, p));
        }
    }
    println!("\ntest confusion matrix:");
    common::print_confusion(
        &common::confusion(&actual, &predicted, 2),
        &["malignant", "benign"],
    );

    let mut order: Vec<usize> = (0..30).collect();
    order.sort_by(|&a, &b| net.out.w[0][b].abs().total_cmp(&net.out.w[0][a].abs()));
    println!("\nlargest weights (per standard deviation; negative = towards malignant):");
    for &k in &order[..5] {
        println!("  {:>24} {:+.3}", data.feature_names()[k], net.out.w[0][k]);
    }

    let loss_svg = common::plot_path("logistic_regression", "loss")?;
    common::loss_plot(
        &loss_svg,
        "Logistic regression on breast cancer",
        &[Series::curve(
            "training binary cross-entropy",
            &history.losses,
        )],
    )?;
    let decision_svg = common::plot_path("logistic_regression", "decision")?;
    let [malignant, benign] = by_class;
    common::scatter_plot(
        &decision_svg,
        "Test samples on the fitted sigmoid (decision at p = 0.5)",
        ("logit w . x + b", "p(benign)"),
        &[
            Series::new("malignant (0)", malignant),
            Series::new("benign (1)", benign),
        ],
        false,
        &wrong,
    )?;
    println!(
        "\nplots: {}, {}",
        common::show(&loss_svg),
        common::show(&decision_svg)
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
    checks.finish();
    Ok(())
}
