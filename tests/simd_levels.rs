//! The batch functions give the same results on every vector unit the machine has: the
//! baseline body, the AVX2 + FMA one and the AVX-512 one (see `symnet::__private::simd`), each
//! checked against the one-sample functions. One test, since the level is per process.

use symnet::__private::simd::{detected, set_simd_level, SimdLevel};
use symnet::network;

network! {
    struct Wide<f64> { input: 20, h1: dense(40) -> relu, h2: dense(24) -> tanh, out: dense(10) -> softmax, loss: cross_entropy }
}
network! {
    struct Narrow<f32> { input: 3, h: dense(5) -> sigmoid, out: dense(2), loss: mse }
}

fn inputs<const N: usize>(n: usize, seed: u64) -> Vec<[f64; N]> {
    let mut rng = symnet::SplitMix64::new(seed);
    (0..n)
        .map(|_| std::array::from_fn(|_| rng.uniform(-1.5, 1.5)))
        .collect()
}

fn one_hot<const N: usize>(n: usize) -> Vec<[f64; N]> {
    (0..n)
        .map(|i| std::array::from_fn(|j| (j == i % N) as u8 as f64))
        .collect()
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
    let xn: Vec<[f32; 3]> = inputs::<3>(n, 2)
        .iter()
        .map(|x| x.map(|v| v as f32))
        .collect();
    let yn: Vec<[f32; 2]> = inputs::<2>(n, 3)
        .iter()
        .map(|x| x.map(|v| v as f32))
        .collect();
    for level in levels {
        assert_eq!(set_simd_level(level), level);
        // Wide, f64.
        let mut grad = Wide::zeros();
        let loss = wide.backward_batch(&xs, &ys, &mut grad);
        let mut reference = Wide::zeros();
        let mut ref_loss = 0.0;
        for (x, y) in xs.iter().zip(&ys) {
            ref_loss += wide.backward_scaled(x, y, 1.0 / n as f64, &mut reference);
        }
        assert!((loss - ref_loss / n as f64).abs() <= 1e-12, "{level:?}");
        for (a, b) in grad.params().iter().zip(reference.params()) {
            assert!(
                (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
                "{level:?}: {a} vs {b}"
            );
        }
        let mut out = vec![[0.0; 10]; n];
        wide.forward_batch(&xs, &mut out);
        for (o, x) in out.iter().zip(&xs) {
            for (a, b) in o.iter().zip(wide.forward(x)) {
                assert!((a - b).abs() <= 1e-12, "{level:?}");
            }
        }
        let mean: f64 = xs
            .iter()
            .zip(&ys)
            .map(|(x, y)| wide.loss(x, y))
            .sum::<f64>()
            / n as f64;
        assert!(
            (wide.loss_batch(&xs, &ys) - mean).abs() <= 1e-12,
            "{level:?}"
        );
        // Narrow, f32.
        let mut grad = Narrow::zeros();
        let loss = narrow.backward_batch(&xn, &yn, &mut grad);
        let mut reference = Narrow::zeros();
        let mut ref_loss = 0.0f32;
        for (x, y) in xn.iter().zip(&yn) {
            ref_loss += narrow.backward_scaled(x, y, 1.0 / n as f32, &mut reference);
        }
        assert!((loss - ref_loss / n as f32).abs() <= 1e-5, "{level:?}");
        for (a, b) in grad.params().iter().zip(reference.params()) {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "{level:?}: {a} vs {b}"
            );
        }
    }
}
