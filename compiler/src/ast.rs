//! The syntax tree of a `network!` declaration, as written, with every token's span kept.
//!
//! Parsing is deliberately permissive: `name: value` entries of any shape are accepted here, and
//! the meaning (is this a layer, a known activation, a sensible width?) is checked in
//! [`crate::check`], which reports every mistake at once instead of stopping at the first.

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{braced, parenthesized, token, Attribute, Ident, LitFloat, LitInt, Token, Visibility};

/// `#[attrs] vis struct Name<scalar> { entries }`.
pub struct NetworkDef {
    /// Doc comments and attributes, forwarded to the generated struct (except `symnet(...)`).
    pub attrs: Vec<Attribute>,
    /// The struct's visibility.
    pub vis: Visibility,
    /// The `struct` keyword (the generated struct is spanned at the user's tokens, so that
    /// rustc's suggestions, such as a missing derive, point at the declaration).
    pub struct_token: Token![struct],
    /// The struct's name.
    pub ident: Ident,
    /// The scalar type between `<` and `>`.
    pub scalar: syn::Type,
    /// The brace token (its span is used for "missing entry" errors).
    pub brace: token::Brace,
    /// The `name: value` entries, in order.
    pub entries: Punctuated<Entry, Token![,]>,
}

/// One `name: value` entry.
pub struct Entry {
    /// The entry's name: `input`, `loss` or a layer name.
    pub name: Ident,
    /// What follows the colon.
    pub value: Value,
}

/// The right-hand side of an entry.
pub enum Value {
    /// A number, as in `input: 2` (a sign, a fraction or a suffix are kept for the checks to
    /// reject).
    Number(Number),
    /// A call-like spec, as in `dense(4) -> relu` or `gaussian_nll(sigma = 1.0)`.
    Spec {
        /// `dense(4)` or `binary_cross_entropy`.
        head: Call,
        /// The activation after `->`, if any.
        activation: Option<ActivationSpec>,
        /// Terms added after `+`, as the weight penalties of `loss: mse + l2(1e-4)`.
        penalties: Vec<Call>,
    },
    /// A formula, as in `loss: |yhat, y| mean(ln(cosh(yhat - y)))`.
    Formula(Box<syn::ExprClosure>),
}

/// What follows `->`: a catalog activation or a formula.
pub enum ActivationSpec {
    /// `relu`, `leaky_relu(0.1)`, `elu(alpha = 0.5)`.
    Call(Call),
    /// `|x| x * sigmoid(x)`.
    Formula(Box<syn::ExprClosure>),
}

impl ActivationSpec {
    /// The span of the whole activation.
    pub fn span(&self) -> Span {
        match self {
            ActivationSpec::Call(c) => c.span(),
            ActivationSpec::Formula(f) => syn::spanned::Spanned::span(&**f),
        }
    }

    /// The span of its name (of the `|` for a formula).
    pub fn name_span(&self) -> Span {
        match self {
            ActivationSpec::Call(c) => c.name.span(),
            ActivationSpec::Formula(f) => f.or1_token.span,
        }
    }
}

/// `name` or `name(arg, ...)`.
pub struct Call {
    /// The function-like name.
    pub name: Ident,
    /// The parenthesized arguments, if there were parentheses.
    pub args: Option<(token::Paren, Punctuated<Arg, Token![,]>)>,
}

/// An argument: a number, or `key = number`.
pub struct Arg {
    /// The key of a named argument.
    pub key: Option<Ident>,
    /// The number.
    pub value: Number,
}

/// A numeric literal, possibly negated (by a `-` token, or inside the literal itself as
/// `macro_rules!` passes a `$x:literal` of `-2`).
#[derive(Clone)]
pub struct Number {
    /// The literal's value (the sign applied; infinite when an integer overflows `f64`).
    pub value: f64,
    /// The integer value, if the literal was a non-negative integer that fits a `u64`.
    pub int: Option<u64>,
    /// Whether the literal was written as an integer.
    pub is_int: bool,
    /// The number as written, sign included and suffix excluded (`-2`, `18446744073709551616`).
    pub text: String,
    /// The literal's type suffix (`u8` in `300u8`), empty if none.
    pub suffix: String,
    /// The span of the whole number, sign included.
    pub span: Span,
}

impl Value {
    /// The span of the whole value, for errors about it.
    pub fn span(&self) -> Span {
        match self {
            Value::Number(n) => n.span,
            Value::Formula(f) => syn::spanned::Spanned::span(&**f),
            Value::Spec {
                head, activation, ..
            } => {
                let s = head.span();
                match activation {
                    Some(a) => s.join(a.span()).unwrap_or(s),
                    None => s,
                }
            }
        }
    }
}

impl Call {
    /// The span of the name and arguments.
    pub fn span(&self) -> Span {
        match &self.args {
            Some((p, _)) => self
                .name
                .span()
                .join(p.span.close())
                .unwrap_or(self.name.span()),
            None => self.name.span(),
        }
    }
}

/// Parses a declaration. Whatever syn would report at the end of the input (the macro call, no
/// token of the user's) is reported at the last token instead: the input is parsed as the
/// content of a group whose delimiters carry that token's span.
pub fn parse(input: TokenStream) -> syn::Result<NetworkDef> {
    let last = input.clone().into_iter().last().map(|t| match t {
        TokenTree::Group(g) => g.span_close(),
        other => other.span(),
    });
    let Some(last) = last else {
        return Err(syn::Error::new(
            Span::call_site(),
            format!("expected a network declaration: `pub struct Name<f32> {BODY}`"),
        ));
    };
    let mut group = Group::new(Delimiter::Parenthesis, input);
    group.set_span(last);
    syn::parse::Parser::parse2(
        |outer: ParseStream| {
            let content;
            parenthesized!(content in outer);
            content.parse::<NetworkDef>()
        },
        TokenStream::from(TokenTree::Group(group)),
    )
}

/// The body a declaration ends in, for errors about a missing or misplaced one.
const BODY: &str = "{ input: N, <layer>: dense(WIDTH) -> <activation>, ..., loss: <loss> }";

/// An error at `span` when `input` has nothing left: syn would report the end of the input at
/// the macro call instead of at the user's last token.
fn more(input: ParseStream, span: Span, msg: impl FnOnce() -> String) -> syn::Result<()> {
    if input.is_empty() {
        Err(syn::Error::new(span, msg()))
    } else {
        Ok(())
    }
}

impl Parse for NetworkDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        if let Some(last) = attrs.last() {
            more(input, last.pound_token.span, || {
                format!("expected a network declaration after its attributes: `pub struct Name<f32> {BODY}`")
            })?;
        }
        let vis: Visibility = input.parse()?;
        if !matches!(vis, Visibility::Inherited) {
            more(input, vis_span(&vis), || {
                format!("expected `struct Name<f32> {BODY}` after the visibility")
            })?;
        }
        let struct_token: Token![struct] = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected `struct`: a network is declared as `pub struct Name<f32> { ... }`",
            )
        })?;
        more(input, struct_token.span, || {
            format!("expected the network's name after `struct`: `struct Name<f32> {BODY}`")
        })?;
        let ident: Ident = input.parse()?;
        if !input.peek(Token![<]) {
            return Err(syn::Error::new(
                ident.span(),
                format!("missing scalar type: write `{ident}<f32>` or `{ident}<f64>`"),
            ));
        }
        let lt: Token![<] = input.parse()?;
        more(input, lt.span, || {
            format!("expected the scalar type after `<`: `{ident}<f32> {BODY}`")
        })?;
        if input.peek(syn::Lifetime) {
            let l: syn::Lifetime = input.parse()?;
            return Err(syn::Error::new(
                l.span(),
                format!("a network takes no lifetime or generic parameters: write its scalar type, `{ident}<f32>` or `{ident}<f64>`"),
            ));
        }
        let scalar: syn::Type = input.parse()?;
        if !input.peek(Token![>]) {
            let span = if input.is_empty() {
                syn::spanned::Spanned::span(&scalar)
            } else {
                input.span()
            };
            return Err(syn::Error::new(
                span,
                format!("expected `>` after the scalar type: a network has one type parameter, as in `{ident}<f32> {BODY}`"),
            ));
        }
        let gt: Token![>] = input.parse()?;
        if !input.peek(token::Brace) {
            let span = if input.is_empty() {
                gt.span
            } else {
                input.span()
            };
            return Err(syn::Error::new(
                span,
                format!("expected the network's body after `{ident}<...>`: `{BODY}`"),
            ));
        }
        let content;
        let brace = braced!(content in input);
        let entries = content.parse_terminated(Entry::parse, Token![,])?;
        if !input.is_empty() {
            return Err(input.error(
                "unexpected tokens after the network declaration: `network!` takes exactly one struct",
            ));
        }
        Ok(NetworkDef {
            attrs,
            vis,
            struct_token,
            ident,
            scalar,
            brace,
            entries,
        })
    }
}

fn vis_span(vis: &Visibility) -> Span {
    match vis {
        Visibility::Public(p) => p.span,
        Visibility::Restricted(r) => r.paren_token.span.close(),
        Visibility::Inherited => Span::call_site(),
    }
}

impl Parse for Entry {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        more(input, name.span(), || {
            format!("expected `:` and a value after `{name}`")
        })?;
        let colon: Token![:] = input.parse()?;
        more(input, colon.span, || {
            format!("expected a value after `{name}:`, such as `dense(8) -> relu`")
        })?;
        let value = if input.peek(LitInt) || input.peek(LitFloat) || input.peek(Token![-]) {
            Value::Number(input.parse()?)
        } else if input.peek(Token![|]) {
            Value::Formula(Box::new(input.parse()?))
        } else {
            let head: Call = input.parse()?;
            let activation = if input.peek(Token![->]) {
                let arrow: Token![->] = input.parse()?;
                more(input, arrow.spans[1], || {
                    "expected an activation after `->`, such as `relu` or `|x| x * sigmoid(x)`"
                        .to_string()
                })?;
                if input.peek(Token![|]) {
                    Some(ActivationSpec::Formula(Box::new(input.parse()?)))
                } else {
                    Some(ActivationSpec::Call(input.parse()?))
                }
            } else {
                None
            };
            let mut penalties = Vec::new();
            while input.peek(Token![+]) {
                let plus: Token![+] = input.parse()?;
                more(input, plus.span, || {
                    "expected a weight penalty after `+`, such as `l2(1e-4)`".to_string()
                })?;
                penalties.push(input.parse()?);
            }
            Value::Spec {
                head,
                activation,
                penalties,
            }
        };
        if !input.is_empty() && !input.peek(Token![,]) {
            return Err(input.error("expected `,` after this entry"));
        }
        Ok(Entry { name, value })
    }
}

impl Parse for Call {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        let args = if input.peek(token::Paren) {
            let content;
            let paren = parenthesized!(content in input);
            Some((paren, content.parse_terminated(Arg::parse, Token![,])?))
        } else {
            None
        };
        Ok(Call { name, args })
    }
}

impl Parse for Arg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let key = if input.peek(Ident) && input.peek2(Token![=]) {
            let k: Ident = input.parse()?;
            let _: Token![=] = input.parse()?;
            Some(k)
        } else {
            None
        };
        Ok(Arg {
            key,
            value: input.parse()?,
        })
    }
}

impl Parse for Number {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let minus: Option<Token![-]> = input.parse()?;
        if let Some(m) = &minus {
            more(input, m.span, || "expected a number after `-`".to_string())?;
        }
        let (digits, suffix, is_int, span) = if input.peek(LitInt) {
            let l: LitInt = input.parse()?;
            (
                l.base10_digits().to_owned(),
                l.suffix().to_owned(),
                true,
                l.span(),
            )
        } else if input.peek(LitFloat) {
            let l: LitFloat = input.parse()?;
            (
                l.base10_digits().to_owned(),
                l.suffix().to_owned(),
                false,
                l.span(),
            )
        } else {
            return Err(input.error("expected a number"));
        };
        // `macro_rules!` hands a `$x:literal` of `-2` over as one literal token.
        let (inner_minus, digits) = match digits.strip_prefix('-') {
            Some(d) => (true, d.to_owned()),
            None => (false, digits),
        };
        let negative = minus.is_some() != inner_minus;
        let magnitude: f64 = digits.parse().unwrap_or(f64::INFINITY);
        let int = if is_int && !negative {
            digits.parse::<u64>().ok()
        } else {
            None
        };
        let span = match minus {
            Some(m) => m.span.join(span).unwrap_or(span),
            None => span,
        };
        Ok(Number {
            value: if negative { -magnitude } else { magnitude },
            int,
            is_int,
            text: if negative {
                format!("-{digits}")
            } else {
                digits
            },
            suffix,
            span,
        })
    }
}
