#![deny(warnings)]

use symnet::network;

network! {
    pub struct Stack<f32> {
        input: 2,
        a: dense(64),
        b: dense(64),
        c: dense(1),
        loss: mse,
    }
}

fn main() {}
