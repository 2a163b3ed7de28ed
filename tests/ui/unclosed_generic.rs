use symnet::network;

network! {
    pub struct Net<f32
}

fn main() {}
