#![deny(warnings)]

use symnet::network;

network! {
    /// The note that these layers collapse is silenced.
    #[symnet(allow_collapse)]
    pub struct Stack<f32> {
        input: 2,
        a: dense(64),
        b: dense(64),
        c: dense(1),
        loss: mse,
    }
}

network! {
    /// Nonlinear: nothing collapses, nothing to note.
    pub struct Mlp<f64> {
        input: 3,
        h: dense(8) -> tanh,
        out: dense(2) -> softmax,
        loss: cross_entropy,
    }
}

fn main() {
    assert_eq!(Stack::EFFECTIVE_PARAMS, 3);
    assert_eq!(Mlp::EFFECTIVE_PARAMS, Mlp::PARAMS);
    let p = Stack::init(1).prepare();
    let _ = p.forward(&[1.0, 2.0]);
}
