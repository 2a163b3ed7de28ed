use symnet::network;

network! {
    pub struct Net<f32> {
        input: 2,
        hidden: dense(4) -> relu,
        output: dense(3) -> sigmoid,
        loss: cross_entropy,
    }
}

fn main() {}
