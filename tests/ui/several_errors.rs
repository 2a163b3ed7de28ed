use symnet::network;

network! {
    pub struct Net<f32> {
        input: 2,
        hidden: dense(0) -> sigmod,
        hidden: dense(3),
        output: dense(1) -> relu,
        loss: binary_cross_entropy,
    }
}

fn main() {}
