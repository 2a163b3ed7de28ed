//! Formulas: the closures `|x| expr` (an activation) and `|yhat, y| expr` (a loss) that users
//! write in a declaration and that every catalog entry (`symnet_runtime::catalog`) is written
//! in, lowered into the tensor IR.
//!
//! The language is documented on the catalog. Lowering checks it: every mistake is a
//! `syn::Error` at the formula's own token (unknown function with a "did you mean", wrong
//! arity, unbound variable, non-constant exponent, a loss that does not reduce, a reduction in
//! an activation). Constant subexpressions are folded here (`0.5 * n * ln(2.0 * pi)` becomes one
//! number), a division by a constant becomes a multiplication, `powi` becomes products, and
//! `min`, `max` and `if` become `select` over a comparison mask; everything else is an IR
//! operation that the rules and the differentiator already know.

use egg::{Id, RecExpr};
use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{BinOp, Expr, ExprClosure, Lit, Pat, UnOp};

use symnet_runtime::catalog::{self, ActivationEntry};

use crate::check::did_you_mean;
use crate::ir::{num, Tensor};

/// What a formula defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `|x| expr`, elementwise.
    Activation,
    /// `|yhat, y| expr`, reducing to one number.
    Loss,
}

/// How deep catalog entries may call each other (`selu` calls `elu`); a guard, not a limit
/// any entry comes near.
const MAX_DEPTH: usize = 8;

/// A lowered value: a number known at compile time, or an IR node that is a vector (per
/// output) or a scalar (a reduction).
#[derive(Clone, Copy, Debug)]
enum Val {
    Const(f64),
    Node(Id, Kind),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Scalar,
    Vector,
}

/// The functions of the language, with their arity, for "did you mean" and arity errors.
const FUNCTIONS: &[(&str, usize)] = &[
    ("exp", 1),
    ("ln", 1),
    ("sqrt", 1),
    ("abs", 1),
    ("cosh", 1),
    ("sigmoid", 1),
    ("tanh", 1),
    ("softplus", 1),
    ("relu", 1),
    ("powi", 2),
    ("min", 2),
    ("max", 2),
    ("sum", 1),
    ("mean", 1),
];

/// An operation whose argument must be in a domain (`ln` of a positive number, `sqrt` of a
/// non-negative one, division by a nonzero one), at the user's token, for the range check.
#[derive(Clone, Debug)]
pub struct DomainCheck {
    /// The node of the argument (the denominator, for a division).
    pub arg: Id,
    /// What the argument must be.
    pub need: Need,
    /// The token of the operation.
    pub span: Span,
    /// `ln`, `sqrt` or `/`.
    pub op: &'static str,
}

/// What an argument must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// `> 0` (`ln`).
    Positive,
    /// `>= 0` (`sqrt`).
    NonNegative,
    /// `!= 0` (a denominator).
    NonZero,
}

/// Lowers formulas into one `RecExpr`.
pub struct Lowerer<'a> {
    /// The domain checks of the user's own formulas (catalog entries are known to be safe
    /// or made safe by the rules).
    pub domain: Vec<DomainCheck>,
    expr: &'a mut RecExpr<Tensor>,
    /// The number of outputs (`n` in a loss, the length `mean` divides by).
    outputs: usize,
    /// Scope stack: names bound in the formula being lowered (innermost last).
    scopes: Vec<Vec<(String, Val)>>,
    role: Role,
    depth: usize,
    /// Whether the formula being lowered is the user's (its tokens are the user's).
    user: bool,
}

impl<'a> Lowerer<'a> {
    /// A lowerer adding nodes to `expr`, for a network with `outputs` outputs.
    pub fn new(expr: &'a mut RecExpr<Tensor>, outputs: usize) -> Self {
        Lowerer {
            domain: Vec::new(),
            expr,
            outputs,
            scopes: Vec::new(),
            role: Role::Activation,
            depth: 0,
            user: false,
        }
    }

    /// Marks the next formulas as the user's own, whose domains are checked.
    pub fn user(mut self, user: bool) -> Self {
        self.user = user;
        self
    }

    /// Applies the activation formula `f` (hyperparameters `params`, in the catalog entry's
    /// order of `names`) to the vector node `z`.
    pub fn activation(
        &mut self,
        f: &ExprClosure,
        names: &[&str],
        params: &[f64],
        z: Id,
    ) -> syn::Result<Id> {
        self.role = Role::Activation;
        let v = self.apply(f, &[Val::Node(z, Kind::Vector)], names, params)?;
        match v {
            Val::Node(id, Kind::Vector) => Ok(id),
            _ => Err(syn::Error::new(
                f.body.span(),
                "an activation must depend on its argument: it is applied to each output of the layer",
            )),
        }
    }

    /// The loss formula `f` of the output node `yhat` and the target `y`, a scalar node.
    pub fn loss(
        &mut self,
        f: &ExprClosure,
        names: &[&str],
        params: &[f64],
        yhat: Id,
        y: Id,
    ) -> syn::Result<Id> {
        self.role = Role::Loss;
        let args = [Val::Node(yhat, Kind::Vector), Val::Node(y, Kind::Vector)];
        match self.apply(f, &args, names, params)? {
            Val::Node(id, Kind::Scalar) => Ok(id),
            Val::Const(v) => Ok(self.expr.add(num(v))),
            Val::Node(_, Kind::Vector) => Err(syn::Error::new(
                f.span(),
                "a loss must reduce to one number per sample: wrap it in `sum(..)`, `mean(..)` or `max(..)` over the outputs",
            )),
        }
    }

    fn apply(
        &mut self,
        f: &ExprClosure,
        args: &[Val],
        names: &[&str],
        params: &[f64],
    ) -> syn::Result<Val> {
        let want = match self.role {
            Role::Activation => 1,
            Role::Loss => 2,
        };
        if f.inputs.len() != want {
            let form = if want == 1 {
                "`|x| ...`"
            } else {
                "`|yhat, y| ...`"
            };
            return Err(syn::Error::new(
                f.or1_token.span(),
                format!(
                    "{} takes {want} argument(s), written as {form}",
                    if want == 1 { "an activation" } else { "a loss" }
                ),
            ));
        }
        if self.depth > MAX_DEPTH {
            return Err(syn::Error::new(
                f.span(),
                "formulas call each other too deeply",
            ));
        }
        let mut scope = Vec::new();
        for (pat, v) in f.inputs.iter().zip(args) {
            let name = match pat {
                Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => p.ident.to_string(),
                other => {
                    return Err(syn::Error::new_spanned(
                        other,
                        "a formula's arguments are plain names, as in `|x| ...` or `|yhat, y| ...`",
                    ))
                }
            };
            scope.push((name, *v));
        }
        for (n, v) in names.iter().zip(params) {
            scope.push(((*n).to_string(), Val::Const(*v)));
        }
        self.scopes.push(scope);
        self.depth += 1;
        let r = self.lower(&f.body);
        self.depth -= 1;
        self.scopes.pop();
        r
    }

    fn node(&mut self, v: Val) -> Id {
        match v {
            Val::Const(c) => self.expr.add(num(c)),
            Val::Node(id, _) => id,
        }
    }

    fn kind(a: Val, b: Val) -> Kind {
        match (a, b) {
            (Val::Node(_, Kind::Vector), _) | (_, Val::Node(_, Kind::Vector)) => Kind::Vector,
            _ => Kind::Scalar,
        }
    }

    fn unary(&mut self, f: fn(Id) -> Tensor, fold: fn(f64) -> f64, a: Val) -> Val {
        match a {
            Val::Const(c) if fold(c).is_finite() => Val::Const(fold(c)),
            _ => {
                let k = match a {
                    Val::Node(_, k) => k,
                    Val::Const(_) => Kind::Scalar,
                };
                let ia = self.node(a);
                Val::Node(self.expr.add(f(ia)), k)
            }
        }
    }

    fn binary(
        &mut self,
        f: fn([Id; 2]) -> Tensor,
        fold: fn(f64, f64) -> f64,
        a: Val,
        b: Val,
    ) -> Val {
        if let (Val::Const(x), Val::Const(y)) = (a, b) {
            let v = fold(x, y);
            if v.is_finite() {
                return Val::Const(v);
            }
        }
        let k = Self::kind(a, b);
        let (ia, ib) = (self.node(a), self.node(b));
        Val::Node(self.expr.add(f([ia, ib])), k)
    }

    fn select(&mut self, mask: Val, a: Val, b: Val) -> Val {
        if let Val::Const(m) = mask {
            return if m != 0.0 { a } else { b };
        }
        let vector = [mask, a, b]
            .iter()
            .any(|v| matches!(v, Val::Node(_, Kind::Vector)));
        let k = if vector { Kind::Vector } else { Kind::Scalar };
        let (im, ia, ib) = (self.node(mask), self.node(a), self.node(b));
        Val::Node(self.expr.add(Tensor::Select([im, ia, ib])), k)
    }

    fn lookup(&self, name: &str) -> Option<Val> {
        self.scopes
            .last()?
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, b)| *b)
    }

    fn lower(&mut self, e: &Expr) -> syn::Result<Val> {
        match e {
            Expr::Lit(l) => literal(&l.lit),
            Expr::Paren(p) => self.lower(&p.expr),
            Expr::Group(g) => self.lower(&g.expr),
            Expr::Block(b) if b.block.stmts.len() == 1 => match &b.block.stmts[0] {
                syn::Stmt::Expr(inner, None) => self.lower(inner),
                other => Err(syn::Error::new_spanned(
                    other,
                    "a block in a formula holds one expression",
                )),
            },
            Expr::Path(p) => {
                let Some(ident) = p.path.get_ident() else {
                    return Err(syn::Error::new_spanned(
                        p,
                        "a formula names variables and constants by plain names",
                    ));
                };
                let name = ident.to_string();
                if let Some(v) = self.lookup(&name) {
                    return Ok(v);
                }
                match name.as_str() {
                    "pi" => Ok(Val::Const(std::f64::consts::PI)),
                    "e" => Ok(Val::Const(std::f64::consts::E)),
                    "n" if self.role == Role::Loss => Ok(Val::Const(self.outputs as f64)),
                    _ => {
                        let mut known: Vec<String> = self
                            .scopes
                            .last()
                            .map(|s| s.iter().map(|(n, _)| n.clone()).collect())
                            .unwrap_or_default();
                        known.extend(["pi".to_string(), "e".to_string()]);
                        if self.role == Role::Loss {
                            known.push("n".into());
                        }
                        let refs: Vec<&str> = known.iter().map(String::as_str).collect();
                        let hint = match did_you_mean(&name, &refs) {
                            Some(s) => format!("; did you mean `{s}`?"),
                            None => format!("; the names here are {}", refs.join(", ")),
                        };
                        Err(syn::Error::new_spanned(
                            ident,
                            format!("unbound variable `{name}` in the formula{hint}"),
                        ))
                    }
                }
            }
            Expr::Unary(u) => match u.op {
                UnOp::Neg(_) => {
                    let a = self.lower(&u.expr)?;
                    Ok(self.unary(Tensor::Neg, |x| -x, a))
                }
                _ => Err(syn::Error::new_spanned(
                    u.op,
                    "only `-` is a unary operator in a formula",
                )),
            },
            Expr::Binary(b) => {
                let (l, r) = (self.lower(&b.left)?, self.lower(&b.right)?);
                match b.op {
                    BinOp::Add(_) => Ok(self.binary(Tensor::Add, |x, y| x + y, l, r)),
                    BinOp::Sub(_) => Ok(self.binary(Tensor::Sub, |x, y| x - y, l, r)),
                    BinOp::Mul(_) => Ok(self.binary(Tensor::Mul, |x, y| x * y, l, r)),
                    BinOp::Div(_) => match r {
                        Val::Const(c) if c != 0.0 && !matches!(l, Val::Const(_)) => {
                            // A division by a constant is a multiplication.
                            Ok(self.binary(Tensor::Mul, |x, y| x * y, l, Val::Const(1.0 / c)))
                        }
                        _ => {
                            if let Val::Node(den, _) = r {
                                self.check_domain(den, Need::NonZero, b.op.span(), "/");
                            }
                            Ok(self.binary(Tensor::Div, |x, y| x / y, l, r))
                        }
                    },
                    BinOp::Gt(_) | BinOp::Ge(_) | BinOp::Lt(_) | BinOp::Le(_) => {
                        Err(syn::Error::new_spanned(
                            b.op,
                            "a comparison is the condition of `if a > b { .. } else { .. }`",
                        ))
                    }
                    _ => Err(syn::Error::new_spanned(
                        b.op,
                        "a formula has the operators `+ - * /` (and comparisons in `if`)",
                    )),
                }
            }
            Expr::If(i) => {
                let mask = self.condition(&i.cond)?;
                let then = self.block(&i.then_branch)?;
                let Some((_, els)) = &i.else_branch else {
                    return Err(syn::Error::new_spanned(
                        i,
                        "an `if` in a formula needs an `else` branch: `if a > b { .. } else { .. }`",
                    ));
                };
                let other = self.lower(els)?;
                Ok(self.select(mask, then, other))
            }
            Expr::Call(c) => self.call(c),
            Expr::MethodCall(m) => Err(syn::Error::new_spanned(
                &m.method,
                format!(
                    "write `{}(..)` as a function call in a formula, not as a method",
                    m.method
                ),
            )),
            other => Err(syn::Error::new_spanned(
                other,
                "not part of the formula language: numbers, names, `+ - * /`, function calls and `if a > b { .. } else { .. }`",
            )),
        }
    }

    fn block(&mut self, b: &syn::Block) -> syn::Result<Val> {
        match &b.stmts[..] {
            [syn::Stmt::Expr(e, None)] => self.lower(e),
            _ => Err(syn::Error::new_spanned(
                b,
                "a branch of an `if` in a formula holds one expression: `{ x }`",
            )),
        }
    }

    /// The mask of a comparison: `1` where it holds.
    fn condition(&mut self, cond: &Expr) -> syn::Result<Val> {
        let cond = match cond {
            Expr::Paren(p) => &*p.expr,
            other => other,
        };
        let Expr::Binary(b) = cond else {
            return Err(syn::Error::new_spanned(
                cond,
                "the condition of an `if` in a formula is a comparison: `a > b`, `a >= b`, `a < b` or `a <= b`",
            ));
        };
        let (l, r) = (self.lower(&b.left)?, self.lower(&b.right)?);
        let gt = |x: f64, y: f64| f64::from(u8::from(x > y));
        let ge = |x: f64, y: f64| f64::from(u8::from(x >= y));
        match b.op {
            BinOp::Gt(_) => Ok(self.binary(Tensor::Gt, gt, l, r)),
            BinOp::Ge(_) => Ok(self.binary(Tensor::Ge, ge, l, r)),
            BinOp::Lt(_) => Ok(self.binary(Tensor::Gt, gt, r, l)),
            BinOp::Le(_) => Ok(self.binary(Tensor::Ge, ge, r, l)),
            _ => Err(syn::Error::new_spanned(
                b.op,
                "the condition of an `if` in a formula is a comparison: `>`, `>=`, `<` or `<=`",
            )),
        }
    }

    fn call(&mut self, c: &syn::ExprCall) -> syn::Result<Val> {
        let Expr::Path(p) = &*c.func else {
            return Err(syn::Error::new_spanned(
                &c.func,
                "a formula calls functions by name",
            ));
        };
        let Some(ident) = p.path.get_ident() else {
            return Err(syn::Error::new_spanned(
                p,
                "a formula calls functions by plain name",
            ));
        };
        let name = ident.to_string();
        let args: Vec<&Expr> = c.args.iter().collect();
        let arity = |n: usize, form: &str| -> syn::Result<()> {
            if args.len() == n {
                Ok(())
            } else {
                Err(syn::Error::new(
                    c.paren_token.span.join(),
                    format!(
                        "`{name}` takes {n} argument{}: `{form}`",
                        if n == 1 { "" } else { "s" }
                    ),
                ))
            }
        };
        // A catalog activation: its own formula, applied.
        if let Some(entry) = catalog::activation(&name) {
            if !FUNCTIONS.iter().any(|(f, _)| *f == name) {
                return self.catalog_call(entry, c, &args);
            }
        }
        let span = ident.span();
        let one = |me: &mut Self, f: fn(Id) -> Tensor, fold: fn(f64) -> f64| -> syn::Result<Val> {
            arity(1, &format!("{name}(x)"))?;
            let a = me.lower(args[0])?;
            let need = match name.as_str() {
                "ln" => Some((Need::Positive, "ln")),
                "sqrt" => Some((Need::NonNegative, "sqrt")),
                _ => None,
            };
            if let (Some((need, op)), Val::Node(arg, _)) = (need, a) {
                me.check_domain(arg, need, span, op);
            }
            Ok(me.unary(f, fold, a))
        };
        match name.as_str() {
            "exp" => one(self, Tensor::Exp, f64::exp),
            "ln" => one(self, Tensor::Ln, f64::ln),
            "sqrt" => one(self, Tensor::Sqrt, f64::sqrt),
            "abs" => one(self, Tensor::Abs, f64::abs),
            "cosh" => one(self, Tensor::Cosh, f64::cosh),
            "sigmoid" => one(self, Tensor::Sigmoid, |x| 1.0 / (1.0 + (-x).exp())),
            "tanh" => one(self, Tensor::Tanh, f64::tanh),
            "softplus" => one(self, Tensor::Softplus, |x| {
                x.max(0.0) + (-x.abs()).exp().ln_1p()
            }),
            "relu" => one(self, Tensor::Relu, |x| x.max(0.0)),
            "powi" => {
                arity(2, "powi(x, 3)")?;
                let k = integer(args[1]).ok_or_else(|| {
                    syn::Error::new_spanned(
                        args[1],
                        "the exponent of `powi` is an integer constant, as in `powi(x, 3)`",
                    )
                })?;
                if !(-64..=64).contains(&k) {
                    return Err(syn::Error::new_spanned(
                        args[1],
                        "the exponent of `powi` is at most 64 in absolute value",
                    ));
                }
                let a = self.lower(args[0])?;
                Ok(self.powi(a, k))
            }
            "min" | "max" if args.len() == 2 => {
                let (a, b) = (self.lower(args[0])?, self.lower(args[1])?);
                let ge = |x: f64, y: f64| f64::from(u8::from(x >= y));
                // max(a, b) = a where a >= b (a on ties), min(a, b) = a where b >= a.
                let mask = if name == "max" {
                    self.binary(Tensor::Ge, ge, a, b)
                } else {
                    self.binary(Tensor::Ge, ge, b, a)
                };
                Ok(self.select(mask, a, b))
            }
            "sum" | "mean" | "max" => {
                if self.role == Role::Activation {
                    let msg = if name == "max" {
                        "`max(v)` reduces over the outputs, which only a loss does; in an activation use `max(a, b)`".to_string()
                    } else {
                        format!("`{name}` reduces over the outputs, which only a loss does; an activation is applied to each output on its own")
                    };
                    return Err(syn::Error::new_spanned(ident, msg));
                }
                arity(1, &format!("{name}(v)"))?;
                let v = self.lower(args[0])?;
                let (id, n) = match v {
                    Val::Node(id, Kind::Vector) => (id, self.outputs as f64),
                    // A number summed over the outputs.
                    Val::Const(c) => {
                        let s = match name.as_str() {
                            "sum" => c * self.outputs as f64,
                            _ => c,
                        };
                        return Ok(Val::Const(s));
                    }
                    Val::Node(_, Kind::Scalar) => {
                        return Err(syn::Error::new_spanned(
                            args[0],
                            format!("`{name}` of a number: it is already reduced"),
                        ))
                    }
                };
                let node = match name.as_str() {
                    "sum" => self.expr.add(Tensor::Sum(id)),
                    "mean" => {
                        let s = self.expr.add(Tensor::Sum(id));
                        let k = self.expr.add(num(1.0 / n));
                        self.expr.add(Tensor::Mul([k, s]))
                    }
                    _ => {
                        // The largest element where the mask is 1, else 0 (not `v * mask`:
                        // 0 times an infinite element would be NaN).
                        let mask = self.expr.add(Tensor::MaxMask(id));
                        let zero = self.expr.add(num(0.0));
                        let p = self.expr.add(Tensor::Select([mask, id, zero]));
                        self.expr.add(Tensor::Sum(p))
                    }
                };
                Ok(Val::Node(node, Kind::Scalar))
            }
            // `min` with other than two arguments (two are handled above).
            "min" => Err(syn::Error::new(
                c.paren_token.span.join(),
                "`min` takes 2 arguments: `min(a, b)`",
            )),
            "softmax" | "logsumexp" => Err(syn::Error::new_spanned(
                ident,
                format!("`{name}` is row-wise, not part of a formula: declare the output layer `-> softmax`"),
            )),
            _ => {
                let mut names: Vec<&str> = FUNCTIONS.iter().map(|(f, _)| *f).collect();
                names.extend(
                    catalog::ACTIVATIONS
                        .iter()
                        .filter(|a| !a.rowwise)
                        .flat_map(|a| std::iter::once(a.name).chain(a.aliases.iter().copied())),
                );
                let hint = match did_you_mean(&name, &names) {
                    Some(s) => format!("; did you mean `{s}`?"),
                    None => "; the functions are exp, ln, sqrt, abs, cosh, powi, min, max, the activations (sigmoid, tanh, relu, gelu, ...) and, in a loss, sum, mean and max".to_string(),
                };
                Err(syn::Error::new_spanned(
                    ident,
                    format!("unknown function `{name}` in the formula{hint}"),
                ))
            }
        }
    }

    fn check_domain(&mut self, arg: Id, need: Need, span: Span, op: &'static str) {
        // Only the user's own tokens: inside a catalog call the formula is the catalog's.
        if self.user && self.depth == 1 {
            self.domain.push(DomainCheck {
                arg,
                need,
                span,
                op,
            });
        }
    }

    /// `x^k` as products (and one division for a negative `k`).
    fn powi(&mut self, a: Val, k: i64) -> Val {
        if let Val::Const(c) = a {
            return Val::Const(c.powi(k as i32));
        }
        if k == 0 {
            return Val::Const(1.0);
        }
        let mut acc = a;
        for _ in 1..k.unsigned_abs() {
            acc = self.binary(Tensor::Mul, |x, y| x * y, acc, a);
        }
        if k < 0 {
            acc = self.binary(Tensor::Div, |x, y| x / y, Val::Const(1.0), acc);
        }
        acc
    }

    /// `name(x, hyperparameters...)` of a catalog activation.
    fn catalog_call(
        &mut self,
        entry: &'static ActivationEntry,
        c: &syn::ExprCall,
        args: &[&Expr],
    ) -> syn::Result<Val> {
        let max = 1 + entry.params.len();
        let required = 1 + entry.params.iter().filter(|p| p.default.is_none()).count();
        if args.len() < required || args.len() > max {
            let params: Vec<&str> = entry.params.iter().map(|p| p.name).collect();
            let form = std::iter::once("x")
                .chain(params.iter().copied())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(syn::Error::new(
                c.paren_token.span.join(),
                format!(
                    "`{}` takes its argument then its hyperparameters: `{}({form})`",
                    entry.name, entry.name
                ),
            ));
        }
        if entry.rowwise {
            return Err(syn::Error::new_spanned(
                &c.func,
                format!(
                    "`{}` is row-wise, not part of a formula: declare the output layer `-> {}`",
                    entry.name, entry.name
                ),
            ));
        }
        let x = self.lower(args[0])?;
        let mut values = Vec::new();
        for (k, p) in entry.params.iter().enumerate() {
            let v = match args.get(k + 1) {
                Some(a) => match self.lower(a)? {
                    Val::Const(v) => {
                        if !p.allows(v) {
                            let ([open, close], lo, hi) = p.interval();
                            return Err(syn::Error::new_spanned(
                                a,
                                format!(
                                    "`{}` of `{}` must be in {open}{lo}, {hi}{close}, got {v}",
                                    p.name, entry.name
                                ),
                            ));
                        }
                        v
                    }
                    Val::Node(..) => {
                        return Err(syn::Error::new_spanned(
                            a,
                            format!("`{}` of `{}` is a constant", p.name, entry.name),
                        ))
                    }
                },
                None => p.default.unwrap_or(0.0),
            };
            values.push(v);
        }
        let f = parse_entry(entry.formula);
        let names: Vec<&str> = entry.params.iter().map(|p| p.name).collect();
        // The entry's formula in a scope of its own, with the argument as its variable.
        let saved = self.role;
        self.role = Role::Activation;
        let r = self.apply(&f, &[x], &names, &values);
        self.role = saved;
        r.map_err(|e| {
            syn::Error::new_spanned(
                &c.func,
                format!("in the catalog formula of `{}`: {e}", entry.name),
            )
        })
    }
}

/// A catalog entry's formula, parsed. The catalog is tested to parse.
pub fn parse_entry(src: &str) -> ExprClosure {
    syn::parse_str(src).unwrap_or_else(|e| panic!("catalog formula `{src}` does not parse: {e}"))
}

/// A number literal, without a type suffix.
fn literal(l: &Lit) -> syn::Result<Val> {
    let (v, suffix) = match l {
        Lit::Int(i) => (i.base10_digits().parse::<f64>().ok(), i.suffix()),
        Lit::Float(f) => (f.base10_digits().parse::<f64>().ok(), f.suffix()),
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "a formula's literals are numbers",
            ))
        }
    };
    if !suffix.is_empty() {
        return Err(syn::Error::new_spanned(
            l,
            "numbers in a formula take no type suffix",
        ));
    }
    match v {
        Some(v) if v.is_finite() => Ok(Val::Const(v)),
        _ => Err(syn::Error::new_spanned(l, "this number is not finite")),
    }
}

/// An integer constant: a literal, possibly negated, possibly in parentheses.
fn integer(e: &Expr) -> Option<i64> {
    match e {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(i), ..
        }) if i.suffix().is_empty() => i.base10_parse().ok(),
        Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) => integer(&u.expr).map(|v| -v),
        Expr::Paren(p) => integer(&p.expr),
        Expr::Group(g) => integer(&g.expr),
        _ => None,
    }
}

/// Checks a formula by lowering it into a scratch expression with stand-in operands: the
/// errors are the same as lowering it for real.
pub fn validate(
    f: &ExprClosure,
    role: Role,
    names: &[&str],
    params: &[f64],
    outputs: usize,
) -> syn::Result<()> {
    let mut expr = RecExpr::default();
    let a = expr.add(Tensor::Symbol("x".into()));
    let b = expr.add(Tensor::Symbol("y".into()));
    let mut l = Lowerer::new(&mut expr, outputs.max(1));
    match role {
        Role::Activation => l.activation(f, names, params, a).map(|_| ()),
        Role::Loss => l.loss(f, names, params, a, b).map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_formula_lowers() {
        for a in catalog::ACTIVATIONS.iter().filter(|a| !a.rowwise) {
            let f = parse_entry(a.formula);
            let names: Vec<&str> = a.params.iter().map(|p| p.name).collect();
            let params: Vec<f64> = a.params.iter().map(|p| p.default.unwrap_or(0.5)).collect();
            validate(&f, Role::Activation, &names, &params, 3)
                .unwrap_or_else(|e| panic!("{}: {e}", a.name));
        }
        for l in catalog::LOSSES {
            let f = parse_entry(l.formula);
            let names: Vec<&str> = l.params.iter().map(|p| p.name).collect();
            let params: Vec<f64> = l.params.iter().map(|p| p.default.unwrap_or(0.5)).collect();
            validate(&f, Role::Loss, &names, &params, 3)
                .unwrap_or_else(|e| panic!("{}: {e}", l.name));
        }
    }

    fn err(src: &str, role: Role) -> String {
        let f: ExprClosure = syn::parse_str(src).unwrap();
        validate(&f, role, &[], &[], 3).unwrap_err().to_string()
    }

    #[test]
    fn mistakes_are_named() {
        use Role::*;
        assert!(err("|x| sigmod(x)", Activation).contains("did you mean `sigmoid`"));
        assert!(err("|x| exp(x, 2)", Activation).contains("takes 1 argument"));
        assert!(err("|x| x * z", Activation).contains("unbound variable `z`"));
        assert!(err("|x| powi(x, x)", Activation).contains("integer constant"));
        assert!(err("|yhat, y| yhat - y", Loss).contains("must reduce"));
        assert!(err("|x| sum(x)", Activation).contains("only a loss"));
        assert!(err("|x| 1.0", Activation).contains("must depend"));
        assert!(err("|x| if x > 0.0 { x }", Activation).contains("`else`"));
        assert!(err("|x| elu(x, -1.0)", Activation).contains("must be in (0, inf)"));
        assert!(err("|x| softmax(x)", Activation).contains("row-wise"));
        assert!(err("|x, y| x", Activation).contains("takes 1 argument"));
    }
}
