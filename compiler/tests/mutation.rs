//! A seeded token-mutation property test of `try_expand`: valid declarations are mutated a
//! token at a time (deleted, duplicated, swapped, replaced by odd literals, identifiers and
//! punctuation, wrapped in invisible groups as `macro_rules!` does), and every expansion must
//! - not panic,
//! - give the same output (or the same errors) when run again,
//! - put every error at a token of the input (never at the macro call),
//! - take less than a second.
//!
//! The seed and the number of cases are in the test's name; a failure prints the case's index
//! and the mutated input, which reproduce it.

use std::collections::HashSet;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};

const SEED: u64 = 0x5EED_2026;
const CASES: usize = 3000;
const TIME_LIMIT: Duration = Duration::from_secs(1);

/// Valid declarations that between them use every part of the grammar.
const BASES: &[&str] = &[
    "#[derive(Clone, Debug)] pub struct Xor<f32> { input: 2, hidden: dense(4) -> sigmoid, output: dense(1) -> sigmoid, loss: binary_cross_entropy, }",
    "/// Docs.\n#[symnet(allow_collapse)] pub(crate) struct Lin<f64> { input: 3, a: dense(4), b: dense(2), loss: gaussian_nll(sigma = 0.5) }",
    "#[cfg_attr(all(), derive(PartialEq))] struct Cls<f32> { input: 4, h: dense(8) -> leaky_relu(0.1), out: dense(3) -> softmax, loss: cross_entropy }",
    "pub struct Reg<f64> { input: 5, h1: dense(6) -> tanh, h2: dense(3) -> relu, out: dense(2) -> softplus, loss: mae }",
    "#[cfg(not(test))] pub struct Wide<f32> { input: 20, h: dense(24) -> relu, out: dense(1), loss: mse }",
    "pub struct F<f32> { input: 3, h: dense(4) -> |x| if x > 0.0 { x * sigmoid(x) } else { 0.1 * (exp(x) - 1.0) }, g: dense(3) -> |z| powi(z, 3) / (1.0 + abs(z)), out: dense(2), loss: |yhat, y| mean(ln(cosh(yhat - y))) + 0.1 * max(abs(yhat - y)) }",
    "#[symnet(allow_domain)] pub struct G<f64> { input: 2, h: dense(3) -> elu(alpha = 0.5), k: dense(3) -> |x| min(gelu(x), sqrt(x * x + 1.0)), out: dense(1) -> sigmoid, loss: binary_cross_entropy + l2(1e-4) + l1(1e-5) }",
];

/// What a mutation may put in place of a token.
const ODD: &[&str] = &[
    "0",
    "1",
    "-1",
    "-2",
    "2.5",
    "1e400",
    "1e39",
    "0.0",
    "65536",
    "65537",
    "4194305",
    "18446744073709551616",
    "300u8",
    "1.0f32",
    "2usize",
    "0x10",
    "1_000",
    "\"text\"",
    "'c'",
    "b'x'",
    "true",
    "r#type",
    "_",
    "self",
    "Self",
    "crate",
    "super",
    "dense",
    "relu",
    "ReLU",
    "softmax",
    "sigmoid",
    "identity",
    "leaky_relu",
    "input",
    "loss",
    "mse",
    "MSE",
    "cross_entropy",
    "gaussian_nll",
    "sigma",
    "__hidden",
    "f32",
    "f64",
    "i32",
    "struct",
    "pub",
    "'a",
    ",",
    ":",
    ";",
    "-",
    "->",
    "=",
    "<",
    ">",
    "#",
    "!",
    "&",
    "::",
    "(0)",
    "[1]",
    "{}",
    "(width = 3)",
    "<f32>",
    "dense()",
    "x",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // SplitMix64.
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The token lists of a stream and of every group in it, addressed by a path of indices.
fn lists(ts: &TokenStream) -> Vec<Vec<usize>> {
    fn walk(ts: &TokenStream, path: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        out.push(path.clone());
        for (i, t) in ts.clone().into_iter().enumerate() {
            if let TokenTree::Group(g) = t {
                path.push(i);
                walk(&g.stream(), path, out);
                path.pop();
            }
        }
    }
    let mut out = Vec::new();
    walk(ts, &mut Vec::new(), &mut out);
    out
}

/// Applies `f` to the token list at `path`.
fn edit(ts: TokenStream, path: &[usize], f: &mut dyn FnMut(&mut Vec<TokenTree>)) -> TokenStream {
    let mut tokens: Vec<TokenTree> = ts.into_iter().collect();
    match path.split_first() {
        None => f(&mut tokens),
        Some((&i, rest)) => {
            if let TokenTree::Group(g) = &tokens[i] {
                let mut ng = Group::new(g.delimiter(), edit(g.stream(), rest, f));
                ng.set_span(g.span());
                tokens[i] = TokenTree::Group(ng);
            }
        }
    }
    tokens.into_iter().collect()
}

/// An invisible group around `inner`, spanned as `macro_rules!` spans a fragment.
fn invisible(inner: Vec<TokenTree>) -> TokenTree {
    let span = inner.first().map_or_else(Span::call_site, TokenTree::span);
    let mut g = Group::new(Delimiter::None, inner.into_iter().collect());
    g.set_span(span);
    TokenTree::Group(g)
}

fn mutate(ts: TokenStream, rng: &mut Rng) -> TokenStream {
    let all = lists(&ts);
    let path = all[rng.below(all.len())].clone();
    let kind = rng.below(7);
    let odd: Vec<TokenTree> = ODD[rng.below(ODD.len())]
        .parse::<TokenStream>()
        .unwrap()
        .into_iter()
        .collect();
    let (a, b) = (rng.next() as usize, rng.next() as usize);
    edit(ts, &path, &mut |tokens: &mut Vec<TokenTree>| {
        let n = tokens.len();
        if n == 0 {
            tokens.extend(odd.iter().cloned());
            return;
        }
        let i = a % n;
        match kind {
            0 => {
                tokens.remove(i);
            }
            1 => {
                let t = tokens[i].clone();
                tokens.insert(i, t);
            }
            2 => tokens.swap(i, b % n),
            3 => {
                tokens.splice(i..=i, odd.iter().cloned());
            }
            4 => {
                tokens.splice(i..i, odd.iter().cloned());
            }
            5 => {
                // One token, or a run of up to three, in an invisible group.
                let end = (i + 1 + b % 3).min(n);
                let run: Vec<TokenTree> = tokens.drain(i..end).collect();
                tokens.insert(i, invisible(run));
            }
            _ => {
                tokens.truncate(i);
            }
        }
    })
}

/// The byte range of a span (printed as `bytes(lo..hi)` with span locations on).
fn range(span: Span) -> (usize, usize) {
    let d = format!("{span:?}");
    let inner = d.trim_start_matches("bytes(").trim_end_matches(')');
    let mut parts = inner.split("..").map(|p| p.parse::<usize>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// The range of every token of the input, delimiters of groups included.
fn token_ranges(ts: &TokenStream, out: &mut HashSet<(usize, usize)>) {
    for t in ts.clone() {
        out.insert(range(t.span()));
        if let TokenTree::Group(g) = t {
            out.insert(range(g.span_open()));
            out.insert(range(g.span_close()));
            token_ranges(&g.stream(), out);
        }
    }
}

/// The expansion's text, or its errors with where they start.
fn outcome(input: &TokenStream) -> (Result<String, Vec<(usize, String)>>, Duration) {
    let t0 = Instant::now();
    let r = symnet_compiler::try_expand(input.clone());
    let took = t0.elapsed();
    let r = r.map(|ts| ts.to_string()).map_err(|e| {
        e.into_iter()
            .map(|e| (range(e.span()).0, e.to_string()))
            .collect()
    });
    (r, took)
}

fn run(seed: u64, cases: usize) {
    let mut rng = Rng(seed);
    let (mut ok, mut failed) = (0usize, 0usize);
    let mut slowest = Duration::ZERO;
    for case in 0..cases {
        let base: TokenStream = BASES[case % BASES.len()].parse().unwrap();
        let mut input = base;
        for _ in 0..1 + rng.below(3) {
            input = mutate(input, &mut rng);
        }
        let shown = input.to_string();
        let first = catch_unwind(AssertUnwindSafe(|| outcome(&input)));
        let Ok((first, took)) = first else {
            panic!("case {case} (seed {seed:#x}) panicked on: {shown}");
        };
        let (again, took2) = catch_unwind(AssertUnwindSafe(|| outcome(&input)))
            .unwrap_or_else(|_| panic!("case {case} panicked the second time on: {shown}"));
        assert_eq!(
            first, again,
            "case {case} (seed {seed:#x}) is not deterministic: {shown}"
        );
        let took = took.max(took2);
        slowest = slowest.max(took);
        assert!(
            took < TIME_LIMIT,
            "case {case} (seed {seed:#x}) took {took:?}: {shown}"
        );
        match first {
            Ok(_) => ok += 1,
            Err(errors) => {
                failed += 1;
                let mut tokens = HashSet::new();
                token_ranges(&input, &mut tokens);
                for (at, msg) in errors {
                    // An empty input has no token to point at: the macro call it is.
                    assert!(
                        tokens.iter().any(|&(lo, hi)| lo == at || (lo..hi).contains(&at))
                            || input.is_empty(),
                        "case {case} (seed {seed:#x}): error `{msg}` at {at} is not at a token of: {shown} ({input:?})"
                    );
                    assert!(
                        !msg.contains("internal error"),
                        "case {case}: internal error `{msg}` on: {shown}"
                    );
                }
            }
        }
    }
    println!(
        "seed {seed:#x}: {cases} cases, {ok} expanded, {failed} rejected, slowest {slowest:?}"
    );
    assert!(
        ok > cases / 20,
        "too few mutants are valid: {ok} of {cases}"
    );
    assert!(
        failed > cases / 2,
        "too few mutants are rejected: {failed} of {cases}"
    );
}

#[test]
fn mutated_declarations_seed_0x5eed2026_3000_cases() {
    run(SEED, CASES);
}

#[test]
fn the_bases_expand() {
    for b in BASES {
        let r = symnet_compiler::try_expand(b.parse().unwrap());
        assert!(r.is_ok(), "{b}: {:?}", r.err().map(|e| e.to_string()));
    }
}
