//! Formulas in a declaration compile without warnings when every `ln`, `sqrt` and division is
//! provably safe, and `#[symnet(allow_domain)]` silences the note where it is not.
#![deny(warnings)]

use symnet::network;

network! {
    pub struct Policy<f32> {
        input: 8,
        hidden: dense(16) -> |x| x * sigmoid(x),
        mid: dense(8) -> |x| x * tanh(softplus(x)),
        out: dense(2),
        loss: |yhat, y| mean(ln(cosh(yhat - y))),
    }
}

network! {
    #[symnet(allow_domain)]
    pub struct Unchecked<f64> {
        input: 2,
        hidden: dense(3) -> |x| x / (x * x - 0.5),
        out: dense(1) -> softplus,
        loss: |yhat, y| mean(y * ln(yhat) - yhat),
    }
}

fn main() {
    let net = Policy::init(1);
    let x = [0.1f32; 8];
    let y = [0.5f32, -0.5];
    let mut grad = Policy::zeros();
    assert!(net.backward(&x, &y, &mut grad).is_finite());
    let _ = Unchecked::init(2).forward(&[0.3, 0.4]);
}
