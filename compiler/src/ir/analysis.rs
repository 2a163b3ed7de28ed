//! The e-class analysis: every class knows its shape, what it depends on, its value range, and
//! (for scalars) its constant value.

use std::collections::HashMap;

use egg::{Analysis, DidMerge, EGraph, Id, Language, Symbol};

use super::{num, Constant, Tensor};

/// The shape of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shape {
    /// A single number.
    Scalar,
    /// A vector of the given length.
    Vector(usize),
    /// A matrix with the given rows and columns.
    Matrix(usize, usize),
}

impl Shape {
    /// The number of elements.
    pub fn len(self) -> usize {
        match self {
            Shape::Scalar => 1,
            Shape::Vector(n) => n,
            Shape::Matrix(r, c) => r * c,
        }
    }

    /// Whether the tensor has no elements (never, for shapes the checker admits).
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The dimensions, outermost first (empty for a scalar).
    pub fn dims(self) -> Vec<usize> {
        match self {
            Shape::Scalar => vec![],
            Shape::Vector(n) => vec![n],
            Shape::Matrix(r, c) => vec![r, c],
        }
    }
}

/// What a value depends on, from least to most variable. The order matters: an e-class holds
/// the *least* variable dependency of its members, since they are all equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dep {
    /// A constant.
    Const,
    /// Parameters only: can be computed once per parameter update.
    Param,
    /// The sample (or the backward seed): computed per call.
    Sample,
}

/// What is known about the values of a class, elementwise. Used to make rewrites that divide
/// or cancel safe: `a s / s = a` needs `s != 0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Range {
    /// Nothing is known.
    Any,
    /// `>= 0` (`abs`, `relu`).
    NonNegative,
    /// `> 0` (`exp`, `softplus`, positive constants).
    Positive,
    /// In the open interval `(0, 1)` (`sigmoid`).
    Unit,
}

impl Range {
    /// Whether every value is nonzero.
    pub fn nonzero(self) -> bool {
        matches!(self, Range::Positive | Range::Unit)
    }

    /// The more precise of two facts about the same values.
    fn meet(self, other: Range) -> Range {
        self.max(other)
    }
}

/// The range of `node`'s values given its children's ranges (mathematical values: `sigmoid`
/// is in (0, 1) even where floating point rounds it to 0 or 1).
pub fn range_of(
    node: &Tensor,
    child: impl Fn(Id) -> Range,
    constant: impl Fn(Id) -> Option<f64>,
) -> Range {
    use Range::*;
    match node {
        Tensor::Num(c) if c.into_inner() > 0.0 => Positive,
        Tensor::Num(c) if c.into_inner() == 0.0 => NonNegative,
        Tensor::Sigmoid(_) => Unit,
        // softmax is positive; it is in (0, 1) only from two classes on (over one class it is
        // exactly 1), and the analysis does not see the length here.
        Tensor::Softmax(_) => Positive,
        Tensor::Exp(_) | Tensor::Softplus(_) => Positive,
        Tensor::Abs(_) | Tensor::Relu(_) | Tensor::Step(_) => NonNegative,
        Tensor::Gt(_) | Tensor::Ge(_) | Tensor::MaxMask(_) => NonNegative,
        // cosh >= 1.
        Tensor::Cosh(_) => Positive,
        Tensor::Sqrt(a) if child(*a).nonzero() => Positive,
        Tensor::Sqrt(_) => NonNegative,
        // What both branches have in common.
        Tensor::Select([_, a, b]) => match (child(*a), child(*b)) {
            (x, y) if x == y => x,
            (x, y) if x.nonzero() && y.nonzero() => Positive,
            (x, y) if x >= NonNegative && y >= NonNegative => NonNegative,
            _ => Any,
        },
        Tensor::Div([a, b]) if child(*a).nonzero() && child(*b).nonzero() => Positive,
        Tensor::Fill([s, _]) => child(*s),
        Tensor::Sub([a, b]) if constant(*a) == Some(1.0) && child(*b) == Unit => Unit,
        // a a >= 0.
        Tensor::Mul([a, b]) if a == b => match child(*a) {
            x if x.nonzero() => Positive,
            _ => NonNegative,
        },
        // A sum of non-negative (positive) terms is non-negative (positive).
        Tensor::Sum(a) if child(*a) >= NonNegative => match child(*a) {
            x if x.nonzero() => Positive,
            _ => NonNegative,
        },
        Tensor::Mul([a, b]) => match (child(*a), child(*b)) {
            (Unit, Unit) => Unit,
            (x, y) if x.nonzero() && y.nonzero() => Positive,
            (x, y) if x >= NonNegative && y >= NonNegative => NonNegative,
            _ => Any,
        },
        Tensor::Add([a, b]) => match (child(*a), child(*b)) {
            (x, y) if x >= NonNegative && y >= NonNegative && (x.nonzero() || y.nonzero()) => {
                Positive
            }
            (x, y) if x >= NonNegative && y >= NonNegative => NonNegative,
            _ => Any,
        },
        _ => Any,
    }
}

/// Per-class data.
#[derive(Clone, Debug, PartialEq)]
pub struct Data {
    /// What is known about the values.
    pub range: Range,
    /// The shape, or `None` if the class's members disagree (a compiler bug; reported).
    pub shape: Option<Shape>,
    /// The dependency.
    pub dep: Dep,
    /// The value, for scalar constants.
    pub constant: Option<Constant>,
}

/// The analysis: knows the shape and dependency of every symbol.
#[derive(Clone, Debug, Default)]
pub struct TensorAnalysis {
    /// Shape and dependency of each symbol.
    pub symbols: HashMap<Symbol, (Shape, Dep)>,
    /// Messages for shape mismatches found while building or merging (compiler bugs).
    pub conflicts: Vec<String>,
    /// Whether each target row sums to 1 (one-hot or a distribution), which is the contract
    /// of `cross_entropy`; it lets the rule `one-hot-target` replace `sum(y)` by 1.
    pub target_sums_to_one: bool,
}

/// The shape of `node` given its children's shapes, or an error message.
pub fn shape_of(
    node: &Tensor,
    child: impl Fn(Id) -> Option<Shape>,
    constant: impl Fn(Id) -> Option<f64>,
    symbols: &HashMap<Symbol, (Shape, Dep)>,
) -> Result<Shape, String> {
    use Shape::*;
    let get = |id: Id| child(id).ok_or_else(|| "child without a shape".to_string());
    let elementwise = |a: Shape, b: Shape| -> Result<Shape, String> {
        match (a, b) {
            (Scalar, s) | (s, Scalar) => Ok(s),
            (a, b) if a == b => Ok(a),
            (a, b) => Err(format!("elementwise operands of shapes {a:?} and {b:?}")),
        }
    };
    Ok(match node {
        Tensor::Add([a, b])
        | Tensor::Sub([a, b])
        | Tensor::Mul([a, b])
        | Tensor::Div([a, b])
        | Tensor::Gt([a, b])
        | Tensor::Ge([a, b]) => elementwise(get(*a)?, get(*b)?)?,
        Tensor::Select([m, a, b]) => elementwise(elementwise(get(*m)?, get(*a)?)?, get(*b)?)?,
        Tensor::LeakyRelu([a, alpha]) | Tensor::LeakyStep([a, alpha]) => {
            if get(*alpha)? != Scalar {
                return Err("leaky slope must be a scalar".into());
            }
            get(*a)?
        }
        Tensor::Neg(a)
        | Tensor::Sigmoid(a)
        | Tensor::Tanh(a)
        | Tensor::Relu(a)
        | Tensor::Step(a)
        | Tensor::Softplus(a)
        | Tensor::Exp(a)
        | Tensor::Ln(a)
        | Tensor::Abs(a)
        | Tensor::Sign(a)
        | Tensor::Sqrt(a)
        | Tensor::Cosh(a) => get(*a)?,
        Tensor::Softmax(a) | Tensor::MaxMask(a) => match get(*a)? {
            Vector(n) => Vector(n),
            s => return Err(format!("softmax or max mask of {s:?}")),
        },
        Tensor::LogSumExp(a) | Tensor::Sum(a) => match get(*a)? {
            Vector(_) => Scalar,
            s => return Err(format!("reduction of {s:?}")),
        },
        Tensor::MatVec([m, v]) => match (get(*m)?, get(*v)?) {
            (Matrix(r, c), Vector(n)) if c == n => Vector(r),
            (a, b) => return Err(format!("mv of {a:?} and {b:?}")),
        },
        Tensor::MatMul([a, b]) => match (get(*a)?, get(*b)?) {
            (Matrix(r, k), Matrix(k2, c)) if k == k2 => Matrix(r, c),
            (a, b) => return Err(format!("mm of {a:?} and {b:?}")),
        },
        Tensor::Transpose(a) => match get(*a)? {
            Matrix(r, c) => Matrix(c, r),
            s => return Err(format!("transpose of {s:?}")),
        },
        Tensor::Outer([a, b]) => match (get(*a)?, get(*b)?) {
            (Vector(r), Vector(c)) => Matrix(r, c),
            (a, b) => return Err(format!("outer of {a:?} and {b:?}")),
        },
        Tensor::Fill([s, n]) => {
            if get(*s)? != Scalar {
                return Err("fill of a non-scalar".into());
            }
            match constant(*n) {
                Some(v) if v >= 1.0 && v.fract() == 0.0 => Vector(v as usize),
                _ => return Err("fill length is not a positive integer constant".into()),
            }
        }
        Tensor::Num(_) => Scalar,
        Tensor::Symbol(s) => match symbols.get(s) {
            Some((shape, _)) => *shape,
            None => return Err(format!("unknown symbol {s}")),
        },
    })
}

impl Analysis<Tensor> for TensorAnalysis {
    type Data = Data;

    fn make(egraph: &mut EGraph<Tensor, Self>, enode: &Tensor, _id: Id) -> Data {
        let shape = shape_of(
            enode,
            |id| egraph[id].data.shape,
            |id| egraph[id].data.constant.map(|c| c.into_inner()),
            &egraph.analysis.symbols,
        );
        let shape = match shape {
            Ok(s) => Some(s),
            Err(msg) => {
                egraph.analysis.conflicts.push(format!("{msg} in {enode}"));
                None
            }
        };
        let dep = match enode {
            Tensor::Num(_) => Dep::Const,
            Tensor::Symbol(s) => egraph.analysis.symbols.get(s).map_or(Dep::Sample, |d| d.1),
            // The length operand of `fill` is a dimension, not a value.
            Tensor::Fill([s, _]) => egraph[*s].data.dep,
            _ => enode
                .children()
                .iter()
                .map(|c| egraph[*c].data.dep)
                .max()
                .unwrap_or(Dep::Const),
        };
        let c = |id: &Id| egraph[*id].data.constant.map(|c| c.into_inner());
        let fold = || -> Option<f64> {
            Some(match enode {
                Tensor::Num(v) => v.into_inner(),
                Tensor::Add([a, b]) => c(a)? + c(b)?,
                Tensor::Sub([a, b]) => c(a)? - c(b)?,
                Tensor::Mul([a, b]) => c(a)? * c(b)?,
                Tensor::Div([a, b]) if c(b) != Some(0.0) => c(a)? / c(b)?,
                Tensor::Neg(a) => -c(a)?,
                Tensor::Exp(a) => c(a)?.exp(),
                Tensor::Ln(a) if c(a)? > 0.0 => c(a)?.ln(),
                Tensor::Sqrt(a) if c(a)? >= 0.0 => c(a)?.sqrt(),
                Tensor::Cosh(a) => c(a)?.cosh(),
                Tensor::Tanh(a) => c(a)?.tanh(),
                Tensor::Abs(a) => c(a)?.abs(),
                Tensor::Gt([a, b]) => f64::from(u8::from(c(a)? > c(b)?)),
                Tensor::Ge([a, b]) => f64::from(u8::from(c(a)? >= c(b)?)),
                Tensor::Select([m, a, b]) => {
                    if c(m)? != 0.0 {
                        c(a)?
                    } else {
                        c(b)?
                    }
                }
                _ => return None,
            })
        };
        let constant = fold()
            .filter(|v| v.is_finite() && shape == Some(Shape::Scalar))
            .and_then(|v| Constant::new(v).ok());
        let range = range_of(
            enode,
            |id| egraph[id].data.range,
            |id| egraph[id].data.constant.map(|c| c.into_inner()),
        );
        Data {
            range,
            shape,
            dep,
            constant,
        }
    }

    fn merge(&mut self, a: &mut Data, b: Data) -> DidMerge {
        if a.shape != b.shape {
            self.conflicts.push(format!(
                "merged e-classes of shapes {:?} and {:?}",
                a.shape, b.shape
            ));
        }
        let mut changed_a = false;
        let mut changed_b = false;
        let r = a.range.meet(b.range);
        changed_a |= r != a.range;
        changed_b |= r != b.range;
        a.range = r;
        if b.dep < a.dep {
            a.dep = b.dep;
            changed_a = true;
        } else if a.dep < b.dep {
            changed_b = true;
        }
        match (a.constant, b.constant) {
            (None, Some(v)) => {
                a.constant = Some(v);
                changed_a = true;
            }
            (Some(_), None) => changed_b = true,
            (Some(x), Some(y))
                if (x.into_inner() - y.into_inner()).abs() > 1e-9 * x.abs().max(1.0) =>
            {
                self.conflicts
                    .push(format!("merged different constants {x} and {y}"));
            }
            _ => {}
        }
        DidMerge(changed_a, changed_b)
    }

    fn modify(egraph: &mut EGraph<Tensor, Self>, id: Id) {
        if let Some(c) = egraph[id].data.constant {
            let added = egraph.add(num(c.into_inner()));
            egraph.union(id, added);
        }
    }
}
