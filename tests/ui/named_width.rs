use symnet::network;

network! {
    pub struct Net<f32> {
        input: 2,
        output: dense(width = 3),
        loss: mse,
    }
}

fn main() {}
