//! Expansion is deterministic: the same input always gives the same tokens.

use symnet_compiler::expand;

const NETS: &[&str] = &[
    "pub struct Xor<f32> { input: 2, hidden: dense(4) -> sigmoid, output: dense(1) -> sigmoid, loss: binary_cross_entropy }",
    "struct D<f64> { input: 64, h1: dense(32) -> relu, h2: dense(16) -> tanh, out: dense(10) -> softmax, loss: cross_entropy }",
    "struct L<f32> { input: 2, a: dense(64), b: dense(64), c: dense(1), loss: gaussian_nll(sigma = 2.0) }",
    "struct M<f64> { input: 5, a: dense(7) -> leaky_relu(0.01), b: dense(3) -> softplus, loss: mae }",
];

#[test]
fn expanding_twice_gives_identical_tokens() {
    for src in NETS {
        let once = expand(src.parse().unwrap()).to_string();
        let twice = expand(src.parse().unwrap()).to_string();
        assert!(
            !once.contains("compile_error"),
            "{src} failed to expand: {once}"
        );
        assert_eq!(once, twice, "{src}");
    }
}
