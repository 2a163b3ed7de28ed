use symnet::network;

network! {
    pub struct Net<f32> {
        input: 2,
        loss: mse,
        output: dense(1),
    }
}

fn main() {}
