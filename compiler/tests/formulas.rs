//! What the rules make of formulas written by hand: the same program as the catalog entry they
//! spell, and the fused, stable gradient of a cross-entropy written out as the textbook does.

use symnet_compiler::check::check;
use symnet_compiler::ir::Tensor;
use symnet_compiler::{compile, try_expand, Compiled};

fn compiled(body: &str) -> Compiled {
    let def = symnet_compiler::ast::parse(format!("struct N<f64> {{ {body} }}").parse().unwrap())
        .expect("parses");
    let net = check(def).expect("checks");
    compile(&net).expect("compiles")
}

/// The expansion with the contents of every string literal removed: the docs and the
/// explanation quote the declaration, the code must not differ.
fn code(body: &str) -> String {
    let out = try_expand(format!("pub struct N<f32> {{ {body} }}").parse().unwrap())
        .expect("expands")
        .to_string();
    out.split('"').step_by(2).collect::<Vec<_>>().join("\"\"")
}

#[test]
fn the_logistic_function_by_hand_is_sigmoid() {
    let by_hand =
        code("input: 3, h: dense(4) -> |x| 1.0 / (1.0 + exp(-x)), out: dense(2), loss: mse");
    let builtin = code("input: 3, h: dense(4) -> sigmoid, out: dense(2), loss: mse");
    assert_eq!(by_hand, builtin);
}

#[test]
fn hand_written_binary_cross_entropy_is_fused_and_stable() {
    let by_hand = compiled(
        "input: 3, out: dense(2) -> sigmoid, loss: |yhat, y| -mean(y * ln(yhat) + (1.0 - y) * ln(1.0 - yhat))",
    );
    let builtin = compiled("input: 3, out: dense(2) -> sigmoid, loss: binary_cross_entropy");
    for p in [&by_hand.loss, &by_hand.backward, &by_hand.forward] {
        assert!(
            !p.nodes
                .iter()
                .any(|n| matches!(n, Tensor::Ln(_) | Tensor::Div(_))),
            "a logarithm or division is left"
        );
    }
    // The very same programs as the catalog's entry.
    assert_eq!(
        by_hand.loss.term(by_hand.loss.roots[0]),
        builtin.loss.term(builtin.loss.roots[0])
    );
    let grads = |c: &Compiled| -> Vec<String> {
        c.backward
            .roots
            .iter()
            .map(|&r| c.backward.term(r))
            .collect()
    };
    assert_eq!(grads(&by_hand), grads(&builtin));
}

#[test]
fn ln_cosh_never_overflows() {
    let c = compiled("input: 3, out: dense(2), loss: log_cosh");
    let loss = c.loss.term(c.loss.roots[0]);
    assert!(!loss.contains("cosh"), "{loss}");
    assert!(loss.contains("softplus"), "{loss}");
}

#[test]
fn piecewise_relu_by_hand_is_relu() {
    let c = compiled(
        "input: 3, h: dense(4) -> |x| if x > 0.0 { x } else { 0.0 }, out: dense(2), loss: mse",
    );
    let f = c.forward.term(c.forward.roots[0]);
    assert!(f.contains("(relu"), "{f}");
    assert!(!f.contains("select"), "{f}");
}

#[test]
fn an_unproven_logarithm_gets_a_note() {
    let c = compiled("input: 2, out: dense(1), loss: |yhat, y| mean(ln(yhat) - y)");
    assert_eq!(c.domain_notes.len(), 1, "{:?}", c.domain_notes);
    assert!(c.domain_notes[0].1.contains("the argument of `ln`"));
    let c = compiled("input: 2, out: dense(1) -> softplus, loss: |yhat, y| mean(ln(yhat) - y)");
    assert!(c.domain_notes.is_empty(), "{:?}", c.domain_notes);
}

#[test]
fn weight_penalties_are_computed_once_per_batch() {
    let plain = compiled("input: 8, h: dense(16) -> tanh, out: dense(4), loss: mse");
    let l2 = compiled("input: 8, h: dense(16) -> tanh, out: dense(4), loss: mse + l2(1e-4)");
    // The per-sample work of the batch loop is the same with or without the penalty...
    assert_eq!(
        l2.backward_split.sample.flops(),
        plain.backward_split.sample.flops()
    );
    assert_eq!(
        l2.loss_split.sample.flops(),
        plain.loss_split.sample.flops()
    );
    // ... and the penalty is a program of its own, over the weights only, run once per call:
    // its cost per batch is the same for 32 samples or 32,000.
    let p = l2.penalty.as_ref().expect("a penalty program");
    let (sample, params) = p.value.flops();
    assert_eq!(sample, 0, "the penalty depends on no sample");
    assert!(params >= 2 * (16 * 8 + 4 * 16), "{params}");
    // Its gradient reads the scale (`seed`) and the weights, nothing of a sample.
    let reads_sample = p
        .backward
        .nodes
        .iter()
        .any(|n| matches!(n, Tensor::Symbol(s) if s.as_str() == "x" || s.as_str() == "y"));
    assert!(!reads_sample);
    assert!(plain.penalty.is_none());
}

#[test]
fn constants_beyond_the_scalar_type_do_not_panic_the_macro() {
    for body in [
        "pub struct N<f32> { input: 2, h: dense(3) -> |x| x * 1e39, out: dense(1), loss: mse }",
        "pub struct N<f64> { input: 2, h: dense(3) -> |x| x / 1e-310, out: dense(1), loss: mse }",
        "pub struct N<f64> { input: 2, h: dense(3) -> |x| x * powi(1e10, 64), out: dense(1), loss: mse }",
    ] {
        let out = try_expand(body.parse().unwrap()).expect("expands");
        assert!(out.to_string().contains("INFINITY"), "{body}");
    }
}
