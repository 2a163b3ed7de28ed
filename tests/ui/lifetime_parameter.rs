use symnet::network;

network! {
    pub struct Net<'a> {
        input: 2,
        output: dense(1),
        loss: mse,
    }
}

fn main() {}
