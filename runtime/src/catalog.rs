//! The catalog of built-in activations and losses: one entry each, written as a formula in the
//! same expression language as a user's own `|x| ...` and `|yhat, y| ...` formulas.
//!
//! Everything else reads this table: `network!` parses each formula (with syn), lowers it to its
//! tensor IR, differentiates it symbolically and lets its rewrite rules find the stable forms
//! (`ln sigmoid z = -softplus(-z)`, `ln cosh d = |d| + softplus(-2|d|) - ln 2`, ...); the
//! interpreted [`InterpNet`](crate::interp::InterpNet) evaluates the same formulas. Adding a
//! built-in is one entry here.
//!
//! # The expression language
//!
//! - numbers (`1`, `0.5`, `1e-3`), the named constants `pi` and `e`, a hyperparameter by its
//!   name (`alpha`), and in a loss `n`, the number of outputs;
//! - `a + b`, `a - b`, `a * b`, `a / b`, `-a`, parentheses;
//! - `exp`, `ln`, `sqrt`, `abs`, `cosh`, `sigmoid`, `tanh`, `softplus`, `relu` of one argument;
//!   `powi(a, k)` with an integer constant `k`; `min(a, b)` and `max(a, b)` elementwise;
//! - every catalog activation by name, applied to its argument and then its hyperparameters in
//!   order (`leaky_relu(x, 0.1)`, `elu(x, 1.0)`, `gelu(x)`);
//! - a piecewise form `if a > b { c } else { d }` (also `>=`, `<`, `<=`);
//! - in a loss only: `sum(v)`, `mean(v)` and `max(v)`, which reduce a vector over the outputs to
//!   a number. A loss must reduce: its value is one number per sample.
//!
//! An activation is elementwise, over `x` (one pre-activation), except `softmax`, which is
//! row-wise and allowed on the output layer only. A loss is over `yhat` (the output) and `y`
//! (the target), both vectors of the `n` outputs.

/// How a layer's weights are initialized by `init(seed)` (biases are zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// Glorot (Xavier) uniform, `a = sqrt(6 / (fan_in + fan_out))`: for activations that are
    /// roughly linear around 0 (sigmoid, tanh, identity, softsign, softmax).
    Glorot,
    /// He (Kaiming) uniform, `a = sqrt(6 / fan_in)`: for relu-like activations, which zero
    /// (or shrink) half of their inputs.
    He,
    /// LeCun uniform, `a = sqrt(3 / fan_in)`: for `selu`, whose self-normalization assumes
    /// weights of variance `1 / fan_in`.
    LeCun,
}

/// A hyperparameter of a catalog entry, such as the `alpha` of `leaky_relu(0.01)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Param {
    /// Its name, as written in the formula and in `name = value` arguments.
    pub name: &'static str,
    /// The value when the argument is left out; `None` if it must be given.
    pub default: Option<f64>,
    /// The smallest allowed value.
    pub min: f64,
    /// Whether `min` itself is allowed.
    pub min_inclusive: bool,
    /// The largest allowed value (`f64::INFINITY` for none).
    pub max: f64,
    /// Whether `max` itself is allowed.
    pub max_inclusive: bool,
}

impl Param {
    /// Whether `v` is an allowed value (finite, within the bounds).
    pub fn allows(&self, v: f64) -> bool {
        v.is_finite()
            && (v > self.min || (self.min_inclusive && v == self.min))
            && (v < self.max || (self.max_inclusive && v == self.max))
    }

    /// The allowed values as an interval, for messages: `[0, 1)`, `(0, inf)`.
    pub fn interval(&self) -> ([char; 2], f64, f64) {
        (
            [
                if self.min_inclusive { '[' } else { '(' },
                if self.max_inclusive { ']' } else { ')' },
            ],
            self.min,
            self.max,
        )
    }
}

/// A positive hyperparameter with no upper bound.
const fn positive(name: &'static str, default: Option<f64>) -> Param {
    Param {
        name,
        default,
        min: 0.0,
        min_inclusive: false,
        max: f64::INFINITY,
        max_inclusive: false,
    }
}

/// A hyperparameter in `[0, 1)` or `(0, 1)`.
const fn unit(name: &'static str, default: Option<f64>, zero_allowed: bool) -> Param {
    Param {
        name,
        default,
        min: 0.0,
        min_inclusive: zero_allowed,
        max: 1.0,
        max_inclusive: false,
    }
}

/// A built-in activation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActivationEntry {
    /// Its name in a declaration (`dense(8) -> name`).
    pub name: &'static str,
    /// Other names that mean the same entry (`swish` for `silu`).
    pub aliases: &'static [&'static str],
    /// Its hyperparameters, in the order they are written.
    pub params: &'static [Param],
    /// The formula over `x` and the hyperparameters.
    pub formula: &'static str,
    /// How layers ending in it are initialized.
    pub init: Init,
    /// Row-wise over the layer's outputs (softmax): allowed on the output layer only.
    pub rowwise: bool,
    /// One line for the documentation.
    pub doc: &'static str,
}

/// What a loss needs of the network's output layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Any output.
    Any,
    /// A sigmoid output (probabilities of independent classes).
    Sigmoid,
    /// A softmax output over at least two classes.
    Softmax,
}

/// A built-in loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossEntry {
    /// Its name in a declaration (`loss: name`).
    pub name: &'static str,
    /// Its hyperparameters, in the order they are written.
    pub params: &'static [Param],
    /// The formula over `yhat`, `y`, `n` and the hyperparameters, reducing to one number.
    pub formula: &'static str,
    /// The output layer it needs.
    pub output: Output,
    /// What it needs of the targets (checked by the trainers).
    pub targets: crate::Targets,
    /// One line for the documentation.
    pub doc: &'static str,
}

/// Every built-in activation.
pub const ACTIVATIONS: &[ActivationEntry] = &[
    ActivationEntry {
        name: "identity",
        aliases: &[],
        params: &[],
        formula: "|x| x",
        init: Init::Glorot,
        rowwise: false,
        doc: "`x`: a linear layer",
    },
    ActivationEntry {
        name: "sigmoid",
        aliases: &[],
        params: &[],
        formula: "|x| sigmoid(x)",
        init: Init::Glorot,
        rowwise: false,
        doc: "`1 / (1 + e^-x)`",
    },
    ActivationEntry {
        name: "tanh",
        aliases: &[],
        params: &[],
        formula: "|x| tanh(x)",
        init: Init::Glorot,
        rowwise: false,
        doc: "`tanh x`",
    },
    ActivationEntry {
        name: "relu",
        aliases: &[],
        params: &[],
        formula: "|x| relu(x)",
        init: Init::He,
        rowwise: false,
        doc: "`max(x, 0)`",
    },
    ActivationEntry {
        name: "leaky_relu",
        aliases: &[],
        params: &[unit("alpha", None, true)],
        formula: "|x| if x > 0.0 { x } else { alpha * x }",
        init: Init::He,
        rowwise: false,
        doc: "`x` for `x > 0`, else `alpha x`, with `alpha` in `[0, 1)`",
    },
    ActivationEntry {
        name: "softplus",
        aliases: &[],
        params: &[],
        formula: "|x| softplus(x)",
        init: Init::Glorot,
        rowwise: false,
        doc: "`ln(1 + e^x)`, a smooth relu",
    },
    ActivationEntry {
        name: "softmax",
        aliases: &[],
        params: &[],
        formula: "|x| softmax(x)",
        init: Init::Glorot,
        rowwise: true,
        doc: "`e^x / sum e^x` over the layer (output layer only)",
    },
    ActivationEntry {
        name: "gelu",
        aliases: &[],
        params: &[],
        formula: "|x| 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * powi(x, 3))))",
        init: Init::He,
        rowwise: false,
        doc:
            "Gaussian error linear unit, tanh form: `x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`",
    },
    ActivationEntry {
        name: "silu",
        aliases: &["swish"],
        params: &[],
        formula: "|x| x * sigmoid(x)",
        init: Init::He,
        rowwise: false,
        doc: "`x sigmoid(x)` (also `swish`)",
    },
    ActivationEntry {
        name: "elu",
        aliases: &[],
        params: &[positive("alpha", Some(1.0))],
        formula: "|x| if x > 0.0 { x } else { alpha * (exp(min(x, 0.0)) - 1.0) }",
        init: Init::He,
        rowwise: false,
        doc: "`x` for `x > 0`, else `alpha (e^x - 1)`; `alpha` defaults to 1",
    },
    ActivationEntry {
        name: "selu",
        aliases: &[],
        params: &[],
        formula: "|x| 1.0507009873554805 * elu(x, 1.6732632423543772)",
        init: Init::LeCun,
        rowwise: false,
        doc: "scaled elu, `1.0507 elu(x, 1.67326)`, self-normalizing with LeCun initialization",
    },
    ActivationEntry {
        name: "mish",
        aliases: &[],
        params: &[],
        formula: "|x| x * tanh(softplus(x))",
        init: Init::He,
        rowwise: false,
        doc: "`x tanh(softplus(x))`",
    },
    ActivationEntry {
        name: "softsign",
        aliases: &[],
        params: &[],
        formula: "|x| x / (1.0 + abs(x))",
        init: Init::Glorot,
        rowwise: false,
        doc: "`x / (1 + |x|)`",
    },
    ActivationEntry {
        name: "hardswish",
        aliases: &[],
        params: &[],
        formula: "|x| x * min(max(x + 3.0, 0.0), 6.0) / 6.0",
        init: Init::He,
        rowwise: false,
        doc: "`x relu6(x + 3) / 6`, the piecewise swish of MobileNetV3",
    },
];

/// Every built-in loss.
pub const LOSSES: &[LossEntry] = &[
    LossEntry {
        name: "mse",
        params: &[],
        formula: "|yhat, y| mean((yhat - y) * (yhat - y))",
        output: Output::Any,
        targets: crate::Targets::Real,
        doc: "mean squared error, `(1/n) sum (yhat - y)^2`",
    },
    LossEntry {
        name: "mae",
        params: &[],
        formula: "|yhat, y| mean(abs(yhat - y))",
        output: Output::Any,
        targets: crate::Targets::Real,
        doc: "mean absolute error, `(1/n) sum |yhat - y|` (subgradient 0 at 0)",
    },
    LossEntry {
        name: "gaussian_nll",
        params: &[positive("sigma", None)],
        formula: "|yhat, y| 0.5 * n * ln(2.0 * pi) + n * ln(sigma) + sum((y - yhat) * (y - yhat)) / (2.0 * sigma * sigma)",
        output: Output::Any,
        targets: crate::Targets::Real,
        doc: "Gaussian negative log-likelihood with a fixed `sigma`",
    },
    LossEntry {
        name: "binary_cross_entropy",
        params: &[],
        formula: "|yhat, y| -mean(y * ln(yhat) + (1.0 - y) * ln(1.0 - yhat))",
        output: Output::Sigmoid,
        targets: crate::Targets::Probabilities,
        doc: "binary cross-entropy on a sigmoid output, computed from the logit",
    },
    LossEntry {
        name: "cross_entropy",
        params: &[],
        formula: "|yhat, y| -sum(y * ln(yhat))",
        output: Output::Softmax,
        targets: crate::Targets::Distribution,
        doc: "categorical cross-entropy on a softmax output, computed with log-sum-exp",
    },
    LossEntry {
        name: "huber",
        params: &[positive("delta", Some(1.0))],
        formula: "|yhat, y| mean(if abs(yhat - y) <= delta { 0.5 * (yhat - y) * (yhat - y) } else { delta * (abs(yhat - y) - 0.5 * delta) })",
        output: Output::Any,
        targets: crate::Targets::Real,
        doc: "quadratic within `delta` of the target, linear beyond; `delta` defaults to 1",
    },
    LossEntry {
        name: "log_cosh",
        params: &[],
        formula: "|yhat, y| mean(ln(cosh(yhat - y)))",
        output: Output::Any,
        targets: crate::Targets::Real,
        doc: "`(1/n) sum ln cosh(yhat - y)`, computed without overflow",
    },
    LossEntry {
        name: "quantile",
        params: &[unit("tau", None, false)],
        formula: "|yhat, y| mean(max(tau * (y - yhat), (tau - 1.0) * (y - yhat)))",
        output: Output::Any,
        targets: crate::Targets::Real,
        doc: "the pinball loss of the `tau` quantile, `tau` in `(0, 1)`; `quantile(0.5)` is half the mae",
    },
    LossEntry {
        name: "poisson_nll",
        params: &[],
        formula: "|yhat, y| mean(exp(yhat) - y * yhat)",
        output: Output::Any,
        targets: crate::Targets::Real,
        doc: "Poisson negative log-likelihood with the output as the log of the rate (the constant `ln y!` left out)",
    },
];

/// The activation named `name` (or one of its aliases).
pub fn activation(name: &str) -> Option<&'static ActivationEntry> {
    ACTIVATIONS
        .iter()
        .find(|a| a.name == name || a.aliases.contains(&name))
}

/// The loss named `name`.
pub fn loss(name: &str) -> Option<&'static LossEntry> {
    LOSSES.iter().find(|l| l.name == name)
}
