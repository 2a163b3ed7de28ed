// A network without `#[derive(Clone)]`, cloned: rustc's suggestion to derive it must point at
// the declaration (the user's `pub struct Net`), not above the `network!` call.
use symnet::network;

network! {
    pub struct Net<f32> {
        input: 2,
        out: dense(1),
        loss: mse,
    }
}

fn main() {
    let a = Net::zeros();
    let _b = a.clone();
}
