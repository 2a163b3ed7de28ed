//! Emission, one sample at a time: a [`Program`] becomes the statements of one generated
//! function.
//!
//! Each node is either *materialized* (bound to a local `let`) or *inlined* into the element
//! expression of its consumer. Scalars, values used more than once, operands whose elements are
//! read more than once (both sides of `outer`, the vector of `mv`) and reductions are
//! materialized, except a matrix product read once, elementwise, which is computed inside its
//! consumer (`W x + b` is one loop); cheap elementwise work is inlined. A product of a stored
//! matrix with at least 4 rows and a long vector is one call of the runtime's `matvec`.
//!
//! A materialized tensor is written as straight-line code (an array literal of element
//! expressions with constant indices) when it has at most [`UNROLL_ELEMENTS`] elements and its
//! own work is at most [`UNROLL_LIMIT`] operations, and as loops with constant bounds
//! otherwise, so that compile time grows with the number of operations in the graph, not with
//! the widths of the layers.

use crate::KRATE;
use std::collections::HashMap;

use egg::{Language, Symbol};
use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{format_ident, quote, ToTokens};

use crate::check::ScalarType;
use crate::ir::{Shape, Tensor};
use crate::simplify::Program;

/// A materialized tensor whose own computation takes at most this many scalar operations (and
/// that has at most [`UNROLL_ELEMENTS`] elements) is written out as straight-line code; above
/// it, as loops. Chosen by measuring build time (`scripts/compile_time.sh`, see
/// ARCHITECTURE.md): with everything unrolled, the release build of a 64-32-32-10 net takes
/// 13.9 s and grows with the parameters; with these limits it takes 1.9 s, as with no unrolling
/// at all, while the layers of a 2-4-1 net are straight-line code.
pub const UNROLL_LIMIT: usize = 256;

/// A reduction over at most this many terms is written inline as `a0 * b0 + a1 * b1 + ...`
/// inside a loop body; a longer one becomes an inner loop.
pub const INLINE_REDUCTION: usize = 8;

/// The number of partial sums a long reduction keeps (8 `f32` lanes fill an AVX register).
pub const REDUCTION_LANES: usize = 8;

/// A tensor with more elements than this is always written as a loop, however little work it
/// takes: unrolling a long elementwise loop only makes the code larger (LLVM vectorizes the
/// loop anyway).
pub const UNROLL_ELEMENTS: usize = 16;

/// Where a root's value goes.
pub enum Dest {
    /// Bound to a local that the caller names (`let <name> = ...;`).
    Local(Ident),
    /// Added elementwise into an existing place, such as `grad.hidden.w`.
    AddInto(TokenStream),
}

/// Writes the body of one function.
pub struct Emitter<'a> {
    prog: &'a Program,
    scalar: ScalarType,
    paths: &'a HashMap<Symbol, TokenStream>,
    materialized: Vec<bool>,
    /// `bias[i] = Some(b)`: the sum of rows `i` (`W^T^T v`, see `write`) starts from the
    /// stored vector `b`, and the sum `i + b` (whose `alias` is `i`) is never computed.
    bias: Vec<Option<usize>>,
    alias: Vec<Option<usize>>,
    counter: std::cell::Cell<usize>,
    /// Set while writing a vector node whose elements take the fast (vectorizable) forms of
    /// the transcendental functions (see `write`).
    fast: std::cell::Cell<bool>,
}

/// An index in an element expression: a constant, or an expression such as a loop variable.
#[derive(Clone)]
pub(crate) enum Idx {
    Const(usize),
    Var(TokenStream),
}

/// The tokens of the scalar type.
pub(crate) fn scalar_type(scalar: ScalarType) -> TokenStream {
    match scalar {
        ScalarType::F32 => quote!(f32),
        ScalarType::F64 => quote!(f64),
    }
}

/// A literal of the scalar type (negative values parenthesized).
pub(crate) fn scalar_lit(scalar: ScalarType, v: f64) -> TokenStream {
    // A constant that is not finite in the scalar type (a formula's `x * 1e39` in f32) is
    // written as the type's infinity or NaN: proc_macro2 panics on a non-finite literal.
    let finite = match scalar {
        ScalarType::F32 => (v as f32).is_finite(),
        ScalarType::F64 => v.is_finite(),
    };
    if !finite {
        let ty = scalar_type(scalar);
        return if v.is_nan() {
            quote!(#ty::NAN)
        } else if v > 0.0 {
            quote!(#ty::INFINITY)
        } else {
            quote!(#ty::NEG_INFINITY)
        };
    }
    let l = match scalar {
        ScalarType::F32 => Literal::f32_suffixed(v.abs() as f32),
        ScalarType::F64 => Literal::f64_suffixed(v.abs()),
    };
    if v.is_sign_negative() {
        quote!((-#l))
    } else {
        quote!(#l)
    }
}

/// The pattern of every elementwise operation (each operand read at the result's own index,
/// a broadcast scalar aside), for `matches!` and for match arms.
macro_rules! elementwise_ops {
    () => {
        Tensor::Add(_)
            | Tensor::Sub(_)
            | Tensor::Mul(_)
            | Tensor::Div(_)
            | Tensor::Neg(_)
            | Tensor::Sigmoid(_)
            | Tensor::Tanh(_)
            | Tensor::Relu(_)
            | Tensor::Step(_)
            | Tensor::Softplus(_)
            | Tensor::Exp(_)
            | Tensor::Ln(_)
            | Tensor::Abs(_)
            | Tensor::Sign(_)
            | Tensor::LeakyRelu(_)
            | Tensor::LeakyStep(_)
            | Tensor::Sqrt(_)
            | Tensor::Cosh(_)
            | Tensor::Gt(_)
            | Tensor::Ge(_)
            | Tensor::Select(_)
    };
}
pub(crate) use elementwise_ops;

/// The loop of one axis of a value, if it needs one: an axis of one element is the constant
/// index 0 and no loop. Narrow layers would otherwise carry a loop per value, and each loop
/// costs the borrow checker (a deep narrow network has hundreds).
pub(crate) struct Axis(pub(crate) Option<(Ident, TokenStream)>);

impl Axis {
    /// The index over `n` elements and its loop, the loop variable from `fresh`.
    pub(crate) fn over(n: usize, fresh: impl FnOnce() -> Ident) -> (Idx, Axis) {
        if n == 1 {
            return (Idx::Const(0), Axis(None));
        }
        let v = fresh();
        (Idx::Var(quote!(#v)), Axis(Some((v, quote!(0..#n)))))
    }

    /// `body` inside the axis's loop (or as it is, for a one-element axis).
    pub(crate) fn wrap(&self, body: TokenStream) -> TokenStream {
        match &self.0 {
            Some((v, range)) => quote!(for #v in #range { #body }),
            None => body,
        }
    }
}

impl ToTokens for Idx {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        match self {
            Idx::Const(c) => Literal::usize_unsuffixed(*c).to_tokens(tokens),
            Idx::Var(v) => tokens.extend(v.clone()),
        }
    }
}

/// The expression of an elementwise operation applied to its operands' element expressions
/// (`None` for other operations). Shared by the per-sample and the batch emitters. With
/// `fast` (batch code, generic over the vector level `__I`), `exp`, `sigmoid`, `tanh` and
/// `softplus` take the runtime's forms without a library call (`Isa::exp_fast` and its kin:
/// polynomials in `f32`, their multiply-adds fused at the FMA levels; the library in `f64`),
/// so that the loop over a batch's samples vectorizes. One sample's code keeps the
/// library forms, but for a vector of 8 or more `f32` values (a layer's activations), which
/// is a loop over the fast forms in `ScalarTrait` (see `Emitter::write`).
pub(crate) fn elementwise_expr(
    node: &Tensor,
    sub: impl Fn(usize) -> TokenStream,
    fast: Option<&TokenStream>,
) -> Option<TokenStream> {
    let call = |f: &str, args: &[TokenStream]| {
        let f = Ident::new(f, Span::call_site());
        quote!(#KRATE::__private::ScalarTrait::#f(#(#args),*))
    };
    // `fast` names who computes the fast forms: in batch code the vector level `__I`, whose
    // forms fuse the polynomials' multiply-adds where the level has FMA.
    let lane_call = |f: &str, a: TokenStream| {
        let f = Ident::new(f, Span::call_site());
        quote!(#fast::#f(#a))
    };
    Some(match node {
        Tensor::Add(_) => {
            let (a, b) = (sub(0), sub(1));
            quote!((#a + #b))
        }
        Tensor::Sub(_) => {
            let (a, b) = (sub(0), sub(1));
            quote!((#a - #b))
        }
        Tensor::Mul(_) => {
            let (a, b) = (sub(0), sub(1));
            quote!((#a * #b))
        }
        Tensor::Div(_) => {
            let (a, b) = (sub(0), sub(1));
            quote!((#a / #b))
        }
        Tensor::Neg(_) => {
            let a = sub(0);
            quote!((-#a))
        }
        Tensor::Sigmoid(_) if fast.is_some() => lane_call("sigmoid_fast", sub(0)),
        Tensor::Sigmoid(_) => call("sigmoid", &[sub(0)]),
        Tensor::Tanh(_) if fast.is_some() => lane_call("tanh_fast", sub(0)),
        Tensor::Tanh(_) => call("tanh", &[sub(0)]),
        Tensor::Relu(_) => call("relu", &[sub(0)]),
        Tensor::Step(_) => call("step", &[sub(0)]),
        Tensor::Softplus(_) if fast.is_some() => lane_call("softplus_fast", sub(0)),
        Tensor::Softplus(_) => call("softplus", &[sub(0)]),
        Tensor::Exp(_) if fast.is_some() => lane_call("exp_fast", sub(0)),
        Tensor::Exp(_) => call("exp", &[sub(0)]),
        Tensor::Ln(_) => call("ln", &[sub(0)]),
        Tensor::Abs(_) => call("abs", &[sub(0)]),
        Tensor::Sign(_) => call("sign", &[sub(0)]),
        Tensor::LeakyRelu(_) => call("leaky_relu", &[sub(0), sub(1)]),
        Tensor::LeakyStep(_) => call("leaky_step", &[sub(0), sub(1)]),
        Tensor::Sqrt(_) => call("sqrt", &[sub(0)]),
        Tensor::Cosh(_) => call("cosh", &[sub(0)]),
        Tensor::Gt(_) => call("gt", &[sub(0), sub(1)]),
        Tensor::Ge(_) => call("ge", &[sub(0), sub(1)]),
        Tensor::Select(_) => call("select", &[sub(0), sub(1), sub(2)]),
        _ => return None,
    })
}

/// Operations that read each operand at their own index (a broadcast scalar aside).
pub(crate) fn is_elementwise(node: &Tensor) -> bool {
    matches!(node, elementwise_ops!())
}

/// Whether node `i` is a product of a stored matrix (a symbol) with at least 4 rows and a long
/// vector: written as one call of the runtime's `matvec` (four rows at a time).
fn uses_matvec(prog: &Program, i: usize) -> bool {
    match &prog.nodes[i] {
        Tensor::MatVec([m, v]) => {
            matches!(prog.nodes[usize::from(*m)], Tensor::Symbol(_))
                && matches!(prog.shapes[i], Shape::Vector(r) if r >= 4)
                && prog.shapes[usize::from(*v)].len() > INLINE_REDUCTION
        }
        _ => false,
    }
}

fn is_reduction(node: &Tensor) -> bool {
    matches!(
        node,
        Tensor::MatVec(_)
            | Tensor::MatMul(_)
            | Tensor::Sum(_)
            | Tensor::Softmax(_)
            | Tensor::MaxMask(_)
            | Tensor::LogSumExp(_)
    )
}

impl<'a> Emitter<'a> {
    /// Plans materialization for `prog` given the roots that will be written.
    pub fn new(
        prog: &'a Program,
        scalar: ScalarType,
        paths: &'a HashMap<Symbol, TokenStream>,
    ) -> Self {
        let n = prog.nodes.len();
        let mut uses = vec![0usize; n];
        let mut repeated = vec![false; n];
        // Whether some consumer is not elementwise (reads other indices than its own).
        let mut gathered = vec![false; n];
        for node in &prog.nodes {
            for (k, c) in node.children().iter().enumerate() {
                let c = usize::from(*c);
                uses[c] += 1;
                gathered[c] |= !is_elementwise(node);
                // Operands whose elements are each read several times, or passed as arrays
                // (a transposed matrix is a sum of rows' `add_rows` operand).
                let rep = match node {
                    Tensor::Outer(_) | Tensor::MatMul(_) | Tensor::Transpose(_) => true,
                    Tensor::MatVec(_) => k == 1,
                    Tensor::Softmax(_) | Tensor::LogSumExp(_) | Tensor::MaxMask(_) => true,
                    _ => false,
                };
                repeated[c] |= rep;
            }
        }
        for &r in &prog.roots {
            uses[r] += 1;
        }
        let materialized = (0..n)
            .map(|i| {
                let node = &prog.nodes[i];
                if node.is_leaf() || matches!(node, Tensor::Transpose(_)) {
                    return false;
                }
                // A matrix product read once, elementwise, is computed inside its consumer's
                // loop (so `W x + b` is one loop, not two).
                // Not `W^T g`: it is written as a sum of rows (see `write`), which needs a `let`.
                let transposed = match node {
                    Tensor::MatVec([m, _]) => {
                        matches!(prog.nodes[usize::from(*m)], Tensor::Transpose(_))
                    }
                    _ => false,
                };
                let fusable = matches!(node, Tensor::MatVec(_) | Tensor::MatMul(_))
                    && !gathered[i]
                    && !transposed
                    && !uses_matvec(prog, i);
                uses[i] > 1
                    || repeated[i]
                    || (is_reduction(node) && !fusable)
                    || prog.shapes[i] == Shape::Scalar
            })
            .collect();
        let mut emitter = Emitter {
            prog,
            scalar,
            paths,
            materialized,
            bias: vec![None; n],
            alias: vec![None; n],
            counter: std::cell::Cell::new(0),
            fast: std::cell::Cell::new(false),
        };
        // `W^T^T v + b` with a stored `b`, where the product has no other use and is written
        // as a sum of rows: its accumulator starts from `b` (a pass over the outputs fewer).
        for (i, node) in prog.nodes.iter().enumerate() {
            let Tensor::Add([a, b]) = node else { continue };
            for (p, q) in [
                (usize::from(*a), usize::from(*b)),
                (usize::from(*b), usize::from(*a)),
            ] {
                if emitter.sum_of_rows(p)
                    && uses[p] == 1
                    && emitter.bias[p].is_none()
                    && matches!(prog.nodes[q], Tensor::Symbol(_))
                    && prog.shapes[q] == prog.shapes[p]
                {
                    emitter.bias[p] = Some(q);
                    emitter.alias[i] = Some(p);
                    emitter.materialized[i] = false;
                    break;
                }
            }
        }
        emitter
    }

    fn fresh(&self, prefix: &str) -> Ident {
        let c = self.counter.get();
        self.counter.set(c + 1);
        format_ident!("{}{}", prefix, c)
    }

    fn local(i: usize) -> Ident {
        format_ident!("t{}", i)
    }

    fn ty(&self) -> TokenStream {
        scalar_type(self.scalar)
    }

    fn lit(&self, v: f64) -> TokenStream {
        scalar_lit(self.scalar, v)
    }

    fn zero(&self) -> TokenStream {
        self.lit(0.0)
    }

    fn child(&self, i: usize, k: usize) -> usize {
        usize::from(self.prog.nodes[i].children()[k])
    }

    /// The element `idx` of node `i`, as a reference when materialized.
    fn elem(&self, i: usize, idx: &[Idx]) -> TokenStream {
        let i = self.alias[i].unwrap_or(i);
        if self.materialized[i] {
            let t = Self::local(i);
            return quote!(#t #([#idx])*);
        }
        self.compute(i, idx)
    }

    /// The element `idx` of node `i`, computed from its operands.
    fn compute(&self, i: usize, idx: &[Idx]) -> TokenStream {
        if let Some(p) = self.alias[i] {
            // The sum is the product's own array, bias included.
            return self.elem(p, idx);
        }
        let node = &self.prog.nodes[i];
        // The index of an operand of an elementwise op: none for a broadcast scalar.
        let sub = |k: usize| -> TokenStream {
            let c = self.child(i, k);
            if self.prog.shapes[c] == Shape::Scalar {
                self.elem(c, &[])
            } else {
                self.elem(c, idx)
            }
        };
        // `W x + b` with a short inline product: the sum starts from `b`, so that it waits
        // only for the last product (as `z = b; z += w x` does), not for one more addition.
        if let Tensor::Add([x, y]) = node {
            for (m, c) in [(*x, *y), (*y, *x)] {
                let (m, c) = (usize::from(m), usize::from(c));
                let Tensor::MatVec([w, v]) = &self.prog.nodes[m] else {
                    continue;
                };
                let (w, v) = (usize::from(*w), usize::from(*v));
                let n = self.prog.shapes[v].len();
                if !self.materialized[m]
                    && self.alias[m].is_none()
                    && n <= INLINE_REDUCTION
                    && self.prog.shapes[c] == self.prog.shapes[m]
                {
                    let start = self.elem(c, idx);
                    let terms = (0..n).map(|k| self.product_term(w, v, &idx[0], Idx::Const(k)));
                    return quote!((#start #(+ #terms)*));
                }
            }
        }
        // The library forms, but in a vector of transcendental values (see `write`).
        let scalar = quote!(#KRATE::__private::ScalarTrait);
        if let Some(e) = elementwise_expr(node, sub, self.fast.get().then_some(&scalar)) {
            return e;
        }
        match node {
            Tensor::Num(v) => self.lit(v.into_inner()),
            Tensor::Symbol(s) => {
                let p = &self.paths[s];
                quote!(#p #([#idx])*)
            }
            // Elementwise operations returned above.
            elementwise_ops!() => {
                unreachable!("elementwise_expr covers every elementwise operation")
            }
            Tensor::Fill(_) => self.elem(self.child(i, 0), &[]),
            Tensor::Transpose(_) => {
                let c = self.child(i, 0);
                self.elem(c, &[idx[1].clone(), idx[0].clone()])
            }
            Tensor::Outer(_) => {
                let a = self.elem(self.child(i, 0), &idx[..1]);
                let b = self.elem(self.child(i, 1), &idx[1..]);
                quote!((#a * #b))
            }
            Tensor::MatVec(_) => {
                let (m, v) = (self.child(i, 0), self.child(i, 1));
                let n = self.prog.shapes[v].len();
                // A long row of a stored matrix times a stored vector: the runtime's `dot`,
                // whose partial sums vectorize along the row (written inline, LLVM tends to
                // vectorize across outputs instead, with gathers).
                if n > INLINE_REDUCTION {
                    if let (Some(mat), Some(vec)) = (self.whole(m), self.whole(v)) {
                        let j = &idx[0];
                        return quote!(#KRATE::__private::dot(&#mat[#j], &#vec));
                    }
                }
                self.reduce(n, |k| self.product_term(m, v, &idx[0], k))
            }
            Tensor::MatMul(_) => {
                let (a, b) = (self.child(i, 0), self.child(i, 1));
                let n = self.prog.shapes[a].dims()[1];
                self.reduce(n, |k| {
                    let x = self.elem(a, &[idx[0].clone(), k.clone()]);
                    let y = self.elem(b, &[k, idx[1].clone()]);
                    quote!(#x * #y)
                })
            }
            Tensor::Sum(_) => {
                let c = self.child(i, 0);
                let n = self.prog.shapes[c].len();
                self.reduce(n, |k| self.elem(c, &[k]))
            }
            Tensor::Softmax(_) | Tensor::LogSumExp(_) | Tensor::MaxMask(_) => {
                // Only reached through `write`; the operand is gathered, so it is stored.
                let c = self
                    .whole(self.child(i, 0))
                    .expect("the operand of softmax is materialized or a symbol");
                let f = match node {
                    Tensor::Softmax(_) => quote!(softmax),
                    Tensor::MaxMask(_) => quote!(max_mask),
                    _ => quote!(logsumexp),
                };
                quote!(#KRATE::__private::#f(&#c))
            }
        }
    }

    /// Term `k` of row `row` of the product of matrix `m` and vector `v`: `m[row][k] * v[k]`.
    fn product_term(&self, m: usize, v: usize, row: &Idx, k: Idx) -> TokenStream {
        let a = self.elem(m, &[row.clone(), k.clone()]);
        let b = self.elem(v, &[k]);
        quote!(#a * #b)
    }

    /// A place expression for the whole of node `i`, if it is stored as an array: a symbol or
    /// a materialized node.
    fn whole(&self, i: usize) -> Option<TokenStream> {
        let i = self.alias[i].unwrap_or(i);
        if self.materialized[i] {
            let t = Self::local(i);
            return Some(quote!(#t));
        }
        match &self.prog.nodes[i] {
            Tensor::Symbol(s) => Some(self.paths[s].clone()),
            _ => None,
        }
    }

    /// `sum_k term(k)` over `0..n`: inline for short sums; otherwise a loop that keeps
    /// [`REDUCTION_LANES`] independent partial sums, so that LLVM can vectorize it (it may not
    /// reorder a single float accumulator), followed by the remainder.
    fn reduce(&self, n: usize, term: impl Fn(Idx) -> TokenStream) -> TokenStream {
        if n <= INLINE_REDUCTION {
            let terms = (0..n).map(|k| term(Idx::Const(k)));
            return quote!((#(#terms)+*));
        }
        let zero = self.zero();
        let acc = self.fresh("acc");
        if n < 2 * REDUCTION_LANES {
            let k = self.fresh("k");
            let t = term(Idx::Var(quote!(#k)));
            return quote!({
                let mut #acc = #zero;
                for #k in 0..#n {
                    #acc += #t;
                }
                #acc
            });
        }
        let lanes = REDUCTION_LANES;
        let chunks = n / lanes;
        let (c, l, k) = (self.fresh("c"), self.fresh("l"), self.fresh("k"));
        let t = term(Idx::Var(quote!((#c * #lanes + #l))));
        let lane_sum = (0..lanes).map(|i| quote!(#acc[#i]));
        let sum = self.fresh("sum");
        let tail = if chunks * lanes < n {
            let tk = term(Idx::Var(quote!(#k)));
            let start = chunks * lanes;
            quote!(for #k in #start..#n { #sum += #tk; })
        } else {
            quote!()
        };
        quote!({
            let mut #acc = [#zero; #lanes];
            for #c in 0..#chunks {
                for #l in 0..#lanes {
                    #acc[#l] += #t;
                }
            }
            let mut #sum = #(#lane_sum)+*;
            #tail
            #sum
        })
    }

    /// Scalar operations needed to compute node `i` in full.
    fn work(&self, i: usize) -> usize {
        let shape = self.prog.shapes[i];
        crate::simplify::cost::node_flops(&self.prog.nodes[i], shape, |c| {
            Some(self.prog.shapes[usize::from(c)])
        })
        .max(shape.len())
    }

    /// Whether node `i` is `W^T^T v` written as a sum of rows of the stored `W^T` (see
    /// `write`): always, except a product small enough to unroll whose stored matrix is one
    /// row or one column, where the unrolled form has no strided reads or horizontal sums
    /// either (the same sums, rounded in another order) and is less code.
    fn sum_of_rows(&self, i: usize) -> bool {
        let Tensor::MatVec([m, _]) = &self.prog.nodes[i] else {
            return false;
        };
        let Tensor::Transpose(w) = &self.prog.nodes[usize::from(*m)] else {
            return false;
        };
        match self.prog.shapes[usize::from(*w)] {
            Shape::Matrix(r, c) => !(self.unroll(i) && (r < 2 || c < 2)),
            _ => false,
        }
    }

    fn unroll(&self, i: usize) -> bool {
        self.work(i) <= UNROLL_LIMIT && self.prog.shapes[i].len() <= UNROLL_ELEMENTS
    }

    /// Statements that compute node `i` into `dest` (`let` or `+=`), unrolled or looped.
    fn write(&self, i: usize, dest: &Dest, unroll: bool) -> TokenStream {
        let shape = self.prog.shapes[i];
        let node = &self.prog.nodes[i];
        let ty = self.ty();
        let zero = self.zero();
        // Whole-array helpers.
        if let (Tensor::Softmax(_) | Tensor::LogSumExp(_) | Tensor::MaxMask(_), Dest::Local(name)) =
            (node, dest)
        {
            let e = self.compute(i, &[]);
            return quote!(let #name = #e;);
        }
        if let (Tensor::MatVec([m, v]), Dest::Local(name)) = (node, dest) {
            if uses_matvec(self.prog, i) {
                if let (Some(mat), Some(vec)) =
                    (self.whole(usize::from(*m)), self.whole(usize::from(*v)))
                {
                    return quote!(let #name = #KRATE::__private::matvec(&#mat, &#vec););
                }
            }
        }
        // W^T g written as a sum of rows, so that the inner loop runs over contiguous,
        // independent outputs and vectorizes (a dot product per output would not), also where
        // the product is small enough to unroll: per output, the unrolled form reads `W`
        // with a stride and sums horizontally.
        //
        // Each row is added as a product and a sum, not a fused multiply-add: one sample has
        // few accumulators, so the chain of additions into each is what limits it, and an
        // FMA lengthens every link (4 cycles against 2 for an add on Zen 5). Measured with
        // `-C target-cpu=native` (`forward/*/prepared` in `benches/nets`, before and after
        // this change in one session): 64-32-10 131 ns to 87 ns, 784-128-10 3.34 us to
        // 2.07 us. Builds without FMA do the same as before.
        if let (Tensor::MatVec([m, v]), Dest::Local(name), true) = (node, dest, self.sum_of_rows(i))
        {
            if let Tensor::Transpose(w) = &self.prog.nodes[usize::from(*m)] {
                let w = usize::from(*w);
                let v = usize::from(*v);
                let (rows, cols) = match self.prog.shapes[w] {
                    Shape::Matrix(r, c) => (r, c),
                    _ => unreachable!("transpose of a matrix"),
                };
                let start = match self.bias[i] {
                    Some(b) => self.whole(b).expect("a stored bias"),
                    None => quote!([#zero; #cols]),
                };
                // Short rows (one vector register or less of outputs) fill too few registers
                // to hide the addition's latency: a chain of `rows` dependent additions. Two
                // sums, of even and of odd rows, halve the chain (measured no better, and
                // spilling in SSE2 builds, for longer rows). Rows shorter than one SSE
                // register stay one sum: a copy of 4-16-3's `prepare().forward` (3 outputs)
                // took 17.3 ns with two sums and 14.4 ns with one (native, Zen 5).
                let row_bytes = cols * self.scalar.bytes();
                let pairs = (16..=64).contains(&row_bytes) && rows >= 8;
                // The runtime's loops (see `add_rows`), on stored arrays: the vector operand of
                // a product and the operand of a transpose are materialized (`Emitter::new`).
                let wm = self.whole(w).expect("the operand of a transpose is stored");
                let vv = self.whole(v).expect("the vector of a product is stored");
                let f = if pairs {
                    quote!(add_rows_pairs)
                } else {
                    quote!(add_rows)
                };
                return quote! {
                    let mut #name = #start;
                    #KRATE::__private::#f(&mut #name, &#wm, &#vv);
                };
            }
        }
        match shape {
            Shape::Scalar => {
                let e = self.compute(i, &[]);
                match dest {
                    Dest::Local(name) => quote!(let #name: #ty = #e;),
                    Dest::AddInto(p) => quote!(#p += #e;),
                }
            }
            Shape::Vector(n) => {
                // A vector of at least 8 `f32` sigmoids (tanh, softplus, exp) is a loop over the
                // polynomial forms, which vectorizes: one at a time, the library's call has the
                // shorter latency, but 8 or more of them in one register win. `benches/candle`,
                // `prepare().forward`, native, Zen 5: 4-16-3 42.7 ns to 29.0 ns, 64-32-10
                // 103.5 ns to 68.7 ns; from 4 elements, 2-4-1 went from 9.1 ns to 9.9 ns.
                let fast = self.scalar == ScalarType::F32
                    && n >= 8
                    && matches!(
                        node,
                        Tensor::Sigmoid(_) | Tensor::Tanh(_) | Tensor::Softplus(_) | Tensor::Exp(_)
                    );
                if unroll && !fast {
                    let es: Vec<TokenStream> =
                        (0..n).map(|j| self.compute(i, &[Idx::Const(j)])).collect();
                    match dest {
                        Dest::Local(name) => quote!(let #name: [#ty; #n] = [#(#es),*];),
                        Dest::AddInto(p) => {
                            let js = 0..n;
                            quote!(#(#p[#js] += #es;)*)
                        }
                    }
                } else {
                    let j = self.fresh("i");
                    self.fast.set(fast);
                    let e = self.compute(i, &[Idx::Var(quote!(#j))]);
                    self.fast.set(false);
                    match dest {
                        Dest::Local(name) => quote! {
                            let mut #name = [#zero; #n];
                            for #j in 0..#n {
                                #name[#j] = #e;
                            }
                        },
                        Dest::AddInto(p) => quote! {
                            for #j in 0..#n {
                                #p[#j] += #e;
                            }
                        },
                    }
                }
            }
            Shape::Matrix(r, c) => {
                if unroll {
                    let rows: Vec<Vec<TokenStream>> = (0..r)
                        .map(|a| {
                            (0..c)
                                .map(|b| self.compute(i, &[Idx::Const(a), Idx::Const(b)]))
                                .collect()
                        })
                        .collect();
                    match dest {
                        Dest::Local(name) => {
                            let rows = rows.iter().map(|row| quote!([#(#row),*]));
                            quote!(let #name: [[#ty; #c]; #r] = [#(#rows),*];)
                        }
                        Dest::AddInto(p) => {
                            let mut out = TokenStream::new();
                            for (a, row) in rows.iter().enumerate() {
                                for (b, e) in row.iter().enumerate() {
                                    out.extend(quote!(#p[#a][#b] += #e;));
                                }
                            }
                            out
                        }
                    }
                } else {
                    let (a, b) = (self.fresh("i"), self.fresh("j"));
                    let e = self.compute(i, &[Idx::Var(quote!(#a)), Idx::Var(quote!(#b))]);
                    match dest {
                        Dest::Local(name) => quote! {
                            let mut #name = [[#zero; #c]; #r];
                            for #a in 0..#r {
                                for #b in 0..#c {
                                    #name[#a][#b] = #e;
                                }
                            }
                        },
                        Dest::AddInto(p) => quote! {
                            for #a in 0..#r {
                                for #b in 0..#c {
                                    #p[#a][#b] += #e;
                                }
                            }
                        },
                    }
                }
            }
        }
    }

    /// The function body: every materialized node in order, then each root into its
    /// destination. `dests[k]` is where `prog.roots[k]` goes.
    pub fn body(&self, dests: &[Dest]) -> TokenStream {
        let mut out = TokenStream::new();
        // softmax(z) and logsumexp(z) of the same z share their exponentials: one call.
        let mut partner: Vec<Option<usize>> = vec![None; self.prog.nodes.len()];
        for (i, a) in self.prog.nodes.iter().enumerate() {
            if let Tensor::Softmax(z) = a {
                for (j, b) in self.prog.nodes.iter().enumerate() {
                    if matches!(b, Tensor::LogSumExp(w) if w == z)
                        && self.materialized[i]
                        && self.materialized[j]
                    {
                        partner[i] = Some(j);
                        partner[j] = Some(i);
                    }
                }
            }
        }
        let mut done = vec![false; self.prog.nodes.len()];
        for i in 0..self.prog.nodes.len() {
            if !self.materialized[i] || done[i] {
                continue;
            }
            if let Some(j) = partner[i] {
                let (sm, lse) = match self.prog.nodes[i] {
                    Tensor::Softmax(_) => (i, j),
                    _ => (j, i),
                };
                let (ts, tl) = (Self::local(sm), Self::local(lse));
                let z = self
                    .whole(self.child(sm, 0))
                    .expect("the operand of softmax is materialized or a symbol");
                out.extend(quote!(let (#ts, #tl) = #KRATE::__private::softmax_logsumexp(&#z);));
                done[j] = true;
                continue;
            }
            let unroll = self.unroll(i);
            out.extend(self.write(i, &Dest::Local(Self::local(i)), unroll));
        }
        for (&r, dest) in self.prog.roots.iter().zip(dests) {
            match dest {
                Dest::Local(name) => {
                    if self.materialized[r] {
                        let t = Self::local(r);
                        out.extend(quote!(let #name = #t;));
                    } else {
                        let unroll = self.unroll(r);
                        out.extend(self.write_value(r, name, unroll));
                    }
                }
                Dest::AddInto(_) => {
                    if self.materialized[r] {
                        out.extend(self.copy_into(r, dest));
                    } else {
                        out.extend(self.write(r, dest, self.unroll(r)));
                    }
                }
            }
        }
        out
    }

    /// `let name = <value of root r>;` for a root that is not materialized (a leaf, or an
    /// inlined elementwise term).
    fn write_value(&self, r: usize, name: &Ident, unroll: bool) -> TokenStream {
        if let Tensor::Symbol(s) = &self.prog.nodes[r] {
            let p = &self.paths[s];
            return quote!(let #name = #p;);
        }
        self.write(r, &Dest::Local(name.clone()), unroll)
    }

    /// `dest += t_r` elementwise.
    fn copy_into(&self, r: usize, dest: &Dest) -> TokenStream {
        let Dest::AddInto(p) = dest else {
            unreachable!()
        };
        let t = Self::local(r);
        let dims = self.prog.shapes[r].dims();
        match dims.len() {
            0 => quote!(#p += #t;),
            1 => {
                let (j, jl) = Axis::over(dims[0], || self.fresh("i"));
                jl.wrap(quote!(#p[#j] += #t[#j];))
            }
            _ => {
                let (a, al) = Axis::over(dims[0], || self.fresh("i"));
                let (b, bl) = Axis::over(dims[1], || self.fresh("j"));
                al.wrap(bl.wrap(quote!(#p[#a][#b] += #t[#a][#b];)))
            }
        }
    }
}
