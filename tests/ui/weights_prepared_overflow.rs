// Finite weights whose collapsed product overflows f32: the prepared form cannot be embedded.
use symnet::network;

network! {
    #[symnet(allow_collapse, weights = "../../../../tests/ui/weights/overflow.safetensors")]
    pub struct Net<f32> {
        input: 2,
        a: dense(2),
        b: dense(1),
        loss: mse,
    }
}

fn main() {}
