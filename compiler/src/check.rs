//! Validation: from the syntax tree to a [`Net`] whose every part is known to make sense.
//!
//! Every mistake is reported at the user's token, and all mistakes are collected and reported
//! together (as `serde_derive` does), so that one build shows everything that is wrong.

use proc_macro2::{Span, TokenStream};
use syn::{Attribute, Ident, Visibility};

use symnet_runtime::catalog::{self, ActivationEntry, Init, LossEntry, Output, Param};
use symnet_runtime::Targets;
use syn::ExprClosure;

use crate::ast::{ActivationSpec, Arg, Call, NetworkDef, Number, Value};
use crate::formula::{self, Role};

/// The widest layer or input that may be declared: the runtime's [`symnet_runtime::MAX_WIDTH`],
/// which it applies to everything sized at run time. Beyond it the generated arrays would not be
/// "small, fixed-shape" in any sense, and rustc would spend minutes on the array types alone.
pub const MAX_WIDTH: usize = symnet_runtime::MAX_WIDTH;

/// The largest number of parameters a declaration may have (4,194,304: 16 MiB of `f32`). A
/// network, its gradient and an optimizer's state each live by value (often on the stack); a
/// declaration beyond this is refused before anything is allocated for it.
pub const MAX_PARAMS: u128 = symnet_runtime::MAX_PARAMS as u128;

/// The scalar type of a network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarType {
    /// `f32`.
    F32,
    /// `f64`.
    F64,
}

impl ScalarType {
    /// The bytes of one value.
    pub fn bytes(self) -> usize {
        match self {
            ScalarType::F32 => 4,
            ScalarType::F64 => 8,
        }
    }
}

/// A layer's activation: a catalog entry with its hyperparameters, or a user's formula.
#[derive(Clone, Debug)]
pub struct Activation {
    /// The catalog entry, or `None` for a formula written in the declaration.
    pub entry: Option<&'static ActivationEntry>,
    /// The hyperparameters' values, in the entry's order.
    pub params: Vec<f64>,
    /// The formula: the entry's, parsed, or the user's (with its tokens, for errors).
    pub formula: ExprClosure,
}

impl Activation {
    /// The catalog entry `name` with its defaults (tests and the identity of a bare `dense`).
    pub fn builtin(name: &str) -> Self {
        let entry = catalog::activation(name).expect("a catalog activation");
        Activation {
            entry: Some(entry),
            params: entry
                .params
                .iter()
                .map(|p| p.default.unwrap_or(0.0))
                .collect(),
            formula: formula::parse_entry(entry.formula),
        }
    }

    /// The activation's name (`formula` for a user's formula).
    pub fn name(&self) -> &'static str {
        self.entry.map_or("formula", |e| e.name)
    }

    /// Whether it is the catalog entry `name`.
    pub fn is(&self, name: &str) -> bool {
        self.entry.is_some_and(|e| e.name == name)
    }

    /// How `init` draws the layer's weights (Glorot for a user's formula).
    pub fn init(&self) -> Init {
        self.entry.map_or(Init::Glorot, |e| e.init)
    }

    /// As written: `relu`, `leaky_relu(0.1)`, `|x| x * sigmoid(x)`.
    pub fn describe(&self) -> String {
        match self.entry {
            Some(e) if self.params.is_empty() => e.name.to_string(),
            Some(e) => format!(
                "{}({})",
                e.name,
                self.params
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => formula_text(&self.formula),
        }
    }
}

/// A network's loss: a catalog entry with its hyperparameters, or a user's formula.
#[derive(Clone, Debug)]
pub struct Loss {
    /// The catalog entry, or `None` for a formula written in the declaration.
    pub entry: Option<&'static LossEntry>,
    /// The hyperparameters' values, in the entry's order.
    pub params: Vec<f64>,
    /// The formula.
    pub formula: ExprClosure,
}

impl Loss {
    /// The loss's name (`formula` for a user's formula).
    pub fn name(&self) -> &'static str {
        self.entry.map_or("formula", |e| e.name)
    }

    /// Whether it is the catalog entry `name`.
    pub fn is(&self, name: &str) -> bool {
        self.entry.is_some_and(|e| e.name == name)
    }

    /// What it needs of the targets (any finite values for a user's formula).
    pub fn targets(&self) -> Targets {
        self.entry.map_or(Targets::Real, |e| e.targets)
    }
}

/// A weight penalty: `l1(lambda)` adds `lambda sum |w|`, `l2(lambda)` adds `lambda sum w^2`,
/// over the weights of every layer (not the biases).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Penalty {
    /// `true` for `l1`, `false` for `l2`.
    pub l1: bool,
    /// The factor, `> 0`.
    pub lambda: f64,
}

fn parse_penalty(errs: &mut Errors, call: &Call) -> Option<Penalty> {
    let name = call.name.to_string();
    let l1 = match name.as_str() {
        "l1" => true,
        "l2" => false,
        _ => {
            let hint = match did_you_mean(&name, &["l1", "l2"]) {
                Some(s) => format!("; did you mean `{s}`?"),
                None => String::new(),
            };
            errs.push(
                call.name.span(),
                format!("unknown weight penalty `{name}`: the penalties are `l1(lambda)` and `l2(lambda)`{hint}"),
            );
            return None;
        }
    };
    const LAMBDA: &[Param] = &[Param {
        name: "lambda",
        default: None,
        min: 0.0,
        min_inclusive: false,
        max: f64::INFINITY,
        max_inclusive: false,
    }];
    let v = hyperparameters(errs, call, LAMBDA)?;
    Some(Penalty { l1, lambda: v[0] })
}

/// A formula's text, tokens spaced as rustfmt would roughly write them.
fn formula_text(f: &ExprClosure) -> String {
    quote::ToTokens::to_token_stream(f)
        .to_string()
        .replace(" (", "(")
        .replace("( ", "(")
        .replace(" )", ")")
        .replace(" ,", ",")
}

/// The names of the catalog's activations (and aliases), for "did you mean".
fn activation_names() -> Vec<&'static str> {
    catalog::ACTIVATIONS
        .iter()
        .flat_map(|a| std::iter::once(a.name).chain(a.aliases.iter().copied()))
        .collect()
}

/// The names of the catalog's losses.
fn loss_names() -> Vec<&'static str> {
    catalog::LOSSES.iter().map(|l| l.name).collect()
}

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
    /// Whether `#[symnet(allow_domain)]` was given (silences the notes about `ln`, `sqrt` and
    /// divisions whose argument the range analysis cannot prove safe).
    pub allow_domain: bool,
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
    /// Weight penalties added to the loss (`+ l2(1e-4)`), over every layer's weights.
    pub penalties: Vec<Penalty>,
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
    let mut allow_domain = false;
    let mut weights: Option<syn::LitStr> = None;
    let mut attrs = Vec::new();
    let mut cfgs = Vec::new();
    for attr in def.attrs {
        if attr.path().is_ident("symnet") {
            let r = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("allow_collapse") {
                    allow_collapse = true;
                    Ok(())
                } else if meta.path.is_ident("allow_domain") {
                    allow_domain = true;
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
                        "unknown symnet option; the options are `allow_collapse`, `allow_domain` and `weights = \"file.safetensors\"`",
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
    let mut penalties: Vec<Penalty> = Vec::new();
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
                    penalties: terms,
                } => {
                    if let Some(l) = parse_loss(&mut errs, head) {
                        loss = Some((l, head.span()));
                    }
                    for t in terms {
                        if let Some(p) = parse_penalty(&mut errs, t) {
                            penalties.push(p);
                        }
                    }
                }
                Value::Spec {
                    activation: Some(a),
                    ..
                } => errs.push(
                    a.name_span(),
                    "a loss takes no activation; put the activation on the output layer",
                ),
                Value::Formula(f) => {
                    let l = Loss {
                        entry: None,
                        params: Vec::new(),
                        formula: (**f).clone(),
                    };
                    loss = Some((l, syn::spanned::Spanned::span(&**f)));
                }
                Value::Number(n) => errs.push(
                    n.span,
                    format!(
                        "`loss` takes a loss function, one of: {}, or a formula `|yhat, y| ...`",
                        loss_names().join(", ")
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
        if l.activation.entry.is_some_and(|e| e.rowwise) {
            errs.push(
                l.activation_span,
                format!(
                    "{} is only allowed on the output layer; `{}` is a hidden layer",
                    l.activation.name(),
                    l.name
                ),
            );
        }
    }

    if let (Some((loss, span)), Some(out)) = (&loss, layers.last()) {
        let name = loss.name();
        match loss.entry.map(|e| e.output) {
            Some(Output::Softmax) => {
                if !out.activation.is("softmax") {
                    errs.push(
                        *span,
                        format!(
                            "`{name}` needs a softmax output: write `{}: dense({}) -> softmax`",
                            out.name, out.width
                        ),
                    );
                } else if out.width < 2 {
                    errs.push(
                        out.width_span,
                        format!("`{name}` over a softmax needs at least 2 classes; for one output use `sigmoid` with `binary_cross_entropy`"),
                    );
                }
            }
            Some(Output::Sigmoid) if !out.activation.is("sigmoid") => {
                errs.push(
                    *span,
                    format!(
                        "`{name}` needs a sigmoid output, but `{}` ends in `{}`",
                        out.name,
                        out.activation.describe()
                    ),
                );
            }
            _ => {}
        }
        // A user's loss formula is checked against the output width.
        if loss.entry.is_none() {
            if let Err(e) = formula::validate(&loss.formula, Role::Loss, &[], &[], out.width) {
                errs.push_error(e);
            }
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
            allow_domain,
            penalties,
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
        Value::Spec {
            head,
            activation,
            penalties,
        } => {
            if let Some(p) = penalties.first() {
                errs.push(
                    p.name.span(),
                    format!(
                        "a weight penalty is a term of the loss: `loss: mse + {}(..)`",
                        p.name
                    ),
                );
            }
            (head, activation)
        }
        Value::Formula(f) => {
            errs.push(
                f.or1_token.span,
                format!("a layer is declared as `{name}: dense(8) -> |x| ...`: the formula is its activation, after `->`"),
            );
            return None;
        }
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
        } else if catalog::activation(&head.name.to_string()).is_some() {
            format!(
                "; an activation follows the layer, as in `{name}: dense(8) -> {}`",
                head.name
            )
        } else if catalog::loss(&head.name.to_string()).is_some() {
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
        .map_or(head.name.span(), |a| a.name_span());
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
        None => Some(Activation::builtin("identity")),
        Some(ActivationSpec::Call(call)) => parse_activation(errs, call),
        Some(ActivationSpec::Formula(f)) => {
            match formula::validate(f, Role::Activation, &[], &[], w.unwrap_or(1)) {
                Ok(()) => Some(Activation {
                    entry: None,
                    params: Vec::new(),
                    formula: (**f).clone(),
                }),
                Err(e) => {
                    errs.push_error(e);
                    None
                }
            }
        }
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

/// The hyperparameters of `call` for a catalog entry's `params`: written in order or as
/// `name = value`, defaults filled in, each checked against its bounds. `None` after errors.
fn hyperparameters(errs: &mut Errors, call: &Call, params: &[Param]) -> Option<Vec<f64>> {
    let name = &call.name;
    let args: Vec<&Arg> = match &call.args {
        Some((_, a)) => a.iter().collect(),
        None => Vec::new(),
    };
    let form = || {
        // A value each parameter allows, for the example.
        let example = |p: &Param| p.default.unwrap_or(if p.max <= 1.0 { 0.1 } else { 1.0 });
        let ps: Vec<String> = params
            .iter()
            .map(|p| format!("{} = {:?}", p.name, example(p)))
            .collect();
        format!("`{name}({})`", ps.join(", "))
    };
    if params.is_empty() {
        if let Some((paren, _)) = &call.args {
            errs.push(paren.span.join(), format!("`{name}` takes no arguments"));
            return None;
        }
        return Some(Vec::new());
    }
    let mut values: Vec<Option<f64>> = vec![None; params.len()];
    let mut ok = true;
    for (k, a) in args.iter().enumerate() {
        let slot = match &a.key {
            Some(key) => match params.iter().position(|p| key == p.name) {
                Some(i) => i,
                None => {
                    errs.push(
                        key.span(),
                        format!(
                            "unknown argument `{key}` of `{name}`; the form is {}",
                            form()
                        ),
                    );
                    ok = false;
                    continue;
                }
            },
            None if k < params.len() => k,
            None => {
                errs.push(
                    a.value.span,
                    format!("`{name}` takes {} argument(s): {}", params.len(), form()),
                );
                ok = false;
                continue;
            }
        };
        if !no_suffix(errs, &a.value) {
            ok = false;
            continue;
        }
        let p = &params[slot];
        if !p.allows(a.value.value) {
            let ([open, close], lo, hi) = p.interval();
            errs.push(
                a.value.span,
                format!(
                    "`{}` of `{name}` must be in {open}{lo}, {hi}{close}, as in {}",
                    p.name,
                    form()
                ),
            );
            ok = false;
            continue;
        }
        if values[slot].is_some() {
            errs.push(
                a.value.span,
                format!("`{}` of `{name}` is given twice", p.name),
            );
            ok = false;
            continue;
        }
        values[slot] = Some(a.value.value);
    }
    let mut out = Vec::new();
    for (p, v) in params.iter().zip(values) {
        match v.or(p.default) {
            Some(v) => out.push(v),
            None => {
                if ok {
                    let span = match &call.args {
                        Some((paren, _)) => paren.span.join(),
                        None => call.name.span(),
                    };
                    errs.push(
                        span,
                        format!("`{name}` needs its `{}`, as in {}", p.name, form()),
                    );
                }
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn parse_activation(errs: &mut Errors, call: &Call) -> Option<Activation> {
    let name = call.name.to_string();
    if let Some(entry) = catalog::activation(&name) {
        let params = hyperparameters(errs, call, entry.params)?;
        return Some(Activation {
            entry: Some(entry),
            params,
            formula: formula::parse_entry(entry.formula),
        });
    }
    let names = activation_names();
    let mut msg = format!("unknown activation `{name}`");
    if let Some(s) = did_you_mean(&name, &names) {
        msg.push_str(&format!("; did you mean `{s}`?"));
    } else {
        msg.push_str(&format!(
            "; expected one of: {}, or a formula `|x| ...`",
            names.join(", ")
        ));
    }
    if catalog::loss(&name).is_some() {
        msg = format!(
            "`{name}` is a loss, not an activation: declare it as `loss: {name}` after the layers"
        );
    }
    errs.push(call.name.span(), msg);
    None
}

fn parse_loss(errs: &mut Errors, call: &Call) -> Option<Loss> {
    let name = call.name.to_string();
    if let Some(entry) = catalog::loss(&name) {
        let params = hyperparameters(errs, call, entry.params)?;
        return Some(Loss {
            entry: Some(entry),
            params,
            formula: formula::parse_entry(entry.formula),
        });
    }
    let names = loss_names();
    let mut msg = format!("unknown loss `{name}`");
    if let Some(s) = did_you_mean(&name, &names) {
        msg.push_str(&format!("; did you mean `{s}`?"));
    } else {
        msg.push_str(&format!(
            "; expected one of: {}, or a formula `|yhat, y| ...`",
            names.join(", ")
        ));
    }
    if catalog::activation(&name).is_some() {
        msg = format!("`{name}` is an activation, not a loss: put it on the output layer, as in `output: dense(1) -> {name}`");
    }
    errs.push(call.name.span(), msg);
    None
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
        let (acts, losses) = (super::activation_names(), super::loss_names());
        assert_eq!(did_you_mean("sigmod", &acts), Some("sigmoid"));
        assert_eq!(did_you_mean("reul", &acts), Some("relu"));
        assert_eq!(did_you_mean("mes", &losses), Some("mse"));
        assert_eq!(did_you_mean("banana", &acts), None);
        assert_eq!(did_you_mean("ReLU", &acts), Some("relu"));
        assert_eq!(did_you_mean("MSE", &losses), Some("mse"));
        assert_eq!(
            did_you_mean("Binary_Cross_Entropy", &losses),
            Some("binary_cross_entropy")
        );
    }
}
