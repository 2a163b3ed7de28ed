use symnet::network;

network! {
    pub struct Net<f32> {
        input: 2,
        hidden: dense(4) -> |x| x * sigmod(x),
        out: dense(1),
        loss: mse,
    }
}

fn main() {}
