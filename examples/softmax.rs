//! Softmax regression (multinomial logistic regression) on Fisher's iris data: one affine layer
//! to 3 logits, softmax, categorical cross-entropy; full-batch gradient descent on the 4
//! standardized features.
//!
//! Run with `cargo run --release --example softmax`.

mod common;

use std::time::Instant;

use common::{Checks, Result, Series};
use symnet::{accuracy, network, train, GradientDescent, Standardizer, Target, TrainConfig};

network! {
    /// p(species | x) = softmax(W x + b).
    pub struct Softmax<f64> {
        input: 4,
        out: dense(3) -> softmax,
        loss: cross_entropy,
    }
}

const THRESHOLD: f64 = 0.9;
const SPECIES: [&str; 3] = ["setosa", "versicolor", "virginica"];

fn main() -> Result<()> {
    let data = common::load::<f64>("iris.csv", Target::Classes(3))?;
    let (train_raw, test_raw) = data.split(0.3, 42)?;
    let scaler = Standardizer::fit(&train_raw);
    let (train_set, test_set) = (scaler.transform(&train_raw), scaler.transform(&test_raw));
    println!(
        "iris: {} training and {} test samples, 4 standardized features, 3 classes",
        train_set.len(),
        test_set.len()
    );

    let mut net = Softmax::zeros();
    let config = TrainConfig {
        epochs: 2000,
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
        "accuracy: training {:.1}%, test {:.1}%\n",
        100.0 * train_acc,
        100.0 * test_acc
    );

    let actual = common::labels(&test_set);
    let mut predicted = Vec::new();
    for i in 0..test_set.len() {
        let x: &[f64; 4] = test_set.x(i).try_into()?;
        predicted.push(net.predict_class(x));
    }
    println!("test confusion matrix:");
    common::print_confusion(&common::confusion(&actual, &predicted, 3), &SPECIES);

    // Decision plot in the petal plane (raw cm): test samples by their true species, the
    // misclassified ones ringed.
    let mut groups: Vec<Series> = SPECIES.iter().map(|s| Series::new(*s, vec![])).collect();
    let mut wrong = Vec::new();
    for i in 0..test_raw.len() {
        let petal = (test_raw.x(i)[2], test_raw.x(i)[3]);
        groups[actual[i]].points.push(petal);
        if actual[i] != predicted[i] {
            wrong.push(petal);
        }
    }
    let loss_svg = common::plot_path("softmax", "loss")?;
    common::loss_plot(
        &loss_svg,
        "Softmax regression on iris",
        &[Series::curve("training cross-entropy", &history.losses)],
    )?;
    let decision_svg = common::plot_path("softmax", "decision")?;
    common::scatter_plot(
        &decision_svg,
        "Iris test split in the petal plane",
        ("petal length (cm)", "petal width (cm)"),
        &groups,
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
            "test accuracy {:.1}% >= {:.0}%",
            100.0 * test_acc,
            100.0 * THRESHOLD
        ),
    );
    checks.finish();
    Ok(())
}
