//! The syntax tree of a `network!` declaration, as written, with every token's span kept.
//!
//! Parsing is deliberately permissive: `name: value` entries of any shape are accepted here, and
//! the meaning (is this a layer, a known activation, a sensible width?) is checked in
//! [`crate::check`], which reports every mistake at once instead of stopping at the first.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{braced, parenthesized, token, Attribute, Ident, LitFloat, LitInt, Token, Visibility};

/// `#[attrs] vis struct Name<scalar> { entries }`.
pub struct NetworkDef {
    /// Doc comments and attributes, forwarded to the generated struct (except `symnet(...)`).
    pub attrs: Vec<Attribute>,
    /// The struct's visibility.
    pub vis: Visibility,
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
    /// An integer, as in `input: 2`.
    Int(LitInt),
    /// A call-like spec, as in `dense(4) -> relu` or `gaussian_nll(sigma = 1.0)`.
    Spec {
        /// `dense(4)` or `binary_cross_entropy`.
        head: Call,
        /// The activation after `->`, if any.
        activation: Option<Call>,
    },
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

/// A numeric literal, possibly negated.
#[derive(Clone)]
pub struct Number {
    /// The literal's value (the sign applied).
    pub value: f64,
    /// The integer value, if the literal was an integer that fits a `u64`.
    pub int: Option<u64>,
    /// Whether the literal was written as an integer.
    pub is_int: bool,
    /// The span of the whole number, sign included.
    pub span: Span,
}

impl Value {
    /// The span of the whole value, for errors about it.
    pub fn span(&self) -> Span {
        match self {
            Value::Int(l) => l.span(),
            Value::Spec { head, activation } => {
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

impl Parse for NetworkDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let _: Token![struct] = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected `struct`: a network is declared as `pub struct Name<f32> { ... }`",
            )
        })?;
        let ident: Ident = input.parse()?;
        if !input.peek(Token![<]) {
            return Err(syn::Error::new(
                ident.span(),
                format!("missing scalar type: write `{ident}<f32>` or `{ident}<f64>`"),
            ));
        }
        let _: Token![<] = input.parse()?;
        let scalar: syn::Type = input.parse()?;
        let _: Token![>] = input.parse()?;
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
            ident,
            scalar,
            brace,
            entries,
        })
    }
}

impl Parse for Entry {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        let _: Token![:] = input.parse()?;
        let value = if input.peek(LitInt) {
            Value::Int(input.parse()?)
        } else {
            let head: Call = input.parse()?;
            let activation = if input.peek(Token![->]) {
                let _: Token![->] = input.parse()?;
                Some(input.parse()?)
            } else {
                None
            };
            Value::Spec { head, activation }
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
        let sign = if minus.is_some() { -1.0 } else { 1.0 };
        let (value, int, is_int, span) = if input.peek(LitInt) {
            let l: LitInt = input.parse()?;
            let int = l.base10_parse::<u64>().ok();
            let v: f64 = l.base10_digits().parse().unwrap_or(f64::INFINITY);
            (v, int, true, l.span())
        } else if input.peek(LitFloat) {
            let l: LitFloat = input.parse()?;
            (l.base10_parse::<f64>()?, None, false, l.span())
        } else {
            return Err(input.error("expected a number"));
        };
        let span = match minus {
            Some(m) => m.span.join(span).unwrap_or(span),
            None => span,
        };
        Ok(Number {
            value: sign * value,
            int: if minus.is_some() { None } else { int },
            is_int,
            span,
        })
    }
}
