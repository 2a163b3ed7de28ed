//! Symbolic reverse-mode differentiation on the tensor graph.
//!
//! The adjoint of every node is built as new IR nodes, one rule per operation (`y = W x + b`
//! gives `dW = outer(delta, x)`, `dx = W^T delta`, `db = delta`). The result refers to the
//! forward nodes instead of copying them, so once it is saturated and extracted together with
//! the forward pass, the backward code reuses the forward activations.

use std::collections::HashMap;

use egg::{Id, Language, RecExpr, Symbol};

use crate::ir::{num, seed_symbol, shape_of, Dep, Shape, Tensor};
use crate::simplify::Program;

/// The forward program with the gradient nodes appended.
#[derive(Clone, Debug)]
pub struct Differentiated {
    /// Forward nodes (same indices as the input program), then adjoint nodes.
    pub expr: RecExpr<Tensor>,
    /// For each symbol that the loss depends on, the node holding `seed * dL/dsymbol`.
    pub grads: HashMap<Symbol, usize>,
}

struct Builder<'a> {
    nodes: Vec<Tensor>,
    shapes: Vec<Shape>,
    symbols: &'a HashMap<Symbol, (Shape, Dep)>,
    consts: HashMap<u64, usize>,
}

impl Builder<'_> {
    fn push(&mut self, node: Tensor) -> Result<usize, String> {
        let shape = shape_of(
            &node,
            |c| self.shapes.get(usize::from(c)).copied(),
            |c| match &self.nodes[usize::from(c)] {
                Tensor::Num(v) => Some(v.into_inner()),
                _ => None,
            },
            self.symbols,
        )?;
        self.nodes.push(node);
        self.shapes.push(shape);
        Ok(self.nodes.len() - 1)
    }

    fn constant(&mut self, v: f64) -> Result<usize, String> {
        if let Some(&i) = self.consts.get(&v.to_bits()) {
            return Ok(i);
        }
        let i = self.push(num(v))?;
        self.consts.insert(v.to_bits(), i);
        Ok(i)
    }

    fn op2(&mut self, f: fn([Id; 2]) -> Tensor, a: usize, b: usize) -> Result<usize, String> {
        self.push(f([Id::from(a), Id::from(b)]))
    }

    fn op1(&mut self, f: fn(Id) -> Tensor, a: usize) -> Result<usize, String> {
        self.push(f(Id::from(a)))
    }
}

/// Differentiates `prog.roots[loss_root]` (a scalar) with respect to every symbol, seeding the
/// loss's adjoint with the scalar symbol `seed`.
pub fn differentiate(
    prog: &Program,
    loss_root: usize,
    symbols: &HashMap<Symbol, (Shape, Dep)>,
) -> Result<Differentiated, String> {
    let mut b = Builder {
        nodes: prog.nodes.clone(),
        shapes: prog.shapes.clone(),
        symbols,
        consts: HashMap::new(),
    };
    let n = prog.nodes.len();
    let mut adj: Vec<Option<usize>> = vec![None; n];
    let loss = prog.roots[loss_root];
    if prog.shapes[loss] != Shape::Scalar {
        return Err("the loss is not a scalar".into());
    }
    adj[loss] = Some(b.push(Tensor::Symbol(seed_symbol()))?);

    // Adds contribution `c` to the adjoint of `child`, summing out a broadcast dimension.
    fn contribute(
        b: &mut Builder,
        adj: &mut [Option<usize>],
        child: usize,
        mut c: usize,
    ) -> Result<(), String> {
        if b.shapes[child] == Shape::Scalar && b.shapes[c] != Shape::Scalar {
            c = b.op1(Tensor::Sum, c)?;
        }
        if b.shapes[child] != b.shapes[c] {
            return Err(format!(
                "adjoint of shape {:?} for a node of shape {:?}",
                b.shapes[c], b.shapes[child]
            ));
        }
        adj[child] = Some(match adj[child] {
            Some(prev) => b.op2(Tensor::Add, prev, c)?,
            None => c,
        });
        Ok(())
    }

    for i in (0..n).rev() {
        let Some(g) = adj[i] else { continue };
        let node = prog.nodes[i].clone();
        let ch: Vec<usize> = node.children().iter().map(|c| usize::from(*c)).collect();
        match node {
            Tensor::Add(_) => {
                contribute(&mut b, &mut adj, ch[0], g)?;
                contribute(&mut b, &mut adj, ch[1], g)?;
            }
            Tensor::Sub(_) => {
                contribute(&mut b, &mut adj, ch[0], g)?;
                let ng = b.op1(Tensor::Neg, g)?;
                contribute(&mut b, &mut adj, ch[1], ng)?;
            }
            Tensor::Mul(_) => {
                let ga = b.op2(Tensor::Mul, g, ch[1])?;
                contribute(&mut b, &mut adj, ch[0], ga)?;
                let gb = b.op2(Tensor::Mul, g, ch[0])?;
                contribute(&mut b, &mut adj, ch[1], gb)?;
            }
            Tensor::Div(_) => {
                // d(a/b) = da / b - (a/b) db / b
                let ga = b.op2(Tensor::Div, g, ch[1])?;
                contribute(&mut b, &mut adj, ch[0], ga)?;
                let gi = b.op2(Tensor::Mul, g, i)?;
                let q = b.op2(Tensor::Div, gi, ch[1])?;
                let nq = b.op1(Tensor::Neg, q)?;
                contribute(&mut b, &mut adj, ch[1], nq)?;
            }
            Tensor::Neg(_) => {
                let ng = b.op1(Tensor::Neg, g)?;
                contribute(&mut b, &mut adj, ch[0], ng)?;
            }
            Tensor::MatVec(_) => {
                // y = W v: dW = outer(g, v), dv = W^T g
                let dw = b.op2(Tensor::Outer, g, ch[1])?;
                contribute(&mut b, &mut adj, ch[0], dw)?;
                let wt = b.op1(Tensor::Transpose, ch[0])?;
                let dv = b.op2(Tensor::MatVec, wt, g)?;
                contribute(&mut b, &mut adj, ch[1], dv)?;
            }
            Tensor::MatMul(_) => {
                // Y = A B: dA = G B^T, dB = A^T G
                let bt = b.op1(Tensor::Transpose, ch[1])?;
                let da = b.op2(Tensor::MatMul, g, bt)?;
                contribute(&mut b, &mut adj, ch[0], da)?;
                let at = b.op1(Tensor::Transpose, ch[0])?;
                let db = b.op2(Tensor::MatMul, at, g)?;
                contribute(&mut b, &mut adj, ch[1], db)?;
            }
            Tensor::Transpose(_) => {
                let gt = b.op1(Tensor::Transpose, g)?;
                contribute(&mut b, &mut adj, ch[0], gt)?;
            }
            Tensor::Outer(_) => {
                // Y = u v^T: du = G v, dv = G^T u
                let du = b.op2(Tensor::MatVec, g, ch[1])?;
                contribute(&mut b, &mut adj, ch[0], du)?;
                let gt = b.op1(Tensor::Transpose, g)?;
                let dv = b.op2(Tensor::MatVec, gt, ch[0])?;
                contribute(&mut b, &mut adj, ch[1], dv)?;
            }
            Tensor::Sum(_) => {
                let len = b.shapes[ch[0]].len();
                let nn = b.constant(len as f64)?;
                let f = b.op2(Tensor::Fill, g, nn)?;
                contribute(&mut b, &mut adj, ch[0], f)?;
            }
            Tensor::Fill(_) => {
                let s = b.op1(Tensor::Sum, g)?;
                contribute(&mut b, &mut adj, ch[0], s)?;
            }
            Tensor::Sigmoid(_) => {
                // s' = s (1 - s)
                let one = b.constant(1.0)?;
                let oms = b.op2(Tensor::Sub, one, i)?;
                let d = b.op2(Tensor::Mul, i, oms)?;
                let gd = b.op2(Tensor::Mul, g, d)?;
                contribute(&mut b, &mut adj, ch[0], gd)?;
            }
            Tensor::Tanh(_) => {
                // t' = 1 - t^2
                let one = b.constant(1.0)?;
                let tt = b.op2(Tensor::Mul, i, i)?;
                let d = b.op2(Tensor::Sub, one, tt)?;
                let gd = b.op2(Tensor::Mul, g, d)?;
                contribute(&mut b, &mut adj, ch[0], gd)?;
            }
            Tensor::Relu(_) => {
                let d = b.op1(Tensor::Step, ch[0])?;
                let gd = b.op2(Tensor::Mul, g, d)?;
                contribute(&mut b, &mut adj, ch[0], gd)?;
            }
            Tensor::LeakyRelu(_) => {
                let d = b.op2(Tensor::LeakyStep, ch[0], ch[1])?;
                let gd = b.op2(Tensor::Mul, g, d)?;
                contribute(&mut b, &mut adj, ch[0], gd)?;
            }
            Tensor::Softplus(_) => {
                let d = b.op1(Tensor::Sigmoid, ch[0])?;
                let gd = b.op2(Tensor::Mul, g, d)?;
                contribute(&mut b, &mut adj, ch[0], gd)?;
            }
            Tensor::Exp(_) => {
                let gd = b.op2(Tensor::Mul, g, i)?;
                contribute(&mut b, &mut adj, ch[0], gd)?;
            }
            Tensor::Ln(_) => {
                let gd = b.op2(Tensor::Div, g, ch[0])?;
                contribute(&mut b, &mut adj, ch[0], gd)?;
            }
            Tensor::Abs(_) => {
                let d = b.op1(Tensor::Sign, ch[0])?;
                let gd = b.op2(Tensor::Mul, g, d)?;
                contribute(&mut b, &mut adj, ch[0], gd)?;
            }
            Tensor::Softmax(_) => {
                // J^T g = p * (g - sum(g * p))
                let gp = b.op2(Tensor::Mul, g, i)?;
                let s = b.op1(Tensor::Sum, gp)?;
                let d = b.op2(Tensor::Sub, g, s)?;
                let r = b.op2(Tensor::Mul, i, d)?;
                contribute(&mut b, &mut adj, ch[0], r)?;
            }
            Tensor::LogSumExp(_) => {
                let p = b.op1(Tensor::Softmax, ch[0])?;
                let gp = b.op2(Tensor::Mul, g, p)?;
                contribute(&mut b, &mut adj, ch[0], gp)?;
            }
            Tensor::Sqrt(_) => {
                // (sqrt a)' = 1 / (2 sqrt a)
                let two = b.constant(2.0)?;
                let d = b.op2(Tensor::Mul, two, i)?;
                let gd = b.op2(Tensor::Div, g, d)?;
                contribute(&mut b, &mut adj, ch[0], gd)?;
            }
            Tensor::Cosh(_) => {
                // cosh' = sinh = (e^a - e^-a) / 2
                let ea = b.op1(Tensor::Exp, ch[0])?;
                let na = b.op1(Tensor::Neg, ch[0])?;
                let ena = b.op1(Tensor::Exp, na)?;
                let diff = b.op2(Tensor::Sub, ea, ena)?;
                let half = b.constant(0.5)?;
                let sinh = b.op2(Tensor::Mul, half, diff)?;
                let gd = b.op2(Tensor::Mul, g, sinh)?;
                contribute(&mut b, &mut adj, ch[0], gd)?;
            }
            Tensor::Select(_) => {
                // The taken branch gets the adjoint, the other nothing; the mask is constant
                // almost everywhere.
                let zero = b.constant(0.0)?;
                let ga = b.push(Tensor::Select([ch[0], g, zero].map(Id::from)))?;
                contribute(&mut b, &mut adj, ch[1], ga)?;
                let gb = b.push(Tensor::Select([ch[0], zero, g].map(Id::from)))?;
                contribute(&mut b, &mut adj, ch[2], gb)?;
            }
            // Piecewise-constant helpers have derivative 0 almost everywhere.
            Tensor::Step(_)
            | Tensor::Sign(_)
            | Tensor::LeakyStep(_)
            | Tensor::Gt(_)
            | Tensor::Ge(_)
            | Tensor::MaxMask(_) => {}
            Tensor::Num(_) | Tensor::Symbol(_) => {}
        }
    }

    let mut grads = HashMap::new();
    for (i, node) in prog.nodes.iter().enumerate() {
        if let (Tensor::Symbol(s), Some(g)) = (node, adj[i]) {
            grads.insert(*s, g);
        }
    }
    Ok(Differentiated {
        expr: RecExpr::from(b.nodes),
        grads,
    })
}
