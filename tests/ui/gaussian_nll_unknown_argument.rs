use symnet::network;

network! {
    pub struct Net<f64> {
        input: 2,
        output: dense(1),
        loss: gaussian_nll(scale = 1.0),
    }
}

fn main() {}
