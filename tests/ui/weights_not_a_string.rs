use symnet::network;

network! {
    #[symnet(weights = model)]
    pub struct Net<f32> {
        input: 2,
        out: dense(1),
        loss: mse,
    }
}

fn main() {}
