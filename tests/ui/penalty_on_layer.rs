use symnet::network;

network! {
    pub struct Net<f32> {
        input: 2,
        out: dense(1) + l2(1e-4),
        loss: mse,
    }
}

fn main() {}
