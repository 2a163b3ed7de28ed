use symnet::network;

network! {
    pub struct Net<f32> {
        input: 2,
        type: dense(1),
        loss: mse,
    }
}

fn main() {}
