//! The `network!` procedural macro of symnet. This crate is a thin entry point: the stages
//! (parse, check, lower, saturate, differentiate, emit) live in `symnet-compiler`, an ordinary
//! library that can be tested and fuzzed without a compiler in the loop.

/// Declares a network and generates its struct, forward and backward code.
///
/// See the documentation of the `symnet` crate for the grammar and the generated API.
#[proc_macro]
pub fn network(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    symnet_compiler::expand(input.into()).into()
}
