//! A stack of linear layers collapses: `prepare()` computes `W' = W3 W2 W1` and `b'` once, so the
//! prepared forward of `2 -> 64 -> 64 -> 1` (identity activations) should cost about what one
//! `dense(1)` layer costs (target: within 1.3x), while the network's own forward does every
//! layer.
//!
//! `cargo bench --bench collapse`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use symnet::network;

network! {
    /// Three linear layers, no activation.
    #[symnet(allow_collapse)]
    pub struct Stacked<f32> {
        input: 2,
        a: dense(64),
        b: dense(64),
        c: dense(1),
        loss: mse,
    }
}

network! {
    /// The same map as one layer.
    pub struct Single<f32> {
        input: 2,
        o: dense(1),
        loss: mse,
    }
}

fn benches(c: &mut Criterion) {
    let stacked = Stacked::init(3);
    let prepared = stacked.prepare();
    // The single layer gets the collapsed map, so all three compute the same function.
    let mut single = Single::zeros();
    let zero = prepared.forward(&[0.0, 0.0])[0];
    single.o.b = [zero];
    single.o.w = [[
        prepared.forward(&[1.0, 0.0])[0] - zero,
        prepared.forward(&[0.0, 1.0])[0] - zero,
    ]];
    let x = [0.75f32, -0.5];
    let want = stacked.forward(&x)[0];
    for got in [prepared.forward(&x)[0], single.forward(&x)[0]] {
        assert!(
            (got - want).abs() <= 1e-4 * want.abs().max(1.0),
            "{got} vs {want}"
        );
    }

    let mut g = c.benchmark_group("collapse/2-64-64-1");
    g.bench_function("prepared", |b| b.iter(|| prepared.forward(black_box(&x))));
    g.bench_function("stacked", |b| b.iter(|| stacked.forward(black_box(&x))));
    g.bench_function("single", |b| b.iter(|| single.forward(black_box(&x))));
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = collapse;
    config = config();
    targets = benches
}
criterion_main!(collapse);
