//! The training loop: epochs of (mini)batches, stopping rules, divergence detection, an optional
//! progress bar and data-parallel batch gradients; learning-rate [`Schedule`]s; a
//! [`Validation`] set with metrics and [`EarlyStopping`] ([`train_with_validation`]).
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

use std::sync::{Arc, Mutex, PoisonError};

use crate::data::{shuffle, Dataset};
use crate::interp::InterpNet;
use crate::optim::Optimizer;
use crate::{argmax, Network, Scalar, SplitMix64, Targets};

/// What the training loop needs of a model: sizes known at run time, a flat parameter view and
/// per-sample loss and gradient. Implemented for every [`Network`] and for [`InterpNet`].
///
/// Why two traits: [`Network`] (what `network!` implements) has its sizes as constants
/// (`INPUTS`, `PARAMS`, `TARGETS`), which an interpreted network built at run time cannot
/// provide; `Model` asks for them at run time, so that one training loop, `mean_loss` and
/// `accuracy` serve both. Every `Network` is a `Model` through a blanket impl: a user of
/// `network!` needs neither trait in scope, since the generated methods (`forward`,
/// `predict_class`, ...) are inherent.
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
    /// Estimated FLOPs of one sample's gradient, which decide whether a batch is worth
    /// splitting across threads (see [`MIN_CHUNK_FLOPS`]). The default is a rough 6 per
    /// parameter (2 forward, 4 backward); the compiler's counts for generated networks are
    /// nearer 3 to 3.5, which the threshold was measured with.
    fn gradient_flops(&self) -> usize {
        self.param_slice().len().saturating_mul(6)
    }
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
    fn gradient_flops(&self) -> usize {
        N::GRADIENT_FLOPS
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
    /// Threads for batch gradients: `1` computes serially; `n > 1` splits each batch into up
    /// to `n` chunks computed on a pool of `n` threads (built on the first such call and kept
    /// for the process, so later calls start no threads; concurrent calls with the same `n`
    /// share it and wait for its threads); `0` uses rayon's global pool and up to
    /// one chunk per thread. A batch is only split into chunks that each carry
    /// [`MIN_CHUNK_FLOPS`] of work, so small batches of small networks stay serial (the
    /// threshold was measured on one 2-core machine; see BENCHMARKS.md). The result equals the serial one up to floating-point
    /// summation order. Default `1`.
    pub threads: usize,
    /// The learning rate of each epoch, as a function of the optimizer's learning rate when
    /// training starts (see [`Schedule`]). Default [`Schedule::Constant`].
    pub schedule: Schedule,
    /// Stop when the validation loss stops improving, and restore the best parameters (see
    /// [`EarlyStopping`]). Needs a validation set, that is [`train_with_validation`]; [`train`]
    /// rejects it with [`TrainError::Config`]. Default `None` (off).
    pub early_stopping: Option<EarlyStopping>,
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
            schedule: Schedule::Constant,
            early_stopping: None,
        }
    }
}

/// A learning-rate schedule: the learning rate of each epoch as a function of the base rate,
/// the optimizer's learning rate when training starts.
///
/// [`train`] sets the optimizer's learning rate ([`Optimizer::set_learning_rate`]) to
/// [`Schedule::learning_rate`] before each epoch, records it in [`History::learning_rates`],
/// and sets it back to the base rate when it returns (also on errors). In the formulas, `t` is
/// the 0-based epoch (the number of epochs before it, the index into [`History`]'s vectors) and
/// `base` the base rate.
///
/// ```
/// use symnet_runtime::train::Schedule;
///
/// let step = Schedule::Step { every: 10, gamma: 0.5 };
/// assert_eq!(step.learning_rate(0.1, 9), 0.1);
/// assert_eq!(step.learning_rate(0.1, 10), 0.05);
/// // 5 epochs of linear warm-up (0.02, 0.04, ..., 0.1), then cosine annealing over 100 epochs.
/// let cosine = Schedule::Cosine { epochs: 100, min_lr: 1e-4 }.with_warmup(5);
/// assert_eq!(cosine.learning_rate(0.1, 0), 0.02);
/// assert_eq!(cosine.learning_rate(0.1, 5), 0.1);
/// assert_eq!(cosine.learning_rate(0.1, 105), 1e-4);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Schedule {
    /// `base` every epoch. The default.
    #[default]
    Constant,
    /// Step decay: `base * gamma^floor(t / every)`, the rate multiplied by `gamma` every
    /// `every` epochs. `every` must be at least 1 and `gamma` finite and non-negative.
    Step {
        /// Epochs between decays.
        every: usize,
        /// The factor of each decay.
        gamma: f64,
    },
    /// Exponential decay: `base * gamma^t`, the rate multiplied by `gamma` every epoch. `gamma`
    /// must be finite and non-negative.
    Exponential {
        /// The factor per epoch.
        gamma: f64,
    },
    /// Cosine annealing from `base` to `min_lr` over `epochs` epochs:
    /// `min_lr + (base - min_lr) * (1 + cos(pi * t / epochs)) / 2` for `t <= epochs`, then
    /// `min_lr`. `epochs` must be at least 1 and `min_lr` finite and non-negative.
    Cosine {
        /// The length of the annealing, in epochs.
        epochs: usize,
        /// The learning rate at its end (an absolute rate, not a factor of `base`).
        min_lr: f64,
    },
    /// Linear warm-up: `(t + 1) / epochs` times the rate of `then` at its first epoch for the
    /// first `epochs` epochs (so the last warm-up epoch runs at the full rate), then `then`,
    /// started afresh (its epoch 0 is the first after the warm-up). Built by
    /// [`Schedule::with_warmup`].
    Warmup {
        /// The length of the warm-up, in epochs (`0`: none).
        epochs: usize,
        /// The schedule after the warm-up.
        then: Box<Schedule>,
    },
}

impl Schedule {
    /// This schedule after `epochs` epochs of linear warm-up (see [`Schedule::Warmup`]); on a
    /// schedule that already has a warm-up, replaces its length.
    pub fn with_warmup(self, epochs: usize) -> Schedule {
        let then = match self {
            Schedule::Warmup { then, .. } => then,
            other => Box::new(other),
        };
        Schedule::Warmup { epochs, then }
    }

    /// The learning rate of the 0-based epoch `t` for the base rate `base`.
    pub fn learning_rate(&self, base: f64, t: usize) -> f64 {
        let powi = |gamma: f64, k: usize| gamma.powi(k.min(i32::MAX as usize) as i32);
        match self {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => base * powi(*gamma, t / (*every).max(1)),
            Schedule::Exponential { gamma } => base * powi(*gamma, t),
            Schedule::Cosine { epochs, min_lr } => {
                if t >= *epochs {
                    return *min_lr;
                }
                // Weighted so that t = 0 gives exactly `base`.
                let w = (1.0 + (std::f64::consts::PI * t as f64 / *epochs as f64).cos()) / 2.0;
                base * w + min_lr * (1.0 - w)
            }
            Schedule::Warmup { epochs, then } => {
                if t >= *epochs {
                    then.learning_rate(base, t - epochs)
                } else {
                    then.learning_rate(base, 0) * (t + 1) as f64 / *epochs as f64
                }
            }
        }
    }

    /// Why the schedule's parameters are invalid, if they are.
    fn check(&self) -> Result<(), String> {
        let factor = |what: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "the schedule's {what} is {v}, but it must be finite and non-negative"
                ))
            }
        };
        match self {
            Schedule::Constant => Ok(()),
            Schedule::Step { every: 0, .. } => {
                Err("the schedule's `every` must be at least 1".to_string())
            }
            Schedule::Step { gamma, .. } | Schedule::Exponential { gamma } => {
                factor("`gamma`", *gamma)
            }
            Schedule::Cosine { epochs: 0, .. } => {
                Err("the cosine schedule's `epochs` must be at least 1".to_string())
            }
            Schedule::Cosine { min_lr, .. } => factor("`min_lr`", *min_lr),
            Schedule::Warmup { then, .. } => then.check(),
        }
    }
}

/// Early stopping on the validation loss, [`TrainConfig::early_stopping`]. Defaults are
/// stated per field.
///
/// An epoch improves when its validation loss is below the best one so far by more than
/// `min_delta` (the first epoch with a finite validation loss always improves); the best epoch
/// is the last one that improved. Training stops with [`StopReason::EarlyStopping`] after
/// `patience` epochs in a row without improvement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EarlyStopping {
    /// Epochs without improvement before stopping; at least 1. Default `10`.
    pub patience: usize,
    /// How much lower than the best validation loss a loss must be to count as an improvement;
    /// finite and non-negative. Default `0.0`.
    pub min_delta: f64,
    /// When training ends without an error, however it stopped, set the parameters to those
    /// after the best epoch ([`History::best_epoch`]). Default `true`.
    pub restore_best: bool,
}

impl Default for EarlyStopping {
    fn default() -> Self {
        Self {
            patience: 10,
            min_delta: 0.0,
            restore_best: true,
        }
    }
}

impl EarlyStopping {
    fn check(&self) -> Result<(), String> {
        if self.patience == 0 {
            return Err("the early stopping's `patience` must be at least 1".to_string());
        }
        if !(self.min_delta.is_finite() && self.min_delta >= 0.0) {
            return Err(format!(
                "the early stopping's `min_delta` is {}, but it must be finite and non-negative",
                self.min_delta
            ));
        }
        Ok(())
    }
}

/// A metric of [`Validation`]: the model and the validation set in, a number out.
type MetricFn<'a, M> =
    Box<dyn FnMut(&M, &Dataset<<M as Model>::Scalar>) -> Result<f64, TrainError> + 'a>;

/// A validation set and named metrics, evaluated after every epoch by
/// [`train_with_validation`].
///
/// After each epoch, the mean per-sample loss on the validation set (as [`mean_loss`]) goes
/// into [`History::val_losses`] and each metric, called with the model and the validation set,
/// into [`History::metrics`] under its name. A metric is any
/// `FnMut(&M, &Dataset<M::Scalar>) -> Result<f64, TrainError>`: [`accuracy`] and [`mean_loss`]
/// are ones, and a closure may ignore the validation set and evaluate the model on data it
/// captures (for example the training set). An error of a metric ends training with that
/// error.
pub struct Validation<'a, M: Model> {
    data: &'a Dataset<M::Scalar>,
    metrics: Vec<(String, MetricFn<'a, M>)>,
}

impl<'a, M: Model> Validation<'a, M> {
    /// The validation set `data`, without metrics.
    pub fn new(data: &'a Dataset<M::Scalar>) -> Self {
        Self {
            data,
            metrics: Vec::new(),
        }
    }

    /// Adds a metric recorded under `name` (names need not be unique: each metric has its own
    /// entry, in the order added).
    pub fn metric(
        mut self,
        name: impl Into<String>,
        metric: impl FnMut(&M, &Dataset<M::Scalar>) -> Result<f64, TrainError> + 'a,
    ) -> Self {
        self.metrics.push((name.into(), Box::new(metric)));
        self
    }
}

impl<M: Model> std::fmt::Debug for Validation<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validation")
            .field("samples", &self.data.len())
            .field(
                "metrics",
                &self.metrics.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
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
    /// The validation loss did not improve for [`EarlyStopping::patience`] epochs.
    EarlyStopping {
        /// The 1-based epoch with the best validation loss ([`History::best_epoch`]).
        best_epoch: usize,
    },
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
    /// The mean per-sample loss on the validation set after each epoch (as [`mean_loss`] after
    /// the epoch's steps); empty without a validation set.
    pub val_losses: Vec<f64>,
    /// The learning rate of each epoch, set by [`TrainConfig::schedule`].
    pub learning_rates: Vec<f64>,
    /// Each metric of the [`Validation`], by name in the order added, with its value after each
    /// epoch; empty without a validation set.
    pub metrics: Vec<(String, Vec<f64>)>,
    /// With a validation set, the 1-based epoch with the lowest validation loss (with
    /// [`EarlyStopping`], the last epoch that improved by more than its `min_delta`); `None`
    /// without one (or while no validation loss was finite). Its entries are at index
    /// `best_epoch - 1`.
    pub best_epoch: Option<usize>,
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

    /// The values of the first metric named `name`, one per epoch.
    pub fn metric(&self, name: &str) -> Option<&[f64]> {
        self.metrics
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
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
    /// A setting of [`TrainConfig`] is invalid: a [`Schedule`] or [`EarlyStopping`] parameter
    /// out of range, or early stopping without a validation set.
    #[error("invalid training configuration: {0}")]
    Config(String),
    /// The validation set of [`train_with_validation`] failed the checks of the training data
    /// (the error inside; its rows are the validation set's).
    #[error("the validation set: {0}")]
    Validation(Box<TrainError>),
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
        /// The epochs completed before the failing one (boxed: it is large).
        history: Box<History>,
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
    // One branch-free pass over each array first; rows are searched only to locate a problem.
    let (xs_finite, ys_finite) = (all_finite(data.xs()), all_finite(data.ys()));
    if xs_finite && ys_finite && targets_ok(targets, data.ys(), data.outputs()) {
        return Ok(());
    }
    for row in 0..data.len() {
        let (x, y) = (data.x(row), data.y(row));
        let non_finite = |what, v: &[M::Scalar], known_finite: bool| {
            if known_finite {
                return None;
            }
            v.iter()
                .position(|v| !v.is_finite())
                .map(|column| TrainError::NonFinite { row, what, column })
        };
        if let Some(e) =
            non_finite("input", x, xs_finite).or_else(|| non_finite("target", y, ys_finite))
        {
            return Err(e);
        }
        if let Err(reason) = check_targets(targets, y) {
            return Err(TrainError::Targets { row, reason });
        }
    }
    Ok(())
}

/// Whether every value of `v` is finite, in a form that vectorizes (no early exit within a
/// block): `train` checks every input before each call, and a row-by-row search with an early
/// exit took about 0.1 ms of the 3 ms full-batch epoch of 64-32-10 (16,384 rows of 64 inputs;
/// `cargo bench --bench threads`).
fn all_finite<T: Scalar>(v: &[T]) -> bool {
    v.chunks(1024)
        .all(|block| block.iter().fold(true, |ok, x| ok & x.is_finite()))
}

/// Whether every row of the finite targets `ys` (rows of `width`) is what `targets` asks for,
/// by the rules of [`check_targets`], in one pass without an early exit per value (a row-by-row
/// check of 16,384 one-hot rows of 10 took about 0.25 ms of a 2.8 ms full-batch epoch of
/// 64-32-10, before any thread started: `cargo bench --bench threads`, one thread, 2.76 ms
/// before and 2.51 ms after).
fn targets_ok<T: Scalar>(targets: Targets, ys: &[T], width: usize) -> bool {
    match targets {
        Targets::Real => true,
        Targets::Probabilities => ys.chunks(1024).all(|block| {
            block
                .iter()
                .fold(true, |ok, &v| ok & (v >= T::ZERO) & (v <= T::ONE))
        }),
        Targets::Distribution => ys.chunks(width * 64).all(|block| {
            block.chunks_exact(width).fold(true, |ok, row| {
                let (mut sum, mut non_negative) = (0.0f64, true);
                for &v in row {
                    sum += v.to_f64();
                    non_negative &= v >= T::ZERO;
                }
                ok & non_negative & ((sum - 1.0).abs() <= SUM_TOLERANCE)
            })
        }),
    }
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

/// The buffers one chunk's gradient needs, kept across batches (one per chunk) so that a
/// training step allocates nothing: the accumulator and the chunk's rows, gathered contiguously
/// so that the model can treat the chunk as one batch.
struct Scratch<M: Model> {
    acc: M,
    /// The sum of the chunk's losses, from its last [`gradient`](Self::gradient).
    loss: f64,
    xs: Vec<M::Scalar>,
    ys: Vec<M::Scalar>,
}

impl<M: Model> Scratch<M> {
    fn new(net: &M) -> Self {
        Scratch {
            acc: net.zeroed(),
            loss: 0.0,
            xs: Vec::new(),
            ys: Vec::new(),
        }
    }

    /// Sets `acc` to `scale * dL/dtheta` summed over the samples `idx`; returns the sum of
    /// their losses. Consecutive samples (a full batch, unshuffled data) are read in place;
    /// others are gathered into contiguous rows first.
    fn gradient(
        &mut self,
        net: &M,
        data: &Dataset<M::Scalar>,
        idx: &[usize],
        scale: M::Scalar,
    ) -> f64 {
        self.acc.param_slice_mut().fill(M::Scalar::ZERO);
        let (n, m) = (data.inputs(), data.outputs());
        let first = idx.first().copied().unwrap_or(0);
        let consecutive = idx.iter().enumerate().all(|(k, &i)| i == first + k);
        if consecutive {
            let end = first + idx.len();
            let xs = &data.xs()[first * n..end * n];
            let ys = &data.ys()[first * m..end * m];
            return net.accumulate_rows(xs, ys, scale, &mut self.acc).to_f64();
        }
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

/// The least estimated work, in FLOPs, that a chunk of a batch must carry before the trainer
/// gives it a thread of its own: below it, waking a thread and summing one more gradient cost
/// more than they save. Measured with `cargo bench --bench threads` (BENCHMARKS.md, 2-core
/// AMD EPYC): when the threshold was 1 MFLOP, chunks of 16 samples of 784-128-10 (4.9 MFLOP
/// by its `GRADIENT_FLOPS`) made two threads 0.94x as fast as one once the batch code ran at
/// about 100 GFLOP/s, and chunks of 128 samples (39 MFLOP) 1.6x faster. Earlier, slower batch
/// code paid off from about 1 MFLOP.
pub const MIN_CHUNK_FLOPS: usize = 8_000_000;

/// How many chunks a batch of `samples`, each costing `flops`, is split into on `threads`
/// threads: one per thread, but only as many as carry [`MIN_CHUNK_FLOPS`] each, at least one.
fn chunk_count(threads: usize, samples: usize, flops: usize) -> usize {
    threads
        .min(samples.saturating_mul(flops) / MIN_CHUNK_FLOPS)
        .min(samples)
        .max(1)
}

enum Pool {
    Serial,
    Global,
    Own(Arc<rayon::ThreadPool>),
}

/// The process's pool of `threads` threads, built on first use and kept, so that a `train`
/// call pays no thread start-up: building a pool per call cost about 0.24 ms of the 2 ms
/// full-batch epoch of 64-32-10 on 2 threads (`cargo bench --bench threads`). Idle rayon
/// threads sleep.
fn shared_pool(threads: usize) -> Result<Arc<rayon::ThreadPool>, TrainError> {
    static POOLS: Mutex<Vec<(usize, Arc<rayon::ThreadPool>)>> = Mutex::new(Vec::new());
    let mut pools = POOLS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, pool)) = pools.iter().find(|(n, _)| *n == threads) {
        return Ok(Arc::clone(pool));
    }
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()?,
    );
    pools.push((threads, Arc::clone(&pool)));
    Ok(pool)
}

impl Pool {
    /// The most chunks a batch is split into.
    fn threads(&self) -> usize {
        match self {
            Pool::Serial => 1,
            Pool::Global => rayon::current_num_threads(),
            Pool::Own(pool) => pool.current_num_threads(),
        }
    }

    /// The gradient of the mean loss over `idx` (written into `grad`, which is overwritten) and
    /// the sum of the losses. `scratch` holds one buffer set per chunk, kept across batches so
    /// that a step allocates nothing.
    fn batch_gradient<M: Model + Send + Sync>(
        &self,
        net: &M,
        data: &Dataset<M::Scalar>,
        idx: &[usize],
        scratch: &mut Vec<Scratch<M>>,
        grad: &mut [M::Scalar],
    ) -> f64 {
        let scale = M::Scalar::from_f64(1.0 / idx.len() as f64);
        let chunks = chunk_count(self.threads(), idx.len(), net.gradient_flops());
        while scratch.len() < chunks {
            scratch.push(Scratch::new(net));
        }
        if chunks == 1 {
            let loss = scratch[0].gradient(net, data, idx, scale);
            grad.copy_from_slice(scratch[0].acc.param_slice());
            return loss;
        }
        let size = idx.len().div_ceil(chunks);
        let parts = &mut scratch[..chunks];
        // Each chunk's loss is kept in its buffers: nothing is allocated per step. The calling
        // thread computes the first chunk while pool threads take the others: with `install`
        // the caller only waited, and the work waited for one more wake-up.
        fn run<'s, M: Model + Send + Sync>(
            s: &rayon::Scope<'s>,
            parts: &'s mut [Scratch<M>],
            chunks: core::slice::Chunks<'s, usize>,
            net: &'s M,
            data: &'s Dataset<M::Scalar>,
            scale: M::Scalar,
        ) {
            let mut work = parts.iter_mut().zip(chunks);
            let first = work.next();
            for (part, c) in work {
                s.spawn(move |_| part.loss = part.gradient(net, data, c, scale));
            }
            if let Some((part, c)) = first {
                part.loss = part.gradient(net, data, c, scale);
            }
        }
        let chunked = idx.chunks(size);
        match self {
            Pool::Own(pool) => {
                pool.in_place_scope(|s| run(s, parts, chunked, net, data, scale));
            }
            _ => rayon::in_place_scope(|s| run(s, parts, chunked, net, data, scale)),
        }
        // `chunks` may give fewer chunks than buffers (the last batch of an epoch).
        let used = idx.len().div_ceil(size);
        // The chunks' gradients summed in chunk order (the same result for any thread timing).
        grad.copy_from_slice(parts[0].acc.param_slice());
        for part in &parts[1..used] {
            for (a, &b) in grad.iter_mut().zip(part.acc.param_slice()) {
                *a += b;
            }
        }
        parts[..used].iter().map(|p| p.loss).sum()
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
/// Before each epoch the optimizer's learning rate is set by `config.schedule` from its value
/// when `train` was called ([`Schedule`]); that value is restored when `train` returns, with or
/// without an error.
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
/// `cross_entropy`). So is the configuration ([`TrainError::Config`]); `config.early_stopping`
/// needs a validation set, given by [`train_with_validation`].
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
    run(net, data, None, opt, config)
}

/// Trains `net` on `data` with `opt` as [`train`] does, and evaluates it on a validation set
/// after every epoch: its loss, the metrics of `validation`, and with
/// [`TrainConfig::early_stopping`], early stopping on the validation loss.
///
/// The validation set is checked as the training data is (widths, finite values, targets;
/// errors are wrapped in [`TrainError::Validation`]). The history's
/// [`val_losses`](History::val_losses), [`metrics`](History::metrics) and
/// [`best_epoch`](History::best_epoch) are filled in. With [`EarlyStopping`], training also
/// stops after [`patience`](EarlyStopping::patience) epochs without improvement
/// ([`StopReason::EarlyStopping`]), and with [`restore_best`](EarlyStopping::restore_best) the
/// parameters end as they were after the best epoch (whatever the reason training stopped).
///
/// ```
/// use symnet_runtime::data::Dataset;
/// use symnet_runtime::interp::{Activation, InterpNet, Loss};
/// use symnet_runtime::optim::Adam;
/// use symnet_runtime::train::{
///     accuracy, train_with_validation, EarlyStopping, Schedule, TrainConfig, Validation,
/// };
///
/// // Is x > 0.3? Training samples on a grid, validation samples between them.
/// let label = |x: f64| if x > 0.3 { 1.0 } else { 0.0 };
/// let xs: Vec<f64> = (0..40).map(|i| i as f64 / 20.0 - 1.0).collect();
/// let vs: Vec<f64> = (0..20).map(|i| i as f64 / 10.0 - 0.975).collect();
/// let data = Dataset::new(xs.clone(), xs.iter().map(|&x| label(x)).collect(), 1, 1)?;
/// let valid = Dataset::new(vs.clone(), vs.iter().map(|&x| label(x)).collect(), 1, 1)?;
/// let mut net = InterpNet::<f64>::builder(1)
///     .dense(1, Activation::Sigmoid)
///     .loss(Loss::BinaryCrossEntropy)
///     .build()?;
/// let config = TrainConfig {
///     epochs: 300,
///     schedule: Schedule::Cosine { epochs: 300, min_lr: 1e-3 }.with_warmup(10),
///     early_stopping: Some(EarlyStopping { patience: 20, ..Default::default() }),
///     ..Default::default()
/// };
/// let mut opt = Adam { lr: 0.1, ..Default::default() };
/// let validation = Validation::new(&valid).metric("accuracy", accuracy);
/// let history = train_with_validation(&mut net, &data, validation, &mut opt, &config)?;
///
/// assert_eq!(history.val_losses.len(), history.epochs());
/// assert_eq!(history.learning_rates[0], 0.01); // the first warm-up epoch: 0.1 / 10
/// assert_eq!(opt.lr, 0.1); // restored
/// let best = history.best_epoch.unwrap();
/// assert_eq!(history.metric("accuracy").unwrap()[best - 1], 1.0);
/// assert_eq!(accuracy(&net, &valid)?, 1.0); // the parameters of the best epoch
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn train_with_validation<M, O>(
    net: &mut M,
    data: &Dataset<M::Scalar>,
    validation: Validation<'_, M>,
    opt: &mut O,
    config: &TrainConfig,
) -> Result<History, TrainError>
where
    M: Model + Send + Sync,
    O: Optimizer<M::Scalar> + ?Sized,
{
    run(net, data, Some(validation), opt, config)
}

/// [`train`] and [`train_with_validation`]: the checks, the thread pool and the progress bar
/// around [`epochs`], and the learning rate restored after it.
fn run<M, O>(
    net: &mut M,
    data: &Dataset<M::Scalar>,
    validation: Option<Validation<'_, M>>,
    opt: &mut O,
    config: &TrainConfig,
) -> Result<History, TrainError>
where
    M: Model + Send + Sync,
    O: Optimizer<M::Scalar> + ?Sized,
{
    check_data(net, data)?;
    if let Some(v) = &validation {
        check_data(net, v.data).map_err(|e| TrainError::Validation(Box::new(e)))?;
    }
    let n = data.len();
    let batch = match config.batch_size {
        Some(0) => return Err(TrainError::ZeroBatchSize),
        Some(b) => b.min(n),
        None => n,
    };
    config.schedule.check().map_err(TrainError::Config)?;
    if let Some(early) = &config.early_stopping {
        early.check().map_err(TrainError::Config)?;
        if validation.is_none() {
            return Err(TrainError::Config(
                "early stopping needs a validation set (use `train_with_validation`)".to_string(),
            ));
        }
    }
    // No pool where no batch will be split (building one costs more than a small epoch).
    let split = |threads: usize| chunk_count(threads, batch, net.gradient_flops()) > 1;
    let pool = match config.threads {
        0 if split(rayon::current_num_threads()) => Pool::Global,
        t if t > 1 && split(t) => Pool::Own(shared_pool(t)?),
        _ => Pool::Serial,
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

    let base_lr = opt.learning_rate();
    let result = epochs(
        net, data, validation, opt, config, batch, &pool, &bar, base_lr,
    );
    opt.set_learning_rate(base_lr);
    match &result {
        Ok(_) => bar.finish_and_clear(),
        Err(_) => bar.abandon(),
    }
    result
}

/// The epochs of [`run`], with the learning rate of each set from `base_lr`.
#[allow(clippy::too_many_arguments)]
fn epochs<M, O>(
    net: &mut M,
    data: &Dataset<M::Scalar>,
    mut validation: Option<Validation<'_, M>>,
    opt: &mut O,
    config: &TrainConfig,
    batch: usize,
    pool: &Pool,
    bar: &indicatif::ProgressBar,
    base_lr: f64,
) -> Result<History, TrainError>
where
    M: Model + Send + Sync,
    O: Optimizer<M::Scalar> + ?Sized,
{
    let n = data.len();
    let mut rng = SplitMix64::new(config.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let params_len = net.param_slice().len();
    let mut grad = vec![M::Scalar::ZERO; params_len];
    let mut scratch = vec![Scratch::new(net)];
    let mut epoch_grad = vec![0.0f64; params_len];
    let mut backup = vec![M::Scalar::ZERO; params_len];
    let mut history = History {
        losses: Vec::new(),
        grad_norms: Vec::new(),
        val_losses: Vec::new(),
        learning_rates: Vec::new(),
        metrics: validation
            .iter()
            .flat_map(|v| &v.metrics)
            .map(|(name, _)| (name.clone(), Vec::new()))
            .collect(),
        best_epoch: None,
        stop: StopReason::MaxEpochs,
    };
    // Early stopping: the best validation loss, the epochs since it, the parameters after it.
    let min_delta = config.early_stopping.map_or(0.0, |e| e.min_delta);
    let restore_best = config.early_stopping.is_some_and(|e| e.restore_best);
    let mut best_loss = f64::INFINITY;
    let mut waited = 0usize;
    let mut best_params = Vec::new();

    for epoch in 1..=config.epochs {
        let lr = config.schedule.learning_rate(base_lr, epoch - 1);
        opt.set_learning_rate(lr);
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
                history: Box::new(history.clone()),
            };
            if !loss.is_finite() {
                return Err(diverged("the loss"));
            }
            if !grad.iter().all(|g| g.is_finite()) {
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
                return Err(diverged("a parameter"));
            }
        }
        let loss = epoch_loss / n as f64;
        let gnorm = norm(&epoch_grad);
        let prev = history.losses.last().copied();
        history.losses.push(loss);
        history.grad_norms.push(gnorm);
        history.learning_rates.push(lr);
        let mut message = format!("loss {loss:.6e}");
        if let Some(v) = &mut validation {
            let val_loss = loss_sum(net, v.data) / v.data.len() as f64;
            history.val_losses.push(val_loss);
            for ((_, metric), (_, values)) in v.metrics.iter_mut().zip(&mut history.metrics) {
                values.push(metric(net, v.data)?);
            }
            if val_loss < best_loss - min_delta {
                best_loss = val_loss;
                waited = 0;
                history.best_epoch = Some(epoch);
                if restore_best {
                    best_params.clear();
                    best_params.extend_from_slice(net.param_slice());
                }
            } else if history.best_epoch.is_some() {
                waited += 1;
            }
            message.push_str(&format!(", validation loss {val_loss:.6e}"));
        }
        bar.set_message(message);
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
        if let (Some(early), Some(best_epoch)) = (config.early_stopping, history.best_epoch) {
            if waited >= early.patience {
                history.stop = StopReason::EarlyStopping { best_epoch };
                break;
            }
        }
    }
    if restore_best && history.best_epoch.is_some_and(|b| b != history.epochs()) {
        net.param_slice_mut().copy_from_slice(&best_params);
    }
    Ok(history)
}

/// The sum of the per-sample losses of `net` over `data` (not checked).
fn loss_sum<M: Model>(net: &M, data: &Dataset<M::Scalar>) -> f64 {
    (0..data.len())
        .map(|i| net.sample_loss(data.x(i), data.y(i)).to_f64())
        .sum()
}

/// The mean per-sample loss of `net` over `data`: NaN if the loss of any sample is NaN (for
/// example when a parameter is NaN). The data set is checked as by [`train`] (widths, finite
/// values, targets that the loss accepts).
pub fn mean_loss<M: Model>(net: &M, data: &Dataset<M::Scalar>) -> Result<f64, TrainError> {
    check_data(net, data)?;
    Ok(loss_sum(net, data) / data.len() as f64)
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
        // As costly as a large network, so that the trainers' tests split its batches
        // across threads.
        const GRADIENT_FLOPS: usize = super::MIN_CHUNK_FLOPS;
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
    fn batches_are_split_only_where_each_chunk_pays_for_its_thread() {
        let m = MIN_CHUNK_FLOPS;
        // Too little work: one chunk, whatever the thread count.
        assert_eq!(chunk_count(2, 32, 14_000), 1);
        assert_eq!(chunk_count(8, 1, m), 1);
        // Enough for two chunks, not three.
        assert_eq!(chunk_count(2, 2, m), 2);
        assert_eq!(chunk_count(8, 5, m / 2), 2);
        // Never more chunks than threads or samples, never none.
        assert_eq!(chunk_count(2, 1000, m), 2);
        assert_eq!(chunk_count(4, 3, m * 10), 3);
        assert_eq!(chunk_count(0, 0, 0), 1);
        assert_eq!(chunk_count(2, usize::MAX, usize::MAX), 2);
    }

    #[test]
    fn parallel_gradients_equal_serial_ones() {
        // The test network is priced so that its batches are split.
        assert!(chunk_count(2, 5, Linear::<f64>::GRADIENT_FLOPS) == 2);
        let (data, _) = regression(101);
        // Some(8): the epoch's last batch of 5 on 4 threads is 3 chunks of 2, 2, 1 while a
        // fourth buffer still holds the previous batch's gradient.
        for batch_size in [None, Some(16), Some(8)] {
            let mut histories = Vec::new();
            let mut params = Vec::new();
            for threads in [1, 2, 3, 4, 0] {
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
    fn the_one_pass_target_check_agrees_with_the_row_check() {
        let rows: [&[f64]; 8] = [
            &[0.0, 1.0],
            &[0.5, 0.5],
            &[1.0, 0.0005],
            &[1.0, 0.002],
            &[-0.0, 1.0],
            &[-0.1, 1.1],
            &[1.2, -0.2],
            &[0.3, 0.3],
        ];
        for targets in [Targets::Real, Targets::Probabilities, Targets::Distribution] {
            for row in rows {
                assert_eq!(
                    targets_ok(targets, row, 2),
                    check_targets(targets, row).is_ok(),
                    "{targets:?} {row:?}"
                );
            }
            let all: Vec<f64> = rows.concat();
            let each = rows.iter().all(|r| check_targets(targets, r).is_ok());
            assert_eq!(targets_ok(targets, &all, 2), each, "{targets:?}");
        }
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
        // Past the first block of the branch-free pass, and the first bad row wins whether
        // its problem is an input or a target: a target at row 700, an input at row 900.
        let (mut xs, mut ys) = (vec![0.5; 2 * 1000], vec![0.0; 1000]);
        xs[2 * 900 + 1] = f64::NEG_INFINITY;
        ys[700] = f64::NAN;
        let data = Dataset::new(xs.clone(), ys, 2, 1).unwrap();
        for e in all_fail(&mut net, &data) {
            assert!(
                matches!(
                    e,
                    TrainError::NonFinite {
                        row: 700,
                        what: "target",
                        column: 0
                    }
                ),
                "{e:?}"
            );
        }
        let data = Dataset::new(xs, vec![0.0; 1000], 2, 1).unwrap();
        for e in all_fail(&mut net, &data) {
            assert!(
                matches!(
                    e,
                    TrainError::NonFinite {
                        row: 900,
                        what: "input",
                        column: 1
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

    #[test]
    fn schedules_give_exact_learning_rates() {
        let base = 0.1;
        let lr = |s: &Schedule, t| s.learning_rate(base, t);
        assert_eq!(Schedule::default(), Schedule::Constant);
        assert_eq!(TrainConfig::default().schedule, Schedule::Constant);
        assert_eq!(lr(&Schedule::Constant, 0), base);
        assert_eq!(lr(&Schedule::Constant, 1000), base);

        let step = Schedule::Step {
            every: 3,
            gamma: 0.5,
        };
        let got: Vec<f64> = (0..8).map(|t| step.learning_rate(0.8, t)).collect();
        assert_eq!(got, [0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2, 0.2]);

        let exp = Schedule::Exponential { gamma: 0.5 };
        let got: Vec<f64> = (0..4).map(|t| exp.learning_rate(0.8, t)).collect();
        assert_eq!(got, [0.8, 0.4, 0.2, 0.1]);
        assert_eq!(exp.learning_rate(0.8, usize::MAX), 0.0);

        let cos = Schedule::Cosine {
            epochs: 4,
            min_lr: 0.01,
        };
        assert_eq!(lr(&cos, 0), 0.1);
        let w = (1.0 + std::f64::consts::FRAC_1_SQRT_2) / 2.0;
        assert!((lr(&cos, 1) - (0.01 + 0.09 * w)).abs() < 1e-15);
        assert!((lr(&cos, 2) - 0.055).abs() < 1e-15);
        assert!((lr(&cos, 3) - (0.01 + 0.09 * (1.0 - w))).abs() < 1e-15);
        assert_eq!(lr(&cos, 4), 0.01);
        assert_eq!(lr(&cos, 50), 0.01);
        // Decreasing in between.
        assert!(lr(&cos, 1) > lr(&cos, 2) && lr(&cos, 2) > lr(&cos, 3));
    }

    #[test]
    fn warmup_ramps_linearly_then_starts_the_schedule() {
        let s = Schedule::Exponential { gamma: 0.5 }.with_warmup(4);
        let got: Vec<f64> = (0..7).map(|t| s.learning_rate(0.5, t)).collect();
        assert_eq!(got, [0.125, 0.25, 0.375, 0.5, 0.5, 0.25, 0.125]);
        // A second `with_warmup` replaces the length; 0 epochs is no warm-up.
        let s = s.with_warmup(2);
        assert_eq!(
            s,
            Schedule::Warmup {
                epochs: 2,
                then: Box::new(Schedule::Exponential { gamma: 0.5 })
            }
        );
        assert_eq!(s.learning_rate(0.5, 0), 0.25);
        let none = Schedule::Cosine {
            epochs: 10,
            min_lr: 0.0,
        }
        .with_warmup(0);
        assert_eq!(none.learning_rate(0.5, 0), 0.5);
        assert_eq!(none.learning_rate(0.5, 10), 0.0);
        // With cosine annealing: the annealing starts after the warm-up.
        let s = Schedule::Cosine {
            epochs: 10,
            min_lr: 0.0,
        }
        .with_warmup(5);
        assert_eq!(s.learning_rate(1.0, 0), 0.2);
        assert_eq!(s.learning_rate(1.0, 4), 1.0);
        assert_eq!(s.learning_rate(1.0, 5), 1.0);
        assert_eq!(s.learning_rate(1.0, 15), 0.0);
    }

    #[test]
    fn training_follows_the_schedule_and_restores_the_learning_rate() {
        let (data, _) = regression(32);
        // The rate drops to 0 after 3 epochs: the parameters stop where 3 epochs left them.
        let mut three = Linear::<f64>::init(1);
        let config = TrainConfig {
            epochs: 3,
            ..Default::default()
        };
        let h = train(&mut three, &data, &mut GradientDescent { lr: 0.1 }, &config).unwrap();
        assert_eq!(h.learning_rates, [0.1; 3]);
        let mut net = Linear::<f64>::init(1);
        let mut opt = GradientDescent { lr: 0.1 };
        let config = TrainConfig {
            epochs: 10,
            schedule: Schedule::Step {
                every: 3,
                gamma: 0.0,
            },
            ..Default::default()
        };
        let h = train(&mut net, &data, &mut opt, &config).unwrap();
        assert_eq!(net.p, three.p);
        assert_eq!(h.learning_rates.len(), 10);
        assert_eq!(h.learning_rates[..4], [0.1, 0.1, 0.1, 0.0]);
        assert_eq!(opt.lr, 0.1);

        // Every optimizer, with warm-up: the recorded rates are the schedule's, and the rate is
        // restored afterwards.
        let schedule = Schedule::Exponential { gamma: 0.5 }.with_warmup(4);
        let config = TrainConfig {
            epochs: 6,
            batch_size: Some(8),
            schedule: schedule.clone(),
            ..Default::default()
        };
        let want: Vec<f64> = (0..6).map(|t| schedule.learning_rate(0.5, t)).collect();
        assert_eq!(want, [0.125, 0.25, 0.375, 0.5, 0.5, 0.25]);
        let opts: [Box<dyn Optimizer<f64>>; 3] = [
            Box::new(GradientDescent { lr: 0.5 }),
            Box::new(Momentum {
                lr: 0.5,
                ..Default::default()
            }),
            Box::new(Adam {
                lr: 0.5,
                ..Default::default()
            }),
        ];
        for mut opt in opts {
            let mut net = Linear::<f64>::init(2);
            let h = train(&mut net, &data, &mut opt, &config).unwrap();
            assert_eq!(h.learning_rates, want);
            assert_eq!(opt.learning_rate(), 0.5);
        }

        // Restored after an error too; the history of a divergence has the completed epochs'.
        let mut opt = GradientDescent { lr: 1e3 };
        let config = TrainConfig {
            epochs: 10_000,
            schedule: Schedule::Exponential { gamma: 0.99 },
            ..Default::default()
        };
        let e = train(&mut Linear::<f64>::init(4), &data, &mut opt, &config).unwrap_err();
        match e {
            TrainError::Diverged { epoch, history, .. } => {
                assert_eq!(history.learning_rates.len(), epoch - 1);
            }
            e => panic!("{e:?}"),
        }
        assert_eq!(opt.lr, 1e3);
    }

    /// The regression data, a validation set whose targets are the outputs of the linear model
    /// after `k` epochs of full-batch gradient descent on it (so that the validation loss is 0
    /// after epoch `k` and positive before and after), and those parameters.
    fn validation_minimum_at(k: usize) -> (Dataset<f64>, Dataset<f64>, [f64; 3]) {
        let (data, _) = regression(64);
        let mut net = Linear::<f64>::init(1);
        let config = TrainConfig {
            epochs: k,
            ..Default::default()
        };
        train(&mut net, &data, &mut GradientDescent { lr: 0.1 }, &config).unwrap();
        let mut r = SplitMix64::new(11);
        let xs: Vec<f64> = (0..40).map(|_| r.uniform(-1.0, 1.0)).collect();
        let ys = xs
            .chunks(2)
            .map(|x| {
                let mut o = [0.0];
                net.forward_slice(x, &mut o);
                o[0]
            })
            .collect();
        (data, Dataset::new(xs, ys, 2, 1).unwrap(), net.p)
    }

    /// The parameters after `epochs` epochs of the training of [`validation_minimum_at`].
    fn params_after(data: &Dataset<f64>, epochs: usize) -> [f64; 3] {
        let mut net = Linear::<f64>::init(1);
        let config = TrainConfig {
            epochs,
            ..Default::default()
        };
        train(&mut net, data, &mut GradientDescent { lr: 0.1 }, &config).unwrap();
        net.p
    }

    #[test]
    fn early_stopping_stops_after_patience_and_restores_the_best_parameters() {
        let k = 20;
        let (data, valid, best) = validation_minimum_at(k);
        let early = EarlyStopping {
            patience: 5,
            ..Default::default()
        };
        let config = TrainConfig {
            epochs: 1000,
            early_stopping: Some(early),
            ..Default::default()
        };
        let mut net = Linear::<f64>::init(1);
        let mut opt = GradientDescent { lr: 0.1 };
        let h = train_with_validation(&mut net, &data, Validation::new(&valid), &mut opt, &config)
            .unwrap();
        assert_eq!(h.stop, StopReason::EarlyStopping { best_epoch: k });
        assert_eq!(h.best_epoch, Some(k));
        assert_eq!(h.epochs(), k + 5);
        assert_eq!(h.val_losses[k - 1], 0.0);
        assert!(h.val_losses[..k - 1].windows(2).all(|w| w[1] < w[0]));
        assert!(h.val_losses[k..].iter().all(|&l| l > 0.0));
        assert_eq!(net.p, best);
        // The training itself is that of `train`.
        assert_eq!(h.losses, {
            let mut n = Linear::<f64>::init(1);
            let c = TrainConfig {
                epochs: k + 5,
                ..Default::default()
            };
            train(&mut n, &data, &mut GradientDescent { lr: 0.1 }, &c)
                .unwrap()
                .losses
        });

        // Without restoring: the parameters of the last epoch.
        let config = TrainConfig {
            early_stopping: Some(EarlyStopping {
                restore_best: false,
                ..early
            }),
            ..config
        };
        let mut net = Linear::<f64>::init(1);
        let v = Validation::new(&valid);
        let h = train_with_validation(&mut net, &data, v, &mut opt, &config).unwrap();
        assert_eq!(h.stop, StopReason::EarlyStopping { best_epoch: k });
        assert_eq!(net.p, params_after(&data, k + 5));

        // Restored whatever the reason training stopped: here the epoch limit, before patience.
        let config = TrainConfig {
            epochs: k + 3,
            early_stopping: Some(early),
            ..Default::default()
        };
        let mut net = Linear::<f64>::init(1);
        let v = Validation::new(&valid);
        let h = train_with_validation(&mut net, &data, v, &mut opt, &config).unwrap();
        assert_eq!((h.stop, h.best_epoch), (StopReason::MaxEpochs, Some(k)));
        assert_eq!(net.p, best);

        // Without early stopping: the best epoch is recorded, the parameters are the last ones.
        let config = TrainConfig {
            epochs: k + 10,
            ..Default::default()
        };
        let mut net = Linear::<f64>::init(1);
        let v = Validation::new(&valid);
        let h = train_with_validation(&mut net, &data, v, &mut opt, &config).unwrap();
        assert_eq!((h.stop, h.best_epoch), (StopReason::MaxEpochs, Some(k)));
        assert_eq!(net.p, params_after(&data, k + 10));
    }

    #[test]
    fn min_delta_decides_what_counts_as_an_improvement() {
        let (data, valid, _) = validation_minimum_at(20);
        // Nothing improves by 1e9: the first epoch stays the best.
        let config = TrainConfig {
            epochs: 1000,
            early_stopping: Some(EarlyStopping {
                patience: 3,
                min_delta: 1e9,
                restore_best: true,
            }),
            ..Default::default()
        };
        let mut net = Linear::<f64>::init(1);
        let v = Validation::new(&valid);
        let mut opt = GradientDescent { lr: 0.1 };
        let h = train_with_validation(&mut net, &data, v, &mut opt, &config).unwrap();
        assert_eq!(h.stop, StopReason::EarlyStopping { best_epoch: 1 });
        assert_eq!((h.epochs(), h.best_epoch), (4, Some(1)));
        assert_eq!(net.p, params_after(&data, 1));
    }

    #[test]
    fn metrics_are_recorded_every_epoch() {
        let (data, valid, _) = validation_minimum_at(5);
        let mut calls = 0;
        let validation = Validation::new(&valid)
            .metric("loss again", mean_loss)
            .metric("calls", |_: &Linear<f64>, _: &Dataset<f64>| {
                calls += 1;
                Ok(calls as f64)
            })
            .metric("train loss", |net: &Linear<f64>, _: &Dataset<f64>| {
                mean_loss(net, &data)
            });
        assert_eq!(
            format!("{validation:?}"),
            r#"Validation { samples: 20, metrics: ["loss again", "calls", "train loss"] }"#
        );
        let config = TrainConfig {
            epochs: 7,
            ..Default::default()
        };
        let mut net = Linear::<f64>::init(1);
        let mut opt = GradientDescent { lr: 0.1 };
        let h = train_with_validation(&mut net, &data, validation, &mut opt, &config).unwrap();
        assert_eq!(calls, 7);
        assert_eq!(h.epochs(), 7);
        for v in [&h.losses, &h.grad_norms, &h.val_losses, &h.learning_rates] {
            assert_eq!(v.len(), 7);
        }
        let names: Vec<&str> = h.metrics.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["loss again", "calls", "train loss"]);
        assert_eq!(h.metric("loss again").unwrap(), h.val_losses);
        assert_eq!(
            h.metric("calls").unwrap(),
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
        );
        assert_eq!(h.metric("nope"), None);
        // The training loss after epoch i is the loss computed during epoch i + 1 (full batch).
        let after = h.metric("train loss").unwrap();
        for (a, l) in after.iter().zip(&h.losses[1..]) {
            assert!((a - l).abs() <= 1e-15 * l);
        }
        assert_eq!(*after.last().unwrap(), mean_loss(&net, &data).unwrap());
        assert_eq!(
            h.metric("loss again").unwrap()[6],
            mean_loss(&net, &valid).unwrap()
        );

        // Without a validation set the new entries are empty.
        let h = train(&mut net, &data, &mut opt, &config).unwrap();
        assert!(h.val_losses.is_empty() && h.metrics.is_empty() && h.best_epoch.is_none());
        assert_eq!(h.learning_rates.len(), 7);

        // A metric's error ends training with it; the learning rate is restored.
        let v = Validation::new(&valid).metric("fails", |_: &Linear<f64>, _: &Dataset<f64>| {
            Err(TrainError::EmptyDataset)
        });
        let config = TrainConfig {
            schedule: Schedule::Exponential { gamma: 0.5 },
            ..config
        };
        let e = train_with_validation(&mut net, &data, v, &mut opt, &config).unwrap_err();
        assert!(matches!(e, TrainError::EmptyDataset), "{e:?}");
        assert_eq!(opt.lr, 0.1);
    }

    #[test]
    fn validation_accuracy_of_a_classifier() {
        // Validation accuracy per epoch of an interpreted classifier, with `accuracy` itself as
        // the metric.
        let label = |x: f64| if x > 0.3 { 1.0 } else { 0.0 };
        let xs: Vec<f64> = (0..40).map(|i| i as f64 / 20.0 - 1.0).collect();
        let vs: Vec<f64> = (0..20).map(|i| i as f64 / 10.0 - 0.975).collect();
        let data = Dataset::new(xs.clone(), xs.iter().map(|&x| label(x)).collect(), 1, 1).unwrap();
        let valid = Dataset::new(vs.clone(), vs.iter().map(|&x| label(x)).collect(), 1, 1).unwrap();
        let mut net = sigmoid1();
        let config = TrainConfig {
            epochs: 200,
            ..Default::default()
        };
        let mut opt = Adam {
            lr: 0.1,
            ..Default::default()
        };
        let v = Validation::new(&valid).metric("accuracy", accuracy);
        let h = train_with_validation(&mut net, &data, v, &mut opt, &config).unwrap();
        let acc = h.metric("accuracy").unwrap();
        assert_eq!(acc.len(), 200);
        assert!(acc[0] < 1.0, "{acc:?}");
        assert_eq!(*acc.last().unwrap(), 1.0);
        assert_eq!(*acc.last().unwrap(), accuracy(&net, &valid).unwrap());
    }

    #[test]
    fn validation_data_and_configuration_are_checked() {
        let (data, valid, _) = validation_minimum_at(1);
        let mut net = Linear::<f64>::init(1);
        let mut opt = GradientDescent { lr: 0.1 };
        let config = TrainConfig {
            epochs: 3,
            ..Default::default()
        };
        let mut run = |valid: &Dataset<f64>, config: &TrainConfig| {
            train_with_validation(&mut net, &data, Validation::new(valid), &mut opt, config)
                .unwrap_err()
        };
        let wide = Dataset::<f64>::new(vec![0.0; 6], vec![0.0; 2], 3, 1).unwrap();
        let e = run(&wide, &config);
        assert!(
            matches!(&e, TrainError::Validation(inner) if matches!(**inner, TrainError::Shape { what: "inputs", network: 2, data: 3 })),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with("the validation set: the data set has 3 inputs per sample"),
            "{e}"
        );
        let two_outputs = Dataset::<f64>::new(vec![0.0; 4], vec![0.0; 4], 2, 2).unwrap();
        let e = run(&two_outputs, &config);
        assert!(
            matches!(&e, TrainError::Validation(inner) if matches!(**inner, TrainError::Shape { what: "outputs", .. })),
            "{e:?}"
        );
        let empty = Dataset::<f64>::new(vec![], vec![], 2, 1).unwrap();
        let e = run(&empty, &config);
        assert!(
            matches!(&e, TrainError::Validation(inner) if matches!(**inner, TrainError::EmptyDataset)),
            "{e:?}"
        );
        let nan = Dataset::new(vec![0.0, 0.0, 1.0, f64::NAN], vec![0.0, 1.0], 2, 1).unwrap();
        let e = run(&nan, &config);
        assert!(
            matches!(&e, TrainError::Validation(inner) if matches!(**inner, TrainError::NonFinite { row: 1, what: "input", column: 1 })),
            "{e:?}"
        );

        // Invalid settings.
        let bad = |schedule: Schedule, early: Option<EarlyStopping>| TrainConfig {
            epochs: 3,
            schedule,
            early_stopping: early,
            ..Default::default()
        };
        let patience = |patience, min_delta| {
            Some(EarlyStopping {
                patience,
                min_delta,
                ..Default::default()
            })
        };
        let cases = [
            (
                bad(
                    Schedule::Step {
                        every: 0,
                        gamma: 0.5,
                    },
                    None,
                ),
                "`every` must be at least 1",
            ),
            (
                bad(Schedule::Exponential { gamma: -0.5 }, None),
                "`gamma` is -0.5",
            ),
            (
                bad(
                    Schedule::Step {
                        every: 2,
                        gamma: f64::NAN,
                    }
                    .with_warmup(3),
                    None,
                ),
                "`gamma` is NaN",
            ),
            (
                bad(
                    Schedule::Cosine {
                        epochs: 0,
                        min_lr: 0.0,
                    },
                    None,
                ),
                "`epochs` must be at least 1",
            ),
            (
                bad(
                    Schedule::Cosine {
                        epochs: 5,
                        min_lr: f64::INFINITY,
                    },
                    None,
                ),
                "`min_lr` is inf",
            ),
            (bad(Schedule::Constant, patience(0, 0.0)), "`patience`"),
            (
                bad(Schedule::Constant, patience(1, -1.0)),
                "`min_delta` is -1",
            ),
        ];
        for (config, want) in &cases {
            let e = run(&valid, config);
            assert!(
                matches!(&e, TrainError::Config(m) if m.contains(want)),
                "{e:?} vs {want}"
            );
            assert!(e.to_string().starts_with("invalid training configuration"));
        }
        assert_eq!(opt.lr, 0.1);

        // Early stopping needs a validation set.
        let config = bad(Schedule::Constant, Some(EarlyStopping::default()));
        let e = train(&mut net, &data, &mut opt, &config).unwrap_err();
        assert!(
            matches!(&e, TrainError::Config(m) if m.contains("needs a validation set")),
            "{e:?}"
        );
    }
}
