//! A 2-4-1 network learns XOR by full-batch gradient descent: the smallest problem that a linear
//! model cannot solve and one hidden layer can.
//!
//! Run with `cargo run --release --example xor`. It writes both nets' decision surfaces to
//! `target/plots/xor_decision.svg`.

mod common;

use symnet::network;

network! {
    /// XOR with a sigmoid hidden layer.
    pub struct XorSigmoid<f32> {
        input: 2,
        hidden: dense(4) -> sigmoid,
        output: dense(1) -> sigmoid,
        loss: binary_cross_entropy,
    }
}

network! {
    /// XOR with a relu hidden layer.
    pub struct XorRelu<f32> {
        input: 2,
        hidden: dense(4) -> relu,
        output: dense(1) -> sigmoid,
        loss: binary_cross_entropy,
    }
}

const XS: [[f32; 2]; 4] = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
const YS: [[f32; 1]; 4] = [[0.0], [1.0], [1.0], [0.0]];

macro_rules! train {
    ($net:ty, $seed:expr, $lr:expr, $epochs:expr) => {{
        let mut net = <$net>::init($seed);
        let mut losses = Vec::new();
        for _ in 0..$epochs {
            // The textbook loop: theta <- theta - alpha * grad of the mean loss.
            let mut grad = <$net>::zeros();
            let loss = net.backward_batch(&XS, &YS, &mut grad);
            for (p, g) in net.params_mut().iter_mut().zip(grad.params()) {
                *p -= $lr * g;
            }
            losses.push(loss);
        }
        let outputs: Vec<f32> = XS.iter().map(|x| net.forward(x)[0]).collect();
        (net, losses, outputs)
    }};
}

fn report(name: &str, losses: &[f32], outputs: &[f32]) -> bool {
    println!(
        "{name}: loss {:.4} -> {:.4} after {} epochs",
        losses[0],
        losses[losses.len() - 1],
        losses.len()
    );
    let mut ok = true;
    for ((x, y), o) in XS.iter().zip(&YS).zip(outputs) {
        let hit = (*o > 0.5) == (y[0] > 0.5);
        ok &= hit;
        println!(
            "  {x:?} -> {o:.3} (target {}){}",
            y[0],
            if hit { "" } else { "  WRONG" }
        );
    }
    ok
}

fn main() -> common::Result<()> {
    let (n1, l1, o1) = train!(XorSigmoid, 1, 2.0f32, 3000);
    let (n2, l2, o2) = train!(XorRelu, 1, 0.5f32, 3000);
    let ok1 = report("sigmoid hidden layer", &l1, &o1);
    let ok2 = report("relu hidden layer", &l2, &o2);
    println!(
        "{} parameters each; both solved: {}",
        XorSigmoid::PARAMS,
        ok1 && ok2
    );

    // Where each net puts the boundary: smooth curves for sigmoid units, straight pieces for
    // relu units (each hidden unit is a line in the input plane).
    let path = common::plot_path("xor", "decision")?;
    let p1 = |a: f64, b: f64| n1.forward(&[a as f32, b as f32])[0] as f64;
    let p2 = |a: f64, b: f64| n2.forward(&[a as f32, b as f32])[0] as f64;
    let points: Vec<((f64, f64), bool)> = XS
        .iter()
        .zip(&YS)
        .map(|(x, y)| ((x[0] as f64, x[1] as f64), y[0] > 0.5))
        .collect();
    common::decision_surfaces(
        &path,
        "XOR: probability of class 1 (filled points are class 1)",
        (-0.5, 1.5),
        &[("sigmoid hidden layer", &p1), ("relu hidden layer", &p2)],
        &points,
    )?;
    println!("decision surfaces: {}", common::show(&path));
    if !(ok1 && ok2) {
        std::process::exit(1);
    }
    Ok(())
}
