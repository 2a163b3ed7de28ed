//! What each hidden activation costs in batch code, where samples run across SIMD lanes: a
//! 64-128-10 network (f32, softmax output, cross-entropy) with `relu`, `sigmoid`, `tanh` or
//! `softplus` hidden, generated vs interpreted.
//!
//! Groups `forward_batch_256/<activation>` (throughput in samples) and
//! `train_step_32/<activation>` (zero the gradient, `backward_batch` of 32, one SGD update);
//! function ids `generated` and `interpreted`. In `f32` the batch code's `exp`, `sigmoid`,
//! `tanh` and `softplus` are branch-free polynomials that vectorize across samples; with the
//! library's functions the activation would cost a call per sample and unit.
//!
//! `cargo bench --bench activations` (all), or filter: `cargo bench --bench activations -- tanh`.

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::shapes::{batch, Target};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use symnet::{Activation, InterpNet, Loss};

const IN: usize = 64;
const HIDDEN: usize = 128;
const OUT: usize = 10;
/// The learning rate of the training steps.
const LR: f32 = 1e-3;

macro_rules! nets {
    ($($name:ident: $act:ident,)*) => {
        $(
            symnet::network! {
                pub struct $name<f32> {
                    input: 64,
                    hidden: dense(128) -> $act,
                    out: dense(10) -> softmax,
                    loss: cross_entropy,
                }
            }
        )*
        fn all(c: &mut Criterion) {
            $(bench!(c, $name, $act);)*
        }
    };
}

macro_rules! bench {
    ($c:expr, $net:ident, $act:ident) => {{
        let name = stringify!($act);
        let net = Box::new($net::init(1));
        let act = Activation::builtin(name, &[]).expect("a catalog activation");
        let mut interp: InterpNet<f32> = InterpNet::builder(IN)
            .dense(HIDDEN, act)
            .dense(OUT, Activation::Softmax)
            .loss(Loss::CrossEntropy)
            .build()
            .expect("valid description");
        interp.params_mut().copy_from_slice(net.params());
        let (xs, ys) = batch::<IN, OUT>(256, Target::OneHot, 42);

        let mut g = $c.benchmark_group(format!("forward_batch_256/{name}"));
        g.throughput(Throughput::Elements(256));
        let mut out = vec![[0f32; OUT]; 256];
        g.bench_function("generated", |b| {
            b.iter(|| net.forward_batch(black_box(&xs), &mut out))
        });
        g.bench_function("interpreted", |b| {
            b.iter(|| {
                for (x, o) in xs.iter().zip(out.iter_mut()) {
                    o.copy_from_slice(&interp.forward(black_box(&x[..])));
                }
            })
        });
        g.finish();

        let mut g = $c.benchmark_group(format!("train_step_32/{name}"));
        g.throughput(Throughput::Elements(32));
        let (x32, y32) = (&xs[..32], &ys[..32]);
        let mut trained = Box::new($net::init(1));
        let mut grad = Box::new($net::zeros());
        g.bench_function("generated", |b| {
            b.iter(|| {
                grad.params_mut().fill(0.0);
                trained.backward_batch(black_box(x32), y32, &mut grad);
                for (p, d) in trained.params_mut().iter_mut().zip(grad.params()) {
                    *p -= LR * d;
                }
            })
        });
        let mut ig = vec![0f32; interp.params().len()];
        let mut it = interp.clone();
        g.bench_function("interpreted", |b| {
            b.iter(|| {
                ig.fill(0.0);
                for (x, y) in x32.iter().zip(y32) {
                    it.backward_scaled(black_box(&x[..]), &y[..], 1.0 / 32.0, &mut ig);
                }
                for (p, d) in it.params_mut().iter_mut().zip(&ig) {
                    *p -= LR * d;
                }
            })
        });
        g.finish();
    }};
}

nets! {
    ReluNet: relu,
    SigmoidNet: sigmoid,
    TanhNet: tanh,
    SoftplusNet: softplus,
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = all
}
criterion_main!(benches);
