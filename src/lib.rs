//! # symnet
//!
//! A symbolic compiler for small, fixed-shape neural networks. You declare a network with
//! [`network!`]; at compile time the macro builds a tensor expression graph, simplifies it by
//! equality saturation (with [`egg`](https://docs.rs/egg)), derives the gradients symbolically,
//! and emits plain, unrolled Rust for the forward and backward passes: no allocation, no
//! interpreter, nothing but `core` and this crate's small types.
//!
//! ```
//! use symnet::network;
//!
//! network! {
//!     /// A 2-4-1 classifier for XOR.
//!     #[derive(Clone, Debug)]
//!     pub struct Xor<f64> {
//!         input: 2,
//!         hidden: dense(4) -> tanh,
//!         output: dense(1) -> sigmoid,
//!         loss: binary_cross_entropy,
//!     }
//! }
//!
//! let mut net = Xor::init(7);
//! let data = [([0.0, 0.0], [0.0]), ([0.0, 1.0], [1.0]), ([1.0, 0.0], [1.0]), ([1.0, 1.0], [0.0])];
//! for _ in 0..2000 {
//!     let mut grad = Xor::zeros();
//!     for (x, y) in &data {
//!         net.backward(x, y, &mut grad);
//!     }
//!     for (p, g) in net.params_mut().iter_mut().zip(grad.params()) {
//!         *p -= 0.5 * g;
//!     }
//! }
//! for (x, y) in &data {
//!     assert!((net.forward(x)[0] - y[0]).abs() < 0.2);
//! }
//! assert_eq!(Xor::PARAMS, 4 * (2 + 1) + 1 * (4 + 1));
//! ```
//!
//! See the README for the grammar, the generated API and the loss conventions.
#![cfg_attr(not(feature = "std"), no_std)]

pub use symnet_macros::network;
pub use symnet_runtime::*;

/// The README's code blocks, compiled and run as doctests so that the tutorial stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
