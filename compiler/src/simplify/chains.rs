//! Chains of affine maps, collapsed by construction rather than by rewriting.
//!
//! `W3 (W2 (W1 x + b1) + b2) + b3` equals `M x + c` with `M = W3 W2 W1` and
//! `c = W3 (W2 b1 + b2) + b3`. Rules could find that (associativity of `mm` and `mv`,
//! distribution of `mv` over `+`), but for a chain of `n` maps they fill the e-graph with every
//! bracketing of every sub-chain, `O(n^3)` e-nodes: 64 stacked `dense(1)` layers reached the
//! node limit after seconds. Here each maximal chain of the lowered program gets one collapsed
//! form added to the e-graph, unioned with the chain as declared: the matrix product in the
//! order that costs least (the textbook matrix-chain dynamic program) with the bias by Horner's
//! rule, or, where that is cheaper, the products from the output side with the bias as a sum
//! over them. Extraction then picks, per function, the form its amortization favours.

use egg::{Id, Language};

use super::Graph;
use crate::ir::{Dep, Shape, Tensor};

/// `value = mats[n-1] ... mats[0] u + bias`, with every matrix and the bias parameter-only.
#[derive(Clone)]
struct Affine {
    /// E-classes of the matrices, in the order they are applied.
    mats: Vec<Id>,
    /// The parameter-only vectors added along the chain: `(d, p)` adds `p` after the first `d`
    /// matrices.
    bias: Vec<(usize, Id)>,
    /// E-class of the per-sample vector the chain starts from.
    u: Id,
}

fn param_only(eg: &Graph, id: Id) -> bool {
    eg[id].data.dep <= Dep::Param
}

fn matrix_dims(eg: &Graph, id: Id) -> Option<(usize, usize)> {
    match eg[id].data.shape {
        Some(Shape::Matrix(r, c)) => Some((r, c)),
        _ => None,
    }
}

/// The product `mats[j] ... mats[i]` in the cheapest bracketing: `split[i][j]` is where the
/// dynamic program cut it.
fn product(eg: &mut Graph, mats: &[Id], split: &[Vec<usize>], i: usize, j: usize) -> Id {
    if i == j {
        return mats[i];
    }
    let k = split[i][j];
    // mats[j..=k+1] applied after mats[k..=i].
    let left = product(eg, mats, split, k + 1, j);
    let right = product(eg, mats, split, i, k);
    eg.add(Tensor::MatMul([left, right]))
}

/// Adds `M u + c` for the chain and returns its e-class; `None` if a shape is unknown.
fn collapsed(eg: &mut Graph, chain: &Affine) -> Option<Id> {
    let n = chain.mats.len();
    // dims[k] is the width after k maps: mats[k] is dims[k + 1] x dims[k].
    let mut dims = Vec::with_capacity(n + 1);
    dims.push(matrix_dims(eg, chain.mats[0])?.1);
    for &m in &chain.mats {
        dims.push(matrix_dims(eg, m)?.0);
    }
    // cost[i][j]: multiply-adds of mats[j] ... mats[i] at best.
    let mut cost = vec![vec![0usize; n]; n];
    let mut split = vec![vec![0usize; n]; n];
    for len in 1..n {
        for i in 0..n - len {
            let j = i + len;
            let mut best = usize::MAX;
            for k in i..j {
                let c = cost[i][k]
                    .saturating_add(cost[k + 1][j])
                    .saturating_add(dims[j + 1] * dims[k + 1] * dims[i]);
                if c < best {
                    best = c;
                    split[i][j] = k;
                }
            }
            cost[i][j] = best;
        }
    }
    // Two ways to build `M` and `c`, and the multiply-adds of each:
    // A. `M` in the cheapest bracketing, `c` by Horner's rule, `W3 (W2 b1 + b2) + b3`;
    // B. `M` from the output side, `S[d] = mats[n-1] ... mats[d]`, and `c` as the sum
    //    `S[1] b1 + S[2] b2 + b3`: cheaper where the output is narrow.
    let out = dims[n];
    let first_bias = chain.bias.iter().map(|(d, _)| *d).min();
    let horner: usize =
        first_bias.map_or(0, |d0| (d0 + 1..=n).map(|d| dims[d] * dims[d - 1]).sum());
    let cost_a = cost[0][n - 1].saturating_add(horner);
    let suffix_cost: usize = (0..n - 1).map(|d| out * dims[d + 1] * dims[d]).sum();
    let sum_cost: usize = chain
        .bias
        .iter()
        .filter(|(d, _)| *d < n)
        .map(|(d, _)| out * dims[*d])
        .sum();
    let cost_b = suffix_cost.saturating_add(sum_cost);
    let (m, bias) = if cost_b < cost_a {
        let mut suffix = vec![chain.mats[n - 1]; n];
        for d in (0..n - 1).rev() {
            suffix[d] = eg.add(Tensor::MatMul([suffix[d + 1], chain.mats[d]]));
        }
        // Nested to the right, `t1 + (t2 + t3)`, which `add-assoc-params` does not regroup.
        let mut sum: Option<Id> = None;
        for &(d, p) in chain.bias.iter().rev() {
            let term = if d == n {
                p
            } else {
                eg.add(Tensor::MatVec([suffix[d], p]))
            };
            sum = Some(match sum {
                Some(rest) => eg.add(Tensor::Add([term, rest])),
                None => term,
            });
        }
        (suffix[0], sum)
    } else {
        let mut horner: Option<Id> = None;
        for d in 1..=n {
            horner = horner.map(|c| eg.add(Tensor::MatVec([chain.mats[d - 1], c])));
            for &(_, p) in chain.bias.iter().filter(|(at, _)| *at == d) {
                horner = Some(match horner {
                    Some(c) => eg.add(Tensor::Add([c, p])),
                    None => p,
                });
            }
        }
        (product(eg, &chain.mats, &split, 0, n - 1), horner)
    };
    let mv = eg.add(Tensor::MatVec([m, chain.u]));
    Some(match bias {
        Some(c) => eg.add(Tensor::Add([mv, c])),
        None => mv,
    })
}

/// Adds the collapsed form of every maximal chain of two or more affine maps in `nodes` (a
/// program in dependency order, whose nodes are the e-classes `ids`) to `egraph`, unioned with
/// the chain as written. Returns how many chains were collapsed. `roots` are the nodes the
/// program is asked for.
pub fn collapse_chains(eg: &mut Graph, nodes: &[Tensor], ids: &[Id], roots: &[Id]) -> usize {
    let mut forms: Vec<Option<Affine>> = vec![None; nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        let class = |c: &Id| ids[usize::from(*c)];
        forms[i] = match node {
            Tensor::MatVec([w, v]) if param_only(eg, class(w)) && !param_only(eg, class(v)) => {
                let w = class(w);
                Some(match &forms[usize::from(*v)] {
                    Some(f) => {
                        let mut f = f.clone();
                        f.mats.push(w);
                        f
                    }
                    None => Affine {
                        mats: vec![w],
                        bias: Vec::new(),
                        u: class(v),
                    },
                })
            }
            Tensor::Add([a, b]) => {
                let (fa, fb) = (&forms[usize::from(*a)], &forms[usize::from(*b)]);
                // A bias is a parameter-only vector; `+` also broadcasts a scalar (`|x| x + 1.0`),
                // which ends the chain here rather than becoming a matrix-vector operand.
                let bias = |id: Id| {
                    param_only(eg, id)
                        && matches!(eg[id].data.shape, Some(Shape::Vector(_)))
                        && eg[id].data.shape == eg[ids[i]].data.shape
                };
                let grown = match (fa, fb) {
                    (Some(f), None) if bias(class(b)) => Some((f.clone(), class(b))),
                    (None, Some(f)) if bias(class(a)) => Some((f.clone(), class(a))),
                    _ => None,
                };
                grown.map(|(mut f, p)| {
                    f.bias.push((f.mats.len(), p));
                    f
                })
            }
            _ => None,
        };
    }
    // A chain is maximal where its value is read by something that does not extend it (a
    // node without an affine form), or is a root.
    let mut read = vec![false; nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        if forms[i].is_none() {
            for c in node.children() {
                read[usize::from(*c)] = true;
            }
        }
    }
    for r in roots {
        read[usize::from(*r)] = true;
    }
    let mut count = 0;
    for (i, form) in forms.iter().enumerate() {
        let Some(f) = form else { continue };
        if f.mats.len() < 2 || !read[i] {
            continue;
        }
        if let Some(c) = collapsed(eg, f) {
            eg.union(ids[i], c);
            count += 1;
        }
    }
    eg.rebuild();
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::TensorAnalysis;
    use egg::RecExpr;

    /// The product is bracketed by the shapes: for `w3 (1x64) w2 (64x64) w1 (64x2)`,
    /// `(w3 w2) w1` costs 64*64 + 64*2 multiply-adds, `w3 (w2 w1)` 64*64*2 + 64*2.
    #[test]
    fn the_cheapest_bracketing() {
        let mut a = TensorAnalysis::default();
        for (s, r, c) in [("w3", 1, 64), ("w2", 64, 64), ("w1", 64, 2)] {
            a.symbols
                .insert(s.into(), (Shape::Matrix(r, c), Dep::Param));
        }
        a.symbols
            .insert("x".into(), (Shape::Vector(2), Dep::Sample));
        let mut eg = Graph::new(a);
        let from: RecExpr<Tensor> = "(mv w3 (mv w2 (mv w1 x)))".parse().unwrap();
        let ids = super::super::add_all(&mut eg, &from);
        let root = *ids.last().unwrap();
        let n = collapse_chains(&mut eg, from.as_ref(), &ids, &[Id::from(ids.len() - 1)]);
        assert_eq!(n, 1);
        let left: RecExpr<Tensor> = "(mv (mm (mm w3 w2) w1) x)".parse().unwrap();
        let right: RecExpr<Tensor> = "(mv (mm w3 (mm w2 w1)) x)".parse().unwrap();
        let left = *super::super::add_all(&mut eg, &left).last().unwrap();
        let right = *super::super::add_all(&mut eg, &right).last().unwrap();
        eg.rebuild();
        assert_eq!(eg.find(left), eg.find(root));
        assert_ne!(eg.find(right), eg.find(root));
    }
}
