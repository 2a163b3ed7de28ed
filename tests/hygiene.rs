//! The generated items work wherever a struct may be declared, next to names that clash with
//! the runtime's own, in a crate with unusual modules of its own.

#![no_implicit_prelude]
#![allow(dead_code, non_camel_case_types, unused_macros)]

// Modules and types named like the ones generated code refers to.
mod core {}
mod std {}
mod symnet {}
struct Dense;
struct Network;
struct Scalar;
struct Flat;
struct Option;
struct Result;
trait Clone {}
macro_rules! assert {
    ($($t:tt)*) => {
        ::core::compile_error!("the user's own assert! was called by generated code")
    };
}
macro_rules! assert_eq {
    ($($t:tt)*) => {
        ::core::compile_error!("the user's own assert_eq! was called by generated code")
    };
}

::symnet::network! {
    pub struct First<f32> { input: 2, x: dense(3) -> relu, y: dense(1), loss: mse }
}

// Layer names equal to the generated methods' own locals and parameters.
::symnet::network! {
    pub struct Second<f64> {
        input: 3,
        grad: dense(4) -> tanh,
        seed: dense(4) -> sigmoid,
        t0: dense(4) -> softplus,
        acc0: dense(2) -> softmax,
        loss: cross_entropy,
    }
}

mod nested {
    pub mod deeper {
        ::symnet::network! {
            pub(crate) struct Inner<f32> { input: 1, out: dense(1) -> sigmoid, loss: binary_cross_entropy }
        }
    }
}

#[test]
fn declared_in_a_function_body() {
    ::symnet::network! {
        struct Local<f64> { input: 2, w: dense(2) -> leaky_relu(0.2), b: dense(2), loss: mae }
    }
    let n = Local::init(3);
    let mut g = Local::zeros();
    let l = n.backward(&[1.0, 2.0], &[0.0, 1.0], &mut g);
    ::core::assert!(l.is_finite());
}

#[test]
fn several_networks_in_one_module() {
    let a = First::init(1);
    let b = Second::init(1);
    let c = nested::deeper::Inner::init(1);
    ::core::assert_eq!(a.forward(&[0.0, 0.0]).len(), 1);
    let p = b.forward(&[1.0, 2.0, 3.0]);
    ::core::assert!((p[0] + p[1] - 1.0).abs() < 1e-12);
    ::core::assert!(c.forward(&[0.0])[0] == 0.5);
    let mut g = Second::zeros();
    ::core::assert!(b
        .backward(&[1.0, 2.0, 3.0], &[0.0, 1.0], &mut g)
        .is_finite());
}
