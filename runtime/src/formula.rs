//! Formulas in the expression language of the [catalog], parsed and evaluated at
//! run time: what [`InterpNet`](crate::interp::InterpNet) runs for the catalog entries that have
//! no hand-written code path of their own (`gelu`, `elu`, `huber`, ...) and for a user's own
//! formulas.
//!
//! - [`parse_activation`] reads `|x| ...` into an [`ActivationFormula`], evaluated elementwise
//!   with its exact derivative (forward mode: dual numbers, one element at a time).
//! - [`parse_loss`] reads `|yhat, y| ...` into a [`LossFormula`], evaluated with its gradient
//!   with respect to `yhat` by reverse mode over the expression: one sample costs
//!   O(n · formula size) for `n` outputs.
//! - A formula that does not parse or does not make sense is a [`FormulaError`], with the byte
//!   offset of the offending token and a caret under it in its `Display`.
//!
//! The language is documented in [`catalog`](crate::catalog#the-expression-language). What the
//! evaluation adds to it:
//!
//! - **Derivatives at kinks.** An `if` takes the derivative of the branch it takes (its condition
//!   contributes nothing); `relu'(x)` is `1` for `x > 0`, else `0`; `abs'(0) = 0`; `max(a, b)` and
//!   `min(a, b)` follow `a` on ties; the reduction `max(v)` follows its first largest element.
//! - **Stable forms.** Where the compiler relies on a rewrite rule, the evaluation uses the same
//!   stable form: `ln(cosh(d))` is `|d| + softplus(-2|d|) - ln 2` (finite for every finite `d`),
//!   `ln(sigmoid(a))` is `-softplus(-a)` and `ln(1 - sigmoid(a))` is `-softplus(a)`; `sigmoid`
//!   and `softplus` are [`Scalar::sigmoid`] and [`Scalar::softplus`]. These patterns are
//!   recognized in the formula as written. Everything else is evaluated as written: a loss such
//!   as `-mean(y * ln(yhat) + (1.0 - y) * ln(1.0 - yhat))` on a sigmoid output takes `ln` of the
//!   probability, which is `-inf` once `yhat` or `1 - yhat` rounds to 0 (`1 - yhat` already for
//!   logits above about 37 in `f64`, 17 in `f32`). This is acceptable for user formulas; the
//!   built-in `binary_cross_entropy` and `cross_entropy` of
//!   [`InterpNet`](crate::interp::InterpNet) work on the logits instead and are finite for any.
//! - **Constants.** A subexpression without `x` (or `yhat`, `y`, `n`) is folded in `f64` when the
//!   formula is parsed: `0.5 * sqrt(2.0 / pi)` costs nothing per element.
//! - **Shapes in a loss.** `yhat`, `y` and everything computed from them elementwise are vectors
//!   over the `n` outputs; numbers, hyperparameters, `n` and reductions are single numbers,
//!   repeated over the outputs where they meet a vector (`sum(yhat - mean(yhat))` is fine).
//!   Reducing a number repeats it over the outputs first (`sum(2.0)` is `2 n`, `mean(2.0)` is
//!   `2`), but a number that is already a reduction cannot be reduced again (`sum(mean(yhat))`
//!   is an error). The whole loss must be a single number.
//! - **Hyperparameters of catalog calls.** In `elu(x, a)`, `a` must be a constant expression
//!   (numbers, named constants, hyperparameters) within the entry's bounds.
//!
//! ```
//! use symnet_runtime::formula::{parse_activation, parse_loss};
//!
//! let swish = parse_activation("|x| x * sigmoid(beta * x)", &[("beta", 1.5)])?;
//! let (v, d) = swish.eval_with_derivative(2.0_f64);
//! let s = 1.0 / (1.0 + (-3.0_f64).exp());
//! assert!((v - 2.0 * s).abs() < 1e-15);
//! assert!((d - (s + 3.0 * s * (1.0 - s))).abs() < 1e-14);
//!
//! let mse = parse_loss("|yhat, y| mean(powi(yhat - y, 2))", &[])?;
//! let mut grad = [0.0; 2];
//! let l = mse.eval_with_gradient(&[1.0, 2.0], &[0.0, 0.0], &mut grad);
//! assert_eq!((l, grad), (2.5, [1.0, 2.0]));
//!
//! let err = parse_activation("|x| sigmod(x)", &[]).unwrap_err();
//! assert_eq!(err.message, "unknown function `sigmod`; did you mean `sigmoid`?");
//! assert_eq!(err.offset, 4);
//! assert_eq!(err.to_string(), "unknown function `sigmod`; did you mean `sigmoid`?\n  |x| sigmod(x)\n      ^");
//! # Ok::<(), symnet_runtime::formula::FormulaError>(())
//! ```

use core::fmt;

use crate::catalog::{self, ActivationEntry, Init, LossEntry, Output};
use crate::{Scalar, Targets};

// ------------------------------------------------------------------------------------------------
// Errors

/// A formula that does not parse, or that parses but does not make sense (an unknown function,
/// a wrong number of arguments, a loss that does not reduce to a number, ...).
///
/// `Display` shows the message, then the formula (or the part of it around the error) with a
/// caret under the offending token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormulaError {
    /// What is wrong, in one line.
    pub message: String,
    /// The byte offset of the offending token in [`formula`](Self::formula) (its length for an
    /// unexpected end).
    pub offset: usize,
    /// The formula's text.
    pub formula: String,
}

impl FormulaError {
    fn new(formula: &str, offset: usize, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            offset: offset.min(formula.len()),
            formula: formula.to_owned(),
        }
    }
}

impl fmt::Display for FormulaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (line, column) = excerpt(&self.formula, self.offset);
        write!(f, "{}\n  {line}\n  {:column$}^", self.message, "")
    }
}

impl std::error::Error for FormulaError {}

/// The line of `src` holding byte `offset`, cut to about 72 characters around it, and the
/// caret's column in characters.
fn excerpt(src: &str, offset: usize) -> (String, usize) {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let start = src[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = src[offset..].find('\n').map_or(src.len(), |i| offset + i);
    let line: Vec<char> = src[start..end].chars().collect();
    let column = src[start..offset].chars().count();
    const HALF: usize = 36;
    if line.len() <= 2 * HALF {
        return (line.into_iter().collect(), column);
    }
    let from = column.saturating_sub(HALF);
    let to = (from + 2 * HALF).min(line.len());
    let from = to.saturating_sub(2 * HALF).min(from);
    let mut text = String::new();
    let mut caret = column - from;
    if from > 0 {
        text.push_str("...");
        caret += 3;
    }
    text.extend(&line[from..to]);
    if to < line.len() {
        text.push_str("...");
    }
    (text, caret)
}

/// The edit distance between two strings, by characters: insertions, deletions,
/// substitutions and transpositions of neighbours (`maen` is 1 from `mean`).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j]: the distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, v) in d[0].iter_mut().enumerate() {
        *v = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j - 1] + cost)
                .min(d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `name` (case-insensitive edit distance, up to about a third of its
/// length), for "did you mean" messages.
pub(crate) fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = name.to_lowercase();
    let hint = match lower.as_str() {
        "log" => Some("ln"),
        "pow" | "powf" => Some("powi"),
        _ => None,
    };
    let limit = match lower.chars().count() {
        0..=3 => 1,
        4..=6 => 2,
        _ => 3,
    };
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        if c == name {
            continue;
        }
        if hint == Some(c) {
            return Some(c);
        }
        let d = edit_distance(&lower, &c.to_lowercase());
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!("; did you mean `{s}`?"))
}

// ------------------------------------------------------------------------------------------------
// Lexer

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmp {
    Gt,
    Ge,
    Lt,
    Le,
}

impl Cmp {
    #[inline]
    fn holds<T: Scalar>(self, a: T, b: T) -> bool {
        match self {
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Tok<'s> {
    /// A number, and whether it is an integer literal (digits only).
    Num(f64, bool),
    Ident(&'s str),
    If,
    Else,
    Pipe,
    Comma,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Plus,
    Minus,
    Star,
    Slash,
    Cmp(Cmp),
    Eof,
}

fn describe(tok: Tok<'_>) -> String {
    match tok {
        Tok::Num(..) => "a number".to_owned(),
        Tok::Ident(s) => format!("`{s}`"),
        Tok::If => "`if`".to_owned(),
        Tok::Else => "`else`".to_owned(),
        Tok::Pipe => "`|`".to_owned(),
        Tok::Comma => "`,`".to_owned(),
        Tok::LParen => "`(`".to_owned(),
        Tok::RParen => "`)`".to_owned(),
        Tok::LBrace => "`{`".to_owned(),
        Tok::RBrace => "`}`".to_owned(),
        Tok::Plus => "`+`".to_owned(),
        Tok::Minus => "`-`".to_owned(),
        Tok::Star => "`*`".to_owned(),
        Tok::Slash => "`/`".to_owned(),
        Tok::Cmp(Cmp::Gt) => "`>`".to_owned(),
        Tok::Cmp(Cmp::Ge) => "`>=`".to_owned(),
        Tok::Cmp(Cmp::Lt) => "`<`".to_owned(),
        Tok::Cmp(Cmp::Le) => "`<=`".to_owned(),
        Tok::Eof => "the end of the formula".to_owned(),
    }
}

fn lex(src: &str) -> Result<Vec<(Tok<'_>, usize)>, FormulaError> {
    let b = src.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        let at = i;
        let c = b[i];
        let tok = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'0'..=b'9' => {
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let mut integer = true;
                if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
                    integer = false;
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                    let sign =
                        usize::from(i + 1 < b.len() && (b[i + 1] == b'+' || b[i + 1] == b'-'));
                    if i + 1 + sign < b.len() && b[i + 1 + sign].is_ascii_digit() {
                        integer = false;
                        i += 1 + sign;
                        while i < b.len() && b[i].is_ascii_digit() {
                            i += 1;
                        }
                    }
                }
                if i < b.len() && is_ident(b[i]) {
                    let end = (i..b.len()).find(|&j| !is_ident(b[j])).unwrap_or(b.len());
                    return Err(FormulaError::new(
                        src,
                        i,
                        format!(
                            "unexpected `{}` right after the number `{}`",
                            &src[i..end],
                            &src[at..i]
                        ),
                    ));
                }
                let value = src[at..i].parse::<f64>().map_err(|_| {
                    FormulaError::new(src, at, format!("malformed number `{}`", &src[at..i]))
                })?;
                Tok::Num(value, integer)
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < b.len() && is_ident(b[i]) {
                    i += 1;
                }
                match &src[at..i] {
                    "if" => Tok::If,
                    "else" => Tok::Else,
                    s => Tok::Ident(s),
                }
            }
            _ => {
                i += 1;
                match c {
                    b'|' => Tok::Pipe,
                    b',' => Tok::Comma,
                    b'(' => Tok::LParen,
                    b')' => Tok::RParen,
                    b'{' => Tok::LBrace,
                    b'}' => Tok::RBrace,
                    b'+' => Tok::Plus,
                    b'-' => Tok::Minus,
                    b'*' => Tok::Star,
                    b'/' => Tok::Slash,
                    b'>' | b'<' => {
                        let eq = i < b.len() && b[i] == b'=';
                        i += usize::from(eq);
                        Tok::Cmp(match (c, eq) {
                            (b'>', false) => Cmp::Gt,
                            (b'>', true) => Cmp::Ge,
                            (_, false) => Cmp::Lt,
                            (_, true) => Cmp::Le,
                        })
                    }
                    b'^' => {
                        return Err(FormulaError::new(
                            src,
                            at,
                            "`^` is not an operator: write a power as `powi(a, k)`",
                        ))
                    }
                    b'.' => {
                        return Err(FormulaError::new(
                            src,
                            at,
                            "unexpected `.`: numbers are written `2.0` and functions are called as `exp(x)`",
                        ))
                    }
                    b'=' | b'!' => {
                        return Err(FormulaError::new(
                            src,
                            at,
                            format!(
                                "unexpected `{}`: the comparisons are `>`, `>=`, `<` and `<=`",
                                c as char
                            ),
                        ))
                    }
                    _ => {
                        let ch = src[at..].chars().next().unwrap_or('?');
                        return Err(FormulaError::new(
                            src,
                            at,
                            format!("unexpected character `{ch}`"),
                        ));
                    }
                }
            }
        };
        toks.push((tok, at));
    }
    toks.push((Tok::Eof, src.len()));
    Ok(toks)
}

// ------------------------------------------------------------------------------------------------
// Parser: text to a syntax tree

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Clone, Debug)]
struct Expr<'s> {
    /// The byte offset of the expression's first token (of the name, for a call).
    at: usize,
    kind: Kind<'s>,
}

#[derive(Clone, Debug)]
enum Kind<'s> {
    Num(f64, bool),
    Var(&'s str),
    Neg(Box<Expr<'s>>),
    Bin(BinOp, Box<Expr<'s>>, Box<Expr<'s>>),
    Call(&'s str, Vec<Expr<'s>>),
    If {
        cmp: Cmp,
        a: Box<Expr<'s>>,
        b: Box<Expr<'s>>,
        then: Box<Expr<'s>>,
        els: Box<Expr<'s>>,
    },
}

/// `|params| body`.
struct Closure<'s> {
    params: Vec<(&'s str, usize)>,
    /// The offset of the `|` that opens the closure.
    at: usize,
    body: Expr<'s>,
}

/// Nesting deeper than this (parentheses, calls, unary minus, operators in a chain) is an error
/// rather than a stack overflow.
const MAX_DEPTH: usize = 200;

struct Parser<'s> {
    src: &'s str,
    toks: Vec<(Tok<'s>, usize)>,
    pos: usize,
    depth: usize,
}

type PResult<T> = Result<T, FormulaError>;

impl<'s> Parser<'s> {
    fn new(src: &'s str) -> PResult<Self> {
        Ok(Self {
            src,
            toks: lex(src)?,
            pos: 0,
            depth: 0,
        })
    }

    fn peek(&self) -> Tok<'s> {
        self.toks[self.pos].0
    }

    fn at(&self) -> usize {
        self.toks[self.pos].1
    }

    fn bump(&mut self) -> (Tok<'s>, usize) {
        let t = self.toks[self.pos];
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn error(&self, at: usize, message: impl Into<String>) -> FormulaError {
        FormulaError::new(self.src, at, message)
    }

    fn expect(&mut self, tok: Tok<'s>, what: &str) -> PResult<usize> {
        if self.peek() == tok {
            Ok(self.bump().1)
        } else {
            Err(self.error(
                self.at(),
                format!("expected {what}, found {}", describe(self.peek())),
            ))
        }
    }

    fn closure(&mut self) -> PResult<Closure<'s>> {
        let at = self.at();
        if self.peek() != Tok::Pipe {
            return Err(self.error(
                at,
                "a formula starts with its arguments: `|x| ...` for an activation, `|yhat, y| ...` for a loss",
            ));
        }
        self.bump();
        let mut params = Vec::new();
        loop {
            match self.bump() {
                (Tok::Pipe, _) if params.is_empty() => break,
                (Tok::Ident(name), p) => params.push((name, p)),
                (t, p) => {
                    return Err(self.error(
                        p,
                        format!("expected an argument name, found {}", describe(t)),
                    ))
                }
            }
            match self.bump() {
                (Tok::Comma, _) => {}
                (Tok::Pipe, _) => break,
                (t, p) => {
                    return Err(self.error(p, format!("expected `,` or `|`, found {}", describe(t))))
                }
            }
        }
        let body = self.expr()?;
        if self.peek() != Tok::Eof {
            return Err(self.error(
                self.at(),
                format!(
                    "expected an operator or the end of the formula, found {}",
                    describe(self.peek())
                ),
            ));
        }
        Ok(Closure { params, at, body })
    }

    /// An expression (a comparison is only allowed as the condition of an `if`).
    fn expr(&mut self) -> PResult<Expr<'s>> {
        let e = self.additive()?;
        if let Tok::Cmp(_) = self.peek() {
            return Err(self.error(
                self.at(),
                "a comparison is only allowed as the condition of an `if`: `if a > b { c } else { d }`",
            ));
        }
        Ok(e)
    }

    /// One level deeper (a chain `a + b + c` nests to the left, one level per operator).
    fn deeper(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(self.at(), "the formula is nested too deeply"));
        }
        Ok(())
    }

    fn additive(&mut self) -> PResult<Expr<'s>> {
        let depth = self.depth;
        let mut e = self.multiplicative()?;
        loop {
            let op = match self.peek() {
                Tok::Plus => BinOp::Add,
                Tok::Minus => BinOp::Sub,
                _ => {
                    self.depth = depth;
                    return Ok(e);
                }
            };
            self.bump();
            self.deeper()?;
            let rhs = self.multiplicative()?;
            e = Expr {
                at: e.at,
                kind: Kind::Bin(op, Box::new(e), Box::new(rhs)),
            };
        }
    }

    fn multiplicative(&mut self) -> PResult<Expr<'s>> {
        let depth = self.depth;
        let mut e = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Star => BinOp::Mul,
                Tok::Slash => BinOp::Div,
                _ => {
                    self.depth = depth;
                    return Ok(e);
                }
            };
            self.bump();
            self.deeper()?;
            let rhs = self.unary()?;
            e = Expr {
                at: e.at,
                kind: Kind::Bin(op, Box::new(e), Box::new(rhs)),
            };
        }
    }

    fn unary(&mut self) -> PResult<Expr<'s>> {
        self.deeper()?;
        let e = if self.peek() == Tok::Minus {
            let at = self.bump().1;
            let a = self.unary()?;
            Expr {
                at,
                kind: Kind::Neg(Box::new(a)),
            }
        } else {
            self.primary()?
        };
        self.depth -= 1;
        Ok(e)
    }

    fn primary(&mut self) -> PResult<Expr<'s>> {
        let (tok, at) = (self.peek(), self.at());
        let kind = match tok {
            Tok::Num(v, integer) => {
                self.bump();
                Kind::Num(v, integer)
            }
            Tok::Ident(name) => {
                self.bump();
                if self.peek() == Tok::LParen {
                    self.bump();
                    let mut args = Vec::new();
                    while self.peek() != Tok::RParen {
                        args.push(self.expr()?);
                        if self.peek() == Tok::Comma {
                            self.bump();
                        } else if self.peek() != Tok::RParen {
                            return Err(self.error(
                                self.at(),
                                format!(
                                    "expected `,` or `)` in the arguments of `{name}`, found {}",
                                    describe(self.peek())
                                ),
                            ));
                        }
                    }
                    self.bump();
                    Kind::Call(name, args)
                } else {
                    Kind::Var(name)
                }
            }
            Tok::LParen => {
                self.bump();
                let e = self.expr()?;
                self.expect(Tok::RParen, "`)`")?;
                return Ok(Expr { at, kind: e.kind });
            }
            Tok::LBrace => return self.block(),
            Tok::If => return self.if_expr(),
            t => {
                return Err(self.error(at, format!("expected an expression, found {}", describe(t))))
            }
        };
        Ok(Expr { at, kind })
    }

    fn block(&mut self) -> PResult<Expr<'s>> {
        let at = self.expect(Tok::LBrace, "`{`")?;
        let e = self.expr()?;
        self.expect(Tok::RBrace, "`}`")?;
        Ok(Expr { at, kind: e.kind })
    }

    fn if_expr(&mut self) -> PResult<Expr<'s>> {
        let at = self.expect(Tok::If, "`if`")?;
        let a = self.additive()?;
        let cmp = match self.peek() {
            Tok::Cmp(c) => c,
            t => {
                return Err(self.error(
                    self.at(),
                    format!(
                        "expected a comparison (`>`, `>=`, `<` or `<=`) in the condition of `if`, found {}",
                        describe(t)
                    ),
                ))
            }
        };
        self.bump();
        let b = self.additive()?;
        if self.peek() != Tok::LBrace {
            return Err(self.error(
                self.at(),
                format!(
                    "expected `{{` after the condition of `if`, found {}",
                    describe(self.peek())
                ),
            ));
        }
        let then = self.block()?;
        if self.peek() != Tok::Else {
            return Err(self.error(
                self.at(),
                "an `if` needs an `else` branch: `if a > b { c } else { d }`",
            ));
        }
        self.bump();
        let els = if self.peek() == Tok::If {
            self.if_expr()?
        } else {
            self.block()?
        };
        Ok(Expr {
            at,
            kind: Kind::If {
                cmp,
                a: Box::new(a),
                b: Box::new(b),
                then: Box::new(then),
                els: Box::new(els),
            },
        })
    }
}

// ------------------------------------------------------------------------------------------------
// The program: a syntax tree lowered to a list of operations

type Id = u32;

/// A function of one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fun {
    Exp,
    Ln,
    Sqrt,
    Abs,
    Cosh,
    Sigmoid,
    Tanh,
    Softplus,
    Relu,
    /// `ln(cosh(a))` as `|a| + softplus(-2|a|) - ln 2`.
    LnCosh,
    /// `ln(sigmoid(a))` as `-softplus(-a)`.
    LnSigmoid,
    /// `ln(1 - sigmoid(a))` as `-softplus(a)`.
    Ln1mSigmoid,
}

const FUNCTIONS: [(&str, Fun); 9] = [
    ("exp", Fun::Exp),
    ("ln", Fun::Ln),
    ("sqrt", Fun::Sqrt),
    ("abs", Fun::Abs),
    ("cosh", Fun::Cosh),
    ("sigmoid", Fun::Sigmoid),
    ("tanh", Fun::Tanh),
    ("softplus", Fun::Softplus),
    ("relu", Fun::Relu),
];

/// The other functions of the language, for "did you mean" and "is a function" messages.
const OTHER_FUNCTIONS: [&str; 6] = ["powi", "min", "max", "sum", "mean", "softmax"];

fn is_function(name: &str) -> bool {
    FUNCTIONS.iter().any(|(n, _)| *n == name)
        || OTHER_FUNCTIONS.contains(&name)
        || catalog::activation(name).is_some()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Const(f64),
    /// The closure's argument: `x` of an activation; `yhat` (0) or `y` (1) of a loss.
    Arg(u8),
    /// The number of outputs.
    N,
    Neg(Id),
    Add(Id, Id),
    Sub(Id, Id),
    Mul(Id, Id),
    Div(Id, Id),
    Min(Id, Id),
    Max(Id, Id),
    Powi(Id, i32),
    F(Fun, Id),
    /// `if cmp(a, b) { then } else { else }`.
    Select(Cmp, Id, Id, Id, Id),
    Sum(Id),
    Mean(Id),
    /// The largest element of a vector.
    MaxAll(Id),
}

impl Op {
    /// The operands (up to four) and how many there are.
    fn operands(self) -> ([Id; 4], usize) {
        match self {
            Op::Const(_) | Op::Arg(_) | Op::N => ([0; 4], 0),
            Op::Neg(a)
            | Op::Powi(a, _)
            | Op::F(_, a)
            | Op::Sum(a)
            | Op::Mean(a)
            | Op::MaxAll(a) => ([a, 0, 0, 0], 1),
            Op::Add(a, b)
            | Op::Sub(a, b)
            | Op::Mul(a, b)
            | Op::Div(a, b)
            | Op::Min(a, b)
            | Op::Max(a, b) => ([a, b, 0, 0], 2),
            Op::Select(_, a, b, t, e) => ([a, b, t, e], 4),
        }
    }

    fn map(self, f: impl Fn(Id) -> Id) -> Op {
        match self {
            Op::Const(_) | Op::Arg(_) | Op::N => self,
            Op::Neg(a) => Op::Neg(f(a)),
            Op::Add(a, b) => Op::Add(f(a), f(b)),
            Op::Sub(a, b) => Op::Sub(f(a), f(b)),
            Op::Mul(a, b) => Op::Mul(f(a), f(b)),
            Op::Div(a, b) => Op::Div(f(a), f(b)),
            Op::Min(a, b) => Op::Min(f(a), f(b)),
            Op::Max(a, b) => Op::Max(f(a), f(b)),
            Op::Powi(a, k) => Op::Powi(f(a), k),
            Op::F(g, a) => Op::F(g, f(a)),
            Op::Select(c, a, b, t, e) => Op::Select(c, f(a), f(b), f(t), f(e)),
            Op::Sum(a) => Op::Sum(f(a)),
            Op::Mean(a) => Op::Mean(f(a)),
            Op::MaxAll(a) => Op::MaxAll(f(a)),
        }
    }

    /// The same operation, with constants compared bit for bit (so `-0.0` stays itself).
    fn same(self, other: Op) -> bool {
        match (self, other) {
            (Op::Const(a), Op::Const(b)) => a.to_bits() == b.to_bits(),
            _ => self == other,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Node {
    op: Op,
    /// A vector over the outputs (in a loss), else one number.
    vector: bool,
}

/// Operations in evaluation order (every operand before its uses); the last one is the result.
#[derive(Clone, Debug, PartialEq)]
struct Program {
    nodes: Vec<Node>,
}

/// `x^k` by repeated squaring (`1 / x^-k` for negative `k`).
#[inline]
fn powi<T: Scalar>(x: T, k: i32) -> T {
    let mut base = x;
    let mut e = k.unsigned_abs();
    let mut acc = T::ONE;
    let mut first = true;
    while e > 0 {
        if e & 1 == 1 {
            acc = if first { base } else { acc * base };
            first = false;
        }
        e >>= 1;
        if e > 0 {
            base = base * base;
        }
    }
    if k < 0 {
        T::ONE / acc
    } else {
        acc
    }
}

#[inline]
fn fun_value<T: Scalar>(f: Fun, a: T) -> T {
    match f {
        Fun::Exp => a.exp(),
        Fun::Ln => a.ln(),
        Fun::Sqrt => a.sqrt(),
        Fun::Abs => a.abs(),
        Fun::Cosh => a.cosh(),
        Fun::Sigmoid => a.sigmoid(),
        Fun::Tanh => a.tanh(),
        Fun::Softplus => a.softplus(),
        Fun::Relu => a.relu(),
        Fun::LnCosh => {
            let d = a.abs();
            d + (T::from_f64(-2.0) * d).softplus() - T::from_f64(core::f64::consts::LN_2)
        }
        Fun::LnSigmoid => -(-a).softplus(),
        Fun::Ln1mSigmoid => -a.softplus(),
    }
}

/// The value and the derivative of a function of one argument.
#[inline]
fn fun_dual<T: Scalar>(f: Fun, a: T) -> (T, T) {
    let v = fun_value(f, a);
    let d = match f {
        Fun::Exp => v,
        Fun::Ln => T::ONE / a,
        Fun::Sqrt => T::from_f64(0.5) / v,
        Fun::Abs => a.sign(),
        // sinh(a), accurate near 0 and infinite (not NaN) where cosh is.
        Fun::Cosh => a.tanh() * v,
        Fun::Sigmoid => v * (T::ONE - v),
        Fun::Tanh => T::ONE - v * v,
        Fun::Softplus => a.sigmoid(),
        Fun::Relu => a.step(),
        Fun::LnCosh => a.tanh(),
        Fun::LnSigmoid => (-a).sigmoid(),
        Fun::Ln1mSigmoid => -a.sigmoid(),
    };
    (v, d)
}

/// Whether `max(a, b)` is `a`: on ties, and when `b` is NaN (as [`Scalar::max`]).
#[inline]
fn max_is_first<T: Scalar>(a: T, b: T) -> bool {
    a >= b || b.partial_cmp(&b).is_none()
}

/// Whether `min(a, b)` is `a`.
#[inline]
fn min_is_first<T: Scalar>(a: T, b: T) -> bool {
    a <= b || b.partial_cmp(&b).is_none()
}

/// The value of an elementwise operation from its operands' values.
#[inline]
fn value<T: Scalar>(op: Op, v: impl Fn(Id) -> T) -> T {
    match op {
        Op::Const(c) => T::from_f64(c),
        Op::Neg(a) => -v(a),
        Op::Add(a, b) => v(a) + v(b),
        Op::Sub(a, b) => v(a) - v(b),
        Op::Mul(a, b) => v(a) * v(b),
        Op::Div(a, b) => v(a) / v(b),
        Op::Min(a, b) => {
            let (x, y) = (v(a), v(b));
            if min_is_first(x, y) {
                x
            } else {
                y
            }
        }
        Op::Max(a, b) => {
            let (x, y) = (v(a), v(b));
            if max_is_first(x, y) {
                x
            } else {
                y
            }
        }
        Op::Powi(a, k) => powi(v(a), k),
        Op::F(f, a) => fun_value(f, v(a)),
        Op::Select(c, a, b, t, e) => {
            if c.holds(v(a), v(b)) {
                v(t)
            } else {
                v(e)
            }
        }
        Op::Arg(_) | Op::N | Op::Sum(_) | Op::Mean(_) | Op::MaxAll(_) => {
            unreachable!("not elementwise: {op:?}")
        }
    }
}

/// The partial derivatives of an elementwise operation with respect to (up to two) operands.
#[derive(Clone, Copy)]
struct Partials<T> {
    len: usize,
    d: [(Id, T); 2],
}

impl<T: Scalar> Partials<T> {
    fn one(a: Id, d: T) -> Self {
        Self {
            len: 1,
            d: [(a, d), (0, T::ZERO)],
        }
    }
    fn two(a: Id, da: T, b: Id, db: T) -> Self {
        Self {
            len: 2,
            d: [(a, da), (b, db)],
        }
    }
    fn iter(&self) -> impl Iterator<Item = (Id, T)> + '_ {
        self.d[..self.len].iter().copied()
    }
}

/// The value of an elementwise operation and its partial derivatives.
#[inline]
fn value_and_partials<T: Scalar>(op: Op, v: impl Fn(Id) -> T) -> (T, Partials<T>) {
    match op {
        Op::Const(c) => (
            T::from_f64(c),
            Partials {
                len: 0,
                d: [(0, T::ZERO); 2],
            },
        ),
        Op::Neg(a) => (-v(a), Partials::one(a, -T::ONE)),
        Op::Add(a, b) => (v(a) + v(b), Partials::two(a, T::ONE, b, T::ONE)),
        Op::Sub(a, b) => (v(a) - v(b), Partials::two(a, T::ONE, b, -T::ONE)),
        Op::Mul(a, b) => {
            let (x, y) = (v(a), v(b));
            (x * y, Partials::two(a, y, b, x))
        }
        Op::Div(a, b) => {
            let (x, y) = (v(a), v(b));
            let r = x / y;
            (r, Partials::two(a, T::ONE / y, b, -r / y))
        }
        Op::Min(a, b) => {
            let (x, y) = (v(a), v(b));
            if min_is_first(x, y) {
                (x, Partials::one(a, T::ONE))
            } else {
                (y, Partials::one(b, T::ONE))
            }
        }
        Op::Max(a, b) => {
            let (x, y) = (v(a), v(b));
            if max_is_first(x, y) {
                (x, Partials::one(a, T::ONE))
            } else {
                (y, Partials::one(b, T::ONE))
            }
        }
        Op::Powi(a, k) => {
            let x = v(a);
            let d = if k == 0 {
                T::ZERO
            } else {
                T::from_f64(f64::from(k)) * powi(x, k - 1)
            };
            (powi(x, k), Partials::one(a, d))
        }
        Op::F(f, a) => {
            let (y, d) = fun_dual(f, v(a));
            (y, Partials::one(a, d))
        }
        Op::Select(c, a, b, t, e) => {
            let taken = if c.holds(v(a), v(b)) { t } else { e };
            (v(taken), Partials::one(taken, T::ONE))
        }
        Op::Arg(_) | Op::N | Op::Sum(_) | Op::Mean(_) | Op::MaxAll(_) => {
            unreachable!("not elementwise: {op:?}")
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Lowering: syntax tree to program, with names resolved and shapes checked

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Activation,
    Loss,
}

/// Names in scope: the closure's arguments and the hyperparameters, bound to nodes.
type Env<'a> = Vec<(&'a str, Id)>;

/// Catalog formulas call each other at most this deep (`selu` calls `elu`).
const MAX_INLINE: usize = 8;

struct Lower<'s> {
    /// The formula whose offsets errors refer to.
    src: &'s str,
    mode: Mode,
    nodes: Vec<Node>,
    inline_depth: usize,
}

impl<'s> Lower<'s> {
    fn error(&self, at: usize, message: impl Into<String>) -> FormulaError {
        FormulaError::new(self.src, at, message)
    }

    fn konst(&mut self, v: f64) -> Id {
        self.push(Op::Const(v))
    }

    fn constant(&self, id: Id) -> Option<f64> {
        match self.nodes[id as usize].op {
            Op::Const(c) => Some(c),
            _ => None,
        }
    }

    fn push(&mut self, op: Op) -> Id {
        if let Some(i) = self.nodes.iter().position(|n| n.op.same(op)) {
            return i as Id;
        }
        let vector = match op {
            Op::Arg(_) => self.mode == Mode::Loss,
            Op::Const(_) | Op::N | Op::Sum(_) | Op::Mean(_) | Op::MaxAll(_) => false,
            _ => {
                let (ids, len) = op.operands();
                ids[..len].iter().any(|&o| self.nodes[o as usize].vector)
            }
        };
        self.nodes.push(Node { op, vector });
        (self.nodes.len() - 1) as Id
    }

    /// Adds an operation: the stable form of a known pattern, folded if its operands are
    /// constants, shared if it already exists.
    fn add(&mut self, op: Op) -> Id {
        let op = match op {
            Op::F(Fun::Ln, a) => match self.nodes[a as usize].op {
                Op::F(Fun::Cosh, d) => Op::F(Fun::LnCosh, d),
                Op::F(Fun::Sigmoid, z) => Op::F(Fun::LnSigmoid, z),
                Op::Sub(one, s) if self.constant(one) == Some(1.0) => {
                    match self.nodes[s as usize].op {
                        Op::F(Fun::Sigmoid, z) => Op::F(Fun::Ln1mSigmoid, z),
                        _ => op,
                    }
                }
                _ => op,
            },
            _ => op,
        };
        let foldable = !matches!(
            op,
            Op::Arg(_) | Op::N | Op::Sum(_) | Op::Mean(_) | Op::MaxAll(_) | Op::Const(_)
        );
        if foldable {
            let (ids, len) = op.operands();
            if ids[..len].iter().all(|&o| self.constant(o).is_some()) {
                let v = value::<f64>(op, |o| self.constant(o).unwrap_or(f64::NAN));
                return self.konst(v);
            }
        }
        self.push(op)
    }

    fn lower(&mut self, e: &Expr<'_>, env: &Env<'_>) -> PResult<Id> {
        match &e.kind {
            Kind::Num(v, _) => Ok(self.konst(*v)),
            Kind::Var(name) => self.var(name, e.at, env),
            Kind::Neg(a) => {
                let a = self.lower(a, env)?;
                Ok(self.add(Op::Neg(a)))
            }
            Kind::Bin(op, a, b) => {
                let a = self.lower(a, env)?;
                let b = self.lower(b, env)?;
                Ok(self.add(match op {
                    BinOp::Add => Op::Add(a, b),
                    BinOp::Sub => Op::Sub(a, b),
                    BinOp::Mul => Op::Mul(a, b),
                    BinOp::Div => Op::Div(a, b),
                }))
            }
            Kind::If {
                cmp,
                a,
                b,
                then,
                els,
            } => {
                let a = self.lower(a, env)?;
                let b = self.lower(b, env)?;
                let t = self.lower(then, env)?;
                let f = self.lower(els, env)?;
                Ok(self.add(Op::Select(*cmp, a, b, t, f)))
            }
            Kind::Call(name, args) => self.call(name, e.at, args, env),
        }
    }

    fn var(&mut self, name: &str, at: usize, env: &Env<'_>) -> PResult<Id> {
        if let Some(&(_, id)) = env.iter().rev().find(|(n, _)| *n == name) {
            return Ok(id);
        }
        match name {
            "n" if self.mode == Mode::Loss => Ok(self.add(Op::N)),
            "pi" => Ok(self.konst(core::f64::consts::PI)),
            "e" => Ok(self.konst(core::f64::consts::E)),
            "n" => Err(self.error(at, "`n`, the number of outputs, is only defined in a loss")),
            _ if is_function(name) => Err(self.error(
                at,
                format!("`{name}` is a function: call it as `{name}(...)`"),
            )),
            _ => {
                let mut candidates: Vec<&str> = env.iter().map(|(n, _)| *n).collect();
                if self.mode == Mode::Loss {
                    candidates.push("n");
                }
                candidates.extend(["pi", "e"]);
                Err(self.error(
                    at,
                    format!(
                        "unknown variable `{name}`{}",
                        did_you_mean(closest(name, candidates))
                    ),
                ))
            }
        }
    }

    fn arity(&self, name: &str, at: usize, got: usize, want: usize, args: &str) -> PResult<()> {
        if got == want {
            return Ok(());
        }
        let s = if want == 1 { "" } else { "s" };
        Err(self.error(
            at,
            format!("`{name}` takes {want} argument{s} ({args}), got {got}"),
        ))
    }

    fn call(&mut self, name: &str, at: usize, args: &[Expr<'_>], env: &Env<'_>) -> PResult<Id> {
        if let Some(&(_, f)) = FUNCTIONS.iter().find(|(n, _)| *n == name) {
            self.arity(name, at, args.len(), 1, "`a`")?;
            let a = self.lower(&args[0], env)?;
            return Ok(self.add(Op::F(f, a)));
        }
        match name {
            "powi" => {
                self.arity(name, at, args.len(), 2, "`a`, `k`")?;
                let a = self.lower(&args[0], env)?;
                let k = self.integer(&args[1])?;
                Ok(self.add(Op::Powi(a, k)))
            }
            "min" => {
                self.arity(name, at, args.len(), 2, "`a`, `b`")?;
                let a = self.lower(&args[0], env)?;
                let b = self.lower(&args[1], env)?;
                Ok(self.add(Op::Min(a, b)))
            }
            "max" if args.len() == 2 => {
                let a = self.lower(&args[0], env)?;
                let b = self.lower(&args[1], env)?;
                Ok(self.add(Op::Max(a, b)))
            }
            "sum" | "mean" | "max" => {
                if self.mode == Mode::Activation {
                    return Err(self.error(
                        at,
                        format!(
                            "`{name}(v)` reduces over the outputs, which only a loss can do: an activation is elementwise in `x`"
                        ),
                    ));
                }
                if name == "max" && args.len() != 1 {
                    return Err(self.error(
                        at,
                        format!(
                            "`max` takes 1 argument (a vector, reduced to its largest element) or 2 (elementwise), got {}",
                            args.len()
                        ),
                    ));
                }
                self.arity(name, at, args.len(), 1, "a vector over the outputs")?;
                let a = self.lower(&args[0], env)?;
                if self.nodes[a as usize].vector {
                    return Ok(self.add(match name {
                        "sum" => Op::Sum(a),
                        "mean" => Op::Mean(a),
                        _ => Op::MaxAll(a),
                    }));
                }
                if self.reduced(a) {
                    return Err(self.error(
                        args[0].at,
                        format!(
                            "`{name}` of a number that is already reduced over the outputs: its argument must be a vector"
                        ),
                    ));
                }
                // A number the same for every output (a constant, a hyperparameter, `n`): the
                // reduction of it repeated over the outputs, as the compiler reads it.
                Ok(match name {
                    "sum" => {
                        let n = self.add(Op::N);
                        self.add(Op::Mul(a, n))
                    }
                    _ => a,
                })
            }
            "softmax" => Err(self.error(
                at,
                "`softmax` is row-wise over a layer's outputs: it can only be a whole activation, `|x| softmax(x)`",
            )),
            _ => match catalog::activation(name) {
                Some(entry) => self.inline(entry, name, at, args, env),
                None => {
                    let mut candidates: Vec<&str> = FUNCTIONS.iter().map(|(n, _)| *n).collect();
                    candidates.extend(OTHER_FUNCTIONS);
                    for a in catalog::ACTIVATIONS {
                        candidates.push(a.name);
                        candidates.extend(a.aliases);
                    }
                    Err(self.error(
                        at,
                        format!(
                            "unknown function `{name}`{}",
                            did_you_mean(closest(name, candidates))
                        ),
                    ))
                }
            },
        }
    }

    /// The exponent of `powi`: an integer literal, possibly negated.
    fn integer(&self, e: &Expr<'_>) -> PResult<i32> {
        let (v, negative) = match &e.kind {
            Kind::Num(v, true) => (*v, false),
            Kind::Neg(inner) => match inner.kind {
                Kind::Num(v, true) => (v, true),
                _ => (f64::NAN, false),
            },
            _ => (f64::NAN, false),
        };
        let v = if negative { -v } else { v };
        if v.is_finite() && v.abs() <= f64::from(i32::MAX) {
            Ok(v as i32)
        } else {
            Err(self.error(
                e.at,
                "the exponent of `powi` must be an integer literal, such as `2` or `-1`",
            ))
        }
    }

    /// Whether a node depends on a reduction (`sum`, `mean`, `max(v)`).
    fn reduced(&self, id: Id) -> bool {
        // In order (operands come first), so that shared nodes are visited once.
        let mut r = vec![false; id as usize + 1];
        for k in 0..r.len() {
            let op = self.nodes[k].op;
            let (ids, len) = op.operands();
            r[k] = matches!(op, Op::Sum(_) | Op::Mean(_) | Op::MaxAll(_))
                || ids[..len].iter().any(|&o| r[o as usize]);
        }
        r[id as usize]
    }

    /// A call of a catalog activation: its formula with `x` bound to the first argument and its
    /// hyperparameters to the others (or their defaults).
    fn inline(
        &mut self,
        entry: &'static ActivationEntry,
        name: &str,
        at: usize,
        args: &[Expr<'_>],
        env: &Env<'_>,
    ) -> PResult<Id> {
        let max = 1 + entry.params.len();
        let min = 1 + entry
            .params
            .iter()
            .rposition(|p| p.default.is_none())
            .map_or(0, |i| i + 1);
        if args.len() < min || args.len() > max {
            let names: Vec<String> = core::iter::once("`x`".to_owned())
                .chain(entry.params.iter().map(|p| format!("`{}`", p.name)))
                .collect();
            let count = if min == max {
                format!("{min}")
            } else if max == min + 1 {
                format!("{min} or {max}")
            } else {
                format!("{min} to {max}")
            };
            let s = if max == 1 { "" } else { "s" };
            return Err(self.error(
                at,
                format!(
                    "`{name}` takes {count} argument{s} ({}), got {}",
                    names.join(", "),
                    args.len()
                ),
            ));
        }
        if self.inline_depth >= MAX_INLINE {
            return Err(self.error(at, format!("`{name}`: catalog formulas nested too deeply")));
        }
        let x = self.lower(&args[0], env)?;
        let mut inner: Env<'static> = Vec::new();
        let mut values = Vec::with_capacity(entry.params.len());
        for (i, p) in entry.params.iter().enumerate() {
            let v = match args.get(i + 1) {
                Some(arg) => {
                    let id = self.lower(arg, env)?;
                    let Some(v) = self.constant(id) else {
                        return Err(self.error(
                            arg.at,
                            format!(
                                "the `{}` of `{name}` must be a constant (numbers and hyperparameters)",
                                p.name
                            ),
                        ));
                    };
                    if !p.allows(v) {
                        let ([lo, hi], min, max) = p.interval();
                        return Err(self.error(
                            arg.at,
                            format!(
                                "the `{}` of `{name}` must be in {lo}{min}, {max}{hi}, got {v}",
                                p.name
                            ),
                        ));
                    }
                    v
                }
                None => p.default.unwrap_or(f64::NAN),
            };
            values.push((p.name, v));
        }
        let closure = Parser::new(entry.formula)
            .and_then(|mut p| p.closure())
            .map_err(|e| self.error(at, format!("in the formula of `{name}`: {}", e.message)))?;
        if let Some(&(xname, _)) = closure.params.first() {
            inner.push((xname, x));
        }
        for (pname, v) in values {
            let id = self.konst(v);
            inner.push((pname, id));
        }
        let outer_src = self.src;
        self.src = entry.formula;
        self.inline_depth += 1;
        let r = self.lower(&closure.body, &inner);
        self.inline_depth -= 1;
        self.src = outer_src;
        r.map_err(|e| self.error(at, format!("in the formula of `{name}`: {}", e.message)))
    }

    /// The program computing `root`: only the nodes it needs, in order.
    fn finish(self, root: Id) -> Program {
        let mut live = vec![false; self.nodes.len()];
        live[root as usize] = true;
        for k in (0..=root as usize).rev() {
            if live[k] {
                let (ids, len) = self.nodes[k].op.operands();
                for &o in &ids[..len] {
                    live[o as usize] = true;
                }
            }
        }
        let mut new_id = vec![0; self.nodes.len()];
        let mut nodes = Vec::new();
        for (k, node) in self.nodes.iter().enumerate().take(root as usize + 1) {
            if live[k] {
                new_id[k] = nodes.len() as Id;
                nodes.push(Node {
                    op: node.op.map(|o| new_id[o as usize]),
                    vector: node.vector,
                });
            }
        }
        Program { nodes }
    }
}

/// Parses `src` as an activation or a loss and lowers its body; `true` for `|x| softmax(x)`.
fn compile(src: &str, params: &[(&str, f64)], mode: Mode) -> PResult<(Program, bool)> {
    let mut parser = Parser::new(src)?;
    let closure = parser.closure()?;
    let (want, example) = match mode {
        Mode::Activation => (1, "an activation takes one argument, as in `|x| ...`"),
        Mode::Loss => (2, "a loss takes two arguments, as in `|yhat, y| ...`"),
    };
    if closure.params.len() != want {
        return Err(FormulaError::new(
            src,
            closure.at,
            format!("{example}, but this formula takes {}", closure.params.len()),
        ));
    }
    for (i, &(name, at)) in closure.params.iter().enumerate() {
        if closure.params[..i].iter().any(|(n, _)| *n == name) {
            return Err(FormulaError::new(
                src,
                at,
                format!("the argument `{name}` is named twice"),
            ));
        }
    }
    let mut lower = Lower {
        src,
        mode,
        nodes: Vec::new(),
        inline_depth: 0,
    };
    // `|x| softmax(x)`: row-wise, the whole formula of the softmax entry.
    if mode == Mode::Activation {
        if let Kind::Call("softmax", args) = &closure.body.kind {
            if let [Expr {
                kind: Kind::Var(v), ..
            }] = args.as_slice()
            {
                if *v == closure.params[0].0 {
                    let x = lower.push(Op::Arg(0));
                    return Ok((lower.finish(x), true));
                }
            }
        }
    }
    let mut env: Env<'_> = Vec::new();
    for &(name, v) in params {
        let id = lower.konst(v);
        env.push((name, id));
    }
    for (i, &(name, _)) in closure.params.iter().enumerate() {
        let id = lower.push(Op::Arg(i as u8));
        env.push((name, id));
    }
    let root = lower.lower(&closure.body, &env)?;
    if lower.nodes[root as usize].vector {
        return Err(FormulaError::new(
            src,
            closure.body.at,
            "a loss must reduce to one number per sample, but this is a vector over the outputs: wrap it in `mean(...)` or `sum(...)`",
        ));
    }
    Ok((lower.finish(root), false))
}

// ------------------------------------------------------------------------------------------------
// Activations

/// A parsed activation formula `|x| ...`, applied elementwise (or, for `|x| softmax(x)`,
/// row-wise).
///
/// Made by [`parse_activation`]; [`Activation::builtin`](crate::interp::Activation::builtin) and
/// [`Activation::formula`](crate::interp::Activation::formula) wrap one for
/// [`InterpNet`](crate::interp::InterpNet).
#[derive(Clone, PartialEq)]
pub struct ActivationFormula {
    source: String,
    params: Vec<(String, f64)>,
    entry: Option<&'static ActivationEntry>,
    init: Init,
    rowwise: bool,
    program: Program,
}

impl fmt::Debug for ActivationFormula {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ActivationFormula");
        if let Some(e) = self.entry {
            d.field("name", &e.name);
        }
        d.field("source", &self.source)
            .field("params", &self.params)
            .finish()
    }
}

/// Parses an activation `|x| ...` over one pre-activation `x`, with the hyperparameters
/// `params` bound by name.
///
/// The formula is checked completely here: every name resolved, every call's arguments counted,
/// no reduction (`sum`, `mean`, `max(v)`, which only a loss has). Its initialization is Glorot
/// unless changed with [`ActivationFormula::with_init`].
///
/// ```
/// use symnet_runtime::formula::parse_activation;
///
/// let f = parse_activation("|x| if x > 0.0 { x } else { alpha * (exp(x) - 1.0) }", &[("alpha", 0.5)])?;
/// assert_eq!(f.eval(2.0_f64), 2.0);
/// let (v, d) = f.eval_with_derivative(-1.0_f64);
/// assert!((v - 0.5 * ((-1.0_f64).exp() - 1.0)).abs() < 1e-15);
/// assert!((d - 0.5 * (-1.0_f64).exp()).abs() < 1e-15);
///
/// // Catalog activations can be called, their hyperparameters after `x`.
/// let g = parse_activation("|x| 2.0 * elu(x, 0.5) + gelu(x)", &[])?;
/// assert!(g.eval(1.0_f32) > 2.8);
///
/// let err = parse_activation("|x| x / sum(x)", &[]).unwrap_err();
/// assert_eq!(err.offset, 8);
/// # Ok::<(), symnet_runtime::formula::FormulaError>(())
/// ```
pub fn parse_activation(
    src: &str,
    params: &[(&str, f64)],
) -> Result<ActivationFormula, FormulaError> {
    let (program, rowwise) = compile(src, params, Mode::Activation)?;
    Ok(ActivationFormula {
        source: src.to_owned(),
        params: params.iter().map(|&(n, v)| (n.to_owned(), v)).collect(),
        entry: None,
        init: Init::Glorot,
        rowwise,
        program,
    })
}

impl ActivationFormula {
    /// The formula's text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The hyperparameters it was parsed with.
    pub fn params(&self) -> &[(String, f64)] {
        &self.params
    }

    /// The catalog entry it is the formula of, if it was made from one (by
    /// [`Activation::builtin`](crate::interp::Activation::builtin)).
    pub fn entry(&self) -> Option<&'static ActivationEntry> {
        self.entry
    }

    /// How layers ending in it are initialized: the catalog entry's rule, Glorot for a user
    /// formula unless set with [`with_init`](Self::with_init).
    pub fn init(&self) -> Init {
        self.init
    }

    /// The same formula with another initialization rule.
    #[must_use]
    pub fn with_init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }

    /// Whether it is row-wise over a layer (`|x| softmax(x)`), not elementwise.
    pub fn is_rowwise(&self) -> bool {
        self.rowwise
    }

    pub(crate) fn with_entry(mut self, entry: &'static ActivationEntry) -> Self {
        self.entry = Some(entry);
        self.init = entry.init;
        self
    }

    #[track_caller]
    fn assert_elementwise(&self) {
        assert!(
            !self.rowwise,
            "`{}` is row-wise: it has no value of one element",
            self.source
        );
    }

    fn value_with<T: Scalar>(&self, x: T, buf: &mut Vec<T>) -> T {
        buf.clear();
        for node in &self.program.nodes {
            let v = match node.op {
                Op::Arg(_) => x,
                op => value(op, |o| buf[o as usize]),
            };
            buf.push(v);
        }
        buf[buf.len() - 1]
    }

    fn dual_with<T: Scalar>(&self, x: T, buf: &mut Vec<(T, T)>) -> (T, T) {
        buf.clear();
        for node in &self.program.nodes {
            let vd = match node.op {
                Op::Arg(_) => (x, T::ONE),
                Op::Const(c) => (T::from_f64(c), T::ZERO),
                op => {
                    let (v, p) = value_and_partials(op, |o| buf[o as usize].0);
                    let mut d = T::ZERO;
                    for (o, po) in p.iter() {
                        // An operand's zero derivative contributes nothing, even where the
                        // partial is infinite (an untaken branch, exp of a huge number).
                        let od = buf[o as usize].1;
                        if od != T::ZERO {
                            d += po * od;
                        }
                    }
                    (v, d)
                }
            };
            buf.push(vd);
        }
        buf[buf.len() - 1]
    }

    /// The activation of one pre-activation `x`.
    ///
    /// # Panics
    /// If the formula is row-wise ([`is_rowwise`](Self::is_rowwise)).
    #[track_caller]
    pub fn eval<T: Scalar>(&self, x: T) -> T {
        self.assert_elementwise();
        self.value_with(x, &mut Vec::with_capacity(self.program.nodes.len()))
    }

    /// The activation of `x` and its derivative `d/dx`.
    ///
    /// # Panics
    /// If the formula is row-wise ([`is_rowwise`](Self::is_rowwise)).
    #[track_caller]
    pub fn eval_with_derivative<T: Scalar>(&self, x: T) -> (T, T) {
        self.assert_elementwise();
        self.dual_with(x, &mut Vec::with_capacity(self.program.nodes.len()))
    }

    /// `a[i] = f(z[i])` (elementwise formulas only).
    pub(crate) fn apply<T: Scalar>(&self, z: &[T], a: &mut [T]) {
        let mut buf = Vec::with_capacity(self.program.nodes.len());
        for (ai, &zi) in a.iter_mut().zip(z) {
            *ai = self.value_with(zi, &mut buf);
        }
    }

    /// `dz[i] = da[i] f'(z[i])` (elementwise formulas only).
    pub(crate) fn backward<T: Scalar>(&self, z: &[T], da: &[T], dz: &mut [T]) {
        let mut buf = Vec::with_capacity(self.program.nodes.len());
        for ((d, &zi), &di) in dz.iter_mut().zip(z).zip(da) {
            *d = di * self.dual_with(zi, &mut buf).1;
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Losses

/// A parsed loss formula `|yhat, y| ...`, reducing the `n` outputs and targets of one sample to
/// one number.
///
/// Made by [`parse_loss`]; [`Loss::builtin`](crate::interp::Loss::builtin) and
/// [`Loss::formula`](crate::interp::Loss::formula) wrap one for
/// [`InterpNet`](crate::interp::InterpNet).
#[derive(Clone, PartialEq)]
pub struct LossFormula {
    source: String,
    params: Vec<(String, f64)>,
    entry: Option<&'static LossEntry>,
    program: Program,
}

impl fmt::Debug for LossFormula {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("LossFormula");
        if let Some(e) = self.entry {
            d.field("name", &e.name);
        }
        d.field("source", &self.source)
            .field("params", &self.params)
            .finish()
    }
}

/// Parses a loss `|yhat, y| ...` over the outputs `yhat` and the targets `y` of one sample,
/// with the hyperparameters `params` bound by name.
///
/// The formula must reduce to one number (with `sum`, `mean` or `max(v)`); see the
/// [module documentation](self) for how vectors and numbers mix.
///
/// ```
/// use symnet_runtime::formula::parse_loss;
///
/// let huber = parse_loss(
///     "|yhat, y| mean(if abs(yhat - y) <= delta { 0.5 * powi(yhat - y, 2) } else { delta * (abs(yhat - y) - 0.5 * delta) })",
///     &[("delta", 1.0)],
/// )?;
/// let mut grad = [0.0; 2];
/// let l = huber.eval_with_gradient(&[0.5, 3.0], &[0.0, 0.0], &mut grad);
/// assert_eq!(l, (0.125 + 2.5) / 2.0);
/// assert_eq!(grad, [0.25, 0.5]);
///
/// // Stable where the compiler is: ln(cosh(d)) does not overflow.
/// let log_cosh = parse_loss("|yhat, y| mean(ln(cosh(yhat - y)))", &[])?;
/// assert!((log_cosh.eval(&[1e4_f64], &[0.0]) - (1e4 - 2f64.ln())).abs() < 1e-9);
///
/// let err = parse_loss("|yhat, y| yhat - y", &[]).unwrap_err();
/// assert!(err.message.starts_with("a loss must reduce to one number"));
/// # Ok::<(), symnet_runtime::formula::FormulaError>(())
/// ```
pub fn parse_loss(src: &str, params: &[(&str, f64)]) -> Result<LossFormula, FormulaError> {
    let (program, _) = compile(src, params, Mode::Loss)?;
    Ok(LossFormula {
        source: src.to_owned(),
        params: params.iter().map(|&(n, v)| (n.to_owned(), v)).collect(),
        entry: None,
        program,
    })
}

impl LossFormula {
    /// The formula's text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The hyperparameters it was parsed with.
    pub fn params(&self) -> &[(String, f64)] {
        &self.params
    }

    /// The catalog entry it is the formula of, if it was made from one (by
    /// [`Loss::builtin`](crate::interp::Loss::builtin)).
    pub fn entry(&self) -> Option<&'static LossEntry> {
        self.entry
    }

    /// What it needs of the output layer: the catalog entry's requirement, [`Output::Any`] for
    /// a user formula.
    pub fn output(&self) -> Output {
        self.entry.map_or(Output::Any, |e| e.output)
    }

    /// What it needs of the targets: the catalog entry's requirement, [`Targets::Real`] for a
    /// user formula.
    pub fn targets(&self) -> Targets {
        self.entry.map_or(Targets::Real, |e| e.targets)
    }

    pub(crate) fn with_entry(mut self, entry: &'static LossEntry) -> Self {
        self.entry = Some(entry);
        self
    }

    /// Every node's value: `vals[offs[k]..]`, `n` values for a vector node, one otherwise.
    fn forward<T: Scalar>(&self, yhat: &[T], y: &[T]) -> (Vec<T>, Vec<usize>) {
        assert_eq!(
            yhat.len(),
            y.len(),
            "loss `{}`: {} outputs but {} targets",
            self.source,
            yhat.len(),
            y.len()
        );
        assert!(!yhat.is_empty(), "loss `{}`: no outputs", self.source);
        let n = yhat.len();
        let nodes = &self.program.nodes;
        let mut offs = Vec::with_capacity(nodes.len());
        let size: usize = nodes.iter().map(|nd| if nd.vector { n } else { 1 }).sum();
        let mut vals: Vec<T> = Vec::with_capacity(size);
        for node in nodes {
            let off = vals.len();
            offs.push(off);
            match node.op {
                Op::Arg(0) => vals.extend_from_slice(yhat),
                Op::Arg(_) => vals.extend_from_slice(y),
                Op::N => vals.push(T::from_f64(n as f64)),
                Op::Sum(a) | Op::Mean(a) => {
                    let o = offs[a as usize];
                    let mut s = T::ZERO;
                    for &v in &vals[o..o + n] {
                        s += v;
                    }
                    if let Op::Mean(_) = node.op {
                        s /= T::from_f64(n as f64);
                    }
                    vals.push(s);
                }
                Op::MaxAll(a) => {
                    let o = offs[a as usize];
                    let m = vals[o + crate::argmax(&vals[o..o + n])];
                    vals.push(m);
                }
                op => {
                    let count = if node.vector { n } else { 1 };
                    for i in 0..count {
                        let v = value(op, |o| {
                            let nd = &nodes[o as usize];
                            vals[offs[o as usize] + if nd.vector { i } else { 0 }]
                        });
                        vals.push(v);
                    }
                }
            }
        }
        (vals, offs)
    }

    /// The loss of one sample with outputs `yhat` and targets `y`.
    ///
    /// # Panics
    /// If the lengths differ or are zero.
    pub fn eval<T: Scalar>(&self, yhat: &[T], y: &[T]) -> T {
        let (vals, _) = self.forward(yhat, y);
        vals[vals.len() - 1]
    }

    /// The loss of one sample, with its gradient with respect to `yhat` written into `grad`
    /// (overwritten, `yhat.len()` long).
    ///
    /// Reverse mode over the formula: one pass forward, one back, O(n · formula size).
    ///
    /// # Panics
    /// If the lengths differ or are zero.
    pub fn eval_with_gradient<T: Scalar>(&self, yhat: &[T], y: &[T], grad: &mut [T]) -> T {
        let (vals, offs) = self.forward(yhat, y);
        assert_eq!(
            grad.len(),
            yhat.len(),
            "loss `{}`: the gradient must have {} values, got {}",
            self.source,
            yhat.len(),
            grad.len()
        );
        let n = yhat.len();
        let nodes = &self.program.nodes;
        let mut adj = vec![T::ZERO; vals.len()];
        let last = vals.len() - 1;
        adj[last] = T::ONE;
        grad.fill(T::ZERO);
        for k in (0..nodes.len()).rev() {
            let node = nodes[k];
            let off = offs[k];
            match node.op {
                Op::Arg(0) => {
                    for (g, &a) in grad.iter_mut().zip(&adj[off..off + n]) {
                        *g += a;
                    }
                }
                Op::Const(_) | Op::N | Op::Arg(_) => {}
                Op::Sum(a) | Op::Mean(a) => {
                    let mut g = adj[off];
                    if let Op::Mean(_) = node.op {
                        g /= T::from_f64(n as f64);
                    }
                    if g != T::ZERO {
                        let o = offs[a as usize];
                        for v in &mut adj[o..o + n] {
                            *v += g;
                        }
                    }
                }
                Op::MaxAll(a) => {
                    let o = offs[a as usize];
                    let i = crate::argmax(&vals[o..o + n]);
                    let g = adj[off];
                    adj[o + i] += g;
                }
                op => {
                    let count = if node.vector { n } else { 1 };
                    let at = |o: Id, i: usize| {
                        offs[o as usize] + if nodes[o as usize].vector { i } else { 0 }
                    };
                    for i in 0..count {
                        let g = adj[off + i];
                        // No adjoint, no contribution (not even 0 * inf from an untaken branch).
                        if g == T::ZERO {
                            continue;
                        }
                        let (_, p) = value_and_partials(op, |o| vals[at(o, i)]);
                        for (o, d) in p.iter() {
                            adj[at(o, i)] += g * d;
                        }
                    }
                }
            }
        }
        vals[last]
    }
}

#[cfg(test)]
mod tests;
