use symnet::network;

network! {
    pub struct Net<f32> {
        input: 2,
        out: dense(1),
        loss: mse + l3(1e-4),
    }
}

fn main() {}
