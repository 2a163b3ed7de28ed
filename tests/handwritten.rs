//! The hand-written baseline of the benches (`benches/common/handwritten.rs`) computes what the
//! generated code computes: forward, loss, gradient and one SGD training step agree to 1e-4
//! (relative, with an absolute floor of 1e-4 for values near zero) on random parameters and
//! inputs, for every benchmarked shape. A baseline that is fast because it is wrong would make
//! the benchmark ratios meaningless.

#[path = "../benches/common/mod.rs"]
mod bench_common;

use bench_common::shapes::{self, batch};
use symnet::{Network, SplitMix64};

const TOL: f32 = 1e-4;

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= TOL * a.abs().max(b.abs()).max(1.0)
}

fn assert_all_close(what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            close(*x, *y),
            "{what}[{i}]: generated {x:e}, hand-written {y:e}"
        );
    }
}

/// Random weights with non-zero biases.
fn randomize(p: &mut [f32], seed: u64) {
    let mut rng = SplitMix64::new(seed);
    for v in p {
        *v += rng.uniform(-0.3, 0.3) as f32;
    }
}

macro_rules! agree {
    ($m:ident) => {{
        use shapes::$m::{Gen, Hand, IN, NAME, OUT, TARGET};
        for trial in 0..3u64 {
            let mut gen = Box::new(Gen::init(100 + trial));
            randomize(gen.params_mut(), 7 + trial);
            let mut hand = Box::new(Hand::zeros());
            hand.load(gen.params());
            assert_all_close(&format!("{NAME} params"), gen.params(), &hand.to_vec());

            let (xs, ys) = batch::<IN, OUT>(8, TARGET, 11 + trial);
            for (s, (x, y)) in xs.iter().zip(&ys).enumerate() {
                let at = format!("{NAME} trial {trial} sample {s}");
                assert_all_close(&format!("{at} forward"), &gen.forward(x), &hand.forward(x));
                let mut g1 = Box::new(Gen::zeros());
                let mut g2 = Box::new(Hand::zeros());
                let l1 = gen.backward(x, y, &mut g1);
                let l2 = hand.backward(x, y, 1.0, &mut g2);
                assert!(
                    close(l1, l2),
                    "{at} loss: generated {l1}, hand-written {l2}"
                );
                assert!(
                    close(l1, gen.loss(x, y)),
                    "{at}: backward's loss is the loss"
                );
                assert_all_close(&format!("{at} gradient"), g1.params(), &g2.to_vec());
                assert!(
                    g1.params().iter().any(|&v| v != 0.0),
                    "{at}: the gradient is not trivially zero"
                );
            }

            // The batch forward pass (two samples per iteration, and an odd one).
            let mut out = vec![[0f32; OUT]; 5];
            hand.forward_batch(&xs[..5], &mut out);
            for (x, o) in xs.iter().zip(&out) {
                assert_all_close(&format!("{NAME} forward_batch"), &gen.forward(x), o);
            }

            // Training steps as the benches run them: the whole (even) batch, then an odd one.
            let lr = 0.1f32;
            for n in [xs.len(), 5] {
                let (xb, yb) = (&xs[..n], &ys[..n]);
                let mut g1 = Box::new(Gen::zeros());
                let l1 = gen.backward_batch(xb, yb, &mut g1);
                for (p, g) in gen.params_mut().iter_mut().zip(g1.params()) {
                    *p -= lr * g;
                }
                let l2 = hand.train_step(xb, yb, lr);
                assert!(close(l1, l2), "{NAME} batch of {n} loss: {l1} vs {l2}");
                assert_all_close(
                    &format!("{NAME} after a step on {n}"),
                    gen.params(),
                    &hand.to_vec(),
                );
            }
        }
        assert_eq!(<Gen as Network>::PARAMS, Hand::PARAMS);
    }};
}

#[test]
fn xor_2_4_1() {
    agree!(xor);
}

#[test]
fn regression_6_64_8_4() {
    agree!(reg);
}

#[test]
fn iris_4_16_3() {
    agree!(iris);
}

#[test]
fn digits_64_32_10() {
    agree!(digits);
}

#[test]
fn mnist_784_128_10() {
    // 400 KB networks built on the stack in debug builds: run with a larger stack.
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| agree!(mnist))
        .unwrap()
        .join()
        .unwrap();
}
