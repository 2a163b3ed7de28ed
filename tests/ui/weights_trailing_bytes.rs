// A file with bytes after the last tensor's data (load_weights refuses it too).
use symnet::network;

network! {
    #[symnet(weights = "../../../../tests/ui/weights/trailing_bytes.safetensors")]
    pub struct Net<f32> {
        input: 2,
        out: dense(1),
        loss: mse,
    }
}

fn main() {}
