//! A multilayer perceptron on the 8x8 handwritten digits: 64 pixels -> 32 relu units -> 10-way
//! softmax, categorical cross-entropy, minibatch Adam, in f32. The trained weights are saved to
//! a safetensors file, loaded back, and checked to give the identical accuracy.
//!
//! Run with `cargo run --release --example digits`.

mod common;

use std::io::IsTerminal;
use std::time::Instant;

use common::{Checks, Result, Series};
use symnet::{
    accuracy, load_weights, network, save_weights, train, Adam, Standardizer, Target, TrainConfig,
};

network! {
    /// 64-32-10 digit classifier.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Digits<f32> {
        input: 64,
        hidden: dense(32) -> relu,
        out: dense(10) -> softmax,
        loss: cross_entropy,
    }
}

const THRESHOLD: f64 = 0.95;
const EPOCHS: usize = 40;
const BATCH: usize = 32;
const LR: f64 = 2e-3;

fn main() -> Result<()> {
    let data = common::load::<f32>("digits.csv", Target::Classes(10))?;
    let (train_raw, test_raw) = data.split(0.2, 42)?;
    let scaler = Standardizer::fit(&train_raw);
    let (train_set, test_set) = (scaler.transform(&train_raw), scaler.transform(&test_raw));
    println!(
        "data:     {} 8x8 digit images: {} train / {} test, 64 pixel features standardized on train",
        data.len(),
        train_set.len(),
        test_set.len()
    );
    println!(
        "network:  64 -> 32 relu -> 10 softmax, cross-entropy, f32, {} parameters",
        Digits::PARAMS
    );

    let mut net = Digits::init(1);
    let config = TrainConfig {
        epochs: EPOCHS,
        batch_size: Some(BATCH),
        seed: 7,
        progress: std::io::stdout().is_terminal(),
        ..Default::default()
    };
    let mut opt = Adam {
        lr: LR,
        ..Default::default()
    };
    let start = Instant::now();
    let history = train(&mut net, &train_set, &mut opt, &config)?;
    let elapsed = start.elapsed();
    println!(
        "training: Adam (lr {LR}), minibatches of {BATCH}, {} epochs in {}; loss {:.3} -> {:.4}",
        history.epochs(),
        common::secs(elapsed),
        history.losses[0],
        history.final_loss()
    );

    let train_acc = accuracy(&net, &train_set)?;
    let test_acc = accuracy(&net, &test_set)?;
    println!(
        "accuracy: train {:.2}%, test {:.2}%",
        100.0 * train_acc,
        100.0 * test_acc
    );

    let weights = common::target_path("digits.safetensors")?;
    save_weights(&net, &weights)?;
    let reloaded: Digits = load_weights(&weights)?;
    let reloaded_acc = accuracy(&reloaded, &test_set)?;
    println!(
        "weights:  {} ({} bytes); reloaded: test accuracy {:.2}%",
        common::show(&weights),
        std::fs::metadata(&weights)?.len(),
        100.0 * reloaded_acc
    );

    let loss_svg = common::plot_path("digits", "loss")?;
    common::loss_plot(
        &loss_svg,
        "Digits MLP 64-32-10: minibatch Adam",
        &[Series::curve("training cross-entropy", &history.losses)],
    )?;
    println!("plots:    {}", common::show(&loss_svg));

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
        reloaded == net && reloaded_acc == test_acc,
        "reloaded weights are bit-identical and give the identical test accuracy",
    );
    checks.finish();
    Ok(())
}
