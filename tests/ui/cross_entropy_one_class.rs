use symnet::network;

network! {
    pub struct Net<f32> {
        input: 2,
        output: dense(1) -> softmax,
        loss: cross_entropy,
    }
}

fn main() {}
