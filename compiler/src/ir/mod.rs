//! The tensor IR: an [`egg`] language over vectors and matrices, its shape and dependency
//! analysis, and the lowering of a checked [`Net`](crate::check::Net) into it.
//!
//! Terms are written as s-expressions, as in egg's own tests: `(+ (mv hidden.w x) hidden.b)` is
//! `W x + b` of the layer named `hidden`. Symbols name the parameters (`<layer>.w`,
//! `<layer>.b`), the sample (`x`, `y`) and the backward pass's scale (`seed`).

mod analysis;
mod eval;
mod lower;

pub use analysis::{range_of, shape_of, Data, Dep, Range, Shape, TensorAnalysis};
pub use eval::eval;
pub use lower::{lower, Lowered};

use egg::{define_language, Id, Symbol};
use ordered_float::NotNan;

/// A scalar constant in the IR.
pub type Constant = NotNan<f64>;

define_language! {
    /// The operations of the tensor IR.
    ///
    /// Elementwise binary operations (`+ - * /`) broadcast a scalar operand over a vector or
    /// matrix one. `mv` is matrix times vector, `mm` matrix times matrix, `T` transpose,
    /// `outer` the outer product of two vectors, `sum` the sum of a vector's elements,
    /// `(fill s n)` a vector of `n` copies of the scalar `s` (the adjoint of `sum`). `step` and
    /// `leaky_step` are the derivatives of `relu` and `leaky_relu`, `sign` that of `abs` (0 at
    /// 0). `softplus`, `softmax` and `logsumexp` are computed stably by the runtime.
    ///
    /// For formulas: `(gt a b)` and `(ge a b)` are masks (`1` where `a > b`, resp. `a >= b`,
    /// else `0`), `(select m a b)` is `a` where the mask `m` is nonzero, else `b` (elementwise,
    /// scalars broadcast); `min` and `max` of two values are selects. `(max_mask v)` is the
    /// one-hot mask of the first largest element of `v`, so that `max(v) = sum(v * mask)`.
    pub enum Tensor {
        "+" = Add([Id; 2]),
        "-" = Sub([Id; 2]),
        "*" = Mul([Id; 2]),
        "/" = Div([Id; 2]),
        "neg" = Neg(Id),
        "mv" = MatVec([Id; 2]),
        "mm" = MatMul([Id; 2]),
        "T" = Transpose(Id),
        "outer" = Outer([Id; 2]),
        "sum" = Sum(Id),
        "fill" = Fill([Id; 2]),
        "sigmoid" = Sigmoid(Id),
        "tanh" = Tanh(Id),
        "relu" = Relu(Id),
        "step" = Step(Id),
        "leaky_relu" = LeakyRelu([Id; 2]),
        "leaky_step" = LeakyStep([Id; 2]),
        "softplus" = Softplus(Id),
        "exp" = Exp(Id),
        "ln" = Ln(Id),
        "abs" = Abs(Id),
        "sign" = Sign(Id),
        "softmax" = Softmax(Id),
        "logsumexp" = LogSumExp(Id),
        "sqrt" = Sqrt(Id),
        "cosh" = Cosh(Id),
        "gt" = Gt([Id; 2]),
        "ge" = Ge([Id; 2]),
        "select" = Select([Id; 3]),
        "max_mask" = MaxMask(Id),
        Num(Constant),
        Symbol(Symbol),
    }
}

/// Builds a [`Tensor::Num`] node.
pub fn num(v: f64) -> Tensor {
    Tensor::Num(NotNan::new(v).expect("IR constants are never NaN"))
}

/// The symbol of the sample's input vector, `x`.
pub fn sample_symbol() -> Symbol {
    Symbol::from("x")
}

/// The symbol of the sample's target vector, `y`.
pub fn target_symbol() -> Symbol {
    Symbol::from("y")
}

/// The symbol of the backward pass's scale, `seed` (the adjoint of the loss).
pub fn seed_symbol() -> Symbol {
    Symbol::from("seed")
}

/// The symbol of layer `layer`'s weight matrix.
pub fn weight_symbol(layer: &str) -> Symbol {
    Symbol::from(format!("{layer}.w"))
}

/// The symbol of layer `layer`'s bias vector.
pub fn bias_symbol(layer: &str) -> Symbol {
    Symbol::from(format!("{layer}.b"))
}
