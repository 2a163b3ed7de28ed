//! Validation: from the syntax tree to a [`Net`] whose every part is known to make sense.
//!
//! Every mistake is reported at the user's token, and all mistakes are collected and reported
//! together (as `serde_derive` does), so that one build shows everything that is wrong.

use proc_macro2::{Span, TokenStream};
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
    /// `#[cfg(..)]` conditions (and `#[cfg_attr(.., cfg(..))]`) on the declaration, which hold
    /// for every generated item.
    pub cfgs: Vec<Attribute>,
    /// Whether `#[symnet(allow_collapse)]` was given (silences the collapse note).
    pub allow_collapse: bool,
    /// The file of `#[symnet(weights = "..")]`, embedded as `PRETRAINED`.
    pub weights: Option<syn::LitStr>,
    /// The struct's visibility.
    pub vis: Visibility,
    /// The user's `struct` keyword.
    pub struct_token: syn::Token![struct],
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

    let scalar = match unwrap_type(&def.scalar) {
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
    let mut weights: Option<syn::LitStr> = None;
    let mut attrs = Vec::new();
    let mut cfgs = Vec::new();
    for attr in def.attrs {
        if attr.path().is_ident("symnet") {
            let r = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("allow_collapse") {
                    allow_collapse = true;
                    Ok(())
                } else if meta.path.is_ident("weights") {
                    let lit: syn::LitStr = meta.value()?.parse().map_err(|e| {
                        syn::Error::new(
                            e.span(),
                            "`weights` takes a path in quotes, relative to the crate: `#[symnet(weights = \"model.safetensors\")]`",
                        )
                    })?;
                    if weights.is_some() {
                        return Err(syn::Error::new(lit.span(), "`weights` is given twice"));
                    }
                    weights = Some(lit);
                    Ok(())
                } else {
                    Err(meta.error(
                        "unknown symnet option; the options are `allow_collapse` and `weights = \"file.safetensors\"`",
                    ))
                }
            });
            if let Err(e) = r {
                errs.push_error(e);
            }
        } else if attr.path().is_ident("cfg") {
            // A condition on the declaration holds for everything generated from it.
            cfgs.push(attr);
        } else if attr.path().is_ident("cfg_attr") {
            split_cfg_attr(&mut errs, &attr, &mut attrs, &mut cfgs);
        } else if let Some(meta) = check_struct_attr(&mut errs, &attr.meta) {
            attrs.push(Attribute { meta, ..attr });
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
                Value::Number(n) => {
                    inputs = Some(width(&mut errs, n, "input").unwrap_or(1));
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
                Value::Number(n) => errs.push(
                    n.span,
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
            cfgs,
            allow_collapse,
            weights,
            vis: def.vis,
            struct_token: def.struct_token,
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

/// A width: a positive integer without a suffix, at most [`MAX_WIDTH`]. `what` is `"input"`
/// or `"layer"`.
fn width(errs: &mut Errors, n: &Number, what: &str) -> Option<usize> {
    let example = if what == "input" {
        "`input: 4`"
    } else {
        "`dense(16)`"
    };
    if !no_suffix(errs, n) {
        return None;
    }
    match (n.is_int, n.int) {
        (true, Some(0)) => {
            errs.push(n.span, format!("{what} width must be at least 1"));
            None
        }
        (true, Some(w)) if w <= MAX_WIDTH as u64 => Some(w as usize),
        (true, _) if n.value > 0.0 => {
            errs.push(
                n.span,
                format!(
                    "{what} width {} is too large: the limit is {MAX_WIDTH}",
                    n.text
                ),
            );
            None
        }
        _ => {
            errs.push(
                n.span,
                format!(
                    "{what} width `{}` is not a positive integer: write it as in {example}",
                    n.text
                ),
            );
            None
        }
    }
}

/// Whether `n` has no type suffix; reports one if it has. Numbers in a declaration are read
/// as written (a width is a `usize`, a hyperparameter an `f64`), so a suffix would be either
/// ignored or reinterpreted past its type's range: it is refused everywhere.
fn no_suffix(errs: &mut Errors, n: &Number) -> bool {
    if n.suffix.is_empty() {
        return true;
    }
    errs.push(
        n.span,
        format!(
            "numbers in a network declaration take no type suffix: write `{}` instead of `{}{}`",
            n.text, n.text, n.suffix
        ),
    );
    false
}

fn parse_layer(errs: &mut Errors, name: Ident, value: &Value) -> Option<Layer> {
    let span = value.span();
    let (head, activation) = match value {
        Value::Spec { head, activation } => (head, activation),
        Value::Number(n) => {
            errs.push(
                n.span,
                format!(
                    "a layer is declared as `{name}: dense({})`, optionally followed by `-> activation`",
                    n.text
                ),
            );
            return None;
        }
    };
    if head.name != "dense" {
        let hint = if head.name.to_string().eq_ignore_ascii_case("dense") {
            "; did you mean `dense`?".to_string()
        } else if ACTIVATIONS.contains(&head.name.to_string().as_str()) {
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
        Some((_, args)) if args.len() == 1 && args[0].key.is_none() => {
            width(errs, &args[0].value, "layer")
        }
        Some((paren, args)) => {
            let form = match args.first() {
                Some(a) if args.len() == 1 => format!("`dense({})`", a.value.text),
                _ => "`dense(16)`".to_string(),
            };
            errs.push(
                paren.span.join(),
                format!(
                    "`dense` takes exactly one argument, the width, written without a name: {form}"
                ),
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
    no_suffix(errs, &args[0].value).then(|| args[0].value.clone())
}

/// The type inside invisible groups (a `$t:ty` of `macro_rules!`) and parentheses.
fn unwrap_type(ty: &syn::Type) -> &syn::Type {
    match ty {
        syn::Type::Group(g) => unwrap_type(&g.elem),
        syn::Type::Paren(p) => unwrap_type(&p.elem),
        other => other,
    }
}

/// Checks an attribute forwarded to the struct: a layout set by `repr` would break the flat
/// parameter view, and derives that cannot hold for floats would fail inside generated code.
/// Returns the attribute to forward, if any: `Default` is taken out of a derive, since the
/// generated struct implements it (as `zeros()`).
fn check_struct_attr(errs: &mut Errors, meta: &syn::Meta) -> Option<syn::Meta> {
    let path = meta.path();
    if path.is_ident("repr") {
        errs.push_error(syn::Error::new_spanned(
            meta,
            "a network's layout cannot be changed: symnet makes the struct `#[repr(C)]` with the layers in order and no padding, which its flat parameter view (`params()`) and weights files rely on; remove this `repr`",
        ));
        return None;
    }
    if !path.is_ident("derive") {
        return Some(meta.clone());
    }
    let Ok(list) = meta.require_list() else {
        return Some(meta.clone());
    };
    let Ok(paths) = list.parse_args_with(
        syn::punctuated::Punctuated::<syn::Path, syn::Token![,]>::parse_terminated,
    ) else {
        return Some(meta.clone());
    };
    let mut ok = true;
    let mut kept = Vec::new();
    for p in paths {
        let Some(last) = p.segments.last() else {
            continue;
        };
        let name = last.ident.to_string();
        let why = match name.as_str() {
            "Default" => continue,
            "Eq" | "Ord" => "the weights are floats, which have no total equality or order (NaN)",
            "Hash" => "the weights are floats, which do not implement `Hash`",
            "PartialOrd" => "layers have no meaningful order",
            _ => {
                kept.push(p);
                continue;
            }
        };
        errs.push_error(syn::Error::new_spanned(
            &p,
            format!("`{name}` cannot be derived for a network: {why}; the derives that hold are `Clone`, `Copy`, `Debug`, `PartialEq` and `Default`"),
        ));
        ok = false;
    }
    if !ok || kept.is_empty() {
        return None;
    }
    let mut list = list.clone();
    list.tokens = quote::quote!(#(#kept),*);
    Some(syn::Meta::List(list))
}

/// Splits `#[cfg_attr(pred, a, b, ...)]`: a `cfg(..)` among the attributes holds for every
/// generated item (`cfgs`), the others are checked and forwarded to the struct (`attrs`).
/// Nested `cfg_attr`s are flattened, their conditions joined with `all(..)`.
fn split_cfg_attr(
    errs: &mut Errors,
    attr: &Attribute,
    attrs: &mut Vec<Attribute>,
    cfgs: &mut Vec<Attribute>,
) {
    let mut flat: Vec<(TokenStream, syn::Meta)> = Vec::new();
    if let Err(e) = flatten_cfg_attr(&attr.meta, None, &mut flat) {
        errs.push_error(e);
        return;
    }
    let pound = attr.pound_token;
    let (mut to_struct, mut to_all): (Vec<_>, Vec<_>) = (Vec::new(), Vec::new());
    for (pred, meta) in flat {
        if meta.path().is_ident("symnet") {
            errs.push_error(syn::Error::new_spanned(
                &meta,
                "symnet options cannot be conditional: declare the network twice, each under its own `#[cfg(..)]`",
            ));
        } else if meta.path().is_ident("cfg") {
            to_all.push(quote::quote!(#pound [cfg_attr(#pred, #meta)]));
        } else if let Some(meta) = check_struct_attr(errs, &meta) {
            to_struct.push(quote::quote!(#pound [cfg_attr(#pred, #meta)]));
        }
    }
    let parse = |ts: TokenStream| -> syn::Result<Vec<Attribute>> {
        syn::parse::Parser::parse2(Attribute::parse_outer, ts)
    };
    match (
        parse(to_struct.into_iter().collect()),
        parse(to_all.into_iter().collect()),
    ) {
        (Ok(s), Ok(a)) => {
            attrs.extend(s);
            cfgs.extend(a);
        }
        (Err(e), _) | (_, Err(e)) => errs.push_error(e),
    }
}

fn flatten_cfg_attr(
    meta: &syn::Meta,
    outer: Option<&TokenStream>,
    out: &mut Vec<(TokenStream, syn::Meta)>,
) -> syn::Result<()> {
    let list = meta.require_list()?;
    let args = list.parse_args_with(
        syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated,
    )?;
    let mut args = args.into_iter();
    let Some(pred) = args.next() else {
        return Err(syn::Error::new_spanned(
            meta,
            "`cfg_attr` needs a condition and attributes: `cfg_attr(feature = \"x\", derive(Debug))`",
        ));
    };
    let pred = match outer {
        Some(o) => quote::quote!(all(#o, #pred)),
        None => quote::quote!(#pred),
    };
    for a in args {
        if a.path().is_ident("cfg_attr") {
            flatten_cfg_attr(&a, Some(&pred), out)?;
        } else {
            out.push((pred.clone(), a));
        }
    }
    Ok(())
}

/// The closest candidate within edit distance 2 (or 1/3 of the name's length, if larger),
/// ignoring ASCII case (`ReLU` is `relu`, `MSE` is `mse`).
pub fn did_you_mean<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (name.len() / 3).max(2);
    let name = name.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (levenshtein(&name, c), *c))
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
        assert_eq!(did_you_mean("ReLU", super::ACTIVATIONS), Some("relu"));
        assert_eq!(did_you_mean("MSE", super::LOSSES), Some("mse"));
        assert_eq!(
            did_you_mean("Binary_Cross_Entropy", super::LOSSES),
            Some("binary_cross_entropy")
        );
    }
}
