use symnet::network;

network! {
    pub struct Net<f32> {
        hidden: dense(4) -> relu,
        input: 2,
        output: dense(1),
        loss: mse,
    }
}

fn main() {}
