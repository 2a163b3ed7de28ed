//! Batched emission: a chunk of `LANES` samples is computed at once, with the samples in the
//! innermost array dimension (`[[T; LANES]; n]` for a vector), so that every loop over samples
//! is a loop over SIMD lanes.
//!
//! Per-sample code computes `W x` as one dot product per output, a reduction that must be
//! summed in order. With samples across lanes, `W X` is `for j, k: acc[..] += W[j][k] * X[k][..]`:
//! a broadcast weight times a vector of samples, no reduction at all. The weight gradient
//! `sum_s delta_s x_s^T` is written with the samples' rows contiguous (`x` is read straight from
//! the batch, other vectors are transposed once per chunk), so its loop vectorizes along the
//! row. Values that do not depend on the sample (parameters, constants, `seed`) stay scalar.

use crate::KRATE;
use std::collections::HashMap;

use egg::{Language, Symbol};
use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use crate::check::ScalarType;
use crate::emit::{
    elementwise_expr, elementwise_ops, is_elementwise, scalar_lit, scalar_type, Axis, Idx,
};
use crate::ir::{sample_symbol, target_symbol, Shape, Tensor};
use crate::simplify::Program;

/// Samples per chunk for `f32` (16 lanes fill an AVX-512 register, two AVX ones).
pub const LANES_F32: usize = 16;
/// Samples per chunk for `f64`.
pub const LANES_F64: usize = 8;

/// Output rows computed together by a matrix product over a chunk (independent accumulator
/// chains; 8 cover the latency of an FMA at two per cycle).
pub const ROW_BLOCK: usize = 8;

/// [`ROW_BLOCK`] in the AVX-512 copy of batch code, which has 32 vector registers.
pub const WIDE_ROW_BLOCK: usize = 16;

/// Partial sums over the chunk's samples in a weight-gradient row.
pub const SAMPLE_SPLIT: usize = 4;

/// Rows of a weight gradient `sum_s u_s v_s^T` updated together in batch code, for each block
/// of inputs one vector register wide: each register of inputs is loaded once for all of them,
/// and with two accumulators per row (the halves of the chunk) they are eight chains.
pub const OUTER_ROWS: usize = 4;

const _: () =
    assert!(LANES_F32.is_multiple_of(SAMPLE_SPLIT) && LANES_F64.is_multiple_of(SAMPLE_SPLIT));

/// The number of lanes for a scalar type.
pub fn lanes(scalar: ScalarType) -> usize {
    match scalar {
        ScalarType::F32 => LANES_F32,
        ScalarType::F64 => LANES_F64,
    }
}

/// Where a root of the chunk program goes.
pub enum LaneDest {
    /// Summed over the chunk's samples and added (elementwise) into a place: the loss total,
    /// or a gradient such as `grad.l.w`.
    AddInto(TokenStream),
    /// Stored per sample into `out[base + s]` (a forward output).
    Rows(TokenStream),
}

/// Every loop over a chunk's lanes outside the weight-gradient kernels is a call
/// `__private::lanes::<L>(|s| ..)`, not a loop written in the body. LLVM unrolls each such loop
/// inside its own small function and inlines the straight-line result (each closure is called
/// once), and the borrow checker checks each closure on its own. With hundreds of loops in one
/// body, LLVM's loop passes (induction-variable simplification, full unrolling, rotation) and
/// the borrow checker grew superlinearly: 64 stacked `dense(1)` built in 10.0 s with the loops
/// in place (6.0 s of LLVM passes, 1.5 s of borrow checking; `-Z time-passes`) and in 5.5 s
/// with the calls (3.0 s, 0.35 s). The other loops are `while` loops, not `for`: a `for` loop
/// borrows its iterator mutably on every step, which the borrow checker pays for per program
/// point.
///
/// Multiply-adds are written `__I::mul_add`: the chunk loop lives in a body generic over the
/// runtime's `simd::Isa` named `__I`, compiled once per instruction set (see `codegen`).
///
/// Writes the body of a chunk loop. The caller binds `xl` (`[[T; LANES]; INPUTS]`), `yl`,
/// `xs`, `ys` and `base` (the chunk's first sample).
pub struct LaneEmitter<'a> {
    prog: &'a Program,
    scalar: ScalarType,
    paths: &'a HashMap<Symbol, TokenStream>,
    lanes: usize,
    /// Whether a node depends on the sample (`x` or `y`).
    varying: Vec<bool>,
    materialized: Vec<bool>,
    /// `bias[i] = Some(b)`: product `i` starts its accumulators from the stored vector `b`,
    /// and the sum `i + b` (whose `alias` is `i`) is never written on its own.
    bias: Vec<Option<usize>>,
    /// A sum `W v + b` that is the product's own local (see `bias`).
    alias: Vec<Option<usize>>,
    /// While writing a vector in one flat loop (see `write`): the lane index is the flat
    /// index `q` over `[[T; LANES]; n]`, and varying arrays are read through `as_flattened`.
    flat: std::cell::Cell<bool>,
    counter: std::cell::Cell<usize>,
}

impl<'a> LaneEmitter<'a> {
    /// Plans the chunk program.
    pub fn new(
        prog: &'a Program,
        scalar: ScalarType,
        paths: &'a HashMap<Symbol, TokenStream>,
    ) -> Self {
        let n = prog.nodes.len();
        let mut varying = vec![false; n];
        let mut uses = vec![0usize; n];
        for (i, node) in prog.nodes.iter().enumerate() {
            varying[i] = match node {
                Tensor::Symbol(s) => *s == sample_symbol() || *s == target_symbol(),
                _ => node.children().iter().any(|c| varying[usize::from(*c)]),
            };
            for c in node.children() {
                uses[usize::from(*c)] += 1;
            }
        }
        for &r in &prog.roots {
            uses[r] += 1;
        }
        let elementwise = |node: &Tensor| is_elementwise(node) || matches!(node, Tensor::Fill(_));
        // Operands read at other indices than their consumer's own.
        let mut gathered = vec![false; n];
        for node in &prog.nodes {
            if !elementwise(node) {
                for c in node.children() {
                    gathered[usize::from(*c)] = true;
                }
            }
        }
        // `W v + b` with a stored `b`, where the product has no other use: the product's
        // accumulators start from `b` (one pass over the layer's outputs fewer).
        let mut bias = vec![None; n];
        let mut alias = vec![None; n];
        for (i, node) in prog.nodes.iter().enumerate() {
            if let Tensor::Add([a, b]) = node {
                for (p, q) in [
                    (usize::from(*a), usize::from(*b)),
                    (usize::from(*b), usize::from(*a)),
                ] {
                    let product = matches!(&prog.nodes[p], Tensor::MatVec([m, _]) if !varying[usize::from(*m)]);
                    if product
                        && varying[p]
                        && uses[p] == 1
                        && bias[p].is_none()
                        && matches!(prog.nodes[q], Tensor::Symbol(_))
                        && !varying[q]
                        && prog.shapes[q] == prog.shapes[p]
                    {
                        bias[p] = Some(q);
                        alias[i] = Some(p);
                        break;
                    }
                }
            }
        }
        let materialized = (0..n)
            .map(|i| {
                let node = &prog.nodes[i];
                if node.is_leaf() || matches!(node, Tensor::Transpose(_)) || alias[i].is_some() {
                    return false;
                }
                if !varying[i] {
                    // Uniform values (`seed` times constants) are scalars, computed once.
                    return prog.shapes[i] == Shape::Scalar || uses[i] > 1 || gathered[i];
                }
                // An outer product is read in place (from its operands, materialized or, for
                // `u`, copied into a lane array first): a weight-gradient root is summed over
                // the chunk straight from them.
                let in_place = elementwise(node) || matches!(node, Tensor::Outer(_));
                !in_place || uses[i] > 1 || gathered[i]
            })
            .collect();
        LaneEmitter {
            prog,
            scalar,
            paths,
            lanes: lanes(scalar),
            varying,
            materialized,
            bias,
            alias,
            flat: std::cell::Cell::new(false),
            counter: std::cell::Cell::new(0),
        }
    }

    fn fresh(&self, prefix: &str) -> Ident {
        let c = self.counter.get();
        self.counter.set(c + 1);
        format_ident!("{}{}", prefix, c)
    }

    /// An index over `n` elements and its loop (see [`Axis`]).
    fn axis(&self, prefix: &str, n: usize) -> (Idx, Axis) {
        Axis::over(n, || self.fresh(prefix))
    }

    /// `body` once per lane, `s` bound to the lane: a call of the runtime's `lanes` (see the
    /// type's docs for why).
    fn lane_loop(&self, s: &Ident, body: TokenStream) -> TokenStream {
        let l = self.lanes;
        quote!(#KRATE::__private::lanes::<#l>(|#s: usize| { #body });)
    }

    fn local(i: usize) -> Ident {
        format_ident!("v{}", i)
    }

    fn ty(&self) -> TokenStream {
        scalar_type(self.scalar)
    }

    fn lit(&self, v: f64) -> TokenStream {
        scalar_lit(self.scalar, v)
    }

    fn child(&self, i: usize, k: usize) -> usize {
        usize::from(self.prog.nodes[i].children()[k])
    }

    /// Element `idx` of node `i` in lane `lane` (ignored for uniform nodes).
    fn elem(&self, i: usize, idx: &[Idx], lane: &Idx) -> TokenStream {
        let i = self.alias[i].unwrap_or(i);
        if self.materialized[i] {
            let t = Self::local(i);
            return if !self.varying[i] {
                quote!(#t #([#idx])*)
            } else if self.flat.get() {
                quote!(#t.as_flattened()[#lane])
            } else {
                quote!(#t #([#idx])* [#lane])
            };
        }
        self.compute(i, idx, lane)
    }

    /// Whether operand `i` of an elementwise vector can be read in one flat loop: it is
    /// uniform, or a varying array of the vector's shape, or computed inline from such (a
    /// varying scalar, one per lane, would be read at `q % LANES`, which LLVM does not
    /// vectorize).
    fn flat_ok(&self, i: usize) -> bool {
        let i = self.alias[i].unwrap_or(i);
        let node = &self.prog.nodes[i];
        if !self.varying[i] {
            return true;
        }
        if self.prog.shapes[i] == Shape::Scalar {
            return false;
        }
        if self.materialized[i] || node.is_leaf() {
            return true;
        }
        (is_elementwise(node) || matches!(node, Tensor::Fill(_)))
            && node
                .children()
                .iter()
                .all(|c| self.flat_ok(usize::from(*c)))
    }

    fn compute(&self, i: usize, idx: &[Idx], lane: &Idx) -> TokenStream {
        let node = &self.prog.nodes[i];
        let sub = |k: usize| -> TokenStream {
            let c = self.child(i, k);
            if self.prog.shapes[c] == Shape::Scalar {
                self.elem(c, &[], lane)
            } else {
                self.elem(c, idx, lane)
            }
        };
        if let Some(e) = elementwise_expr(node, sub, Some(&quote!(__I))) {
            return e;
        }
        match node {
            Tensor::Num(v) => self.lit(v.into_inner()),
            Tensor::Symbol(s) if *s == sample_symbol() && self.flat.get() => {
                quote!(xl.as_flattened()[#lane])
            }
            Tensor::Symbol(s) if *s == target_symbol() && self.flat.get() => {
                quote!(yl.as_flattened()[#lane])
            }
            Tensor::Symbol(s) if *s == sample_symbol() => quote!(xl #([#idx])* [#lane]),
            Tensor::Symbol(s) if *s == target_symbol() => quote!(yl #([#idx])* [#lane]),
            Tensor::Symbol(s) => {
                let p = &self.paths[s];
                quote!(#p #([#idx])*)
            }
            // Elementwise operations returned above.
            elementwise_ops!() => {
                unreachable!("elementwise_expr covers every elementwise operation")
            }
            Tensor::Fill(_) => self.elem(self.child(i, 0), &[], lane),
            Tensor::Transpose(_) => {
                let c = self.child(i, 0);
                self.elem(c, &[idx[1].clone(), idx[0].clone()], lane)
            }
            Tensor::Outer(_) => {
                let a = self.elem(self.child(i, 0), &idx[..1], lane);
                let b = self.elem(self.child(i, 1), &idx[1..], lane);
                quote!((#a * #b))
            }
            // Reductions, per lane (only reached for uniform nodes or unusual programs; the
            // common varying cases are written by `write`).
            Tensor::MatVec(_) | Tensor::MatMul(_) | Tensor::Sum(_) => {
                let (n, term): (usize, Box<dyn Fn(Idx) -> TokenStream>) = match node {
                    Tensor::MatVec(_) => {
                        let (m, v) = (self.child(i, 0), self.child(i, 1));
                        let j = idx[0].clone();
                        (
                            self.prog.shapes[v].len(),
                            Box::new(move |k: Idx| {
                                let a = self.elem(m, &[j.clone(), k.clone()], lane);
                                let b = self.elem(v, &[k], lane);
                                quote!(#a * #b)
                            }),
                        )
                    }
                    Tensor::MatMul(_) => {
                        let (a, b) = (self.child(i, 0), self.child(i, 1));
                        let (r, c) = (idx[0].clone(), idx[1].clone());
                        (
                            self.prog.shapes[a].dims()[1],
                            Box::new(move |k: Idx| {
                                let x = self.elem(a, &[r.clone(), k.clone()], lane);
                                let y = self.elem(b, &[k, c.clone()], lane);
                                quote!(#x * #y)
                            }),
                        )
                    }
                    _ => {
                        let c = self.child(i, 0);
                        (
                            self.prog.shapes[c].len(),
                            Box::new(move |k: Idx| self.elem(c, &[k], lane)),
                        )
                    }
                };
                let k = self.fresh("k");
                let acc = self.fresh("acc");
                let t = term(Idx::Var(quote!(#k)));
                let zero = self.lit(0.0);
                quote!({
                    let mut #acc = #zero;
                    for #k in 0..#n {
                        #acc += #t;
                    }
                    #acc
                })
            }
            Tensor::Softmax(z) | Tensor::LogSumExp(z) | Tensor::MaxMask(z) => {
                // A uniform softmax (its operand does not depend on the sample): the
                // per-sample helper on the operand's array.
                let z = usize::from(*z);
                let z = self.alias[z].unwrap_or(z);
                let arr = if self.materialized[z] {
                    let t = Self::local(z);
                    quote!(#t)
                } else {
                    match &self.prog.nodes[z] {
                        Tensor::Symbol(sym) => self.paths[sym].clone(),
                        _ => {
                            let n = self.prog.shapes[z].len();
                            let j = self.fresh("j");
                            let e = self.elem(z, &[Idx::Var(quote!(#j))], lane);
                            let zero = self.lit(0.0);
                            quote!({ let mut a = [#zero; #n]; for #j in 0..#n { a[#j] = #e; } a })
                        }
                    }
                };
                let f = match node {
                    Tensor::Softmax(_) => quote!(softmax),
                    Tensor::MaxMask(_) => quote!(max_mask),
                    _ => quote!(logsumexp),
                };
                let e = quote!(#KRATE::__private::#f(&#arr));
                if matches!(node, Tensor::Softmax(_) | Tensor::MaxMask(_)) {
                    quote!(#e #([#idx])*)
                } else {
                    e
                }
            }
        }
    }

    /// Statements computing materialized node `i` into its local.
    fn write(&self, i: usize) -> TokenStream {
        let node = &self.prog.nodes[i];
        let shape = self.prog.shapes[i];
        let t = Self::local(i);
        let ty = self.ty();
        let zero = self.lit(0.0);
        let l = self.lanes;
        if !self.varying[i] {
            // A uniform value: computed once per chunk, like per-sample code.
            let no_lane = Idx::Const(0);
            return match shape {
                Shape::Scalar => {
                    let e = self.compute(i, &[], &no_lane);
                    quote!(let #t: #ty = #e;)
                }
                Shape::Vector(n) => {
                    let (j, jl) = self.axis("j", n);
                    let e = self.compute(i, std::slice::from_ref(&j), &no_lane);
                    let set = jl.wrap(quote!(#t[#j] = #e;));
                    quote!(let mut #t = [#zero; #n]; #set)
                }
                Shape::Matrix(r, c) => {
                    let ((a, al), (b, bl)) = (self.axis("a", r), self.axis("b", c));
                    let e = self.compute(i, &[a.clone(), b.clone()], &no_lane);
                    let set = al.wrap(bl.wrap(quote!(#t[#a][#b] = #e;)));
                    quote!(let mut #t = [[#zero; #c]; #r]; #set)
                }
            };
        }
        let s = self.fresh("s");
        let lane = Idx::Var(quote!(#s));
        match (node, shape) {
            (Tensor::Softmax(z), _) | (Tensor::LogSumExp(z), _) | (Tensor::MaxMask(z), _) => {
                // The operand is materialized (softmax gathers it), or `x` / `y` themselves.
                let z = match &self.prog.nodes[usize::from(*z)] {
                    Tensor::Symbol(sym) if *sym == sample_symbol() => quote!(xl),
                    Tensor::Symbol(sym) if *sym == target_symbol() => quote!(yl),
                    _ => {
                        // The sum `W v + b` is the product's own array.
                        let z = usize::from(*z);
                        let t = Self::local(self.alias[z].unwrap_or(z));
                        quote!(#t)
                    }
                };
                let f = match node {
                    Tensor::Softmax(_) => quote!(softmax_lanes),
                    Tensor::MaxMask(_) => quote!(max_mask_lanes),
                    _ => quote!(logsumexp_lanes),
                };
                quote!(let #t = #KRATE::__private::#f(&#z);)
            }
            (Tensor::MatVec([m, v]), Shape::Vector(r)) if !self.varying[usize::from(*m)] => {
                // W V with samples across lanes: a broadcast weight times a vector of samples.
                // ROW_BLOCK rows at a time, so that there are that many independent
                // accumulator chains (an FMA's latency is several cycles) and each vector of
                // samples is loaded once for all of them.
                let (m, v) = (usize::from(*m), usize::from(*v));
                let c = self.prog.shapes[v].len();
                let (k, kl) = self.axis("k", c);
                let x = self.elem(v, std::slice::from_ref(&k), &lane);
                // The accumulators start from the bias, if this product has one.
                let init = |row: Idx| match self.bias[i] {
                    Some(b) => {
                        let e = self.elem(b, &[row], &lane);
                        quote!([#e; #l])
                    }
                    None => quote!([#zero; #l]),
                };
                // Rows `from..to`: blocks of `rb` rows, then the rest one at a time.
                let rows_code = |rb: usize, from: usize, to: usize| {
                    let blocks = (to - from) / rb;
                    let jb = self.fresh("jb");
                    let first = |q: usize| Idx::Var(quote!((#from + #jb * #rb + #q)));
                    // The rows after the blocks: one is a constant index.
                    let after = from + blocks * rb;
                    let (j, jl) = if to - after == 1 {
                        (Idx::Const(to - 1), Axis(None))
                    } else {
                        let j = self.fresh("j");
                        (Idx::Var(quote!(#j)), Axis(Some((j, quote!(#after..#to)))))
                    };
                    let w1 = self.elem(m, &[j.clone(), k.clone()], &lane);
                    // The rows of a block are written out, one accumulator each: as a loop,
                    // LLVM vectorizes across the rows with gathers instead of across the
                    // samples.
                    let accs: Vec<Ident> = (0..rb).map(|q| format_ident!("rowacc{}", q)).collect();
                    let rows = (0..rb).map(|q| {
                        let acc = &accs[q];
                        let w = self.elem(m, &[first(q), k.clone()], &lane);
                        let fma = self
                            .lane_loop(&s, quote!(#acc[#s] = __I::mul_add(w, xk[#s], #acc[#s]);));
                        quote! {
                            let w = #w;
                            #fma
                        }
                    });
                    let inits = (0..rb).map(|q| init(first(q)));
                    let stores = (0..rb).map(|q| {
                        let acc = &accs[q];
                        let row = first(q);
                        quote!(#t[#row] = #acc;)
                    });
                    // Only the parts the shape has: a network of narrow layers would otherwise
                    // carry an empty block loop per product, and its build time grows with
                    // them.
                    let blocked = (blocks > 0).then(|| {
                        let load = self.lane_loop(&s, quote!(xk[#s] = #x;));
                        let inner = kl.wrap(quote! {
                            let mut xk = [#zero; #l];
                            #load
                            #(#rows)*
                        });
                        quote! {
                            for #jb in 0..#blocks {
                                #(let mut #accs = #inits;)*
                                #inner
                                #(#stores)*
                            }
                        }
                    });
                    let rest = (to > after).then(|| {
                        let fma =
                            self.lane_loop(&s, quote!(acc[#s] = __I::mul_add(w, #x, acc[#s]);));
                        let inner = kl.wrap(quote! {
                            let w = #w1;
                            #fma
                        });
                        let start = init(j.clone());
                        jl.wrap(quote! {
                            let mut acc = #start;
                            #inner
                            #t[#j] = acc;
                        })
                    });
                    quote!(#blocked #rest)
                };
                let narrow = rows_code(ROW_BLOCK, 0, r);
                // With 32 vector registers (AVX-512) twice the rows: twice the chains, and each
                // vector of samples loaded once for 16 rows.
                let wide_rows = r / WIDE_ROW_BLOCK * WIDE_ROW_BLOCK;
                let body = if wide_rows > 0 {
                    let wide = rows_code(WIDE_ROW_BLOCK, 0, wide_rows);
                    let after = (wide_rows < r).then(|| rows_code(ROW_BLOCK, wide_rows, r));
                    quote! {
                        if __I::VECTOR_BYTES >= 64 {
                            #wide
                            #after
                        } else {
                            #narrow
                        }
                    }
                } else {
                    narrow
                };
                quote! {
                    let mut #t = [[#zero; #l]; #r];
                    #body
                }
            }
            (Tensor::Sum(v), Shape::Scalar) => {
                let v = usize::from(*v);
                let n = self.prog.shapes[v].len();
                let (k, kl) = self.axis("k", n);
                let e = self.elem(v, &[k], &lane);
                let add = kl.wrap(self.lane_loop(&s, quote!(#t[#s] += #e;)));
                quote! {
                    let mut #t = [#zero; #l];
                    #add
                }
            }
            (_, Shape::Scalar) => {
                let e = self.compute(i, &[], &lane);
                {
                    let set = self.lane_loop(&s, quote!(#t[#s] = #e;));
                    quote!(let mut #t = [#zero; #l]; #set)
                }
            }
            (_, Shape::Vector(n))
                if n > 1
                    && (is_elementwise(node) || matches!(node, Tensor::Fill(_)))
                    && node
                        .children()
                        .iter()
                        .all(|c| self.flat_ok(usize::from(*c))) =>
            {
                // One loop over the flattened `[[T; LANES]; n]`: as nested loops, LLVM
                // unrolls the lane loop and vectorizes across the outputs with gathers and
                // scatters instead.
                let q = self.fresh("q");
                let total = n * l;
                self.flat.set(true);
                let e = self.compute(i, &[Idx::Var(quote!((#q / #l)))], &Idx::Var(quote!(#q)));
                self.flat.set(false);
                quote! {
                    let mut #t = [[#zero; #l]; #n];
                    {
                        let flat = #t.as_flattened_mut();
                        let mut #q = 0usize;
                        while #q < #total {
                            flat[#q] = #e;
                            #q += 1;
                        }
                    }
                }
            }
            (_, Shape::Vector(n)) => {
                let (j, jl) = self.axis("j", n);
                let e = self.compute(i, std::slice::from_ref(&j), &lane);
                let set = jl.wrap(self.lane_loop(&s, quote!(#t[#j][#s] = #e;)));
                quote!(let mut #t = [[#zero; #l]; #n]; #set)
            }
            (_, Shape::Matrix(r, c)) => {
                let ((a, al), (b, bl)) = (self.axis("a", r), self.axis("b", c));
                let e = self.compute(i, &[a.clone(), b.clone()], &lane);
                let set = al.wrap(bl.wrap(self.lane_loop(&s, quote!(#t[#a][#b][#s] = #e;))));
                quote!(let mut #t = [[[#zero; #l]; #c]; #r]; #set)
            }
        }
    }

    /// Statements adding root `r`, summed over the chunk's lanes, into `dest`.
    fn add_root(&self, r: usize, dest: &TokenStream) -> TokenStream {
        let l = self.lanes;
        let zero = self.lit(0.0);
        let s = self.fresh("s");
        let lane = Idx::Var(quote!(#s));
        let count = self.lit(l as f64);
        match (&self.prog.nodes[r], self.prog.shapes[r]) {
            _ if !self.varying[r] => {
                // The same value for every sample of the chunk.
                match self.prog.shapes[r] {
                    Shape::Scalar => {
                        let e = self.elem(r, &[], &lane);
                        quote!(#dest += #count * #e;)
                    }
                    Shape::Vector(n) => {
                        let (j, jl) = self.axis("j", n);
                        let e = self.elem(r, std::slice::from_ref(&j), &lane);
                        jl.wrap(quote!(#dest[#j] += #count * #e;))
                    }
                    Shape::Matrix(rr, c) => {
                        let ((a, al), (b, bl)) = (self.axis("a", rr), self.axis("b", c));
                        let e = self.elem(r, &[a.clone(), b.clone()], &lane);
                        al.wrap(bl.wrap(quote!(#dest[#a][#b] += #count * #e;)))
                    }
                }
            }
            (Tensor::Outer([u, v]), Shape::Matrix(rr, c)) => {
                // sum_s u_s v_s^T, `v`'s rows contiguous. The inputs go in blocks of one
                // vector register, half the chunk's samples at a time: the half's input vectors
                // stay in registers while every row of the gradient is updated, with one
                // broadcast multiply-add per sample (`u` read from memory, varying with the
                // row). Blocks of several rows instead kept 4 x 16 broadcast values live
                // across the input loop, and they spilled.
                let (u, v) = (usize::from(*u), usize::from(*v));
                let ty = self.ty();
                // Elements of the widest register (AVX-512, 64 bytes).
                let most = 64 / self.scalar.bytes();
                if c < most {
                    return self.outer_narrow(u, v, rr, c, dest, &s);
                }
                let (i0, t, o) = (self.fresh("i"), self.fresh("t"), self.fresh("o"));
                // The chunk's rows of `xs` or `ys` as one array: no bounds check per sample.
                let rows_of = |name: TokenStream| {
                    let r = self.fresh("chunk");
                    (
                        {
                            let rows = chunk_rows(&name, &ty, c, l, false);
                            quote!(let #r = #rows;)
                        },
                        quote!(#r[#s][#i0 + #t]),
                    )
                };
                let (pre, row) = match &self.prog.nodes[v] {
                    Tensor::Symbol(sym) if *sym == sample_symbol() => rows_of(quote!(xs)),
                    Tensor::Symbol(sym) if *sym == target_symbol() => rows_of(quote!(ys)),
                    _ if self.varying[v] => {
                        let (pre, vt) = self.lane_copy(v, c, true);
                        (pre, quote!(#vt[#s][#i0 + #t]))
                    }
                    _ => {
                        let col = Idx::Var(quote!((#i0 + #t)));
                        (quote!(), self.elem(v, std::slice::from_ref(&col), &lane))
                    }
                };
                // `u` of row `o + k` in `lane`, read inside the loops: from its own lane
                // array, or from a copy when it is computed inline.
                let ui = self.alias[u].unwrap_or(u);
                let (upre, us) = if self.materialized[ui] {
                    (quote!(), None)
                } else {
                    let (pre, us) = self.lane_copy(u, rr, false);
                    (pre, Some(us))
                };
                let ue_at = |k: usize, lane: TokenStream| {
                    let row = if k == 0 {
                        quote!(#o)
                    } else {
                        quote!((#o + #k))
                    };
                    match &us {
                        Some(us) => quote!(#us[#row][#lane]),
                        None => self.elem(u, &[Idx::Var(row)], &Idx::Var(lane)),
                    }
                };
                let half = l / 2;
                let (split, per) = (SAMPLE_SPLIT, l / SAMPLE_SPLIT);
                // `rows` rows of the gradient from row `o` on: per row, two accumulators (the
                // two halves of the chunk's samples), so 2 * rows independent chains.
                let block = |rows: usize| {
                    let ks: Vec<usize> = (0..rows).collect();
                    let acc: Vec<Ident> = ks.iter().map(|k| format_ident!("acc{}", k)).collect();
                    let fmas = ks.iter().map(|&k| {
                        let a = &acc[k];
                        let (u0, u1) = (ue_at(k, quote!(#s)), ue_at(k, quote!((#s + #half))));
                        quote! {
                            let (u0, u1) = (#u0, #u1);
                            let mut #t = 0usize;
                            while #t < ib {
                                #a[0][#t] = __I::mul_add(u0, x0[#t], #a[0][#t]);
                                #a[1][#t] = __I::mul_add(u1, x1[#t], #a[1][#t]);
                                #t += 1;
                            }
                        }
                    });
                    let stores = ks.iter().map(|&k| {
                        let a = &acc[k];
                        quote! {
                            let d = &mut #dest[#o + #k][#i0..#i0 + ib];
                            let mut #t = 0usize;
                            while #t < ib {
                                d[#t] += #a[0][#t] + #a[1][#t];
                                #t += 1;
                            }
                        }
                    });
                    quote! {
                        #(let mut #acc = [[#zero; #most]; 2];)*
                        let mut #s = 0usize;
                        while #s < #half {
                            let mut x0 = [#zero; #most];
                            let mut x1 = [#zero; #most];
                            let mut #t = 0usize;
                            while #t < ib {
                                x0[#t] = #row;
                                #t += 1;
                            }
                            {
                                let #s = #s + #half;
                                let mut #t = 0usize;
                                while #t < ib {
                                    x1[#t] = #row;
                                    #t += 1;
                                }
                            }
                            #(#fmas)*
                            #s += 1;
                        }
                        #(#stores)*
                    }
                };
                // Only the parts the shape has (build time): whole row blocks, single rows
                // after them, and the inputs after the last whole register, which no
                // register width leaves when `c` is a multiple of the widest.
                let (ob, whole) = (OUTER_ROWS, rr / OUTER_ROWS * OUTER_ROWS);
                let blocked = (whole > 0).then(|| {
                    let b = block(ob);
                    quote! {
                        while #o < #whole {
                            #b
                            #o += #ob;
                        }
                    }
                });
                let single = (rr > whole).then(|| {
                    let b = block(1);
                    quote! {
                        while #o < #rr {
                            #b
                            #o += 1;
                        }
                    }
                });
                let tail = (c % most != 0).then(|| {
                    let ue = ue_at(0, quote!(#s));
                    quote! {
                        // Inputs left over (fewer than a register): one at a time, with
                        // SAMPLE_SPLIT independent partial sums over the samples.
                        let #t = 0usize;
                        while #i0 < #c {
                            let mut #o = 0usize;
                            while #o < #rr {
                                let mut part = [#zero; #split];
                                let mut q = 0usize;
                                while q < #split {
                                    let mut #s = q * #per;
                                    while #s < (q + 1) * #per {
                                        part[q] = __I::mul_add(#ue, #row, part[q]);
                                        #s += 1;
                                    }
                                    q += 1;
                                }
                                let mut a = #dest[#o][#i0];
                                let mut q = 0usize;
                                while q < #split {
                                    a += part[q];
                                    q += 1;
                                }
                                #dest[#o][#i0] = a;
                                #o += 1;
                            }
                            #i0 += 1;
                        }
                    }
                });
                quote! {
                    #pre
                    #upre
                    {
                        let ib: usize = __I::VECTOR_BYTES / ::core::mem::size_of::<#ty>();
                        let mut #i0 = 0usize;
                        while #i0 + ib <= #c {
                            let mut #o = 0usize;
                            #blocked
                            #single
                            #i0 += ib;
                        }
                        #tail
                    }
                }
            }
            (_, Shape::Scalar) => {
                let e = self.elem(r, &[], &lane);
                {
                    let sum = self.lane_loop(&s, quote!(a += #e;));
                    quote!({ let mut a = #zero; #sum #dest += a; })
                }
            }
            (_, Shape::Vector(n)) => {
                let (j, jl) = self.axis("j", n);
                let e = self.elem(r, std::slice::from_ref(&j), &lane);
                let sum = self.lane_loop(&s, quote!(a += #e;));
                jl.wrap(quote!(let mut a = #dest[#j]; #sum #dest[#j] = a;))
            }
            (_, Shape::Matrix(rr, c)) => {
                let ((a, al), (b, bl)) = (self.axis("a", rr), self.axis("b", c));
                let e = self.elem(r, &[a.clone(), b.clone()], &lane);
                let sum = self.lane_loop(&s, quote!(acc += #e;));
                al.wrap(bl.wrap(quote!(let mut acc = #dest[#a][#b]; #sum #dest[#a][#b] = acc;)))
            }
        }
    }

    /// Statements that copy varying vector `v` (of `n` elements) of every lane into a local,
    /// and that local's name: `[[T; n]; LANES]` (one sample's row after another, as a weight
    /// gradient `sum_s u_s v_s^T` reads `v`) when `by_sample`, else `[[T; LANES]; n]`.
    fn lane_copy(&self, v: usize, n: usize, by_sample: bool) -> (TokenStream, Ident) {
        let (l, zero) = (self.lanes, self.lit(0.0));
        let name = self.fresh(if by_sample { "rows" } else { "us" });
        let ((a, al), b) = (self.axis("a", n), self.fresh("b"));
        let e = self.elem(v, std::slice::from_ref(&a), &Idx::Var(quote!(#b)));
        let (place, array) = if by_sample {
            (quote!(#name[#b][#a]), quote!([[#zero; #n]; #l]))
        } else {
            (quote!(#name[#a][#b]), quote!([[#zero; #l]; #n]))
        };
        let fill = al.wrap(quote! {
            let mut #b = 0usize;
            while #b < #l {
                #place = #e;
                #b += 1;
            }
        });
        (
            quote! {
                let mut #name = #array;
                #fill
            },
            name,
        )
    }

    /// [`Self::add_root`] of an outer product `sum_s u_s v_s^T` whose rows are shorter than an
    /// AVX-512 register: `OUTER_ROWS` rows at a time for each input, two partial sums each (the
    /// halves of the chunk), and rows after the last block in `SAMPLE_SPLIT` partial sums. (The
    /// register-blocked form of `add_root` measured slower on such narrow inputs: 4-16-3
    /// `train_step_32` 0.71 us against 1.10 us.)
    fn outer_narrow(
        &self,
        u: usize,
        v: usize,
        rr: usize,
        c: usize,
        dest: &TokenStream,
        s: &Ident,
    ) -> TokenStream {
        let l = self.lanes;
        let lane = &Idx::Var(quote!(#s));
        let zero = self.lit(0.0);
        // sum_s u_s v_s^T with the rows of v contiguous: a row of the gradient stays in
        // registers while the chunk's samples are added into it.
        let split = SAMPLE_SPLIT;
        let per = l / SAMPLE_SPLIT;
        let ((o, ol), (i, il)) = (self.axis("o", rr), self.axis("i", c));
        let (pre, row) = match &self.prog.nodes[v] {
            Tensor::Symbol(sym) if *sym == sample_symbol() => (quote!(), quote!(xs[base + #s][#i])),
            Tensor::Symbol(sym) if *sym == target_symbol() => (quote!(), quote!(ys[base + #s][#i])),
            _ if self.varying[v] => {
                let (pre, vt) = self.lane_copy(v, c, true);
                (pre, quote!(#vt[#s][#i]))
            }
            _ => {
                let ve = self.elem(v, std::slice::from_ref(&i), lane);
                (quote!(), ve)
            }
        };
        // OUTER_ROWS rows of the gradient at a time: each input vector of the chunk
        // (a row of `xs` or of the transposed rows) is loaded once for all of them,
        // and the chunk's inputs are streamed from cache OUTER_ROWS times fewer.
        let ob = OUTER_ROWS;
        let blocks = if c > 1 { rr / ob } else { 0 };
        let blocked = (blocks > 0).then(|| {
            let obv = self.fresh("ob");
            let half = l / 2;
            let rows: Vec<usize> = (0..ob).collect();
            let uss: Vec<Ident> = rows.iter().map(|k| format_ident!("us{}", k)).collect();
            let parts: Vec<Ident> = rows.iter().map(|k| format_ident!("part{}", k)).collect();
            let loads = rows.iter().map(|&k| {
                let ue = self.elem(u, &[Idx::Var(quote!((#obv * #ob + #k)))], lane);
                let us = &uss[k];
                let fill = self.lane_loop(s, quote!(#us[#s] = #ue;));
                quote!(let mut #us = [#zero; #l]; #fill)
            });
            let fmas = rows.iter().map(|&k| {
                let (us, part) = (&uss[k], &parts[k]);
                quote!(#part[h] = __I::mul_add(#us[#s], xv, #part[h]);)
            });
            let adds = rows.iter().map(|&k| {
                let part = &parts[k];
                quote!(#dest[#obv * #ob + #k][#i] += #part[0] + #part[1];)
            });
            let per_input = il.wrap(quote! {
                // Two partial sums per row (the two halves of the chunk).
                #(let mut #parts = [#zero; 2];)*
                let mut h = 0usize;
                while h < 2 {
                    let mut #s = h * #half;
                    while #s < (h + 1) * #half {
                        let xv = #row;
                        #(#fmas)*
                        #s += 1;
                    }
                    h += 1;
                }
                #(#adds)*
            });
            quote! {
                for #obv in 0..#blocks {
                    #(#loads)*
                    #per_input
                }
            }
        });
        let rest_rows = (rr - blocks * ob > 0).then(|| {
            let (o, ol) = match (blocks, &o) {
                (0, _) => (o.clone(), ol),
                _ => {
                    let v = self.fresh("o");
                    let from = blocks * ob;
                    (Idx::Var(quote!(#v)), Axis(Some((v, quote!(#from..#rr)))))
                }
            };
            let ue = self.elem(u, std::slice::from_ref(&o), lane);
            let per_input = il.wrap(quote! {
                // SAMPLE_SPLIT independent partial sums over the samples.
                let mut part = [#zero; #split];
                let mut q = 0usize;
                while q < #split {
                    let mut #s = q * #per;
                    while #s < (q + 1) * #per {
                        part[q] = __I::mul_add(us[#s], #row, part[q]);
                        #s += 1;
                    }
                    q += 1;
                }
                let mut a = g[#i];
                let mut q = 0usize;
                while q < #split {
                    a += part[q];
                    q += 1;
                }
                g[#i] = a;
            });
            let load_us = self.lane_loop(s, quote!(us[#s] = #ue;));
            ol.wrap(quote! {
                let mut us = [#zero; #l];
                #load_us
                let g = &mut #dest[#o];
                #per_input
            })
        });
        quote! {
            #pre
            #blocked
            #rest_rows
        }
    }

    /// Statements storing vector root `r` of each lane into `out[base + s]`.
    fn store_rows(&self, r: usize, out: &TokenStream) -> TokenStream {
        let s = self.fresh("s");
        let j = self.fresh("j");
        let n = self.prog.shapes[r].len();
        let e = self.elem(r, &[Idx::Var(quote!(#j))], &Idx::Var(quote!(#s)));
        let (l, ty, zero) = (self.lanes, self.ty(), self.lit(0.0));
        // Computed across the lanes first (a vector loop), then stored into the chunk's rows
        // taken as one array: computed inside the store, per sample with a bounds check, an
        // output activation stayed scalar.
        let compute = self.lane_loop(&s, quote!(vals[#j][#s] = #e;));
        let store = transpose(&ty, n, l, &quote!(&vals), &chunk_rows(out, &ty, n, l, true));
        quote! {
            {
                let mut vals = [[#zero; #l]; #n];
                for #j in 0..#n {
                    #compute
                }
                #store
            }
        }
    }

    /// The chunk body: every materialized node, then each root into its destination.
    pub fn body(&self, dests: &[LaneDest]) -> TokenStream {
        let mut out = TokenStream::new();
        for i in 0..self.prog.nodes.len() {
            if self.materialized[i] {
                out.extend(self.write(i));
            }
        }
        for (&r, dest) in self.prog.roots.iter().zip(dests) {
            out.extend(match dest {
                LaneDest::AddInto(p) => self.add_root(r, p),
                LaneDest::Rows(p) => self.store_rows(r, p),
            });
        }
        out
    }
}

/// The chunk's rows of the batch slice `name` (rows of `n` values of type `ty`) as one
/// `&[[ty; n]; lanes]` (`&mut` when `mutable`): one bounds check for the chunk instead of one
/// per sample, which kept LLVM from vectorizing the loops that read or write them.
pub(crate) fn chunk_rows(
    name: &TokenStream,
    ty: &TokenStream,
    n: usize,
    lanes: usize,
    mutable: bool,
) -> TokenStream {
    let m = mutable.then(|| quote!(mut));
    quote! {
        <&#m [[#ty; #n]; #lanes] as ::core::convert::TryFrom<_>>::try_from(
            &#m #name[base..base + #lanes],
        )
        .expect("a chunk of the batch")
    }
}

/// The statement `dst = src` transposed (`src: &[[ty; c]; r]`, `dst: &mut [[ty; r]; c]`) by
/// `__private::simd::transpose` at the chunk body's level `__I`: whole registers, where a loop
/// written in the body became scatters or one lane at a time. The body is an `unsafe fn` run
/// only on the units `__I` names (`multiversion!`), which is the call's safety condition.
pub(crate) fn transpose(
    ty: &TokenStream,
    r: usize,
    c: usize,
    src: &TokenStream,
    dst: &TokenStream,
) -> TokenStream {
    quote!(unsafe { #KRATE::__private::simd::transpose::<__I, #ty, #r, #c>(#src, #dst) };)
}
