use symnet::network;

network! {
    pub struct Net<f32> {
        input: 2,
        output: dense(18446744073709551616),
        loss: mse,
    }
}

fn main() {}
