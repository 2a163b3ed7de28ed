//! The stages of symnet's compiler, as an ordinary library (as `serde_derive_internals` is for
//! serde): the `network!` proc macro is a thin wrapper around [`expand`], and every stage here
//! can be tested without a compiler in the loop.
//!
//! ```text
//! tokens --parse--> ast --check--> Net --lower--> tensor IR (egg RecExpr)
//!   --saturate + extract--> forward --differentiate--> forward + adjoints
//!   --saturate + extract (per function, roots together)--> Program --emit--> Rust tokens
//! ```

pub mod ast;
pub mod check;
pub mod codegen;
pub mod driver;
pub mod emit;
pub mod emit_lanes;
pub mod explain;
pub mod formula;
pub mod grad;
pub mod hoist;
pub mod ir;
pub mod pretrained;
pub mod simplify;

use std::cell::RefCell;

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};

pub use driver::{compile, Compiled};

/// Expands a `network!` invocation: the generated items, or `compile_error!`s at the user's
/// tokens. Generated code names the runtime `::symnet`; see [`expand_with`].
pub fn expand(input: TokenStream) -> TokenStream {
    expand_with(input, quote!(::symnet))
}

/// Expands a `network!` invocation whose generated code reaches the runtime through `krate`
/// (such as `::symnet`, or `::sym` when the user renamed the dependency).
pub fn expand_with(input: TokenStream, krate: TokenStream) -> TokenStream {
    match try_expand_with(input, krate) {
        Ok(ts) => ts,
        Err(e) => e.to_compile_error(),
    }
}

/// Expands a `network!` invocation, returning the errors instead of `compile_error!`s.
pub fn try_expand(input: TokenStream) -> syn::Result<TokenStream> {
    try_expand_with(input, quote!(::symnet))
}

/// [`try_expand`] with the path of the runtime crate as the user's crate names it.
pub fn try_expand_with(input: TokenStream, krate: TokenStream) -> syn::Result<TokenStream> {
    let _guard = CrateGuard::set(krate);
    let def = ast::parse(input)?;
    let net = check::check(def)?;
    let compiled = compile(&net)?;
    let pretrained = pretrained::embed(&net, &compiled)?;
    let mut out = codegen::generate(&net, &compiled);
    out.extend(pretrained);
    Ok(out)
}

thread_local! {
    static CRATE_PATH: RefCell<Option<TokenStream>> = const { RefCell::new(None) };
}

/// Sets the runtime's path for one expansion and restores the previous one when dropped (also
/// on unwinding), so expansions on one thread never see each other's path.
struct CrateGuard(Option<TokenStream>);

impl CrateGuard {
    fn set(krate: TokenStream) -> Self {
        CrateGuard(CRATE_PATH.with(|c| c.replace(Some(krate))))
    }
}

impl Drop for CrateGuard {
    fn drop(&mut self) {
        let prev = self.0.take();
        CRATE_PATH.with(|c| *c.borrow_mut() = prev);
    }
}

/// The path of the runtime crate in generated code (`::symnet` unless the expansion was given
/// another): write `#KRATE::Dense` inside `quote!`.
pub(crate) struct Krate;

/// The one [`Krate`] value, interpolated in `quote!` as `#KRATE`.
pub(crate) const KRATE: Krate = Krate;

impl ToTokens for Krate {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        CRATE_PATH.with(|c| match &*c.borrow() {
            Some(k) => tokens.extend(k.clone()),
            None => tokens.extend(quote!(::symnet)),
        })
    }
}
