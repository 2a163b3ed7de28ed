//! The generated code against the interpreted baseline (`InterpNet`), an independent
//! implementation of the same math: for nets covering every activation and every loss, with the
//! same parameters (copied through the shared flat layout), forward, loss and every gradient
//! component agree on random inputs.
//!
//! Tolerance: `|a - b| <= REL * max(|a|, |b|) + ABS` with `REL = 1e-10` and an absolute floor
//! `ABS = 1e-12` (for components that are sums with cancellation, such as `p - y` of a softmax,
//! where the two implementations round differently near zero).

mod common;

use common::{agree as check, interp, Target};
use symnet::{network, Activation, Loss};

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

/// A generated network and its interpreted twin, built from the same catalog entries or
/// formulas, checked to agree.
macro_rules! agree {
    ($test:ident, $target:ident, { $($body:tt)* }, $inputs:expr, [$(($w:expr, $act:expr)),*], $loss:expr) => {
        #[test]
        fn $test() {
            network! { #[symnet(allow_domain)] pub struct Net<f64> { $($body)* } }
            let layers: Vec<(usize, Activation)> = vec![$(($w, $act.unwrap())),*];
            let twin = interp($inputs, &layers, $loss.unwrap());
            check::<Net>(stringify!($test), twin, Target::$target);
        }
    };
}

fn f(src: &str) -> Result<Activation, symnet::InterpError> {
    Activation::formula(src)
}
fn id() -> Result<Activation, symnet::InterpError> {
    Ok(Identity)
}
fn act(a: Activation) -> Result<Activation, symnet::InterpError> {
    Ok(a)
}
fn mse() -> Result<Loss, symnet::InterpError> {
    Ok(Loss::Mse)
}

// Formulas written by the user, each parsed by both implementations.
agree!(formula_silu, Real, { input: 3, h: dense(5) -> |x| x * sigmoid(x), out: dense(2), loss: mse }, 3, [(5, f("|x| x * sigmoid(x)")), (2, id())], mse());
agree!(formula_piecewise, Real, { input: 3, h: dense(5) -> |x| if x > 0.0 { x } else { 0.01 * x }, out: dense(2), loss: mse }, 3, [(5, f("|x| if x > 0.0 { x } else { 0.01 * x }")), (2, id())], mse());
agree!(formula_isru, Real, { input: 3, h: dense(5) -> |x| x / sqrt(1.0 + x * x), out: dense(2), loss: mse }, 3, [(5, f("|x| x / sqrt(1.0 + x * x)")), (2, id())], mse());
agree!(formula_cubic, Real, { input: 3, h: dense(5) -> |x| powi(x, 3) - x, out: dense(2), loss: mse }, 3, [(5, f("|x| powi(x, 3) - x")), (2, id())], mse());
agree!(formula_hard_tanh, Real, { input: 3, h: dense(5) -> |x| min(max(x, -1.0), 1.0), out: dense(2), loss: mse }, 3, [(5, f("|x| min(max(x, -1.0), 1.0)")), (2, id())], mse());
agree!(formula_catalog_call, Real, { input: 3, h: dense(5) -> |x| elu(x, 0.5) + 0.1 * x, out: dense(2), loss: mse }, 3, [(5, f("|x| elu(x, 0.5) + 0.1 * x")), (2, id())], mse());
agree!(formula_log_cosh, Real, { input: 3, h: dense(5) -> tanh, out: dense(2), loss: |yhat, y| mean(ln(cosh(yhat - y))) }, 3, [(5, act(Tanh)), (2, id())], Loss::formula("|yhat, y| mean(ln(cosh(yhat - y)))"));
agree!(formula_worst_output, Real, { input: 3, h: dense(5) -> tanh, out: dense(3), loss: |yhat, y| max(abs(yhat - y)) }, 3, [(5, act(Tanh)), (3, id())], Loss::formula("|yhat, y| max(abs(yhat - y))"));
agree!(formula_rmse, Real, { input: 3, h: dense(5) -> tanh, out: dense(2), loss: |yhat, y| sqrt(mean((yhat - y) * (yhat - y)) + 1e-6) }, 3, [(5, act(Tanh)), (2, id())], Loss::formula("|yhat, y| sqrt(mean((yhat - y) * (yhat - y)) + 1e-6)"));
agree!(formula_cross_entropy, OneHot, { input: 3, h: dense(5) -> tanh, out: dense(3) -> softmax, loss: |p, t| -sum(t * ln(p)) }, 3, [(5, act(Tanh)), (3, act(Softmax))], Loss::formula("|p, t| -sum(t * ln(p))"));
agree!(formula_binary_cross_entropy, Binary, { input: 3, h: dense(5) -> tanh, out: dense(2) -> sigmoid, loss: |yhat, y| -mean(y * ln(yhat) + (1.0 - y) * ln(1.0 - yhat)) }, 3, [(5, act(Tanh)), (2, act(Sigmoid))], Loss::formula("|yhat, y| -mean(y * ln(yhat) + (1.0 - y) * ln(1.0 - yhat))"));
