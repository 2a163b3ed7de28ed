// `#[cfg(any())]` (never true) removes every generated item, so the struct is not there.
use symnet::network;

network! {
    #[cfg(any())]
    pub struct Net<f32> {
        input: 2,
        output: dense(1),
        loss: mse,
    }
}

fn main() {
    let _ = Net::zeros();
}
