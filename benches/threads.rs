//! Thread scaling of the trainer: one epoch of `symnet::train` with `threads: 1` and
//! `threads: 2`, for minibatches of 32 and 256 and for the full batch, on 64-32-10 (16,384
//! samples) and 784-128-10 (8,192 samples). The trainer splits a batch only where each chunk
//! carries `symnet::train::MIN_CHUNK_FLOPS` of work, so two threads should never be slower.
//!
//! `cargo bench --bench threads`; a subset: `cargo bench --bench threads -- 64-32-10`.

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::shapes::{self, batch};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use symnet::{train, Dataset, GradientDescent, TrainConfig};

macro_rules! scaling {
    ($c:expr, $m:ident, $samples:expr) => {{
        use shapes::$m::{Gen, IN, NAME, OUT, TARGET};
        let (xs, ys) = batch::<IN, OUT>($samples, TARGET, 7);
        let data = Dataset::new(
            xs.iter().flatten().copied().collect(),
            ys.iter().flatten().copied().collect(),
            IN,
            OUT,
        )
        .expect("a valid data set");
        for (label, batch_size) in [("32", Some(32)), ("256", Some(256)), ("full", None)] {
            let mut g = $c.benchmark_group(format!("train_epoch/{NAME}/batch_{label}"));
            g.throughput(Throughput::Elements($samples as u64));
            for threads in [1, 2] {
                let config = TrainConfig {
                    epochs: 1,
                    batch_size,
                    threads,
                    ..Default::default()
                };
                let mut net = Gen::init(1);
                g.bench_function(format!("threads_{threads}"), |b| {
                    b.iter(|| {
                        let mut opt = GradientDescent { lr: 1e-4 };
                        train(&mut net, black_box(&data), &mut opt, &config).expect("trains")
                    })
                });
            }
            g.finish();
        }
    }};
}

fn benches(c: &mut Criterion) {
    use symnet::Network;
    println!(
        "estimated gradient FLOPs per sample: 64-32-10 {}, 784-128-10 {}; split threshold {} per chunk",
        shapes::digits::Gen::GRADIENT_FLOPS,
        shapes::mnist::Gen::GRADIENT_FLOPS,
        symnet::train::MIN_CHUNK_FLOPS
    );
    scaling!(c, digits, 16_384);
    scaling!(c, mnist, 8_192);
}

criterion_group! {
    name = group;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(group);
