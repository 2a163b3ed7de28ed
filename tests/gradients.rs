//! Every gradient the macro emits, checked against central finite differences of the loss: for
//! every activation (hidden and output) and every loss it is compatible with, in f64 and f32;
//! and the batch variants against the mean of per-sample results.

mod common;

use common::{gradients, random_net, sample, Target};
use symnet::{network, Network, Scalar, SplitMix64};

/// f64: finite-difference step, and the tolerance `|g - fd| <= REL (|g| + |fd|) + ABS`.
/// The step's truncation and rounding errors are both about 1e-11 here, far below the bound.
const H64: f64 = 1e-5;
const REL64: f64 = 1e-6;
const ABS64: f64 = 1e-9;

/// f32: a central difference in f32 has rounding error ~ eps_f32 L / h, so the step is larger
/// and the tolerance looser: 1% relative plus 2e-3 absolute.
const H32: f64 = 3e-3;
const REL32: f64 = 1e-2;
const ABS32: f64 = 2e-3;

fn check<N: Network>(name: &str, target: Target, h: f64, rel: f64, abs: f64) {
    let mut rng = SplitMix64::new(0x5EED);
    let mut any_nonzero = false;
    for trial in 0..4u64 {
        let net: N = random_net(1000 + trial);
        let (x, y) = sample::<N::Scalar>(&mut rng, N::INPUTS, N::OUTPUTS, target);
        let (analytic, numeric, loss) = gradients(&net, &x, &y, h);
        // Finite differences are only valid where the loss is smooth over [p - h, p + h]: a
        // relu or abs kink inside that interval makes the step-h and step-h/2 estimates
        // disagree. Such components are skipped, and there may be only a few of them.
        let (_, half, _) = gradients(&net, &x, &y, h / 2.0);
        assert!(loss.is_finite(), "{name}: loss {loss}");
        let direct = net.loss_slice(&x, &y).to_f64();
        assert!(
            (loss - direct).abs() <= 1e-6 * loss.abs().max(1.0),
            "{name}: backward's loss {loss} differs from loss() {direct}"
        );
        let mut kinks = 0;
        for (i, ((g, fd), fd2)) in analytic.iter().zip(&numeric).zip(&half).enumerate() {
            if (fd - fd2).abs() > rel * (fd.abs() + fd2.abs()) + abs {
                kinks += 1;
                continue;
            }
            assert!(
                (g - fd).abs() <= rel * (g.abs() + fd.abs()) + abs,
                "{name} (trial {trial}): parameter {i}: backward {g:e}, finite differences {fd:e}"
            );
        }
        assert!(
            kinks <= (N::PARAMS / 50).max(2),
            "{name} (trial {trial}): {kinks} of {} components not smooth",
            N::PARAMS
        );
        any_nonzero |= analytic.iter().any(|g| g.abs() > 1e-6);
    }
    // A gradient check that passes with an all-zero gradient would prove nothing.
    assert!(any_nonzero, "{name}: zero gradient in every trial");
}

/// Samples in the batch tests: two full chunks of 16 lanes (f32) or four of 8 (f64), and a
/// remainder handled one sample at a time.
const BATCH: usize = 37;

/// The batch variants equal the mean of the per-sample results.
fn check_batch<N: Network, const I: usize, const O: usize>(
    name: &str,
    target: Target,
    loss_batch: impl Fn(&N, &[[N::Scalar; I]], &[[N::Scalar; O]]) -> N::Scalar,
    backward_batch: impl Fn(&N, &[[N::Scalar; I]], &[[N::Scalar; O]], &mut N) -> N::Scalar,
    forward_batch: impl Fn(&N, &[[N::Scalar; I]], &mut [[N::Scalar; O]]),
    prepared_forward_batch: impl Fn(&N, &[[N::Scalar; I]], &mut [[N::Scalar; O]]),
) {
    let mut rng = SplitMix64::new(77);
    let net: N = random_net(5);
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for _ in 0..BATCH {
        let (x, y) = sample::<N::Scalar>(&mut rng, I, O, target);
        xs.push(<[N::Scalar; I]>::try_from(x).unwrap());
        ys.push(<[N::Scalar; O]>::try_from(y).unwrap());
    }
    let mut mean_grad = vec![0.0f64; N::PARAMS];
    let mut mean_loss = 0.0;
    for (x, y) in xs.iter().zip(&ys) {
        let mut g = N::zeros();
        mean_loss += net.backward_slice(x, y, N::Scalar::ONE, &mut g).to_f64() / BATCH as f64;
        for (m, gi) in mean_grad.iter_mut().zip(g.params()) {
            *m += gi.to_f64() / BATCH as f64;
        }
    }
    let tol = if N::Scalar::NAME == "f32" {
        1e-5
    } else {
        1e-13
    };
    let mut g = N::zeros();
    let l = backward_batch(&net, &xs, &ys, &mut g).to_f64();
    assert!(
        (l - mean_loss).abs() <= tol * mean_loss.abs().max(1.0),
        "{name}: batch loss"
    );
    assert!(
        (loss_batch(&net, &xs, &ys).to_f64() - mean_loss).abs() <= tol * mean_loss.abs().max(1.0),
        "{name}: loss_batch"
    );
    for (i, (a, b)) in g.params().iter().zip(&mean_grad).enumerate() {
        assert!(
            (a.to_f64() - b).abs() <= tol * b.abs().max(1.0),
            "{name}: batch gradient {i}: {a} vs {b}"
        );
    }
    // The batch forward pass and the prepared (input-major) one.
    for (what, f) in [
        (
            "forward_batch",
            &forward_batch as &dyn Fn(&N, &[[N::Scalar; I]], &mut [[N::Scalar; O]]),
        ),
        ("prepare().forward_batch", &prepared_forward_batch),
    ] {
        let mut out = vec![[N::Scalar::ZERO; O]; BATCH];
        f(&net, &xs, &mut out);
        for (x, o) in xs.iter().zip(&out) {
            let mut one = [N::Scalar::ZERO; O];
            net.forward_slice(x, &mut one);
            for (a, b) in o.iter().zip(&one) {
                let (a, b) = (a.to_f64(), b.to_f64());
                assert!(
                    (a - b).abs() <= tol * b.abs().max(1.0),
                    "{name}: {what} {a} vs {b}"
                );
            }
        }
    }
}

/// A case whose hidden activation is a formula: the gradient checks, and agreement with the
/// interpreter, which parses the same formula text on its own.
macro_rules! act_formula_case {
    ($test:ident, |$x:ident| $($f:tt)*) => {
        #[allow(non_snake_case)]
        mod $test {
            use super::*;
            case!(grads, Real, { input: 3, h: dense(5) -> |$x| $($f)*, out: dense(2), loss: mse });

            #[test]
            fn agrees_with_the_interpreter() {
                network! { #[symnet(allow_domain)] pub struct Net<f64> { input: 3, h: dense(5) -> |$x| $($f)*, out: dense(2), loss: mse } }
                let act = symnet::Activation::formula(stringify!(|$x| $($f)*)).unwrap();
                let twin = common::interp(3, &[(5, act), (2, symnet::Activation::Identity)], symnet::Loss::Mse);
                common::agree::<Net>(stringify!($test), twin, Target::Real);
            }
        }
    };
}

/// A case whose loss is a formula, over an output with the given activation.
macro_rules! loss_formula_case {
    ($test:ident, $target:ident, $width:literal, $out:ident, |$a:ident, $b:ident| $($f:tt)*) => {
        #[allow(non_snake_case)]
        mod $test {
            use super::*;
            case!(grads, $target, { input: 3, h: dense(5) -> tanh, out: dense($width) -> $out, loss: |$a, $b| $($f)* });

            #[test]
            fn agrees_with_the_interpreter() {
                network! { #[symnet(allow_domain)] pub struct Net<f64> { input: 3, h: dense(5) -> tanh, out: dense($width) -> $out, loss: |$a, $b| $($f)* } }
                let out = symnet::Activation::builtin(stringify!($out), &[]).unwrap();
                let loss = symnet::Loss::formula(stringify!(|$a, $b| $($f)*)).unwrap();
                let twin = common::interp(3, &[(5, symnet::Activation::Tanh), ($width, out)], loss);
                common::agree::<Net>(stringify!($test), twin, Target::$target);
            }
        }
    };
}

/// Declares a network over f64 and f32 and tests both.
macro_rules! case {
    ($test:ident, $target:ident, { $($body:tt)* }) => {
        #[allow(non_snake_case)]
        mod $test {
            use super::*;
            network! { #[symnet(allow_collapse)] pub struct N64<f64> { $($body)* } }
            network! { #[symnet(allow_collapse)] pub struct N32<f32> { $($body)* } }

            #[test]
            fn f64_backward_matches_finite_differences() {
                check::<N64>(concat!(stringify!($test), " f64"), Target::$target, H64, REL64, ABS64);
            }

            #[test]
            fn f32_backward_matches_finite_differences() {
                check::<N32>(concat!(stringify!($test), " f32"), Target::$target, H32, REL32, ABS32);
            }

            #[test]
            fn batch_is_the_mean_of_samples() {
                check_batch::<N64, { N64::INPUTS }, { N64::OUTPUTS }>(
                    stringify!($test), Target::$target, N64::loss_batch, N64::backward_batch, N64::forward_batch,
                    |n, xs, out| n.prepare().forward_batch(xs, out),
                );
                check_batch::<N32, { N32::INPUTS }, { N32::OUTPUTS }>(
                    stringify!($test), Target::$target, N32::loss_batch, N32::backward_batch, N32::forward_batch,
                    |n, xs, out| n.prepare().forward_batch(xs, out),
                );
            }
        }
    };
}

/// Every hidden activation with every regression loss (the output uses the same activation),
/// and with both classification losses.
macro_rules! activation_cases {
    ($($act:ident => ($($spec:tt)*);)*) => {
        $(
            #[allow(non_snake_case)]
            mod $act {
                use super::*;
                case!(mse, Real, { input: 3, h1: dense(5) -> $($spec)*, h2: dense(4) -> $($spec)*, out: dense(2) -> $($spec)*, loss: mse });
                case!(mae, Real, { input: 3, h1: dense(5) -> $($spec)*, out: dense(3) -> $($spec)*, loss: mae });
                case!(gaussian_nll, Real, { input: 3, h1: dense(5) -> $($spec)*, out: dense(2) -> $($spec)*, loss: gaussian_nll(sigma = 0.7) });
                case!(binary_cross_entropy, Binary, { input: 3, h1: dense(5) -> $($spec)*, out: dense(2) -> sigmoid, loss: binary_cross_entropy });
                case!(cross_entropy, OneHot, { input: 3, h1: dense(5) -> $($spec)*, out: dense(4) -> softmax, loss: cross_entropy });
            }
        )*
    };
}

activation_cases! {
    identity => (identity);
    sigmoid => (sigmoid);
    tanh => (tanh);
    relu => (relu);
    leaky_relu => (leaky_relu(0.1));
    softplus => (softplus);
}

// Softmax is an output-only activation: with each regression loss too.
case!(softmax_mse, OneHot, { input: 3, h1: dense(5) -> tanh, out: dense(3) -> softmax, loss: mse });
case!(softmax_mae, OneHot, { input: 3, h1: dense(5) -> tanh, out: dense(3) -> softmax, loss: mae });
case!(softmax_gaussian_nll, OneHot, { input: 3, h1: dense(5) -> tanh, out: dense(3) -> softmax, loss: gaussian_nll(sigma = 2) });
// Implicit identity, a single layer, and a layer wide enough for the emitter's loops.
case!(implicit_identity, Real, { input: 2, h: dense(3), out: dense(1), loss: mse });
case!(single_layer_logistic, Binary, { input: 4, out: dense(1) -> sigmoid, loss: binary_cross_entropy });
case!(wide_loops, OneHot, { input: 20, h1: dense(40) -> relu, h2: dense(24) -> tanh, out: dense(10) -> softmax, loss: cross_entropy });
case!(wide_regression, Real, { input: 17, h1: dense(33) -> softplus, out: dense(9) -> sigmoid, loss: gaussian_nll(sigma = 1.5) });

#[test]
fn f32_and_f64_agree() {
    network! { struct A<f64> { input: 3, h: dense(6) -> tanh, out: dense(3) -> softmax, loss: cross_entropy } }
    network! { struct B<f32> { input: 3, h: dense(6) -> tanh, out: dense(3) -> softmax, loss: cross_entropy } }
    let a: A = random_net(3);
    let mut b = B::zeros();
    for (pb, pa) in b.params_mut().iter_mut().zip(a.params()) {
        *pb = *pa as f32;
    }
    let x = [0.3, -0.2, 0.9];
    let y = [0.0, 1.0, 0.0];
    let (mut ga, mut gb) = (A::zeros(), B::zeros());
    let la = a.backward(&x, &y, &mut ga);
    let lb = b.backward(&x.map(|v| v as f32), &y.map(|v| v as f32), &mut gb);
    assert!((la - lb as f64).abs() < 1e-5);
    for (p, q) in ga.params().iter().zip(gb.params()) {
        assert!((p - *q as f64).abs() < 1e-5, "{p} vs {q}");
    }
    assert!(f64::NAME == "f64");
}

// Stacks of linear layers, which the compiler collapses into one affine map for inference;
// training stays exact for the declared parameters.
case!(collapsed_stack, Real, { input: 2, a: dense(16), b: dense(16), c: dense(1), loss: mse });
case!(collapsed_stack_in_the_middle, OneHot, { input: 4, a: dense(6) -> tanh, b: dense(5), c: dense(5), d: dense(3) -> softmax, loss: cross_entropy });

// The catalog's other activations: each in a hidden layer under a regression and a
// classification loss, and against the interpreter's evaluation of the same catalog entry.
macro_rules! catalog_activation_cases {
    ($($act:ident => ($($spec:tt)*) = $name:literal [$($p:expr),*];)*) => {
        $(
            #[allow(non_snake_case)]
            mod $act {
                use super::*;
                case!(mse, Real, { input: 3, h1: dense(5) -> $($spec)*, out: dense(2) -> $($spec)*, loss: mse });
                case!(cross_entropy, OneHot, { input: 3, h1: dense(5) -> $($spec)*, out: dense(3) -> softmax, loss: cross_entropy });

                #[test]
                fn agrees_with_the_interpreter() {
                    network! { pub struct Net<f64> { input: 3, h1: dense(5) -> $($spec)*, out: dense(2) -> $($spec)*, loss: mse } }
                    let a = symnet::Activation::builtin($name, &[$($p),*]).unwrap();
                    let twin = common::interp(3, &[(5, a.clone()), (2, a)], symnet::Loss::Mse);
                    common::agree::<Net>(stringify!($act), twin, Target::Real);
                }
            }
        )*
    };
}

catalog_activation_cases! {
    gelu => (gelu) = "gelu" [];
    silu => (silu) = "silu" [];
    swish => (swish) = "swish" [];
    elu => (elu) = "elu" [];
    elu_half => (elu(alpha = 0.5)) = "elu" [0.5];
    selu => (selu) = "selu" [];
    mish => (mish) = "mish" [];
    softsign => (softsign) = "softsign" [];
    hardswish => (hardswish) = "hardswish" [];
}

// The catalog's other losses, likewise.
macro_rules! catalog_loss_cases {
    ($($test:ident => ($($spec:tt)*) = $name:literal [$($p:expr),*];)*) => {
        $(
            #[allow(non_snake_case)]
            mod $test {
                use super::*;
                case!(tanh_hidden, Real, { input: 3, h: dense(5) -> tanh, out: dense(3), loss: $($spec)* });

                #[test]
                fn agrees_with_the_interpreter() {
                    network! { pub struct Net<f64> { input: 3, h: dense(5) -> tanh, out: dense(3), loss: $($spec)* } }
                    let twin = common::interp(
                        3,
                        &[(5, symnet::Activation::Tanh), (3, symnet::Activation::Identity)],
                        symnet::Loss::builtin($name, &[$($p),*]).unwrap(),
                    );
                    common::agree::<Net>(stringify!($test), twin, Target::Real);
                }
            }
        )*
    };
}

catalog_loss_cases! {
    huber => (huber) = "huber" [];
    huber_half => (huber(delta = 0.5)) = "huber" [0.5];
    log_cosh => (log_cosh) = "log_cosh" [];
    quantile_90 => (quantile(0.9)) = "quantile" [0.9];
    quantile_median => (quantile(tau = 0.5)) = "quantile" [0.5];
    poisson_nll => (poisson_nll) = "poisson_nll" [];
}

// Formulas written in the declaration: activations...
act_formula_case!(f_silu_by_hand, |x| x * sigmoid(x));
act_formula_case!(f_mish_by_hand, |x| x * tanh(softplus(x)));
act_formula_case!(f_logistic_by_hand, |x| 1.0 / (1.0 + exp(-x)));
act_formula_case!(f_leaky_piecewise, |x| if x > 0.0 { x } else { 0.01 * x });
act_formula_case!(f_signed_square, |x| if x >= 0.0 { x * x } else { -x * x });
// Affine formulas: the layer joins a chain of linear maps, with a scalar added along it.
act_formula_case!(f_affine_shift, |x| x + 1.0);
act_formula_case!(f_affine_scale_shift, |x| 2.0 * x - 1.0);
act_formula_case!(f_max_leaky, |x| max(x, 0.1 * x));
act_formula_case!(f_hard_tanh, |x| min(max(x, -1.0), 1.0));
act_formula_case!(f_softsign_by_hand, |x| x / (1.0 + abs(x)));
act_formula_case!(f_isru, |x| x / sqrt(1.0 + x * x));
act_formula_case!(f_softplus_by_hand, |x| ln(1.0 + exp(x)));
act_formula_case!(f_cubic, |x| powi(x, 3) - x);
act_formula_case!(f_negative_power, |x| powi(1.0 + x * x, -1));
act_formula_case!(f_half_gelu, |x| gelu(x) * 0.5);
act_formula_case!(f_elu_plus_linear, |x| elu(x, 0.5) + 0.1 * x);
act_formula_case!(f_tanh_cosh, |x| tanh(x) * cosh(0.5 * x));
act_formula_case!(f_gaussian_bump, |x| exp(-x * x));
act_formula_case!(f_named_argument, |z| sigmoid(2.0 * z) * z);
act_formula_case!(f_nested_if, |x| if x > 1.0 {
    1.0
} else {
    if x < -1.0 {
        -1.0
    } else {
        x
    }
});
act_formula_case!(f_catalog_sum, |x| softsign(x) + relu(x));
act_formula_case!(f_gelu_sigmoid_form, |x| x * sigmoid(1.702 * x));

// ... and losses.
loss_formula_case!(f_log_cosh_by_hand, Real, 2, identity, |yhat, y| mean(ln(
    cosh(yhat - y)
)));
loss_formula_case!(f_bce_by_hand, Binary, 2, sigmoid, |yhat, y| -mean(
    y * ln(yhat) + (1.0 - y) * ln(1.0 - yhat)
));
loss_formula_case!(f_sum_over_n, Real, 2, identity, |yhat, y| sum(
    (yhat - y) * (yhat - y)
) / n);
loss_formula_case!(f_huber_by_hand, Real, 2, identity, |yhat, y| mean(
    if abs(yhat - y) <= 0.5 {
        0.5 * powi(yhat - y, 2)
    } else {
        0.5 * (abs(yhat - y) - 0.25)
    }
));
loss_formula_case!(f_worst_output, Real, 3, identity, |yhat, y| max(abs(
    yhat - y
)));
loss_formula_case!(f_pinball_by_hand, Real, 2, identity, |yhat, y| mean(max(
    0.9 * (y - yhat),
    -0.1 * (y - yhat)
)));
loss_formula_case!(f_rmse, Real, 2, identity, |yhat, y| sqrt(
    mean((yhat - y) * (yhat - y)) + 1e-6
));
loss_formula_case!(f_poisson_by_hand, Real, 2, identity, |yhat, y| mean(
    exp(yhat) - y * yhat
));
loss_formula_case!(f_ce_by_hand, OneHot, 3, softmax, |p, t| -sum(t * ln(p)));
loss_formula_case!(f_mixed, Real, 2, identity, |yhat, y| mean(abs(yhat - y))
    + 0.1 * mean((yhat - y) * (yhat - y)));
loss_formula_case!(f_quartic, Real, 2, identity, |yhat, y| sum(powi(
    yhat - y,
    4
)) * 0.25);
loss_formula_case!(f_smooth_abs, Real, 2, identity, |yhat, y| mean(
    softplus(yhat - y) + softplus(y - yhat)
));

/// The suite covers the whole catalog: every activation and loss appears in a case above, so
/// a new catalog entry without a gradient check fails here.
#[test]
fn every_catalog_entry_has_a_gradient_check() {
    let src = include_str!("gradients.rs");
    let cases = &src[..src
        .find("fn every_catalog_entry_has_a_gradient_check")
        .unwrap()];
    for a in symnet::catalog::ACTIVATIONS {
        for name in std::iter::once(a.name).chain(a.aliases.iter().copied()) {
            assert!(
                cases.contains(&format!("-> {name}")) || cases.contains(&format!("({name}")),
                "no gradient check for activation `{name}`"
            );
        }
    }
    for l in symnet::catalog::LOSSES {
        assert!(
            cases.contains(&format!("loss: {}", l.name))
                || cases.contains(&format!("=> ({}", l.name)),
            "no gradient check for loss `{}`",
            l.name
        );
    }
}

// Weight penalties: parameter-only terms of the loss, their gradients checked like the rest
// (the batch check compares backward_batch, which adds them once per batch, with the mean of
// per-sample gradients, which include them every time).
case!(l2_penalty, OneHot, { input: 3, h: dense(5) -> tanh, out: dense(3) -> softmax, loss: cross_entropy + l2(0.01) });
case!(l1_and_l2_penalties, Real, { input: 3, h: dense(5) -> relu, out: dense(2), loss: mse + l1(0.01) + l2(1e-3) });
