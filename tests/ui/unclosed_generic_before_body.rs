use symnet::network;

network! {
    pub struct Net<f32 {
        input: 2,
        output: dense(1),
        loss: mse,
    }
}

fn main() {}
