//! Generated vs hand-written vs candle (CPU, one thread) in one criterion run, f32: for five
//! shapes with sigmoid hidden layers, identity output, MSE and plain SGD, the rows
//! `forward_x1/<shape>` (one sample), `forward_x256/<shape>` (a batch of 256) and
//! `sgd_step_x32/<shape>` (the mean gradient of 32 samples and one SGD update). Function ids:
//! `generated`, `handwritten`, `candle`, and for one sample `prepared` (`prepare()` once, then
//! `Prepared::forward`: input-major weights).

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use symnet_candle_bench::*;

macro_rules! shape {
    ($c:expr, $m:ident, $i:literal, $o:literal) => {{
        use $m::{Gen, Hand, NAME, WIDTHS};
        let gen = Box::new(Gen::init(1));
        let mut hand = Box::new(Hand::zeros());
        hand.load(gen.params());
        let (xs, ys) = batch::<$i, $o>(256, 42);
        let (x1, x256) = (tensor(&xs[..1]), tensor(&xs));
        let (x32, y32) = (tensor(&xs[..32]), tensor(&ys[..32]));
        {
            let mut g = $c.benchmark_group(format!("forward_x1/{NAME}"));
            let x = xs[0];
            g.bench_function("generated", |b| b.iter(|| gen.forward(black_box(&x))));
            let prepared = Box::new(gen.prepare());
            g.bench_function("prepared", |b| b.iter(|| prepared.forward(black_box(&x))));
            g.bench_function("handwritten", |b| b.iter(|| hand.forward(black_box(&x))));
            let cnet = CandleNet::from_params(WIDTHS, gen.params()).unwrap();
            g.bench_function("candle", |b| b.iter(|| cnet.forward(black_box(&x1)).unwrap()));
            g.finish();
        }
        {
            let mut g = $c.benchmark_group(format!("forward_x256/{NAME}"));
            let mut out = vec![[0f32; $o]; 256];
            g.bench_function("generated", |b| {
                b.iter(|| gen.forward_batch(black_box(&xs), &mut out))
            });
            g.bench_function("handwritten", |b| {
                b.iter(|| hand.forward_batch(black_box(&xs), &mut out))
            });
            let cnet = CandleNet::from_params(WIDTHS, gen.params()).unwrap();
            g.bench_function("candle", |b| b.iter(|| cnet.forward(black_box(&x256)).unwrap()));
            g.finish();
        }
        {
            let mut g = $c.benchmark_group(format!("sgd_step_x32/{NAME}"));
            let (xb, yb) = (&xs[..32], &ys[..32]);
            let mut net = gen.clone();
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
            let mut hnet = hand.clone();
            g.bench_function("handwritten", |b| {
                b.iter(|| hnet.train_step(black_box(xb), black_box(yb), LR))
            });
            let mut cnet = CandleNet::from_params(WIDTHS, gen.params()).unwrap();
            g.bench_function("candle", |b| {
                b.iter(|| cnet.train_step(black_box(&x32), black_box(&y32)).unwrap())
            });
            g.finish();
        }
    }};
}

fn benches(c: &mut Criterion) {
    shape!(c, xor, 2, 1);
    shape!(c, reg, 6, 4);
    shape!(c, iris, 4, 3);
    shape!(c, digits, 64, 10);
    shape!(c, mnist, 784, 10);
}

fn main() {
    one_thread();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    benches(&mut c);
    c.final_summary();
}
