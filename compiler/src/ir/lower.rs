//! Lowering: a checked network becomes one [`RecExpr`] holding the forward pass, the latent
//! representation and the loss, with the loss written in its numerically stable form.

use std::collections::HashMap;

use egg::{Id, RecExpr, Symbol};

use super::{bias_symbol, num, weight_symbol, Dep, Shape, Tensor};
use crate::check::{Activation, Loss, Net};

/// The lowered network.
#[derive(Clone, Debug)]
pub struct Lowered {
    /// Every node of the forward pass and the loss.
    pub expr: RecExpr<Tensor>,
    /// The network's output `yhat`.
    pub output: Id,
    /// The input to the last layer (the latent representation; `x` for one layer).
    pub latent: Id,
    /// The loss of one sample (a scalar).
    pub loss: Id,
    /// Shape and dependency of every symbol.
    pub symbols: HashMap<Symbol, (Shape, Dep)>,
}

/// Lowers `net`.
///
/// Layer `k` is `a_k = act_k(W_k a_(k-1) + b_k)` with `a_0 = x`. The losses (per sample, `m`
/// outputs, `d = yhat - y`):
///
/// | loss | term |
/// |---|---|
/// | `mse` | `(1/m) sum(d * d)` |
/// | `mae` | `(1/m) sum(abs d)` |
/// | `gaussian_nll(sigma = s)` | `(m/2) ln(2 pi) + m ln s + (1 / (2 s^2)) sum(d * d)` |
/// | `binary_cross_entropy` | `-(1/m) sum(y ln yhat + (1 - y) ln(1 - yhat))`, `yhat = s(z)` |
/// | `cross_entropy` | `-sum(y ln yhat)`, `yhat = softmax(z)` |
///
/// The cross-entropies are lowered as the textbook writes them; the rules of
/// [`stability`](crate::simplify::rules::stability) rewrite them into `(1/m) sum(softplus(z) -
/// y z)` and `logsumexp(z) - sum(y z)` (for target rows that sum to 1), which are finite for
/// any logit, and the compiler refuses to emit a program that still takes a logarithm.
pub fn lower(net: &Net) -> Lowered {
    let mut expr = RecExpr::default();
    let mut symbols = HashMap::new();
    symbols.insert(Symbol::from("x"), (Shape::Vector(net.inputs), Dep::Sample));
    symbols.insert(
        Symbol::from("y"),
        (Shape::Vector(net.outputs()), Dep::Sample),
    );
    symbols.insert(Symbol::from("seed"), (Shape::Scalar, Dep::Sample));

    let mut a = expr.add(Tensor::Symbol("x".into()));
    let mut latent = a;
    for (k, layer) in net.layers.iter().enumerate() {
        let name = layer.name.to_string();
        let (ws, bs) = (weight_symbol(&name), bias_symbol(&name));
        symbols.insert(ws, (Shape::Matrix(layer.width, net.fan_in(k)), Dep::Param));
        symbols.insert(bs, (Shape::Vector(layer.width), Dep::Param));
        latent = a;
        let w = expr.add(Tensor::Symbol(ws));
        let b = expr.add(Tensor::Symbol(bs));
        let wx = expr.add(Tensor::MatVec([w, a]));
        let z = expr.add(Tensor::Add([wx, b]));
        a = match layer.activation {
            Activation::Identity => z,
            Activation::Sigmoid => expr.add(Tensor::Sigmoid(z)),
            Activation::Tanh => expr.add(Tensor::Tanh(z)),
            Activation::Relu => expr.add(Tensor::Relu(z)),
            Activation::LeakyRelu(alpha) => {
                let al = expr.add(num(alpha));
                expr.add(Tensor::LeakyRelu([z, al]))
            }
            Activation::Softplus => expr.add(Tensor::Softplus(z)),
            Activation::Softmax => expr.add(Tensor::Softmax(z)),
        };
    }
    let output = a;
    let m = net.outputs() as f64;
    let y = expr.add(Tensor::Symbol("y".into()));
    let sum_sq = |expr: &mut RecExpr<Tensor>| {
        let d = expr.add(Tensor::Sub([output, y]));
        let sq = expr.add(Tensor::Mul([d, d]));
        expr.add(Tensor::Sum(sq))
    };
    let loss = match net.loss {
        Loss::Mse => {
            let s = sum_sq(&mut expr);
            let k = expr.add(num(1.0 / m));
            expr.add(Tensor::Mul([k, s]))
        }
        Loss::Mae => {
            let d = expr.add(Tensor::Sub([output, y]));
            let ad = expr.add(Tensor::Abs(d));
            let s = expr.add(Tensor::Sum(ad));
            let k = expr.add(num(1.0 / m));
            expr.add(Tensor::Mul([k, s]))
        }
        Loss::GaussianNll { sigma } => {
            let s = sum_sq(&mut expr);
            let k = expr.add(num(1.0 / (2.0 * sigma * sigma)));
            let ks = expr.add(Tensor::Mul([k, s]));
            let c = 0.5 * m * (2.0 * std::f64::consts::PI).ln() + m * sigma.ln();
            let c = expr.add(num(c));
            expr.add(Tensor::Add([c, ks]))
        }
        Loss::BinaryCrossEntropy => {
            // The textbook form; the rules `ln-sigmoid`, `ln-one-minus-sigmoid`, ... turn it
            // into softplus(z) - y z, which is finite for any logit.
            let ln_p = expr.add(Tensor::Ln(output));
            let one = expr.add(num(1.0));
            let q = expr.add(Tensor::Sub([one, output]));
            let ln_q = expr.add(Tensor::Ln(q));
            let a = expr.add(Tensor::Mul([y, ln_p]));
            let ny = expr.add(Tensor::Sub([one, y]));
            let b = expr.add(Tensor::Mul([ny, ln_q]));
            let t = expr.add(Tensor::Add([a, b]));
            let s = expr.add(Tensor::Sum(t));
            let k = expr.add(num(-1.0 / m));
            expr.add(Tensor::Mul([k, s]))
        }
        Loss::CrossEntropy => {
            // The textbook form; `ln-softmax` turns it into logsumexp(z) - sum(y z).
            let ln_p = expr.add(Tensor::Ln(output));
            let t = expr.add(Tensor::Mul([y, ln_p]));
            let s = expr.add(Tensor::Sum(t));
            expr.add(Tensor::Neg(s))
        }
    };
    Lowered {
        expr,
        output,
        latent,
        loss,
        symbols,
    }
}
