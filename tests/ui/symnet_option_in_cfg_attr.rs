use symnet::network;

network! {
    #[cfg_attr(feature = "embedded", symnet(weights = "model.safetensors"))]
    pub struct Net<f32> {
        input: 2,
        out: dense(1),
        loss: mse,
    }
}

fn main() {}
