use symnet::network;

network! {
    pub struct Net<f32> {
        input: 4096,
        hidden: dense(4096) -> relu,
        output: dense(1),
        loss: mse,
    }
}

fn main() {}
