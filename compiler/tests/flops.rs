//! No one-sample function does more work than the declaration.
//!
//! The compiler may trade parameter-only work for per-sample work (collapsing `W3 W2 W1` once
//! for a batch), but `forward`, `loss` and `backward` recompute parameter-only work on every
//! call. Their programs are extracted at that price, so their FLOPs (counted from the programs
//! the emitter writes, parameter-only work included) must never exceed the FLOPs of the network
//! as declared. Checked for every network declared in the repository's tests, examples and
//! benches, for every catalog activation under every catalog loss, and for linear stacks.

use std::path::{Path, PathBuf};

use symnet_compiler::check::check;
use symnet_compiler::{compile, Compiled};
use symnet_runtime::catalog::{Output, ACTIVATIONS, LOSSES};

/// `(per sample, parameter-only)` as one per-call count.
fn total((s, p): (usize, usize)) -> usize {
    s + p
}

/// The one-sample functions' FLOPs against the declaration's; an error names the function.
fn per_call_within_declared(what: &str, c: &Compiled) -> Result<String, String> {
    let lowered = &c.before.lowered;
    let declared_forward = total(lowered.flops_of(&[lowered.roots[0]]));
    let declared_loss = total(lowered.flops_of(&[lowered.roots[1]]));
    let declared_backward = total(c.before.backward_flops);
    let rows = [
        ("forward", total(c.forward.flops()), declared_forward),
        ("loss", total(c.loss.flops()), declared_loss),
        ("backward", total(c.backward.flops()), declared_backward),
        // The latent representation is a prefix of the forward pass.
        ("latent", total(c.latent.flops()), declared_forward),
    ];
    let mut line = format!("{what}:");
    for (name, emitted, declared) in rows {
        if emitted > declared {
            return Err(format!(
                "{what}: `{name}` does {emitted} FLOPs per call, more than the {declared} declared"
            ));
        }
        line.push_str(&format!(" {name} {emitted}/{declared}"));
    }
    Ok(line)
}

fn compiled(decl: &str) -> Option<Compiled> {
    let def = symnet_compiler::ast::parse(decl.parse().ok()?).ok()?;
    let net = check(def).ok()?;
    compile(&net).ok()
}

/// The text inside the braces of every `network! { .. }` in `src` that is not part of a
/// `macro_rules!` body (those hold `$` metavariables).
fn declarations(src: &str) -> Vec<String> {
    // Declarations in code (read from the lines that are not doc comments), then those in
    // doc comments (`/// network! {`, read from the doc-comment lines without their prefixes).
    fn doc(l: &str) -> Option<&str> {
        let t = l.trim_start();
        t.strip_prefix("///").or_else(|| t.strip_prefix("//!"))
    }
    let code: Vec<&str> = src.lines().filter(|l| doc(l).is_none()).collect();
    let docs: Vec<&str> = src.lines().filter_map(doc).collect();
    let mut out = scan(&code.join("\n"));
    out.extend(scan(&docs.join("\n")));
    out
}

fn scan(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(at) = rest.find("network! {") {
        let body = &rest[at + "network! {".len()..];
        let mut depth = 1usize;
        let mut end = None;
        for (i, ch) in body.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(end) = end else { break };
        let decl = &body[..end];
        if !decl.contains('$') {
            out.push(decl.to_string());
        }
        rest = &body[end..];
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            // The compile-fail cases are not networks; build output is not source.
            if p.file_name().is_some_and(|n| n == "ui" || n == "target") {
                continue;
            }
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_declared_network_in_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["tests", "examples", "benches", "src", "runtime/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    files.sort();
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut skipped = Vec::new();
    for f in &files {
        let src = std::fs::read_to_string(f).unwrap();
        for decl in declarations(&src) {
            // Declarations that embed weights from a file are checked by their own tests.
            let Some(c) = compiled(&decl) else {
                skipped.push(format!("{}: {}", f.display(), decl.trim()));
                continue;
            };
            checked += 1;
            if let Err(e) = per_call_within_declared(&format!("{}", f.display()), &c) {
                failures.push(e);
            }
        }
    }
    assert!(
        checked >= 80,
        "only {checked} declarations compiled: has the scan stopped finding them?"
    );
    // Every declaration the scan finds compiles, but for those that read a weights file
    // relative to their own crate.
    let unexpected: Vec<&String> = skipped.iter().filter(|d| !d.contains("weights")).collect();
    assert!(unexpected.is_empty(), "not compiled: {unexpected:#?}");
    println!(
        "{checked} declarations checked, {} with weights files skipped",
        skipped.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A hyperparameter value the catalog allows: the default, else one inside the bounds.
fn spec(name: &str, params: &[symnet_runtime::catalog::Param]) -> String {
    if params.is_empty() {
        return name.to_string();
    }
    let args: Vec<String> = params
        .iter()
        .map(|p| {
            let v = p.default.unwrap_or(if p.max.is_finite() {
                (p.min + p.max) / 2.0
            } else {
                p.min + 0.5
            });
            format!("{} = {v:?}", p.name)
        })
        .collect();
    format!("{name}({})", args.join(", "))
}

#[test]
fn every_catalog_activation_under_every_catalog_loss() {
    let mut checked = 0;
    for a in ACTIVATIONS {
        for l in LOSSES {
            let act = spec(a.name, a.params);
            let loss = spec(l.name, l.params);
            let (out, target_width) = match l.output {
                Output::Any => (act.clone(), 2),
                Output::Sigmoid => ("sigmoid".to_string(), 2),
                Output::Softmax => ("softmax".to_string(), 3),
            };
            // Row-wise activations (softmax) go on the output only.
            let hidden = if a.rowwise { "tanh".to_string() } else { act };
            for ty in ["f32", "f64"] {
                let decl = format!(
                    "struct N<{ty}> {{ input: 3, h1: dense(5) -> {hidden}, h2: dense(4) -> {hidden}, out: dense({target_width}) -> {out}, loss: {loss} }}"
                );
                let c = compiled(&decl).unwrap_or_else(|| panic!("compiles: {decl}"));
                per_call_within_declared(&decl, &c).unwrap();
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 2 * ACTIVATIONS.len() * LOSSES.len());
}

#[test]
fn linear_stacks() {
    for (input, widths) in [
        (2, vec![64, 64, 1]),
        (8, vec![32, 32, 32, 4]),
        (64, vec![4, 64, 2]),
        (1, vec![1; 16]),
        (3, vec![16, 8, 16, 8, 2]),
    ] {
        let layers: Vec<String> = widths
            .iter()
            .enumerate()
            .map(|(k, w)| format!("l{k}: dense({w})"))
            .collect();
        let decl = format!(
            "#[symnet(allow_collapse)] struct N<f32> {{ input: {input}, {}, loss: mse }}",
            layers.join(", ")
        );
        let c = compiled(&decl).unwrap_or_else(|| panic!("compiles: {decl}"));
        let line = per_call_within_declared(&decl, &c).unwrap();
        println!("{line}");
    }
}

/// An affine activation (`|x| x + 1.0` adds a broadcast scalar) inside a chain of linear
/// layers: the scalar is not a bias of the collapsed chain, and the network compiles.
#[test]
fn a_scalar_added_inside_a_linear_chain() {
    for decl in [
        "struct N<f32> { input: 2, a: dense(64) -> |x| x + 1.0, b: dense(64), out: dense(1), loss: mse }",
        "struct N<f64> { input: 3, a: dense(8) -> |x| 2.0 * x - 1.0, b: dense(8) -> |x| x + 0.5, out: dense(2), loss: mse }",
    ] {
        let c = compiled(decl).unwrap_or_else(|| panic!("compiles: {decl}"));
        per_call_within_declared(decl, &c).unwrap();
    }
}

/// The 2-64-64-1 stack of the issue: the explanation reports per-sample forward FLOPs no higher
/// than declared, and the prepared form still collapses the stack.
#[test]
fn the_two_64_64_1_explanation() {
    let c = compiled(
        "#[symnet(allow_collapse)] struct N<f32> { input: 2, a: dense(64), b: dense(64), c: dense(1), loss: mse }",
    )
    .unwrap();
    let lowered = &c.before.lowered;
    let declared = total(lowered.flops_of(&[lowered.roots[0]]));
    assert!(total(c.forward.flops()) <= declared);
    // prepare(): x -> w x + b with a 1x2 `w`.
    assert_eq!(c.prepared_split.effective_params(), 3);
    assert!(c.prepared_split.sample.flops().0 < 10);
}
