//! Generated (`network!`) vs interpreted (`InterpNet`) vs hand-written fixed-size code, side by
//! side in one criterion group per shape and measurement, so that ratios come from one run.
//!
//! Groups: `forward/<shape>` (one sample), `forward_batch_32/<shape>` and
//! `forward_batch_256/<shape>` (throughput in samples), `train_step_32/<shape>` (zero the
//! gradient, forward + backward over a batch of 32, one SGD update). Function ids:
//! `generated`, `interpreted`, `handwritten`, and for one sample `prepared` (`prepare()` once,
//! then `Prepared::forward`: input-major weights).
//!
//! `cargo bench --bench nets` (all), or filter: `cargo bench --bench nets -- 'forward/2-4-1'`.
//! With `RUSTFLAGS="-C target-cpu=native"` for the machine's vector units.

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::shapes::{self, batch};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// The learning rate of the training steps (small: the nets train on one fixed batch for
/// millions of steps and must stay well-behaved).
const LR: f32 = 1e-3;

macro_rules! shape {
    ($c:expr, $m:ident) => {{
        use shapes::$m::{Gen, Hand, IN, NAME, OUT, TARGET};
        let gen = Box::new(Gen::init(1));
        let mut hand = Box::new(Hand::zeros());
        hand.load(gen.params());
        let mut interp = shapes::$m::interp();
        interp.params_mut().copy_from_slice(gen.params());
        let (xs, ys) = batch::<IN, OUT>(256, TARGET, 42);

        {
            let mut g = $c.benchmark_group(format!("forward/{NAME}"));
            let x = xs[0];
            g.bench_function("generated", |b| b.iter(|| gen.forward(black_box(&x))));
            let prepared = Box::new(gen.prepare());
            g.bench_function("prepared", |b| b.iter(|| prepared.forward(black_box(&x))));
            g.bench_function("interpreted", |b| {
                b.iter(|| interp.forward(black_box(&x[..])))
            });
            g.bench_function("handwritten", |b| b.iter(|| hand.forward(black_box(&x))));
            g.finish();
        }

        for n in [32usize, 256] {
            let mut g = $c.benchmark_group(format!("forward_batch_{n}/{NAME}"));
            g.throughput(Throughput::Elements(n as u64));
            let xb = &xs[..n];
            let mut out = vec![[0f32; OUT]; n];
            g.bench_function("generated", |b| {
                b.iter(|| {
                    gen.forward_batch(black_box(xb), &mut out);
                    black_box(&mut out);
                })
            });
            g.bench_function("interpreted", |b| {
                b.iter(|| {
                    for (x, o) in black_box(xb).iter().zip(out.iter_mut()) {
                        o.copy_from_slice(&interp.forward(x));
                    }
                    black_box(&mut out);
                })
            });
            g.bench_function("handwritten", |b| {
                b.iter(|| {
                    hand.forward_batch(black_box(xb), &mut out);
                    black_box(&mut out);
                })
            });
            g.finish();
        }

        {
            let mut g = $c.benchmark_group(format!("train_step_32/{NAME}"));
            g.throughput(Throughput::Elements(32));
            let (xb, yb) = (&xs[..32], &ys[..32]);
            {
                let mut net = Box::new(Gen::zeros());
                net.params_mut().copy_from_slice(gen.params());
                let mut grad = Box::new(Gen::zeros());
                g.bench_function("generated", |b| {
                    b.iter(|| {
                        grad.params_mut().fill(0.0);
                        let loss = net.backward_batch(black_box(xb), black_box(yb), &mut grad);
                        for (p, g) in net.params_mut().iter_mut().zip(grad.params()) {
                            *p -= LR * g;
                        }
                        loss
                    })
                });
            }
            {
                let mut net = interp.clone();
                let mut grad = vec![0f32; net.num_params()];
                g.bench_function("interpreted", |b| {
                    b.iter(|| {
                        grad.fill(0.0);
                        let scale = 1.0 / xb.len() as f32;
                        let mut loss = 0.0;
                        for (x, y) in black_box(xb).iter().zip(black_box(yb)) {
                            loss += net.backward_scaled(x, y, scale, &mut grad);
                        }
                        for (p, g) in net.params_mut().iter_mut().zip(&grad) {
                            *p -= LR * g;
                        }
                        loss * scale
                    })
                });
            }
            {
                let mut net = hand.clone();
                g.bench_function("handwritten", |b| {
                    b.iter(|| net.train_step(black_box(xb), black_box(yb), LR))
                });
            }
            g.finish();
        }
    }};
}

fn benches(c: &mut Criterion) {
    shape!(c, xor);
    shape!(c, reg);
    shape!(c, iris);
    shape!(c, digits);
    shape!(c, mnist);
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = nets;
    config = config();
    targets = benches
}
criterion_main!(nets);
