use symnet::network;

network! {
    pub struct Net<f32> {
        input: 2,
        hidden: dense(4) -> sigmod,
        output: dense(1) -> sigmoid,
        loss: binary_cross_entropy,
    }
}

fn main() {}
