use symnet::network;

network! {
    pub struct Net<f32> {
        input: 2,
        hidden: dense(3) -> leaky_relu(0.1f32),
        output: dense(1),
        loss: mse,
    }
}

fn main() {}
