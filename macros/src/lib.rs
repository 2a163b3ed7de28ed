//! The `network!` procedural macro of symnet. This crate is a thin entry point: the stages
//! (parse, check, lower, saturate, differentiate, emit) live in `symnet-compiler`, an ordinary
//! library that can be tested and fuzzed without a compiler in the loop.

use proc_macro2::{Span, TokenStream};
use proc_macro_crate::{crate_name, FoundCrate};
use quote::quote;

/// Declares a network and generates its struct, forward and backward code.
///
/// See the documentation of the `symnet` crate for the grammar and the generated API.
#[proc_macro]
pub fn network(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    match runtime_path(crate_name("symnet"), crate_name("symnet-runtime")) {
        Ok(krate) => symnet_compiler::expand_with(input.into(), krate).into(),
        Err(msg) => syn::Error::new(Span::call_site(), msg)
            .to_compile_error()
            .into(),
    }
}

/// The path through which generated code reaches the runtime, from how the user's
/// `Cargo.toml` names the `symnet` and `symnet-runtime` packages (as derive crates find their
/// support crate): `symnet` under whatever name the user gave it, else `symnet-runtime` (which
/// holds everything generated code uses), else an error saying what to add. When the manifest
/// cannot be read at all (a build outside cargo), generated code says `::symnet`.
fn runtime_path(
    symnet: Result<FoundCrate, proc_macro_crate::Error>,
    runtime: Result<FoundCrate, proc_macro_crate::Error>,
) -> Result<TokenStream, String> {
    use proc_macro_crate::Error::CrateNotFound;
    let path = |name: &str| {
        let ident = syn::Ident::new(name, Span::call_site());
        quote!(::#ident)
    };
    match (symnet, runtime) {
        // `Itself` is also what the package's own tests, examples and benches see; they reach
        // the library as `symnet`.
        (Ok(FoundCrate::Itself), _) => Ok(path("symnet")),
        (Ok(FoundCrate::Name(n)), _) => Ok(path(&n)),
        (Err(_), Ok(FoundCrate::Itself)) => Ok(path("symnet_runtime")),
        (Err(_), Ok(FoundCrate::Name(n))) => Ok(path(&n)),
        (Err(CrateNotFound { .. }), Err(CrateNotFound { .. })) => Err(
            "`network!` generates code that uses the `symnet` crate, but this crate does not depend on it: add `symnet = \"0.1\"` to `[dependencies]` in Cargo.toml (or `symnet-runtime` beside `symnet-macros`)"
                .into(),
        ),
        (Err(_), Err(_)) => Ok(path("symnet")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(r: Result<TokenStream, String>) -> String {
        r.map(|t| t.to_string()).unwrap_or_else(|e| e)
    }

    fn missing(name: &str) -> Result<FoundCrate, proc_macro_crate::Error> {
        Err(proc_macro_crate::Error::CrateNotFound {
            crate_name: name.into(),
            path: "Cargo.toml".into(),
        })
    }

    #[test]
    fn renamed_symnet_is_used_under_its_new_name() {
        let found = Ok(FoundCrate::Name("sym".into()));
        assert_eq!(
            path(runtime_path(found, missing("symnet-runtime"))),
            ":: sym"
        );
    }

    #[test]
    fn symnet_wins_over_the_runtime() {
        let symnet = Ok(FoundCrate::Name("symnet".into()));
        let rt = Ok(FoundCrate::Name("symnet_runtime".into()));
        assert_eq!(path(runtime_path(symnet, rt)), ":: symnet");
        assert_eq!(
            path(runtime_path(
                Ok(FoundCrate::Itself),
                missing("symnet-runtime")
            )),
            ":: symnet"
        );
    }

    #[test]
    fn the_runtime_alone_is_enough() {
        let rt = Ok(FoundCrate::Name("rt".into()));
        assert_eq!(path(runtime_path(missing("symnet"), rt)), ":: rt");
        assert_eq!(
            path(runtime_path(missing("symnet"), Ok(FoundCrate::Itself))),
            ":: symnet_runtime"
        );
    }

    #[test]
    fn an_unreadable_manifest_falls_back_to_symnet() {
        let unread = || Err(proc_macro_crate::Error::CargoManifestDirNotSet);
        assert_eq!(path(runtime_path(unread(), unread())), ":: symnet");
    }

    #[test]
    fn neither_crate_says_what_to_add() {
        let msg = runtime_path(missing("symnet"), missing("symnet-runtime")).unwrap_err();
        assert!(
            msg.contains("add `symnet = \"0.1\"` to `[dependencies]`"),
            "{msg}"
        );
    }
}
