//! Evaluation of a [`Program`] in `f64`: what the emitted code computes, at compile time. Used
//! to compute the prepared form of embedded weights (`PRETRAINED` of `<Name>Prepared`), and
//! by tests as a reference for the emitted code.

use std::collections::HashMap;

use egg::{Language, Symbol};

use crate::ir::{Shape, Tensor};
use crate::simplify::Program;

/// The value of every root of `prog`, each flattened row-major, given the value of every
/// symbol it reads (flattened the same way). `None` if a symbol is missing or has the wrong
/// number of elements.
pub fn eval(prog: &Program, env: &HashMap<Symbol, Vec<f64>>) -> Option<Vec<Vec<f64>>> {
    let mut vals: Vec<Vec<f64>> = Vec::with_capacity(prog.nodes.len());
    for (i, node) in prog.nodes.iter().enumerate() {
        let shape = prog.shapes[i];
        let arg = |k: usize| -> &Vec<f64> { &vals[usize::from(node.children()[k])] };
        let shape_of = |k: usize| prog.shapes[usize::from(node.children()[k])];
        let map = |f: &dyn Fn(f64) -> f64| arg(0).iter().map(|&v| f(v)).collect::<Vec<f64>>();
        let zip = |f: &dyn Fn(f64, f64) -> f64| {
            let (a, b) = (arg(0), arg(1));
            (0..shape.len())
                .map(|j| f(a[j % a.len()], b[j % b.len()]))
                .collect::<Vec<f64>>()
        };
        let v = match node {
            Tensor::Num(c) => vec![c.into_inner(); shape.len()],
            Tensor::Symbol(s) => {
                let v = env.get(s)?;
                if v.len() != shape.len() {
                    return None;
                }
                v.clone()
            }
            Tensor::Add(_) => zip(&|a, b| a + b),
            Tensor::Sub(_) => zip(&|a, b| a - b),
            Tensor::Mul(_) => zip(&|a, b| a * b),
            Tensor::Div(_) => zip(&|a, b| a / b),
            Tensor::Neg(_) => map(&|a| -a),
            Tensor::Sigmoid(_) => map(&|a| 1.0 / (1.0 + (-a).exp())),
            Tensor::Tanh(_) => map(&f64::tanh),
            Tensor::Relu(_) => map(&|a| if a > 0.0 { a } else { 0.0 }),
            Tensor::Step(_) => map(&|a| if a > 0.0 { 1.0 } else { 0.0 }),
            Tensor::LeakyRelu(_) => zip(&|a, alpha| if a > 0.0 { a } else { alpha * a }),
            Tensor::LeakyStep(_) => zip(&|a, alpha| if a > 0.0 { 1.0 } else { alpha }),
            Tensor::Softplus(_) => map(&|a| a.max(0.0) + (-a.abs()).exp().ln_1p()),
            Tensor::Exp(_) => map(&f64::exp),
            Tensor::Ln(_) => map(&f64::ln),
            Tensor::Abs(_) => map(&f64::abs),
            Tensor::Sign(_) => map(&|a| {
                if a > 0.0 {
                    1.0
                } else if a < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }),
            Tensor::Sqrt(_) => map(&f64::sqrt),
            Tensor::Cosh(_) => map(&f64::cosh),
            Tensor::Gt(_) => zip(&|a, b| f64::from(u8::from(a > b))),
            Tensor::Ge(_) => zip(&|a, b| f64::from(u8::from(a >= b))),
            Tensor::Select(_) => {
                let (m, a, b) = (
                    arg(0),
                    arg(1),
                    vals[usize::from(node.children()[2])].clone(),
                );
                (0..shape.len())
                    .map(|j| {
                        if m[j % m.len()] != 0.0 {
                            a[j % a.len()]
                        } else {
                            b[j % b.len()]
                        }
                    })
                    .collect()
            }
            Tensor::MaxMask(_) => {
                let z = arg(0);
                let mut best = 0;
                for (j, &v) in z.iter().enumerate() {
                    if v > z[best] {
                        best = j;
                    }
                }
                (0..z.len())
                    .map(|j| f64::from(u8::from(j == best)))
                    .collect()
            }
            Tensor::Sum(_) => vec![arg(0).iter().sum()],
            Tensor::Fill(_) => vec![arg(0)[0]; shape.len()],
            Tensor::Transpose(_) => {
                let Shape::Matrix(r, c) = shape_of(0) else {
                    return None;
                };
                let a = arg(0);
                (0..c * r).map(|j| a[(j % r) * c + j / r]).collect()
            }
            Tensor::MatVec(_) => {
                let Shape::Matrix(r, c) = shape_of(0) else {
                    return None;
                };
                let (m, x) = (arg(0), arg(1));
                (0..r)
                    .map(|o| (0..c).map(|k| m[o * c + k] * x[k]).sum())
                    .collect()
            }
            Tensor::MatMul(_) => {
                let (Shape::Matrix(r, k), Shape::Matrix(_, c)) = (shape_of(0), shape_of(1)) else {
                    return None;
                };
                let (a, b) = (arg(0), arg(1));
                (0..r * c)
                    .map(|j| (0..k).map(|t| a[(j / c) * k + t] * b[t * c + j % c]).sum())
                    .collect()
            }
            Tensor::Outer(_) => {
                let (u, w) = (arg(0), arg(1));
                (0..u.len() * w.len())
                    .map(|j| u[j / w.len()] * w[j % w.len()])
                    .collect()
            }
            Tensor::Softmax(_) => {
                let z = arg(0);
                let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
                let s: f64 = e.iter().sum();
                e.into_iter().map(|v| v / s).collect()
            }
            Tensor::LogSumExp(_) => {
                let z = arg(0);
                let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                vec![m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln()]
            }
        };
        if v.len() != shape.len() {
            return None;
        }
        vals.push(v);
    }
    Some(prog.roots.iter().map(|&r| vals[r].clone()).collect())
}
