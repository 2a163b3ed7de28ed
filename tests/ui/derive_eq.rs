use symnet::network;

network! {
    #[derive(Clone, PartialEq, Eq)]
    pub struct Net<f32> {
        input: 2,
        output: dense(1),
        loss: mse,
    }
}

fn main() {}
