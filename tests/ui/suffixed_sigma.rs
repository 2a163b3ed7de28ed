use symnet::network;

network! {
    pub struct Net<f32> {
        input: 2,
        output: dense(1),
        loss: gaussian_nll(sigma = 1u8),
    }
}

fn main() {}
