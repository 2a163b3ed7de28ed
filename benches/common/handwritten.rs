//! The hand-written baseline: what a competent engineer writes by hand for a fixed-shape dense
//! network in plain Rust (const-generic arrays, a hand-derived backward pass, no intrinsics, no
//! `unsafe`).
//!
//! - Weights stored input-major (see [`Dense`]): the forward pass is one axpy per input over
//!   contiguous outputs, which vectorizes with no reduction (Rust keeps IEEE order, so LLVM
//!   will not vectorize a dot-product reduction as written).
//! - Backward: `dW += dz x^T` as an outer product whose inner loop runs over contiguous
//!   outputs (it vectorizes), and `dh = W^T dz` as dot products with 16 independent
//!   accumulators.
//! - Batches two samples per iteration: `forward_batch` and the training step's forward pass
//!   load each weight row once for two samples. Their sigmoid layers use a polynomial `e^x`
//!   (`exp_poly`), so that the loop over a layer vectorizes instead of calling `expf` per
//!   element; one sample keeps the library `exp`, whose latency is shorter.
//! - A training step runs forward and backward for every sample of the batch, keeping the
//!   activations and the deltas (scaled by `lr / n`), then fuses the SGD update into each
//!   layer's weight-gradient loop: `W -= sum_s d_s x_s^T` row by row, two samples per
//!   iteration, with no gradient buffer.
//!
//! [`Net2::load`] and [`Net3::load`] take `params()` of a generated net (layer after layer,
//! `w[o][i]` row-major then biases) and transpose it; `to_vec` gives that layout back.
//! `tests/handwritten.rs` checks it against the generated code.
#![allow(dead_code)]
// Index loops over fixed-size arrays: the form that LLVM unrolls and vectorizes.
#![allow(clippy::needless_range_loop)]

use std::marker::PhantomData;

/// Accumulators per dot product.
const LANES: usize = 16;

/// Outputs per block of the two-sample loops: eight vector registers of accumulators (two
/// samples of four registers) for the vector width the build targets.
const BLOCK: usize = if cfg!(target_feature = "avx512f") {
    64
} else if cfg!(target_feature = "avx") {
    32
} else {
    16
};

/// `a . b` with `LANES` independent partial sums (plain sequential sum below `LANES`).
#[inline(always)]
pub fn dot<const N: usize>(a: &[f32; N], b: &[f32; N]) -> f32 {
    if N < LANES {
        let mut s = a[0] * b[0];
        for i in 1..N {
            s += a[i] * b[i];
        }
        return s;
    }
    let mut acc = [0f32; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (ca, cb) in ac.zip(bc) {
        for l in 0..LANES {
            acc[l] += ca[l] * cb[l];
        }
    }
    // Pairwise reduction of the partial sums.
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for l in 0..w {
            acc[l] += acc[l + w];
        }
    }
    let mut s = acc[0];
    for (x, y) in ar.iter().zip(br) {
        s += x * y;
    }
    s
}

/// Weights `start..start + W` of row `i` of [`Dense::sgd_outer`]: their update summed over
/// the batch in registers, two samples per iteration, then applied once.
#[inline(always)]
fn sgd_block<const W: usize, const I: usize, const O: usize>(
    w: &mut [f32; W],
    i: usize,
    start: usize,
    d: &[[f32; O]],
    x: &[[f32; I]],
) {
    let (d2, dl) = d.as_chunks::<2>();
    let (x2, xl) = x.as_chunks::<2>();
    let mut acc = [0.0f32; W];
    for ([d0, d1], [x0, x1]) in d2.iter().zip(x2) {
        let (a, c) = (x0[i], x1[i]);
        let e0: &[f32; W] = d0[start..start + W].try_into().unwrap();
        let e1: &[f32; W] = d1[start..start + W].try_into().unwrap();
        // A new array per pair, not an update in place: updated in place, LLVM kept the
        // accumulators in memory behind a run-time alias check (a store-to-load chain).
        acc = std::array::from_fn(|o| acc[o] + (a * e0[o] + c * e1[o]));
    }
    if let ([dl], [xl]) = (dl, xl) {
        let (a, e): (f32, &[f32; W]) = (xl[i], dl[start..start + W].try_into().unwrap());
        for o in 0..W {
            acc[o] += a * e[o];
        }
    }
    for o in 0..W {
        w[o] -= acc[o];
    }
}

/// A hidden activation: the function and its derivative written in terms of its output.
pub trait Act {
    fn f(z: f32) -> f32;
    /// `f` in the batch loops, over a whole layer of two samples at a time: a form that
    /// vectorizes there (by default `f`).
    #[inline(always)]
    fn f_many(z: f32) -> f32 {
        Self::f(z)
    }
    fn df_from_out(a: f32) -> f32;
}

/// `max(z, 0)`.
#[derive(Clone, Copy, Debug)]
pub struct Relu;
impl Act for Relu {
    #[inline(always)]
    fn f(z: f32) -> f32 {
        z.max(0.0)
    }
    #[inline(always)]
    fn df_from_out(a: f32) -> f32 {
        if a > 0.0 {
            1.0
        } else {
            0.0
        }
    }
}

/// `1 / (1 + e^-z)`.
#[derive(Clone, Copy, Debug)]
pub struct Sigmoid;
impl Act for Sigmoid {
    #[inline(always)]
    fn f(z: f32) -> f32 {
        sigmoid(z)
    }
    #[inline(always)]
    fn f_many(z: f32) -> f32 {
        1.0 / (1.0 + exp_poly(-z))
    }
    #[inline(always)]
    fn df_from_out(a: f32) -> f32 {
        a * (1.0 - a)
    }
}

#[inline(always)]
fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// `e^x` in plain arithmetic, for loops that should vectorize (a library `expf` is a call per
/// element): `x = k ln 2 + r` with `|r| <= ln 2 / 2`, a degree-7 Taylor polynomial in `r`, and
/// `2^k` written into the exponent bits. `x` is clamped to `[-87, 88]`, where `e^x` is a normal
/// `f32` (so the sigmoid above saturates cleanly), NaN propagates through the clamp.
#[inline(always)]
fn exp_poly(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // 1.5 * 2^23: adding it rounds `x log2(e)` to an integer held in the low mantissa bits.
    const SHIFTER: f32 = 12_582_912.0;
    let t = x * std::f32::consts::LOG2_E + SHIFTER;
    let k = t - SHIFTER;
    let r = (x - k * 0.693_145_75) - k * 1.428_606_8e-6;
    let mut p = 1.0 / 5040.0;
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + c;
    }
    let bits = (t.to_bits() as i32 - SHIFTER.to_bits() as i32 + 127) as u32;
    p * f32::from_bits(bits << 23)
}

/// The output activation and the loss together: the output for inference, and the loss with
/// `dL/dz` (the gradient with respect to the output layer's logits) for training.
pub trait Head {
    fn output<const O: usize>(z: &[f32; O]) -> [f32; O];
    fn loss_dz<const O: usize>(z: &[f32; O], y: &[f32; O], dz: &mut [f32; O]) -> f32;
}

/// Sigmoid output, binary cross-entropy (mean over outputs) computed from the logits.
#[derive(Clone, Copy, Debug)]
pub struct SigmoidBce;
impl Head for SigmoidBce {
    #[inline(always)]
    fn output<const O: usize>(z: &[f32; O]) -> [f32; O] {
        z.map(sigmoid)
    }
    #[inline(always)]
    fn loss_dz<const O: usize>(z: &[f32; O], y: &[f32; O], dz: &mut [f32; O]) -> f32 {
        let inv = 1.0 / O as f32;
        let mut l = 0.0;
        for o in 0..O {
            // softplus(z) - y z, stable for large |z|.
            l += z[o].max(0.0) + (-z[o].abs()).exp().ln_1p() - y[o] * z[o];
            dz[o] = (sigmoid(z[o]) - y[o]) * inv;
        }
        l * inv
    }
}

/// Identity output, mean squared error.
#[derive(Clone, Copy, Debug)]
pub struct IdentityMse;
impl Head for IdentityMse {
    #[inline(always)]
    fn output<const O: usize>(z: &[f32; O]) -> [f32; O] {
        *z
    }
    #[inline(always)]
    fn loss_dz<const O: usize>(z: &[f32; O], y: &[f32; O], dz: &mut [f32; O]) -> f32 {
        let inv = 1.0 / O as f32;
        let mut l = 0.0;
        for o in 0..O {
            let d = z[o] - y[o];
            l += d * d;
            dz[o] = 2.0 * inv * d;
        }
        l * inv
    }
}

/// Softmax output, categorical cross-entropy `logsumexp(z) sum(y) - y . z`.
#[derive(Clone, Copy, Debug)]
pub struct SoftmaxCe;
impl Head for SoftmaxCe {
    #[inline(always)]
    fn output<const O: usize>(z: &[f32; O]) -> [f32; O] {
        let m = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let mut e = z.map(|v| (v - m).exp());
        let inv = 1.0 / e.iter().sum::<f32>();
        for v in &mut e {
            *v *= inv;
        }
        e
    }
    #[inline(always)]
    fn loss_dz<const O: usize>(z: &[f32; O], y: &[f32; O], dz: &mut [f32; O]) -> f32 {
        let m = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let mut s = 0.0;
        for o in 0..O {
            dz[o] = (z[o] - m).exp();
            s += dz[o];
        }
        let lse = m + s.ln();
        let inv = 1.0 / s;
        let (mut sy, mut syz) = (0.0, 0.0);
        for o in 0..O {
            sy += y[o];
            syz += y[o] * z[o];
        }
        for o in 0..O {
            dz[o] = dz[o] * inv * sy - y[o];
        }
        lse * sy - syz
    }
}

/// One dense layer, `z = W x + b`, with the weights stored input-major (`wt[i][o] = W[o][i]`)
/// so that every loop over a layer runs over contiguous outputs and vectorizes without a
/// reduction: the forward pass is `z += x[i] * wt[i]` (an axpy per input), the weight gradient
/// `gwt[i] += x[i] * dz`. Only `dx = W^T dz` is a dot product per input (over the outputs).
///
/// (The output-major layout with one dot product per output was tried first: under
/// `-C target-cpu=native` LLVM fully unrolls the short dot products and vectorizes the loop
/// over outputs with gathers, which made it 1.5-5x slower than this.)
#[derive(Clone, Debug)]
pub struct Dense<const I: usize, const O: usize> {
    pub wt: [[f32; O]; I],
    pub b: [f32; O],
}

impl<const I: usize, const O: usize> Dense<I, O> {
    pub const PARAMS: usize = O * (I + 1);

    pub fn zeros() -> Self {
        Self {
            wt: [[0.0; O]; I],
            b: [0.0; O],
        }
    }

    /// `z = W x + b`.
    #[inline(always)]
    pub fn forward(&self, x: &[f32; I], z: &mut [f32; O]) {
        *z = self.b;
        for (row, &xi) in self.wt.iter().zip(x) {
            for (zo, &w) in z.iter_mut().zip(row) {
                *zo += w * xi;
            }
        }
    }

    /// `z = W x + b` for two samples, each weight row loaded once for both. The outputs go in
    /// blocks of [`BLOCK`], so that both samples' accumulators of a block stay in registers.
    #[inline(always)]
    pub fn forward2(&self, x: [&[f32; I]; 2], z: [&mut [f32; O]; 2]) {
        let [z0, z1] = z;
        *z0 = self.b;
        *z1 = self.b;
        if O <= BLOCK {
            return self.forward2_block(x, 0, z0, z1);
        }
        let ((b0, r0), (b1, r1)) = (z0.as_chunks_mut::<BLOCK>(), z1.as_chunks_mut::<BLOCK>());
        for (k, (c0, c1)) in b0.iter_mut().zip(b1).enumerate() {
            self.forward2_block(x, k * BLOCK, c0, c1);
        }
        let start = O - r0.len();
        for i in 0..I {
            let (p, q) = (x[0][i], x[1][i]);
            for ((a, b), &w) in r0.iter_mut().zip(r1.iter_mut()).zip(&self.wt[i][start..]) {
                *a += w * p;
                *b += w * q;
            }
        }
    }

    /// Outputs `start..start + W` of [`Dense::forward2`].
    #[inline(always)]
    fn forward2_block<const W: usize>(
        &self,
        x: [&[f32; I]; 2],
        start: usize,
        c0: &mut [f32; W],
        c1: &mut [f32; W],
    ) {
        let (mut s0, mut s1) = (*c0, *c1);
        for i in 0..I {
            let (p, q) = (x[0][i], x[1][i]);
            let row: &[f32; W] = self.wt[i][start..start + W].try_into().unwrap();
            for o in 0..W {
                s0[o] += row[o] * p;
                s1[o] += row[o] * q;
            }
        }
        (*c0, *c1) = (s0, s1);
    }

    /// The SGD update fused into the weight-gradient loop: `W -= sum_s d_s x_s^T`,
    /// `b -= sum_s d_s`, where each `d_s` is a sample's delta already scaled by `lr / n`. No
    /// gradient buffer: each input-major weight row is read and written once for the whole
    /// batch, in blocks of [`BLOCK`] outputs summed in registers, two samples per iteration.
    #[inline(always)]
    pub fn sgd_outer(&mut self, d: &[[f32; O]], x: &[[f32; I]]) {
        for (i, row) in self.wt.iter_mut().enumerate() {
            if O <= BLOCK {
                sgd_block(row, i, 0, d, x);
                continue;
            }
            let (blocks, rest) = row.as_chunks_mut::<BLOCK>();
            for (k, w) in blocks.iter_mut().enumerate() {
                sgd_block(w, i, k * BLOCK, d, x);
            }
            let start = O - rest.len();
            for (ds, xs) in d.iter().zip(x) {
                for (w, &e) in rest.iter_mut().zip(&ds[start..]) {
                    *w -= xs[i] * e;
                }
            }
        }
        for ds in d {
            for (b, &e) in self.b.iter_mut().zip(ds) {
                *b -= e;
            }
        }
    }

    /// `self.w += dz x^T`, `self.b += dz` (self is a gradient accumulator).
    #[inline(always)]
    pub fn add_outer(&mut self, dz: &[f32; O], x: &[f32; I]) {
        for (row, &xi) in self.wt.iter_mut().zip(x) {
            for (g, &d) in row.iter_mut().zip(dz) {
                *g += xi * d;
            }
        }
        for (g, &d) in self.b.iter_mut().zip(dz) {
            *g += d;
        }
    }

    /// `dx = W^T dz`.
    #[inline(always)]
    pub fn backward_input(&self, dz: &[f32; O], dx: &mut [f32; I]) {
        for (d, row) in dx.iter_mut().zip(&self.wt) {
            *d = dot(row, dz);
        }
    }

    /// Reads the layer from the front of a flat parameter slice in the layout of generated
    /// networks (`w[o][i]` row-major, then biases); returns the rest.
    pub fn load<'a>(&mut self, p: &'a [f32]) -> &'a [f32] {
        let (w, rest) = p.split_at(I * O);
        for (o, src) in w.chunks_exact(I).enumerate() {
            for (i, &v) in src.iter().enumerate() {
                self.wt[i][o] = v;
            }
        }
        let (b, rest) = rest.split_at(O);
        self.b.copy_from_slice(b);
        rest
    }

    /// Appends the layer in the layout of generated networks.
    pub fn store(&self, out: &mut Vec<f32>) {
        for o in 0..O {
            out.extend(self.wt.iter().map(|row| row[o]));
        }
        out.extend_from_slice(&self.b);
    }
}

/// One hidden layer: `I -> K (A) -> O (H)`.
#[derive(Clone, Debug)]
pub struct Net2<A, H, const I: usize, const K: usize, const O: usize> {
    pub l1: Dense<I, K>,
    pub l2: Dense<K, O>,
    /// Per-sample activations and deltas of a training step, kept between steps.
    h: Vec<[f32; K]>,
    dh: Vec<[f32; K]>,
    dz: Vec<[f32; O]>,
    _m: PhantomData<(A, H)>,
}

impl<A: Act, H: Head, const I: usize, const K: usize, const O: usize> Net2<A, H, I, K, O> {
    pub const PARAMS: usize = Dense::<I, K>::PARAMS + Dense::<K, O>::PARAMS;

    pub fn zeros() -> Self {
        Self {
            l1: Dense::zeros(),
            l2: Dense::zeros(),
            h: Vec::new(),
            dh: Vec::new(),
            dz: Vec::new(),
            _m: PhantomData,
        }
    }

    pub fn load(&mut self, p: &[f32]) {
        assert_eq!(p.len(), Self::PARAMS);
        let p = self.l1.load(p);
        self.l2.load(p);
    }

    pub fn to_vec(&self) -> Vec<f32> {
        let mut v = Vec::with_capacity(Self::PARAMS);
        self.l1.store(&mut v);
        self.l2.store(&mut v);
        v
    }

    #[inline]
    fn hidden(&self, x: &[f32; I]) -> [f32; K] {
        let mut h = [0.0; K];
        self.l1.forward(x, &mut h);
        for v in &mut h {
            *v = A::f(*v);
        }
        h
    }

    #[inline]
    pub fn forward(&self, x: &[f32; I]) -> [f32; O] {
        let h = self.hidden(x);
        let mut z = [0.0; O];
        self.l2.forward(&h, &mut z);
        H::output(&z)
    }

    /// Adds `scale * dL/dtheta` of one sample into `grad`; returns the loss.
    #[inline]
    pub fn backward(&self, x: &[f32; I], y: &[f32; O], scale: f32, grad: &mut Self) -> f32 {
        let h = self.hidden(x);
        let mut z = [0.0; O];
        self.l2.forward(&h, &mut z);
        let mut dz = [0.0; O];
        let loss = H::loss_dz(&z, y, &mut dz);
        for d in &mut dz {
            *d *= scale;
        }
        grad.l2.add_outer(&dz, &h);
        let mut dh = [0.0; K];
        self.l2.backward_input(&dz, &mut dh);
        for (d, &a) in dh.iter_mut().zip(&h) {
            *d *= A::df_from_out(a);
        }
        grad.l1.add_outer(&dh, x);
        loss
    }

    /// The outputs of a batch, two samples per iteration (each weight row loaded once for
    /// both).
    pub fn forward_batch(&self, xs: &[[f32; I]], out: &mut [[f32; O]]) {
        assert_eq!(xs.len(), out.len());
        let mut pairs = out.chunks_exact_mut(2);
        for (x, o) in xs.chunks_exact(2).zip(&mut pairs) {
            let (mut h0, mut h1) = ([0.0; K], [0.0; K]);
            self.l1.forward2([&x[0], &x[1]], [&mut h0, &mut h1]);
            for (a, b) in h0.iter_mut().zip(h1.iter_mut()) {
                *a = A::f_many(*a);
                *b = A::f_many(*b);
            }
            let (mut z0, mut z1) = ([0.0; O], [0.0; O]);
            self.l2.forward2([&h0, &h1], [&mut z0, &mut z1]);
            o[0] = H::output(&z0);
            o[1] = H::output(&z1);
        }
        if let ([.., x], [o]) = (xs, pairs.into_remainder()) {
            *o = self.forward(x);
        }
    }

    /// One SGD step on the mean loss of the batch; returns the mean loss. A layer at a time
    /// over the batch: the hidden layer's sums two samples per iteration, its activation in
    /// one loop over the whole batch, the output layer and the deltas two samples per
    /// iteration; then the update fused into each layer's weight-gradient loop
    /// ([`Dense::sgd_outer`]): no gradient buffer. (Sample after sample, each sample's
    /// activation polynomial was one latency chain: 2-4-1's step took 0.70 us against
    /// 0.27 us this way, native build, Zen 5.)
    pub fn train_step(&mut self, xs: &[[f32; I]], ys: &[[f32; O]], lr: f32) -> f32 {
        let n = xs.len();
        assert_eq!(n, ys.len());
        let step = lr / n as f32;
        self.h.resize(n, [0.0; K]);
        self.dh.resize(n, [0.0; K]);
        self.dz.resize(n, [0.0; O]);
        let (pairs, last) = self.h.as_chunks_mut::<2>();
        for (p, [h0, h1]) in pairs.iter_mut().enumerate() {
            self.l1.forward2([&xs[2 * p], &xs[2 * p + 1]], [h0, h1]);
        }
        if let [h] = last {
            self.l1.forward(&xs[n - 1], h);
        }
        for a in self.h.as_flattened_mut() {
            *a = A::f_many(*a);
        }
        let mut loss = 0.0;
        for p in 0..n / 2 {
            let (s, t) = (2 * p, 2 * p + 1);
            let (mut z0, mut z1) = ([0.0; O], [0.0; O]);
            self.l2
                .forward2([&self.h[s], &self.h[t]], [&mut z0, &mut z1]);
            for (k, z) in [(s, z0), (t, z1)] {
                loss += self.delta(k, &z, &ys[k], step);
            }
        }
        if n % 2 == 1 {
            let k = n - 1;
            let mut z = [0.0; O];
            self.l2.forward(&self.h[k], &mut z);
            loss += self.delta(k, &z, &ys[k], step);
        }
        self.l2.sgd_outer(&self.dz, &self.h);
        self.l1.sgd_outer(&self.dh, xs);
        loss / n as f32
    }

    /// Sample `k`'s deltas (scaled by `step`) from its logits `z`; returns its loss.
    #[inline(always)]
    fn delta(&mut self, k: usize, z: &[f32; O], y: &[f32; O], step: f32) -> f32 {
        let dz = &mut self.dz[k];
        let loss = H::loss_dz(z, y, dz);
        for d in dz.iter_mut() {
            *d *= step;
        }
        self.l2.backward_input(dz, &mut self.dh[k]);
        for (d, &a) in self.dh[k].iter_mut().zip(&self.h[k]) {
            *d *= A::df_from_out(a);
        }
        loss
    }
}

/// Two hidden layers: `I -> K1 (A1) -> K2 (A2) -> O (H)`.
#[derive(Clone, Debug)]
pub struct Net3<A1, A2, H, const I: usize, const K1: usize, const K2: usize, const O: usize> {
    pub l1: Dense<I, K1>,
    pub l2: Dense<K1, K2>,
    pub l3: Dense<K2, O>,
    /// Per-sample activations and deltas of a training step, kept between steps.
    h1: Vec<[f32; K1]>,
    h2: Vec<[f32; K2]>,
    dh1: Vec<[f32; K1]>,
    dh2: Vec<[f32; K2]>,
    dz: Vec<[f32; O]>,
    _m: PhantomData<(A1, A2, H)>,
}

impl<
        A1: Act,
        A2: Act,
        H: Head,
        const I: usize,
        const K1: usize,
        const K2: usize,
        const O: usize,
    > Net3<A1, A2, H, I, K1, K2, O>
{
    pub const PARAMS: usize =
        Dense::<I, K1>::PARAMS + Dense::<K1, K2>::PARAMS + Dense::<K2, O>::PARAMS;

    pub fn zeros() -> Self {
        Self {
            l1: Dense::zeros(),
            l2: Dense::zeros(),
            l3: Dense::zeros(),
            h1: Vec::new(),
            h2: Vec::new(),
            dh1: Vec::new(),
            dh2: Vec::new(),
            dz: Vec::new(),
            _m: PhantomData,
        }
    }

    pub fn load(&mut self, p: &[f32]) {
        assert_eq!(p.len(), Self::PARAMS);
        let p = self.l1.load(p);
        let p = self.l2.load(p);
        self.l3.load(p);
    }

    pub fn to_vec(&self) -> Vec<f32> {
        let mut v = Vec::with_capacity(Self::PARAMS);
        self.l1.store(&mut v);
        self.l2.store(&mut v);
        self.l3.store(&mut v);
        v
    }

    #[inline]
    fn hidden(&self, x: &[f32; I]) -> ([f32; K1], [f32; K2]) {
        let mut h1 = [0.0; K1];
        self.l1.forward(x, &mut h1);
        for v in &mut h1 {
            *v = A1::f(*v);
        }
        let mut h2 = [0.0; K2];
        self.l2.forward(&h1, &mut h2);
        for v in &mut h2 {
            *v = A2::f(*v);
        }
        (h1, h2)
    }

    #[inline]
    pub fn forward(&self, x: &[f32; I]) -> [f32; O] {
        let (_, h2) = self.hidden(x);
        let mut z = [0.0; O];
        self.l3.forward(&h2, &mut z);
        H::output(&z)
    }

    /// Adds `scale * dL/dtheta` of one sample into `grad`; returns the loss.
    #[inline]
    pub fn backward(&self, x: &[f32; I], y: &[f32; O], scale: f32, grad: &mut Self) -> f32 {
        let (h1, h2) = self.hidden(x);
        let mut z = [0.0; O];
        self.l3.forward(&h2, &mut z);
        let mut dz = [0.0; O];
        let loss = H::loss_dz(&z, y, &mut dz);
        for d in &mut dz {
            *d *= scale;
        }
        grad.l3.add_outer(&dz, &h2);
        let mut dh2 = [0.0; K2];
        self.l3.backward_input(&dz, &mut dh2);
        for (d, &a) in dh2.iter_mut().zip(&h2) {
            *d *= A2::df_from_out(a);
        }
        grad.l2.add_outer(&dh2, &h1);
        let mut dh1 = [0.0; K1];
        self.l2.backward_input(&dh2, &mut dh1);
        for (d, &a) in dh1.iter_mut().zip(&h1) {
            *d *= A1::df_from_out(a);
        }
        grad.l1.add_outer(&dh1, x);
        loss
    }

    /// The outputs of a batch, two samples per iteration (each weight row loaded once for
    /// both).
    pub fn forward_batch(&self, xs: &[[f32; I]], out: &mut [[f32; O]]) {
        assert_eq!(xs.len(), out.len());
        let mut pairs = out.chunks_exact_mut(2);
        for (x, o) in xs.chunks_exact(2).zip(&mut pairs) {
            let (mut a0, mut a1) = ([0.0; K1], [0.0; K1]);
            self.l1.forward2([&x[0], &x[1]], [&mut a0, &mut a1]);
            for (a, b) in a0.iter_mut().zip(a1.iter_mut()) {
                *a = A1::f_many(*a);
                *b = A1::f_many(*b);
            }
            let (mut b0, mut b1) = ([0.0; K2], [0.0; K2]);
            self.l2.forward2([&a0, &a1], [&mut b0, &mut b1]);
            for (a, b) in b0.iter_mut().zip(b1.iter_mut()) {
                *a = A2::f_many(*a);
                *b = A2::f_many(*b);
            }
            let (mut z0, mut z1) = ([0.0; O], [0.0; O]);
            self.l3.forward2([&b0, &b1], [&mut z0, &mut z1]);
            o[0] = H::output(&z0);
            o[1] = H::output(&z1);
        }
        if let ([.., x], [o]) = (xs, pairs.into_remainder()) {
            *o = self.forward(x);
        }
    }

    /// One SGD step on the mean loss of the batch; returns the mean loss. Forward two samples
    /// per iteration, then the update fused into each layer's weight-gradient loop
    /// ([`Dense::sgd_outer`]): no gradient buffer.
    pub fn train_step(&mut self, xs: &[[f32; I]], ys: &[[f32; O]], lr: f32) -> f32 {
        let n = xs.len();
        assert_eq!(n, ys.len());
        let step = lr / n as f32;
        self.h1.resize(n, [0.0; K1]);
        self.h2.resize(n, [0.0; K2]);
        self.dh1.resize(n, [0.0; K1]);
        self.dh2.resize(n, [0.0; K2]);
        self.dz.resize(n, [0.0; O]);
        let mut loss = 0.0;
        for p in 0..n / 2 {
            let (s, t) = (2 * p, 2 * p + 1);
            let [a0, a1] = self.h1.get_disjoint_mut([s, t]).unwrap();
            self.l1.forward2([&xs[s], &xs[t]], [&mut *a0, &mut *a1]);
            for (a, b) in a0.iter_mut().zip(a1.iter_mut()) {
                *a = A1::f_many(*a);
                *b = A1::f_many(*b);
            }
            let [b0, b1] = self.h2.get_disjoint_mut([s, t]).unwrap();
            self.l2.forward2([a0, a1], [&mut *b0, &mut *b1]);
            for (a, b) in b0.iter_mut().zip(b1.iter_mut()) {
                *a = A2::f_many(*a);
                *b = A2::f_many(*b);
            }
            let (mut z0, mut z1) = ([0.0; O], [0.0; O]);
            self.l3.forward2([b0, b1], [&mut z0, &mut z1]);
            for (k, z) in [(s, z0), (t, z1)] {
                loss += self.delta(k, &z, &ys[k], step);
            }
        }
        if n % 2 == 1 {
            let k = n - 1;
            (self.h1[k], self.h2[k]) = self.hidden(&xs[k]);
            let mut z = [0.0; O];
            self.l3.forward(&self.h2[k], &mut z);
            loss += self.delta(k, &z, &ys[k], step);
        }
        self.l3.sgd_outer(&self.dz, &self.h2);
        self.l2.sgd_outer(&self.dh2, &self.h1);
        self.l1.sgd_outer(&self.dh1, xs);
        loss / n as f32
    }

    /// Sample `k`'s deltas (scaled by `step`) from its logits `z`; returns its loss.
    #[inline(always)]
    fn delta(&mut self, k: usize, z: &[f32; O], y: &[f32; O], step: f32) -> f32 {
        let dz = &mut self.dz[k];
        let loss = H::loss_dz(z, y, dz);
        for d in dz.iter_mut() {
            *d *= step;
        }
        self.l3.backward_input(dz, &mut self.dh2[k]);
        for (d, &a) in self.dh2[k].iter_mut().zip(&self.h2[k]) {
            *d *= A2::df_from_out(a);
        }
        self.l2.backward_input(&self.dh2[k], &mut self.dh1[k]);
        for (d, &a) in self.dh1[k].iter_mut().zip(&self.h1[k]) {
            *d *= A1::df_from_out(a);
        }
        loss
    }
}
