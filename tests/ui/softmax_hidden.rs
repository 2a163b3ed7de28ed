use symnet::network;

network! {
    pub struct Net<f32> {
        input: 2,
        hidden: dense(4) -> softmax,
        output: dense(3) -> softmax,
        loss: cross_entropy,
    }
}

fn main() {}
