//! A `#![no_std]` library that declares networks with `network!`. It builds only if the generated
//! code refers to nothing but `core` and symnet's runtime.
#![no_std]
#![forbid(missing_docs)]

symnet::network! {
    /// A small classifier.
    pub struct Tiny<f32> {
        input: 3,
        hidden: dense(5) -> relu,
        output: dense(2) -> softmax,
        loss: cross_entropy,
    }
}

symnet::network! {
    /// A wider regressor, large enough for the emitter to write loops.
    pub struct Wide<f64> {
        input: 40,
        hidden: dense(64) -> tanh,
        output: dense(3),
        loss: mse,
    }
}

symnet::network! {
    /// The shape of `Tiny`, with weights embedded from a file at compile time: usable on a
    /// target with no file system.
    #[symnet(weights = "weights/tiny.safetensors")]
    pub struct Embedded<f32> {
        input: 3,
        hidden: dense(5) -> relu,
        output: dense(2) -> softmax,
        loss: cross_entropy,
    }
}

symnet::network! {
    /// Two linear layers with embedded weights: they collapse into one affine map, which the
    /// prepared form's `PRETRAINED` holds, computed at compile time.
    #[symnet(allow_collapse, weights = "weights/linear.safetensors")]
    pub struct EmbeddedLinear<f64> {
        input: 3,
        a: dense(4),
        b: dense(2),
        loss: mse,
    }
}

/// The output of the embedded linear stack through its prepared (collapsed) form.
pub fn linear(x: &[f64; 3]) -> [f64; 2] {
    EmbeddedLinearPrepared::PRETRAINED.forward(x)
}

/// The class probabilities of the embedded network, computed with no allocation and no file.
pub fn classify(x: &[f32; 3]) -> [f32; 2] {
    const NET: Embedded = Embedded::PRETRAINED;
    NET.forward(x)
}

/// One gradient-descent step on one sample, with no allocation anywhere.
pub fn step(net: &mut Tiny, x: &[f32; 3], y: &[f32; 2], lr: f32) -> f32 {
    let mut grad = Tiny::zeros();
    let loss = net.backward(x, y, &mut grad);
    for (p, g) in net.params_mut().iter_mut().zip(grad.params()) {
        *p -= lr * *g;
    }
    loss
}

/// The output of the wide network.
pub fn predict(net: &Wide, x: &[f64; 40]) -> [f64; 3] {
    net.forward(x)
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::Embedded;

    #[test]
    fn embedded_weights_are_the_files_bit_for_bit() {
        let path = std::concat!(std::env!("CARGO_MANIFEST_DIR"), "/weights/tiny.safetensors");
        let loaded: Embedded = symnet::io::load_weights(path).unwrap();
        let embedded = Embedded::PRETRAINED;
        let bits = |p: &[f32]| p.iter().map(|v| v.to_bits()).collect::<std::vec::Vec<_>>();
        std::assert_eq!(bits(embedded.params()), bits(loaded.params()));
        // The fixture's awkward values survive: a negative zero, a subnormal, a huge bias.
        std::assert_eq!(embedded.hidden.b[0].to_bits(), (-0.0f32).to_bits());
        std::assert_eq!(embedded.hidden.b[1], 1e-40f32);
        for x in [[0.5f32, -1.0, 2.0], [0.0, 0.0, 0.0], [-3.0, 1e3, 0.25]] {
            let (a, b) = (embedded.forward(&x), loaded.forward(&x));
            std::assert_eq!(bits(&a), bits(&b));
            std::assert_eq!(bits(&super::classify(&x)), bits(&b));
            // No work is hoisted for this network: its prepared form holds the same weights.
            let prepared = super::EmbeddedPrepared::PRETRAINED.forward(&x);
            std::assert_eq!(bits(&prepared), bits(&embedded.prepare().forward(&x)));
        }
    }

    #[test]
    fn the_prepared_form_of_embedded_weights_is_computed_at_compile_time() {
        use super::EmbeddedLinear;
        let path = std::concat!(
            std::env!("CARGO_MANIFEST_DIR"),
            "/weights/linear.safetensors"
        );
        let loaded: EmbeddedLinear = symnet::io::load_weights(path).unwrap();
        std::assert_eq!(EmbeddedLinear::PRETRAINED.params(), loaded.params());
        // The prepared form reads W' (2 x 3) and b' (2), computed, not the 26 declared values.
        std::assert_eq!(EmbeddedLinear::EFFECTIVE_PARAMS, 8);
        // The collapsed map W' = Wb Wa, b' = Wb ba + bb, computed by the macro in f64, against
        // the layers applied one after the other and against prepare() at run time.
        for x in [[0.5, -1.0, 2.0], [0.0, 0.0, 0.0], [-3.0, 10.0, 0.25]] {
            let stacked = loaded.forward(&x);
            let runtime = loaded.prepare().forward(&x);
            let compiled = super::linear(&x);
            for j in 0..2 {
                let tol = 1e-14 * (1.0 + stacked[j].abs());
                std::assert!(
                    (compiled[j] - stacked[j]).abs() <= tol,
                    "{compiled:?} {stacked:?}"
                );
                std::assert!(
                    (compiled[j] - runtime[j]).abs() <= tol,
                    "{compiled:?} {runtime:?}"
                );
            }
        }
    }
}
