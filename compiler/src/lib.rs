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
pub mod emit;
pub mod emit_lanes;
pub mod explain;
pub mod grad;
pub mod hoist;
pub mod ir;
pub mod simplify;

use proc_macro2::TokenStream;

pub use codegen::{compile, Compiled};

/// Expands a `network!` invocation: the generated items, or `compile_error!`s at the user's
/// tokens.
pub fn expand(input: TokenStream) -> TokenStream {
    match try_expand(input) {
        Ok(ts) => ts,
        Err(e) => e.to_compile_error(),
    }
}

/// Expands a `network!` invocation, returning the errors instead of `compile_error!`s.
pub fn try_expand(input: TokenStream) -> syn::Result<TokenStream> {
    let def: ast::NetworkDef = syn::parse2(input)?;
    let net = check::check(def)?;
    let compiled = compile(&net)?;
    Ok(codegen::generate(&net, &compiled))
}
