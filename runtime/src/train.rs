//! The training loop: epochs of (mini)batches, stopping rules, divergence detection, an optional
//! progress bar and data-parallel batch gradients.
//!
//! ```
//! use symnet_runtime::data::Dataset;
//! use symnet_runtime::interp::{Activation, InterpNet, Loss};
//! use symnet_runtime::optim::GradientDescent;
//! use symnet_runtime::train::{train, StopReason, TrainConfig};
//!
//! // y = 2x - 1, fitted by a linear model with full-batch gradient descent.
//! let xs: Vec<f64> = (0..8).map(|i| i as f64 / 4.0).collect();
//! let ys: Vec<f64> = xs.iter().map(|x| 2.0 * x - 1.0).collect();
//! let data = Dataset::new(xs, ys, 1, 1)?;
//! let mut net = InterpNet::<f64>::builder(1).dense(1, Activation::Identity).loss(Loss::Mse).build()?;
//! let config = TrainConfig { epochs: 5000, grad_tolerance: Some(1e-9), ..Default::default() };
//! let history = train(&mut net, &data, &mut GradientDescent { lr: 0.2 }, &config)?;
//! assert_eq!(history.stop, StopReason::GradTolerance);
//! assert!((net.params()[0] - 2.0).abs() < 1e-6 && (net.params()[1] + 1.0).abs() < 1e-6);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use rayon::prelude::*;

use crate::data::{shuffle, Dataset};
use crate::interp::InterpNet;
use crate::optim::Optimizer;
use crate::{argmax, Network, Scalar, SplitMix64, Targets};

/// What the training loop needs of a model: sizes known at run time, a flat parameter view and
/// per-sample loss and gradient. Implemented for every [`Network`] and for [`InterpNet`].
pub trait Model: Sized {
    /// The scalar type.
    type Scalar: Scalar;
    /// The input width.
    fn input_width(&self) -> usize;
    /// The output width.
    fn output_width(&self) -> usize;
    /// What the loss needs of the targets; [`train`], [`mean_loss`] and [`accuracy`] check every
    /// target row against it. The default is [`Targets::Real`] (any finite targets).
    fn targets(&self) -> Targets {
        Targets::Real
    }
    /// The parameters as one flat slice.
    fn param_slice(&self) -> &[Self::Scalar];
    /// The parameters as one flat mutable slice.
    fn param_slice_mut(&mut self) -> &mut [Self::Scalar];
    /// A model of the same shape with every parameter zero (a gradient accumulator).
    fn zeroed(&self) -> Self;
    /// Writes the output for one sample into `out`.
    fn predict(&self, x: &[Self::Scalar], out: &mut [Self::Scalar]);
    /// The loss of one sample.
    fn sample_loss(&self, x: &[Self::Scalar], y: &[Self::Scalar]) -> Self::Scalar;
    /// Adds `scale * dL/dtheta` of one sample into `grad` and returns the loss.
    fn accumulate(
        &self,
        x: &[Self::Scalar],
        y: &[Self::Scalar],
        scale: Self::Scalar,
        grad: &mut Self,
    ) -> Self::Scalar;
    /// Adds `scale * sum_i dL_i/dtheta` over samples stored row after row into `grad` and
    /// returns the sum of the losses. The default calls [`Model::accumulate`] per row; generated
    /// networks do parameter-only work once per call.
    fn accumulate_rows(
        &self,
        xs: &[Self::Scalar],
        ys: &[Self::Scalar],
        scale: Self::Scalar,
        grad: &mut Self,
    ) -> Self::Scalar {
        let (n, m) = (self.input_width(), self.output_width());
        let mut loss = Self::Scalar::ZERO;
        for (x, y) in xs.chunks_exact(n).zip(ys.chunks_exact(m)) {
            loss += self.accumulate(x, y, scale, grad);
        }
        loss
    }
}

impl<N: Network> Model for N {
    type Scalar = N::Scalar;
    fn input_width(&self) -> usize {
        N::INPUTS
    }
    fn output_width(&self) -> usize {
        N::OUTPUTS
    }
    fn targets(&self) -> Targets {
        N::TARGETS
    }
    fn param_slice(&self) -> &[N::Scalar] {
        self.params()
    }
    fn param_slice_mut(&mut self) -> &mut [N::Scalar] {
        self.params_mut()
    }
    fn zeroed(&self) -> Self {
        N::zeros()
    }
    fn predict(&self, x: &[N::Scalar], out: &mut [N::Scalar]) {
        self.forward_slice(x, out)
    }
    fn sample_loss(&self, x: &[N::Scalar], y: &[N::Scalar]) -> N::Scalar {
        self.loss_slice(x, y)
    }
    fn accumulate(
        &self,
        x: &[N::Scalar],
        y: &[N::Scalar],
        scale: N::Scalar,
        grad: &mut Self,
    ) -> N::Scalar {
        self.backward_slice(x, y, scale, grad)
    }
    fn accumulate_rows(
        &self,
        xs: &[N::Scalar],
        ys: &[N::Scalar],
        scale: N::Scalar,
        grad: &mut Self,
    ) -> N::Scalar {
        self.backward_rows(xs, ys, scale, grad)
    }
}

impl<T: Scalar> Model for InterpNet<T> {
    type Scalar = T;
    fn input_width(&self) -> usize {
        self.inputs()
    }
    fn output_width(&self) -> usize {
        self.outputs()
    }
    fn targets(&self) -> Targets {
        self.loss_kind().targets()
    }
    fn param_slice(&self) -> &[T] {
        self.params()
    }
    fn param_slice_mut(&mut self) -> &mut [T] {
        self.params_mut()
    }
    fn zeroed(&self) -> Self {
        self.zeros_like()
    }
    fn predict(&self, x: &[T], out: &mut [T]) {
        out.copy_from_slice(&self.forward(x))
    }
    fn sample_loss(&self, x: &[T], y: &[T]) -> T {
        self.loss(x, y)
    }
    fn accumulate(&self, x: &[T], y: &[T], scale: T, grad: &mut Self) -> T {
        self.backward_scaled(x, y, scale, grad.params_mut())
    }
}

/// The settings of [`train`]. Defaults are stated per field.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// The maximum number of epochs (passes over the data). Default `1000`.
    pub epochs: usize,
    /// Samples per optimizer step: `None` for full-batch training (one step per epoch),
    /// `Some(b)` for minibatches of `b` (the last one may be smaller). Default `None`.
    pub batch_size: Option<usize>,
    /// Whether minibatch order is reshuffled every epoch (ignored for full batches). Default
    /// `true`.
    pub shuffle: bool,
    /// The seed of the shuffles: training is deterministic for a seed. Default `0`.
    pub seed: u64,
    /// Stop when the relative change of the epoch loss, `|L_k - L_(k-1)| / |L_(k-1)|`, is at most
    /// this. Default `None` (off).
    pub loss_tolerance: Option<f64>,
    /// Stop when the L2 norm of the epoch's mean gradient is at most this. Default `None` (off).
    pub grad_tolerance: Option<f64>,
    /// Show a progress bar on the terminal. Default `false`.
    pub progress: bool,
    /// Threads for batch gradients: `1` computes serially; `n > 1` splits each batch into `n`
    /// chunks computed on a pool of `n` threads; `0` uses rayon's global pool and one chunk per
    /// thread. The result equals the serial one up to floating-point summation order. Default
    /// `1`.
    pub threads: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 1000,
            batch_size: None,
            shuffle: true,
            seed: 0,
            loss_tolerance: None,
            grad_tolerance: None,
            progress: false,
            threads: 1,
        }
    }
}

/// Why training stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `epochs` epochs were run.
    MaxEpochs,
    /// The relative change of the epoch loss fell to `loss_tolerance`.
    LossTolerance,
    /// The gradient norm fell to `grad_tolerance`.
    GradTolerance,
}

/// What [`train`] did, one entry per epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct History {
    /// The mean per-sample loss of each epoch, as computed during the epoch (for full batches:
    /// at the parameters before the epoch's step).
    pub losses: Vec<f64>,
    /// The L2 norm of each epoch's mean gradient (for minibatches, the mean of the minibatch
    /// gradients weighted by batch size).
    pub grad_norms: Vec<f64>,
    /// Why training stopped.
    pub stop: StopReason,
}

impl History {
    /// The number of epochs run.
    pub fn epochs(&self) -> usize {
        self.losses.len()
    }

    /// The last epoch's loss (`NaN` if no epoch ran).
    pub fn final_loss(&self) -> f64 {
        self.losses.last().copied().unwrap_or(f64::NAN)
    }
}

/// An error of [`train`] or the evaluation helpers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// The data set's widths differ from the model's.
    #[error("the data set has {data} {what} per sample, but the network has {network}")]
    Shape {
        /// `"inputs"` or `"outputs"`.
        what: &'static str,
        /// The model's width.
        network: usize,
        /// The data set's width.
        data: usize,
    },
    /// The data set has no samples.
    #[error("the data set is empty")]
    EmptyDataset,
    /// `batch_size` is `Some(0)`.
    #[error("the batch size must be at least 1")]
    ZeroBatchSize,
    /// A loss, gradient or parameter became NaN or infinite. The parameters are those before
    /// the failing step (all finite).
    #[error("training diverged at epoch {epoch}: {what} is not finite (loss {loss})")]
    Diverged {
        /// The 1-based epoch.
        epoch: usize,
        /// What became non-finite: `"the loss"`, `"the gradient"` or `"a parameter"`.
        what: &'static str,
        /// The loss of the failing batch.
        loss: f64,
        /// The epochs completed before the failing one.
        history: History,
    },
    /// A value of the data set is NaN or infinite (checked before the data is used).
    #[error("row {row} of the data set: {what} {column} is not a finite number (rows and columns count from 0)")]
    NonFinite {
        /// The 0-based sample (row) of the data set.
        row: usize,
        /// `"input"` or `"target"`.
        what: &'static str,
        /// The 0-based column within the sample's inputs or targets.
        column: usize,
    },
    /// A target row is not what the model's loss needs ([`Model::targets`]): a value outside
    /// `[0, 1]` for `binary_cross_entropy`, a negative value or a row that does not sum to 1
    /// for `cross_entropy`.
    #[error("row {row} of the data set: {reason}")]
    Targets {
        /// The 0-based sample (row) of the data set.
        row: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The model's output for a sample is NaN or infinite, so that it cannot be classified
    /// (returned by [`accuracy`]; its parameters are probably not finite).
    #[error("the model's output for row {row} of the data set is not finite (are its parameters finite?)")]
    NonFiniteOutput {
        /// The 0-based sample (row) of the data set.
        row: usize,
    },
    /// The thread pool could not be built.
    #[error("cannot build the thread pool: {0}")]
    ThreadPool(#[from] rayon::ThreadPoolBuildError),
}

fn check_shapes<M: Model>(net: &M, data: &Dataset<M::Scalar>) -> Result<(), TrainError> {
    if data.inputs() != net.input_width() {
        return Err(TrainError::Shape {
            what: "inputs",
            network: net.input_width(),
            data: data.inputs(),
        });
    }
    if data.outputs() != net.output_width() {
        return Err(TrainError::Shape {
            what: "outputs",
            network: net.output_width(),
            data: data.outputs(),
        });
    }
    if data.is_empty() {
        return Err(TrainError::EmptyDataset);
    }
    Ok(())
}

/// How far from 1 the sum of a target row may be for [`Targets::Distribution`].
const SUM_TOLERANCE: f64 = 1e-3;

/// [`check_shapes`], then every value of `data` finite and every target row what the model's
/// loss needs ([`Model::targets`]); errors name the first bad row.
fn check_data<M: Model>(net: &M, data: &Dataset<M::Scalar>) -> Result<(), TrainError> {
    check_shapes(net, data)?;
    let targets = net.targets();
    for row in 0..data.len() {
        let (x, y) = (data.x(row), data.y(row));
        let non_finite = |what, v: &[M::Scalar]| {
            v.iter()
                .position(|v| !v.is_finite())
                .map(|column| TrainError::NonFinite { row, what, column })
        };
        if let Some(e) = non_finite("input", x).or_else(|| non_finite("target", y)) {
            return Err(e);
        }
        if let Err(reason) = check_targets(targets, y) {
            return Err(TrainError::Targets { row, reason });
        }
    }
    Ok(())
}

/// Whether the finite target row `y` is what `targets` asks for; else why not.
fn check_targets<T: Scalar>(targets: Targets, y: &[T]) -> Result<(), String> {
    match targets {
        Targets::Real => Ok(()),
        Targets::Probabilities => match y.iter().position(|v| !(0.0..=1.0).contains(&v.to_f64())) {
            Some(column) => Err(format!(
                "the target {} (column {column}) is not in [0, 1], but `binary_cross_entropy` needs probabilities (0 or 1 labels, or values between)",
                y[column].to_f64()
            )),
            None => Ok(()),
        },
        Targets::Distribution => {
            if let Some(column) = y.iter().position(|v| v.to_f64() < 0.0) {
                return Err(format!(
                    "the target {} (column {column}) is negative, but `cross_entropy` needs rows of non-negative values that sum to 1 (one-hot or class probabilities)",
                    y[column].to_f64()
                ));
            }
            let sum: f64 = y.iter().map(|v| v.to_f64()).sum();
            if (sum - 1.0).abs() > SUM_TOLERANCE {
                return Err(format!(
                    "the target row sums to {sum}, but `cross_entropy` needs rows that sum to 1 (one-hot or class probabilities)"
                ));
            }
            Ok(())
        }
    }
}

/// The buffers one chunk's gradient needs, kept across batches by the serial path so that a
/// training step allocates nothing: the accumulator and the chunk's rows, gathered contiguously
/// so that the model can treat the chunk as one batch.
struct Scratch<M: Model> {
    acc: M,
    xs: Vec<M::Scalar>,
    ys: Vec<M::Scalar>,
}

impl<M: Model> Scratch<M> {
    fn new(net: &M) -> Self {
        Scratch {
            acc: net.zeroed(),
            xs: Vec::new(),
            ys: Vec::new(),
        }
    }

    /// Sets `acc` to `scale * dL/dtheta` summed over the samples `idx`; returns the sum of
    /// their losses.
    fn gradient(
        &mut self,
        net: &M,
        data: &Dataset<M::Scalar>,
        idx: &[usize],
        scale: M::Scalar,
    ) -> f64 {
        self.acc.param_slice_mut().fill(M::Scalar::ZERO);
        self.xs.clear();
        self.ys.clear();
        for &i in idx {
            self.xs.extend_from_slice(data.x(i));
            self.ys.extend_from_slice(data.y(i));
        }
        net.accumulate_rows(&self.xs, &self.ys, scale, &mut self.acc)
            .to_f64()
    }
}

enum Pool {
    Serial,
    Global,
    Own(rayon::ThreadPool, usize),
}

impl Pool {
    /// The gradient of the mean loss over `idx` (written into `grad`, which is overwritten) and
    /// the sum of the losses.
    fn batch_gradient<M: Model + Send + Sync>(
        &self,
        net: &M,
        data: &Dataset<M::Scalar>,
        idx: &[usize],
        scratch: &mut Scratch<M>,
        grad: &mut [M::Scalar],
    ) -> f64 {
        let scale = M::Scalar::from_f64(1.0 / idx.len() as f64);
        let chunks = match self {
            Pool::Serial => 1,
            Pool::Global => rayon::current_num_threads(),
            Pool::Own(_, n) => *n,
        };
        let chunks = chunks.clamp(1, idx.len());
        if chunks == 1 {
            let loss = scratch.gradient(net, data, idx, scale);
            grad.copy_from_slice(scratch.acc.param_slice());
            return loss;
        }
        let size = idx.len().div_ceil(chunks);
        let run = || -> Vec<(M, f64)> {
            idx.par_chunks(size)
                .map(|c| {
                    let mut part = Scratch::new(net);
                    let loss = part.gradient(net, data, c, scale);
                    (part.acc, loss)
                })
                .collect()
        };
        let parts = match self {
            Pool::Own(pool, _) => pool.install(run),
            _ => run(),
        };
        grad.fill(M::Scalar::ZERO);
        let mut loss = 0.0;
        for (g, l) in &parts {
            for (a, &b) in grad.iter_mut().zip(g.param_slice()) {
                *a += b;
            }
            loss += l;
        }
        loss
    }
}

fn norm<T: Scalar>(v: &[T]) -> f64 {
    v.iter()
        .map(|x| {
            let x = x.to_f64();
            x * x
        })
        .sum::<f64>()
        .sqrt()
}

/// Trains `net` on `data` with `opt`.
///
/// Each epoch visits every sample once, in batches (one full batch, or shuffled minibatches of
/// `config.batch_size`). For each batch the gradient of the batch's mean loss is accumulated
/// into a zeroed gradient by [`Model::accumulate_rows`] (for generated networks, one call of
/// their batch code, which computes parameter-only values once); with `config.threads > 1` the
/// batch is split into chunks, one zeroed gradient per chunk, then summed. Then the optimizer
/// takes one step.
///
/// Training stops after `config.epochs` epochs or when a tolerance is met. A NaN or infinite loss,
/// gradient or parameter stops it with [`TrainError::Diverged`], with the parameters restored
/// to their last finite values. Results are deterministic for a given configuration (seed and
/// thread count).
///
/// The data set is checked before training starts: its widths must be the model's
/// ([`TrainError::Shape`]), it must not be empty, every value must be finite
/// ([`TrainError::NonFinite`]), and every target row must be what the loss needs
/// ([`Model::targets`], [`TrainError::Targets`]: for example rows that sum to 1 for
/// `cross_entropy`).
pub fn train<M, O>(
    net: &mut M,
    data: &Dataset<M::Scalar>,
    opt: &mut O,
    config: &TrainConfig,
) -> Result<History, TrainError>
where
    M: Model + Send + Sync,
    O: Optimizer<M::Scalar> + ?Sized,
{
    check_data(net, data)?;
    let n = data.len();
    let batch = match config.batch_size {
        Some(0) => return Err(TrainError::ZeroBatchSize),
        Some(b) => b.min(n),
        None => n,
    };
    let pool = match config.threads {
        1 => Pool::Serial,
        0 => Pool::Global,
        t => Pool::Own(rayon::ThreadPoolBuilder::new().num_threads(t).build()?, t),
    };
    let bar = if config.progress {
        let bar = indicatif::ProgressBar::new(config.epochs as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} epochs [{elapsed_precise} < {eta_precise}] {msg}",
        ) {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };

    let mut rng = SplitMix64::new(config.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let params_len = net.param_slice().len();
    let mut grad = vec![M::Scalar::ZERO; params_len];
    let mut scratch = Scratch::new(net);
    let mut epoch_grad = vec![0.0f64; params_len];
    let mut backup = vec![M::Scalar::ZERO; params_len];
    let mut history = History {
        losses: Vec::new(),
        grad_norms: Vec::new(),
        stop: StopReason::MaxEpochs,
    };

    for epoch in 1..=config.epochs {
        if batch < n && config.shuffle {
            shuffle(&mut order, &mut rng);
        }
        epoch_grad.fill(0.0);
        let mut epoch_loss = 0.0;
        for idx in order.chunks(batch) {
            let loss = pool.batch_gradient(net, data, idx, &mut scratch, &mut grad);
            let diverged = |what| TrainError::Diverged {
                epoch,
                what,
                loss: loss / idx.len() as f64,
                history: history.clone(),
            };
            if !loss.is_finite() {
                bar.abandon();
                return Err(diverged("the loss"));
            }
            if !grad.iter().all(|g| g.is_finite()) {
                bar.abandon();
                return Err(diverged("the gradient"));
            }
            epoch_loss += loss;
            let w = idx.len() as f64 / n as f64;
            for (e, g) in epoch_grad.iter_mut().zip(&grad) {
                *e += w * g.to_f64();
            }
            backup.copy_from_slice(net.param_slice());
            opt.step(net.param_slice_mut(), &grad);
            if !net.param_slice().iter().all(|p| p.is_finite()) {
                net.param_slice_mut().copy_from_slice(&backup);
                bar.abandon();
                return Err(diverged("a parameter"));
            }
        }
        let loss = epoch_loss / n as f64;
        let gnorm = norm(&epoch_grad);
        let prev = history.losses.last().copied();
        history.losses.push(loss);
        history.grad_norms.push(gnorm);
        bar.set_message(format!("loss {loss:.6e}"));
        bar.inc(1);
        if config.grad_tolerance.is_some_and(|tol| gnorm <= tol) {
            history.stop = StopReason::GradTolerance;
            break;
        }
        if let (Some(tol), Some(prev)) = (config.loss_tolerance, prev) {
            if (loss - prev).abs() <= tol * prev.abs() {
                history.stop = StopReason::LossTolerance;
                break;
            }
        }
    }
    bar.finish_and_clear();
    Ok(history)
}

/// The mean per-sample loss of `net` over `data`: NaN if the loss of any sample is NaN (for
/// example when a parameter is NaN). The data set is checked as by [`train`] (widths, finite
/// values, targets that the loss accepts).
pub fn mean_loss<M: Model>(net: &M, data: &Dataset<M::Scalar>) -> Result<f64, TrainError> {
    check_data(net, data)?;
    let sum: f64 = (0..data.len())
        .map(|i| net.sample_loss(data.x(i), data.y(i)).to_f64())
        .sum();
    Ok(sum / data.len() as f64)
}

/// The fraction of samples classified correctly: for several outputs, the argmax of the output
/// against the argmax of the one-hot target; for one output, the output thresholded at 0.5
/// against the target thresholded at 0.5.
///
/// The data set is checked as by [`train`] (widths, finite values, targets that the loss
/// accepts). An output that is NaN or infinite cannot be classified: it is an error,
/// [`TrainError::NonFiniteOutput`] naming the first such sample, not a miss.
///
/// ```
/// use symnet_runtime::data::Dataset;
/// use symnet_runtime::interp::{Activation, InterpNet, Loss};
/// use symnet_runtime::train::accuracy;
///
/// let mut net = InterpNet::<f32>::builder(1).dense(1, Activation::Sigmoid)
///     .loss(Loss::BinaryCrossEntropy).build()?;
/// net.params_mut().copy_from_slice(&[10.0, 0.0]); // p = sigmoid(10 x)
/// let data = Dataset::new(vec![-1.0, 1.0, 2.0, -3.0], vec![0.0, 1.0, 0.0, 0.0], 1, 1)?;
/// assert_eq!(accuracy(&net, &data)?, 0.75);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn accuracy<M: Model>(net: &M, data: &Dataset<M::Scalar>) -> Result<f64, TrainError> {
    check_data(net, data)?;
    let mut out = vec![M::Scalar::ZERO; net.output_width()];
    let half = M::Scalar::from_f64(0.5);
    let mut correct = 0usize;
    for i in 0..data.len() {
        net.predict(data.x(i), &mut out);
        if !out.iter().all(|v| v.is_finite()) {
            return Err(TrainError::NonFiniteOutput { row: i });
        }
        let y = data.y(i);
        let ok = if out.len() == 1 {
            (out[0] >= half) == (y[0] >= half)
        } else {
            argmax(&out) == argmax(y)
        };
        correct += ok as usize;
    }
    Ok(correct as f64 / data.len() as f64)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::optim::{Adam, GradientDescent, Momentum};

    /// A hand-written network: the linear model `y = W x + b` with 2 inputs and 1 output and mse
    /// loss, parameters `[w0, w1, b]`.
    #[derive(Clone, Debug, PartialEq)]
    pub(crate) struct Linear<T> {
        pub(crate) p: [T; 3],
    }

    impl<T: Scalar> Network for Linear<T> {
        type Scalar = T;
        const INPUTS: usize = 2;
        const OUTPUTS: usize = 1;
        const PARAMS: usize = 3;
        fn zeros() -> Self {
            Self { p: [T::ZERO; 3] }
        }
        fn init(seed: u64) -> Self {
            let mut r = SplitMix64::new(seed);
            Self {
                p: [
                    T::from_f64(r.uniform(-1.0, 1.0)),
                    T::from_f64(r.uniform(-1.0, 1.0)),
                    T::ZERO,
                ],
            }
        }
        fn params(&self) -> &[T] {
            &self.p
        }
        fn params_mut(&mut self) -> &mut [T] {
            &mut self.p
        }
        fn tensors() -> &'static [(&'static str, &'static [usize])] {
            &[("out.w", &[1, 2]), ("out.b", &[1])]
        }
        fn forward_slice(&self, x: &[T], out: &mut [T]) {
            out[0] = self.p[0] * x[0] + self.p[1] * x[1] + self.p[2];
        }
        fn loss_slice(&self, x: &[T], y: &[T]) -> T {
            let mut o = [T::ZERO];
            self.forward_slice(x, &mut o);
            (o[0] - y[0]) * (o[0] - y[0])
        }
        fn backward_slice(&self, x: &[T], y: &[T], scale: T, grad: &mut Self) -> T {
            let mut o = [T::ZERO];
            self.forward_slice(x, &mut o);
            let r = o[0] - y[0];
            let d = scale * T::from_f64(2.0) * r;
            grad.p[0] += d * x[0];
            grad.p[1] += d * x[1];
            grad.p[2] += d;
            r * r
        }
    }

    /// `y = 1.5 x0 - 2 x1 + 0.5 + noise`: the least-squares solution is computed in closed form.
    fn regression(n: usize) -> (Dataset<f64>, [f64; 3]) {
        let mut r = SplitMix64::new(5);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            let (a, b) = (r.uniform(-1.0, 1.0), r.uniform(-1.0, 1.0));
            x.extend([a, b]);
            y.push(1.5 * a - 2.0 * b + 0.5 + 0.1 * r.uniform(-1.0, 1.0));
        }
        let data = Dataset::new(x, y, 2, 1).unwrap();
        (data.clone(), least_squares(&data))
    }

    /// Solves the normal equations (3x3) by Cramer's rule.
    fn least_squares(d: &Dataset<f64>) -> [f64; 3] {
        let mut a = [[0.0; 3]; 3];
        let mut b = [0.0; 3];
        for i in 0..d.len() {
            let f = [d.x(i)[0], d.x(i)[1], 1.0];
            for r in 0..3 {
                for c in 0..3 {
                    a[r][c] += f[r] * f[c];
                }
                b[r] += f[r] * d.y(i)[0];
            }
        }
        let det = |m: [[f64; 3]; 3]| {
            m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
                - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
                + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
        };
        let d0 = det(a);
        let mut out = [0.0; 3];
        for (k, o) in out.iter_mut().enumerate() {
            let mut m = a;
            for r in 0..3 {
                m[r][k] = b[r];
            }
            *o = det(m) / d0;
        }
        out
    }

    fn assert_close(p: &[f64], want: &[f64; 3], tol: f64) {
        for (a, b) in p.iter().zip(want) {
            assert!((a - b).abs() < tol, "{p:?} vs {want:?}");
        }
    }

    #[test]
    fn every_optimizer_reaches_the_least_squares_solution() {
        let (data, want) = regression(64);
        let config = TrainConfig {
            epochs: 20_000,
            grad_tolerance: Some(1e-10),
            ..Default::default()
        };
        let mut net = Linear::<f64>::init(1);
        let h = train(&mut net, &data, &mut GradientDescent { lr: 0.3 }, &config).unwrap();
        assert_eq!(h.stop, StopReason::GradTolerance);
        assert_close(&net.p, &want, 1e-6);

        let mut net = Linear::<f64>::init(1);
        let mut opt = Momentum {
            lr: 0.05,
            ..Default::default()
        };
        let h = train(&mut net, &data, &mut opt, &config).unwrap();
        assert_eq!(h.stop, StopReason::GradTolerance);
        assert_close(&net.p, &want, 1e-6);

        let mut net = Linear::<f64>::init(1);
        let mut opt = Adam {
            lr: 0.01,
            ..Default::default()
        };
        let h = train(&mut net, &data, &mut opt, &config).unwrap();
        assert_eq!(h.stop, StopReason::GradTolerance);
        assert_close(&net.p, &want, 1e-6);
    }

    #[test]
    fn minibatch_sgd_approaches_the_solution() {
        let (data, want) = regression(64);
        let mut net = Linear::<f64>::init(2);
        let config = TrainConfig {
            epochs: 300,
            batch_size: Some(8),
            ..Default::default()
        };
        let h = train(&mut net, &data, &mut GradientDescent { lr: 0.05 }, &config).unwrap();
        assert_eq!((h.stop, h.epochs()), (StopReason::MaxEpochs, 300));
        assert_close(&net.p, &want, 1e-2);
        assert!(h.final_loss() < h.losses[0]);
    }

    #[test]
    fn progress_bar_path_runs() {
        let (data, _) = regression(16);
        let mut net = Linear::<f64>::init(1);
        let config = TrainConfig {
            epochs: 5,
            progress: true,
            ..Default::default()
        };
        let h = train(&mut net, &data, &mut GradientDescent::default(), &config).unwrap();
        assert_eq!(h.epochs(), 5);
    }

    #[test]
    fn stopping_rules_trigger() {
        let (data, _) = regression(32);
        let run = |config: TrainConfig| {
            let mut net = Linear::<f64>::init(3);
            train(&mut net, &data, &mut GradientDescent { lr: 0.1 }, &config).unwrap()
        };
        let h = run(TrainConfig {
            epochs: 7,
            ..Default::default()
        });
        assert_eq!(
            (h.stop, h.epochs(), h.grad_norms.len()),
            (StopReason::MaxEpochs, 7, 7)
        );

        let h = run(TrainConfig {
            epochs: 100_000,
            loss_tolerance: Some(1e-6),
            ..Default::default()
        });
        assert_eq!(h.stop, StopReason::LossTolerance);
        let k = h.epochs();
        assert!(k < 100_000);
        let (a, b) = (h.losses[k - 2], h.losses[k - 1]);
        assert!((a - b).abs() <= 1e-6 * a && (h.losses[k - 3] - a).abs() > 1e-6 * h.losses[k - 3]);

        let h = run(TrainConfig {
            epochs: 100_000,
            grad_tolerance: Some(1e-3),
            ..Default::default()
        });
        assert_eq!(h.stop, StopReason::GradTolerance);
        assert!(h.grad_norms.last().unwrap() <= &1e-3);
        assert!(h.grad_norms[h.epochs() - 2] > 1e-3);
    }

    #[test]
    fn divergence_is_reported_and_parameters_stay_finite() {
        let (data, _) = regression(32);
        let mut net = Linear::<f64>::init(4);
        let config = TrainConfig {
            epochs: 10_000,
            ..Default::default()
        };
        let err = train(&mut net, &data, &mut GradientDescent { lr: 1e3 }, &config).unwrap_err();
        match &err {
            TrainError::Diverged { epoch, history, .. } => {
                assert!(*epoch > 1 && *epoch < 10_000);
                assert_eq!(history.epochs(), epoch - 1);
            }
            e => panic!("{e:?}"),
        }
        assert!(err.to_string().contains("diverged at epoch"));
        assert!(net.p.iter().all(|p| p.is_finite()), "{:?}", net.p);

        // f32 too, with minibatches.
        let data32 = Dataset::<f32>::new(
            data.xs().iter().map(|&v| v as f32).collect(),
            data.ys().iter().map(|&v| v as f32).collect(),
            2,
            1,
        )
        .unwrap();
        let mut net = Linear::<f32>::init(4);
        let config = TrainConfig {
            batch_size: Some(4),
            ..config
        };
        let err = train(&mut net, &data32, &mut GradientDescent { lr: 1e3 }, &config);
        assert!(matches!(err, Err(TrainError::Diverged { .. })));
        assert!(net.p.iter().all(|p| p.is_finite()));
    }

    #[test]
    fn parallel_gradients_equal_serial_ones() {
        let (data, _) = regression(101);
        for batch_size in [None, Some(16)] {
            let mut histories = Vec::new();
            let mut params = Vec::new();
            for threads in [1, 2, 3, 0] {
                let mut net = Linear::<f64>::init(6);
                let config = TrainConfig {
                    epochs: 50,
                    batch_size,
                    threads,
                    ..Default::default()
                };
                let mut opt = Momentum {
                    lr: 0.05,
                    ..Default::default()
                };
                histories.push(train(&mut net, &data, &mut opt, &config).unwrap());
                params.push(net.p);
            }
            for (h, p) in histories.iter().zip(&params).skip(1) {
                for (a, b) in p.iter().zip(&params[0]) {
                    assert!((a - b).abs() <= 1e-12 * b.abs().max(1e-300), "{a} vs {b}");
                }
                for (a, b) in h.losses.iter().zip(&histories[0].losses) {
                    assert!((a - b).abs() <= 1e-12 * b.abs());
                }
            }
        }
    }

    #[test]
    fn training_is_deterministic_for_a_seed() {
        let (data, _) = regression(50);
        let run = |seed, threads| {
            let mut net = Linear::<f64>::init(1);
            let config = TrainConfig {
                epochs: 20,
                batch_size: Some(7),
                seed,
                threads,
                ..Default::default()
            };
            let h = train(&mut net, &data, &mut Adam::default(), &config).unwrap();
            (net.p, h)
        };
        assert_eq!(run(9, 1), run(9, 1));
        assert_eq!(run(9, 2), run(9, 2));
        assert_ne!(run(9, 1).0, run(10, 1).0);
    }

    #[test]
    fn shape_errors_are_results() {
        let bad = Dataset::<f64>::new(vec![0.0; 6], vec![0.0; 2], 3, 1).unwrap();
        let mut net = Linear::<f64>::zeros();
        let config = TrainConfig::default();
        let e = train(&mut net, &bad, &mut GradientDescent::default(), &config).unwrap_err();
        assert!(matches!(
            e,
            TrainError::Shape {
                what: "inputs",
                network: 2,
                data: 3
            }
        ));
        let bad = Dataset::<f64>::new(vec![0.0; 4], vec![0.0; 4], 2, 2).unwrap();
        assert!(matches!(
            mean_loss(&net, &bad),
            Err(TrainError::Shape {
                what: "outputs",
                ..
            })
        ));
        let empty = Dataset::<f64>::new(vec![], vec![], 2, 1).unwrap();
        assert!(matches!(
            accuracy(&net, &empty),
            Err(TrainError::EmptyDataset)
        ));
        let ok = Dataset::<f64>::new(vec![0.0; 4], vec![0.0; 2], 2, 1).unwrap();
        let config = TrainConfig {
            batch_size: Some(0),
            ..Default::default()
        };
        assert!(matches!(
            train(&mut net, &ok, &mut GradientDescent::default(), &config),
            Err(TrainError::ZeroBatchSize)
        ));
    }

    #[test]
    fn evaluation_helpers() {
        let (data, want) = regression(20);
        let net = Linear { p: want };
        let l = mean_loss(&net, &data).unwrap();
        let direct: f64 = (0..20)
            .map(|i| net.loss_slice(data.x(i), data.y(i)))
            .sum::<f64>()
            / 20.0;
        assert!((l - direct).abs() < 1e-15 && l < 0.01);

        // Multi-class accuracy: argmax of the output vs argmax of the one-hot target.
        use crate::interp::{Activation, Loss};
        let mut net = InterpNet::<f64>::builder(1)
            .dense(3, Activation::Softmax)
            .loss(Loss::CrossEntropy)
            .build()
            .unwrap();
        // z = [x, 0, -x]: class 0 for x > 0, class 2 for x < 0.
        net.params_mut()
            .copy_from_slice(&[1.0, 0.0, -1.0, 0.0, 0.0, 0.0]);
        let y = crate::data::one_hot(&[0, 2, 0, 1], 3).unwrap();
        let d = Dataset::new(vec![1.0, -2.0, -1.0, 5.0], y, 1, 3).unwrap();
        assert_eq!(accuracy(&net, &d).unwrap(), 0.5);
    }

    fn softmax2() -> InterpNet<f64> {
        use crate::interp::{Activation, Loss};
        InterpNet::<f64>::builder(1)
            .dense(2, Activation::Softmax)
            .loss(Loss::CrossEntropy)
            .build()
            .unwrap()
    }

    fn sigmoid1() -> InterpNet<f64> {
        use crate::interp::{Activation, Loss};
        InterpNet::<f64>::builder(1)
            .dense(1, Activation::Sigmoid)
            .loss(Loss::BinaryCrossEntropy)
            .build()
            .unwrap()
    }

    /// `train`, `mean_loss` and `accuracy` of `net` on `data`, each expected to fail.
    fn all_fail<M: Model + Send + Sync>(net: &mut M, data: &Dataset<M::Scalar>) -> [TrainError; 3] {
        let config = TrainConfig {
            epochs: 3,
            ..Default::default()
        };
        [
            train(net, data, &mut GradientDescent::default(), &config).unwrap_err(),
            mean_loss(net, data).unwrap_err(),
            accuracy(net, data).unwrap_err(),
        ]
    }

    #[test]
    fn cross_entropy_needs_target_rows_that_are_distributions() {
        let mut net = softmax2();
        assert_eq!(net.targets(), Targets::Distribution);
        let data = Dataset::new(vec![1.0, 2.0], vec![1.0, 0.0, 0.5, 0.0], 1, 2).unwrap();
        for e in all_fail(&mut net, &data) {
            let msg = e.to_string();
            assert!(
                matches!(&e, TrainError::Targets { row: 1, reason } if reason.contains("sums to 0.5")),
                "{e:?}"
            );
            assert!(
                msg.starts_with("row 1 of the data set: the target row sums to 0.5, but `cross_entropy` needs rows that sum to 1"),
                "{msg}"
            );
        }
        // A negative target, even in a row summing to 1.
        let data = Dataset::new(vec![1.0], vec![1.5, -0.5], 1, 2).unwrap();
        for e in all_fail(&mut net, &data) {
            assert!(
                matches!(&e, TrainError::Targets { row: 0, reason } if reason.contains("-0.5 (column 1) is negative")),
                "{e:?}"
            );
        }
        // Soft labels and sums within 1e-3 are fine; the untrained loss is ln 2 per sample.
        let data = Dataset::new(vec![1.0, 2.0], vec![0.3, 0.7, 0.9995, 0.0], 1, 2).unwrap();
        let l = mean_loss(&net, &data).unwrap();
        assert!((l - (1.0 + 0.9995) / 2.0 * 2f64.ln()).abs() < 1e-12, "{l}");
        let data = Dataset::new(vec![1.0], vec![0.998, 0.0], 1, 2).unwrap();
        assert!(matches!(
            mean_loss(&net, &data),
            Err(TrainError::Targets { row: 0, .. })
        ));
    }

    #[test]
    fn binary_cross_entropy_needs_probabilities() {
        let mut net = sigmoid1();
        assert_eq!(net.targets(), Targets::Probabilities);
        let data = Dataset::new(vec![1.0, 2.0, 3.0], vec![0.0, 1.0, 2.0], 1, 1).unwrap();
        for e in all_fail(&mut net, &data) {
            assert!(
                matches!(&e, TrainError::Targets { row: 2, reason } if reason.contains("target 2 (column 0) is not in [0, 1]")),
                "{e:?}"
            );
            assert!(e.to_string().contains("`binary_cross_entropy`"), "{e}");
        }
        let data = Dataset::new(vec![1.0], vec![-0.25], 1, 1).unwrap();
        assert!(matches!(
            accuracy(&net, &data),
            Err(TrainError::Targets { row: 0, .. })
        ));
        // Soft targets in [0, 1] are fine.
        let data = Dataset::new(vec![1.0, 2.0], vec![0.25, 1.0], 1, 1).unwrap();
        assert!(mean_loss(&net, &data).is_ok());
    }

    #[test]
    fn non_finite_data_is_an_error_naming_row_and_column() {
        let mut net = Linear::<f64>::init(1);
        assert_eq!(Model::targets(&net), Targets::Real);
        let data = Dataset::new(vec![0.0, 1.0, 2.0, f64::NAN], vec![0.0, 1.0], 2, 1).unwrap();
        for e in all_fail(&mut net, &data) {
            assert!(
                matches!(
                    e,
                    TrainError::NonFinite {
                        row: 1,
                        what: "input",
                        column: 1
                    }
                ),
                "{e:?}"
            );
            assert!(
                e.to_string().contains("row 1 of the data set: input 1"),
                "{e}"
            );
        }
        let data = Dataset::new(vec![0.0; 6], vec![0.0, 0.0, f64::INFINITY], 2, 1).unwrap();
        for e in all_fail(&mut net, &data) {
            assert!(
                matches!(
                    e,
                    TrainError::NonFinite {
                        row: 2,
                        what: "target",
                        column: 0
                    }
                ),
                "{e:?}"
            );
        }
        // Checked before the targets' rules: a NaN target of a cross-entropy model.
        let data = Dataset::new(vec![1.0], vec![f64::NAN, 1.0], 1, 2).unwrap();
        for e in all_fail(&mut softmax2(), &data) {
            assert!(
                matches!(e, TrainError::NonFinite { what: "target", .. }),
                "{e:?}"
            );
        }
    }

    /// [`Linear`] with targets declared as probabilities, as `network!` declares them for
    /// `binary_cross_entropy`.
    #[derive(Clone, Debug, PartialEq)]
    struct Declared(Linear<f64>);

    impl Network for Declared {
        type Scalar = f64;
        const INPUTS: usize = 2;
        const OUTPUTS: usize = 1;
        const PARAMS: usize = 3;
        const TARGETS: Targets = Targets::Probabilities;
        fn zeros() -> Self {
            Self(Linear::zeros())
        }
        fn init(seed: u64) -> Self {
            Self(Linear::init(seed))
        }
        fn params(&self) -> &[f64] {
            self.0.params()
        }
        fn params_mut(&mut self) -> &mut [f64] {
            self.0.params_mut()
        }
        fn tensors() -> &'static [(&'static str, &'static [usize])] {
            Linear::<f64>::tensors()
        }
        fn forward_slice(&self, x: &[f64], out: &mut [f64]) {
            self.0.forward_slice(x, out)
        }
        fn loss_slice(&self, x: &[f64], y: &[f64]) -> f64 {
            self.0.loss_slice(x, y)
        }
        fn backward_slice(&self, x: &[f64], y: &[f64], scale: f64, grad: &mut Self) -> f64 {
            self.0.backward_slice(x, y, scale, &mut grad.0)
        }
    }

    #[test]
    fn a_network_declares_its_targets() {
        let mut net = Declared::init(1);
        assert_eq!(Model::targets(&net), Targets::Probabilities);
        let data = Dataset::new(vec![0.0; 4], vec![0.5, 3.0], 2, 1).unwrap();
        for e in all_fail(&mut net, &data) {
            assert!(matches!(e, TrainError::Targets { row: 1, .. }), "{e:?}");
        }
        // The same data is fine for the plain linear model.
        assert!(mean_loss(&net.0, &data).is_ok());
    }

    #[test]
    fn nan_parameters_surface_as_nan_loss_and_an_accuracy_error() {
        let data = Dataset::new(vec![1.0, -1.0], vec![1.0, 0.0], 1, 1).unwrap();
        let mut net = sigmoid1();
        net.params_mut().fill(f64::NAN);
        assert!(mean_loss(&net, &data).unwrap().is_nan());
        let e = accuracy(&net, &data).unwrap_err();
        assert!(matches!(e, TrainError::NonFiniteOutput { row: 0 }), "{e:?}");
        assert!(e.to_string().contains("row 0"), "{e}");

        let mut net = softmax2();
        net.params_mut().fill(f64::NAN);
        let data = Dataset::new(vec![1.0], vec![0.0, 1.0], 1, 2).unwrap();
        assert!(mean_loss(&net, &data).unwrap().is_nan());
        assert!(matches!(
            accuracy(&net, &data),
            Err(TrainError::NonFiniteOutput { row: 0 })
        ));

        // One NaN sample among finite ones: w = inf gives NaN for x = 0 (0 * inf) and an
        // infinite output for x = 1; the mean is NaN and the accuracy an error at row 0.
        let net = Linear {
            p: [f64::INFINITY, 0.0, 0.0],
        };
        let data = Dataset::new(vec![0.0, 0.0, 1.0, 0.0], vec![0.0, 0.0], 2, 1).unwrap();
        assert!(mean_loss(&net, &data).unwrap().is_nan());
        assert!(matches!(
            accuracy(&net, &data),
            Err(TrainError::NonFiniteOutput { row: 0 })
        ));
        let data = Dataset::new(vec![1.0, 0.0, 1.0, 0.0], vec![0.0, 0.0], 2, 1).unwrap();
        assert!(matches!(
            accuracy(&net, &data),
            Err(TrainError::NonFiniteOutput { row: 0 })
        ));
    }

    #[test]
    fn trains_an_interpreted_network() {
        use crate::interp::{Activation, Loss};
        let xs = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
        let data = Dataset::<f64>::new(
            xs.concat(),
            vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0],
            2,
            2,
        );
        assert!(data.is_err()); // 5 rows of targets for 4 samples
        let data = Dataset::<f64>::new(
            xs.concat(),
            vec![1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0],
            2,
            2,
        )
        .unwrap();
        let mut net = InterpNet::<f64>::builder(2)
            .dense(8, Activation::Tanh)
            .dense(2, Activation::Softmax)
            .loss(Loss::CrossEntropy)
            .build()
            .unwrap();
        net.init(3);
        let config = TrainConfig {
            epochs: 2000,
            threads: 2,
            ..Default::default()
        };
        let h = train(
            &mut net,
            &data,
            &mut Adam {
                lr: 0.05,
                ..Default::default()
            },
            &config,
        )
        .unwrap();
        assert!(h.final_loss() < 0.01, "{}", h.final_loss());
        assert_eq!(accuracy(&net, &data).unwrap(), 1.0);
    }
}
