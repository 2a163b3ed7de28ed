//! The cost model: estimated floating-point operations.

use egg::{CostFunction, EGraph, Id, Language};

use crate::ir::{shape_of, Shape, Tensor, TensorAnalysis};

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
        | Tensor::Outer(_) => n,
        Tensor::Div(_) => DIVISION_FLOPS * n,
        Tensor::Sigmoid(_)
        | Tensor::Tanh(_)
        | Tensor::Softplus(_)
        | Tensor::Exp(_)
        | Tensor::Ln(_) => TRANSCENDENTAL_FLOPS * n,
        Tensor::Softmax(a) | Tensor::LogSumExp(a) => (TRANSCENDENTAL_FLOPS + 3) * len(*a),
        Tensor::Sum(a) => len(*a),
        Tensor::MatVec([m, _]) => 2 * len(*m),
        Tensor::MatMul([a, b]) => 2 * len(*a) * child(*b).map_or(1, |s| s.dims()[1]),
    }
}

/// Tree cost in FLOPs; every operation costs at least 1 so that no cycle is ever the cheapest.
pub struct FlopCost<'a> {
    egraph: &'a EGraph<Tensor, TensorAnalysis>,
}

impl<'a> FlopCost<'a> {
    /// A cost function reading shapes from `egraph`.
    pub fn new(egraph: &'a EGraph<Tensor, TensorAnalysis>) -> Self {
        Self { egraph }
    }
}

impl CostFunction<Tensor> for FlopCost<'_> {
    type Cost = usize;

    fn cost<C>(&mut self, enode: &Tensor, mut costs: C) -> usize
    where
        C: FnMut(Id) -> usize,
    {
        let eg = self.egraph;
        let child = |id: Id| eg[id].data.shape;
        let out = shape_of(
            enode,
            child,
            |id| eg[id].data.constant.map(|c| c.into_inner()),
            &eg.analysis.symbols,
        )
        .unwrap_or(Shape::Scalar);
        let own = if enode.is_leaf() {
            0
        } else {
            node_flops(enode, out, child).max(1)
        };
        enode.fold(own, |acc, id| acc.saturating_add(costs(id)))
    }
}
