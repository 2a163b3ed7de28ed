//! The generated code against the interpreted baseline (`InterpNet`), an independent
//! implementation of the same math: for nets covering every activation and every loss, with the
//! same parameters (copied through the shared flat layout), forward, loss and every gradient
//! component agree on random inputs.
//!
//! Tolerance: `|a - b| <= REL * max(|a|, |b|) + ABS` with `REL = 1e-10` and an absolute floor
//! `ABS = 1e-12` (for components that are sums with cancellation, such as `p - y` of a softmax,
//! where the two implementations round differently near zero).

mod common;

use common::{random_net, sample, Target};
use symnet::{network, Activation, InterpNet, Loss, Network, SplitMix64};

const REL: f64 = 1e-10;
const ABS: f64 = 1e-12;
const TRIALS: u64 = 6;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= REL * a.abs().max(b.abs()) + ABS
}

/// Builds the interpreted twin of a declaration.
fn interp(inputs: usize, layers: &[(usize, Activation)], loss: Loss) -> InterpNet<f64> {
    layers
        .iter()
        .fold(InterpNet::builder(inputs), |b, (w, a)| {
            b.dense(*w, a.clone())
        })
        .loss(loss)
        .build()
        .unwrap()
}

fn check<N: Network<Scalar = f64>>(name: &str, mut twin: InterpNet<f64>, target: Target) {
    assert_eq!(twin.num_params(), N::PARAMS, "{name}: parameter count");
    assert_eq!(
        (twin.inputs(), twin.outputs()),
        (N::INPUTS, N::OUTPUTS),
        "{name}: widths"
    );
    let mut rng = SplitMix64::new(0xA11CE);
    let mut nonzero = 0;
    for trial in 0..TRIALS {
        let net: N = random_net(500 + trial);
        twin.params_mut().copy_from_slice(net.params());
        // Several samples per parameter draw.
        for s in 0..3 {
            let (x, y) = sample::<f64>(&mut rng, N::INPUTS, N::OUTPUTS, target);
            let at = format!("{name} (trial {trial}, sample {s})");

            let mut out = vec![0.0; N::OUTPUTS];
            net.forward_slice(&x, &mut out);
            let want = twin.forward(&x);
            for (j, (a, b)) in out.iter().zip(&want).enumerate() {
                assert!(
                    close(*a, *b),
                    "{at}: output {j}: generated {a:e}, interpreted {b:e}"
                );
            }

            let (l, lw) = (net.loss_slice(&x, &y), twin.loss(&x, &y));
            assert!(
                close(l, lw),
                "{at}: loss: generated {l:e}, interpreted {lw:e}"
            );

            let mut grad = N::zeros();
            let lb = net.backward_slice(&x, &y, 1.0, &mut grad);
            let mut gw = vec![0.0; twin.num_params()];
            let lbw = twin.backward(&x, &y, &mut gw);
            assert!(
                close(lb, lw) && close(lbw, lw),
                "{at}: backward's loss {lb:e} / {lbw:e} vs {lw:e}"
            );
            for (i, (a, b)) in grad.params().iter().zip(&gw).enumerate() {
                assert!(
                    close(*a, *b),
                    "{at}: d loss / d param {i}: generated {a:e}, interpreted {b:e}"
                );
                nonzero += usize::from(a.abs() > 1e-8);
            }

            // The scaled, accumulating form used by the trainers: grad += scale * dL/dtheta.
            let mut acc = N::zeros();
            acc.params_mut().fill(0.5);
            net.backward_slice(&x, &y, 0.25, &mut acc);
            let mut accw = vec![0.5; twin.num_params()];
            twin.backward_scaled(&x, &y, 0.25, &mut accw);
            for (i, (a, b)) in acc.params().iter().zip(&accw).enumerate() {
                assert!(
                    close(*a, *b),
                    "{at}: scaled gradient {i}: generated {a:e}, interpreted {b:e}"
                );
            }
        }
    }
    // Agreement on all-zero gradients would prove nothing.
    assert!(
        nonzero > N::PARAMS,
        "{name}: too few nonzero gradient components ({nonzero})"
    );
}

network! {
    pub struct SigTanhMse<f64> { input: 3, a: dense(5) -> sigmoid, b: dense(4) -> tanh, out: dense(2), loss: mse }
}
network! {
    pub struct ReluLeakyMae<f64> { input: 4, a: dense(6) -> relu, out: dense(3) -> leaky_relu(0.1), loss: mae }
}
network! {
    pub struct SoftplusTanhNll<f64> { input: 3, a: dense(4) -> softplus, out: dense(2) -> tanh, loss: gaussian_nll(sigma = 0.5) }
}
network! {
    pub struct LeakySigmoidBce<f64> { input: 5, a: dense(6) -> leaky_relu(0.2), out: dense(1) -> sigmoid, loss: binary_cross_entropy }
}
network! {
    pub struct MultiSigmoidBce<f64> { input: 3, a: dense(4) -> tanh, out: dense(3) -> sigmoid, loss: binary_cross_entropy }
}
network! {
    pub struct TanhReluSoftmaxCe<f64> { input: 4, a: dense(5) -> tanh, b: dense(4) -> relu, out: dense(3) -> softmax, loss: cross_entropy }
}
network! {
    pub struct SoftmaxOnly<f64> { input: 6, out: dense(4) -> softmax, loss: cross_entropy }
}
network! {
    /// An identity stack: the compiler may collapse it; the math must not change.
    #[symnet(allow_collapse)]
    pub struct IdentityStack<f64> { input: 4, a: dense(3), b: dense(5) -> identity, out: dense(2), loss: mse }
}
network! {
    pub struct SigmoidSoftplusMse<f64> { input: 2, a: dense(3) -> sigmoid, out: dense(2) -> softplus, loss: mse }
}
network! {
    pub struct ReluOutMae<f64> { input: 3, a: dense(4) -> softplus, out: dense(2) -> relu, loss: mae }
}
network! {
    pub struct SigmoidNll<f64> { input: 3, out: dense(3) -> sigmoid, loss: gaussian_nll(sigma = 2.0) }
}

use Activation::*;

#[test]
fn sigmoid_tanh_identity_mse() {
    let twin = interp(3, &[(5, Sigmoid), (4, Tanh), (2, Identity)], Loss::Mse);
    check::<SigTanhMse>("SigTanhMse", twin, Target::Real);
}

#[test]
fn relu_leaky_relu_mae() {
    let twin = interp(4, &[(6, Relu), (3, LeakyRelu(0.1))], Loss::Mae);
    check::<ReluLeakyMae>("ReluLeakyMae", twin, Target::Real);
}

#[test]
fn softplus_tanh_gaussian_nll() {
    let twin = interp(
        3,
        &[(4, Softplus), (2, Tanh)],
        Loss::GaussianNll { sigma: 0.5 },
    );
    check::<SoftplusTanhNll>("SoftplusTanhNll", twin, Target::Real);
}

#[test]
fn leaky_relu_sigmoid_bce() {
    let twin = interp(
        5,
        &[(6, LeakyRelu(0.2)), (1, Sigmoid)],
        Loss::BinaryCrossEntropy,
    );
    check::<LeakySigmoidBce>("LeakySigmoidBce", twin, Target::Binary);
}

#[test]
fn several_sigmoid_outputs_bce() {
    let twin = interp(3, &[(4, Tanh), (3, Sigmoid)], Loss::BinaryCrossEntropy);
    check::<MultiSigmoidBce>("MultiSigmoidBce", twin, Target::Binary);
}

#[test]
fn tanh_relu_softmax_cross_entropy() {
    let twin = interp(4, &[(5, Tanh), (4, Relu), (3, Softmax)], Loss::CrossEntropy);
    check::<TanhReluSoftmaxCe>("TanhReluSoftmaxCe", twin, Target::OneHot);
}

#[test]
fn softmax_regression() {
    let twin = interp(6, &[(4, Softmax)], Loss::CrossEntropy);
    check::<SoftmaxOnly>("SoftmaxOnly", twin, Target::OneHot);
}

#[test]
fn identity_stack_mse() {
    let twin = interp(4, &[(3, Identity), (5, Identity), (2, Identity)], Loss::Mse);
    check::<IdentityStack>("IdentityStack", twin, Target::Real);
}

#[test]
fn softplus_output_mse() {
    let twin = interp(2, &[(3, Sigmoid), (2, Softplus)], Loss::Mse);
    check::<SigmoidSoftplusMse>("SigmoidSoftplusMse", twin, Target::Real);
}

#[test]
fn relu_output_mae() {
    let twin = interp(3, &[(4, Softplus), (2, Relu)], Loss::Mae);
    check::<ReluOutMae>("ReluOutMae", twin, Target::Real);
}

#[test]
fn sigmoid_output_gaussian_nll() {
    let twin = interp(3, &[(3, Sigmoid)], Loss::GaussianNll { sigma: 2.0 });
    check::<SigmoidNll>("SigmoidNll", twin, Target::Real);
}

/// `InterpNet::init(seed)` documents the same initialization as the generated `init(seed)`.
#[test]
fn init_agrees() {
    let mut twin = interp(
        5,
        &[(6, LeakyRelu(0.2)), (1, Sigmoid)],
        Loss::BinaryCrossEntropy,
    );
    twin.init(11);
    assert_eq!(twin.params(), LeakySigmoidBce::init(11).params());
    let mut twin = interp(4, &[(5, Tanh), (4, Relu), (3, Softmax)], Loss::CrossEntropy);
    twin.init(12);
    assert_eq!(twin.params(), TanhReluSoftmaxCe::init(12).params());
}
