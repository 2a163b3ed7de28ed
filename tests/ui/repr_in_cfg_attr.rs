use symnet::network;

network! {
    #[cfg_attr(all(), repr(C, align(16)))]
    pub struct Net<f32> {
        input: 2,
        output: dense(1),
        loss: mse,
    }
}

fn main() {}
