use symnet::network;

network! {
    pub struct Net<f32> {
        input: 2,
        hidden: dense(4) -> relu(0.1),
        output: dense(1),
        loss: mse,
    }
}

fn main() {}
