use symnet::network;

network! {
    pub struct
}

fn main() {}
