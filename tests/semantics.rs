//! What the generated code computes: the textbook formulas by hand, parameter counts, the flat
//! layout, numerical stability, and `init`.
#![allow(clippy::identity_op)] // k2 (k1 + 1) with k2 = 1 is written out as the formula reads.

mod common;

use symnet::{network, Network, Scalar};

network! {
    /// Three sigmoid hidden layers and a linear output.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Deep<f64> {
        input: 3,
        l1: dense(4) -> sigmoid,
        l2: dense(5) -> sigmoid,
        l3: dense(2) -> sigmoid,
        out: dense(2),
        loss: mse,
    }
}

fn affine<const I: usize, const O: usize>(w: &[[f64; I]; O], b: &[f64; O], x: &[f64]) -> Vec<f64> {
    (0..O)
        .map(|o| b[o] + (0..I).map(|i| w[o][i] * x[i]).sum::<f64>())
        .collect()
}

fn sig(v: Vec<f64>) -> Vec<f64> {
    v.into_iter().map(|z| 1.0 / (1.0 + (-z).exp())).collect()
}

#[test]
fn forward_is_the_textbook_formula() {
    // yhat = W4 s(W3 s(W2 s(W1 x + b1) + b2) + b3) + b4, written out by hand.
    let net: Deep = common::random_net(42);
    let x = [0.5, -1.25, 2.0];
    let h1 = sig(affine(&net.l1.w, &net.l1.b, &x));
    let h2 = sig(affine(&net.l2.w, &net.l2.b, &h1));
    let h3 = sig(affine(&net.l3.w, &net.l3.b, &h2));
    let yhat = affine(&net.out.w, &net.out.b, &h3);
    let got = net.forward(&x);
    for (a, b) in got.iter().zip(&yhat) {
        assert!((a - b).abs() < 1e-14, "{a} vs {b}");
    }
    // The latent representation is the inner expression: the input of the last layer.
    let latent = net.latent(&x);
    for (a, b) in latent.iter().zip(&h3) {
        assert!((a - b).abs() < 1e-14);
    }
    // And the net is a linear model on it.
    for (a, b) in net.out.apply(&latent).iter().zip(&got) {
        assert!((a - b).abs() < 1e-14);
    }
    // The loss is the mean squared error.
    let y = [0.25, -0.5];
    let mse = ((yhat[0] - y[0]).powi(2) + (yhat[1] - y[1]).powi(2)) / 2.0;
    assert!((net.loss(&x, &y) - mse).abs() < 1e-14);
}

#[test]
fn params_counts_every_weight_and_bias() {
    network! { struct A<f32> { input: 2, h: dense(4) -> sigmoid, o: dense(1) -> sigmoid, loss: binary_cross_entropy } }
    network! { struct B<f64> { input: 64, h1: dense(32) -> relu, o: dense(10) -> softmax, loss: cross_entropy } }
    network! { struct C<f32> { input: 10, o: dense(1), loss: mse } }
    network! { struct D<f64> { input: 6, a: dense(64) -> relu, b: dense(8) -> tanh, c: dense(4), loss: mae } }
    assert_eq!(A::PARAMS, 4 * (2 + 1) + 1 * (4 + 1));
    assert_eq!(B::PARAMS, 32 * (64 + 1) + 10 * (32 + 1));
    assert_eq!(C::PARAMS, 10 + 1);
    assert_eq!(D::PARAMS, 64 * 7 + 8 * 65 + 4 * 9);
    assert_eq!(Deep::PARAMS, 4 * 4 + 5 * 5 + 2 * 6 + 2 * 3);
    assert_eq!(A::zeros().params().len(), A::PARAMS);
    assert_eq!(D::zeros().params().len(), D::PARAMS);
    assert_eq!((A::INPUTS, A::OUTPUTS), (2, 1));
    assert_eq!((B::INPUTS, B::OUTPUTS), (64, 10));
    assert_eq!(<B as Network>::PARAMS, B::PARAMS);
}

#[test]
fn flat_view_is_layer_after_layer_weights_then_biases() {
    let mut net = Deep::zeros();
    for (i, p) in net.params_mut().iter_mut().enumerate() {
        *p = i as f64;
    }
    assert_eq!(net.l1.w[0], [0.0, 1.0, 2.0]);
    assert_eq!(net.l1.w[3], [9.0, 10.0, 11.0]);
    assert_eq!(net.l1.b, [12.0, 13.0, 14.0, 15.0]);
    assert_eq!(net.l2.w[0][0], 16.0);
    assert_eq!(net.out.b[1], (Deep::PARAMS - 1) as f64);
    let names: Vec<&str> = Deep::tensors().iter().map(|t| t.0).collect();
    assert_eq!(
        names,
        ["l1.w", "l1.b", "l2.w", "l2.b", "l3.w", "l3.b", "out.w", "out.b"]
    );
    assert_eq!(Deep::tensors()[0].1, &[4, 3]);
    assert_eq!(
        Deep::tensors()
            .iter()
            .map(|t| t.1.iter().product::<usize>())
            .sum::<usize>(),
        Deep::PARAMS
    );
}

#[test]
fn init_is_deterministic_and_scaled_by_fan() {
    network! { struct R<f64> { input: 50, h: dense(40) -> relu, o: dense(30) -> tanh, loss: mse } }
    let (a, b, c) = (R::init(1), R::init(1), R::init(2));
    assert_eq!(a.params(), b.params());
    assert_ne!(a.params(), c.params());
    assert!(a.h.b.iter().chain(&a.o.b).all(|&v| v == 0.0));
    // He uniform: bound sqrt(6 / 50); Glorot uniform: bound sqrt(6 / (40 + 30)).
    let he = (6.0f64 / 50.0).sqrt();
    let glorot = (6.0f64 / 70.0).sqrt();
    let max_h = a.h.w.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
    let max_o = a.o.w.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(max_h <= he && max_h > 0.9 * he, "{max_h} vs {he}");
    assert!(
        max_o <= glorot && max_o > 0.9 * glorot,
        "{max_o} vs {glorot}"
    );
    // Layers draw from independent streams.
    assert_ne!(a.h.w[0][..30], a.o.w[0][..30]);
}

network! {
    struct Bce<f32> { input: 2, h: dense(3) -> tanh, o: dense(2) -> sigmoid, loss: binary_cross_entropy }
}
network! {
    struct Ce<f32> { input: 2, h: dense(3) -> tanh, o: dense(3) -> softmax, loss: cross_entropy }
}

#[test]
fn cross_entropies_are_finite_for_logits_of_1e4() {
    for scale in [1e4f32, -1e4] {
        // Binary: logits +-1e4 for both outputs, targets that make the loss huge and tiny.
        let mut b = Bce::zeros();
        b.h.w[0][0] = 1.0;
        b.o.w = [[scale, 0.0, 0.0], [-scale, 0.0, 0.0]];
        let x = [30.0f32, 0.0];
        assert_eq!(b.forward(&x).map(|v| v.is_finite()), [true, true]);
        for y in [[0.0f32, 1.0], [1.0, 0.0], [0.5, 0.5]] {
            let mut g = Bce::zeros();
            let l = b.backward(&x, &y, &mut g);
            assert!(l.is_finite() && l >= 0.0, "BCE loss {l} for scale {scale}");
            assert!(
                g.params().iter().all(|v| v.is_finite()),
                "BCE gradient for scale {scale}"
            );
            assert_eq!(l, b.loss(&x, &y));
        }
        // The loss of a confidently wrong answer is the logit itself, not infinity.
        let mut g = Bce::zeros();
        let wrong = if scale > 0.0 {
            [0.0f32, 1.0]
        } else {
            [1.0, 0.0]
        };
        assert!((b.backward(&x, &wrong, &mut g) - 1e4).abs() < 1.0);

        let mut c = Ce::zeros();
        c.h.w[0][0] = 1.0;
        c.o.w = [[scale, 0.0, 0.0], [-scale, 0.0, 0.0], [0.0; 3]];
        for y in [[1.0f32, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]] {
            let mut g = Ce::zeros();
            let l = c.backward(&x, &y, &mut g);
            assert!(l.is_finite() && l >= 0.0, "CE loss {l}");
            assert!(g.params().iter().all(|v| v.is_finite()), "CE gradient");
            let p = c.forward(&x);
            assert!(p.iter().all(|v| v.is_finite()) && (p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }

        // The batch code (samples across SIMD lanes, its own exp and sigmoid) as well: 20
        // samples fill one chunk of 16 and leave 4 for the per-sample path.
        let xs = [x; 20];
        let wrong = [if scale > 0.0 {
            [0.0f32, 1.0]
        } else {
            [1.0, 0.0]
        }; 20];
        let mut g = Bce::zeros();
        let l = b.backward_batch(&xs, &wrong, &mut g);
        assert!((l - 1e4).abs() < 1.0, "BCE batch loss {l}");
        assert!(
            g.params().iter().all(|v| v.is_finite()),
            "BCE batch gradient"
        );
        let ys = [[0.0f32, 1.0, 0.0]; 20];
        let mut g = Ce::zeros();
        let l = c.backward_batch(&xs, &ys, &mut g);
        assert!(l.is_finite() && l >= 0.0, "CE batch loss {l}");
        assert!(
            g.params().iter().all(|v| v.is_finite()),
            "CE batch gradient"
        );
        let mut out = [[0.0f32; 3]; 20];
        c.forward_batch(&xs, &mut out);
        assert!(out.iter().flatten().all(|v| v.is_finite()));
    }
}

#[test]
fn sigmoid_outputs_never_overflow() {
    network! { struct S<f64> { input: 1, o: dense(1) -> sigmoid, loss: mse } }
    let mut s = S::zeros();
    s.o.w = [[1.0]];
    for x in [-1e300, -1e4, -745.0, 0.0, 745.0, 1e4, 1e300] {
        let y = s.forward(&[x])[0];
        assert!(
            y.is_finite() && (0.0..=1.0).contains(&y),
            "sigmoid({x}) = {y}"
        );
        let mut g = S::zeros();
        assert!(s.backward(&[x], &[0.5], &mut g).is_finite());
        assert!(g.params().iter().all(|v| v.is_finite()));
    }
}

#[test]
fn scalar_names() {
    assert_eq!(<Bce as Network>::Scalar::NAME, "f32");
    assert_eq!(<Deep as Network>::Scalar::NAME, "f64");
}

network! {
    /// Binary cross-entropy written out as the textbook does: the rules fuse it.
    struct BceByHand<f32> {
        input: 2,
        h: dense(3) -> tanh,
        o: dense(2) -> sigmoid,
        loss: |yhat, y| -mean(y * ln(yhat) + (1.0 - y) * ln(1.0 - yhat)),
    }
}
network! {
    /// log cosh written out: computed without overflow.
    struct LogCoshByHand<f32> {
        input: 2,
        o: dense(2),
        loss: |yhat, y| mean(ln(cosh(yhat - y))),
    }
}

#[test]
fn hand_written_losses_are_finite_for_huge_logits() {
    for scale in [1e4f32, -1e4] {
        let mut b = BceByHand::zeros();
        b.h.w[0][0] = 1.0;
        b.o.w = [[scale, 0.0, 0.0], [-scale, 0.0, 0.0]];
        let x = [30.0f32, 0.0];
        for y in [[0.0f32, 1.0], [1.0, 0.0], [0.5, 0.5]] {
            let mut g = BceByHand::zeros();
            let l = b.backward(&x, &y, &mut g);
            assert!(l.is_finite() && l >= 0.0, "loss {l} for scale {scale}");
            assert!(g.params().iter().all(|v| v.is_finite()), "gradient");
        }
        // A confidently wrong answer costs the logit, not infinity, per sample and in batches.
        let wrong = if scale > 0.0 {
            [0.0f32, 1.0]
        } else {
            [1.0, 0.0]
        };
        let mut g = BceByHand::zeros();
        assert!((b.backward(&x, &wrong, &mut g) - 1e4).abs() < 1.0);
        let mut g = BceByHand::zeros();
        let l = b.backward_batch(&[x; 20], &[wrong; 20], &mut g);
        assert!((l - 1e4).abs() < 1.0, "batch loss {l}");
        assert!(g.params().iter().all(|v| v.is_finite()), "batch gradient");

        // ln cosh(1e4) = 1e4 - ln 2, where cosh itself overflows f32.
        let mut c = LogCoshByHand::zeros();
        c.o.b = [scale, 0.0];
        let mut g = LogCoshByHand::zeros();
        let l = c.backward(&[0.0, 0.0], &[0.0, 0.0], &mut g);
        assert!(
            (l - (1e4 - std::f32::consts::LN_2) / 2.0).abs() < 1.0,
            "log cosh {l}"
        );
        assert!(
            (g.o.b[0].abs() - 0.5).abs() < 1e-6,
            "tanh(1e4) / 2: {}",
            g.o.b[0]
        );
    }
}

network! {
    struct EluWide<f32> { input: 1, h: dense(1) -> elu, out: dense(1), loss: mse }
}

#[test]
fn elu_gradient_is_finite_where_exp_of_the_branch_not_taken_would_overflow() {
    let mut net = EluWide::zeros();
    net.h.w = [[1.0]];
    net.out.w = [[1.0]];
    let mut g = EluWide::zeros();
    // z = 100: exp(100) overflows f32, but the branch taken is z itself.
    let l = net.backward(&[100.0], &[0.0], &mut g);
    assert!(l.is_finite());
    assert!(g.params().iter().all(|v| v.is_finite()), "{:?}", g.params());
    assert_eq!(g.h.b[0], 2.0 * 100.0);
}
