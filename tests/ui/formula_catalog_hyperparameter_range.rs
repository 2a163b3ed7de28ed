use symnet::network;

network! {
    pub struct Net<f32> {
        input: 2,
        hidden: dense(4) -> |x| elu(x, -1.0),
        out: dense(1),
        loss: mse,
    }
}

fn main() {}
