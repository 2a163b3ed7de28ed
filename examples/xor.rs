//! A 2-4-1 network learns XOR by full-batch gradient descent: the smallest problem that a linear
//! model cannot solve and one hidden layer can.
//!
//! Run with `cargo run --release --example xor`.

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
        (losses, outputs)
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

fn main() {
    let (l1, o1) = train!(XorSigmoid, 1, 2.0f32, 3000);
    let (l2, o2) = train!(XorRelu, 1, 0.5f32, 3000);
    let ok1 = report("sigmoid hidden layer", &l1, &o1);
    let ok2 = report("relu hidden layer", &l2, &o2);
    println!(
        "{} parameters each; both solved: {}",
        XorSigmoid::PARAMS,
        ok1 && ok2
    );
    if !(ok1 && ok2) {
        std::process::exit(1);
    }
}
