#![deny(warnings)]

use symnet::network;

network! {
    pub struct Net<f32> {
        input: 2,
        hidden: dense(3) -> |x| 1.0 / x,
        out: dense(1),
        loss: mse,
    }
}

fn main() {}
