use symnet::network;

network! {
    pub struct Net<f32> {
        input: 2,
        output: dense,
        loss: mse,
    }
}

fn main() {}
