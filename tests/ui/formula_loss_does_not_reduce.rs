use symnet::network;

network! {
    pub struct Net<f32> {
        input: 2,
        hidden: dense(4) -> tanh,
        out: dense(1),
        loss: |yhat, y| (yhat - y) * (yhat - y),
    }
}

fn main() {}
