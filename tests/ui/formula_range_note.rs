#![deny(warnings)]

use symnet::network;

network! {
    pub struct Net<f32> {
        input: 2,
        out: dense(1),
        loss: |yhat, y| mean(ln(yhat) - y),
    }
}

fn main() {}
