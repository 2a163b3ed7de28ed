//! The cost model: estimated floating-point operations.

use egg::{EGraph, Id, Language};

use crate::ir::{shape_of, Dep, Shape, Tensor, TensorAnalysis};

/// What one transcendental function (`exp`, `ln`, `tanh`, ...) is charged, in FLOPs. Measured
/// libm `expf` costs about as much as 15-25 multiply-adds.
pub const TRANSCENDENTAL_FLOPS: usize = 20;

/// What one division is charged, in FLOPs (its latency is several multiplications).
pub const DIVISION_FLOPS: usize = 4;

/// FLOPs of one node, given the shapes of its children and of its result.
pub fn node_flops(node: &Tensor, out: Shape, child: impl Fn(Id) -> Option<Shape>) -> usize {
    let n = out.len();
    let len = |id: Id| child(id).map_or(1, |s| s.len());
    match node {
        Tensor::Num(_) | Tensor::Symbol(_) => 0,
        Tensor::Transpose(_) | Tensor::Fill(_) => 0,
        Tensor::Add(_)
        | Tensor::Sub(_)
        | Tensor::Mul(_)
        | Tensor::Neg(_)
        | Tensor::Relu(_)
        | Tensor::Step(_)
        | Tensor::Abs(_)
        | Tensor::Sign(_)
        | Tensor::LeakyRelu(_)
        | Tensor::LeakyStep(_)
        | Tensor::Gt(_)
        | Tensor::Ge(_)
        | Tensor::Select(_)
        | Tensor::Outer(_) => n,
        // A square root is about as slow as a division.
        Tensor::Sqrt(_) => DIVISION_FLOPS * n,
        Tensor::MaxMask(a) => len(*a),
        Tensor::Div(_) => DIVISION_FLOPS * n,
        Tensor::Sigmoid(_)
        | Tensor::Tanh(_)
        | Tensor::Softplus(_)
        | Tensor::Exp(_)
        | Tensor::Cosh(_)
        | Tensor::Ln(_) => TRANSCENDENTAL_FLOPS * n,
        Tensor::Softmax(a) | Tensor::LogSumExp(a) => (TRANSCENDENTAL_FLOPS + 3) * len(*a),
        Tensor::Sum(a) => len(*a),
        Tensor::MatVec([m, _]) => 2 * len(*m),
        Tensor::MatMul([a, b]) => 2 * len(*a) * child(*b).map_or(1, |s| s.dims()[1]),
    }
}

/// How many samples share one computation of parameter-only work (such as `W3 W2 W1` of a
/// collapsed stack) in the function being extracted; the cost model charges that work
/// `1 / samples` of its FLOPs.
///
/// Each generated function is extracted with the amortization it really has:
/// [`Amortization::PER_CALL`] for the one-sample functions (`forward`, `loss`, `backward`
/// recompute everything on every call), [`Amortization::BATCH`] for the batch functions and
/// the trainers (parameter-only work once per call, over a batch), and
/// [`Amortization::PREPARED`] for `prepare()` (once, then any number of samples).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amortization(pub usize);

impl Amortization {
    /// The one-sample functions: parameter-only work is paid in full on every call.
    pub const PER_CALL: Amortization = Amortization(1);
    /// The batch functions: parameter-only work is spread over a batch, taken as 32 samples
    /// (a common minibatch; a batch function cannot know its callers' batch sizes).
    pub const BATCH: Amortization = Amortization(32);
    /// `prepare()`: parameter-only work is done once and read by every later sample; it is
    /// charged 2^-20 of its FLOPs, so it weighs only against very little per-sample work.
    pub const PREPARED: Amortization = Amortization(1 << 20);
}

/// Costs are in thousandths of a FLOP, so that amortized parameter-only work is not rounded up
/// to a whole FLOP per sample.
pub const COST_UNIT: usize = 1000;

/// The cost of one e-node in the class `class`, not counting its operands: its FLOPs per sample
/// (in [`COST_UNIT`]s), amortized by `amortization` if the class depends on parameters only.
/// Every operation costs something, so that doing nothing is always cheaper than an identity
/// operation.
pub fn own_cost(
    egraph: &EGraph<Tensor, TensorAnalysis>,
    class: Id,
    enode: &Tensor,
    amortization: Amortization,
) -> usize {
    if enode.is_leaf() {
        return 0;
    }
    let child = |id: Id| egraph[id].data.shape;
    let out = shape_of(
        enode,
        child,
        |id| egraph[id].data.constant.map(|c| c.into_inner()),
        &egraph.analysis.symbols,
    )
    .unwrap_or(Shape::Scalar);
    let cost = node_flops(enode, out, child).max(1) * COST_UNIT;
    if egraph[class].data.dep > Dep::Param {
        cost
    } else if amortization == Amortization::PER_CALL {
        // Paid in full, and one unit more: at equal FLOPs the greedy extraction should keep
        // the per-sample form, whose values the declaration shares between its uses
        // (`(W x + b) + 3` reuses `W x + b`; `W x + (b + 3)` does not).
        cost + 1
    } else {
        cost.div_ceil(amortization.0.max(1))
    }
}
