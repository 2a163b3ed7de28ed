use symnet::network;

network! {
    #[repr(align(64))]
    pub struct Net<f32> {
        input: 2,
        output: dense(1),
        loss: mse,
    }
}

fn main() {}
