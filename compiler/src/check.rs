//! Validation: from the syntax tree to a [`Net`] whose every part is known to make sense.
//!
//! Every mistake is reported at the user's token, and all mistakes are collected and reported
//! together (as `serde_derive` does), so that one build shows everything that is wrong.

use proc_macro2::Span;
use syn::{Attribute, Ident, Visibility};

use crate::ast::{Arg, Call, NetworkDef, Number, Value};

/// The widest layer or input that may be declared. Beyond it the generated arrays would not be
/// "small, fixed-shape" in any sense, and rustc would spend minutes on the array types alone.
pub const MAX_WIDTH: usize = 1 << 16;

/// The largest number of parameters a declaration may have (4,194,304: 16 MiB of `f32`). A
/// network, its gradient and an optimizer's state each live by value (often on the stack); a
/// declaration beyond this is refused before anything is allocated for it.
pub const MAX_PARAMS: u128 = 1 << 22;

/// The scalar type of a network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarType {
    /// `f32`.
    F32,
    /// `f64`.
    F64,
}

/// An elementwise (or, for softmax, row-wise) activation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// `z`.
    Identity,
    /// `1 / (1 + e^-z)`.
    Sigmoid,
    /// `tanh z`.
    Tanh,
    /// `max(z, 0)`.
    Relu,
    /// `z` for `z > 0`, else `alpha z`.
    LeakyRelu(f64),
    /// `ln(1 + e^z)`.
    Softplus,
    /// `e^z / sum e^z` (output layer only).
    Softmax,
}

impl Activation {
    /// The activation's name as written.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
            Activation::LeakyRelu(_) => "leaky_relu",
            Activation::Softplus => "softplus",
            Activation::Softmax => "softmax",
        }
    }

    /// Whether `init` uses He (relu-like) rather than Glorot initialization.
    pub fn is_relu_like(self) -> bool {
        matches!(self, Activation::Relu | Activation::LeakyRelu(_))
    }
}

const ACTIVATIONS: &[&str] = &[
    "identity",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "softplus",
    "softmax",
];

/// A loss; see the crate documentation for the exact formulas.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Loss {
    /// Mean squared error.
    Mse,
    /// Mean absolute error.
    Mae,
    /// Gaussian negative log-likelihood with a fixed sigma.
    GaussianNll {
        /// The standard deviation, `> 0`.
        sigma: f64,
    },
    /// Binary cross-entropy on a sigmoid output.
    BinaryCrossEntropy,
    /// Categorical cross-entropy on a softmax output.
    CrossEntropy,
}

impl Loss {
    /// The loss's name as written.
    pub fn name(self) -> &'static str {
        match self {
            Loss::Mse => "mse",
            Loss::Mae => "mae",
            Loss::GaussianNll { .. } => "gaussian_nll",
            Loss::BinaryCrossEntropy => "binary_cross_entropy",
            Loss::CrossEntropy => "cross_entropy",
        }
    }
}

const LOSSES: &[&str] = &[
    "mse",
    "mae",
    "gaussian_nll",
    "binary_cross_entropy",
    "cross_entropy",
];

/// One validated dense layer.
#[derive(Clone, Debug)]
pub struct Layer {
    /// The layer's name (a field of the generated struct).
    pub name: Ident,
    /// The number of outputs.
    pub width: usize,
    /// The activation applied to `W x + b`.
    pub activation: Activation,
    /// The span of the whole entry's value, for diagnostics about the layer.
    pub span: Span,
    /// The span of the width literal.
    pub width_span: Span,
    /// The span of the activation's name (the `dense` token when there is none).
    pub activation_span: Span,
}

/// A validated network declaration.
pub struct Net {
    /// Attributes forwarded to the struct.
    pub attrs: Vec<Attribute>,
    /// Whether `#[symnet(allow_collapse)]` was given (silences the collapse note).
    pub allow_collapse: bool,
    /// The struct's visibility.
    pub vis: Visibility,
    /// The struct's name.
    pub ident: Ident,
    /// The scalar type.
    pub scalar: ScalarType,
    /// The input width.
    pub inputs: usize,
    /// The layers, first to last.
    pub layers: Vec<Layer>,
    /// The loss.
    pub loss: Loss,
    /// The span of the loss entry's value.
    pub loss_span: Span,
}

impl Net {
    /// The input width of layer `k`.
    pub fn fan_in(&self, k: usize) -> usize {
        if k == 0 {
            self.inputs
        } else {
            self.layers[k - 1].width
        }
    }

    /// The output width.
    pub fn outputs(&self) -> usize {
        self.layers.last().map_or(0, |l| l.width)
    }

    /// The number of declared parameters, `sum_k width_k (fan_in_k + 1)`.
    pub fn params(&self) -> usize {
        (0..self.layers.len())
            .map(|k| self.layers[k].width * (self.fan_in(k) + 1))
            .sum()
    }
}

/// Collects errors so that all of them are reported together.
#[derive(Default)]
pub struct Errors {
    errors: Option<syn::Error>,
}

impl Errors {
    /// Records an error at `span`.
    pub fn push(&mut self, span: Span, msg: impl core::fmt::Display) {
        self.push_error(syn::Error::new(span, msg));
    }

    /// Records an error.
    pub fn push_error(&mut self, e: syn::Error) {
        match &mut self.errors {
            Some(all) => all.combine(e),
            None => self.errors = Some(e),
        }
    }

    /// `Err` with every recorded error, or `Ok(value)` if there were none.
    pub fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.errors {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }
}

/// Validates a parsed declaration.
pub fn check(def: NetworkDef) -> syn::Result<Net> {
    let mut errs = Errors::default();

    let scalar = match &def.scalar {
        syn::Type::Path(p) if p.qself.is_none() && p.path.is_ident("f32") => Some(ScalarType::F32),
        syn::Type::Path(p) if p.qself.is_none() && p.path.is_ident("f64") => Some(ScalarType::F64),
        other => {
            errs.push_error(syn::Error::new_spanned(
                other,
                "unsupported scalar type: a network is declared over `f32` or `f64`",
            ));
            None
        }
    };

    let mut allow_collapse = false;
    let mut attrs = Vec::new();
    for attr in def.attrs {
        if attr.path().is_ident("symnet") {
            let r = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("allow_collapse") {
                    allow_collapse = true;
                    Ok(())
                } else {
                    Err(meta.error("unknown symnet option; the only option is `allow_collapse`"))
                }
            });
            if let Err(e) = r {
                errs.push_error(e);
            }
        } else {
            attrs.push(attr);
        }
    }

    let mut inputs: Option<usize> = None;
    let mut loss: Option<(Loss, Span)> = None;
    let mut loss_seen = false;
    let mut layers: Vec<Layer> = Vec::new();
    let mut seen_names: Vec<Ident> = Vec::new();
    let n_entries = def.entries.len();

    for (i, entry) in def.entries.into_iter().enumerate() {
        let name = entry.name.to_string();
        if name == "input" {
            if inputs.is_some() {
                errs.push(entry.name.span(), "duplicate `input` entry");
                continue;
            }
            if i != 0 {
                errs.push(
                    entry.name.span(),
                    "`input` must be the first entry, before the layers",
                );
            }
            match &entry.value {
                Value::Int(lit) => {
                    inputs = Some(width(&mut errs, lit, "input").unwrap_or(1));
                }
                other => {
                    errs.push(other.span(), "`input` takes a width, as in `input: 4`");
                    inputs = Some(1);
                }
            }
        } else if name == "loss" {
            if loss_seen {
                errs.push(entry.name.span(), "duplicate `loss` entry");
                continue;
            }
            loss_seen = true;
            if i + 1 != n_entries {
                errs.push(
                    entry.name.span(),
                    "`loss` must be the last entry, after the layers",
                );
            }
            match &entry.value {
                Value::Spec {
                    head,
                    activation: None,
                } => {
                    if let Some(l) = parse_loss(&mut errs, head) {
                        loss = Some((l, head.span()));
                    }
                }
                Value::Spec {
                    activation: Some(a),
                    ..
                } => errs.push(
                    a.name.span(),
                    "a loss takes no activation; put the activation on the output layer",
                ),
                Value::Int(lit) => errs.push(
                    lit.span(),
                    format!(
                        "`loss` takes a loss function, one of: {}",
                        LOSSES.join(", ")
                    ),
                ),
            }
        } else {
            if let Some(prev) = seen_names.iter().find(|p| **p == entry.name) {
                let mut e =
                    syn::Error::new(entry.name.span(), format!("duplicate layer name `{name}`"));
                e.combine(syn::Error::new(prev.span(), "first declared here"));
                errs.push_error(e);
                continue;
            }
            seen_names.push(entry.name.clone());
            if name.starts_with("r#") || name.starts_with("__") {
                errs.push(
                    entry.name.span(),
                    "layer names may not be raw identifiers or start with `__`",
                );
            }
            if let Some(layer) = parse_layer(&mut errs, entry.name, &entry.value) {
                layers.push(layer);
            }
        }
    }

    let close = def.brace.span.close();
    if inputs.is_none() {
        errs.push(
            close,
            "missing `input: N` entry: the network needs an input width",
        );
    }
    if !loss_seen {
        errs.push(close, "missing `loss: ...` entry: the network needs a loss");
    }
    if layers.is_empty() && seen_names.is_empty() {
        errs.push(
            close,
            "the network has no layers: add at least one `name: dense(WIDTH)` entry",
        );
    }

    // Softmax is row-wise: only the output layer may use it.
    for l in layers.iter().rev().skip(1) {
        if l.activation == Activation::Softmax {
            errs.push(
                l.activation_span,
                format!(
                    "softmax is only allowed on the output layer; `{}` is a hidden layer",
                    l.name
                ),
            );
        }
    }

    if let (Some((loss, span)), Some(out)) = (loss, layers.last()) {
        match loss {
            Loss::CrossEntropy => {
                if out.activation != Activation::Softmax {
                    errs.push(
                        span,
                        format!(
                            "`cross_entropy` needs a softmax output: write `{}: dense({}) -> softmax`",
                            out.name, out.width
                        ),
                    );
                } else if out.width < 2 {
                    errs.push(
                        out.width_span,
                        "`cross_entropy` over a softmax needs at least 2 classes; for one output use `sigmoid` with `binary_cross_entropy`",
                    );
                }
            }
            Loss::BinaryCrossEntropy if out.activation != Activation::Sigmoid => {
                errs.push(
                    span,
                    format!(
                        "`binary_cross_entropy` needs a sigmoid output, but `{}` ends in `{}`",
                        out.name,
                        out.activation.name()
                    ),
                );
            }
            _ => {}
        }
    }

    // Size limit, checked with wide integers before anything is built.
    if let Some(n) = inputs {
        let mut total: u128 = 0;
        let mut fan_in = n as u128;
        for l in &layers {
            total += l.width as u128 * (fan_in + 1);
            fan_in = l.width as u128;
            if total > MAX_PARAMS {
                errs.push(
                    l.width_span,
                    format!(
                        "the network is too large: {total} parameters by layer `{}`, more than the limit of {MAX_PARAMS}",
                        l.name
                    ),
                );
                break;
            }
        }
    }

    let net = match (scalar, inputs, loss) {
        (Some(scalar), Some(inputs), Some((loss, loss_span))) => Some(Net {
            attrs,
            allow_collapse,
            vis: def.vis,
            ident: def.ident,
            scalar,
            inputs,
            layers,
            loss,
            loss_span,
        }),
        _ => None,
    };
    errs.finish(())?;
    Ok(net.expect("no errors implies every part is present"))
}

fn width(errs: &mut Errors, lit: &syn::LitInt, what: &str) -> Option<usize> {
    if !lit.suffix().is_empty() {
        errs.push(lit.span(), "a width is written without a type suffix");
        return None;
    }
    match lit.base10_parse::<u64>() {
        Ok(0) => {
            errs.push(lit.span(), format!("{what} width must be at least 1"));
            None
        }
        Ok(n) if n as u128 <= MAX_WIDTH as u128 => Some(n as usize),
        _ => {
            errs.push(
                lit.span(),
                format!("{what} width {lit} is too large: the limit is {MAX_WIDTH}"),
            );
            None
        }
    }
}

fn parse_layer(errs: &mut Errors, name: Ident, value: &Value) -> Option<Layer> {
    let span = value.span();
    let (head, activation) = match value {
        Value::Spec { head, activation } => (head, activation),
        Value::Int(lit) => {
            errs.push(
                lit.span(),
                format!("a layer is declared as `{name}: dense({lit})`, optionally followed by `-> activation`"),
            );
            return None;
        }
    };
    if head.name != "dense" {
        let hint = if ACTIVATIONS.contains(&head.name.to_string().as_str()) {
            format!(
                "; an activation follows the layer, as in `{name}: dense(8) -> {}`",
                head.name
            )
        } else if LOSSES.contains(&head.name.to_string().as_str()) {
            "; a loss is declared as `loss: ...` after the layers".to_string()
        } else {
            String::new()
        };
        errs.push(
            head.name.span(),
            format!(
                "unknown layer kind `{}`: the only layer kind is `dense(WIDTH)`{hint}",
                head.name
            ),
        );
        return None;
    }
    let width_span = match &head.args {
        Some((_, args)) if !args.is_empty() => args[0].value.span,
        _ => head.name.span(),
    };
    let activation_span = activation
        .as_ref()
        .map_or(head.name.span(), |a| a.name.span());
    let w = match &head.args {
        Some((paren, args)) if args.len() == 1 && args[0].key.is_none() => {
            let a = &args[0].value;
            match (a.is_int, a.int) {
                (true, Some(0)) => {
                    errs.push(a.span, "layer width must be at least 1");
                    None
                }
                (true, Some(n)) if n <= MAX_WIDTH as u64 => Some(n as usize),
                (true, _) if a.value > 0.0 => {
                    errs.push(
                        a.span,
                        format!(
                            "layer width {} is too large: the limit is {MAX_WIDTH}",
                            a.value
                        ),
                    );
                    None
                }
                _ => {
                    errs.push(
                        a.span,
                        "a layer width is a positive integer, as in `dense(16)`",
                    );
                    let _ = paren;
                    None
                }
            }
        }
        Some((paren, _)) => {
            errs.push(
                paren.span.join(),
                "`dense` takes exactly one argument, the width: `dense(16)`",
            );
            None
        }
        None => {
            errs.push(
                head.name.span(),
                "`dense` needs a width in parentheses: `dense(16)`",
            );
            None
        }
    };
    let act = match activation {
        None => Some(Activation::Identity),
        Some(call) => parse_activation(errs, call),
    };
    Some(Layer {
        name,
        width: w?,
        activation: act?,
        span,
        width_span,
        activation_span,
    })
}

fn no_args(errs: &mut Errors, call: &Call) -> bool {
    if let Some((paren, _)) = &call.args {
        errs.push(
            paren.span.join(),
            format!("`{}` takes no arguments", call.name),
        );
        false
    } else {
        true
    }
}

fn parse_activation(errs: &mut Errors, call: &Call) -> Option<Activation> {
    let name = call.name.to_string();
    let simple = match name.as_str() {
        "identity" => Some(Activation::Identity),
        "sigmoid" => Some(Activation::Sigmoid),
        "tanh" => Some(Activation::Tanh),
        "relu" => Some(Activation::Relu),
        "softplus" => Some(Activation::Softplus),
        "softmax" => Some(Activation::Softmax),
        _ => None,
    };
    if let Some(a) = simple {
        return no_args(errs, call).then_some(a);
    }
    if name == "leaky_relu" {
        let alpha = single_number(errs, call, "alpha", "`leaky_relu(0.01)`")?;
        if !(alpha.value.is_finite() && alpha.value >= 0.0 && alpha.value < 1.0) {
            errs.push(
                alpha.span,
                "the slope of `leaky_relu` must be in [0, 1), as in `leaky_relu(0.01)`",
            );
            return None;
        }
        return Some(Activation::LeakyRelu(alpha.value));
    }
    let mut msg = format!("unknown activation `{name}`");
    if let Some(s) = did_you_mean(&name, ACTIVATIONS) {
        msg.push_str(&format!("; did you mean `{s}`?"));
    } else {
        msg.push_str(&format!("; expected one of: {}", ACTIVATIONS.join(", ")));
    }
    if LOSSES.contains(&name.as_str()) {
        msg = format!(
            "`{name}` is a loss, not an activation: declare it as `loss: {name}` after the layers"
        );
    }
    errs.push(call.name.span(), msg);
    None
}

fn parse_loss(errs: &mut Errors, call: &Call) -> Option<Loss> {
    let name = call.name.to_string();
    let simple = match name.as_str() {
        "mse" => Some(Loss::Mse),
        "mae" => Some(Loss::Mae),
        "binary_cross_entropy" => Some(Loss::BinaryCrossEntropy),
        "cross_entropy" => Some(Loss::CrossEntropy),
        _ => None,
    };
    if let Some(l) = simple {
        return no_args(errs, call).then_some(l);
    }
    if name == "gaussian_nll" {
        let sigma = single_number(errs, call, "sigma", "`gaussian_nll(sigma = 1.0)`")?;
        if !(sigma.value.is_finite() && sigma.value > 0.0) {
            errs.push(
                sigma.span,
                "`sigma` of `gaussian_nll` must be a positive number",
            );
            return None;
        }
        return Some(Loss::GaussianNll { sigma: sigma.value });
    }
    let mut msg = format!("unknown loss `{name}`");
    if let Some(s) = did_you_mean(&name, LOSSES) {
        msg.push_str(&format!("; did you mean `{s}`?"));
    } else {
        msg.push_str(&format!("; expected one of: {}", LOSSES.join(", ")));
    }
    if ACTIVATIONS.contains(&name.as_str()) {
        msg = format!("`{name}` is an activation, not a loss: put it on the output layer, as in `output: dense(1) -> {name}`");
    }
    errs.push(call.name.span(), msg);
    None
}

/// The one numeric argument of `call`, written plainly or as `key = value`.
fn single_number(errs: &mut Errors, call: &Call, key: &str, example: &str) -> Option<Number> {
    let args: Vec<&Arg> = match &call.args {
        Some((_, a)) => a.iter().collect(),
        None => Vec::new(),
    };
    if args.len() != 1 {
        let span = match &call.args {
            Some((p, _)) => p.span.join(),
            None => call.name.span(),
        };
        errs.push(
            span,
            format!(
                "`{}` takes one argument `{key}`, as in {example}",
                call.name
            ),
        );
        return None;
    }
    if let Some(k) = &args[0].key {
        if k != key {
            errs.push(
                k.span(),
                format!(
                    "unknown argument `{k}` of `{}`; expected `{key}`",
                    call.name
                ),
            );
            return None;
        }
    }
    Some(args[0].value.clone())
}

/// The closest candidate within edit distance 2 (or 1/3 of the name's length, if larger).
pub fn did_you_mean<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (name.len() / 3).max(2);
    candidates
        .iter()
        .map(|c| (levenshtein(name, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("sigmod", super::ACTIVATIONS), Some("sigmoid"));
        assert_eq!(did_you_mean("reul", super::ACTIVATIONS), Some("relu"));
        assert_eq!(did_you_mean("mes", super::LOSSES), Some("mse"));
        assert_eq!(did_you_mean("banana", super::ACTIVATIONS), None);
    }
}
