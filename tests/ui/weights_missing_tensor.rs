// A file without the bias of `out`.
// The path is relative to the crate that uses the macro; trybuild builds these cases in
// target/tests/trybuild/symnet, four levels below the repository.
use symnet::network;

network! {
    #[symnet(weights = "../../../../tests/ui/weights/missing_tensor.safetensors")]
    pub struct Net<f32> {
        input: 2,
        out: dense(1),
        loss: mse,
    }
}

fn main() {}
