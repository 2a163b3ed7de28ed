//! The batch functions give the same results on every vector unit the machine has: the
//! baseline body, the AVX2 + FMA one and the AVX-512 one (see `symnet::__private::simd`), each
//! checked against the one-sample functions: an f64 network, an f32 one whose sigmoid, tanh
//! and softplus take the batch code's polynomial forms, and an f32 one wide enough for the
//! register-blocked products and weight gradients: 16-row blocks with rows after them, and
//! weight gradients of 21 inputs, so that register-wide input blocks leave inputs over at
//! every level's width (4, 8 or 16 `f32`). One test, since the level is per process.

use symnet::__private::simd::{detected, set_simd_level, SimdLevel};
use symnet::network;

network! {
    struct Wide<f64> { input: 20, h1: dense(40) -> relu, h2: dense(24) -> tanh, out: dense(10) -> softmax, loss: cross_entropy }
}
network! {
    struct Broad<f32> { input: 21, h: dense(40) -> tanh, out: dense(17), loss: mse }
}
network! {
    struct Narrow<f32> { input: 3, h: dense(5) -> sigmoid, h2: dense(4) -> tanh, h3: dense(4) -> softplus, out: dense(2), loss: mse }
}

fn inputs<const N: usize>(n: usize, seed: u64) -> Vec<[f64; N]> {
    let mut rng = symnet::SplitMix64::new(seed);
    (0..n)
        .map(|_| std::array::from_fn(|_| rng.uniform(-1.5, 1.5)))
        .collect()
}

/// [`inputs`] as `f32`.
fn inputs_f32<const N: usize>(n: usize, seed: u64) -> Vec<[f32; N]> {
    inputs::<N>(n, seed)
        .iter()
        .map(|x| x.map(|v| v as f32))
        .collect()
}

fn one_hot<const N: usize>(n: usize) -> Vec<[f64; N]> {
    (0..n)
        .map(|i| std::array::from_fn(|j| (j == i % N) as u8 as f64))
        .collect()
}

/// `backward_batch`, `forward_batch` and `loss_batch` of `$net` on `$xs`, `$ys` (scalar `$t`)
/// equal the one-sample functions to `$tol`, at the level set now.
macro_rules! agree {
    ($level:expr, $net:expr, $ty:ident, $xs:expr, $ys:expr, $t:ty, $tol:expr) => {{
        let (net, xs, ys, tol, level) = (&$net, &$xs, &$ys, $tol, $level);
        let n = xs.len() as $t;
        let mut grad = $ty::zeros();
        let loss = net.backward_batch(xs, ys, &mut grad);
        let mut reference = $ty::zeros();
        let mut ref_loss: $t = 0.0;
        for (x, y) in xs.iter().zip(ys) {
            ref_loss += net.backward_scaled(x, y, 1.0 / n, &mut reference);
        }
        assert!((loss - ref_loss / n).abs() <= tol, "{level:?}");
        for (a, b) in grad.params().iter().zip(reference.params()) {
            assert!(
                (a - b).abs() <= tol * (1.0 + b.abs()),
                "{level:?}: {a} vs {b}"
            );
        }
        let mut out = vec![[0.0; $ty::OUTPUTS]; xs.len()];
        net.forward_batch(xs, &mut out);
        for (o, x) in out.iter().zip(xs) {
            for (a, b) in o.iter().zip(net.forward(x)) {
                assert!((a - b).abs() <= tol, "{level:?}: {a} vs {b}");
            }
        }
        let mean = xs.iter().zip(ys).map(|(x, y)| net.loss(x, y)).sum::<$t>() / n;
        assert!((net.loss_batch(xs, ys) - mean).abs() <= tol, "{level:?}");
    }};
}

#[test]
fn every_level_agrees_with_the_one_sample_functions() {
    let levels: Vec<SimdLevel> = [SimdLevel::Baseline, SimdLevel::Avx2, SimdLevel::Avx512]
        .into_iter()
        .filter(|l| *l <= detected())
        .collect();
    // 37 samples: two chunks of lanes and a remainder.
    let n = 37;
    let wide = Wide::init(3);
    let (xs, ys) = (inputs::<20>(n, 1), one_hot::<10>(n));
    let narrow = Narrow::init(4);
    let xn = inputs_f32::<3>(n, 2);
    let yn = inputs_f32::<2>(n, 3);
    let broad = Broad::init(5);
    let xb = inputs_f32::<21>(n, 4);
    let yb = inputs_f32::<17>(n, 5);
    for level in levels {
        assert_eq!(set_simd_level(level), level);
        agree!(level, wide, Wide, xs, ys, f64, 1e-12);
        agree!(level, narrow, Narrow, xn, yn, f32, 1e-5);
        agree!(level, broad, Broad, xb, yb, f32, 1e-5);
    }
}
