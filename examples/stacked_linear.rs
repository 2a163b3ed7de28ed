//! A stack of linear layers is one affine map. Three identity layers, 10 -> 8 -> 8 -> 1, are
//! trained on the diabetes data next to a single affine layer 10 -> 1; both reach the same fit,
//! and the stack's collapsed map
//!
//!   W' = W3 W2 W1,   b' = W3 W2 b1 + W3 b2 + b3
//!
//! (computed here from the trained layers) is the single layer's W and b. The stack declares
//! 8*11 + 8*9 + 1*9 = 169 parameters; only the 11 of the collapsed map are effective.
//!
//! Features and target are standardized on the training split (the deep linear net trains
//! poorly on a target of scale 150); weights are in standardized units.
//!
//! Run with `cargo run --release --example stacked_linear`.

mod common;

use std::time::Instant;

use common::{Checks, Result, Series};
use symnet::{mean_loss, network, train, Adam, GradientDescent, Target, TrainConfig};

network! {
    /// Three linear layers, no activation. (`allow_collapse` silences the compiler's note that
    /// they collapse: showing that is the point of this example.)
    #[symnet(allow_collapse)]
    pub struct Stack<f64> {
        input: 10,
        l1: dense(8),
        l2: dense(8),
        l3: dense(1),
        loss: mse,
    }
}

network! {
    /// One affine layer.
    pub struct Single<f64> {
        input: 10,
        out: dense(1),
        loss: mse,
    }
}

/// Test MSEs must agree within this relative tolerance.
const TOLERANCE: f64 = 0.01;

fn main() -> Result<()> {
    let data = common::load::<f64>("diabetes.csv", Target::Regression)?;
    // Features and target standardized with the training split's statistics.
    let (train_set, test_set, mean_y, sd_y) = common::standardized_regression(&data, 0.2, 42)?;
    println!(
        "diabetes: {} training and {} test samples; features and target standardized on the training split",
        train_set.len(),
        test_set.len()
    );

    // The single layer: full-batch gradient descent to convergence.
    let start = Instant::now();
    let mut single = Single::zeros();
    let config = TrainConfig {
        epochs: 100_000,
        grad_tolerance: Some(1e-10),
        ..Default::default()
    };
    let single_hist = train(
        &mut single,
        &train_set,
        &mut GradientDescent { lr: 0.1 },
        &config,
    )?;
    let single_time = start.elapsed();

    // The stack: full-batch Adam with a step size lowered in stages. Plain gradient descent is
    // slow here: the loss is a product of layers, flat near a small initialization and
    // ill-conditioned along the correlated features.
    let start = Instant::now();
    let mut stack = Stack::init(3);
    let mut opt = Adam::default();
    let mut stack_losses = Vec::new();
    for lr in [1e-2, 1e-3, 1e-4] {
        opt.lr = lr;
        let config = TrainConfig {
            epochs: 4000,
            ..Default::default()
        };
        stack_losses.extend(train(&mut stack, &train_set, &mut opt, &config)?.losses);
    }
    let stack_time = start.elapsed();
    println!(
        "single layer: {} epochs of gradient descent in {}; stack: {} epochs of Adam in {}",
        single_hist.epochs(),
        common::secs(single_time),
        stack_losses.len(),
        common::secs(stack_time)
    );

    // Collapse the stack: W' = W3 W2 W1, b' = W3 W2 b1 + W3 b2 + b3.
    let (w1, b1) = (&stack.l1.w, &stack.l1.b);
    let (w2, b2) = (&stack.l2.w, &stack.l2.b);
    let (w3, b3) = (&stack.l3.w, &stack.l3.b);
    let w32: [f64; 8] = std::array::from_fn(|j| (0..8).map(|k| w3[0][k] * w2[k][j]).sum());
    let w_eff: [f64; 10] = std::array::from_fn(|i| (0..8).map(|j| w32[j] * w1[j][i]).sum());
    let b_eff = (0..8).map(|j| w32[j] * b1[j]).sum::<f64>()
        + (0..8).map(|k| w3[0][k] * b2[k]).sum::<f64>()
        + b3[0];

    println!("\n{:>10} {:>14} {:>14}", "", "stack W', b'", "single W, b");
    let mut max_diff: f64 = 0.0;
    let single_w = single.out.w[0].iter().chain(&single.out.b);
    let stack_w = w_eff.iter().chain([&b_eff]);
    let names = data
        .feature_names()
        .iter()
        .map(String::as_str)
        .chain(["bias"]);
    for ((name, &a), &b) in names.zip(stack_w).zip(single_w) {
        max_diff = max_diff.max((a - b).abs());
        println!("{name:>10} {a:>14.5} {b:>14.5}");
    }
    println!("largest difference: {max_diff:.2e}");

    let stack_train = mean_loss(&stack, &train_set)?;
    let single_train = mean_loss(&single, &train_set)?;
    let stack_test = mean_loss(&stack, &test_set)?;
    let single_test = mean_loss(&single, &test_set)?;
    let rel = (stack_test - single_test).abs() / single_test;
    println!(
        "\nMSE (standardized target): train {stack_train:.5} (stack) vs {single_train:.5} (single); test {stack_test:.5} vs {single_test:.5}, relative difference {rel:.2e}"
    );
    println!(
        "parameters: declared Stack::PARAMS = {}, Single::PARAMS = {}; effective, as the compiler proved by rewriting, Stack::EFFECTIVE_PARAMS = {}",
        Stack::PARAMS,
        Single::PARAMS,
        Stack::EFFECTIVE_PARAMS
    );
    // The compiler's own collapse: prepare() computes W' and b' once; its forward is one
    // affine map and agrees with the hand-collapsed one above.
    let prepared = stack.prepare();
    let mut prepared_diff: f64 = 0.0;
    for i in 0..test_set.len() {
        let x: &[f64; 10] = test_set.x(i).try_into()?;
        let by_hand = b_eff + (0..10).map(|k| w_eff[k] * x[k]).sum::<f64>();
        prepared_diff = prepared_diff.max((prepared.forward(x)[0] - by_hand).abs());
    }
    println!(
        "prepared forward vs hand-collapsed W' x + b': largest difference {prepared_diff:.2e}"
    );
    let explanation = Stack::EXPLANATION;
    for line in explanation
        .lines()
        .filter(|l| l.contains("collapse") || l.starts_with("  forward:"))
    {
        println!("compiler: {}", line.trim());
    }

    // Both fits against the target on the test split, in raw units.
    let mut stack_pts = Vec::new();
    let mut single_pts = Vec::new();
    for i in 0..test_set.len() {
        let x: &[f64; 10] = test_set.x(i).try_into()?;
        let y = mean_y + sd_y * test_set.y(i)[0];
        stack_pts.push((y, mean_y + sd_y * stack.forward(x)[0]));
        single_pts.push((y, mean_y + sd_y * single.forward(x)[0]));
    }
    let loss_svg = common::plot_path("stacked_linear", "loss")?;
    common::loss_plot(
        &loss_svg,
        "Diabetes: stack of 3 linear layers vs one affine layer",
        &[
            Series::curve("stack 10-8-8-1 (Adam)", &stack_losses),
            Series::curve("single 10-1 (gradient descent)", &single_hist.losses),
        ],
    )?;
    let pred_svg = common::plot_path("stacked_linear", "predictions")?;
    common::scatter_plot(
        &pred_svg,
        "Diabetes test split: the two fits coincide",
        ("actual disease progression", "predicted"),
        &[
            Series::new("single affine layer", single_pts),
            Series::new("stack of 3 linear layers", stack_pts),
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
        rel <= TOLERANCE,
        format_args!("test MSEs agree: relative difference {rel:.2e} <= {TOLERANCE}"),
    );
    checks.check(
        Stack::EFFECTIVE_PARAMS == Single::PARAMS,
        format_args!(
            "the compiler collapsed the stack: {} effective parameters, as many as one affine layer",
            Stack::EFFECTIVE_PARAMS
        ),
    );
    checks.check(
        prepared_diff <= 1e-9,
        format_args!("prepare() agrees with the hand-collapsed map: {prepared_diff:.2e} <= 1e-9"),
    );
    checks.finish();
    Ok(())
}
