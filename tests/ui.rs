//! Compile-fail cases: every mistake in a declaration is an error at the user's token. One
//! mistake per file under `tests/ui/`, with the expected message in the `.stderr` beside it.
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite cargo test --test ui` and read them.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    // Declarations that must compile without any warning (under `#![deny(warnings)]`).
    t.pass("tests/ui-pass/*.rs");
}

#[test]
fn no_message_mentions_a_panic() {
    for entry in std::fs::read_dir("tests/ui").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "stderr") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(!text.contains("panicked"), "{}", path.display());
            assert!(
                !text.contains("symnet-compiler"),
                "{}: error inside the compiler",
                path.display()
            );
            assert!(
                text.starts_with("error"),
                "{} does not start with an error",
                path.display()
            );
        }
    }
}
