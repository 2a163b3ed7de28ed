//! A multilayer perceptron on the 8x8 handwritten digits: 64 pixels -> 32 relu units -> 10-way
//! softmax, categorical cross-entropy, minibatch Adam with a warm-up and cosine learning-rate
//! schedule, in f32. A validation split decides when to stop (early stopping restores the best
//! epoch's parameters). The trained weights and the standardizer are saved to one safetensors
//! file, loaded back, and checked to give the identical predictions.
//!
//! Run with `cargo run --release --example digits`.

mod common;

use std::io::IsTerminal;
use std::time::Instant;

use common::{Checks, Result, Series};
use symnet::train::{EarlyStopping, Schedule, Validation};
use symnet::{
    accuracy, load_model, mean_loss, network, save_model, train_with_validation, Adam,
    Standardizer, Target, TrainConfig,
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
const EPOCHS: usize = 200;
const BATCH: usize = 32;
const LR: f64 = 2e-3;

fn main() -> Result<()> {
    let data = common::load::<f32>("digits.csv", Target::Classes(10))?;
    let (train_raw, test_raw) = data.split(0.2, 42)?;
    let (fit_raw, valid_raw) = train_raw.split(0.15, 43)?;
    let scaler = Standardizer::fit(&fit_raw);
    let (fit_set, valid_set, test_set) = (
        scaler.transform(&fit_raw),
        scaler.transform(&valid_raw),
        scaler.transform(&test_raw),
    );
    println!(
        "data:     {} 8x8 digit images: {} train / {} validation / {} test, 64 pixel features standardized on train",
        data.len(),
        fit_set.len(),
        valid_set.len(),
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
        schedule: Schedule::Cosine {
            epochs: EPOCHS,
            min_lr: LR / 50.0,
        }
        .with_warmup(3),
        early_stopping: Some(EarlyStopping {
            patience: 8,
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut opt = Adam {
        lr: LR,
        ..Default::default()
    };
    let validation = Validation::new(&valid_set).metric("validation accuracy", accuracy);
    let start = Instant::now();
    let history = train_with_validation(&mut net, &fit_set, validation, &mut opt, &config)?;
    let elapsed = start.elapsed();
    println!(
        "training: Adam (lr {LR}, 3 warm-up epochs then cosine), minibatches of {BATCH}: {} epochs in {} ({:?}); best validation loss {:.4} at epoch {}",
        history.epochs(),
        common::secs(elapsed),
        history.stop,
        history
            .val_losses
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min),
        history.best_epoch.unwrap_or(0)
    );

    let train_acc = accuracy(&net, &fit_set)?;
    let valid_acc = accuracy(&net, &valid_set)?;
    let test_acc = accuracy(&net, &test_set)?;
    println!(
        "accuracy: train {:.2}%, validation {:.2}%, test {:.2}% (test loss {:.4})",
        100.0 * train_acc,
        100.0 * valid_acc,
        100.0 * test_acc,
        mean_loss(&net, &test_set)?
    );

    // The weights and the standardizer in one file; the reloaded pair classifies raw pixels.
    let file = common::target_path("digits.safetensors")?;
    save_model(&net, Some(&scaler), &file)?;
    let (reloaded, reloaded_scaler) = load_model::<Digits>(&file)?;
    let reloaded_scaler = reloaded_scaler.ok_or("the file has no standardizer")?;
    let mut same = 0;
    for i in 0..test_raw.len() {
        let mut x: [f32; 64] = *test_raw.row(i);
        reloaded_scaler.apply_row(&mut x);
        same += usize::from(reloaded.predict_class(&x) == net.predict_class(test_set.row(i)));
    }
    println!(
        "model:    {} ({} bytes, weights and standardizer); reloaded: {same} of {} raw test images classified as before",
        common::show(&file),
        std::fs::metadata(&file)?.len(),
        test_raw.len()
    );

    let loss_svg = common::plot_path("digits", "loss")?;
    common::line_plot(
        &loss_svg,
        "Digits MLP 64-32-10: minibatch Adam, cosine schedule, early stopping",
        ("epoch", "mean cross-entropy"),
        &[
            Series::curve("training cross-entropy", &history.losses),
            Series::curve("validation cross-entropy", &history.val_losses),
        ],
        true,
    )?;
    let acc_svg = common::plot_path("digits", "validation_accuracy")?;
    let val_acc = history.metric("validation accuracy").unwrap_or(&[]);
    common::line_plot(
        &acc_svg,
        "Digits MLP: validation accuracy and learning rate (x 100) per epoch",
        ("epoch", "accuracy / learning rate x 100"),
        &[
            Series::curve("validation accuracy", val_acc),
            Series::curve(
                "learning rate x 100",
                &history
                    .learning_rates
                    .iter()
                    .map(|lr| lr * 100.0)
                    .collect::<Vec<_>>(),
            ),
        ],
        false,
    )?;
    println!(
        "plots:    {}, {}",
        common::show(&loss_svg),
        common::show(&acc_svg)
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
        reloaded == net && reloaded_scaler == scaler && same == test_raw.len(),
        "reloaded weights and standardizer are identical and classify every raw test image as before",
    );
    checks.finish();
    Ok(())
}
