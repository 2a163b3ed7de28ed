// `macro_rules!` hands a `$w:literal` of `-2` over as one literal token with its sign.
macro_rules! net_with_input {
    ($w:literal) => {
        symnet::network! {
            pub struct Net<f32> {
                input: $w,
                output: dense(1),
                loss: mse,
            }
        }
    };
}

net_with_input!(-2);

fn main() {}
