//! The benchmarked shapes, each as a generated network (`Gen`), its interpreted twin
//! (`interp()`) and its hand-written twin (`Hand`), with the same flat parameter layout.
#![allow(dead_code)]

use symnet::{Activation, InterpNet, Loss, SplitMix64};

use super::handwritten::{IdentityMse, Net2, Net3, Relu, Sigmoid, SigmoidBce, SoftmaxCe};

/// What kind of target a loss expects.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// 0 or 1 per output.
    Binary,
    /// Any real number.
    Real,
    /// A one-hot row.
    OneHot,
}

/// `n` random samples: inputs uniform in [-1.5, 1.5], targets that suit the loss.
pub fn batch<const I: usize, const O: usize>(
    n: usize,
    target: Target,
    seed: u64,
) -> (Vec<[f32; I]>, Vec<[f32; O]>) {
    let mut rng = SplitMix64::new(seed);
    let mut xs = Vec::with_capacity(n);
    let mut ys = Vec::with_capacity(n);
    for _ in 0..n {
        xs.push(std::array::from_fn(|_| rng.uniform(-1.5, 1.5) as f32));
        let y: [f32; O] = match target {
            Target::Binary => std::array::from_fn(|_| (rng.next_f64() < 0.5) as u8 as f32),
            Target::Real => std::array::from_fn(|_| rng.uniform(-1.0, 1.0) as f32),
            Target::OneHot => {
                let k = rng.below(O);
                std::array::from_fn(|j| (j == k) as u8 as f32)
            }
        };
        ys.push(y);
    }
    (xs, ys)
}

fn interp(inputs: usize, layers: &[(usize, Activation)], loss: Loss) -> InterpNet<f32> {
    layers
        .iter()
        .fold(InterpNet::builder(inputs), |b, (w, a)| {
            b.dense(*w, a.clone())
        })
        .loss(loss)
        .build()
        .expect("valid description")
}

/// 2-4-1, XOR: sigmoid hidden, sigmoid output, binary cross-entropy.
pub mod xor {
    use super::*;
    symnet::network! {
        pub struct Gen<f32> {
            input: 2,
            h: dense(4) -> sigmoid,
            o: dense(1) -> sigmoid,
            loss: binary_cross_entropy,
        }
    }
    pub const NAME: &str = "2-4-1";
    pub const IN: usize = 2;
    pub const OUT: usize = 1;
    pub const TARGET: Target = Target::Binary;
    pub type Hand = Net2<Sigmoid, SigmoidBce, 2, 4, 1>;
    pub fn interp() -> InterpNet<f32> {
        super::interp(
            2,
            &[(4, Activation::Sigmoid), (1, Activation::Sigmoid)],
            Loss::BinaryCrossEntropy,
        )
    }
}

/// 6-64-8-4: relu, relu, identity output, mean squared error.
pub mod reg {
    use super::*;
    symnet::network! {
        pub struct Gen<f32> {
            input: 6,
            a: dense(64) -> relu,
            b: dense(8) -> relu,
            c: dense(4),
            loss: mse,
        }
    }
    pub const NAME: &str = "6-64-8-4";
    pub const IN: usize = 6;
    pub const OUT: usize = 4;
    pub const TARGET: Target = Target::Real;
    pub type Hand = Net3<Relu, Relu, IdentityMse, 6, 64, 8, 4>;
    pub fn interp() -> InterpNet<f32> {
        super::interp(
            6,
            &[
                (64, Activation::Relu),
                (8, Activation::Relu),
                (4, Activation::Identity),
            ],
            Loss::Mse,
        )
    }
}

/// 4-16-3, iris: relu hidden, softmax output, cross-entropy.
pub mod iris {
    use super::*;
    symnet::network! {
        pub struct Gen<f32> {
            input: 4,
            h: dense(16) -> relu,
            o: dense(3) -> softmax,
            loss: cross_entropy,
        }
    }
    pub const NAME: &str = "4-16-3";
    pub const IN: usize = 4;
    pub const OUT: usize = 3;
    pub const TARGET: Target = Target::OneHot;
    pub type Hand = Net2<Relu, SoftmaxCe, 4, 16, 3>;
    pub fn interp() -> InterpNet<f32> {
        super::interp(
            4,
            &[(16, Activation::Relu), (3, Activation::Softmax)],
            Loss::CrossEntropy,
        )
    }
}

/// 64-32-10, digits: relu hidden, softmax output, cross-entropy.
pub mod digits {
    use super::*;
    symnet::network! {
        pub struct Gen<f32> {
            input: 64,
            h: dense(32) -> relu,
            o: dense(10) -> softmax,
            loss: cross_entropy,
        }
    }
    pub const NAME: &str = "64-32-10";
    pub const IN: usize = 64;
    pub const OUT: usize = 10;
    pub const TARGET: Target = Target::OneHot;
    pub type Hand = Net2<Relu, SoftmaxCe, 64, 32, 10>;
    pub fn interp() -> InterpNet<f32> {
        super::interp(
            64,
            &[(32, Activation::Relu), (10, Activation::Softmax)],
            Loss::CrossEntropy,
        )
    }
}

/// 784-128-10, MNIST-sized: relu hidden, softmax output, cross-entropy.
pub mod mnist {
    use super::*;
    symnet::network! {
        pub struct Gen<f32> {
            input: 784,
            h: dense(128) -> relu,
            o: dense(10) -> softmax,
            loss: cross_entropy,
        }
    }
    pub const NAME: &str = "784-128-10";
    pub const IN: usize = 784;
    pub const OUT: usize = 10;
    pub const TARGET: Target = Target::OneHot;
    pub type Hand = Net2<Relu, SoftmaxCe, 784, 128, 10>;
    pub fn interp() -> InterpNet<f32> {
        super::interp(
            784,
            &[(128, Activation::Relu), (10, Activation::Softmax)],
            Loss::CrossEntropy,
        )
    }
}
