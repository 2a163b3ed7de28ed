use symnet::network;

network! {
    pub struct Net<f32> {
        input: 2usize,
        output: dense(1),
        loss: mse,
    }
}

fn main() {}
