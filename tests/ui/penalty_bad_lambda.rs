use symnet::network;

network! {
    pub struct Net<f32> {
        input: 2,
        out: dense(1),
        loss: mse + l2(-1.0),
    }
}

fn main() {}
