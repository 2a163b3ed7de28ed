//! Lowering: a checked network becomes one [`RecExpr`] holding the forward pass, the latent
//! representation and the loss, with the loss written in its numerically stable form.

use std::collections::HashMap;

use egg::{Id, RecExpr, Symbol};

use super::{
    bias_symbol, sample_symbol, seed_symbol, target_symbol, weight_symbol, Dep, Shape, Tensor,
};
use crate::check::Net;
use crate::formula::{DomainCheck, Lowerer};

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
    /// Whether an activation's formula divides, takes a logarithm or a square root (then the
    /// emitted programs may too; without such an activation, a fused loss must not).
    pub activations_divide: bool,
    /// The arguments of `ln`, `sqrt` and divisions in the user's formulas, for the range check.
    pub domain: Vec<DomainCheck>,
}

/// Lowers `net`.
///
/// Layer `k` is `a_k = act_k(W_k a_(k-1) + b_k)` with `a_0 = x`, and the loss is its formula of
/// the output and `y`: the catalog's formulas for built-ins, the user's otherwise, lowered by
/// [`formula::Lowerer`](crate::formula::Lowerer). The losses are lowered as the textbook (and
/// the catalog) writes them: `-mean(y ln yhat + (1 - y) ln(1 - yhat))` for
/// `binary_cross_entropy`, `-sum(y ln yhat)` for `cross_entropy`; the rules of
/// [`stability`](crate::simplify::rules::stability) rewrite them into `(1/m) sum(softplus(z) -
/// y z)` and `logsumexp(z) - sum(y z)` (for target rows that sum to 1), which are finite for
/// any logit.
pub fn lower(net: &Net) -> syn::Result<Lowered> {
    let mut expr = RecExpr::default();
    let mut symbols = HashMap::new();
    symbols.insert(sample_symbol(), (Shape::Vector(net.inputs), Dep::Sample));
    symbols.insert(target_symbol(), (Shape::Vector(net.outputs()), Dep::Sample));
    symbols.insert(seed_symbol(), (Shape::Scalar, Dep::Sample));

    let mut a = expr.add(Tensor::Symbol(sample_symbol()));
    let mut latent = a;
    let mut domain = Vec::new();
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
        let act = &layer.activation;
        a = if act.is("softmax") {
            expr.add(Tensor::Softmax(z))
        } else {
            let names: Vec<&str> = act
                .entry
                .map(|e| e.params.iter().map(|p| p.name).collect())
                .unwrap_or_default();
            let mut l = Lowerer::new(&mut expr, net.outputs()).user(act.entry.is_none());
            let a = l.activation(&act.formula, &names, &act.params, z)?;
            domain.extend(l.domain);
            a
        };
    }
    let activations_divide = expr
        .as_ref()
        .iter()
        .any(|n| matches!(n, Tensor::Div(_) | Tensor::Ln(_) | Tensor::Sqrt(_)));
    let output = a;
    let y = expr.add(Tensor::Symbol(target_symbol()));
    let names: Vec<&str> = net
        .loss
        .entry
        .map(|e| e.params.iter().map(|p| p.name).collect())
        .unwrap_or_default();
    let mut l = Lowerer::new(&mut expr, net.outputs()).user(net.loss.entry.is_none());
    let loss = l.loss(&net.loss.formula, &names, &net.loss.params, output, y)?;
    domain.extend(l.domain);
    Ok(Lowered {
        expr,
        output,
        latent,
        loss,
        symbols,
        activations_divide,
        domain,
    })
}
