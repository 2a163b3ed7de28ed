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
//! - A training step zeroes the gradient, accumulates `1/n` times each sample's gradient, and
//!   applies `theta -= lr * grad`.
//!
//! [`Net2::load`] and [`Net3::load`] take `params()` of a generated net (layer after layer,
//! `w[o][i]` row-major then biases) and transpose it; `to_vec` gives that layout back.
//! `tests/handwritten.rs` checks it against the generated code.
#![allow(dead_code)]

use std::marker::PhantomData;

/// Accumulators per dot product.
const LANES: usize = 16;

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

/// A hidden activation: the function and its derivative written in terms of its output.
pub trait Act {
    fn f(z: f32) -> f32;
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
    fn df_from_out(a: f32) -> f32 {
        a * (1.0 - a)
    }
}

#[inline(always)]
fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
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

    /// `theta -= lr * grad`.
    #[inline(always)]
    pub fn sgd(&mut self, grad: &Self, lr: f32) {
        for (row, grow) in self.wt.iter_mut().zip(&grad.wt) {
            for (p, g) in row.iter_mut().zip(grow) {
                *p -= lr * g;
            }
        }
        for (p, g) in self.b.iter_mut().zip(&grad.b) {
            *p -= lr * g;
        }
    }

    pub fn clear(&mut self) {
        for row in &mut self.wt {
            row.fill(0.0);
        }
        self.b.fill(0.0);
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
    _m: PhantomData<(A, H)>,
}

impl<A: Act, H: Head, const I: usize, const K: usize, const O: usize> Net2<A, H, I, K, O> {
    pub const PARAMS: usize = Dense::<I, K>::PARAMS + Dense::<K, O>::PARAMS;

    pub fn zeros() -> Self {
        Self {
            l1: Dense::zeros(),
            l2: Dense::zeros(),
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

    /// Zeroes `grad`, accumulates the mean gradient of the batch, applies one SGD step; returns
    /// the mean loss.
    pub fn train_step(
        &mut self,
        xs: &[[f32; I]],
        ys: &[[f32; O]],
        grad: &mut Self,
        lr: f32,
    ) -> f32 {
        grad.l1.clear();
        grad.l2.clear();
        let scale = 1.0 / xs.len() as f32;
        let mut loss = 0.0;
        for (x, y) in xs.iter().zip(ys) {
            loss += self.backward(x, y, scale, grad);
        }
        self.l1.sgd(&grad.l1, lr);
        self.l2.sgd(&grad.l2, lr);
        loss * scale
    }
}

/// Two hidden layers: `I -> K1 (A1) -> K2 (A2) -> O (H)`.
#[derive(Clone, Debug)]
pub struct Net3<A1, A2, H, const I: usize, const K1: usize, const K2: usize, const O: usize> {
    pub l1: Dense<I, K1>,
    pub l2: Dense<K1, K2>,
    pub l3: Dense<K2, O>,
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

    /// Zeroes `grad`, accumulates the mean gradient of the batch, applies one SGD step; returns
    /// the mean loss.
    pub fn train_step(
        &mut self,
        xs: &[[f32; I]],
        ys: &[[f32; O]],
        grad: &mut Self,
        lr: f32,
    ) -> f32 {
        grad.l1.clear();
        grad.l2.clear();
        grad.l3.clear();
        let scale = 1.0 / xs.len() as f32;
        let mut loss = 0.0;
        for (x, y) in xs.iter().zip(ys) {
            loss += self.backward(x, y, scale, grad);
        }
        self.l1.sgd(&grad.l1, lr);
        self.l2.sgd(&grad.l2, lr);
        self.l3.sgd(&grad.l3, lr);
        loss * scale
    }
}
