//! A formula written in the declaration vs the catalog built-in it spells out: does writing
//! `|x| 1.0 / (1.0 + exp(-x))` instead of `sigmoid`, or the textbook binary cross-entropy instead
//! of `binary_cross_entropy`, cost anything at run time? The rewrites should find the same
//! program (`1 / (1 + e^-x) = sigmoid x`, `ln sigmoid z = -softplus(-z)`), so the ratios should be
//! about 1.
//!
//! One criterion group per comparison, function ids `formula` (written out) and `builtin`:
//!
//! - `sigmoid_forward/64-32-10`: one-sample `forward`, hidden layer `|x| 1.0 / (1.0 + exp(-x))`
//!   vs `sigmoid`, softmax output, cross-entropy;
//! - `sigmoid_train_step_32/64-32-10`: the same pair, one training step on a batch of 32 (zero
//!   the gradient, `backward_batch`, one SGD update);
//! - `bce_train_step_32/64-32-10`: relu hidden layer, sigmoid output, loss
//!   `|yhat, y| -mean(y * ln(yhat) + (1.0 - y) * ln(1.0 - yhat))` vs `binary_cross_entropy`,
//!   the same training step.
//!
//! Both networks of a pair start from the same parameters; the bench checks first that they
//! compute the same outputs and gradients, and prints whether the compiler emitted the same
//! backward program for both (from their `EXPLANATION`s).
//!
//! `cargo bench --bench formulas` (all), or filter: `cargo bench --bench formulas -- bce`.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use symnet::{network, Network, SplitMix64};

network! {
    /// The logistic function written out.
    pub struct SigmoidFormula<f32> {
        input: 64,
        hidden: dense(32) -> |x| 1.0 / (1.0 + exp(-x)),
        out: dense(10) -> softmax,
        loss: cross_entropy,
    }
}

network! {
    /// The catalog's sigmoid.
    pub struct SigmoidBuiltin<f32> {
        input: 64,
        hidden: dense(32) -> sigmoid,
        out: dense(10) -> softmax,
        loss: cross_entropy,
    }
}

network! {
    /// Binary cross-entropy written out, on ten independent sigmoid outputs.
    pub struct BceFormula<f32> {
        input: 64,
        hidden: dense(32) -> relu,
        out: dense(10) -> sigmoid,
        loss: |yhat, y| -mean(y * ln(yhat) + (1.0 - y) * ln(1.0 - yhat)),
    }
}

network! {
    /// The catalog's binary cross-entropy.
    pub struct BceBuiltin<f32> {
        input: 64,
        hidden: dense(32) -> relu,
        out: dense(10) -> sigmoid,
        loss: binary_cross_entropy,
    }
}

const SHAPE: &str = "64-32-10";
const IN: usize = 64;
const OUT: usize = 10;
const BATCH: usize = 32;
/// The learning rate of the training steps (small: the nets train on one fixed batch for
/// millions of steps and must stay well-behaved).
const LR: f32 = 1e-3;

/// `n` samples: inputs uniform in [-1.5, 1.5]; targets one-hot (`one_hot`) or independent
/// 0/1 labels.
fn batch(n: usize, one_hot: bool, seed: u64) -> (Vec<[f32; IN]>, Vec<[f32; OUT]>) {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let x = std::array::from_fn(|_| rng.uniform(-1.5, 1.5) as f32);
            let y = if one_hot {
                let k = rng.below(OUT);
                std::array::from_fn(|j| f32::from(u8::from(j == k)))
            } else {
                std::array::from_fn(|_| f32::from(u8::from(rng.next_f64() < 0.5)))
            };
            (x, y)
        })
        .unzip()
}

/// Asserts that `a` and `b` agree within `1e-4` relative to the largest magnitude (f32, and the
/// two programs may round differently).
fn assert_close(what: &str, a: &[f32], b: &[f32]) {
    let scale = a.iter().chain(b).fold(1e-3f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-4 * scale,
            "{what}[{i}]: {x} (formula) vs {y} (builtin)"
        );
    }
}

/// The backward program as emitted (the part of a network's `EXPLANATION` that lists it), for
/// comparing two networks' code.
fn program(explanation: &str) -> &str {
    let start = explanation.find("gradients (").unwrap_or(0);
    let end = explanation
        .find("FLOPs (estimated)")
        .unwrap_or(explanation.len());
    &explanation[start..end.max(start)]
}

/// Prints whether the two networks of a pair emit the same program.
fn same_program(pair: &str, formula: &str, builtin: &str) {
    println!(
        "{pair}: the formula and the builtin emit {} backward program",
        if program(formula) == program(builtin) {
            "the same"
        } else {
            "a different"
        }
    );
}

/// A copy of `N` with the parameters of `from`, which has the same layout.
fn with_params<N: Network<Scalar = f32>, M: Network<Scalar = f32>>(from: &M) -> Box<N> {
    let mut net = Box::new(N::zeros());
    net.params_mut().copy_from_slice(from.params());
    net
}

/// One training step, as in `benches/nets.rs`: zero the gradient, the batch gradient, an SGD
/// update. `$net` and `$grad` are boxed networks of one type.
macro_rules! train_step {
    ($g:expr, $id:literal, $net:expr, $grad:expr, $xs:expr, $ys:expr) => {{
        let (net, grad) = (&mut $net, &mut $grad);
        $g.bench_function($id, |b| {
            b.iter(|| {
                grad.params_mut().fill(0.0);
                let loss = net.backward_batch(black_box($xs), black_box($ys), grad);
                for (p, g) in net.params_mut().iter_mut().zip(grad.params()) {
                    *p -= LR * g;
                }
                loss
            })
        });
    }};
}

/// The criterion group `<name>/64-32-10`.
fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    c.benchmark_group(format!("{name}/{SHAPE}"))
}

fn sigmoid(c: &mut Criterion) {
    let builtin = Box::new(SigmoidBuiltin::init(1));
    let formula: Box<SigmoidFormula> = with_params(&*builtin);
    let (xs, ys) = batch(BATCH, true, 42);
    let (xb, yb) = (&xs[..], &ys[..]);

    same_program(
        "sigmoid",
        SigmoidFormula::EXPLANATION,
        SigmoidBuiltin::EXPLANATION,
    );
    // The same function and the same gradient.
    assert_close(
        "forward",
        &formula.forward(&xs[0]),
        &builtin.forward(&xs[0]),
    );
    let (mut gf, mut gb) = (
        Box::new(SigmoidFormula::zeros()),
        Box::new(SigmoidBuiltin::zeros()),
    );
    let lf = formula.backward_batch(xb, yb, &mut gf);
    let lb = builtin.backward_batch(xb, yb, &mut gb);
    assert_close("loss", &[lf], &[lb]);
    assert_close("gradient", gf.params(), gb.params());

    {
        let mut g = group(c, "sigmoid_forward");
        let x = xs[0];
        g.bench_function("formula", |b| b.iter(|| formula.forward(black_box(&x))));
        g.bench_function("builtin", |b| b.iter(|| builtin.forward(black_box(&x))));
        g.finish();
    }
    {
        let mut g = group(c, "sigmoid_train_step_32");
        g.throughput(Throughput::Elements(BATCH as u64));
        let mut net: Box<SigmoidFormula> = with_params(&*builtin);
        let mut grad = Box::new(SigmoidFormula::zeros());
        train_step!(g, "formula", net, grad, xb, yb);
        let mut net: Box<SigmoidBuiltin> = with_params(&*builtin);
        let mut grad = Box::new(SigmoidBuiltin::zeros());
        train_step!(g, "builtin", net, grad, xb, yb);
        g.finish();
    }
}

fn bce(c: &mut Criterion) {
    let builtin = Box::new(BceBuiltin::init(1));
    let formula: Box<BceFormula> = with_params(&*builtin);
    let (xs, ys) = batch(BATCH, false, 43);
    let (xb, yb) = (&xs[..], &ys[..]);

    same_program("bce", BceFormula::EXPLANATION, BceBuiltin::EXPLANATION);
    let (mut gf, mut gb) = (Box::new(BceFormula::zeros()), Box::new(BceBuiltin::zeros()));
    let lf = formula.backward_batch(xb, yb, &mut gf);
    let lb = builtin.backward_batch(xb, yb, &mut gb);
    assert_close("loss", &[lf], &[lb]);
    assert_close("gradient", gf.params(), gb.params());

    let mut g = group(c, "bce_train_step_32");
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut net: Box<BceFormula> = with_params(&*builtin);
    let mut grad = Box::new(BceFormula::zeros());
    train_step!(g, "formula", net, grad, xb, yb);
    let mut net: Box<BceBuiltin> = with_params(&*builtin);
    let mut grad = Box::new(BceBuiltin::zeros());
    train_step!(g, "builtin", net, grad, xb, yb);
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = formulas;
    config = config();
    targets = sigmoid, bce
}
criterion_main!(formulas);
