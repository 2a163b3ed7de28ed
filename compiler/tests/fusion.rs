//! Fused loss gradients come out of the e-graph: for each output/loss pair, the extracted
//! gradient with respect to the logits (`d out.b`, since `z = W x + b`) is the textbook fused
//! form, and the backward program neither divides nor takes a logarithm.

use std::time::{Duration, Instant};

use symnet_compiler::check::check;
use symnet_compiler::ir::Tensor;
use symnet_compiler::simplify::{ITER_LIMIT, NODE_LIMIT};
use symnet_compiler::{compile, Compiled};

fn compiled(body: &str) -> Compiled {
    let def = syn::parse_str(&format!("struct N<f64> {{ {body} }}")).expect("parses");
    let net = check(def).expect("checks");
    compile(&net).expect("compiles")
}

/// The extracted term of `d out.b`, the gradient with respect to the last layer's logits.
fn logit_gradient(c: &Compiled) -> String {
    let (_, b) = *c.grad_roots.last().unwrap();
    c.backward.term(c.backward.roots[b.unwrap()])
}

const Z: &str = "(+ (mv out.w x) out.b)";

#[test]
fn sigmoid_with_binary_cross_entropy_gives_yhat_minus_y_over_m() {
    let c = compiled("input: 3, out: dense(2) -> sigmoid, loss: binary_cross_entropy");
    // seed (yhat - y) / m with m = 2.
    assert_eq!(
        logit_gradient(&c),
        format!("(* (* 0.5 seed) (- (sigmoid {Z}) y))")
    );
    // The loss itself became softplus(z) - y z: no logarithm of a probability.
    assert_eq!(
        c.loss.term(c.loss.roots[0]),
        format!("(* 0.5 (sum (- (softplus {Z}) (* y {Z}))))")
    );
}

#[test]
fn softmax_with_cross_entropy_gives_p_minus_y() {
    let c = compiled("input: 3, out: dense(4) -> softmax, loss: cross_entropy");
    assert_eq!(logit_gradient(&c), format!("(* seed (- (softmax {Z}) y))"));
    assert_eq!(
        c.loss.term(c.loss.roots[0]),
        format!("(- (logsumexp {Z}) (sum (* y {Z})))")
    );
}

#[test]
fn identity_with_mse_gives_two_residuals_over_m() {
    // m = 2: 2 (yhat - y) / m = yhat - y.
    let c = compiled("input: 3, out: dense(2), loss: mse");
    assert_eq!(logit_gradient(&c), format!("(* seed (- {Z} y))"));
    // m = 4: 2 / m = 0.5.
    let c = compiled("input: 3, out: dense(4), loss: mse");
    assert_eq!(logit_gradient(&c), format!("(* (* 0.5 seed) (- {Z} y))"));
}

#[test]
fn ln_of_sigmoid_becomes_minus_softplus_of_minus_z() {
    // Visible in the forward saturation report, and in the absence of `ln` everywhere.
    let c = compiled(
        "input: 3, h: dense(4) -> tanh, out: dense(1) -> sigmoid, loss: binary_cross_entropy",
    );
    let fired: Vec<&str> = c
        .forward_report
        .fired
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert!(fired.contains(&"ln-sigmoid"), "{fired:?}");
    assert!(fired.contains(&"ln-one-minus-sigmoid"), "{fired:?}");
}

#[test]
fn classification_backward_code_has_no_division_and_no_log_of_a_probability() {
    for body in [
        "input: 3, h: dense(5) -> relu, out: dense(1) -> sigmoid, loss: binary_cross_entropy",
        "input: 3, h: dense(5) -> tanh, out: dense(3) -> sigmoid, loss: binary_cross_entropy",
        "input: 3, h: dense(5) -> sigmoid, out: dense(4) -> softmax, loss: cross_entropy",
    ] {
        let c = compiled(body);
        for p in [&c.backward, &c.loss, &c.forward] {
            for n in &p.nodes {
                assert!(
                    !matches!(n, Tensor::Div(_) | Tensor::Ln(_)),
                    "{body}: {n} in {}",
                    p.term(p.roots[0])
                );
            }
        }
        // And in the emitted tokens: no `/` and no `ln(` in the backward function.
        let tokens =
            symnet_compiler::expand(format!("struct N<f32> {{ {body} }}").parse().unwrap())
                .to_string();
        let start = tokens.find("fn backward_scaled").unwrap();
        let end = start + tokens[start..].find("fn forward_batch").unwrap();
        let backward = &tokens[start..end];
        assert!(!backward.contains(" / "), "{body}: division in backward");
        assert!(!backward.contains(":: ln"), "{body}: ln in backward");
        assert!(backward.contains("softplus") || backward.contains("logsumexp"));
    }
}

#[test]
fn the_largest_example_nets_saturate_within_limits_in_under_a_second() {
    for body in [
        "input: 784, h: dense(128) -> relu, out: dense(10) -> softmax, loss: cross_entropy",
        "input: 64, h1: dense(128) -> relu, h2: dense(128) -> relu, out: dense(10) -> softmax, loss: cross_entropy",
        "input: 2, a: dense(64), b: dense(64), c: dense(1), loss: mse",
        "input: 6, a: dense(64) -> relu, b: dense(8) -> relu, c: dense(4), loss: mse",
        "input: 10, a: dense(8), b: dense(8), c: dense(8), d: dense(8), e: dense(1), loss: gaussian_nll(sigma = 1.0)",
    ] {
        let start = Instant::now();
        let c = compiled(body);
        let took = start.elapsed();
        for r in [&c.forward_report, &c.backward_report] {
            assert!(r.nodes <= NODE_LIMIT && r.iterations <= ITER_LIMIT, "{body}: {r:?}");
        }
        assert!(took < Duration::from_secs(1), "{body}: {took:?}");
    }
}

#[test]
fn a_collapsed_stack_is_one_affine_map_per_sample() {
    let c = compiled("input: 2, a: dense(64), b: dense(64), c: dense(1), loss: mse");
    // The prepared forward pass reads W' (1 x 2) and b' (1): three parameters.
    assert_eq!(c.prepared_split.effective_params(), 3);
    let (per_sample, _) = c.prepared_split.sample.flops();
    // One 1x2 matrix-vector product (4 FLOPs) and one addition.
    assert_eq!(per_sample, 5);
    let s = &c.prepared_split.sample;
    assert_eq!(s.term(s.roots[0]), "(+ (mv __h0 x) __h1)");
    // The explanation reports it.
    let def = syn::parse_str(
        "struct N<f64> { input: 2, a: dense(64), b: dense(64), c: dense(1), loss: mse }",
    )
    .unwrap();
    let net = check(def).unwrap();
    let text = symnet_compiler::explain::explanation(&net, &c);
    assert!(text.contains("4417 declared, 3 effective"), "{text}");
    assert!(text.contains(", 5 per sample prepared (+ "), "{text}");
    // The one-sample forward pass does no more than the declaration: 8705 FLOPs.
    assert!(
        text.contains("8705 as declared, 8705 per call of forward"),
        "{text}"
    );
}

#[test]
fn the_prepared_form_stores_weights_input_major() {
    let c = compiled("input: 64, h: dense(32) -> sigmoid, o: dense(10), loss: mse");
    let s = &c.prepared_split.sample;
    // Both products read a transposed input-major copy: `(W^T)^T x`, a sum of stored rows.
    assert_eq!(
        s.term(s.roots[0]),
        "(+ (mv (T __h0) (sigmoid (+ (mv (T __h1) x) __h2))) __h3)"
    );
    let stored: Vec<_> = c
        .prepared_split
        .frontier
        .iter()
        .map(|f| (f.input_major, f.stored_shape()))
        .collect();
    use symnet_compiler::ir::Shape::{Matrix, Vector};
    assert_eq!(
        stored,
        [
            (true, Matrix(32, 10)),
            (true, Matrix(64, 32)),
            (false, Vector(32)),
            (false, Vector(10)),
        ]
    );
    // A single output row stays a dot product.
    let c = compiled("input: 8, h: dense(5) -> relu, o: dense(1), loss: mse");
    let major: Vec<bool> = c
        .prepared_split
        .frontier
        .iter()
        .map(|f| f.input_major)
        .collect();
    assert_eq!(major.iter().filter(|&&m| m).count(), 1, "{major:?}");
}
