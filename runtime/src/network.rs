//! The slice-based view of a generated network.

use crate::Scalar;

/// The widest input or layer a network may have: 65,536. `network!` reads these limits from
/// here (`symnet_compiler::check::MAX_WIDTH` and `MAX_PARAMS` are these); the runtime applies them
/// to everything sized at run time (the class count of a data set or of `one_hot`, the widths of
/// an `InterpNet`), so that an absurd size is an error before anything is allocated for it.
pub const MAX_WIDTH: usize = 1 << 16;

/// The largest number of parameters a network may have: 4,194,304 (16 MiB of `f32`), the limit
/// of `network!` too; see [`MAX_WIDTH`].
pub const MAX_PARAMS: usize = 1 << 22;

/// What a network's loss needs of its targets; the trainers check every target row of a data
/// set against it before using the data (see [`Network::TARGETS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Targets {
    /// Any finite real numbers (`mse`, `mae`, `gaussian_nll`).
    Real,
    /// Each target in `[0, 1]`: what `binary_cross_entropy` needs.
    Probabilities,
    /// Each target row non-negative and summing to 1 within `1e-3` (absolute): a probability
    /// distribution over the classes, what `cross_entropy` needs. One-hot rows are
    /// distributions.
    Distribution,
}

/// What every `network!` struct implements: fixed sizes, a flat parameter view, and slice-based
/// forward, loss and gradient, so that optimizers and training loops are written once for all
/// networks.
///
/// The generated inherent methods take arrays (`&[T; INPUTS]`) and are what application code
/// should call; the methods here take slices and panic if a slice has the wrong length (the
/// trainers check lengths first and report a `Result` error).
pub trait Network: Sized {
    /// The scalar type, `f32` or `f64`.
    type Scalar: Scalar;
    /// The input width.
    const INPUTS: usize;
    /// The output width.
    const OUTPUTS: usize;
    /// The number of parameters: `k1 (n + 1) + k2 (k1 + 1) + ...`.
    const PARAMS: usize;
    /// What the loss needs of the targets, checked by the trainers before they use a data set.
    /// The default, [`Targets::Real`], accepts any finite targets; `network!` sets
    /// [`Targets::Probabilities`] for `binary_cross_entropy` and [`Targets::Distribution`] for
    /// `cross_entropy`.
    const TARGETS: Targets = Targets::Real;
    /// Estimated FLOPs of one sample's gradient in the batch code, which decide whether the
    /// trainers split a batch across threads. The default is 6 per parameter; `network!` sets
    /// the compiler's count of its batch program.
    const GRADIENT_FLOPS: usize = 6 * Self::PARAMS;

    /// Every parameter zero (also the neutral gradient accumulator).
    fn zeros() -> Self;
    /// Random initialization, deterministic for a seed (Glorot uniform for sigmoid, tanh,
    /// identity, softplus and softmax layers, He uniform for relu-like layers, zero biases).
    fn init(seed: u64) -> Self;
    /// The parameters as one flat slice, layer after layer, weights row-major then biases.
    fn params(&self) -> &[Self::Scalar];
    /// The parameters as one flat mutable slice.
    fn params_mut(&mut self) -> &mut [Self::Scalar];
    /// The names and shapes of the layers' tensors, in `params()` order: for each layer
    /// `("<name>.w", [OUT, IN])` then `("<name>.b", [OUT])`.
    fn tensors() -> &'static [(&'static str, &'static [usize])];

    /// Writes the network's output for one sample into `out` (`INPUTS` and `OUTPUTS` long).
    fn forward_slice(&self, x: &[Self::Scalar], out: &mut [Self::Scalar]);
    /// The loss of one sample.
    fn loss_slice(&self, x: &[Self::Scalar], y: &[Self::Scalar]) -> Self::Scalar;
    /// Adds `scale * dL/dtheta` of one sample into `grad` and returns the (unscaled) loss.
    fn backward_slice(
        &self,
        x: &[Self::Scalar],
        y: &[Self::Scalar],
        scale: Self::Scalar,
        grad: &mut Self,
    ) -> Self::Scalar;
    /// Adds `scale * sum_i dL_i/dtheta` over a batch into `grad` and returns the sum of the
    /// losses. `xs` and `ys` hold the samples row after row (`INPUTS` and `OUTPUTS` values per
    /// sample). Generated networks do work that depends on the parameters only once for the
    /// whole batch; the default calls [`Network::backward_slice`] row by row.
    fn backward_rows(
        &self,
        xs: &[Self::Scalar],
        ys: &[Self::Scalar],
        scale: Self::Scalar,
        grad: &mut Self,
    ) -> Self::Scalar {
        assert!(
            Self::INPUTS > 0
                && Self::OUTPUTS > 0
                && xs.len() % Self::INPUTS == 0
                && ys.len() % Self::OUTPUTS == 0
                && xs.len() / Self::INPUTS == ys.len() / Self::OUTPUTS,
            "backward_rows: {} input values and {} target values are not whole, matching rows of {} and {}",
            xs.len(),
            ys.len(),
            Self::INPUTS,
            Self::OUTPUTS
        );
        let mut loss = Self::Scalar::ZERO;
        for (x, y) in xs
            .chunks_exact(Self::INPUTS)
            .zip(ys.chunks_exact(Self::OUTPUTS))
        {
            loss += self.backward_slice(x, y, scale, grad);
        }
        loss
    }
}

/// The index of the largest value: the predicted class of a softmax (or several sigmoid)
/// outputs. The first index wins a tie, a NaN never wins (all NaN gives `0`), and an empty
/// slice gives `0`.
///
/// ```
/// use symnet_runtime::argmax;
/// assert_eq!(argmax(&[0.1f32, 0.7, 0.2]), 1);
/// assert_eq!(argmax(&[f64::NAN, -1.0, 3.0, 3.0]), 2);
/// assert_eq!(argmax(&[f32::NAN, f32::NAN]), 0);
/// ```
pub fn argmax<T: Scalar>(v: &[T]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        let best_is_nan = v[best].partial_cmp(&v[best]).is_none();
        let x_is_nan = x.partial_cmp(&x).is_none();
        if x > v[best] || (best_is_nan && !x_is_nan) {
            best = i;
        }
    }
    best
}
