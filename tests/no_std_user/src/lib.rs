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
