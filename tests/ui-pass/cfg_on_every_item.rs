//! `#[cfg(..)]` and `#[cfg_attr(.., cfg(..))]` on the declaration hold for every generated
//! item (the struct, its impls, the prepared form), and other `cfg_attr`s reach the struct.
#![deny(warnings)]

use symnet::network;

network! {
    /// Only in test builds: without the condition on every impl, a normal build fails.
    #[cfg(test)]
    pub struct OnlyInTests<f32> {
        input: 2,
        output: dense(1),
        loss: mse,
    }
}

network! {
    #[cfg_attr(any(), cfg(any()))]
    #[cfg_attr(all(), derive(Clone, Debug, PartialEq, Default))]
    #[cfg_attr(all(), cfg_attr(all(), derive(Copy)))]
    pub struct Conditional<f32> {
        input: 2,
        output: dense(1),
        loss: mse,
    }
}

network! {
    #[cfg(not(any()))]
    pub struct Always<f64> {
        input: 1,
        output: dense(1) -> sigmoid,
        loss: binary_cross_entropy,
    }
}

fn main() {
    let a = Conditional::init(2);
    let b = a;
    assert_eq!(a, b.clone());
    assert_eq!(Conditional::default(), Conditional::zeros());
    let _ = Always::init(1).prepare().forward(&[1.0]);
}
